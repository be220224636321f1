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

// Review 21j: only the server's refusal of the result formats (08P01 from
// PortalSetResultFormat) reads the catalog again; a client's short binary
// parameter (08P01 from pq_copymsgbytes) does not.
func TestReview21jResultFormatsRefused(t *testing.T) {
	body := func(fields ...string) []byte {
		var b []byte
		for _, f := range fields {
			b = append(append(b, f...), 0)
		}
		return append(b, 0)
	}
	for _, c := range []struct {
		body []byte
		want bool
	}{
		{body("SERROR", "C08P01", "Mbind message has 6 result formats but query has 8 columns", "RPortalSetResultFormat"), true},
		{body("SERROR", "C08P01", "Minsufficient data left in message", "Rpq_copymsgbytes"), false},
		{body("SERROR", "C08P01", "Mbind message has 6 result formats but query has 8 columns"), true},
		{body("SERROR", "C22P03", "RPortalSetResultFormat"), false},
	} {
		if got := resultFormatsRefused(c.body); got != c.want {
			t.Errorf("%q: %v, want %v", c.body, got, c.want)
		}
	}
}
