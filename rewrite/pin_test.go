package rewrite

import (
	"strings"
	"testing"
)

// TestPinSchema: an unqualified name that the search path resolves to an
// unconfigured relation while a configured table of that name lives in
// another schema is sent schema-qualified, so that a path changed behind
// pgveil's back cannot redirect plaintext into the configured table.
func TestPinSchema(t *testing.T) {
	p := newTestPlanner(t)
	app := Session{SearchPath: []string{"app", "public"}} // users is app.users, unconfigured
	billing := Session{SearchPath: []string{"billing"}}   // users is billing.users, unconfigured
	for _, c := range []struct {
		sql  string
		s    Session
		want string // the text sent upstream
	}{
		{`INSERT INTO users (id, email) VALUES (1, 'plain@text')`, app,
			`INSERT INTO app.users (id, email) VALUES (1, 'plain@text')`},
		{`insert into "users" (id, email) values ($1, $2)`, app,
			`insert into app."users" (id, email) values ($1, $2)`},
		{`UPDATE users SET email = $1 WHERE id = $2`, app, `UPDATE app.users SET email = $1 WHERE id = $2`},
		{`DELETE FROM users WHERE email = 'x'`, app, `DELETE FROM app.users WHERE email = 'x'`},
		{`SELECT u.email FROM users u JOIN billing.users b ON b.id = u.id WHERE u.email = $1`, app,
			`SELECT u.email FROM app.users u JOIN billing.users b ON b.id = u.id WHERE u.email = $1`},
		{`SELECT email FROM ONLY users WHERE id IN (SELECT id FROM users)`, app,
			`SELECT email FROM ONLY app.users WHERE id IN (SELECT id FROM app.users)`},
		{`COPY users (id, email) FROM STDIN`, app, `COPY app.users (id, email) FROM STDIN`},
		{`MERGE INTO users t USING (VALUES (1)) v(id) ON t.id = v.id WHEN MATCHED THEN UPDATE SET nickname = 'n'`, app,
			`MERGE INTO app.users t USING (VALUES (1)) v(id) ON t.id = v.id WHEN MATCHED THEN UPDATE SET nickname = 'n'`},
		{`INSERT INTO users (id, phone) VALUES (1, '555')`, billing, `INSERT INTO billing.users (id, phone) VALUES (1, '555')`},
	} {
		plan, err := p.Plan(c.sql, c.s)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		got, err := plan.Render(c.sql, func(*Stmt, *Slot) (string, error) { return "", nil })
		if err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		if got != c.want {
			t.Errorf("%s\n got %s\nwant %s", c.sql, got, c.want)
		}
		if st := plan.Stmts[len(plan.Stmts)-1]; !st.NamesOnly || len(st.Slots) != 0 {
			t.Errorf("%s: NamesOnly %v, %d slots; want a names-only statement", c.sql, st.NamesOnly, len(st.Slots))
		}
	}
	// Left as sent: qualified names, names resolving to the configured
	// table, a CTE of the name, temporary tables, names no configured table
	// shares, and any name while the path is unknown (it resolves to the
	// configured table by name, and is encrypted).
	for _, c := range []struct {
		sql string
		s   Session
	}{
		{`INSERT INTO app.users (id, email) VALUES (1, 'x')`, app},
		{`SELECT nickname FROM users_archive`, app},
		{`WITH users AS (SELECT 1 AS id) SELECT id FROM users`, app},
		{`INSERT INTO pg_temp.users (id) VALUES (1)`, app},
		// The server resolves a SQL PREPARE's names again at EXECUTE.
		{`PREPARE sel AS SELECT count(*) FROM users WHERE id = $1`, app},
		{`SELECT id FROM "Users"`, publicPath},
	} {
		plan, err := p.Plan(c.sql, c.s)
		if err != nil {
			t.Errorf("%s: %v", c.sql, err)
			continue
		}
		if plan.Rewritten {
			t.Errorf("%s: rewritten, want it sent as is:\n%s", c.sql, dumpPlan(c.sql, plan))
		}
	}
	sql := `INSERT INTO users (id, org_id, email) VALUES (1, 7, 'x')`
	plan, err := p.Plan(sql, Session{SearchPath: []string{"app", "public"}, PathUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := dumpPlan(sql, plan); strings.Contains(d, "app.users") || !strings.Contains(d, "{encrypt:email") {
		t.Errorf("path unknown: want the configured table, sealed:\n%s", d)
	}
}

// TestPinSchemaDDL: DDL on an existing relation that shadows a configured
// table is sent qualified too, so a default or predicate meant for it
// cannot land on the configured table after an unseen path change.
func TestPinSchemaDDL(t *testing.T) {
	p := newTestPlanner(t)
	app := Session{SearchPath: []string{"app", "public"}}
	for sql, want := range map[string]string{
		`ALTER TABLE users ALTER COLUMN email SET DEFAULT 'plain@text'`:                                    `ALTER TABLE app.users ALTER COLUMN email SET DEFAULT 'plain@text'`,
		`ALTER TABLE ONLY users ADD CONSTRAINT c CHECK (email <> 'x')`:                                     `ALTER TABLE ONLY app.users ADD CONSTRAINT c CHECK (email <> 'x')`,
		`CREATE INDEX ON users (nickname) WHERE email = 'x'`:                                               `CREATE INDEX ON app.users (nickname) WHERE email = 'x'`,
		`CREATE POLICY p ON users USING (email = 'x')`:                                                     `CREATE POLICY p ON app.users USING (email = 'x')`,
		`ALTER POLICY p ON users USING (email = 'y')`:                                                      `ALTER POLICY p ON app.users USING (email = 'y')`,
		`CREATE RULE r AS ON UPDATE TO users WHERE NEW.email = 'x' DO INSTEAD NOTHING`:                     `CREATE RULE r AS ON UPDATE TO app.users WHERE NEW.email = 'x' DO INSTEAD NOTHING`,
		`CREATE RULE r AS ON INSERT TO contacts2 DO ALSO INSERT INTO users (id) VALUES (NEW.id)`:           `CREATE RULE r AS ON INSERT TO contacts2 DO ALSO INSERT INTO app.users (id) VALUES (NEW.id)`,
		`CREATE TABLE users_c () INHERITS (users)`:                                                         `CREATE TABLE users_c () INHERITS (app.users)`,
		`CREATE TABLE users_p PARTITION OF users FOR VALUES IN (1)`:                                        `CREATE TABLE users_p PARTITION OF app.users FOR VALUES IN (1)`,
		`ALTER TABLE users_c INHERIT users`:                                                                `ALTER TABLE users_c INHERIT app.users`,
		`CREATE TRIGGER t BEFORE INSERT ON users FOR EACH ROW WHEN (NEW.email = 'x') EXECUTE FUNCTION f()`: `CREATE TRIGGER t BEFORE INSERT ON app.users FOR EACH ROW WHEN (NEW.email = 'x') EXECUTE FUNCTION f()`,
	} {
		plan, err := p.Plan(sql, app)
		if err != nil {
			t.Errorf("%s: %v", sql, err)
			continue
		}
		got, err := plan.Render(sql, func(*Stmt, *Slot) (string, error) { return "", nil })
		if err != nil || got != want {
			t.Errorf("%s\n got %s (%v)\nwant %s", sql, got, err, want)
		}
	}
	// A relation DDL creates is not pinned: it goes to the path's first schema.
	for _, sql := range []string{`CREATE TABLE users_new (id int)`, `ALTER TABLE IF EXISTS nothere ADD COLUMN x int`} {
		plan, err := p.Plan(sql, app)
		if err != nil || plan.Rewritten {
			t.Errorf("%s: rewritten %v, %v", sql, plan != nil && plan.Rewritten, err)
		}
	}
}

// TestPinSchemaReview covers what a review of the first version found:
// a quoted name right after a keyword, temporary tables, non-UTF8
// sessions, the client's parameter types, and writes inside bodies that
// bind their names when created.
func TestPinSchemaReview(t *testing.T) {
	p := newTestPlanner(t)
	app := Session{SearchPath: []string{"app", "public"}}
	render := func(sql string, s Session) (string, *Plan) {
		t.Helper()
		plan, err := p.Plan(sql, s)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		got, err := plan.Render(sql, func(*Stmt, *Slot) (string, error) { return "", nil })
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return got, plan
	}
	if got, _ := render(`SELECT * FROM"users"`, app); got != `SELECT * FROM app."users"` {
		t.Errorf("quoted name after a keyword: %s", got)
	}
	if got, _ := render(`INSERT INTO"users"(id) VALUES (1)`, app); got != `INSERT INTO app."users"(id) VALUES (1)` {
		t.Errorf("quoted name after a keyword: %s", got)
	}
	// Parameters of a names-only statement pass as the client typed them.
	got, plan := render(`SELECT nickname FROM users WHERE id = $1 AND nickname = $2`, app)
	if st := plan.Stmts[0]; got != `SELECT nickname FROM app.users WHERE id = $1 AND nickname = $2` || !st.NamesOnly || st.Params != nil {
		t.Errorf("names only: %s, NamesOnly %v, Params %v", got, st.NamesOnly, st.Params)
	}
	// A non-UTF8 session: no text changes.
	if _, plan := render(`SELECT nickname FROM users`, Session{SearchPath: []string{"app", "public"}, NoPins: true}); plan.Rewritten {
		t.Error("NoPins: the statement was rewritten")
	}
	// A write in a BEGIN ATOMIC body to a configured table is refused; to
	// a shadowing one, pinned.
	if _, err := p.Plan(`CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC INSERT INTO public.users (id, email) VALUES (1, 'x'); END`, app); err == nil {
		t.Error("a BEGIN ATOMIC body writing a configured table was accepted")
	}
	body := `CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC INSERT INTO users (id, email) VALUES (1, 'x'); END`
	if got, _ := render(body, app); got != strings.Replace(body, "INTO users", "INTO app.users", 1) {
		t.Errorf("BEGIN ATOMIC body: %s", got)
	}
	// Writes to a configured table that carry no value of a column pgveil
	// manages pass; the others are refused.
	for _, ok := range []string{
		`CREATE FUNCTION f(i int) RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM public.users WHERE id = i; END`,
		`CREATE FUNCTION f(i int) RETURNS void LANGUAGE sql BEGIN ATOMIC UPDATE public.users SET name = 'n' WHERE id = i; END`,
	} {
		if _, err := p.Plan(ok, app); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{
		`CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM public.users WHERE email = 'x'; END`,
		`CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC UPDATE public.users SET email = 'x' WHERE id = 1; END`,
		`CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC INSERT INTO public.users VALUES (1); END`,
		`CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC UPDATE public.users SET name = 'n' WHERE org_id = 3; END`,
	} {
		if _, err := p.Plan(bad, app); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	// A temporary table of the name anywhere: left as sent.
	cat := testCatalog()
	cat.Tables["pg_temp_3.users"] = catalogTable("pg_temp_3", "users", 16500, "id", "email")
	p.SetCatalog(cat)
	if _, plan := render(`INSERT INTO users (id, email) VALUES (1, 'x')`, app); plan.Rewritten {
		t.Error("a name a temporary table may take was pinned")
	}
}
