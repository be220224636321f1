package integration

// Review 7 of 5337707 (name resolution), end to end; planner side and the
// full explanation: rewrite/review7_test.go.
//   TestNamesReviewFoundPlaintext HIGH: three names PostgreSQL resolves to
//     an encrypted column and pgveil to a plain one, so the literal compared
//     with it reaches the server in plaintext (current_query() returns the
//     text the server received):
//     - a select-list scalar subquery is named after its own output
//       (s.email), pgveil names it "?column?" (select.go figureColname);
//     - WITH RECURSIVE makes a later CTE visible in an earlier one,
//       pgveil only after it is planned (cte.go withClause);
//     - a subquery alias column list over a * of a relation pgveil does not
//       list renames that relation's columns in PostgreSQL, users' in pgveil
//       (result.go asRel).

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const namesLeak = "r7-leak@example.org"

func TestNamesReviewFoundPlaintext(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startEncProxy(t, 9970, 10970)
	p.remember(namesLeak, "r7-user@example.org")
	conn := connectPgx(t, ctx, p.url())
	if _, err := conn.Exec(ctx, `INSERT INTO users (org_id, name, email) VALUES (9970, 'r7', 'r7-user@example.org')`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO contacts (org_id, email, note) VALUES (9970, 'r7-contact@example.org', 'n')`); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`SELECT current_query() FROM (SELECT (SELECT email FROM contacts ORDER BY id LIMIT 1)) s WHERE s.email = '` + namesLeak + `' OR true`,
		`WITH RECURSIVE a AS (SELECT * FROM b WHERE email = '` + namesLeak + `' OR true), b AS (SELECT email, email_bidx FROM contacts) SELECT current_query() FROM a LIMIT 1`,
		`SELECT current_query() FROM (SELECT o.*, u.email, u.org_id FROM orgs o, users u) AS x(a) WHERE x.email = '` + namesLeak + `' OR true LIMIT 1`,
	} {
		var got string
		err := conn.QueryRow(ctx, sql, pgx.QueryExecModeSimpleProtocol).Scan(&got)
		if err != nil {
			t.Logf("%s: %v", sql, err)
			continue
		}
		if strings.Contains(got, namesLeak) {
			t.Errorf("%s\n the server received the plaintext compared with an encrypted column: %s", sql, got)
		}
	}
}
