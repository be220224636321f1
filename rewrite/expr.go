package rewrite

import (
	"fmt"
	"slices"
	"strings"

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
	case n.GetAConst() != nil, n.GetParamRef() != nil, n.GetSqlvalueFunction() != nil, n.GetSetToDefault() != nil:
		return nil // leaves
	case n.GetList() != nil:
		for _, c := range n.GetList().Items {
			if err := a.expr(c, sc, what); err != nil {
				return err
			}
		}
		return nil
	case n.GetColumnRef() != nil:
		return a.bareRef(n.GetColumnRef(), sc, what)
	case n.GetAExpr() != nil:
		return a.aexpr(n.GetAExpr(), sc)
	case n.GetNullTest() != nil:
		nt := n.GetNullTest()
		if c, err := a.encRef(nt.Arg, sc); err != nil || c != nil {
			return err // IS [NOT] NULL works on ciphertext
		}
		a.nullTest(nt.Arg)
		return a.expr(nt.Arg, sc, "IS NULL")
	case n.GetFuncCall() != nil:
		return a.funcCall(n.GetFuncCall(), sc)
	case n.GetSubLink() != nil:
		return a.sublink(n.GetSubLink(), sc, what)
	case n.GetTypeCast() != nil:
		// Under a function or operator, name that (Django's iexact is
		// UPPER("users"."email"::text)); else the cast.
		w := "a cast"
		if strings.HasPrefix(what, "function ") || strings.HasPrefix(what, "operator ") {
			w = what
		}
		return a.expr(n.GetTypeCast().Arg, sc, w)
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
		if r := ref.rel; r != nil {
			if e := r.firstEnc(); e != nil {
				return unsupported(e, what+" over "+r.name+".*", "select the columns by name").at(a.sql, cr.Location)
			}
		}
		return nil
	}
	if rc := ref.col(); rc != nil && rc.row != nil {
		return a.rowRefused(rc, what, cr.Location)
	}
	if rc := ref.col(); rc != nil && rc.json != nil {
		return a.jsonRefused(rc.json, what, cr.Location)
	}
	if c := ref.enc(); c != nil {
		if a.strict != "" {
			what = a.strict
		}
		hint := hintApp
		if what == "ORDER BY" || what == "GROUP BY" || what == "DISTINCT" || what == "DISTINCT ON" {
			hint = "sort or group in the application, or by another column; ciphertext has no order and equal values encrypt differently"
		} else if h := normalizedHint(c, what); h != "" {
			hint = h
		}
		return unsupported(c, what, hint).at(a.sql, cr.Location)
	}
	return nil
}

// normalizedHint is the remedy for lower(col) = lower($1) and the like,
// the usual case-insensitive lookup, when the column's blind index
// already normalises that way: compare the column itself.
func normalizedHint(c *policy.Column, what string) string {
	if c.BlindIndex == nil {
		return ""
	}
	var want policy.Normalization
	switch what {
	case "function lower()", "function upper()":
		want = policy.NormLowercase
	case "function btrim()", "function trim()":
		want = policy.NormTrim
	default:
		return ""
	}
	if !slices.Contains(c.BlindIndex.Normalize, want) {
		return ""
	}
	return fmt.Sprintf("to find values whatever their %s, compare the column itself (%s = $1): its blind index already normalises them (normalize: %s); do anything else in the application",
		map[policy.Normalization]string{policy.NormLowercase: "case", policy.NormTrim: "surrounding blanks"}[want], c.Name, want)
}

// nullTest records $n [::type] IS [NOT] NULL (assignParams).
func (a *analyzer) nullTest(arg *pg.Node) {
	inner := arg
	for inner.GetTypeCast() != nil {
		inner = inner.GetTypeCast().Arg
	}
	p := inner.GetParamRef()
	if p == nil {
		return
	}
	if s, e, ok := a.exprExtent(arg); ok {
		a.nullTests = append(a.nullTests, paramUse{number: p.Number, start: s, end: e})
	}
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
			a.refRels[cr] = ref.rel
			a.refScopes[cr] = sc
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
