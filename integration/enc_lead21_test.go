package integration

// Lead, twenty-first session: the tenant check of a key_context table
// whose fields are mapped by origin (a * over a relation pgveil's catalog
// does not list). A table read twice has two key_context fields of the
// same origin; the first was taken as every value's tenant, so in a
// self-join a ciphertext moved from tenant 2's row into a row of tenant 1
// opened when the other side of the join was a row of tenant 2. A value
// whose tenant field is not known (none, or more than one candidate)
// must not open.

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestLead21ByOriginSelfJoin(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "enc_lead21_origin", `tables:
  public.l21:
    key_context: org
    columns:
      secret: {type: text, on_error: "null"}
`)
	d := e.conn(ctx)
	if _, err := d.Exec(ctx, `CREATE TABLE l21 (id int PRIMARY KEY, org int NOT NULL, secret bytea)`); err != nil {
		t.Fatal(err)
	}
	e.run(ctx, 0, "migrate", "-c", e.writeConfig("c.yaml", e.config("")), "--apply")
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	if _, err := app.Exec(ctx, `INSERT INTO l21 (id, org, secret) VALUES (1, 1, 's-1'), (2, 2, 's-2'), (3, 1, 's-3')`); err != nil {
		t.Fatal(err)
	}
	// Row 3 (tenant 1) gets row 2's ciphertext (tenant 2).
	if _, err := d.Exec(ctx, `UPDATE l21 SET secret = (SELECT secret FROM l21 WHERE id = 2) WHERE id = 3`); err != nil {
		t.Fatal(err)
	}
	// Created after pgveil's catalog snapshot: not listed, so the fields
	// of a * over it are mapped by origin.
	if _, err := d.Exec(ctx, `CREATE TABLE l21_other (x int); INSERT INTO l21_other VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	byOrigin := []string{
		// b (tenant 2) first: its org field was taken as a's tenant too.
		`SELECT * FROM l21_other o, l21 b, l21 a WHERE b.id = 2 AND a.id = 3`,
		`SELECT * FROM l21_other o, l21 a, l21 b WHERE b.id = 2 AND a.id = 3`,
		// Planned by position; a column added around pgveil (no catalog
		// refresh) makes the row's shape differ from the plan, and its
		// fields are mapped by origin.
		`SELECT * FROM l21 b, l21 a WHERE b.id = 2 AND a.id = 3`,
		`SELECT b.*, a.* FROM l21 b, l21 a WHERE b.id = 2 AND a.id = 3`,
	}
	if _, err := d.Exec(ctx, `ALTER TABLE l21 ADD COLUMN extra int`); err != nil {
		t.Fatal(err)
	}
	for _, q := range byOrigin {
		for _, formats := range [][]int16{nil, {1}, {-1}} {
			var rs *pgconn.Result
			if len(formats) == 1 && formats[0] == -1 {
				// Simple query.
				all, err := app.PgConn().Exec(ctx, q).ReadAll()
				rs = &pgconn.Result{Err: err}
				if err == nil {
					rs = all[0]
				}
			} else {
				rs = app.PgConn().ExecParams(ctx, q, nil, nil, nil, formats).Read()
				if rs.Err != nil && strings.Contains(rs.Err.Error(), "08P01") {
					// The server refused the result formats pgveil gave
					// from its stale snapshot (a Bind without a Describe
					// first, as node-postgres sends): pgveil reads the
					// catalog again, and the statement run again works.
					rs = app.PgConn().ExecParams(ctx, q, nil, nil, nil, formats).Read()
				}
			}
			if rs.Err != nil {
				if !strings.Contains(rs.Err.Error(), "0A000") {
					t.Errorf("%s %v: %v", q, formats, rs.Err)
				}
				continue // refused: fails closed
			}
			if len(rs.Rows) != 1 {
				t.Fatalf("%s: %d rows", q, len(rs.Rows))
			}
			// a's secret (row 3, tenant 1, tenant 2's ciphertext) must
			// not open; b's (row 2) opens.
			var secrets []string
			for i, f := range rs.FieldDescriptions {
				if f.Name == "secret" {
					v := "NULL"
					if rs.Rows[0][i] != nil {
						v = string(rs.Rows[0][i])
					}
					secrets = append(secrets, v)
				}
			}
			// Fields mapped by origin that name the table twice name
			// neither row's tenant: b's value may read NULL too.
			want, alt := "s-2 NULL", "NULL NULL" // b first
			if strings.Contains(q, "l21 a, l21 b") {
				want = "NULL s-2"
			}
			if got := strings.Join(secrets, " "); got != want && got != alt {
				t.Errorf("%s %v: secrets %s, want %s (a value moved from tenant 2's row must not open in a row of tenant 1)", q, formats, got, want)
			}
		}
	}
	// A * over the unlisted relation beside the table read once still
	// opens its own rows.
	rs := app.PgConn().ExecParams(ctx, `SELECT o.*, a.id, a.org, a.secret FROM l21_other o, l21 a WHERE a.id IN (1, 2) ORDER BY a.id`, nil, nil, nil, nil).Read()
	if rs.Err != nil || len(rs.Rows) != 2 || string(rs.Rows[0][3]) != "s-1" || string(rs.Rows[1][3]) != "s-2" {
		t.Errorf("one read of the table by origin: %v %v", rs.Rows, rs.Err)
	}
}
