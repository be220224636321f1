package rewrite

import (
	"errors"
	"strings"
	"testing"
)

// viewPlanner has guarded views with their definitions, as the proxy
// loads them (pg_get_viewdef with every relation schema-qualified).
func viewPlanner(t *testing.T) *Planner {
	t.Helper()
	p := newTestPlanner(t)
	cat := testCatalog()
	views := []struct {
		name, def string
		cols      []string
	}{
		{"user_emails", " SELECT u.id,\n    u.org_id,\n    u.email,\n    u.email_bidx\n   FROM public.users u\n  WHERE u.deleted_at IS NULL;", []string{"id", "org_id", "email", "email_bidx"}},
		{"emails_only", " SELECT users.email\n   FROM public.users;", []string{"email"}},
		{"lower_emails", " SELECT lower(users.email) AS email, users.org_id\n   FROM public.users;", []string{"email", "org_id"}},
		{"filtered", " SELECT users.id, users.email, users.org_id\n   FROM public.users\n  WHERE users.email = 'x';", []string{"id", "email", "org_id"}},
		{"renamed", " SELECT users.org_id,\n    users.phone\n   FROM public.users;", []string{"tenant", "telephone"}},
		{"of_view", " SELECT user_emails.email,\n    user_emails.org_id\n   FROM public.user_emails;", []string{"email", "org_id"}},
		{"no_definition", "", []string{"email"}},
		{"fake_index", " SELECT users.email,\n    users.org_id,\n    users.ssn_bidx AS email_bidx\n   FROM public.users;", []string{"email", "org_id", "email_bidx"}},
	}
	cat.Guarded = map[string]*GuardedView{}
	for i, v := range views {
		cat.Tables["public."+v.name] = catalogTable("public", v.name, uint32(17000+i), v.cols...)
		cat.Guarded["public."+v.name] = &GuardedView{Schema: "public", Name: v.name, Reads: "public.users", Definition: v.def}
	}
	p.SetCatalog(cat)
	return p
}

// TestViewsSeenThrough: reads of a view over encrypted columns are planned
// as reads of its query: fields decrypted by plan with their tenant,
// equality on the blind index when the view returns it.
func TestViewsSeenThrough(t *testing.T) {
	p := viewPlanner(t)
	cases := []struct{ sql, want string }{
		{`SELECT email FROM user_emails WHERE email = $1`, `kind=select rewritten=true client_params=1
  sql: SELECT email, user_emails.org_id FROM user_emails WHERE email_bidx = $1
  $1 = index($1, public.users.email)
  out[0] public.users.email tenant=out[1]
  out[1] hidden
`},
		{`SELECT * FROM user_emails`, `kind=select rewritten=false
  out[2] public.users.email tenant=out[1]
`},
		{`SELECT tenant, telephone FROM renamed`, `kind=select rewritten=false
  out[1] public.users.phone tenant=out[0]
`},
		{`SELECT e FROM user_emails AS x(i, o, e, b)`, `kind=select rewritten=true
  sql: SELECT e, x.o FROM user_emails AS x(i, o, e, b)
  out[0] public.users.email tenant=out[1]
  out[1] hidden
`},
		{`SELECT org_id, email FROM of_view`, `kind=select rewritten=false
  out[1] public.users.email tenant=out[0]
`},
		{`SELECT count(*) FROM emails_only`, `kind=select rewritten=false
`},
	}
	for _, c := range cases {
		plan, err := p.Plan(c.sql, publicPath)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		if got := dumpPlan(c.sql, plan); got != c.want {
			t.Errorf("%s:\ngot\n%s\nwant\n%s", c.sql, got, c.want)
		}
	}
}

// TestViewsStillRefused: writes through a view, views pgveil cannot see
// through, and reads that need what the view does not return.
func TestViewsStillRefused(t *testing.T) {
	p := viewPlanner(t)
	for _, c := range []struct{ sql, msg string }{
		{`UPDATE user_emails SET email = $1 WHERE id = 1`, "user_emails"},
		{`INSERT INTO user_emails (org_id, email) VALUES (1, 'plain@view')`, "user_emails"},
		{`DELETE FROM user_emails WHERE id = 1`, "user_emails"},
		{`COPY user_emails TO STDOUT`, "user_emails"},
		{`SELECT email FROM emails_only`, "org_id"},                          // no tenant column
		{`SELECT count(*) FROM emails_only WHERE email = $1`, "blind index"}, // no blind index
		{`SELECT email FROM of_view WHERE email = 'x@y'`, "blind index"},
		{`SELECT * FROM lower_emails`, "lower_emails"}, // transforms the column
		{`SELECT id FROM filtered`, "filtered"},        // compares it in the server
		{`SELECT email FROM no_definition`, "no_definition"},
		{`SELECT email FROM user_emails ORDER BY email`, "ORDER BY"},
		{`SELECT email FROM fake_index WHERE email = $1`, "blind index"}, // another column named email_bidx
	} {
		_, err := p.Plan(c.sql, publicPath)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeFeatureNotSupported || !strings.Contains(e.Message+e.Hint, c.msg) {
			t.Errorf("%s: %v, want a 0A000 refusal mentioning %q", c.sql, err, c.msg)
		}
	}
}
