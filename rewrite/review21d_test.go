package rewrite

import (
	"strings"
	"testing"
)

// Review 21d: probes of the send-form tenant reads (review 21a).

// review21dPlanner plans against testCatalog with users.org_id of type
// oid and a table orgs (org_id of the same type, name) that joins users
// USING (org_id).
func review21dPlanner(t *testing.T, oid uint32) *Planner {
	t.Helper()
	p := NewPlanner(testConfig(t), 128)
	c := testCatalog()
	for i, col := range c.Tables["public.users"].Columns {
		if col.Name == "org_id" {
			c.Tables["public.users"].Columns[i].TypeOID = oid
		}
	}
	o := catalogTable("public", "orgs", 16999, "org_id", "name")
	o.Columns[0].TypeOID = oid
	c.Tables["public.orgs"] = o
	p.SetCatalog(c)
	return p
}

// TestReview21dTableStatement: TABLE users (psql users, some tools) was
// accepted with a date or float tenant before review 21a and refused
// after it (no select list to add the send field to; the message ended
// in "a query with "). It is now written as SELECT *, the send field.
// An integer tenant's TABLE is unchanged.
func TestReview21dTableStatement(t *testing.T) {
	p := review21dPlanner(t, 1082)
	for _, c := range [][2]string{
		{`TABLE users`, `SELECT *, pg_catalog.date_send(users.org_id) FROM users`},
		{`TABLE users ORDER BY id LIMIT 2`, `SELECT *, pg_catalog.date_send(users.org_id) FROM users ORDER BY id LIMIT 2`},
		{`TABLE ONLY users`, `SELECT *, pg_catalog.date_send(users.org_id) FROM ONLY users`},
		{`TABLE ONLY (users)`, `SELECT *, pg_catalog.date_send(users.org_id) FROM ONLY (users)`},
		{`/* c */ table public."users"`, `/* c */ SELECT *, pg_catalog.date_send(users.org_id) FROM public."users"`},
		{`DECLARE c CURSOR WITH HOLD FOR TABLE users`, `DECLARE c CURSOR WITH HOLD FOR SELECT *, pg_catalog.date_send(users.org_id) FROM users`},
		{`COPY (TABLE users) TO STDOUT`, `COPY (SELECT *, pg_catalog.date_send(users.org_id) FROM users) TO STDOUT`},
		{`SELECT * FROM (TABLE users) s`, `SELECT *, pg_catalog.date_send(s.org_id) FROM (TABLE users) s`},
		{`TABLE contacts`, `TABLE contacts`},
	} {
		plan, err := p.Plan(c[0], publicPath)
		if err != nil {
			t.Errorf("%s: %v", c[0], err)
			continue
		}
		got, _ := renderMarked(c[0], plan)
		if got != c[1] {
			t.Errorf("%s\n got: %s\nwant: %s", c[0], got, c[1])
		}
		st := plan.Stmts[0]
		outs := st.Outputs
		if st.Cursor != nil {
			outs = st.Cursor.Outputs
		}
		if strings.Contains(c[1], "date_send") && st.Copy == nil {
			// 13 columns of users, then the hidden send field every
			// encrypted column's tenant points to.
			if len(outs) != 14 || outs[13].SendOf == nil || !outs[13].Hidden || outs[2].Tenant != 13 {
				t.Errorf("%s: outputs %+v", c[0], outs)
			}
		}
	}
	pi := review21dPlanner(t, 20)
	plan, err := pi.Plan(`TABLE users`, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := renderMarked(`TABLE users`, plan); got != `TABLE users` {
		t.Errorf("bigint TABLE users: %s", got)
	}
}

// TestReview21dCopyToOnly: COPY t TO reads t's own rows only, never its
// inheritance children's; the SELECT pgveil writes it as (for the send
// field, and before for a tenant not listed) read the children's rows
// too. A partitioned table (COPY t TO is refused by PostgreSQL, its rows
// all in partitions) is still read whole.
func TestReview21dCopyToOnly(t *testing.T) {
	for _, oid := range []uint32{1082, 20} {
		p := review21dPlanner(t, oid)
		send := "org_id"
		if oid == 1082 {
			send = "pg_catalog.date_send(org_id)"
		}
		for _, c := range [][2]string{
			{`COPY users (phone) TO STDOUT`, `COPY (SELECT phone, ` + send + ` FROM ONLY users) TO STDOUT`},
			{`COPY public.users (id, phone) TO STDOUT (FORMAT binary)`, `COPY (SELECT id, phone, ` + send + ` FROM ONLY public.users) TO STDOUT (FORMAT binary)`},
		} {
			plan, err := p.Plan(c[0], publicPath)
			if err != nil {
				t.Fatalf("%s: %v", c[0], err)
			}
			if got, _ := renderMarked(c[0], plan); got != c[1] {
				t.Errorf("%d %s\n got: %s\nwant: %s", oid, c[0], got, c[1])
			}
		}
	}
	p := review21dPlanner(t, 1082)
	sql := `COPY users TO STDOUT`
	plan, err := p.Plan(sql, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := renderMarked(sql, plan); !strings.HasSuffix(got, `, pg_catalog.date_send(org_id) FROM ONLY users) TO STDOUT`) {
		t.Errorf("%s: %s", sql, got)
	}
	// A partitioned users: the SELECT reads its partitions.
	c := testCatalog()
	for i, col := range c.Tables["public.users"].Columns {
		if col.Name == "org_id" {
			c.Tables["public.users"].Columns[i].TypeOID = 1082
		}
	}
	c.Tables["public.users"].Partitioned = true
	pp := NewPlanner(testConfig(t), 128)
	pp.SetCatalog(c)
	plan, err = pp.Plan(`COPY users (phone) TO STDOUT`, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := renderMarked(`COPY users (phone) TO STDOUT`, plan); got != `COPY (SELECT phone, pg_catalog.date_send(org_id) FROM users) TO STDOUT` {
		t.Errorf("partitioned: %s", got)
	}
}

// TestReview21dMergedUsingColumn: where pgveil cannot name the tenant's
// relation (a JOIN alias), review 21a read the send form of the client's
// own reference to the tenant column. Under a JOIN … USING of that
// column the reference is the merged value: a RIGHT JOIN's is the other
// side's. For a float tenant, 0 = -0 joins rows of two tenants, and a
// value of tenant 0 moved into a row of tenant -0 opened under the
// other side's 0. Such references are refused for float tenants; a date
// tenant (equal dates have one send form) and a USING of another column
// are accepted as before.
func TestReview21dMergedUsingColumn(t *testing.T) {
	refused := []string{
		`SELECT j.phone, j.org_id FROM (users u RIGHT JOIN orgs o USING (org_id)) j`,
		`SELECT j.phone, org_id FROM (users u RIGHT JOIN orgs o USING (org_id)) j`,
		`SELECT j.phone, j.org_id FROM (users u FULL JOIN orgs o USING (org_id)) j`,
		`SELECT json_build_object('p', j.phone, 'o', j.org_id) FROM (users u RIGHT JOIN orgs o USING (org_id)) j`,
		`SELECT phone, org_id FROM users WHERE false UNION ALL SELECT j.phone, j.org_id FROM (users u RIGHT JOIN orgs o USING (org_id)) j`,
		`COPY (SELECT j.phone, j.org_id FROM (users u RIGHT JOIN orgs o USING (org_id)) j) TO STDOUT`,
		// The merged value as a subquery's or CTE's tenant column (a bare
		// name is the merged one too; this was so before review 21a).
		`SELECT phone, org_id FROM (SELECT j.phone, j.org_id FROM (users u RIGHT JOIN orgs o USING (org_id)) j) s`,
		`SELECT phone, org_id FROM (SELECT u.phone, org_id FROM users u RIGHT JOIN orgs o USING (org_id)) s`,
		`WITH s AS (SELECT u.phone, org_id FROM users u RIGHT JOIN orgs o USING (org_id)) SELECT phone FROM s`,
	}
	pf := review21dPlanner(t, 701)
	for _, sql := range refused {
		if plan, err := pf.Plan(sql, publicPath); err == nil {
			got, _ := renderMarked(sql, plan)
			t.Errorf("float8 %s: planned as %s; want refused", sql, got)
		}
	}
	for _, c := range [][2]string{
		// The relation named: its own column, not the merged one.
		{`SELECT phone, org_id FROM users u RIGHT JOIN orgs o USING (org_id)`,
			`SELECT phone, org_id, pg_catalog.float8send(u.org_id) FROM users u RIGHT JOIN orgs o USING (org_id)`},
		{`SELECT phone FROM (SELECT u.phone, u.org_id FROM users u RIGHT JOIN orgs o USING (org_id)) s`,
			`SELECT phone, pg_catalog.float8send(s.org_id) FROM (SELECT u.phone, u.org_id FROM users u RIGHT JOIN orgs o USING (org_id)) s`},
		// USING another column: the reference is the column itself.
		{`SELECT j.phone, j.org_id FROM (users u JOIN contacts c USING (id)) j`,
			`SELECT j.phone, j.org_id, pg_catalog.float8send(j.org_id) FROM (users u JOIN contacts c USING (id)) j`},
	} {
		plan, err := pf.Plan(c[0], publicPath)
		if err != nil {
			t.Errorf("float8 %s: %v", c[0], err)
			continue
		}
		if got, _ := renderMarked(c[0], plan); got != c[1] {
			t.Errorf("float8 %s\n got: %s\nwant: %s", c[0], got, c[1])
		}
	}
	pd := review21dPlanner(t, 1082)
	pi := review21dPlanner(t, 20)
	for _, sql := range refused {
		if _, err := pi.Plan(sql, publicPath); err != nil {
			t.Errorf("bigint %s: %v; want planned", sql, err)
		}
		if _, err := pd.Plan(sql, publicPath); err != nil {
			t.Errorf("date %s: %v; want planned (equal dates have one send form)", sql, err)
		}
	}
}

// TestReview21dShapes (holds): the send field is the last field whatever
// the query's shape: ORDER BY and GROUP BY positions, window functions,
// DISTINCT ON, set-returning functions, LATERAL, a self-join (one send
// field per side), a column the client names like pgveil's or that is
// itself a send form, RETURNING of INSERT … ON CONFLICT; the shapes
// refused before (DISTINCT, GROUP BY of the encrypted column, UNION,
// INTERSECT, EXCEPT, CREATE TABLE AS, INSERT … SELECT) are refused still.
func TestReview21dShapes(t *testing.T) {
	p := review21dPlanner(t, 1082)
	for _, c := range []struct {
		sql, want string
		sends     int
	}{
		{`SELECT phone, org_id FROM users ORDER BY 2 LIMIT 1 OFFSET 1`, `SELECT phone, org_id, S(users.org_id) FROM users ORDER BY 2 LIMIT 1 OFFSET 1`, 1},
		{`SELECT id, org_id, phone FROM users GROUP BY 1`, `SELECT id, org_id, phone, S(users.org_id) FROM users GROUP BY 1`, 1},
		{`SELECT phone, row_number() OVER (PARTITION BY org_id ORDER BY id) FROM users`, `SELECT phone, row_number() OVER (PARTITION BY org_id ORDER BY id), S(users.org_id) FROM users`, 1},
		{`SELECT DISTINCT ON (org_id) phone, org_id FROM users ORDER BY org_id`, `SELECT DISTINCT ON (org_id) phone, org_id, S(users.org_id) FROM users ORDER BY org_id`, 1},
		{`SELECT phone, org_id, generate_series(1, 2) FROM users`, `SELECT phone, org_id, generate_series(1, 2), S(users.org_id) FROM users`, 1},
		{`SELECT u.id, x.phone FROM users u, LATERAL (SELECT phone, org_id FROM users v WHERE v.id = u.id) x`,
			`SELECT u.id, x.phone, S(x.org_id) FROM users u, LATERAL (SELECT phone, org_id FROM users v WHERE v.id = u.id) x`, 1},
		{`SELECT a.phone, b.phone, a.org_id FROM users a, users b`, `SELECT a.phone, b.phone, a.org_id, S(a.org_id), S(b.org_id) FROM users a, users b`, 2},
		{`SELECT phone AS "__pgveil_tenant_1", pg_catalog.date_send(org_id) AS org_id FROM users`,
			`SELECT phone AS "__pgveil_tenant_1", pg_catalog.date_send(org_id) AS org_id, S(users.org_id) FROM users`, 1},
		{`WITH s AS (SELECT phone, org_id FROM users) SELECT phone FROM s`, `WITH s AS (SELECT phone, org_id FROM users) SELECT phone, S(s.org_id) FROM s`, 1},
		{`INSERT INTO users (id, org_id, phone) VALUES (1, '2024-01-01', 'x') ON CONFLICT (id) DO UPDATE SET phone = EXCLUDED.phone RETURNING phone`,
			`INSERT INTO users (id, org_id, phone) VALUES (1, '2024-01-01', {encrypt:phone}) ON CONFLICT (id) DO UPDATE SET phone = EXCLUDED.phone WHERE users.org_id = EXCLUDED.org_id RETURNING phone, S(users.org_id)`, 1},
	} {
		plan, err := p.Plan(c.sql, publicPath)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		got, _ := renderMarked(c.sql, plan)
		if want := strings.ReplaceAll(c.want, "S(", "pg_catalog.date_send("); got != want {
			t.Errorf("%s\n got: %s\nwant: %s", c.sql, got, want)
		}
		st := plan.Stmts[0]
		n, first := 0, -1
		for i, o := range st.Outputs {
			if o.SendOf != nil {
				n++
				if first < 0 {
					first = i
				}
			}
			if o.Column != nil && (o.Tenant < 0 || st.Outputs[o.Tenant].SendOf == nil) {
				t.Errorf("%s: output %d's tenant is not a send field", c.sql, i)
			}
		}
		if n != c.sends || first != len(st.Outputs)-n {
			t.Errorf("%s: %d send fields from %d of %d; want %d, last", c.sql, n, first, len(st.Outputs), c.sends)
		}
	}
	for _, sql := range []string{
		`SELECT DISTINCT phone, org_id FROM users`,
		`SELECT phone, org_id FROM users GROUP BY phone, org_id`,
		`SELECT phone, org_id FROM users UNION SELECT phone, org_id FROM users`,
		`SELECT phone, org_id FROM users INTERSECT SELECT phone, org_id FROM users`,
		`SELECT phone, org_id FROM users EXCEPT SELECT phone, org_id FROM users`,
		`CREATE TABLE x AS SELECT phone, org_id FROM users`,
		`SELECT phone, org_id INTO x FROM users`,
		`INSERT INTO users (id, org_id, phone) SELECT id, org_id, phone FROM users`,
		`SELECT phone FROM users GROUP BY id`,
	} {
		if _, err := p.Plan(sql, publicPath); err == nil {
			t.Errorf("%s: planned; want refused", sql)
		}
	}
}

// TestReview21dTableShapeCache (holds): a TABLE statement planned from
// the shape of another text (its literals differ) keeps the rewrite.
func TestReview21dTableShapeCache(t *testing.T) {
	p := review21dPlanner(t, 1082)
	for _, n := range []string{"5", "7", "11"} {
		sql := `TABLE users ORDER BY id LIMIT ` + n
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := mustRender(t, sql, plan), `SELECT *, pg_catalog.date_send(users.org_id) FROM users ORDER BY id LIMIT `+n; got != want {
			t.Errorf("%s: %s", sql, got)
		}
	}
	if p.Stats().ShapeHits == 0 {
		t.Error("no shape hit: the texts were each planned, the shape path is not exercised")
	}
}

func mustRender(t *testing.T, sql string, plan *Plan) string {
	t.Helper()
	got, err := renderMarked(sql, plan)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
