package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// encRefusal is a statement pgveil must refuse (or the server must fail)
// without any plaintext reaching the database.
type encRefusal struct {
	name  string
	sql   string
	args  []any
	code  string
	plain []string // plaintexts the statement carries
}

// encRefusals are the refusals of DESIGN.md ("Anything else on an
// encrypted column … is refused with a clear error") and of the tenant
// rules, with the SQLSTATE each is documented to carry (rewrite/errors.go,
// proxy/encrypt.go).
func encRefusals(org int64) []encRefusal {
	return []encRefusal{
		{name: "ORDER BY email", sql: "SELECT id FROM users ORDER BY email", code: "0A000"},
		{name: "email LIKE literal", sql: "SELECT id FROM users WHERE email LIKE 'refused-like-7731%'", code: "0A000", plain: []string{"refused-like-7731"}},
		{name: "email LIKE param", sql: "SELECT id FROM users WHERE email LIKE $1", args: []any{"refused-like-param-7732%"}, code: "0A000", plain: []string{"refused-like-param-7732"}},
		{name: "range on email", sql: "SELECT id FROM users WHERE email < $1", args: []any{"refused-range-7733@x.org"}, code: "0A000", plain: []string{"refused-range-7733@x.org"}},
		{name: "function of email", sql: "SELECT lower(email) FROM users", code: "0A000"},
		{name: "equality without blind index", sql: "SELECT id FROM users WHERE phone = $1", args: []any{"refused-phone-7734"}, code: "0A000", plain: []string{"refused-phone-7734"}},
		{name: "INSERT … SELECT into email", sql: "INSERT INTO users (org_id, name, email) SELECT $1::int8, 'r', 'refused-insert-select-7735@x.org'",
			args: []any{org}, code: "0A000", plain: []string{"refused-insert-select-7735@x.org"}},
		// (A plain UPDATE without the tenant has it looked up: enc_lookup_test.go.)
		{name: "UPDATE email without tenant in a CTE", sql: "WITH x AS (UPDATE users SET email = $1 WHERE id = $2 RETURNING id) SELECT id FROM x", args: []any{"refused-no-tenant-7736@x.org", int64(1)},
			code: "0A000", plain: []string{"refused-no-tenant-7736@x.org"}},
		{name: "INSERT without org_id", sql: "INSERT INTO users (name, email) VALUES ('r', 'refused-no-org-7737@x.org')", code: "0A000",
			plain: []string{"refused-no-org-7737@x.org"}},
		{name: "INSERT with NULL tenant", sql: "INSERT INTO users (org_id, name, phone) VALUES ($1, 'r', $2)", args: []any{nil, "refused-null-tenant-7738"},
			code: "23502", plain: []string{"refused-null-tenant-7738"}},
		{name: "write the blind index", sql: `INSERT INTO users (org_id, name, email_bidx) VALUES ($1, 'r', '\x00')`, args: []any{org}, code: "428C9"},
		{name: "JOIN USING email", sql: "SELECT 1 FROM users JOIN contacts USING (email)", code: "0A000"},
		{name: "UPDATE … FROM into phone", sql: "UPDATE users u SET phone = 'refused-update-from-7739' FROM contacts c WHERE u.org_id = $1 AND c.id = u.id",
			args: []any{org}, code: "0A000", plain: []string{"refused-update-from-7739"}},
		{name: "not a date", sql: "INSERT INTO users (org_id, name, birth_date) VALUES ($1, 'r', $2)", args: []any{org, "refused-date-7740"},
			code: "22P02", plain: []string{"refused-date-7740"}},
		{name: "not an int8", sql: "INSERT INTO users (org_id, name, api_token) VALUES ($1, 'r', 'refused-token-7741')", args: []any{org},
			code: "22P02", plain: []string{"refused-token-7741"}},
	}
}

// TestEncRefusals sends every refused shape through pgveil in the
// extended protocol and in the simple protocol (client-side literals),
// inside and outside a transaction and in a pipeline, and checks the
// SQLSTATE, that the session stays usable, and that no plaintext of a
// refused statement reached the table, the server's view of the session
// (pg_stat_activity), the server's log or pgveil's log.
func TestEncRefusals(t *testing.T) {
	relayLeakCheck(t)
	const org = 41
	p := startEncProxy(t, encOrgs(org, 1)...)
	ctx := testCtx(t, time.Minute)
	var plain []string
	for _, r := range encRefusals(org) {
		plain = append(plain, r.plain...)
	}
	p.remember(plain...)

	for _, mode := range []struct {
		name string
		mode pgx.QueryExecMode
	}{{"extended", pgx.QueryExecModeCacheStatement}, {"simple", pgx.QueryExecModeSimpleProtocol}} {
		t.Run(mode.name, func(t *testing.T) {
			cfg, err := pgx.ParseConfig(p.url("application_name=enc_refuse_" + mode.name))
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = mode.mode
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			for _, r := range encRefusals(org) {
				_, err := conn.Exec(ctx, r.sql, r.args...)
				checkRefusal(t, r, err)
				// The session goes on.
				var one int
				if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
					t.Fatalf("after %q the session is broken: %v", r.name, err)
				}
			}
			// In a transaction: the refusal aborts it as a server error would.
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO users (org_id, name, email) VALUES ($1, 'tx', $2)", int64(org), "refused-tx-7742@x.org"); err != nil {
				t.Fatalf("insert in transaction: %v", err)
			}
			_, err = tx.Exec(ctx, "SELECT id FROM users ORDER BY email")
			checkRefusal(t, encRefusal{name: "ORDER BY in a transaction", code: "0A000"}, err)
			_, err = tx.Exec(ctx, "SELECT 1")
			if sqlState(err) != "25P02" {
				t.Errorf("after a refusal in a transaction: %v, want 25P02", err)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Errorf("rollback: %v", err)
			}
			if n := countUsers(t, ctx, org); n != 0 {
				t.Errorf("%d users after the rolled-back transaction", n)
			}
			p.remember("refused-tx-7742@x.org")
			plain = append(plain, "refused-tx-7742@x.org")
			assertNoPlaintextInActivity(t, ctx, "enc_refuse_"+mode.name, plain)
		})
	}

	// A pipeline: a write, a refusal, a write, one Sync (pgx's Exec mode
	// sends Parse/Bind/Execute per statement, no prepare round trip). The
	// refusal aborts the implicit transaction, so the first write is
	// undone too, and the statements after it are skipped.
	t.Run("pipeline", func(t *testing.T) {
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
		b := &pgx.Batch{}
		b.Queue("INSERT INTO users (org_id, name, email) VALUES ($1, 'b1', $2)", int64(org), "refused-batch-a-7743@x.org")
		b.Queue("SELECT id FROM users WHERE email LIKE $1", "refused-batch-like-7744%")
		b.Queue("INSERT INTO users (org_id, name, email) VALUES ($1, 'b2', $2)", int64(org), "refused-batch-b-7745@x.org")
		p.remember("refused-batch-a-7743@x.org", "refused-batch-like-7744", "refused-batch-b-7745@x.org")
		plain = append(plain, "refused-batch-a-7743@x.org", "refused-batch-like-7744", "refused-batch-b-7745@x.org")
		br := conn.SendBatch(ctx, b)
		_, err1 := br.Exec()
		_, err2 := br.Exec()
		_, err3 := br.Exec()
		br.Close()
		if err1 != nil {
			t.Errorf("first write of the pipeline: %v", err1)
		}
		checkRefusal(t, encRefusal{name: "LIKE in a pipeline", code: "0A000"}, err2)
		if err3 == nil {
			t.Errorf("the write after a refusal in the pipeline ran")
		}
		if n := countUsers(t, ctx, org); n != 0 {
			t.Errorf("%d users after the failed pipeline, want 0", n)
		}
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Errorf("session after the pipeline: %v", err)
		}
	})

	// A server error on an encrypted write (a unique violation on the
	// blind index: the same email in another case) names the index, not
	// the value.
	t.Run("unique_violation", func(t *testing.T) {
		conn := connectPgx(t, ctx, p.url())
		const email = "Unique.Secret-7746@Example.org"
		p.remember(email)
		plain = append(plain, email)
		if _, err := conn.Exec(ctx, "INSERT INTO users (org_id, name, email) VALUES ($1, 'uv1', $2)", int64(org), email); err != nil {
			t.Fatal(err)
		}
		_, err := conn.Exec(ctx, "INSERT INTO users (org_id, name, email) VALUES ($1, 'uv2', $2)", int64(org), strings.ToUpper(email))
		if sqlState(err) != "23505" {
			t.Fatalf("duplicate email (other case): %v, want 23505", err)
		}
		if pe := pgErr(err); strings.Contains(strings.ToLower(pe.Message+pe.Detail), strings.ToLower(email)) {
			t.Errorf("the unique violation shows the plaintext: %s / %s", pe.Message, pe.Detail)
		}
		if _, err := conn.Exec(ctx, "DELETE FROM users WHERE email = $1", email); err != nil {
			t.Fatal(err)
		}
	})

	verifyAtRest(t, ctx, plain)
	serverLog, err := cluster.SyncLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	serverLog = strings.ToLower(serverLog)
	if !strings.Contains(serverLog, "duplicate key value violates unique constraint") {
		t.Error("PostgreSQL's log lacks the unique violation: the check below proves nothing")
	}
	for _, s := range plain {
		if strings.Contains(serverLog, strings.ToLower(s)) {
			t.Errorf("PostgreSQL's log contains the plaintext %q of a refused statement", s)
		}
	}
}

// checkRefusal checks a refused statement's error.
func checkRefusal(t *testing.T, r encRefusal, err error) {
	t.Helper()
	pe := pgErr(err)
	if pe == nil {
		t.Errorf("%s: %v, want SQLSTATE %s", r.name, err, r.code)
		return
	}
	if pe.Code != r.code {
		t.Errorf("%s: SQLSTATE %s (%s), want %s", r.name, pe.Code, pe.Message, r.code)
	}
	if pe.Code != "23505" && !strings.HasPrefix(pe.Message, "pgveil") {
		t.Errorf("%s: message %q does not say it is pgveil's", r.name, pe.Message)
	}
	for _, s := range r.plain {
		if strings.Contains(pe.Message+pe.Detail+pe.Hint+pe.Where, s) {
			t.Errorf("%s: the error carries the plaintext %q", r.name, s)
		}
	}
}

// assertNoPlaintextInActivity checks what the server last received on the
// session named app: never a refused plaintext.
func assertNoPlaintextInActivity(t *testing.T, ctx context.Context, app string, plain []string) {
	t.Helper()
	var q string
	if err := superConn(t, ctx).QueryRow(ctx, `SELECT query FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&q); err != nil {
		t.Fatalf("pg_stat_activity of %s: %v", app, err)
	}
	for _, s := range plain {
		if strings.Contains(q, s) {
			t.Errorf("the server received the plaintext %q: %s", s, q)
		}
	}
}

// TestEncTamper writes ciphertexts where they do not belong, directly, and
// reads them through pgveil: another tenant's value, another column's
// value, and plaintext where an envelope belongs. Each read fails closed
// with pgveil's SQLSTATE (class PV) and never returns the other value.
func TestEncTamper(t *testing.T) {
	relayLeakCheck(t)
	p := startEncProxy(t, 51, 52)
	ctx := testCtx(t, time.Minute)
	const phoneA, phoneB, ssnA = "ph-tamper-a-7751", "ph-tamper-b-7752", "ssn-tamper-a-7753"
	p.remember(phoneA, phoneB, ssnA)
	conn := connectPgx(t, ctx, p.url())
	for _, r := range []struct {
		org          int64
		name, ph, ss string
	}{{51, "ta", phoneA, ssnA}, {52, "tb", phoneB, "ssn-tamper-b-7754"}} {
		if _, err := conn.Exec(ctx, "INSERT INTO users (org_id, name, phone, ssn) VALUES ($1, $2, $3, $4)", r.org, r.name, r.ph, r.ss); err != nil {
			t.Fatal(err)
		}
	}
	p.remember("ssn-tamper-b-7754")
	su := superConn(t, ctx)
	read := func(what string, wantCode string) {
		t.Helper()
		c, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		var phone, ssn *string
		err = c.QueryRow(ctx, "SELECT phone, ssn FROM users WHERE name = 'ta'").Scan(&phone, &ssn)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != wantCode {
			t.Errorf("%s: read through pgveil gave %v (phone=%v ssn=%v), want SQLSTATE %s", what, err, phone, ssn, wantCode)
		}
		if phone != nil && *phone == phoneB {
			t.Errorf("%s: pgveil returned tenant B's phone in tenant A's row", what)
		}
	}
	// Tenant B's phone moved into tenant A's row.
	if _, err := su.Exec(ctx, "UPDATE users SET phone = (SELECT phone FROM users WHERE name = 'tb') WHERE name = 'ta'"); err != nil {
		t.Fatal(err)
	}
	read("another tenant's ciphertext", "PV001")
	// Row A's ssn moved into its phone column (same tenant, other column).
	if _, err := su.Exec(ctx, "UPDATE users SET phone = ssn WHERE name = 'ta'"); err != nil {
		t.Fatal(err)
	}
	read("another column's ciphertext", "PV001")
	// Plaintext written behind pgveil's back.
	if _, err := su.Exec(ctx, "UPDATE users SET phone = convert_to('plain-behind-7755', 'UTF8') WHERE name = 'ta'"); err != nil {
		t.Fatal(err)
	}
	read("plaintext at rest", "PV003")
}

// TestEncUpsertAcrossTenants: email_bidx is UNIQUE over the whole table
// and the index key is shared by all tenants, so an upsert from tenant B
// can hit tenant A's row. ON CONFLICT (email) DO UPDATE SET phone =
// EXCLUDED.phone would then store a value sealed under B's key in A's row.
// pgveil must either refuse the statement or leave A's row readable.
func TestEncUpsertAcrossTenants(t *testing.T) {
	relayLeakCheck(t)
	p := startEncProxy(t, 61, 62)
	ctx := testCtx(t, time.Minute)
	const email, phoneA, phoneB = "Shared.Upsert-7761@example.org", "ph-upsert-a-7762", "ph-upsert-b-7763"
	p.remember(email, phoneA, phoneB)
	conn := connectPgx(t, ctx, p.url())
	if _, err := conn.Exec(ctx, "INSERT INTO users (org_id, name, email, phone) VALUES ($1, 'ua', $2, $3)", int64(61), email, phoneA); err != nil {
		t.Fatal(err)
	}
	_, err := conn.Exec(ctx, "INSERT INTO users (org_id, name, email, phone) VALUES ($1, 'ub', $2, $3) ON CONFLICT (email) DO UPDATE SET phone = EXCLUDED.phone",
		int64(62), email, phoneB)
	if err != nil {
		if sqlState(err) != "0A000" {
			t.Errorf("cross-tenant upsert: %v, want success or a 0A000 refusal", err)
		}
	}
	c2, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(context.Background())
	var org int64
	var phone *string
	if err := c2.QueryRow(ctx, "SELECT org_id, phone FROM users WHERE email = $1", email).Scan(&org, &phone); err != nil {
		t.Fatalf("tenant A's row after a cross-tenant ON CONFLICT DO UPDATE is unreadable: %v", err)
	}
	if org != 61 || phone == nil || (*phone != phoneA && *phone != phoneB) {
		t.Errorf("after the cross-tenant upsert: org %d phone %v", org, phone)
	}
	verifyAtRest(t, ctx, []string{email, phoneA, phoneB})
}
