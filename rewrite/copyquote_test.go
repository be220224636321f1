package rewrite

import (
	"fmt"
	"testing"
)

// TestCopyForceQuote: FORCE_QUOTE names output fields; the plan marks them
// by position (the proxy re-encodes every row of a planned COPY TO, so it
// must quote them itself), for a column list, a query's output names and *.
func TestCopyForceQuote(t *testing.T) {
	p := newTestPlanner(t)
	for _, c := range []struct{ sql, want string }{
		{`COPY contacts (id, email, note) TO STDOUT (FORMAT csv, FORCE_QUOTE (email, note))`, "[false true true]"},
		{`COPY contacts (id, email) TO STDOUT (FORMAT csv, FORCE_QUOTE *)`, "[true true]"},
		{`COPY (SELECT id, email AS e, (SELECT note FROM contacts LIMIT 1) FROM contacts) TO STDOUT (FORMAT csv, FORCE_QUOTE (e, note))`, "[false true true]"},
		{`COPY contacts (id, email) TO STDOUT CSV FORCE QUOTE email`, "[false true]"},
		{`COPY contacts (id, email) TO STDOUT (FORMAT csv)`, "[]"},
	} {
		plan, err := p.Plan(c.sql, publicPath)
		if err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		cp := plan.Stmts[0].Copy
		if cp == nil {
			t.Fatalf("%s: no COPY plan", c.sql)
		}
		if got := fmt.Sprint(cp.ForceQuote); got != c.want {
			t.Errorf("%s: ForceQuote %s, want %s", c.sql, got, c.want)
		}
	}
}
