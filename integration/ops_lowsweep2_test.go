package integration

// LOW sweep 2, operator side: data keys of refused writes (item 5), and
// pgveil shred's blind-index clearing of rows whose tenant was changed
// around pgveil or is NULL (item 6).

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/integration/harness"
)

// TestLowSweep2ShredKeys: a write the server refuses (a unique violation,
// a missing privilege) leaves the data key pgveil made for its tenant in
// pgveil.keys (item 5; held as harmless: the key seals nothing that is
// stored, a tenant shredded since gets a new version, as its next
// successful write would, and the values sealed before stay unreadable).
// Then pgveil shred clears the blind indexes of the tenant's values in
// rows whose key_context was changed directly on the database, or set
// NULL (item 6): they used to keep them (equality-linkable, guessable
// with the proxy's index key).
func TestLowSweep2ShredKeys(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_lowsweep2_shred", `tables:
  public.acc:
    key_context: org
    columns:
      secret: {type: text, blind_index: {column: secret_bidx}}
`)
	su := e.conn(ctx)
	for _, s := range []string{
		`CREATE TABLE acc (id int PRIMARY KEY, org int, secret bytea, secret_bidx bytea)`,
		`CREATE ROLE lowsweep2_ro LOGIN PASSWORD 'ro'`,
		`GRANT SELECT ON acc TO lowsweep2_ro`,
	} {
		if _, err := su.Exec(ctx, s); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(s, err)
		}
	}
	t.Cleanup(func() {
		cctx := context.Background()
		su.Exec(cctx, `DROP OWNED BY lowsweep2_ro`)
		su.Exec(cctx, `DROP ROLE IF EXISTS lowsweep2_ro`)
	})
	cfg := e.writeConfig("c.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	keys := func(tenant string) (n int, active int) {
		t.Helper()
		if err := su.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'active') FROM pgveil.keys WHERE purpose = 'enc' AND tenant = $1`, tenant).Scan(&n, &active); err != nil {
			t.Fatal(err)
		}
		return n, active
	}
	for _, s := range []string{
		`INSERT INTO acc (id, org, secret) VALUES (1, 1, 'one')`,
		`INSERT INTO acc (id, org, secret) VALUES (3, 3, 'three-a'), (4, 3, 'three-b'), (5, 3, 'three-c')`,
	} {
		if _, err := app.Exec(ctx, s); err != nil {
			t.Fatal(s, err)
		}
	}
	// Item 5: refused by the server, after pgveil sealed under tenant 2.
	if _, err := app.Exec(ctx, `INSERT INTO acc (id, org, secret) VALUES (1, 2, 'two')`); err == nil || !strings.Contains(err.Error(), "23505") {
		t.Fatalf("duplicate id: %v", err)
	}
	if n, _ := keys("2"); n != 1 {
		t.Fatalf("tenant 2: %d keys after a refused INSERT", n)
	}
	// Item 6: tenant 3's rows 4 and 5 moved around pgveil.
	for _, s := range []string{`UPDATE acc SET org = 9 WHERE id = 4`, `UPDATE acc SET org = NULL WHERE id = 5`} {
		if _, err := su.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	e.run(ctx, 0, "shred", "-c", cfg, "--table", "public.acc", "--tenant", "3", "--yes")
	var left string
	if err := su.QueryRow(ctx, `SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM acc WHERE secret_bidx IS NOT NULL AND id IN (3, 4, 5)`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != "" {
		t.Errorf("blind indexes of the shredded tenant's values left in rows %s (moved to another tenant or NULL around pgveil)", left)
	}
	// A refused write for the shredded tenant makes a new version; the
	// old values stay unreadable, the tenant's next write reads back.
	if _, err := app.Exec(ctx, `INSERT INTO acc (id, org, secret) VALUES (1, 3, 'again')`); err == nil {
		t.Fatal("duplicate id accepted")
	}
	if n, active := keys("3"); n != 2 || active != 1 {
		t.Errorf("tenant 3 after shred and a refused write: %d keys, %d active", n, active)
	}
	if _, err := app.Exec(ctx, `INSERT INTO acc (id, org, secret) VALUES (6, 3, 'after')`); err != nil {
		t.Fatal(err)
	}
	var got *string
	if err := app.QueryRow(ctx, `SELECT secret FROM acc WHERE id = 3`).Scan(&got); err != nil || got != nil {
		t.Errorf("shredded value: %v %v", got, err)
	}
	var after string
	if err := app.QueryRow(ctx, `SELECT secret FROM acc WHERE org = 3 AND secret = 'after'`).Scan(&after); err != nil || after != "after" {
		t.Errorf("write after shred: %q %v", after, err)
	}
	// A role that may not write: the key is made before the server says no.
	roConn := connectPgx(t, ctx, harness.BuildURL(p.Addr, "lowsweep2_ro", "ro", e.db, "sslmode=disable"))
	if _, err := roConn.Exec(ctx, `INSERT INTO acc (id, org, secret) VALUES (7, 77, 'x')`); err == nil || !strings.Contains(err.Error(), "42501") {
		t.Fatalf("read-only role: %v", err)
	}
	if n, _ := keys("77"); n != 1 {
		t.Errorf("tenant 77: %d keys after a refused INSERT of a read-only role", n)
	}
}
