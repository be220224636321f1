package proxy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const lookupSchema = `
DROP TABLE IF EXISTS lk_accounts;
CREATE TABLE lk_accounts (id int PRIMARY KEY, org int NOT NULL, email bytea, email_bidx bytea, note bytea);
GRANT ALL ON lk_accounts TO PUBLIC;
`

const lookupTables = `tables:
  public.lk_accounts:
    key_context: org
    columns:
      email:
        type: text
        blind_index: {column: email_bidx}
      note:
        type: text
`

// TestTenantLookupSendsNoPlaintext: an UPDATE without its tenant is looked
// up and sealed under the row's tenant in both protocols and on both
// relays; neither the values written nor the encrypted predicate's value
// go upstream (the lookup compares blind indexes, the guard carries the
// tenant only), and each value reads back under its row's tenant.
func TestTenantLookupSendsNoPlaintext(t *testing.T) {
	if _, err := adminConn(t).Exec(context.Background(), lookupSchema); err != nil {
		t.Fatal(err)
	}
	for ci, core := range relayCoreConfigs {
		t.Run(core.name, func(t *testing.T) {
			tap := startUpstreamTap(t)
			p := startTablesProxyAt(t, tap.ln.Addr().String(), lookupTables+core.extra)
			defer p.stop(t, 10*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for mi, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
				cfg, _ := pgx.ParseConfig(p.url())
				cfg.DefaultQueryExecMode = mode
				conn, err := pgx.ConnectConfig(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				id := 100*ci + 10*mi
				old := fmt.Sprintf("lookup-old-%d-5811@example.org", id)
				neu := fmt.Sprintf("lookup-new-%d-5812@example.org", id)
				note := fmt.Sprintf("lookup-note-%d-5813", id)
				for k, org := range []int{7, 8} {
					if _, err := conn.Exec(ctx, `INSERT INTO lk_accounts (id, org, email) VALUES ($1, $2, $3)`, id+k, org, fmt.Sprintf("%s-%d", old, k)); err != nil {
						t.Fatal(err)
					}
				}
				ct, err := conn.Exec(ctx, `UPDATE lk_accounts SET email = $1, note = $2 WHERE email = $3`, neu, note, old+"-1")
				if err != nil || ct.RowsAffected() != 1 {
					t.Fatalf("%s: UPDATE: %v, %d rows", mode, err, ct.RowsAffected())
				}
				var org int
				var email, gotNote string
				if err := conn.QueryRow(ctx, `SELECT org, email, note FROM lk_accounts WHERE email = $1`, neu).Scan(&org, &email, &gotNote); err != nil {
					t.Fatalf("%s: read back: %v", mode, err)
				}
				if org != 8 || email != neu || gotNote != note {
					t.Errorf("%s: read back %d %q %q", mode, org, email, gotNote)
				}
				conn.Close(ctx)
				for _, secret := range []string{old, neu, note} {
					if tap.saw(secret) {
						t.Errorf("%s: %q went upstream", mode, secret)
					}
				}
			}
		})
	}
}
