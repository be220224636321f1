package rewrite

import (
	"strings"
	"testing"
)

// TestDDLThatBreaksThePolicy: DDL through pgveil after which the database
// no longer matches the policy is refused, naming the table and the
// column: dropping an encrypted, blind-index or key_context column (an
// ORM's schema synchronisation drops the blind indexes its models do not
// declare), declaring such a column with a type that cannot hold what
// pgveil writes, and a UNIQUE constraint or index (or primary key) on an
// encrypted column, which envelopes would never violate.
func TestDDLThatBreaksThePolicy(t *testing.T) {
	p := newTestPlanner(t)
	for _, c := range []struct{ sql, column string }{
		{`ALTER TABLE "users" DROP COLUMN "email_bidx"`, "email_bidx"},
		{`ALTER TABLE users DROP COLUMN email`, "email"},
		{`ALTER TABLE users DROP COLUMN IF EXISTS ssn CASCADE`, "ssn"},
		{`ALTER TABLE users DROP COLUMN org_id`, "org_id"},
		{`ALTER TABLE users ADD COLUMN name2 text, DROP COLUMN phone`, "phone"},
		{`ALTER TABLE users ALTER COLUMN birth_date TYPE timestamptz USING birth_date::timestamptz`, "birth_date"},
		{`ALTER TABLE "users" ADD "email" character varying(320)`, "email"},
		{`ALTER TABLE users ADD COLUMN phone varchar`, "phone"},
		{`ALTER TABLE users ADD COLUMN phone bytea[]`, "phone"},
		{`ALTER TABLE users ADD COLUMN email_bidx text`, "email_bidx"},
		{`CREATE TABLE billing.accounts (id int, tenant_id int, iban varchar(34), iban_bidx bytea, balance bytea)`, "iban"},
		{`ALTER TABLE "users" ADD CONSTRAINT "UQ_1" UNIQUE ("email")`, "email"},
		{`ALTER TABLE users ADD PRIMARY KEY (ssn)`, "ssn"},
		{`CREATE UNIQUE INDEX ON users (phone)`, "phone"},
		{`CREATE TABLE billing.accounts (id int, tenant_id int, iban bytea UNIQUE, iban_bidx bytea, balance bytea)`, "iban"},
		{`CREATE TABLE billing.accounts (id int, tenant_id int, iban bytea, iban_bidx bytea, balance bytea, UNIQUE (tenant_id, iban))`, "iban"},
	} {
		e := refusal(t, p, c.sql, publicPath)
		if e.SQLState() != "0A000" || e.Column != c.column || !strings.Contains(e.Message, c.column) {
			t.Errorf("%s: %v (column field %q)", c.sql, e, e.Column)
		}
	}
	for _, sql := range []string{
		`ALTER TABLE users DROP COLUMN name`,
		`ALTER TABLE users ADD COLUMN nickname varchar(40)`,
		`ALTER TABLE users ADD COLUMN phone bytea`,
		`ALTER TABLE users ADD COLUMN phone pg_catalog.bytea`,
		`ALTER TABLE users ADD COLUMN phone text`,
		`ALTER TABLE users ADD COLUMN email_bidx bytea`,
		`CREATE UNIQUE INDEX ON users (email_bidx)`,
		`CREATE INDEX ON users (phone)`,
		`ALTER TABLE users ADD CONSTRAINT u UNIQUE (email_bidx)`,
		`CREATE TABLE billing.accounts (id int PRIMARY KEY, tenant_id int, iban bytea, iban_bidx bytea UNIQUE, balance text)`,
		`ALTER TABLE orgs DROP COLUMN email`,
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}
