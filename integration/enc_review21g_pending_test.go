//go:build review21pending

package integration

// Pending from review 21g (see enc_review21g_test.go).

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestReview21gSkippedRewrittenUnnamedMirror (MEDIUM, pending): an
// unnamed Parse pgveil rewrites, skipped after an error: the server keeps
// the unnamed statement before, which a Bind after the Sync runs;
// pgveil's view keeps the skipped one (08P01 or 26000 where PostgreSQL
// binds and runs the old one). Fail closed: nothing runs unchecked.
func TestReview21gSkippedRewrittenUnnamedMirror(t *testing.T) {
	relayLeakCheck(t)
	r17Engines(t, 31500, func(t *testing.T, e *r17Env) {
		org := e.orgs[0]
		dz := []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}}
		for k, first := range []string{"SELECT 7", "PREPARE sq AS SELECT $1::int8 * 2"} {
			e.same(fmt.Sprintf("%d parse", k), nil, &pgproto3.Parse{Query: first}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
			e.same(fmt.Sprintf("%d named", k), nil, &pgproto3.Parse{Name: "d", Query: "DEALLOCATE ALL"}, &pgproto3.Bind{PreparedStatement: "d"}, &pgproto3.Execute{}, &pgproto3.Sync{})
			e.same(fmt.Sprintf("%d skipped", k), nil, cat(dz, []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT email FROM users WHERE org_id = $1"}, &pgproto3.Sync{}})...)
			e.same(fmt.Sprintf("%d bind unnamed", k), nil, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
			e.same(fmt.Sprintf("%d sq", k), nil, query("EXECUTE sq(2)")...)
			e.same(fmt.Sprintf("%d end", k), nil, query("DEALLOCATE ALL")...)
		}
		_ = org
	})
}
