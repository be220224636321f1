package integration

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestEncCursors reads encrypted columns through SQL cursors (DECLARE …
// FETCH), as psycopg2's named cursors do for Django's iterator() and
// SQLAlchemy's yield_per: FETCH returns plaintext in the logical types,
// without the tenant column pgveil adds to the cursor's query; cursors
// WITH HOLD outlive their transaction; a cursor of the same name declared
// later over other columns is not decrypted; a binary cursor returns
// binary values; DECLARE and FETCH in one Query string; both protocols.
func TestEncCursors(t *testing.T) {
	const org = 97
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, time.Minute)
	app := connectPgx(t, ctx, p.url())

	type user struct {
		email, birth string
		token        int64
	}
	users := []user{
		{"cursor-one-4471@example.org", "1971-01-02", 12345678},
		{"cursor-two-ü-4472@example.org", "1999-12-31", -9223372036854775808},
		{"cursor-three-4473@example.org", "2024-02-29", 7},
		{"cursor-four-4474@example.org", "1950-06-15", 9223372036854775807},
		{"cursor-five-4475@example.org", "2000-01-01", 0},
	}
	for _, u := range users {
		p.remember(u.email)
		if _, err := app.Exec(ctx, `INSERT INTO users (org_id, name, email, birth_date, api_token) VALUES ($1, 'cur', $2, $3, $4)`, org, u.email, u.birth, u.token); err != nil {
			t.Fatal(err)
		}
	}
	// A row of the other tenant, which the cursors below leave out.
	p.remember("cursor-other-tenant-4479@example.org")
	if _, err := app.Exec(ctx, `INSERT INTO users (org_id, name, email) VALUES ($1, 'cur', $2)`, org+1000, "cursor-other-tenant-4479@example.org"); err != nil {
		t.Fatal(err)
	}
	want := func(from, to int) string {
		var b strings.Builder
		for _, u := range users[from:to] {
			fmt.Fprintf(&b, "%s|%s|%d\n", u.email, u.birth, u.token)
		}
		return b.String()
	}
	const declare = `DECLARE %s CURSOR FOR SELECT email, birth_date, api_token FROM users WHERE org_id = %d AND name = 'cur' ORDER BY id`

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec} {
		t.Run(mode.String(), func(t *testing.T) {
			conn := connectMode(t, ctx, p.url(), mode)
			fetch := func(q string) string {
				t.Helper()
				rows, err := conn.Query(ctx, q)
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				defer rows.Close()
				if n := len(rows.FieldDescriptions()); n != 3 {
					t.Errorf("%s: %d fields, want 3 (the tenant pgveil adds must not show)", q, n)
				}
				var b strings.Builder
				for rows.Next() {
					var email string
					var birth time.Time
					var token int64
					if err := rows.Scan(&email, &birth, &token); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
					fmt.Fprintf(&b, "%s|%s|%d\n", email, birth.Format("2006-01-02"), token)
				}
				if err := rows.Err(); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				return b.String()
			}
			exec := func(q string) {
				t.Helper()
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}

			// In parts, then the rest, then nothing; MOVE skips.
			exec("BEGIN")
			exec(fmt.Sprintf(declare, "c1", org))
			if got := fetch("FETCH 2 FROM c1"); got != want(0, 2) {
				t.Errorf("FETCH 2: got\n%swant\n%s", got, want(0, 2))
			}
			exec("MOVE 1 IN c1")
			if got := fetch("FETCH ALL FROM c1"); got != want(3, 5) {
				t.Errorf("FETCH ALL: got\n%swant\n%s", got, want(3, 5))
			}
			if got := fetch("FETCH NEXT FROM c1"); got != "" {
				t.Errorf("FETCH past the end: %q", got)
			}
			exec("CLOSE c1")
			exec("COMMIT")

			// WITH HOLD: read after COMMIT.
			exec("BEGIN")
			exec(fmt.Sprintf(strings.Replace(declare, "CURSOR", "CURSOR WITH HOLD", 1), "held", org))
			exec("COMMIT")
			if got := fetch("FETCH FORWARD 10 FROM held"); got != want(0, 5) {
				t.Errorf("WITH HOLD after COMMIT: got\n%swant\n%s", got, want(0, 5))
			}
			exec("CLOSE held")

			// The name again, in a new transaction, over plaintext of the
			// same shape: returned as it is, not taken for ciphertext.
			exec("BEGIN")
			exec(fmt.Sprintf(declare, "c1", org))
			exec("COMMIT")
			exec("BEGIN")
			exec(`DECLARE c1 CURSOR FOR SELECT 'plain@example.org'::text, '2001-02-03'::date, 42::int8`)
			if got := fetch("FETCH ALL FROM c1"); got != "plain@example.org|2001-02-03|42\n" {
				t.Errorf("a later cursor of the same name: got %q", got)
			}
			exec("ROLLBACK")
		})
	}

	t.Run("one_query_string", func(t *testing.T) {
		results, err := app.PgConn().Exec(ctx, "BEGIN; "+fmt.Sprintf(declare, "c2", org)+"; FETCH 3 FROM c2; CLOSE c2; COMMIT").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(results) != 5 {
			t.Fatalf("%d results, want 5", len(results))
		}
		var b strings.Builder
		for _, r := range results[2].Rows {
			fmt.Fprintf(&b, "%s|%s|%s\n", r[0], r[1], r[2])
		}
		if b.String() != want(0, 3) || len(results[2].FieldDescriptions) != 3 {
			t.Errorf("FETCH in one Query string: %d fields, got\n%swant\n%s", len(results[2].FieldDescriptions), b.String(), want(0, 3))
		}
	})

	t.Run("binary_cursor", func(t *testing.T) {
		results, err := app.PgConn().Exec(ctx, fmt.Sprintf("BEGIN; DECLARE cb BINARY CURSOR FOR SELECT email, api_token FROM users WHERE org_id = %d AND name = 'cur' ORDER BY id; FETCH 1 FROM cb; COMMIT", org)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		r := results[2]
		if len(r.Rows) != 1 || len(r.FieldDescriptions) != 2 || r.FieldDescriptions[0].Format != pgx.BinaryFormatCode {
			t.Fatalf("binary FETCH: %d rows, fields %+v", len(r.Rows), r.FieldDescriptions)
		}
		if string(r.Rows[0][0]) != users[0].email || len(r.Rows[0][1]) != 8 || int64(binary.BigEndian.Uint64(r.Rows[0][1])) != users[0].token {
			t.Errorf("binary FETCH: got %q %x", r.Rows[0][0], r.Rows[0][1])
		}
	})

	t.Run("psql", func(t *testing.T) {
		script := "BEGIN;\n" + fmt.Sprintf(declare, "pc", org) + ";\nFETCH 2 FROM pc;\nFETCH 1 FROM pc;\nCOMMIT;\n"
		res := runPsql(t, ctx, p.url(), []byte(script), nil, "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1")
		if res.Code != 0 {
			t.Fatalf("psql exited %d: %s", res.Code, res.Stderr)
		}
		if res.Stdout != want(0, 3) {
			t.Errorf("psql: got\n%swant\n%s", res.Stdout, want(0, 3))
		}
	})

	verifyAtRest(t, context.Background(), []string{users[0].email, users[1].email})
}
