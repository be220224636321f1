package rewrite

import (
	"strings"
	"testing"
)

// Review 21h: a * over a JOIN … USING of the tenant column shows the
// column once, with the origin of one side (the left's in an inner or
// LEFT join, the right's in a RIGHT one, none in a FULL one): the other
// side's values found no tenant by origin and, since the lead's 21st
// session (no known tenant, no open), read NULL or PV001. pgveil adds the
// table's own tenant column.
func TestReview21hStarOverUsingTenant(t *testing.T) {
	p := review21dPlanner(t, 20)
	for _, c := range [][2]string{
		{`SELECT * FROM orgs JOIN users USING (org_id)`, `SELECT *, users.org_id AS "pgveil tenant 15" FROM orgs JOIN users USING (org_id)`},
		{`SELECT * FROM orgs RIGHT JOIN users USING (org_id) WHERE id = 1`, `SELECT *, users.org_id AS "pgveil tenant 15" FROM orgs RIGHT JOIN users USING (org_id) WHERE id = 1`},
		// No name reaches the side's own column, or nothing may be
		// added: by origin, as before (not refused).
		{`SELECT * FROM (orgs JOIN users USING (org_id)) j`, `SELECT * FROM (orgs JOIN users USING (org_id)) j`},
		// Not merged: unchanged.
		{`SELECT * FROM orgs JOIN users ON orgs.org_id = users.org_id`, `SELECT * FROM orgs JOIN users ON orgs.org_id = users.org_id`},
		{`SELECT * FROM orgs JOIN users USING (name)`, `SELECT * FROM orgs JOIN users USING (name)`},
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
		if strings.Contains(c[1], ", users.org_id") && (!st.OutputsByOrigin || len(st.Outputs) != 1 || !st.Outputs[0].Hidden) {
			t.Errorf("%s: outputs %+v by origin %v", c[0], st.Outputs, st.OutputsByOrigin)
		}
	}
}

// TestReview21hTableUnionBranch: a TABLE t branch of a UNION ALL over a
// table with a date or float tenant was refused (no select list to add
// the send field to), as a TABLE t statement was before review 21d. It is
// written as SELECT *, the send field, like the statement. Holds as it
// was: TABLE in INSERT, CREATE TABLE AS, EXPLAIN, EXISTS and the other
// shapes below.
func TestReview21hTableUnionBranch(t *testing.T) {
	p := review21dPlanner(t, 1082)
	const s = `SELECT *, pg_catalog.date_send(users.org_id) FROM users`
	for _, c := range [][2]string{
		{`TABLE users UNION ALL TABLE users`, s + ` UNION ALL ` + s},
		{`(TABLE users) UNION ALL (TABLE users ORDER BY id LIMIT 1)`, `(` + s + `) UNION ALL (` + s + ` ORDER BY id LIMIT 1)`},
		{`TABLE users UNION ALL SELECT * FROM users`, s + ` UNION ALL ` + s},
		{`TABLE ONLY users UNION ALL TABLE users`, `SELECT *, pg_catalog.date_send(users.org_id) FROM ONLY users UNION ALL ` + s},
		{`WITH c AS (SELECT 1) TABLE users`, `WITH c AS (SELECT 1) ` + s},
		{`TABLE users FOR UPDATE`, s + ` FOR UPDATE`},
		{`((TABLE users))`, `((` + s + `))`},
		{`TABLE/**/users`, `SELECT *, pg_catalog.date_send(users.org_id) FROM/**/users`},
		{`EXPLAIN ANALYZE TABLE users`, `EXPLAIN ANALYZE TABLE users`},
		{`SELECT * FROM users WHERE EXISTS (TABLE users)`, s + ` WHERE EXISTS (TABLE users)`},
		{`DECLARE c CURSOR FOR (TABLE users)`, `DECLARE c CURSOR FOR (` + s + `)`},
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
	for _, q := range []string{`INSERT INTO users TABLE users`, `CREATE TABLE x AS TABLE users`, `VALUES (1) UNION TABLE users`} {
		if _, err := p.Plan(q, publicPath); err == nil {
			t.Errorf("%s: accepted", q)
		}
	}
}
