package integration

// Lead, twentieth session: pgveil shred --tenant names the tenant as the
// column stores it and counts only that tenant's rows (two LOWs the
// sixteenth session's closing note left).

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/integration/harness"
)

// TestLead20ShredTenantForms:
//   - a varchar(3) key_context stores 'abc   ' as 'abc' (spaces beyond
//     the length are cut); `--tenant 'abc   '` destroyed no key ("none:
//     the tenant has no live data key") while the prompt counted tenant
//     abc's rows. It now shreds tenant abc. `--tenant abcd` cannot be
//     stored in the column at all (an explicit cast would cut it to
//     'abc', and the count took abc's rows for it): refused, nothing
//     changed.
//   - a citext key_context: 'AbC' = 'abc' to the type, but they are two
//     tenants with their own keys. Shredding AbC counted abc's rows too,
//     and refused because abc had a value written around pgveil
//     (plaintext at rest) that shredding AbC has nothing to do with.
func TestLead20ShredTenantForms(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_lead20_shred", `tables:
  public.v:
    key_context: org
    columns:
      secret: {type: text, blind_index: {column: secret_bidx}}
  public.c:
    key_context: org
    columns:
      secret: {type: text, blind_index: {column: secret_bidx}}
`)
	su := e.conn(ctx)
	for _, s := range []string{
		`CREATE EXTENSION IF NOT EXISTS citext`,
		`CREATE TABLE v (id int PRIMARY KEY, org varchar(3), secret bytea, secret_bidx bytea)`,
		`CREATE TABLE c (id int PRIMARY KEY, org citext, secret bytea, secret_bidx bytea)`,
	} {
		if _, err := su.Exec(ctx, s); err != nil {
			t.Fatal(s, err)
		}
	}
	cfg := e.writeConfig("c.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	for _, s := range []string{
		`INSERT INTO v (id, org, secret) VALUES (1, 'abc', 'v-one'), (2, 'abc', 'v-two'), (3, 'xyz', 'v-three')`,
		`INSERT INTO c (id, org, secret) VALUES (1, 'AbC', 'c-one'), (2, 'AbC', 'c-two'), (3, 'abc', 'c-three')`,
	} {
		if _, err := app.Exec(ctx, s); err != nil {
			t.Fatal(s, err)
		}
	}
	active := func(table, tenant string) int {
		t.Helper()
		var n int
		if err := su.QueryRow(ctx, `SELECT count(*) FROM pgveil.keys WHERE purpose = 'enc' AND state = 'active' AND scope LIKE $1 AND tenant = $2`, "public."+table+".%", tenant).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	readable := func(table string) string {
		t.Helper()
		rows, err := app.Query(ctx, `SELECT id, secret FROM `+table+` ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var id int
			var secret *string
			if err := rows.Scan(&id, &secret); err != nil {
				t.Fatal(err)
			}
			v := "NULL"
			if secret != nil {
				v = *secret
			}
			got = append(got, fmt.Sprintf("%d=%s", id, v))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, ",")
	}

	// varchar(3): a value longer than the column is refused, nothing shredded.
	r := e.run(ctx, -1, "shred", "-c", cfg, "--table", "public.v", "--tenant", "abcd", "--yes")
	if r.code == 0 || !strings.Contains(r.stderr, "3 characters") {
		t.Errorf("shred --tenant abcd of a varchar(3) tenant: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, tail(r.stderr, 10))
	}
	if n := active("v", "abc"); n != 1 {
		t.Fatalf("tenant abc after a refused shred: %d active keys", n)
	}
	// Spaces beyond the length are what PostgreSQL cuts: tenant abc.
	r = e.run(ctx, 0, "shred", "-c", cfg, "--table", "public.v", "--tenant", "abc   ", "--yes")
	if n := active("v", "abc"); n != 0 {
		t.Errorf("shred --tenant 'abc   ' left tenant abc with %d active keys\nstdout: %s", n, r.stdout)
	}
	if got, want := readable("v"), "1=NULL,2=NULL,3=v-three"; got != want {
		t.Errorf("v after the shred of abc: %s, want %s", got, want)
	}

	// citext: abc's value written around pgveil is no concern of AbC's shred.
	if _, err := su.Exec(ctx, `INSERT INTO c (id, org, secret) VALUES (4, 'abc', convert_to('plain', 'UTF8'))`); err != nil {
		t.Fatal(err)
	}
	r = e.run(ctx, -1, "shred", "-c", cfg, "--table", "public.c", "--tenant", "AbC", "--yes")
	if r.code != 0 {
		t.Fatalf("shred --tenant AbC refused over tenant abc's rows: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, tail(r.stderr, 10))
	}
	if n, m := active("c", "AbC"), active("c", "abc"); n != 0 || m != 1 {
		t.Errorf("after shredding AbC: AbC %d, abc %d active keys", n, m)
	}
	if !strings.Contains(r.stdout, "cleared in 2 row(s)") {
		t.Errorf("shred of AbC: %s", r.stdout)
	}
	// Tenant ABC has no row (AbC's and abc's are equal to it, not its):
	// the warning for a mistyped tenant, and abc's keys untouched.
	r = e.run(ctx, 0, "shred", "-c", cfg, "--table", "public.c", "--tenant", "ABC", "--yes")
	if !strings.Contains(r.stderr, "no row of public.c has org = ABC") {
		t.Errorf("shred of ABC: no warning of a tenant without rows: %s", tail(r.stderr, 10))
	}
	if n := active("c", "abc"); n != 1 {
		t.Errorf("tenant abc after shredding ABC: %d active keys", n)
	}
}

// TestLead20ZoneTenantParams: a timestamptz parameter for a date or
// timestamp key_context column (or a domain over one) converts through
// the session's TimeZone: '2026-01-01 23:30:00+00' is the date
// 2026-01-02 in Europe/Berlin. pgveil named the tenant in UTC and the
// row opened in no session. Such a write is now refused outside UTC (as
// the same parameter for an encrypted date column is), and read back in
// a UTC session.
func TestLead20ZoneTenantParams(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"d", "date"}, {"ts", "timestamp"}, {"dd", "d_date"}, {"dts", "d_ts"}}
	e := newOpsEnv(t, "ops_lead20_zone", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{`CREATE DOMAIN d_date AS date`, `CREATE DOMAIN d_ts AS timestamp`}, types)
	p := e.proxy(e.config(""))
	id := 0
	for _, zone := range []string{"UTC", "Europe/Berlin"} {
		for _, ty := range types {
			id++
			table := "r19_" + ty.name
			w := e.appConn(ctx, p)
			if _, err := w.Exec(ctx, "SET TimeZone = '"+zone+"'"); err != nil {
				t.Fatal(err)
			}
			_, err := w.PgConn().ExecParams(ctx, fmt.Sprintf(`INSERT INTO %s (id, org, secret) VALUES (%d, $1, $2)`, table, id),
				[][]byte{[]byte("2026-01-01 23:30:00+00"), []byte(fmt.Sprintf("k%d", id))}, []uint32{1184, 25}, []int16{0, 0}, nil).Close()
			w.Close(ctx)
			if zone != "UTC" {
				if err == nil || !strings.Contains(err.Error(), "42804") {
					t.Errorf("%s in %s: a timestamptz tenant parameter: %v, want refused (42804)", table, zone, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s in UTC: %v", table, err)
				continue
			}
			r := e.appConn(ctx, p)
			if err := review19cReads(ctx, r, table, id, fmt.Sprintf("k%d", id)); err != nil {
				t.Errorf("%s in UTC: written, does not read back: %v", table, err)
			}
			r.Close(ctx)
		}
	}
}

// TestLead20LiteralBeforeTenant: a literal value for an encrypted column
// beside a parameter tenant is sealed when the statement is prepared,
// before the tenant is bound: refused, and the message says so (it asked
// to include the tenant column, which the statement does).
func TestLead20LiteralBeforeTenant(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	types := []review19cType{{"lit", "int"}}
	e := newOpsEnv(t, "ops_lead20_literal", review19cPolicy(types))
	review19cSetup(t, ctx, e, nil, types)
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	_, err := app.Exec(ctx, `INSERT INTO r19_lit (id, org, secret) VALUES (1, $1, 'literal')`, 7)
	if err == nil || !strings.Contains(err.Error(), "literals are sealed") {
		t.Errorf("a literal secret beside a parameter tenant: %v", err)
	}
	if _, err := app.Exec(ctx, `INSERT INTO r19_lit (id, org, secret) VALUES (1, $1, $2)`, 7, "param"); err != nil {
		t.Fatal(err)
	}
	if err := review19cReads(ctx, app, "r19_lit", 1, "param"); err != nil {
		t.Error(err)
	}
}

// TestLead20DecryptHints: the HINT of a value that does not open fits its
// reason. Every PV00x carried "set on_error: null on the column to read
// such values as NULL" (review 20c's report), which for plaintext in a
// complete table (PV003) hides the plaintext and lets an application
// that saves what it read write NULL over it: its remedy is migrate.
func TestLead20DecryptHints(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	types := []review19cType{{"hint", "int"}}
	e := newOpsEnv(t, "ops_lead20_hint", review19cPolicy(types))
	review19cSetup(t, ctx, e, nil, types)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `INSERT INTO r19_hint (id, org, secret) VALUES (1, 1, convert_to('around pgveil', 'UTF8'))`); err != nil {
		t.Fatal(err)
	}
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	var got string
	err := app.QueryRow(ctx, `SELECT secret FROM r19_hint WHERE id = 1`).Scan(&got)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "PV003" {
		t.Fatalf("plaintext in a complete table: %v", err)
	}
	if strings.Contains(pe.Hint, "on_error: null") || !strings.Contains(pe.Hint, "pgveil migrate") {
		t.Errorf("PV003 hint: %q, want the migrate remedy and not on_error: null", pe.Hint)
	}
	// A value moved from another tenant's row: tampering, on_error: null
	// is a way to read the rest.
	app = e.appConn(ctx, p)
	if _, err := app.Exec(ctx, `INSERT INTO r19_hint (id, org, secret) VALUES (2, 2, 'two'), (3, 3, 'three')`); err != nil {
		t.Fatal(err)
	}
	if _, err := su.Exec(ctx, `UPDATE r19_hint SET secret = (SELECT secret FROM r19_hint WHERE id = 3) WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	err = app.QueryRow(ctx, `SELECT secret FROM r19_hint WHERE id = 2`).Scan(&got)
	if !errors.As(err, &pe) || pe.Code != "PV001" || !strings.Contains(pe.Hint, "on_error: null") {
		t.Errorf("a moved value: %v (hint %q)", err, pe.Hint)
	}
}

// TestLead20LegacyInvalid: in a migrating table a value stored before
// encryption that is not valid input of the column's logical type ('10/12/1815'
// for a date) was reported as not_sealed, "plaintext found where an envelope
// was expected", which in a migrating table is what pgveil expects (review
// 20c's report). It has its own reason and hint now.
func TestLead20LegacyInvalid(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	e := newOpsEnv(t, "ops_lead20_legacy", `tables:
  public.born:
    columns:
      day: {type: date}
`)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `CREATE TABLE born (id int PRIMARY KEY, day text); INSERT INTO born VALUES (1, '1815-12-10'), (2, '10/12/1815')`); err != nil {
		t.Fatal(err)
	}
	e.run(ctx, 0, "migrate", "-c", e.writeConfig("c.yaml", e.config("")), "--apply", "--prepare")
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	var got time.Time
	if err := app.QueryRow(ctx, `SELECT day FROM born WHERE id = 1`).Scan(&got); err != nil || got.Format("2006-01-02") != "1815-12-10" {
		t.Fatalf("a valid legacy value: %v %v", got, err)
	}
	app = e.appConn(ctx, p)
	err := app.QueryRow(ctx, `SELECT day FROM born WHERE id = 2`).Scan(&got)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "PV003" || !strings.Contains(pe.Message, "legacy_invalid") || !strings.Contains(pe.Hint, "not valid date input") {
		t.Errorf("an invalid legacy value: %v (hint %q)", err, pe.Hint)
	}
}

// TestLead20PhysicalReplication: a physical replication connection
// (replication=true; libpq sends database "replication") through a pgveil
// with tables. Review 20c's check that a session names the service
// connection's database refused it (review 20e's report); it carries no
// SQL on tables (its stream is the cluster's WAL, ciphertext for
// encrypted columns), so it passes as it did. A logical one
// (replication=database) names a real database and is still checked.
func TestLead20PhysicalReplication(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	types := []review19cType{{"repl", "int"}}
	e := newOpsEnv(t, "ops_lead20_repl", review19cPolicy(types))
	review19cSetup(t, ctx, e, nil, types)
	p := e.proxy(e.config(""))
	for _, db := range []string{"replication", e.db, "postgres"} {
		url := harness.BuildURL(p.Addr, harness.SuperUser, harness.Passwords[harness.SuperUser], db, "sslmode=disable", "replication=true")
		conn, err := pgconn.Connect(ctx, url)
		if err != nil {
			t.Errorf("physical replication connection (database %s): %v", db, err)
			continue
		}
		res, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
		if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
			t.Errorf("IDENTIFY_SYSTEM (database %s): %v %v\n%s", db, res, err, tail(p.Log(), 5))
		}
		conn.Close(ctx)
	}
	url := harness.BuildURL(p.Addr, harness.SuperUser, harness.Passwords[harness.SuperUser], "postgres", "sslmode=disable", "replication=database")
	if conn, err := pgconn.Connect(ctx, url); err == nil {
		conn.Close(ctx)
		t.Error("a logical replication connection to another database than the service connection's was accepted")
	}
}
