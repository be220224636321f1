package rewrite

import (
	"maps"

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

// withClause plans the CTEs of w and makes them visible until the returned
// pop is called. Without RECURSIVE a CTE sees those before it; with it,
// every CTE of the list is visible from the start (also in CTEs before
// it, and shadowing a table of its name) and they are planned in the
// order of their references, as PostgreSQL does (parse_cte.c). A
// recursive CTE is defined by its first branch before its recursive
// branch is planned.
func (a *analyzer) withClause(w *pg.WithClause, sc *scope) (pop func(), err *Error) {
	cs := &cteScope{ctes: map[string]*queryResult{}, defs: map[string]*pg.CommonTableExpr{}, parent: a.ctes}
	a.ctes = cs
	pop = func() { a.ctes = cs.parent }
	var ctes []*pg.CommonTableExpr
	for _, n := range w.Ctes {
		if cte := n.GetCommonTableExpr(); cte != nil {
			ctes = append(ctes, cte)
		}
	}
	if w.Recursive {
		var ok bool
		if ctes, ok = referenceOrder(ctes); !ok {
			pop()
			return nil, errorf(CodeFeatureNotSupported, "WITH RECURSIVE items that reference each other cannot be planned (PostgreSQL: mutual recursion between WITH items is not implemented)").at(a.sql, w.Location)
		}
		for _, cte := range ctes {
			cs.defs[cte.Ctename] = cte
			cs.ctes[cte.Ctename] = &queryResult{} // not planned yet: positions unknown
		}
	}
	for _, cte := range ctes {
		cs.defs[cte.Ctename] = cte
		// Its own name is not this CTE before its recursive term: a
		// self-reference in its first branch, or in a CTE that is no
		// UNION, is an error in PostgreSQL, after logging the text (plan
		// it as the table the name would otherwise mean).
		delete(cs.ctes, cte.Ctename)
		var res *queryResult
		sel := cte.Ctequery.GetSelectStmt()
		if w.Recursive && sel != nil && sel.Op != pg.SetOperation_SETOP_NONE && sel.Op != pg.SetOperation_SET_OPERATION_UNDEFINED {
			res, err = a.setOp(sel, sc, modeSub, func(first *queryResult) {
				cs.ctes[cte.Ctename] = renamed(first, cte.Aliascolnames)
			})
		} else {
			res, err = a.query(cte.Ctequery, sc, modeSub)
		}
		if err == nil {
			err = res.renameRefusal(cte.Aliascolnames, a.sql, cte.Location)
		}
		if err != nil {
			pop()
			return nil, err
		}
		res = renamed(res, cte.Aliascolnames)
		if err := a.searchCycle(cte, res); err != nil {
			pop()
			return nil, err
		}
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

const hintOrder = "sort or detect cycles in the application, or by another column; ciphertext has no order and equal values encrypt differently"

// searchCycle refuses SEARCH … BY and CYCLE over an encrypted column of
// a recursive CTE: the server would order by ciphertext (the sequence
// column SEARCH adds), and detect a cycle by comparing envelopes, which
// differ for equal values; the path column would return them sealed.
func (a *analyzer) searchCycle(cte *pg.CommonTableExpr, res *queryResult) *Error {
	check := func(cols []*pg.Node, what string, loc int32) *Error {
		for _, n := range cols {
			name, _ := str(n)
			j := res.outputByName(name)
			if j < 0 && !res.complete {
				if c := res.firstSealed(); c != nil {
					return unsupported(c, what+" over a column pgveil cannot place", "name the CTE's columns, or "+hintOrder).at(a.sql, loc)
				}
			}
			if j >= 0 && res.cols[j].sealed() != nil {
				return unsupported(res.cols[j].sealed(), what, hintOrder).at(a.sql, loc)
			}
		}
		return nil
	}
	if sc := cte.SearchClause; sc != nil {
		if err := check(sc.SearchColList, "SEARCH … BY", sc.Location); err != nil {
			return err
		}
	}
	if cc := cte.CycleClause; cc != nil {
		return check(cc.CycleColList, "CYCLE", cc.Location)
	}
	return nil
}

// referenceOrder orders the CTEs of a WITH RECURSIVE list so that each
// comes after the others it references (by unqualified name, anywhere in
// its query; a name an inner WITH shadows counts too, which can only add
// an order constraint), keeping the written order where references allow.
// It reports false on a cycle between two or more CTEs.
func referenceOrder(ctes []*pg.CommonTableExpr) ([]*pg.CommonTableExpr, bool) {
	index := map[string]int{}
	for i, c := range ctes {
		index[c.Ctename] = i
	}
	deps := make([]map[int]bool, len(ctes))
	for i, c := range ctes {
		deps[i] = map[int]bool{}
		cteRefs(c.Ctequery, nil, func(name string) {
			if j, ok := index[name]; ok && j != i {
				deps[i][j] = true
			}
		})
	}
	done := make([]bool, len(ctes))
	out := make([]*pg.CommonTableExpr, 0, len(ctes))
	for len(out) < len(ctes) {
		next := -1
		for i := range ctes {
			if done[i] {
				continue
			}
			ready := true
			for j := range deps[i] {
				if !done[j] {
					ready = false
					break
				}
			}
			if ready {
				next = i
				break
			}
		}
		if next < 0 {
			return nil, false
		}
		done[next] = true
		out = append(out, ctes[next])
	}
	return out, true
}

// cteRefs calls found with each unqualified relation name n reads that an
// inner WITH of n does not capture (shadow: the names captured around n).
func cteRefs(n *pg.Node, shadow map[string]bool, found func(string)) {
	if n == nil {
		return
	}
	if rv := n.GetRangeVar(); rv != nil {
		if rv.Schemaname == "" && rv.Catalogname == "" && !shadow[rv.Relname] {
			found(rv.Relname)
		}
		return
	}
	if w := withOf(n); w != nil && *w != nil {
		with := *w
		inner := maps.Clone(shadow)
		if inner == nil {
			inner = map[string]bool{}
		}
		if with.Recursive {
			for _, c := range with.Ctes {
				inner[c.GetCommonTableExpr().GetCtename()] = true
			}
		}
		for _, c := range with.Ctes {
			cte := c.GetCommonTableExpr()
			cteRefs(cte.GetCtequery(), inner, found) // sees the CTEs before it (all, if RECURSIVE)
			inner[cte.GetCtename()] = true
		}
		// The statement itself, without its WITH, sees them all.
		*w = nil
		defer func() { *w = with }()
		shadow = inner
	}
	eachChild(n, func(c *pg.Node) { cteRefs(c, shadow, found) })
}

// withOf points at the WITH clause field of a statement node, or is nil.
func withOf(n *pg.Node) **pg.WithClause {
	switch {
	case n.GetSelectStmt() != nil:
		return &n.GetSelectStmt().WithClause
	case n.GetInsertStmt() != nil:
		return &n.GetInsertStmt().WithClause
	case n.GetUpdateStmt() != nil:
		return &n.GetUpdateStmt().WithClause
	case n.GetDeleteStmt() != nil:
		return &n.GetDeleteStmt().WithClause
	case n.GetMergeStmt() != nil:
		return &n.GetMergeStmt().WithClause
	}
	return nil
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
