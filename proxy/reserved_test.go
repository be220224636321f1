package proxy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"
)

// TestReservedStatementNames: a client cannot run the statements pgveil
// prepares upstream for its rewrites (they would take the client's raw
// values as the sealed ones), by SQL or by the protocol, even knowing the
// names from pg_prepared_statements.
func TestReservedStatementNames(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startSearchPathProxy(t)
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	pc := c.PgConn()
	if _, err := pc.Prepare(ctx, "mine", "INSERT INTO sp_conf.secrets (body) VALUES ($1)", nil); err != nil {
		t.Fatal(err)
	}
	var upstream string
	if err := c.QueryRow(ctx, "SELECT name FROM pg_prepared_statements WHERE name LIKE 'pgveil%'", pgx.QueryExecModeSimpleProtocol).Scan(&upstream); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(upstream, "pgveil_") || len(upstream) < len("pgveil_")+13 {
		t.Fatalf("upstream name %q: want pgveil_<12 hex>_<n>", upstream)
	}
	refused := func(what string, err error) {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "reserved") {
			t.Errorf("%s: %v; want 0A000 reserved", what, err)
		}
	}
	_, err = c.Exec(ctx, "EXECUTE "+upstream+"('raw-execute')", pgx.QueryExecModeSimpleProtocol)
	refused("SQL EXECUTE", err)
	refused("protocol Bind", pc.ExecPrepared(ctx, upstream, [][]byte{[]byte("raw-bind")}, nil, nil).Read().Err)
	_, err = pc.Prepare(ctx, "pgveil_mine", "SELECT 1", nil)
	refused("protocol Parse", err)
	_, err = c.Exec(ctx, "DEALLOCATE "+upstream, pgx.QueryExecModeSimpleProtocol)
	refused("SQL DEALLOCATE", err)
	// The session goes on, and its own statement still works.
	if err := pc.ExecPrepared(ctx, "mine", [][]byte{[]byte("sealed-value")}, nil, nil).Read().Err; err != nil {
		t.Fatal(err)
	}
	rows, err := adminConn(t).Query(ctx, "SELECT body FROM sp_conf.secrets")
	if err != nil {
		t.Fatal(err)
	}
	bodies, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil || len(bodies) != 1 {
		t.Fatalf("sp_conf.secrets: %d rows, %v; want only the sealed one", len(bodies), err)
	}
	if b := bodies[0]; len(b) < 29 || b[0] != 1 || strings.Contains(string(b), "raw-") {
		t.Fatalf("sp_conf.secrets holds %q", b)
	}
}
