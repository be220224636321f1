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
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}
