package rewrite

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// mutateLiterals returns sql with every literal token changed in value and
// length but not in kind: strings gain characters after their opening
// quote, numbers gain a digit (staying Integer or Float as they were).
func mutateLiterals(sql string) (string, bool) {
	var b strings.Builder
	l := lexer{s: sql}
	cur, n := 0, 0
	for t := l.next(); t.kind != tEOF; t = l.next() {
		if t.kind == tError {
			return "", false
		}
		tok := sql[t.start:t.end]
		var out string
		switch t.kind {
		case tString:
			q := strings.IndexByte(tok, '\'')
			if tok[0] == '$' { // $tag$…$tag$
				q = strings.IndexByte(tok[1:], '$') + 1
			}
			out = tok[:q+1] + "Mu" + tok[q+1:]
		case tBitString:
			q := strings.IndexByte(tok, '\'')
			out = tok[:q+1] + "1" + tok[q+1:]
		case tNumber:
			if _, err := strconv.ParseInt(tok+"0", 10, 32); err == nil {
				out = tok + "0"
			} else if _, err := strconv.ParseInt(tok, 10, 32); err == nil {
				out = "1" // an int32 that would overflow with one more digit
				if tok == "1" {
					out = "2"
				}
			} else if strings.ContainsAny(tok, ".eE") {
				out = tok + "1"
			} else {
				out = tok + "0"
			}
		default:
			continue
		}
		b.WriteString(sql[cur:t.start])
		b.WriteString(out)
		cur = t.end
		n++
	}
	b.WriteString(sql[cur:])
	return b.String(), n > 0
}

// TestShapePlansMatchFreshPlans: for every statement of the plan corpus,
// a text of the same shape with other literal values gets, from the
// shape cache, exactly the plan a planner that never saw the shape makes
// for it (or the same refusal).
func TestShapePlansMatchFreshPlans(t *testing.T) {
	hits := 0
	for _, c := range planCases {
		if shapeMatchesFresh(t, c.name, c.sql, c.path, c.noCatalog) {
			hits++
		}
	}
	// The corpus is mostly parameters; its statements with literals on
	// configured tables must still reach the shape cache.
	if hits < 30 {
		t.Fatalf("only %d corpus statements were planned from their shape", hits)
	}
	t.Logf("%d corpus statements planned from their shape", hits)
}

// FuzzShapePlan: the same property for any text (go test -fuzz).
func FuzzShapePlan(f *testing.F) {
	for _, c := range planCases {
		if c.path == nil && !c.noCatalog {
			f.Add(c.sql)
		}
	}
	f.Fuzz(func(t *testing.T, sql string) {
		shapeMatchesFresh(t, "fuzz", sql, nil, false)
	})
}

// shapeMatchesFresh plans sql, then a mutation of its literals twice: on
// the warm planner (from the shape) and on a fresh one; they must agree.
// It reports whether the warm planner used the shape.
func shapeMatchesFresh(t *testing.T, name, sql string, path []string, noCatalog bool) bool {
	t.Helper()
	t2, ok := mutateLiterals(sql)
	if !ok {
		return false
	}
	k1, _, ok := shapeOf(sql)
	if !ok {
		return false
	}
	if k2, _, ok := shapeOf(t2); !ok || k1 != k2 {
		t.Fatalf("%s: the mutation changed the shape:\n%s\n%s", name, sql, t2)
	}
	s := publicPath
	if path != nil {
		s = Session{SearchPath: path}
	}
	warm := NewPlanner(testConfig(t), 16)
	fresh := NewPlanner(testConfig(t), 16)
	if !noCatalog {
		warm.SetCatalog(testCatalog())
		fresh.SetCatalog(testCatalog())
	}
	warm.Plan(sql, s)
	before := warm.Stats().ShapeHits
	got, gerr := warm.Plan(t2, s)
	want, werr := fresh.Plan(t2, s)
	hit := warm.Stats().ShapeHits > before
	if (gerr == nil) != (werr == nil) {
		t.Errorf("%s: %s\nshape plan error %v, fresh plan error %v", name, t2, gerr, werr)
		return hit
	}
	if gerr != nil {
		var ge, we *Error
		if !errors.As(gerr, &ge) || !errors.As(werr, &we) || ge.Code != we.Code || ge.Message != we.Message || ge.Position != we.Position {
			t.Errorf("%s: %s\nshape refusal %v, fresh refusal %v", name, t2, gerr, werr)
		}
		return hit
	}
	if g, w := dumpPlan(t2, got), dumpPlan(t2, want); g != w {
		t.Errorf("%s:\n%s\nshape plan\n%s\nfresh plan\n%s", name, t2, g, w)
		return hit
	}
	gr, err1 := renderMarked(t2, got)
	wr, err2 := renderMarked(t2, want)
	if err1 != nil || err2 != nil || gr != wr {
		t.Errorf("%s: rendered\nshape: %s (%v)\nfresh: %s (%v)", name, gr, err1, wr, err2)
		return hit
	}
	checkPlanInvariants(t, t2, got)
	return hit
}

// TestShapeValueDependent: plans that depend on a literal's value are not
// shared by its shape.
func TestShapeValueDependent(t *testing.T) {
	p := newTestPlanner(t)
	if _, err := p.Plan("SELECT id, email FROM users ORDER BY 1", publicPath); err != nil {
		t.Fatal(err)
	}
	var e *Error
	if _, err := p.Plan("SELECT id, email FROM users ORDER BY 2", publicPath); !errors.As(err, &e) || e.Code != CodeFeatureNotSupported {
		t.Fatalf("ORDER BY the encrypted output column: %v", err)
	}
	if _, err := p.Plan("SELECT set_config('application_name', 'x', false) FROM users", publicPath); err != nil {
		t.Fatal(err)
	}
	plan, err := p.Plan("SELECT set_config('search_path', 'app', false) FROM users", publicPath)
	if err != nil || len(plan.Stmts[0].SearchPath) != 1 || plan.Stmts[0].SearchPath[0] != "app" {
		t.Fatalf("set_config of search_path after another setting: %v %+v", err, plan)
	}
	if s := p.Stats(); s.ShapeHits != 0 {
		t.Fatalf("stats %+v", s)
	}
	// A utility statement is never shared: SET's value is the plan.
	p.Plan("SET search_path = 'a'", publicPath)
	if plan, err := p.Plan("SET search_path = 'b'", publicPath); err != nil || plan.Stmts[0].SearchPath[0] != "b" {
		t.Fatalf("SET: %v %+v", err, plan)
	}
}

// TestShapeOf: what a shape keeps and what it masks.
func TestShapeOf(t *testing.T) {
	same := [][2]string{
		{"SELECT * FROM users WHERE email = 'a'", "SELECT * FROM users WHERE email = 'bcd'"},
		{"SELECT * FROM users WHERE id = 1", "SELECT * FROM users WHERE id = 123456"},
		{"SELECT 1.5", "SELECT 2e10"},
		{"SELECT 3000000000", "SELECT 1.5"},
		{"SELECT $$a$$", "SELECT $x$b$x$"},
		{"SELECT 'a'\n'b'", "SELECT 'c'"},
	}
	for _, c := range same {
		k1, _, ok1 := shapeOf(c[0])
		k2, _, ok2 := shapeOf(c[1])
		if !ok1 || !ok2 || k1 != k2 {
			t.Errorf("%q and %q should share a shape", c[0], c[1])
		}
	}
	differ := [][2]string{
		{"SELECT 'a'", "SELECT E'a'"},
		{"SELECT 'a'", "SELECT 1"},
		{"SELECT 1", "SELECT 1.0"},
		{"SELECT 1", "SELECT 3000000000"},
		{"SELECT B'1'", "SELECT X'1'"},
		{"SELECT 'a' -- x", "SELECT 'a' -- y"},
		{"SELECT 'a'", "SELECT  'a'"},
	}
	for _, c := range differ {
		k1, _, _ := shapeOf(c[0])
		k2, _, _ := shapeOf(c[1])
		if k1 == k2 {
			t.Errorf("%q and %q should not share a shape", c[0], c[1])
		}
	}
	for _, sql := range []string{"SELECT $1", "SELECT 0x1F", "SELECT 1_000", "SELECT 'unterminated",
		"SELECT E'a\\'b'", "SELECT U&'d!0061t' UESCAPE '!'", `SELECT U&"e!006dail" UESCAPE E'!' FROM contacts`} {
		if _, _, ok := shapeOf(sql); ok {
			t.Errorf("%q has a shape", sql)
		}
	}
}
