package rewrite

import (
	"strings"
	"testing"
)

// PostgreSQL 15's column lists of the overlaid relations, as the proxy
// reads them (proxy/catalog.go overlayColumns).
var (
	pg15Attribute = strings.Split("attrelid,attname,atttypid,attstattarget,attlen,attnum,attndims,attcacheoff,atttypmod,attbyval,attalign,attstorage,attcompression,attnotnull,atthasdef,atthasmissing,attidentity,attgenerated,attisdropped,attislocal,attinhcount,attcollation,attacl,attoptions,attfdwoptions,attmissingval", ",")
	pg15Columns   = strings.Split("table_catalog,table_schema,table_name,column_name,ordinal_position,column_default,is_nullable,data_type,character_maximum_length,character_octet_length,numeric_precision,numeric_precision_radix,numeric_scale,datetime_precision,interval_type,interval_precision,character_set_catalog,character_set_schema,character_set_name,collation_catalog,collation_schema,collation_name,domain_catalog,domain_schema,domain_name,udt_catalog,udt_schema,udt_name,scope_catalog,scope_schema,scope_name,maximum_cardinality,dtd_identifier,is_self_referencing,is_identity,identity_generation,identity_start,identity_increment,identity_maximum,identity_minimum,identity_cycle,is_generated,generation_expression,is_updatable", ",")
)

func overlayPlanner(t *testing.T) *Planner {
	t.Helper()
	p := NewPlanner(testConfig(t), 100)
	c := testCatalog()
	c.OverlayColumns = map[string][]string{OverlayAttribute: pg15Attribute, OverlayColumns: pg15Columns}
	p.SetCatalog(c)
	return p
}

// TestOverlayText checks where the overlays replace a relation name, and
// that the rest of the client's text is kept byte for byte.
func TestOverlayText(t *testing.T) {
	p := overlayPlanner(t)
	attr := p.cat.Load().ov.attribute
	cols := p.cat.Load().ov.columns
	if attr == "" || cols == "" {
		t.Fatalf("no overlay built: %q %q", attr, cols)
	}
	for _, tc := range []struct {
		name, sql, want string
	}{
		{"aliased", "SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1",
			"SELECT a.attname FROM " + attr + " a WHERE a.attrelid = $1"},
		{"unqualified, no alias", "SELECT pg_attribute.attname FROM pg_attribute WHERE attnum > 0",
			"SELECT pg_attribute.attname FROM " + attr + " pg_attribute WHERE attnum > 0"},
		{"quoted, spaced, AS alias", `SELECT 1 FROM "pg_catalog" . "pg_attribute" AS x(r)`,
			`SELECT 1 FROM ` + attr + ` AS x(r)`},
		{"in a join and a sublink", "SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid WHERE EXISTS (SELECT 1 FROM pg_attribute b WHERE b.attrelid = c.oid)",
			"SELECT c.relname FROM pg_class c JOIN " + attr + " a ON a.attrelid = c.oid WHERE EXISTS (SELECT 1 FROM " + attr + " b WHERE b.attrelid = c.oid)"},
		{"information_schema", "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'users'",
			"SELECT column_name, data_type FROM " + cols + " columns WHERE table_name = 'users'"},
		{"keyword glued to the name", `SELECT 1 FROM"pg_attribute"`, `SELECT 1 FROM ` + attr + ` pg_attribute`},
		{"columns qualified with the schema (SQLAlchemy 2.0)",
			`SELECT pg_catalog.pg_attribute.attname, pg_catalog.format_type(pg_catalog.pg_attribute.atttypid, "pg_catalog" . pg_attribute.atttypmod), app.pg_catalog.pg_attribute.* FROM pg_catalog.pg_class JOIN pg_catalog.pg_attribute ON pg_catalog.pg_class.oid = pg_catalog.pg_attribute.attrelid`,
			`SELECT pg_attribute.attname, pg_catalog.format_type(pg_attribute.atttypid, pg_attribute.atttypmod), pg_attribute.* FROM pg_catalog.pg_class JOIN ` + attr + ` pg_attribute ON pg_catalog.pg_class.oid = pg_attribute.attrelid`},
		{"aliased: qualified references left to the server", `SELECT pg_catalog.pg_attribute.attname FROM pg_attribute a`,
			`SELECT pg_catalog.pg_attribute.attname FROM ` + attr + ` a`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := p.Plan(tc.sql, Session{SearchPath: []string{"public"}})
			if err != nil {
				t.Fatal(err)
			}
			st := plan.Stmts[0]
			if !st.Rewritten || st.NamesOnly || len(st.Text) != 1 {
				t.Fatalf("Rewritten %v NamesOnly %v Text %q", st.Rewritten, st.NamesOnly, st.Text)
			}
			if st.Text[0] != tc.want {
				t.Errorf("sent\n%s\nwant\n%s", st.Text[0], tc.want)
			}
			if len(st.Params) != st.ClientParams {
				t.Errorf("params %d, client's %d: the client's parameters must pass as they are", len(st.Params), st.ClientParams)
			}
		})
	}
	for _, tc := range []struct{ name, sql string }{
		{"a CTE of that name", "WITH pg_attribute AS (SELECT 1 AS attnum) SELECT attnum FROM pg_attribute"},
		{"a user's columns table", "SELECT * FROM columns"},
		{"another schema's pg_attribute", "SELECT * FROM app.pg_attribute"},
		{"ONLY", "SELECT * FROM ONLY pg_attribute"},
		{"TABLESAMPLE", "SELECT * FROM pg_attribute TABLESAMPLE SYSTEM (10)"},
		{"the relation as a target", "UPDATE pg_catalog.pg_attribute SET attstattarget = 1 WHERE false"},
		{"pg_catalog named on the path", "SELECT * FROM pg_attribute"},
	} {
		t.Run("kept/"+tc.name, func(t *testing.T) {
			path := []string{"public"}
			if strings.HasPrefix(tc.name, "pg_catalog named") {
				path = []string{"public", "pg_catalog"}
			}
			plan, err := p.Plan(tc.sql, Session{SearchPath: path})
			if err != nil {
				t.Fatal(err)
			}
			if st := plan.Stmts[0]; st.Rewritten {
				t.Errorf("rewritten to %q", st.Text)
			}
		})
	}
}

// TestOverlayContent checks what the overlays say of the policy's columns.
func TestOverlayContent(t *testing.T) {
	p := overlayPlanner(t)
	ov := p.cat.Load().ov
	for _, want := range []string{
		// users.email text (25), birth_date date (1082); contacts.score int4 (23).
		"(16400::pg_catalog.oid, 'email'::pg_catalog.name, 25::pg_catalog.oid)",
		"(16400::pg_catalog.oid, 'birth_date'::pg_catalog.name, 1082::pg_catalog.oid)",
		"(16410::pg_catalog.oid, 'score'::pg_catalog.name, 23::pg_catalog.oid)",
		"CASE WHEN pgveil_m.rel IS NULL THEN pgveil_o.atttypid ELSE pgveil_t.oid END AS atttypid",
		"pgveil_o.attmissingval FROM",
	} {
		if !strings.Contains(ov.attribute, want) {
			t.Errorf("pg_attribute overlay lacks %q:\n%s", want, ov.attribute)
		}
	}
	for _, want := range []string{
		"('public'::information_schema.sql_identifier, 'contacts'::information_schema.sql_identifier, 'score'::information_schema.sql_identifier, 'integer'::information_schema.character_data, 'int4'::information_schema.sql_identifier, NULL::information_schema.cardinal_number, '32'::information_schema.cardinal_number, '2'::information_schema.cardinal_number, '0'::information_schema.cardinal_number, NULL::information_schema.cardinal_number)",
		"pgveil_o.is_updatable FROM",
	} {
		if !strings.Contains(ov.columns, want) {
			t.Errorf("information_schema.columns overlay lacks %q:\n%s", want, ov.columns)
		}
	}
	// Blind indexes and plain columns are not listed.
	for _, unwanted := range []string{"'email_bidx'", "'org_id'", "'note'"} {
		if strings.Contains(ov.attribute, unwanted) || strings.Contains(ov.columns, unwanted) {
			t.Errorf("overlay lists %s", unwanted)
		}
	}
	// Nor is a configured table missing from the snapshot.
	c := testCatalog()
	c.OverlayColumns = map[string][]string{OverlayAttribute: pg15Attribute, OverlayColumns: pg15Columns}
	delete(c.Tables, "billing.accounts")
	if ov := buildOverlays(testConfig(t), c); strings.Contains(ov.attribute, "'iban'") || strings.Contains(ov.columns, "'iban'") || ov.attribute == "" {
		t.Errorf("overlay of a snapshot without billing.accounts:\n%s\n%s", ov.attribute, ov.columns)
	}
	// Without the column lists (an older snapshot), nothing is overlaid.
	q := NewPlanner(testConfig(t), 10)
	q.SetCatalog(testCatalog())
	plan, err := q.Plan("SELECT * FROM pg_catalog.pg_attribute", Session{SearchPath: []string{"public"}})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Stmts[0].Rewritten {
		t.Errorf("rewritten without column lists: %q", plan.Stmts[0].Text)
	}
}
