package rewrite

import "testing"

// TestReview21cSetConfigTempDomainCast: a type name alone is looked up in
// pg_temp before pg_catalog, so with CREATE DOMAIN pg_temp.text AS
// char(11) (or pg_temp."varchar"), 'search_pathxx'::text reads
// 'search_path' in the server, and 'public, x'::text reads 'public, x'
// cut. Review 20e read such casts as keeping the text: set_config then
// changed search_path while pgveil read another setting, or another
// path. (Today the DateStyle tracking asks the server after any
// set_config, which hid it; that tracking is going.) Now the statement
// makes the path unknown (the server is asked again), or is refused.
func TestReview21cSetConfigTempDomainCast(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`SELECT set_config('search_pathxx'::text, 'app', false)`,
		`SELECT set_config('search_path   '::"varchar", 'app', false)`,
		`SELECT set_config(CAST('search_pathxx' AS text), 'app', false)`,
		`SELECT set_config('rolexx'::text, 'app', false)`,
		`SELECT set_config('search_path'::text, 'app', false)`,
		`SELECT set_config('search_path', 'app, other'::text, false)`,
		`SELECT set_config('search_path', 'app, other'::"varchar"::pg_catalog.text, false)`,
		`SELECT set_config(name, 'app', false) FROM pg_settings WHERE name = 'search_pathxx'::text`,
		`SELECT set_config(name, 'app', false) FROM pg_settings WHERE 'search_pathxx'::"varchar" = name`,
	} {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			continue // refused: fine
		}
		if st := plan.Stmts[0]; !st.PathOpaque {
			t.Errorf("%s: accepted without making the path unknown: %+v", sql, st)
		}
	}
	// Casts pg_catalog's types only: read as written.
	for _, c := range []struct{ sql, path string }{
		{`SELECT set_config('search_path'::pg_catalog.text, 'app'::varchar, false)`, "app"},
		{`SELECT set_config('search_path'::character varying, 'app'::pg_catalog.text, false)`, "app"},
		{`SELECT pg_catalog.set_config('search_path', 'app', false)`, "app"},
	} {
		plan, err := p.Plan(c.sql, publicPath)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		if st := plan.Stmts[0]; st.PathOpaque || len(st.SearchPath) != 1 || st.SearchPath[0] != c.path {
			t.Errorf("%s: path %v opaque %v", c.sql, st.SearchPath, st.PathOpaque)
		}
	}
	// Other settings through pg_catalog casts, and pg_dump's row form:
	// no path effect.
	for _, sql := range []string{
		`SELECT set_config('work_mem'::pg_catalog.text, '1MB'::pg_catalog.text, 'false'::boolean)`,
		`SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings WHERE name = 'restrict_nonsystem_relation_kind'`,
	} {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			t.Errorf("%s: %v", sql, err)
			continue
		}
		if st := plan.Stmts[0]; st.PathOpaque || st.SearchPath != nil {
			t.Errorf("%s: path effect %v %v", sql, st.SearchPath, st.PathOpaque)
		}
	}
}

// TestReview21cFunctionExecutesPrepared: a function body that runs SQL
// EXECUTE of a prepared statement (a LANGUAGE sql statement, or dynamic
// SQL whose string begins with EXECUTE) is refused, as one that prepares
// or deallocates (a LANGUAGE sql body of one statement, without ';',
// took the fast path and was never read: HIGH, a PREPARE made in the
// server unseen wrote plaintext after a view swap): pgveil checks a
// prepared statement when EXECUTE or a Bind runs it, and such code runs
// it unseen (after a view swap, the plaintext argument went into an
// encrypted column). DO blocks are checked when they run; dynamic SQL
// that runs other statements, and strings that merely hold the word,
// pass.
func TestReview21cFunctionExecutesPrepared(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`CREATE FUNCTION f(o int8, n text) RETURNS void LANGUAGE plpgsql AS $f$BEGIN EXECUTE format('EXECUTE ins(%s, %L)', o, n); END$f$`,
		`CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $f$BEGIN EXECUTE 'EXECUTE ins(1, ''x'')'; END$f$`,
		`CREATE FUNCTION f(s text) RETURNS void LANGUAGE plpgsql AS $f$BEGIN EXECUTE 'execute ' || s; END$f$`,
		`CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $f$BEGIN EXECUTE 'SELECT 1; EXECUTE ins(1, ''x'')'; END$f$`,
		`CREATE PROCEDURE p() LANGUAGE plpgsql AS $f$BEGIN EXECUTE $q$ EXECUTE ins(1, 'x') $q$; END$f$`,
		`CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $f$ EXECUTE ins(1, 'x') $f$`,
		`CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'SELECT 1; EXECUTE ins(1, ''x'')'`,
		// One statement, no ';': the fast path read none of these.
		`CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $f$ PREPARE ins2 (int8, text) AS INSERT INTO r VALUES ($1, $2) $f$`,
		`CREATE OR REPLACE FUNCTION f() RETURNS void LANGUAGE sql AS $f$ DEALLOCATE ALL $f$`,
		`create procedure p() language sql as 'Deallocate ins'`,
	} {
		if _, err := p.Plan(sql, publicPath); err == nil {
			t.Errorf("%s: accepted", sql)
		}
	}
	for _, sql := range []string{
		`CREATE FUNCTION f(t text) RETURNS void LANGUAGE plpgsql AS $f$BEGIN EXECUTE format('GRANT EXECUTE ON FUNCTION %s() TO app', t); END$f$`,
		`CREATE FUNCTION f(m text) RETURNS int LANGUAGE plpgsql AS $f$BEGIN IF m = 'execute' THEN RETURN 1; END IF; RETURN 0; END$f$`,
		`CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $f$ SELECT 'EXECUTE ins' $f$`,
		`DO $d$BEGIN EXECUTE 'EXECUTE ins(1, ''x'')'; END$d$`,
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}
