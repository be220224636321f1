package rewrite

import (
	"strings"
	"testing"
)

// sqlaSentinel is SQLAlchemy 2.0's insertmanyvalues INSERT with a sentinel
// (psycopg2: values interpolated as literals).
const sqlaSentinel = `INSERT INTO users (org_id, email, phone, name) SELECT p0::INTEGER, p1::VARCHAR, p2::VARCHAR, p3::VARCHAR ` +
	`FROM (VALUES (7, 'a@x.org', '555', 'Ann', 0), (8, 'b@x.org', NULL, 'Bob', 1)) AS imp_sen(p0, p1, p2, p3, sen_counter) ` +
	`ORDER BY sen_counter RETURNING users.id, users.id AS id__1`

// TestInsertManyValuesSentinel: each value is sealed where it stands in
// its VALUES row, under the tenant of its row; the index is added beside
// it, named in the alias and selected into the index column; the casts of
// encrypted items name the physical type.
func TestInsertManyValuesSentinel(t *testing.T) {
	p := newTestPlanner(t)
	plan, err := p.Plan(sqlaSentinel, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := renderMarked(sqlaSentinel, plan)
	if err != nil {
		t.Fatal(err)
	}
	want := `INSERT INTO users (org_id, email, email_bidx, phone, name) SELECT p0::INTEGER, p1::text, pgveil_i1_0::bytea, p2::text, p3::VARCHAR ` +
		`FROM (VALUES (7, {encrypt:email}, {index:email}, {encrypt:phone}, 'Ann', 0), (8, {encrypt:email}, {index:email}, NULL, 'Bob', 1)) AS imp_sen(p0, p1, pgveil_i1_0, p2, p3, sen_counter) ` +
		`ORDER BY sen_counter RETURNING users.id, users.id AS id__1`
	if got != want {
		t.Fatalf("rendered:\n%s\nwant:\n%s", got, want)
	}
	st := plan.Stmts[0]
	lit := func(i int) string { return sqlaSentinel[st.Literals[i].Start:st.Literals[i].End] }
	var tenants []string
	for _, s := range st.Slots {
		if s.Tenant.Kind == RefLiteral {
			tenants = append(tenants, s.Column.Name+"@"+lit(s.Tenant.Literal))
		}
	}
	if strings.Join(tenants, " ") != "email@7 phone@7 email@8" {
		t.Errorf("slots sealed under %v", tenants)
	}
}

// TestInsertManyValuesSentinelParams: the same with parameters (psycopg 3,
// asyncpg, whose rows carry casts of their own).
func TestInsertManyValuesSentinelParams(t *testing.T) {
	p := newTestPlanner(t)
	sql := `INSERT INTO contacts (email, score, user_id) SELECT p0::VARCHAR, p1::INTEGER, p2::BIGINT ` +
		`FROM (VALUES ($1::VARCHAR, $2::INTEGER, $3::BIGINT, 0), ($4::VARCHAR, $5::INTEGER, $6::BIGINT, 1)) AS imp_sen(p0, p1, p2, sen_counter) ` +
		`ORDER BY sen_counter RETURNING contacts.id, contacts.id AS id__1`
	plan, err := p.Plan(sql, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	st := plan.Stmts[0]
	want := `INSERT INTO contacts (email, email_bidx, score, user_id) SELECT p0::text, pgveil_i0_0::bytea, p1::text, p2::BIGINT ` +
		`FROM (VALUES ($1, $7, $2, $3::BIGINT, 0), ($4, $8, $5, $6::BIGINT, 1)) AS imp_sen(p0, pgveil_i0_0, p1, p2, sen_counter) ` +
		`ORDER BY sen_counter RETURNING contacts.id, contacts.id AS id__1`
	if got := strings.Join(st.Text, "{}"); got != want {
		t.Fatalf("rewritten:\n%s\nwant:\n%s", got, want)
	}
	var acts []string
	for _, pa := range st.Params {
		acts = append(acts, pa.Action.String())
	}
	if got := strings.Join(acts, " "); got != "encrypt encrypt pass encrypt encrypt pass index index" {
		t.Errorf("params %s", got)
	}
}

// TestInsertManyValuesRefused: other INSERT … SELECT shapes stay refused,
// and the checks of a VALUES row still apply.
func TestInsertManyValuesRefused(t *testing.T) {
	p := newTestPlanner(t)
	from := ` FROM (VALUES (7, 'a@x.org', 0)) AS imp_sen(p0, p1, sen_counter)`
	for _, c := range []struct{ sql, want string }{
		{`INSERT INTO users (org_id, email) SELECT p0, lower(p1)` + from, "INSERT … SELECT"},
		{`INSERT INTO users (org_id, email) SELECT p0, p1` + from + ` WHERE p0 > 1`, "INSERT … SELECT"},
		{`INSERT INTO users (org_id, email) SELECT p0, p1` + from + ` ORDER BY p1`, "ORDER BY"},
		{`INSERT INTO users (org_id, email) SELECT p0, p0` + from, "INSERT … SELECT"},
		{`INSERT INTO users (org_id, email) SELECT p0, p1::INTEGER` + from, "does not fit"},
		{`INSERT INTO billing.accounts (tenant_id, balance) SELECT p0, p1::NUMERIC(5,2) FROM (VALUES (1, $1, 0)) AS imp_sen(p0, p1, sen_counter)`, "cast to numeric"},
		{`INSERT INTO users (email) SELECT p1 FROM (VALUES ('a@x.org', 0)) AS imp_sen(p1, sen_counter)`, "tenant"},
		{`INSERT INTO users (org_id, email) SELECT p0, p1 FROM (VALUES (7, 'a@x.org', 0)) AS imp_sen(p0, p1)`, "INSERT … SELECT"},
		{`INSERT INTO users (org_id, email) SELECT p0, p1 FROM (VALUES (7, (SELECT email FROM contacts LIMIT 1), 0)) AS imp_sen(p0, p1, sen_counter)`, ""},
		{`INSERT INTO users (org_id, email, email_bidx) SELECT p0, p1, p2 FROM (VALUES (7, 'a@x.org', '\x00', 0)) AS imp_sen(p0, p1, p2, sen_counter)`, "blind index"},
	} {
		_, err := p.Plan(c.sql, publicPath)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\n  planned: %v; want a refusal with %q", c.sql, err, c.want)
		}
	}
}
