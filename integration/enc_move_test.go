package integration

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestEncTenantMove: an UPDATE that sets a row's tenant (org_id) and keeps
// some of its encrypted values would leave them sealed under the old
// tenant's key, unreadable in their new row (PV001). pgveil checks the
// rows first and refuses such a move, naming the columns; it lets through
// a move of rows whose kept columns are NULL, an UPDATE that names the
// tenant the rows already have (Django's save(update_fields=['phone',
// 'org'])), and a move that writes every encrypted column anew. In every
// pgx exec mode and with psql; the refused rows still open.
func TestEncTenantMove(t *testing.T) {
	const orgA, orgB = 141, 1141
	p := startEncProxy(t, encOrgs(orgA, 1)...)
	ctx := testCtx(t, 2*time.Minute)
	setup := connectPgx(t, ctx, p.url())

	insert := func(t *testing.T, org int64, name string, email *string) int64 {
		t.Helper()
		var id int64
		if err := setup.QueryRow(ctx, `INSERT INTO users (org_id, name, email) VALUES ($1, $2, $3) RETURNING id`, org, name, email).Scan(&id); err != nil {
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
	refusedMove := func(t *testing.T, err error, what string) {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "would move rows of public.users") ||
			!strings.Contains(pe.Message, "email, phone, ssn, birth_date, api_token") {
			t.Errorf("%s: %v, want 0A000 refusing the move and naming the columns", what, err)
		}
	}

	for i, m := range execModes {
		mode := m.mode
		t.Run(m.name, func(t *testing.T) {
			conn := connectMode(t, ctx, p.url(), mode)
			tag := fmt.Sprintf("move-%d", i)
			email := tag + "@example.org"
			p.remember(email)
			a := insert(t, orgA, tag, &email)
			empty := insert(t, orgA, tag+"-empty", nil)

			// A row with an encrypted value: the move is refused.
			_, err := conn.Exec(ctx, `UPDATE users SET org_id = $1 WHERE id = $2`, orgB, a)
			refusedMove(t, err, "moving a row with an email")
			_, err = conn.Exec(ctx, `UPDATE users SET org_id = $1 WHERE name = $2`, orgB, tag+"-empty")
			if err != nil {
				t.Errorf("moving a row without encrypted values: %v", err)
			}
			_, err = conn.Exec(ctx, `UPDATE users SET org_id = $1 WHERE name LIKE $2`, orgB, tag+"%")
			refusedMove(t, err, "moving both rows")
			if got, want := read(a), fmt.Sprintf("%d|%s|<NULL>", orgA, email); got != want {
				t.Errorf("after the refused moves: %s, want %s", got, want)
			}
			if got, want := read(empty), fmt.Sprintf("%d|<NULL>|<NULL>", orgB); got != want {
				t.Errorf("the row without encrypted values: %s, want %s", got, want)
			}

			// The tenant the row has, named in SET with a new phone.
			phone := tag + "-phone"
			p.remember(phone)
			ct, err := conn.Exec(ctx, `UPDATE users SET phone = $1, org_id = $2 WHERE id = $3`, phone, orgA, a)
			if err != nil || ct.RowsAffected() != 1 {
				t.Fatalf("UPDATE naming the row's own tenant: %v, %d rows", err, ct.RowsAffected())
			}
			if got, want := read(a), fmt.Sprintf("%d|%s|%s", orgA, email, phone); got != want {
				t.Errorf("after naming the tenant: %s, want %s", got, want)
			}

			// Every encrypted column written anew: the row moves, and opens.
			moved := tag + "-moved@example.org"
			p.remember(moved)
			ct, err = conn.Exec(ctx, `UPDATE users SET org_id = $1, email = $2, phone = $3, ssn = NULL, birth_date = NULL, api_token = NULL WHERE id = $4`, orgB, moved, phone, a)
			if err != nil || ct.RowsAffected() != 1 {
				t.Fatalf("moving with every column written: %v, %d rows", err, ct.RowsAffected())
			}
			if got, want := read(a), fmt.Sprintf("%d|%s|%s", orgB, moved, phone); got != want {
				t.Errorf("after the move: %s, want %s", got, want)
			}
		})
	}

	t.Run("psql", func(t *testing.T) {
		email := "move-psql@example.org"
		p.remember(email)
		a := insert(t, orgA, "move-psql", &email)
		res := runPsql(t, ctx, p.url(), nil, nil, "-X", "-c", fmt.Sprintf("UPDATE users SET org_id = %d WHERE id = %d", orgB, a))
		if !strings.Contains(res.Stderr, "would move rows of public.users") {
			t.Errorf("psql move: %q", res.Stderr)
		}
		// In a query string with other statements pgveil cannot read the
		// rows first: refused.
		res = runPsql(t, ctx, p.url(), nil, nil, "-X", "-c", fmt.Sprintf("BEGIN; UPDATE users SET org_id = %d WHERE id = %d; COMMIT", orgB, a))
		if !strings.Contains(res.Stderr, "cannot check that this UPDATE of public.users moves no row") {
			t.Errorf("psql move in a longer string: %q", res.Stderr)
		}
		if got, want := read(a), fmt.Sprintf("%d|%s|<NULL>", orgA, email); got != want {
			t.Errorf("after the refused moves: %s, want %s", got, want)
		}
	})

	m := scrape(t, p.Proxy)
	for outcome, want := range map[string]float64{"moves": 5*2 + 1, "stays": 5 * 2} {
		if got := m.get(`pgveil_tenant_lookups_total{outcome="` + outcome + `"}`); got != want {
			t.Errorf("pgveil_tenant_lookups_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}
