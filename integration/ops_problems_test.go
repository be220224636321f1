package integration

import (
	"strings"
	"testing"
	"time"
)

const eventsPolicy = `tables:
  public.events:
    key_context: org
    columns:
      happened_on:
        type: date
      detail:
        type: text
`

// TestOpsMigrateProblemRows: a composite primary key walked in many small
// batches, a value that is not valid input of its logical type and a row
// without a tenant. migrate encrypts everything else, names the rows it
// left (by primary key) and exits 1 with the table still migrating; once
// the rows are fixed a rerun completes. Then rotate --finish (no earlier
// rotation) has nothing to do.
func TestOpsMigrateProblemRows(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_problems", eventsPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `
CREATE TABLE events (
  region text,
  seq int4,
  org text,
  happened_on text,
  detail bytea,
  PRIMARY KEY (seq, region)
);
INSERT INTO events SELECT 'r' || (g % 4), g / 4, 'org-' || (g % 3), '2024-01-' || lpad((1 + g % 28)::text, 2, '0'), convert_to('detail ' || g, 'UTF8')
FROM generate_series(0, 999) g;
UPDATE events SET happened_on = 'last tuesday' WHERE seq = 100 AND region = 'r1';`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	r := e.run(ctx, 1, "migrate", "-c", cfg, "--apply", "--batch", "7", "--workers", "3")
	for _, want := range []string{"happened_on: not valid date input", "100,r1", "state migrating"} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("migrate output lacks %q:\n%s\n%s", want, r.stdout, tail(r.stderr, 10))
		}
	}
	if s := e.tableState(ctx, su, "public.events"); s != "migrating" {
		t.Fatalf("state %q", s)
	}
	var plain int
	su.QueryRow(ctx, `SELECT count(*) FROM events WHERE happened_on NOT LIKE 'pgv1:%' OR get_byte(detail, 0) <> 1`).Scan(&plain)
	if plain != 1 {
		t.Fatalf("%d rows left unencrypted, want the 1 bad one", plain)
	}
	if _, err := su.Exec(ctx, `UPDATE events SET happened_on = '2024-02-29' WHERE seq = 100 AND region = 'r1'`); err != nil {
		t.Fatal(err)
	}
	r = e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--batch", "7")
	if rows, _ := rowsPerSecond(r.stdout, "encrypt public.events"); rows != 1 {
		t.Fatalf("the rerun examined %d rows, want the 1 fixed:\n%s", rows, r.stdout)
	}
	if s := e.tableState(ctx, su, "public.events"); s != "complete" {
		t.Fatalf("state %q", s)
	}
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	var day time.Time
	var detail string
	if err := app.QueryRow(ctx, `SELECT happened_on, detail FROM events WHERE seq = 100 AND region = 'r1'`).Scan(&day, &detail); err != nil {
		t.Fatal(err)
	}
	if day.Format("2006-01-02") != "2024-02-29" || detail != "detail 401" {
		t.Fatalf("read %v %q", day, detail)
	}
	var n int
	if err := app.QueryRow(ctx, `SELECT count(*) FROM events WHERE detail IS NOT NULL AND happened_on IS NOT NULL`).Scan(&n); err != nil || n != 1000 {
		t.Fatalf("count through pgveil: %d %v", n, err)
	}

	// A row without a tenant cannot be encrypted for anyone.
	if _, err := su.Exec(ctx, `INSERT INTO events VALUES ('r0', 9999, NULL, '2024-03-01', NULL)`); err != nil {
		t.Fatal(err)
	}
	r = e.run(ctx, 1, "migrate", "-c", cfg, "--apply")
	if !strings.Contains(r.stderr, "org is NULL: no tenant to encrypt for") {
		t.Fatalf("NULL tenant:\n%s\n%s", r.stdout, r.stderr)
	}
	r = e.run(ctx, 0, "rotate", "-c", cfg, "--finish")
	if !strings.Contains(r.stdout, "nothing to re-encrypt") {
		t.Fatalf("rotate --finish:\n%s", r.stdout)
	}
}
