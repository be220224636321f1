package integration

// Review of signed migration states (pgveil.tables), commits 94cf286 and
// 72111ad, against PostgreSQL 15.
//
// Findings:
//
//   - MEDIUM: a forged row (any table name, any state, bad mac) with
//     generation 9223372036854775807 made every later SetTableState fail
//     ("bigint out of range": the next generation was max(generation) + 1
//     over all rows, forged ones included), so `pgveil migrate --apply` and
//     `--decrypt` could no longer record a state. Fix: the next generation
//     is one more than the newest row whose signature verifies (and the
//     clock); forged rows are ignored.
//   - MEDIUM: `pgveil check` read pgveil.tables a second time unverified
//     (checkTableStates) and, beside the table_state_untrusted problem,
//     noted a forged `migrating` row as "public.people is being migrated:
//     the proxy returns values without an envelope as legacy plaintext",
//     which is false. Fix: the migrating/decrypting notes come from the
//     verified rows only.
//
// Held: a signed row of one table copied onto another table's name, an
// older signed row of the same table written back (to a running pgveil:
// rejected, logged, values without an envelope still refused), the state
// key row deleted (every row counts as complete, migrate signs anew with a
// new key).

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestReviewTableStates17c(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	e := newOpsEnv(t, "ops_states17c", `tables:
  public.people:
    columns:
      email:
        type: text
        blind_index: {column: email_bidx}
  public.pets:
    columns:
      name: {type: text}
`)
	c := e.conn(ctx)
	if _, err := c.Exec(ctx, `CREATE TABLE people (id int PRIMARY KEY, email text);
CREATE TABLE pets (id int PRIMARY KEY, name text);
INSERT INTO people VALUES (1, 'one@example.com');
INSERT INTO pets VALUES (1, 'Rex')`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("c.yaml", e.config(""))
	// people stays migrating (--prepare), pets completes.
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--prepare", "--table", "public.people")
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--table", "public.pets")
	var oldGen int64
	var oldMac []byte
	if err := c.QueryRow(ctx, `SELECT generation, mac FROM pgveil.tables WHERE table_name = 'public.people' AND state = 'migrating'`).Scan(&oldGen, &oldMac); err != nil {
		t.Fatal(err)
	}
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--table", "public.people")
	if s := e.tableState(ctx, c, "public.people"); s != "complete" {
		t.Fatalf("people: %q", s)
	}

	// A running pgveil that has read the complete state.
	p := e.proxy(e.config(""))
	if _, err := c.Exec(ctx, `INSERT INTO people (id, email) VALUES (2, 'planted@example.com')`); err != nil {
		t.Fatal(err)
	}
	readPlanted := func() error {
		app, err := pgx.Connect(ctx, e.appURL(p))
		if err != nil {
			return err
		}
		defer app.Close(context.Background())
		var s string
		return app.QueryRow(ctx, "SELECT email FROM people WHERE id = 2").Scan(&s)
	}
	wantPV003 := func(what string) {
		t.Helper()
		var pe *pgconn.PgError
		if err := readPlanted(); !errors.As(err, &pe) || pe.Code != "PV003" {
			t.Errorf("%s: a planted plaintext value read back: %v (want PV003)", what, err)
		}
	}
	wantPV003("complete")
	waitLog := func(what, needle string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			b, _ := os.ReadFile(p.LogPath)
			if strings.Contains(string(b), needle) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: pgveil did not log %q", what, needle)
			}
			time.Sleep(20 * time.Millisecond) // polling the log, with a deadline
		}
	}
	// Holds: the older signed migrating row of people written back.
	if _, err := c.Exec(ctx, `UPDATE pgveil.tables SET state = 'migrating', generation = $1, mac = $2 WHERE table_name = 'public.people'`, oldGen, oldMac); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `NOTIFY pgveil_tables, 'public.people'`); err != nil {
		t.Fatal(err)
	}
	waitLog("replayed row", "an old row was written back")
	wantPV003("replayed migrating row")
	// Holds: pets' signed row copied onto people's name.
	if _, err := c.Exec(ctx, `UPDATE pgveil.tables p SET state = 'migrating', generation = q.generation + 1000000000, mac = q.mac
  FROM pgveil.tables q WHERE p.table_name = 'public.people' AND q.table_name = 'public.pets';
NOTIFY pgveil_tables, 'public.people'`); err != nil {
		t.Fatal(err)
	}
	waitLog("copied row", "does not verify")
	wantPV003("a row copied from another table")

	// Finding: check notes the forged migrating row as being migrated.
	r := e.run(ctx, 1, "check", "-c", cfg)
	if !strings.Contains(r.stdout, "public.people is not trusted") {
		t.Errorf("check does not report the forged row:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "public.people is being migrated") {
		t.Errorf("check takes a forged migrating row for a migration in progress:\n%s", r.stdout)
	}

	// Finding: a forged row with the largest generation blocks migrate.
	if _, err := c.Exec(ctx, `INSERT INTO pgveil.tables (table_name, state, generation, mac) VALUES ('public.zz', 'complete', 9223372036854775807, '\x00')`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `DELETE FROM people WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	r = e.run(ctx, -1, "migrate", "-c", cfg, "--apply", "--table", "public.people")
	if r.code != 0 {
		t.Errorf("migrate --apply with a forged row of generation 2^63-1: exit %d\n%s\n%s", r.code, r.stdout, tail(r.stderr, 20))
	}
	var gen int64
	if err := c.QueryRow(ctx, `SELECT generation FROM pgveil.tables WHERE table_name = 'public.people' AND state = 'complete'`).Scan(&gen); err != nil {
		t.Errorf("people not signed complete again: %v", err)
	} else if gen <= oldGen {
		t.Errorf("new generation %d not above %d", gen, oldGen)
	}

	// Holds: the state key row deleted: every row counts as complete;
	// migrate makes a new key and signs anew.
	if _, err := c.Exec(ctx, `DELETE FROM pgveil.tables WHERE table_name = 'public.zz';
DELETE FROM pgveil.keys WHERE purpose = 'index' AND scope = 'pgveil:tables'`); err != nil {
		t.Fatal(err)
	}
	r = e.run(ctx, 1, "check", "-c", cfg)
	if !strings.Contains(r.stdout, "public.people is not trusted") || !strings.Contains(r.stdout, "public.pets is not trusted") {
		t.Errorf("check with the state key deleted:\n%s", r.stdout)
	}
	if _, err := c.Exec(ctx, `UPDATE pets SET name = 'plain again' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	e.run(ctx, 0, "check", "-c", cfg)
}
