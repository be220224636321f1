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
	level := &scope{parent: sc, selectList: sel.TargetList}
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
		appendAt, table := a.listEnd(sel.TargetList), -1
		if appendAt < 0 {
			// TABLE t has no select list to add to: pgveil writes it
			// as SELECT * FROM t when it adds a field (review 21d: a
			// date tenant's send field refused it).
			table, appendAt = a.tableKeyword(sel)
		}
		n := len(res.cols)
		if err := a.bindTenants(res, level, appendAt, func() string { return appendBlocker(sel) }); err != nil {
			return nil, err
		}
		if table >= 0 && len(res.cols) > n {
			a.replace(table, appendAt, "SELECT *")
			a.insert(appendAt, " FROM")
		}
	}
	if mode == modeBranch {
		leaf := branchLeaf{res: res, sc: level, appendAt: a.listEnd(sel.TargetList), table: -1}
		if leaf.appendAt < 0 {
			leaf.table, leaf.appendAt = a.tableKeyword(sel)
		}
		res.leaves = []branchLeaf{leaf}
	}
	return res, nil
}

// tableKeyword returns where the keyword TABLE of sel, a TABLE t
// statement (its one * and the relation have no place in the text
// before it), starts and ends; -1, -1 for another statement.
func (a *analyzer) tableKeyword(sel *pg.SelectStmt) (int, int) {
	if len(sel.TargetList) != 1 || len(sel.FromClause) != 1 || sel.FromClause[0].GetRangeVar() == nil {
		return -1, -1
	}
	rt := sel.TargetList[0].GetResTarget()
	if rt == nil || rt.Location >= 0 || rt.Val.GetColumnRef() == nil || rt.Val.GetColumnRef().Location >= 0 {
		return -1, -1
	}
	rel := int(sel.FromClause[0].GetRangeVar().Location)
	if rel < a.stmtStart || rel > a.stmtEnd {
		return -1, -1
	}
	// The last tokens before the relation: TABLE, then ONLY and ( if any.
	l := lexer{s: a.sql[:rel], pos: a.stmtStart, backslash: a.backslash}
	var toks []token
	for {
		t := l.next()
		if t.kind == tEOF || t.kind == tError {
			break
		}
		toks = append(toks, t)
	}
	k := len(toks) - 1
	if k >= 0 && l.isPunct(toks[k], "(") {
		k--
	}
	if k >= 0 && l.isKeyword(toks[k], "only") {
		k--
	}
	if k < 0 || !l.isKeyword(toks[k], "table") {
		return -1, -1
	}
	return toks[k].start, toks[k].end
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
						// An aliased JOIN's columns are its alias's (renamed
						// by its column list); the relations inside it
						// are not expanded apart.
						if r.joinAliasRel == nil {
							res.expandStar(r, true)
						}
					}
				case ref.rel != nil:
					if err := a.starRows(ref.rel, cr.Location); err != nil {
						return nil, err
					}
					res.expandStar(ref.rel, false)
				default:
					res.inexact()
				}
				continue
			}
			a.refScopes[cr] = level // for a blind-index rename of this output (indexSubquery)
			o := outCol{name: rt.Name, src: ref.rel, srcIdx: ref.idx, tenant: -1, tenantOut: -1, ref: cr, merged: a.mergedOutput(cr, ref)}
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
			if rt.Name == "" && sub.complete && len(sub.cols) > 0 {
				o.name = sub.cols[0].name // named after its own output, * expanded
			}
			if visible := sub.visible(); (visible != 1 || !sub.complete) && sub.hasSealed() {
				// PostgreSQL rejects a scalar subquery of several columns
				// (after logging the text); pgveil could not tell which
				// one the output is.
				return nil, unsupported(sub.firstSealed(), "a scalar subquery returning it beside other columns", "return one column from the subquery").at(a.sql, sl.Location)
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

// figureColname is PostgreSQL's FigureColname (parse_target.c): the name
// of a select-list item that has no AS. A wrong guess matters: a subquery's
// output is referenced by that name outside it.
func figureColname(n *pg.Node) string {
	if name, strength := colname(n); strength > 0 {
		return name
	}
	return "?column?"
}

// colname is FigureColnameInternal: a name and its strength, 2 for a name
// that wins, 1 for a fallback (a cast's type name, "case") an enclosing
// CASE or cast may override, 0 for none.
func colname(n *pg.Node) (string, int) {
	switch {
	case n == nil:
		return "", 0
	case n.GetColumnRef() != nil:
		if name := lastString(n.GetColumnRef().Fields); name != "" {
			return name, 2
		}
	case n.GetAIndirection() != nil:
		ind := n.GetAIndirection()
		if name := lastString(ind.Indirection); name != "" {
			return name, 2
		}
		return colname(ind.Arg)
	case n.GetFuncCall() != nil:
		return lastName(n.GetFuncCall().Funcname), 2
	case n.GetAExpr() != nil:
		if n.GetAExpr().Kind == pg.A_Expr_Kind_AEXPR_NULLIF {
			return "nullif", 2
		}
	case n.GetTypeCast() != nil:
		tc := n.GetTypeCast()
		if name, s := colname(tc.Arg); s > 1 {
			return name, s
		}
		if tc.TypeName != nil {
			return lastName(tc.TypeName.Names), 1
		}
	case n.GetCollateClause() != nil:
		return colname(n.GetCollateClause().Arg)
	case n.GetGroupingFunc() != nil:
		return "grouping", 2
	case n.GetSubLink() != nil:
		switch sl := n.GetSubLink(); sl.SubLinkType {
		case pg.SubLinkType_EXISTS_SUBLINK:
			return "exists", 2
		case pg.SubLinkType_ARRAY_SUBLINK:
			return "array", 2
		case pg.SubLinkType_EXPR_SUBLINK:
			if name, ok := firstOutputName(sl.Subselect.GetSelectStmt()); ok {
				return name, 2
			}
		}
	case n.GetCaseExpr() != nil:
		if name, s := colname(n.GetCaseExpr().Defresult); s > 1 {
			return name, s
		}
		return "case", 1
	case n.GetAArrayExpr() != nil:
		return "array", 2
	case n.GetRowExpr() != nil:
		return "row", 2
	case n.GetCoalesceExpr() != nil:
		return "coalesce", 2
	case n.GetMinMaxExpr() != nil:
		if n.GetMinMaxExpr().Op == pg.MinMaxOp_IS_LEAST {
			return "least", 2
		}
		return "greatest", 2
	case n.GetSqlvalueFunction() != nil:
		if name := sqlValueNames[n.GetSqlvalueFunction().Op]; name != "" {
			return name, 2
		}
	case n.GetXmlExpr() != nil:
		if name := xmlExprNames[n.GetXmlExpr().Op]; name != "" {
			return name, 2
		}
	case n.GetXmlSerialize() != nil:
		return "xmlserialize", 2
	}
	return "", 0
}

// firstOutputName is the name of a query's first output when the SQL
// tells it (a scalar subquery is named after it): the leftmost branch of
// a set operation, column1 of VALUES; not for a * (whatever it expands to).
func firstOutputName(sel *pg.SelectStmt) (string, bool) {
	for sel != nil && sel.Op != pg.SetOperation_SETOP_NONE && sel.Op != pg.SetOperation_SET_OPERATION_UNDEFINED {
		sel = sel.Larg
	}
	switch {
	case sel == nil:
		return "", false
	case len(sel.ValuesLists) > 0:
		return "column1", true
	case len(sel.TargetList) == 0:
		return "", false
	}
	rt := sel.TargetList[0].GetResTarget()
	if rt == nil {
		return "", false
	}
	if rt.Name != "" {
		return rt.Name, true
	}
	if cr := rt.Val.GetColumnRef(); cr != nil && len(cr.Fields) > 0 && cr.Fields[len(cr.Fields)-1].GetAStar() != nil {
		return "", false
	}
	return figureColname(rt.Val), true
}

// lastString is the last name among fields (a column reference, an
// indirection), skipping * and subscripts.
func lastString(fields []*pg.Node) string {
	name := ""
	for _, f := range fields {
		if s, ok := str(f); ok {
			name = s
		}
	}
	return name
}

var sqlValueNames = map[pg.SQLValueFunctionOp]string{
	pg.SQLValueFunctionOp_SVFOP_CURRENT_DATE:        "current_date",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_TIME:        "current_time",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_TIME_N:      "current_time",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP:   "current_timestamp",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP_N: "current_timestamp",
	pg.SQLValueFunctionOp_SVFOP_LOCALTIME:           "localtime",
	pg.SQLValueFunctionOp_SVFOP_LOCALTIME_N:         "localtime",
	pg.SQLValueFunctionOp_SVFOP_LOCALTIMESTAMP:      "localtimestamp",
	pg.SQLValueFunctionOp_SVFOP_LOCALTIMESTAMP_N:    "localtimestamp",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_ROLE:        "current_role",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_USER:        "current_user",
	pg.SQLValueFunctionOp_SVFOP_USER:                "user",
	pg.SQLValueFunctionOp_SVFOP_SESSION_USER:        "session_user",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_CATALOG:     "current_catalog",
	pg.SQLValueFunctionOp_SVFOP_CURRENT_SCHEMA:      "current_schema",
}

var xmlExprNames = map[pg.XmlExprOp]string{
	pg.XmlExprOp_IS_XMLCONCAT:    "xmlconcat",
	pg.XmlExprOp_IS_XMLELEMENT:   "xmlelement",
	pg.XmlExprOp_IS_XMLFOREST:    "xmlforest",
	pg.XmlExprOp_IS_XMLPARSE:     "xmlparse",
	pg.XmlExprOp_IS_XMLPI:        "xmlpi",
	pg.XmlExprOp_IS_XMLROOT:      "xmlroot",
	pg.XmlExprOp_IS_XMLSERIALIZE: "xmlserialize",
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
	// ROLLUP, CUBE and GROUPING SETS hold GROUP BY items (output names
	// and positions included), a parenthesised list as a row.
	if gs := n.GetGroupingSet(); gs != nil {
		for _, c := range gs.Content {
			items := []*pg.Node{c}
			if row := c.GetRowExpr(); row != nil {
				items = row.Args
			}
			for _, it := range items {
				if err := a.groupItem(it, level, res); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return a.outputOrInput(n, level, res, "GROUP BY", false)
}

func (a *analyzer) outputOrInput(n *pg.Node, level *scope, res *queryResult, what string, outputFirst bool) *Error {
	if k, ok := ordinal(n); ok {
		a.valueDependent = true // ORDER BY 2 and ORDER BY 3 are different plans
		if visible := res.visible(); res.complete && (k < 1 || k > visible) {
			// PostgreSQL rejects it; a hidden tenant field appended after
			// the select list would answer it instead.
			return errorf(CodeInvalidColumnRef, "%s position %d is not in select list", what, k).at(a.sql, nodeLocation(n))
		}
		return a.checkOutput(res, k-1, what, nodeLocation(n))
	}
	if cr := n.GetColumnRef(); cr != nil && len(cr.Fields) == 1 && cr.Fields[0].GetAStar() == nil {
		name := lastName(cr.Fields)
		j := res.outputByName(name)
		if j >= 0 && (outputFirst || level == nil) {
			return a.checkOutput(res, j, what, cr.Location)
		}
		if level != nil && j >= 0 {
			// GROUP BY name: PostgreSQL looks in the query's own FROM, then
			// at its outputs, and only then in enclosing queries.
			local := &scope{rels: level.rels, hidden: level.hidden, hiddenHint: level.hiddenHint}
			a.outputFallback = true
			ref, err := a.resolveColumn(cr, local)
			a.outputFallback = false
			if err != nil {
				return err
			}
			if ref.col() != nil {
				return a.bareRef(cr, local, what)
			}
			return a.checkOutput(res, j, what, cr.Location)
		}
		if level != nil {
			// An output of the name is the fallback: a case-only variant
			// of an encrypted column's name is not a mistake here.
			a.outputFallback = j >= 0
			ref, err := a.resolveColumn(cr, level)
			a.outputFallback = false
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
