package rewrite

import (
	pg "github.com/pganalyze/pg_query_go/v5"
)

// cteScope holds the CTEs of one WITH clause; inner WITH clauses shadow
// outer ones, and a CTE shadows a table of the same (unqualified) name.
type cteScope struct {
	ctes   map[string]*queryResult
	defs   map[string]*pg.CommonTableExpr // the CTEs' definitions, for noCallsThrough
	parent *cteScope
}

// def is the definition of the CTE name in scope, or nil.
func (c *cteScope) def(name string) *pg.CommonTableExpr {
	for s := c; s != nil; s = s.parent {
		if d, ok := s.defs[name]; ok {
			return d
		}
	}
	return nil
}

func (c *cteScope) find(name string) *queryResult {
	for s := c; s != nil; s = s.parent {
		if r, ok := s.ctes[name]; ok {
			return r
		}
	}
	return nil
}

// withClause plans the CTEs of w in order and makes them visible until the
// returned pop is called. A recursive CTE is defined by its first branch
// before its recursive branch is planned.
func (a *analyzer) withClause(w *pg.WithClause, sc *scope) (pop func(), err *Error) {
	cs := &cteScope{ctes: map[string]*queryResult{}, defs: map[string]*pg.CommonTableExpr{}, parent: a.ctes}
	a.ctes = cs
	pop = func() { a.ctes = cs.parent }
	for _, n := range w.Ctes {
		cte := n.GetCommonTableExpr()
		if cte == nil {
			continue
		}
		cs.defs[cte.Ctename] = cte
		var res *queryResult
		sel := cte.Ctequery.GetSelectStmt()
		if w.Recursive && sel != nil && sel.Op != pg.SetOperation_SETOP_NONE && sel.Op != pg.SetOperation_SET_OPERATION_UNDEFINED {
			res, err = a.setOp(sel, sc, modeSub, func(first *queryResult) {
				cs.ctes[cte.Ctename] = renamed(first, cte.Aliascolnames)
			})
		} else {
			if w.Recursive {
				cs.ctes[cte.Ctename] = &queryResult{}
			}
			res, err = a.query(cte.Ctequery, sc, modeSub)
		}
		if err != nil {
			pop()
			return nil, err
		}
		res = renamed(res, cte.Aliascolnames)
		if cte.SearchClause != nil {
			res.cols = append(res.cols, outCol{name: cte.SearchClause.SearchSeqColumn, srcIdx: -1, tenant: -1, tenantOut: -1})
		}
		if cc := cte.CycleClause; cc != nil {
			res.cols = append(res.cols,
				outCol{name: cc.CycleMarkColumn, srcIdx: -1, tenant: -1, tenantOut: -1},
				outCol{name: cc.CyclePathColumn, srcIdx: -1, tenant: -1, tenantOut: -1})
		}
		cs.ctes[cte.Ctename] = res
	}
	return pop, nil
}

// renamed applies a CTE's column list (WITH t(a, b) AS …) to its result.
func renamed(res *queryResult, colnames []*pg.Node) *queryResult {
	if len(colnames) == 0 {
		return res
	}
	out := *res
	out.cols = append([]outCol(nil), res.cols...)
	for i, n := range colnames {
		if i < len(out.cols) {
			out.cols[i].name, _ = str(n)
		}
	}
	return &out
}
