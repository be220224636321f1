package rewrite

import (
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

func refusal(t *testing.T, p *Planner, sql string, s Session) *Error {
	t.Helper()
	plan, err := p.Plan(sql, s)
	if err == nil {
		t.Fatalf("%s: planned, want a refusal:\n%s", sql, dumpPlan(sql, plan))
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: %T is not *Error", sql, err)
	}
	return e
}

func TestErrorFields(t *testing.T) {
	p := newTestPlanner(t)
	sql := "SELECT id FROM users WHERE phone = $1"
	e := refusal(t, p, sql, publicPath)
	if e.SQLState() != "0A000" || e.Schema != "public" || e.Table != "users" || e.Column != "phone" {
		t.Fatalf("%+v", e)
	}
	if want := strings.Index(sql, "phone") + 1; e.Position != want {
		t.Fatalf("position %d, want %d", e.Position, want)
	}
	if !strings.Contains(e.Hint, "blind_index") || !strings.Contains(e.Error(), "SQLSTATE 0A000") {
		t.Fatalf("hint %q, error %q", e.Hint, e.Error())
	}
}

func TestErrorPositionCountsCharacters(t *testing.T) {
	p := newTestPlanner(t)
	sql := "SELECT 'ünïcödé' AS x, id FROM users ORDER BY email"
	e := refusal(t, p, sql, publicPath)
	if want := len([]rune(sql[:strings.Index(sql, "email")])) + 1; e.Position != want {
		t.Fatalf("position %d, want %d (characters, not bytes)", e.Position, want)
	}
}

func TestRefusalNamesStatement(t *testing.T) {
	p := newTestPlanner(t)
	e := refusal(t, p, "SELECT 1; SELECT id FROM users ORDER BY email; SELECT 2", publicPath)
	if !strings.Contains(e.Detail, "statement 2 of 3") {
		t.Fatalf("detail %q", e.Detail)
	}
}

func TestNoValueInErrors(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		"SELECT id FROM users WHERE email LIKE 'secret-value%'",
		"INSERT INTO users (email) VALUES ('secret-value')",
		"SELECT id FROM users WHERE email = 'secret-value'::int4",
		"UPDATE users SET email = 'secret-value' FROM contacts WHERE users.id = 1",
		"SELECT id FROM users WHERE birth_date > 'secret-value'",
	} {
		e := refusal(t, p, sql, publicPath)
		for _, f := range []string{e.Message, e.Detail, e.Hint, e.Error()} {
			if strings.Contains(f, "secret-value") {
				t.Fatalf("%s: error carries the value: %q", sql, f)
			}
		}
	}
}

func TestParseErrorOnConfiguredTable(t *testing.T) {
	p := newTestPlanner(t)
	e := refusal(t, p, "INSERT INTO users (email) VALUES ('x'", publicPath)
	if e.Code != CodeSyntaxError || e.Position == 0 {
		t.Fatalf("%+v", e)
	}
	// Elsewhere, Postgres reports its own syntax error.
	plan, err := p.Plan("INSERT INTO orders VALUES (", publicPath)
	if err != nil || plan.Rewritten {
		t.Fatalf("%v %+v", err, plan)
	}
}

func TestNULRefused(t *testing.T) {
	p := newTestPlanner(t)
	if e := refusal(t, p, "SELECT 1\x00; INSERT INTO users (email) VALUES ('x')", publicPath); e.Code != CodeProtocolViolation {
		t.Fatalf("%+v", e)
	}
}

func TestBackslashStrings(t *testing.T) {
	p := newTestPlanner(t)
	off := Session{SearchPath: []string{"public"}, BackslashStrings: true}
	// With standard_conforming_strings off the server reads 'a\' OR …' as
	// one string: pgveil refuses rather than guess.
	sql := `SELECT id FROM users WHERE email = 'a\' OR email = 'b'`
	if e := refusal(t, p, sql, off); e.Code != CodeFeatureNotSupported {
		t.Fatalf("%+v", e)
	}
	// E'' strings read the same either way.
	if _, err := p.Plan(`SELECT id FROM users WHERE email = E'a\\b'`, off); err != nil {
		t.Fatal(err)
	}
	// Text that names no configured table is not concerned.
	if _, err := p.Plan(`SELECT 'a\' FROM orders`, off); err != nil {
		t.Fatal(err)
	}
}

func TestNationalLiteral(t *testing.T) {
	p := newTestPlanner(t)
	sql := "SELECT id FROM users WHERE email = N'x'"
	plan, err := p.Plan(sql, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := renderMarked(sql, plan)
	if got != "SELECT id FROM users WHERE email_bidx = {index:email}" {
		t.Fatalf("got %s", got)
	}
	st := plan.Stmts[0]
	if v, _, err := LiteralValue(sql, st.Literals[0]); err != nil || string(v) != "x" {
		t.Fatalf("%q %v", v, err)
	}
}

func TestPanicBecomesRefusal(t *testing.T) {
	p := newTestPlanner(t)
	// A catalog entry with a nil column list would not panic; force one
	// by corrupting the planner's config view of a table.
	cfg := testConfig(t)
	p2 := NewPlanner(cfg, 4)
	cfg.Tables[0].Columns[0].Table = nil // QualifiedName() now dereferences nil
	_, err := p2.Plan("SELECT id FROM users WHERE email LIKE 'x'", publicPath)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInternalError {
		t.Fatalf("got %v", err)
	}
	// The healthy planner still works.
	if _, err := p.Plan("SELECT id FROM users WHERE email = $1", publicPath); err != nil {
		t.Fatal(err)
	}
}

func TestEmptyAndCommentOnly(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{"", "   ", ";", "-- users only in a comment", "/* users */"} {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			t.Fatalf("%q: %v", sql, err)
		}
		if plan.Rewritten || len(plan.Stmts) != 0 {
			t.Fatalf("%q: %+v", sql, plan.Stmts)
		}
	}
}

// TestOutputsTenantOfRowDescriptionOrder checks, for SELECT *, that the
// Outputs line up with the catalog's attnum order.
func TestOutputsFollowCatalogOrder(t *testing.T) {
	p := newTestPlanner(t)
	plan, err := p.Plan("SELECT * FROM users", publicPath)
	if err != nil {
		t.Fatal(err)
	}
	cols := testCatalog().Tables["public.users"].Columns
	outs := plan.Stmts[0].Outputs
	if len(outs) != len(cols) {
		t.Fatalf("%d outputs for %d columns", len(outs), len(cols))
	}
	for i, c := range cols {
		enc := outs[i].Column != nil
		if enc != (c.Name == "email" || c.Name == "phone" || c.Name == "ssn" || c.Name == "birth_date" || c.Name == "api_token") {
			t.Fatalf("output %d (%s): %+v", i, c.Name, outs[i])
		}
		if enc && outs[i].Tenant != 1 {
			t.Fatalf("output %d tenant %d, want 1 (org_id)", i, outs[i].Tenant)
		}
	}
}

// TestPathUnknown: with the session's search_path unknown, an unqualified
// name is the one configured table of that name, whatever the path said;
// plans made with and without it are cached apart.
func TestPathUnknown(t *testing.T) {
	p := newTestPlanner(t)
	sql := "INSERT INTO accounts (tenant_id, iban) VALUES ($1, $2)"
	appPath := Session{SearchPath: []string{"app", "public"}}
	// Under a known path without billing, no relation is called accounts:
	// refused by pgveil (42P01), not sent for the server to reject and log.
	var re *Error
	if _, err := p.Plan(sql, appPath); !errors.As(err, &re) || re.Code != CodeUndefinedTable || !strings.Contains(re.Message, "billing.accounts") {
		t.Fatalf("under app, public (no accounts table): %v; want 42P01", err)
	}
	plan, err := p.Plan(sql, Session{SearchPath: appPath.SearchPath, PathUnknown: true})
	if err != nil || !plan.Rewritten || !strings.Contains(dumpPlan(sql, plan), "billing.accounts.iban") {
		t.Fatalf("path unknown: want billing.accounts sealed, got %v\n%s", err, dumpPlan(sql, plan))
	}
	// Cached apart: the known path still plans it as it did.
	if _, err := p.Plan(sql, appPath); !errors.As(err, &re) || re.Code != CodeUndefinedTable {
		t.Fatalf("under app, public after an unknown-path plan: %v; want 42P01", err)
	}
	// users is shadowed by app.users on the known path; unknown, it is
	// public.users, the only configured one.
	plan, err = p.Plan("UPDATE users SET phone = $1 WHERE org_id = $2", Session{PathUnknown: true})
	if err != nil || !plan.Rewritten {
		t.Fatalf("users with the path unknown: %v", err)
	}
}

// TestReservedStatementNames: SQL may not execute, prepare or deallocate
// the statements pgveil prepares upstream under its own names.
func TestReservedStatementNames(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		"EXECUTE pgveil_1('x', 'y')",
		"execute PGVEIL_1('x')",
		"EXPLAIN ANALYZE EXECUTE pgveil_abc_2",
		"CREATE TABLE t AS EXECUTE pgveil_3",
		"PREPARE pgveil_9 AS SELECT 1",
		"DEALLOCATE pgveil_1",
		"DEALLOCATE PREPARE __pgveil_refuse",
		"SELECT 1; EXECUTE pgveil_1",
		`EXECUTE U&"pgveil\005f1"('x')`,
		`EXPLAIN ANALYZE EXECUTE U&"\0070gveil_2"`,
	} {
		if e := refusal(t, p, sql, publicPath); e.SQLState() != "0A000" || !strings.Contains(e.Message, "reserved") {
			t.Errorf("%s: %v", sql, e)
		}
	}
	for _, sql := range []string{"EXECUTE my_stmt(1)", "SELECT 'pgveil_1'", "DEALLOCATE ALL", `EXECUTE "PGVEIL_1"`} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}

// TestReshapingConfiguredTables: DDL that would let later writes to a
// configured table's data reach the server unencrypted is refused; the
// same DDL on other tables and columns passes.
func TestReshapingConfiguredTables(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		"ALTER TABLE users RENAME TO users2",
		"ALTER TABLE public.users RENAME COLUMN email TO mail",
		"ALTER TABLE users RENAME COLUMN email_bidx TO b",
		"ALTER TABLE users RENAME COLUMN org_id TO o",
		"ALTER TABLE users SET SCHEMA archive",
		"ALTER SCHEMA billing RENAME TO finance; SELECT 1 FROM accounts",
		"ALTER SCHEMA billing RENAME TO finance",
		"ALTER TABLE users ALTER COLUMN phone TYPE bytea USING convert_to('x', 'UTF8')",
		"ALTER TABLE users ALTER COLUMN email TYPE text",
		"CREATE TABLE users_2024 PARTITION OF users FOR VALUES FROM (1) TO (2)",
		"CREATE TABLE users_child () INHERITS (public.users)",
		"ALTER TABLE other INHERIT users",
		"ALTER TABLE users ATTACH PARTITION other FOR VALUES FROM (1) TO (2)",
		"ALTER TABLE other_parent ATTACH PARTITION users FOR VALUES FROM (1) TO (2)",
		"ALTER INDEX users RENAME TO users2",
		"ALTER VIEW public.users RENAME TO users2",
		"ALTER SEQUENCE users SET SCHEMA archive",
		"CREATE TABLE billing.accounts AS SELECT 1 AS id, 'x'::text AS iban",
		"SELECT 1 AS id, 'x' AS iban INTO billing.accounts",
	} {
		if e := refusal(t, p, sql, publicPath); e.SQLState() != "0A000" {
			t.Errorf("%s: %v", sql, e)
		}
	}
	for _, sql := range []string{
		"ALTER TABLE users RENAME COLUMN name TO full_name",
		"ALTER TABLE users ALTER COLUMN name TYPE varchar(200)",
		"ALTER TABLE notes RENAME TO notes2",
		"CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM (1) TO (2)",
		"CREATE TABLE copy_of_notes AS SELECT 1 AS id",
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}

// TestBodyWritingConfiguredTable: a DO or function body that names a
// configured table and inserts is refused even without column names.
func TestBodyWritingConfiguredTable(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		"DO $$ BEGIN INSERT INTO billing.accounts VALUES (DEFAULT, 1, 'x'); END $$",
		"CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ INSERT INTO contacts SELECT * FROM staging $$",
	} {
		if e := refusal(t, p, sql, publicPath); e.SQLState() != "0A000" {
			t.Errorf("%s: %v", sql, e)
		}
	}
	if _, err := p.Plan("DO $$ BEGIN PERFORM count(*) FROM users; END $$", publicPath); err != nil {
		t.Errorf("a body that only counts rows of a configured table: %v", err)
	}
}

// TestPrepareUnqualifiedConfiguredName: SQL PREPARE may not write to a
// configured table's name without a schema (EXECUTE after a search_path
// change would write whatever the name means then).
func TestPrepareUnqualifiedConfiguredName(t *testing.T) {
	p := newTestPlanner(t)
	app := Session{SearchPath: []string{"app", "public"}} // users is app.users, unconfigured
	if e := refusal(t, p, "PREPARE ins(text) AS INSERT INTO users (nickname) VALUES ($1)", app); e.SQLState() != "0A000" {
		t.Fatalf("%v", e)
	}
	if e := refusal(t, p, "PREPARE up(text) AS WITH x AS (UPDATE users SET nickname = $1 RETURNING id) SELECT id FROM x", app); e.SQLState() != "0A000" {
		t.Fatalf("%v", e)
	}
	// Reads that need nothing under app but would read public.users'
	// encrypted columns after a search_path change.
	for _, sql := range []string{
		"PREPARE q(text) AS SELECT id FROM users WHERE email = $1",
		"PREPARE q AS SELECT id FROM users WHERE email = 'x@y'",
		"PREPARE q AS SELECT * FROM users",
		"PREPARE q AS SELECT 1 FROM contacts c JOIN users u ON u.id = c.user_id WHERE u.email IN ('a', 'b')",
	} {
		e := refusal(t, p, sql, app)
		if e.SQLState() != "0A000" || !strings.Contains(e.Message, `" without a schema is not supported`) {
			t.Errorf("%s: %v", sql, e)
		}
	}
	for _, sql := range []string{
		"PREPARE ins(text) AS INSERT INTO app.users (nickname) VALUES ($1)",
		"PREPARE q AS SELECT id FROM users WHERE id = $1",
		"PREPARE q AS SELECT nickname FROM users WHERE id = $1",
		"PREPARE q(text) AS SELECT id FROM app.users WHERE email = $1",
		"PREPARE q AS SELECT 1 FROM other_table",
	} {
		if _, err := p.Plan(sql, app); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}

// TestUnknownConfiguredName: a relation named as a configured table up to
// case or schema, but absent from the catalog snapshot, is refused with
// 42P01 by pgveil: sent on, the server would reject it and, by default, log
// its text with the values meant for an encrypted column. DDL, temporary
// tables and names that exist pass.
func TestUnknownConfiguredName(t *testing.T) {
	p := newTestPlanner(t)
	for _, c := range []struct {
		sql  string
		path []string
	}{
		{`INSERT INTO "USErs" (id, email) VALUES (1, 'plain@text')`, nil},
		{`INSERT INTO publik.users (id, email) VALUES (1, 'plain@text')`, nil},
		{`SELECT id FROM "Contacts" WHERE email = 'plain@text'`, nil},
		{`UPDATE nothere.accounts SET iban = 'DE00' WHERE id = 1`, nil},
		{`COPY "Contacts" (email) FROM STDIN`, nil},
		{`INSERT INTO users (id, email) VALUES (1, 'plain@text')`, []string{"nothere"}},
	} {
		path := publicPath
		if c.path != nil {
			path = Session{SearchPath: c.path}
		}
		_, err := p.Plan(c.sql, path)
		var re *Error
		if !errors.As(err, &re) || re.Code != CodeUndefinedTable || !strings.Contains(re.Message, "does not exist in pgveil's catalog") {
			t.Errorf("%s: %v; want 42P01 from pgveil", c.sql, err)
		}
	}
	for _, sql := range []string{
		`CREATE TABLE newschema.users (id int, email text)`,
		`DROP TABLE IF EXISTS "USErs"`,
		`ALTER TABLE publik.users ADD COLUMN x int`,
		`INSERT INTO pg_temp.users (id) VALUES (1)`,
		`CREATE TEMP TABLE contacts2 AS SELECT 1`,
		`SELECT "Email" FROM "Users" WHERE "Email" = 'x'`,
		`SELECT email FROM billing.users WHERE email = 'x'`,
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
	// While the path is unknown the snapshot may be behind: passed on.
	if _, err := p.Plan(`INSERT INTO "USErs" (id) VALUES (1)`, Session{SearchPath: []string{"public"}, PathUnknown: true}); err != nil {
		t.Errorf("path unknown: %v", err)
	}
}

// TestPathFunctions: a statement calling a function whose code may change
// search_path (Catalog.PathFunctions), under any schema or case, makes the
// path unknown after it; the pre-check lets no such call pass unparsed.
func TestPathFunctions(t *testing.T) {
	p := newTestPlanner(t)
	cat := testCatalog()
	cat.PathFunctions = map[string]bool{"switch_tenant": true}
	p.SetCatalog(cat)
	app := Session{SearchPath: []string{"app", "public"}} // users is app.users, unconfigured
	sql := "SELECT ops.Switch_Tenant(42); INSERT INTO users (id, org_id, email) VALUES (1, 7, $1)"
	plan, err := p.Plan(sql, app)
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Stmts[0].PathOpaque {
		t.Error("the call did not make the path unknown")
	}
	if !plan.Rewritten || !strings.Contains(dumpPlan(sql, plan), "public.users.email") {
		t.Errorf("the INSERT after the call was not sealed for public.users:\n%s", dumpPlan(sql, plan))
	}
	if !p.MayReference("select switch_tenant(1)") {
		t.Error("the pre-check passes a call unparsed")
	}
	if plan, err := p.Plan("SELECT other_function(1)", app); err != nil || plan.Stmts[0].PathOpaque {
		t.Errorf("another function: %v", err)
	}
}

// TestPrepareSharedName: with a configured table of one name in several
// schemas, a SQL PREPARE that reads no encrypted column of any of them is
// prepared; one that filters on an encrypted column under a shadow of that
// name is refused.
func TestPrepareSharedName(t *testing.T) {
	cfg, err := policy.LoadBytes("two.yaml", []byte(`
upstream:
  service_url: postgres://pgveil@localhost/app
keysource:
  local:
    key_env: X
tables:
  ta.items:
    columns:
      body:
        type: text
  tb.items:
    columns:
      body:
        type: text
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p := NewPlanner(cfg, 0)
	cat := &Catalog{Tables: map[string]*CatalogTable{}}
	for _, ct := range []*CatalogTable{catalogTable("ta", "items", 1, "id", "body"), catalogTable("tb", "items", 2, "id", "body"), catalogTable("shadow", "items", 3, "id", "body")} {
		cat.Tables[ct.Schema+"."+ct.Name] = ct
	}
	p.SetCatalog(cat)
	for _, path := range [][]string{{"ta"}, {"shadow"}} {
		if _, err := p.Plan("PREPARE q AS SELECT id FROM items WHERE id = $1", Session{SearchPath: path}); err != nil {
			t.Errorf("under %v: %v", path, err)
		}
	}
	if e := refusal(t, p, "PREPARE q(text) AS SELECT id FROM items WHERE body = $1", Session{SearchPath: []string{"shadow"}}); e.SQLState() != "0A000" {
		t.Errorf("filter on body under the shadow: %v", e)
	}
}
