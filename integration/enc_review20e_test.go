package integration

// Review 20e: fresh code of reviews 20a (prepared statement records) and
// 20c.
//
//   HIGH TestReview20eProtocolPrepareRunAgain: an SQL PREPARE sent
//      through the extended protocol was recorded at its Parse only; its
//      portal can run it again and again (one Bind, or a new Bind of the
//      same statement each time), after a DEALLOCATE of the name. The
//      record was gone with the DEALLOCATE's confirmation, the server
//      held the statement again: after a view swap its Bind or EXECUTE
//      ran unchecked, the client's plaintext into contacts.note.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"time"
)

// TestReview20eProtocolPrepareRunAgain: PREPARE ins AS INSERT INTO a
// plain table, parsed through the extended protocol as a named statement
// and run; DEALLOCATE ins; the PREPARE statement bound and run again (the
// server holds ins again); the table becomes a view over an encrypted
// column; ins bound through the protocol, or run with SQL EXECUTE: refused
// (0A000), the plaintext never written.
func TestReview20eProtocolPrepareRunAgain(t *testing.T) {
	relayLeakCheck(t)
	for i, eng := range []struct{ name, loops string }{{"goroutines", "0"}, {"loop", "1"}} {
		t.Run(eng.name, func(t *testing.T) {
			t.Setenv(eventLoopsEnv, eng.loops)
			ctx := testCtx(t, 2*time.Minute)
			org := int64(27000 + i)
			p := startEncProxy(t, org)
			app := connectPgx(t, ctx, p.url())
			c := connectPgx(t, ctx, p.url()).PgConn()
			trace := func(msgs ...pgproto3.FrontendMessage) string {
				return strings.Join(r17Trace(ctx, c, msgs...), " | ")
			}
			for j, between := range []string{"DEALLOCATE ins", "DEALLOCATE ALL", "DISCARD ALL"} {
				rel := fmt.Sprintf("r20e_pp%d", j)
				swap := rev15ViewSwap(t, ctx, p, rel)
				secret := fmt.Sprintf("r20e-pp-%d-%d", org, j)
				p.remember(secret)
				if got := trace(&pgproto3.Parse{Name: "pp", Query: "PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
					t.Fatalf("%d parse: %s", j, got)
				}
				run := []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: "pp"}, &pgproto3.Execute{}, &pgproto3.Sync{}}
				if got := trace(run...); got != "BindComplete | CommandComplete PREPARE | ReadyForQuery I" {
					t.Fatalf("%d run: %s", j, got)
				}
				if got := trace(query(between)...); !strings.HasPrefix(got, "CommandComplete") {
					t.Fatalf("%d %s: %s", j, between, got)
				}
				if between != "DEALLOCATE ins" {
					// pp went too: parsed again.
					if got := trace(&pgproto3.Parse{Name: "pp", Query: "PREPARE ins AS INSERT INTO " + rel + " (org_id, note) VALUES ($1, $2)"}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
						t.Fatalf("%d parse again: %s", j, got)
					}
				}
				if got := trace(run...); got != "BindComplete | CommandComplete PREPARE | ReadyForQuery I" {
					t.Fatalf("%d run again: %s", j, got)
				}
				swap(app)
				got := trace(&pgproto3.Bind{PreparedStatement: "ins", Parameters: [][]byte{[]byte(fmt.Sprint(org)), []byte(secret)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
				if !strings.HasPrefix(got, "ErrorResponse 0A000") {
					t.Errorf("%d bound after the swap: %s", j, got)
				}
				got = trace(query(fmt.Sprintf("EXECUTE ins(%d, '%s-x')", org, secret))...)
				if !strings.HasPrefix(got, "ErrorResponse 0A000") {
					t.Errorf("%d executed after the swap: %s", j, got)
				}
				rev15NoPlainNote(t, ctx, secret)
				trace(query("DEALLOCATE ALL")...)
			}
		})
	}
}
