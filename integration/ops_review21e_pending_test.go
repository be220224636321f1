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

import (
	"testing"
	"time"

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
