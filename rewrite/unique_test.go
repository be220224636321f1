package rewrite

import (
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

// TestUniqueWhileMigrating (review 21b): an INSERT … VALUES writing a
// column whose blind index is unique, into a table in migration mode,
// fills the blind index of legacy rows holding an equal value first, in
// the same statement; the forms pgveil cannot make exact are refused; a
// complete table, and a non-unique index, plan as before.
func TestUniqueWhileMigrating(t *testing.T) {
	p := newTestPlanner(t)
	users := p.cfg.Table("public", "users")
	contacts := p.cfg.Table("public", "contacts")
	sealed := sealedSQL(`email`, policy.OIDText)
	cte := func(whens, ins string) string {
		return `WITH pgveil_unique AS (UPDATE public.users SET email_bidx = COALESCE(email_bidx, CASE WHEN NOT ` + sealed +
			` THEN CASE pg_catalog.btrim(pg_catalog.lower(email), E' \t\n\x0b\f\r')` + whens + ` END END) WHERE (email_bidx IS NULL AND NOT ` + sealed +
			` AND pg_catalog.btrim(pg_catalog.lower(email), E' \t\n\x0b\f\r') IN (` + ins + `)) RETURNING 1) `
	}
	wrap := func(v string) string {
		return `(SELECT ` + v + `::bytea FROM (SELECT count(*) FROM pgveil_unique) pgveil_unique)`
	}
	cases := []struct{ sql, want string }{
		{`INSERT INTO users (org_id, email) VALUES ($1, $2)`,
			cte(` WHEN $4 THEN $3::bytea`, `$4`) + `INSERT INTO users (org_id, email, email_bidx) VALUES ($1, $2, ` + wrap(`$3`) + `)`},
		{`INSERT INTO users (org_id, email) VALUES (1, 'A@x.io') ON CONFLICT (email) DO NOTHING RETURNING id`,
			cte(` WHEN {plaintext:email<-L1} THEN {index:email<-L1}::bytea`, `{plaintext:email<-L1}`) +
				`INSERT INTO users (org_id, email, email_bidx) VALUES (1, {encrypt:email<-L1 tenant=L0}, ` + wrap(`{index:email<-L1}`) + `) ON CONFLICT (email_bidx) DO NOTHING RETURNING id`},
		{`INSERT INTO users (org_id, email) VALUES ($1, $2), ($1, NULL), ($1, $3)`,
			cte(` WHEN $6 THEN $4::bytea WHEN $7 THEN $5::bytea`, `$6, $7`) + `INSERT INTO users (org_id, email, email_bidx) VALUES ($1, $2, ` + wrap(`$4`) + `), ($1, NULL, NULL), ($1, $3, ` + wrap(`$5`) + `)`},
		{`WITH x AS (SELECT 1) INSERT INTO users (org_id, email) VALUES ($1, $2)`,
			`WITH ` + strings.TrimPrefix(strings.TrimSuffix(cte(` WHEN $4 THEN $3::bytea`, `$4`), ") ")+"), ", "WITH ") + `x AS (SELECT 1) INSERT INTO users (org_id, email, email_bidx) VALUES ($1, $2, ` + wrap(`$3`) + `)`},
		// The client writes the blind index beside its column (a record
		// written back): pgveil's index takes its place, read from the CTE.
		{`INSERT INTO users (org_id, email, email_bidx) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			cte(` WHEN $5 THEN $4::bytea`, `$5`) + `INSERT INTO users (org_id, email, email_bidx) VALUES ($1, $2, ` + wrap(`$4`) + `) ON CONFLICT DO NOTHING`},
		// DO UPDATE and UPDATE: the CTE runs after the statement (nothing
		// reads it), so the statement's own rows are written first.
		{`INSERT INTO users (org_id, email) VALUES ($1, $2) ON CONFLICT (email) DO UPDATE SET phone = EXCLUDED.phone`,
			cte(` WHEN $4 THEN $3::bytea`, `$4`) + `INSERT INTO users (org_id, email, email_bidx) VALUES ($1, $2, $3) ON CONFLICT (email_bidx) DO UPDATE SET phone = EXCLUDED.phone WHERE users.org_id = EXCLUDED.org_id`},
		{`UPDATE users SET email = $1 WHERE org_id = $2 AND id = $3`,
			cte(` WHEN $5 THEN $4::bytea`, `$5`) + `UPDATE users SET email = $1, email_bidx = $4 WHERE org_id = $2 AND id = $3`},
		{`UPDATE users SET email = CASE WHEN id = $1 THEN $2 ELSE $3 END WHERE org_id = $4`,
			cte(` WHEN $7 THEN $5::bytea WHEN $8 THEN $6::bytea`, `$7, $8`) + `UPDATE users SET email = CASE WHEN id = $1 THEN $2 ELSE $3 END::text, email_bidx = CASE WHEN id = $1 THEN $5 ELSE $6 END WHERE org_id = $4`},
		// A non-unique index: as before.
		{`INSERT INTO users (org_id, ssn) VALUES ($1, $2)`,
			`INSERT INTO users (org_id, ssn, ssn_bidx) VALUES ($1, $2, $3)`},
	}
	p.SetMigrating(map[*policy.Table]bool{users: true, contacts: true})
	for _, c := range cases {
		plan, err := p.Plan(c.sql, publicPath)
		if err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		if got := dumpPlan(c.sql, plan); !strings.Contains(got, "sql: "+c.want+"\n") {
			t.Fatalf("%s:\n%s\nwant sql: %s", c.sql, got, c.want)
		}
	}
	// contacts.email's index is not unique.
	plan, err := p.Plan(`INSERT INTO contacts (email) VALUES ($1)`, publicPath)
	if err != nil || strings.Contains(dumpPlan("", plan), "pgveil_unique") {
		t.Fatalf("non-unique index: %v\n%s", err, dumpPlan("", plan))
	}
	for _, sql := range []string{
		`EXPLAIN ANALYZE INSERT INTO users (org_id, email) VALUES ($1, $2)`,
		`PREPARE p AS UPDATE users SET email = $1 WHERE org_id = $2`,
		`COPY users (org_id, email) FROM STDIN`,
		`WITH x AS (INSERT INTO users (org_id, email) VALUES ($1, $2) RETURNING id) SELECT id FROM x`,
	} {
		_, err := p.Plan(sql, publicPath)
		if err == nil || !strings.Contains(err.Error(), "migration mode") || !strings.Contains(err.Error(), "public.users.email") {
			t.Fatalf("%s: got %v, want a refusal naming public.users.email and migration mode", sql, err)
		}
	}
	// Complete: the plain path, unchanged.
	p.SetMigrating(nil)
	for _, sql := range []string{cases[0].sql, `INSERT INTO users (org_id, email) VALUES ($1, $2) ON CONFLICT (email) DO UPDATE SET phone = EXCLUDED.phone`} {
		plan, err := p.Plan(sql, publicPath)
		if err != nil || strings.Contains(dumpPlan(sql, plan), "pgveil_unique") {
			t.Fatalf("complete: %v\n%s", err, dumpPlan(sql, plan))
		}
	}
}

// TestUniqueFillShape: a text of the same shape with other literals gets,
// from the shape cache, the plan a fresh planner makes: the fill's
// plaintext and index slots follow the new literals.
func TestUniqueFillShape(t *testing.T) {
	for _, sql := range []string{
		`INSERT INTO users (org_id, email) VALUES (1, 'a@x.io') ON CONFLICT DO NOTHING`,
		`INSERT INTO users (org_id, email, phone) VALUES (1, 'a@x.io', 'p'), (2, 'b@y.io', 'q')`,
		`UPDATE users SET email = 'a@x.io' WHERE org_id = 1 AND id = 2`,
	} {
		t2, ok := mutateLiterals(sql)
		if !ok {
			t.Fatal(sql)
		}
		mk := func() *Planner {
			p := NewPlanner(testConfig(t), 16)
			p.SetCatalog(testCatalog())
			p.SetMigrating(map[*policy.Table]bool{p.cfg.Table("public", "users"): true})
			return p
		}
		warm, fresh := mk(), mk()
		if _, err := warm.Plan(sql, publicPath); err != nil {
			t.Fatal(err)
		}
		before := warm.Stats().ShapeHits
		got, err1 := warm.Plan(t2, publicPath)
		want, err2 := fresh.Plan(t2, publicPath)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v, %v", t2, err1, err2)
		}
		if warm.Stats().ShapeHits == before {
			t.Errorf("%s: not planned from its shape", t2)
		}
		gr, e1 := renderMarked(t2, got)
		wr, e2 := renderMarked(t2, want)
		if e1 != nil || e2 != nil || gr != wr || !strings.Contains(gr, "pgveil_unique") {
			t.Errorf("%s: rendered\nshape: %s (%v)\nfresh: %s (%v)", t2, gr, e1, wr, e2)
		}
		if g, w := dumpPlan(t2, got), dumpPlan(t2, want); g != w {
			t.Errorf("%s:\nshape plan\n%s\nfresh plan\n%s", t2, g, w)
		}
	}
}
