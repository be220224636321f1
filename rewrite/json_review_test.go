package rewrite

// Review of 69a347b (JSON built from encrypted columns), planner side.
//
// Failing at the time of the review (defects):
//   TestJSONReviewFoundShapeCacheKeys      HIGH: the shape cache shares plans
//                                          between texts that differ only in
//                                          literals, and json_build_object's
//                                          constant keys are literals: the
//                                          second text gets the first one's
//                                          keys (envelope left sealed, or
//                                          opened under another member).
//   TestJSONReviewFoundKeyCast             HIGH: a cast key constant ('e'::char(3),
//                                          'ox'::varchar(1), '01'::int) is
//                                          planned under its literal, the
//                                          server writes another key.
//   TestJSONReviewFoundDataKey             HIGH: a member with a key computed
//                                          from the row (json_build_object(…,
//                                          name, id)) beside an encrypted
//                                          column: the row's data can write the
//                                          tenant member's key.
//   TestJSONReviewFoundDupNestedKey        HIGH: a key twice whose values are
//                                          nested JSON shapes: the proxy
//                                          applies the first shape to the last
//                                          (jsonb) or to both (json) members.
//   TestJSONReviewFoundSubqueryJSON        MEDIUM: a subquery used as an
//                                          expression returning such JSON
//                                          (scalar, ARRAY(), as an argument of
//                                          a JSON call, VALUES, a FROM
//                                          function) is planned with no map.
//   TestJSONReviewFoundWholeRow            MEDIUM: whole-row and (x).j
//                                          references of a relation with such
//                                          a JSON column are not refused.
//   TestJSONReviewFoundFromFunction        MEDIUM: such a JSON column as the
//                                          argument of a function in FROM
//                                          (json_array_elements, unnest).
//   TestJSONReviewFoundInsertSelect        MEDIUM: INSERT … SELECT/VALUES of
//                                          such JSON into a plain column
//                                          (INSERT … SELECT email is refused).
//   TestJSONReviewFoundJoinUsing           LOW: JOIN … USING (j) compares two
//                                          such JSON values on the server.
// Attacks withstood: TestJSONReviewHolds.

import (
	"fmt"
	"strings"
	"testing"
)

// jsonOuts renders the JSON outputs of every statement of a plan.
func jsonOuts(plan *Plan) string {
	var got []string
	for _, st := range plan.Stmts {
		for i, o := range st.Outputs {
			if o.JSON != nil {
				got = append(got, fmt.Sprintf("out[%d] %s", i, shapeString(o.JSON)))
			}
		}
	}
	return strings.Join(got, "; ")
}

// TestJSONReviewFoundShapeCacheKeys (HIGH): Plan keeps a "shape" of each
// text (its literals masked, shape.go) and instantiates the first plan for
// every later text of the same shape. json_build_object's keys are string
// literals, and the JSONShape records them (JSONElem.Key), yet planning
// them does not mark the analyzer valueDependent. So after
//
//	SELECT jsonb_build_object('e', email, 'o', org_id) FROM users
//
// the text SELECT jsonb_build_object('x', email, 'o', org_id) FROM users
// gets the shape {e: email, o: tenant}: the server writes the envelope
// under "x", the proxy looks for "e", and the envelope reaches the client
// sealed without an error. With the keys permuted, the email is opened
// under the member the first text called the tenant: here id, a value the
// row chooses (a wrong-tenant check). Each text must be planned on its own
// keys.
func TestJSONReviewFoundShapeCacheKeys(t *testing.T) {
	for _, c := range [][2]string{
		{`SELECT jsonb_build_object('e', email, 'o', org_id) FROM users WHERE id = $1`,
			`SELECT jsonb_build_object('x', email, 'o', org_id) FROM users WHERE id = $1`},
		{`SELECT json_build_object('e', email, 'o', org_id, 'p', id) FROM users`,
			`SELECT json_build_object('e', email, 'p', org_id, 'o', id) FROM users`},
		{`SELECT json_agg(json_build_object('id', id, 'org', org_id, 'email', email)) FROM users`,
			`SELECT json_agg(json_build_object('id', id, 'org', org_id, 'mail', email)) FROM users`},
	} {
		fresh := newTestPlanner(t)
		plan, err := fresh.Plan(c[1], publicPath)
		if err != nil {
			t.Fatalf("%s: %v", c[1], err)
		}
		want := jsonOuts(plan)
		p := newTestPlanner(t)
		if _, err := p.Plan(c[0], publicPath); err != nil {
			t.Fatalf("%s: %v", c[0], err)
		}
		plan, err = p.Plan(c[1], publicPath)
		if err != nil {
			t.Fatalf("%s: %v", c[1], err)
		}
		if got := jsonOuts(plan); got != want {
			t.Errorf("%s\n planned after %s:\n got %s\nwant %s (its own keys)", c[1], c[0], got, want)
		}
	}
}

// jrevRefused fails unless sql is refused with 0A000 or 42601.
func jrevRefused(t *testing.T, p *Planner, sql, why string) {
	t.Helper()
	plan, err := p.Plan(sql, publicPath)
	if err == nil {
		t.Errorf("%s\n  planned (%s), want a refusal: %s\n%s", sql, why, jsonOuts(plan), dumpPlan(sql, plan))
		return
	}
	if e, ok := err.(*Error); !ok || e.SQLState() != "0A000" && e.SQLState() != "42601" {
		t.Errorf("%s: %v", sql, err)
	}
}

// TestJSONReviewFoundKeyCast (HIGH): constString strips casts, so a key
// written 'e'::char(3) is planned as "e" while the server writes the key
// "e  " (bpchar keeps its padding), 'ox'::varchar(1) is planned as "ox"
// and written "o", '01'::int is planned as "01" and written "1". Results:
//   - the encrypted member's key is not found: its envelope passes through
//     sealed, silently (openShape only opens members whose key it knows);
//   - a member planned under another key is written under the tenant's key
//     ("o"): member() takes the last "o", so the email is checked against
//     id, not org_id (json and jsonb alike: jsonb keeps the last).
//
// A key must be a plain string constant (or cast only to text/varchar
// without a length), anything else refused.
func TestJSONReviewFoundKeyCast(t *testing.T) {
	p := newTestPlanner(t)
	for _, c := range [][2]string{
		{`SELECT json_build_object('e'::char(3), email, 'o', org_id) FROM users`, "envelope under key \"e  \", planned as e: left sealed"},
		{`SELECT json_build_object('01'::int, email, 'o', org_id) FROM users`, "envelope under key \"1\", planned as 01: left sealed"},
		{`SELECT json_build_object('e', email, 'o', org_id, 'ox'::varchar(1), id) FROM users`, "id written under \"o\": email checked against id"},
		{`SELECT jsonb_build_object('e', email, 'o', org_id, 'ox'::varchar(1), id) FROM users`, "jsonb keeps the last \"o\": id"},
		{`SELECT json_build_object('e', email, 'o'::"char", org_id, 'oo'::"char", id) FROM users`, "\"char\" keeps one byte"},
		{`SELECT json_build_object('x', json_build_array(org_id, email), 'xy'::varchar(1), json_build_array(id, email, org_id)) FROM users`, "nested shape under an aliased key"},
	} {
		jrevRefused(t, p, c[0], c[1])
	}
}

// TestJSONReviewFoundDataKey (HIGH): a member whose key is not a constant
// is allowed when its value holds no encrypted column. Its key comes from
// the row: a row whose name is 'o' writes id under "o", and the tenant
// lookup (member("o"), the last such key) reads id instead of org_id. The
// same holds for a key the row writes as "e": the proxy then tries to
// open that member as the email. An object holding an encrypted column
// must have constant keys only.
func TestJSONReviewFoundDataKey(t *testing.T) {
	p := newTestPlanner(t)
	jrevRefused(t, p, `SELECT json_build_object('e', email, 'o', org_id, name, id) FROM users`, "name = 'o' makes id the tenant")
	jrevRefused(t, p, `SELECT jsonb_build_object('e', email, 'o', org_id, name || '', id) FROM users`, "jsonb keeps the last 'o'")
	jrevRefused(t, p, `SELECT json_agg(json_build_object('o', org_id, 'e', email, lower(name), id)) FROM users`, "inside json_agg")
}

// TestJSONReviewFoundDupNestedKey (HIGH): the duplicate-key check covers
// members holding an encrypted column and the tenant's member, not members
// holding nested JSON. jsonb keeps the last of equal keys, and openShape
// applies the first plan element with that key: the first shape,
// [org_id, email@0, id], is applied to the second value, [id, email,
// org_id], and the email is checked against id. With json (both members
// kept) the first shape is applied to both members. Any key twice in an
// object holding encrypted columns should be refused.
func TestJSONReviewFoundDupNestedKey(t *testing.T) {
	p := newTestPlanner(t)
	jrevRefused(t, p, `SELECT jsonb_build_object('x', jsonb_build_array(org_id, email, id), 'x', jsonb_build_array(id, email, org_id)) FROM users`, "jsonb keeps the second, opened with the first's tenant index")
	jrevRefused(t, p, `SELECT json_build_object('x', json_build_array(org_id, email, id), 'x', json_build_array(id, email, org_id)) FROM users`, "json: the first shape is applied to both")
	jrevRefused(t, p, `SELECT json_build_object('x', json_build_object('o', org_id, 'e', email), 'x', json_build_object('o', id, 'e', email)) FROM users`, "nested objects")
}

// TestJSONReviewFoundSubqueryJSON (MEDIUM): a subquery used as an
// expression goes through sublink → plainSubquery, which refuses an
// encrypted column (c.enc) but not a JSON value holding one (c.json);
// targetList's scalar-subquery branch copies only sub.cols[0].enc. The
// statement is planned with no Output.JSON, so the server's JSON, with
// "\\x…" envelopes in it, reaches the client as it is. Each must be
// refused (or, for the plain scalar subquery, mapped).
func TestJSONReviewFoundSubqueryJSON(t *testing.T) {
	p := newTestPlanner(t)
	scalar := `SELECT (SELECT json_build_array(org_id, email) FROM users LIMIT 1)`
	if plan, err := p.Plan(scalar, publicPath); err == nil && jsonOuts(plan) == "" {
		t.Errorf("%s: planned with no JSON map: the envelope is returned sealed", scalar)
	}
	for _, sql := range []string{
		`SELECT (SELECT json_build_array(org_id, email) FROM users LIMIT 1)::text`,
		`SELECT ARRAY(SELECT json_build_array(org_id, email) FROM users)`,
		`SELECT json_build_array(1, (SELECT json_build_array(org_id, email) FROM users LIMIT 1))`,
		`SELECT json_build_object('e', email, 'o', org_id, 'e2', (SELECT json_build_array(org_id, email) FROM users LIMIT 1)) FROM users`,
		`SELECT * FROM json_array_elements((SELECT json_agg(json_build_array(org_id, email)) FROM users))`,
		`VALUES ((SELECT json_build_array(org_id, email) FROM users LIMIT 1))`,
	} {
		jrevRefused(t, p, sql, "a subquery returning JSON with envelopes, not mapped")
	}
	// A scalar subquery of the select list returning such JSON is mapped.
	for _, sql := range []string{
		`SELECT (SELECT x.j) FROM (SELECT json_build_array(org_id, email) AS j FROM users) x`,
		`WITH x AS (SELECT json_build_array(org_id, email) AS j FROM users) SELECT (SELECT j FROM x LIMIT 1)`,
	} {
		if plan, err := p.Plan(sql, publicPath); err != nil || jsonOuts(plan) == "" {
			t.Errorf("%s: want the JSON mapped: %v", sql, err)
		}
	}
}

// TestJSONReviewFoundWholeRow (MEDIUM): rel.firstEnc, used by bareRef for
// x.* and whole-row references, and indirectField, used for (x).col, look
// at enc and row columns only; a subquery column holding JSON with
// envelopes passes inside row_to_json(x), to_jsonb(x.*), SELECT x,
// json_agg(x), json_build_array(x.*) and (x).j, all planned without a map.
func TestJSONReviewFoundWholeRow(t *testing.T) {
	p := newTestPlanner(t)
	sub := `(SELECT json_build_array(org_id, email) AS j FROM users) x`
	for _, sql := range []string{
		`SELECT row_to_json(x) FROM ` + sub,
		`SELECT to_jsonb(x.*) FROM ` + sub,
		`SELECT x FROM ` + sub,
		`SELECT json_agg(x) FROM ` + sub,
		`SELECT json_build_array(x.*) FROM ` + sub,
		`SELECT (x).j::text FROM ` + sub,
		`SELECT e FROM ` + sub + `, LATERAL (SELECT x.j AS k) e`,
		`SELECT z FROM (VALUES (1)) v(a), LATERAL (SELECT json_build_array(org_id, email) FROM users) z`,
	} {
		jrevRefused(t, p, sql, "the whole row carries the JSON unmapped")
	}
	sql := `SELECT (x).j FROM ` + sub
	if plan, err := p.Plan(sql, publicPath); err == nil && jsonOuts(plan) == "" {
		t.Errorf("%s: planned with no JSON map: the envelope is returned sealed", sql)
	}
}

// TestJSONReviewFoundFromFunction (MEDIUM): a function in FROM whose
// argument is a column holding JSON with envelopes is planned: its rows
// (json_array_elements' elements, unnest's values) are the envelopes,
// unmapped.
func TestJSONReviewFoundFromFunction(t *testing.T) {
	p := newTestPlanner(t)
	sub := `(SELECT json_build_array(org_id, email) AS j FROM users) x`
	for _, sql := range []string{
		`SELECT e FROM ` + sub + `, json_array_elements(x.j) e`,
		`SELECT e.value FROM ` + sub + `, json_array_elements(x.j) e`,
		`SELECT e FROM ` + sub + `, json_array_elements_text(x.j) e`,
		`SELECT u FROM ` + sub + `, unnest(ARRAY[x.j]) u`,
	} {
		jrevRefused(t, p, sql, "a FROM function over the JSON")
	}
}

// TestJSONReviewFoundInsertSelect (MEDIUM): INSERT … SELECT email FROM
// users into a plain column is refused (the ciphertext would be stored
// where pgveil never opens it); the same with the JSON built from email
// is planned: the JSON with its "\\x…" envelopes is stored in
// contacts.note, and RETURNING note returns it.
func TestJSONReviewFoundInsertSelect(t *testing.T) {
	p := newTestPlanner(t)
	refusal(t, p, `INSERT INTO contacts (note) SELECT email FROM users`, publicPath) // holds
	for _, sql := range []string{
		`INSERT INTO contacts (note) SELECT json_build_array(org_id, email) FROM users`,
		`INSERT INTO contacts (note) SELECT x.j FROM (SELECT json_build_array(org_id, email) AS j FROM users) x`,
		`WITH x AS (SELECT json_build_array(org_id, email) AS j FROM users) INSERT INTO contacts (note) SELECT j FROM x`,
		`INSERT INTO contacts (note) VALUES ((SELECT json_build_array(org_id, email) FROM users LIMIT 1))`,
		`INSERT INTO contacts (note) SELECT json_build_array(org_id, email) FROM users RETURNING note`,
	} {
		jrevRefused(t, p, sql, "stores the envelopes in a plain column")
	}
}

// TestJSONReviewFoundJoinUsing (LOW): x.j = y.j is refused, JOIN USING (j)
// is not: the server compares JSON holding envelopes (never equal: each
// envelope has its own nonce), a wrong result without an error.
func TestJSONReviewFoundJoinUsing(t *testing.T) {
	p := newTestPlanner(t)
	jrevRefused(t, p, `SELECT 1 FROM (SELECT json_build_array(org_id, email)::jsonb AS j FROM users) x JOIN (SELECT json_build_array(org_id, email)::jsonb AS j FROM users) y USING (j)`, "USING compares ciphertext")
}

// TestJSONReviewHolds: attacks the planner withstands.
func TestJSONReviewHolds(t *testing.T) {
	// Another relation's org_id beside the value is not its tenant: pgveil
	// adds the value's own (hidden) and checks that one.
	for _, sql := range []string{
		`SELECT json_build_array(c.org_id, u.email) FROM users u, (SELECT 1 AS org_id) c`,
		`SELECT json_build_array(v.org_id, u.email) FROM users u JOIN users v ON v.id = u.id`,
		`SELECT json_build_array(t.org_id, u.email) FROM users u JOIN billing.accounts t ON true`,
		`SELECT json_build_array(json_build_array(org_id), email) FROM users`,
		`SELECT json_build_array(org_id + 0, email) FROM users`,
	} {
		plan, err := newTestPlanner(t).Plan(sql, publicPath)
		if err != nil || !strings.Contains(jsonOuts(plan), "[.,email@2,hidden]") {
			t.Errorf("%s: %v %s", sql, err, jsonOuts(plan))
		}
	}
	p := newTestPlanner(t)
	for _, c := range []struct{ sql, want string }{
		// Renamed subquery columns keep their tenant: x(b, a) swaps names.
		{`SELECT json_build_array(x.a, x.b) FROM (SELECT org_id, email FROM users) x(b, a)`, "out[0] [email@1,.]"},
		{`SELECT json_build_array(x.org_id, x.email) FROM (SELECT org_id, email, email AS e2 FROM users) x(email, org_id)`, "out[0] [email@1,.]"},
		{`SELECT k FROM (SELECT json_build_array(org_id, email) AS j, 1 AS n FROM users) x(n, k)`, ""},
		{`SELECT x.n FROM (SELECT json_build_array(org_id, email) AS j, 1 AS n FROM users) x(n, k)`, "out[0] [.,email@0]"},
		// Two tenant tables in one call: each its own tenant.
		{`SELECT json_build_array(tenant_id, iban, org_id, email) FROM users u JOIN billing.accounts t ON true`, "out[0] [.,iban@0,.,email@2]"},
		{`SELECT json_build_array(u.org_id, u.email, v.org_id, v.email) FROM users u JOIN users v ON true`, "out[0] [.,email@0,.,email@2]"},
		// jsonb's key order does not matter: members are found by key.
		{`SELECT jsonb_build_object('email', email, 'o', org_id) FROM users`, "out[0] {email:email@1,o:.}"},
		{`WITH x AS (SELECT json_build_array(org_id, email) AS j FROM users) SELECT a.j, b.j FROM x a, x b`, "out[0] [.,email@0]; out[1] [.,email@0]"},
		{`SELECT e.* FROM (SELECT json_build_array(org_id, email) AS j FROM users) x, LATERAL (SELECT x.j AS k) e`, "out[0] [.,email@0]"},
		{`UPDATE users SET name = 'x' RETURNING json_build_array(org_id, email)`, "out[0] [.,email@0]"},
		{`DELETE FROM users RETURNING json_build_object('e', email, 'o', org_id)`, "out[0] {e:email@1,o:.}"},
	} {
		plan, err := p.Plan(c.sql, publicPath)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		if got := jsonOuts(plan); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.sql, got, c.want)
		}
	}
	for _, sql := range []string{
		// Another relation's tenant column, a self-join, a renamed join.
		`SELECT json_build_array(x.org_id, x.email) FROM (SELECT v.org_id, u.email FROM users u JOIN users v ON v.id = u.id) x`,
		`SELECT json_build_array(x.org_id, x.email) FROM (SELECT u.org_id, u.email FROM users u UNION ALL SELECT 9401, email FROM users) x`,
		// A tenant that is itself computed or nested.
		`SELECT json_build_array(max(org_id), email) FROM users GROUP BY email`,
		`SELECT json_build_array(org_id, users.*) FROM users`,
		`SELECT json_build_array(users.org_id, users) FROM users`,
		// Other JSON functions and operators.
		`SELECT to_json(email) FROM contacts`,
		`SELECT json_object_agg(org_id, email) FROM users`,
		`SELECT jsonb_build_object('e', email, 'o', org_id) -> 'e' FROM users`,
		`SELECT json_build_array(org_id, email)::jsonb - 0 FROM users`,
		`SELECT json_build_array(org_id, email)::json::text FROM users`,
		`SELECT jsonb_set(jsonb_build_array(org_id, email), '{0}', '1') FROM users`,
		`SELECT jsonb_build_array(org_id, email) || '[1]' FROM users`,
		`SELECT array_to_json(ARRAY[json_build_array(org_id, email)]) FROM users`,
		`SELECT json_populate_record(null::users, json_build_object('o', org_id, 'email', email)) FROM users`,
		`SELECT string_agg(json_build_array(org_id, email)::text, ',') FROM users`,
		`SELECT CASE WHEN true THEN json_build_array(org_id, email) END FROM users`,
		`SELECT NULLIF(json_build_array(org_id, email)::jsonb, '[]') FROM users`,
		`SELECT COALESCE(x.j, x.j) FROM (SELECT json_build_array(org_id, email) AS j FROM users) x`,
		// Other uses of the built value.
		`SELECT x.j FROM (SELECT json_build_array(org_id, email) AS j FROM users) x GROUP BY 1`,
		`SELECT DISTINCT ON (x.j::text) x.j FROM (SELECT json_build_array(org_id, email) AS j FROM users) x`,
		`SELECT * FROM (SELECT json_build_array(org_id, email) AS j FROM users) x WHERE x.j IN (SELECT x.j)`,
		`SELECT json_agg(j ORDER BY j::text) FROM (SELECT json_build_array(org_id, email) AS j FROM users) x`,
		`SELECT jsonb_agg(DISTINCT x.j) FROM (SELECT json_build_array(org_id, email) AS j FROM users) x`,
		`SELECT * FROM (SELECT json_build_array(org_id, email) AS j FROM users) x, LATERAL (SELECT x.j::text) e`,
		`UPDATE contacts SET note = x.j FROM (SELECT json_build_array(org_id, email) AS j FROM users) x`,
		`WITH RECURSIVE r(j) AS (SELECT json_build_array(org_id, email) FROM users UNION ALL SELECT j FROM r) SELECT j FROM r`,
		`SELECT json_build_array(org_id, email) INTO t2 FROM users`,
		`CREATE TABLE t3 AS SELECT json_build_array(org_id, email) FROM users`,
		`CREATE MATERIALIZED VIEW t4 AS SELECT json_build_array(org_id, email) FROM users`,
		`PREPARE q AS SELECT json_build_array(org_id, email) FROM users`,
		`SELECT json_build_array(org_id, email COLLATE "C") FROM users`,
		`SELECT myschema.json_build_array(org_id, email) FROM users`,
	} {
		refusal(t, p, sql, publicPath)
	}
}
