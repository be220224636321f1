package rewrite

// Review of the fixes 75b8b26 (CASE/COALESCE: endAfter, noCalls, lastSub,
// tokenBefore, pinned names and blind-index renamings repeated in the
// copy) and d22ddd4 (tenant moves: resealed per UPDATE, MERGE, views
// reading the key_context, function/DO bodies, SQL PREPARE).
//
// Tests that FAIL on lead at the time of the review (defects):
//   TestFixReviewFoundVolatileWithoutCall  HIGH: a condition that is
//                                          volatile without calling a
//                                          function (TABLESAMPLE in a
//                                          subquery) passes noCalls; the
//                                          blind index's copy evaluates
//                                          it again (end to end:
//                                          TestEncFixReviewFoundTablesample).
//   TestFixReviewFoundTenantViewPathUnknown HIGH: with the search_path
//                                          unknown (after DDL in a
//                                          transaction, RESET search_path)
//                                          an unqualified view name
//                                          resolves to no schema and
//                                          tenantView lets the UPDATE/MERGE
//                                          through (resolveRelation looks
//                                          Guarded views up by name then;
//                                          TenantViews are not).
//   TestFixReviewFoundBodyFalsePositive    MEDIUM: body() refuses any
//                                          function or DO body whose text
//                                          contains "users" anywhere (a
//                                          substring: users_count,
//                                          superusers), the word org_id
//                                          and the word update (an UPDATE
//                                          of another table, TG_OP =
//                                          'UPDATE', FOR UPDATE): the
//                                          counter-cache trigger of a
//                                          multi-tenant app is refused.
//   TestFixReviewFoundForeignKeyDDL        LOW: ALTER TABLE … ADD FOREIGN
//                                          KEY (org_id) … ON UPDATE CASCADE
//                                          passes through pgveil, though
//                                          check reports it and rules,
//                                          functions and DO that move rows
//                                          are refused.
// The other tests hold.

import (
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

// TestFixReviewFoundVolatileWithoutCall (DEFECT, HIGH): noCalls looks for
// FuncCall nodes only. A TABLESAMPLE (BERNOULLI or SYSTEM, without
// REPEATABLE) draws a new seed at every scan: the CASE and its blind-index
// copy are two subplans that sample independently, so the row gets the
// value of one branch and the index of the other (end to end:
// TestEncFixReviewFoundTablesample). Expected: refused like random().
func TestFixReviewFoundVolatileWithoutCall(t *testing.T) {
	runCaseChecks(t, fixturePlanner, publicPath, []caseCheck{
		{name: "TABLESAMPLE BERNOULLI, correlated", sql: "UPDATE contacts SET email = CASE WHEN EXISTS (SELECT 1 FROM users u TABLESAMPLE BERNOULLI (50) WHERE u.id = contacts.user_id) THEN 'x' ELSE email END",
			mirror: emailMirror, refuseOK: true, once: []string{"tablesample"}},
		{name: "TABLESAMPLE SYSTEM", sql: "UPDATE contacts SET email = CASE WHEN EXISTS (SELECT 1 FROM users u TABLESAMPLE SYSTEM (50)) THEN $1 ELSE email END WHERE id = $2",
			mirror: emailMirror, refuseOK: true, once: []string{"tablesample"}},
		{name: "TABLESAMPLE, users", sql: "UPDATE users SET email = CASE WHEN id IN (SELECT id FROM contacts TABLESAMPLE BERNOULLI (10)) THEN $1 ELSE email END WHERE org_id = $2",
			mirror: emailMirror, refuseOK: true, once: []string{"tablesample"}},
	})
}

// TestFixReviewNoCallsHolds: what noCalls refuses and lets through as it
// should (holds). Stable forms that are no FuncCall (CURRENT_TIMESTAMP,
// GREATEST, IS DISTINCT FROM, casts, OPERATOR(pg_catalog.=)) plan; every
// function call refuses, also inside subqueries, ORDER BY and FROM.
func TestFixReviewNoCallsHolds(t *testing.T) {
	runCaseChecks(t, fixturePlanner, publicPath, []caseCheck{
		{name: "CURRENT_TIMESTAMP", sql: "UPDATE contacts SET email = CASE WHEN CURRENT_TIMESTAMP > '2020-01-01' THEN 'x' ELSE email END", mirror: emailMirror},
		{name: "IS DISTINCT FROM", sql: "UPDATE contacts SET email = CASE WHEN note IS DISTINCT FROM 'a' THEN 'x' ELSE email END", mirror: emailMirror},
		{name: "GREATEST", sql: "UPDATE contacts SET email = CASE WHEN GREATEST(id, 2) = 2 THEN 'x' ELSE email END", mirror: emailMirror},
		{name: "OPERATOR()", sql: "UPDATE contacts SET email = CASE WHEN id OPERATOR(pg_catalog.=) 1 THEN 'x' ELSE email END", mirror: emailMirror},
		{name: "cast", sql: "UPDATE contacts SET email = CASE WHEN note::int4 = 3 THEN 'x' ELSE email END", mirror: emailMirror},
		{name: "COALESCE in a condition", sql: "UPDATE contacts SET email = CASE WHEN COALESCE(note, '') = '' THEN 'x' ELSE email END", mirror: emailMirror},
	})
	runCaseChecks(t, fixturePlanner, publicPath, []caseCheck{
		{name: "random in ORDER BY", sql: "UPDATE contacts SET email = CASE WHEN id = (SELECT id FROM contacts ORDER BY random() LIMIT 1) THEN 'x' ELSE email END", code: "0A000"},
		{name: "function in FROM", sql: "UPDATE contacts SET email = CASE WHEN id IN (SELECT g FROM generate_series(1, 3) g) THEN 'x' ELSE email END", code: "0A000"},
		{name: "random in GREATEST", sql: "UPDATE contacts SET email = CASE WHEN GREATEST(random(), 0.5) > 0.7 THEN 'x' ELSE email END", code: "0A000"},
		{name: "TABLESAMPLE REPEATABLE(random())", sql: "UPDATE contacts SET email = CASE WHEN EXISTS (SELECT 1 FROM users TABLESAMPLE BERNOULLI (50) REPEATABLE (random())) THEN 'x' ELSE email END", code: "0A000"},
		{name: "simple CASE argument", sql: "UPDATE contacts SET email = CASE (SELECT count(*) FROM users) WHEN 0 THEN 'x' ELSE email END", code: "0A000"},
	})
	// The refusal points at the call and names the column.
	_, err := newTestPlanner(t).Plan("UPDATE contacts SET email = CASE WHEN id = 1 AND now() > '2020-01-01' THEN 'x' ELSE email END", publicPath)
	e, ok := err.(*Error)
	if !ok || e.Code != CodeFeatureNotSupported || !strings.Contains(e.Message, "calls a function") || !strings.Contains(e.Message, "public.contacts.email") {
		t.Fatalf("refusal: %v", err)
	}
}

// TestFixReviewEndAfterHolds: the CASE's END found from its last result,
// for spellings around the last result (holds).
func TestFixReviewEndAfterHolds(t *testing.T) {
	runCaseChecks(t, fixturePlanner, publicPath, []caseCheck{
		{name: "parenthesised literal last", sql: "UPDATE contacts SET email = CASE WHEN id = 1 THEN ( ( 'S3c-1' ) ) END", mirror: emailMirror, secrets: []string{"S3c-1"}},
		{name: "comment after the last result", sql: "UPDATE contacts SET email = CASE WHEN id = 1 THEN 'S3c-1' /* END ) */ END WHERE id = 1", mirror: emailMirror, secrets: []string{"S3c-1"}},
		{name: "line comment after the last result", sql: "UPDATE contacts SET email = CASE WHEN id = 1 THEN $1 -- END )\n END, note = 'n'", mirror: emailMirror},
		{name: "double cast last", sql: "UPDATE contacts SET email = CASE WHEN id = 1 THEN 'S3c-1'::text::varchar END", mirror: emailMirror, secrets: []string{"S3c-1"}},
		{name: "multi-word type last", sql: "UPDATE contacts SET email = CASE WHEN id = 1 THEN 'S3c-1'::character varying(10) END", mirror: emailMirror, secrets: []string{"S3c-1"}},
		{name: "dollar-quoted END last", sql: "UPDATE contacts SET email = CASE WHEN id = 1 THEN $$S3c END$$ END", mirror: emailMirror, secrets: []string{"S3c END"}},
		{name: "UESCAPE last", sql: "UPDATE contacts SET email = CASE WHEN id = 1 THEN U&'S3c!0021' UESCAPE '!' END", mirror: emailMirror, secrets: []string{"S3c!0021"}},
		{name: "self last, three-part", sql: "UPDATE contacts SET email = CASE WHEN id = 1 THEN 'S3c-1' ELSE public.contacts.email END", mirror: emailMirror, secrets: []string{"S3c-1"}},
		{name: "self last, comment in parentheses", sql: "UPDATE contacts SET email = CASE WHEN id = 1 THEN 'S3c-1' ELSE ( email /* ) END */ ) END", mirror: emailMirror, secrets: []string{"S3c-1"}},
		{name: "NULL results only", sql: "UPDATE contacts SET email = CASE WHEN id = 1 THEN NULL ELSE NULL::text END, score = 1", mirror: emailMirror},
		{name: "signed number last", sql: "UPDATE contacts SET score = CASE WHEN id = 1 THEN - 5 ELSE (-6) END, email = CASE id WHEN 1 THEN 'S3c-1' END", mirror: emailMirror, secrets: []string{"S3c-1"}},
		{name: "quoted end label after", sql: `UPDATE contacts SET email = CASE WHEN id = 1 THEN 'S3c-1' ELSE email END WHERE id = (SELECT 1 AS "end")`, mirror: emailMirror, secrets: []string{"S3c-1"}},
		{name: "COALESCE spaced and commented", sql: "UPDATE contacts SET email = COALESCE /* ( */ ( $1 , ( email ) ) WHERE id = 2", mirror: emailMirror},
		{name: "COALESCE of NULLs", sql: "UPDATE contacts SET email = COALESCE(NULL, NULL)", mirror: emailMirror},
	})
	runCaseChecks(t, fixturePlanner, publicPath, []caseCheck{
		{name: "subquery result", sql: "UPDATE contacts SET email = CASE WHEN id = 1 THEN (SELECT 'S3c-1') END", code: "0A000", secrets: []string{"S3c-1"}},
		{name: "CASE then operator", sql: "UPDATE contacts SET email = CASE WHEN id = 1 THEN ( 'S3c-1' ) END || 'b'", code: "0A000", secrets: []string{"S3c-1"}},
		{name: "quoted coalesce is a function", sql: `UPDATE contacts SET email = "coalesce"('S3c-1', email)`, code: "0A000", secrets: []string{"S3c-1"}},
	})
}

// TestFixReviewPinsHold: text-only edits in the conditions (schema pins,
// blind-index renamings) are repeated in the copy, also in shape plans
// and in migration mode (holds).
func TestFixReviewPinsHold(t *testing.T) {
	runCaseChecks(t, fixturePlanner, appFirst, []caseCheck{
		{name: "pin and rename in one condition", sql: "UPDATE contacts SET email = CASE WHEN user_id IN (SELECT id FROM users) AND EXISTS (SELECT 1 FROM public.users u WHERE u.email = contacts.email) THEN 'S3c-1' ELSE email END WHERE id = 1",
			mirror: emailMirror, secrets: []string{"S3c-1"}},
		{name: "pin glued to FROM", sql: `UPDATE contacts SET email = CASE WHEN user_id IN (SELECT id FROM"users") THEN 'S3c-1' ELSE email END WHERE id = 1`,
			mirror: emailMirror, secrets: []string{"S3c-1"}},
	})
	out := func(sql string, s Session) string {
		t.Helper()
		plan, err := newTestPlanner(t).Plan(sql, s)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		o, err := fillSlots(sql, plan)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if o := out("UPDATE contacts SET email = CASE WHEN EXISTS (SELECT 1 FROM users u WHERE u.email = contacts.email) THEN 'x' ELSE email END", publicPath); strings.Count(o, "u.email_bidx = contacts.email_bidx") != 2 {
		t.Errorf("renaming not in both CASEs: %s", o)
	}
	if o := out(`UPDATE contacts SET email = CASE WHEN user_id IN (SELECT id FROM"users") THEN 'x' ELSE email END`, appFirst); strings.Count(o, `FROM app."users"`) != 2 {
		t.Errorf("pin not in both CASEs: %s", o)
	}
	t.Run("migrating", func(t *testing.T) {
		migrating := func(t *testing.T) *Planner {
			p := newTestPlanner(t)
			p.SetMigrating(map[*policy.Table]bool{p.cfg.Table("public", "users"): true, p.cfg.Table("public", "contacts"): true})
			return p
		}
		runCaseChecks(t, migrating, publicPath, []caseCheck{
			{name: "join renamed", sql: "UPDATE contacts SET email = CASE WHEN EXISTS (SELECT 1 FROM users u WHERE u.email = contacts.email) THEN 'S3c-1' ELSE email END", mirror: emailMirror, secrets: []string{"S3c-1"}},
			{name: "lookup in a condition", sql: "UPDATE contacts SET email = CASE WHEN user_id IN (SELECT id FROM users WHERE email = 'S3c-q') THEN 'x' END", code: "0A000", secrets: []string{"S3c-q"}},
		})
	})
	for _, c := range []reviewPair{
		{name: "pin", s: &appFirst, hit: 1,
			t1: "UPDATE contacts SET email = CASE WHEN user_id IN (SELECT id FROM users WHERE nickname = 'a') THEN 'x' ELSE email END WHERE id = 1",
			t2: "UPDATE contacts SET email = CASE WHEN user_id IN (SELECT id FROM users WHERE nickname = 'aaaaaaaaa') THEN 'xyyyyyyyy' ELSE email END WHERE id = 1000"},
		{name: "rename", hit: 1,
			t1: "UPDATE contacts SET email = CASE WHEN note = 'q' AND EXISTS (SELECT 1 FROM users u WHERE u.name = 'n' AND u.email = contacts.email AND u.id = 5) THEN 'x' WHEN id = 3 THEN 'z' ELSE email END, score = 5 WHERE id = 2",
			t2: "UPDATE contacts SET email = CASE WHEN note = '' AND EXISTS (SELECT 1 FROM users u WHERE u.name = 'nnnnnnnnnnnnn' AND u.email = contacts.email AND u.id = 500000) THEN '' WHEN id = 300000 THEN 'zzzzzzzzzzzzzzzzzzzz' ELSE email END, score = 5000000 WHERE id = 2000000"},
	} {
		if diff := runReviewPair(t, c); diff != "" {
			t.Errorf("%s: %s", c.name, diff)
		}
	}
}

// tenantViewPlanner: the fixture with a view public.user_orgs over
// users (id, org_id, name), which reads the key_context and no encrypted
// column (Catalog.TenantViews, as proxy/catalog.go addTenantViews lists it).
func tenantViewPlanner(t testing.TB) *Planner {
	p := NewPlanner(testConfig(t), 16)
	c := testCatalog()
	c.Tables["public.user_orgs"] = catalogTable("public", "user_orgs", 16500, "id", "org_id", "name")
	c.TenantViews = map[string]string{"public.user_orgs": "public.users"}
	p.SetCatalog(c)
	return p
}

func tenantViewPlan(t *testing.T, sql string, s Session) *Error {
	t.Helper()
	p := tenantViewPlanner(t)
	if !p.MayReference(sql) {
		t.Errorf("%s: the pre-check lets it pass unparsed", sql)
	}
	_, err := p.Plan(sql, s)
	if err == nil {
		return nil
	}
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("%s: %T %v", sql, err, err)
	}
	return e
}

// TestFixReviewTenantViewHolds: with the search_path known, UPDATE and
// MERGE naming the view are refused, qualified or not (holds).
func TestFixReviewTenantViewHolds(t *testing.T) {
	for _, sql := range []string{
		`UPDATE user_orgs SET org_id = 2 WHERE id = 1`,
		`UPDATE public.user_orgs SET org_id = $1 WHERE id = $2`,
		`UPDATE "user_orgs" v SET org_id = 2 WHERE v.id = 1`,
		`WITH m AS (UPDATE user_orgs SET org_id = 2 WHERE id = 1 RETURNING id) SELECT * FROM m`,
		`MERGE INTO user_orgs v USING (SELECT 1 AS id) s ON v.id = s.id WHEN MATCHED THEN UPDATE SET org_id = 2`,
	} {
		e := tenantViewPlan(t, sql, publicPath)
		if e == nil || e.Code != CodeFeatureNotSupported || !strings.Contains(e.Message, "public.users") {
			t.Errorf("%s\n  got %v, want 0A000 naming public.users", sql, e)
		}
	}
	// Reads and other schemas' relations of the name pass.
	for _, sql := range []string{
		`SELECT org_id FROM user_orgs WHERE id = 1`,
		`UPDATE users SET name = 'x' FROM user_orgs v WHERE v.id = users.id AND users.org_id = 3`,
	} {
		if e := tenantViewPlan(t, sql, publicPath); e != nil {
			t.Errorf("%s: %v", sql, e)
		}
	}
}

// TestFixReviewFoundTenantViewPathUnknown (DEFECT, HIGH): with the
// search_path unknown (Session.PathUnknown: after DDL in a transaction
// until it is settled, after RESET search_path, a SET in the same string
// that pgveil cannot read) resolveName resolves an unqualified name that
// is no configured table to tableRef{schema: ""}; tenantView then looks
// up ".user_orgs" and lets the UPDATE through. resolveRelation handles
// the same case for Guarded views by matching any view of the name.
// End to end: TestEncFixReviewFoundTenantViewAfterDDL.
func TestFixReviewFoundTenantViewPathUnknown(t *testing.T) {
	unknown := Session{PathUnknown: true}
	for _, sql := range []string{
		`UPDATE user_orgs SET org_id = 2 WHERE id = 1`,
		`MERGE INTO user_orgs v USING (SELECT 1 AS id) s ON v.id = s.id WHEN MATCHED THEN UPDATE SET org_id = 2`,
		`RESET search_path; UPDATE user_orgs SET org_id = 2 WHERE id = 1`,
	} {
		s := unknown
		if strings.HasPrefix(sql, "RESET") {
			s = publicPath
		}
		if e := tenantViewPlan(t, sql, s); e == nil || e.Code != CodeFeatureNotSupported {
			t.Errorf("%s (path unknown)\n  got %v, want 0A000", sql, e)
		}
	}
}

// TestFixReviewFoundBodyFalsePositive (DEFECT, MEDIUM): the key_context
// test in body() refuses every function or DO body that has "users"
// anywhere in its text (strings.Contains, not a word: users_count,
// superusers), the word org_id (in a multi-tenant schema every table has
// it) and the word update (an UPDATE of any table, TG_OP = 'UPDATE', FOR
// UPDATE). None of these bodies writes users.org_id; the refusal's hint
// ("keep writes to configured tables in the application") does not fit
// them. Expected: planned (refuse only a body that UPDATEs the table and
// names the column, e.g. both within one statement of the body).
func TestFixReviewFoundBodyFalsePositive(t *testing.T) {
	for _, sql := range []string{
		// A counter cache kept by a trigger on users (Rails counter_culture
		// in SQL, hair_trigger).
		`CREATE FUNCTION users_count_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE orgs SET users_count = users_count + 1 WHERE id = NEW.org_id;
  RETURN NEW;
END $$`,
		// A trigger on projects that reads users.
		`CREATE FUNCTION projects_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    NEW.owner_id := (SELECT id FROM users WHERE org_id = NEW.org_id ORDER BY id LIMIT 1);
  END IF;
  RETURN NEW;
END $$`,
		// A read with a row lock.
		`CREATE FUNCTION lock_org_users(o int8) RETURNS SETOF int8 LANGUAGE sql AS $$ SELECT id FROM users WHERE org_id = o FOR UPDATE $$`,
		// A DO block of a data migration of another table.
		`DO $$ BEGIN UPDATE projects SET org_id = 1 WHERE org_id IS NULL; PERFORM 1 FROM superusers; END $$`,
	} {
		if _, err := newTestPlanner(t).Plan(sql, publicPath); err != nil {
			t.Errorf("%s\n  refused: %v", sql, err)
		}
	}
	// What the check is for stays refused.
	for _, sql := range []string{
		`CREATE FUNCTION mv(i int8) RETURNS void LANGUAGE plpgsql AS $$ BEGIN UPDATE users SET org_id = 7 WHERE id = i; END $$`,
		`DO $$ BEGIN UPDATE public.users u SET "org_id" = 7 WHERE u.id = 2; END $$`,
	} {
		if _, err := newTestPlanner(t).Plan(sql, publicPath); err == nil {
			t.Errorf("%s: planned, want 0A000", sql)
		}
	}
}

// TestFixReviewTenantViewMixedCase: a view whose name needs quotes is
// found by the pre-check and refused (holds).
func TestFixReviewTenantViewMixedCase(t *testing.T) {
	p := NewPlanner(testConfig(t), 16)
	c := testCatalog()
	c.Tables["public.UserOrgs"] = catalogTable("public", "UserOrgs", 16501, "id", "org_id")
	c.TenantViews = map[string]string{"public.UserOrgs": "public.users"}
	p.SetCatalog(c)
	sql := `UPDATE "UserOrgs" SET org_id = 2 WHERE id = 1`
	if !p.MayReference(sql) {
		t.Fatalf("pre-check passes %s", sql)
	}
	if _, err := p.Plan(sql, publicPath); err == nil {
		t.Fatalf("%s planned, want 0A000", sql)
	}
}

// TestFixReviewFoundForeignKeyDDL (LOW): d22ddd4 makes `pgveil check`
// report a foreign key on the key_context that cascades or sets NULL or
// DEFAULT (key_context_fk_moves), and refuses the other ways to move rows
// inside the server (functions, DO, rules), but the DDL that creates such
// a key passes through pgveil (a Rails add_foreign_key … on_update:
// :cascade). Expected: 0A000 like a rule that does the same, naming the
// column and the actions that are fine (NO ACTION, RESTRICT, ON DELETE
// CASCADE).
func TestFixReviewFoundForeignKeyDDL(t *testing.T) {
	for _, sql := range []string{
		`ALTER TABLE users ADD CONSTRAINT users_org_fk FOREIGN KEY (org_id) REFERENCES orgs ON UPDATE CASCADE`,
		`ALTER TABLE users ADD FOREIGN KEY (org_id) REFERENCES orgs (id) ON DELETE SET NULL`,
	} {
		if _, err := newTestPlanner(t).Plan(sql, publicPath); err == nil {
			t.Errorf("%s: planned, want 0A000", sql)
		}
	}
	for _, sql := range []string{
		`ALTER TABLE users ADD FOREIGN KEY (org_id) REFERENCES orgs ON DELETE CASCADE`,
		`ALTER TABLE users ADD FOREIGN KEY (org_id) REFERENCES orgs ON UPDATE RESTRICT`,
	} {
		if _, err := newTestPlanner(t).Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}
