package rewrite

import (
	"strings"
	"testing"
)

// findOrCreate is the string Sequelize 6's findOrCreate sends (Model.create
// with options.exception): the INSERT inside a temporary PL/pgSQL
// function, the function's row read back field by field, the function
// dropped. body replaces the INSERT, selectList the SELECT's list.
func findOrCreate(insert, selectList string) string {
	return `CREATE OR REPLACE FUNCTION pg_temp.testfunc(OUT response "users", OUT sequelize_caught_exception text) RETURNS RECORD AS $func_5a0c1e$ BEGIN ` +
		insert + ` RETURNING * INTO response; EXCEPTION WHEN unique_violation THEN GET STACKED DIAGNOSTICS sequelize_caught_exception = PG_EXCEPTION_DETAIL; END $func_5a0c1e$ LANGUAGE plpgsql; SELECT ` +
		selectList + ` FROM pg_temp.testfunc(); DROP FUNCTION IF EXISTS pg_temp.testfunc();`
}

const (
	focInsert = `INSERT INTO "users" ("id","org_id","email","phone","name") VALUES (DEFAULT,7,'a@b.c','555','Ann')`
	focSelect = `(testfunc.response).id, (testfunc.response).org_id, (testfunc.response).email, (testfunc.response).phone, (testfunc.response).name, testfunc.sequelize_caught_exception`
)

// TestWrappedInsert: Sequelize's findOrCreate string is planned: the
// INSERT's literals are sealed and indexed where they stand in the
// function's body, the SELECT's fields of the function's row are the
// table's columns, and neither the CREATE nor the DROP counts as DDL (no
// catalog reload for a function that lives only as long as the string).
func TestWrappedInsert(t *testing.T) {
	p := newTestPlanner(t)
	sql := findOrCreate(focInsert, focSelect)
	plan, err := p.Plan(sql, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := renderMarked(sql, plan)
	if err != nil {
		t.Fatal(err)
	}
	want := findOrCreate(`INSERT INTO "users" ("id","org_id","email", "email_bidx","phone","name") VALUES (DEFAULT,7,{encrypt:email}, {index:email},{encrypt:phone},'Ann')`, focSelect)
	if got != want {
		t.Errorf("rendered:\n%s\nwant:\n%s", got, want)
	}
	if len(plan.Stmts) != 3 {
		t.Fatalf("%d statements", len(plan.Stmts))
	}
	for i, st := range plan.Stmts {
		if st.Kind == KindDDL {
			t.Errorf("statement %d is DDL", i+1)
		}
	}
	create, sel := plan.Stmts[0], plan.Stmts[1]
	if len(create.Literals) != 3 || sql[create.Literals[0].Start:create.Literals[0].End] != "7" {
		t.Errorf("literals %v", create.Literals)
	}
	for _, s := range create.Slots {
		if s.Action == Encrypt && (s.Tenant.Kind != RefLiteral || s.Tenant.Literal != 0) {
			t.Errorf("slot %s sealed under %+v, want the literal 7", s.Column.Name, s.Tenant)
		}
	}
	outs := sel.Outputs
	if len(outs) != 6 || outs[2].Column == nil || outs[2].Column.Name != "email" || outs[2].Tenant != 1 ||
		outs[3].Column == nil || outs[3].Column.Name != "phone" || outs[3].Tenant != 1 || outs[0].Column != nil || outs[5].Column != nil {
		t.Errorf("outputs %+v", outs)
	}
}

// TestWrappedInsertFieldForms: the fields of the row read as row.field,
// fn.row.field and (alias.row).field are the table's columns too; a
// tenant the SELECT does not list is appended as (fn.row).org_id.
func TestWrappedInsertFieldForms(t *testing.T) {
	p := newTestPlanner(t)
	for _, c := range []struct{ list, want string }{
		{`response.email, response.org_id`, "out[0] public.users.email tenant=out[1]\n"},
		{`testfunc.response.email, testfunc.response.org_id`, "out[0] public.users.email tenant=out[1]\n"},
		{`(testfunc.response).email AS e`, "out[0] public.users.email tenant=out[1]\n  out[1] hidden\n"},
	} {
		sql := findOrCreate(focInsert, c.list)
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			t.Errorf("%s: %v", c.list, err)
			continue
		}
		var b strings.Builder
		dumpOutputs(&b, "", plan.Stmts[1].Outputs, plan.Stmts[1].OutputsByOrigin)
		if got := strings.TrimPrefix(b.String(), "  "); got != c.want {
			t.Errorf("%s: outputs\n%s\nwant\n%s", c.list, got, c.want)
		}
		if strings.Contains(c.list, " AS e") {
			r, _ := renderMarked(sql, plan)
			if !strings.Contains(r, `(testfunc.response).email AS e, (testfunc.response).org_id FROM pg_temp.testfunc()`) {
				t.Errorf("hidden tenant not appended as a field of the row:\n%s", r)
			}
		}
	}
	aliased := strings.Replace(findOrCreate(focInsert, "(f.response).email, (f.response).org_id"), "FROM pg_temp.testfunc()", "FROM pg_temp.testfunc() AS f", 1)
	plan, err := p.Plan(aliased, publicPath)
	if err != nil {
		t.Fatal(err)
	}
	if o := plan.Stmts[1].Outputs; len(o) != 2 || o[0].Column == nil || o[0].Tenant != 1 {
		t.Errorf("aliased: outputs %+v", o)
	}
}

// TestWrappedInsertRowRefused: every other use of the function's row, which
// holds ciphertext, is refused: a *, the whole row, a comparison.
func TestWrappedInsertRowRefused(t *testing.T) {
	p := newTestPlanner(t)
	for _, list := range []string{
		`*`,
		`testfunc.*`,
		`(testfunc.response).*`,
		`testfunc.response`,
		`testfunc`,
		`(testfunc.response).email, testfunc.response IS NULL`,
		`row_to_json(testfunc.response)`,
	} {
		sql := findOrCreate(focInsert, list)
		e := refusal(t, p, sql, publicPath)
		if e == nil {
			continue
		}
		if e.SQLState() != "0A000" || !strings.Contains(e.Message, "public.users") {
			t.Errorf("%s: %v", list, e)
		}
	}
}

// TestWrappedInsertOtherShapesRefused: only the exact shape is planned;
// anything else is a function body writing a configured table, refused as
// before.
func TestWrappedInsertOtherShapesRefused(t *testing.T) {
	p := newTestPlanner(t)
	base := findOrCreate(focInsert, focSelect)
	for name, sql := range map[string]string{
		"not in pg_temp":     strings.ReplaceAll(base, "pg_temp.testfunc", "public.testfunc"),
		"no DROP":            strings.TrimSuffix(base, " DROP FUNCTION IF EXISTS pg_temp.testfunc();"),
		"a fourth statement": base + " SELECT 1;",
		"DROP of another function": strings.Replace(base, "DROP FUNCTION IF EXISTS pg_temp.testfunc()",
			"DROP FUNCTION IF EXISTS pg_temp.otherfunc()", 1),
		"an IN parameter":  strings.Replace(base, "(OUT response", "(v text, OUT response", 1),
		"SET search_path":  strings.Replace(base, "LANGUAGE plpgsql", "LANGUAGE plpgsql SET search_path = app", 1),
		"SECURITY DEFINER": strings.Replace(base, "LANGUAGE plpgsql", "LANGUAGE plpgsql SECURITY DEFINER", 1),
		"language sql":     strings.Replace(base, "LANGUAGE plpgsql", "LANGUAGE sql", 1),
		"a second INSERT": strings.Replace(base, "RETURNING * INTO response;",
			"RETURNING * INTO response; INSERT INTO users (org_id, email) VALUES (7, 'x@y.z');", 1),
		"a handler that writes": strings.Replace(base, "GET STACKED DIAGNOSTICS sequelize_caught_exception = PG_EXCEPTION_DETAIL;",
			"INSERT INTO users (org_id, email) VALUES (7, 'x@y.z');", 1),
		"a handler with a string": strings.Replace(base, "GET STACKED DIAGNOSTICS sequelize_caught_exception = PG_EXCEPTION_DETAIL;",
			"RAISE NOTICE 'users email';", 1),
		"RETURNING into another variable": strings.Replace(base, "RETURNING * INTO response;", "RETURNING * INTO other;", 1),
		"OUT row of another table":        strings.Replace(base, `OUT response "users"`, `OUT response "contacts"`, 1),
		"a parameter in the body":         strings.Replace(base, "'555'", "$1", 1),
		"a quoted body": strings.NewReplacer("$func_5a0c1e$ BEGIN", "'BEGIN", "END $func_5a0c1e$", "END'").Replace(
			strings.ReplaceAll(base, "'", "''")),
	} {
		e := refusal(t, p, sql, publicPath)
		if e == nil {
			continue
		}
		if e.SQLState() != "0A000" && e.SQLState() != "42P02" {
			t.Errorf("%s: %v", name, e)
		}
	}
}

// TestWrappedInsertNoPlaintextInBody: the INSERT is planned like any
// other, so what it cannot encrypt is refused with the INSERT's own
// message (a value computed in the body, a missing tenant).
func TestWrappedInsertNoPlaintextInBody(t *testing.T) {
	p := newTestPlanner(t)
	for _, ins := range []string{
		`INSERT INTO "users" ("org_id","email") VALUES (7, lower('A@B.C'))`,
		`INSERT INTO "users" ("email") VALUES ('a@b.c')`,
		`INSERT INTO "users" ("org_id","email") SELECT 7, email FROM contacts`,
	} {
		sql := findOrCreate(ins, focSelect)
		if e := refusal(t, p, sql, publicPath); e != nil && !strings.Contains(e.Message, "public.users") {
			t.Errorf("%s: %v", ins, e)
		}
	}
}
