package integration

// Review 17c: an unquoted number written to a text key_context column.
//
//   - HIGH (fixed): INSERT INTO acct (id, org, secret) VALUES (1, 007, 's')
//     into a text key_context column: PostgreSQL reads 007 as the integer
//     7 and stores '7', while pgveil sealed secret under tenant '007'; the
//     row's value could not be read back (sealed under another tenant's
//     key). Same for 1e2 ('100'). Fix: the proxy reads an unquoted number
//     for a text, varchar or bpchar key_context as PostgreSQL does
//     (canon numeric output) before it picks the tenant's key. In INSERT
//     … SELECT … FROM (VALUES …), a text key_context column mixing unquoted
//     numbers and other values is refused (the VALUES column takes one
//     type: '007' beside 8 becomes 7).
//   - MEDIUM (fixed): an unquoted number written to an encrypted text
//     column (0042) was sealed as written and read back as '0042', where
//     PostgreSQL stores '42'. Fix: read as PostgreSQL reads it.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestReviewTextTenantNumbers17c(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "enc_texttenant17c", `tables:
  public.acct:
    key_context: org
    columns:
      secret: {type: text}
`)
	c := e.conn(ctx)
	if _, err := c.Exec(ctx, `CREATE TABLE acct (id int PRIMARY KEY, org text NOT NULL, secret bytea)`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("c.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(e.config(""))
	pc, err := pgx.ParseConfig(e.appURL(p))
	if err != nil {
		t.Fatal(err)
	}
	pc.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	app, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())
	for _, w := range []struct{ sql, org string }{
		{`INSERT INTO acct (id, org, secret) VALUES (1, 007, 's-one')`, "7"},
		{`INSERT INTO acct (id, org, secret) VALUES (2, 1e2, 's-two'), (3, 'x7', 's-three')`, "100"},
		{`INSERT INTO acct (id, org, secret) SELECT p0, p1, p2 FROM (VALUES (4, 01.50, 's-four', 0)) AS imp_sen(p0, p1, p2, sen_counter) ORDER BY sen_counter`, "1.50"},
		{`INSERT INTO acct (id, org, secret) VALUES (8, 'o', 0042), (9, 'o', 1e2)`, "o"},
	} {
		if _, err := app.Exec(ctx, w.sql); err != nil {
			t.Fatalf("%s: %v", w.sql, err)
		}
	}
	for id, want := range map[int][2]string{1: {"7", "s-one"}, 2: {"100", "s-two"}, 3: {"x7", "s-three"}, 4: {"1.50", "s-four"}, 8: {"o", "42"}, 9: {"o", "100"}} {
		var org, secret string
		if err := app.QueryRow(ctx, `SELECT org, secret FROM acct WHERE id = $1`, id).Scan(&org, &secret); err != nil || org != want[0] || secret != want[1] {
			t.Errorf("id %d: (%q, %q) %v; want %v", id, org, secret, err, want)
		}
	}
	_, err = app.Exec(ctx, `INSERT INTO acct (id, org, secret) SELECT p0, p1, p2 FROM (VALUES (5, '007', 's-five', 0), (6, 8, 's-six', 1)) AS imp_sen(p0, p1, p2, sen_counter) ORDER BY sen_counter`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "unquoted numbers") {
		t.Errorf("mixed tenant literals: %v", err)
	}
}
