package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Review of the SQL cursor support (proxy/cursor.go).

// cursorReviewSetup starts pgveil with one row of org 96 and returns it.
func cursorReviewSetup(t *testing.T) (*encProxy, context.Context, string) {
	const org, email = 96, "cursor-review-7731@example.org"
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, time.Minute)
	p.remember(email)
	app := connectPgx(t, ctx, p.url())
	if _, err := app.Exec(ctx, `INSERT INTO users (org_id, name, email, api_token) VALUES ($1, 'curv', $2, $3)`, org, email, int64(4242)); err != nil {
		t.Fatal(err)
	}
	return p, ctx, email
}

// fetchAll reads FETCH ALL FROM name: the field count and each row, as text.
func fetchAll(t *testing.T, ctx context.Context, conn *pgx.Conn, name string) (fields int, rows []string, err error) {
	t.Helper()
	r, err := conn.Query(ctx, "FETCH ALL FROM "+name, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return 0, nil, err
	}
	defer r.Close()
	fields = len(r.FieldDescriptions())
	for r.Next() {
		var vals []string
		for _, v := range r.RawValues() {
			vals = append(vals, string(v))
		}
		rows = append(rows, strings.Join(vals, "|"))
	}
	return fields, rows, r.Err()
}

// TestReviewCursorPreparedDeclare: a DECLARE that is a prepared statement
// (pgx's statement cache, psycopg 3 after prepare_threshold, asyncpg)
// runs again in a later transaction with a Bind and an Execute only.
// The proxy records a cursor at the DECLARE's Parse (applyEffects in
// handleParse), so the second transaction's cursor is unknown to it: the
// FETCH returns the ciphertext, and the tenant field pgveil appended to
// the cursor's query shows. Expected: the same plaintext both times.
func TestReviewCursorPreparedDeclare(t *testing.T) {
	p, ctx, email := cursorReviewSetup(t)
	cfg, err := pgx.ParseConfig(p.url())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	want := email + "|4242"
	for round := 1; round <= 2; round++ {
		if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		// With a parameter: pgx prepares it (once) and caches it.
		if _, err := conn.Exec(ctx, `DECLARE rc CURSOR FOR SELECT email, api_token FROM users WHERE org_id = $1 AND name = 'curv'`, int64(96)); err != nil {
			t.Fatalf("round %d: DECLARE: %v", round, err)
		}
		n, rows, err := fetchAll(t, ctx, conn, "rc")
		if err != nil {
			t.Fatalf("round %d: FETCH: %v", round, err)
		}
		if n != 2 || len(rows) != 1 || rows[0] != want {
			t.Errorf("round %d: FETCH ALL: %d fields, rows %q; want 2 fields, [%q]", round, n, rows, want)
		}
		if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReviewCursorParseOnlyDeclare: a DECLARE that is only prepared
// (Parse, never executed) changes the proxy's view of the cursor of that
// name: here it makes pgveil forget the live cursor over encrypted
// columns, whose FETCH then returns ciphertext and the hidden tenant
// field. Expected: the live cursor's plaintext.
func TestReviewCursorParseOnlyDeclare(t *testing.T) {
	p, ctx, email := cursorReviewSetup(t)
	conn := connectPgx(t, ctx, p.url())
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DECLARE pc CURSOR FOR SELECT email, api_token FROM users WHERE org_id = 96 AND name = 'curv'`); err != nil {
		t.Fatal(err)
	}
	// Prepared, not executed: the server's pc is still the one above.
	if _, err := conn.Prepare(ctx, "later", `DECLARE pc CURSOR FOR SELECT 'x'::text, 1::int8`); err != nil {
		t.Fatal(err)
	}
	n, rows, err := fetchAll(t, ctx, conn, "pc")
	if err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	if want := email + "|4242"; n != 2 || len(rows) != 1 || rows[0] != want {
		t.Errorf("FETCH ALL: %d fields, rows %q; want 2 fields, [%q]", n, rows, want)
	}
	conn.Exec(ctx, "ROLLBACK")
}

// TestReviewCursorFailedDeclare: a DECLARE the server rejects (the name
// is taken) still replaces the proxy's view of the cursor. After ROLLBACK
// TO SAVEPOINT the old cursor, over plain values, is read with the
// rejected DECLARE's map: pgveil takes the plain text for envelopes and
// closes the session (FATAL "could not decrypt"). Expected: the plain
// values. (With the roles swapped the client gets ciphertext and the
// hidden tenant field: see the second part.)
func TestReviewCursorFailedDeclare(t *testing.T) {
	p, ctx, email := cursorReviewSetup(t)
	const encrypted = `DECLARE fc CURSOR FOR SELECT email, api_token FROM users WHERE org_id = 96 AND name = 'curv'`
	const plain = `DECLARE fc CURSOR FOR SELECT 'plain@example.org'::text, 7::int8, 96::int8`

	t.Run("plain_read_as_encrypted", func(t *testing.T) {
		conn := connectPgx(t, ctx, p.url())
		defer conn.Close(ctx)
		for _, q := range []string{"BEGIN", plain, "SAVEPOINT s"} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if _, err := conn.Exec(ctx, encrypted); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("second DECLARE of fc: %v, want cursor already exists", err)
		}
		if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT s"); err != nil {
			t.Fatal(err)
		}
		n, rows, err := fetchAll(t, ctx, conn, "fc")
		if err != nil {
			t.Fatalf("FETCH of the surviving cursor: %v", err)
		}
		if n != 3 || len(rows) != 1 || rows[0] != "plain@example.org|7|96" {
			t.Errorf("FETCH ALL: %d fields, rows %q", n, rows)
		}
	})

	t.Run("encrypted_read_as_plain", func(t *testing.T) {
		conn := connectPgx(t, ctx, p.url())
		defer conn.Close(ctx)
		for _, q := range []string{"BEGIN", encrypted, "SAVEPOINT s"} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if _, err := conn.Exec(ctx, plain); err == nil {
			t.Fatal("second DECLARE of fc succeeded")
		}
		if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT s"); err != nil {
			t.Fatal(err)
		}
		n, rows, err := fetchAll(t, ctx, conn, "fc")
		if err != nil {
			t.Fatalf("FETCH of the surviving cursor: %v", err)
		}
		if want := email + "|4242"; n != 2 || len(rows) != 1 || rows[0] != want {
			t.Errorf("FETCH ALL: %d fields, rows %q; want 2 fields, [%q]", n, rows, want)
		}
	})
}

// TestReviewCursorFailedHoldDeclare: outside a transaction block, a WITH
// HOLD DECLARE of a taken name fails on the server, but its map replaces
// the live WITH HOLD cursor's (Hold entries are never swept).
func TestReviewCursorFailedHoldDeclare(t *testing.T) {
	p, ctx, email := cursorReviewSetup(t)
	conn := connectPgx(t, ctx, p.url())
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DECLARE hc CURSOR WITH HOLD FOR SELECT email, api_token FROM users WHERE org_id = 96 AND name = 'curv'`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DECLARE hc CURSOR WITH HOLD FOR SELECT 'x'::text, 1::int8`); err == nil {
		t.Fatal("second DECLARE of hc succeeded")
	}
	n, rows, err := fetchAll(t, ctx, conn, "hc")
	if err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	if want := email + "|4242"; n != 2 || len(rows) != 1 || rows[0] != want {
		t.Errorf("FETCH ALL: %d fields, rows %q; want 2 fields, [%q]", n, rows, want)
	}
}
