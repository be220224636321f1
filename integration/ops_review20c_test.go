package integration

// Review 20c: a new team adopting pgveil by following the docs alone.

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const review20cPolicy = `tables:
  public.accounts:
    columns:
      email:
        type: text
`

// TestReview20cRefusedCountsAsPgveil: docs/OPERATING.md tells operators to
// alert on pgveil_errors_total{source="pgveil"} to see statements refused
// after an application deploy. A refusal reaches the client as the
// server's answer to an injected DO … RAISE, and was counted as
// source="server": the documented alert never fired.
func TestReview20cRefusedCountsAsPgveil(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_review20c_errs", review20cPolicy)
	if _, err := e.conn(ctx).Exec(ctx, `CREATE TABLE accounts (id serial PRIMARY KEY, email bytea)`); err != nil {
		t.Fatal(err)
	}
	p := e.proxy(e.config(""))
	before := scrape(t, p)
	c := e.appConn(ctx, p)
	if _, err := c.Exec(ctx, `INSERT INTO accounts (email) VALUES ($1)`, "a@example.com"); err != nil {
		t.Fatal(err)
	}
	// Refused by pgveil: ORDER BY an encrypted column.
	_, err := c.Exec(ctx, `SELECT email FROM accounts ORDER BY email`)
	if err == nil || !strings.Contains(err.Error(), "0A000") {
		t.Fatalf("ORDER BY email: got %v, want a 0A000 refusal", err)
	}
	// An error the server raises on its own stays the server's.
	if _, err := c.Exec(ctx, `SELECT * FROM no_such_table`); err == nil || !strings.Contains(err.Error(), "42P01") {
		t.Fatalf("unknown table: got %v, want 42P01", err)
	}
	c.Close(context.Background())
	const pgveil0A, server0A, server42 = `pgveil_errors_total{class="0A",source="pgveil"}`, `pgveil_errors_total{class="0A",source="server"}`, `pgveil_errors_total{class="42",source="server"}`
	var after metrics
	waitFor(t, 10*time.Second, "metrics to count both errors", func() (bool, error) {
		after = scrape(t, p)
		return after.get(`pgveil_statements_total{kind="refused"}`) > before.get(`pgveil_statements_total{kind="refused"}`) &&
			after.get(server42) > before.get(server42), nil
	})
	if d := after.get(pgveil0A) - before.get(pgveil0A); d != 1 {
		t.Errorf("%s grew by %v, want 1 (the refused ORDER BY)", pgveil0A, d)
	}
	if d := after.get(server0A) - before.get(server0A); d != 0 {
		t.Errorf("%s grew by %v, want 0: pgveil's refusal is not the server's error", server0A, d)
	}
	if d := after.get(server42) - before.get(server42); d != 1 {
		t.Errorf("%s grew by %v, want 1", server42, d)
	}
}

// TestReview20cServeWarnsPlaintextInComplete: the likeliest adoption
// mistake is to start `pgveil serve` on a table that still holds
// plaintext without running `pgveil migrate --apply --prepare` first (the
// table then counts as complete), or to reload with a new column of a
// complete table before it. `pgveil check` calls that a problem, but serve
// started silently and every application read of such a value then ended
// its session with PV003. serve now says so at start and at a reload,
// with the remedy, and still serves (a complete table that received a few
// values written around pgveil must not take the proxy down).
func TestReview20cServeWarnsPlaintextInComplete(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_review20c_plain", review20cPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `CREATE TABLE accounts (id serial PRIMARY KEY, email text, phone text);
		INSERT INTO accounts (email, phone) SELECT 'plain' || g || '@example.com', '+1 555 0' || g FROM generate_series(1, 20) g`); err != nil {
		t.Fatal(err)
	}
	const warning = "a configured table holds plaintext while complete: pgveil refuses to return those values (PV003)"
	p := e.proxy(e.config(""))
	log := p.Log()
	if logCount(p, warning) != 1 || !strings.Contains(log, `"column":"public.accounts.email"`) ||
		!strings.Contains(log, "pgveil migrate -c") || !strings.Contains(log, "--apply --prepare") {
		t.Fatalf("pgveil serve started on plaintext in a complete table without saying so:\n%s", log)
	}
	if strings.Contains(log, "plain1@example.com") {
		t.Fatalf("the warning logged a value:\n%s", log)
	}

	// The documented way: prepare, backfill. Then no warning at a reload.
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	rewriteConfig(t, p, e.config(""))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "config reloaded", 0)
	if n := logCount(p, warning); n != 1 {
		t.Fatalf("warned %d times after the backfill, want still 1:\n%s", n, p.Log())
	}

	// A column added to the policy of the complete table before
	// `migrate --apply --prepare` ran with it (docs/ADOPTION.md §7):
	// the reload says so too.
	e.policy = review20cPolicy + "      phone:\n        type: text\n"
	rewriteConfig(t, p, e.config(""))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "config reloaded", 1)
	if logCount(p, warning) != 2 || !strings.Contains(p.Log(), `"column":"public.accounts.phone"`) {
		t.Fatalf("the reload with a plaintext column of a complete table did not warn:\n%s", p.Log())
	}
	if strings.Contains(p.Log(), "+1 555 0") {
		t.Fatalf("the warning logged a value:\n%s", p.Log())
	}
}

// TestReview20cEnvFlagParseError: README and --help say every flag reads
// a PGVEIL_* variable; a value the flag cannot take was reported as
// `PGVEIL_APPLY="yes": parse error`, without saying what it wants.
func TestReview20cEnvFlagParseError(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newOpsEnv(t, "ops_review20c_env", review20cPolicy)
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	for _, c := range []struct{ env, val, want string }{
		{"PGVEIL_APPLY", "yes", "want true or false"},
		{"PGVEIL_BATCH", "lots", "want an integer"},
		{"PGVEIL_PROGRESS_EVERY", "5", "want a duration such as 10s or 1m"},
	} {
		t.Setenv(c.env, c.val)
		r := e.run(ctx, 2, "migrate", "-c", cfg)
		if !strings.Contains(r.stderr, c.env+`="`+c.val+`"`) || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s=%s: stderr %q, want it to name the variable and say %q", c.env, c.val, r.stderr, c.want)
		}
		os.Unsetenv(c.env)
	}
}

// TestReview20cCheckDropsUniqueConstraint: the usual way a table gets a
// UNIQUE index on email is a UNIQUE constraint (`email text UNIQUE`).
// `pgveil check` notes that the index means nothing once the values are
// envelopes and printed `DROP INDEX CONCURRENTLY …` as the fix, which
// PostgreSQL refuses for an index a constraint owns ("cannot drop index
// … because constraint … requires it").
func TestReview20cCheckDropsUniqueConstraint(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_review20c_uconst", review20cPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `CREATE TABLE accounts (id serial PRIMARY KEY, email bytea UNIQUE, phone text);
		CREATE UNIQUE INDEX accounts_email_plain ON accounts (email) WHERE phone IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	findings := func() []string {
		r := e.run(ctx, -1, "check", "-c", cfg, "--format", "json")
		var rep checkJSON
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("check --format json: %v\n%s", err, r.stdout)
		}
		var fixes []string
		for _, f := range rep.Findings {
			if f.Code == "index_on_encrypted" {
				fixes = append(fixes, f.Fix...)
			}
		}
		return fixes
	}
	fixes := findings()
	if len(fixes) != 2 {
		t.Fatalf("index_on_encrypted fixes: %q, want one for the constraint's index and one for the plain index", fixes)
	}
	for _, fix := range fixes {
		if _, err := su.Exec(ctx, fix); err != nil {
			t.Errorf("the fix pgveil check prints, %q, fails: %v", fix, err)
		}
	}
	if left := findings(); len(left) != 0 {
		t.Errorf("after the fixes, check still notes: %q", left)
	}
}

// TestReview20cCheckDateFixIsISO: for a date (or timestamp) column,
// `pgveil check` printed `ALTER … TYPE text USING born::text`, whose text
// follows the DateStyle of the session that runs it: a DBA whose psql
// says 'SQL, DMY' (or German) stored '10/12/1815', which is not valid
// date input for pgveil, and `migrate --apply` then left every row as it
// was (exit 1). The fix must give the ISO text whatever the DateStyle.
func TestReview20cCheckDateFixIsISO(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_review20c_date", `tables:
  public.people:
    columns:
      born:
        type: date
      seen:
        type: timestamptz
`)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `CREATE TABLE people (id serial PRIMARY KEY, born date, seen timestamptz);
		INSERT INTO people (born, seen) VALUES ('1815-12-10', '2001-02-03 04:05:06+00'), ('1912-06-23', NULL)`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	r := e.run(ctx, 1, "check", "-c", cfg, "--format", "json")
	var rep checkJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("check --format json: %v\n%s", err, r.stdout)
	}
	if _, err := su.Exec(ctx, `SET datestyle = 'SQL, DMY'`); err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		if f.Code != "column_type" {
			continue
		}
		for _, fix := range f.Fix {
			if _, err := su.Exec(ctx, fix); err != nil {
				t.Fatalf("%s: %v", fix, err)
			}
		}
	}
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(e.config(""))
	c := e.appConn(ctx, p)
	var b, ts time.Time
	if err := c.QueryRow(ctx, `SELECT born, seen FROM people WHERE id = 1`).Scan(&b, &ts); err != nil {
		t.Fatal(err)
	}
	born, seen := b.Format("2006-01-02"), ts.UTC().Format("2006-01-02 15:04:05")
	if born != "1815-12-10" || seen != "2001-02-03 04:05:06" {
		t.Errorf("through pgveil: born %s, seen %s; want 1815-12-10, 2001-02-03 04:05:06", born, seen)
	}
}

// TestReview20cPgDumpThroughPgveil: docs/LIMITS.md sends pg_dump users to
// read through pgveil where plaintext is needed, but pg_dump (15.8, 16.4
// and later) begins with `SELECT set_config(name, 'view, foreign-table',
// false) FROM pg_settings WHERE name = 'restrict_nonsystem_relation_kind'`,
// which pgveil refused (a set_config whose name it cannot read): pg_dump
// through pgveil failed at its first query.
func TestReview20cPgDumpThroughPgveil(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_review20c_dump", `tables:
  public.accounts:
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
`)
	if _, err := e.conn(ctx).Exec(ctx, `CREATE TABLE accounts (id serial PRIMARY KEY, email bytea, email_bidx bytea);
		CREATE INDEX accounts_email_bidx_idx ON accounts (email_bidx)`); err != nil {
		t.Fatal(err)
	}
	p := e.proxy(e.config(""))
	c := e.appConn(ctx, p)
	if _, err := c.Exec(ctx, `INSERT INTO accounts (email) VALUES ($1), ($2)`, "dump1@example.com", "dump2@example.com"); err != nil {
		t.Fatal(err)
	}
	pgDump, err := exec.LookPath("pg_dump")
	if err != nil {
		pgDump = filepath.Join(cluster.BinDir, "pg_dump") // beside the server binaries
	}
	cmd := exec.CommandContext(ctx, pgDump, "--no-sync", "-t", "public.accounts", "-d", e.appURL(p))
	cmd.Env = psqlEnv()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("pg_dump through pgveil: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "dump1@example.com") || !strings.Contains(out.String(), "dump2@example.com") {
		t.Errorf("the dump through pgveil lacks the plaintext:\n%s", tail(out.String(), 30))
	}

	// The shape is read exactly: another setting's name from a column
	// stays refused when it may be search_path.
	_, err = c.Exec(ctx, `SELECT set_config(name, 'public', false) FROM pg_settings WHERE name LIKE 'search%'`)
	if err == nil || !strings.Contains(err.Error(), "0A000") {
		t.Errorf("set_config(name, …) WHERE name LIKE …: got %v, want 0A000", err)
	}
	var v string
	if err := c.QueryRow(ctx, `SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'enable_seqscan'`).Scan(&v); err != nil || v != "off" {
		t.Errorf("set_config(name, …) WHERE name = 'enable_seqscan': %q, %v", v, err)
	}
}

// TestReview20cCheckOtherConfigMigrating: two pgveil configs on one
// database (two services, or a config for one table while another is
// being migrated): `pgveil check` with the one said of the other's
// migrating table "not in the policy (left by `pgveil migrate
// --decrypt`); it is ignored and can be removed", with the DELETE as its
// fix. Removing a migrating row makes the table complete for the replicas
// that serve it: PV003 on its plaintext, lookups missing rows.
func TestReview20cCheckOtherConfigMigrating(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	both := `tables:
  public.accounts:
    columns:
      email:
        type: text
  public.orders:
    columns:
      card:
        type: text
`
	e := newOpsEnv(t, "ops_review20c_twocfg", both)
	if _, err := e.conn(ctx).Exec(ctx, `CREATE TABLE accounts (id serial PRIMARY KEY, email text);
		CREATE TABLE orders (id serial PRIMARY KEY, card text);
		INSERT INTO accounts (email) VALUES ('a@example.com'); INSERT INTO orders (card) VALUES ('4111')`); err != nil {
		t.Fatal(err)
	}
	cfgBoth := e.writeConfig("both.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfgBoth, "--apply", "--prepare")
	e.policy = review20cPolicy // accounts only
	cfgOne := e.writeConfig("one.yaml", e.config(""))
	r := e.run(ctx, -1, "check", "-c", cfgOne, "--format", "json")
	var rep checkJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("check --format json: %v\n%s", err, r.stdout)
	}
	found := false
	for _, f := range rep.Findings {
		if f.Table != "public.orders" {
			continue
		}
		found = true
		if strings.Contains(f.Message, "left by `pgveil migrate --decrypt`") {
			t.Errorf("a migrating table of another config is said to be left by --decrypt: %s", f.Message)
		}
		if len(f.Fix) > 0 && !strings.Contains(f.Caution, "PV003") {
			t.Errorf("check offers %q for a table being migrated, without a caution naming PV003: %s / %s", f.Fix, f.Message, f.Caution)
		}
	}
	if !found {
		t.Errorf("check says nothing of public.orders, migrating under another config:\n%s", r.stdout)
	}
}

// TestReview20cLowerHint: `WHERE lower(email) = lower($1)` is how many
// applications look up an email whatever its case. pgveil refuses it
// (a function of an encrypted column) with a hint to do it in the
// application, while `email = $1` does exactly that through a blind
// index that lowercases: the hint now says so.
func TestReview20cLowerHint(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newOpsEnv(t, "ops_review20c_lower", `tables:
  public.accounts:
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase, trim]
      phone:
        type: text
`)
	if _, err := e.conn(ctx).Exec(ctx, `CREATE TABLE accounts (id serial PRIMARY KEY, email bytea, email_bidx bytea, phone bytea);
		CREATE INDEX accounts_email_bidx_idx ON accounts (email_bidx)`); err != nil {
		t.Fatal(err)
	}
	p := e.proxy(e.config(""))
	c := e.appConn(ctx, p)
	hint := func(sql string) string {
		_, err := c.Exec(ctx, sql, "A@Example.com")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "0A000" {
			t.Fatalf("%s: got %v, want a 0A000 refusal", sql, err)
		}
		return pe.Hint
	}
	for _, sql := range []string{
		`SELECT id FROM accounts WHERE lower(email) = lower($1)`,
		`SELECT id FROM accounts WHERE upper(email) = upper($1)`,
		`SELECT id FROM accounts WHERE trim(email) = $1`,
	} {
		if h := hint(sql); !strings.Contains(h, "email = $1") || !strings.Contains(h, "normalize") {
			t.Errorf("%s: hint %q, want it to point at email = $1 and the blind index's normalize", sql, h)
		}
	}
	// Without such a normalisation the hint stays the general one.
	if h := hint(`SELECT id FROM accounts WHERE lower(phone) = lower($1)`); strings.Contains(h, "phone = $1") {
		t.Errorf("lower(phone): hint %q points at a comparison phone has no blind index for", h)
	}
}

// TestReview20cMigrateNamesDuplicates: legacy rows equal after the blind
// index's normalisation ('Alice@x.io' and 'alice@x.io') stop the backfill
// on the UNIQUE blind index with "Find and resolve the duplicates", and
// nothing said which rows: the values are plaintext and envelopes mixed,
// so the operator could not search for them. The message names the rows
// of the batch that carry the index value and gives the query that finds
// a row already written with it.
func TestReview20cMigrateNamesDuplicates(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_review20c_dups", `tables:
  public.accounts:
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase]
          unique: true
`)
	if _, err := e.conn(ctx).Exec(ctx, `CREATE TABLE accounts (id int PRIMARY KEY, email text);
		INSERT INTO accounts VALUES (1, 'Alice@x.io'), (2, 'bob@x.io'), (3, 'alice@x.io'), (4, 'carol@x.io')`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	r := e.run(ctx, 1, "migrate", "-c", cfg, "--apply")
	msg := r.stderr
	if !strings.Contains(msg, "primary keys 1, 3") {
		t.Errorf("the error does not name rows 1 and 3:\n%s", tail(msg, 10))
	}
	if !strings.Contains(msg, `SELECT id FROM public.accounts WHERE email_bidx = '\x`) {
		t.Errorf("the error does not give the query for rows already indexed:\n%s", tail(msg, 10))
	}
	if strings.Contains(msg, "alice@x.io") || strings.Contains(msg, "Alice@x.io") {
		t.Errorf("the error shows a value:\n%s", tail(msg, 10))
	}
}

// TestReview20cOtherDatabaseRefused: one pgveil in front of a cluster
// with two application databases. Its policy (and its key store, catalog
// and table states, all read over upstream.service_url) are those of one
// database, but every session got them, whatever database it connected
// to: a table of the same name in the other database had its plaintext
// refused (PV003, the session ended) and its writes sealed under keys
// kept in the first database's pgveil.keys. Such a session is now
// refused at startup, naming both databases; the policy's database is
// served as before.
func TestReview20cOtherDatabaseRefused(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_review20c_db1", review20cPolicy)
	other := newOpsEnv(t, "ops_review20c_db2", "")
	for _, env := range []*opsEnv{e, other} {
		if _, err := env.conn(ctx).Exec(ctx, `CREATE TABLE accounts (id serial PRIMARY KEY, email text)`); err != nil {
			t.Fatal(err)
		}
	}
	p := e.proxy(e.config(""))
	_, err := pgx.Connect(ctx, other.appURL(p)) // through pgveil, to the other database
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, `"ops_review20c_db1"`) || !strings.Contains(pe.Message, `"ops_review20c_db2"`) {
		t.Fatalf("a session of another database through pgveil: got %v, want FATAL 0A000 naming both databases", err)
	}
	c := e.appConn(ctx, p)
	if _, err := c.Exec(ctx, `INSERT INTO accounts (email) VALUES ($1)`, "mine@example.com"); err != nil {
		t.Fatal(err)
	}
	var email string
	if err := c.QueryRow(ctx, `SELECT email FROM accounts`).Scan(&email); err != nil || email != "mine@example.com" {
		t.Fatalf("the policy's database through pgveil: %q, %v", email, err)
	}
	if !strings.Contains(p.Log(), "ops_review20c_db2") {
		t.Errorf("pgveil did not log the refused session's database:\n%s", tail(p.Log(), 10))
	}
}
