package rewrite

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v5"
)

// sealFake stands in for the proxy: it "encrypts" and "indexes" literal
// values into recognisable bytea literals.
func sealFake(sql string) func(*Stmt, *Slot) (string, error) {
	return func(st *Stmt, s *Slot) (string, error) {
		if s.Action == TenantLookup {
			return "'42'", nil
		}
		v, isNull, err := LiteralValue(sql, st.Literals[s.Source])
		if err != nil || isNull {
			return "", fmt.Errorf("literal: %v null=%v", err, isNull)
		}
		return ByteaLiteral([]byte(s.Action.String() + ":" + string(v))), nil
	}
}

func TestRenderMultiStatement(t *testing.T) {
	p := newTestPlanner(t)
	sql := "BEGIN;\n  INSERT INTO contacts (email) VALUES ('a@b.c') ;SELECT 1 ;\n\n-- done\n"
	plan, err := p.Plan(sql, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := plan.Render(sql, sealFake(sql))
	if err != nil {
		t.Fatal(err)
	}
	want := "BEGIN;\n  INSERT INTO contacts (email, email_bidx) VALUES (" +
		ByteaLiteral([]byte("encrypt:a@b.c")) + ", " + ByteaLiteral([]byte("index:a@b.c")) +
		") ;SELECT 1 ;\n\n-- done\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(got, "'a@b.c'") {
		t.Fatal("plaintext literal reached the rendered text")
	}
	if len(plan.Stmts) != 3 || plan.Stmts[0].Original != "BEGIN" || plan.Stmts[2].Original != "SELECT 1" {
		t.Fatalf("statements: %+v", plan.Stmts)
	}
}

func TestRenderPassThroughIsIdentity(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{"SELECT 1", "  SELECT id FROM users ;  ", "SELECT email, org_id FROM users"} {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			t.Fatal(err)
		}
		got, err := plan.Render(sql, func(*Stmt, *Slot) (string, error) { return "", errors.New("no slots expected") })
		if err != nil || got != sql {
			t.Fatalf("%q: got %q, %v", sql, got, err)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	p := newTestPlanner(t)
	sql := "SELECT id FROM users WHERE email = 'x'"
	plan, err := p.Plan(sql, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("key unavailable")
	if _, err := plan.Render(sql, func(*Stmt, *Slot) (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Fatalf("fill error not returned: %v", err)
	}
	if _, err := plan.Render("SELECT id FROM users WHERE email = 'y'", sealFake(sql)); err == nil {
		t.Fatal("rendering a different text must fail")
	}
}

// TestRenderedSQLParses renders every planned case with real-looking
// literals and checks the result is valid SQL with no plaintext literal of
// an encrypted value left in it.
func TestRenderedSQLParses(t *testing.T) {
	for _, c := range planCases {
		if c.code != "" {
			continue
		}
		plan, err := planFor(t, c)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !plan.Rewritten {
			continue
		}
		out, err := plan.Render(c.sql, sealFake(c.sql))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if _, err := pg.Parse(out); err != nil {
			t.Errorf("%s: rendered SQL does not parse: %v\n%s", c.name, err, out)
		}
		for _, st := range plan.Stmts {
			for _, s := range st.Slots {
				if s.Source < 0 {
					continue // a tenant-lookup slot
				}
				lit := st.Literals[s.Source]
				if text := c.sql[lit.Start:lit.End]; strings.Contains(out, text) && len(text) > 3 {
					t.Errorf("%s: literal %s still in rendered SQL:\n%s", c.name, text, out)
				}
			}
		}
	}
}
