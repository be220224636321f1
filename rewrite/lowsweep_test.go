package rewrite

import (
	"errors"
	"testing"
)

// TestLowSweepStaleViewColumn (review 17, LOW #5): a column a guarded
// view does not have in pgveil's catalog. Through pgveil ALTER VIEW …
// RENAME COLUMN is followed by a catalog read, but renamed on a direct
// connection the new name was planned as a plain column: its comparison
// value went to the server in plaintext (against the encrypted column)
// and its values came back as ciphertext. Such a name is refused (42703)
// when every relation in scope is known; names pgveil cannot place (a
// relation it does not know is in scope, an output name) still pass.
func TestLowSweepStaleViewColumn(t *testing.T) {
	p := viewPlanner(t)
	for _, sql := range []string{
		`SELECT id FROM user_emails WHERE mail = $1`,
		`SELECT mail FROM user_emails`,
		`SELECT u.mail FROM user_emails u WHERE u.id = 1`,
		`SELECT user_emails.mail FROM user_emails`,
		`SELECT id FROM user_emails WHERE id IN (SELECT 1 WHERE mail = $1)`,
	} {
		_, err := p.Plan(sql, publicPath)
		var re *Error
		if !errors.As(err, &re) || re.Code != CodeUndefinedColumn {
			t.Errorf("%s: %v, want 42703", sql, err)
		}
	}
	for _, sql := range []string{
		`SELECT id AS e FROM user_emails ORDER BY e`,
		`SELECT email FROM user_emails WHERE email = $1`,
		`SELECT u.id FROM user_emails u, unknown_table x WHERE x.a = 1 AND b = 2`,
		`SELECT count(*) AS n FROM user_emails GROUP BY id ORDER BY n`,
		`SELECT telephone FROM renamed`,
		`SELECT id FROM user_emails WHERE id = current_user::text::int8`,
		`SELECT id AS k FROM user_emails GROUP BY k`,
		`SELECT DISTINCT ON (k) id AS k FROM user_emails ORDER BY k`,
		`SELECT g FROM user_emails, generate_series(1, 3) g`,
		`SELECT g.x FROM user_emails, generate_series(1, 3) AS g(x)`,
		`SELECT x FROM user_emails, generate_series(1, 3) AS g(x)`,
		`WITH c AS (SELECT 1 AS z) SELECT z FROM c, user_emails`,
		`SELECT id FROM user_emails u WHERE EXISTS (SELECT 1 FROM user_emails v WHERE v.id = u.id)`,
		`SELECT u.id FROM user_emails u JOIN user_emails v USING (id)`,
		`SELECT id FROM user_emails u JOIN user_emails v USING (id)`,
		`SELECT s.id FROM (SELECT id FROM user_emails) s`,
		`SELECT x FROM user_emails, LATERAL (SELECT 1 AS x) l`,
		`SELECT id FROM user_emails WINDOW w AS (ORDER BY id)`,
		`SELECT count(*) FROM user_emails, unnest(ARRAY[1,2]) AS t(n) WHERE n > 1`,
		`SELECT n FROM user_emails, unnest(ARRAY[1,2]) n`,
		`SELECT id, ord FROM user_emails, unnest(ARRAY[1]) WITH ORDINALITY AS t(v, ord)`,
		`SELECT j.key FROM user_emails, jsonb_each('{}') j`,
		`SELECT key FROM user_emails, jsonb_each('{}')`,
		`SELECT id FROM user_emails WHERE id IN (SELECT oid FROM pg_class)`,
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}
