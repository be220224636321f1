//go:build review21pending

package integration

// Review 21e, pending: under row-level security the fill (an UPDATE run
// as the application's role, rewrite/unique.go) sees only the legacy rows
// the role may update. With a policy per tenant, and a blind index unique
// across tenants (docs/LIMITS.md), a value a legacy row of another tenant
// holds goes in: PostgreSQL's own UNIQUE index on the plaintext checks
// every row whatever the policies, so the same INSERT without pgveil
// fails with 23505. The duplicate then stops the backfill. pgveil cannot
// see those rows as that role; a fix needs the check to run as the table's
// owner (a SECURITY DEFINER function made by `migrate --prepare`).
//
// And while a table is decrypting: a decrypt pass turns a sealed row
// (index set) into plaintext with a NULL index. An INSERT of that value
// while the pass's transaction is open finds no legacy row (the fill's
// UPDATE reads the row's old version, whose index is set, and skips it
// without waiting); the UNIQUE index waits for the pass, whose commit
// removes the index: the INSERT goes in beside the row now holding the
// value in plaintext. (In migrating no transaction takes a row's index
// away; the backfill fills it, and the fill waits for it.) A fix: the
// fill also locks rows holding the written index while the table
// decrypts, so that it rechecks them after the pass.

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/integration/harness"
)

func TestReview21eUniqueFillUnderRLS(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	e := newOpsEnv(t, "ops_review21e_rls", review21ePolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `CREATE TABLE accounts (id int PRIMARY KEY, org int8 NOT NULL, email text, handle text);
		INSERT INTO accounts VALUES (1, 1, 'a@x.io', 'h1'), (2, 2, 'b@x.io', 'h2');
		ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
		CREATE POLICY per_org ON accounts TO `+harness.SCRAMUser+` USING (org = current_setting('app.org')::int8);
		GRANT SELECT, INSERT, UPDATE ON accounts TO `+harness.SCRAMUser); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--prepare")
	if _, err := su.Exec(ctx, `GRANT SELECT, UPDATE ON accounts TO `+harness.SCRAMUser); err != nil { // the blind-index columns added
		t.Fatal(err)
	}
	p := e.proxy(e.config(""))
	c := connectPgx(t, ctx, harness.BuildURL(p.Addr, harness.SCRAMUser, harness.SCRAMPass, e.db, "sslmode=disable"))
	if _, err := c.Exec(ctx, `SET app.org = '1'`); err != nil {
		t.Fatal(err)
	}
	_, err := c.Exec(ctx, `INSERT INTO accounts (id, org, email) VALUES (3, 1, $1)`, "b@x.io")
	want23505On(t, "INSERT under a per-tenant policy of an email a legacy row of another tenant holds", err, "accounts_email_bidx_idx", "b@x.io")
}

func TestReview21eUniqueFillDecryptRace(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	e, su, c := review21eDecrypting(t, ctx, "ops_review21e_decrace")
	// Row 2 written through pgveil while decrypting: sealed, indexed.
	if _, err := c.Exec(ctx, `INSERT INTO accounts (id, org, email) VALUES (2, 1, $1)`, "race@x.io"); err != nil {
		t.Fatal(err)
	}
	// A decrypt pass's transaction over row 2 (what `migrate --decrypt`
	// writes: the plaintext, the index NULL), open.
	d := e.conn(ctx)
	tx, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE accounts SET email = 'race@x.io', email_bidx = NULL WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, `INSERT INTO accounts (id, org, email) VALUES (3, 1, $1)`, pgx.QueryExecModeExec, "race@x.io")
		done <- err
	}()
	waitFor(t, 30*time.Second, "the INSERT to wait for the decrypt pass", func() (bool, error) {
		var n int
		err := su.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		return n == 1, err
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	want23505On(t, "INSERT of a value a decrypt pass turns into plaintext meanwhile", <-done, "accounts_email_bidx_idx", "race@x.io")
}
