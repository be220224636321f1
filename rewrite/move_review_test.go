package rewrite

// Review of tenant moves (commit adddcda, tenantMove / conflictTenant).
// TestMoveReviewFound* FAIL on this revision; TestMoveReviewHolds* pass.
// A statement that sets users.org_id (key_context) and keeps encrypted
// values must be refused (0A000) or carry the move check and its guard.

import (
	"errors"
	"strings"
	"testing"
)

func moveReviewPlan(t *testing.T, sql string) (*Plan, *Error) {
	t.Helper()
	p := NewPlanner(testConfig(t), 16)
	p.SetCatalog(testCatalog())
	plan, err := p.Plan(sql, publicPath)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%s: error %T %v", sql, err, err)
		}
		return nil, e
	}
	return plan, nil
}

// wantRefused: the statement is refused with code.
func wantRefused(t *testing.T, sql, code string) {
	t.Helper()
	plan, e := moveReviewPlan(t, sql)
	switch {
	case e == nil:
		t.Errorf("%s\n  planned, want refusal %s:\n%s", sql, code, dumpPlan(sql, plan))
	case e.Code != code:
		t.Errorf("%s\n  refused %s (%s), want %s", sql, e.Code, e.Message, code)
	}
}

// wantGuarded: planned with a move check whose guard contains guard.
func wantGuarded(t *testing.T, sql, guard string) {
	t.Helper()
	plan, e := moveReviewPlan(t, sql)
	if e != nil {
		t.Errorf("%s\n  refused %s: %s", sql, e.Code, e.Message)
		return
	}
	got, err := renderMarked(sql, plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Stmts) != 1 || plan.Stmts[0].Lookup == nil || plan.Stmts[0].Lookup.Move == nil || !strings.Contains(got, guard) {
		t.Errorf("%s\n  want a move check and the guard %q:\n%s", sql, guard, dumpPlan(sql, plan))
	}
}

// TestMoveReviewFoundCTEResealLeak: analyzer.resealed is per statement,
// so encrypted columns written by a data-modifying CTE (NULLs, in an
// UPDATE matching no row, need no tenant) count as written anew by the
// UPDATE that sets org_id: tenantMove sees nothing kept and adds neither
// check nor guard. The move inside WITH must be refused, as "WITH x AS
// (SELECT 1) UPDATE users SET org_id = 2 WHERE id = 1" is.
func TestMoveReviewFoundCTEResealLeak(t *testing.T) {
	const nulls = `UPDATE users SET email = NULL, phone = NULL, ssn = NULL, birth_date = NULL, api_token = NULL WHERE false RETURNING id`
	for _, sql := range []string{
		`WITH w AS (` + nulls + `) UPDATE users SET org_id = $1 WHERE id = $2`,
		`WITH w AS (` + nulls + `), m AS (UPDATE users SET org_id = $1 WHERE id = $2 RETURNING id) SELECT count(*) FROM m`,
		`WITH w AS (UPDATE users SET email = $1, phone = $2, ssn = $3, birth_date = $4, api_token = $5 WHERE id = 1 AND org_id = 3 RETURNING id) UPDATE users SET org_id = 7 WHERE id = 2`,
		`WITH x AS (INSERT INTO users (id, org_id, name) VALUES (1, 3, 'n') ON CONFLICT (id) DO UPDATE SET email = $1, phone = $2, ssn = $3, birth_date = $4, api_token = $5 RETURNING 1) UPDATE users SET org_id = 9 WHERE id = 2`,
	} {
		wantRefused(t, sql, CodeFeatureNotSupported)
	}
}

// TestMoveReviewFoundMerge: merge() refuses MERGE only when it names an
// encrypted or blind-index column; SET org_id (the key_context) passes,
// and the server moves the row with its values.
func TestMoveReviewFoundMerge(t *testing.T) {
	wantRefused(t, `MERGE INTO users u USING (SELECT 2 AS id) s ON u.id = s.id WHEN MATCHED THEN UPDATE SET org_id = 7`, CodeFeatureNotSupported)
	wantRefused(t, `MERGE INTO users u USING orgs o ON u.org_id = o.id WHEN MATCHED THEN UPDATE SET org_id = o.id + 1`, CodeFeatureNotSupported)
}

// TestMoveReviewFoundCodeBody: the textual check of DO blocks and
// function bodies (body) looks for encrypted and blind-index columns and
// INSERT/COPY/MERGE, not for the key_context: an UPDATE that sets org_id
// passes. (CREATE FUNCTION … BEGIN ATOMIC with the same UPDATE is parsed
// and refused, "using column org_id".)
func TestMoveReviewFoundCodeBody(t *testing.T) {
	wantRefused(t, `DO $$ BEGIN UPDATE users SET org_id = 7 WHERE id = 2; END $$`, CodeFeatureNotSupported)
	wantRefused(t, `CREATE FUNCTION mv(i int8) RETURNS void LANGUAGE plpgsql AS $$ BEGIN UPDATE users SET org_id = 7 WHERE id = i; END $$`, CodeFeatureNotSupported)
	wantRefused(t, `CREATE FUNCTION mv() RETURNS void LANGUAGE sql BEGIN ATOMIC UPDATE users SET org_id = 7 WHERE id = 2; END`, CodeFeatureNotSupported) // holds
}

// TestMoveReviewFoundPrepareInternalError: inside SQL-level PREPARE the
// statement's parameters are not counted (maxParam 0), Lookup.Uses is
// empty and tenantMove's lk.Uses[v.param-1] panics: XX000 "internal
// error" instead of the 0A000 the same PREPARE gets with a literal.
func TestMoveReviewFoundPrepareInternalError(t *testing.T) {
	wantRefused(t, `PREPARE p AS UPDATE users SET org_id = 7 WHERE id = 2`, CodeFeatureNotSupported) // holds
	wantRefused(t, `PREPARE p(int8) AS UPDATE users SET org_id = $1 WHERE id = 2`, CodeFeatureNotSupported)
}

// TestMoveReviewHoldsSpellings: spellings of a move that are refused or
// checked and guarded.
func TestMoveReviewHoldsSpellings(t *testing.T) {
	all := "users.email IS NULL AND users.phone IS NULL AND users.ssn IS NULL AND users.birth_date IS NULL AND users.api_token IS NULL"
	wantGuarded(t, `UPDATE users SET org_id = $1 WHERE id = $2`, "WHERE (id = $2) AND (users.org_id = $1 OR ("+all+"))")
	wantGuarded(t, `UPDATE "users" SET "org_id" = $1 WHERE "users"."id" = $2`, `users.org_id = $1 OR (`)
	wantGuarded(t, `UPDATE users AS u SET org_id = $1 WHERE u.id = $2 RETURNING u.email`, `AND (u.org_id = $1 OR (u.email IS NULL`)
	wantGuarded(t, `UPDATE ONLY users SET org_id = $1`, ` WHERE (users.org_id = $1 OR (`)
	wantGuarded(t, `UPDATE users SET org_id = 7.6::int8 WHERE id = 2`, `users.org_id = 7.6::int8 OR`)
	wantGuarded(t, `UPDATE users SET org_id = - 7 WHERE id = 2`, `users.org_id = - 7 OR`)
	wantGuarded(t, `UPDATE users SET org_id = $1 WHERE id = $2 -- trailing`, `(users.org_id = $1 OR`)
	wantGuarded(t, `UPDATE users SET org_id = $1, email = CASE WHEN id = $2 THEN $3 ELSE users.email END WHERE id = $2`, `(users.org_id = $1 OR (`+all+`))`)
	wantGuarded(t, `UPDATE users SET org_id = $1, email = COALESCE($2, email), phone = $3, ssn = $4, birth_date = $5, api_token = $6 WHERE id = $7`, `(users.org_id = $1 OR (users.email IS NULL))`)
	for _, sql := range []string{
		`UPDATE users SET (org_id, name) = ($1, $2) WHERE id = $3`,
		`UPDATE users SET (name, org_id) = (SELECT 'x', 7) WHERE id = 1`,
		`UPDATE users SET org_id = DEFAULT WHERE id = 1`,
		`UPDATE users SET org_id = NULL WHERE id = 1`,
		`UPDATE users SET org_id = COALESCE($1, org_id) WHERE id = $2`,
		`UPDATE users SET org_id = CASE WHEN id = 1 THEN 7 ELSE org_id END`,
		`UPDATE users SET org_id = (SELECT 7) WHERE id = 1`,
		`UPDATE users SET org_id = $1 FROM orgs WHERE orgs.id = users.org_id`,
		`UPDATE users SET org_id = 7 WHERE CURRENT OF c`,
		`EXPLAIN ANALYZE UPDATE users SET org_id = 7 WHERE id = 2`,
		`COPY (UPDATE users SET org_id = 7 WHERE id = 2 RETURNING id) TO STDOUT`,
		`WITH b AS (UPDATE users SET org_id = 7 WHERE id = 2 RETURNING id) SELECT * FROM b`,
		`WITH b AS (UPDATE users SET org_id = 7 WHERE id = 2 RETURNING id) DELETE FROM orgs WHERE id IN (SELECT id FROM b)`,
		`INSERT INTO users (id, org_id, name) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET org_id = users.org_id + 1`,
		`INSERT INTO users (id, org_id, name) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET (org_id, name) = (EXCLUDED.org_id, EXCLUDED.name)`,
		`MERGE INTO users u USING (SELECT 1 AS id) s ON u.id = s.id WHEN MATCHED THEN UPDATE SET email = NULL`,
	} {
		wantRefused(t, sql, CodeFeatureNotSupported)
	}
	// ON CONFLICT: EXCLUDED's tenant only, guarded.
	sql := `INSERT INTO users AS u (id, org_id, name) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET org_id = EXCLUDED.org_id WHERE u.name = 'x'`
	plan, e := moveReviewPlan(t, sql)
	if e != nil {
		t.Fatalf("%s: %v", sql, e)
	}
	if got, _ := renderMarked(sql, plan); !strings.HasSuffix(got, "WHERE (u.name = 'x') AND u.org_id = EXCLUDED.org_id") {
		t.Errorf("upsert setting EXCLUDED.org_id: %s", got)
	}
	// Every encrypted column written anew (CASE without ELSE, COALESCE of
	// new values, NULL, DEFAULT): no check needed.
	sql = `UPDATE users SET org_id = $1, email = CASE WHEN id = $2 THEN $3 END, phone = COALESCE($4, NULL), ssn = DEFAULT, birth_date = NULL, api_token = $5 WHERE id = $2`
	if plan, e = moveReviewPlan(t, sql); e != nil || plan.Stmts[0].Lookup != nil {
		t.Errorf("a move writing every encrypted column: %v / %+v", e, plan)
	}
}
