package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestReview20dShredTenantTypes: `pgveil shred --tenant` over key_context
// types whose stored text, equality or cast to text differ from the
// tenant's name (char(n) and a domain over it, bool and a domain over it,
// numeric(5,2) and a domain over it, name, text with trailing spaces,
// float 0 / -0 and a domain over float8, an enum, uuid, date, a domain
// over date, timestamp(2), int written 007): the tenant's keys are
// destroyed and its rows no longer open; the other tenant's rows and
// keys are untouched.
func TestReview20dShredTenantTypes(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	type shredCase struct {
		name, sql    string
		a, b         string // tenants written (literals, as SQL text)
		written      string // --tenant
		aName, bName string // the tenants' names in pgveil.keys
	}
	cases := []shredCase{
		{"ch5", "char(5)", "'ab'", "'abc'", "ab", "ab", "abc"},
		{"dch5", "d20s_ch5", "'ab'", "'abc'", "ab", "ab   ", "abc  "},
		{"bo", "bool", "true", "false", "true", "t", "f"},
		{"dbo", "d20s_bool", "true", "false", "true", "t", "f"},
		{"n52", "numeric(5,2)", "1.5", "2", "1.50", "1.5", "2"},
		{"dn52", "d20s_n52", "1.5", "2", "1.5", "1.50", "2.00"},
		{"nm", "name", "'abc'", "'abd'", "abc", "abc", "abd"},
		{"tx", "text", "'abc '", "'abc'", "abc ", "abc ", "abc"},
		{"f8", "float8", "'-0'", "'0'", "-0", "-0", "0"},
		{"df8", "d20s_f8", "'-0'", "'0'", "-0", "-0", "0"},
		{"en", "d20s_mood", "'sad'", "'Happy'", "sad", "sad", "Happy"},
		{"uu", "uuid", "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", "'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "A0EEBC999C0B4EF8BB6D6BB9BD380A11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{"dt", "date", "'2026-01-02'", "'2026-02-01'", "2026-01-02", "2026-01-02", "2026-02-01"},
		{"ddt", "d20s_date", "'2026-01-02'", "'2026-02-01'", "2026-01-02", "2026-01-02", "2026-02-01"},
		{"ts2", "timestamp(2)", "'2026-01-02 10:00:00.5'", "'2026-01-02 10:00:00.25'", "2026-01-02 10:00:00.50", "2026-01-02 10:00:00.5", "2026-01-02 10:00:00.25"},
		{"i4", "int", "7", "8", "007", "7", "8"},
	}
	var types []review19cType
	for _, c := range cases {
		types = append(types, review19cType{c.name, c.sql})
	}
	e := newOpsEnv(t, "ops_review20d_shred", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{`CREATE DOMAIN d20s_ch5 AS char(5)`, `CREATE DOMAIN d20s_bool AS bool`,
		`CREATE DOMAIN d20s_n52 AS numeric(5,2)`, `CREATE DOMAIN d20s_f8 AS float8`, `CREATE DOMAIN d20s_date AS date`,
		`CREATE TYPE d20s_mood AS ENUM ('sad', 'Happy')`}, types)
	cfg := e.writeConfig("c.yaml", e.config(""))
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	defer app.Close(ctx)
	su := e.conn(ctx)
	defer su.Close(ctx)
	active := func(table, tenant string) int {
		t.Helper()
		var n int
		if err := su.QueryRow(ctx, `SELECT count(*) FROM pgveil.keys WHERE purpose = 'enc' AND state = 'active' AND scope LIKE $1 AND tenant = $2`, "public."+table+".%", tenant).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, c := range cases {
		table := "r19_" + c.name
		q := fmt.Sprintf(`INSERT INTO %s (id, org, secret) VALUES (1, %s, 'a1'), (2, %s, 'a2'), (3, %s, 'b3')`, table, c.a, c.a, c.b)
		if _, err := app.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if n, m := active(table, c.aName), active(table, c.bName); n != 1 || m != 1 {
			var names []string
			rows, _ := su.Query(ctx, `SELECT tenant FROM pgveil.keys WHERE scope LIKE $1`, "public."+table+".%")
			for rows.Next() {
				var s string
				rows.Scan(&s)
				names = append(names, fmt.Sprintf("%q", s))
			}
			rows.Close()
			t.Errorf("%s: keys of %q: %d, of %q: %d (tenants %v)", table, c.aName, n, c.bName, m, names)
			continue
		}
		r := e.run(ctx, -1, "shred", "-c", cfg, "--table", "public."+table, "--tenant", c.written, "--yes")
		if r.code != 0 {
			t.Errorf("%s: shred --tenant %q: exit %d\nstdout: %s\nstderr: %s", table, c.written, r.code, r.stdout, tail(r.stderr, 6))
			continue
		}
		if n, m := active(table, c.aName), active(table, c.bName); n != 0 || m != 1 {
			t.Errorf("%s: after shred --tenant %q: keys of %q: %d (want 0), of %q: %d (want 1)\nstdout: %s", table, c.written, c.aName, n, c.bName, m, r.stdout)
		}
	}
	// Read through a proxy started after the shreds: one whose cache
	// held a destroyed key drops it when NOTIFY pgveil_keys arrives,
	// which the shred does not wait for.
	p2 := e.proxy(e.config(""))
	app2 := e.appConn(ctx, p2)
	defer app2.Close(ctx)
	for _, c := range cases {
		table := "r19_" + c.name
		rows, err := app2.Query(ctx, `SELECT id, secret FROM `+table+` ORDER BY id`, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var id int
			var s *string
			if err := rows.Scan(&id, &s); err != nil {
				t.Fatal(err)
			}
			v := "NULL"
			if s != nil {
				v = *s
			}
			got = append(got, fmt.Sprintf("%d=%s", id, v))
		}
		if err := rows.Err(); err != nil {
			t.Errorf("%s: reading after the shred: %v", table, err)
			app2 = e.appConn(ctx, p2)
		}
		if g := strings.Join(got, ","); g != "1=NULL,2=NULL,3=b3" {
			t.Errorf("%s: after shred --tenant %q: %s, want 1=NULL,2=NULL,3=b3", table, c.written, g)
		}
	}
}

// TestReview20dShredNondeterministic: a char(n), name or domain over
// char(n) key_context column under a nondeterministic collation: 'AB' =
// 'ab' to the column, two tenants to pgveil (the proxy tells them apart
// by their text). Shredding AB counted ab's rows too, and refused over
// ab's value written around pgveil (plaintext at rest), as it did for
// citext before the lead's fix.
func TestReview20dShredNondeterministic(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"ch", `char(5) COLLATE d20ci`}, {"nm", `name COLLATE d20ci`}, {"dch", `d20n_ch5`}, {"tx", `text COLLATE d20ci`}, {"nmp", `name COLLATE "POSIX"`}}
	lower := map[string]string{"dch": "ab   "} // a domain over char(n) is named with its padding
	e := newOpsEnv(t, "ops_review20d_nondet", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{`CREATE COLLATION d20ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`,
		`CREATE DOMAIN d20n_ch5 AS char(5) COLLATE d20ci`}, types)
	cfg := e.writeConfig("c.yaml", e.config(""))
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	defer app.Close(ctx)
	su := e.conn(ctx)
	defer su.Close(ctx)
	for _, ty := range types {
		table := "r19_" + ty.name
		q := fmt.Sprintf(`INSERT INTO %s (id, org, secret) VALUES (1, 'AB', 'a1'), (2, 'AB', 'a2'), (3, 'ab', 'b3')`, table)
		if _, err := app.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if _, err := su.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (id, org, secret) VALUES (4, 'ab', convert_to('plain', 'UTF8'))`, table)); err != nil {
			t.Fatal(err)
		}
		r := e.run(ctx, -1, "shred", "-c", cfg, "--table", "public."+table, "--tenant", "AB", "--yes")
		if r.code != 0 {
			t.Errorf("%s: shred --tenant AB refused over tenant ab's rows: exit %d\nstdout: %s\nstderr: %s", table, r.code, r.stdout, tail(r.stderr, 6))
			continue
		}
		var n int
		ab := "ab"
		if l, ok := lower[ty.name]; ok {
			ab = l
		}
		if err := su.QueryRow(ctx, `SELECT count(*) FROM pgveil.keys WHERE purpose = 'enc' AND state = 'active' AND scope LIKE $1 AND tenant = $2`, "public."+table+".%", ab).Scan(&n); err != nil || n != 1 {
			t.Errorf("%s: tenant ab after shredding AB: %d active keys, %v", table, n, err)
		}
	}
}
