package integration

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestEncBlindIndexWrittenBack: a row read with its blind indexes (SELECT
// *: ActiveRecord without ignored_columns, Knex's first()) and written
// back writes them beside their columns. pgveil puts the index it
// computes from the column's value there and does not use the client's
// bytes: here deliberately wrong ones, in every pgx exec mode, by INSERT
// and UPDATE. The rows are found by their emails, and what is at rest is
// pgveil's index, not the client's.
func TestEncBlindIndexWrittenBack(t *testing.T) {
	const org = 151
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, 2*time.Minute)
	setup := connectPgx(t, ctx, p.url())
	su := superConn(t, ctx)
	bogus := bytes.Repeat([]byte{0xEE}, 32)

	atRest := func(t *testing.T, id int64) []byte {
		t.Helper()
		var bidx []byte
		if err := su.QueryRow(ctx, `SELECT email_bidx FROM users WHERE id = $1`, id).Scan(&bidx); err != nil {
			t.Fatal(err)
		}
		return bidx
	}
	find := func(t *testing.T, email string) int64 {
		t.Helper()
		var id int64
		if err := setup.QueryRow(ctx, `SELECT id FROM users WHERE email = $1`, email).Scan(&id); err != nil {
			t.Fatalf("finding %q: %v", email, err)
		}
		return id
	}

	for i, m := range execModes {
		mode := m.mode
		t.Run(m.name, func(t *testing.T) {
			conn := connectMode(t, ctx, p.url(), mode)
			first, copied, moved := fmt.Sprintf("wb-%d@example.org", i), fmt.Sprintf("wb-%d-copy@example.org", i), fmt.Sprintf("wb-%d-new@example.org", i)
			p.remember(first, copied, moved)
			var id int64
			if err := conn.QueryRow(ctx, `INSERT INTO users (org_id, name, email) VALUES ($1, 'wb', $2) RETURNING id`, org, first).Scan(&id); err != nil {
				t.Fatal(err)
			}
			// The row as SELECT * gives it, blind index included.
			var name string
			var bidx []byte
			if err := conn.QueryRow(ctx, `SELECT name, email_bidx FROM users WHERE id = $1`, id).Scan(&name, &bidx); err != nil {
				t.Fatal(err)
			}
			if len(bidx) != 32 {
				t.Fatalf("email_bidx read through pgveil: %x", bidx)
			}

			// Inserted again with another email and its old (or a wrong) index.
			var cid int64
			if err := conn.QueryRow(ctx, `INSERT INTO users (org_id, name, email, email_bidx) VALUES ($1, $2, $3, $4) RETURNING id`,
				org, name, copied, bogus).Scan(&cid); err != nil {
				t.Fatalf("INSERT with the blind index beside its column: %v", err)
			}
			if got := find(t, " "+copied); got != cid {
				t.Errorf("the copy found by its email: %d, want %d", got, cid)
			}
			if got := atRest(t, cid); bytes.Equal(got, bogus) || bytes.Equal(got, bidx) || len(got) != 32 {
				t.Errorf("the copy's email_bidx at rest: %x", got)
			}

			// Updated with the index it was read with.
			if ct, err := conn.Exec(ctx, `UPDATE users SET email_bidx = $1, email = $2 WHERE id = $3 AND org_id = $4`, bidx, moved, id, org); err != nil || ct.RowsAffected() != 1 {
				t.Fatalf("UPDATE with the blind index beside its column: %v", err)
			}
			if got := find(t, moved); got != id {
				t.Errorf("the row found by its new email: %d, want %d", got, id)
			}
			if got := atRest(t, id); bytes.Equal(got, bidx) {
				t.Errorf("the old email_bidx is still at rest after the email changed")
			}
		})
	}
}
