package rewrite

import (
	"errors"
	"testing"
)

// TestGuardedViews: every statement naming a view over encrypted columns
// is refused, however the view is named; other statements are unaffected.
func TestGuardedViews(t *testing.T) {
	p := newTestPlanner(t)
	cat := testCatalog()
	cat.Tables["public.user_emails"] = catalogTable("public", "user_emails", 16500, "id", "email")
	cat.Tables["reporting.v2"] = catalogTable("reporting", "v2", 16501, "email")
	cat.Guarded = map[string]*GuardedView{
		"public.user_emails": {Schema: "public", Name: "user_emails", Reads: "public.users"},
		"reporting.v2":       {Schema: "reporting", Name: "v2", Reads: "public.users"},
	}
	p.SetCatalog(cat)
	for _, sql := range []string{
		`SELECT * FROM user_emails`,
		`SELECT id FROM User_Emails WHERE email = 'x@y'`,
		`INSERT INTO user_emails (email) VALUES ('plain@text')`,
		`UPDATE public.user_emails SET email = $1 WHERE id = 1`,
		`DELETE FROM user_emails WHERE email = $1`,
		`COPY user_emails (email) FROM STDIN`,
		`SELECT 1; SELECT * FROM reporting.v2`,
		`WITH x AS (SELECT email FROM user_emails) SELECT * FROM x`,
	} {
		_, err := p.Plan(sql, publicPath)
		var re *Error
		if !errors.As(err, &re) || re.Code != CodeFeatureNotSupported || re.Table == "" {
			t.Errorf("%s: got %v, want a 0A000 refusal naming the view", sql, err)
		}
	}
	for _, sql := range []string{`SELECT id FROM contacts`, `SELECT * FROM app.users`, `SELECT 'user_emails'`} {
		if _, err := p.Plan(sql, Session{SearchPath: []string{"public"}}); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}
