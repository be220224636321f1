package rewrite

import (
	"fmt"
	"strings"
	"testing"
)

// shapeString renders a JSONShape compactly: [col@tenant, …], {key: …},
// agg(…), scalar(…).
func shapeString(s *JSONShape) string {
	if s == nil {
		return "-"
	}
	elem := func(e JSONElem) string {
		v := "."
		switch {
		case e.Column != nil:
			v = e.Column.Name
			if e.Tenant >= 0 {
				v += fmt.Sprintf("@%d", e.Tenant)
			}
		case e.Shape != nil:
			v = shapeString(e.Shape)
		case e.Hidden:
			v = "hidden"
		}
		if e.Key != "" {
			v = e.Key + ":" + v
		}
		return v
	}
	var parts []string
	for _, e := range s.Elems {
		parts = append(parts, elem(e))
	}
	switch s.Kind {
	case JSONArray:
		return "[" + strings.Join(parts, ",") + "]"
	case JSONObject:
		return "{" + strings.Join(parts, ",") + "}"
	case JSONAgg:
		return "agg(" + shapeString(s.Each) + ")"
	case JSONScalar:
		return "scalar(" + strings.Join(parts, ",") + ")"
	}
	return "?"
}

// drizzleMany is Drizzle's relational query of orgs with their users
// (db.query.orgs.findMany({with: {users: {with: {org: true}}}})).
const drizzleMany = `select "orgs"."id", "orgs"."name", "orgs_users"."data" as "users" from "orgs" "orgs" left join lateral (select coalesce(json_agg(json_build_array("orgs_users"."id", "orgs_users"."org_id", "orgs_users"."email", "orgs_users"."phone", "orgs_users_org"."data") order by "orgs_users"."id"), '[]'::json) as "data" from "users" "orgs_users" left join lateral (select json_build_array("orgs_users_org"."id", "orgs_users_org"."name") as "data" from (select * from "orgs" "orgs_users_org" where "orgs_users_org"."id" = "orgs_users"."org_id" limit $1) "orgs_users_org") "orgs_users_org" on true where "orgs_users"."org_id" = "orgs"."id") "orgs_users" on true where "orgs"."id" = $2`

// TestJSONShapes: JSON built from encrypted columns is mapped, each value
// with its tenant in the same call, through subqueries, CTEs and LATERAL.
func TestJSONShapes(t *testing.T) {
	p := newTestPlanner(t)
	for _, c := range []struct{ sql, want string }{
		{drizzleMany, "out[2] agg([.,.,email@1,phone@1,.])"},
		{`SELECT json_build_array(id, org_id, email) FROM users`, "out[0] [.,.,email@1]"},
		{`SELECT jsonb_build_object('e', u.email, 'o', u.org_id, 'n', name) AS j FROM users u`, "out[0] {e:email@1,o:.,n:.}"},
		{`SELECT json_build_array(email, org_id, json_build_object('p', phone, 'org', org_id)) FROM users`, "out[0] [email@1,.,{p:phone@1,org:.}]"},
		{`SELECT json_agg(email) FROM contacts`, "out[0] agg(scalar(email))"},
		{`SELECT json_agg(json_build_array(email, note) ORDER BY id) FILTER (WHERE id > 1) FROM contacts`, "out[0] agg([email,.])"},
		{`WITH x AS (SELECT json_build_array(org_id, ssn) AS j FROM users) SELECT j FROM x`, "out[0] [.,ssn@0]"},
		{`SELECT x.* FROM (SELECT id, json_build_array(org_id, ssn) AS j FROM users) x`, "out[1] [.,ssn@0]"},
		{`SELECT COALESCE(json_agg(json_build_array(org_id, email)), '[]')::jsonb FROM users`, "out[0] agg([.,email@0])"},
		{`SELECT json_build_array(id, name) FROM users`, ""},
		{`SELECT json_build_array(id, email, u.phone) FROM users u`, "out[0] [.,email@3,phone@3,hidden]"},
		{`SELECT json_build_object('e', email) FROM users`, "out[0] {e:email@1,__pgveil_tenant_1:hidden}"},
		{`INSERT INTO users (org_id, email) VALUES (1, 'a@b.c') RETURNING json_build_array(org_id, email)`, "out[0] [.,email@0]"},
	} {
		plan, err := p.Plan(c.sql, publicPath)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		var got []string
		for i, o := range plan.Stmts[0].Outputs {
			if o.JSON != nil {
				got = append(got, fmt.Sprintf("out[%d] %s", i, shapeString(o.JSON)))
			}
		}
		if g := strings.Join(got, "; "); g != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.sql, g, c.want)
		}
	}
}

// TestJSONRefused: an encrypted column in JSON anywhere else, or a JSON
// value holding one used for anything but being returned, is refused.
func TestJSONRefused(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`SELECT json_build_array(x.email) FROM (SELECT email FROM users) x`,             // no tenant in scope
		`SELECT json_build_object('__pgveil_x', 1, 'o', org_id, 'e', email) FROM users`, // a reserved key
		`SELECT json_agg(email) FROM users`,                                             // one value per element: no tenant
		`SELECT json_build_array(org_id, lower(email)) FROM users`,                      // a function of it
		`SELECT to_json(email) FROM contacts`,                                           // not followed
		`SELECT row_to_json(u) FROM users u`,                                            // the whole row
		`SELECT json_build_object(name, email, 'o', org_id) FROM users`,                 // a key that is not a constant
		`SELECT json_build_object('e', email, 'e', phone, 'o', org_id) FROM users`,      // a key twice
		`SELECT json_build_object('e', email, 'o', org_id, 'o', id) FROM users`,         // the tenant's key twice
		`SELECT DISTINCT json_build_array(org_id, email)::jsonb FROM users`,
		`SELECT j FROM (SELECT json_build_array(org_id, email) AS j FROM users) x ORDER BY j`,
		`SELECT 1 FROM (SELECT json_build_array(org_id, email) AS j FROM users) x WHERE j::text LIKE '%a%'`,
		`SELECT json_build_array(org_id, email) FROM users UNION ALL SELECT json_build_array(org_id, email) FROM users`,
		`CREATE VIEW v AS SELECT json_build_array(org_id, email) FROM users`,
		`COPY (SELECT json_build_array(org_id, email) FROM users) TO STDOUT`,
		`SELECT json_agg(DISTINCT json_build_array(org_id, email)) FROM users`,
		`SELECT json_agg(json_build_array(org_id, email) ORDER BY email) FROM users`,
		`SELECT json_build_array(org_id, email) OVER () FROM users`,
		`SELECT json_build_array(VARIADIC ARRAY[email]) FROM contacts`,
	} {
		e := refusal(t, p, sql, publicPath)
		if e.SQLState() != "0A000" && e.SQLState() != "42601" {
			t.Errorf("%s: %v", sql, e)
		}
	}
}
