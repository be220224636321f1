package rewrite

import (
	"strings"
	"testing"
)

// Review 21j: a tenant field pgveil adds under a name another output
// already has (the merged column of a * over a JOIN … USING, o.org beside
// a.secret, a self-join's two tenants) made ORDER BY org and DISTINCT ON
// (org) ambiguous: PostgreSQL refused a statement it runs for the client
// ("ORDER BY "org_id" is ambiguous"). Such a field gets a name of its own;
// one no other output shares keeps the column's name (unchanged).
func TestReview21jAddedTenantNamedApart(t *testing.T) {
	p := review21dPlanner(t, 20)
	for _, c := range [][2]string{
		{`SELECT * FROM (SELECT * FROM orgs) o FULL JOIN users USING (org_id) ORDER BY org_id`, `SELECT *, users.org_id AS "pgveil tenant 15" FROM (SELECT * FROM orgs) o FULL JOIN users USING (org_id) ORDER BY org_id`},
		{`SELECT u.email, o.org_id FROM users u JOIN orgs o ON o.org_id = u.org_id ORDER BY org_id`, `SELECT u.email, o.org_id, u.org_id AS "pgveil tenant 2" FROM users u JOIN orgs o ON o.org_id = u.org_id ORDER BY org_id`},
		{`SELECT email FROM users ORDER BY org_id`, `SELECT email, users.org_id FROM users ORDER BY org_id`},
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
}

// Review 21j: a self-join under a * over a JOIN … USING is refused (fail
// closed), and the refusal names the USING join, not a relation outside
// the catalog.
func TestReview21jSelfJoinUsingRefusal(t *testing.T) {
	p := review21dPlanner(t, 20)
	for _, q := range []string{
		`SELECT * FROM users x JOIN users y USING (org_id)`,
		`SELECT * FROM users x JOIN users y USING (id)`,
	} {
		_, err := p.Plan(q, publicPath)
		if err == nil || !strings.Contains(err.Error(), "JOIN … USING") || strings.Contains(err.Error(), "catalog does not list") {
			t.Errorf("%s: %v", q, err)
		}
	}
}
