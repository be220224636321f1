package rewrite

// Review 6 of 434c835 (a JOIN's ON planned against the join's own sides
// and the enclosing queries only; relations inside an aliased JOIN not
// found by name outside it; q.col refused 42703 on an incomplete relation
// named like a configured table), planner side. Every resolution below was
// checked against PostgreSQL 15 (EXPLAIN VERBOSE).
//
// Failing at the time of the review (defects):
//   TestReview6FoundOnScopeRejectedPlaintext MEDIUM (plaintext in the log of
//                                   a statement the server rejects;
//                                   introduced by 434c835): the rule that
//                                   refuses q.col / col naming nothing in
//                                   scope when an encrypted column of that
//                                   name is in scope (encryptedNamed) now
//                                   looks only at the ON clause's narrowed
//                                   scope. An encrypted column of an earlier
//                                   comma FROM item, of the UPDATE/DELETE
//                                   target or of the MERGE target, named in a
//                                   FROM join's ON, is invisible to
//                                   PostgreSQL there ("invalid reference to
//                                   FROM-clause entry", "column does not
//                                   exist" with a HINT naming the table):
//                                   the statement fails, but only after its
//                                   text, with the literal in plaintext,
//                                   reached the server and its log
//                                   (log_min_error_statement = error). The
//                                   parent commit rewrote these literals to
//                                   the blind index. pgveil refuses the same
//                                   query only by luck, when the join's own
//                                   sides happen to have an encrypted column
//                                   of that name (orgs o JOIN contacts c ON
//                                   u.email = … is refused, orgs o JOIN orgs
//                                   o2 ON u.email = … is sent).
// Attacks withstood: TestReview6Holds.

import (
	"strings"
	"testing"
)

func TestReview6FoundOnScopeRejectedPlaintext(t *testing.T) {
	p := newTestPlanner(t)
	// Each is rejected by PostgreSQL 15 after logging the statement.
	rev4NoPlaintext(t, p,
		// an earlier comma item, qualified (invalid reference to FROM-clause entry for table "u")
		`SELECT 1 FROM users u, orgs o JOIN orgs o2 ON u.email = '`+rev4Leak+`'`,
		`SELECT 1 FROM users u, orgs o JOIN LATERAL (SELECT 1 AS one) s ON u.email = '`+rev4Leak+`'`,
		`SELECT 1 FROM users u, generate_series(1, 2) g JOIN orgs o ON u.email = '`+rev4Leak+`'`,
		`SELECT 1 FROM users u, orgs o JOIN orgs o2 ON u.phone = '`+rev4Leak+`'`,
		// a correlated subquery inside the ON
		`SELECT 1 FROM users u, orgs o JOIN orgs o2 ON o2.id = ANY (SELECT 1 FROM (SELECT 1) z WHERE u.email = '`+rev4Leak+`')`,
		// a CTE reference as the earlier comma item
		`WITH w AS (SELECT email FROM users) SELECT 1 FROM w, orgs o JOIN orgs o2 ON w.email = '`+rev4Leak+`'`,
		// bare names (column "ssn" does not exist; HINT: there is a column named "ssn" in table "u")
		`SELECT 1 FROM users u, orgs o JOIN orgs o2 ON ssn = '`+rev4Leak+`'`,
		`SELECT 1 FROM orgs WHERE EXISTS (SELECT 1 FROM users u, orgs o JOIN orgs o2 ON email = '`+rev4Leak+`')`,
		// the outer x (contacts) has no ssn: column x.ssn does not exist
		`SELECT 1 FROM contacts x WHERE EXISTS (SELECT 1 FROM users x, orgs o JOIN orgs o2 ON x.ssn = '`+rev4Leak+`')`,
		// a whole-row field: column "u" does not exist
		`SELECT 1 FROM users u, orgs o JOIN orgs o2 ON (u).email = '`+rev4Leak+`'`,
		// the UPDATE/DELETE target is not visible in a FROM/USING join's ON
		`UPDATE contacts SET note = 'n' FROM orgs o JOIN orgs o2 ON email = '`+rev4Leak+`'`,
		`DELETE FROM contacts USING orgs o JOIN orgs o2 ON email = '`+rev4Leak+`'`,
		// nor is the MERGE target in its source join's ON
		`MERGE INTO contacts t USING orgs o JOIN orgs o2 ON t.email = '`+rev4Leak+`' ON t.id = o.id WHEN MATCHED THEN DO NOTHING`,
	)
}

func TestReview6Holds(t *testing.T) {
	p := newTestPlanner(t)
	// Rewritten to the blind index (PostgreSQL compares the encrypted column).
	for _, sql := range []string{
		// ON naming the LATERAL item's left side, and the LATERAL item's column
		`SELECT 1 FROM users u JOIN LATERAL (SELECT 1 AS one) s ON u.email = '` + rev4Leak + `'`,
		`SELECT 1 FROM users u, orgs o JOIN LATERAL (SELECT u.email AS e, u.email_bidx) s ON s.e = '` + rev4Leak + `'`,
		`SELECT 1 FROM users u WHERE EXISTS (SELECT 1 FROM orgs o JOIN LATERAL (SELECT u.email AS e, u.email_bidx) s ON s.e = '` + rev4Leak + `')`,
		// an inner join alias and a USING alias from an enclosing join's ON
		`SELECT 1 FROM (users u JOIN orgs o ON true) AS j JOIN orgs o2 ON j.email = '` + rev4Leak + `'`,
		`SELECT 1 FROM (users u JOIN contacts c USING (id) AS x) JOIN orgs o ON x.id = 1 AND u.email = '` + rev4Leak + `'`,
		`SELECT 1 FROM users u JOIN contacts c USING (id) AS x JOIN orgs o ON x.id = o.id AND c.email = '` + rev4Leak + `'`,
		// nested joins; the outer join's ON over an inner join's sides
		`SELECT 1 FROM users u JOIN (orgs o JOIN (contacts c JOIN orgs o3 ON c.email = '` + rev4Leak + `') ON true) ON true`,
		`SELECT 1 FROM users u LEFT JOIN (orgs o JOIN orgs o2 ON o.id = o2.id) ON u.email = '` + rev4Leak + `'`,
		// correlated subqueries inside ON
		`SELECT 1 FROM users u JOIN orgs o ON EXISTS (SELECT 1 FROM contacts c JOIN orgs o4 ON u.email = '` + rev4Leak + `')`,
		`SELECT 1 FROM users u JOIN orgs o ON o.id = (SELECT count(*) FROM contacts c WHERE c.email = u.email AND u.email = '` + rev4Leak + `')`,
		// a same-named earlier comma item: PostgreSQL takes the enclosing query's
		`SELECT 1 FROM users u WHERE EXISTS (SELECT 1 FROM contacts u, orgs o JOIN orgs o2 ON u.email = '` + rev4Leak + `')`,
		`SELECT 1 FROM contacts x WHERE EXISTS (SELECT 1 FROM users x, orgs o JOIN orgs o2 ON x.email = '` + rev4Leak + `')`,
		`SELECT 1 FROM users WHERE EXISTS (SELECT 1 FROM users, orgs o JOIN orgs o2 ON users.email = '` + rev4Leak + `')`,
		// UPDATE … FROM … JOIN / DELETE … USING … JOIN over the join's own sides
		`UPDATE contacts SET note = 'n' FROM users u JOIN orgs o ON u.email = '` + rev4Leak + `'`,
		`UPDATE orgs SET name = 'n' FROM users u JOIN orgs o2 ON email = '` + rev4Leak + `'`,
		`DELETE FROM orgs USING users u JOIN orgs o ON u.email = '` + rev4Leak + `'`,
		// LATERAL subqueries holding a join whose ON names the outer item
		`SELECT 1 FROM users u, LATERAL (SELECT 1 FROM orgs o JOIN orgs o2 ON u.email = '` + rev4Leak + `') s`,
		`SELECT 1 FROM users u JOIN LATERAL (SELECT * FROM orgs o JOIN orgs o2 ON u.email = '` + rev4Leak + `') s ON true`,
	} {
		_, r := rev4Plan(t, p, sql)
		if r == "" {
			t.Errorf("%s: refused", sql)
			continue
		}
		if strings.Contains(r, rev4Leak) || !strings.Contains(r, "_bidx = {index:") {
			t.Errorf("%s\n planned as %s", sql, r)
		}
	}
	// Refused (PostgreSQL 15 rejects or the bare name is the outer encrypted
	// column while an unknown relation could also have it).
	for _, sql := range []string{
		`SELECT 1 FROM users u, orgs o JOIN contacts c ON u.email = '` + rev4Leak + `'`,
		`SELECT 1 FROM users u JOIN (orgs o JOIN contacts c ON u.email = '` + rev4Leak + `') ON true`,
		`SELECT 1 FROM users, orgs o JOIN orgs o2 ON users.email = '` + rev4Leak + `'`,
		`SELECT 1 FROM (users u JOIN orgs o ON true) AS j JOIN orgs o2 ON u.email = '` + rev4Leak + `'`,
		`UPDATE contacts c SET note = 'n' FROM users u JOIN orgs o ON c.email = '` + rev4Leak + `'`,
		`UPDATE contacts SET note = 'n' FROM users u JOIN orgs o ON contacts.email = '` + rev4Leak + `'`,
		`DELETE FROM contacts c USING users u JOIN orgs o ON c.email = '` + rev4Leak + `'`,
		`SELECT 1 FROM contacts WHERE EXISTS (SELECT 1 FROM users u, orgs o JOIN orgs o2 ON email = '` + rev4Leak + `')`,
		`SELECT 1 FROM users WHERE EXISTS (SELECT 1 FROM contacts c, orgs o JOIN orgs o2 ON phone = '` + rev4Leak + `')`,
		`MERGE INTO orgs t USING users u JOIN orgs o ON u.email = '` + rev4Leak + `' ON t.id = u.id WHEN MATCHED THEN DO NOTHING`,
		`SELECT 1 FROM (SELECT * FROM orgs) users WHERE users.email = '` + rev4Leak + `'`,
	} {
		refusal(t, p, sql, publicPath)
	}
	// Output through a LATERAL item in a join, beside an earlier comma item: decrypted.
	rev4Decrypted(t, p, `SELECT s.e FROM users u, orgs o JOIN LATERAL (SELECT u.email AS e, u.org_id) s ON true`, 0, "public.users.email")
}
