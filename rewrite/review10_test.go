package rewrite

// Review 10 of 7ab8a66 (RIGHT/FULL JOIN right side in its own scope, JOIN
// USING over aliased joins, q.col ambiguity, multi-column scalar
// subqueries), on what earlier reviews left out: values carried between
// scopes (subqueries in select lists, IN/ANY/EXISTS, row comparisons,
// FILTER, WITHIN GROUP, windows, grouping sets, HAVING), DML paths (UPDATE
// multi-assignment and DEFAULT, INSERT … SELECT, ON CONFLICT ON CONSTRAINT
// and expression arbiters, DELETE … RETURNING, MERGE) and the newest scopes
// nested deeper. Every resolution below was checked against PostgreSQL
// 15.18 (EXPLAIN VERBOSE on a scratch cluster with the fixture's tables,
// columns of configured tables as bytea, orgs(id, name) unknown to pgveil).
//
// All fixed in the commit after it: bare names skip the relations inside
// an aliased JOIN (its alias's renamed columns answer them); ROLLUP, CUBE
// and GROUPING SETS items planned as GROUP BY items; GROUP BY name looks
// at the query's own FROM, then its outputs, then enclosing queries; an
// unqualified name is not renamed to its blind index where that name
// reaches another relation (refused: qualify it); a base table's alias
// column list is checked for its blind index as a subquery's is; an
// output's name used in WHERE/HAVING/an expression over an encrypted
// column is refused (42703) before the server logs the text.
//
// Failing at the time of the review (defects):
//   TestReview10FoundJoinAliasBareName HIGH (predates 7ab8a66):
//                                   resolveBare (scope.go) looks a bare name
//                                   up in every relation of a level,
//                                   including those inside an aliased JOIN,
//                                   under their own column names, and takes
//                                   the first match; PostgreSQL sees only the
//                                   JOIN alias there, whose column list
//                                   renames the columns. In
//                                   (app.users a JOIN contacts c ON true)
//                                   AS j(i, mail) the name email is
//                                   c.email (a.email is now mail);
//                                   pgveil resolves it to a.email (plain):
//                                   WHERE email = 'lit', JOIN … ON email =
//                                   'lit', and EXISTS (SELECT … FROM (app.users
//                                   a JOIN orgs o ON true) AS j(i, mail) WHERE
//                                   email = 'lit') over an outer contacts x
//                                   (PostgreSQL: x.email = '\x6c65…'::bytea)
//                                   go out unchanged, the literal in
//                                   plaintext; SELECT email /
//                                   json_build_array(email) return the
//                                   envelope undecrypted (MEDIUM). The other
//                                   way round, (contacts c JOIN app.users a
//                                   ON true) AS j(i, u, x) WHERE email =
//                                   'lit' is a.email (text) in PostgreSQL
//                                   and pgveil rewrites it to email_bidx
//                                   (c's): wrong results (MEDIUM).
//   TestReview10FoundGroupingSetOutput MEDIUM (wrong results): GROUP BY
//                                   ROLLUP/CUBE/GROUPING SETS over an output
//                                   name or position (GROUP BY ROLLUP(e),
//                                   GROUPING SETS ((e), ()), ROLLUP(1), with
//                                   e = c.email): PostgreSQL's
//                                   findTargetlistEntrySQL92 applies inside
//                                   grouping sets (Hash Key: c.email);
//                                   groupItem (select.go) hands the grouping
//                                   set to expr, which resolves names as
//                                   inputs only and ignores positions, so the
//                                   ciphertext is grouped (each value its own
//                                   group) where plain GROUP BY e is refused.
//                                   Also a plain GROUP BY name: PostgreSQL
//                                   looks in the local FROM, then the local
//                                   outputs, then outer queries;
//                                   outputOrInput resolves the name through
//                                   every level first, so EXISTS (SELECT
//                                   c.email AS nickname FROM contacts c GROUP
//                                   BY nickname …) inside FROM app.users a
//                                   takes a.nickname and lets the grouping by
//                                   c.email through (and refuses the mirror
//                                   case, LOW).
//   TestReview10FoundUnqualifiedIndexRename MEDIUM (wrong results):
//                                   renameToIndex (equality.go) turns an
//                                   unqualified email into an unqualified
//                                   email_bidx without checking that the new
//                                   name reaches the same relation. In
//                                   FROM contacts c WHERE EXISTS (SELECT 1
//                                   FROM (SELECT email_bidx FROM users) s
//                                   WHERE email = 'lit') email is c.email
//                                   (PostgreSQL: c.email = '\x6c65…'), but
//                                   the email_bidx pgveil writes is
//                                   s.email_bidx, the users' index: the
//                                   filter tests whether any user has the
//                                   value (Index Cond: users.email_bidx =
//                                   …), not the contact. A relation that
//                                   keeps blind indexes without their column
//                                   (a block list, a lookup table) is enough.
//   TestReview10FoundBaseAliasIndexRename MEDIUM (wrong results; LOW for
//                                   the refusal): renameToIndex writes
//                                   q.email_bidx for a base table whose alias
//                                   column list renamed the blind-index
//                                   column (carriesIndex is checked for
//                                   subqueries, CTEs and views only):
//                                   contacts AS c(i, u, e, b, email_bidx)
//                                   WHERE c.e = 'lit' compares c.score (the
//                                   fifth column, now named email_bidx) with
//                                   the index; contacts AS c(i, u, e, b)
//                                   WHERE c.e = $1 fails in the server
//                                   (column c.email_bidx does not exist).
//   TestReview10FoundOutputAliasInWhere MEDIUM (plaintext in the log of a
//                                   statement PostgreSQL rejects): an output
//                                   alias of an encrypted column used where
//                                   only inputs are visible (WHERE e =
//                                   'lit', HAVING e = 'lit', ORDER BY e =
//                                   'lit', GROUPING(e)) is "column "e" does
//                                   not exist" in PostgreSQL, after its text
//                                   is logged; resolveBare (scope.go) finds
//                                   nothing and passes the literal on. The
//                                   case-only variant ("Email") and a wrong
//                                   qualifier are refused as likely mistakes;
//                                   the commonest one (WHERE on a select-list
//                                   alias) is not.
// Attacks withstood: TestReview10Holds.

import (
	"strings"
	"testing"
)

func TestReview10FoundJoinAliasBareName(t *testing.T) {
	p := newTestPlanner(t)
	// PostgreSQL 15: Filter: (c.email = '\x6c65616b'::bytea) / x.email
	rev4NoPlaintext(t, p,
		`SELECT 1 FROM (app.users a JOIN contacts c ON true) AS j(i, mail) WHERE email = '`+rev4Leak+`'`,
		`SELECT 1 FROM (app.users a JOIN contacts c ON a.id = c.id) AS j(i, mail) WHERE email IN ('`+rev4Leak+`')`,
		`SELECT 1 FROM (app.users a JOIN contacts c ON true) AS j(i, mail) JOIN orgs o ON email = '`+rev4Leak+`'`,
		`SELECT 1 FROM contacts x WHERE EXISTS (SELECT 1 FROM (app.users a JOIN orgs o ON true) AS j(i, mail) WHERE email = '`+rev4Leak+`')`,
	)
	// MEDIUM: Output: c.email / json_build_array(c.email); u.email needs its tenant.
	rev4Decrypted(t, p, `SELECT email FROM (app.users a JOIN contacts c ON true) AS j(i, mail)`, 0, "public.contacts.email")
	sql := `SELECT json_build_array(email) FROM (app.users a JOIN contacts c ON true) AS j(i, mail)`
	if plan, r := rev4Plan(t, p, sql); plan != nil && (len(plan.Stmts[0].Outputs) == 0 || plan.Stmts[0].Outputs[0].JSON == nil) {
		t.Errorf("%s\n planned as %s\n email is c.email in PostgreSQL: its envelope is returned in the JSON undecrypted", sql, r)
	}
	sql = `SELECT email FROM (app.users a JOIN users u ON true) AS j(i, mail)`
	if plan, r := rev4Plan(t, p, sql); plan != nil && (len(plan.Stmts[0].Outputs) == 0 || plan.Stmts[0].Outputs[0].Column == nil) {
		t.Errorf("%s\n planned as %s\n email is u.email in PostgreSQL: returned undecrypted", sql, r)
	}
	// MEDIUM (wrong results): PostgreSQL Filter: (a.email = 'leak'::text);
	// pgveil compares c.email_bidx.
	sql = `SELECT 1 FROM (contacts c JOIN app.users a ON true) AS j(i, u, x) WHERE email = '` + rev4Leak + `'`
	if _, r := rev4Plan(t, p, sql); strings.Contains(r, "email_bidx") {
		t.Errorf("%s\n planned as %s\n email is app.users.email (text) in PostgreSQL: the blind index of c.email is compared instead", sql, r)
	}
}

func TestReview10FoundGroupingSetOutput(t *testing.T) {
	p := newTestPlanner(t)
	// PostgreSQL 15: MixedAggregate, Hash Key: c.email (the ciphertext).
	for _, sql := range []string{
		`SELECT c.email AS e FROM contacts c GROUP BY ROLLUP(e)`,
		`SELECT c.email AS e, count(*) FROM contacts c GROUP BY GROUPING SETS ((e), ())`,
		`SELECT c.email AS e, count(*) FROM contacts c GROUP BY CUBE(e)`,
		`SELECT c.email, count(*) FROM contacts c GROUP BY ROLLUP(1)`,
		// HashAggregate, Group Key: c.email (local outputs before outer inputs)
		`SELECT 1 FROM app.users a WHERE EXISTS (SELECT c.email AS nickname FROM contacts c GROUP BY nickname HAVING count(*) > 1)`,
	} {
		if plan, err := p.Plan(sql, publicPath); err == nil {
			t.Errorf("%s\n planned:\n%s groups by the ciphertext of contacts.email (GROUP BY e is refused)", sql, dumpPlan(sql, plan))
		}
	}
	// LOW: PostgreSQL groups by b.id (the local output), not the outer c.email.
	sql := `SELECT (SELECT b.id AS email FROM billing.accounts b GROUP BY email LIMIT 1) FROM contacts c`
	if _, err := p.Plan(sql, publicPath); err != nil {
		t.Errorf("%s\n refused: %v\n PostgreSQL groups by the output b.id", sql, err)
	}
}

func TestReview10FoundUnqualifiedIndexRename(t *testing.T) {
	p := newTestPlanner(t)
	// PostgreSQL 15: the email is c.email; the email_bidx pgveil writes is
	// s.email_bidx (Index Cond: users.email_bidx = …).
	for _, sql := range []string{
		`SELECT 1 FROM contacts c WHERE EXISTS (SELECT 1 FROM (SELECT email_bidx FROM users) s WHERE email = '` + rev4Leak + `')`,
		`SELECT 1 FROM contacts c, LATERAL (SELECT 1 FROM (SELECT email_bidx FROM users) s WHERE email IN ('` + rev4Leak + `', 'b')) z`,
	} {
		if _, r := rev4Plan(t, p, sql); r != "" && strings.Contains(r, "WHERE email_bidx") {
			t.Errorf("%s\n planned as %s\n email_bidx reaches s (users' index), not c's", sql, r)
		}
	}
}

func TestReview10FoundBaseAliasIndexRename(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		// PostgreSQL 15: Filter: (c.email_bidx = …) where c.email_bidx is score.
		`SELECT 1 FROM contacts AS c(i, u, e, b, email_bidx) WHERE c.e = '` + rev4Leak + `'`,
		`SELECT 1 FROM contacts c WHERE c.email IN (SELECT u.e FROM users AS u(i, o, e, b, ph, email_bidx))`,
		// ERROR: column c.email_bidx does not exist
		`SELECT 1 FROM contacts AS c(i, u, e, b) WHERE c.e = $1`,
	} {
		if _, r := rev4Plan(t, p, sql); r != "" && !strings.Contains(r, ".b ") && !strings.Contains(r, ".b)") {
			t.Errorf("%s\n planned as %s\n the blind index is the renamed column b: q.email_bidx is another column or none", sql, r)
		}
	}
}

func TestReview10FoundOutputAliasInWhere(t *testing.T) {
	p := newTestPlanner(t)
	// PostgreSQL 15: ERROR: column "e" does not exist (after logging the text)
	rev4NoPlaintext(t, p,
		`SELECT c.email AS e FROM contacts c WHERE e = '`+rev4Leak+`'`,
		`SELECT c.id, c.email AS mail FROM contacts c WHERE mail IN ('`+rev4Leak+`')`,
		`SELECT c.email AS e, count(*) FROM contacts c GROUP BY c.id HAVING e = '`+rev4Leak+`'`,
		`SELECT c.email AS e FROM contacts c ORDER BY e = '`+rev4Leak+`'`,
	)
}

func TestReview10Holds(t *testing.T) {
	p := newTestPlanner(t)
	// Refused: an encrypted column in a row comparison, in a subquery
	// compared with it that does not return a blind-indexed column, in a
	// subquery whose value is used as plaintext, ordered inside WITHIN GROUP
	// or partitioned by; multi-assignment from a subquery returning one;
	// MERGE reading one (its source subquery too).
	for _, sql := range []string{
		`SELECT 1 FROM contacts c WHERE (c.email, c.id) = (SELECT '` + rev4Leak + `', 1)`,
		`SELECT 1 FROM contacts c WHERE (c.id, c.email) IN (SELECT 1, '` + rev4Leak + `')`,
		`UPDATE contacts c SET note = 'x' WHERE (c.email, c.id) = (SELECT '` + rev4Leak + `', 1)`,
		`SELECT 1 FROM contacts c WHERE c.email = ANY(SELECT '` + rev4Leak + `')`,
		`SELECT 1 FROM contacts c WHERE '` + rev4Leak + `' = ANY(SELECT c.email)`,
		`SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY c.email) FROM contacts c`,
		`SELECT rank() OVER (PARTITION BY c.email) FROM contacts c`,
		`SELECT (SELECT c2.email FROM contacts c2 WHERE c2.id = c.id) AS e FROM contacts c ORDER BY e`,
		`SELECT c.email AS e FROM contacts c GROUP BY e`,
		`UPDATE contacts SET (note, score) = (SELECT email, 1 FROM contacts LIMIT 1) WHERE id = 1`,
		`UPDATE contacts SET (email, note) = (SELECT '` + rev4Leak + `', 'x') WHERE id = 1`,
		`MERGE INTO orgs o USING (SELECT id FROM contacts WHERE email = '` + rev4Leak + `') s ON o.id = s.id WHEN MATCHED THEN DELETE`,
		`INSERT INTO contacts (id, email) SELECT 1, '` + rev4Leak + `'`,
		`WITH s AS (SELECT '` + rev4Leak + `' AS e) INSERT INTO contacts (id, email) SELECT 1, e FROM s`,
	} {
		refusal(t, p, sql, publicPath)
	}
	// Rewritten to the blind index as PostgreSQL resolves it: FILTER,
	// HAVING, IS NOT DISTINCT FROM in the select list; UPDATE
	// multi-assignment beside a WHERE; INSERT … SELECT's WHERE; ON CONFLICT
	// arbiter WHERE; a RIGHT JOIN LATERAL inside a CTE; a subquery in an ON
	// clause; an ON clause that looks past the FROM items before its join
	// (and past the left side of an enclosing RIGHT JOIN) to an outer query.
	for _, sql := range []string{
		`SELECT count(*) FILTER (WHERE c.email = '` + rev4Leak + `') FROM contacts c`,
		`SELECT 1 FROM contacts c HAVING bool_or(c.email = '` + rev4Leak + `')`,
		`SELECT c.email IS NOT DISTINCT FROM '` + rev4Leak + `' FROM contacts c`,
		`UPDATE contacts SET (note, id) = (SELECT 'x', 2) WHERE email = '` + rev4Leak + `'`,
		`INSERT INTO orgs (id, name) SELECT c.id, c.note FROM contacts c WHERE c.email = '` + rev4Leak + `'`,
		`INSERT INTO contacts (id, email) VALUES (1, 'x') ON CONFLICT (id) WHERE email = '` + rev4Leak + `' DO NOTHING`,
		`WITH w AS (SELECT s.id FROM orgs o RIGHT JOIN LATERAL (SELECT c.id FROM contacts c WHERE c.email = '` + rev4Leak + `') s ON true) SELECT * FROM w`,
		`WITH w AS (SELECT 1 FROM orgs o RIGHT JOIN (contacts c CROSS JOIN LATERAL (SELECT 1 WHERE c.email = '` + rev4Leak + `') z) ON true) SELECT * FROM w`,
		`SELECT 1 FROM contacts c JOIN orgs o ON EXISTS (SELECT 1 FROM users u WHERE u.email = c.email AND u.ssn = '` + rev4Leak + `')`,
		`SELECT 1 FROM users x WHERE EXISTS (SELECT 1 FROM app.users x, contacts c JOIN orgs o ON x.email = '` + rev4Leak + `')`,
		`SELECT 1 FROM users x WHERE EXISTS (SELECT 1 FROM app.users x RIGHT JOIN (contacts c JOIN orgs o ON x.email = '` + rev4Leak + `') ON true)`,
		`DELETE FROM contacts AS c USING users u WHERE c.user_id = u.id AND u.email = '` + rev4Leak + `' RETURNING c.email, u.email AS ue`,
	} {
		if _, r := rev4Plan(t, p, sql); r == "" || strings.Contains(r, rev4Leak) || !strings.Contains(r, "{index") {
			t.Errorf("%s\n planned as %q", sql, r)
		}
	}
	// The ON clause's own left side is app.users x (text): unchanged.
	if _, r := rev4Plan(t, p, `SELECT 1 FROM users x WHERE EXISTS (SELECT 1 FROM app.users x RIGHT JOIN contacts c ON x.email = 'a')`); strings.Contains(r, "{index") {
		t.Errorf("app.users x rewritten: %s", r)
	}
	// DEFAULT writes the index's DEFAULT too; ON CONFLICT ON CONSTRAINT
	// copies EXCLUDED's index; a scalar subquery in RETURNING is decrypted.
	for sql, want := range map[string]string{
		`UPDATE contacts SET email = DEFAULT WHERE id = 1`: `email_bidx = DEFAULT`,
		`INSERT INTO contacts (id, email) VALUES (1, 'x') ON CONFLICT ON CONSTRAINT contacts_pkey DO UPDATE SET email = EXCLUDED.email`:             `email_bidx = excluded.email_bidx`,
		`DELETE FROM contacts AS c USING users u WHERE c.user_id = u.id AND u.email = $1 RETURNING c.email, u.email AS ue`:                          `u.org_id`,
		`SELECT "users"."id", (SELECT COUNT(*) FROM "contacts" WHERE "contacts"."user_id" = "users"."id" AND "contacts"."email" = $1) FROM "users"`: `"email_bidx"`,
	} {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			t.Errorf("%s: %v", sql, err)
			continue
		}
		if d := dumpPlan(sql, plan); !strings.Contains(d, want) {
			t.Errorf("%s\n planned as %s\n want %s", sql, d, want)
		}
	}
	rev4Decrypted(t, p, `UPDATE contacts c SET note = 'x' WHERE id = 1 RETURNING (SELECT c2.email FROM contacts c2 WHERE c2.id = c.id) AS e`, 0, "public.contacts.email")
	// ORM shapes: planned.
	for _, sql := range []string{
		`SELECT "contacts".* FROM "contacts" WHERE "contacts"."email" = $1 LIMIT $2`,
		`SELECT "users"."id" FROM "users" WHERE EXISTS(SELECT 1 AS "a" FROM "contacts" U0 WHERE (U0."user_id" = ("users"."id") AND U0."email" = $1) LIMIT 1)`,
		`select u1_0.id,u1_0.email,u1_0.org_id from users u1_0 join contacts c1_0 on u1_0.id=c1_0.user_id where c1_0.email=$1`,
		`SELECT "User".*, "contacts"."email" AS "contacts.email" FROM (SELECT "User"."id", "User"."email", "User"."org_id" FROM "users" AS "User" WHERE ( SELECT "user_id" FROM "contacts" AS "contacts" WHERE ("contacts"."email" = 'x' AND "contacts"."user_id" = "User"."id") LIMIT 1 ) IS NOT NULL LIMIT 10) AS "User" INNER JOIN "contacts" AS "contacts" ON "User"."id" = "contacts"."user_id" AND "contacts"."email" = 'x'`,
		`SELECT * FROM (SELECT c.*, row_number() OVER (ORDER BY c.id) AS rn FROM contacts c WHERE c.email = $1) s WHERE s.rn <= 10`,
		`SELECT anon_1.email FROM (SELECT contacts.email AS email FROM contacts WHERE contacts.email = $1) AS anon_1`,
		`SELECT "t0"."id", "t0"."email" FROM "public"."contacts" AS "t0" RIGHT JOIN "public"."users" AS "t1" ON "t1"."id" = "t0"."user_id" WHERE "t0"."email" = $1`,
		`UPDATE "contacts" SET "email" = $1, "note" = $2 WHERE "contacts"."id" IN (SELECT "contacts"."id" FROM "contacts" WHERE "contacts"."email" = $3 ORDER BY "contacts"."id" LIMIT 1) RETURNING "contacts"."id", "contacts"."email"`,
		`WITH "cte" AS (SELECT "id" FROM "contacts" WHERE "email" = $1 LIMIT 1 FOR UPDATE SKIP LOCKED) UPDATE "contacts" SET "note" = $2 FROM "cte" WHERE "contacts"."id" = "cte"."id" RETURNING "contacts"."email"`,
		`SELECT u.id, u.email, u.org_id, rank() OVER (PARTITION BY u.org_id ORDER BY u.id) FROM users u WHERE u.email = ANY($1)`,
		`SELECT u.org_id, count(*) FILTER (WHERE u.email IS NOT NULL) FROM users u GROUP BY ROLLUP (u.org_id)`,
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s\n refused: %v", sql, err)
		}
	}
}
