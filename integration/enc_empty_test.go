package integration

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestEncEmptyNotNull: an empty string is not NULL, in either direction,
// on a session's first statements (before pgveil's buffers have held
// anything: a zero-length slice of an unallocated buffer is nil, which the
// wire writers send as NULL). A plain parameter passed through a rewritten
// statement, and an encrypted empty value read back, in every exec mode.
func TestEncEmptyNotNull(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9980)
	su := superConn(t, ctx)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeSimpleProtocol} {
		email := "empty-" + mode.String() + "@example.org"
		p.remember(email)
		setup := connectPgx(t, ctx, p.url())
		if _, err := setup.Exec(ctx, `INSERT INTO users (org_id, name, email, phone) VALUES (9980, 'n', $1, 'p')`, email); err != nil {
			t.Fatal(err)
		}
		setup.Close(ctx)

		// A fresh session whose first statement passes '' through.
		c := connectPgx(t, ctx, p.url())
		if _, err := c.Exec(ctx, `UPDATE users SET name = $1, phone = $2 WHERE email = $3`, mode, "", "", email); err != nil {
			t.Fatalf("%v: %v", mode, err)
		}
		c.Close(ctx)
		var name *string
		var phoneNull bool
		if err := su.QueryRow(ctx, `SELECT name, phone IS NULL FROM users WHERE org_id = 9980`).Scan(&name, &phoneNull); err != nil {
			t.Fatalf("%v: %v", mode, err)
		}
		if name == nil || *name != "" || phoneNull {
			t.Errorf("%v: the server holds name %v, phone NULL %v; want '' and a sealed ''", mode, name, phoneNull)
		}
		su.Exec(ctx, `DELETE FROM users WHERE org_id = 9980`)

		// A fresh session whose first row read opens ''.
		setup = connectPgx(t, ctx, p.url())
		if _, err := setup.Exec(ctx, `INSERT INTO users (org_id, name, email, phone) VALUES (9980, 'n', $1, '')`, email); err != nil {
			t.Fatal(err)
		}
		setup.Close(ctx)
		c = connectPgx(t, ctx, p.url())
		var phone *string
		if err := c.QueryRow(ctx, `SELECT phone FROM users WHERE email = $1`, mode, email).Scan(&phone); err != nil {
			t.Fatalf("%v: %v", mode, err)
		}
		if phone == nil || *phone != "" {
			t.Errorf("%v: read back %v, want ''", mode, phone)
		}
		c.Close(ctx)
		su.Exec(ctx, `DELETE FROM users WHERE org_id = 9980`)
	}
}
