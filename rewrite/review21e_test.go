package rewrite

import (
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

// TestReview21eDoUpdateSetFills: an INSERT … ON CONFLICT … DO UPDATE whose
// SET writes a column with a unique blind index that the INSERT's own
// column list does not name gets the fill (run after the statement), for
// a parameter, a literal and a CASE (HIGH before: no fill, the update set
// a row's email to a value a legacy row holds). A complete table: none.
func TestReview21eDoUpdateSetFills(t *testing.T) {
	p := newTestPlanner(t)
	users := p.cfg.Table("public", "users")
	sqls := []string{
		`INSERT INTO users (id, org_id, phone) VALUES ($1, 1, $2) ON CONFLICT (id) DO UPDATE SET email = $3`,
		`INSERT INTO users (id, org_id) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET email = 'lit@x.io'`,
		`INSERT INTO users (id, org_id) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET email = CASE WHEN users.id = 1 THEN $2 ELSE users.email END`,
	}
	p.SetMigrating(map[*policy.Table]bool{users: true})
	for _, sql := range sqls {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		got := dumpPlan(sql, plan)
		if !strings.Contains(got, "sql: WITH pgveil_unique AS (UPDATE public.users SET email_bidx = ") ||
			strings.Contains(got, "FROM pgveil_unique) pgveil_unique)") { // after the statement: nothing reads it
			t.Errorf("%s: want the fill, run after the statement:\n%s", sql, got)
		}
	}
	// A DO UPDATE that writes no such column: none.
	phone := `INSERT INTO users (id, org_id, phone) VALUES ($1, 1, $2) ON CONFLICT (id) DO UPDATE SET phone = EXCLUDED.phone`
	plan, err := p.Plan(phone, publicPath)
	if err != nil || strings.Contains(dumpPlan(phone, plan), "pgveil_unique") {
		t.Errorf("DO UPDATE of phone only: %v\n%s", err, dumpPlan(phone, plan))
	}
	p.SetMigrating(nil)
	for _, sql := range sqls {
		plan, err := p.Plan(sql, publicPath)
		if err != nil || strings.Contains(dumpPlan(sql, plan), "pgveil_unique") {
			t.Errorf("complete: %s: %v\n%s", sql, err, dumpPlan(sql, plan))
		}
	}
}

// TestReview21eTrimSet: normalisation trim strips in SQL the ASCII white
// space Go's unicode.IsSpace strips from the value (btrim's default strips
// spaces only: a legacy "a@x.io\r" was neither looked up nor checked for
// uniqueness, HIGH), in lookups and in the fill alike, in policy order.
func TestReview21eTrimSet(t *testing.T) {
	if got, want := normalizeSQL("email", []policy.Normalization{policy.NormTrim, policy.NormLowercase}), `pg_catalog.lower(pg_catalog.btrim(email, E' \t\n\x0b\f\r'))`; got != want {
		t.Errorf("[trim, lowercase]: %s, want %s", got, want)
	}
	if got, want := normalizeSQL("email", []policy.Normalization{policy.NormLowercase, policy.NormTrim}), `pg_catalog.btrim(pg_catalog.lower(email), E' \t\n\x0b\f\r')`; got != want {
		t.Errorf("[lowercase, trim]: %s, want %s", got, want)
	}
	p := newTestPlanner(t)
	users := p.cfg.Table("public", "users")
	p.SetMigrating(map[*policy.Table]bool{users: true})
	for _, sql := range []string{
		`INSERT INTO users (org_id, email) VALUES ($1, $2)`,
		`UPDATE users SET email = $1 WHERE org_id = $2`,
		`SELECT id FROM users WHERE email = $1 AND org_id = $2`,
	} {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		got := dumpPlan(sql, plan)
		if strings.Contains(got, "pg_catalog.btrim(pg_catalog.lower(email))") || !strings.Contains(got, `pg_catalog.btrim(pg_catalog.lower(email), E' \t\n\x0b\f\r')`) {
			t.Errorf("%s: want btrim with the white-space set:\n%s", sql, got)
		}
	}
}
