package rewrite

// Review of 5f59fb7 (the hidden tenant: jsonHiddenTenant adds a JSON
// call's missing key_context as its last argument) and 592f049 (the fixes
// of the first JSON review), planner side.
//
// Failing at the time of the review (defects):
//   TestJSONReview2FoundShadowedQualifier HIGH: the tenant added to a call
//                                         whose encrypted column is written
//                                         without qualifier is qualified by
//                                         the relation's name. In a subquery
//                                         whose FROM has a relation of that
//                                         name (a subquery, VALUES, a CTE or
//                                         a table aliased users, a LATERAL
//                                         subquery's alias u), the name means
//                                         that relation to PostgreSQL: the
//                                         tenant checked is a value the client
//                                         writes (9601), not the row's.
//   TestJSONReview2FoundJoinAliasHidden   HIGH: over (users JOIN …) AS j the
//                                         added users.org_id (u.org_id) names
//                                         a relation the JOIN's alias hides:
//                                         PostgreSQL takes an outer query's
//                                         users (another row's tenant), or
//                                         rejects the statement (42P01).
//   TestJSONReview2FoundUnqualifiedTenant HIGH (PostgreSQL 16 and later,
//                                         which allow a subquery in FROM
//                                         without an alias): the relation has
//                                         no name and the tenant is added
//                                         unqualified (org_id); from a
//                                         subquery whose FROM has an org_id
//                                         column, that column is read.
//   TestJSONReview2FoundTooManyArgs       LOW: a call of 100 arguments gets a
//                                         101st (FUNC_MAX_ARGS is 100): the
//                                         server rejects a statement that
//                                         works without pgveil.
// Attacks withstood: TestJSONReview2Holds, TestJSONReview2FromHolds.

import (
	"strings"
	"testing"
)

// jrev2Added reports whether the rendered plan holds text the hidden
// tenant insertion would write (bad), or the statement was refused.
func jrev2Check(t *testing.T, p *Planner, sql string, bad ...string) {
	t.Helper()
	plan, err := p.Plan(sql, publicPath)
	if err != nil {
		return // refused: fails closed
	}
	r, rerr := renderMarked(sql, plan)
	if rerr != nil {
		t.Fatalf("%s: render: %v", sql, rerr)
	}
	for _, b := range bad {
		if strings.Contains(r, b) {
			t.Errorf("%s\n planned as %s\n JSON %s\n the added tenant %q names another relation than the encrypted column's", sql, r, jsonOuts(plan), b)
			return
		}
	}
}

// TestJSONReview2FoundShadowedQualifier (HIGH): see the file comment.
// email resolves to the outer users (the inner relation has no email);
// users.org_id (or u.org_id), written inside the subquery, resolves to the
// inner relation of that name. A fix refuses these, as no name reaches the
// outer relation from there.
func TestJSONReview2FoundShadowedQualifier(t *testing.T) {
	p := newTestPlanner(t)
	for _, c := range []struct{ sql, bad string }{
		{`SELECT (SELECT json_build_array(email) FROM (SELECT 9601 AS org_id) users) FROM users`, `email, users.org_id)`},
		{`SELECT (SELECT jsonb_build_object('e', email) FROM (SELECT 9601 AS org_id) users) FROM users`, `users.org_id)`},
		{`SELECT (SELECT json_agg(json_build_array(id, email)) FROM (VALUES (9601, 1)) users(org_id, n)) FROM users`, `email, users.org_id)`},
		{`WITH t AS (SELECT 9601 AS org_id) SELECT (SELECT json_build_array(email) FROM t users) FROM users`, `email, users.org_id)`},
		{`SELECT x.j FROM users u, LATERAL (SELECT json_build_array(email) AS j FROM (SELECT 9601 AS org_id) u) x`, `email, u.org_id)`},
		{`SELECT (SELECT json_build_array(email) FROM billing.accounts users LIMIT 1) FROM users`, `email, users.org_id)`},
	} {
		jrev2Check(t, p, c.sql, c.bad)
	}
}

// TestJSONReview2FoundJoinAliasHidden (HIGH): a JOIN's alias hides the
// names of the relations inside it ("invalid reference to FROM-clause entry
// for table users", or an outer relation of that name). The tenant must be
// named through the alias (j.org_id), or the statement refused.
func TestJSONReview2FoundJoinAliasHidden(t *testing.T) {
	p := newTestPlanner(t)
	for _, c := range []struct{ sql, bad string }{
		// Correlated: users.org_id is the outer row's tenant.
		{`SELECT (SELECT json_agg(json_build_array(email)) FROM (users JOIN contacts c ON c.user_id = users.id) j) FROM users`, `email, users.org_id)`},
		{`SELECT (SELECT json_build_object('e', email) FROM (users u JOIN contacts c ON c.user_id = u.id) j LIMIT 1) FROM users u`, `u.org_id)`},
		// Not correlated: the server rejects what works without pgveil.
		{`SELECT json_build_array(email) FROM (users u JOIN billing.accounts a ON true) j`, `email, u.org_id)`},
		{`SELECT json_build_array(email) FROM (users JOIN contacts c ON true) AS j`, `email, users.org_id)`},
	} {
		jrev2Check(t, p, c.sql, c.bad)
	}
}

// TestJSONReview2FoundUnqualifiedTenant (HIGH on PostgreSQL 16+): a
// subquery in FROM without an alias has no name; the tenant is added as a
// bare org_id, which PostgreSQL resolves in the innermost query that has
// such a column: here the client's constant.
func TestJSONReview2FoundUnqualifiedTenant(t *testing.T) {
	p := newTestPlanner(t)
	jrev2Check(t, p, `SELECT (SELECT json_build_array(email) FROM (SELECT 9601 AS org_id) x) FROM (SELECT email, org_id FROM users)`, `email, org_id)`)
	jrev2Check(t, p, `SELECT (SELECT json_build_array(email) FROM (SELECT 9601 AS t) x) FROM (SELECT email, org_id AS t FROM users)`, `email, t)`)
}

// TestJSONReview2FoundTooManyArgs (LOW): PostgreSQL calls take at most 100
// arguments; the added tenant makes the 101st. A fix refuses (with a
// reason) or plans the call within the limit.
func TestJSONReview2FoundTooManyArgs(t *testing.T) {
	p := newTestPlanner(t)
	var pairs []string
	for i := range 49 {
		pairs = append(pairs, "'k"+strings.Repeat("x", i)+"', id")
	}
	for _, sql := range []string{
		`SELECT json_build_array(` + strings.Repeat("id, ", 99) + `email) FROM users`,
		`SELECT jsonb_build_object(` + strings.Join(pairs, ", ") + `, 'e', email) FROM users`,
	} {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			continue
		}
		r, _ := renderMarked(sql, plan)
		call := r[strings.Index(r, "(")+1 : strings.LastIndex(r, ")")]
		if n := strings.Count(call, ",") + 1; n > 100 {
			t.Errorf("%.50s…: planned with %d arguments (the server's limit is 100)", sql, n)
		}
	}
}

// TestJSONReview2Holds: the hidden tenant lands inside the call's own
// parentheses, names the encrypted column's own row, keeps clear of other
// edits; reserved keys cannot be forged.
func TestJSONReview2Holds(t *testing.T) {
	p := newTestPlanner(t)
	for _, c := range []struct{ sql, want, shape string }{
		{`SELECT json_build_array /* ) */ (email, ')' /* ) */) FROM users`,
			`SELECT json_build_array /* ) */ (email, ')' /* ) */, users.org_id) FROM users`, "out[0] [email@2,.,hidden]"},
		{`SELECT json_build_array(email, $$)$$, E'\')') FROM users`,
			`SELECT json_build_array(email, $$)$$, E'\')', users.org_id) FROM users`, "out[0] [email@3,.,.,hidden]"},
		{`SELECT pg_catalog.json_build_array(email) FROM public.users`,
			`SELECT pg_catalog.json_build_array(email, users.org_id) FROM public.users`, "out[0] [email@1,hidden]"},
		{`SELECT json_build_array(public.users.email) FROM public.users`,
			`SELECT json_build_array(public.users.email, users.org_id) FROM public.users`, "out[0] [email@1,hidden]"},
		{`SELECT json_build_array(email) FROM users "Select"`,
			`SELECT json_build_array(email, "Select".org_id) FROM users "Select"`, "out[0] [email@1,hidden]"},
		{`SELECT json_build_array("U".email) FROM users "U"`,
			`SELECT json_build_array("U".email, "U".org_id) FROM users "U"`, "out[0] [email@1,hidden]"},
		// The tenant by the name the relation gives it.
		{`SELECT json_build_array(email) FROM (SELECT email, org_id AS t, 5 AS org_id FROM users) s`,
			`SELECT json_build_array(email, s.t) FROM (SELECT email, org_id AS t, 5 AS org_id FROM users) s`, "out[0] [email@1,hidden]"},
		{`SELECT json_build_array(e) FROM (SELECT email, org_id FROM users) s(e, o)`,
			`SELECT json_build_array(e, s.o) FROM (SELECT email, org_id FROM users) s(e, o)`, "out[0] [email@1,hidden]"},
		{`WITH s(a, b) AS (SELECT email, org_id FROM users) SELECT json_build_array(a) FROM s`,
			`WITH s(a, b) AS (SELECT email, org_id FROM users) SELECT json_build_array(a, s.b) FROM s`, "out[0] [email@1,hidden]"},
		{`SELECT json_build_array(c) FROM users u(a, b, c)`,
			`SELECT json_build_array(c, u.b) FROM users u(a, b, c)`, "out[0] [email@1,hidden]"},
		// Correlated, qualified: the outer row's own tenant.
		{`SELECT (SELECT json_build_array(u.email) FROM (SELECT 9601 AS org_id) users) FROM users u`,
			`SELECT (SELECT json_build_array(u.email, u.org_id) FROM (SELECT 9601 AS org_id) users) FROM users u`, "out[0] [email@1,hidden]"},
		{`SELECT (SELECT json_build_array(email) FROM (SELECT 9601 AS org_id) x) FROM users`,
			`SELECT (SELECT json_build_array(email, users.org_id) FROM (SELECT 9601 AS org_id) x) FROM users`, "out[0] [email@1,hidden]"},
		{`SELECT json_build_array(email) FROM users, generate_series(1, 2) org_id`,
			`SELECT json_build_array(email, users.org_id) FROM users, generate_series(1, 2) org_id`, "out[0] [email@1,hidden]"},
		// Two tenants, nested calls, other edits in the arguments.
		{`SELECT jsonb_build_object('a', u.email, 'b', a.iban) FROM users u, billing.accounts a`,
			`SELECT jsonb_build_object('a', u.email, 'b', a.iban, '__pgveil_tenant_2', u.org_id, '__pgveil_tenant_3', a.tenant_id) FROM users u, billing.accounts a`,
			"out[0] {a:email@2,b:iban@3,__pgveil_tenant_2:hidden,__pgveil_tenant_3:hidden}"},
		{`SELECT json_build_object('a', email, 'b', json_build_array(phone)) FROM users`,
			`SELECT json_build_object('a', email, 'b', json_build_array(phone, users.org_id), '__pgveil_tenant_2', users.org_id) FROM users`,
			"out[0] {a:email@2,b:[phone@1,hidden],__pgveil_tenant_2:hidden}"},
		{`SELECT json_build_array(email, (SELECT count(*) FROM users x WHERE x.email = 'x')) FROM users`,
			`SELECT json_build_array(email, (SELECT count(*) FROM users x WHERE x.email_bidx = {index:email}), users.org_id) FROM users`,
			"out[0] [email@2,.,hidden]"},
		{`SELECT json_build_array(email) FROM users; SELECT json_build_array(phone) FROM users`,
			`SELECT json_build_array(email, users.org_id) FROM users; SELECT json_build_array(phone, users.org_id) FROM users`,
			"out[0] [email@1,hidden]; out[0] [phone@1,hidden]"},
		{`SELECT json_build_array(users.email, contacts.email) FROM users, contacts`,
			`SELECT json_build_array(users.email, contacts.email, users.org_id) FROM users, contacts`, "out[0] [email@2,email,hidden]"},
		{`UPDATE users SET name = 'x' RETURNING json_build_array(email)`,
			`UPDATE users SET name = 'x' RETURNING json_build_array(email, users.org_id)`, "out[0] [email@1,hidden]"},
		{`SELECT json_build_array(users.email) FROM users JOIN billing.accounts USING (id)`,
			`SELECT json_build_array(users.email, users.org_id) FROM users JOIN billing.accounts USING (id)`, "out[0] [email@1,hidden]"},
	} {
		plan, err := p.Plan(c.sql, publicPath)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		r, err := renderMarked(c.sql, plan)
		if err != nil || r != c.want || jsonOuts(plan) != c.shape {
			t.Errorf("%s:\n got %s (%v)\nwant %s\n JSON %s, want %s", c.sql, r, err, c.want, jsonOuts(plan), c.shape)
		}
	}
	// A cursor carries the shape with the hidden element.
	plan, err := p.Plan(`DECLARE c CURSOR FOR SELECT json_build_array(email) FROM users`, publicPath)
	if err != nil || plan.Stmts[0].Cursor == nil || shapeString(plan.Stmts[0].Cursor.Outputs[0].JSON) != "[email@1,hidden]" {
		t.Errorf("DECLARE: %v", err)
	}
	// Refused: forged reserved keys anywhere, the call inside an aggregate's
	// ORDER BY or FILTER, operators over it, VARIADIC, function bodies,
	// views, SQL-level PREPARE, NATURAL JOIN.
	for _, sql := range []string{
		`SELECT jsonb_build_object('__pgveil_tenant_1', 5) FROM users`,
		`SELECT json_build_object('e', email, 'x', json_build_object('__pgveil_tenant_1', 9601)) FROM users u`,
		`SELECT json_build_object('e', email, 'x', (SELECT json_build_object('__pgveil_tenant_1', 9601))) FROM users u`,
		`SELECT json_build_object('e', email, '__pgveil_tenant_1'::text, 9601) FROM users u`,
		`SELECT json_build_object('e', email, E'\x5f_pgveil_tenant_1', 9601) FROM users u`,
		`SELECT json_build_object('e', email, U&'\005f_pgveil_tenant_1', 9601) FROM users u`,
		`SELECT json_build_object('e', email, 'o', org_id) FROM users u, (SELECT json_build_object('__pgveil_tenant_1', 5) AS x) s`,
		`SELECT json_agg(id ORDER BY json_build_array(email)) FROM users`,
		`SELECT json_agg(json_build_array(email, org_id)) FILTER (WHERE json_build_array(email) IS NOT NULL) FROM users`,
		`SELECT json_build_array(email)->0 FROM users`,
		`SELECT json_build_object('e', email) #>> '{}' FROM users`,
		`SELECT json_build_array(VARIADIC ARRAY[email]) FROM users`,
		`CREATE FUNCTION f() RETURNS json LANGUAGE sql AS $$ SELECT json_build_array(email) FROM users $$`,
		`CREATE FUNCTION f() RETURNS json LANGUAGE sql BEGIN ATOMIC SELECT json_build_array(email) FROM users; END`,
		`CREATE VIEW v AS SELECT json_build_array(email) FROM users`,
		`PREPARE p AS SELECT json_build_array(email) FROM users`,
		`SELECT json_build_array(email) FROM users NATURAL JOIN contacts`,
		`SELECT JSON_ARRAY(email) FROM contacts`,
		`SELECT JSON_OBJECT('e': email) FROM contacts`,
		`SELECT JSON_ARRAYAGG(email) FROM contacts`,
		`SELECT (SELECT json_build_array(email) FROM generate_series(9601, 9601) users(org_id)) FROM users`,
	} {
		refusal(t, p, sql, publicPath)
	}
}

// TestJSONReview2FromHolds: functions in FROM, planned in their FROM
// level's scope since 592f049: what reads earlier items or an outer query
// is planned as before, what would carry ciphertext out is refused.
func TestJSONReview2FromHolds(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`SELECT * FROM users u, generate_series(1, u.id) g`,
		`SELECT * FROM users u JOIN generate_series(1, u.id) g ON true`,
		`SELECT * FROM generate_series(1, 3) g JOIN users u ON u.id = g`,
		`SELECT (SELECT g FROM generate_series(1, u.id) g LIMIT 1) FROM users u`,
		`SELECT (SELECT count(*) FROM generate_series(1, id) g, users u2) FROM users`,
		`SELECT * FROM users u, ROWS FROM (generate_series(1, u.id), unnest(ARRAY[u.name])) WITH ORDINALITY x`,
		`SELECT * FROM users u, jsonb_to_recordset(jsonb_build_array(u.org_id)) AS r(a int)`,
		`SELECT (SELECT count(*) FROM unnest(ARRAY[u.name]) x) FROM users u`,
		`SELECT x FROM users u, unnest(ARRAY[u.email_bidx]) x`,
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
	for _, sql := range []string{
		`SELECT * FROM users u, unnest(ARRAY[u.email]) x`,
		`SELECT * FROM users u, unnest(ARRAY[email]) x`,
		`SELECT (SELECT x FROM unnest(ARRAY[u.email]) x) FROM users u`,
		`SELECT (SELECT g FROM contacts c, unnest(ARRAY[email]) g LIMIT 1) FROM users`,
		`SELECT * FROM users u, jsonb_to_record(jsonb_build_object('e', u.email)) AS r(e text)`,
		`SELECT * FROM users u, json_array_elements(json_build_array(u.email, u.org_id)) e`,
		`SELECT * FROM (SELECT json_agg(json_build_array(email, org_id)) j FROM users) s, json_array_elements(s.j) e`,
		`SELECT * FROM (SELECT json_agg(json_build_array(email, org_id)) j FROM users) s, ROWS FROM (json_array_elements(s.j)) e`,
		`SELECT * FROM users u, LATERAL (SELECT * FROM unnest(ARRAY[u.email])) x`,
	} {
		refusal(t, p, sql, publicPath)
	}
}
