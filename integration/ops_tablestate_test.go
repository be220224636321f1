package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestOpsTableStatesSigned: the rows of pgveil.tables are signed by
// migrate with a key of the key store. A row written around pgveil (by
// hand, or by a pgveil from before signatures, whose pgveil.tables has no
// signature columns) is not trusted: pgveil serve reads the table as
// complete, `pgveil check` reports it, and `pgveil migrate --apply` adds
// the columns, signs a state anew and carries on.
func TestOpsTableStatesSigned(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	e := newOpsEnv(t, "ops_signed", `tables:
  public.people:
    columns:
      email:
        type: text
        blind_index: {column: email_bidx}
`)
	c := e.conn(ctx)
	if _, err := c.Exec(ctx, `CREATE TABLE people (id int PRIMARY KEY, email text);
INSERT INTO people VALUES (1, 'one@example.com'), (2, 'two@example.com')`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("c.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--prepare")
	var gen int64
	var mac []byte
	if err := c.QueryRow(ctx, `SELECT generation, mac FROM pgveil.tables WHERE table_name = 'public.people' AND state = 'migrating'`).Scan(&gen, &mac); err != nil {
		t.Fatalf("the migrating state: %v", err)
	}
	if gen <= 0 || len(mac) != 32 {
		t.Fatalf("state not signed: generation %d, mac %x", gen, mac)
	}
	p := e.proxy(e.config(""))
	read := func() (string, error) {
		app, err := pgx.Connect(ctx, e.appURL(p))
		if err != nil {
			return "", err
		}
		defer app.Close(context.Background())
		var s string
		err = app.QueryRow(ctx, "SELECT email FROM people WHERE id = 1").Scan(&s)
		return s, err
	}
	if s, err := read(); err != nil || s != "one@example.com" {
		t.Fatalf("legacy plaintext in migration mode: %q %v", s, err)
	}
	// pgveil.tables as a pgveil before signatures made it.
	if _, err := c.Exec(ctx, `ALTER TABLE pgveil.tables DROP COLUMN mac, DROP COLUMN generation`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `NOTIFY pgveil_tables, 'public.people'`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := read()
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "PV003" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an unsigned migrating state is still trusted: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling the proxy's reload, with a deadline
	}
	r := e.run(ctx, 1, "check", "-c", cfg)
	if !strings.Contains(r.stdout, "public.people is not trusted") || !strings.Contains(r.stdout, "not signed") ||
		!strings.Contains(r.stdout, "ADD COLUMN IF NOT EXISTS generation") {
		t.Errorf("check does not report the unsigned state:\n%s", r.stdout)
	}
	r = e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	if !strings.Contains(r.stdout, "not trusted") {
		t.Errorf("migrate does not say the state was not trusted:\n%s", r.stdout)
	}
	if s := e.tableState(ctx, c, "public.people"); s != "complete" {
		t.Fatalf("after migrate --apply: state %q", s)
	}
	if err := c.QueryRow(ctx, `SELECT mac FROM pgveil.tables WHERE table_name = 'public.people'`).Scan(&mac); err != nil || len(mac) != 32 {
		t.Fatalf("complete state not signed: %x %v", mac, err)
	}
	if s, err := read(); err != nil || s != "one@example.com" {
		t.Fatalf("sealed value after migrate: %q %v", s, err)
	}
	e.run(ctx, 0, "check", "-c", cfg)
}
