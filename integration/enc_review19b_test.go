package integration

// Review 19b: the fixes of review 19 under attack.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestReview19bUnnamedAfterRewrittenParse: the unnamed statement passed
// through (it writes a plain table); an unnamed Parse pgveil rewrites,
// skipped by the server after an error earlier in its pipeline (the
// server keeps the first statement: the Close pgveil sends for it is
// skipped too); then the client's view of the unnamed statement becomes
// a pass-through one again without a Parse: a Close of the unnamed
// statement, or a simple Query the server skipped in the same pipeline.
// After the table became a view over an encrypted column, a Bind of the
// unnamed statement must not run the first text with the client's
// plaintext.
func TestReview19bUnnamedAfterRewrittenParse(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(23100 + i)
			p := startEncProxy(t, org)
			rewritten := &pgproto3.Parse{Query: "SELECT email FROM contacts WHERE id = $1 AND $2::text IS NOT NULL"}
			for j, after := range [][]pgproto3.FrontendMessage{
				{&pgproto3.Sync{}, &pgproto3.Close{ObjectType: 'S'}, &pgproto3.Sync{}},
				{&pgproto3.Query{String: "SELECT 1"}, &pgproto3.Sync{}},
				nil, // no named statement in the session: the error is a Bind's
			} {
				rel := fmt.Sprintf("r19b_vu%d", j)
				swap := rev15ViewSwap(t, ctx, p, rel)
				secret := fmt.Sprintf("r19b-unnamed-%d-%d", org, j)
				p.remember(secret)
				app := connectPgx(t, ctx, p.url())
				c := connectPgx(t, ctx, p.url()).PgConn()
				trace := func(msgs ...pgproto3.FrontendMessage) string {
					return strings.Join(r17Trace(ctx, c, msgs...), " | ")
				}
				if got := trace(&pgproto3.Parse{Query: "INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
					t.Fatalf("parse: %s", got)
				}
				if after != nil {
					msgs := append([]pgproto3.FrontendMessage{&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}, rewritten}, after...)
					if got := trace(msgs...); !strings.HasPrefix(got, "ParseComplete | ErrorResponse 22012 division by zero | ReadyForQuery I") {
						t.Fatalf("%d: skipped: %s", j, got)
					}
				} else {
					got := trace(&pgproto3.Bind{}, &pgproto3.Execute{}, rewritten, &pgproto3.Sync{}, &pgproto3.Close{ObjectType: 'S'}, &pgproto3.Sync{})
					if !strings.HasPrefix(got, "ErrorResponse 08P01 bind message supplies 0 parameters") || !strings.HasSuffix(got, "ReadyForQuery I | CloseComplete | ReadyForQuery I") {
						t.Fatalf("%d: skipped: %s", j, got)
					}
				}
				swap(app)
				got := trace(&pgproto3.Bind{Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
				if !strings.HasPrefix(got, "ErrorResponse") {
					t.Errorf("%d: the unnamed statement bound after the swap: %s", j, got)
				}
				rev15NoPlainNote(t, ctx, secret)
			}
		})
	}
}
