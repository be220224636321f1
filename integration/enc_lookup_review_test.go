package integration

// Review tests of tenant lookups (commits 0eb5892 … a303226). Tests named
// TestLookupReviewDefect* demonstrate defects and FAIL on this revision;
// TestLookupReviewHolds* probe what held.

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

// lookupReview is a pgveil in front of the suite's schema with two orgs,
// and helpers to insert a user and read one back on a fresh connection (a
// value sealed under another tenant's key makes pgveil end the reading
// session with FATAL PV001, so each read gets a connection of its own).
type lookupReview struct {
	p          *encProxy
	ctx        context.Context
	orgA, orgB int64
}

func newLookupReview(t *testing.T, orgA int64) *lookupReview {
	t.Helper()
	return &lookupReview{p: startEncProxy(t, encOrgs(orgA, 1)...), ctx: testCtx(t, 2*time.Minute), orgA: orgA, orgB: orgA + 1000}
}

// insert adds a user of org with the given email only (no other encrypted
// value, so that moving the row to another tenant leaves nothing sealed
// under the old one), and returns its id.
func (r *lookupReview) insert(t *testing.T, org int64, name, email string) int64 {
	t.Helper()
	r.p.remember(email)
	c := r.conn(t, pgx.QueryExecModeCacheStatement)
	defer c.Close(r.ctx)
	var id int64
	if err := c.QueryRow(r.ctx, `INSERT INTO users (org_id, name, email) VALUES ($1, $2, $3) RETURNING id`, org, name, email).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// read returns "org|name|email|phone" of user id, or the error.
func (r *lookupReview) read(t *testing.T, id int64) string {
	t.Helper()
	c, err := pgx.Connect(r.ctx, r.p.url())
	if err != nil {
		return "connect: " + err.Error()
	}
	defer c.Close(r.ctx)
	var org int64
	var name, email, phone pgtypeText
	if err := c.QueryRow(r.ctx, `SELECT org_id, name, email, phone FROM users WHERE id = $1`, id).Scan(&org, &name, &email, &phone); err != nil {
		return "read: " + err.Error()
	}
	return fmt.Sprintf("%d|%s|%s|%s", org, name, email, phone)
}

func (r *lookupReview) conn(t *testing.T, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(r.p.url())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	c, err := pgx.ConnectConfig(r.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var reviewModes = []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
	pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol}

var reviewExtendedModes = reviewModes[:4]

// TestLookupReviewDefectSetTenantExpression: an UPDATE that writes an
// encrypted value AND moves the row to another tenant with an expression
// pgveil cannot read as the tenant (org_id = org_id + 1000, = (SELECT …),
// = $2::int8 + 0, or a multiple-column assignment (name, org_id) = (…)) is
// looked up: the lookup finds the row's OLD tenant, the value is sealed
// under it, the guard (org_id = old tenant) matches, and the row ends in
// the NEW tenant holding a value sealed under the old tenant's key.
// Expected: refused (the tenant after the UPDATE is unknown), or sealed
// under the tenant the row ends in. Got: UPDATE 1, and every later read
// of the row ends the reading session with FATAL PV001 (wrong_scope).
func TestLookupReviewDefectSetTenantExpression(t *testing.T) {
	r := newLookupReview(t, 151)
	cases := []struct {
		name, sql string
		args      func(email string, id int64) []any
	}{
		{"org_id = org_id + 1000", `UPDATE users SET email = $1, org_id = org_id + 1000 WHERE id = $2`,
			func(e string, id int64) []any { return []any{e, id} }},
		{"org_id = (SELECT $2)", `UPDATE users SET email = $1, org_id = (SELECT $2::int8) WHERE id = $3`,
			func(e string, id int64) []any { return []any{e, r.orgB, id} }},
		{"org_id = $2 + 0", `UPDATE users SET email = $1, org_id = $2::int8 + 0 WHERE id = $3`,
			func(e string, id int64) []any { return []any{e, r.orgB, id} }},
		{"(name, org_id) = ($2, $3)", `UPDATE users SET (name, org_id) = ($2, $3), email = $1 WHERE id = $4`,
			func(e string, id int64) []any { return []any{e, "moved", r.orgB, id} }},
	}
	for ci, c := range cases {
		for mi, mode := range reviewModes {
			t.Run(fmt.Sprintf("%s/%s", c.name, mode), func(t *testing.T) {
				tag := fmt.Sprintf("lkrev-move-%d-%d", ci, mi)
				id := r.insert(t, r.orgA, tag, tag+"-old@example.org")
				email := tag + "-new@example.org"
				r.p.remember(email)
				conn := r.conn(t, mode)
				defer conn.Close(r.ctx)
				ct, err := conn.Exec(r.ctx, c.sql, c.args(email, id)...)
				if err != nil {
					if sqlState(err) == "0A000" && !strings.HasPrefix(r.read(t, id), fmt.Sprint(r.orgB)) {
						return // refused, nothing changed: fine
					}
					t.Fatalf("UPDATE: %v (row now %s)", err, r.read(t, id))
				}
				got := r.read(t, id)
				if want := fmt.Sprintf("%d|", r.orgB); ct.RowsAffected() == 1 && (!strings.HasPrefix(got, want) || !strings.Contains(got, "|"+email+"|")) {
					t.Errorf("UPDATE 1 moved the row to org %d, but it reads back as %q: the value was sealed under the old tenant %d", r.orgB, got, r.orgA)
				}
			})
		}
	}
}

// TestLookupReviewDefectParamFormats: a statement whose WHERE does not use
// its last parameter (UPDATE users SET email = $2 WHERE id = $1). The
// lookup binds the WHERE's parameters only ($1) but copies the client's
// parameter format codes (one per parameter from pgx: two), so the server
// rejects the lookup's Bind ("bind message has 2 parameter formats but 1
// parameters", 08P01). Expected UPDATE 1; got 08P01 in every extended mode.
func TestLookupReviewDefectParamFormats(t *testing.T) {
	r := newLookupReview(t, 161)
	for mi, mode := range reviewModes {
		t.Run(mode.String(), func(t *testing.T) {
			tag := fmt.Sprintf("lkrev-fmt-%d", mi)
			id := r.insert(t, r.orgA, tag, tag+"-old@example.org")
			email := tag + "-new@example.org"
			r.p.remember(email)
			conn := r.conn(t, mode)
			defer conn.Close(r.ctx)
			ct, err := conn.Exec(r.ctx, `UPDATE users SET email = $2 WHERE id = $1`, id, email)
			if err != nil || ct.RowsAffected() != 1 {
				t.Fatalf("UPDATE users SET email = $2 WHERE id = $1: %v, %d rows", err, ct.RowsAffected())
			}
			if got, want := r.read(t, id), fmt.Sprintf("%d|%s|%s|<NULL>", r.orgA, tag, email); got != want {
				t.Errorf("read back %q, want %q", got, want)
			}
		})
	}
}

// TestLookupReviewLiteralWithParams: an encrypted value written as a
// literal in a statement that has parameters (UPDATE users SET email =
// 'x' WHERE id = $1). The literal is sealed when the statement is
// prepared, and the tenant of a statement with parameters is looked up at
// each execution, so pgveil refuses it (0A000) with a hint to pass the
// value as a parameter; nothing changes. In the simple protocol (no
// parameters) it works.
func TestLookupReviewLiteralWithParams(t *testing.T) {
	r := newLookupReview(t, 171)
	for mi, mode := range reviewModes {
		t.Run(mode.String(), func(t *testing.T) {
			tag := fmt.Sprintf("lkrev-lit-%d", mi)
			id := r.insert(t, r.orgA, tag, tag+"-old@example.org")
			email := tag + "-new@example.org"
			r.p.remember(email)
			conn := r.conn(t, mode)
			defer conn.Close(r.ctx)
			ct, err := conn.Exec(r.ctx, `UPDATE users SET email = '`+email+`' WHERE id = $1`, id)
			if mode == pgx.QueryExecModeSimpleProtocol {
				if err != nil || ct.RowsAffected() != 1 {
					t.Fatalf("UPDATE … SET email = '<literal>' WHERE id = <literal>: %v, %d rows", err, ct.RowsAffected())
				}
				if got, want := r.read(t, id), fmt.Sprintf("%d|%s|%s|<NULL>", r.orgA, tag, email); got != want {
					t.Errorf("read back %q, want %q", got, want)
				}
				return
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Hint, "as parameters") {
				t.Fatalf("UPDATE … SET email = '<literal>' WHERE id = $1: %v, want 0A000 with a hint to use parameters", err)
			}
			if got, want := r.read(t, id), fmt.Sprintf("%d|%s|%s|<NULL>", r.orgA, tag, tag+"-old@example.org"); got != want {
				t.Errorf("a refused UPDATE changed the row: %q, want %q", got, want)
			}
		})
	}
}

// TestLookupReviewParamTypeFromSet: a parameter typed only by SET (name =
// $1) that the WHERE uses where no type can be inferred ($1 IS NOT NULL).
// PostgreSQL itself rejects the statement (42P08: it types WHERE's
// parameters from WHERE); through pgveil the client gets the same error.
func TestLookupReviewParamTypeFromSet(t *testing.T) {
	r := newLookupReview(t, 181)
	r.p.remember("lkrev-type@example.org")
	const q = `UPDATE users SET name = $1, email = $2 WHERE id = $3 AND $1 IS NOT NULL`
	for _, url := range []string{directURL("scram_user", "sslmode=disable"), r.p.url()} {
		conn := connectPgx(t, r.ctx, url)
		_, err := conn.Exec(r.ctx, q, "n", "lkrev-type@example.org", int64(1))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42P08" {
			t.Errorf("%s: %v, want 42P08", redact(url), err)
		}
	}
}

// TestLookupReviewDefectMultiAssignAfterEncrypted: a multiple-column
// assignment after the encrypted SET (SET email = $1, (name, created_at)
// = ($2, now()) WHERE id = $3). listEnd stops at the ")" of the column
// list, so pgveil sees no WHERE: the lookup reads the whole table (SELECT
// DISTINCT users.org_id FROM users) and the guard goes inside the column
// list: "(name, created_at WHERE users.org_id = $5) = …", a syntax error.
// Fails closed, but the statement is valid and updates one row.
func TestLookupReviewDefectMultiAssignAfterEncrypted(t *testing.T) {
	r := newLookupReview(t, 191)
	for mi, mode := range reviewModes {
		t.Run(mode.String(), func(t *testing.T) {
			tag := fmt.Sprintf("lkrev-multi-%d", mi)
			id := r.insert(t, r.orgA, tag, tag+"-old@example.org")
			email := tag + "-new@example.org"
			r.p.remember(email)
			conn := r.conn(t, mode)
			defer conn.Close(r.ctx)
			ct, err := conn.Exec(r.ctx, `UPDATE users SET email = $1, (name, created_at) = ($2, now()) WHERE id = $3`, email, tag+"-n", id)
			if err != nil || ct.RowsAffected() != 1 {
				t.Fatalf("UPDATE: %v, %d rows", err, ct.RowsAffected())
			}
		})
	}
}

// TestLookupReviewPreparedWithoutParams: a named statement without
// parameters (UPDATE users SET phone = 'x' WHERE id = N) would have its
// literals sealed, and its tenant looked up, once, at Parse, and keep them
// for every execution (UPDATE 0 once the row moved, or if it did not exist
// yet). pgveil refuses to prepare it (0A000, with a hint); the same text
// unnamed (looked up at its Parse, bound at once) works.
func TestLookupReviewPreparedWithoutParams(t *testing.T) {
	r := newLookupReview(t, 201)
	conn := r.conn(t, pgx.QueryExecModeCacheStatement)
	defer conn.Close(r.ctx)
	pc := conn.PgConn()
	r.p.remember("lkrev-stale-phone")
	id := r.insert(t, r.orgA, "lkrev-stale", "lkrev-stale@example.org")
	q := fmt.Sprintf(`UPDATE users SET phone = 'lkrev-stale-phone' WHERE id = %d`, id)
	_, err := pc.Prepare(r.ctx, "lkrev_stale", q, nil)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Hint, "unnamed statement") {
		t.Fatalf("preparing a named UPDATE whose tenant pgveil must look up: %v, want 0A000 with a hint", err)
	}
	if res := pc.ExecParams(r.ctx, q, nil, nil, nil, nil).Read(); res.Err != nil || res.CommandTag.RowsAffected() != 1 {
		t.Fatalf("the same UPDATE unnamed: %v, %d rows", res.Err, res.CommandTag.RowsAffected())
	}
	if got, want := r.read(t, id), fmt.Sprintf("%d|lkrev-stale|lkrev-stale@example.org|lkrev-stale-phone", r.orgA); got != want {
		t.Errorf("read back %q, want %q", got, want)
	}
}

// TestLookupReviewDefectStatementLeak: when the lookup fails at its Bind
// or Execute (here a WHERE dividing by zero), the server skips pgveil's
// Close of the lookup statement; the pending Close carries no stmt, so
// dropVoid does not re-send it (takeFailedCloses). Each failing lookup
// leaves one pgveil statement prepared on the server for the life of the
// connection. Expected: pg_prepared_statements unchanged after failing
// UPDATEs; got one more per failure.
func TestLookupReviewDefectStatementLeak(t *testing.T) {
	r := newLookupReview(t, 211)
	id := r.insert(t, r.orgA, "lkrev-leak", "lkrev-leak@example.org")
	r.p.remember("lkrev-leak-phone")
	for _, mode := range reviewExtendedModes {
		t.Run(mode.String(), func(t *testing.T) {
			conn := r.conn(t, mode)
			defer conn.Close(r.ctx)
			const q = `UPDATE users SET phone = $1 WHERE id = $2::int8 / 0`
			count := func() int {
				var n int
				if err := conn.QueryRow(r.ctx, `SELECT count(*) FROM pg_prepared_statements`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			// Once so that pgx caches what it caches.
			if _, err := conn.Exec(r.ctx, q, "lkrev-leak-phone", id); sqlState(err) != "22012" {
				t.Fatalf("first UPDATE: %v, want 22012", err)
			}
			before := count()
			for k := 0; k < 20; k++ {
				if _, err := conn.Exec(r.ctx, q, "lkrev-leak-phone", id); sqlState(err) != "22012" {
					t.Fatalf("UPDATE %d: %v, want 22012", k, err)
				}
			}
			if after := count(); after != before {
				t.Errorf("pg_prepared_statements: %d before 20 failed lookups, %d after", before, after)
			}
		})
	}
}

// TestLookupReviewDefectErrorInTransactionBlock: in the simple protocol,
// inside BEGIN, a lookup the server rejects aborts the transaction; pgveil
// then raises the lookup's error with an injected DO block, which the
// aborted transaction answers with 25P02. Expected: the lookup's error
// (42703 column "nosuch" does not exist), as outside a transaction block
// and in the extended protocol; got 25P02 "current transaction is aborted"
// (the client never learns why).
func TestLookupReviewDefectErrorInTransactionBlock(t *testing.T) {
	r := newLookupReview(t, 221)
	conn := r.conn(t, pgx.QueryExecModeSimpleProtocol)
	defer conn.Close(r.ctx)
	tx, err := conn.Begin(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(r.ctx)
	_, err = tx.Exec(r.ctx, `UPDATE users SET phone = 'lkrev-tx-phone' WHERE nosuch = 1`)
	r.p.remember("lkrev-tx-phone")
	if sqlState(err) != "42703" {
		t.Errorf("lookup error inside BEGIN: %v, want 42703", err)
	}
	// psql, the common simple-protocol client, sees the same.
	res := runPsql(t, r.ctx, r.p.url(), []byte("BEGIN;\nUPDATE users SET phone = 'lkrev-tx-phone' WHERE nosuch = 1;\nROLLBACK;\n"), nil, "-v", "ON_ERROR_STOP=0")
	if !strings.Contains(res.Stderr, "nosuch") {
		t.Errorf("psql: %q, want the lookup's error naming column nosuch", res.Stderr)
	}
}

// TestLookupReviewHoldsShapes: shapes that worked, each read back under
// the row's tenant (a value under another tenant's key would not open):
// alias, UPDATE ONLY with a quoted schema-qualified name, RETURNING, the
// encrypted column both SET and in WHERE, volatile WHEREs (random(),
// now()), = ANY over one tenant (works) and two (refused, nothing
// changed), SET org_id = $n with a parameter (sealed under the new tenant,
// no lookup).
func TestLookupReviewHoldsShapes(t *testing.T) {
	r := newLookupReview(t, 231)
	for mi, mode := range reviewModes {
		t.Run(mode.String(), func(t *testing.T) {
			conn := r.conn(t, mode)
			defer conn.Close(r.ctx)
			tag := fmt.Sprintf("lkrev-hold-%d", mi)
			a := r.insert(t, r.orgA, tag, tag+"-a@example.org")
			a2 := r.insert(t, r.orgA, tag, tag+"-a2@example.org")
			b := r.insert(t, r.orgB, tag, tag+"-b@example.org")
			step := func(label string, wantRows int64, sql string, args ...any) {
				t.Helper()
				ct, err := conn.Exec(r.ctx, sql, args...)
				if err != nil || ct.RowsAffected() != wantRows {
					t.Errorf("%s: %v, %d rows, want %d", label, err, ct.RowsAffected(), wantRows)
				}
			}
			check := func(label string, id int64, want string) {
				t.Helper()
				if got := r.read(t, id); got != want {
					t.Errorf("%s: row %q, want %q", label, got, want)
				}
			}
			v := func(s string) string { s = tag + "-" + s + "@example.org"; r.p.remember(s); return s }

			e := v("alias")
			step("alias", 1, `UPDATE users AS u SET email = $1 WHERE u.id = $2`, e, a)
			check("alias", a, fmt.Sprintf("%d|%s|%s|<NULL>", r.orgA, tag, e))
			e = v("only")
			step("ONLY quoted", 1, `UPDATE ONLY public."users" SET "email" = $1 WHERE "id" = $2`, e, a)
			check("ONLY quoted", a, fmt.Sprintf("%d|%s|%s|<NULL>", r.orgA, tag, e))
			e2 := v("self")
			step("SET email WHERE email", 1, `UPDATE users SET email = $1 WHERE email = $2`, e2, e)
			check("SET email WHERE email", a, fmt.Sprintf("%d|%s|%s|<NULL>", r.orgA, tag, e2))
			e = v("random")
			step("random()", 1, `UPDATE users SET email = $1 WHERE id = $2 AND random() >= 0`, e, a)
			e = v("now")
			step("now()", 1, `UPDATE users SET email = $1 WHERE id = $2 AND now() > '2000-01-01'`, e, a)
			check("now()", a, fmt.Sprintf("%d|%s|%s|<NULL>", r.orgA, tag, e))
			ph := v("any-one")
			step("= ANY one tenant", 2, `UPDATE users SET phone = $1 WHERE id = ANY($2)`, ph, []int64{a, a2})
			check("= ANY one tenant", a2, fmt.Sprintf("%d|%s|%s-a2@example.org|%s", r.orgA, tag, tag, ph))
			_, err := conn.Exec(r.ctx, `UPDATE users SET phone = $1 WHERE id = ANY($2)`, v("any-two"), []int64{a, b})
			if sqlState(err) != "0A000" {
				t.Errorf("= ANY over two tenants: %v, want 0A000", err)
			}
			check("= ANY over two tenants", b, fmt.Sprintf("%d|%s|%s-b@example.org|<NULL>", r.orgB, tag, tag))
			var ret string
			e = v("returning")
			if err := conn.QueryRow(r.ctx, `UPDATE users SET email = $1 WHERE id = $2 RETURNING email`, e, b).Scan(&ret); err != nil || ret != e {
				t.Errorf("RETURNING: %q, %v", ret, err)
			}
			e = v("to-b")
			step("SET org_id = $n", 1, `UPDATE users SET email = $1, org_id = $2, phone = NULL WHERE id = $3`, e, r.orgB, a2)
			check("SET org_id = $n", a2, fmt.Sprintf("%d|%s|%s|<NULL>", r.orgB, tag, e))
		})
	}
}

// TestLookupReviewHoldsConcurrentMove: the lookup races a transaction
// that moves the row to another tenant. The mover holds the row lock; the
// lookup (MVCC) still sees the old tenant and the UPDATE waits for the
// lock; once the mover commits, the UPDATE re-checks its guard (org_id =
// old tenant) against the moved row and changes nothing. The row keeps
// the mover's values; nothing is sealed under the wrong tenant.
func TestLookupReviewHoldsConcurrentMove(t *testing.T) {
	r := newLookupReview(t, 241)
	su := superConn(t, r.ctx)
	for mi, mode := range reviewModes {
		t.Run(mode.String(), func(t *testing.T) {
			tag := fmt.Sprintf("lkrev-race-%d", mi)
			id := r.insert(t, r.orgA, tag, tag+"-old@example.org")
			mover := r.conn(t, pgx.QueryExecModeCacheStatement)
			defer mover.Close(r.ctx)
			tx, err := mover.Begin(r.ctx)
			if err != nil {
				t.Fatal(err)
			}
			movedEmail := tag + "-moved@example.org"
			r.p.remember(movedEmail)
			if _, err := tx.Exec(r.ctx, `UPDATE users SET org_id = $1, email = $2 WHERE id = $3`, r.orgB, movedEmail, id); err != nil {
				t.Fatal(err)
			}
			writer := r.conn(t, mode)
			defer writer.Close(r.ctx)
			racing := tag + "-racing@example.org"
			r.p.remember(racing)
			type result struct {
				rows int64
				err  error
			}
			done := make(chan result, 1)
			go func() {
				ct, err := writer.Exec(r.ctx, `UPDATE users SET email = $1 WHERE id = $2 AND name = $3`, racing, id, tag)
				done <- result{ct.RowsAffected(), err}
			}()
			waitFor(t, 20*time.Second, "the UPDATE to wait for the row lock", func() (bool, error) {
				var n int
				err := su.QueryRow(r.ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE users SET email = %' AND query LIKE '%' || $1 || '%'`, "name =").Scan(&n)
				return n == 1, err
			})
			if err := tx.Commit(r.ctx); err != nil {
				t.Fatal(err)
			}
			res := <-done
			if res.err != nil || res.rows != 0 {
				t.Errorf("UPDATE racing the move: %v, %d rows, want UPDATE 0", res.err, res.rows)
			}
			if got, want := r.read(t, id), fmt.Sprintf("%d|%s|%s|<NULL>", r.orgB, tag, movedEmail); got != want {
				t.Errorf("row after the race: %q, want %q", got, want)
			}
		})
	}
}

// TestLookupReviewHoldsPipelines: a pgx Batch whose first query fails
// ahead of a lookup (the lookup is dropped with the rest, no hang, only
// the first error); a lookup inside an aborted transaction (25P02);
// CancelRequest while the lookup sleeps (57014, and the session goes on).
func TestLookupReviewHoldsPipelines(t *testing.T) {
	r := newLookupReview(t, 251)
	id := r.insert(t, r.orgA, "lkrev-pipe", "lkrev-pipe@example.org")
	r.p.remember("lkrev-pipe-batch@example.org", "lkrev-pipe-aborted@example.org", "lkrev-pipe-cancel@example.org")
	for _, mode := range reviewExtendedModes {
		t.Run(mode.String(), func(t *testing.T) {
			conn := r.conn(t, mode)
			defer conn.Close(r.ctx)
			ctx, cancel := context.WithTimeout(r.ctx, 20*time.Second)
			defer cancel()
			var b pgx.Batch
			b.Queue(`SELECT 1/0`)
			b.Queue(`UPDATE users SET email = $1 WHERE id = $2`, "lkrev-pipe-batch@example.org", id)
			b.Queue(`SELECT 1`)
			if err := conn.SendBatch(ctx, &b).Close(); sqlState(err) != "22012" {
				t.Errorf("batch with an error before the lookup: %v, want 22012", err)
			}
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tx.Exec(ctx, `SELECT 1/0`)
			if _, err := tx.Exec(ctx, `UPDATE users SET email = $1 WHERE id = $2`, "lkrev-pipe-aborted@example.org", id); sqlState(err) != "25P02" {
				t.Errorf("lookup in an aborted transaction: %v, want 25P02", err)
			}
			tx.Rollback(ctx)
			go func() {
				time.Sleep(300 * time.Millisecond)
				conn.PgConn().CancelRequest(ctx)
			}()
			if _, err := conn.Exec(ctx, `UPDATE users SET email = $1 WHERE id = $2 AND pg_sleep(10) IS NOT NULL`, "lkrev-pipe-cancel@example.org", id); sqlState(err) != "57014" {
				t.Errorf("cancelled lookup: %v, want 57014", err)
			}
			var one int
			if err := conn.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
				t.Errorf("after the cancel: %v", err)
			}
			if got := r.read(t, id); got != fmt.Sprintf("%d|lkrev-pipe|lkrev-pipe@example.org|<NULL>", r.orgA) {
				t.Errorf("row changed: %s", got)
			}
		})
	}
}
