package integration

// Review 19b: statements sealed at Parse, run after `pgveil rotate` in
// the shapes the re-prepare must survive (review 19's fix, finding 1).

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestOpsReview19bResealShapes: statements whose literals were sealed at
// Parse, run after a rotation dropped the version they were sealed under:
// inside a transaction block, behind an error earlier in the pipeline
// (the re-prepare's Parse skipped), in an aborted block then after its
// ROLLBACK, and bound twice in one pipeline; both engines. Each run
// writes a row that reads back, no value is left under a dropped
// version, and pgveil leaves one statement upstream per client statement.
func TestOpsReview19bResealShapes(t *testing.T) {
	ctx := testCtx(t, 5*time.Minute)
	e := newOpsEnv(t, "ops_r19b_reseal", r17Policy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	for i, loops := range []string{"0", "1"} {
		t.Run("event_loops="+loops, func(t *testing.T) {
			p := e.proxy(e.config("") + "proxy:\n  event_loops: " + loops + "\n")
			c := e.appConn(ctx, p).PgConn()
			trace := func(msgs ...pgproto3.FrontendMessage) string {
				return strings.Join(r17Trace(ctx, c, msgs...), " | ")
			}
			id := 400 + 10*i
			ins := func(org int) string {
				return fmt.Sprintf(`INSERT INTO rv (id, org, email, note) VALUES (%d, %d, 'seal-%d@x.org', 'sealed note %d')`, id+org, org, org, org)
			}
			if got := trace(&pgproto3.Parse{Name: "a", Query: ins(1)}, &pgproto3.Parse{Name: "b", Query: ins(2)}, &pgproto3.Sync{}); got != "ParseComplete | ParseComplete | ReadyForQuery I" {
				t.Fatalf("parse: %s", got)
			}
			clear := func() {
				t.Helper()
				if _, err := su.Exec(ctx, fmt.Sprintf("DELETE FROM rv WHERE id IN (%d, %d)", id+1, id+2)); err != nil {
					t.Fatal(err)
				}
			}
			rotate := func() {
				t.Helper()
				if r := e.run(ctx, 0, "rotate", "-c", cfg, "--grace", "1s"); !strings.Contains(r.stdout, "dropped") {
					t.Fatalf("rotate dropped nothing:\n%s", r.stdout)
				}
			}
			ran := "BindComplete | CommandComplete INSERT 0 1"
			bind := func(name string) []pgproto3.FrontendMessage {
				return []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}}
			}
			dz := []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "dz", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "dz"}, &pgproto3.Execute{}}
			steps := []struct {
				what string
				msgs []pgproto3.FrontendMessage
				want string
			}{
				{"in a block", cat(query("BEGIN"), bind("a"), bind("b"), sync1, query("COMMIT")),
					"CommandComplete BEGIN | ReadyForQuery T | " + ran + " | " + ran + " | ReadyForQuery T | CommandComplete COMMIT | ReadyForQuery I"},
				{"behind an error", cat(dz, bind("a"), sync1, []pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S', Name: "dz"}}, bind("a"), bind("b"), sync1),
					"ParseComplete | ErrorResponse 22012 division by zero | ReadyForQuery I | CloseComplete | " + ran + " | " + ran + " | ReadyForQuery I"},
				{"aborted block", cat(query("BEGIN"), query("SELECT 1/0"), bind("a"), sync1, query("ROLLBACK"), bind("a"), bind("b"), sync1),
					"CommandComplete BEGIN | ReadyForQuery T | ErrorResponse 22012 division by zero | ReadyForQuery E | ErrorResponse 25P02 current transaction is aborted, commands ignored until end of transaction block | ReadyForQuery E | CommandComplete ROLLBACK | ReadyForQuery I | " + ran + " | " + ran + " | ReadyForQuery I"},
			}
			for _, s := range steps {
				clear()
				rotate()
				if got := trace(s.msgs...); got != s.want {
					t.Errorf("%s:\n got %s\nwant %s", s.what, got, s.want)
				}
				app := e.appConn(ctx, p)
				for org := 1; org <= 2; org++ {
					var email, note *string
					if err := app.QueryRow(ctx, `SELECT email, note FROM rv WHERE id = $1`, id+org).Scan(&email, &note); err != nil {
						t.Fatalf("%s: %v", s.what, err)
					}
					if r19Deref(email) != fmt.Sprintf("seal-%d@x.org", org) || r19Deref(note) != fmt.Sprintf("sealed note %d", org) {
						t.Errorf("%s: row of org %d reads %s, %s", s.what, org, r19Deref(email), r19Deref(note))
					}
				}
			}
			if got := trace(&pgproto3.Query{String: "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgveil%'"}); got != `RowDescription(count:20/8/-1/0) | DataRow("2") | CommandComplete SELECT 1 | ReadyForQuery I` {
				t.Errorf("upstream statements: %s", got)
			}
		})
	}
}
