package rewrite

// Review 18b: the tenant value as PostgreSQL stores it.
//
// Findings:
//   - HIGH: a cast to another type on the key_context value
//     (VALUES (int8 '007', …), '007'::int8, '1e2'::numeric, 't'::bool,
//     '007'::int4::text, $1::int8 with '007' bound) into a text key_context
//     column: PostgreSQL stores the cast value's text ('7', '100', 'true')
//     while pgveil sealed the row's values under the tenant as written
//     ('007'): the row then fails to open (PV001), or opens under another
//     tenant's key. Same for UPDATE … SET org_id = '007'::int8 and for the
//     SELECT item of INSERT … SELECT … FROM (VALUES …) (p0::int8 over
//     '007'). Only length casts were refused (tenantCastsKeep). Fix: a
//     cast on the key_context value must fit the column's type as a cast
//     on an encrypted value must (castFits: text, varchar, unknown for a
//     text column; the integer types, numeric for an integer column; the
//     type itself otherwise), else refused (42804) naming the table, the
//     column and the remedy (TestReview18bTenantCast). In WHERE org_id =
//     <such a cast> the tenant is looked up instead (the rows' stored
//     tenant).
//   - MEDIUM: INSERT … SELECT … FROM (VALUES …) (insertmany) with an
//     encrypted text column given '0042' in one row and 42 in another:
//     the VALUES column is integer to PostgreSQL, which would store '42'
//     (and refuse 'abc' beside 42), while pgveil sealed '0042' as written.
//     Fix: refused as a text key_context column mixing them is
//     (tenantRowsAgree; TestReview18bInsertManyEncryptedNumbers).
//   - HIGH (given such a column): a key_context of a type pgveil does not
//     know (citext, float8) in UPDATE … WHERE org_id = 'ACME': PostgreSQL
//     compares by the column's equality (citext matches 'acme' rows) while
//     pgveil sealed the values under 'ACME' as written; those rows then did
//     not open. Fix: the tenant of such a WHERE is looked up from the rows
//     (tenantTypeKnown; TestReview18bWhereTenantOtherType).
//
// The rewrite test catalog's tenants (users.org_id, accounts.tenant_id)
// are bigint now, as the integration schema's; textTenantCatalog has a
// text org_id.
//
// Held (TestReview18bTenantCastHolds): casts to the column's own type
// family, a cast to INTEGER on the SELECT item of an integer tenant.
//
// Noticed, not fixed (LOW): an unquoted 1e2 or 7.0 for an integer
// key_context column is refused by the proxy (PostgreSQL stores 100, 7);
// PG16 literal forms (0x1F, 1_000) are read by pgveil's PG16 parser while
// PostgreSQL 15 rejects them: a value sealed for an encrypted column
// reaches PostgreSQL 15 as ciphertext, so such a statement succeeds
// through pgveil where PostgreSQL 15 alone would fail (the value is the
// one PostgreSQL 16 stores).

import (
	"strings"
	"testing"
)

func TestReview18bTenantCast(t *testing.T) {
	p := NewPlanner(testConfig(t), 16)
	p.SetCatalog(textTenantCatalog())
	for _, sql := range []string{
		`INSERT INTO users (org_id, email) VALUES (int8 '007', 'a@x')`,
		`INSERT INTO users (org_id, email) VALUES ('007'::int8, 'a@x')`,
		`INSERT INTO users (org_id, email) VALUES ('1e2'::numeric, 'a@x')`,
		`INSERT INTO users (org_id, email) VALUES ('t'::bool, 'a@x')`,
		`INSERT INTO users (org_id, email) VALUES ('007'::int4::text, 'a@x')`,
		`INSERT INTO users (org_id, email) VALUES (CAST('007' AS bigint), 'a@x')`,
		`INSERT INTO users (org_id, email) VALUES ($1::int8, $2)`,
		`INSERT INTO users (org_id, email) VALUES ($1::int8, $2) ON CONFLICT (email_bidx) DO UPDATE SET email = EXCLUDED.email`,
		`INSERT INTO users (org_id, email) VALUES ('007'::date, 'a@x')`,
		`INSERT INTO users (org_id, email) SELECT p0::INTEGER, p1 FROM (VALUES (7, 'a@x', 0)) AS imp(p0, p1, s) ORDER BY s`,
		`INSERT INTO users (org_id, email) SELECT p0::int8, p1 FROM (VALUES ('007', 'a@x', 0)) AS imp(p0, p1, s) ORDER BY s`,
		`INSERT INTO users (org_id, email) SELECT p0, p1 FROM (VALUES ('007'::int8, 'a@x', 0)) AS imp(p0, p1, s) ORDER BY s`,
		`UPDATE users SET org_id = '007'::int8, email = 'a@x', phone = 'p', ssn = 's', birth_date = '2000-01-01', api_token = 't' WHERE id = 1`,
		`UPDATE users SET org_id = $1::int8, email = $2 WHERE id = $3`,
	} {
		_, err := p.Plan(sql, publicPath)
		if err == nil || !strings.Contains(err.Error(), "org_id") {
			t.Errorf("%s\n  planned (%v): PostgreSQL stores the cast value's text, pgveil sealed under the tenant as written", sql, err)
		}
	}
	// In WHERE, such a tenant is not taken as written: pgveil looks the
	// rows' tenant up (or refuses).
	for _, sql := range []string{
		`UPDATE users SET email = $1 WHERE org_id = $2::int8::text AND id = $3`,
		`UPDATE users SET email = 'a@x' WHERE org_id = '007'::int8::text AND id = 3`,
	} {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			continue
		}
		st := plan.Stmts[0]
		for _, s := range st.Slots {
			if s.Tenant.Kind == RefParam || s.Tenant.Kind == RefLiteral {
				t.Errorf("%s: sealed under the WHERE's cast tenant as written (%+v)", sql, s.Tenant)
			}
		}
		for _, u := range st.Params {
			if u.Tenant.Kind == RefParam || u.Tenant.Kind == RefLiteral {
				t.Errorf("%s: parameter sealed under the WHERE's cast tenant as written (%+v)", sql, u.Tenant)
			}
		}
	}
}

func TestReview18bTenantCastHolds(t *testing.T) {
	p := NewPlanner(testConfig(t), 16)
	p.SetCatalog(textTenantCatalog())
	for _, sql := range []string{
		`INSERT INTO users (org_id, email) VALUES ('007'::text, 'a@x')`,
		`INSERT INTO users (org_id, email) VALUES (007::text, 'a@x')`,
		`INSERT INTO users (org_id, email) VALUES (varchar '007', 'a@x')`,
		`INSERT INTO users (org_id, email) VALUES ($1::text, $2)`,
		`INSERT INTO users (org_id, email) VALUES (CAST($1 AS varchar), $2)`,
		`UPDATE users SET org_id = $1::text, email = $2 WHERE id = $3`,
		`UPDATE users SET email = $1 WHERE org_id = $2::text AND id = $3`,
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
	// An integer tenant takes integer (and numeric) casts; the proxy reads
	// the value as the column's integer.
	pi := newTestPlanner(t) // org_id bigint
	for _, sql := range []string{
		`INSERT INTO users (org_id, email) SELECT p0::INTEGER, p1 FROM (VALUES (7, 'a@x', 0)) AS imp(p0, p1, s) ORDER BY s`,
		`INSERT INTO users (org_id, email) SELECT p0::BIGINT, p1::VARCHAR FROM (VALUES ($1::BIGINT, $2::VARCHAR, 0)) AS imp(p0, p1, s) ORDER BY s`,
		`INSERT INTO users (org_id, email) VALUES (int8 '007', 'a@x')`,
		`INSERT INTO users (org_id, email) VALUES ($1::int4, $2)`,
		`UPDATE users SET org_id = $1::int8, email = $2 WHERE id = $3`,
	} {
		if _, err := pi.Plan(sql, publicPath); err != nil {
			t.Errorf("int8 tenant: %s: %v", sql, err)
		}
	}
	for _, sql := range []string{
		`UPDATE users SET org_id = $1::text::int8, phone = $2 WHERE id = $3`,
		`INSERT INTO users (org_id, email) VALUES ('7'::text, 'a@x')`, // PostgreSQL refuses text for bigint
	} {
		if _, err := pi.Plan(sql, publicPath); err != nil {
			t.Errorf("int8 tenant: %s: %v", sql, err)
		}
	}
	for _, sql := range []string{
		`INSERT INTO users (org_id, email) VALUES ('-1'::oid::int8, 'a@x')`, // 4294967295
		`INSERT INTO users (org_id, email) VALUES ('t'::bool, 'a@x')`,
	} {
		if _, err := pi.Plan(sql, publicPath); err == nil || !strings.Contains(err.Error(), "org_id") {
			t.Errorf("int8 tenant: %s: %v", sql, err)
		}
	}
}

// TestReview18bInsertManyEncryptedNumbers: a VALUES list outside INSERT …
// VALUES takes one type per column: an encrypted text column given '0042'
// in one row and 42 in another is read as integers by PostgreSQL ('0042'
// stored as '42', 'abc' refused), while pgveil seals each value as
// written. Refused as for the key_context column.
func TestReview18bInsertManyEncryptedNumbers(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`INSERT INTO users (org_id, email) SELECT p0, p1 FROM (VALUES (7, '0042', 0), (7, 42, 1)) AS imp(p0, p1, s) ORDER BY s`,
		`INSERT INTO users (org_id, email) SELECT p0, p1 FROM (VALUES (7, 42, 0), (7, $1, 1)) AS imp(p0, p1, s) ORDER BY s`,
	} {
		if _, err := p.Plan(sql, publicPath); err == nil || !strings.Contains(err.Error(), "email") || !strings.Contains(err.Error(), "unquoted numbers") {
			t.Errorf("%s: %v", sql, err)
		}
	}
	for _, sql := range []string{
		`INSERT INTO users (org_id, email) SELECT p0, p1 FROM (VALUES (7, 42, 0), (8, 1e2, 1), (9, NULL, 2)) AS imp(p0, p1, s) ORDER BY s`,
		`INSERT INTO users (org_id, email) SELECT p0, p1 FROM (VALUES (7, '0042', 0), (8, 'x', 1)) AS imp(p0, p1, s) ORDER BY s`,
		`INSERT INTO users (org_id, email) SELECT p0, p1 FROM (VALUES ($1, $2, 0), ($3, $4, 1)) AS imp(p0, p1, s) ORDER BY s`,
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: %v", sql, err)
		}
	}
}

// TestReview18bWhereTenantOtherType: a key_context column of a type pgveil
// does not know (citext, float8: its tenants are read as text as written)
// compares in WHERE by its own equality: org_id = 'ACME' on citext matches
// the rows of tenant 'acme', whose values were sealed under 'ACME'. The
// tenant of such a WHERE is looked up from the rows instead.
func TestReview18bWhereTenantOtherType(t *testing.T) {
	cat := testCatalog()
	for i, c := range cat.Tables["public.users"].Columns {
		if c.Name == "org_id" {
			cat.Tables["public.users"].Columns[i].TypeOID = 16999 // citext
		}
	}
	p := NewPlanner(testConfig(t), 16)
	p.SetCatalog(cat)
	for _, sql := range []string{
		`UPDATE users SET email = 'a' WHERE org_id = 'ACME' AND id = 1`,
		`UPDATE users SET email = $1 WHERE org_id = $2 AND id = $3`,
	} {
		pl, err := p.Plan(sql, publicPath)
		if err != nil {
			continue
		}
		st := pl.Stmts[0]
		for _, s := range st.Slots {
			if s.Tenant.Kind == RefParam || s.Tenant.Kind == RefLiteral {
				t.Errorf("%s: sealed under the WHERE's tenant as written (%+v)", sql, s.Tenant)
			}
		}
		for _, u := range st.Params {
			if u.Tenant.Kind == RefParam || u.Tenant.Kind == RefLiteral {
				t.Errorf("%s: parameter sealed under the WHERE's tenant as written (%+v)", sql, u.Tenant)
			}
		}
	}
	// Known types keep taking it from WHERE.
	pl, err := newTestPlanner(t).Plan(`UPDATE users SET email = $1 WHERE org_id = $2 AND id = $3`, publicPath)
	if err != nil || pl.Stmts[0].Lookup != nil {
		t.Errorf("bigint tenant in WHERE: %v", err)
	}
}
