package integration

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestEncCaseUpdate: an encrypted column set to a CASE whose results are
// parameters, literals, NULL or the column itself (Django's bulk_update:
// SET phone = CAST(CASE WHEN id = … THEN … END AS varchar(64))), or to
// COALESCE($1, col) (a partial update). pgveil
// seals each result under the tenant (named, or looked up) and sets the
// blind index by the same CASE. Checked in every pgx exec mode: the values
// read back through pgveil, the rows found by the new emails (so each
// blind index is right, the kept one too), the values at rest not
// plaintext, and the refusals (two tenants, a result it cannot seal) change
// nothing.
func TestEncCaseUpdate(t *testing.T) {
	const orgA, orgB = 131, 1131
	p := startEncProxy(t, encOrgs(orgA, 1)...)
	ctx := testCtx(t, 2*time.Minute)
	setup := connectPgx(t, ctx, p.url())
	su := superConn(t, ctx)

	insert := func(t *testing.T, org int64, name, email string) int64 {
		t.Helper()
		p.remember(email)
		var id int64
		if err := setup.QueryRow(ctx, `INSERT INTO users (org_id, name, email, phone) VALUES ($1, $2, $3, $4) RETURNING id`, org, name, email, "ph").Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	read := func(id int64) string {
		var org int64
		var email, phone pgtypeText
		if err := setup.QueryRow(ctx, `SELECT org_id, email, phone FROM users WHERE id = $1`, id).Scan(&org, &email, &phone); err != nil {
			return fmt.Sprintf("reading user %d back: %v", id, err)
		}
		return fmt.Sprintf("%d|%s|%s", org, email, phone)
	}
	find := func(t *testing.T, email string) []int64 {
		t.Helper()
		rows, err := setup.Query(ctx, `SELECT id FROM users WHERE email = $1 ORDER BY id`, email)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}

	for i, m := range execModes {
		mode := m.mode
		t.Run(m.name, func(t *testing.T) {
			conn := connectMode(t, ctx, p.url(), mode)
			tag := fmt.Sprintf("case-%d", i)
			a := insert(t, orgA, tag, tag+"-a@example.org")
			b := insert(t, orgA, tag, tag+"-b@example.org")
			c := insert(t, orgA, tag, tag+"-c@example.org")
			x := insert(t, orgB, tag+"-x", tag+"-x@example.org")
			ea, eb := tag+"-A2@Example.org", tag+"-b2@example.org"
			pa, pb := tag+"-ph-a ✓", tag+` ph-b O'Brien \ 555`
			p.remember(ea, eb, pa, pb)

			// The tenant looked up; c keeps its email (ELSE the column) and
			// gets a NULL phone.
			ct, err := conn.Exec(ctx, `UPDATE users SET email = CASE WHEN id = $1 THEN $2 WHEN id = $3 THEN $4 ELSE email END,
				phone = (CASE id WHEN $1 THEN $5 WHEN $3 THEN $6 ELSE NULL END)::varchar(64)
				WHERE id IN ($1, $3, $7)`, a, ea, b, eb, pa, pb, c)
			if err != nil || ct.RowsAffected() != 3 {
				t.Fatalf("UPDATE … CASE: %v, %d rows", err, ct.RowsAffected())
			}
			for id, want := range map[int64]string{
				a: fmt.Sprintf("%d|%s|%s", orgA, ea, pa),
				b: fmt.Sprintf("%d|%s|%s", orgA, eb, pb),
				c: fmt.Sprintf("%d|%s|<NULL>", orgA, tag+"-c@example.org"),
			} {
				if got := read(id); got != want {
					t.Errorf("user %d: %s, want %s", id, got, want)
				}
			}
			for email, want := range map[string]int64{" " + strings.ToLower(ea): a, strings.ToUpper(eb): b, tag + "-C@EXAMPLE.ORG": c} {
				if got := find(t, email); len(got) != 1 || got[0] != want {
					t.Errorf("rows with email %q: %v, want [%d]", email, got, want)
				}
			}
			if got := find(t, tag+"-a@example.org"); len(got) != 0 {
				t.Errorf("rows with a's old email: %v", got)
			}

			// At rest: envelopes and blind indexes, no plaintext.
			var email, phone, bidx []byte
			if err := su.QueryRow(ctx, `SELECT email, phone, email_bidx FROM users WHERE id = $1`, a).Scan(&email, &phone, &bidx); err != nil {
				t.Fatal(err)
			}
			if len(bidx) != 32 || bytes.Contains(email, []byte(ea)) || bytes.Contains(phone, []byte(pa)) || len(phone) <= len(pa) {
				t.Errorf("user %d at rest: email %q, phone %q, email_bidx %x", a, email, phone, bidx)
			}

			// The tenant named, literals in the text.
			lit := tag + "-lit"
			p.remember(lit)
			ct, err = conn.Exec(ctx, fmt.Sprintf(`UPDATE users SET phone = CASE WHEN id = %d THEN '%s' ELSE phone END WHERE org_id = %d AND id IN (%d, %d)`, b, lit, orgA, a, b))
			if err != nil || ct.RowsAffected() != 2 {
				t.Fatalf("UPDATE … CASE with literals: %v, %d rows", err, ct.RowsAffected())
			}
			if got, want := read(b), fmt.Sprintf("%d|%s|%s", orgA, eb, lit); got != want {
				t.Errorf("user %d: %s, want %s", b, got, want)
			}
			if got, want := read(a), fmt.Sprintf("%d|%s|%s", orgA, ea, pa); got != want {
				t.Errorf("user %d (ELSE phone): %s, want %s", a, got, want)
			}

			// COALESCE($n, col), a partial update (sqlc's narg): NULL keeps
			// the value and its blind index.
			pc := tag + "-ph-c"
			p.remember(pc)
			ct, err = conn.Exec(ctx, `UPDATE users SET email = COALESCE($1, email), phone = COALESCE($2::text, phone) WHERE id = $3`, nil, pc, c)
			if err != nil || ct.RowsAffected() != 1 {
				t.Fatalf("UPDATE … COALESCE: %v, %d rows", err, ct.RowsAffected())
			}
			ec := tag + "-c2@example.org"
			p.remember(ec)
			if got, want := read(c), fmt.Sprintf("%d|%s|%s", orgA, tag+"-c@example.org", pc); got != want {
				t.Errorf("user %d after COALESCE(NULL, email): %s, want %s", c, got, want)
			}
			if got := find(t, strings.ToUpper(tag+"-c@example.org")); len(got) != 1 || got[0] != c {
				t.Errorf("rows with c's kept email: %v, want [%d]", got, c)
			}
			if _, err := conn.Exec(ctx, `UPDATE users SET email = COALESCE($1, email), phone = COALESCE($2::text, phone) WHERE id = $3`, ec, nil, c); err != nil {
				t.Fatalf("UPDATE … COALESCE: %v", err)
			}
			if got, want := read(c), fmt.Sprintf("%d|%s|%s", orgA, ec, pc); got != want {
				t.Errorf("user %d after COALESCE($1, email): %s, want %s", c, got, want)
			}
			if got := find(t, " "+ec); len(got) != 1 || got[0] != c {
				t.Errorf("rows with c's new email: %v, want [%d]", got, c)
			}

			// An upsert that keeps what the new row lacks, into contacts
			// (note is encrypted into a text column: the cast names text).
			ce, n1, n2 := tag+"-contact@example.org", tag+"-note-1", tag+"-note-2 ✓"
			p.remember(ce, n1, n2)
			var cid int64
			if err := conn.QueryRow(ctx, `INSERT INTO contacts (org_id, email, note) VALUES ($1, $2, $3) RETURNING id`, orgA, ce, n1).Scan(&cid); err != nil {
				t.Fatal(err)
			}
			ct, err = conn.Exec(ctx, `INSERT INTO contacts (id, org_id, email, note) VALUES ($1, $2, $3, $4)
				ON CONFLICT (id) DO UPDATE SET email = COALESCE(EXCLUDED.email, contacts.email), note = (COALESCE(EXCLUDED.note, contacts.note))::varchar`, cid, orgA, nil, n2)
			if err != nil || ct.RowsAffected() != 1 {
				t.Fatalf("upsert … COALESCE(EXCLUDED.col, col): %v, %d rows", err, ct.RowsAffected())
			}
			var gotEmail, gotNote string
			if err := setup.QueryRow(ctx, `SELECT email, note FROM contacts WHERE email = $1`, strings.ToUpper(ce)).Scan(&gotEmail, &gotNote); err != nil || gotEmail != ce || gotNote != n2 {
				t.Errorf("contact after the upsert: %q, %q, %v; want %q, %q", gotEmail, gotNote, err, ce, n2)
			}
			var atRest string
			if err := su.QueryRow(ctx, `SELECT note FROM contacts WHERE id = $1`, cid).Scan(&atRest); err != nil || !strings.HasPrefix(atRest, "pgv1:") || strings.Contains(atRest, n2) {
				t.Errorf("contact's note at rest: %q, %v", atRest, err)
			}

			// Rows of two tenants: refused; a result pgveil cannot seal:
			// refused. Nothing changes.
			p.remember(tag+"-refused", tag+"-R")
			_, err = conn.Exec(ctx, `UPDATE users SET phone = CASE WHEN id = $1 THEN $2 ELSE phone END WHERE id IN ($1, $3)`, a, tag+"-refused", x)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "more than one tenant") {
				t.Errorf("UPDATE … CASE over two tenants: %v, want 0A000 naming more than one tenant", err)
			}
			_, err = conn.Exec(ctx, `UPDATE users SET phone = CASE WHEN id = $1 THEN lower($2) END WHERE id = $1`, a, tag+"-R")
			if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "CASE result") || !strings.Contains(pe.Message, "public.users.phone") {
				t.Errorf("UPDATE … CASE with an expression: %v, want 0A000 naming the CASE result and public.users.phone", err)
			}
			if got, want := read(a), fmt.Sprintf("%d|%s|%s", orgA, ea, pa); got != want {
				t.Errorf("user %d after the refusals: %s, want %s", a, got, want)
			}
			if got, want := read(x), fmt.Sprintf("%d|%s|ph", orgB, tag+"-x@example.org"); got != want {
				t.Errorf("user %d after the refusals: %s, want %s", x, got, want)
			}
		})
	}
}
