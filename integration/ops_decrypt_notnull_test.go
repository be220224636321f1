package integration

import (
	"strings"
	"testing"
	"time"
)

// `pgveil migrate --decrypt` writes NULL for a shredded tenant's values
// (what pgveil has been returning). In a NOT NULL column that NULL is
// refused by the database; it used to fail the whole batch with a bare
// 23502, so no row of any tenant was decrypted. Such a value is a row
// problem: left as it is and reported with a remedy, while the other
// tenants' rows are decrypted.
func TestOpsDecryptShreddedNotNull(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_decrypt_notnull", rvPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, rvSchema+`
ALTER TABLE rv ALTER COLUMN email SET NOT NULL;`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	e.run(ctx, 0, "shred", "-c", cfg, "--table", "public.rv", "--tenant", "2", "--yes")

	r := e.run(ctx, 1, "migrate", "-c", cfg, "--decrypt", "--apply")
	t.Logf("migrate --decrypt:\n%s", tail(r.stderr, 3))
	if !strings.Contains(r.stderr, "email: ") || !strings.Contains(r.stderr, "NOT NULL") || strings.Contains(r.stderr, "SQLSTATE 23502") {
		t.Errorf("decrypt of a shredded NOT NULL column: want a row problem naming email and NOT NULL, got\n%s", tail(r.stderr, 10))
	}
	var rest int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM rv WHERE org <> 2 AND (email NOT LIKE 'u%@x.org' OR note NOT LIKE 'note %')`).Scan(&rest); err != nil || rest != 0 {
		t.Errorf("%d row(s) of other tenants not decrypted (%v)\n%s", rest, err, r.stdout)
	}
	var notes int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM rv WHERE org = 2 AND note IS NOT NULL`).Scan(&notes); err != nil || notes != 0 {
		t.Errorf("%d shredded note(s) of tenant 2 not set to NULL (%v)", notes, err)
	}
}
