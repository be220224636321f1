package rewrite

import (
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"
)

// The search_path decides which table an unqualified name means, so the
// proxy must track every change: SET [SESSION|LOCAL] search_path (and its
// alias SET SCHEMA), RESET search_path, RESET ALL, DISCARD ALL, and
// set_config('search_path', …) called from a query. A set_config whose
// arguments are literals is reported like SET; one whose arguments the
// planner cannot read (parameters, expressions) is refused, since pgveil
// could no longer resolve names.

// variableSet records SET/RESET of search_path.
func (a *analyzer) variableSet(v *pg.VariableSetStmt) {
	st := a.st
	if isRoleSetting(v.Name) {
		st.PathOpaque = true
	}
	if strings.EqualFold(v.Name, "timezone") {
		st.SetsZone = true
	}
	switch v.Kind {
	case pg.VariableSetKind_VAR_RESET_ALL:
		st.SearchPathReset, st.PathOpaque = true, true
	case pg.VariableSetKind_VAR_SET_DEFAULT, pg.VariableSetKind_VAR_RESET:
		if v.Name == "search_path" {
			st.SearchPathReset, st.SearchPathLocal = true, v.IsLocal
		}
	case pg.VariableSetKind_VAR_SET_VALUE:
		if v.Name != "search_path" {
			return
		}
		path := []string{}
		for _, arg := range v.Args {
			if c := arg.GetAConst(); c != nil {
				path = append(path, constText(c))
			}
		}
		st.SearchPath, st.SearchPathLocal = path, v.IsLocal
	}
}

// isRoleSetting reports the settings that change current_user, and with it
// what "$user" in search_path means.
func isRoleSetting(name string) bool { return name == "role" || name == "session_authorization" }

// constText renders a constant as SET reads it.
func constText(c *pg.A_Const) string {
	switch {
	case c.GetSval() != nil:
		return c.GetSval().Sval
	case c.GetIval() != nil:
		return strconv.Itoa(int(c.GetIval().Ival))
	case c.GetFval() != nil:
		return c.GetFval().Fval
	case c.GetBoolval() != nil:
		if c.GetBoolval().Boolval {
			return "on"
		}
		return "off"
	}
	return ""
}

// setConfig finds set_config(…) calls that change search_path.
func (a *analyzer) setConfig(n *pg.Node) *Error {
	if !containsFold(a.st.Original, "set_config") && !containsFold(a.st.Original, "u&") {
		return nil // U&"…" may spell set_config
	}
	var err *Error
	byRow := settingsRowCalls(n)
	walkAll(n, func(c *pg.Node) bool {
		f := c.GetFuncCall()
		if err != nil || f == nil || lastName(f.Funcname) != "set_config" || len(f.Args) != 3 {
			return err == nil
		}
		a.valueDependent = true // the setting's name decides
		refuse := func() {
			err = errorf(CodeFeatureNotSupported, "set_config() with an argument pgveil cannot read may change search_path, which pgveil must track")
			err.Hint = "write the setting name and value as literals, or use SET search_path"
			err.at(a.sql, f.Location)
		}
		name, ok, sure := stringConstAs(f.Args[0])
		if !ok {
			name, ok = byRow[f]
			sure = true
		}
		if !ok {
			refuse()
			return false
		}
		if !sure {
			// Read through a cast whose type name may be a domain in
			// pg_temp (looked up before pg_catalog): 'search_pathxx'::text
			// is search_path under a char(11) one. Any setting may change:
			// the server is asked again (review 21c).
			a.st.PathOpaque = true
			return true
		}
		if isRoleSetting(strings.ToLower(name)) {
			a.st.PathOpaque = true
			return true
		}
		if strings.EqualFold(name, "timezone") {
			a.st.SetsZone = true
		}
		if !strings.EqualFold(name, "search_path") {
			return true
		}
		value, ok, sure := stringConstAs(f.Args[1])
		local, lok := boolConst(f.Args[2])
		if !ok || !lok {
			refuse()
			return false
		}
		if !sure {
			a.st.PathOpaque = true // as for the name: the server is asked
			return true
		}
		a.st.SearchPath, a.st.SearchPathLocal = splitGUCList(value), local
		return true
	})
	return err
}

// settingsRowCalls reads the set_config calls of one shape whose name is
// a column: `SELECT set_config(name, …) FROM pg_settings WHERE name =
// 'x'`, which pg_dump (15.8 and later) sends for
// restrict_nonsystem_relation_kind. There the name can only be 'x'. Only
// calls in the target list of the statement itself count: pg_settings
// (or pg_catalog.pg_settings) alone in FROM, and a WHERE that is that one
// equality.
func settingsRowCalls(n *pg.Node) map[*pg.FuncCall]string {
	sel := n.GetSelectStmt()
	if sel == nil || len(sel.FromClause) != 1 || sel.WhereClause == nil || sel.Op != pg.SetOperation_SETOP_NONE || len(sel.WithClause.GetCtes()) > 0 {
		return nil
	}
	rv := sel.FromClause[0].GetRangeVar()
	if rv == nil || rv.Relname != "pg_settings" || (rv.Schemaname != "" && rv.Schemaname != "pg_catalog") {
		return nil
	}
	isName := func(n *pg.Node) bool {
		cr := n.GetColumnRef()
		if cr == nil {
			return false
		}
		f := cr.Fields
		if len(f) == 2 && f[0].GetString_() != nil && f[0].GetString_().Sval != rv.Relname && (rv.Alias == nil || f[0].GetString_().Sval != rv.Alias.Aliasname) {
			return false
		}
		return (len(f) == 1 || len(f) == 2) && f[len(f)-1].GetString_() != nil && f[len(f)-1].GetString_().Sval == "name"
	}
	e := sel.WhereClause.GetAExpr()
	if e == nil || e.Kind != pg.A_Expr_Kind_AEXPR_OP || len(e.Name) != 1 || e.Name[0].GetString_().GetSval() != "=" {
		return nil
	}
	var value string
	switch l, r := e.Lexpr, e.Rexpr; {
	case isName(l):
		v, ok, sure := stringConstAs(r)
		if !ok || !sure {
			return nil
		}
		value = v
	case isName(r):
		v, ok, sure := stringConstAs(l)
		if !ok || !sure {
			return nil
		}
		value = v
	default:
		return nil
	}
	if !plainSettingName(value) {
		// A temporary table named pg_settings comes first: its name
		// column, char(n), finds 'search_path' for 'search_path   '
		// (review 20e). Setting names are plain.
		return nil
	}
	out := map[*pg.FuncCall]string{}
	for _, t := range sel.TargetList {
		if f := t.GetResTarget().GetVal().GetFuncCall(); f != nil && len(f.Args) == 3 && isName(f.Args[0]) {
			out[f] = value
		}
	}
	return out
}

// plainSettingName reports a setting name as PostgreSQL lists them in
// pg_settings: lower case letters, digits, underscores, one dot at most
// (a custom setting).
func plainSettingName(v string) bool {
	dots := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= 'a' && c <= 'z', c == '_', c >= '0' && c <= '9' && i > 0:
		case c == '.' && i > 0 && i < len(v)-1 && dots == 0:
			dots++
		default:
			return false
		}
	}
	return v != ""
}

// pathFunctions marks the statement PathOpaque when it calls a function
// whose code may change search_path (Catalog.PathFunctions), by name
// alone: any schema, any overload.
func (a *analyzer) pathFunctions(n *pg.Node) {
	if a.cat == nil || len(a.cat.PathFunctions) == 0 && len(a.cat.PathRelations) == 0 || a.st.PathOpaque {
		return
	}
	rel := func(rv *pg.RangeVar) bool { return rv != nil && a.cat.PathRelations[strings.ToLower(rv.Relname)] }
	walkAll(n, func(c *pg.Node) bool {
		if a.st.PathOpaque {
			return false
		}
		switch {
		case c.GetExecuteStmt() != nil: // its PREPARE may have called one
			a.st.PathOpaque = true
		case c.GetFuncCall() != nil:
			a.st.PathOpaque = a.cat.PathFunctions[strings.ToLower(lastName(c.GetFuncCall().Funcname))]
		case c.GetAExpr() != nil: // an operator whose function is one (review 20f)
			a.st.PathOpaque = a.cat.PathFunctions[lastName(c.GetAExpr().Name)]
		case c.GetCopyStmt() != nil:
			a.st.PathOpaque = rel(c.GetCopyStmt().Relation)
		default:
			a.st.PathOpaque = rel(c.GetRangeVar()) || rel(dmlTarget(c)) // a view, a default, a trigger
		}
		return !a.st.PathOpaque
	})
}

// guardedCode refuses a query, DML, COPY, CALL (also inside EXPLAIN,
// PREPARE, DECLARE or CREATE TABLE AS) that calls a function of
// Catalog.GuardedFunctions or names a relation of GuardedRelations, by
// name alone (any schema, any overload). Other DDL (DROP FUNCTION, DROP
// TRIGGER, CREATE OR REPLACE FUNCTION) passes: it is the remedy.
func (a *analyzer) guardedCode(n *pg.Node) *Error {
	if a.cat == nil || len(a.cat.GuardedFunctions) == 0 && len(a.cat.GuardedRelations) == 0 {
		return nil
	}
	switch {
	case n.GetSelectStmt() != nil, n.GetInsertStmt() != nil, n.GetUpdateStmt() != nil, n.GetDeleteStmt() != nil,
		n.GetMergeStmt() != nil, n.GetCopyStmt() != nil, n.GetCallStmt() != nil, n.GetExplainStmt() != nil,
		n.GetPrepareStmt() != nil, n.GetDeclareCursorStmt() != nil, n.GetCreateTableAsStmt() != nil:
	default:
		return nil
	}
	var err *Error
	refuse := func(what, name string, loc int32) {
		err = errorf(CodeFeatureNotSupported, "%s %s runs code that names a view over encrypted columns (or a partition or child of a configured table), or calls such code: values passed to it could reach an encrypted column in plaintext", what, name).at(a.sql, loc)
		err.Hint = "drop or replace the code so that it names the configured table, whose values pgveil encrypts; pgveil reads the code again at its next catalog read"
	}
	rel := func(rv *pg.RangeVar) {
		if rv != nil && err == nil && a.cat.GuardedRelations[strings.ToLower(rv.Relname)] {
			refuse("relation", rv.Relname, rv.Location)
		}
	}
	walkAll(n, func(c *pg.Node) bool {
		switch {
		case c.GetFuncCall() != nil:
			if name := strings.ToLower(lastName(c.GetFuncCall().Funcname)); a.cat.GuardedFunctions[name] {
				refuse("function", name, c.GetFuncCall().Location)
			}
		case c.GetCallStmt() != nil && c.GetCallStmt().Funccall != nil:
			if f := c.GetCallStmt().Funccall; a.cat.GuardedFunctions[strings.ToLower(lastName(f.Funcname))] {
				refuse("procedure", strings.ToLower(lastName(f.Funcname)), f.Location)
			}
		case c.GetCopyStmt() != nil:
			rel(c.GetCopyStmt().Relation)
		default:
			rel(c.GetRangeVar())
			rel(dmlTarget(c))
		}
		return err == nil
	})
	return err
}

// settingsWrite refuses UPDATE pg_settings: its rule calls set_config, so
// it may change search_path with a name and value pgveil cannot read.
func (a *analyzer) settingsWrite(rv *pg.RangeVar) *Error {
	if rv == nil || rv.Relname != "pg_settings" || rv.Schemaname != "" && rv.Schemaname != "pg_catalog" {
		return nil
	}
	e := errorf(CodeFeatureNotSupported, "UPDATE pg_settings may change search_path, which pgveil must track")
	e.Hint = "use SET (or SET LOCAL) for settings"
	return e.at(a.sql, rv.Location)
}

// sessionBody refuses a DO block whose code names search_path or
// set_config: it would change search_path behind pgveil's back.
func (a *analyzer) sessionBody(code string, loc int32) *Error {
	if !containsFold(code, "search_path") && !containsFold(code, "set_config") {
		return nil
	}
	e := errorf(CodeFeatureNotSupported, "a DO block that sets search_path or calls set_config changes state pgveil must track")
	e.Hint = "run SET search_path (or SET LOCAL) as a statement of its own"
	return e.at(a.sql, loc)
}

// stringConst reads a string literal, through casts that keep its text.
// Only casts that keep the text as it is are read through: to text, or to
// varchar without a length. Others change what the server reads: char(n)
// and bpchar drop trailing blanks when read as text and cut at n,
// varchar(n) and name cut, so set_config('search_path   '::char(20), …)
// sets search_path where the literal names no setting pgveil tracks.
func stringConst(n *pg.Node) (string, bool) {
	v, ok, _ := stringConstAs(n)
	return v, ok
}

// stringConstAs is stringConst, and whether every cast read through
// names its type in pg_catalog (sure). A type name alone is looked up in
// pg_temp first, before pg_catalog: with CREATE DOMAIN pg_temp.text AS
// char(11), 'search_pathxx'::text is 'search_path' to set_config (review
// 21c). `varchar` is a keyword, pg_catalog's always.
func stringConstAs(n *pg.Node) (v string, ok, sure bool) {
	sure = true
	for n != nil && n.GetTypeCast() != nil {
		t := n.GetTypeCast().TypeName
		if !textKeepingCast(t) {
			return "", false, false
		}
		sure = sure && len(t.Names) == 2
		n = n.GetTypeCast().Arg
	}
	if c := n.GetAConst(); c != nil && c.GetSval() != nil {
		return c.GetSval().Sval, true, sure
	}
	return "", false, false
}

// textKeepingCast reports a cast to text or varchar (no length, no array)
// of pg_catalog, or named alone (stringConstAs).
func textKeepingCast(t *pg.TypeName) bool {
	if t == nil || len(t.Typmods) > 0 || len(t.ArrayBounds) > 0 || t.Setof || t.PctType {
		return false
	}
	switch len(t.Names) {
	case 1:
	case 2:
		if t.Names[0].GetString_().GetSval() != "pg_catalog" {
			return false
		}
	default:
		return false
	}
	switch t.Names[len(t.Names)-1].GetString_().GetSval() {
	case "text", "varchar":
		return true
	}
	return false
}

func boolConst(n *pg.Node) (bool, bool) {
	for n != nil && n.GetTypeCast() != nil {
		n = n.GetTypeCast().Arg
	}
	if c := n.GetAConst(); c != nil {
		if b := c.GetBoolval(); b != nil {
			return b.Boolval, true
		}
		if s := c.GetSval(); s != nil {
			switch strings.ToLower(s.Sval) {
			case "true", "t", "on", "yes", "1":
				return true, true
			case "false", "f", "off", "no", "0":
				return false, true
			}
		}
	}
	return false, false
}

// splitGUCList splits a search_path value as SplitIdentifierString does:
// comma-separated, unquoted names folded to lower case, "quoted" names
// kept with "" undoubled.
func splitGUCList(s string) []string {
	out := []string{}
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			return out
		}
		var name string
		if s[i] == '"' {
			j := i + 1
			var b strings.Builder
			for j < len(s) {
				if s[j] == '"' {
					if j+1 < len(s) && s[j+1] == '"' {
						b.WriteByte('"')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			name, i = b.String(), j+1
		} else {
			j := i
			for j < len(s) && s[j] != ',' && !isSpace(s[j]) {
				j++
			}
			name, i = lowerASCII(s[i:j]), j
		}
		out = append(out, name)
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i < len(s) && s[i] == ',' {
			i++
		}
	}
}

// nextPath returns the search path in effect after st.
func nextPath(cur *pathState, st *Stmt) *pathState {
	switch {
	case st.SearchPathReset, st.PathOpaque:
		return &pathState{unknown: true}
	case st.Kind == KindDDL:
		// DROP or RENAME of a table that shadowed a configured one: the
		// catalog pgveil plans with does not know yet.
		return &pathState{unknown: true}
	case st.SearchPath != nil:
		for _, s := range st.SearchPath {
			if s == "$user" {
				return &pathState{unknown: true} // the role is not known here
			}
		}
		return &pathState{schemas: st.SearchPath}
	}
	return cur
}

// MayChangeTimeZone reports whether st may change the session's TimeZone
// (SET TIME ZONE, SET TimeZone, set_config, code pgveil cannot see): the
// proxy then knows the zone only once the server has answered st.
func (st *Stmt) MayChangeTimeZone() bool {
	return st.PathOpaque || st.SetsZone || containsFold(st.Original, "zone")
}
