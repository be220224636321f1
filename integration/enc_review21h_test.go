package integration

// Review 21h: the lead's 21st session (a value of a key_context table
// opens only beside a known tenant field; a Bind refused for pgveil's
// result formats reloads the catalog) and review 21d's fixes (merged
// USING columns, COPY … TO reading FROM ONLY, TABLE t for send-form
// tenants). Legitimate reads of every ordinary shape must still open
// their own rows; a moved value must not open; a client must not make
// pgveil read its catalog again at will.

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/integration/harness"
)

const review21hPolicy = `tables:
  public.h21a:
    key_context: org
    columns:
      secret: {type: text, on_error: "null"}
  public.h21b:
    key_context: org
    columns:
      secret: {type: text, on_error: "null"}
  public.h21d:
    key_context: org
    columns:
      secret: {type: text, on_error: "null"}
`

// review21hEnv: h21a and h21b (int tenants) and h21d (a date tenant),
// each with rows id 1 (tenant 1, s-1), 2 (tenant 2, s-2) and 3 (tenant
// 1, holding row 2's ciphertext, moved directly).
func review21hEnv(t *testing.T, ctx context.Context, db string) (*opsEnv, *pgx.Conn, *pgx.Conn, *harness.Proxy) {
	e := newOpsEnv(t, db, review21hPolicy)
	d := e.conn(ctx)
	for _, s := range []string{
		`CREATE TABLE h21a (id int PRIMARY KEY, org int NOT NULL, secret bytea)`,
		`CREATE TABLE h21b (id int PRIMARY KEY, org int NOT NULL, secret bytea)`,
		`CREATE TABLE h21d (id int PRIMARY KEY, org date NOT NULL, secret bytea)`,
		`CREATE TABLE h21org (org int PRIMARY KEY, name text)`,
		`INSERT INTO h21org VALUES (1, 'one'), (2, 'two')`,
	} {
		if _, err := d.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	e.run(ctx, 0, "migrate", "-c", e.writeConfig("c.yaml", e.config("")), "--apply")
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	for _, s := range []string{
		`INSERT INTO h21a (id, org, secret) VALUES (1, 1, 's-1'), (2, 2, 's-2'), (3, 1, 's-3')`,
		`INSERT INTO h21b (id, org, secret) VALUES (1, 1, 'b-1'), (2, 2, 'b-2'), (3, 1, 'b-3')`,
		`INSERT INTO h21d (id, org, secret) VALUES (1, '2026-01-01', 'd-1'), (2, '2026-01-02', 'd-2'), (3, '2026-01-01', 'd-3')`,
	} {
		if _, err := app.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for _, tb := range []string{"h21a", "h21b", "h21d"} {
		if _, err := d.Exec(ctx, fmt.Sprintf(`UPDATE %s SET secret = (SELECT secret FROM %s WHERE id = 2) WHERE id = 3`, tb, tb)); err != nil {
			t.Fatal(err)
		}
	}
	return e, d, app, p
}

// review21hSecrets runs q through the extended protocol (text and binary
// results) and the simple one and returns, per run, the values of the
// fields named secret joined by spaces, row by row ("|" between rows).
func review21hSecrets(t *testing.T, ctx context.Context, app *pgx.Conn, q string) []string {
	t.Helper()
	var out []string
	for _, formats := range [][]int16{nil, {1}, {-1}} {
		var rs *pgconn.Result
		if len(formats) == 1 && formats[0] == -1 {
			all, err := app.PgConn().Exec(ctx, q).ReadAll()
			rs = &pgconn.Result{Err: err}
			if err == nil {
				rs = all[len(all)-1]
			}
		} else {
			rs = app.PgConn().ExecParams(ctx, q, nil, nil, nil, formats).Read()
		}
		if rs.Err != nil {
			out = append(out, "ERR "+rs.Err.Error())
			continue
		}
		var rows []string
		for _, r := range rs.Rows {
			var vs []string
			for i, f := range rs.FieldDescriptions {
				if f.Name == "secret" {
					v := "NULL"
					if r[i] != nil {
						v = string(r[i])
					}
					vs = append(vs, v)
				}
			}
			rows = append(rows, strings.Join(vs, " "))
		}
		out = append(out, strings.Join(rows, "|"))
	}
	// pgx's own: a Describe first, then a format code per column (binary
	// for an int, text for others).
	rows, err := app.Query(ctx, q)
	if err != nil {
		return append(out, "ERR "+err.Error())
	}
	var all []string
	for rows.Next() {
		var vs []string
		for i, f := range rows.FieldDescriptions() {
			if f.Name == "secret" {
				v := "NULL"
				if r := rows.RawValues()[i]; r != nil {
					v = string(r)
				}
				vs = append(vs, v)
			}
		}
		all = append(all, strings.Join(vs, " "))
	}
	if err := rows.Err(); err != nil {
		return append(out, "ERR "+err.Error())
	}
	return append(out, strings.Join(all, "|"))
}

// Ordinary reads whose tenant the plan finds must open their own rows
// (and not the moved one) now that no known tenant field means no open.
func TestReview21hOrdinaryReadsOpen(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 3*time.Minute)
	_, _, app, _ := review21hEnv(t, ctx, "enc_review21h_reads")
	cases := []struct{ q, want string }{
		{`SELECT secret FROM h21a ORDER BY id`, "s-1|s-2|NULL"},
		{`SELECT * FROM h21a ORDER BY id`, "s-1|s-2|NULL"},
		{`TABLE h21a ORDER BY id`, "s-1|s-2|NULL"},
		{`TABLE h21d ORDER BY id`, "d-1|d-2|NULL"},
		{`SELECT * FROM h21d ORDER BY id`, "d-1|d-2|NULL"},
		{`SELECT secret, org FROM h21a WHERE id = 1 UNION ALL SELECT secret, org FROM h21a WHERE id = 2`, "s-1|s-2"},
		{`(TABLE h21a ORDER BY id LIMIT 1) UNION ALL (SELECT * FROM h21a WHERE id = 2)`, "s-1|s-2"},
		{`SELECT * FROM (SELECT * FROM h21a) s ORDER BY id`, "s-1|s-2|NULL"},
		{`WITH c AS (SELECT * FROM h21a) SELECT * FROM c ORDER BY id`, "s-1|s-2|NULL"},
		{`SELECT * FROM h21a JOIN h21b USING (id) ORDER BY id`, "s-1 b-1|s-2 b-2|NULL NULL"},
		{`SELECT * FROM h21a JOIN h21b USING (org) WHERE h21a.id = 1 AND h21b.id = 1`, "s-1 b-1"},
		{`SELECT * FROM h21a LEFT JOIN h21b USING (org) WHERE h21a.id = 2 AND h21b.id = 2`, "s-2 b-2"},
		{`SELECT * FROM h21a RIGHT JOIN h21b USING (org) WHERE h21a.id = 2 AND h21b.id = 2`, "s-2 b-2"},
		{`SELECT * FROM h21a FULL JOIN h21b USING (org) WHERE h21a.id = 2 AND h21b.id = 2`, "s-2 b-2"},
		{`SELECT * FROM h21a JOIN h21b USING (org, id) WHERE id = 1`, "s-1 b-1"},
		// The moved value (h21a row 3, tenant 1, tenant 2's ciphertext)
		// does not open beside either side.
		{`SELECT * FROM h21a JOIN h21b USING (org) WHERE h21a.id = 3 AND h21b.id = 1`, "NULL b-1"},
		{`SELECT * FROM h21b RIGHT JOIN h21a USING (org) WHERE h21a.id = 3 AND h21b.id = 1`, "b-1 NULL"},
		{`SELECT * FROM h21a FULL JOIN h21b USING (org) WHERE h21a.id = 3 AND h21b.id = 1`, "NULL b-1"},
		{`SELECT *, h21a.org FROM h21a JOIN h21b USING (org) WHERE h21a.id = 1 AND h21b.id = 1`, "s-1 b-1"},
		{`SELECT * FROM h21d JOIN h21a USING (id) WHERE id = 1`, "d-1 s-1"},
		// A plain table joined USING the tenant column: the merged
		// column's origin is the plain table's.
		{`SELECT * FROM h21org JOIN h21a USING (org) ORDER BY h21a.id`, "s-1|s-2|NULL"},
		{`SELECT * FROM h21org o JOIN h21a a USING (org) ORDER BY a.id`, "s-1|s-2|NULL"},
		{`SELECT * FROM h21d JOIN h21d y USING (org) WHERE h21d.id = 1 AND y.id = 3`, "ERR ERROR: pgveil: a * over"}, // refused (holds)
		{`SELECT a.*, b.* FROM h21a a, h21a b WHERE a.id = 1 AND b.id = 2`, "s-1 s-2"},
		{`SELECT * FROM h21a a, h21a b WHERE a.id = 1 AND b.id = 2`, "s-1 s-2"},
		// A TABLE branch of a UNION ALL over a date tenant (refused before
		// review 21h).
		{`TABLE h21d UNION ALL TABLE h21d ORDER BY id`, "d-1|d-1|d-2|d-2|NULL|NULL"},
		{`(TABLE h21d ORDER BY id LIMIT 1) UNION ALL SELECT * FROM h21d WHERE id = 3`, "d-1|NULL"},
	}
	for _, c := range cases {
		for i, got := range review21hSecrets(t, ctx, app, c.q) {
			if got != c.want && !(strings.HasPrefix(c.want, "ERR") && strings.HasPrefix(got, c.want)) {
				t.Errorf("%s (run %d): got %q, want %q", c.q, i, got, c.want)
			}
		}
	}
	// RETURNING, cursors, COPY TO.
	rs := app.PgConn().ExecParams(ctx, `UPDATE h21a SET id = id WHERE id IN (1, 2, 3) RETURNING id, secret`, nil, nil, nil, nil).Read()
	if rs.Err != nil || len(rs.Rows) != 3 {
		t.Errorf("RETURNING: %v %v", rs.Rows, rs.Err)
	}
	tx, err := app.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DECLARE c1 CURSOR FOR SELECT * FROM h21a ORDER BY id`, `DECLARE c2 CURSOR FOR TABLE h21d ORDER BY id`,
		`DECLARE c3 CURSOR FOR SELECT * FROM h21a JOIN h21b USING (org) WHERE h21a.id = 1 AND h21b.id = 1`} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	for q, want := range map[string]string{`FETCH ALL c1`: "s-1|s-2|NULL", `FETCH ALL c2`: "d-1|d-2|NULL", `FETCH ALL c3`: "s-1 b-1"} {
		for i, got := range review21hSecrets(t, ctx, app, q)[:1] {
			if got != want {
				t.Errorf("%s (run %d): got %q, want %q", q, i, got, want)
			}
		}
	}
	tx.Rollback(ctx)
	for q, want := range map[string]string{
		`COPY h21a TO STDOUT`:                 "s-1",
		`COPY h21d TO STDOUT`:                 "d-1",
		`COPY (TABLE h21d) TO STDOUT`:         "d-1",
		`COPY (SELECT * FROM h21a) TO STDOUT`: "s-1",
	} {
		var buf strings.Builder
		_, err := app.PgConn().CopyTo(ctx, &buf, q)
		if err != nil || !strings.Contains(buf.String(), want) {
			t.Errorf("%s: %q %v", q, buf.String(), err)
		}
	}
}

// A client's own Bind refused by the server for its parameter count (not
// for the result formats pgveil gave) must not make pgveil read its
// catalog again: a client could make the service pool reload it at will.
func TestReview21hBadBindNoReload(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)
	e, d, _, _ := review21hEnv(t, ctx, "enc_review21h_reload")
	p, err := harness.StartProxy(harness.ProxyOptions{Config: e.config("")})
	if err != nil {
		t.Fatal(err)
	}
	app := connectPgx(t, ctx, e.appURL(p))
	c := app.PgConn()
	for q, rf := range map[string][]int16{
		`SELECT id, secret, org FROM h21a WHERE id = $1`: {0, 1, 0},
		`SELECT id, secret FROM h21d WHERE id = $1`:      {1, 0},
	} {
		if _, err := c.Prepare(ctx, "h21s", q, nil); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			rs := c.ExecPrepared(ctx, "h21s", nil, nil, rf).Read()
			if rs.Err == nil || !strings.Contains(rs.Err.Error(), "08P01") {
				t.Fatalf("%s: a Bind of no parameters: %v", q, rs.Err)
			}
		}
		rs := c.ExecPrepared(ctx, "h21s", [][]byte{[]byte("1")}, nil, rf).Read()
		if rs.Err != nil || len(rs.Rows) != 1 {
			t.Fatalf("%s: %v %v", q, rs.Rows, rs.Err)
		}
		if err := c.Exec(ctx, `DEALLOCATE h21s`).Close(); err != nil {
			t.Fatal(err)
		}
	}
	// The control: a column added directly, a Bind without a Describe
	// first is refused for pgveil's result formats, and that reloads
	// once.
	if _, err := d.Exec(ctx, `ALTER TABLE h21b ADD COLUMN extra int`); err != nil {
		t.Fatal(err)
	}
	rs := c.ExecParams(ctx, `SELECT * FROM h21b WHERE id = 1`, nil, nil, nil, []int16{0, 0, 1}).Read()
	if rs.Err == nil || !strings.Contains(rs.Err.Error(), "08P01") {
		t.Fatalf("the stale Bind: %v", rs.Err)
	}
	app.Close(ctx)
	p.Signal(syscall.SIGTERM)
	<-p.Exited() // the log is complete
	log := p.Log()
	p.Stop()
	if n := strings.Count(log, "refused the result formats"); n != 1 {
		t.Errorf("pgveil read its catalog again %d times for a stale plan's Bind and a client's 10 Binds of the wrong parameter count, want 1", n)
	}
}

// Views, inheritance and COPY … TO of a parent: reads through a view
// open their own rows; COPY parent TO reads the parent's rows only, as
// PostgreSQL does (review 21d's FROM ONLY), for an int and a date tenant.
func TestReview21hViewsAndInheritance(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 3*time.Minute)
	e, d, _, _ := review21hEnv(t, ctx, "enc_review21h_views")
	for _, s := range []string{
		`CREATE VIEW h21av AS SELECT id, org, secret FROM h21a`,
		`CREATE VIEW h21dv AS SELECT id, org, secret FROM h21d`,
		`CREATE TABLE h21ac (extra int) INHERITS (h21a)`,
		`CREATE TABLE h21dc (extra int) INHERITS (h21d)`,
		`INSERT INTO h21ac (id, org, secret, extra) VALUES (9, 1, NULL, 1)`,
		`INSERT INTO h21dc (id, org, secret, extra) VALUES (9, '2026-01-01', NULL, 1)`,
	} {
		if _, err := d.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	cases := []struct{ q, want string }{
		{`SELECT secret, org FROM h21av ORDER BY id`, "s-1|s-2|NULL|NULL"},
		{`SELECT * FROM h21av ORDER BY id`, "s-1|s-2|NULL|NULL"},
		{`SELECT * FROM h21dv ORDER BY id`, "d-1|d-2|NULL|NULL"},
		{`TABLE h21dv ORDER BY id`, "d-1|d-2|NULL|NULL"},
		{`SELECT * FROM ONLY h21d ORDER BY id`, "d-1|d-2|NULL"},
		{`TABLE ONLY h21d ORDER BY id`, "d-1|d-2|NULL"},
		{`TABLE h21d ORDER BY id`, "d-1|d-2|NULL|NULL"},
	}
	for _, c := range cases {
		for i, got := range review21hSecrets(t, ctx, app, c.q) {
			if got != c.want && !(strings.HasPrefix(c.want, "ERR") && strings.HasPrefix(got, c.want)) {
				t.Errorf("%s (run %d): got %q, want %q", c.q, i, got, c.want)
			}
		}
	}
	for _, tb := range []string{"h21a", "h21d"} {
		for _, q := range []string{`COPY ` + tb + ` TO STDOUT`, `COPY ` + tb + ` (id, secret) TO STDOUT`} {
			var buf strings.Builder
			if _, err := app.PgConn().CopyTo(ctx, &buf, q); err != nil {
				t.Errorf("%s: %v", q, err)
				continue
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 3 || strings.HasPrefix(lines[len(lines)-1], "9") || !strings.Contains(lines[0], "-1") {
				t.Errorf("%s: want the parent's 3 rows only, got %q", q, buf.String())
			}
		}
	}
}
