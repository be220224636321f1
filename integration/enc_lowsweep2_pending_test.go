//go:build review19pending

package integration

// LOW sweep 2, pending: a key_context column of a type pgveil does not
// canonicalise (time, interval, inet, …) names its tenant by the value's
// text as written, while PostgreSQL stores the type's output ('10:00' is
// stored 10:00:00, '10.0.0.1/32' is 10.0.0.1): the row's values are sealed
// under another tenant than the one stored, and the row never opens
// (PV001). Not fixed: pgveil would have to mirror each type's input and
// output (or ask the server for it at each write).

import (
	"fmt"
	"testing"
	"time"
)

func TestLowSweep2OtherTypeTenantPending(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "enc_lowsweep2_othertype", `tables:
  public.tt:
    key_context: org
    columns:
      secret: {type: text}
  public.ti:
    key_context: org
    columns:
      secret: {type: text}
`)
	c := e.conn(ctx)
	for _, s := range []string{
		`CREATE TABLE tt (id int PRIMARY KEY, org time NOT NULL, secret bytea)`,
		`CREATE TABLE ti (id int PRIMARY KEY, org inet NOT NULL, secret bytea)`,
	} {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	e.run(ctx, 0, "migrate", "-c", e.writeConfig("c.yaml", e.config("")), "--apply")
	app := lowSweep2App(t, ctx, e, true)
	for i, w := range []struct{ table, org string }{{"tt", "10:00"}, {"ti", "10.0.0.1/32"}} {
		if _, err := app.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (id, org, secret) VALUES (%d, '%s', 's')`, w.table, i, w.org)); err != nil {
			continue // refused: fine
		}
		var got string
		if err := app.QueryRow(ctx, fmt.Sprintf(`SELECT secret FROM %s WHERE id = %d`, w.table, i)).Scan(&got); err != nil || got != "s" {
			t.Errorf("%s %s: read back %q %v", w.table, w.org, got, err)
			app = lowSweep2App(t, ctx, e, true)
		}
	}
}
