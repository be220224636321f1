package integration

// Review of 5f59fb7 (the hidden tenant of JSON built from encrypted
// columns) and 592f049 (the fixes of the first JSON review), end to end:
// the real pgveil binary in front of PostgreSQL 15.
//
// Failing at the time of the review (defects):
//   TestEncJSONReview2FoundShadowedTenant HIGH: the tenant pgveil adds to
//                                       json_build_array(email) is the
//                                       relation's name and the tenant
//                                       column's name; where the call sits
//                                       in a subquery whose own FROM has a
//                                       relation of that name (an alias of
//                                       a subquery, VALUES, a CTE, a
//                                       LATERAL subquery), or where a JOIN's
//                                       alias hides the relation and an
//                                       outer query has one of that name,
//                                       PostgreSQL reads another relation's
//                                       column: a value the client writes
//                                       (9601), or another row's tenant. An
//                                       envelope of org 9601 moved into a
//                                       row of org 9602 is refused when
//                                       selected, and returned in plaintext
//                                       through such JSON.
//   TestEncJSONReview2FoundJoinAlias    LOW: json_build_array(email) over
//                                       (users JOIN orgs …) AS j: pgveil
//                                       adds users.org_id, which the JOIN's
//                                       alias hides: the server rejects a
//                                       statement that works without
//                                       pgveil (42P01).
//   TestEncJSONReview2FoundTooManyArgs  LOW: a json_build_array of 100
//                                       arguments (json_build_object of 50
//                                       pairs) works without pgveil; pgveil
//                                       adds the tenant as a 101st argument
//                                       and the server rejects it (54023).
// Attacks withstood: TestEncJSONReview2Holds (the hidden element and member
// removed byte for byte against PostgreSQL's own output, json and jsonb,
// text and binary, in json_agg, two tenants; a moved envelope refused
// through the hidden tenant where the name resolves as pgveil reads it; a
// cursor) and TestEncJSONReview2JSONInJSONBHolds (a json column opened in
// jsonb_build_*, json_build_*::jsonb, nested, jsonb_agg: byte for byte as
// PostgreSQL prints the plaintext, numbers, escapes, keys, text and binary).

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// jrev2Setup starts pgveil with orgs 9601 and 9602, stores a secret email
// in a row of org 9601 through pgveil, and (as an attacker with write
// access to the database) copies its envelope into a new row of org 9602.
// It returns the proxy, the victim's id and the moved row's id.
func jrev2Setup(t *testing.T, ctx context.Context, secret string) (*encProxy, int64, int64) {
	t.Helper()
	p := startEncProxy(t, 9601, 9602)
	p.remember(secret)
	app := connectPgx(t, ctx, p.url())
	var victim, moved int64
	if err := app.QueryRow(ctx, `INSERT INTO users (org_id, name, email) VALUES (9601, 'victim', $1) RETURNING id`, secret).Scan(&victim); err != nil {
		t.Fatal(err)
	}
	su := superConn(t, ctx)
	if err := su.QueryRow(ctx, `INSERT INTO users (org_id, name, email) SELECT 9602, 'moved', email FROM users WHERE id = $1 RETURNING id`, victim).Scan(&moved); err != nil {
		t.Fatal(err)
	}
	// Premise: the moved envelope is refused, plain and in JSON with the
	// hidden tenant.
	for _, sql := range []string{
		`SELECT email FROM users WHERE id = $1`,
		`SELECT json_build_array(email) FROM users WHERE id = $1`,
		`SELECT jsonb_build_object('e', email) FROM users WHERE id = $1`,
	} {
		got, err := jrevQuery(t, ctx, p.url(), sql, 0, fmt.Sprint(moved))
		if err == nil || strings.Contains(got, secret) {
			t.Fatalf("%s on the moved row: %q, %v; want PV001 (premise of the test)", sql, got, err)
		}
	}
	return p, victim, moved
}

// TestEncJSONReview2FoundShadowedTenant (HIGH): see the file comment. Each
// statement selects the moved row (org 9602, org 9601's envelope); the
// tenant PostgreSQL puts beside it is 9601, a constant of the statement or
// the org of another row, so the tenant check passes and the secret comes
// back. Each must be refused, or fail the check (PV001).
func TestEncJSONReview2FoundShadowedTenant(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	secret := "jrev2-shadow@example.org"
	p, victim, moved := jrev2Setup(t, ctx, secret)
	m, v := fmt.Sprint(moved), fmt.Sprint(victim)
	for _, c := range []struct{ name, sql string }{
		// users.org_id is the subquery aliased users: 9601.
		{"subquery alias", `SELECT (SELECT json_build_array(email) FROM (SELECT 9601::int8 AS org_id) users) FROM users WHERE users.id = ` + m},
		{"subquery alias, object", `SELECT (SELECT jsonb_build_object('e', email) FROM (SELECT 9601::int8 AS org_id) users) FROM users WHERE users.id = ` + m},
		{"VALUES alias", `SELECT (SELECT json_agg(json_build_array(email)) FROM (VALUES (9601::int8)) users(org_id)) FROM users WHERE users.id = ` + m},
		{"CTE alias", `WITH t AS (SELECT 9601::int8 AS org_id) SELECT (SELECT json_build_array(email) FROM t users) FROM users WHERE users.id = ` + m},
		{"LATERAL", `SELECT x.j FROM users u, LATERAL (SELECT json_build_array(email) AS j FROM (SELECT 9601::int8 AS org_id) u) x WHERE u.id = ` + m},
		// The JOIN's alias j hides the inner users: users.org_id is the
		// outer row's (the victim's, org 9601).
		{"JOIN alias", `SELECT (SELECT json_build_array(email) FROM (users JOIN (SELECT id AS oid FROM orgs) o ON o.oid = users.org_id) j WHERE j.id = ` + m + `) FROM users WHERE users.id = ` + v},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := jrevQuery(t, ctx, p.url(), c.sql, 0)
			if err == nil && strings.Contains(got, secret) {
				t.Errorf("%s\n returned %s: org 9601's email opened in a row of org 9602", c.sql, got)
			}
		})
	}
}

// TestEncJSONReview2FoundJoinAlias (LOW): honest statements over a JOIN
// with an alias fail on the server: the tenant pgveil adds names a
// relation the alias hides.
func TestEncJSONReview2FoundJoinAlias(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	secret := "jrev2-join@example.org"
	p, victim, _ := jrev2Setup(t, ctx, secret)
	for _, sql := range []string{
		`SELECT json_build_array(email) FROM (users JOIN orgs o ON o.id = users.org_id) j WHERE j.org_id = $1`,
		`SELECT jsonb_build_object('e', email) FROM (users u JOIN orgs o ON o.id = u.org_id) j WHERE j.org_id = $1`,
	} {
		got, err := jrevQuery(t, ctx, p.url(), sql, 0, "9601")
		if err != nil || !strings.Contains(got, secret) {
			t.Errorf("%s: %q, %v; want the victim's email", sql, got, err)
		}
	}
	_ = victim
}

// TestEncJSONReview2FoundTooManyArgs (LOW): see the file comment.
func TestEncJSONReview2FoundTooManyArgs(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	secret := "jrev2-args@example.org"
	p, victim, _ := jrev2Setup(t, ctx, secret)
	arr := `SELECT json_build_array(` + strings.Repeat("id, ", 99) + `email) FROM users WHERE id = $1`
	var pairs []string
	for i := range 49 {
		pairs = append(pairs, fmt.Sprintf("'k%d', id", i))
	}
	obj := `SELECT json_build_object(` + strings.Join(pairs, ", ") + `, 'e', email) FROM users WHERE id = $1`
	for _, sql := range []string{arr, obj} {
		got, err := jrevQuery(t, ctx, p.url(), sql, 0, fmt.Sprint(victim))
		var pe *pgconn.PgError
		if err != nil && asPgErr(err, &pe) && pe.Code == "0A000" {
			continue // a refusal by pgveil, with its reason, is a fix too
		}
		if err != nil || !strings.Contains(got, secret) {
			t.Errorf("%.60s… (100 arguments): %.80q, %v; want the email, or pgveil's refusal", sql, got, err)
		}
	}
}

func asPgErr(err error, pe **pgconn.PgError) bool {
	e, ok := err.(*pgconn.PgError)
	if ok {
		*pe = e
	}
	return ok
}

// TestEncJSONReview2Holds: attacks withstood, and the hidden tenant's
// removal compared byte for byte with what PostgreSQL writes without it.
func TestEncJSONReview2Holds(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	secret := "jrev2-holds@example.org"
	p, victim, moved := jrev2Setup(t, ctx, secret)
	app := connectPgx(t, ctx, p.url())
	var other int64
	secret2 := "jrev2-other@example.org"
	p.remember(secret2)
	if err := app.QueryRow(ctx, `INSERT INTO users (org_id, name, email, phone) VALUES (9602, 'other', $1, 'p2') RETURNING id`, secret2).Scan(&other); err != nil {
		t.Fatal(err)
	}
	su := superConn(t, ctx)
	v, o := fmt.Sprint(victim), fmt.Sprint(other)
	long := "a_member_key_longer_than_the_hidden_one"
	// Each statement through pgveil, and the same with the plaintext put
	// in the email's place directly: the bytes must be equal.
	for _, c := range []struct{ sql, direct string }{
		{`SELECT json_build_array(id, email) FROM users WHERE id = ` + v,
			`SELECT json_build_array(id, '` + secret + `'::text) FROM users WHERE id = ` + v},
		{`SELECT jsonb_build_array(id, email, name) FROM users WHERE id = ` + v,
			`SELECT jsonb_build_array(id, '` + secret + `'::text, name) FROM users WHERE id = ` + v},
		{`SELECT json_build_object('e', email, 'n', name) FROM users WHERE id = ` + v,
			`SELECT json_build_object('e', '` + secret + `'::text, 'n', name) FROM users WHERE id = ` + v},
		// jsonb sorts the hidden member first, in the middle, last.
		{`SELECT jsonb_build_object('` + long + `', email) FROM users WHERE id = ` + v,
			`SELECT jsonb_build_object('` + long + `', '` + secret + `'::text) FROM users WHERE id = ` + v},
		{`SELECT jsonb_build_object('e', email, '` + long + `', name) FROM users WHERE id = ` + v,
			`SELECT jsonb_build_object('e', '` + secret + `'::text, '` + long + `', name) FROM users WHERE id = ` + v},
		{`SELECT jsonb_build_object('e', email, 'n', name) FROM users WHERE id = ` + v,
			`SELECT jsonb_build_object('e', '` + secret + `'::text, 'n', name) FROM users WHERE id = ` + v},
		// Two tenants in one call, and nested levels in json_agg.
		{`SELECT json_build_array(u.email, w.email) FROM users u, users w WHERE u.id = ` + v + ` AND w.id = ` + o,
			`SELECT json_build_array('` + secret + `'::text, '` + secret2 + `'::text)`},
		{`SELECT jsonb_build_object('x', u.email, 'y', w.email) FROM users u, users w WHERE u.id = ` + v + ` AND w.id = ` + o,
			`SELECT jsonb_build_object('x', '` + secret + `'::text, 'y', '` + secret2 + `'::text)`},
		{`SELECT json_build_object('org', o.id, 'users', x.data) FROM orgs o LEFT JOIN LATERAL (SELECT coalesce(json_agg(json_build_object('e', u.email, 'n', u.name) ORDER BY u.id), '[]') AS data FROM users u WHERE u.org_id = o.id AND u.name <> 'moved') x ON true WHERE o.id = 9601`,
			`SELECT json_build_object('org', 9601, 'users', json_agg(json_build_object('e', '` + secret + `'::text, 'n', 'victim')))`},
		{`SELECT json_build_array(email)::jsonb FROM users WHERE id = ` + v,
			`SELECT json_build_array('` + secret + `'::text)::jsonb`},
		// Comments, strings with parentheses, dollar quotes, pg_catalog.
		{`SELECT pg_catalog.json_build_array /* ) */ (email, ')' /* ) */, $$)$$) FROM users WHERE id = ` + v,
			`SELECT json_build_array('` + secret + `'::text, ')', $$)$$)`},
	} {
		for _, f := range []int16{0, 1} {
			want, err := jrevOn(ctx, su.PgConn(), c.direct, f)
			if err != nil {
				t.Fatalf("direct %s: %v", c.direct, err)
			}
			got, err := jrevQuery(t, ctx, p.url(), c.sql, f)
			if err != nil || got != want {
				t.Errorf("%s (format %d):\n pgveil %q, %v\n direct %q", c.sql, f, got, err, want)
			}
		}
	}
	// The moved envelope (org 9601's in a row of 9602) is refused through
	// the hidden tenant wherever the reference resolves as pgveil reads it.
	m := fmt.Sprint(moved)
	for _, sql := range []string{
		`SELECT (SELECT json_build_array(email) FROM (SELECT 9601::int8 AS org_id) x) FROM users WHERE users.id = ` + m,
		`SELECT (SELECT json_build_array(u.email) FROM (SELECT 9601::int8 AS org_id) users) FROM users u WHERE u.id = ` + m,
		`SELECT json_build_array(s.email) FROM (SELECT email, org_id AS t, 9601::int8 AS org_id FROM users WHERE id = ` + m + `) s`,
		`SELECT json_build_array(email) FROM users, generate_series(9601, 9601) org_id WHERE users.id = ` + m,
		`WITH w AS (SELECT json_build_array(email) AS j FROM users WHERE id = ` + m + `) SELECT a.j, b.j FROM w a, w b`,
	} {
		got, err := jrevQuery(t, ctx, p.url(), sql, 0)
		if err == nil && strings.Contains(got, secret) {
			t.Errorf("%s on the moved row: %q; want a refusal or PV001", sql, got)
		}
	}
	// A cursor maps the JSON with the hidden tenant removed.
	c := connectPgx(t, ctx, p.url())
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `DECLARE jc2 CURSOR FOR SELECT json_build_array(email) FROM users WHERE id = `+v, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	var s string
	if err := tx.QueryRow(ctx, `FETCH 1 FROM jc2`, pgx.QueryExecModeSimpleProtocol).Scan(&s); err != nil || s != `["`+secret+`"]` {
		t.Errorf("FETCH from a cursor over JSON with the hidden tenant: %q, %v", s, err)
	}
}

// jrev2JSONPolicy: a json column of a tenant table.
const jrev2JSONPolicy = `tables:
  public.jt:
    key_context: org_id
    columns:
      c_json: {type: json}
`

// jrev2JSONValues are json texts whose jsonb form differs from the text:
// numbers numeric prints otherwise, escapes jsonb decodes, keys it sorts
// and deduplicates, nesting, whitespace.
var jrev2JSONValues = []string{
	`{"b":1,"aa":2,"a":3,"":4}`,
	`{"a":1,"a":{"y":1,"x":2},"a":[3]}`,
	`[1e2, 1E+2, -0, -0.0, 0.1e-2, 1.0e1, 1e-7, 100e-2, 5e0, 12345678901234567890e-10, 0.000]`,
	`[1e400]`,
	`["\u00e9", "\/", "\ud83d\ude00", "\u001f", "\u007f", "a\u0022b", "\b\f\n\r\t"]`,
	`{"\u00e9":1,"z":2,"\u0041":3,"é":4}`,
	` [ { "b" : { "d" : 1 , "c" : 2 } } , true,false,null ] `,
	`"just a string"`,
	`123.4500`,
	`{}`,
	`[[],{},[{}]]`,
}

// TestEncJSONReview2JSONInJSONBHolds: a json column opened inside jsonb
// (jsonb_build_*, json_build_* cast to jsonb, nested) is written as
// PostgreSQL writes the plaintext json column there, byte for byte.
func TestEncJSONReview2JSONInJSONBHolds(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	e := newOpsEnv(t, "ops_json_review2", jrev2JSONPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `CREATE TABLE pt (id int8 PRIMARY KEY, org_id int8 NOT NULL, c_json json);
CREATE TABLE jt (id int8 PRIMARY KEY, org_id int8 NOT NULL, c_json bytea);`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	px := e.proxy(e.config(""))
	app := e.appConn(ctx, px)
	for i, v := range jrev2JSONValues {
		if _, err := su.Exec(ctx, `INSERT INTO pt VALUES ($1, 9600, $2)`, i+1, v); err != nil {
			t.Fatalf("plaintext %s: %v", v, err)
		}
		if _, err := app.Exec(ctx, `INSERT INTO jt (id, org_id, c_json) VALUES ($1, 9600, $2)`, i+1, v); err != nil {
			t.Fatalf("through pgveil %s: %v", v, err)
		}
	}
	for i, v := range jrev2JSONValues {
		for _, q := range []string{
			`SELECT jsonb_build_array(org_id, c_json) FROM %s WHERE id = $1`,
			`SELECT jsonb_build_array(c_json) FROM %s WHERE id = $1`,
			`SELECT json_build_array(c_json)::jsonb FROM %s WHERE id = $1`,
			`SELECT jsonb_build_object('j', c_json) FROM %s WHERE id = $1`,
			`SELECT json_build_object('x', jsonb_build_array(c_json), 'y', json_build_array(c_json)) FROM %s WHERE id = $1`,
			`SELECT coalesce(jsonb_agg(json_build_array(c_json)), '[]') FROM %s WHERE id = $1`,
		} {
			for _, f := range []int16{0, 1} {
				want, werr := jrevOn(ctx, su.PgConn(), fmt.Sprintf(q, "pt"), f, fmt.Sprint(i+1))
				got, err := jrevOn(ctx, app.PgConn(), fmt.Sprintf(q, "jt"), f, fmt.Sprint(i+1))
				if werr != nil && err != nil {
					continue
				}
				if err != nil {
					app = e.appConn(ctx, px)
				}
				if err != nil || werr != nil || got != want {
					t.Errorf("%s (format %d) over %s:\n pgveil %q, %v\n direct %q, %v", fmt.Sprintf(q, "jt"), f, v, got, err, want, werr)
				}
			}
		}
	}
}
