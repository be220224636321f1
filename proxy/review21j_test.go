package proxy

import (
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// Review 21j: a Bind refused (08P01) for the result formats of a statement
// mapped by origin is the client's count (pgveil sends the client's codes
// and one per field it added): it must not read the catalog again. A
// planned statement with a field list, or a client's single code, keeps
// the reload (a stale plan's per-column codes).
func TestReview21jClientFormatsByOrigin(t *testing.T) {
	byOrigin := &Statement{Plan: &rewrite.Stmt{OutputsByOrigin: true, Outputs: []rewrite.Output{{Hidden: true}}}}
	listed := &Statement{Plan: &rewrite.Stmt{Outputs: []rewrite.Output{{Hidden: true}}}}
	for _, c := range []struct {
		p    *Portal
		want bool
	}{
		{&Portal{Stmt: byOrigin, ResultFormats: []int16{0, 0, 1}}, true},
		{&Portal{Stmt: byOrigin, ResultFormats: []int16{1}}, false},
		{&Portal{Stmt: byOrigin}, false},
		{&Portal{Stmt: listed, ResultFormats: []int16{0, 0, 1}}, false},
	} {
		if got := clientFormatsByOrigin(c.p); got != c.want {
			t.Errorf("by origin %v, formats %v: %v, want %v", c.p.Stmt.Plan.OutputsByOrigin, c.p.ResultFormats, got, c.want)
		}
	}
}
