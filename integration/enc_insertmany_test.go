package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// sqlaInsertMany is the statement SQLAlchemy 2.0's ORM sends for add_all of
// objects whose primary keys the server generates ("insertmanyvalues" with
// a sentinel: rows in a VALUES list, RETURNING ordered by the sentinel so
// that each returned id matches its object). ph renders the n-th (1-based)
// placeholder: $n::TYPE for pgx (asyncpg's form), %s for psycopg2.
func sqlaInsertMany(rows int, ph func(n int, typ string) string) string {
	var vals []string
	for r := 0; r < rows; r++ {
		b := 4 * r
		vals = append(vals, fmt.Sprintf("(%s, %s, %s, %s, %d)", ph(b+1, "BIGINT"), ph(b+2, "VARCHAR"), ph(b+3, "VARCHAR"), ph(b+4, "VARCHAR"), r))
	}
	return `INSERT INTO users (org_id, email, phone, name) SELECT p0::BIGINT, p1::VARCHAR, p2::VARCHAR, p3::VARCHAR FROM (VALUES ` +
		strings.Join(vals, ", ") + `) AS imp_sen(p0, p1, p2, p3, sen_counter) ORDER BY sen_counter RETURNING users.id, users.id AS id__1`
}

// TestEncInsertManyValues: SQLAlchemy 2.0's insertmanyvalues INSERT works
// through pgveil with parameters (every pgx exec mode; psycopg 3 and
// asyncpg send it so) and with literals (psycopg2, which interpolates
// them): each value is sealed under its own row's tenant with its blind
// index, the ids come back in the rows' order, and the values read back
// and are found by email.
func TestEncInsertManyValues(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)
	const orgA, orgB = 9171, 9172
	p := startEncProxy(t, orgA, orgB)
	type row struct {
		org          int64
		email, phone string
		name         string
	}
	var written []row
	var plaintexts []string
	rowsFor := func(tag string) []row {
		rs := []row{
			{orgA, "IMV-" + tag + "-a@example.org", "+1-555-" + tag + "-a", "Ann " + tag},
			{orgB, "imv-" + tag + "-b@example.org", "+1-555-" + tag + "-b", "Bob " + tag},
			{orgA, "imv-" + tag + "-c@example.org", "+1-555-" + tag + "-c", "Cy " + tag},
		}
		for _, r := range rs {
			p.remember(r.email, r.phone)
			plaintexts = append(plaintexts, r.email, r.phone)
		}
		return rs
	}
	check := func(tag string, rs []row, ids []int64) {
		t.Helper()
		if len(ids) != len(rs) {
			t.Fatalf("%s: %d ids for %d rows", tag, len(ids), len(rs))
		}
		c := connectPgx(t, ctx, p.url())
		defer c.Close(context.Background())
		for i, r := range rs {
			var org int64
			var email, phone string
			if err := c.QueryRow(ctx, "SELECT org_id, email, phone FROM users WHERE id = $1", ids[i]).Scan(&org, &email, &phone); err != nil {
				t.Fatalf("%s: row %d (id %d): %v", tag, i, ids[i], err)
			}
			if org != r.org || email != r.email || phone != r.phone {
				t.Errorf("%s: id %d holds (%d, %q, %q), want row %d (%d, %q, %q): ids out of the rows' order?", tag, ids[i], org, email, phone, i, r.org, r.email, r.phone)
			}
			var id int64
			if err := c.QueryRow(ctx, "SELECT id FROM users WHERE email = $1", strings.ToUpper(" "+r.email)).Scan(&id); err != nil || id != ids[i] {
				t.Errorf("%s: lookup of %q: id %d, %v; want %d", tag, r.email, id, err, ids[i])
			}
		}
		written = append(written, rs...)
	}

	for _, mode := range prModes {
		tag := strings.ReplaceAll(mode.String(), " ", "")
		rs := rowsFor(tag)
		cfg, err := pgx.ParseConfig(p.url())
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = mode
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var args []any
		for _, r := range rs {
			args = append(args, r.org, r.email, r.phone, r.name)
		}
		rows, err := c.Query(ctx, sqlaInsertMany(len(rs), func(n int, typ string) string { return fmt.Sprintf("$%d::%s", n, typ) }), args...)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		var ids []int64
		for rows.Next() {
			var id, id2 int64
			if err := rows.Scan(&id, &id2); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		c.Close(ctx)
		check(mode.String(), rs, ids)
	}

	// psycopg2, as SQLAlchemy's psycopg2 dialect sends it.
	pythonDriver(t, "psycopg2")
	rs := rowsFor("psycopg2")
	var args []any
	for _, r := range rs {
		args = append(args, r.org, r.email, r.phone, r.name)
	}
	argJSON, _ := json.Marshal(args)
	const prog = `import sys, json, psycopg2
conn = psycopg2.connect(sys.argv[1])
cur = conn.cursor()
cur.execute(sys.argv[2], json.loads(sys.argv[3]))
print(json.dumps([r[0] for r in cur.fetchall()]))
conn.commit()
`
	out, err := exec.CommandContext(ctx, debianPython, "-c", prog, p.url(), sqlaInsertMany(len(rs), func(int, string) string { return "%s" }), string(argJSON)).CombinedOutput()
	if err != nil {
		t.Fatalf("psycopg2: %v\n%s", err, out)
	}
	var ids []int64
	if err := json.Unmarshal(out, &ids); err != nil {
		t.Fatalf("psycopg2 printed %s: %v", out, err)
	}
	check("psycopg2", rs, ids)

	// A column NULL in every row (its VALUES column has no type of its
	// own then: the casts to bytea give it one), literals and parameters.
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		cfg, _ := pgx.ParseConfig(p.url())
		cfg.DefaultQueryExecMode = mode
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		email := "imv-null-" + strings.ReplaceAll(mode.String(), " ", "") + "@example.org"
		p.remember(email)
		plaintexts = append(plaintexts, email)
		var id, id2 int64
		err = c.QueryRow(ctx, sqlaInsertMany(2, func(n int, typ string) string { return fmt.Sprintf("$%d::%s", n, typ) }),
			orgA, email, nil, "n1", orgB, nil, nil, "n2").Scan(&id, &id2)
		c.Close(ctx)
		if err != nil {
			t.Fatalf("%s: NULL columns: %v", mode, err)
		}
		c = connectPgx(t, ctx, p.url())
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM users WHERE email = $1 AND phone IS NULL AND org_id = $2", email, orgA).Scan(&n); err != nil || n != 1 {
			t.Errorf("%s: NULL columns: %d rows found by email, %v", mode, n, err)
		}
		c.Close(ctx)
	}
	verifyAtRest(t, ctx, plaintexts)
	if len(written) != 3*(len(prModes)+1) {
		t.Errorf("%d rows checked", len(written))
	}
}
