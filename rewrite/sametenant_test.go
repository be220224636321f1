package rewrite

import (
	"strings"
	"testing"
)

// TestSameTenantUpsert: a multi-row INSERT … ON CONFLICT DO UPDATE SET
// col = $n (Knex's merge({col: v})) seals $n once, under the first row's
// tenant, and lists every row's tenant for the proxy to compare.
func TestSameTenantUpsert(t *testing.T) {
	p := newTestPlanner(t)
	for _, c := range []struct{ sql, want string }{
		{`INSERT INTO users (org_id, email) VALUES ($1, $2), ($3, $4) ON CONFLICT (email) DO UPDATE SET phone = $5`, "$1 $3"},
		{`INSERT INTO users (org_id, email) VALUES ($1, $2), ($1, $3), ($4, $5) ON CONFLICT (email) DO UPDATE SET phone = $6`, "$1 $4"},
		{`INSERT INTO users (org_id, email) VALUES (7, 'a'), (8, 'b') ON CONFLICT (email) DO UPDATE SET phone = 'p'`, "L0 L2"},
		{`INSERT INTO users (org_id, email) VALUES ($1, $2), ($3, $4) ON CONFLICT (email) DO UPDATE SET phone = EXCLUDED.phone`, ""},
		{`INSERT INTO users (org_id, email) VALUES ($1, $2), ($3, $4) ON CONFLICT (email) DO UPDATE SET name = $5`, ""},
		{`INSERT INTO users (org_id, email) VALUES ($1, $2) ON CONFLICT (email) DO UPDATE SET phone = $3`, ""},
	} {
		plan, err := p.Plan(c.sql, publicPath)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		var got []string
		for _, set := range plan.Stmts[0].SameTenant {
			if set.Table.Name != "users" {
				t.Errorf("%s: set of %s", c.sql, set.Table.QualifiedName())
			}
			for _, r := range set.Refs {
				got = append(got, strings.TrimPrefix(refString(" ", r), " "))
			}
		}
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("%s: SameTenant %q, want %q", c.sql, g, c.want)
		}
	}
	for _, sql := range []string{
		// A literal value under parameter tenants: sealed at Parse, before they are bound.
		`INSERT INTO users (org_id, email) VALUES ($1, $2), ($3, $4) ON CONFLICT (email) DO UPDATE SET phone = 'p'`,
		// A row whose tenant is not a value.
		`INSERT INTO users (org_id, email) VALUES ($1, $2), (DEFAULT, $3) ON CONFLICT (email) DO UPDATE SET phone = $4`,
		`INSERT INTO users (org_id, email) VALUES ($1, $2), (NULL, $3) ON CONFLICT (email) DO UPDATE SET phone = $4`,
	} {
		if e := refusal(t, p, sql, publicPath); e.SQLState() != "0A000" {
			t.Errorf("%s: %v", sql, e)
		}
	}
}
