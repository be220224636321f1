package integration

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const checkPolicy = `tables:
  public.customers:
    key_context: tenant_id
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          unique: true
      phone:
        type: text
      ssn:
        type: text
        blind_index:
          column: ssn_bidx
      note:
        type: text
      age:
        type: int4
  public.orders:
    columns:
      card:
        type: text
        blind_index:
          column: card_bidx
  public.ghosts:
    columns:
      x:
        type: text
`

// checkBroken has one of each problem `pgveil check` knows.
const checkBroken = `
CREATE TABLE customers (
  id bigserial PRIMARY KEY,
  org_id int8,
  email varchar(40),   -- too narrow, and not text; email_bidx missing
  phone bytea CONSTRAINT phone_short CHECK (octet_length(phone) < 20),  -- sees ciphertext
  ssn text,            -- fine, but its blind index is text
  ssn_bidx text,
  age int4             -- not bytea or text; note missing; tenant_id missing
);
INSERT INTO customers (org_id, email, age) VALUES (1, 'a@example.com', 42);
CREATE UNIQUE INDEX customers_ssn_key ON customers (ssn);  -- indexes ciphertext
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
CREATE TRIGGER customers_touch BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TABLE orders (card bytea, card_bidx bytea);  -- no index, no primary key
-- public.ghosts does not exist; neither does pgveil.keys
`

type checkJSON struct {
	OK       bool `json:"ok"`
	Problems int  `json:"problems"`
	Findings []struct {
		Severity, Code, Table, Column, Message, Caution string
		Fix                                             []string
	} `json:"findings"`
}

// TestOpsCheck runs `pgveil check` on a broken schema (each problem
// reported with its fix, exit 1), applies the fixes it prints, and checks
// again (exit 1 for the plaintext row until `migrate --apply --prepare`,
// then 0); then a wrong master key is a problem; a bad config exits 2.
func TestOpsCheck(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_check", checkPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, checkBroken); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))

	r := e.run(ctx, 1, "check", "-c", cfg, "--format", "json")
	var rep checkJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("check --format json is not JSON: %v\n%s", err, r.stdout)
	}
	got := map[string]bool{}
	for _, f := range rep.Findings {
		got[f.Severity+" "+f.Code+" "+f.Table+" "+f.Column] = true
	}
	want := []string{
		"problem column_type public.customers email",
		"problem bidx_missing public.customers email_bidx",
		"problem bidx_type public.customers ssn_bidx",
		"problem bidx_index_missing public.customers ssn_bidx",
		"problem column_missing public.customers note",
		"problem column_type public.customers age",
		"problem key_context_missing public.customers tenant_id",
		"problem bidx_index_missing public.orders card_bidx",
		"problem table_missing public.ghosts ",
		"problem keystore_missing  ",
		"note no_primary_key public.orders ",
		"problem constraint_on_encrypted public.customers phone",
		"note index_on_encrypted public.customers ssn",
		"note triggers public.customers ",
		"note table_states_missing  ",
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("check did not report %q", w)
		}
	}
	if rep.OK || rep.Problems != 11 {
		keys := make([]string, 0, len(got))
		for k := range got {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		t.Errorf("ok=%v problems=%d, want 11:\n%s", rep.OK, rep.Problems, strings.Join(keys, "\n"))
	}

	// The text report shows the same, with the exact DDL.
	r = e.run(ctx, 1, "check", "-c", cfg)
	for _, ddl := range []string{
		"ALTER TABLE public.customers ALTER COLUMN email TYPE text;",
		"ALTER TABLE public.customers ADD COLUMN email_bidx bytea;",
		"CREATE UNIQUE INDEX CONCURRENTLY customers_email_bidx_idx ON public.customers (email_bidx);",
		"ALTER TABLE public.customers ADD COLUMN note bytea;",
		"ALTER TABLE public.customers ALTER COLUMN age TYPE text USING age::text;",
		"ALTER TABLE public.customers ALTER COLUMN ssn_bidx TYPE bytea USING NULL;",
		"CREATE INDEX CONCURRENTLY orders_card_bidx_idx ON public.orders (card_bidx);",
		"CREATE TABLE IF NOT EXISTS pgveil.keys",
		"too narrow: the envelope of a 40-character ASCII value is 103 characters",
		"ALTER TABLE public.customers DROP CONSTRAINT phone_short;",
		"DROP INDEX CONCURRENTLY public.customers_ssn_key;",
	} {
		if !strings.Contains(r.stdout, ddl) {
			t.Errorf("text report lacks %q", ddl)
		}
	}
	if t.Failed() {
		t.Fatalf("report:\n%s", r.stdout)
	}

	// Apply every fix it printed, plus what only a person can decide.
	for _, f := range rep.Findings {
		if f.Severity != "problem" {
			continue
		}
		for _, s := range f.Fix {
			start := time.Now()
			if _, err := su.Exec(ctx, s, pgx.QueryExecModeSimpleProtocol); err != nil {
				t.Fatalf("fix %q: %v", s, err)
			}
			t.Logf("%s: %s", time.Since(start), s)
		}
	}
	for _, s := range []string{
		"ALTER TABLE customers ADD COLUMN tenant_id int8 NOT NULL DEFAULT 1",
		"CREATE TABLE ghosts (id int PRIMARY KEY, x bytea)",
		// Views over encrypted columns: one pgveil reads through, one it refuses.
		"CREATE VIEW customer_emails AS SELECT tenant_id, email, email_bidx FROM customers",
		"CREATE VIEW customer_hashes AS SELECT tenant_id, md5(email) AS h FROM customers",
		// A table inheriting the encrypted columns: refused by name.
		"CREATE TABLE customers_archive () INHERITS (customers)",
		// Code that may change search_path: noted.
		"CREATE FUNCTION use_tenant(s text) RETURNS void LANGUAGE sql AS $$ SELECT set_config('search_path', s, false) $$",
	} {
		if _, err := su.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// The row inserted before adoption is plaintext in a table that counts
	// as complete (no migration state): pgveil would refuse its values
	// (PV003) until `migrate --apply --prepare` makes the table migrating.
	r = e.run(ctx, 1, "check", "-c", cfg, "--format", "json")
	rep = checkJSON{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	plain := map[string]bool{}
	for _, f := range rep.Findings {
		if f.Severity == "problem" {
			plain[f.Code+" "+f.Table+" "+f.Column] = true
		}
	}
	if rep.Problems != 2 || !plain["plaintext_in_complete public.customers email"] || !plain["plaintext_in_complete public.customers age"] {
		t.Fatalf("plaintext in a table without migration state:\n%s", r.stdout)
	}
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--prepare", "--table", "public.customers")
	r = e.run(ctx, 0, "check", "-c", cfg)
	if !strings.Contains(r.stdout, "OK: the database matches the policy.") || !strings.Contains(r.stdout, "no primary key") {
		t.Fatalf("good schema:\n%s", r.stdout)
	}
	r = e.run(ctx, 0, "check", "-c", cfg, "--format", "json")
	rep = checkJSON{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	views := map[string]string{}
	pathFns := 0
	for _, f := range rep.Findings {
		if f.Code == "path_function" && strings.Contains(f.Message, "use_tenant") {
			pathFns++
		}
		if strings.HasPrefix(f.Code, "view_") || strings.HasPrefix(f.Code, "child_") {
			views[f.Table] = f.Code
		}
	}
	if views["public.customer_emails"] != "view_readable" || views["public.customer_hashes"] != "view_refused" ||
		views["public.customers_archive"] != "child_refused" || len(views) != 3 || pathFns != 1 {
		t.Fatalf("views: %v, path functions noted: %d\n%s", views, pathFns, r.stdout)
	}

	// Keys made under this master key; check with another key finds them unreadable.
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply", "--table", "public.customers")
	other := e.dir + "/other.key"
	e.run(ctx, 0, "keygen", "-o", other)
	r = e.run(ctx, 1, "check", "-c", e.writeConfig("other.yaml", e.config(other)), "--format", "json")
	rep = checkJSON{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) == 0 || rep.Problems != 1 || !strings.Contains(r.stdout, `"code": "master_key"`) || !strings.Contains(r.stdout, "previous_key_files") {
		t.Fatalf("wrong master key:\n%s", r.stdout)
	}

	// A config error is exit 2, before anything connects.
	bad := e.writeConfig("bad.yaml", "tables:\n  public.customers:\n    columns:\n      email:\n        type: textish\n")
	if r := e.run(ctx, 2, "check", "-c", bad); !strings.Contains(r.stderr, "bad.yaml:5") {
		t.Fatalf("config error: %s", r.stderr)
	}
}

const checkTriggersPolicy = `tables:
  public.accounts:
    key_context: org_id
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase]
`

// TestOpsCheckTriggers: BEFORE ROW triggers whose PL/pgSQL function
// assigns the key_context column or an encrypted column are problems of
// `pgveil check` (exit 1), and through pgveil they do what the findings
// say: the rows they write no longer open (PV001). Disabled, such a
// trigger is a note; a trigger that sets another column, one in a
// language pgveil cannot read, and comments or strings that only mention
// NEW.org_id stay notes (exit 0).
func TestOpsCheckTriggers(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_check_triggers", checkTriggersPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `
CREATE TABLE accounts (
  id bigserial PRIMARY KEY,
  org_id int8 NOT NULL,
  email text,           -- envelopes as 'pgv1:…' (in-place adoption)
  email_bidx bytea,
  updated_at timestamptz
);
CREATE INDEX ON accounts (email_bidx);`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	e.run(ctx, 0, "check", "-c", cfg)

	// Each trigger changes the row pgveil sealed.
	for _, s := range []string{
		`CREATE FUNCTION move_tenant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- the tenant comes from the parent organisation
  NEW."org_id" := NEW.org_id + 1000;
  RETURN NEW;
END $$`,
		`CREATE TRIGGER accounts_move_tenant BEFORE INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION move_tenant()`,
		`CREATE FUNCTION lower_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  new . email = lower(new.email);
  RETURN NEW;
END $$`,
		`CREATE TRIGGER accounts_lower_email BEFORE INSERT OR UPDATE OF email ON accounts FOR EACH ROW EXECUTE FUNCTION lower_email()`,
	} {
		if _, err := su.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	r := e.run(ctx, 1, "check", "-c", cfg, "--format", "json")
	var rep checkJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("check --format json: %v\n%s", err, r.stdout)
	}
	got := map[string]string{}
	for _, f := range rep.Findings {
		got[f.Severity+" "+f.Code+" "+f.Table+" "+f.Column] = f.Message
	}
	for key, words := range map[string][]string{
		"problem trigger_sets_key_context public.accounts org_id": {"trigger accounts_move_tenant", "function public.move_tenant", "BEFORE INSERT FOR EACH ROW", "PV001", "set the tenant in the application's statement"},
		"problem trigger_sets_encrypted public.accounts email":    {"trigger accounts_lower_email", "function public.lower_email", "BEFORE INSERT OR UPDATE FOR EACH ROW", "encrypted column(s) email", "blind_index.normalize"},
	} {
		msg, ok := got[key]
		if !ok {
			t.Errorf("check did not report %q", key)
		}
		for _, w := range words {
			if ok && !strings.Contains(msg, w) {
				t.Errorf("%s: message lacks %q: %s", key, w, msg)
			}
		}
	}
	if rep.OK || rep.Problems != 2 {
		t.Errorf("ok=%v problems=%d, want 2", rep.OK, rep.Problems)
	}
	r = e.run(ctx, 1, "check", "-c", cfg)
	for _, s := range []string{
		"PROBLEM  trigger accounts_move_tenant (function public.move_tenant, BEFORE INSERT FOR EACH ROW) sets the key_context column org_id",
		"fix: DROP TRIGGER accounts_lower_email ON public.accounts;",
		"2 problem(s).",
	} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("text report lacks %q", s)
		}
	}
	if strings.Contains(r.stdout, "pgveil migrate --apply") {
		t.Errorf("the report says migrate runs fixes that are DROP TRIGGERs only")
	}
	if t.Failed() {
		t.Fatalf("report:\n%s", r.stdout)
	}
	t.Logf("pgveil check:\n%s", r.stdout)

	// What the findings say happens: rows written through pgveil under
	// either trigger no longer open.
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	if _, err := app.Exec(ctx, `INSERT INTO accounts (org_id, email) VALUES ($1, $2)`, 1, "Ada@Example.com"); err != nil {
		t.Fatal(err)
	}
	var org int64
	if err := su.QueryRow(ctx, `SELECT org_id FROM accounts`).Scan(&org); err != nil || org != 1001 {
		t.Fatalf("the trigger did not move the row: org_id %d, %v", org, err)
	}
	readFails := func(what string) {
		t.Helper()
		c, err := pgx.Connect(ctx, e.appURL(p))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		var email *string
		err = c.QueryRow(ctx, `SELECT email FROM accounts`).Scan(&email)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "PV001" {
			t.Errorf("%s: read through pgveil gave %v (email %v), want PV001", what, err, email)
		}
	}
	readFails("both triggers")
	if _, err := su.Exec(ctx, `ALTER TABLE accounts DISABLE TRIGGER accounts_move_tenant; TRUNCATE accounts`); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec(ctx, `INSERT INTO accounts (org_id, email) VALUES ($1, $2)`, 1, "Ada@Example.com"); err != nil {
		t.Fatal(err)
	}
	readFails("the lower_email trigger")

	// Disabled, the tenant trigger is a note; the other is still a problem.
	r = e.run(ctx, 1, "check", "-c", cfg, "--format", "json")
	rep = checkJSON{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	disabled := false
	for _, f := range rep.Findings {
		if f.Code == "trigger_sets_key_context" {
			disabled = f.Severity == "note" && strings.Contains(f.Message, "accounts_move_tenant") && strings.Contains(f.Message, "is disabled") && len(f.Fix) == 0
		}
	}
	if !disabled || rep.Problems != 1 {
		t.Fatalf("disabled trigger: problems=%d\n%s", rep.Problems, r.stdout)
	}

	// Harmless triggers stay notes: one that sets another column (its
	// comment and string only mention NEW.org_id), one in C whose source
	// pgveil cannot read, and the disabled one.
	for _, s := range []string{
		`DROP TRIGGER accounts_lower_email ON accounts`,
		`DROP FUNCTION lower_email()`,
		`CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now(); -- never NEW.org_id := 0
  /* nor NEW.email := lower(NEW.email) */
  RAISE DEBUG 'NEW.org_id := %', NEW.org_id;
  RETURN NEW;
END $$`,
		`CREATE TRIGGER accounts_touch BEFORE INSERT OR UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION touch()`,
		`CREATE TRIGGER accounts_same BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()`,
	} {
		if _, err := su.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	r = e.run(ctx, 0, "check", "-c", cfg, "--format", "json")
	rep = checkJSON{}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, f := range rep.Findings {
		if f.Code == "triggers" || strings.HasPrefix(f.Code, "trigger_") {
			notes = append(notes, f.Severity+" "+f.Code+": "+f.Message)
		}
	}
	want := []string{
		"note trigger_sets_key_context: trigger accounts_move_tenant (function public.move_tenant, BEFORE INSERT FOR EACH ROW) is disabled",
		"note triggers: trigger accounts_same (function pg_catalog.suppress_redundant_updates_trigger, BEFORE UPDATE FOR EACH ROW) can change each row before it is written, but its function is in internal, whose source pgveil cannot read",
		"note triggers: trigger(s) accounts_touch run inside the database",
	}
	ok := len(notes) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(notes[i], want[i])
	}
	if !ok || !rep.OK {
		t.Fatalf("trigger notes:\n%s\nwant, as prefixes:\n%s\n\n%s", strings.Join(notes, "\n"), strings.Join(want, "\n"), r.stdout)
	}
	r = e.run(ctx, 0, "check", "-c", cfg)
	t.Logf("pgveil check:\n%s", r.stdout)
}

// TestOpsCheckTenantForeignKey: a foreign key on the key_context column
// that changes it inside the server (ON UPDATE CASCADE, ON DELETE SET
// NULL) moves rows to another tenant unseen by pgveil (an UPDATE of the
// referenced table is not one of a configured table), and their values no
// longer open: `pgveil check` reports it as a problem (exit 1). Through
// pgveil the cascade indeed leaves the row unreadable (PV001). With NO
// ACTION and ON DELETE CASCADE the check passes (exit 0).
func TestOpsCheckTenantForeignKey(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	e := newOpsEnv(t, "ops_check_fk", checkTriggersPolicy)
	su := e.conn(ctx)
	if _, err := su.Exec(ctx, `
CREATE TABLE orgs (id int8 PRIMARY KEY);
INSERT INTO orgs VALUES (1), (2);
CREATE TABLE accounts (
  id bigserial PRIMARY KEY,
  org_id int8 CONSTRAINT accounts_org_fk REFERENCES orgs,
  email text,
  email_bidx bytea,
  updated_at timestamptz
);
CREATE INDEX ON accounts (email_bidx);`); err != nil {
		t.Fatal(err)
	}
	cfg := e.writeConfig("pgveil.yaml", e.config(""))
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	e.run(ctx, 0, "check", "-c", cfg)
	if _, err := su.Exec(ctx, `ALTER TABLE accounts DROP CONSTRAINT accounts_org_fk,
		ADD CONSTRAINT accounts_org_fk FOREIGN KEY (org_id) REFERENCES orgs ON UPDATE CASCADE ON DELETE SET NULL`); err != nil {
		t.Fatal(err)
	}
	r := e.run(ctx, 1, "check", "-c", cfg, "--format", "json")
	var rep checkJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("check --format json: %v\n%s", err, r.stdout)
	}
	found := false
	for _, f := range rep.Findings {
		if f.Code == "key_context_fk_moves" {
			found = f.Severity == "problem" && f.Table == "public.accounts" && f.Column == "org_id" &&
				strings.Contains(f.Message, "accounts_org_fk") && strings.Contains(f.Message, "ON UPDATE CASCADE, ON DELETE SET NULL") &&
				strings.Contains(f.Message, "PV001")
			if !found {
				t.Errorf("finding: %+v", f)
			}
		}
	}
	if !found || rep.Problems != 1 {
		t.Fatalf("check reported %d problem(s), want the cascading foreign key:\n%s", rep.Problems, r.stdout)
	}

	// What the finding says happens, through pgveil.
	p := e.proxy(e.config(""))
	c := e.appConn(ctx, p)
	var id int64
	if err := c.QueryRow(ctx, `INSERT INTO accounts (org_id, email) VALUES (1, $1) RETURNING id`, "fk@example.org").Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `UPDATE orgs SET id = 3 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	var email string
	err := c.QueryRow(ctx, `SELECT email FROM accounts WHERE id = $1`, id).Scan(&email)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "PV001" {
		t.Errorf("reading the row the cascade moved: %q, %v; want PV001", email, err)
	}

	if _, err := su.Exec(ctx, `ALTER TABLE accounts DROP CONSTRAINT accounts_org_fk,
		ADD CONSTRAINT accounts_org_fk FOREIGN KEY (org_id) REFERENCES orgs ON DELETE CASCADE`); err != nil {
		t.Fatal(err)
	}
	c = e.appConn(ctx, p) // the PV001 ended the first session
	if _, err := c.Exec(ctx, `CREATE VIEW account_orgs AS SELECT id, org_id FROM accounts`); err != nil {
		t.Fatal(err)
	}
	// A view over the tenant column is a note: UPDATE through it is refused.
	r = e.run(ctx, 0, "check", "-c", cfg)
	if !strings.Contains(r.stdout, "view public.account_orgs reads the tenant column of public.accounts: pgveil refuses UPDATE and MERGE through it") {
		t.Errorf("check does not note the view over the tenant column:\n%s", r.stdout)
	}
	_, err = c.Exec(ctx, `UPDATE account_orgs SET org_id = 2 WHERE id = $1`, id)
	if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "view public.account_orgs") {
		t.Errorf("UPDATE through the view: %v, want 0A000", err)
	}
}
