package rewrite

import (
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

// TestMigrationFallback: lookups on a table in migration mode also match
// rows whose blind index is still NULL, by their normalised plaintext.
func TestMigrationFallback(t *testing.T) {
	p := newTestPlanner(t)
	users := p.cfg.Table("public", "users")
	cases := []struct{ sql, want string }{
		{`SELECT id FROM users WHERE email = $1`,
			`SELECT id FROM users WHERE (email_bidx = $1 AND email_bidx IS NOT NULL OR (email_bidx IS NULL AND pg_catalog.btrim(pg_catalog.lower(email), E' \t\n\x0b\f\r') = $2))`},
		{`SELECT id FROM users u WHERE $1 = u."email" AND org_id = 7`,
			`SELECT id FROM users u WHERE ($1 = u."email_bidx" AND u."email_bidx" IS NOT NULL OR (u."email_bidx" IS NULL AND pg_catalog.btrim(pg_catalog.lower(u."email"), E' \t\n\x0b\f\r') = $2)) AND org_id = 7`},
		{`SELECT id FROM users WHERE email = 'A@B.c'`,
			`SELECT id FROM users WHERE (email_bidx = {index:email<-L0} AND email_bidx IS NOT NULL OR (email_bidx IS NULL AND pg_catalog.btrim(pg_catalog.lower(email), E' \t\n\x0b\f\r') = {plaintext:email<-L0}))`},
		{`SELECT id FROM users WHERE email IN ($1, 'x@y')`,
			`SELECT id FROM users WHERE (email_bidx IN ($1, {index:email<-L0}) AND email_bidx IS NOT NULL OR (email_bidx IS NULL AND pg_catalog.btrim(pg_catalog.lower(email), E' \t\n\x0b\f\r') IN ($2, {plaintext:email<-L0})))`},
		{`SELECT id FROM users WHERE email = ANY($1)`,
			`SELECT id FROM users WHERE (email_bidx = ANY($1) AND email_bidx IS NOT NULL OR (email_bidx IS NULL AND pg_catalog.btrim(pg_catalog.lower(email), E' \t\n\x0b\f\r') = ANY($2)))`},
		{`SELECT id FROM users WHERE ssn <> $1`,
			`SELECT id FROM users WHERE (ssn_bidx <> $1 AND ssn_bidx IS NOT NULL OR (ssn_bidx IS NULL AND ssn <> $2))`},
	}
	p.SetMigrating(map[*policy.Table]bool{users: true})
	for _, c := range cases {
		plan, err := p.Plan(c.sql, publicPath)
		if err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		got := dumpPlan(c.sql, plan)
		if !strings.Contains(got, "sql: "+c.want+"\n") {
			t.Fatalf("%s:\n%s\nwant sql: %s", c.sql, got, c.want)
		}
		st := plan.Stmts[0]
		seen := false
		for _, pr := range st.Params {
			if pr.Action == Plaintext || pr.Action == PlaintextEach {
				seen = true
			}
		}
		for _, s := range st.Slots {
			if s.Action == Plaintext {
				seen = true
			}
		}
		if !seen {
			t.Fatalf("%s: no plaintext slot or parameter", c.sql)
		}
	}
	// Out of migration mode the same text plans without the fallback
	// (SetMigrating drops the cached plans).
	p.SetMigrating(nil)
	plan, err := p.Plan(cases[0].sql, publicPath)
	if err != nil || strings.Contains(dumpPlan(cases[0].sql, plan), "IS NULL") {
		t.Fatalf("after migration: %v\n%s", err, dumpPlan(cases[0].sql, plan))
	}
}
