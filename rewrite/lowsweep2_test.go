package rewrite

// LOW sweep 2 (planner side); the integration side is
// integration/enc_lowsweep2_test.go.

import (
	"strings"
	"testing"
)

// TestLowSweep2MoveNumberTenant (item 1): UPDATE … SET org_id = 007 of a
// text key_context column that keeps encrypted values: the check of the
// move and the UPDATE's guard compared org_id = 007 (text = integer),
// which PostgreSQL refuses, while the UPDATE alone stores '7'. The number
// is compared as the text the column stores.
func TestLowSweep2MoveNumberTenant(t *testing.T) {
	p := NewPlanner(testConfig(t), 16)
	p.SetCatalog(textTenantCatalog())
	for _, c := range []struct{ sql, num string }{
		{`UPDATE users SET org_id = 007, email = 'a@x' WHERE id = 1`, "007"},
		{`UPDATE users SET org_id = 1e2, email = $1 WHERE id = $2`, "1e2"},
		{`UPDATE users SET org_id = -7.0, email = $1 WHERE id = $2`, "-7.0"},
	} {
		plan, err := p.Plan(c.sql, publicPath)
		if err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		st := plan.Stmts[0]
		if st.Lookup == nil || st.Lookup.Move == nil {
			t.Fatalf("%s: no move check", c.sql)
		}
		want := "CAST(" + c.num + " AS text)"
		if lt := st.Lookup.Text(c.sql); !strings.Contains(lt, "IS DISTINCT FROM "+want) {
			t.Errorf("%s: check %s; want the number compared as %s", c.sql, lt, want)
		}
		out, err := fillSlots(c.sql, plan)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, `"users"."org_id" = `+want) && !strings.Contains(out, `users.org_id = `+want) {
			t.Errorf("%s: sent %s; want the guard to compare %s", c.sql, out, want)
		}
	}
	// An integer key_context compares the number as the integer stored.
	pi := NewPlanner(testConfig(t), 16)
	pi.SetCatalog(testCatalog())
	sql := `UPDATE users SET org_id = 007, email = $1 WHERE id = $2`
	plan, err := pi.Plan(sql, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	if lt := plan.Stmts[0].Lookup.Text(sql); !strings.Contains(lt, "IS DISTINCT FROM 007") {
		t.Errorf("integer tenant: %s", lt)
	}
	// 7.5 is stored as 8 (item 3): the check compares what is stored.
	sql = `UPDATE users SET org_id = 7.5, email = $1 WHERE id = $2`
	if plan, err = pi.Plan(sql, publicPath); err != nil {
		t.Fatal(err)
	}
	if lt := plan.Stmts[0].Lookup.Text(sql); !strings.Contains(lt, "IS DISTINCT FROM CAST(7.5 AS int8)") {
		t.Errorf("integer tenant: %s", lt)
	}
}

// TestLowSweep2ParamLength (item 4): a varchar(n) cast on a parameter
// bound for an encrypted column is recorded (Stmt.ParamCasts) and a value
// longer than n characters refused at Bind; an array parameter is not.
func TestLowSweep2ParamLength(t *testing.T) {
	p := newTestPlanner(t)
	for _, c := range []struct {
		sql  string
		n    int
		long string
	}{
		{`INSERT INTO users (org_id, email) VALUES ($1, $2::varchar(3))`, 1, "abcd"},
		{`UPDATE users SET email = CAST($2 AS character varying(3)) WHERE org_id = $1`, 1, "ééé€"},
		{`UPDATE users SET email = CAST(CASE WHEN id = 1 THEN $2 ELSE NULL END AS varchar(3)) WHERE org_id = $1`, 1, "abcd"},
		{`SELECT 1 FROM users WHERE ssn = ANY($1::varchar(3)[])`, 0, ""},
	} {
		plan, err := p.Plan(c.sql, publicPath)
		if err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		pcs := plan.Stmts[0].ParamCasts
		if len(pcs) != c.n {
			t.Fatalf("%s: %d parameter casts, want %d", c.sql, len(pcs), c.n)
		}
		for _, pc := range pcs {
			if err := pc.Check(c.sql, []byte("abc")); err != nil {
				t.Errorf("%s: 3 characters refused: %v", c.sql, err)
			}
			if err := pc.Check(c.sql, []byte(c.long)); err == nil || !strings.Contains(err.Error(), "email") {
				t.Errorf("%s: %q accepted (%v): PostgreSQL would truncate it", c.sql, c.long, err)
			}
		}
	}
}
