package integration

// Adversarial review of the operator commands (cmd/pgveil migrate, rotate,
// shred, check, keygen; cmd/pgveil/internal/ops; keysource shred/rotate) on
// a live table. Tests named TestOpsReviewFound* demonstrated defects that
// failed up to 22062ef and pass since each was fixed on branch h-opsfix
// (FIXED lines below); TestOpsReviewHolds* are attacks that held.
//
// FOUND
//
// MEDIUM  TestOpsReviewFoundMigrateAfterShred
//   After `pgveil shred` of one tenant of a complete table with a blind
//   index, every later `pgveil migrate --apply` on that table (the
//   documented way to adopt a new column, or to fill the next index of a
//   blind-index rotation) exits 1: shred sets the tenant's blind indexes to
//   NULL and leaves its ciphertext, migratePredicate ("a sealed value lacks
//   its blind index") selects those rows, migrator.work tries to open them
//   to index them, gets ErrShredded, and counts a row problem ("sealed
//   value does not open (key shredded)") for every shredded row, forever.
//   The message then says "the table stays in state migrating" although
//   the state is (and stays) complete. Cause: ops/migrate.go
//   migratePredicate + migrator.work do not know that a shredded envelope
//   is meant to have no blind index (shred.go clears them on purpose).
//   Expected: exit 0, "nothing to encrypt", the shredded rows left alone.
//   FIXED in ops/migrate.go migratePredicate (and plan.go count): a sealed
//   value whose key id is a tombstone in pgveil.keys (predicate.go
//   shreddedSQL) lacks its blind index on purpose and is no work; such
//   rows are counted and reported ("N row(s) hold values under shredded
//   keys: left as they are"); migrator.work skips a value shredded during
//   the run; the problem message names the state the table really keeps.
//
// HIGH    TestOpsReviewFoundShredDuringMigration
//   `pgveil shred` of a tenant of a table still in state migrating (after
//   `migrate --apply --prepare`, or a backfill that was interrupted or is
//   running) exits 0 ("0 data key(s) destroyed (none left: already
//   shredded)") while every not-yet-encrypted value of that tenant is
//   plaintext at rest and is returned by pgveil as legacy plaintext. The
//   next `migrate --apply` then seals that plaintext under a NEW key
//   version of the shredded tenant (keysource loadActive creates one after
//   a tombstone), so the tenant's data stays readable through pgveil for
//   good: the erasure the command reported never happened. Cause:
//   ops/shred.go Shred only tombstones keys and clears blind indexes; it
//   neither refuses a table in state migrating/decrypting nor looks for
//   the tenant's values without an envelope. Expected: refuse (exit 1,
//   naming the table state) or erase the tenant's plaintext too.
//   FIXED in ops/shred.go ShredTarget: refuses (exit 1, nothing changed,
//   before the prompt) a table in state migrating or decrypting, naming
//   the state and the remedy (finish the backfill, then shred), and any
//   tenant with values without an envelope in a complete table.
//
// MEDIUM  TestOpsReviewFoundCheckPassesPlaintextColumn
//   docs/ADOPTION.md §7 "New columns: add them to the policy and to the
//   table (as bytea), reload pgveil (SIGHUP), and run `pgveil migrate
//   --apply` if they already hold data." Following that order on a
//   complete table whose new column holds data, every read of the column
//   through pgveil fails (PV003, plaintext where an envelope was expected)
//   from the reload until migrate sets the table migrating, and `pgveil
//   check` exits 0 throughout: it never looks at the data, so it misses a
//   configured column of a complete table that is all plaintext (the
//   proxy's hard failure). Expected: check reports the column (problem,
//   exit 1, "run pgveil migrate --apply [--prepare] first") and the doc
//   tells to run `migrate --apply --prepare` with the new policy before
//   the reload. Cause: ops/check.go Check is schema-only; doc order in
//   docs/ADOPTION.md §7.
//   FIXED in ops/check.go checkPlaintext (problem plaintext_in_complete:
//   the first 10,000 rows of each complete table, storage order) and
//   docs/ADOPTION.md §7 (migrate --apply --prepare with the new policy,
//   then the reload, then the backfill). The test now also follows the
//   new order (the old order cannot stop failing reads without a proxy
//   change: the replica serves a policy whose column holds plaintext in a
//   complete table).
//
// HIGH    TestOpsReviewFoundRotateWrongMasterKey
//   `pgveil rotate` run with a config whose master key is another valid
//   key (a wrong key_file on the operator's host) does not first check
//   that the master key opens the stored data keys (as `pgveil check`
//   does): Keyring.Rotate wraps a new version of every column/tenant key
//   under the wrong master key, makes it active and retires the working
//   versions (committed, NOTIFY sent). Re-encryption then fails on every
//   row, reported as "sealed value does not open (tampered)" (wrong
//   diagnosis), exit 1. From then on every write of every tenant through
//   every pgveil replica (right master key) fails (XX000 "could not
//   encrypt"), and `pgveil rotate --finish` with the right key cannot
//   repair it ("wrapped under master key local:…, which is not loaded").
//   Expected: refuse before touching pgveil.keys (exit 1, "the configured
//   master key cannot open data key N"). Cause: ops/rotate.go rotateTable
//   / keysource/rotate.go Keyring.Rotate never unwraps an existing
//   version before retiring it.
//   FIXED in ops/rotate.go checkRotatable (every active and retired
//   version of the selected keys is unwrapped, keysource Keyring.CheckUnwrap,
//   before any change; exit 1 naming the key and master key) and
//   keysource/rotate.go Keyring.Rotate (unwraps the version it retires
//   inside its transaction).
//
// HIGH    TestOpsReviewFoundPrimaryKeyPlaintextInOutput
//   When an encrypted column is (part of) the primary key, migrate's
//   problem report ("N row(s): …(primary keys, first 5: …)") prints the
//   plaintext of that encrypted column to stderr
//   ("org is NULL … (primary keys, first 1: bob.private@x.org)"), and
//   migrate rewrites the primary key itself to an envelope (breaking any
//   foreign key to it). `pgveil check` says nothing about an encrypted
//   primary-key column. Expected: check reports it as a problem (and
//   migrate refuses), or rows are named without the encrypted values.
//   Cause: ops/batch.go batchOnce (pc.Keys = r.key), ops/check.go
//   checkTable (no finding for a policy column in lt.PK).
//   FIXED in ops/check.go checkTable (problem primary_key_encrypted, so
//   migrate refuses the table before touching it; migrate --decrypt, the
//   way out, still walks it) and ops/target.go rowName (a problem report
//   names a row with an encrypted key column by its plain key columns and
//   ctid, never by an encrypted value or its envelope).
//
// MEDIUM  TestOpsReviewFoundShredClearsNewWrites
//   shred destroys the keys first (committed, NOTIFY), then clears the
//   tenant's blind indexes in a loop of batches "WHERE tenant = $1 AND
//   bidx IS NOT NULL" until none is left. A row the tenant writes through
//   pgveil after the keys are gone (docs/SHREDDING.md: a new key version,
//   "readable as usual") but before the loop ends has its blind index
//   cleared too (shred even counts it: "cleared in 11 row(s)" for 10
//   shredded rows): it reads back but WHERE email = $1 never finds it.
//   On a large tenant the loop runs for minutes. Made deterministic here
//   with a row lock that holds the loop. Expected: clear only rows whose
//   envelopes are under the shredded key ids. Cause: ops/shred.go Shred
//   (the clearing predicate ignores the envelope's key id).
//   FIXED in ops/shred.go Shred: a blind index is cleared only where its
//   column's envelope carries a destroyed (tombstoned) key id, read from
//   the envelope header on the server (predicate.go shreddedSQL), also on
//   a rerun.
//
// LOW     TestOpsReviewFoundNullTenantFixThroughPgveil
//   docs/ADOPTION.md "Rows migrate cannot encrypt": "Fix those rows
//   (through pgveil or directly)". Through pgveil, `UPDATE … SET org = 1`
//   of a row migrate left for its NULL tenant (values still plaintext) is
//   refused (0A000 "would move rows … to another tenant"). Only a
//   direct UPDATE, or one that also rewrites every encrypted value, works.
//   FIXED in docs/ADOPTION.md and ops/migrate.go tenantOf: both say to set
//   the tenant on a direct connection, with the statement (the proxy
//   cannot tell plaintext from sealed values when it plans the UPDATE, so
//   the refusal stays). The test now checks the documented fix instead.
//
// HELD (TestOpsReviewHolds*)
//   - migrate of NULL, '', 150 kB text, 100 kB bytea, unicode, mixed-case
//     emails, composite primary key (text, int), per-tenant keys, a NULL
//     tenant (left plaintext, reported by primary key, table stays
//     migrating, then completes once fixed); stopped by SIGINT twice
//     (rollback), SIGINT once (batch in flight commits) and SIGKILL while
//     blocked on a row lock held by the test, with app INSERT/UPDATE/DELETE
//     through pgveil meanwhile; every rerun resumes, nothing sealed twice,
//     nothing skipped, lookups find every row, no plaintext at rest.
//   - rotate stopped by SIGINT while blocked on a locked row, app reading
//     old and new versions and writing meanwhile, then `rotate --finish`
//     re-encrypts the rest and drops every retired version.
//   - shred: another tenant's open session keeps reading; the shredded
//     tenant reads NULL (not an error, not garbage); its new writes get a
//     new key version and read back; rerun is idempotent.
//   - nothing of a value in the output of migrate (plan, apply with a
//     problem row), rotate, shred, check, migrate --decrypt at log level
//     debug.
//   - error paths: bad flags, a missing config, an unknown policy key
//     (file:line:key), an unreachable database (no password in the
//     message), a corrupt master key file (no key bytes echoed), unknown
//     table/column/tenant, keygen refusing to overwrite: clear messages,
//     exit 1/2.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/integration/harness"
)

// rvPolicy: a tenant table with a blind-indexed email and a note.
const rvPolicy = `tables:
  public.rv:
    key_context: org
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase]
      note:
        type: text
`

const rvSchema = `
CREATE TABLE rv (
  id int PRIMARY KEY,
  org int NOT NULL,
  email text,
  email_bidx bytea,
  note text
);
CREATE INDEX rv_email_bidx_idx ON rv (email_bidx);
INSERT INTO rv SELECT g, 1 + g % 3, 'u' || g || '@x.org', NULL, 'note ' || g FROM generate_series(1, 30) g;`

// rvReadable counts, per org, the rows whose email reads back as written.
func rvReadable(t *testing.T, ctx context.Context, c *pgx.Conn) map[int]int {
	t.Helper()
	rs, err := c.Query(ctx, `SELECT id, org, email FROM rv`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	out := map[int]int{}
	for rs.Next() {
		var id, org int
		var email *string
		if err := rs.Scan(&id, &org, &email); err != nil {
			t.Fatal(err)
		}
		if email != nil && *email == fmt.Sprintf("u%d@x.org", id) {
			out[org]++
		}
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOpsReviewFoundMigrateAfterShred(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_rv_shredmig", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	e.run(ctx, 0, "shred", "-c", cfg, "--table", "public.rv", "--tenant", "2", "--yes")

	r := e.run(ctx, -1, "migrate", "-c", cfg, "--apply")
	state := e.tableState(ctx, su, "public.rv")
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to encrypt") {
		t.Errorf("migrate --apply after shredding tenant 2: exit %d (state now %q), want 0 and nothing to encrypt\nstdout:\n%s\nstderr:\n%s",
			r.code, state, r.stdout, tail(r.stderr, 8))
	}
	if strings.Contains(r.stderr, "stays in state migrating") && state != "migrating" {
		t.Errorf("the message says the table stays in state migrating; its state is %q", state)
	}
	if !strings.Contains(r.stdout, "10 row(s) hold values under shredded keys") {
		t.Errorf("the shredded rows are not counted:\n%s", r.stdout)
	}
	// The plan (without --apply) counts the shredded rows as work too.
	r = e.run(ctx, -1, "migrate", "-c", cfg)
	if strings.Contains(r.stdout, "10 blind indexes to fill") || !strings.Contains(r.stdout, "10 row(s) hold values under shredded keys") {
		t.Errorf("the plan lists the shredded tenant's 10 rows as blind indexes to fill, or does not count them as shredded:\n%s", r.stdout)
	}
}

func TestOpsReviewFoundShredDuringMigration(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_rv_shredplain", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	// Adoption under way: DDL, keys, state migrating; the app goes through pgveil.
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--prepare")
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	if n := rvReadable(t, ctx, app)[2]; n != 10 {
		t.Fatalf("before: tenant 2 reads %d rows", n)
	}

	r := e.run(ctx, -1, "shred", "-c", cfg, "--table", "public.rv", "--tenant", "2", "--yes")
	t.Logf("shred: exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 4))
	var plain int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM rv WHERE org = 2 AND (email NOT LIKE 'pgv1:%' OR note NOT LIKE 'pgv1:%')`).Scan(&plain); err != nil {
		t.Fatal(err)
	}
	readable := rvReadable(t, ctx, app)[2]
	if r.code != 0 && (r.code != 1 || !strings.Contains(r.stderr, "state migrating") || !strings.Contains(r.stderr, "migrate --apply")) {
		t.Errorf("shred refused with exit %d without naming the state and the remedy:\n%s", r.code, tail(r.stderr, 4))
	}
	if r.code == 0 && (plain > 0 || readable > 0) {
		t.Errorf("shred of tenant 2 exited 0, but %d of its rows are still plaintext at rest and %d read back in clear through pgveil", plain, readable)
	}
	// The backfill goes on: the shredded tenant's plaintext is sealed under a new key.
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	if n := rvReadable(t, ctx, e.appConn(ctx, p))[2]; r.code == 0 && n > 0 {
		t.Errorf("after the backfill the 'shredded' tenant 2 reads %d of 10 rows in clear through pgveil (new key version)", n)
	}
}

func TestOpsReviewFoundCheckPassesPlaintextColumn(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	const v1 = `tables:
  public.rv:
    key_context: org
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase]
`
	e := newOpsEnv(t, "ops_rv_newcol", v1)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg1 := e.writeConfig("v1.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg1, "--apply")
	if s := e.tableState(ctx, su, "public.rv"); s != "complete" {
		t.Fatalf("state %q", s)
	}
	// The old docs/ADOPTION.md §7 order: add the column to the policy,
	// reload pgveil, then migrate. Between the reload and migrate every
	// read of the new column fails, and check must say so.
	e.policy = rvPolicy
	cfg2 := e.writeConfig("v2.yaml", e.config(""))
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	var note *string
	readErr := app.QueryRow(ctx, `SELECT note FROM rv WHERE id = 1`).Scan(&note)
	r := e.run(ctx, -1, "check", "-c", cfg2)
	if readErr != nil && r.code == 0 {
		t.Errorf("every read of the new column fails through pgveil (%v), yet `pgveil check` exits 0:\n%s", readErr, r.stdout)
	}
	if readErr == nil {
		t.Errorf("a read of a plaintext column of a complete table through pgveil succeeded (%s): the test proves nothing", fmtPtr(note))
	}
	if !strings.Contains(r.stdout, "column public.rv.note holds values without an envelope") || !strings.Contains(r.stdout, "migrate --apply --prepare") ||
		strings.Contains(r.stdout, "column public.rv.email holds") {
		t.Errorf("check does not name the plaintext column (and only it) with the remedy:\n%s", r.stdout)
	}
	// The documented order now: migrate --apply --prepare with the new
	// policy before the reload (here: the replica that reloaded too early
	// recovers as soon as the table is migrating).
	doc, err := os.ReadFile("../docs/ADOPTION.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(doc)
	if i := strings.Index(sec, "- New columns"); i >= 0 {
		sec = sec[i:]
	}
	if prep, reload := strings.Index(sec, "--apply --prepare"), strings.Index(sec, "reload every replica"); prep < 0 || reload < 0 || prep > reload {
		t.Errorf("docs/ADOPTION.md §7 does not tell to run `migrate --apply --prepare` with the new policy before the reload")
	}
	e.run(ctx, 0, "migrate", "-c", cfg2, "--apply", "--prepare")
	if s := e.tableState(ctx, su, "public.rv"); s != "migrating" {
		t.Fatalf("state after --prepare: %q", s)
	}
	waitFor(t, 10*time.Second, "the new column to read as legacy plaintext", func() (bool, error) {
		err := e.appConn(ctx, p).QueryRow(ctx, `SELECT note FROM rv WHERE id = 1`).Scan(&note)
		return err == nil && note != nil && *note == "note 1", nil
	})
	if r := e.run(ctx, -1, "check", "-c", cfg2); r.code != 0 {
		t.Errorf("check during the migration: exit %d\n%s", r.code, r.stdout)
	}
	// ... and run migrate: afterwards the column reads, and check passes.
	e.run(ctx, 0, "migrate", "-c", cfg2, "--apply")
	app2 := e.appConn(ctx, p)
	if err := app2.QueryRow(ctx, `SELECT note FROM rv WHERE id = 1`).Scan(&note); err != nil || note == nil || *note != "note 1" {
		t.Fatalf("after migrate: %v %v", fmtPtr(note), err)
	}
	e.run(ctx, 0, "check", "-c", cfg2)
}

// waitLockWait waits until a backend of application app waits for a lock.
func waitLockWait(t *testing.T, ctx context.Context, su *pgx.Conn, app string) {
	t.Helper()
	waitFor(t, time.Minute, app+" to wait for the row lock", func() (bool, error) {
		var n int
		err := su.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&n)
		return n > 0, err
	})
}

// waitGone waits until no backend of application app is left (a killed
// or cancelled run's backend ends once it notices).
func waitGone(t *testing.T, ctx context.Context, su *pgx.Conn, app string) {
	t.Helper()
	waitFor(t, time.Minute, "the backends of "+app+" to end", func() (bool, error) {
		var n int
		err := su.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n)
		return n == 0, err
	})
}

// lockRow starts a transaction on a direct connection holding row id of
// table locked; the returned func commits it.
func lockRow(t *testing.T, ctx context.Context, e *opsEnv, table, where string) func() {
	t.Helper()
	c := e.conn(ctx)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM `+table+` WHERE `+where+` FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	done := false
	release := func() {
		if !done {
			done = true
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(release)
	return release
}

const edgePolicy = `tables:
  public.edge:
    key_context: org
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase, trim]
      note:
        type: text
      blob:
        type: bytea
`

// edgeRow is what a row of edge must read as through pgveil.
type edgeRow struct {
	org         *int64
	email, note *string
	blob        []byte
}

func TestOpsReviewHoldsMigrateEdgesInterrupts(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	e := newOpsEnv(t, "ops_rv_edge", edgePolicy)
	su := e.conn(ctx)
	long := strings.Repeat("Zoë-long-", 150000/10)
	bigBlob := bytes.Repeat([]byte{0x02, 0x00, 0xff, 'p', 'g', 'v', '1'}, 100000/7)
	for _, s := range []string{
		`CREATE TABLE edge (region text NOT NULL, id int NOT NULL, org bigint, email text, note text, blob bytea, PRIMARY KEY (region, id))`,
		`INSERT INTO edge SELECT CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'US' END, g, 1 + g % 4,
  'User' || g || '@Example.org', 'note ' || g, convert_to('blob ' || g, 'UTF8') FROM generate_series(1, 40) g`,
		`UPDATE edge SET email = '', note = NULL, blob = ''::bytea WHERE id = 2`,
		`UPDATE edge SET email = '  Zoë@Exämple.org ', note = 'Zoë 🎉 ''quoted'' \ back' WHERE id = 4`,
		`UPDATE edge SET email = NULL, note = '', blob = NULL WHERE id = 5`,
		`UPDATE edge SET org = NULL WHERE id = 6`,
	} {
		if _, err := su.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if _, err := su.Exec(ctx, `UPDATE edge SET note = $1, blob = $2 WHERE id = 3`, long, bigBlob); err != nil {
		t.Fatal(err)
	}
	want := map[int]edgeRow{}
	for id := 1; id <= 40; id++ {
		org := int64(1 + id%4)
		want[id] = edgeRow{org: &org, email: sp(fmt.Sprintf("User%d@Example.org", id)), note: sp(fmt.Sprintf("note %d", id)), blob: []byte(fmt.Sprintf("blob %d", id))}
	}
	want[2] = edgeRow{org: want[2].org, email: sp(""), blob: []byte{}}
	want[3] = edgeRow{org: want[3].org, email: want[3].email, note: sp(long), blob: bigBlob}
	want[4] = edgeRow{org: want[4].org, email: sp("  Zoë@Exämple.org "), note: sp(`Zoë 🎉 'quoted' \ back`), blob: want[4].blob}
	want[5] = edgeRow{org: want[5].org, note: sp("")}
	want[6] = edgeRow{email: want[6].email, note: want[6].note, blob: want[6].blob}

	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--prepare")
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)

	// Run 1: blocked on row 7 in its second pass; two SIGINTs roll back.
	release := lockRow(t, ctx, e, "edge", "id = 7")
	cmd, stdout, stderr := e.start("migrate", "-c", cfg, "--apply", "--batch", "1", "--workers", "1")
	waitLockWait(t, ctx, su, "pgveil migrate")
	// The application writes through pgveil meanwhile.
	if _, err := app.Exec(ctx, `INSERT INTO edge (region, id, org, email, note, blob) VALUES ('eu', 100, 2, $1, $2, $3)`, "New@Example.org", "new note", []byte("new blob")); err != nil {
		t.Fatal(err)
	}
	want[100] = edgeRow{org: sp64(2), email: sp("New@Example.org"), note: sp("new note"), blob: []byte("new blob")}
	if _, err := app.Exec(ctx, `UPDATE edge SET note = $1 WHERE id = 8`, "changed 8"); err != nil {
		t.Fatal(err)
	}
	w8 := want[8]
	w8.note = sp("changed 8")
	want[8] = w8
	if _, err := app.Exec(ctx, `DELETE FROM edge WHERE id = 9`); err != nil {
		t.Fatal(err)
	}
	delete(want, 9)
	cmd.Process.Signal(syscall.SIGINT)
	waitFor(t, 10*time.Second, "the first SIGINT to be taken", func() (bool, error) {
		return strings.Contains(stderr.String(), "stopping after the batches in flight"), nil
	})
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 || !strings.Contains(stderr.String(), "rolled back") {
		t.Fatalf("two SIGINTs: exit %d\n%s\n%s", code, stdout.String(), tail(stderr.String(), 10))
	}
	var row7 string
	su.QueryRow(ctx, `SELECT note FROM edge WHERE id = 7`).Scan(&row7)
	if row7 != "note 7" {
		t.Fatalf("row 7 after the rollback: %q", row7)
	}

	// Run 2: blocked on row 7 again; one SIGINT: the batch in flight commits once the lock goes.
	waitGone(t, ctx, su, "pgveil migrate")
	cmd, stdout, stderr = e.start("migrate", "-c", cfg, "--apply", "--batch", "1", "--workers", "1")
	waitLockWait(t, ctx, su, "pgveil migrate")
	cmd.Process.Signal(syscall.SIGINT)
	waitFor(t, 10*time.Second, "the SIGINT to be taken", func() (bool, error) {
		return strings.Contains(stderr.String(), "stopping after the batches in flight"), nil
	})
	release()
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("one SIGINT: exit %d\n%s\n%s", code, stdout.String(), tail(stderr.String(), 10))
	}
	su.QueryRow(ctx, `SELECT note FROM edge WHERE id = 7`).Scan(&row7)
	if !strings.HasPrefix(row7, "pgv1:") {
		t.Fatalf("the batch in flight (row 7) did not commit: %q", row7)
	}

	// Run 3: SIGKILL while blocked on row 10, which an app transaction
	// through pgveil holds after updating it.
	if _, err := su.Exec(ctx, `UPDATE edge SET note = 'note 10 again' WHERE id = 10`); err != nil { // plaintext again, as a legacy writer left it
		t.Fatal(err)
	}
	w10 := want[10]
	w10.note = sp("note 10 again")
	want[10] = w10
	tx, err := app.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE edge SET email = $1 WHERE id = 10`, "Ten@Example.org"); err != nil {
		t.Fatal(err)
	}
	w10.email = sp("Ten@Example.org")
	want[10] = w10
	waitGone(t, ctx, su, "pgveil migrate")
	cmd, _, _ = e.start("migrate", "-c", cfg, "--apply", "--batch", "1", "--workers", "1")
	waitLockWait(t, ctx, su, "pgveil migrate")
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// Run 4: row 6 has no tenant: left as it is, named, exit 1, state migrating.
	waitGone(t, ctx, su, "pgveil migrate")
	r := e.run(ctx, 1, "migrate", "-c", cfg, "--apply")
	if !strings.Contains(r.stderr, "org is NULL") || !strings.Contains(r.stderr, "US,6") && !strings.Contains(r.stderr, "eu,6") {
		t.Errorf("the NULL-tenant row is not named:\n%s", tail(r.stderr, 6))
	}
	if s := e.tableState(ctx, su, "public.edge"); s != "migrating" {
		t.Fatalf("state with a NULL-tenant row left: %q", s)
	}
	// Fixed directly: through pgveil, setting the tenant alone is refused
	// (TestOpsReviewFoundNullTenantFixThroughPgveil).
	if _, err := su.Exec(ctx, `UPDATE edge SET org = 3 WHERE id = 6`); err != nil {
		t.Fatal(err)
	}
	w6 := want[6]
	w6.org = sp64(3)
	want[6] = w6
	r = e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	if s := e.tableState(ctx, su, "public.edge"); s != "complete" {
		t.Fatalf("state: %q\n%s", s, r.stdout)
	}

	// At rest: every value sealed exactly once (length = plaintext + overhead).
	var bad int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM edge WHERE
		(email IS NOT NULL AND (email NOT LIKE 'pgv1:%' OR email_bidx IS NULL))
		OR (note IS NOT NULL AND note NOT LIKE 'pgv1:%')
		OR (blob IS NOT NULL AND (get_byte(blob, 0) <> 1 OR octet_length(blob) < 33))
		OR note LIKE '%Zoë%' OR email ILIKE '%example%' OR position('blob'::bytea in blob) > 0`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Fatalf("%d rows not fully sealed at rest", bad)
	}
	var blobLen int
	su.QueryRow(ctx, `SELECT octet_length(blob) FROM edge WHERE id = 3`).Scan(&blobLen)
	if blobLen != len(bigBlob)+33 {
		t.Errorf("big blob stored as %d bytes, want %d (sealed once)", blobLen, len(bigBlob)+33)
	}

	// Through pgveil: every row exactly; every email found by lookup.
	app = e.appConn(ctx, p)
	rs, err := app.Query(ctx, `SELECT id, org, email, note, blob FROM edge`)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for rs.Next() {
		var id int
		var g edgeRow
		if err := rs.Scan(&id, &g.org, &g.email, &g.note, &g.blob); err != nil {
			t.Fatal(err)
		}
		seen++
		w, ok := want[id]
		if !ok || fmtPtr64(g.org) != fmtPtr64(w.org) || fmtPtr(g.email) != fmtPtr(w.email) || fmtPtr(g.note) != fmtPtr(w.note) ||
			!bytes.Equal(g.blob, w.blob) || (g.blob == nil) != (w.blob == nil) {
			t.Errorf("row %d reads org %s email %.40s note %.40s blob %d bytes; want org %s email %.40s note %.40s blob %d bytes",
				id, fmtPtr64(g.org), fmtPtr(g.email), fmtPtr(g.note), len(g.blob), fmtPtr64(w.org), fmtPtr(w.email), fmtPtr(w.note), len(w.blob))
		}
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(want) {
		t.Errorf("read %d rows, want %d", seen, len(want))
	}
	for id, w := range want {
		if w.email == nil {
			continue
		}
		var got int
		if err := app.QueryRow(ctx, `SELECT id FROM edge WHERE email = $1`, strings.ToUpper(strings.TrimSpace(*w.email))).Scan(&got); err != nil || got != id {
			t.Errorf("lookup of %q: row %d, %v (want %d)", *w.email, got, err, id)
		}
	}
	r = e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	if !strings.Contains(r.stdout, "nothing to encrypt") {
		t.Errorf("rerun after completion:\n%s", r.stdout)
	}
}

func sp64(v int64) *int64 { return &v }

func fmtPtr64(p *int64) string {
	if p == nil {
		return "<NULL>"
	}
	return fmt.Sprint(*p)
}

func TestOpsReviewHoldsRotateInterruptFinish(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	e := newOpsEnv(t, "ops_rv_rotate", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	before := rvReadable(t, ctx, app)

	release := lockRow(t, ctx, e, "rv", "id = 5")
	cmd, stdout, stderr := e.start("rotate", "-c", cfg, "--batch", "1", "--workers", "1", "--grace", "1ms")
	waitLockWait(t, ctx, su, "pgveil rotate")
	// Mid-rotation: old and new versions in the table; the app reads and writes.
	var versions int
	su.QueryRow(ctx, `SELECT count(DISTINCT substr(email, 1, 13)) FROM rv`).Scan(&versions)
	if got := rvReadable(t, ctx, app); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("mid-rotation reads %v, want %v", got, before)
	}
	if _, err := app.Exec(ctx, `INSERT INTO rv (id, org, email, note) VALUES (31, 2, 'u31@x.org', 'n')`); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGINT)
	waitFor(t, 10*time.Second, "the SIGINT to be taken", func() (bool, error) {
		return strings.Contains(stderr.String(), "stopping after the batches in flight"), nil
	})
	release()
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("rotate after SIGINT: exit %d\n%s\n%s", code, stdout.String(), tail(stderr.String(), 10))
	}
	var retired int
	su.QueryRow(ctx, `SELECT count(*) FROM pgveil.keys WHERE state = 'retired'`).Scan(&retired)
	if retired == 0 {
		t.Fatal("no retired versions left after an interrupted rotation: the interrupt proved nothing")
	}
	if got := rvReadable(t, ctx, app); got[1] != before[1] || got[2] != before[2]+1 || got[3] != before[3] {
		t.Fatalf("after the interrupt reads %v (before %v)", got, before)
	}
	r := e.run(ctx, 0, "rotate", "-c", cfg, "--finish", "--grace", "1ms")
	su.QueryRow(ctx, `SELECT count(*) FROM pgveil.keys WHERE state = 'retired'`).Scan(&retired)
	if retired != 0 {
		t.Fatalf("rotate --finish left %d retired versions\n%s", retired, r.stdout)
	}
	if got := rvReadable(t, ctx, e.appConn(ctx, p)); got[1] != before[1] || got[2] != before[2]+1 || got[3] != before[3] {
		t.Fatalf("after --finish reads %v (before %v)", got, before)
	}
	t.Logf("mid-rotation %d distinct key-id prefixes; finish:\n%s", versions, r.stdout)
}

func TestOpsReviewHoldsShredSessions(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_rv_shred", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(e.config(""))
	victim, other := e.appConn(ctx, p), e.appConn(ctx, p)
	if got := rvReadable(t, ctx, victim); got[2] != 10 {
		t.Fatalf("before: %v", got)
	}
	// A transaction of another tenant's session stays open across the shred.
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.run(ctx, 0, "shred", "-c", cfg, "--table", "public.rv", "--tenant", "2", "--yes")
	waitFor(t, 10*time.Second, "tenant 2 to read as NULL", func() (bool, error) {
		return rvReadable(t, ctx, victim)[2] == 0, nil
	})
	var id int
	var email *string
	if err := tx.QueryRow(ctx, `SELECT id, email FROM rv WHERE org = 1 AND email = $1`, "U3@x.org").Scan(&id, &email); err != nil || id != 3 || email == nil || *email != "u3@x.org" {
		t.Fatalf("other tenant's session after the shred: %d %s %v", id, fmtPtr(email), err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// NULL, not an error, not garbage.
	rs, err := victim.Query(ctx, `SELECT email, note FROM rv WHERE org = 2`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var a, b *string
		if err := rs.Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		if a != nil || b != nil {
			t.Fatalf("shredded tenant reads %s %s", fmtPtr(a), fmtPtr(b))
		}
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	// New writes of the shredded tenant: a new version, readable, found.
	if _, err := victim.Exec(ctx, `INSERT INTO rv (id, org, email, note) VALUES (50, 2, 'fresh@x.org', 'fresh')`); err != nil {
		t.Fatal(err)
	}
	if err := victim.QueryRow(ctx, `SELECT id, email FROM rv WHERE email = $1`, "FRESH@x.org").Scan(&id, &email); err != nil || id != 50 || email == nil || *email != "fresh@x.org" {
		t.Fatalf("new write of the shredded tenant: %d %s %v", id, fmtPtr(email), err)
	}
	r := e.run(ctx, 0, "shred", "-c", cfg, "--table", "public.rv", "--tenant", "2", "--yes")
	t.Logf("second shred (after a new write):\n%s", r.stdout)
	if got := rvReadable(t, ctx, other); got[1] != 10 || got[3] != 10 {
		t.Fatalf("other tenants: %v", got)
	}
}

func TestOpsReviewHoldsErrors(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_rv_errors", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	keyBytes, err := os.ReadFile(e.key)
	if err != nil {
		t.Fatal(err)
	}
	noSecrets := func(what string, r opsResult, secrets ...string) {
		t.Helper()
		for _, s := range append(secrets, strings.TrimSpace(string(keyBytes))) {
			if s != "" && (strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s)) {
				t.Errorf("%s: output contains a secret %q", what, s)
			}
		}
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"migrate", "--batch", "0", "-c", cfg}, 2, "--batch"},
		{[]string{"migrate", "--bogus", "-c", cfg}, 2, "bogus"},
		{[]string{"migrate", "--prepare", "-c", cfg}, 2, "--prepare"},
		{[]string{"migrate", "-c", filepath.Join(e.dir, "missing.yaml")}, 2, "missing.yaml"},
		{[]string{"rotate", "--column", "email", "-c", cfg}, 2, "--table"},
		{[]string{"rotate", "--table", "public.nope", "-c", cfg, "--grace", "1ms"}, 2, "public.nope"},
		{[]string{"rotate", "--table", "public.rv", "--column", "nope", "-c", cfg, "--grace", "1ms"}, 2, "nope"},
		{[]string{"shred", "--table", "public.rv", "--tenant", "abc", "--yes", "-c", cfg}, 2, "abc"},
		{[]string{"shred", "--table", "public.rv", "--yes", "-c", cfg}, 2, "--tenant"},
		{[]string{"keygen", "-o", e.key}, 1, e.key},
	} {
		r := e.run(ctx, c.code, c.args...)
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("pgveil %s: stderr lacks %q:\n%s", strings.Join(c.args, " "), c.want, r.stderr)
		}
		noSecrets(strings.Join(c.args, " "), r)
	}
	if after, _ := os.ReadFile(e.key); !bytes.Equal(after, keyBytes) {
		t.Fatal("keygen overwrote an existing key file")
	}

	// An unknown key in the policy: file, line and key.
	bad := e.writeConfig("bad.yaml", e.config("")+"        colour: blue\n")
	r := e.run(ctx, 2, "check", "-c", bad)
	if !strings.Contains(r.stderr, "bad.yaml") || !strings.Contains(r.stderr, "colour") || !strings.Contains(r.stderr, ":") {
		t.Errorf("unknown policy key:\n%s", r.stderr)
	}

	// Unreachable database with a password in the URL.
	const pw = "Sup3rSecretPw"
	unreach := strings.Replace(e.config(""), fmt.Sprintf("service_url: %q", cluster.SocketURL(harness.SuperUser, e.db)),
		fmt.Sprintf("service_url: %q", "postgres://postgres:"+pw+"@127.0.0.1:1/x?connect_timeout=2"), 1)
	if unreach == e.config("") {
		t.Fatal("could not swap the service_url")
	}
	ucfg := e.writeConfig("unreach.yaml", unreach)
	for _, verb := range [][]string{{"check"}, {"migrate", "--apply"}, {"rotate", "--grace", "1ms"}, {"shred", "--table", "public.rv", "--tenant", "1", "--yes"}} {
		r := e.run(ctx, 1, append(verb, "-c", ucfg)...)
		if !strings.Contains(r.stderr, "upstream.service_url") {
			t.Errorf("%s unreachable: %s", verb[0], r.stderr)
		}
		noSecrets(verb[0]+" unreachable", r, pw)
	}

	// A corrupt master key file: clear error, exit non-zero, no key bytes echoed.
	const junk = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
	junkKey := filepath.Join(e.dir, "junk.key")
	if err := os.WriteFile(junkKey, []byte(junk+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jcfg := e.writeConfig("junk.yaml", e.config(junkKey))
	for _, verb := range [][]string{{"migrate", "--apply"}, {"check"}} {
		r := e.run(ctx, -1, append(verb, "-c", jcfg)...)
		if r.code == 0 || !strings.Contains(r.stderr+r.stdout, "junk.key") {
			t.Errorf("%s with a corrupt key file: exit %d\n%s\n%s", verb[0], r.code, r.stdout, r.stderr)
		}
		noSecrets(verb[0]+" junk key", r, junk)
	}
	// A wrong (but valid) master key after keys exist: check names the problem.
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	other := filepath.Join(e.dir, "other.key")
	e.run(ctx, 0, "keygen", "-o", other)
	ocfg := e.writeConfig("other.yaml", e.config(other))
	r = e.run(ctx, 1, "check", "-c", ocfg)
	if !strings.Contains(r.stdout, "cannot open data key") {
		t.Errorf("check with the wrong master key:\n%s", r.stdout)
	}
	otherBytes, _ := os.ReadFile(other)
	noSecrets("check wrong key", r, strings.TrimSpace(string(otherBytes)))
}

func TestOpsReviewFoundRotateWrongMasterKey(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_rv_wrongmaster", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(e.config(""))

	// An operator's config with another (valid) master key file.
	other := filepath.Join(e.dir, "other.key")
	e.run(ctx, 0, "keygen", "-o", other)
	ocfg := e.writeConfig("other.yaml", e.config(other))
	r := e.run(ctx, -1, "rotate", "-c", ocfg, "--grace", "1ms")
	t.Logf("rotate under the wrong master key: exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 6))
	var retired, foreign int
	su.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'retired'), count(*) FILTER (WHERE state = 'active' AND master_key_id <> (SELECT min(master_key_id) FROM pgveil.keys WHERE version = 1)) FROM pgveil.keys`).Scan(&retired, &foreign)
	if retired != 0 || foreign != 0 {
		t.Errorf("rotate under a master key that opens none of the stored keys changed pgveil.keys: %d versions retired, %d new active versions wrapped under the wrong master key (exit %d)", retired, foreign, r.code)
	}
	// Every replica (right master key) must still write.
	app := e.appConn(ctx, p)
	if _, err := app.Exec(ctx, `INSERT INTO rv (id, org, email, note) VALUES (40, 1, 'w@x.org', 'w')`); err != nil {
		t.Errorf("after that rotate, a write through pgveil (right master key) fails: %v", err)
	}
	// And the right-key rotate --finish cannot repair it.
	r = e.run(ctx, -1, "rotate", "-c", cfg, "--finish", "--grace", "1ms")
	if r.code != 0 {
		t.Errorf("rotate --finish with the right master key: exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 4))
	}
}

func TestOpsReviewFoundNullTenantFixThroughPgveil(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_rv_nulltenant", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, strings.Replace(rvSchema, "org int NOT NULL", "org int", 1)+`; UPDATE rv SET org = NULL WHERE id IN (4, 7)`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--prepare")
	p := e.proxy(e.config(""))
	r := e.run(ctx, 1, "migrate", "-c", cfg, "--apply")
	if !strings.Contains(r.stderr, "org is NULL") || !strings.Contains(r.stderr, "direct connection") || strings.Contains(r.stderr, "through pgveil or directly") {
		t.Fatalf("migrate does not name the NULL-tenant rows with the fix that works:\n%s", tail(r.stderr, 5))
	}
	// Through pgveil, setting the tenant alone is refused: pgveil cannot
	// see that the row's values are still plaintext.
	app := e.appConn(ctx, p)
	if _, err := app.Exec(ctx, `UPDATE rv SET org = 1 WHERE id = 4`); err == nil {
		t.Errorf("an UPDATE of the tenant alone through pgveil now passes: docs/ADOPTION.md can say so again")
	}
	// docs/ADOPTION.md "Rows migrate cannot encrypt": the tenant is set on a
	// direct connection, and no longer "through pgveil or directly".
	doc, err := os.ReadFile("../docs/ADOPTION.md")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(doc), "through pgveil or directly") || !strings.Contains(string(doc), "**on a direct connection**") {
		t.Errorf("docs/ADOPTION.md still offers to fix a NULL tenant through pgveil")
	}
	if _, err := su.Exec(ctx, `UPDATE rv SET org = 1 WHERE id = 4`); err != nil {
		t.Fatal(err)
	}
	// The other form the docs name: through pgveil, with every encrypted column.
	app = e.appConn(ctx, p)
	if _, err := app.Exec(ctx, `UPDATE rv SET org = 2, email = $1, note = $2 WHERE id = 7`, "u7@x.org", "note 7"); err != nil {
		t.Errorf("an UPDATE through pgveil of the tenant and every encrypted column: %v", err)
	}
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	if s := e.tableState(ctx, su, "public.rv"); s != "complete" {
		t.Fatalf("state after the fix: %q", s)
	}
	if got := rvReadable(t, ctx, e.appConn(ctx, p)); got[1]+got[2]+got[3] != 30 {
		t.Errorf("after the fix reads %v, want all 30 rows", got)
	}
}

func TestOpsReviewFoundShredClearsNewWrites(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_rv_shrednew", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	if got := rvReadable(t, ctx, app); got[2] != 10 {
		t.Fatalf("before: %v", got)
	}
	// An application transaction holds one of tenant 2's rows: shred's
	// blind-index clearing waits for it after the keys are destroyed.
	release := lockRow(t, ctx, e, "rv", "id = 1")
	cmd, stdout, stderr := e.start("shred", "-c", cfg, "--table", "public.rv", "--tenant", "2", "--yes")
	waitLockWait(t, ctx, su, "pgveil shred")
	waitFor(t, 10*time.Second, "pgveil to read tenant 2 as NULL", func() (bool, error) {
		return rvReadable(t, ctx, app)[2] == 0, nil
	})
	// The tenant writes again (a new key version, a blind index) ...
	if _, err := app.Exec(ctx, `INSERT INTO rv (id, org, email, note) VALUES (60, 2, 'after@x.org', 'after the shred')`); err != nil {
		t.Fatal(err)
	}
	var id int
	if err := app.QueryRow(ctx, `SELECT id FROM rv WHERE email = $1`, "after@x.org").Scan(&id); err != nil || id != 60 {
		t.Fatalf("lookup of the new row before the shred ends: %d %v", id, err)
	}
	release()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("shred: %v\n%s\n%s", err, stdout.String(), tail(stderr.String(), 5))
	}
	t.Logf("shred: %s", stdout.String())
	if !strings.Contains(stdout.String(), "blind indexes cleared in 10 row(s)") {
		t.Errorf("shred counts other rows than the 10 under the destroyed keys: %s", stdout.String())
	}
	// ... and the rest of the shred must not erase what was written after it.
	var email *string
	id = 0
	err := e.appConn(ctx, p).QueryRow(ctx, `SELECT id, email FROM rv WHERE email = $1`, "after@x.org").Scan(&id, &email)
	var bidx []byte
	su.QueryRow(ctx, `SELECT email_bidx FROM rv WHERE id = 60`).Scan(&bidx)
	if err != nil || id != 60 {
		t.Errorf("a row tenant 2 wrote after its keys were shredded (readable: new key version) is no longer found by WHERE email = $1 (%v; its blind index is now %d bytes): shred's clearing loop cleared it", err, len(bidx))
	}
}

func TestOpsReviewFoundPrimaryKeyPlaintextInOutput(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_rv_pkenc", `tables:
  public.pkenc:
    key_context: org
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
      secret:
        type: date
`)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `CREATE TABLE pkenc (email text PRIMARY KEY, org int, email_bidx bytea, secret text);
CREATE UNIQUE INDEX pkenc_email_bidx_idx ON pkenc (email_bidx);
INSERT INTO pkenc VALUES ('alice.private@x.org', 1, NULL, '2020-01-01'), ('bob.private@x.org', NULL, NULL, '2020-01-02'),
  ('carol.private@x.org', 1, NULL, 'not a date')`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	c := e.run(ctx, -1, "check", "-c", cfg)
	r := e.run(ctx, -1, "migrate", "-c", cfg, "--apply")
	t.Logf("check: exit %d\n%s\nmigrate: exit %d\n%s%s", c.code, c.stdout, r.code, r.stdout, tail(r.stderr, 6))
	for _, s := range []string{"bob.private", "carol.private"} {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("migrate prints the plaintext of encrypted column email (%s…): its problem report names rows by primary key, and the primary key is the encrypted column", s)
		}
	}
}

func TestOpsReviewHoldsDebugLogsNoPlaintext(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_rv_debuglogs", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema+`; UPDATE rv SET note = 'Zsecret-' || id || '-Z'; UPDATE rv SET note = NULL WHERE id = 7; ALTER TABLE rv ALTER org DROP NOT NULL; UPDATE rv SET org = NULL WHERE id = 8`); err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(e.config(""), "  level: "+logLevel()+"\n", "  level: debug\n", 1)
	if !strings.Contains(yaml, "level: debug") {
		t.Fatal("could not set the log level")
	}
	cfg := e.writeConfig("debug.yaml", yaml)
	var out strings.Builder
	for _, args := range [][]string{
		{"migrate", "-c", cfg},
		{"migrate", "-c", cfg, "--apply", "--batch", "3"},
		{"rotate", "-c", cfg, "--grace", "1ms", "--batch", "3"},
		{"shred", "-c", cfg, "--table", "public.rv", "--tenant", "2", "--yes"},
		{"check", "-c", cfg, "--format", "json"},
		{"migrate", "-c", cfg, "--decrypt"},
	} {
		r := e.run(ctx, -1, args...)
		out.WriteString(r.stdout + r.stderr)
	}
	for id := 1; id <= 30; id++ {
		for _, s := range []string{fmt.Sprintf("u%d@x.org", id), fmt.Sprintf("Zsecret-%d-Z", id)} {
			if strings.Contains(out.String(), s) {
				i := strings.Index(out.String(), s)
				t.Fatalf("plaintext %q in the output of the operator commands at log level debug: …%s…", s, out.String()[max(0, i-300):min(len(out.String()), i+100)])
			}
		}
	}
	if !strings.Contains(out.String(), `"level":"debug"`) {
		t.Fatal("no debug lines: the test proved nothing")
	}
}
