package rewrite

import (
	"errors"
	"strings"
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

// TestGuardedChildren: a partition or inheritance child of a configured
// table, not configured itself, is refused in every statement that names
// it, reads included (a filter on its encrypted column would send the
// value as written), with a message naming the configured table; the
// configured table itself and DDL that drops or truncates the child pass.
func TestGuardedChildren(t *testing.T) {
	p := newTestPlanner(t)
	cat := testCatalog()
	cat.Tables["public.users_2025"] = catalogTable("public", "users_2025", 16600, "id", "org_id", "email", "email_bidx")
	cat.Tables["archive.old_users"] = catalogTable("archive", "old_users", 16601, "id", "org_id", "email", "email_bidx")
	cat.Guarded = map[string]*GuardedView{
		"public.users_2025": {Schema: "public", Name: "users_2025", Reads: "public.users", Child: ChildPartition, Parent: p.cfg.Table("public", "users")},
		"archive.old_users": {Schema: "archive", Name: "old_users", Reads: "public.users", Child: ChildInheritance, Parent: p.cfg.Table("public", "users")},
	}
	p.SetCatalog(cat)
	for _, c := range []struct{ sql, table, hint string }{
		{`INSERT INTO users_2025 (id, org_id, email) VALUES (1, 1, 'plain@text')`, "users_2025", "PostgreSQL routes"},
		{`INSERT INTO "users_2025" SELECT * FROM users_2025`, "users_2025", "PostgreSQL routes"},
		{`UPDATE public.users_2025 SET email = $1 WHERE id = 1`, "users_2025", "PostgreSQL routes"},
		{`COPY users_2025 (id, email) FROM STDIN`, "users_2025", "PostgreSQL routes"},
		{`SELECT id FROM users_2025 WHERE email = 'plain@text'`, "users_2025", "PostgreSQL routes"},
		{`SELECT * FROM users_2025`, "users_2025", "PostgreSQL routes"},
		{`MERGE INTO users_2025 u USING (SELECT 1 AS id) s ON u.id = s.id WHEN NOT MATCHED THEN INSERT (id, email) VALUES (s.id, 'x')`, "users_2025", "PostgreSQL routes"},
		{`INSERT INTO archive.old_users (id, email) VALUES (2, 'plain@text')`, "old_users", "NO INHERIT"},
	} {
		_, err := p.Plan(c.sql, publicPath)
		var re *Error
		if !errors.As(err, &re) || re.Code != CodeFeatureNotSupported || re.Table != c.table ||
			!strings.Contains(re.Message, "configured table public.users") || !strings.Contains(re.Hint, c.hint) {
			t.Errorf("%s: got %#v, want a 0A000 refusal naming %s and public.users", c.sql, err, c.table)
		}
	}
	_, err := p.Plan(`DO $$ BEGIN EXECUTE 'SELECT 1'; INSERT INTO users_2025 (id) VALUES (1); END $$`, publicPath)
	var re *Error
	if !errors.As(err, &re) || !strings.Contains(re.Message, "partition of configured table public.users") {
		t.Errorf("DO body naming a partition: %v", err)
	}
	// DDL on a child is checked as DDL on the configured table: what it
	// puts on the columns holds for rows written through the table.
	for _, sql := range []string{
		`CREATE TABLE users_2025_a PARTITION OF users_2025 FOR VALUES FROM (1) TO (2)`,
		`ALTER TABLE users_2025 ATTACH PARTITION plain FOR VALUES FROM (1) TO (2)`,
		`ALTER TABLE plain INHERIT archive.old_users`,
		`ALTER TABLE users_2025 ALTER COLUMN email SET DEFAULT 'secret@x'`,
		`CREATE INDEX i ON users_2025 (id) WHERE email = 'secret@x'`,
		`CREATE POLICY p ON users_2025 USING (email = 'secret@x')`,
		`ALTER TABLE archive.old_users ADD CONSTRAINT c CHECK (email <> 'secret@x')`,
	} {
		var re *Error
		if _, err := p.Plan(sql, publicPath); !errors.As(err, &re) || re.Code != CodeFeatureNotSupported || !strings.Contains(re.Message, "public.users") {
			t.Errorf("%s: %v; want a 0A000 refusal naming public.users", sql, err)
		}
	}
	// Under a known path, a name the snapshot does not find on it is not
	// the guarded child of that name in another schema.
	if _, err := p.Plan(`INSERT INTO old_users (id, note) VALUES (1, 'x')`, publicPath); err != nil {
		t.Errorf("unrelated public.old_users: %v", err)
	}
	for _, sql := range []string{
		`INSERT INTO users (id, org_id, email) VALUES (1, 1, $1)`,
		`DROP TABLE users_2025`,
		`ALTER TABLE users DETACH PARTITION users_2025`,
		`TRUNCATE users_2025`,
		`SELECT 'users_2025'`,
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
	st := p.Views()
	if len(st) != 2 || st[0].Child != ChildInheritance || st[1].Child != ChildPartition || st[0].Readable || st[1].Readable {
		t.Errorf("Views() = %+v", st)
	}
}

// TestGuardedChildrenReview2: DDL on a child is checked also while the
// path is unknown; a SQL PREPARE naming a child under a path without it is
// refused (EXECUTE under another path would write it); a sibling partition
// of a configured one, under a table above it, is not refused as if it
// were below the configured table.
func TestGuardedChildrenReview2(t *testing.T) {
	p := newTestPlanner(t)
	cat := testCatalog()
	users := p.cfg.Table("public", "users")
	cat.Tables["public.users_2025"] = catalogTable("public", "users_2025", 16600, "id", "org_id", "email", "email_bidx")
	cat.Tables["public.all_users"] = catalogTable("public", "all_users", 16601, "id", "org_id", "email", "email_bidx")
	cat.Guarded = map[string]*GuardedView{
		"public.users_2025": {Schema: "public", Name: "users_2025", Reads: "public.users", Child: ChildPartition, Parent: users},
		"public.all_users":  {Schema: "public", Name: "all_users", Reads: "public.users", Child: ChildAncestor, Parent: users},
	}
	p.SetCatalog(cat)
	unknown := Session{PathUnknown: true}
	for _, sql := range []string{
		`ALTER TABLE users_2025 ALTER COLUMN email SET DEFAULT 'secret@x'`,
		`CREATE INDEX i ON users_2025 (id) WHERE email = 'secret@x'`,
		`ALTER TABLE all_users ALTER COLUMN email SET DEFAULT 'secret@x'`,
	} {
		if _, err := p.Plan(sql, unknown); err == nil {
			t.Errorf("path unknown: %s accepted", sql)
		}
	}
	if _, err := p.Plan(`PREPARE q(text) AS INSERT INTO users_2025 (id, org_id, email) VALUES (1, 1, $1)`, Session{SearchPath: []string{"app"}}); err == nil {
		t.Error("PREPARE naming a partition under another path accepted")
	}
	for _, sql := range []string{
		`CREATE TABLE all_users_2026 PARTITION OF all_users FOR VALUES FROM (1) TO (2)`,
		`ALTER TABLE all_users ATTACH PARTITION other FOR VALUES FROM (1) TO (2)`,
		`ALTER TABLE all_users ADD COLUMN note text`,
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}
