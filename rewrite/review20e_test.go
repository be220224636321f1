package rewrite

import "testing"

// TestReview20eSetConfigCastName: a cast that changes the text (char(n)
// trims trailing blanks when read as text and truncates to n,
// varchar(n) truncates, name truncates) makes PostgreSQL read a setting
// name or value other than the literal pgveil reads. set_config then
// changed search_path (or role) while pgveil believed another setting
// changed, or planned with a path other than the server's: plaintext
// into an encrypted column of a table pgveil resolved elsewhere. Each is
// refused now, or tracked as the server reads it.
func TestReview20eSetConfigCastName(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`SELECT set_config('search_path   '::char(20), 'app', false)`,
		`SELECT set_config('search_pathxyz'::char(11), 'app', false)`,
		`SELECT set_config('search_pathxyz'::varchar(11), 'app', false)`,
		`SELECT set_config('search_path '::bpchar, 'app', false)`,
		`SELECT set_config(CAST('role  ' AS character(10)), 'x', false)`,
		`SELECT set_config('search_path', 'appx'::char(3), false)`,
		`SELECT set_config('search_path', 'app'::char(10), false)`,
		`SELECT set_config(name, 'app', false) FROM pg_settings WHERE name = 'search_path   '::char(20)`,
		`SELECT set_config(name, 'app', false) FROM pg_settings WHERE name = 'search_pathzz'::char(11)`,
		`SELECT set_config(name, 'app', false) FROM pg_settings WHERE 'search_pathzz'::varchar(11) = name`,
		// A temporary table pg_settings (name char(20)) comes before
		// pg_catalog's: its row 'search_path' equals 'search_path   '.
		`SELECT set_config(name, 'app', false) FROM pg_settings WHERE name = 'search_path   '`,
		`SELECT set_config(name, 'app', false) FROM pg_settings WHERE name = 'Search_Path'`,
	} {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			continue // refused: fine
		}
		st := plan.Stmts[0]
		if st.PathOpaque || (st.SearchPath != nil && len(st.SearchPath) == 1 && st.SearchPath[0] == "app") {
			continue // tracked as the server reads it
		}
		t.Errorf("%s: accepted without tracking search_path: %+v", sql, st)
	}
	// What pg_dump and drivers send still passes.
	for _, sql := range []string{
		`SELECT set_config('search_path'::text, 'app', false)`,
		`SELECT pg_catalog.set_config('search_path', '', false)`,
		`SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings WHERE name = 'restrict_nonsystem_relation_kind'`,
		`SELECT set_config('work_mem'::pg_catalog.text, '1MB'::text, 'false'::boolean)`,
		`SELECT set_config(name, 'off', false) FROM pg_settings WHERE name = 'enable_seqscan'`,
		`SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'app.tenant_1'`,
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}
