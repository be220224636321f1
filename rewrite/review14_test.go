package rewrite

// Review 14 of 9f2b507: statements that compute on an encrypted column's
// value inside the server (DISTINCT, GROUP BY, set operations, aggregates,
// windows, ORDER BY by position, name or expression, through subqueries,
// CTEs, views and renamed columns), values copied inside the server
// (INSERT … SELECT, UPDATE … FROM, SET (a, b) = (SELECT …), MERGE, CTE-fed
// DML, RETURNING into another statement), implicit comparisons (IN/ANY
// over subqueries and arrays, row comparisons, EXISTS, NATURAL/USING
// joins, CASE, NULLIF, GREATEST, COALESCE, LIKE, casts), and parameters
// whose type the server infers from an encrypted column. Checked against
// PostgreSQL 15 on a scratch cluster (columns of configured tables as
// bytea or text, orgs(id, name) unknown to pgveil).
//
// All fixed in the commit after it: a value written to a blind-indexed
// column gets its index after the parentheses around it (parenEnd,
// values.go; writeValue, insert.go; the EXCLUDED copy, update.go); the
// columns of the NULL-filled side of an outer join whose origin is a
// relation outside that side lose it (nullSide, from.go), so they no
// longer pair with the original's value or index; a NULL test of a
// parameter with a special use reads that use's parameter (nullTests,
// assignParams, analyzer.go), and one in the WHERE of a looked-up UPDATE
// whose special use is outside it is refused (lookupNullTests); array
// literals and text-format array parameters are read as array_in reads
// them (parseTextArray, proxy/array.go); a declared tenant parameter is
// assigned to the key_context column's type (canon.TenantParam).
//
// Failing at the time of the review (defects):
//   TestReview14FoundParenValueIndex HIGH (physical text column; MEDIUM
//       for bytea): a value written to a blind-indexed column inside
//       parentheses (SET email = ($1), SET email = ('x'), VALUES (($1)),
//       ON CONFLICT … SET email = (EXCLUDED.email), SET email = (NULL))
//       gets its blind index inserted before the closing parenthesis:
//       writeValue (insert.go) and the EXCLUDED copy (update.go) insert
//       at the value's own end. UPDATE contacts SET email = ($1) goes out
//       as SET email = ($1, email_bidx = $2): a row of the envelope and a
//       boolean. For a bytea column PostgreSQL rejects it ("is of type
//       bytea but expression is of type record"); for a text column (the
//       in-place adoption layout, 'pgv1:' envelopes) the record's text
//       output is an assignment cast: PostgreSQL 15 stores
//       '(pgv1:…,f)' and leaves email_bidx as it was, so the value no
//       longer opens (PV003) and the row is found by its old value. In
//       VALUES the index lands inside the value's parentheses: one value
//       (a row) for two columns, "INSERT has more target columns than
//       expressions".
//   TestReview14FoundNullableLateralIndex HIGH (a wrong row matched): an
//       encrypted column and its blind index match when both come from the
//       same row (rel.carriesIndex, view.go: the same origin). A LATERAL
//       subquery on the nullable side of an outer join that copies one of
//       them from the preserved side keeps that origin, but it is NULL
//       where the join finds no row: in SELECT * FROM (SELECT c.email,
//       z.email_bidx FROM contacts c LEFT JOIN LATERAL (SELECT
//       c.email_bidx WHERE false) z ON true) w WHERE email = 'x' PostgreSQL
//       compares c.email (the row is found) while pgveil compares
//       z.email_bidx, always NULL (no row); with the roles swapped (z.email
//       NULL, c.email_bidx set) pgveil returns rows whose email is NULL,
//       which PostgreSQL never matches. Same for RIGHT and FULL joins.
//   TestReview14FoundNullTestParam HIGH (plaintext reaches the server):
//       a parameter compared with (or assigned to) an encrypted column and
//       also tested for NULL, sqlc's narg pattern WHERE ($1::text IS NULL
//       OR email = $1), keeps the client's $1 as plain data for the test:
//       the Bind carries the value in plaintext beside its blind index
//       (the server logs it with log_statement, auto_explain or
//       log_parameter_max_length_on_error). A NULL test gives the same
//       answer on the value's envelope or index (NULL exactly when the
//       value is NULL), so it can use the rewritten parameter.
//       TestReview14FoundNullTestLookup: in an UPDATE whose tenant is
//       looked up, the lookup runs the client's WHERE alone, so a NULL
//       test there of a value only written (SET phone = $1 WHERE … AND $1
//       IS NOT NULL) sends it in plaintext with the lookup's Bind.
//   proxy/review14_test.go TestReview14FoundArrayLiteral HIGH (a wrong row
//       matched or written): an array literal compared with = ANY / <> ALL
//       (pgx's simple protocol sends a bound array as one) and a text-format
//       array parameter are split by pgtype's parser of the server's own
//       output, not by PostgreSQL's array_in: whitespace around unquoted
//       elements is kept ('{a, b}' indexes ' b', PostgreSQL compares 'b'),
//       around quoted ones it becomes part of the element with the quotes
//       ('{ "b c" }'), backslash escapes outside quotes are kept
//       ('{a\,b}' is 'a,b' in PostgreSQL, pgveil 'a\' and 'b'), NULL in
//       another case is the string ('{null}'), a space after a quoted
//       element is an element of its own ('{"a" }'), and malformed
//       literals ('{a,}', '{"a"b}') are accepted. ssn <> ALL('{a, null}')
//       is NULL (no row) in PostgreSQL; pgveil matches every row but 'a'
//       and 'null', so a DELETE with it deletes them.
//   integration/enc_review14_test.go TestEncReview14FoundDeclaredTenant
//       HIGH (a value written that never opens): a tenant parameter the
//       client declares with another type than the key_context column's
//       (numeric for a bigint org_id, pgjdbc's setBigDecimal) named the
//       tenant by the declared type's text (proxy tenantFromRef,
//       canon.TenantText): 9142.6 sealed the row's values under tenant
//       "9142.6" while PostgreSQL's assignment stored org_id 9143; the
//       INSERT succeeds and every read of the row fails (PV001). Fixed:
//       canon.TenantParam assigns the value to the column's type first
//       (fromDeclared, as for encrypted values: a fraction is refused).
//   TestReview14FoundOrdinalHidden LOW: ORDER BY 2 over a one-column
//       select list of a tenant table ran, sorted by the hidden tenant
//       field pgveil appends (PostgreSQL: 42P10). Fixed: an ordinal
//       beyond a complete select list is refused with PostgreSQL's error
//       (outputOrInput, select.go).
//   TestReview14FoundSearchCycle MEDIUM (wrong results): WITH RECURSIVE
//       … SEARCH DEPTH/BREADTH FIRST BY e SET ord and … CYCLE e SET
//       is_cycle USING path over an encrypted column were planned as
//       plain: the server orders by ciphertext (ord), detects a cycle only
//       where an envelope repeats (equal values from other rows encrypt
//       differently: no cycle found, PostgreSQL 15 stops) and returns the
//       path column's envelopes sealed. Fixed: refused (searchCycle,
//       cte.go), as ORDER BY and DISTINCT on the column are.
//   TestReview14FoundMergePlainTarget HIGH (plaintext reaches the
//       server): merge (utility.go) skips each WHEN … UPDATE SET item when
//       the target is not a configured table (the loop's "t == nil"
//       continue comes before the check of the value), so MERGE INTO orgs
//       … UPDATE SET name = CASE WHEN u.email = '…' THEN … END went out
//       unchanged, the literal in plaintext (PostgreSQL compares it as
//       bytea with the envelope), and SET name = u.phone copied envelopes
//       into a plain column. Fixed: the value is checked whatever the
//       target (strict "MERGE": any encrypted column refuses).
//
// Kept (documented): a parameter also used as plain data
// (WHERE email = $1 OR note = $1, VALUES ($1, $1) into an encrypted and a
// plain column) reaches the server in plaintext for that use, as
// docs/SQL.md says; only its NULL tests are rewritten. LOW, kept (needless
// refusals, fail closed): a blind index a LATERAL subquery reads from
// another reference to the same table (c2.id = c.id) is not taken as the
// row's; JOIN USING (email_bidx) of two views seen through; SET email =
// email; a tenant parameter declared numeric or float with a fraction,
// which PostgreSQL would round (refused now instead of sealed under the
// wrong tenant).
//
// Attacks withstood: TestReview14Holds.

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v5"
)

// rev14Render renders a plan with each slot as a bytea literal, as the
// proxy fills it.
func rev14Render(t *testing.T, sql string, plan *Plan) string {
	t.Helper()
	r, err := plan.Render(sql, func(st *Stmt, s *Slot) (string, error) {
		return ByteaLiteral([]byte("v")), nil
	})
	if err != nil {
		t.Fatalf("%s: render: %v", sql, err)
	}
	return r
}

func TestReview14FoundParenValueIndex(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`UPDATE contacts SET email = ($1) WHERE id = 2`,
		`UPDATE contacts SET email = ('x') WHERE id = 2`,
		`UPDATE contacts SET email = (($1)) WHERE id = 2`,
		`UPDATE contacts SET email = ($1::text) WHERE id = 2`,
		`UPDATE contacts SET email = /* c */ ( $1 ) /* d */, score = 1 WHERE id = 2`,
		`UPDATE contacts SET email = (NULL) WHERE id = 2`,
		`UPDATE users SET email = ($1) WHERE org_id = 1`,
		`INSERT INTO contacts (email) VALUES (($1))`,
		`INSERT INTO contacts (email) VALUES (('x'))`,
		`INSERT INTO contacts (email, score) VALUES (($1), 1), ((('y')), 2)`,
		`INSERT INTO contacts (score, email) VALUES (1, ($1))`,
		`INSERT INTO contacts (email) VALUES ((NULL))`,
		`INSERT INTO contacts (email, score) VALUES ($1, 1) ON CONFLICT (email_bidx) DO UPDATE SET email = (excluded.email)`,
		`INSERT INTO contacts (email, score) VALUES ($1, 1) ON CONFLICT (email_bidx) DO UPDATE SET email = ($2)`,
	} {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			t.Errorf("%s: %v", sql, err)
			continue
		}
		r := rev14Render(t, sql, plan)
		tree, err := pg.Parse(r)
		if err != nil {
			t.Errorf("%s\n renders as %s: %v", sql, r, err)
			continue
		}
		st := tree.Stmts[0].Stmt
		var targets []*pg.Node
		if u := st.GetUpdateStmt(); u != nil {
			targets = u.TargetList
		}
		if ins := st.GetInsertStmt(); ins != nil {
			if oc := ins.GetOnConflictClause(); oc != nil {
				targets = oc.TargetList
			}
			for _, row := range ins.SelectStmt.GetSelectStmt().ValuesLists {
				if n := len(row.GetList().Items); n != len(ins.Cols) {
					t.Errorf("%s\n renders as %s: %d values for %d columns", sql, r, n, len(ins.Cols))
				}
			}
		}
		set := map[string]bool{}
		for _, n := range targets {
			rt := n.GetResTarget()
			set[rt.Name] = true
			if rt.Name == "email" && rt.Val.GetRowExpr() != nil {
				t.Errorf("%s\n renders as %s: email is assigned a row", sql, r)
			}
		}
		if len(targets) > 0 && !set["email_bidx"] {
			t.Errorf("%s\n renders as %s: email_bidx is not set beside email", sql, r)
		}
	}
}

func TestReview14FoundNullableLateralIndex(t *testing.T) {
	p := reviewPlanner(t)
	for _, sql := range []string{
		`SELECT * FROM (SELECT c.email, z.email_bidx FROM contacts c LEFT JOIN LATERAL (SELECT c.email_bidx WHERE false) z ON true) w WHERE email = 'x'`,
		`SELECT * FROM (SELECT z.email, c.email_bidx FROM contacts c LEFT JOIN LATERAL (SELECT c.email WHERE false) z ON true) w WHERE email = 'x'`,
		`SELECT * FROM (SELECT c.email, z.email_bidx FROM contacts c LEFT JOIN LATERAL (SELECT c.email_bidx) z ON false) w WHERE email = 'x'`,
		`SELECT * FROM (SELECT c.email, z.b AS email_bidx FROM contacts c LEFT JOIN LATERAL (SELECT c.email_bidx AS b LIMIT 0) z ON true) w WHERE email IN ('x')`,
		`SELECT * FROM (SELECT c.email, z.email_bidx FROM contacts c, LATERAL (SELECT c.email_bidx WHERE false) z RIGHT JOIN orgs o ON true) w WHERE email = 'x'`,
		`SELECT * FROM (SELECT c.email, z.email_bidx FROM contacts c, LATERAL (SELECT c.email_bidx WHERE false) z FULL JOIN orgs o ON true) w WHERE email = 'x'`,
		`SELECT * FROM (SELECT c.email, j.email_bidx FROM contacts c LEFT JOIN (orgs o CROSS JOIN LATERAL (SELECT c.email_bidx) z) j ON false) w WHERE email = 'x'`,
		`SELECT c.id FROM contacts c WHERE EXISTS (SELECT 1 FROM (SELECT c.email, z.email_bidx FROM orgs o LEFT JOIN LATERAL (SELECT c.email_bidx WHERE false) z ON true) w WHERE w.email = 'x')`,
		`SELECT * FROM contacts c WHERE c.email IN (SELECT email FROM (SELECT c2.email, z.email_bidx FROM contacts c2 LEFT JOIN LATERAL (SELECT c2.email_bidx WHERE false) z ON true) w)`,
	} {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			continue // refused: right
		}
		t.Errorf("%s\n planned as %s the blind index compared is NULL where the value is not (or the reverse): PostgreSQL compares the value", sql, dumpPlan(sql, plan))
	}
}

func TestReview14FoundNullTestParam(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`SELECT id FROM contacts WHERE ($1::text IS NULL OR email = $1)`,
		`SELECT id FROM contacts WHERE (email = $1 OR $1 IS NULL)`,
		`SELECT id FROM contacts WHERE email = $1 AND $1::varchar IS NOT NULL`,
		`SELECT id FROM contacts WHERE (CAST($1 AS text) IS NULL OR email = $1) AND ($2::text IS NULL OR email <> $2)`,
		`SELECT id FROM users WHERE ($1::text IS NULL OR email = $1) AND ($1::text IS NULL OR ssn = $1)`,
		`UPDATE contacts SET email = $1 WHERE id = $2 AND $1 IS NOT NULL`,
		`SELECT id FROM contacts WHERE ($1::text[] IS NULL OR email = ANY($1))`,
		`SELECT id FROM contacts WHERE ($1 IS NULL) IS FALSE AND email = $1`,
	} {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			t.Errorf("%s: %v", sql, err)
			continue
		}
		st := plan.Stmts[0]
		special := map[int]bool{}
		for _, pr := range st.Params {
			if pr.Action != Pass {
				special[pr.Client] = true
			}
		}
		for i, pr := range st.Params {
			if pr.Action == Pass && special[pr.Client] && strings.Contains(strings.Join(st.Text, " "), "$"+strconv.Itoa(i+1)) {
				t.Errorf("%s\n planned as %s client parameter $%d reaches the server as plain data beside its blind index or envelope", sql, dumpPlan(sql, plan), pr.Client+1)
			}
		}
	}
}

// TestReview14FoundOrdinalHidden (LOW): ORDER BY / GROUP BY / DISTINCT
// ON k beyond the select list is an error in PostgreSQL (42P10); with the
// hidden tenant field appended after the select list, SELECT email FROM
// users ORDER BY 2 ran, sorted by org_id.
func TestReview14FoundOrdinalHidden(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`SELECT email FROM users ORDER BY 2`,
		`SELECT id, email FROM users ORDER BY 3 DESC`,
		`SELECT DISTINCT ON (2) email FROM users ORDER BY 2`,
		`SELECT email FROM users ORDER BY 0`,
	} {
		plan, err := p.Plan(sql, publicPath)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeInvalidColumnRef {
			got := ""
			if plan != nil {
				got = dumpPlan(sql, plan)
			}
			t.Errorf("%s: %v\n%s want 42P10 (position not in select list)", sql, err, got)
		}
	}
	// Inside a window or an aggregate, an integer is a constant.
	for _, sql := range []string{
		`SELECT id, row_number() OVER (ORDER BY 5) FROM contacts`,
		`SELECT array_agg(id ORDER BY 3) FROM contacts`,
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}

// TestReview14FoundSearchCycle: SEARCH … BY and CYCLE of a recursive CTE
// over an encrypted column compute on ciphertext in the server.
func TestReview14FoundSearchCycle(t *testing.T) {
	p := reviewPlanner(t)
	for _, sql := range []string{
		`WITH RECURSIVE r(e, n) AS (SELECT email, 1 FROM contacts UNION ALL SELECT e, n + 1 FROM r WHERE n < 3) CYCLE e SET is_cycle USING path SELECT * FROM r`,
		`WITH RECURSIVE r(e, n) AS (SELECT email, 1 FROM contacts UNION ALL SELECT e, n + 1 FROM r WHERE n < 3) SEARCH DEPTH FIRST BY e SET ord SELECT n FROM r ORDER BY ord`,
		`WITH RECURSIVE r(i, e) AS (SELECT id, email FROM contacts UNION ALL SELECT r.i + 1, c.email FROM r JOIN contacts c ON c.user_id = r.i) CYCLE i, e SET is_cycle USING path SELECT i FROM r`,
		`WITH RECURSIVE r AS (SELECT id, email, org_id FROM users UNION ALL SELECT r.id + 1, r.email, r.org_id FROM r WHERE r.id < 3) SEARCH BREADTH FIRST BY email SET ord SELECT id FROM r ORDER BY ord`,
	} {
		if plan, err := p.Plan(sql, publicPath); err == nil {
			t.Errorf("%s\n planned as %s the server orders ciphertext or detects cycles by comparing envelopes", sql, dumpPlan(sql, plan))
		}
	}
	// Over plain columns they stay.
	if _, err := p.Plan(`WITH RECURSIVE r(i, e) AS (SELECT id, email FROM contacts UNION ALL SELECT i + 1, e FROM r WHERE i < 3) CYCLE i SET is_cycle USING path SELECT * FROM r`, publicPath); err != nil {
		t.Error(err)
	}
}

// TestReview14FoundMergePlainTarget: MERGE into a table pgveil does not
// configure skipped the values of its UPDATE SET list.
func TestReview14FoundMergePlainTarget(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`MERGE INTO orgs o USING users u ON o.id = u.id WHEN MATCHED THEN UPDATE SET name = CASE WHEN u.email = '` + rev4Leak + `' THEN 'a' END`,
		`MERGE INTO orgs o USING orgs s ON o.id = s.id WHEN MATCHED THEN UPDATE SET name = (SELECT 'a' FROM contacts c WHERE c.email = '` + rev4Leak + `')`,
		`MERGE INTO orgs o USING users u ON o.id = u.id WHEN MATCHED THEN UPDATE SET name = u.phone`,
		`MERGE INTO orgs o USING contacts c ON o.id = c.id WHEN MATCHED THEN UPDATE SET name = c.email`,
	} {
		if plan, err := p.Plan(sql, publicPath); err == nil {
			t.Errorf("%s\n planned as %s the server compares or copies the encrypted column (a literal in plaintext)", sql, dumpPlan(sql, plan))
		}
	}
	if _, err := p.Plan(`MERGE INTO orgs o USING users u ON o.id = u.id WHEN MATCHED THEN UPDATE SET name = u.name`, publicPath); err != nil {
		t.Error(err)
	}
}

// TestReview14FoundNullTestLookup: the tenant lookup runs the UPDATE's
// WHERE alone, where a NULL test of a value written to an encrypted column
// would read the client's value as plain data: refused.
func TestReview14FoundNullTestLookup(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`UPDATE users SET phone = $1 WHERE id = $2 AND $1 IS NOT NULL`,
		`UPDATE users SET email = $1 WHERE id = $2 AND ($1::text IS NULL) IS FALSE`,
	} {
		if plan, err := p.Plan(sql, publicPath); err == nil {
			t.Errorf("%s\n planned as %s the lookup sends $1 as plain data", sql, dumpPlan(sql, plan))
		}
	}
}

func TestReview14Holds(t *testing.T) {
	p := reviewPlanner(t)
	// Refused: the server would deduplicate, order, group, aggregate,
	// compare or copy ciphertext.
	for _, sql := range []string{
		// duplicates and grouping, also through renames
		`SELECT DISTINCT e FROM (SELECT email AS e, org_id FROM users) s`,
		`SELECT e FROM (SELECT email AS e, org_id FROM users) s GROUP BY 1`,
		`SELECT e, org_id FROM (SELECT email AS e, org_id FROM users) s ORDER BY 1`,
		`SELECT email AS id FROM contacts ORDER BY id`,
		`SELECT email AS score FROM contacts ORDER BY score`,
		`SELECT count(*) FROM contacts c GROUP BY c`,
		`SELECT count(*) FROM contacts c GROUP BY ROLLUP(c)`,
		`SELECT DISTINCT ON (c) id FROM contacts c`,
		`SELECT row_number() OVER (PARTITION BY c) FROM contacts c`,
		`SELECT row_number() OVER w FROM contacts WINDOW w AS (ORDER BY email)`,
		`SELECT row_number() OVER (w ORDER BY id) FROM contacts WINDOW w AS (PARTITION BY email)`,
		`SELECT row_number() OVER w FROM contacts c WINDOW w AS (PARTITION BY c.email_bidx ORDER BY c.email)`,
		`SELECT DISTINCT * FROM contacts`,
		`SELECT DISTINCT c.* FROM contacts c`,
		`SELECT * FROM contacts ORDER BY contacts`,
		`SELECT count(DISTINCT c) FROM contacts c`,
		`SELECT * FROM (SELECT email FROM contacts UNION SELECT email FROM contacts) s`,
		`SELECT email FROM contacts UNION ALL SELECT email FROM contacts ORDER BY 1`,
		`SELECT email AS x FROM contacts UNION ALL SELECT email FROM contacts ORDER BY x`,
		`(SELECT id, email FROM contacts ORDER BY email LIMIT 1) UNION ALL SELECT id, email FROM contacts`,
		`SELECT * FROM (SELECT id, email FROM contacts) s(a, b) ORDER BY b`,
		`WITH w(a, b) AS (SELECT id, email FROM contacts) SELECT count(DISTINCT b) FROM w`,
		`WITH w AS (SELECT id AS email, email AS id FROM contacts) SELECT * FROM w ORDER BY id`,
		`WITH u AS (DELETE FROM contacts RETURNING email AS id) SELECT * FROM u GROUP BY id`,
		`SELECT email FROM contacts GROUP BY (1)`,
		`SELECT array_agg(id ORDER BY email) FROM contacts`,
		`SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY email) FROM contacts`,
		`SELECT jsonb_agg(DISTINCT c.email) FROM contacts c`,
		`SELECT json_agg(json_build_object('e', c.email) ORDER BY c.email) FROM contacts c`,
		`SELECT jsonb_object_agg(email, id) FROM contacts`,
		`SELECT min(c.email), max(c.email) FROM contacts c`,
		`SELECT string_agg(c.note, ',' ORDER BY c.email) FROM contacts c`,
		`SELECT rank() OVER (ORDER BY email) FROM contacts`,
		`SELECT email FROM contacts c WHERE email IN (SELECT email FROM contacts INTERSECT SELECT email FROM contacts)`,
		// values copied inside the server
		`INSERT INTO users (org_id, email, email_bidx) SELECT 2, email, email_bidx FROM users WHERE org_id = 1`,
		`INSERT INTO users (org_id, phone) SELECT org_id, email FROM users`,
		`INSERT INTO contacts (note) SELECT email FROM contacts`,
		`UPDATE users SET phone = api_token`,
		`UPDATE users SET (phone, api_token) = (SELECT api_token, phone FROM users u2 WHERE u2.id = users.id)`,
		`UPDATE contacts c SET email = c2.email, email_bidx = c2.email_bidx FROM contacts c2 WHERE c2.id = c.id + 1`,
		`UPDATE contacts c SET email = (SELECT u.email FROM users u WHERE u.id = c.user_id)`,
		`MERGE INTO contacts c USING users u ON c.user_id = u.id WHEN MATCHED THEN UPDATE SET email = u.email`,
		`MERGE INTO contacts c USING contacts s ON c.id = s.id + 1 WHEN NOT MATCHED THEN INSERT (email) VALUES (s.email)`,
		`WITH i AS (INSERT INTO contacts (email) VALUES ($1) RETURNING email) INSERT INTO users (org_id, email) SELECT 1, email FROM i`,
		`WITH d AS (DELETE FROM contacts RETURNING *) INSERT INTO contacts SELECT * FROM d`,
		`WITH v(e) AS (VALUES ('x')) INSERT INTO contacts (email) SELECT e FROM v`,
		`WITH v AS (SELECT 'x' AS e) UPDATE contacts SET email = v.e FROM v`,
		`INSERT INTO contacts (email) SELECT $1::text`,
		`UPDATE contacts SET (email, score) = (SELECT $1, 1)`,
		`UPDATE contacts SET email = NULLIF($1, '')`,
		`UPDATE contacts SET note = email`,
		`INSERT INTO contacts (note) VALUES ((SELECT email FROM contacts LIMIT 1))`,
		// implicit comparisons
		`SELECT email FROM contacts WHERE nullif(email, 'x') IS NULL`,
		`SELECT email FROM contacts WHERE greatest(email, 'x') = 'y'`,
		`SELECT email FROM contacts WHERE coalesce(email, 'x') = 'x'`,
		`SELECT CASE email WHEN 'x' THEN 1 END FROM contacts`,
		`SELECT email FROM contacts WHERE (email, id) IN (SELECT email, id FROM contacts)`,
		`SELECT email FROM contacts WHERE ROW(email) = ROW($1)`,
		`SELECT * FROM contacts c NATURAL JOIN users u`,
		`SELECT * FROM contacts c JOIN users u USING (email)`,
		`SELECT email FROM contacts WHERE email = ANY(ARRAY(SELECT email FROM contacts))`,
		`SELECT email FROM contacts WHERE email IN (SELECT $1::text)`,
		`SELECT email FROM contacts WHERE email = ANY(VALUES ('x'))`,
		`SELECT email FROM contacts WHERE email = coalesce($1, 'x')`,
		`SELECT email FROM contacts WHERE email = CASE WHEN $1 THEN 'x' ELSE 'y' END`,
		`SELECT email FROM contacts WHERE email = 'x' || $1`,
		`SELECT email FROM contacts WHERE email = ANY(ARRAY[[$1]])`,
		`SELECT email FROM contacts WHERE email = ANY(string_to_array($1, ','))`,
		`SELECT email FROM contacts WHERE email = ALL(ARRAY[$1])`,
		`SELECT email FROM contacts WHERE email = $1::bytea`,
		`SELECT email FROM contacts UNION ALL SELECT $1`,
		`SELECT CASE WHEN id = 1 THEN email ELSE $1 END FROM contacts`,
		`SELECT * FROM contacts c WHERE (SELECT c.email) = $1`,
		`SELECT * FROM contacts c WHERE $1 IN (SELECT email FROM contacts)`,
		`SELECT * FROM contacts c WHERE 'x' = ANY(ARRAY[email])`,
		`SELECT * FROM contacts c WHERE email = 'x' COLLATE "C"`,
		`SELECT * FROM contacts c WHERE email = +'1'`,
		`SELECT c.email FROM contacts c JOIN users u ON NULLIF(u.email, c.email) IS NULL`,
		`SELECT c.email FROM contacts c JOIN users u ON u.email IN (c.email, 'x')`,
		`SELECT c.email FROM contacts c JOIN users u ON u.ssn = c.email`,
		`SELECT c.email FROM contacts c WHERE c.email IN (SELECT u.email FROM users u UNION ALL SELECT 'x')`,
		`SELECT email FROM contacts c WHERE email IN (SELECT email FROM app_user)`,
		`SELECT * FROM (SELECT email, email_bidx FROM contacts UNION ALL SELECT email_bidx, email FROM contacts) w WHERE email = 'x'`,
		`SELECT * FROM (SELECT email, max(email_bidx) AS email_bidx FROM contacts GROUP BY email) w WHERE email = 'x'`,
		`SELECT * FROM (SELECT email, lag(email_bidx) OVER () AS email_bidx FROM contacts) w WHERE email = 'x'`,
		`SELECT * FROM (SELECT c.email, z.email_bidx FROM contacts c, (SELECT email_bidx FROM contacts) z) w WHERE email = 'x'`,
		`SELECT * FROM (SELECT email_bidx AS email, email AS email_bidx FROM contacts) x WHERE email_bidx = 'y'`,
		`SELECT * FROM contacts x(a, b, email_bidx, c) WHERE email_bidx = 'y'`,
		`WITH u AS (UPDATE contacts SET note = 'x' RETURNING email) SELECT * FROM u WHERE email = 'z'`,
		`SELECT * FROM (SELECT c.email, z.email_bidx FROM contacts c LEFT JOIN contacts z ON z.id = c.id) w WHERE email = 'x'`,
		`SELECT email FROM contacts INTERSECT ALL SELECT email FROM contacts`,
		`SELECT id FROM contacts c WHERE c.email IN (SELECT email FROM contacts EXCEPT ALL SELECT email FROM contacts)`,
		`WITH RECURSIVE r(e) AS (SELECT email FROM contacts UNION SELECT e FROM r) SELECT * FROM r`,
		`SELECT email FROM contacts UNION ALL SELECT email FROM app_user`,
		`SELECT * FROM (SELECT email, email_bidx FROM contacts UNION ALL SELECT email, email_bidx FROM contacts) s WHERE email = 'x'`,
		`SELECT * FROM (SELECT c.email, z.email_bidx FROM contacts c, unnest(ARRAY[c.email_bidx]) z(email_bidx)) w WHERE email = 'x'`,
		`MERGE INTO orgs o USING users u ON o.id = u.id WHEN MATCHED THEN UPDATE SET (name, id) = (SELECT 'a', 1 FROM contacts c WHERE c.email = 'x')`,
		`MERGE INTO orgs o USING users u ON o.id = u.id WHEN NOT MATCHED THEN INSERT (id, name) VALUES (1, (SELECT 'a' FROM contacts c WHERE c.email = 'x'))`,
		`INSERT INTO orgs (name) SELECT email FROM contacts`,
		`UPDATE orgs SET name = c.email FROM contacts c WHERE c.id = orgs.id`,
		`INSERT INTO contacts (email, score) VALUES ($1, $2) ON CONFLICT (email_bidx) DO UPDATE SET email = excluded.note`,
		`INSERT INTO users (org_id, email, phone) VALUES ($1, $2, $3) ON CONFLICT (email_bidx) DO UPDATE SET api_token = excluded.phone`,
		"SELECT email FROM contacts WHERE email = 'x' -- c\n'y'",
	} {
		if plan, err := p.Plan(sql, publicPath); err == nil {
			t.Errorf("%s\n planned as %s want a refusal", sql, dumpPlan(sql, plan))
		}
	}
	// Rewritten as PostgreSQL evaluates them on a plaintext schema.
	for sql, want := range map[string]string{
		`SELECT * FROM (SELECT id AS email, email AS id, email_bidx FROM contacts) w WHERE id = 'x'`:                                                        `WHERE email_bidx = {index:email}`,
		`SELECT * FROM (SELECT c.email, z.email_bidx FROM contacts c, LATERAL (SELECT c.email_bidx) z) w WHERE email = 'x'`:                                 `WHERE email_bidx = {index:email}`,
		`SELECT * FROM (SELECT z.email, z.email_bidx FROM orgs o LEFT JOIN LATERAL (SELECT email, email_bidx FROM contacts) z ON true) w WHERE email = 'x'`: `WHERE email_bidx = {index:email}`,
		`WITH x(e, email_bidx) AS (SELECT email, email_bidx FROM contacts) SELECT * FROM x WHERE e = 'y'`:                                                   `WHERE email_bidx = {index:email}`,
		`WITH u AS (DELETE FROM contacts RETURNING *) SELECT * FROM u WHERE email = 'z'`:                                                                    `WHERE email_bidx = {index:email}`,
		`SELECT c.email FROM contacts c JOIN users u ON u.email IS NOT DISTINCT FROM c.email`:                                                               `u.email_bidx IS NOT DISTINCT FROM c.email_bidx`,
		`SELECT * FROM contacts c WHERE email IN (('x'), ('y'))`:                                                                                            `email_bidx IN (({index:email}), ({index:email}))`,
		`SELECT count(*) FILTER (WHERE c.email = 'x') FROM contacts c`:                                                                                      `c.email_bidx = {index:email}`,
		`UPDATE contacts SET email = (COALESCE($1, email))`:                                                                                                 `email_bidx = COALESCE($2, email_bidx)`,
		`SELECT id FROM contacts WHERE $1::text IS NULL`:                                                                                                    `$1::text IS NULL`,
	} {
		if _, r := rev4Plan(t, p, sql); !strings.Contains(r, want) {
			t.Errorf("%s\n planned as %q\n want %s", sql, r, want)
		}
	}
}
