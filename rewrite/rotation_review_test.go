package rewrite

import (
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

const reviewRotationPolicy = `
upstream:
  service_url: postgres://pgveil@localhost/app
keysource:
  local: {key_env: K}
tables:
  accounts:
    key_context: org_id
    columns:
      email:
        type: text
        blind_index:
          column: email_bidx
          normalize: [lowercase]
          key: email
          unique: true
          next: {column: email_bidx2, key: email_v2, normalize: [lowercase, trim]}
      phone: {type: text}
      ssn:
        type: text
        blind_index: {column: ssn_bidx, next: {column: ssn_bidx2, key: ssn_v2}}
  contacts:
    columns:
      email:
        type: text
        blind_index: {column: email_bidx, normalize: [lowercase], key: email}
`

func reviewRotationPlanner(t *testing.T) *Planner {
	t.Helper()
	cfg, err := policy.LoadBytes("rotation_review.yaml", []byte(reviewRotationPolicy), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p := NewPlanner(cfg, 16)
	p.SetCatalog(&Catalog{Tables: map[string]*CatalogTable{
		"public.accounts": catalogTable("public", "accounts", 16600, "id", "org_id", "email", "email_bidx", "phone", "email_bidx2", "ssn", "ssn_bidx", "ssn_bidx2"),
		"public.contacts": catalogTable("public", "contacts", 16610, "id", "email", "email_bidx", "note"),
	}})
	return p
}

// reviewGolden plans each statement and compares its dump.
func reviewGolden(t *testing.T, p *Planner, cases []struct{ sql, want string }) {
	t.Helper()
	for _, tc := range cases {
		plan, err := p.Plan(tc.sql, publicPath)
		if err != nil {
			t.Errorf("%s: %v", tc.sql, err)
			continue
		}
		if got := dumpPlan(tc.sql, plan); got != tc.want {
			t.Errorf("%s:\ngot\n%s\nwant\n%s", tc.sql, got, tc.want)
		}
	}
}

// TestReviewRotationWrites: every write path fills both index columns of
// every rotating column (each under its own action, from the right
// parameter or literal), ON CONFLICT arbiters name the current index, and
// lookups use the current index only. Two rotating columns (email, whose
// next index normalises differently, and ssn) number their parameters
// independently; contacts shares email's current key and does not rotate.
func TestReviewRotationWrites(t *testing.T) {
	reviewGolden(t, reviewRotationPlanner(t), []struct{ sql, want string }{
		{`INSERT INTO accounts (org_id, email, phone, ssn) VALUES ($1, $2, $3, $4)`, `kind=insert rewritten=true client_params=4
  sql: INSERT INTO accounts (org_id, email, email_bidx, email_bidx2, phone, ssn, ssn_bidx, ssn_bidx2) VALUES ($1, $2, $5, $6, $3, $4, $7, $8)
  $2 = encrypt($2, public.accounts.email, tenant=$1)
  $3 = encrypt($3, public.accounts.phone, tenant=$1)
  $4 = encrypt($4, public.accounts.ssn, tenant=$1)
  $5 = index($2, public.accounts.email)
  $6 = index-next($2, public.accounts.email)
  $7 = index($4, public.accounts.ssn)
  $8 = index-next($4, public.accounts.ssn)
`},
		{`INSERT INTO accounts (email, org_id, ssn) VALUES ($1, $2, $3), ($4, $5, $6)`, `kind=insert rewritten=true client_params=6
  sql: INSERT INTO accounts (email, email_bidx, email_bidx2, org_id, ssn, ssn_bidx, ssn_bidx2) VALUES ($1, $7, $8, $2, $3, $9, $10), ($4, $11, $12, $5, $6, $13, $14)
  $1 = encrypt($1, public.accounts.email, tenant=$2)
  $3 = encrypt($3, public.accounts.ssn, tenant=$2)
  $4 = encrypt($4, public.accounts.email, tenant=$5)
  $6 = encrypt($6, public.accounts.ssn, tenant=$5)
  $7 = index($1, public.accounts.email)
  $8 = index-next($1, public.accounts.email)
  $9 = index($3, public.accounts.ssn)
  $10 = index-next($3, public.accounts.ssn)
  $11 = index($4, public.accounts.email)
  $12 = index-next($4, public.accounts.email)
  $13 = index($6, public.accounts.ssn)
  $14 = index-next($6, public.accounts.ssn)
`},
		{`INSERT INTO accounts (org_id, email, ssn) VALUES ($1, $2::text, $3::varchar)`, `kind=insert rewritten=true client_params=3
  sql: INSERT INTO accounts (org_id, email, email_bidx, email_bidx2, ssn, ssn_bidx, ssn_bidx2) VALUES ($1, $2, $4, $5, $3, $6, $7)
  $2 = encrypt($2, public.accounts.email, tenant=$1)
  $3 = encrypt($3, public.accounts.ssn, tenant=$1)
  $4 = index($2, public.accounts.email)
  $5 = index-next($2, public.accounts.email)
  $6 = index($3, public.accounts.ssn)
  $7 = index-next($3, public.accounts.ssn)
`},
		{`INSERT INTO accounts (org_id, email, ssn) VALUES ($1, NULL::text, DEFAULT)`, `kind=insert rewritten=true client_params=1
  sql: INSERT INTO accounts (org_id, email, email_bidx, email_bidx2, ssn, ssn_bidx, ssn_bidx2) VALUES ($1, NULL, NULL, NULL, DEFAULT, DEFAULT, DEFAULT)
`},
		{`INSERT INTO accounts (org_id, email, ssn) VALUES (1, 'a@x', E'1\'2'), (2, $1, 'z')`, `kind=insert rewritten=true client_params=1
  sql: INSERT INTO accounts (org_id, email, email_bidx, email_bidx2, ssn, ssn_bidx, ssn_bidx2) VALUES (1, {encrypt:email<-L1 tenant=L0}, {index:email<-L1}, {index-next:email<-L1}, {encrypt:ssn<-L2 tenant=L0}, {index:ssn<-L2}, {index-next:ssn<-L2}), (2, $1, $2, $3, {encrypt:ssn<-L4 tenant=L3}, {index:ssn<-L4}, {index-next:ssn<-L4})
  $1 = encrypt($1, public.accounts.email, tenant=L3)
  $2 = index($1, public.accounts.email)
  $3 = index-next($1, public.accounts.email)
  L0 = 1
  L1 = 'a@x'
  L2 = E'1\'2'
  L3 = 2
  L4 = 'z'
`},
		{`INSERT INTO accounts (org_id, "email") VALUES ($1, $2)`, `kind=insert rewritten=true client_params=2
  sql: INSERT INTO accounts (org_id, "email", "email_bidx", "email_bidx2") VALUES ($1, $2, $3, $4)
  $2 = encrypt($2, public.accounts.email, tenant=$1)
  $3 = index($2, public.accounts.email)
  $4 = index-next($2, public.accounts.email)
`},
		{`INSERT INTO accounts (org_id, email, ssn) VALUES ($1, $2, $2)`, `kind=insert rewritten=true client_params=2
  sql: INSERT INTO accounts (org_id, email, email_bidx, email_bidx2, ssn, ssn_bidx, ssn_bidx2) VALUES ($1, $2, $3, $4, $5, $6, $7)
  $2 = encrypt($2, public.accounts.email, tenant=$1)
  $3 = index($2, public.accounts.email)
  $4 = index-next($2, public.accounts.email)
  $5 = encrypt($2, public.accounts.ssn, tenant=$1)
  $6 = index($2, public.accounts.ssn)
  $7 = index-next($2, public.accounts.ssn)
`},
		{`INSERT INTO accounts (org_id, email) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING`, `kind=insert rewritten=true client_params=2
  sql: INSERT INTO accounts (org_id, email, email_bidx, email_bidx2) VALUES ($1, $2, $3, $4) ON CONFLICT (email_bidx) DO NOTHING
  $2 = encrypt($2, public.accounts.email, tenant=$1)
  $3 = index($2, public.accounts.email)
  $4 = index-next($2, public.accounts.email)
`},
		{`INSERT INTO accounts (org_id, email) VALUES ($1, $2) ON CONFLICT ("email") DO UPDATE SET "email" = EXCLUDED."email"`, `kind=insert rewritten=true client_params=2
  sql: INSERT INTO accounts (org_id, email, email_bidx, email_bidx2) VALUES ($1, $2, $3, $4) ON CONFLICT ("email_bidx") DO UPDATE SET "email" = EXCLUDED."email", "email_bidx" = excluded."email_bidx", "email_bidx2" = excluded."email_bidx2" WHERE accounts.org_id = EXCLUDED.org_id
  $2 = encrypt($2, public.accounts.email, tenant=$1)
  $3 = index($2, public.accounts.email)
  $4 = index-next($2, public.accounts.email)
`},
		{`INSERT INTO accounts AS a (org_id, email) VALUES ($1, $2) ON CONFLICT (email, org_id) DO UPDATE SET email = EXCLUDED.email`, `kind=insert rewritten=true client_params=2
  sql: INSERT INTO accounts AS a (org_id, email, email_bidx, email_bidx2) VALUES ($1, $2, $3, $4) ON CONFLICT (email_bidx, org_id) DO UPDATE SET email = EXCLUDED.email, email_bidx = excluded.email_bidx, email_bidx2 = excluded.email_bidx2 WHERE a.org_id = EXCLUDED.org_id
  $2 = encrypt($2, public.accounts.email, tenant=$1)
  $3 = index($2, public.accounts.email)
  $4 = index-next($2, public.accounts.email)
`},
		{`INSERT INTO accounts (org_id, email, ssn) VALUES ($1, $2, $3) ON CONFLICT (email) DO UPDATE SET ssn = $3, email = excluded.email RETURNING id, email`, `kind=insert rewritten=true client_params=3
  sql: INSERT INTO accounts (org_id, email, email_bidx, email_bidx2, ssn, ssn_bidx, ssn_bidx2) VALUES ($1, $2, $4, $5, $3, $6, $7) ON CONFLICT (email_bidx) DO UPDATE SET ssn = $3, ssn_bidx = $6, ssn_bidx2 = $7, email = excluded.email, email_bidx = excluded.email_bidx, email_bidx2 = excluded.email_bidx2 WHERE accounts.org_id = EXCLUDED.org_id RETURNING id, email, accounts.org_id
  $2 = encrypt($2, public.accounts.email, tenant=$1)
  $3 = encrypt($3, public.accounts.ssn, tenant=$1)
  $4 = index($2, public.accounts.email)
  $5 = index-next($2, public.accounts.email)
  $6 = index($3, public.accounts.ssn)
  $7 = index-next($3, public.accounts.ssn)
  out[1] public.accounts.email tenant=out[2]
  out[2] hidden
`},
		{`INSERT INTO accounts (org_id, email) VALUES ($1, $2) ON CONFLICT (email) DO UPDATE SET ssn = DEFAULT`, `kind=insert rewritten=true client_params=2
  sql: INSERT INTO accounts (org_id, email, email_bidx, email_bidx2) VALUES ($1, $2, $3, $4) ON CONFLICT (email_bidx) DO UPDATE SET ssn = DEFAULT, ssn_bidx = DEFAULT, ssn_bidx2 = DEFAULT WHERE accounts.org_id = EXCLUDED.org_id
  $2 = encrypt($2, public.accounts.email, tenant=$1)
  $3 = index($2, public.accounts.email)
  $4 = index-next($2, public.accounts.email)
`},
		{`UPDATE accounts SET email = $1, ssn = $2 WHERE org_id = $3 RETURNING email, ssn, email_bidx2`, `kind=update rewritten=true client_params=3
  sql: UPDATE accounts SET email = $1, email_bidx = $4, email_bidx2 = $5, ssn = $2, ssn_bidx = $6, ssn_bidx2 = $7 WHERE org_id = $3 RETURNING email, ssn, email_bidx2, accounts.org_id
  $1 = encrypt($1, public.accounts.email, tenant=$3)
  $2 = encrypt($2, public.accounts.ssn, tenant=$3)
  $4 = index($1, public.accounts.email)
  $5 = index-next($1, public.accounts.email)
  $6 = index($2, public.accounts.ssn)
  $7 = index-next($2, public.accounts.ssn)
  out[0] public.accounts.email tenant=out[3]
  out[1] public.accounts.ssn tenant=out[3]
  out[3] hidden
`},
		{`UPDATE accounts SET ssn = 'x', email = NULL WHERE org_id = 4 AND email = 'q'`, `kind=update rewritten=true
  sql: UPDATE accounts SET ssn = {encrypt:ssn<-L2 tenant=L1}, ssn_bidx = {index:ssn<-L2}, ssn_bidx2 = {index-next:ssn<-L2}, email = NULL, email_bidx = NULL, email_bidx2 = NULL WHERE org_id = 4 AND email_bidx = {index:email<-L0}
  L0 = 'q'
  L1 = 4
  L2 = 'x'
`},
		{`UPDATE accounts SET email = $1 WHERE org_id = $2 AND email = $1`, `kind=update rewritten=true client_params=2
  sql: UPDATE accounts SET email = $3, email_bidx = $1, email_bidx2 = $4 WHERE org_id = $2 AND email_bidx = $1
  $1 = index($1, public.accounts.email)
  $3 = encrypt($1, public.accounts.email, tenant=$2)
  $4 = index-next($1, public.accounts.email)
`},
		{`INSERT INTO contacts (email) VALUES ($1)`, `kind=insert rewritten=true client_params=1
  sql: INSERT INTO contacts (email, email_bidx) VALUES ($1, $2)
  $1 = encrypt($1, public.contacts.email)
  $2 = index($1, public.contacts.email)
`},
		{`COPY accounts FROM STDIN`, `kind=copy rewritten=true
  sql: COPY accounts (id, org_id, email, phone, ssn, email_bidx, email_bidx2, ssn_bidx, ssn_bidx2) FROM STDIN
  copy from=true format=0 delim='\t' null="\\N" quote='\x00' escape='\x00' header=false
  field[0] pass
  field[1] pass
  field[2] encrypt public.accounts.email tenant=field[1]
  field[3] encrypt public.accounts.phone tenant=field[1]
  field[4] encrypt public.accounts.ssn tenant=field[1]
  appended[0] index public.accounts.email <- field[2]
  appended[1] index-next public.accounts.email <- field[2]
  appended[2] index public.accounts.ssn <- field[4]
  appended[3] index-next public.accounts.ssn <- field[4]
`},
		{`COPY accounts (org_id, email, ssn) FROM STDIN (FORMAT csv, HEADER true)`, `kind=copy rewritten=true
  sql: COPY accounts (org_id, email, ssn, email_bidx, email_bidx2, ssn_bidx, ssn_bidx2) FROM STDIN (FORMAT csv, HEADER true)
  copy from=true format=1 delim=',' null="" quote='"' escape='"' header=true
  field[0] pass
  field[1] encrypt public.accounts.email tenant=field[0]
  field[2] encrypt public.accounts.ssn tenant=field[0]
  appended[0] index public.accounts.email <- field[1]
  appended[1] index-next public.accounts.email <- field[1]
  appended[2] index public.accounts.ssn <- field[2]
  appended[3] index-next public.accounts.ssn <- field[2]
`},
		{`COPY accounts (org_id, ssn, email) FROM STDIN (FORMAT binary)`, `kind=copy rewritten=true
  sql: COPY accounts (org_id, ssn, email, ssn_bidx, ssn_bidx2, email_bidx, email_bidx2) FROM STDIN (FORMAT binary)
  copy from=true format=2 delim='\t' null="\\N" quote='\x00' escape='\x00' header=false
  field[0] pass
  field[1] encrypt public.accounts.ssn tenant=field[0]
  field[2] encrypt public.accounts.email tenant=field[0]
  appended[0] index public.accounts.ssn <- field[1]
  appended[1] index-next public.accounts.ssn <- field[1]
  appended[2] index public.accounts.email <- field[2]
  appended[3] index-next public.accounts.email <- field[2]
`},
		{`COPY accounts TO STDOUT`, `kind=copy rewritten=true
  sql: COPY accounts (id, org_id, email, phone, ssn) TO STDOUT
  copy from=false format=0 delim='\t' null="\\N" quote='\x00' escape='\x00' header=false
  field[0] pass
  field[1] pass
  field[2] pass public.accounts.email tenant=field[1]
  field[3] pass public.accounts.phone tenant=field[1]
  field[4] pass public.accounts.ssn tenant=field[1]
`},
		{`SELECT id FROM accounts WHERE email IN ($1, 'x') OR ssn = ANY($2)`, `kind=select rewritten=true client_params=2
  sql: SELECT id FROM accounts WHERE email_bidx IN ($1, {index:email<-L0}) OR ssn_bidx = ANY($2)
  $1 = index($1, public.accounts.email)
  $2 = index-each($2, public.accounts.ssn)
  L0 = 'x'
`},
		{`SELECT a.id FROM accounts a JOIN contacts c ON a.email = c.email`, `kind=select rewritten=true
  sql: SELECT a.id FROM accounts a JOIN contacts c ON a.email_bidx = c.email_bidx
`},
		{`SELECT id FROM accounts WHERE email IN (SELECT email FROM contacts)`, `kind=select rewritten=true
  sql: SELECT id FROM accounts WHERE email_bidx IN (SELECT email_bidx FROM contacts)
`},
		{`SELECT email FROM (SELECT email, org_id, email_bidx FROM accounts) s WHERE email = $1`, `kind=select rewritten=true client_params=1
  sql: SELECT email, s.org_id FROM (SELECT email, org_id, email_bidx FROM accounts) s WHERE email_bidx = $1
  $1 = index($1, public.accounts.email)
  out[0] public.accounts.email tenant=out[1]
  out[1] hidden
`},
	})
}

// TestReviewRotationMigrationMode: in migration mode the plaintext
// fallback of lookups tests and normalises like the current index; writes
// still fill both indexes. Note (review finding, ops/migrate.go): `pgveil
// migrate --apply` puts a table in migration mode even when its only work
// is backfilling the next index of sealed values, so during step 3 of a
// rotation every lookup below sends the normalised plaintext ($2 =
// plaintext(...)) to PostgreSQL although the table holds none.
func TestReviewRotationMigrationMode(t *testing.T) {
	p := reviewRotationPlanner(t)
	p.SetMigrating(map[*policy.Table]bool{p.cfg.Table("public", "accounts"): true})
	reviewGolden(t, p, []struct{ sql, want string }{
		{`SELECT id FROM accounts WHERE email = $1`, `kind=select rewritten=true client_params=1
  sql: SELECT id FROM accounts WHERE (email_bidx = $1 AND email_bidx IS NOT NULL OR (email_bidx IS NULL AND pg_catalog.lower(email) = $2))
  $1 = index($1, public.accounts.email)
  $2 = plaintext($1, public.accounts.email)
`},
		{`SELECT id FROM accounts WHERE email IN ($1, 'X')`, `kind=select rewritten=true client_params=1
  sql: SELECT id FROM accounts WHERE (email_bidx IN ($1, {index:email<-L0}) AND email_bidx IS NOT NULL OR (email_bidx IS NULL AND pg_catalog.lower(email) IN ($2, {plaintext:email<-L0})))
  $1 = index($1, public.accounts.email)
  $2 = plaintext($1, public.accounts.email)
  L0 = 'X'
`},
		{`UPDATE accounts SET email = $1 WHERE org_id = $2 AND email = $3`, `kind=update rewritten=true client_params=3
  sql: WITH pgveil_unique AS (UPDATE public.accounts SET email_bidx = COALESCE(email_bidx, CASE WHEN NOT (pg_catalog.left(email, 5) = 'pgv1:' AND pg_catalog.octet_length(email) >= 49 AND (pg_catalog.octet_length(email) - 5) % 4 <> 1) THEN CASE pg_catalog.lower(email) WHEN $7 THEN $5::bytea END END), email_bidx2 = COALESCE(email_bidx2, CASE WHEN NOT (pg_catalog.left(email, 5) = 'pgv1:' AND pg_catalog.octet_length(email) >= 49 AND (pg_catalog.octet_length(email) - 5) % 4 <> 1) THEN CASE pg_catalog.lower(email) WHEN $7 THEN $6::bytea END END) WHERE (email_bidx IS NULL AND NOT (pg_catalog.left(email, 5) = 'pgv1:' AND pg_catalog.octet_length(email) >= 49 AND (pg_catalog.octet_length(email) - 5) % 4 <> 1) AND pg_catalog.lower(email) IN ($7)) RETURNING 1) UPDATE accounts SET email = $1, email_bidx = $5, email_bidx2 = $6 WHERE org_id = $2 AND (email_bidx = $3 AND email_bidx IS NOT NULL OR (email_bidx IS NULL AND pg_catalog.lower(email) = $4))
  $1 = encrypt($1, public.accounts.email, tenant=$2)
  $3 = index($3, public.accounts.email)
  $4 = plaintext($3, public.accounts.email)
  $5 = index($1, public.accounts.email)
  $6 = index-next($1, public.accounts.email)
  $7 = plaintext($1, public.accounts.email)
`},
		{`INSERT INTO accounts (org_id, email) VALUES ($1, $2) ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email`, `kind=insert rewritten=true client_params=2
  sql: WITH pgveil_unique AS (UPDATE public.accounts SET email_bidx = COALESCE(email_bidx, CASE WHEN NOT (pg_catalog.left(email, 5) = 'pgv1:' AND pg_catalog.octet_length(email) >= 49 AND (pg_catalog.octet_length(email) - 5) % 4 <> 1) THEN CASE pg_catalog.lower(email) WHEN $5 THEN $3::bytea END END), email_bidx2 = COALESCE(email_bidx2, CASE WHEN NOT (pg_catalog.left(email, 5) = 'pgv1:' AND pg_catalog.octet_length(email) >= 49 AND (pg_catalog.octet_length(email) - 5) % 4 <> 1) THEN CASE pg_catalog.lower(email) WHEN $5 THEN $4::bytea END END) WHERE (email_bidx IS NULL AND NOT (pg_catalog.left(email, 5) = 'pgv1:' AND pg_catalog.octet_length(email) >= 49 AND (pg_catalog.octet_length(email) - 5) % 4 <> 1) AND pg_catalog.lower(email) IN ($5)) RETURNING 1) INSERT INTO accounts (org_id, email, email_bidx, email_bidx2) VALUES ($1, $2, $3, $4) ON CONFLICT (email_bidx) DO UPDATE SET email = EXCLUDED.email, email_bidx = excluded.email_bidx, email_bidx2 = excluded.email_bidx2 WHERE accounts.org_id = EXCLUDED.org_id
  $2 = encrypt($2, public.accounts.email, tenant=$1)
  $3 = index($2, public.accounts.email)
  $4 = index-next($2, public.accounts.email)
  $5 = plaintext($2, public.accounts.email)
`},
	})
}

// TestReviewRotationActions: IndexAction and IndexOf map the two indexes of
// a rotating column to Index and IndexNext and back.
func TestReviewRotationActions(t *testing.T) {
	p := reviewRotationPlanner(t)
	email := p.cfg.Table("public", "accounts").Column("email")
	contacts := p.cfg.Table("public", "contacts").Column("email")
	if IndexAction(email, email.BlindIndex) != Index || IndexAction(email, email.BlindIndex.Next) != IndexNext ||
		IndexAction(contacts, contacts.BlindIndex) != Index {
		t.Error("IndexAction")
	}
	if IndexOf(email, Index) != email.BlindIndex || IndexOf(email, IndexNext) != email.BlindIndex.Next || IndexOf(email, Index).Key != "email" || IndexOf(email, IndexNext).Key != "email_v2" {
		t.Error("IndexOf")
	}
	if IndexNext.String() != "index-next" {
		t.Error(IndexNext.String())
	}
}

// TestReviewRotationNextColumnRefused: the next index column is pgveil's in
// every write form, quoted or not, in CTEs, MERGE, ON CONFLICT DO UPDATE,
// INSERT … SELECT and function bodies.
func TestReviewRotationNextColumnRefused(t *testing.T) {
	p := reviewRotationPlanner(t)
	for _, sql := range []string{
		`UPDATE accounts SET "email_bidx2" = NULL WHERE org_id = 1`,
		`UPDATE accounts SET (id, email_bidx2) = ($1, $2) WHERE org_id = 1`,
		`INSERT INTO accounts (org_id, email) VALUES ($1, $2) ON CONFLICT (email) DO UPDATE SET email_bidx2 = NULL`,
		`INSERT INTO accounts (org_id, email_bidx2) SELECT 1, email_bidx FROM accounts`,
		`MERGE INTO accounts a USING contacts c ON a.id = c.id WHEN MATCHED THEN UPDATE SET email_bidx2 = NULL`,
		`MERGE INTO accounts a USING contacts c ON a.id = c.id WHEN NOT MATCHED THEN INSERT (org_id, ssn_bidx2) VALUES (1, NULL)`,
		`WITH u AS (UPDATE accounts SET ssn_bidx2 = NULL WHERE org_id = 1 RETURNING id) SELECT * FROM u`,
		`COPY accounts (org_id, ssn_bidx2) FROM STDIN`,
	} {
		_, err := p.Plan(sql, publicPath)
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != CodeGeneratedAlways || !strings.Contains(pe.Message, "_bidx2") {
			t.Errorf("%s: %v, want a refusal naming the next index column", sql, err)
		}
	}
	if _, err := p.Plan(`CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE accounts SET ssn_bidx2 = NULL; RETURN NEW; END $$`, publicPath); err == nil {
		t.Error("a function body writing ssn_bidx2 passed")
	}
}

// TestReviewRotationRenamedNextIndex: a subquery, CTE or alias list that
// returns the NEXT index column under the CURRENT index's name must not
// pass for the current index. The lookup is rewritten to compare that
// column (HMACs under key email_v2, normalised lowercase+trim) with the
// parameter's index under key email: it never matches, so the query
// silently returns no rows. Regression (found in review): relCol.bidxOf
// is set for both index columns, so rel.carriesIndex also compares the
// exact blind index (relCol.bidx).
func TestReviewRotationRenamedNextIndex(t *testing.T) {
	p := reviewRotationPlanner(t)
	for _, sql := range []string{
		`SELECT email FROM (SELECT email, org_id, email_bidx2 AS email_bidx FROM accounts) s WHERE email = $1`,
		`WITH s AS (SELECT id, email, org_id, email_bidx2 AS email_bidx FROM accounts) SELECT id FROM s WHERE email = $1`,
		`SELECT email FROM (SELECT email, org_id, email_bidx2 FROM accounts) AS s(email, org_id, email_bidx) WHERE email = $1`,
	} {
		plan, err := p.Plan(sql, publicPath)
		var pe *Error
		if !errors.As(err, &pe) || !strings.Contains(pe.Message, "blind index") {
			got := ""
			if plan != nil {
				got = dumpPlan(sql, plan)
			}
			t.Errorf("%s: planned (err %v), want a refusal: the next index passes for the current one\n%s", sql, err, got)
		}
	}
}
