package rewrite

import (
	"strings"
	"testing"
)

// Review 21a: a key_context column of type date, timestamp, timestamptz,
// float4 or float8 (or a domain over one) is read through its send
// function, a hidden bytea field pgveil adds even when the query returns
// the column itself; other tenant types are unchanged.

// review21aPlanner plans against testCatalog with users.org_id of type
// oid (base: a domain's base type, 0 if none).
func review21aPlanner(t *testing.T, oid, base uint32) *Planner {
	t.Helper()
	p := NewPlanner(testConfig(t), 128)
	c := testCatalog()
	for i, col := range c.Tables["public.users"].Columns {
		if col.Name == "org_id" {
			c.Tables["public.users"].Columns[i].TypeOID = oid
			c.Tables["public.users"].Columns[i].BaseOID = base
		}
	}
	p.SetCatalog(c)
	return p
}

func TestReview21aTenantSend(t *testing.T) {
	for _, c := range []struct {
		oid, base uint32
		want      string
	}{
		{1082, 0, "pg_catalog.date_send"}, {1114, 0, "pg_catalog.timestamp_send"}, {1184, 0, "pg_catalog.timestamptz_send"},
		{700, 0, "pg_catalog.float4send"}, {701, 0, "pg_catalog.float8send"}, {90001, 1082, "pg_catalog.date_send"},
		{90002, 1114, "pg_catalog.timestamp_send"}, {20, 0, ""}, {25, 0, ""}, {2950, 0, ""}, {1700, 0, ""}, {90003, 1700, ""},
	} {
		if got := TenantSend(c.oid, c.base); got != c.want {
			t.Errorf("TenantSend(%d, %d) = %q, want %q", c.oid, c.base, got, c.want)
		}
	}
}

// TestReview21aSendField: the rendered text and the Outputs of reads of
// a date (and domain over date, float8) tenant.
func TestReview21aSendField(t *testing.T) {
	for _, typ := range []struct {
		oid, base uint32
		send      string
	}{{1082, 0, "pg_catalog.date_send"}, {90001, 1082, "pg_catalog.date_send"}, {701, 0, "pg_catalog.float8send"}} {
		p := review21aPlanner(t, typ.oid, typ.base)
		for _, c := range []struct {
			sql, want string
			hidden    int // hidden send fields
		}{
			{`SELECT phone FROM users`, `SELECT phone, S(users.org_id) FROM users`, 1},
			{`SELECT org_id, phone FROM users`, `SELECT org_id, phone, S(users.org_id) FROM users`, 1},
			{`SELECT phone, email, org_id FROM users u`, `SELECT phone, email, org_id, S(u.org_id) FROM users u`, 1},
			{`SELECT * FROM users`, `SELECT *, S(users.org_id) FROM users`, 1},
			{`SELECT DISTINCT ON (id) id, org_id, phone FROM users ORDER BY id`, `SELECT DISTINCT ON (id) id, org_id, phone, S(users.org_id) FROM users ORDER BY id`, 1},
			{`SELECT id, org_id, phone FROM users GROUP BY id`, `SELECT id, org_id, phone, S(users.org_id) FROM users GROUP BY id`, 1},
			{`SELECT org_id, phone FROM users WHERE id = 1 UNION ALL SELECT org_id, phone FROM users u WHERE id = 2`,
				`SELECT org_id, phone, S(users.org_id) FROM users WHERE id = 1 UNION ALL SELECT org_id, phone, S(u.org_id) FROM users u WHERE id = 2`, 1},
			{`DELETE FROM users WHERE id = 1 RETURNING phone`, `DELETE FROM users WHERE id = 1 RETURNING phone, S(users.org_id)`, 1},
		} {
			plan, err := p.Plan(c.sql, publicPath)
			if err != nil {
				t.Errorf("%d %s: %v", typ.oid, c.sql, err)
				continue
			}
			got, rerr := renderMarked(c.sql, plan)
			if rerr != nil {
				t.Fatal(rerr)
			}
			want := strings.ReplaceAll(c.want, "S(", typ.send+"(")
			if got != want {
				t.Errorf("%d %s\n got: %s\nwant: %s", typ.oid, c.sql, got, want)
			}
			st := plan.Stmts[0]
			n := 0
			for i, o := range st.Outputs {
				if o.SendOf != nil {
					n++
					if !o.Hidden || o.SendOf.Name != "users" {
						t.Errorf("%s: output %d: %+v", c.sql, i, o)
					}
				}
				if o.Column != nil && (o.Tenant < 0 || st.Outputs[o.Tenant].SendOf == nil) && !st.OutputsByOrigin {
					t.Errorf("%s: output %d's tenant %d is not the send field", c.sql, i, o.Tenant)
				}
			}
			if n != c.hidden {
				t.Errorf("%s: %d send fields, want %d", c.sql, n, c.hidden)
			}
		}
		// Still refused: the tenant not returned where a field cannot be added.
		for _, sql := range []string{
			`SELECT DISTINCT phone FROM users`,
			`SELECT phone FROM users GROUP BY phone`,
			`SELECT phone FROM users WHERE id = 1 UNION ALL SELECT phone FROM users`,
		} {
			if _, err := p.Plan(sql, publicPath); err == nil {
				t.Errorf("%d %s: planned, want refused", typ.oid, sql)
			}
		}
		// The UPDATE's tenant lookup reads the send form.
		plan, err := p.Plan(`UPDATE users SET phone = 'x' WHERE id = 1`, publicPath)
		if err != nil {
			t.Fatal(err)
		}
		lk := plan.Stmts[0].Lookup
		if lk == nil || lk.Send != typ.send || !strings.HasPrefix(lk.Text(`UPDATE users SET phone = 'x' WHERE id = 1`), "SELECT DISTINCT "+typ.send+`(users.org_id) FROM users`) {
			t.Errorf("%d lookup: %+v", typ.oid, lk)
		}
		// COPY TO: the send form as the hidden last field, even when listed.
		for _, c := range []struct{ sql, want string }{
			{`COPY users (id, org_id, phone) TO STDOUT`, `COPY (SELECT id, org_id, phone, S(org_id) FROM ONLY users) TO STDOUT`},
			{`COPY users (id, phone) TO STDOUT (FORMAT binary)`, `COPY (SELECT id, phone, S(org_id) FROM ONLY users) TO STDOUT (FORMAT binary)`},
		} {
			plan, err := p.Plan(c.sql, publicPath)
			if err != nil {
				t.Fatalf("%s: %v", c.sql, err)
			}
			got, _ := renderMarked(c.sql, plan)
			if want := strings.ReplaceAll(c.want, "S(", typ.send+"("); got != want {
				t.Errorf("%s\n got: %s\nwant: %s", c.sql, got, want)
			}
			cp := plan.Stmts[0].Copy
			last := cp.Fields[len(cp.Fields)-1]
			if !last.Hidden || !last.Send {
				t.Errorf("%s: last field %+v", c.sql, last)
			}
		}
		// JSON: a hidden member of the send form, beside the column too.
		sql := `SELECT json_build_object('p', phone, 'o', org_id) FROM users`
		plan, err = p.Plan(sql, publicPath)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := renderMarked(sql, plan)
		if want := `SELECT json_build_object('p', phone, 'o', org_id, '__pgveil_tenant_2', ` + typ.send + `(users.org_id)) FROM users`; got != want {
			t.Errorf("%s\n got: %s\nwant: %s", sql, got, want)
		}
		sh := plan.Stmts[0].Outputs[0].JSON
		if sh == nil || sh.Elems[0].Tenant != 2 || !sh.Elems[2].Send || !sh.Elems[2].Hidden {
			t.Errorf("%s: shape %+v", sql, sh)
		}
	}
}

// TestReview21aOtherTenantsUnchanged: an integer or text tenant is read
// as before (no send field).
func TestReview21aOtherTenantsUnchanged(t *testing.T) {
	for _, oid := range []uint32{20, 25} {
		p := review21aPlanner(t, oid, 0)
		for _, c := range [][2]string{
			{`SELECT org_id, phone FROM users`, `SELECT org_id, phone FROM users`},
			{`SELECT phone FROM users`, `SELECT phone, users.org_id FROM users`},
		} {
			plan, err := p.Plan(c[0], publicPath)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := renderMarked(c[0], plan); got != c[1] {
				t.Errorf("%d %s: %s, want %s", oid, c[0], got, c[1])
			}
		}
	}
}

// TestReview21aByOrigin: a * over a relation the catalog does not list
// maps fields by origin; the send field is a hidden output naming its
// table.
func TestReview21aByOrigin(t *testing.T) {
	p := review21aPlanner(t, 1082, 0)
	sql := `SELECT * FROM unlisted o, users u`
	plan, err := p.Plan(sql, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	st := plan.Stmts[0]
	got, _ := renderMarked(sql, plan)
	if !st.OutputsByOrigin || len(st.Outputs) != 1 || st.Outputs[0].SendOf == nil || !st.Outputs[0].Hidden ||
		got != `SELECT *, pg_catalog.date_send(u.org_id) FROM unlisted o, users u` {
		t.Errorf("%s: %s by origin %v, outputs %+v", sql, got, st.OutputsByOrigin, st.Outputs)
	}
}

// TestReview21aJoinAlias: where a JOIN alias hides the table (pgveil
// cannot name it), a query that returns the tenant itself is still
// accepted, as for other tenant types: the send form reads the client's
// own reference; one that does not return it is refused as before.
func TestReview21aJoinAlias(t *testing.T) {
	p := review21aPlanner(t, 1082, 0)
	for _, c := range [][2]string{
		{`SELECT org_id, phone FROM (users JOIN contacts USING (id)) j`,
			`SELECT org_id, phone, pg_catalog.date_send(org_id) FROM (users JOIN contacts USING (id)) j`},
		{`SELECT org_id, phone FROM (users u JOIN contacts c USING (id)) j UNION ALL SELECT org_id, phone FROM users`,
			`SELECT org_id, phone, pg_catalog.date_send(org_id) FROM (users u JOIN contacts c USING (id)) j UNION ALL SELECT org_id, phone, pg_catalog.date_send(users.org_id) FROM users`},
		{`SELECT json_build_object('p', phone, 'o', org_id) FROM (users JOIN contacts USING (id)) j`,
			`SELECT json_build_object('p', phone, 'o', org_id, '__pgveil_tenant_2', pg_catalog.date_send(org_id)) FROM (users JOIN contacts USING (id)) j`},
	} {
		plan, err := p.Plan(c[0], publicPath)
		if err != nil {
			t.Errorf("%s: %v", c[0], err)
			continue
		}
		if got, _ := renderMarked(c[0], plan); got != c[1] {
			t.Errorf("%s\n got: %s\nwant: %s", c[0], got, c[1])
		}
	}
	if _, err := p.Plan(`SELECT phone FROM (users JOIN contacts USING (id)) j`, publicPath); err == nil {
		t.Error("the tenant not returned under a JOIN alias: planned, want refused")
	}
}
