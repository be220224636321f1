package rewrite

import (
	"encoding/json"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"
)

// PL/pgSQL bodies are read as text (bodyText): a name there is a word.
// A row variable names no column, so the text test cannot see what is
// done with the row it holds: `r::text LIKE 'a@b.c%'`,
// `row_to_json(NEW)->>'email' = …`, `NEW := jsonb_populate_record(NEW,
// '{"email": "a@b.c"}')`, `r = ROW(1, 'a@b.c')::users`. Each computes on
// envelopes and keeps a literal meant for an encrypted column in the
// function's source, in plaintext. plpgsqlRows parses the body with
// PostgreSQL's own PL/pgSQL parser (pg_query) for its variables and the
// SQL of its statements, and refuses an expression in which a whole row
// that may be a configured table's (a variable of its row type or
// %ROWTYPE, a record, NEW or OLD) or a row cast to such a type meets a
// constant. Expressions are split at AND, OR and NOT, so `TG_OP =
// 'UPDATE' AND NEW IS DISTINCT FROM OLD` passes; so does RETURN NEW.

// plpgsqlRows checks a PL/pgSQL body (code, the string's value) as
// described above. create is the CREATE FUNCTION statement's text (its
// arguments and result type matter to the parser), "" for a DO block;
// trigger says the function returns trigger (it has NEW and OLD).
// pg_query's PL/pgSQL parser knows no catalog, so it rejects some bodies
// the server accepts (`r.col := …` on a record or a table's row type,
// ALIAS FOR $1): such a body is refused when it may hold a whole row.
func (a *analyzer) plpgsqlRows(create, code, what string, trigger bool) *Error {
	if len(a.cfg.Tables) == 0 {
		return nil
	}
	if create == "" {
		tag := "$pgveil$"
		for strings.Contains(code, tag) {
			tag = "$pgveil" + tag[1:]
		}
		create = "CREATE FUNCTION pgveil_do() RETURNS void LANGUAGE plpgsql AS " + tag + code + tag
	}
	var tree any
	out, err := pg.ParsePlPgSqlToJSON(create)
	if err == nil {
		err = json.Unmarshal([]byte(out), &tree)
	}
	if err != nil {
		if !trigger && !a.mayHoldRow(code) {
			return nil // the server judges it
		}
		e := errorf(CodeFeatureNotSupported, "%s that may hold a whole row of a configured table could not be read by pgveil's PL/pgSQL parser, so pgveil cannot tell whether it compares the row's ciphertext with a constant", what)
		e.Hint = "use the row's plain columns by name rather than assigning fields of a row variable, or create the function on a direct connection"
		return e
	}
	rows := map[string]bool{}
	var exprs []plExpr
	plWalk(tree, func(key string, m map[string]any) {
		switch key {
		case "PLpgSQL_var", "PLpgSQL_rec":
			name, _ := m["refname"].(string)
			if key == "PLpgSQL_rec" || a.rowType(plTypname(m)) {
				rows[strings.ToLower(name)] = true
			}
		case "PLpgSQL_expr":
			q, _ := m["query"].(string)
			mode, _ := m["parseMode"].(float64)
			exprs = append(exprs, plExpr{q, int(mode)})
		}
	})
	for _, e := range exprs {
		sql, ok := e.sql()
		if !ok {
			continue
		}
		tree, err := pg.Parse(sql)
		if err != nil {
			continue
		}
		for _, raw := range tree.Stmts {
			if a.rowMeetsConst(raw.Stmt, rows) {
				e := errorf(CodeFeatureNotSupported, "%s that compares or combines a whole row (a row variable, a record, NEW or OLD) with a constant is not supported: the row may hold ciphertext of encrypted columns, and the constant would be stored unencrypted in the function's source", what)
				e.Hint = "use the row's plain columns by name, keep logic on encrypted columns in the application, or create the function on a direct connection"
				return e
			}
		}
	}
	return nil
}

// plExpr is the SQL of one PL/pgSQL statement or expression, with the
// parse mode PostgreSQL gives it (RawParseMode).
type plExpr struct {
	query string
	mode  int
}

// sql is e as a statement pg_query parses: an expression (mode 2) after
// SELECT, an assignment (modes 3–5: `target := expr`) as a ROW of its
// target and its value, so a whole-row target meets the value's
// constants.
func (e plExpr) sql() (string, bool) {
	switch e.mode {
	case 0:
		return e.query, true
	case 2:
		return "SELECT " + e.query, true
	case 3, 4, 5:
		i := strings.Index(e.query, ":=")
		n := 2
		if i < 0 {
			i, n = strings.IndexByte(e.query, '='), 1
		}
		if i < 0 {
			return "", false
		}
		return "SELECT ROW((" + e.query[:i] + "), (" + e.query[i+n:] + "))", true
	}
	return "", false
}

// plTypname is a PL/pgSQL variable's declared type, in lower case,
// without %ROWTYPE, array brackets, quotes or schema.
func plTypname(m map[string]any) string {
	dt, _ := m["datatype"].(map[string]any)
	t, _ := dt["PLpgSQL_type"].(map[string]any)
	name, _ := t["typname"].(string)
	name = strings.ToLower(name)
	name = strings.TrimSuffix(name, "%rowtype")
	name = strings.TrimRight(name, "[] ")
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	return strings.Trim(name, `"`)
}

// rowType says whether a type of that name may be a row of a configured
// table or a view over encrypted columns (by name alone, as bodyText).
func (a *analyzer) rowType(name string) bool {
	if name == "record" || strings.Contains(name, "u&") {
		return true // U&"…" may spell any name
	}
	for _, t := range a.cfg.Tables {
		if strings.ToLower(t.Name) == name && len(t.Columns) > 0 {
			return true
		}
	}
	if a.cat != nil {
		for _, v := range a.cat.Guarded {
			if strings.ToLower(v.Name) == name {
				return true
			}
		}
	}
	return false
}

// rowMeetsConst says whether, in one part of n between AND, OR and NOT,
// a whole row (a name in rows alone or with .*, or a cast to a row type)
// and a constant other than NULL meet.
func (a *analyzer) rowMeetsConst(n *pg.Node, rows map[string]bool) bool {
	found := false
	var part func(n *pg.Node)
	part = func(n *pg.Node) {
		if b := n.GetBoolExpr(); b != nil {
			for _, arg := range b.Args {
				part(arg)
			}
			return
		}
		row, konst := false, false
		walkAll(n, func(c *pg.Node) bool {
			if found {
				return false
			}
			if c.GetBoolExpr() != nil {
				part(c)
				return false
			}
			switch {
			case c.GetAConst() != nil:
				konst = konst || !c.GetAConst().Isnull
			case c.GetColumnRef() != nil:
				f := c.GetColumnRef().Fields
				if name, ok := str(f[0]); ok && rows[strings.ToLower(name)] && (len(f) == 1 || len(f) == 2 && f[1].GetAStar() != nil) {
					row = true
				}
			case c.GetTypeCast() != nil:
				if tn := c.GetTypeCast().TypeName; tn != nil && len(tn.Names) > 0 {
					if name, ok := str(tn.Names[len(tn.Names)-1]); ok && name != "record" && a.rowType(strings.ToLower(name)) {
						row = true
					}
				}
			}
			return true
		})
		found = found || row && konst
	}
	part(n)
	return found
}

// plWalk calls fn for every object under a key in v (pg_query's JSON:
// {"PLpgSQL_var": {...}}).
func plWalk(v any, fn func(key string, m map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			if m, ok := c.(map[string]any); ok {
				fn(k, m)
			}
			plWalk(c, fn)
		}
	case []any:
		for _, c := range v {
			plWalk(c, fn)
		}
	}
}

// mayHoldRow says whether PL/pgSQL code may declare a whole row of a
// configured table, by its text: a record, a %ROWTYPE, or a configured
// table's or guarded view's name anywhere.
func (a *analyzer) mayHoldRow(code string) bool {
	b := strings.ToLower(code)
	if strings.Contains(b, "record") || strings.Contains(b, "%rowtype") || strings.Contains(b, "u&") {
		return true
	}
	for _, t := range a.cfg.Tables {
		if strings.Contains(b, strings.ToLower(t.Name)) {
			return true
		}
	}
	if a.cat != nil {
		for _, v := range a.cat.Guarded {
			if strings.Contains(b, strings.ToLower(v.Name)) {
				return true
			}
		}
	}
	return false
}

// returnsTrigger says whether cf creates a trigger function (RETURNS
// trigger, any schema): its body has NEW and OLD.
func returnsTrigger(cf *pg.CreateFunctionStmt) bool {
	if cf.ReturnType == nil || len(cf.ReturnType.Names) == 0 {
		return false
	}
	name, _ := str(cf.ReturnType.Names[len(cf.ReturnType.Names)-1])
	return strings.EqualFold(name, "trigger")
}
