package integration

// Review 21e: the uniqueness fill of review 21b (rewrite/unique.go) on
// forms and data 21b's tests did not reach.
//
//   - normalize: trim strips Unicode white space in Go (canon.IndexInput,
//     the backfill's index) but btrim() strips spaces only: a legacy value
//     ending in "\r" or starting with a tab was neither found by the fill
//     nor by a migration-mode lookup, so an INSERT of the trimmed value
//     went in, and the backfill then stopped on the duplicate (HIGH).
//   - INSERT … ON CONFLICT … DO UPDATE SET email = $n whose own column list
//     does not name email got no fill: the update set a row's email to a
//     value a legacy row holds (HIGH).
//
// And what holds: two equal new values in one INSERT, a second unique
// blind index, a value a legacy row of another tenant holds (the index is
// unique across tenants, docs/LIMITS.md), WITH RECURSIVE, an ORM upsert of
// a legacy row by its primary key with its own value.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/integration/harness"
)

const review21ePolicy = `tables:
  public.accounts:
    key_context: org
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [trim, lowercase]
          unique: true
      handle:
        type: text
        blind_index:
          column: handle_bidx
          normalize: [lowercase, trim]
          unique: true
`

// want23505On fails unless err is the server's unique violation on the
// UNIQUE index idx, without the value in any field.
func want23505On(t *testing.T, what string, err error, idx, secret string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" {
		t.Errorf("%s: got %v, want 23505 on %s", what, err, idx)
		return
	}
	if pe.ConstraintName != idx {
		t.Errorf("%s: constraint %q, want %s", what, pe.ConstraintName, idx)
	}
	if strings.Contains(strings.ToLower(pe.Message+pe.Detail+pe.Hint+pe.Where), strings.ToLower(secret)) {
		t.Errorf("%s: the error carries the value", what)
	}
}

func TestReview21eUniqueFill(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	e := newOpsEnv(t, "ops_review21e_uniq", review21ePolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `CREATE TABLE accounts (id int PRIMARY KEY, org int8 NOT NULL, email text, handle text);
		INSERT INTO accounts VALUES
		  (1, 1, E'a@x.io\r', 'h1'),
		  (2, 1, E'\tB@x.io', E'H2\n'),
		  (3, 2, 'c@x.io', 'h3'),
		  (4, 1, E'd@x.io\n', 'h4'),
		  (5, 1, 'e@x.io', 'h5')`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--prepare")
	if s := e.tableState(ctx, su, "public.accounts"); s != "migrating" {
		t.Fatalf("state %q, want migrating", s)
	}
	p := e.proxy(e.config(""))
	c := e.appConn(ctx, p)

	// trim: surrounding tab, CR, LF of legacy values (HIGH before: the
	// INSERT went in, and the backfill stopped on the duplicate).
	const ins = `INSERT INTO accounts (id, org, email, handle) VALUES ($1, 1, $2, $3)`
	_, err := c.Exec(ctx, ins, 10, "a@x.io", "n10")
	want23505On(t, `INSERT of "a@x.io" (a legacy row holds "a@x.io\r")`, err, "accounts_email_bidx_idx", "a@x.io")
	_, err = c.Exec(ctx, ins, pgx.QueryExecModeSimpleProtocol, 11, " b@x.io", "n11")
	want23505On(t, `INSERT (simple) of " b@x.io" (a legacy row holds "\tB@x.io")`, err, "accounts_email_bidx_idx", "b@x.io")
	tag, err := c.Exec(ctx, `INSERT INTO accounts (id, org, email, handle) VALUES (12, 1, 'D@x.io', 'n12') ON CONFLICT DO NOTHING`)
	if err != nil || tag.RowsAffected() != 0 {
		t.Errorf(`DO NOTHING of "D@x.io" (a legacy row holds "d@x.io\n"): %v, %d rows; want 0`, err, tag.RowsAffected())
	}
	// A migration-mode lookup finds them too.
	for v, want := range map[string]int{"a@x.io": 1, "B@x.io": 2, "d@x.io ": 4} {
		var ids []int
		rows, err := c.Query(ctx, `SELECT id FROM accounts WHERE email = $1`, v)
		if err == nil {
			ids, err = pgx.CollectRows(rows, pgx.RowTo[int])
		}
		if err != nil || len(ids) != 1 || ids[0] != want {
			t.Errorf("lookup of %q while migrating: rows %v (%v), want [%d] (the legacy row)", v, ids, err, want)
		}
	}

	// A second unique blind index (handle), under [lowercase, trim].
	_, err = c.Exec(ctx, ins, 13, "new13@x.io", "h2")
	want23505On(t, `INSERT of handle "h2" (a legacy row holds "H2\n")`, err, "accounts_handle_bidx_idx", "h2")

	// DO UPDATE whose SET writes email, which the INSERT's list does not
	// name (HIGH before: no fill, row 20 took the email of legacy row 5).
	if _, err := c.Exec(ctx, ins, 20, "twenty@x.io", "n20"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, `INSERT INTO accounts (id, org) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET email = $2`, 20, "E@x.io")
	want23505On(t, "DO UPDATE SET email (not in the INSERT's list) to an email a legacy row holds", err, "accounts_email_bidx_idx", "e@x.io")
	_, err = c.Exec(ctx, `INSERT INTO accounts (id, org) VALUES (20, 1) ON CONFLICT (id) DO UPDATE SET email = 'e@x.io'`)
	want23505On(t, "DO UPDATE SET email = literal (not in the INSERT's list)", err, "accounts_email_bidx_idx", "e@x.io")

	// Holds: two equal new values in one INSERT.
	_, err = c.Exec(ctx, `INSERT INTO accounts (id, org, email) VALUES (30, 1, $1), (31, 1, $2)`, "same@x.io", " SAME@x.io")
	want23505On(t, "one INSERT of two equal new values", err, "accounts_email_bidx_idx", "same@x.io")
	tag, err = c.Exec(ctx, `INSERT INTO accounts (id, org, email) VALUES (30, 1, $1), (31, 1, $2) ON CONFLICT DO NOTHING`, "same@x.io", " SAME@x.io")
	if err != nil || tag.RowsAffected() != 1 {
		t.Errorf("DO NOTHING of two equal new values: %v, %d rows; want 1", err, tag.RowsAffected())
	}
	// Holds: a legacy row of another tenant holds the value (unique
	// across tenants: index keys are shared, docs/LIMITS.md).
	_, err = c.Exec(ctx, ins, 32, "c@x.io", "n32")
	want23505On(t, "INSERT of an email a legacy row of another tenant holds", err, "accounts_email_bidx_idx", "c@x.io")
	// Holds: WITH RECURSIVE before the INSERT; a new value goes in.
	if tag, err := c.Exec(ctx, `WITH RECURSIVE x AS (SELECT 1) INSERT INTO accounts (id, org, email) VALUES ($1, 1, $2)`, 33, "rec@x.io"); err != nil || tag.RowsAffected() != 1 {
		t.Errorf("WITH RECURSIVE … INSERT of a new value: %v, %d rows", err, tag.RowsAffected())
	}
	// Holds: an ORM upsert of a legacy row by its primary key, with its
	// own (trimmed) email (ActiveRecord upsert_all, GORM Save).
	if tag, err := c.Exec(ctx, `INSERT INTO accounts (id, org, email, handle) VALUES ($1, 1, $2, $3) ON CONFLICT (id) DO UPDATE SET email = excluded.email, handle = excluded.handle`, 1, "a@x.io", "h1"); err != nil || tag.RowsAffected() != 1 {
		t.Errorf("upsert of legacy row 1 with its own email: %v, %d rows; want 1", err, tag.RowsAffected())
	}

	// Holds: SQLAlchemy's insertmanyvalues (INSERT … SELECT from a VALUES
	// list, rewrite/insertmany.go) reads the fill from inside the VALUES.
	_, err = c.Exec(ctx, `INSERT INTO accounts (id, org, email) SELECT p0::INTEGER, p1::INTEGER, p2::VARCHAR FROM (VALUES ($1, 1, $2, 0), ($3, 1, $4, 1)) AS imp_sen(p0, p1, p2, sen_counter) ORDER BY sen_counter RETURNING accounts.id`,
		"40", "fortyx@x.io", "41", "E@X.IO ")
	want23505On(t, "SQLAlchemy insertmanyvalues with an email a legacy row holds", err, "accounts_email_bidx_idx", "e@x.io")

	// Holds: the extended protocol's 23505 leaves the plaintext out of the
	// server's log (the statement is logged with $n, its parameters not:
	// log_parameter_max_length_on_error is 0 by default). A simple-protocol
	// statement carries it as a literal, which the server logs with the
	// error (docs/THREAT_MODEL.md says so).
	const secret = "logsecret21e@x.io"
	if _, err := su.Exec(ctx, `INSERT INTO accounts VALUES (50, 1, $1, 'h50')`, secret); err != nil { // a legacy row, written directly
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, ins, 51, secret, "n51")
	want23505On(t, "INSERT (extended) of an email a legacy row holds, for the log", err, "accounts_email_bidx_idx", secret)
	serverLog, err := cluster.SyncLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(serverLog, "pgveil_unique") {
		t.Error("the server's log lacks the failed statement: the check below proves nothing")
	}
	if strings.Contains(strings.ToLower(serverLog), secret) {
		t.Error("the server's log holds the plaintext of an extended-protocol INSERT that met 23505")
	}
	if _, err := su.Exec(ctx, `DELETE FROM accounts WHERE id = 50`); err != nil {
		t.Fatal(err)
	}

	// Holds: two sessions write the same value a legacy row holds. A's
	// DO NOTHING fills the legacy row's index in an open transaction; B's
	// write waits for that row's lock, and finds the row again whether A
	// rolls back (B fills it itself) or commits (B meets A's index).
	if _, err := su.Exec(ctx, `INSERT INTO accounts VALUES (60, 2, 'conc@x.io', 'h60'), (61, 2, 'conc2@x.io', 'h61')`); err != nil {
		t.Fatal(err)
	}
	a := e.appConn(ctx, p)
	b := e.appConn(ctx, p)
	const doNothing = `INSERT INTO accounts (id, org, email) VALUES ($1, 1, $2) ON CONFLICT DO NOTHING`
	for _, x := range []struct {
		v, end string
		plain  bool // B's INSERT is plain: 23505
	}{{"conc@x.io", "ROLLBACK", false}, {"conc2@x.io", "COMMIT", true}} {
		if _, err := a.Exec(ctx, `BEGIN`); err != nil {
			t.Fatal(err)
		}
		if tag, err := a.Exec(ctx, doNothing, 62, x.v); err != nil || tag.RowsAffected() != 0 {
			t.Fatalf("A: DO NOTHING of %s: %v, %d rows; want 0", x.v, err, tag.RowsAffected())
		}
		done := make(chan error, 1)
		var rows int64
		go func() {
			sql := doNothing
			if x.plain {
				sql = ins
			}
			args := []any{63, strings.ToUpper(x.v)}
			if x.plain {
				args = append(args, "n63")
			}
			tag, err := b.Exec(ctx, sql, args...)
			rows = tag.RowsAffected()
			done <- err
		}()
		waitFor(t, 30*time.Second, "B to wait for A's lock on the legacy row", func() (bool, error) {
			var n int
			err := su.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
			return n == 1, err
		})
		if _, err := a.Exec(ctx, x.end); err != nil {
			t.Fatal(err)
		}
		err := <-done
		switch {
		case x.plain:
			want23505On(t, "B: INSERT of a value A's committed DO NOTHING filled", err, "accounts_email_bidx_idx", x.v)
		case err != nil || rows != 0:
			t.Errorf("B: DO NOTHING of %s after A rolled back: %v, %d rows; want 0", x.v, err, rows)
		}
	}
	var filled int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE id IN (60, 61) AND email_bidx IS NOT NULL`).Scan(&filled); err != nil || filled != 2 {
		t.Errorf("legacy rows 60, 61: %d filled (%v), want 2", filled, err)
	}

	// Holds (docs/ADOPTION.md step 4): a role with INSERT and UPDATE on the
	// blind-index columns only is checked (23505); without UPDATE the write
	// of a unique column fails with 42501 while the table migrates.
	if _, err := su.Exec(ctx, `INSERT INTO accounts VALUES (70, 1, 'priv@x.io', 'h70');
		GRANT SELECT, INSERT ON accounts TO `+harness.SCRAMUser+`;
		GRANT UPDATE (email_bidx, handle_bidx) ON accounts TO `+harness.SCRAMUser); err != nil {
		t.Fatal(err)
	}
	r := connectPgx(t, ctx, harness.BuildURL(p.Addr, harness.SCRAMUser, harness.SCRAMPass, e.db, "sslmode=disable"))
	_, err = r.Exec(ctx, ins, 71, "priv@x.io", "n71")
	want23505On(t, "INSERT by a role with UPDATE on the blind-index columns only", err, "accounts_email_bidx_idx", "priv@x.io")
	if tag, err := r.Exec(ctx, ins, 72, "priv72@x.io", "n72"); err != nil || tag.RowsAffected() != 1 {
		t.Errorf("INSERT of a new value by a role with UPDATE on the blind-index columns only: %v, %d rows", err, tag.RowsAffected())
	}
	if _, err := su.Exec(ctx, `REVOKE UPDATE (email_bidx, handle_bidx) ON accounts FROM `+harness.SCRAMUser); err != nil {
		t.Fatal(err)
	}
	var pe *pgconn.PgError
	if _, err = r.Exec(ctx, ins, 73, "priv73@x.io", "n73"); !errors.As(err, &pe) || pe.Code != "42501" {
		t.Errorf("INSERT by a role without UPDATE while the table migrates: %v, want 42501 (docs/ADOPTION.md step 4)", err)
	}

	// No duplicate was made: the backfill completes, and the values are
	// found once complete.
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	if s := e.tableState(ctx, su, "public.accounts"); s != "complete" {
		t.Fatalf("state %q after the backfill, want complete", s)
	}
	c2 := e.appConn(ctx, p)
	for v, want := range map[string]int{"a@x.io": 1, "b@x.io": 2, "c@x.io": 3, "d@x.io": 4, "e@x.io": 5, "same@x.io": 30} {
		var id int
		if err := c2.QueryRow(ctx, `SELECT id FROM accounts WHERE email = $1`, v).Scan(&id); err != nil || id != want {
			t.Errorf("complete: lookup of %q: row %d (%v), want %d", v, id, err, want)
		}
	}
}

// review21eDecrypting makes db's accounts (row 1 'a@x.io') decrypting:
// backfilled, then decrypted (plaintext, blind indexes NULL); it returns
// the env, a direct superuser connection and one through pgveil.
func review21eDecrypting(t *testing.T, ctx context.Context, db string) (*opsEnv, *pgx.Conn, *pgx.Conn) {
	t.Helper()
	e := newOpsEnv(t, db, review21ePolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `CREATE TABLE accounts (id int PRIMARY KEY, org int8 NOT NULL, email text, handle text);
		INSERT INTO accounts VALUES (1, 1, 'a@x.io', 'h1')`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--prepare")
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	e.run(ctx, 0, "migrate", "-c", cfg, "--decrypt", "--apply")
	if s := e.tableState(ctx, su, "public.accounts"); s != "decrypting" {
		t.Fatalf("state %q, want decrypting", s)
	}
	p := e.proxy(e.config(""))
	return e, su, e.appConn(ctx, p)
}

// TestReview21eUniqueFillDecrypting (holds): while a table decrypts, rows
// the pass turned into plaintext have a NULL blind index again; the fill
// finds them as it finds legacy rows.
func TestReview21eUniqueFillDecrypting(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	_, su, c := review21eDecrypting(t, ctx, "ops_review21e_dec")
	var n int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE email = 'a@x.io' AND email_bidx IS NULL`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after the decrypt pass: %d plaintext rows without an index (%v), want 1", n, err)
	}
	_, err := c.Exec(ctx, `INSERT INTO accounts (id, org, email) VALUES (2, 1, $1)`, " A@x.io")
	want23505On(t, "INSERT of a value a decrypted row holds", err, "accounts_email_bidx_idx", "a@x.io")
	if tag, err := c.Exec(ctx, `INSERT INTO accounts (id, org, email) VALUES (3, 1, $1)`, "new@x.io"); err != nil || tag.RowsAffected() != 1 {
		t.Errorf("INSERT of a new value while decrypting: %v, %d rows", err, tag.RowsAffected())
	}
}
