package rewrite

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

// testPolicy is the policy every test plans against: users (tenant table
// with a blind-indexed email sharing the key "email" with contacts.email),
// contacts (no key_context), app_user (Django's naming) and a table in a
// second schema.
const testPolicy = `
upstream:
  service_url: postgres://pgveil@localhost/app
keysource:
  kind: local
  local:
    key_env: PGVEIL_TEST_KEY
tables:
  public.users:
    key_context: org_id
    columns:
      email:
        type: text
        blind_index: {column: email_bidx, normalize: [lowercase, trim], key: email, unique: true}
      phone: {type: text}
      ssn:
        type: text
        blind_index: {column: ssn_bidx}
      birth_date: {type: date}
      api_token: {type: text}
  public.contacts:
    columns:
      email:
        type: text
        blind_index: {column: email_bidx, normalize: [lowercase, trim], key: email}
      score: {type: int4}
  public.app_user:
    columns:
      email:
        type: varchar
        blind_index: {column: email_bidx}
  billing.accounts:
    key_context: tenant_id
    columns:
      iban:
        type: text
        blind_index: {column: iban_bidx}
      balance: {type: numeric}
`

func testConfig(t testing.TB) *policy.Config {
	t.Helper()
	cfg, err := policy.LoadBytes("test.yaml", []byte(testPolicy), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("test policy: %v", err)
	}
	return cfg
}

func catalogTable(schema, name string, oid uint32, cols ...string) *CatalogTable {
	t := &CatalogTable{Schema: schema, Name: name, OID: oid}
	for i, c := range cols {
		t.Columns = append(t.Columns, CatalogColumn{Name: c, AttNum: int16(i + 1), TypeOID: 25})
	}
	return t
}

// testCatalog lists the configured tables and a same-named app.users that
// shadows public.users when app comes first on the search path.
func testCatalog() *Catalog {
	c := &Catalog{Tables: map[string]*CatalogTable{}}
	for _, t := range []*CatalogTable{
		catalogTable("public", "users", 16400, "id", "org_id", "email", "email_bidx", "phone", "ssn", "ssn_bidx",
			"birth_date", "api_token", "name", "created_at", "updated_at", "deleted_at"),
		catalogTable("public", "contacts", 16410, "id", "user_id", "email", "email_bidx", "score", "note"),
		catalogTable("public", "app_user", 16420, "id", "email", "email_bidx", "username", "is_active"),
		catalogTable("billing", "accounts", 16430, "id", "tenant_id", "iban", "iban_bidx", "balance"),
		catalogTable("app", "users", 16440, "id", "email", "nickname"),
		// Unconfigured tables whose names differ from configured ones only
		// in case or schema (the proxy's snapshot lists every such relation).
		catalogTable("public", "Users", 16450, "id", "Email"),
		catalogTable("public", "USERS", 16451, "id", "email"),
		catalogTable("audit", "contacts", 16452, "id", "phone", "email"),
		catalogTable("billing", "users", 16453, "id", "phone", "email"),
	} {
		c.Tables[t.Schema+"."+t.Name] = t
	}
	// The tenants are bigint, as the integration schema's (a text tenant
	// takes no integer cast: textTenantCatalog).
	for _, k := range [][2]string{{"public.users", "org_id"}, {"billing.accounts", "tenant_id"}} {
		for i, col := range c.Tables[k[0]].Columns {
			if col.Name == k[1] {
				c.Tables[k[0]].Columns[i].TypeOID = 20
			}
		}
	}
	return c
}

// textTenantCatalog is testCatalog with a text org_id.
func textTenantCatalog() *Catalog {
	c := testCatalog()
	for i, col := range c.Tables["public.users"].Columns {
		if col.Name == "org_id" {
			c.Tables["public.users"].Columns[i].TypeOID = 25
		}
	}
	return c
}

func newTestPlanner(t testing.TB) *Planner {
	p := NewPlanner(testConfig(t), 128)
	p.SetCatalog(testCatalog())
	return p
}

var publicPath = Session{SearchPath: []string{"public"}}

// dumpOutputs renders the result map of a statement or a cursor.
func dumpOutputs(b *strings.Builder, prefix string, outs []Output, byOrigin bool) {
	if byOrigin {
		b.WriteString("  " + prefix + "outputs by origin\n")
	}
	for j, o := range outs {
		if o.Column == nil && !o.Hidden {
			continue
		}
		fmt.Fprintf(b, "  %sout[%d]", prefix, j)
		if o.Column != nil {
			fmt.Fprintf(b, " %s", o.Column.QualifiedName())
		}
		if o.Tenant >= 0 {
			fmt.Fprintf(b, " tenant=out[%d]", o.Tenant)
		}
		if o.Hidden {
			b.WriteString(" hidden")
		}
		b.WriteString("\n")
	}
}

// dumpPlan renders a plan for golden files and failure messages: the text
// with slots shown as {action:column<-literal}, then parameters, literals,
// outputs and COPY fields.
func dumpPlan(sql string, p *Plan) string {
	var b strings.Builder
	for i, st := range p.Stmts {
		if len(p.Stmts) > 1 {
			fmt.Fprintf(&b, "stmt %d: ", i+1)
		}
		fmt.Fprintf(&b, "kind=%s rewritten=%v", kindName(st.Kind), st.Rewritten)
		if st.ClientParams > 0 {
			fmt.Fprintf(&b, " client_params=%d", st.ClientParams)
		}
		b.WriteString("\n")
		if st.Rewritten {
			b.WriteString("  sql: ")
			for j, t := range st.Text {
				b.WriteString(t)
				if j < len(st.Slots) {
					s := st.Slots[j]
					if s.Action == TenantLookup {
						b.WriteString("{tenant-lookup}")
						continue
					}
					fmt.Fprintf(&b, "{%s:%s<-L%d%s}", s.Action, s.Column.Name, s.Source, refString(" tenant=", s.Tenant))
				}
			}
			b.WriteString("\n")
		}
		for j, pr := range st.Params {
			if pr.Action == Pass && pr.Client == j {
				continue
			}
			if pr.Action == TenantLookup {
				fmt.Fprintf(&b, "  $%d = tenant-lookup\n", j+1)
				continue
			}
			fmt.Fprintf(&b, "  $%d = %s($%d", j+1, pr.Action, pr.Client+1)
			if pr.Column != nil {
				fmt.Fprintf(&b, ", %s", pr.Column.QualifiedName())
			}
			b.WriteString(refString(", tenant=", pr.Tenant))
			b.WriteString(")\n")
		}
		for j, l := range st.Literals {
			fmt.Fprintf(&b, "  L%d = %s\n", j, sql[l.Start:l.End])
		}
		if lk := st.Lookup; lk != nil {
			fmt.Fprintf(&b, "  lookup: %s (uses %v)\n", lk.Text(sql), lk.Uses)
		}
		dumpOutputs(&b, "", st.Outputs, st.OutputsByOrigin)
		if st.Declares != "" {
			fmt.Fprintf(&b, "  declares %q\n", st.Declares)
		}
		if c := st.Cursor; c != nil {
			fmt.Fprintf(&b, "  cursor hold=%v\n", c.Hold)
			dumpOutputs(&b, "cursor ", c.Outputs, c.OutputsByOrigin)
		}
		if st.Fetch != "" {
			fmt.Fprintf(&b, "  fetch %q\n", st.Fetch)
		}
		if st.CloseCursor != "" {
			fmt.Fprintf(&b, "  close %q\n", st.CloseCursor)
		}
		if c := st.Copy; c != nil {
			fmt.Fprintf(&b, "  copy from=%v format=%d delim=%q null=%q quote=%q escape=%q header=%v\n",
				c.From, c.Format, c.Delimiter, c.Null, c.Quote, c.Escape, c.Header)
			for j, f := range c.Fields {
				fmt.Fprintf(&b, "  field[%d] %s%s", j, f.Action, colName(f.Column))
				if f.Tenant >= 0 {
					fmt.Fprintf(&b, " tenant=field[%d]", f.Tenant)
				}
				if f.Hidden {
					b.WriteString(" hidden")
				}
				b.WriteString("\n")
			}
			for j, f := range c.Appended {
				fmt.Fprintf(&b, "  appended[%d] %s%s <- field[%d]\n", j, f.Action, colName(f.Column), f.Source)
			}
		}
		if st.SearchPath != nil || st.SearchPathReset {
			fmt.Fprintf(&b, "  search_path=%q reset=%v local=%v\n", st.SearchPath, st.SearchPathReset, st.SearchPathLocal)
		}
		if st.Deallocate != "" {
			fmt.Fprintf(&b, "  deallocate=%q\n", st.Deallocate)
		}
	}
	return b.String()
}

func colName(c *policy.Column) string {
	if c == nil {
		return ""
	}
	return " " + c.QualifiedName()
}

func refString(prefix string, r ValueRef) string {
	switch r.Kind {
	case RefParam:
		return fmt.Sprintf("%s$%d", prefix, r.Param+1)
	case RefLiteral:
		return fmt.Sprintf("%sL%d", prefix, r.Literal)
	case RefNull:
		return prefix + "NULL"
	case RefLookup:
		return prefix + "lookup"
	}
	return ""
}

func kindName(k Kind) string {
	return [...]string{"other", "select", "insert", "update", "delete", "copy", "ddl", "set", "deallocate", "explain", "transaction"}[k]
}

// renderMarked renders a plan with slots shown as {action:column}, for
// compact expectations in the table tests.
func renderMarked(sql string, p *Plan) (string, error) {
	return p.Render(sql, func(st *Stmt, s *Slot) (string, error) {
		if s.Action == TenantLookup {
			return "{tenant-lookup}", nil
		}
		return fmt.Sprintf("{%s:%s}", s.Action, s.Column.Name), nil
	})
}
