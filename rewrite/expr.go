package rewrite

import (
	"fmt"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// An encrypted column may appear in an expression only where the server can
// work on ciphertext or blind indexes without knowing the plaintext:
//
//	col = v, col <> v, col IS [NOT] DISTINCT FROM v   → col_bidx op index(v)
//	col [NOT] IN (v1, v2)                              → col_bidx [NOT] IN (index(v1), …)
//	col = ANY($1), col <> ALL(ARRAY[…])                → col_bidx = ANY(index-each($1))
//	a.col = b.col (both share a blind-index key)       → a.col_bidx = b.col_bidx
//	col IN (SELECT other_col …) (same key)             → col_bidx IN (SELECT other_col_bidx …)
//	col IS [NOT] NULL, count(col)                      → unchanged
//
// Every other appearance (a function, cast, operator, CASE, ORDER BY…)
// is refused. expr handles these shapes by name and walks every other node
// reflectively, so no node type can hide a reference.

const hintApp = "pgveil can store, return and compare encrypted columns for equality only; do this in the application"

// expr checks and rewrites the expression n evaluated in sc. what names the
// construct n is an operand of, for messages ("function lower()").
func (a *analyzer) expr(n *pg.Node, sc *scope, what string) *Error {
	if n == nil || n.Node == nil {
		return nil
	}
	switch {
	case n.GetColumnRef() != nil:
		return a.bareRef(n.GetColumnRef(), sc, what)
	case n.GetAExpr() != nil:
		return a.aexpr(n.GetAExpr(), sc)
	case n.GetNullTest() != nil:
		nt := n.GetNullTest()
		if c, err := a.encRef(nt.Arg, sc); err != nil || c != nil {
			return err // IS [NOT] NULL works on ciphertext
		}
		return a.expr(nt.Arg, sc, "IS NULL")
	case n.GetFuncCall() != nil:
		return a.funcCall(n.GetFuncCall(), sc)
	case n.GetSubLink() != nil:
		return a.sublink(n.GetSubLink(), sc, what)
	case n.GetTypeCast() != nil:
		return a.expr(n.GetTypeCast().Arg, sc, "a cast")
	case n.GetCollateClause() != nil:
		return a.expr(n.GetCollateClause().Arg, sc, "COLLATE")
	case n.GetBoolExpr() != nil:
		for _, c := range n.GetBoolExpr().Args {
			if err := a.expr(c, sc, "a boolean expression"); err != nil {
				return err
			}
		}
		return nil
	case n.GetSelectStmt() != nil, n.GetInsertStmt() != nil, n.GetUpdateStmt() != nil, n.GetDeleteStmt() != nil:
		_, err := a.query(n, sc, modeSub)
		return err
	}
	var err *Error
	desc := describe(n)
	eachChild(n, func(c *pg.Node) {
		if err == nil {
			err = a.expr(c, sc, desc)
		}
	})
	return err
}

// describe names a node for messages.
func describe(n *pg.Node) string {
	switch {
	case n.GetCaseExpr() != nil:
		return "CASE"
	case n.GetCoalesceExpr() != nil:
		return "COALESCE"
	case n.GetMinMaxExpr() != nil:
		return "GREATEST/LEAST"
	case n.GetRowExpr() != nil:
		return "a row constructor"
	case n.GetAArrayExpr() != nil:
		return "an array constructor"
	case n.GetAIndirection() != nil:
		return "a subscript or field selection"
	case n.GetBooleanTest() != nil:
		return "IS TRUE/FALSE"
	case n.GetWindowDef() != nil:
		return "a window definition"
	case n.GetSortBy() != nil:
		return "ORDER BY"
	case n.GetGroupingSet() != nil:
		return "GROUP BY"
	}
	return "an expression (" + nodeName(n) + ")"
}

// bareRef handles a column reference outside the allowed shapes.
func (a *analyzer) bareRef(cr *pg.ColumnRef, sc *scope, what string) *Error {
	ref, err := a.resolveColumn(cr, sc)
	if err != nil {
		return err
	}
	if ref.star {
		if r := ref.rel; r != nil && r.hasEnc() {
			for _, c := range r.cols {
				if c.enc != nil {
					return unsupported(c.enc, what+" over "+r.name+".*", "select the columns by name").at(a.sql, cr.Location)
				}
			}
		}
		return nil
	}
	if c := ref.enc(); c != nil {
		if a.strict != "" {
			what = a.strict
		}
		hint := hintApp
		if what == "ORDER BY" || what == "GROUP BY" || what == "DISTINCT" || what == "DISTINCT ON" {
			hint = "sort or group in the application, or by another column; ciphertext has no order and equal values encrypt differently"
		}
		return unsupported(c, what, hint).at(a.sql, cr.Location)
	}
	return nil
}

// encRef returns the encrypted column n reads when n is a bare column
// reference to one; a cast or COLLATE around such a reference is refused.
func (a *analyzer) encRef(n *pg.Node, sc *scope) (*policy.Column, *Error) {
	c, _, err := a.encOperand(n, sc)
	return c, err
}

// encOperand is encRef that also returns the reference itself.
func (a *analyzer) encOperand(n *pg.Node, sc *scope) (*policy.Column, *pg.ColumnRef, *Error) {
	if n == nil {
		return nil, nil, nil
	}
	if cr := n.GetColumnRef(); cr != nil {
		ref, err := a.resolveColumn(cr, sc)
		if err != nil || ref.star {
			return nil, nil, err
		}
		if c := ref.enc(); c != nil {
			if a.strict != "" {
				return nil, nil, unsupported(c, a.strict, "pgveil would let the server store or evaluate it on ciphertext; keep this logic in the application").at(a.sql, cr.Location)
			}
			return c, cr, nil
		}
		return nil, nil, nil
	}
	inner, loc, what := n, int32(-1), "a cast"
	for {
		if tc := inner.GetTypeCast(); tc != nil {
			inner, loc = tc.Arg, tc.Location
		} else if cc := inner.GetCollateClause(); cc != nil {
			inner, loc, what = cc.Arg, cc.Location, "COLLATE"
		} else {
			break
		}
	}
	if inner != n {
		if c, _, err := a.encOperand(inner, sc); err != nil || c != nil {
			if err != nil {
				return nil, nil, err
			}
			return nil, nil, unsupported(c, what, "compare the column itself; pgveil strips casts on the value side only").at(a.sql, loc)
		}
	}
	return nil, nil, nil
}

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
		c, cr, err := a.encOperand(side, sc)
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
		return true, a.joinEquality(lc, lref, rc, rref, e.Location)
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
	return true, nil
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
		a.slot(v.start, v.end, Slot{Action: Index, Column: col, Source: v.lit}, "")
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
	return nil
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
	for tc := rhs.GetTypeCast(); tc != nil && tc.Arg.GetAArrayExpr() != nil; tc = rhs.GetTypeCast() {
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
		return nil
	}
	v, err := a.classify(rhs, col, true)
	if err != nil {
		return err
	}
	switch v.kind {
	case vParam, vNull:
	case vLiteral:
		return unsupported(col, "= ANY of an array literal", "write col IN ('a', 'b'), ARRAY['a', 'b'], or bind the array as a parameter").at(a.sql, v.loc)
	default:
		return colErr(CodeFeatureNotSupported, col, "bind the array as a parameter or write ARRAY[…]",
			"= ANY on encrypted column %s needs an array parameter or ARRAY[…]", col.QualifiedName()).at(a.sql, v.loc)
	}
	if err := a.renameToIndex(ref, col); err != nil {
		return err
	}
	a.indexValue(v, col, IndexEach)
	return nil
}

// funcCall allows count(col); any other function of an encrypted column is refused.
func (a *analyzer) funcCall(f *pg.FuncCall, sc *scope) *Error {
	name := lastName(f.Funcname)
	what := "function " + name + "()"
	if name == "count" && len(f.Args) == 1 && !f.AggDistinct && len(f.AggOrder) == 0 {
		if c, err := a.encRef(f.Args[0], sc); err != nil {
			return err
		} else if c == nil {
			if err := a.expr(f.Args[0], sc, what); err != nil {
				return err
			}
		}
	} else {
		if f.AggDistinct {
			what = name + "(DISTINCT …)"
		}
		for _, arg := range f.Args {
			if err := a.expr(arg, sc, what); err != nil {
				return err
			}
		}
		for _, o := range f.AggOrder {
			if err := a.expr(o, sc, "ORDER BY"); err != nil {
				return err
			}
		}
	}
	if err := a.expr(f.AggFilter, sc, "FILTER"); err != nil {
		return err
	}
	if f.Over != nil {
		var err *Error
		eachNodeIn(f.Over.ProtoReflect(), func(c *pg.Node) {
			if err == nil {
				err = a.expr(c, sc, "a window definition")
			}
		})
		return err
	}
	return nil
}

// sublink handles subqueries in expressions.
func (a *analyzer) sublink(s *pg.SubLink, sc *scope, what string) *Error {
	switch s.SubLinkType {
	case pg.SubLinkType_EXISTS_SUBLINK:
		_, err := a.query(s.Subselect, sc, modeSub)
		return err
	case pg.SubLinkType_ANY_SUBLINK, pg.SubLinkType_ALL_SUBLINK:
		c, cr, err := a.encOperand(s.Testexpr, sc)
		if err != nil {
			return err
		}
		if c != nil {
			op := lastName(s.OperName)
			if op == "" {
				op = "=" // x IN (SELECT …) carries no operator name
			}
			if !(s.SubLinkType == pg.SubLinkType_ANY_SUBLINK && op == "=" || s.SubLinkType == pg.SubLinkType_ALL_SUBLINK && op == "<>") {
				return unsupported(c, "operator "+op+" with a subquery", hintApp).at(a.sql, s.Location)
			}
			if c.BlindIndex == nil {
				return colErr(CodeFeatureNotSupported, c, blindIndexHint(c),
					"cannot compare encrypted column %s: it has no blind index", c.QualifiedName()).at(a.sql, cr.Location)
			}
			if err := a.renameToIndex(cr, c); err != nil {
				return err
			}
			return a.indexSubquery(s, c, sc)
		}
		if err := a.expr(s.Testexpr, sc, "a subquery comparison"); err != nil {
			return err
		}
		return a.plainSubquery(s, sc, "a comparison")
	default:
		return a.plainSubquery(s, sc, what)
	}
}

// plainSubquery plans a subquery whose values are used as plaintext: it
// must not return an encrypted column.
func (a *analyzer) plainSubquery(s *pg.SubLink, sc *scope, what string) *Error {
	res, err := a.query(s.Subselect, sc, modeSub)
	if err != nil {
		return err
	}
	for _, c := range res.cols {
		if c.enc != nil {
			return unsupported(c.enc, "a subquery used in "+what, hintApp).at(a.sql, s.Location)
		}
	}
	return nil
}

// indexSubquery plans a subquery compared with encrypted column col: its
// one result column must be a column of a table sharing col's blind-index
// key, which is then replaced by its blind index.
func (a *analyzer) indexSubquery(s *pg.SubLink, col *policy.Column, sc *scope) *Error {
	res, err := a.query(s.Subselect, sc, modeSub)
	if err != nil {
		return err
	}
	bad := colErr(CodeFeatureNotSupported, col,
		"select a blind-indexed column that shares the key "+col.BlindIndex.Key+", by name, from a table",
		"a subquery compared with encrypted column %s must return one encrypted column of a table that shares its blind-index key", col.QualifiedName()).at(a.sql, s.Location)
	if len(res.cols) != 1 || !res.complete {
		return bad
	}
	o := res.cols[0]
	if o.enc == nil || o.ref == nil || o.src == nil || !o.src.base || o.enc.BlindIndex == nil || o.enc.BlindIndex.Key != col.BlindIndex.Key {
		return bad
	}
	return a.renameToIndex(o.ref, o.enc)
}

// renameToIndex replaces the last name of a column reference with the
// column's blind-index column (users.email → users.email_bidx), quoted the
// way the client quoted the name it replaces.
func (a *analyzer) renameToIndex(cr *pg.ColumnRef, col *policy.Column) *Error {
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
