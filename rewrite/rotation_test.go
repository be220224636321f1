package rewrite

import (
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

// rotationPolicy has an email column in the middle of a blind-index key
// rotation: blind_index.next names the column and key that replace
// email_bidx.
const rotationPolicy = `
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
          next: {column: email_bidx2, key: email_v2}
      phone: {type: text}
`

func rotationPlanner(t *testing.T) *Planner {
	t.Helper()
	cfg, err := policy.LoadBytes("rotation.yaml", []byte(rotationPolicy), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	p := NewPlanner(cfg, 16)
	p.SetCatalog(&Catalog{Tables: map[string]*CatalogTable{
		"public.accounts": catalogTable("public", "accounts", 16500, "id", "org_id", "email", "email_bidx", "phone", "email_bidx2"),
	}})
	return p
}

// TestIndexRotationDualWrite: while blind_index.next is set every write
// fills both index columns (the next one under IndexNext), and every
// lookup still uses the current one.
func TestIndexRotationDualWrite(t *testing.T) {
	p := rotationPlanner(t)
	cases := []struct{ sql, want string }{
		{`INSERT INTO accounts (org_id, email) VALUES ($1, $2)`, `kind=insert rewritten=true client_params=2
  sql: INSERT INTO accounts (org_id, email, email_bidx, email_bidx2) VALUES ($1, $2, $3, $4)
  $2 = encrypt($2, public.accounts.email, tenant=$1)
  $3 = index($2, public.accounts.email)
  $4 = index-next($2, public.accounts.email)
`},
		{`INSERT INTO accounts (org_id, email) VALUES (7, 'A@x.org'), (7, NULL), (8, DEFAULT)`, `kind=insert rewritten=true
  sql: INSERT INTO accounts (org_id, email, email_bidx, email_bidx2) VALUES (7, {encrypt:email<-L1 tenant=L0}, {index:email<-L1}, {index-next:email<-L1}), (7, NULL, NULL, NULL), (8, DEFAULT, DEFAULT, DEFAULT)
  L0 = 7
  L1 = 'A@x.org'
  L2 = 7
  L3 = 8
`},
		{`UPDATE accounts SET email = $1 WHERE org_id = $2 AND id = $3`, `kind=update rewritten=true client_params=3
  sql: UPDATE accounts SET email = $1, email_bidx = $4, email_bidx2 = $5 WHERE org_id = $2 AND id = $3
  $1 = encrypt($1, public.accounts.email, tenant=$2)
  $4 = index($1, public.accounts.email)
  $5 = index-next($1, public.accounts.email)
`},
		{`INSERT INTO accounts (org_id, email) VALUES ($1, $2) ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email`, `kind=insert rewritten=true client_params=2
  sql: INSERT INTO accounts (org_id, email, email_bidx, email_bidx2) VALUES ($1, $2, $3, $4) ON CONFLICT (email_bidx) DO UPDATE SET email = EXCLUDED.email, email_bidx = excluded.email_bidx, email_bidx2 = excluded.email_bidx2 WHERE accounts.org_id = EXCLUDED.org_id
  $2 = encrypt($2, public.accounts.email, tenant=$1)
  $3 = index($2, public.accounts.email)
  $4 = index-next($2, public.accounts.email)
`},
		{`SELECT id FROM accounts WHERE email = $1`, `kind=select rewritten=true client_params=1
  sql: SELECT id FROM accounts WHERE email_bidx = $1
  $1 = index($1, public.accounts.email)
`},
		{`COPY accounts (org_id, email, phone) FROM STDIN`, `kind=copy rewritten=true
  sql: COPY accounts (org_id, email, phone, email_bidx, email_bidx2) FROM STDIN
  copy from=true format=0 delim='\t' null="\\N" quote='\x00' escape='\x00' header=false
  field[0] pass
  field[1] encrypt public.accounts.email tenant=field[0]
  field[2] encrypt public.accounts.phone tenant=field[0]
  appended[0] index public.accounts.email <- field[1]
  appended[1] index-next public.accounts.email <- field[1]
`},
	}
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

// TestIndexRotationNextColumnIsPgveils: the next index column is pgveil's
// as much as the current one; a client may not write it.
func TestIndexRotationNextColumnIsPgveils(t *testing.T) {
	p := rotationPlanner(t)
	for _, sql := range []string{
		`INSERT INTO accounts (org_id, email_bidx2) VALUES (1, '\x00')`,
		`UPDATE accounts SET email_bidx2 = NULL WHERE org_id = 1`,
		`COPY accounts (org_id, email_bidx2) FROM STDIN`,
	} {
		_, err := p.Plan(sql, publicPath)
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != CodeGeneratedAlways || !strings.Contains(pe.Message, "email_bidx2") {
			t.Errorf("%s: %v, want a refusal naming email_bidx2", sql, err)
		}
	}
}
