package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestEncTenantLookup: an UPDATE of users (key_context org_id) that writes
// encrypted columns without naming the tenant, as ORMs write it (UPDATE …
// SET email = $1 WHERE id = $2). pgveil looks the tenant up on the
// session's connection, seals under that tenant's key and sends the
// UPDATE guarded by org_id = <that tenant>. Checked in every pgx exec mode,
// in a pipeline (Batch), inside a transaction that changed the row's
// tenant, with the WHERE on a blind-indexed column, with no row matched
// (UPDATE 0), with rows of two tenants (refused, nothing changed), with a
// WHERE the server rejects (its error, the session goes on), and with psql
// (simple protocol, literals). Every value is read back through pgveil,
// which checks the envelope's tenant against the row's: a value sealed
// under another tenant's key would fail to open.
func TestEncTenantLookup(t *testing.T) {
	const orgA, orgB = 121, 1121
	p := startEncProxy(t, encOrgs(orgA, 1)...)
	ctx := testCtx(t, 2*time.Minute)
	setup := connectPgx(t, ctx, p.url())

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
		var email, phone, birth, token pgtypeText
		if err := setup.QueryRow(ctx, `SELECT org_id, email, phone, birth_date, api_token FROM users WHERE id = $1`, id).Scan(&org, &email, &phone, &birth, &token); err != nil {
			return fmt.Sprintf("reading user %d back: %v", id, err)
		}
		return fmt.Sprintf("%d|%s|%s|%s|%s", org, email, phone, birth, token)
	}

	for i, m := range execModes {
		mode := m.mode
		t.Run(m.name, func(t *testing.T) {
			conn := connectMode(t, ctx, p.url(), mode)
			tag := fmt.Sprintf("lookup-%d", i)
			a := insert(t, orgA, tag, tag+"-a@example.org")
			b := insert(t, orgB, tag, tag+"-b@example.org")

			// A statement pgveil binds as it came, with as many parameters:
			// its Bind must not be where the next conversion writes (an
			// UPDATE after it read back NULL or a blind index for its
			// parameters, found by the ActiveRecord suite).
			var wo int64
			var we string
			if err := conn.QueryRow(ctx, `SELECT org_id, email FROM users WHERE id = $1 LIMIT $2`, a, 1).Scan(&wo, &we); err != nil {
				t.Fatal(err)
			}
			warm := tag + "-warm@example.org"
			p.remember(warm)
			if ct, err := conn.Exec(ctx, `UPDATE users SET email = $1 WHERE email = $2`, warm, tag+"-a@example.org"); err != nil || ct.RowsAffected() != 1 {
				t.Fatalf("UPDATE after a pass-through Bind: %v, %d rows", err, ct.RowsAffected())
			}
			if got := read(a); got != fmt.Sprintf("%d|%s|ph|<NULL>|<NULL>", orgA, warm) {
				t.Errorf("after a pass-through Bind: %s", got)
			}

			// By primary key, twice (a cached statement the second time).
			for round, org := range []int64{orgA, orgA} {
				email := fmt.Sprintf("%s-new%d-ä@example.org", tag, round)
				p.remember(email)
				ct, err := conn.Exec(ctx, `UPDATE users SET email = $1, birth_date = $2, api_token = $3 WHERE id = $4`, email, "1999-12-31", int64(12345678), a)
				if err != nil {
					t.Fatalf("UPDATE by id: %v", err)
				}
				if ct.RowsAffected() != 1 {
					t.Fatalf("UPDATE by id: %d rows", ct.RowsAffected())
				}
				if got, want := read(a), fmt.Sprintf("%d|%s|ph|1999-12-31|12345678", org, email); got != want {
					t.Errorf("after UPDATE by id: %s, want %s", got, want)
				}
			}

			// WHERE on the blind-indexed email, RETURNING the new value.
			newB := tag + "-b2@example.org"
			p.remember(newB)
			var ret string
			if err := conn.QueryRow(ctx, `UPDATE users SET email = $1 WHERE email = $2 RETURNING email`, newB, strings.ToUpper(tag+"-b@example.org")).Scan(&ret); err != nil {
				t.Fatalf("UPDATE by email: %v", err)
			}
			if ret != newB || read(b) != fmt.Sprintf("%d|%s|ph|<NULL>|<NULL>", orgB, newB) {
				t.Errorf("UPDATE by email: returned %q, row %s", ret, read(b))
			}

			// UPDATE ONLY: the lookup reads FROM ONLY users.
			only := tag + "-ph-only"
			p.remember(only)
			if ct, err := conn.Exec(ctx, `UPDATE ONLY users SET phone = $1 WHERE id = $2`, only, b); err != nil || ct.RowsAffected() != 1 {
				t.Fatalf("UPDATE ONLY: %v", err)
			}
			if got := read(b); !strings.Contains(got, "|"+only+"|") {
				t.Errorf("after UPDATE ONLY: %s", got)
			}
			if _, err := conn.Exec(ctx, `UPDATE users SET phone = $1 WHERE id = $2 AND org_id = $3`, "ph", b, orgB); err != nil {
				t.Fatal(err)
			}

			// No row: UPDATE 0.
			p.remember(tag+"-ph-none", tag+"-ph-both", tag+"-ph-x")
			ct, err := conn.Exec(ctx, `UPDATE users SET phone = $1 WHERE id = $2`, tag+"-ph-none", int64(-1))
			if err != nil || ct.RowsAffected() != 0 {
				t.Errorf("UPDATE of no row: %v, %d rows", err, ct.RowsAffected())
			}

			// Rows of two tenants: refused, nothing changed.
			_, err = conn.Exec(ctx, `UPDATE users SET phone = $1 WHERE name = $2`, tag+"-ph-both", tag)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "more than one tenant") {
				t.Errorf("UPDATE over two tenants: %v, want 0A000 naming more than one tenant", err)
			}
			if !strings.Contains(read(a), "|ph|") || !strings.Contains(read(b), "|ph|") {
				t.Errorf("a refused UPDATE changed rows: %s / %s", read(a), read(b))
			}

			// A WHERE the server rejects: its error, and the session goes on.
			_, err = conn.Exec(ctx, `UPDATE users SET phone = $1 WHERE nosuch = $2`, tag+"-ph-x", 1)
			if !errors.As(err, &pe) || pe.Code != "42703" {
				t.Errorf("UPDATE with a bad WHERE: %v, want 42703", err)
			}
			var one int
			if err := conn.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil || one != 1 {
				t.Errorf("the session after the error: %v", err)
			}

			// In a transaction that moved the row to the other tenant: the
			// lookup sees the transaction's own change.
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// (A value sealed under the old tenant would no longer open.)
			if _, err := tx.Exec(ctx, `UPDATE users SET org_id = $1, email = NULL, phone = NULL, birth_date = NULL, api_token = NULL WHERE id = $2`, orgB, a); err != nil {
				t.Fatal(err)
			}
			moved := tag + "-moved@example.org"
			p.remember(moved)
			if _, err := tx.Exec(ctx, `UPDATE users SET email = $1 WHERE id = $2`, moved, a); err != nil {
				t.Fatalf("UPDATE after moving tenants: %v", err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if got := read(a); !strings.HasPrefix(got, fmt.Sprintf("%d|%s|", orgB, moved)) {
				t.Errorf("after the move: %s", got)
			}

			// A pipeline of lookups (pgx Batch).
			if mode != pgx.QueryExecModeSimpleProtocol {
				var batch pgx.Batch
				for k := 0; k < 3; k++ {
					v := fmt.Sprintf("%s-batch%d@example.org", tag, k)
					p.remember(v)
					batch.Queue(`UPDATE users SET email = $1 WHERE id = $2`, v, b)
				}
				batch.Queue(`SELECT email FROM users WHERE id = $1`, b)
				br := conn.SendBatch(ctx, &batch)
				for k := 0; k < 3; k++ {
					if _, err := br.Exec(); err != nil {
						t.Fatalf("batch UPDATE %d: %v", k, err)
					}
				}
				var last string
				if err := br.QueryRow().Scan(&last); err != nil || last != tag+"-batch2@example.org" {
					t.Errorf("after the batch: %q, %v", last, err)
				}
				if err := br.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}

	// The lookup of an UPDATE with parameters is prepared once per session:
	// repeated, it adds no statement; DISCARD ALL drops it with the
	// client's, and the next lookup prepares it again.
	t.Run("prepared_once", func(t *testing.T) {
		cfg, err := pgx.ParseConfig(p.url())
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		id := insert(t, orgA, "lookup-once", "lookup-once@example.org")
		lookups := func() int {
			var n int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT DISTINCT users.org_id FROM %'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		update := func(k int) {
			t.Helper()
			v := fmt.Sprintf("lookup-once-%d-ph", k)
			p.remember(v)
			if ct, err := conn.Exec(ctx, `UPDATE users SET phone = $1 WHERE id = $2`, v, id); err != nil || ct.RowsAffected() != 1 {
				t.Fatalf("UPDATE %d: %v", k, err)
			}
			if got := read(id); !strings.Contains(got, "|"+v+"|") {
				t.Errorf("UPDATE %d: read back %s", k, got)
			}
		}
		for k := 0; k < 5; k++ {
			update(k)
		}
		if n := lookups(); n != 1 {
			t.Errorf("after 5 lookups of one UPDATE: %d lookup statements prepared, want 1", n)
		}
		if _, err := conn.Exec(ctx, "DISCARD ALL"); err != nil {
			t.Fatal(err)
		}
		if n := lookups(); n != 0 {
			t.Errorf("after DISCARD ALL: %d lookup statements, want 0", n)
		}
		update(5)
		if n := lookups(); n != 1 {
			t.Errorf("after DISCARD ALL and a lookup: %d lookup statements, want 1", n)
		}
	})

	t.Run("psql", func(t *testing.T) {
		id := insert(t, orgA, "lookup-psql", "lookup-psql@example.org")
		p.remember("lookup-psql-new@example.org")
		script := fmt.Sprintf("UPDATE users SET email = 'lookup-psql-new@example.org', birth_date = '2001-02-03' WHERE id = %d;\n", id) +
			"UPDATE users SET phone = 'x' WHERE name LIKE 'lookup-%';\n"
		res := runPsql(t, ctx, p.url(), []byte(script), nil, "-X", "-v", "ON_ERROR_STOP=0")
		if !strings.Contains(res.Stdout, "UPDATE 1") {
			t.Errorf("psql UPDATE by id: %q %q", res.Stdout, res.Stderr)
		}
		if !strings.Contains(res.Stderr, "more than one tenant") {
			t.Errorf("psql UPDATE over two tenants: %q", res.Stderr)
		}
		if got := read(id); got != fmt.Sprintf("%d|lookup-psql-new@example.org|ph|2001-02-03|<NULL>", orgA) {
			t.Errorf("psql: %s", got)
		}
	})

	verifyAtRest(t, context.Background(), []string{"lookup-psql-new@example.org", "lookup-0-new1-ä@example.org"})

	// Operators see the lookups: per mode 1 warm-up, 2 by id, 1 by email, 1 UPDATE ONLY, 1 moved and
	// 3 in the batch (not in simple mode) found one tenant, 1 none, 1
	// several; 6 by id on one connection; psql one and several. The bad WHERE fails the lookup in the
	// simple protocol and in exec mode (Parse and Bind in one pipeline);
	// the other modes prepare the statement first, which fails alone.
	m := scrape(t, p.Proxy)
	for outcome, want := range map[string]float64{"one": 5*6 + 4*3 + 1 + 6, "none": 5, "several": 5 + 1, "error": 2} {
		if got := m.get(`pgveil_tenant_lookups_total{outcome="` + outcome + `"}`); got != want {
			t.Errorf("pgveil_tenant_lookups_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}

// pgtypeText scans a nullable text as "<NULL>" or its value.
type pgtypeText string

func (v *pgtypeText) Scan(src any) error {
	switch s := src.(type) {
	case nil:
		*v = "<NULL>"
	case string:
		*v = pgtypeText(s)
	case int64:
		*v = pgtypeText(fmt.Sprint(s))
	case time.Time:
		*v = pgtypeText(s.Format("2006-01-02"))
	default:
		return fmt.Errorf("unexpected %T", src)
	}
	return nil
}
