package rewrite

import (
	"strconv"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// updateStmt plans UPDATE. An encrypted column set to a parameter or a
// literal is encrypted under the row's tenant, which the statement must
// state: SET org_id = … (the row's tenant after the update), or else an
// equality org_id = … among the top-level ANDs of WHERE. A blind-indexed
// column's index is set beside it: "SET email = $1" becomes
// "SET email = $1, email_bidx = $3".
func (a *analyzer) updateStmt(up *pg.UpdateStmt, sc *scope, mode queryMode) (*queryResult, *Error) {
	if up.WithClause != nil {
		pop, err := a.withClause(up.WithClause, sc)
		if err != nil {
			return nil, err
		}
		defer pop()
	}
	if err := a.settingsWrite(up.Relation); err != nil {
		return nil, err
	}
	target, t, err := a.targetRel(up.Relation)
	if err != nil {
		return nil, err
	}
	level := &scope{parent: sc, rels: []*rel{target}}
	for _, f := range up.FromClause {
		if _, err := a.fromItem(f, level); err != nil {
			return nil, err
		}
	}
	if err := a.expr(up.WhereClause, level, "WHERE"); err != nil {
		return nil, err
	}
	tenant, have := a.updateTenant(up, t, target, level)
	lookup := !have && sc == nil && a.mayLookUpTenant(up, t, mode)
	if lookup {
		tenant, have = ValueRef{Kind: RefLookup}, true
	}
	where := "in SET, or as " + keyContext(t) + " = $n (or a literal) among the top-level ANDs of WHERE"
	if t != nil && t.KeyContext != "" && !have && setsColumn(up, t.KeyContext) {
		where = "as a parameter or a literal in SET (" + t.KeyContext + " = $n), not an expression: the row's tenant after the UPDATE selects the key"
	}
	if err := a.setList(up.TargetList, t, level, len(up.FromClause) > 0, tenant, have, nil, where); err != nil {
		return nil, err
	}
	if lookup && a.lookupUsed {
		if err := a.tenantLookup(up, t, target); err != nil {
			return nil, err
		}
	}
	return a.returning(up.ReturningList, level, mode)
}

// mayLookUpTenant reports whether pgveil may look up the tenant of an
// UPDATE that does not name it: a top-level UPDATE of one table (no FROM,
// no WITH, not WHERE CURRENT OF), as ORMs write them (UPDATE … SET email =
// $1 WHERE id = $2).
func (a *analyzer) mayLookUpTenant(up *pg.UpdateStmt, t *policy.Table, mode queryMode) bool {
	// Not inside EXPLAIN or COPY (…) either: only an UPDATE statement.
	if t == nil || t.KeyContext == "" || mode != modeTop || a.noOutputs || a.st.Kind != KindUpdate || a.st.Copy != nil ||
		len(up.FromClause) > 0 || up.WithClause != nil {
		return false
	}
	if setsColumn(up, t.KeyContext) {
		// SET org_id = <something pgveil cannot read>: the row's tenant
		// after the UPDATE is not the one a lookup finds.
		return false
	}
	current := false
	walkAll(up.WhereClause, func(n *pg.Node) bool {
		current = current || n.GetCurrentOfExpr() != nil
		return !current
	})
	return !current
}

// setsColumn reports whether an UPDATE's SET list assigns column name.
func setsColumn(up *pg.UpdateStmt, name string) bool {
	for _, n := range up.TargetList {
		if rt := n.GetResTarget(); rt != nil && rt.Name == name {
			return true
		}
	}
	return false
}

// tenantLookup records the tenant lookup of an UPDATE (Stmt.Lookup) and
// adds its guard: WHERE (<condition>) AND <key_context> = <tenant>.
func (a *analyzer) tenantLookup(up *pg.UpdateStmt, t *policy.Table, target *rel) *Error {
	fail := func() *Error {
		return errorf(CodeInternalError, "cannot locate the clauses of this UPDATE; statement refused").at(a.sql, up.Relation.Location)
	}
	relStart := int(up.Relation.Location)
	relEnd, setEnd, whereStart, whereEnd, ok := a.updateClauses(relStart)
	if !ok {
		return fail()
	}
	if a.maxParam > 0 {
		for _, e := range a.edits {
			if e.slot != nil && e.slot.Tenant.Kind == RefLookup {
				// A literal is sealed when the statement is prepared, and
				// the tenant of a statement with parameters is looked up
				// at each execution.
				e := missingTenant(t, "", int32(e.start), a.sql)
				e.Hint = "pass the encrypted values as parameters (pgveil then looks the tenant up), or write " + t.KeyContext + " = … in WHERE"
				return e
			}
		}
	}
	lk := &Lookup{Table: t, Rel: [2]int{relStart, relEnd}, Where: [2]int{-1, -1},
		Column: quoteIdent(target.name) + "." + quoteIdent(t.KeyContext), Only: !up.Relation.Inh}
	guardAt, prefix := setEnd, " WHERE "+lk.Column+" = "
	if whereStart >= 0 {
		start, end := whereStart, whereEnd
		lk.Where = [2]int{start, end}
		a.edits = append(a.edits, edit{start: start, end: start, text: "(", sub: -2, seq: len(a.edits)})
		guardAt, prefix = end, ") AND "+lk.Column+" = "
		lk.Uses = make([]bool, a.maxParam)
		pl := lexer{s: a.sql[:end], pos: start, backslash: a.backslash}
		for tk := pl.next(); tk.kind != tEOF && tk.kind != tError; tk = pl.next() {
			if tk.kind == tParam {
				if n, err := strconv.Atoi(a.sql[tk.start+1 : tk.end]); err == nil && n >= 1 && n <= len(lk.Uses) {
					lk.Uses[n-1] = true
				}
			}
		}
	}
	if a.maxParam > 0 {
		a.lookupGuard = &edit{start: guardAt, end: guardAt, text: prefix, sub: 100}
	} else {
		a.edits = append(a.edits,
			edit{start: guardAt, end: guardAt, text: prefix, sub: 100, seq: len(a.edits)},
			edit{start: guardAt, end: guardAt, slot: &Slot{Action: TenantLookup, Source: -1}, sub: 100, seq: len(a.edits) + 1})
	}
	a.st.Lookup = lk
	a.valueDependent = true // the lookup's spans are this text's
	return nil
}

// updateClauses reads an UPDATE's text from where its relation starts:
// where the relation (with its alias) ends, where the SET list ends, and
// the span of the WHERE condition (-1 when there is none), before
// RETURNING or the statement's end. Clause keywords count only outside
// parentheses. (An UPDATE … FROM is not looked up.)
func (a *analyzer) updateClauses(from int) (relEnd, setEnd, whereStart, whereEnd int, ok bool) {
	l := lexer{s: a.sql[:a.stmtEnd], pos: from, backslash: a.backslash}
	relEnd, setEnd, whereStart, whereEnd = -1, -1, -1, -1
	last, depth, inWhere := -1, 0, false
	for {
		t := l.next()
		switch {
		case t.kind == tError:
			return 0, 0, 0, 0, false
		case t.kind == tEOF || depth == 0 && (l.isKeyword(t, "returning") || l.isPunct(t, ";")):
			if inWhere {
				whereEnd = last
			} else {
				setEnd = last
			}
			return relEnd, setEnd, whereStart, whereEnd, relEnd >= 0 && setEnd > relEnd && (whereStart < 0 || whereEnd > whereStart)
		case depth == 0 && relEnd < 0 && l.isKeyword(t, "set"):
			relEnd = last
		case depth == 0 && l.isKeyword(t, "where") && !inWhere:
			setEnd, inWhere = last, true
			whereStart = tokenAt(a.sql[:a.stmtEnd], t.end, a.backslash).start
		case l.isPunct(t, "(") || l.isPunct(t, "["):
			depth++
		case l.isPunct(t, ")") || l.isPunct(t, "]"):
			depth--
		}
		last = t.end
	}
}

func keyContext(t *policy.Table) string {
	if t == nil {
		return ""
	}
	return t.KeyContext
}

// targetRel resolves the target table of UPDATE/DELETE.
func (a *analyzer) targetRel(rv *pg.RangeVar) (*rel, *policy.Table, *Error) {
	ref, err := a.resolveTable(rv)
	if err != nil {
		return nil, nil, err
	}
	a.pinSchema(rv, ref)
	r, err := a.baseRel(ref, rv.Alias, rv.Location)
	if err != nil {
		return nil, nil, err
	}
	return r, ref.table, nil
}

// updateTenant finds the tenant of an UPDATE's writes.
func (a *analyzer) updateTenant(up *pg.UpdateStmt, t *policy.Table, target *rel, level *scope) (ValueRef, bool) {
	if t == nil || t.KeyContext == "" {
		return ValueRef{Kind: RefNone}, true
	}
	for _, n := range up.TargetList {
		if rt := n.GetResTarget(); rt != nil && rt.Name == t.KeyContext && len(rt.Indirection) == 0 {
			if rt.Val.GetMultiAssignRef() != nil {
				return ValueRef{}, false
			}
			return a.tenantValue(rt.Val)
		}
	}
	for _, c := range conjuncts(up.WhereClause) {
		e := c.GetAExpr()
		if e == nil || e.Kind != pg.A_Expr_Kind_AEXPR_OP || lastName(e.Name) != "=" {
			continue
		}
		for _, side := range [][2]*pg.Node{{e.Lexpr, e.Rexpr}, {e.Rexpr, e.Lexpr}} {
			cr := side[0].GetColumnRef()
			if cr == nil {
				continue
			}
			ref, err := a.resolveColumn(cr, level)
			if err != nil || ref.rel != target || ref.idx < 0 || target.cols[ref.idx].name != t.KeyContext {
				continue
			}
			if v, ok := a.tenantValue(side[1]); ok {
				return v, true
			}
		}
	}
	return ValueRef{}, false
}

// tenantValue reads a key_context value: a parameter, a literal or NULL.
func (a *analyzer) tenantValue(n *pg.Node) (ValueRef, bool) {
	v, err := a.classify(n, nil, false)
	if err != nil {
		return ValueRef{}, false
	}
	switch v.kind {
	case vParam:
		return ValueRef{Kind: RefParam, Param: int(v.param) - 1}, true
	case vLiteral:
		return ValueRef{Kind: RefLiteral, Literal: v.lit}, true
	case vNull:
		return ValueRef{Kind: RefNull}, true
	}
	return ValueRef{}, false
}

// conjuncts flattens the top-level ANDs of a WHERE clause.
func conjuncts(n *pg.Node) []*pg.Node {
	if n == nil {
		return nil
	}
	if b := n.GetBoolExpr(); b != nil && b.Boolop == pg.BoolExprType_AND_EXPR {
		var out []*pg.Node
		for _, c := range b.Args {
			out = append(out, conjuncts(c)...)
		}
		return out
	}
	return []*pg.Node{n}
}

// setList plans SET assignments of UPDATE and ON CONFLICT DO UPDATE.
// hasFrom refuses encrypted writes of UPDATE … FROM, whose values may come
// from another table. excluded is ON CONFLICT's EXCLUDED relation.
func (a *analyzer) setList(list []*pg.Node, t *policy.Table, sc *scope, hasFrom bool, tenant ValueRef, haveTenant bool, excluded *rel, tenantWhere string) *Error {
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			continue
		}
		var enc *policy.Column
		if t != nil {
			if err := a.checkNotIndex(t, rt.Name, rt.Location); err != nil {
				return err
			}
			if err := a.knownColumn(t, rt.Name, rt.Location); err != nil {
				return err
			}
			enc = t.Column(rt.Name)
		}
		if mar := rt.Val.GetMultiAssignRef(); mar != nil {
			if enc != nil {
				return unsupported(enc, "a multiple-column assignment (a, b) = (…)", "assign "+enc.Name+" on its own: SET "+enc.Name+" = …").at(a.sql, rt.Location)
			}
			if mar.Colno == 1 {
				if err := a.expr(mar.Source, sc, "SET"); err != nil {
					return err
				}
			}
			continue
		}
		if enc == nil {
			if err := a.expr(rt.Val, sc, "SET"); err != nil {
				return err
			}
			continue
		}
		if len(rt.Indirection) > 0 {
			return unsupported(enc, "assigning a subscript or field", "write the whole value").at(a.sql, rt.Location)
		}
		if hasFrom {
			return unsupported(enc, "writing it with UPDATE … FROM", "set it in an UPDATE without FROM, from a parameter or literal").at(a.sql, rt.Location)
		}
		quoted := tokenAt(a.sql, int(rt.Location), a.backslash).kind == tQIdent
		sep := func(bidx string) string { return ", " + identLike(bidx, quoted) + " = " }
		if cr := rt.Val.GetColumnRef(); cr != nil && excluded != nil {
			ref, err := a.resolveColumn(cr, sc)
			if err != nil {
				return err
			}
			if ref.rel == excluded {
				if ref.enc() != enc {
					return unsupported(enc, "assigning EXCLUDED of another column", "write "+enc.Name+" = EXCLUDED."+enc.Name).at(a.sql, cr.Location)
				}
				if targets := enc.IndexTargets(); len(targets) > 0 {
					end, ok := a.colRefEnd(cr)
					if !ok {
						return errorf(CodeInternalError, "cannot locate column reference; statement refused").at(a.sql, cr.Location)
					}
					for _, bi := range targets {
						a.insert(end, sep(bi.Column)+"excluded."+identLike(bi.Column, quoted))
					}
				}
				continue
			}
		}
		v, err := a.classify(rt.Val, enc, false)
		if err != nil {
			return err
		}
		if v.kind == vOther {
			c, err := a.choiceUnder(rt.Val)
			if err != nil {
				return err
			}
			if c != nil {
				missing := func(loc int32) *Error { return missingTenant(t, tenantWhere, loc, a.sql) }
				if err := a.choiceValue(rt.Val, c, enc, sc, excluded, tenant, haveTenant, missing, sep); err != nil {
					return err
				}
				continue
			}
		}
		if (v.kind == vParam || v.kind == vLiteral) && !haveTenant {
			return missingTenant(t, tenantWhere, v.loc, a.sql)
		}
		if err := a.writeValue(v, enc, tenant, sep); err != nil {
			return err
		}
	}
	return nil
}

// colRefEnd returns where a column reference's text ends.
func (a *analyzer) colRefEnd(cr *pg.ColumnRef) (int, bool) {
	l := lexer{s: a.sql[:a.stmtEnd], pos: int(cr.Location), backslash: a.backslash}
	end := -1
	for i := range cr.Fields {
		if i > 0 && !l.isPunct(l.next(), ".") {
			return 0, false
		}
		t := l.next()
		if t.kind != tIdent && t.kind != tQIdent && !l.isPunct(t, "*") && t.kind != tOp {
			return 0, false
		}
		end = t.end
	}
	return end, end >= 0
}
