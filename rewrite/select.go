package rewrite

import (
	"strconv"

	pg "github.com/pganalyze/pg_query_go/v5"
)

// query plans any statement that returns rows to an enclosing query or to
// the client: SELECT (and VALUES, set operations), and INSERT/UPDATE/DELETE
// with RETURNING inside a CTE.
func (a *analyzer) query(n *pg.Node, sc *scope, mode queryMode) (*queryResult, *Error) {
	switch {
	case n.GetSelectStmt() != nil:
		return a.selectStmt(n.GetSelectStmt(), sc, mode)
	case n.GetInsertStmt() != nil:
		return a.insertStmt(n.GetInsertStmt(), sc, mode)
	case n.GetUpdateStmt() != nil:
		return a.updateStmt(n.GetUpdateStmt(), sc, mode)
	case n.GetDeleteStmt() != nil:
		return a.deleteStmt(n.GetDeleteStmt(), sc, mode)
	}
	return nil, errorf(CodeFeatureNotSupported, "a %s inside a query is not supported by pgveil on configured tables", nodeName(n)).at(a.sql, firstLocation(n))
}

// selectStmt plans a SELECT.
func (a *analyzer) selectStmt(sel *pg.SelectStmt, sc *scope, mode queryMode) (*queryResult, *Error) {
	if sel.WithClause != nil {
		pop, err := a.withClause(sel.WithClause, sc)
		if err != nil {
			return nil, err
		}
		defer pop()
	}
	if sel.Op != pg.SetOperation_SETOP_NONE && sel.Op != pg.SetOperation_SET_OPERATION_UNDEFINED {
		return a.setOp(sel, sc, mode, nil)
	}
	if len(sel.ValuesLists) > 0 {
		return a.values(sel, sc)
	}
	level := &scope{parent: sc}
	for _, f := range sel.FromClause {
		if _, err := a.fromItem(f, level); err != nil {
			return nil, err
		}
	}
	if err := a.expr(sel.WhereClause, level, "WHERE"); err != nil {
		return nil, err
	}
	res, err := a.targetList(sel.TargetList, level)
	if err != nil {
		return nil, err
	}
	for _, g := range sel.GroupClause {
		if err := a.groupItem(g, level, res); err != nil {
			return nil, err
		}
	}
	if err := a.expr(sel.HavingClause, level, "HAVING"); err != nil {
		return nil, err
	}
	for _, w := range sel.WindowClause {
		if err := a.expr(w, level, "a window definition"); err != nil {
			return nil, err
		}
	}
	if err := a.distinct(sel, level, res); err != nil {
		return nil, err
	}
	for _, s := range sel.SortClause {
		if err := a.sortItem(s.GetSortBy(), level, res); err != nil {
			return nil, err
		}
	}
	if err := a.limits(sel, level); err != nil {
		return nil, err
	}
	if mode == modeTop && !a.noOutputs {
		if err := a.bindTenants(res, level, a.listEnd(sel.TargetList), func() string { return appendBlocker(sel) }); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func (a *analyzer) limits(sel *pg.SelectStmt, sc *scope) *Error {
	if err := a.expr(sel.LimitCount, sc, "LIMIT"); err != nil {
		return err
	}
	return a.expr(sel.LimitOffset, sc, "OFFSET")
}

// appendBlocker says why a column cannot be added to sel's select list
// without changing its result, or "".
func appendBlocker(sel *pg.SelectStmt) string {
	switch {
	case len(sel.DistinctClause) == 1 && sel.DistinctClause[0].Node == nil:
		return "DISTINCT" // DISTINCT ON (…) dedups by its own expressions: a new column changes nothing
	case len(sel.GroupClause) > 0:
		return "GROUP BY"
	case sel.HavingClause != nil:
		return "HAVING"
	}
	for _, t := range sel.TargetList {
		if hasAggregate(t) {
			return "aggregates"
		}
	}
	return ""
}

var aggregates = map[string]bool{
	"count": true, "sum": true, "avg": true, "min": true, "max": true, "array_agg": true,
	"string_agg": true, "json_agg": true, "jsonb_agg": true, "json_object_agg": true,
	"jsonb_object_agg": true, "bool_and": true, "bool_or": true, "every": true, "bit_and": true,
	"bit_or": true, "bit_xor": true, "xmlagg": true, "stddev": true, "variance": true,
	"stddev_pop": true, "stddev_samp": true, "var_pop": true, "var_samp": true,
	"percentile_cont": true, "percentile_disc": true, "mode": true, "range_agg": true,
}

// hasAggregate reports whether n calls an aggregate outside a subquery.
func hasAggregate(n *pg.Node) bool {
	found := false
	walkAll(n, func(c *pg.Node) bool {
		if found || c.GetSubLink() != nil {
			return false
		}
		if f := c.GetFuncCall(); f != nil && f.Over == nil {
			if aggregates[lastName(f.Funcname)] || f.AggStar || f.AggDistinct || len(f.AggOrder) > 0 || f.AggFilter != nil || f.AggWithinGroup {
				found = true
				return false
			}
		}
		return true
	})
	return found
}

// targetList plans a select list (or RETURNING list) in level.
func (a *analyzer) targetList(list []*pg.Node, level *scope) (*queryResult, *Error) {
	res := &queryResult{complete: true}
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			continue
		}
		if ind := rt.Val.GetAIndirection(); ind != nil {
			ref, ok, err := a.indirectField(ind, level)
			if err != nil {
				return nil, err
			}
			if ok {
				o := outCol{name: rt.Name, src: ref.rel, srcIdx: ref.idx, tenant: -1, tenantOut: -1}
				if o.name == "" {
					o.name, _ = str(ind.Indirection[0])
				}
				if rc := ref.col(); rc != nil {
					o.enc, o.tenant, o.noTenant = rc.enc, rc.tenant, rc.noTenant
				}
				if o.enc != nil && a.strict != "" {
					return nil, unsupported(o.enc, a.strict, "this statement would copy the column's ciphertext where pgveil cannot decrypt it").at(a.sql, ind.Arg.GetColumnRef().Location)
				}
				res.cols = append(res.cols, o)
				continue
			}
		}
		if cr := rt.Val.GetColumnRef(); cr != nil {
			ref, err := a.resolveColumn(cr, level)
			if err != nil {
				return nil, err
			}
			if rc := ref.col(); rc != nil && rc.row != nil {
				return nil, a.rowRefused(rc, "selecting the whole row", cr.Location)
			}
			if ref.star {
				switch {
				case len(cr.Fields) == 1:
					for _, r := range level.rels {
						if err := a.starRows(r, cr.Location); err != nil {
							return nil, err
						}
						if !r.joinAlias {
							res.expandStar(r)
						}
					}
				case ref.rel != nil:
					if err := a.starRows(ref.rel, cr.Location); err != nil {
						return nil, err
					}
					res.expandStar(ref.rel)
				default:
					res.complete = false
				}
				continue
			}
			o := outCol{name: rt.Name, src: ref.rel, srcIdx: ref.idx, tenant: -1, tenantOut: -1, ref: cr}
			if o.name == "" {
				o.name = lastName(cr.Fields)
			}
			if rc := ref.col(); rc != nil {
				o.enc, o.tenant, o.noTenant, o.json = rc.enc, rc.tenant, rc.noTenant, rc.json
			}
			if e := o.sealed(); e != nil && a.strict != "" {
				return nil, unsupported(e, a.strict, "this statement would copy the column's ciphertext where pgveil cannot decrypt it").at(a.sql, cr.Location)
			}
			res.cols = append(res.cols, o)
			continue
		}
		o := outCol{name: rt.Name, srcIdx: -1, tenant: -1, tenantOut: -1}
		if o.name == "" {
			o.name = figureColname(rt.Val)
		}
		if sl := rt.Val.GetSubLink(); sl != nil && sl.SubLinkType == pg.SubLinkType_EXPR_SUBLINK && a.strict == "" {
			sub, err := a.query(sl.Subselect, level, modeSub)
			if err != nil {
				return nil, err
			}
			if len(sub.cols) == 1 && sub.cols[0].json != nil {
				o.json = sub.cols[0].json // JSON the scalar subquery built
			}
			if len(sub.cols) == 1 && sub.cols[0].enc != nil {
				e := sub.cols[0].enc
				if e.Table.KeyContext != "" {
					return nil, tableErr(CodeFeatureNotSupported, e.Table, "join the table and select "+e.Name+" and "+e.Table.KeyContext+" instead",
						"a scalar subquery returning encrypted column %s cannot carry its tenant column %s", e.QualifiedName(), e.Table.KeyContext).at(a.sql, sl.Location)
				}
				o.enc = e
			}
			res.cols = append(res.cols, o)
			continue
		}
		shape, planned, err := a.jsonValue(rt.Val, level)
		if err != nil {
			return nil, err
		}
		if planned {
			o.json = shape
			res.cols = append(res.cols, o)
			continue
		}
		if err := a.expr(rt.Val, level, "the select list"); err != nil {
			return nil, err
		}
		res.cols = append(res.cols, o)
	}
	return res, nil
}

// figureColname approximates PostgreSQL's FigureColname for naming outputs.
func figureColname(n *pg.Node) string {
	switch {
	case n.GetColumnRef() != nil:
		return lastName(n.GetColumnRef().Fields)
	case n.GetFuncCall() != nil:
		return lastName(n.GetFuncCall().Funcname)
	case n.GetTypeCast() != nil:
		if name := figureColname(n.GetTypeCast().Arg); name != "?column?" {
			return name
		}
		return lastName(n.GetTypeCast().TypeName.Names)
	case n.GetCaseExpr() != nil:
		return "case"
	case n.GetCoalesceExpr() != nil:
		return "coalesce"
	}
	return "?column?"
}

// ordinal returns the k of ORDER BY k / GROUP BY k.
func ordinal(n *pg.Node) (int, bool) {
	if c := n.GetAConst(); c != nil && c.GetIval() != nil {
		return int(c.GetIval().Ival), true
	}
	return 0, false
}

// outputByName returns the only output named name, or -1.
func (res *queryResult) outputByName(name string) int {
	found := -1
	for i, c := range res.cols {
		if c.name == name && !c.hidden {
			if found >= 0 {
				return -1
			}
			found = i
		}
	}
	return found
}

// checkOutput refuses when the output at idx (ORDER BY 1, ORDER BY alias)
// is encrypted, or when positions are uncertain and one may be.
func (a *analyzer) checkOutput(res *queryResult, idx int, what string, loc int32) *Error {
	if !res.complete {
		for _, c := range res.cols {
			if c.sealed() != nil {
				return unsupported(c.sealed(), what+" by position", "name the column instead of its position: pgveil cannot tell what * covers").at(a.sql, loc)
			}
		}
	}
	if idx >= 0 && idx < len(res.cols) && res.cols[idx].sealed() != nil {
		return unsupported(res.cols[idx].sealed(), what, "sort or group in the application, or by another column; ciphertext has no order and equal values encrypt differently").at(a.sql, loc)
	}
	return nil
}

// sortItem checks one ORDER BY item: an output name or position first, as
// PostgreSQL resolves them, then an expression over the inputs.
func (a *analyzer) sortItem(sb *pg.SortBy, level *scope, res *queryResult) *Error {
	if sb == nil {
		return nil
	}
	return a.outputOrInput(sb.Node, level, res, "ORDER BY", true)
}

// groupItem checks one GROUP BY item: an input column first, then an
// output name or position.
func (a *analyzer) groupItem(n *pg.Node, level *scope, res *queryResult) *Error {
	return a.outputOrInput(n, level, res, "GROUP BY", false)
}

func (a *analyzer) outputOrInput(n *pg.Node, level *scope, res *queryResult, what string, outputFirst bool) *Error {
	if k, ok := ordinal(n); ok {
		a.valueDependent = true // ORDER BY 2 and ORDER BY 3 are different plans
		return a.checkOutput(res, k-1, what, nodeLocation(n))
	}
	if cr := n.GetColumnRef(); cr != nil && len(cr.Fields) == 1 && cr.Fields[0].GetAStar() == nil {
		name := lastName(cr.Fields)
		j := res.outputByName(name)
		if j >= 0 && (outputFirst || level == nil) {
			return a.checkOutput(res, j, what, cr.Location)
		}
		if level != nil {
			ref, err := a.resolveColumn(cr, level)
			if err != nil {
				return err
			}
			if ref.col() != nil || j < 0 {
				return a.bareRef(cr, level, what)
			}
		}
		if j >= 0 {
			return a.checkOutput(res, j, what, cr.Location)
		}
		return nil
	}
	if level == nil { // after a set operation or VALUES: names are output columns
		level = &scope{rels: []*rel{res.asRel("", nil)}}
	}
	return a.expr(n, level, what)
}

// distinct checks DISTINCT and DISTINCT ON: equal plaintexts encrypt to
// different ciphertexts, so deduplicating encrypted columns is refused.
func (a *analyzer) distinct(sel *pg.SelectStmt, level *scope, res *queryResult) *Error {
	if len(sel.DistinctClause) == 0 {
		return nil
	}
	if len(sel.DistinctClause) == 1 && sel.DistinctClause[0].Node == nil {
		for _, c := range res.cols {
			if c.sealed() != nil {
				loc := int32(-1)
				if c.ref != nil {
					loc = c.ref.Location
				}
				return unsupported(c.sealed(), "SELECT DISTINCT", "remove DISTINCT or deduplicate in the application; equal values encrypt differently").at(a.sql, loc)
			}
		}
		return nil
	}
	for _, n := range sel.DistinctClause {
		if err := a.outputOrInput(n, level, res, "DISTINCT ON", true); err != nil {
			return err
		}
	}
	return nil
}

// values plans VALUES (…), (…) used as a query.
func (a *analyzer) values(sel *pg.SelectStmt, sc *scope) (*queryResult, *Error) {
	res := &queryResult{complete: true}
	for i, row := range sel.ValuesLists {
		items := row.GetList().GetItems()
		for _, it := range items {
			if err := a.expr(it, sc, "VALUES"); err != nil {
				return nil, err
			}
		}
		if i == 0 {
			for j := range items {
				res.cols = append(res.cols, outCol{name: "column" + strconv.Itoa(j+1), srcIdx: -1, tenant: -1, tenantOut: -1})
			}
		}
	}
	for _, s := range sel.SortClause {
		if err := a.sortItem(s.GetSortBy(), nil, res); err != nil {
			return nil, err
		}
	}
	return res, a.limits(sel, sc)
}
