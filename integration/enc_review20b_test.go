package integration

// Review 20b: a session whose DateStyle is not ISO reads the rows of date
// and timestamp key_context columns (and domains over them): pgveil reads
// the tenant as the session prints it back to its ISO name, by the style
// and order PostgreSQL reports (ParameterStatus), and never takes a row
// of one tenant for another's.

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/lib/pq"

	"github.com/pgveil/pgveil/integration/harness"
)

// review20bStyles are the DateStyle settings under test.
var review20bStyles = []string{
	"ISO, DMY", "ISO, MDY", "SQL, DMY", "SQL, MDY", "SQL, YMD",
	"Postgres, DMY", "Postgres, MDY", "Postgres, YMD", "German, DMY", "German, MDY",
}

// TestReview20bPrintedTenantPG (canon.PrintedTenant read a tenant printed
// under any DateStyle back to its ISO name) is gone with PrintedTenant:
// review 21a reads such tenants as their send form, and
// canon.TestReview21aSendFormNamesTenant holds those against a real server.

// review20bTypes are the key_context types whose rows are read.
var review20bTypes = []review19cType{
	{"dt", "date"}, {"ts", "timestamp"}, {"ts3", "timestamp(3)"}, {"dd", "d_date"}, {"dts", "d_ts"},
}

// review20bTenants are the tenants written to each table (ids 1…):
// index 0 is 2026-01-02, index 1 2026-02-01, its day and month swapped.
func review20bTenants(typ string) []string {
	if typ == "date" || typ == "d_date" {
		return []string{"2026-01-02", "2026-02-01", "2026-01-13", "0044-03-15 BC", "10000-01-01", "infinity", "-infinity", "4714-11-24 BC"}
	}
	return []string{"2026-01-02 03:04:05.5", "2026-02-01 03:04:05.5", "2026-01-13 00:00:00", "0044-03-15 10:00:00.125 BC",
		"10000-01-01 01:02:03.25", "infinity", "-infinity", "2026-01-02 03:04:05.001"}
}

// review20bMoved is the id of the row of tenant 2026-01-02 whose secret
// is the ciphertext of a row of tenant 2026-02-01.
const review20bMoved = 100

// review20bEnv writes the rows through p (ISO) and moves a ciphertext
// directly; it returns the secrets each table's rows read back as.
func review20bEnv(t *testing.T, ctx context.Context, db, extra string) (*opsEnv, *harness.Proxy, map[string]map[int]string) {
	types := append(append([]review19cType{}, review20bTypes...), review19cType{"tstz", "timestamptz"})
	e := newOpsEnv(t, db, review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{`CREATE DOMAIN d_date AS date`, `CREATE DOMAIN d_ts AS timestamp`}, types)
	p := e.proxy(e.config("") + extra)
	app := e.appConn(ctx, p)
	want := map[string]map[int]string{}
	for _, ty := range review20bTypes {
		table := "r19_" + ty.name
		want[table] = map[int]string{}
		for i, tenant := range review20bTenants(ty.sql) {
			id := i + 1
			secret := fmt.Sprintf("s-%s-%d", ty.name, id)
			if _, err := app.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (id, org, secret) VALUES (%d, '%s', '%s')`, table, id, tenant, secret), pgx.QueryExecModeSimpleProtocol); err != nil {
				t.Fatalf("%s %s: %v", table, tenant, err)
			}
			want[table][id] = secret
		}
		if _, err := app.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (id, org, secret) VALUES (%d, '%s', 'moved')`, table, review20bMoved, review20bTenants(ty.sql)[0]), pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := app.Exec(ctx, `INSERT INTO r19_tstz (id, org, secret) VALUES (1, '2026-01-02 03:04:05.5+02', 's-tstz-1')`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	d := e.conn(ctx)
	for _, ty := range review20bTypes {
		table := "r19_" + ty.name
		// The row of tenant 2026-01-02 gets the ciphertext sealed for
		// tenant 2026-02-01 (id 2).
		if _, err := d.Exec(ctx, fmt.Sprintf(`UPDATE %s SET secret = (SELECT secret FROM %s WHERE id = 2) WHERE id = %d`, table, table, review20bMoved)); err != nil {
			t.Fatal(err)
		}
	}
	return e, p, want
}

// review20bRead reads every row but the moved one of table through c with
// the given way of asking; the secrets by id.
func review20bRead(ctx context.Context, c *pgx.Conn, table, how string) (map[int]string, error) {
	got := map[int]string{}
	q := fmt.Sprintf(`SELECT id, secret FROM %s WHERE id < %d ORDER BY id`, table, review20bMoved)
	if strings.HasSuffix(how, "+org") {
		q = fmt.Sprintf(`SELECT id, org, secret FROM %s WHERE id < %d ORDER BY id`, table, review20bMoved)
	}
	// Text results are read raw (pgx's own decoding reads ISO dates only).
	if !strings.HasPrefix(how, "binary-extended") {
		var rs *pgconn.Result
		if strings.HasPrefix(how, "text-extended") {
			rs = c.PgConn().ExecParams(ctx, q, nil, nil, nil, nil).Read()
		} else {
			all, err := c.PgConn().Exec(ctx, q).ReadAll()
			if err != nil {
				return nil, err
			}
			rs = all[0]
		}
		if rs.Err != nil {
			return nil, rs.Err
		}
		for _, r := range rs.Rows {
			var id int
			fmt.Sscan(string(r[0]), &id)
			got[id] = string(r[len(r)-1])
		}
		return got, nil
	}
	rows, err := c.Query(ctx, q, pgx.QueryExecModeDescribeExec) // binary results for the types pgx knows
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		got[int(vals[0].(int32))] = fmt.Sprint(vals[len(vals)-1])
	}
	return got, rows.Err()
}

// review20bMovedFails reports an error unless reading the moved row under
// set fails (each attempt on a session of its own: the failure closes it).
func review20bMovedFails(t *testing.T, ctx context.Context, e *opsEnv, p *harness.Proxy, set, table string) {
	t.Helper()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeDescribeExec} {
		for _, cols := range []string{"secret", "org, secret"} {
			c := e.appConn(ctx, p)
			if set != "" {
				if _, err := c.Exec(ctx, set); err != nil {
					t.Fatal(err)
				}
			}
			rows, err := c.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE id = %d`, cols, table, review20bMoved), mode)
			var got []any
			if err == nil {
				for rows.Next() {
					got, _ = rows.Values()
				}
				rows.Close()
				err = rows.Err()
			}
			if err == nil || !strings.Contains(err.Error(), "PV001") {
				t.Errorf("%s: %s's row of tenant 2026-01-02 with a value sealed for 2026-02-01 (mode %v, %s): %v, %v; want PV001", set, table, mode, cols, got, err)
			}
			c.Close(ctx)
		}
	}
}

// TestReview20bDateStyleReads: under every DateStyle the rows of date,
// timestamp, timestamp(3) and domain-over-date/timestamp tenants open
// (simple protocol, extended with text results, extended binary; the
// tenant selected or not), a value moved from the tenant whose day and
// month are swapped does not, and an UPDATE whose tenant is looked up
// there seals under the row's tenant (it reads back in an ISO session).
func TestReview20bDateStyleReads(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 4*time.Minute)
	e, p, want := review20bEnv(t, ctx, "enc_review20b_reads", "")
	for _, style := range review20bStyles {
		c := e.appConn(ctx, p)
		set := "SET DateStyle = '" + style + "'"
		if _, err := c.Exec(ctx, set); err != nil {
			t.Fatal(err)
		}
		for _, ty := range review20bTypes {
			table := "r19_" + ty.name
			for _, how := range []string{"simple", "simple+org", "text-extended", "text-extended+org", "binary-extended", "binary-extended+org"} {
				got, err := review20bRead(ctx, c, table, how)
				if err != nil {
					t.Errorf("%s %s %s: %v", style, table, how, err)
					c = e.appConn(ctx, p)
					c.Exec(ctx, set)
					continue
				}
				for id, s := range want[table] {
					if got[id] != s {
						t.Errorf("%s %s %s: row %d reads %q, want %q", style, table, how, id, got[id], s)
					}
				}
			}
			// A looked-up UPDATE of the row of tenant 2026-01-02 (and of
			// the BC one): simple, then extended.
			for _, id := range []int{1, 4} {
				v := fmt.Sprintf("u-%s-%d-%s", ty.name, id, strings.ReplaceAll(style, ", ", ""))
				if _, err := c.Exec(ctx, fmt.Sprintf(`UPDATE %s SET secret = '%s' WHERE id = %d`, table, v+"s", id), pgx.QueryExecModeSimpleProtocol); err != nil {
					t.Errorf("%s: looked-up UPDATE of %s row %d: %v", style, table, id, err)
				} else {
					want[table][id] = v + "s"
				}
				if _, err := c.Exec(ctx, fmt.Sprintf(`UPDATE %s SET secret = $1 WHERE id = %d`, table, id), v+"e"); err != nil {
					t.Errorf("%s: looked-up UPDATE of %s row %d (extended): %v", style, table, id, err)
				} else {
					want[table][id] = v + "e"
				}
			}
		}
		c.Close(ctx)
		iso := e.appConn(ctx, p)
		for _, ty := range review20bTypes {
			table := "r19_" + ty.name
			got, err := review20bRead(ctx, iso, table, "simple")
			if err != nil {
				t.Fatalf("%s: ISO session after the UPDATEs: %s: %v", style, table, err)
			}
			for id, s := range want[table] {
				if got[id] != s {
					t.Errorf("after %s: ISO session: %s row %d reads %q, want %q", style, table, id, got[id], s)
				}
			}
		}
		iso.Close(ctx)
	}
	for _, ty := range review20bTypes {
		for _, style := range []string{"ISO, MDY", "SQL, DMY", "SQL, MDY", "Postgres, DMY", "Postgres, MDY", "German, MDY"} {
			review20bMovedFails(t, ctx, e, p, "SET DateStyle = '"+style+"'", "r19_"+ty.name)
		}
	}
}

// TestReview20bDateStyleChanges: the order a printed date is read in is
// the one PostgreSQL reports (SET DateStyle = 'SQL' after German keeps
// DMY; SET LOCAL rolled back; RESET), and while a change is unanswered
// (SET DateStyle …; SELECT … in one query string: PostgreSQL reports the
// change after the rows) a date whose day and month could be swapped is
// refused, not read in the order last reported.
func TestReview20bDateStyleChanges(t *testing.T) {
	relayLeakCheck(t)
	for _, loops := range []string{"0", "1"} {
		t.Run("event_loops="+loops, func(t *testing.T) {
			review20bDateStyleChanges(t, "enc_review20b_changes"+loops, "proxy:\n  event_loops: "+loops+"\n")
		})
	}
}

func review20bDateStyleChanges(t *testing.T, db, extra string) {
	ctx := testCtx(t, 2*time.Minute)
	e, p, want := review20bEnv(t, ctx, db, extra)
	read := func(c *pgx.Conn, what, q string, id int) {
		t.Helper()
		rs, err := c.PgConn().Exec(ctx, q).ReadAll()
		got := review20bRows(rs)
		if err != nil || len(got) != 1 || got[0][0] != want["r19_dt"][id] {
			t.Errorf("%s: %q, %v; want %q", what, got, err, want["r19_dt"][id])
		}
	}
	readRow := func(id int) string { return fmt.Sprintf(`SELECT secret FROM r19_dt WHERE id = %d`, id) }
	c := e.appConn(ctx, p)
	for _, s := range []string{`SET DateStyle = 'German'`, `SET DateStyle = 'SQL'`} {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.PgConn().ParameterStatus("DateStyle"); got != "SQL, DMY" {
		t.Fatalf("SET DateStyle = 'SQL' after German: reported %q", got)
	}
	read(c, "SQL after German", readRow(1), 1)
	if _, err := c.Exec(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `SET LOCAL DateStyle = 'SQL, MDY'`); err != nil {
		t.Fatal(err)
	}
	read(c, "SET LOCAL SQL, MDY", readRow(1), 1)
	if _, err := c.Exec(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	read(c, "SET LOCAL rolled back", readRow(1), 1)
	if _, err := c.Exec(ctx, `SET DateStyle = 'Postgres, MDY'`); err != nil {
		t.Fatal(err)
	}
	read(c, "Postgres, MDY", readRow(1), 1)
	if _, err := c.Exec(ctx, `RESET DateStyle`); err != nil {
		t.Fatal(err)
	}
	read(c, "RESET", readRow(1), 1)
	// Unanswered: the day-13 row reads either way; the 2026-01-02 one
	// is refused (not read as 2026-02-01 in the MDY last reported).
	if _, err := c.Exec(ctx, `SET DateStyle = 'SQL, MDY'`); err != nil {
		t.Fatal(err)
	}
	read(c, "SET DateStyle DMY; SELECT the day-13 row", `SET DateStyle = 'SQL, DMY'; `+readRow(3), 3)
	read(c, "answered", readRow(1), 1)
	for _, set := range []string{`SET DateStyle = 'SQL, MDY'`, `SET DateStyle = 'Postgres, MDY'`} {
		for _, q := range []string{
			`SET DateStyle = 'SQL, DMY'; ` + readRow(review20bMoved),
			`SET DateStyle = 'Postgres, DMY'; ` + readRow(review20bMoved),
			`SELECT set_config('datestyle', 'SQL, DMY', false); ` + readRow(review20bMoved),
			`BEGIN; SET LOCAL DateStyle = 'SQL, DMY'; ` + readRow(review20bMoved) + `; COMMIT`,
		} {
			c := e.appConn(ctx, p)
			if _, err := c.Exec(ctx, set); err != nil {
				t.Fatal(err)
			}
			rs, err := c.PgConn().Exec(ctx, q).ReadAll()
			if err == nil || !strings.Contains(err.Error(), "PV001") {
				t.Errorf("%s, then %s: %v %v; want PV001", set, q, review20bRows(rs), err)
			}
			c.Close(ctx)
		}
	}
	// In a transaction that set DMY, the ROLLBACK sent with the SELECT
	// brings back MDY before the row is printed.
	c2 := e.appConn(ctx, p)
	for _, s := range []string{`SET DateStyle = 'SQL, MDY'`, `BEGIN`, `SET LOCAL DateStyle = 'SQL, DMY'`} {
		if _, err := c2.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := c2.PgConn().Exec(ctx, `ROLLBACK; `+readRow(review20bMoved)).ReadAll()
	if err == nil || !strings.Contains(err.Error(), "PV001") {
		t.Errorf("ROLLBACK of SET LOCAL DMY with the SELECT: %v %v; want PV001", review20bRows(rs), err)
	}
	// Extended protocol, one Sync for the batch: the SET's report comes
	// after the SELECT's rows and the UPDATE's lookup.
	batch := func(q string, args ...any) error {
		c := e.appConn(ctx, p)
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `SET DateStyle = 'SQL, MDY'`); err != nil {
			t.Fatal(err)
		}
		b := &pgx.Batch{}
		b.Queue(`SET DateStyle = 'SQL, DMY'`)
		b.Queue(q, args...)
		br := c.SendBatch(ctx, b)
		_, err := br.Exec()
		if err == nil {
			_, err = br.Exec()
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	}
	if err := batch(readRow(review20bMoved)); err == nil || !strings.Contains(err.Error(), "PV001") {
		t.Errorf("batch SET DMY, SELECT the moved row: %v; want PV001", err)
	}
	if err := batch(readRow(3)); err != nil {
		t.Errorf("batch SET DMY, SELECT the day-13 row: %v", err)
	}
	// The UPDATE's lookup reads the tenant as date_send's bytes (review
	// 21a; it was refused here, the order DMY or MDY not known yet): it
	// seals under 2026-01-02, the row's tenant, never 2026-02-01.
	if err := batch(`UPDATE r19_dt SET secret = $1 WHERE id = 1`, "batch-upd"); err != nil {
		t.Errorf("batch SET DMY, UPDATE of the 2026-01-02 row: %v", err)
	} else {
		want["r19_dt"][1] = "batch-upd"
	}
	var got string
	if rerr := e.appConn(ctx, p).QueryRow(ctx, readRow(1)).Scan(&got); rerr != nil || got != want["r19_dt"][1] {
		t.Errorf("after the batch UPDATE: %q, %v; want %q", got, rerr, want["r19_dt"][1])
	}
	// A DateStyle given at startup is reported at startup.
	cfg, cerr := pgx.ParseConfig(e.appURL(p))
	if cerr != nil {
		t.Fatal(cerr)
	}
	cfg.RuntimeParams["DateStyle"] = "Postgres, DMY"
	sc, cerr := pgx.ConnectConfig(ctx, cfg)
	if cerr != nil {
		t.Fatal(cerr)
	}
	defer sc.Close(ctx)
	read(sc, "DateStyle at startup", readRow(1), 1)
	if rs, err := sc.PgConn().Exec(ctx, readRow(review20bMoved)).ReadAll(); err == nil || !strings.Contains(err.Error(), "PV001") {
		t.Errorf("DateStyle at startup, the moved row: %v %v; want PV001", review20bRows(rs), err)
	}
}

func review20bRows(rs []*pgconn.Result) [][]string {
	var out [][]string
	for _, r := range rs {
		for _, row := range r.Rows {
			var s []string
			for _, v := range row {
				s = append(s, string(v))
			}
			out = append(out, s)
		}
	}
	return out
}

// TestReview20bTimestamptzDateStyle: a timestamptz tenant's row opens
// under every DateStyle and TimeZone (review 21a: pgveil reads the tenant
// as timestamptz_send's UTC microseconds; it failed, PV001, under a
// DateStyle other than ISO, whose zone abbreviation pgveil did not read),
// and a looked-up UPDATE there seals under the row's own tenant.
func TestReview20bTimestamptzDateStyle(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)
	e, p, _ := review20bEnv(t, ctx, "enc_review20b_tstz", "")
	for _, sets := range [][]string{
		{`SET TimeZone = 'Europe/Berlin'`},
		{`SET TimeZone = 'UTC+3'`},
		{`SET DateStyle = 'SQL, DMY'`, `SET TimeZone = 'Europe/Berlin'`},
		{`SET DateStyle = 'SQL, DMY'`, `SET TimeZone = 'UTC'`},
		{`SET DateStyle = 'German'`, `SET TimeZone = 'UTC+3'`},
		{`SET DateStyle = 'Postgres, MDY'`},
	} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeDescribeExec} {
			a := e.appConn(ctx, p)
			for _, s := range sets {
				if _, err := a.Exec(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			var got string
			if err := a.QueryRow(ctx, `SELECT secret FROM r19_tstz WHERE id = 1`, mode).Scan(&got); err != nil || got != "s-tstz-1" {
				t.Errorf("%v (mode %v): %q, %v", sets, mode, got, err)
			}
			a.Close(ctx)
		}
	}
	// A looked-up UPDATE there seals under the row's tenant: it reads
	// back in an ISO session.
	a := e.appConn(ctx, p)
	if _, err := a.Exec(ctx, `SET DateStyle = 'SQL, DMY'`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, `UPDATE r19_tstz SET secret = 'x' WHERE id = 1`); err != nil {
		t.Errorf("looked-up UPDATE of a timestamptz tenant under SQL, DMY: %v", err)
	}
	var got string
	if err := e.appConn(ctx, p).QueryRow(ctx, `SELECT secret FROM r19_tstz WHERE id = 1`).Scan(&got); err != nil || got != "x" {
		t.Errorf("ISO session after the UPDATE: %q, %v; want x", got, err)
	}
}

// TestReview20bDrivers: psql and lib/pq sessions with a DateStyle other
// than ISO read date and timestamp tenant rows and run a looked-up UPDATE.
func TestReview20bDrivers(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)
	e, p, want := review20bEnv(t, ctx, "enc_review20b_drivers", "proxy:\n  event_loops: 0\n")
	url := e.appURL(p)
	if _, err := e.conn(ctx).Exec(ctx, `DELETE FROM r19_ts3 WHERE id = 100`); err != nil { // COPY r19_ts3 TO reads every row
		t.Fatal(err)
	}
	script := "\\set ON_ERROR_STOP 1\nSET DateStyle = 'SQL, DMY';\n" +
		"SELECT id, org, secret FROM r19_dt WHERE id < 100 ORDER BY id;\n" +
		"SELECT id, secret FROM r19_dts WHERE id < 100 ORDER BY id;\n" +
		"UPDATE r19_dt SET secret = 'psql-upd' WHERE id = 1;\n" +
		"SET DateStyle = 'Postgres, MDY';\n" +
		"SELECT id, secret FROM r19_ts WHERE id < 100 ORDER BY id;\n" +
		"UPDATE r19_dd SET secret = 'psql-upd2' WHERE id = 1;\n" +
		"SELECT secret FROM r19_dt WHERE id = 1;\n" +
		"SET DateStyle = 'SQL, DMY';\n" +
		"COPY (SELECT id, org, secret FROM r19_dt WHERE id < 100 ORDER BY id) TO STDOUT;\n" +
		"COPY r19_ts3 TO STDOUT;\n"
	path := filepath.Join(t.TempDir(), "r20b.sql")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	res := runPsql(t, ctx, url, nil, nil, "-q", "-A", "-t", "-F", "|", "-f", path)
	if res.Code != 0 {
		t.Fatalf("psql exited %d: %s", res.Code, tail(res.Stderr, 20))
	}
	for _, s := range []string{"1|02/01/2026|" + want["r19_dt"][1], "2|01/02/2026|" + want["r19_dt"][2], "4|15/03/0044 BC|" + want["r19_dt"][4],
		"5|01/01/10000|" + want["r19_dt"][5], "6|infinity|" + want["r19_dt"][6], want["r19_dts"][8], want["r19_ts"][4], "\npsql-upd\n",
		"2\t01/02/2026\t" + want["r19_dt"][2] + "\n", "4\t15/03/0044 BC\t" + want["r19_dt"][4] + "\n", "1\t02/01/2026 03:04:05.5\t" + want["r19_ts3"][1] + "\n"} {
		if !strings.Contains(res.Stdout, s) {
			t.Errorf("psql output lacks %q:\n%s", s, res.Stdout)
		}
	}
	want["r19_dt"][1], want["r19_dd"][1] = "psql-upd", "psql-upd2"

	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET DateStyle = 'German, DMY'`); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"r19_dt", "r19_ts", "r19_ts3", "r19_dd", "r19_dts"} {
		// (lib/pq reads a date it is sent as ISO: org is not selected, and
		// pgveil reads the tenant it adds as the session prints it.)
		rows, err := conn.QueryContext(ctx, `SELECT id, secret FROM `+table+` WHERE id < $1 ORDER BY id`, review20bMoved)
		if err != nil {
			t.Fatalf("lib/pq %s: %v", table, err)
		}
		n := 0
		for rows.Next() {
			var id int
			var secret string
			if err := rows.Scan(&id, &secret); err != nil {
				t.Fatal(err)
			}
			if secret != want[table][id] {
				t.Errorf("lib/pq German: %s row %d: %q, want %q", table, id, secret, want[table][id])
			}
			n++
		}
		if err := rows.Err(); err != nil || n != len(want[table]) {
			t.Errorf("lib/pq German: %s: %d rows, %v", table, n, err)
		}
		rows.Close()
	}
	if _, err := conn.ExecContext(ctx, `UPDATE r19_ts SET secret = $1 WHERE id = 1`, "pq-upd"); err != nil {
		t.Errorf("lib/pq looked-up UPDATE under German: %v", err)
	}
	var got string
	if err := e.appConn(ctx, p).QueryRow(ctx, `SELECT secret FROM r19_ts WHERE id = 1`).Scan(&got); err != nil || got != "pq-upd" {
		t.Errorf("ISO session after lib/pq's UPDATE: %q, %v", got, err)
	}
}

// TestReview20bFloatDigits: a float8 key_context printed under
// extra_float_digits 0 or less has 15 significant digits, so rows of
// tenants 0.3 and 0.30000000000000004 both print 0.3, and a value sealed
// for tenant 0.3 moved into the row of 0.30000000000000004 opened there
// (pgveil took the printed 0.3 for the row's tenant; PostgreSQL does not
// report the setting). Review 21a: pgveil reads a float tenant as its
// float8send/float4send bytes, which no setting changes: the rows of
// their own tenant open under any extra_float_digits (they failed, PV001,
// under 0 or less), the moved value nowhere.
func TestReview20bFloatDigits(t *testing.T) {
	relayLeakCheck(t)
	for _, loops := range []string{"0", "1"} {
		t.Run("event_loops="+loops, func(t *testing.T) {
			review20bFloatDigits(t, "enc_review20b_float"+loops, "proxy:\n  event_loops: "+loops+"\n")
		})
	}
}

func review20bFloatDigits(t *testing.T, db, extra string) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"f8", "float8"}, {"f4", "float4"}}
	e := newOpsEnv(t, db, review19cPolicy(types))
	review19cSetup(t, ctx, e, nil, types)
	p := e.proxy(e.config("") + extra)
	app := e.appConn(ctx, p)
	for _, s := range []string{
		`INSERT INTO r19_f8 (id, org, secret) VALUES (1, '0.3', 'f8-1')`,
		`INSERT INTO r19_f8 (id, org, secret) VALUES (2, '0.30000000000000004', 'f8-2')`,
		`INSERT INTO r19_f8 (id, org, secret) VALUES (3, '0.30000000000000004', 'f8-3')`,
		`INSERT INTO r19_f4 (id, org, secret) VALUES (1, '0.1', 'f4-1')`,
		`INSERT INTO r19_f4 (id, org, secret) VALUES (2, '0.10000001', 'f4-2')`,
		`INSERT INTO r19_f4 (id, org, secret) VALUES (3, '0.10000001', 'f4-3')`,
	} {
		if _, err := app.Exec(ctx, s, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	d := e.conn(ctx)
	for _, table := range []string{"r19_f8", "r19_f4"} {
		if _, err := d.Exec(ctx, `UPDATE `+table+` SET secret = (SELECT secret FROM `+table+` WHERE id = 1) WHERE id = 3`); err != nil {
			t.Fatal(err)
		}
	}
	// reads reports, for each row, its secret or the error reading it
	// (each row on a session of its own after sets; simple protocol).
	reads := func(sets []string, q func(table string, id int) string) map[string]string {
		got := map[string]string{}
		for _, table := range []string{"r19_f8", "r19_f4"} {
			for id := 1; id <= 3; id++ {
				c := e.appConn(ctx, p)
				for _, s := range sets {
					if _, err := c.Exec(ctx, s); err != nil {
						t.Fatalf("%s: %v", s, err)
					}
				}
				rs, err := c.PgConn().Exec(ctx, q(table, id)).ReadAll()
				key := fmt.Sprintf("%s/%d", table, id)
				if err != nil {
					got[key] = "error " + err.Error()
				} else if rows := review20bRows(rs); len(rows) == 1 {
					got[key] = rows[0][len(rows[0])-1]
				} else {
					got[key] = fmt.Sprint(rows)
				}
				c.Close(ctx)
			}
		}
		return got
	}
	sel := func(table string, id int) string {
		return fmt.Sprintf(`SELECT secret FROM %s WHERE id = %d`, table, id)
	}
	check := func(what string, got map[string]string, open bool) {
		t.Helper()
		for _, table := range []string{"r19_f8", "r19_f4"} {
			pre := strings.TrimPrefix(table, "r19_")
			for id := 1; id <= 3; id++ {
				key := fmt.Sprintf("%s/%d", table, id)
				switch {
				case id == 3 || !open:
					if !strings.Contains(got[key], "PV001") {
						t.Errorf("%s: %s: %q; want PV001", what, key, got[key])
					}
				case got[key] != fmt.Sprintf("%s-%d", pre, id):
					t.Errorf("%s: %s: %q; want %s-%d", what, key, got[key], pre, id)
				}
			}
		}
	}
	check("default", reads(nil, sel), true)
	check("extra_float_digits 3", reads([]string{`SET extra_float_digits = 3`}, sel), true)
	check("extra_float_digits 0", reads([]string{`SET extra_float_digits = 0`}, sel), true)
	check("extra_float_digits -3", reads([]string{`SET extra_float_digits = -3`}, sel), true)
	check("set_config 0", reads([]string{`SELECT set_config('extra_float_digits', '0', false)`}, sel), true)
	check("0, then RESET", reads([]string{`SET extra_float_digits = 0`, `RESET extra_float_digits`}, sel), true)
	check("0, then 1 with the SELECT", reads([]string{`SET extra_float_digits = 0`},
		func(table string, id int) string { return `SET extra_float_digits = 1; ` + sel(table, id) }), true)
	check("SET LOCAL 0 rolled back", reads([]string{`BEGIN`, `SET LOCAL extra_float_digits = 0`, `ROLLBACK`}, sel), true)
	check("SET 0 in a transaction rolled back", reads([]string{`BEGIN`, `SET extra_float_digits = 0`, `ROLLBACK`}, sel), true)
	check("SET 0 in a transaction committed", reads([]string{`BEGIN`, `SET extra_float_digits = 0`, `COMMIT`}, sel), true)
	// The tenant in binary is exact whatever the setting.
	for _, set := range []string{`SET extra_float_digits = 0`, `SET extra_float_digits = 1`} {
		c := e.appConn(ctx, p)
		if _, err := c.Exec(ctx, set); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"r19_f8", "r19_f4"} {
			var org float64
			var secret string
			err := c.QueryRow(ctx, `SELECT org, secret FROM `+table+` WHERE id = 2`, pgx.QueryExecModeDescribeExec).Scan(&org, &secret)
			if err != nil || secret != strings.TrimPrefix(table, "r19_")+"-2" {
				t.Errorf("%s, binary: %s row 2: %q, %v", set, table, secret, err)
			}
		}
		c.Close(ctx)
	}
	// A database default of 0 is read at the session's start.
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `ALTER DATABASE `+db+` SET extra_float_digits = 0`); err != nil {
		t.Fatal(err)
	}
	check("database default 0", reads(nil, sel), true)
	check("database default 0, SET 1", reads([]string{`SET extra_float_digits = 1`}, sel), true)
	if _, err := su.Exec(ctx, `ALTER DATABASE `+db+` RESET extra_float_digits`); err != nil {
		t.Fatal(err)
	}
}
