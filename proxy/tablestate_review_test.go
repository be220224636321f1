package proxy

// Review of signed migration states (commits 94cf286, 72111ad). The
// findings and the attacks against a real database are in
// integration/ops_tablestate_review17c_test.go: a forged row with the
// largest generation blocked every later SetTableState (MEDIUM, fixed:
// nextGeneration counts only verified rows); `pgveil check` noted a forged
// migrating row as a migration in progress (MEDIUM, fixed).
//
// Held here: the signed input is unambiguous for odd table names (quotes,
// dots, spaces, non-ASCII, empty, a name that ends like a state), so a row
// of one table or state never verifies as another's.

import (
	"bytes"
	"testing"
)

func TestReviewTableStateInputUnambiguous(t *testing.T) {
	type in struct {
		table, state string
		gen          int64
	}
	cases := []in{
		{"public.users", TableComplete, 1},
		{"public.user", "s" + TableComplete, 1},
		{"public.userscomplete", "", 1},
		{`public."we.ird"`, TableMigrating, 7},
		{`public."we`, `ird".` + TableMigrating, 7},
		{"public.Ünïcode tbl", TableDecrypting, 1 << 40},
		{"", TableMigrating, 0},
		{"public.users", TableComplete, 256},
		{"public.users\x00", TableComplete, 1},
		{"public.users", TableComplete, -1},
	}
	seen := map[string]in{}
	for _, c := range cases {
		b := stateMACInput(c.table, c.state, c.gen)
		if prev, dup := seen[string(b)]; dup {
			t.Errorf("%+v and %+v sign the same input", prev, c)
		}
		seen[string(b)] = c
		if !bytes.HasPrefix(b, []byte(stateMACLabel)) {
			t.Errorf("%+v: input without the label", c)
		}
	}
}
