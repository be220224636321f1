package rewrite

import (
	"cmp"
	"fmt"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// aexpr handles operators.
func (a *analyzer) aexpr(e *pg.A_Expr, sc *scope) *Error {
	op := lastName(e.Name)
	switch e.Kind {
	case pg.A_Expr_Kind_AEXPR_OP, pg.A_Expr_Kind_AEXPR_DISTINCT, pg.A_Expr_Kind_AEXPR_NOT_DISTINCT:
		if e.Kind != pg.A_Expr_Kind_AEXPR_OP || op == "=" || op == "<>" {
			if handled, err := a.equality(e, sc); handled || err != nil {
				return err
			}
		} else if err := a.refuseOperand(e, sc, operatorClass(op)); err != nil {
			return err
		}
	case pg.A_Expr_Kind_AEXPR_IN:
		if c, cr, err := a.encOperand(e.Lexpr, sc); err != nil {
			return err
		} else if c != nil {
			return a.inList(e, c, cr, sc)
		}
	case pg.A_Expr_Kind_AEXPR_OP_ANY, pg.A_Expr_Kind_AEXPR_OP_ALL:
		if c, cr, err := a.encOperand(e.Lexpr, sc); err != nil {
			return err
		} else if c != nil {
			if (e.Kind == pg.A_Expr_Kind_AEXPR_OP_ANY && op == "=") || (e.Kind == pg.A_Expr_Kind_AEXPR_OP_ALL && op == "<>") {
				return a.anyArray(e, c, cr, sc)
			}
			return unsupported(c, "operator "+op+" with ANY/ALL", hintApp).at(a.sql, e.Location)
		}
	case pg.A_Expr_Kind_AEXPR_LIKE, pg.A_Expr_Kind_AEXPR_ILIKE, pg.A_Expr_Kind_AEXPR_SIMILAR:
		what := map[pg.A_Expr_Kind]string{pg.A_Expr_Kind_AEXPR_LIKE: "LIKE", pg.A_Expr_Kind_AEXPR_ILIKE: "ILIKE", pg.A_Expr_Kind_AEXPR_SIMILAR: "SIMILAR TO"}[e.Kind]
		if err := a.refuseOperand(e, sc, what+" pattern matching"); err != nil {
			return err
		}
	case pg.A_Expr_Kind_AEXPR_BETWEEN, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN, pg.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
		if err := a.refuseOperand(e, sc, "a range comparison (BETWEEN)"); err != nil {
			return err
		}
	}
	what := "operator " + op
	if err := a.expr(e.Lexpr, sc, what); err != nil {
		return err
	}
	return a.expr(e.Rexpr, sc, what)
}

// stripCasts returns n without the casts and COLLATE clauses around it.
func stripCasts(n *pg.Node) *pg.Node {
	for n != nil {
		if tc := n.GetTypeCast(); tc != nil {
			n = tc.Arg
		} else if cc := n.GetCollateClause(); cc != nil {
			n = cc.Arg
		} else {
			return n
		}
	}
	return n
}

// operatorClass names what an operator does, for refusals.
func operatorClass(op string) string {
	switch op {
	case "<", ">", "<=", ">=":
		return "a range comparison (" + op + ")"
	case "~~", "!~~", "~~*", "!~~*":
		return "LIKE pattern matching"
	case "~", "~*", "!~", "!~*":
		return "regular-expression matching (" + op + ")"
	}
	return "operator " + op
}

// refuseOperand refuses when an operand of e is an encrypted column.
func (a *analyzer) refuseOperand(e *pg.A_Expr, sc *scope, what string) *Error {
	for _, side := range []*pg.Node{e.Lexpr, e.Rexpr} {
		// The operator is what the client wrote; a cast under it is how
		// an ORM spells it (Django: "users"."email"::text LIKE %s).
		c, cr, err := a.encOperand(stripCasts(side), sc)
		if err != nil {
			return err
		}
		if c != nil {
			hint := hintApp
			if c.BlindIndex != nil {
				hint = "only = , <>, IN, = ANY and IS [NOT] NULL work on encrypted columns (through the blind index); filter further in the application"
			}
			return unsupported(c, what, hint).at(a.sql, cr.Location)
		}
	}
	return nil
}

// equality rewrites =, <> and IS [NOT] DISTINCT FROM with an encrypted
// operand. handled is false when neither operand is encrypted.
func (a *analyzer) equality(e *pg.A_Expr, sc *scope) (bool, *Error) {
	lc, lref, err := a.encOperand(e.Lexpr, sc)
	if err != nil {
		return true, err
	}
	rc, rref, err := a.encOperand(e.Rexpr, sc)
	if err != nil {
		return true, err
	}
	switch {
	case lc == nil && rc == nil:
		return false, nil
	case lc != nil && rc != nil:
		if err := a.joinEquality(lc, lref, rc, rref, e.Location); err != nil {
			return true, err
		}
		if e.Kind != pg.A_Expr_Kind_AEXPR_OP {
			return true, a.migrationDistinct(lc, lref, rc, rref, e.Location)
		}
		return true, nil
	}
	col, ref, other := lc, lref, e.Rexpr
	if rc != nil {
		col, ref, other = rc, rref, e.Lexpr
	}
	if col.BlindIndex == nil {
		return true, colErr(CodeFeatureNotSupported, col, blindIndexHint(col),
			"cannot compare encrypted column %s: it has no blind index", col.QualifiedName()).at(a.sql, ref.Location)
	}
	if sl := other.GetSubLink(); sl != nil && sl.SubLinkType == pg.SubLinkType_EXPR_SUBLINK {
		if err := a.renameToIndex(ref, col); err != nil {
			return true, err
		}
		return true, a.indexSubquery(sl, col, sc)
	}
	v, err := a.classify(other, col, false)
	if err != nil {
		return true, err
	}
	if v.kind == vOther {
		return true, colErr(CodeFeatureNotSupported, col,
			"compare it with a parameter, a literal, or a column that shares its blind-index key",
			"encrypted column %s can only be compared with a parameter, a literal or another blind-indexed column", col.QualifiedName()).at(a.sql, v.loc)
	}
	if err := a.renameToIndex(ref, col); err != nil {
		return true, err
	}
	a.indexValue(v, col, Index)
	// NULL: = and <> are NULL on every row, but IS [NOT] DISTINCT FROM
	// NULL is not, and the index alone is NULL on rows not yet backfilled.
	if v.kind != vParam && v.kind != vLiteral && (v.kind != vNull || e.Kind == pg.A_Expr_Kind_AEXPR_OP) {
		return true, nil
	}
	refStart, refEnd, _, _, ok := a.refTokens(ref)
	if !ok {
		return true, errorf(CodeInternalError, "cannot locate column reference; statement refused").at(a.sql, ref.Location)
	}
	op := lastName(e.Name)
	switch e.Kind {
	case pg.A_Expr_Kind_AEXPR_DISTINCT:
		op = "IS DISTINCT FROM"
	case pg.A_Expr_Kind_AEXPR_NOT_DISTINCT:
		op = "IS NOT DISTINCT FROM"
	}
	return true, a.migrationFallback(min(refStart, v.start), max(refEnd, v.end), ref, col, migrationOp{open: op + " "}, []value{v})
}

// joinEquality compares two encrypted columns through their blind indexes,
// which is sound only when both are computed under the same index key.
func (a *analyzer) joinEquality(lc *policy.Column, lref *pg.ColumnRef, rc *policy.Column, rref *pg.ColumnRef, loc int32) *Error {
	for _, c := range []*policy.Column{lc, rc} {
		if c.BlindIndex == nil {
			return colErr(CodeFeatureNotSupported, c, blindIndexHint(c),
				"cannot compare encrypted column %s: it has no blind index", c.QualifiedName()).at(a.sql, loc)
		}
	}
	if lc.BlindIndex.Key != rc.BlindIndex.Key {
		return colErr(CodeFeatureNotSupported, lc,
			fmt.Sprintf("give both blind_index entries the same key (for example key: %s) in the pgveil policy", lc.Name),
			"cannot compare encrypted columns %s and %s: their blind indexes use different keys (%s, %s)",
			lc.QualifiedName(), rc.QualifiedName(), lc.BlindIndex.Key, rc.BlindIndex.Key).at(a.sql, loc)
	}
	if err := a.renameToIndex(lref, lc); err != nil {
		return err
	}
	return a.renameToIndex(rref, rc)
}

// indexValue sends v as the blind index of a value of col.
func (a *analyzer) indexValue(v value, col *policy.Column, action Action) {
	switch v.kind {
	case vParam:
		a.uses = append(a.uses, paramUse{number: v.param, start: v.start, end: v.end, bare: v.bare, action: action, col: col})
	case vLiteral:
		// An array literal ('{a,b}' for = ANY) becomes an ARRAY[…] of
		// indexes; a scalar literal one index.
		a.slot(v.start, v.end, Slot{Action: action, Column: col, Source: v.lit}, "")
	case vNull:
		if !v.bare {
			a.replace(v.start, v.end, "NULL")
		}
	}
}

// inList rewrites col [NOT] IN (v1, v2, …).
func (a *analyzer) inList(e *pg.A_Expr, col *policy.Column, ref *pg.ColumnRef, sc *scope) *Error {
	if col.BlindIndex == nil {
		return colErr(CodeFeatureNotSupported, col, blindIndexHint(col),
			"cannot compare encrypted column %s: it has no blind index", col.QualifiedName()).at(a.sql, ref.Location)
	}
	list := e.Rexpr.GetList()
	if list == nil {
		return unsupported(col, "IN with this operand", hintApp).at(a.sql, e.Location)
	}
	var vals []value
	for _, item := range list.Items {
		v, err := a.classify(item, col, false)
		if err != nil {
			return err
		}
		if v.kind == vOther {
			return colErr(CodeFeatureNotSupported, col, "list parameters or literals only",
				"IN list on encrypted column %s may hold only parameters, literals and NULL", col.QualifiedName()).at(a.sql, v.loc)
		}
		vals = append(vals, v)
	}
	if err := a.renameToIndex(ref, col); err != nil {
		return err
	}
	for _, v := range vals {
		a.indexValue(v, col, Index)
	}
	if !a.p.isMigrating(col.Table) || len(vals) == 0 {
		return nil
	}
	refStart, _, _, _, _ := a.refTokens(ref)
	end, ok := a.closingParen(vals[len(vals)-1].end)
	if !ok {
		return errorf(CodeInternalError, "cannot locate the end of an IN list; statement refused").at(a.sql, e.Location)
	}
	op := "IN ("
	if lastName(e.Name) == "<>" {
		op = "NOT IN ("
	}
	return a.migrationFallback(refStart, end, ref, col, migrationOp{open: op, close: ")"}, vals)
}

// anyArray rewrites col = ANY(x) and col <> ALL(x) where x is an array
// parameter (each element indexed by the proxy) or ARRAY[v1, v2, …].
func (a *analyzer) anyArray(e *pg.A_Expr, col *policy.Column, ref *pg.ColumnRef, sc *scope) *Error {
	if col.BlindIndex == nil {
		return colErr(CodeFeatureNotSupported, col, blindIndexHint(col),
			"cannot compare encrypted column %s: it has no blind index", col.QualifiedName()).at(a.sql, ref.Location)
	}
	rhs := e.Rexpr
	// ARRAY[...]::text[]: drop the cast, the elements become bytea.
	var castSpans [][2]int
	var modded []*pg.TypeCast // array casts that may change an element
	for tc := rhs.GetTypeCast(); tc != nil && tc.Arg.GetAArrayExpr() != nil; tc = rhs.GetTypeCast() {
		if len(tc.TypeName.Typmods) > 0 || lastName(tc.TypeName.Names) == "bpchar" {
			modded = append(modded, tc)
		}
		if !castFits(tc.TypeName, col.Type, true) {
			return colErr(CodeDatatypeMismatch, col, "remove the cast",
				"cast to %s does not fit encrypted column %s (%s)", typeNameString(tc.TypeName), col.QualifiedName(), col.Type).at(a.sql, tc.Location)
		}
		if t := tokenAt(a.sql, int(tc.Location), a.backslash); a.sql[t.start:t.end] != "::" {
			return unsupported(col, "CAST(ARRAY[…] AS …)", "write ARRAY[…] without the cast").at(a.sql, tc.Location)
		}
		end, ok := a.typeNameEnd(int(tc.TypeName.Location))
		if !ok {
			return errorf(CodeInternalError, "cannot find the end of a type name; statement refused").at(a.sql, tc.Location)
		}
		castSpans = append(castSpans, [2]int{int(tc.Location), end})
		rhs = tc.Arg
	}
	if arr := rhs.GetAArrayExpr(); arr != nil {
		var vals []value
		for _, item := range arr.Elements {
			v, err := a.classify(item, col, false)
			if err != nil {
				return err
			}
			if v.kind == vOther {
				return colErr(CodeFeatureNotSupported, col, "use parameters or literals as elements",
					"ARRAY[…] compared with encrypted column %s may hold only parameters, literals and NULL", col.QualifiedName()).at(a.sql, v.loc)
			}
			if len(modded) > 0 && (v.kind == vLiteral || v.kind == vParam) {
				// ARRAY['123 ']::bpchar[]: the cast applies to each element.
				if err := a.typmodsKeep(modded, col, v, false); err != nil {
					return err
				}
			}
			vals = append(vals, v)
		}
		if err := a.renameToIndex(ref, col); err != nil {
			return err
		}
		for _, s := range castSpans {
			a.replace(s[0], s[1], "")
		}
		for _, v := range vals {
			a.indexValue(v, col, Index)
		}
		if !a.p.isMigrating(col.Table) || len(vals) == 0 {
			return nil
		}
		refStart, _, _, _, _ := a.refTokens(ref)
		end, ok := a.closingParen(vals[len(vals)-1].end)
		if !ok {
			return errorf(CodeInternalError, "cannot locate the end of = ANY(ARRAY[…]); statement refused").at(a.sql, e.Location)
		}
		return a.migrationFallback(refStart, end, ref, col, migrationOp{open: anyAll(e) + "(ARRAY[", close: "])"}, vals)
	}
	v, err := a.classify(rhs, col, true)
	if err != nil {
		return err
	}
	switch v.kind {
	case vParam, vNull, vLiteral:
	default:
		return colErr(CodeFeatureNotSupported, col, "bind the array as a parameter or write ARRAY[…]",
			"= ANY on encrypted column %s needs an array parameter or ARRAY[…]", col.QualifiedName()).at(a.sql, v.loc)
	}
	if err := a.renameToIndex(ref, col); err != nil {
		return err
	}
	a.indexValue(v, col, IndexEach)
	if (v.kind != vParam && v.kind != vLiteral) || !a.p.isMigrating(col.Table) {
		return nil
	}
	refStart, _, _, _, _ := a.refTokens(ref)
	end, ok := a.closingParen(v.end)
	if !ok {
		return errorf(CodeInternalError, "cannot locate the end of = ANY(…); statement refused").at(a.sql, e.Location)
	}
	return a.migrationFallback(refStart, end, ref, col, migrationOp{open: anyAll(e) + "(", close: ")", each: true}, []value{v})
}

// anyAll is the operator of col = ANY(…) or col <> ALL(…), for the
// plaintext fallback to repeat.
func anyAll(e *pg.A_Expr) string {
	if e.Kind == pg.A_Expr_Kind_AEXPR_OP_ALL {
		return "<> ALL"
	}
	return "= ANY"
}

// renameToIndex replaces the last name of a column reference with the
// column's blind-index column (users.email → users.email_bidx), quoted the
// way the client quoted the name it replaces.
// shadowing returns a relation other than r that an unqualified name
// would reach at r's level or a level inside it, or nil.
func shadowing(sc *scope, r *rel, name string) *rel {
	for s := sc; s != nil; s = s.parent {
		here := false
		for _, x := range s.rels {
			if x.joinAliasRel != nil {
				continue
			}
			if x == r {
				here = true
				continue
			}
			if x.col(name) >= 0 {
				return x
			}
		}
		if here {
			return nil
		}
	}
	return nil
}

func (a *analyzer) renameToIndex(cr *pg.ColumnRef, col *policy.Column) *Error {
	// Through a subquery or CTE, the blind index is there only if it
	// selects it (SELECT * does): refuse a name the server would not find.
	// A table's alias column list may rename its blind index too.
	// A relation pgveil cannot list in full (a JOIN alias over a table
	// outside its catalog) must show the index among the columns it knows.
	if r := a.refRels[cr]; r != nil && !r.carriesIndex(r.col(lastName(cr.Fields)), col) {
		return colErr(CodeFeatureNotSupported, col,
			fmt.Sprintf("compare %s inside the subquery, CTE or view %s, or select %s there too", col.Name, r.name, col.BlindIndex.Column),
			"cannot compare encrypted column %s through %s: it does not return the blind index %s", col.QualifiedName(), r.name, col.BlindIndex.Column).at(a.sql, cr.Location)
	}
	if sc, r := a.refScopes[cr], a.refRels[cr]; len(cr.Fields) == 1 && sc != nil && r != nil {
		for _, bi := range col.IndexTargets() {
			if other := shadowing(sc, r, bi.Column); other != nil {
				// email → email_bidx would name another relation's column
				// (PostgreSQL resolves the new name afresh).
				return colErr(CodeFeatureNotSupported, col, "qualify the column with its table name or alias ("+r.name+"."+col.Name+")",
					"unqualified %s cannot become its blind index %s here: %s has a column of that name", col.Name, bi.Column, cmp.Or(other.name, "a relation")).at(a.sql, cr.Location)
			}
		}
	}
	l := lexer{s: a.sql[:a.stmtEnd], pos: int(cr.Location), backslash: a.backslash}
	var last token
	for i := range cr.Fields {
		if i > 0 {
			if dot := l.next(); !l.isPunct(dot, ".") {
				return errorf(CodeInternalError, "cannot locate column reference; statement refused").at(a.sql, cr.Location)
			}
		}
		last = l.next()
		if last.kind != tIdent && last.kind != tQIdent {
			return errorf(CodeInternalError, "cannot locate column reference; statement refused").at(a.sql, cr.Location)
		}
	}
	a.replace(last.start, last.end, identLike(col.BlindIndex.Column, last.kind == tQIdent))
	return nil
}
