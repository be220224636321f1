package rewrite

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"
)

// A wrapped INSERT is one INSERT into a configured table sent inside a
// temporary PL/pgSQL function, so that a unique violation does not abort
// the transaction. Sequelize's findOrCreate sends exactly this string:
//
//	CREATE OR REPLACE FUNCTION pg_temp.testfunc(OUT response "users", OUT sequelize_caught_exception text)
//	  RETURNS RECORD AS $func_…$ BEGIN INSERT INTO "users" (…) VALUES (…) RETURNING * INTO response;
//	  EXCEPTION WHEN unique_violation THEN GET STACKED DIAGNOSTICS sequelize_caught_exception = PG_EXCEPTION_DETAIL; END
//	  $func_…$ LANGUAGE plpgsql;
//	SELECT (testfunc.response).id, (testfunc.response).email, …, testfunc.sequelize_caught_exception FROM pg_temp.testfunc();
//	DROP FUNCTION IF EXISTS pg_temp.testfunc()
//
// pgveil plans the INSERT inside the body as a statement of its own (its
// literals sealed and indexed where they stand in the body) and reads the
// SELECT's fields of the row the function returns as the table's columns.
// Only the three statements together, in this order and alone in their
// string, are planned so: the function then lives no longer than the
// string (an error anywhere aborts the transaction that created it), and
// nothing else can call it. Any other function whose code writes a
// configured table stays refused (analyzer.body).

// wrapState is what the statements of one such string share.
type wrapState struct {
	name string     // the function's name, in schema pg_temp
	fn   *wrappedFn // set once the CREATE is recognised and planned
	// calls are the calls of the function the SELECT's FROM reads as the
	// table's row (wrappedCall); any other call is refused (wrappedCalls).
	calls map[*pg.FuncCall]bool
}

// wrappedFn is a recognised wrapping function.
type wrappedFn struct {
	outs []string // its OUT parameters, in order
	row  int      // the one whose type is the table's row
	ref  tableRef
}

// wrapCandidate returns the state of a string that may be a wrapped
// INSERT: a CREATE FUNCTION pg_temp.f, a SELECT, a DROP FUNCTION pg_temp.f.
func wrapCandidate(stmts []*pg.RawStmt) *wrapState {
	if len(stmts) != 3 {
		return nil
	}
	cf := stmts[0].Stmt.GetCreateFunctionStmt()
	if cf == nil || cf.IsProcedure || len(cf.Funcname) != 2 || names(cf.Funcname[:1]) != "pg_temp" {
		return nil
	}
	name := lastName(cf.Funcname)
	if stmts[1].Stmt.GetSelectStmt() == nil {
		return nil
	}
	d := stmts[2].Stmt.GetDropStmt()
	if d == nil || d.RemoveType != pg.ObjectType_OBJECT_FUNCTION || len(d.Objects) != 1 {
		return nil
	}
	o := d.Objects[0].GetObjectWithArgs()
	if o == nil || len(o.Objname) != 2 || names(o.Objname[:1]) != "pg_temp" || lastName(o.Objname) != name || len(o.Objargs) != 0 {
		return nil
	}
	return &wrapState{name: name}
}

// wrappedInsert plans the CREATE FUNCTION of a wrapped INSERT. It reports
// false, planning nothing, when cf is not of that shape (the caller then
// checks the body as any other).
func (a *analyzer) wrappedInsert(cf *pg.CreateFunctionStmt) (bool, *Error) {
	w := a.wrap
	if w == nil || lastName(cf.Funcname) != w.name || len(cf.Funcname) != 2 || cf.SqlBody != nil {
		return false, nil
	}
	var body string
	for _, o := range cf.Options {
		d := o.GetDefElem()
		if d == nil {
			return false, nil
		}
		switch d.Defname {
		case "language": // checked below
		case "as":
			l := d.Arg.GetList()
			if l == nil || len(l.Items) != 1 {
				return false, nil
			}
			body, _ = str(l.Items[0])
		default:
			return false, nil // SET search_path, SECURITY DEFINER…: not the shape
		}
	}
	if language(cf.Options, "sql") != "plpgsql" || body == "" {
		return false, nil
	}
	if rt := cf.ReturnType; rt == nil || len(rt.ArrayBounds) > 0 || rt.Setof || lastName(rt.Names) != "record" {
		return false, nil
	}
	fn := &wrappedFn{row: -1}
	for _, p := range cf.Parameters {
		fp := p.GetFunctionParameter()
		if fp == nil || fp.Mode != pg.FunctionParameterMode_FUNC_PARAM_OUT || fp.Name == "" || fp.ArgType == nil {
			return false, nil // an IN parameter would be a variable the INSERT could read
		}
		tn := fp.ArgType
		if len(tn.ArrayBounds) == 0 && !tn.PctType && !tn.Setof && len(tn.Typmods) == 0 && len(tn.Names) <= 2 {
			rv := &pg.RangeVar{Relname: lastName(tn.Names), Location: tn.Location}
			if len(tn.Names) == 2 {
				rv.Schemaname = names(tn.Names[:1])
			}
			if ref, err := a.resolveName(rv); err == nil && ref.table != nil {
				if fn.row >= 0 {
					return false, nil
				}
				fn.row, fn.ref = len(fn.outs), ref
			}
		}
		fn.outs = append(fn.outs, fp.Name)
	}
	if fn.row < 0 {
		return false, nil
	}
	// The body as the client wrote it: one $tag$ string of the statement.
	bodyStart, bodyEnd := -1, -1
	l := lexer{s: a.sql[:a.stmtEnd], pos: a.stmtStart, backslash: a.backslash}
	for t := l.next(); t.kind != tEOF; t = l.next() {
		if t.kind == tError {
			return false, nil
		}
		if t.kind != tString || a.sql[t.start] != '$' {
			continue
		}
		tag := strings.IndexByte(a.sql[t.start+1:t.end], '$') + 2
		if a.sql[t.start+tag:t.end-tag] != body || bodyStart >= 0 {
			return false, nil
		}
		bodyStart, bodyEnd = t.start+tag, t.end-tag
	}
	if bodyStart < 0 {
		return false, nil
	}
	insStart, insEnd, ok := wrappedSpan(a.sql[:bodyEnd], bodyStart, fn.outs[fn.row], a.backslash)
	if !ok {
		return false, nil
	}
	if a.backslash {
		// PL/pgSQL reads the body's strings with the session's
		// standard_conforming_strings; pg_query reads them with it on.
		// The two readings differ only on a backslash in a plain string:
		// refused as at the top level.
		if _, found := backslashInPlainString(a.sql[insStart:insEnd]); found {
			return false, nil
		}
	}
	// The rest of the body (BEGIN, RETURNING * INTO, the handler) must not
	// touch a configured table either.
	if err := a.bodyText(a.sql[bodyStart:insStart]+" "+a.sql[insEnd:bodyEnd], "a function body", "plpgsql"); err != nil {
		return true, err
	}
	// Parse the INSERT where it stands: every other byte blanked, so that
	// the parser's locations index the client's string.
	blank := []byte(a.sql)
	for i := range blank {
		if (i < insStart || i >= insEnd) && blank[i] != '\n' {
			blank[i] = ' '
		}
	}
	tree, err := pg.Parse(string(blank))
	if err != nil || len(tree.Stmts) != 1 {
		return false, nil
	}
	ins := tree.Stmts[0].Stmt.GetInsertStmt()
	if ins == nil || len(ins.ReturningList) > 0 {
		return false, nil
	}
	if ref, err := a.resolveName(ins.Relation); err != nil || ref.table != fn.ref.table {
		return false, nil
	}
	sub := newAnalyzer(a.p, a.cat, a.sql, tree.Stmts[0], insStart, insEnd, a.path, a.backslash)
	sub.noPins = a.noPins
	if perr := sub.plan(tree.Stmts[0].Stmt); perr != nil {
		return true, perr
	}
	if sub.maxParam > 0 || len(sub.uses) > 0 || sub.lookupGuard != nil || sub.st.Lookup != nil ||
		sub.st.Outputs != nil || sub.st.OutputsByOrigin || sub.st.SearchPath != nil || sub.st.SearchPathReset || sub.st.PathOpaque {
		return false, nil
	}
	if len(a.edits) > 0 || len(a.st.Literals) > 0 {
		return false, nil
	}
	for _, e := range sub.edits {
		e.seq = len(a.edits)
		a.edits = append(a.edits, e)
	}
	a.st.Literals, a.litIndex, a.pins = sub.st.Literals, sub.litIndex, sub.pins
	// The function lives only as long as the string: nothing of the
	// catalog pgveil plans with changes.
	a.st.Kind = KindOther
	w.fn = fn
	return true, nil
}

// wrappedCalls refuses a call of the string's wrapping function in stmt
// that wrappedCall did not read (ROWS FROM, WITH ORDINALITY, a call in an
// expression, the temporary schema by its own name): its row would reach
// the client undecrypted.
func (a *analyzer) wrappedCalls(stmt *pg.Node) *Error {
	w := a.wrap
	if w == nil || w.fn == nil {
		return nil
	}
	var err *Error
	walkAll(stmt, func(c *pg.Node) bool {
		f := c.GetFuncCall()
		if err != nil || f == nil || w.calls[f] || lastName(f.Funcname) != w.name {
			return err == nil
		}
		if len(f.Funcname) == 1 || strings.HasPrefix(names(f.Funcname[:len(f.Funcname)-1]), "pg_temp") {
			t := w.fn.ref.table
			err = tableErr(CodeFeatureNotSupported, t, "read it as FROM pg_temp."+w.name+"() [AS alias], its fields by name",
				"this call of pg_temp.%s returns a row of configured table %s that pgveil would not decrypt", w.name, t.QualifiedName()).at(a.sql, f.Location)
		}
		return err == nil
	})
	return err
}

// wrappedSpan finds, in the body sql[start:], the INSERT of
//
//	BEGIN INSERT … RETURNING * INTO out; [EXCEPTION WHEN c [OR c…] THEN handler] END [;]
//
// and returns its span. The handler may hold only names, '=', ':=', ','
// and ';' (GET STACKED DIAGNOSTICS x = PG_EXCEPTION_DETAIL; NULL;): no
// strings, no calls, nothing that could reach a table or a setting.
func wrappedSpan(sql string, start int, out string, backslash bool) (int, int, bool) {
	l := lexer{s: sql, pos: start, backslash: backslash}
	if t := l.next(); !l.isKeyword(t, "begin") {
		return 0, 0, false
	}
	first := l.next()
	if !l.isKeyword(first, "insert") {
		return 0, 0, false
	}
	end, depth := first.end, 0
	for {
		t := l.next()
		switch {
		case t.kind == tEOF || t.kind == tError:
			return 0, 0, false
		case l.isPunct(t, "(") || l.isPunct(t, "["):
			depth++
		case l.isPunct(t, ")") || l.isPunct(t, "]"):
			depth--
		case depth == 0 && l.isPunct(t, ";"):
			return 0, 0, false
		case depth == 0 && l.isKeyword(t, "returning"):
			star, into, target, semi := l.next(), l.next(), l.next(), l.next()
			if !(star.kind == tOp && l.text(star) == "*") || !l.isKeyword(into, "into") || target.kind != tIdent ||
				!strings.EqualFold(l.text(target), out) || !l.isPunct(semi, ";") {
				return 0, 0, false
			}
			if !wrappedTail(&l) {
				return 0, 0, false
			}
			return first.start, end, true
		}
		end = t.end
	}
}

// wrappedTail checks what follows the INSERT's RETURNING … INTO: an
// optional EXCEPTION section, END, an optional ';'. The handlers may only
// read the error into variables or do nothing:
//
//	WHEN cond [OR cond …] THEN { GET [STACKED|CURRENT] DIAGNOSTICS v = item [, …]; | NULL; } …
//
// nothing that could reach a table, a setting or the session's role.
func wrappedTail(l *lexer) bool {
	t := l.next()
	if l.isKeyword(t, "exception") {
		t = l.next()
		if !l.isKeyword(t, "when") {
			return false
		}
		for l.isKeyword(t, "when") {
			for {
				if t = l.next(); t.kind != tIdent && t.kind != tQIdent {
					return false
				}
				if t = l.next(); !l.isKeyword(t, "or") {
					break
				}
			}
			if !l.isKeyword(t, "then") {
				return false
			}
			for t = l.next(); !l.isKeyword(t, "when") && !l.isKeyword(t, "end"); t = l.next() {
				if !handlerStatement(l, t) {
					return false
				}
			}
		}
	}
	if !l.isKeyword(t, "end") {
		return false
	}
	t = l.next()
	if l.isPunct(t, ";") {
		t = l.next()
	}
	return t.kind == tEOF
}

// handlerStatement reads one statement of an exception handler starting
// at t, through its ';': NULL, or GET DIAGNOSTICS into variables.
func handlerStatement(l *lexer, t token) bool {
	if l.isKeyword(t, "null") {
		return l.isPunct(l.next(), ";")
	}
	if !l.isKeyword(t, "get") {
		return false
	}
	t = l.next()
	if l.isKeyword(t, "stacked") || l.isKeyword(t, "current") {
		t = l.next()
	}
	if !l.isKeyword(t, "diagnostics") {
		return false
	}
	for {
		if t = l.next(); t.kind != tIdent && t.kind != tQIdent {
			return false
		}
		t = l.next()
		switch {
		case t.kind == tOp && (l.text(t) == "=" || l.text(t) == ":="):
		case t.kind == tPunct && l.text(t) == ":":
			if t = l.next(); !(t.kind == tOp && l.text(t) == "=") {
				return false
			}
		default:
			return false
		}
		if t = l.next(); t.kind != tIdent {
			return false
		}
		t = l.next()
		if l.isPunct(t, ";") {
			return true
		}
		if !l.isPunct(t, ",") {
			return false
		}
	}
}

// wrappedCall returns the relation of a FROM item that calls the string's
// wrapping function, pg_temp.f(), or nil. Its columns are the function's
// OUT parameters; the row one's fields are the table's columns.
func (a *analyzer) wrappedCall(rf *pg.RangeFunction) (*rel, *Error) {
	w := a.wrap
	if w == nil || w.fn == nil || len(rf.Functions) != 1 || rf.Ordinality || rf.IsRowsfrom || len(rf.Coldeflist) > 0 {
		return nil, nil
	}
	l := rf.Functions[0].GetList()
	if l == nil || len(l.Items) == 0 {
		return nil, nil
	}
	f := l.Items[0].GetFuncCall()
	if f == nil || len(f.Funcname) != 2 || names(f.Funcname[:1]) != "pg_temp" || lastName(f.Funcname) != w.name || len(f.Args) > 0 {
		return nil, nil
	}
	if w.calls == nil {
		w.calls = map[*pg.FuncCall]bool{}
	}
	w.calls[f] = true
	r := &rel{name: w.name, complete: true, loc: -1}
	if rf.Alias != nil && rf.Alias.Aliasname != "" {
		r.name, r.aliased = rf.Alias.Aliasname, true
	}
	for i, out := range w.fn.outs {
		c := relCol{name: out, tenant: -1}
		if i == w.fn.row {
			row, err := a.baseRel(w.fn.ref, nil, -1)
			if err != nil {
				return nil, err
			}
			c.row = row
		}
		r.cols = append(r.cols, c)
	}
	if rf.Alias != nil {
		r.rename(rf.Alias.Colnames)
	}
	for _, c := range r.cols {
		if c.row != nil {
			c.row.name, c.row.schema, c.row.aliased = "", "", true
			c.row.rowOf = quoteIdent(r.name) + "." + quoteIdent(c.name)
		}
	}
	return r, nil
}

// rowField resolves a column reference that selects a field of a row
// column: row.field or rel.row.field (the parts after a qualifier that
// names no relation). ok is false when parts are not such a reference.
func (a *analyzer) rowField(parts []string, loc int32, sc *scope) (colRef, bool, *Error) {
	var rc *relCol
	switch len(parts) {
	case 2:
		c, err := a.resolveBare(parts[0], loc, sc)
		if err != nil {
			return colRef{idx: -1}, false, nil
		}
		rc = c.col()
	case 3:
		if r := sc.find(parts[0]); r != nil {
			if i := r.col(parts[1]); i >= 0 {
				rc = &r.cols[i]
			}
		}
	}
	if rc == nil || rc.row == nil {
		return colRef{idx: -1}, false, nil
	}
	return colRef{rel: rc.row, idx: rc.row.col(parts[len(parts)-1])}, true, nil
}

// indirectField resolves (rel.row).field, an A_Indirection over a row
// column. ok is false when n is not a field selection of a row column.
func (a *analyzer) indirectField(ind *pg.A_Indirection, sc *scope) (colRef, bool, *Error) {
	cr := ind.Arg.GetColumnRef()
	if cr == nil {
		return colRef{idx: -1}, false, nil
	}
	ref, err := a.resolveColumn(cr, sc)
	if err != nil {
		return colRef{idx: -1}, false, err
	}
	rc := ref.col()
	if ref.star || rc == nil || rc.row == nil {
		return colRef{idx: -1}, false, nil
	}
	if len(ind.Indirection) != 1 {
		return colRef{idx: -1}, false, a.rowRefused(rc, "a subscript or field selection", cr.Location)
	}
	name, ok := str(ind.Indirection[0])
	if !ok {
		return colRef{idx: -1}, false, a.rowRefused(rc, "(row).*", cr.Location)
	}
	return colRef{rel: rc.row, idx: rc.row.col(name)}, true, nil
}

// rowRefused refuses a use of a row column other than selecting one of
// its fields by name: the row holds ciphertext pgveil would not open.
func (a *analyzer) rowRefused(rc *relCol, what string, loc int32) *Error {
	t := rc.row.table
	e := tableErr(CodeFeatureNotSupported, t, "select its fields by name: ("+rc.row.rowOf+").column",
		"%s of %s, a row of configured table %s, is not supported: it holds encrypted columns pgveil would not decrypt", what, rc.name, t.QualifiedName())
	return e.at(a.sql, loc)
}

// starRows refuses a * over a relation with a row column.
func (a *analyzer) starRows(r *rel, loc int32) *Error {
	for i := range r.cols {
		if r.cols[i].row != nil {
			return a.rowRefused(&r.cols[i], "*", loc)
		}
	}
	return nil
}
