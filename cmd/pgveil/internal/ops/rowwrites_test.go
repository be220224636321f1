package ops

import (
	"slices"
	"strings"
	"testing"
)

// TestPlpgsqlRowWrites holds the textual matcher against trigger bodies:
// what assigns a column of NEW, and what only looks like it.
func TestPlpgsqlRowWrites(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		cols      []string // assigned through NEW
		whole     string
	}{
		{"colon equals", `BEGIN NEW.org_id := 7; RETURN NEW; END`, []string{"org_id"}, ""},
		{"equals as a statement", `BEGIN NEW.org_id = current_setting('app.org')::int8; RETURN NEW; END`, []string{"org_id"}, ""},
		{"case and whitespace", "begin\n  New . Org_Id\t:=\n 7;\n  return new;\nend", []string{"org_id"}, ""},
		{"no spaces", `BEGIN NEW.org_id:=7; NEW.note=-1; RETURN NEW; END`, []string{"org_id", "note"}, ""},
		{"comment inside the dot", `BEGIN NEW/* x */.org_id := 7; RETURN NEW; END`, []string{"org_id"}, ""},
		{"quoted column", `BEGIN NEW."org_id" := 7; RETURN NEW; END`, []string{"org_id"}, ""},
		{"quoted column keeps its case", `BEGIN NEW."Org_Id" := 7; RETURN NEW; END`, []string{"Org_Id"}, ""},
		{"quoted new", `BEGIN "new".org_id := 7; RETURN NEW; END`, []string{"org_id"}, ""},
		{"quoted NEW is another name", `BEGIN "NEW".org_id := 7; RETURN NEW; END`, nil, ""},
		{"lowercase an encrypted column", `BEGIN NEW.email := lower(NEW.email); RETURN NEW; END;`, []string{"email"}, ""},
		{"inside IF", `BEGIN IF NEW.org_id IS NULL THEN NEW.org_id := 1; ELSIF TG_OP = 'UPDATE' THEN NEW.org_id = OLD.org_id; ELSE NEW.email = ''; END IF; RETURN NEW; END`, []string{"org_id", "email"}, ""},
		{"after a label and in a loop", `<<main>> BEGIN FOR i IN 1..2 LOOP NEW.n = i; END LOOP; RETURN NEW; END`, []string{"n"}, ""},
		{"subscript and field", `BEGIN NEW.tags[1] := 'x'; NEW.addr.city := 'y'; RETURN NEW; END`, []string{"tags", "addr"}, ""},
		{"label-qualified NEW", `BEGIN touch.NEW.org_id := 1; RETURN NEW; END`, []string{"org_id"}, ""},
		{"alias for NEW", `DECLARE r ALIAS FOR NEW; BEGIN r.org_id := 1; RETURN r; END`, []string{"org_id"}, ""},
		{"select into", `BEGIN SELECT o.id INTO STRICT NEW.org_id FROM orgs o WHERE o.name = NEW.org_name; RETURN NEW; END`, []string{"org_id"}, ""},
		{"select into several", `BEGIN SELECT 1, 2 INTO x, NEW.email FROM t; RETURN NEW; END`, []string{"email"}, ""},
		{"into first", `BEGIN SELECT INTO NEW.org_id org_id FROM users u WHERE u.id = NEW.user_id; RETURN NEW; END`, []string{"org_id"}, ""},
		{"execute into", `BEGIN EXECUTE 'SELECT 1' INTO NEW.org_id; RETURN NEW; END`, []string{"org_id"}, ""},

		{"comparison is no assignment", `BEGIN IF NEW.org_id = 1 THEN RAISE 'x'; END IF; RETURN NEW; END`, nil, ""},
		{"comparison in a query", `BEGIN PERFORM 1 FROM t WHERE t.id = NEW.id AND NEW.org_id = t.org_id; RETURN NEW; END`, nil, ""},
		{"read on the right", `DECLARE o int8 := NEW.org_id; BEGIN x := NEW.email; RETURN NEW; END`, nil, ""},
		{"a longer name", `BEGIN NEW.org_id_2 := 1; RETURN NEW; END`, []string{"org_id_2"}, ""},
		{"OLD", `BEGIN OLD.org_id := 1; RETURN NEW; END`, nil, ""},
		{"another record", `BEGIN renew.org_id := 1; new_org.org_id := 2; RETURN NEW; END`, nil, ""},
		{"line comment", "BEGIN -- NEW.org_id := 1;\n RETURN NEW; END", nil, ""},
		{"block comment", `BEGIN /* NEW.org_id := 1; /* nested */ NEW.email := 2; */ RETURN NEW; END`, nil, ""},
		{"string", `BEGIN RAISE NOTICE 'NEW.org_id := 1'; EXECUTE $q$ NEW.email := 2 $q$; x := E'\' NEW.org_id := 3'; RETURN NEW; END`, nil, ""},
		{"insert into", `BEGIN INSERT INTO new.org_id VALUES (1); RETURN NEW; END`, nil, ""},
		{"updated_at", `BEGIN NEW.updated_at := now(); RETURN NEW; END`, []string{"updated_at"}, ""},

		{"whole row", `BEGIN NEW := jsonb_populate_record(NEW, '{}'); RETURN NEW; END`, nil, "NEW := …"},
		{"whole row by INTO", `BEGIN SELECT * INTO NEW FROM t LIMIT 1; RETURN NEW; END`, nil, "SELECT … INTO NEW"},
		{"another row returned", `DECLARE r record; BEGIN r := NEW; r.org_id := 1; RETURN r; END`, nil, "RETURN r"},
		{"an expression returned", `BEGIN RETURN coalesce(NEW, OLD); END`, nil, "RETURN coalesce …"},
		{"OLD and NULL returned", `BEGIN IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; IF false THEN RETURN NULL; END IF; RETURN (NEW); END`, nil, ""},
	} {
		w, err := plpgsqlRowWrites(tc.src)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(w.Columns, tc.cols) || w.Whole != tc.whole {
			t.Errorf("%s: columns %q, whole %q; want %q, %q\n%s", tc.name, w.Columns, w.Whole, tc.cols, tc.whole, tc.src)
		}
	}
	if _, err := plpgsqlRowWrites("BEGIN x := 'open; END"); err == nil || !strings.Contains(err.Error(), "unterminated") {
		t.Errorf("unterminated string: %v", err)
	}
}
