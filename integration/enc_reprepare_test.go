package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestEncReprepareProtocol: a prepared statement whose plan changes when
// its table's migration starts or ends (the lookup compares the plaintext
// of rows not yet backfilled, or stops doing so) is prepared upstream anew
// at its next Bind, in the middle of a pipeline, while a portal made from
// the old statement is suspended: the new portal reads under the new plan,
// the old portal finishes under the old one, and nothing of it reaches the
// client but the rows and completions PostgreSQL would send.
func TestEncReprepareProtocol(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)
	const org = 9181
	p := startEncProxy(t, org)
	const email = "rp-9181@example.org"
	p.remember(email)
	su := superConn(t, ctx)
	setState := func(state string) { setTableState(t, ctx, "public.contacts", state) }
	t.Cleanup(func() {
		if _, err := su.Exec(context.Background(), `DELETE FROM pgveil.tables WHERE table_name = 'public.contacts'; SELECT pg_notify('pgveil_tables', 'public.contacts')`); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	app := connectPgx(t, ctx, p.url())
	// Two sealed rows, and one the migration has not reached (plaintext,
	// no blind index), all with the same email.
	for i := 0; i < 2; i++ {
		if _, err := app.Exec(ctx, "INSERT INTO contacts (org_id, email) VALUES ($1, $2)", org, email); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := su.Exec(ctx, `INSERT INTO contacts (org_id, email) VALUES ($1, convert_to($2, 'UTF8'))`, org, email); err != nil {
		t.Fatal(err)
	}
	fresh := func(want int64) func() (bool, error) {
		return func() (bool, error) {
			var n int64
			err := app.QueryRow(ctx, `SELECT count(*) FROM contacts WHERE org_id = 9181 AND email = '`+email+`'`, pgx.QueryExecModeSimpleProtocol).Scan(&n)
			return n == want, err
		}
	}
	waitFor(t, 20*time.Second, "a plan without migration mode", fresh(2))

	c := connectPgx(t, ctx, p.url()).PgConn()
	const q = `SELECT org_id FROM contacts WHERE org_id = $1 AND email = $2 ORDER BY id`
	args := [][]byte{[]byte("9181"), []byte(email)}
	trace := func(msgs ...pgproto3.FrontendMessage) string {
		return strings.Join(prTrace(ctx, c, msgs...), " | ")
	}
	if got := trace(&pgproto3.Parse{Name: "rp", Query: q}, &pgproto3.Sync{}); got != "ParseComplete | ReadyForQuery I" {
		t.Fatalf("parse: %s", got)
	}
	// A portal of the statement as planned now, suspended after one row.
	got := trace(&pgproto3.Query{String: "BEGIN"},
		&pgproto3.Bind{DestinationPortal: "old", PreparedStatement: "rp", Parameters: args},
		&pgproto3.Execute{Portal: "old", MaxRows: 1}, &pgproto3.Sync{})
	if got != `CommandComplete BEGIN | ReadyForQuery T | BindComplete | DataRow("9181") | PortalSuspended | ReadyForQuery T` {
		t.Fatalf("suspended portal: %s", got)
	}

	setState("migrating")
	waitFor(t, 20*time.Second, "a plan in migration mode", fresh(3))
	// One pipeline: a new portal of the statement (prepared anew: it finds
	// the row not yet backfilled), the old portal's last row, and the
	// statement once more.
	got = trace(&pgproto3.Bind{DestinationPortal: "new", PreparedStatement: "rp", Parameters: args},
		&pgproto3.Execute{Portal: "new"},
		&pgproto3.Execute{Portal: "old"},
		&pgproto3.Bind{PreparedStatement: "rp", Parameters: args},
		&pgproto3.Execute{},
		&pgproto3.Sync{})
	want := `BindComplete | DataRow("9181") | DataRow("9181") | DataRow("9181") | CommandComplete SELECT 3 | ` +
		`DataRow("9181") | CommandComplete SELECT 1 | ` +
		`BindComplete | DataRow("9181") | DataRow("9181") | DataRow("9181") | CommandComplete SELECT 3 | ReadyForQuery T`
	if got != want {
		t.Fatalf("after the migration started:\n got %s\nwant %s", got, want)
	}
	if got := trace(&pgproto3.Query{String: "COMMIT"}); got != "CommandComplete COMMIT | ReadyForQuery I" {
		t.Fatalf("commit: %s", got)
	}

	// The migration ends: prepared anew again, outside a transaction,
	// first where an error earlier in the pipeline makes the server skip
	// the new Parse with the Bind: the next Bind sends it again.
	setState("complete")
	waitFor(t, 20*time.Second, "a plan without migration mode again", fresh(2))
	got = trace(&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Bind{PreparedStatement: "rp", Parameters: args}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got != "ParseComplete | ErrorResponse 22012 division by zero | ReadyForQuery I" {
		t.Fatalf("error before the first Bind: %s", got)
	}
	got = trace(&pgproto3.Bind{PreparedStatement: "rp", Parameters: args}, &pgproto3.Execute{},
		&pgproto3.Bind{PreparedStatement: "rp", Parameters: args}, &pgproto3.Execute{}, &pgproto3.Sync{})
	want = `BindComplete | DataRow("9181") | DataRow("9181") | CommandComplete SELECT 2 | BindComplete | DataRow("9181") | DataRow("9181") | CommandComplete SELECT 2 | ReadyForQuery I`
	if got != want {
		t.Fatalf("after the migration ended:\n got %s\nwant %s", got, want)
	}
	// pgveil's upstream statements: the one for "rp" now, the old ones
	// closed (the one with the suspended portal when it was replaced
	// again).
	var n int64
	if err := app.QueryRow(ctx, "SELECT count(*) FROM contacts WHERE false", pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil {
		t.Fatal(err)
	}
	got = trace(&pgproto3.Query{String: "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'pgveil%'"})
	if got != `RowDescription(count:20/8/-1/0) | DataRow("1") | CommandComplete SELECT 1 | ReadyForQuery I` {
		t.Errorf("upstream statements: %s", got)
	}
}
