package keysource

import (
	"testing"

	"github.com/pgveil/pgveil/policy"
)

func TestSplitScope(t *testing.T) {
	for _, n := range [][3]string{
		{"public", "users", "email"},
		{"a.b", "c", "d"},
		{"a", "b.c", "d"},
		{`we"ird`, `"`, `..`},
		{"", "", ""},
		{`x"".y`, "t", `"c"`},
	} {
		tbl := &policy.Table{Schema: n[0], Name: n[1]}
		scope := ScopeOf(&policy.Column{Table: tbl, Name: n[2]})
		s, tb, c, ok := splitScope(scope)
		if !ok || [3]string{s, tb, c} != n {
			t.Errorf("%q: %q %q %q %v, want %q", scope, s, tb, c, ok, n)
		}
	}
	for _, bad := range []string{"", "a.b", "a.b.c.d", `"a".b.c`, `"a.b.c`, `a."b"c.d`, `a.b."c""`, "a..b", `a.b.c"`, `a"b.c.d`} {
		if s, tb, c, ok := splitScope(bad); ok {
			t.Errorf("%q split into %q %q %q", bad, s, tb, c)
		}
	}
}
