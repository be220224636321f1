package integration

// Review 20c: a new team adopting pgveil by following the docs alone.

import (
	"context"
	"strings"
	"testing"
	"time"
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
