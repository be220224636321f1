package rewrite

// Review 7 of 5337707: the planner's mirror of PostgreSQL's name
// resolution (scope.go, from.go, select.go, cte.go, MERGE in utility.go),
// CTEs, subqueries in FROM, set operations, output names, MERGE scopes.
// Every resolution below was checked against PostgreSQL 15 (EXPLAIN
// VERBOSE on a scratch cluster with the test fixture's tables).
//
// Failing at the time of the review (defects):
//   TestReview7FoundScalarSubqueryName HIGH: PostgreSQL names a select-list
//                                   scalar subquery after its own single
//                                   output (FigureColname, EXPR_SUBLINK:
//                                   "(SELECT email FROM contacts LIMIT 1)"
//                                   is a column named email); pgveil's
//                                   figureColname (select.go) has no
//                                   SubLink case and names it "?column?".
//                                   In FROM (SELECT (SELECT email FROM
//                                   contacts LIMIT 1)) s WHERE s.email =
//                                   'lit' PostgreSQL compares contacts.email
//                                   (EXPLAIN: One-Time Filter: ($0 =
//                                   '\x6c65…'::bytea)); pgveil finds no
//                                   column email in the complete relation s
//                                   and no encrypted column of that name in
//                                   scope (scope.go resolveColumn: the
//                                   encrypted column is there, under
//                                   "?column?"), takes it as plain and sends
//                                   the literal in plaintext. Same through a
//                                   CTE, a bare name, and UNION ALL (whose
//                                   names are its first branch's).
//                                   MEDIUM: SELECT s.email of it returns the
//                                   envelope undecrypted.
//   TestReview7FoundRecursiveForwardCTE HIGH: under WITH RECURSIVE every CTE
//                                   of the list is visible in every other,
//                                   also before its definition (PostgreSQL
//                                   orders them by dependency). withClause
//                                   (cte.go) makes a CTE visible only after
//                                   it is planned, so in WITH RECURSIVE a AS
//                                   (SELECT * FROM b WHERE email = 'lit'),
//                                   b AS (SELECT email, email_bidx FROM
//                                   contacts) pgveil resolves b to a table
//                                   it does not know (a plain, unknown
//                                   relation) and sends the literal in
//                                   plaintext; PostgreSQL filters
//                                   contacts.email = '\x…'::bytea. A CTE
//                                   named like a configured table defined
//                                   later is taken for the table (the other
//                                   way round: envelopes expected where
//                                   there are none). MEDIUM: SELECT email
//                                   FROM a returns contacts.email's envelope.
//   TestReview7FoundRenameIncomplete HIGH: a subquery's or CTE's alias
//                                   column list (FROM (…) AS x(a), WITH
//                                   w(a) AS …) over a result whose positions
//                                   pgveil does not know (a * over a
//                                   relation its catalog does not list)
//                                   renames pgveil's first known columns
//                                   (asRel / renamed, result.go, cte.go)
//                                   while PostgreSQL renames the unknown
//                                   relation's. In (SELECT o.*, u.email,
//                                   u.org_id FROM orgs o, users u) AS x(a)
//                                   PostgreSQL keeps u.email named email;
//                                   pgveil thinks it was renamed a:
//                                   x.email = 'lit' goes out in plaintext,
//                                   x.email is returned undecrypted. The
//                                   fix review 4 made for JOIN aliases
//                                   (from.go join: "a column alias list on a
//                                   JOIN whose columns pgveil cannot place")
//                                   was not made for subqueries and CTEs.
//   TestReview7FoundMergeNotMatchedScope HIGH: in MERGE, a WHEN NOT MATCHED
//                                   clause (its AND condition, its INSERT
//                                   VALUES) sees only the source relation
//                                   (transformMergeStmt,
//                                   setNamespaceForMergeWhen): the target is
//                                   invisible. merge (utility.go) plans every
//                                   WHEN clause in one scope, target first,
//                                   and resolveBare returns the first
//                                   relation with the name. MERGE INTO
//                                   app.users t USING users s … WHEN NOT
//                                   MATCHED AND email = 'lit' is planned
//                                   against app.users.email (plain) and sent
//                                   in plaintext; PostgreSQL compares
//                                   s.email (public.users, encrypted). With
//                                   INSERT (id, email) VALUES (s.id, email)
//                                   the envelope of users.email is copied
//                                   into app.users.email, where nothing will
//                                   ever open it, instead of the 0A000
//                                   MERGE refusal.
//   TestReview7FoundRejectedPlaintext MEDIUM (plaintext in the log of a
//                                   statement the server rejects, the class
//                                   of review 6): a non-LATERAL subquery in
//                                   FROM that names an earlier FROM item
//                                   ("invalid reference to FROM-clause entry
//                                   for table u … cannot be referenced from
//                                   this part of the query"): fromItem
//                                   plans it in level.parent without the
//                                   level's items as hidden, so the literal
//                                   compared with u.email passes as plain.
//                                   Likewise a quoted name that differs from
//                                   the encrypted column only in case
//                                   (u."EMAIL", "Email": column does not
//                                   exist): the "known not to have it" rule
//                                   of resolveColumn compares names exactly.
//   TestReview7RefusedUnionIndex    LOW (not fixed, refused; was Found…): a UNION ALL (a recursive CTE
//                                   too) whose branches each return
//                                   contacts.email beside its own
//                                   email_bidx cannot be searched by email:
//                                   combine (setop.go) keeps enc but drops
//                                   bidxOf/origin, so s.email = 'lit' is
//                                   refused ("does not return the blind
//                                   index") though each row's index is there.
//   TestReview7RefusedWholeRowField LOW (not fixed, refused with a hint to
//                                   write u.email; was Found…): (u).email, PostgreSQL's spelling of
//                                   u.email through the whole-row
//                                   reference, is refused as a whole-row
//                                   reference (resolveBare), although
//                                   pgveil plans u.email.
// Attacks withstood: TestReview7Holds.

import (
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v5"
)

func TestReview7FoundScalarSubqueryName(t *testing.T) {
	p := newTestPlanner(t)
	const sub = `(SELECT email FROM contacts LIMIT 1)`
	rev4NoPlaintext(t, p,
		`SELECT 1 FROM (SELECT `+sub+`) s WHERE s.email = '`+rev4Leak+`'`,
		`SELECT 1 FROM (SELECT `+sub+`) s WHERE email = '`+rev4Leak+`'`,
		`WITH w AS (SELECT `+sub+`) SELECT 1 FROM w WHERE w.email = '`+rev4Leak+`'`,
		`SELECT 1 FROM (SELECT `+sub+` UNION ALL SELECT `+sub+`) s WHERE s.email = '`+rev4Leak+`'`,
		`SELECT 1 FROM (SELECT (SELECT c.email FROM contacts c ORDER BY c.id LIMIT 1), 2 AS two) s WHERE s.email IN ('`+rev4Leak+`')`,
	)
	rev4Decrypted(t, p, `SELECT s.email FROM (SELECT `+sub+`) s`, 0, "public.contacts.email")
	rev4Decrypted(t, p, `WITH w AS (SELECT `+sub+`) SELECT email FROM w`, 0, "public.contacts.email")
}

func TestReview7FoundRecursiveForwardCTE(t *testing.T) {
	p := newTestPlanner(t)
	const b = `b AS (SELECT email, email_bidx FROM contacts)`
	rev4NoPlaintext(t, p,
		`WITH RECURSIVE a AS (SELECT * FROM b WHERE email = '`+rev4Leak+`'), `+b+` SELECT 1 FROM a`,
		`WITH RECURSIVE a AS (SELECT * FROM b WHERE b.email = '`+rev4Leak+`'), `+b+` SELECT 1 FROM a`,
		`WITH RECURSIVE a AS (SELECT 1 FROM orgs WHERE EXISTS (SELECT 1 FROM b WHERE b.email = '`+rev4Leak+`')), `+b+` SELECT 1 FROM a`,
		`WITH RECURSIVE a(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM a, b WHERE b.email = '`+rev4Leak+`'), `+b+` SELECT 1 FROM a`,
	)
	rev4Decrypted(t, p, `WITH RECURSIVE a AS (SELECT email FROM b), `+b+` SELECT email FROM a`, 0, "public.contacts.email")
	// A later CTE named like the configured table: PostgreSQL reads the
	// CTE's plain text; pgveil plans public.users and would open it.
	sql := `WITH RECURSIVE a AS (SELECT email, org_id FROM users), users AS (SELECT 'x'::text AS email, 1 AS org_id) SELECT email FROM a`
	if plan, r := rev4Plan(t, p, sql); plan != nil && len(plan.Stmts[0].Outputs) > 0 && plan.Stmts[0].Outputs[0].Column != nil {
		t.Errorf("%s\n planned as %s\n%s users is the CTE in PostgreSQL: its plain text is opened as an envelope", sql, r, dumpPlan(sql, plan))
	}
}

func TestReview7FoundRenameIncomplete(t *testing.T) {
	p := newTestPlanner(t)
	const inner = `(SELECT o.*, u.email, u.org_id FROM orgs o, users u)`
	rev4NoPlaintext(t, p,
		`SELECT 1 FROM `+inner+` AS x(a) WHERE x.email = '`+rev4Leak+`'`,
		`SELECT 1 FROM `+inner+` AS x(a) WHERE email = '`+rev4Leak+`'`,
		`WITH w(a) AS `+inner+` SELECT 1 FROM w WHERE w.email = '`+rev4Leak+`'`,
		`SELECT 1 FROM (SELECT * FROM orgs o, users u) AS x(a, b, c) WHERE x.email = '`+rev4Leak+`'`,
	)
	rev4Decrypted(t, p, `SELECT x.email, x.org_id FROM `+inner+` AS x(a)`, 0, "public.users.email")
	rev4Decrypted(t, p, `WITH w(a) AS `+inner+` SELECT email, org_id FROM w`, 0, "public.users.email")
}

func TestReview7FoundMergeNotMatchedScope(t *testing.T) {
	p := newTestPlanner(t)
	rev4NoPlaintext(t, p,
		`MERGE INTO app.users t USING users s ON t.id = s.id WHEN NOT MATCHED AND email = '`+rev4Leak+`' THEN INSERT (id) VALUES (s.id)`,
		`MERGE INTO app.users t USING users s ON t.id = s.id WHEN NOT MATCHED THEN INSERT (id, nickname) VALUES (s.id, CASE WHEN email = '`+rev4Leak+`' THEN 'a' END)`,
	)
	// The envelope of users.email copied into a plain column: refuse, as
	// for MERGE reading an encrypted column by its qualified name.
	for _, sql := range []string{
		`MERGE INTO app.users t USING users s ON t.id = s.id WHEN NOT MATCHED THEN INSERT (id, email) VALUES (s.id, email)`,
		`MERGE INTO app.users t USING users s ON t.id = s.id WHEN NOT MATCHED THEN INSERT (id, nickname) VALUES (s.id, email)`,
	} {
		if plan, err := p.Plan(sql, publicPath); err == nil {
			t.Errorf("%s\n planned: %s\n email is s.email (public.users) in PostgreSQL: its ciphertext is copied into app.users", sql, dumpPlan(sql, plan))
		}
	}
}

func TestReview7FoundRejectedPlaintext(t *testing.T) {
	p := newTestPlanner(t)
	// Each is rejected by PostgreSQL 15 after its text reached the log.
	rev4NoPlaintext(t, p,
		// invalid reference to FROM-clause entry for table "u" (HINT: … cannot be referenced from this part of the query)
		`SELECT 1 FROM users u, (SELECT 1 FROM (SELECT 1) z WHERE u.email = '`+rev4Leak+`') s`,
		`SELECT 1 FROM users u JOIN (SELECT 1 AS one WHERE u.ssn = '`+rev4Leak+`') s ON true`,
		// column "email" does not exist (HINT: There is a column named "email" in table "u", but …)
		`SELECT 1 FROM users u, (SELECT 1 FROM (SELECT 1) z WHERE email = '`+rev4Leak+`') s`,
		// column u.EMAIL / "Email" does not exist
		`SELECT 1 FROM users u WHERE u."EMAIL" = '`+rev4Leak+`'`,
		`SELECT 1 FROM users WHERE "Email" = '`+rev4Leak+`'`,
	)
}

// The two LOW findings are not fixed (see docs/LIMITS.md): the statements
// stay refused, with a clear 0A000, and these tests hold them to that.
func TestReview7RefusedUnionIndex(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`SELECT 1 FROM (SELECT email, email_bidx FROM contacts UNION ALL SELECT email, email_bidx FROM contacts) s WHERE s.email = '` + rev4Leak + `'`,
		`WITH RECURSIVE r(e, eb, n) AS (SELECT email, email_bidx, 1 FROM contacts UNION ALL SELECT e, eb, n + 1 FROM r WHERE n < 3) SELECT 1 FROM r WHERE e = '` + rev4Leak + `'`,
	} {
		if e := refusal(t, p, sql, publicPath); e != nil && e.Code != CodeFeatureNotSupported {
			t.Errorf("%s: %v, want 0A000", sql, e)
		}
	}
}

func TestReview7RefusedWholeRowField(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`SELECT 1 FROM users u WHERE (u).email = '` + rev4Leak + `'`,
		`SELECT (u).email, u.org_id FROM users u`,
	} {
		if e := refusal(t, p, sql, publicPath); e != nil && !strings.Contains(e.Hint, "u.column") {
			t.Errorf("%s: hint %q, want one that says to write u.column", sql, e.Hint)
		}
	}
}

func TestReview7Holds(t *testing.T) {
	p := newTestPlanner(t)
	// Rewritten to the blind index.
	for _, sql := range []string{
		// a CTE shadowing a configured table, the table inside its own (non-recursive) body
		`WITH users AS (SELECT * FROM users WHERE email = '` + rev4Leak + `') SELECT 1 FROM users`,
		// an earlier CTE seen by a later one; an outer CTE in a subquery
		`WITH a AS (SELECT email, email_bidx FROM contacts), b AS (SELECT * FROM a) SELECT 1 FROM b WHERE b.email = '` + rev4Leak + `'`,
		`WITH a AS (SELECT email, email_bidx FROM contacts) SELECT 1 FROM orgs WHERE EXISTS (SELECT 1 FROM a WHERE email = '` + rev4Leak + `')`,
		// data-modifying CTE feeding the main query
		`WITH d AS (DELETE FROM contacts WHERE note = 'x' RETURNING email, email_bidx) SELECT 1 FROM d WHERE email = '` + rev4Leak + `'`,
		`WITH u AS (UPDATE contacts SET note = 'y' WHERE id = 1 RETURNING *) DELETE FROM contacts USING u WHERE u.email = '` + rev4Leak + `'`,
		// subquery column alias list over a complete result
		`SELECT 1 FROM (SELECT id, email, email_bidx FROM contacts) AS x(i, e) WHERE x.e = '` + rev4Leak + `'`,
		// VALUES in FROM beside the table
		`SELECT 1 FROM (VALUES (1, 'a')) v(id, email), contacts c WHERE c.email = '` + rev4Leak + `'`,
		// LATERAL seeing an earlier item; correlated subqueries in WHERE, HAVING, the select list
		`SELECT 1 FROM contacts c, LATERAL (SELECT 1 WHERE c.email = '` + rev4Leak + `') s`,
		`SELECT count(*) FROM orgs o HAVING EXISTS (SELECT 1 FROM contacts c WHERE c.email = '` + rev4Leak + `')`,
		`SELECT (SELECT count(*) FROM orgs WHERE c.email = '` + rev4Leak + `') FROM contacts c`,
		// a non-LATERAL subquery seeing the enclosing query, not its sibling of the same name
		`SELECT 1 FROM users x WHERE EXISTS (SELECT 1 FROM contacts x, (SELECT 1 AS one WHERE x.ssn = '` + rev4Leak + `') s)`,
		// ORDER BY an expression: input column, not the output of that name
		`SELECT name AS email FROM users ORDER BY email = '` + rev4Leak + `'`,
		// GROUP BY name: the input column first
		`SELECT count(*) FROM users WHERE email = '` + rev4Leak + `' GROUP BY name`,
		// UPDATE … FROM / DELETE … USING self-joins
		`UPDATE users SET name = 'n' FROM users u2 WHERE u2.email = '` + rev4Leak + `' AND u2.id = users.id`,
		`UPDATE users u SET name = 'n' FROM contacts users WHERE users.email = '` + rev4Leak + `'`,
		`DELETE FROM users USING users u2 WHERE users.email = '` + rev4Leak + `' AND u2.id = users.id`,
		// schema-qualified column reference to an unaliased table
		`SELECT 1 FROM users WHERE public.users.email = '` + rev4Leak + `'`,
		// a CTE named like the INSERT target: the target is the table
		`WITH contacts AS (SELECT 1 AS x) INSERT INTO contacts (email) VALUES ('` + rev4Leak + `')`,
		`WITH users AS (SELECT 1 AS x) UPDATE users SET email = '` + rev4Leak + `' WHERE org_id = 3`,
		// quoted identifiers that fold to the same names
		`SELECT 1 FROM "contacts" c WHERE c."email" = '` + rev4Leak + `'`,
		`SELECT 1 FROM CONTACTS C WHERE C.EMAIL = '` + rev4Leak + `'`,
	} {
		_, r := rev4Plan(t, p, sql)
		if r == "" {
			t.Errorf("%s: refused", sql)
			continue
		}
		if strings.Contains(r, rev4Leak) || !strings.Contains(r, "{") {
			t.Errorf("%s\n planned as %s", sql, r)
		}
	}
	// Refused (or PostgreSQL's own rejection is preceded by pgveil's).
	for _, sql := range []string{
		`SELECT 1 FROM (SELECT email, org_id FROM users UNION SELECT email, org_id FROM users) s`,
		`SELECT 1 FROM (SELECT note AS email FROM contacts UNION ALL SELECT email FROM contacts) s WHERE email = '` + rev4Leak + `'`,
		`SELECT email FROM contacts INTERSECT SELECT email FROM contacts`,
		`SELECT email, org_id FROM users ORDER BY 1`,
		`SELECT phone AS p, org_id FROM users GROUP BY p, org_id`,
		`SELECT DISTINCT ON (email) email, org_id FROM users`,
		`SELECT 1 FROM users NATURAL JOIN contacts`,
		`SELECT ARRAY(SELECT email FROM contacts)`,
		`SELECT 1 FROM users u WHERE (u.email, u.id) = ('` + rev4Leak + `', 1)`,
		`SELECT 1 FROM contacts c WHERE c.email = (SELECT '` + rev4Leak + `' AS email)`,
		`INSERT INTO contacts (email) VALUES ('a') ON CONFLICT (email) DO UPDATE SET note = excluded.email`,
		`INSERT INTO orgs (name) SELECT (SELECT email FROM contacts LIMIT 1)`,
		`UPDATE users u SET name = 'n' WHERE users.email = '` + rev4Leak + `'`,
		`MERGE INTO contacts t USING users s ON t.id = s.id WHEN MATCHED AND s.email = '` + rev4Leak + `' THEN DELETE`,
	} {
		refusal(t, p, sql, publicPath)
	}
	// Outputs decrypted under the right column.
	rev4Decrypted(t, p, `WITH RECURSIVE r(e, n) AS (SELECT email, 1 FROM contacts UNION ALL SELECT e, n + 1 FROM r WHERE n < 3) SELECT e FROM r`, 0, "public.contacts.email")
	rev4Decrypted(t, p, `SELECT x FROM (SELECT (SELECT c.email FROM contacts c LIMIT 1) AS x) s`, 0, "public.contacts.email")
	rev4Decrypted(t, p, `SELECT e FROM (SELECT email, note FROM contacts) AS x(e)`, 0, "public.contacts.email")
	rev4Decrypted(t, p, `INSERT INTO contacts AS k (email) VALUES ($1) RETURNING k.email`, 0, "public.contacts.email")
	rev4Decrypted(t, p, `SELECT note, email FROM contacts UNION ALL SELECT note, email FROM contacts`, 1, "public.contacts.email")
}

// TestReview7FixesHold covers what the fixes allow beside what they refuse:
// output names as PostgreSQL figures them (checked on PostgreSQL 15 with a
// view's pg_attribute), WITH RECURSIVE in reference order, an alias list
// that stops before a * pgveil cannot expand, MERGE … WHEN MATCHED seeing
// both relations.
func TestReview7FixesHold(t *testing.T) {
	for _, c := range []struct{ sql, want string }{
		{`SELECT CASE WHEN true THEN 1 ELSE x END`, "x"},
		{`SELECT CASE WHEN true THEN 1 ELSE 2 END`, "case"},
		{`SELECT CASE WHEN true THEN x END`, "case"},
		{`SELECT (SELECT email FROM t UNION SELECT 'a')`, "email"},
		{`SELECT (VALUES (1))`, "column1"},
		{`SELECT (SELECT e FROM (SELECT email) AS q(e))`, "e"},
		{`SELECT x::text`, "x"},
		{`SELECT 1::text`, "text"},
		{`SELECT (t).email`, "email"},
		{`SELECT (t.*).email`, "email"},
		{`SELECT ARRAY[1]`, "array"},
		{`SELECT EXISTS (SELECT 1)`, "exists"},
		{`SELECT ARRAY(SELECT 1)`, "array"},
		{`SELECT nullif(x, 1)`, "nullif"},
		{`SELECT greatest(x, 1)`, "greatest"},
		{`SELECT least(x, 1)`, "least"},
		{`SELECT current_user`, "current_user"},
		{`SELECT email COLLATE "C"`, "email"},
		{`SELECT -x`, "?column?"},
		{`SELECT (x)`, "x"},
		{`SELECT (SELECT CASE WHEN true THEN email END FROM t)`, "case"},
	} {
		tree, err := pg.Parse(c.sql)
		if err != nil {
			t.Fatal(err)
		}
		rt := tree.Stmts[0].Stmt.GetSelectStmt().TargetList[0].GetResTarget()
		if got := figureColname(rt.Val); got != c.want {
			t.Errorf("%s: named %q, PostgreSQL names it %q", c.sql, got, c.want)
		}
	}

	p := newTestPlanner(t)
	for _, sql := range []string{
		// written in reference order, and not
		`WITH RECURSIVE b AS (SELECT email, email_bidx FROM contacts), a AS (SELECT * FROM b WHERE email = '` + rev4Leak + `') SELECT 1 FROM a`,
		`WITH RECURSIVE a AS (SELECT * FROM c WHERE email = '` + rev4Leak + `'), b AS (SELECT 1 AS one), c AS (SELECT email, email_bidx FROM contacts) SELECT 1 FROM a, b`,
		// the alias list renames only exact positions
		`SELECT 1 FROM (SELECT u.email, u.email_bidx, o.* FROM users u, orgs o) AS x(e) WHERE x.e = '` + rev4Leak + `'`,
		// WHEN MATCHED sees the source too
		`MERGE INTO app.users t USING users s ON t.id = s.id WHEN MATCHED AND t.nickname = 'n' THEN UPDATE SET nickname = 'm' WHEN NOT MATCHED AND s.name = 'x' THEN INSERT (id) VALUES (s.id)`,
		// LATERAL still sees the items before it
		`SELECT 1 FROM users u, LATERAL (SELECT 1 FROM (SELECT 1) z WHERE u.email = '` + rev4Leak + `') s`,
	} {
		if _, r := rev4Plan(t, p, sql); r == "" || strings.Contains(r, rev4Leak) {
			t.Errorf("%s\n planned as %q", sql, r)
		}
	}
	// x(e, eb) renames the blind index too: x.email_bidx would not exist
	// (review 11 made incomplete relations show their index).
	refusal(t, p, `SELECT 1 FROM (SELECT u.email, u.email_bidx, o.* FROM users u, orgs o) AS x(e, eb) WHERE x.e = '`+rev4Leak+`'`, publicPath)
	// A cycle PostgreSQL rejects (mutual recursion) is refused.
	refusal(t, p, `WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT * FROM a UNION ALL SELECT email FROM contacts) SELECT 1 FROM a`, publicPath)
	// WHEN NOT MATCHED naming the target's encrypted column is refused.
	e := refusal(t, p, `MERGE INTO users t USING app.users s ON t.id = s.id WHEN NOT MATCHED AND t.email = '`+rev4Leak+`' THEN INSERT (id) VALUES (s.id)`, publicPath)
	if !strings.Contains(e.Hint, "NOT MATCHED") {
		t.Errorf("hint %q does not say why", e.Hint)
	}
}
