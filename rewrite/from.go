package rewrite

import (
	"cmp"
	"slices"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// fromItem adds the relations of one FROM item to level and returns them.
func (a *analyzer) fromItem(n *pg.Node, level *scope) ([]*rel, *Error) {
	switch {
	case n.GetRangeVar() != nil:
		rv := n.GetRangeVar()
		r, err := a.rangeVar(rv)
		if err != nil {
			return nil, err
		}
		level.rels = append(level.rels, r)
		return []*rel{r}, nil

	case n.GetRangeSubselect() != nil:
		rs := n.GetRangeSubselect()
		parent := level
		if !rs.Lateral {
			// The FROM items before it are out of reach (PostgreSQL
			// rejects a reference to one, after logging the text).
			parent = &scope{parent: level.parent, hidden: append(slices.Clip(level.hidden), level.rels...), hiddenHint: subqueryHiddenHint}
		}
		res, err := a.query(rs.Subquery, parent, modeSub)
		if err != nil {
			return nil, err
		}
		if rs.Alias != nil {
			if err := res.renameRefusal(rs.Alias.Colnames, a.sql, nodeLocation(rs.Subquery)); err != nil {
				return nil, err
			}
		}
		r := res.asRel("", rs.Alias)
		level.rels = append(level.rels, r)
		return []*rel{r}, nil

	case n.GetJoinExpr() != nil:
		return a.join(n.GetJoinExpr(), level)

	case n.GetRangeFunction() != nil:
		rf := n.GetRangeFunction()
		if r, err := a.wrappedCall(rf); r != nil || err != nil {
			if err != nil {
				return nil, err
			}
			level.rels = append(level.rels, r)
			return []*rel{r}, nil
		}
		// A function in FROM may read the FROM items before it, LATERAL
		// or not (PostgreSQL: "a noise word" there).
		fscope := level
		for _, f := range rf.Functions {
			if err := a.expr(f, fscope, "a function in FROM"); err != nil {
				return nil, err
			}
		}
		r := &rel{name: "", loc: -1}
		if len(rf.Functions) == 1 && len(rf.Coldeflist) > 0 {
			// json_to_recordset($1) AS r(email text, id int): exactly
			// these columns (and the ordinality after them).
			for _, d := range rf.Coldeflist {
				r.cols = append(r.cols, relCol{name: d.GetColumnDef().GetColname(), tenant: -1})
			}
			if rf.Ordinality {
				r.cols = append(r.cols, relCol{name: "ordinality", tenant: -1})
			}
			r.complete = true
		}
		if rf.Alias != nil {
			r.name, r.aliased = rf.Alias.Aliasname, true
			r.rename(rf.Alias.Colnames)
		} else if len(rf.Functions) > 0 {
			if l := rf.Functions[0].GetList(); l != nil && len(l.Items) > 0 {
				if f := l.Items[0].GetFuncCall(); f != nil {
					r.name = lastName(f.Funcname)
				}
			}
		}
		level.rels = append(level.rels, r)
		return []*rel{r}, nil

	case n.GetRangeTableSample() != nil:
		ts := n.GetRangeTableSample()
		a.noOverlay = true
		rels, err := a.fromItem(ts.Relation, level)
		a.noOverlay = false
		if err != nil {
			return nil, err
		}
		for _, arg := range append(append([]*pg.Node{}, ts.Args...), ts.Repeatable) {
			if err := a.expr(arg, level, "TABLESAMPLE"); err != nil {
				return nil, err
			}
		}
		return rels, nil
	}
	// XMLTABLE and other rare items: refuse if they could read an encrypted
	// column; otherwise an opaque relation.
	if err := a.opaque(n, level, "this FROM item"); err != nil {
		return nil, err
	}
	// Its alias names it (XMLTABLE … AS users): a name pgveil writes must
	// not be taken for another relation's while this one has it.
	r := &rel{loc: -1}
	if tf := n.GetRangeTableFunc(); tf != nil && tf.Alias != nil {
		r.name, r.aliased, r.complete = tf.Alias.Aliasname, true, true
		for _, c := range tf.Columns {
			if tc := c.GetRangeTableFuncCol(); tc != nil {
				r.cols = append(r.cols, relCol{name: tc.Colname, tenant: -1})
			}
		}
		r.rename(tf.Alias.Colnames)
	}
	level.rels = append(level.rels, r)
	return []*rel{r}, nil
}

// rangeVar resolves a relation name in FROM: a CTE first (unqualified
// names only), then a table through the search path.
func (a *analyzer) rangeVar(rv *pg.RangeVar) (*rel, *Error) {
	if rv.Schemaname == "" {
		if res := a.ctes.find(rv.Relname); res != nil {
			if rv.Alias != nil {
				if err := res.renameRefusal(rv.Alias.Colnames, a.sql, rv.Location); err != nil {
					return nil, err
				}
			}
			r := res.asRel(rv.Relname, rv.Alias)
			r.loc = rv.Location
			return r, nil
		}
	}
	ref, view, err := a.resolveRelation(rv, true)
	if err != nil {
		return nil, err
	}
	if view != nil {
		return view.rel(rv), nil
	}
	if ref.table == nil {
		a.overlay(rv)
	}
	a.pinSchema(rv, ref)
	return a.baseRel(ref, rv.Alias, rv.Location)
}

// nullSide forgets the origin of the columns of side, the side of an outer
// join the join fills with NULLs, whose values a LATERAL reference copied
// from a relation outside it: such a copy is NULL in the rows where the
// join found no match, while the relation's own column is not, so it is
// no longer "the same row" for an encrypted column and its blind index
// (rel.carriesIndex).
func nullSide(side []*rel, level *scope) {
	for _, r := range side {
		var cols []relCol
		for i, c := range r.cols {
			if c.origin == nil || slices.Contains(side, c.origin) || !level.reaches(c.origin) {
				continue
			}
			if cols == nil {
				cols = slices.Clone(r.cols)
			}
			cols[i].origin = nil
		}
		if cols != nil {
			r.cols = cols
		}
	}
}

// reaches reports whether r is a relation of sc or of an enclosing level.
func (sc *scope) reaches(r *rel) bool {
	for s := sc; s != nil; s = s.parent {
		if slices.Contains(s.rels, r) || slices.Contains(s.hidden, r) {
			return true
		}
	}
	return false
}

// join plans a JoinExpr. JOIN USING and NATURAL JOIN compare same-named
// columns for equality; on encrypted columns that would compare
// ciphertexts, so they are refused (write ON a.x = b.x, which is rewritten
// to the blind indexes).
func (a *analyzer) join(j *pg.JoinExpr, level *scope) ([]*rel, *Error) {
	first := len(level.rels) // the join's own relations are appended from here
	left, err := a.fromItem(j.Larg, level)
	if err != nil {
		return nil, err
	}
	mid := len(level.rels) // the right side's relations are appended from here
	var right []*rel
	if j.Jointype == pg.JoinType_JOIN_RIGHT || j.Jointype == pg.JoinType_JOIN_FULL {
		// A LATERAL reference from the right side of a RIGHT or FULL JOIN
		// to its left side is an error in PostgreSQL (after logging the
		// text): plan the right side with the left out of reach, the FROM
		// items before the join still visible to its LATERAL items.
		rl := &scope{rels: slices.Clone(level.rels[:first]), parent: level.parent,
			hidden: append(slices.Clip(level.hidden), level.rels[first:]...), hiddenHint: rightJoinHint}
		right, err = a.fromItem(j.Rarg, rl)
		level.rels = append(level.rels, rl.rels[first:]...)
	} else {
		right, err = a.fromItem(j.Rarg, level)
	}
	if err != nil {
		return nil, err
	}
	// The relations of each side, an inner JOIN's alias included.
	leftRels, rightRels := slices.Clip(level.rels[first:mid]), level.rels[mid:]
	switch j.Jointype {
	case pg.JoinType_JOIN_LEFT:
		nullSide(rightRels, level)
	case pg.JoinType_JOIN_RIGHT:
		nullSide(leftRels, level)
	case pg.JoinType_JOIN_FULL:
		nullSide(leftRels, level)
		nullSide(rightRels, level)
	}
	all := append(append([]*rel{}, left...), right...)
	merged := len(j.UsingClause) > 0 || j.IsNatural
	if merged {
		for _, r := range all {
			r.merged = true
			if j.IsNatural {
				r.using = append(r.using, "*")
			}
			for _, u := range j.UsingClause {
				name, _ := str(u)
				r.using = append(r.using, name)
			}
		}
		// The names USING compares are those each side shows: an aliased
		// JOIN's own (renamed by its column list), not its relations'.
		var sides []*rel
		for _, r := range all {
			u := r
			if r.joinAliasRel != nil {
				u = r.joinAliasRel
			}
			if !slices.Contains(sides, u) {
				sides = append(sides, u)
			}
		}
		for _, u := range j.UsingClause {
			name, _ := str(u)
			for _, r := range sides {
				for i := range r.cols {
					if r.cols[i].name != name {
						continue
					}
					if r.cols[i].enc != nil {
						return nil, unsupported(r.cols[i].enc, "JOIN USING", "write JOIN … ON a."+name+" = b."+name+" (pgveil compares the blind indexes)")
					}
					if r.cols[i].json != nil {
						return nil, a.jsonRefused(r.cols[i].json, "JOIN USING", -1)
					}
				}
			}
		}
		if j.IsNatural {
			for _, r := range all {
				for _, c := range r.cols {
					if e := cmp.Or(c.enc, c.json.FirstColumn()); e != nil {
						return nil, unsupported(e, "NATURAL JOIN", "write JOIN … ON with the columns to compare")
					}
				}
			}
		}
	}
	// ON sees the join's own sides and the enclosing queries, not the
	// FROM items before the join at this level (PostgreSQL looks past
	// them, to an outer query).
	on := &scope{rels: append([]*rel{}, level.rels[first:]...), parent: level.parent, hidden: level.rels[:first:first], hiddenHint: onHiddenHint}
	if err := a.expr(j.Quals, on, "JOIN ON"); err != nil {
		return nil, err
	}
	if j.Alias != nil && j.Alias.Aliasname != "" {
		// A relation pgveil cannot list, or a USING/NATURAL join (its
		// columns reordered, the USING ones once), before an encrypted
		// column: the column list would rename other columns than pgveil
		// thinks.
		inexact := merged
		for _, r := range all {
			inexact = inexact || r.merged // a USING join reorders its own columns too
			if len(j.Alias.Colnames) > 0 && inexact {
				for _, c := range r.cols {
					col := cmp.Or(c.enc, c.bidxOf, c.json.FirstColumn())
					if col == nil && c.row != nil {
						col = c.row.firstEnc()
					}
					if col != nil {
						return nil, unsupported(col, "a column alias list on a JOIN whose columns pgveil cannot place (a table outside its catalog, or a JOIN … USING or NATURAL JOIN, before it)", "drop the alias column list, or join with ON")
					}
				}
			}
			inexact = inexact || !r.complete
		}
		if merged && len(j.Alias.Colnames) > 0 {
			// PostgreSQL orders a merged join's columns USING columns first;
			// the column list would name the wrong columns here.
			for _, r := range all {
				for _, c := range r.cols {
					if col := cmp.Or(c.enc, c.bidxOf); col != nil {
						return nil, unsupported(col, "a column alias list on a JOIN … USING or NATURAL JOIN", "drop the alias column list, or join with ON")
					}
				}
			}
		}
		jr := &rel{name: j.Alias.Aliasname, aliased: true, complete: !merged, joinAlias: true, merged: merged, loc: -1}
		for _, r := range all {
			jr.using = append(jr.using, r.using...)
		}
		// The join's columns come from its sides as they are seen here: an
		// inner aliased JOIN's columns under their names in it (renamed
		// by its column list), other relations' own.
		var units []*rel
		for _, r := range all {
			u := r
			if r.joinAliasRel != nil {
				u = r.joinAliasRel
			}
			if len(units) == 0 || units[len(units)-1] != u {
				units = append(units, u)
			}
		}
		offsets := map[*rel]int{}
		for _, u := range units {
			if u.merged {
				jr.complete = false // an unaliased USING join inside: reordered
				jr.merged = true    // and its USING columns are merged values
			}
			offsets[u] = len(jr.cols)
			if !jr.complete {
				offsets[u] = -1 // a relation before it does not list its columns
			}
			if !u.complete {
				jr.complete = false
			}
			off := len(jr.cols)
			for _, c := range u.cols {
				if c.tenant >= 0 {
					c.tenant += off
				}
				jr.cols = append(jr.cols, c)
			}
		}
		for _, r := range all {
			u, inner := r, 0
			if r.joinAliasRel != nil {
				u, inner = r.joinAliasRel, r.joinOffset
			}
			r.joinOffset = offsets[u] + inner
			if offsets[u] < 0 || inner < 0 {
				r.joinOffset = -1
			}
			r.joinAliasRel = jr
		}
		for _, u := range units {
			if u.joinAlias {
				u.joinAliasRel = jr // an inner alias is hidden by this one too
			}
		}
		for _, ur := range a.usingAliases(j) {
			if ur.joinAliasRel == nil {
				ur.joinAliasRel = jr
			}
		}
		jr.rename(j.Alias.Colnames)
		level.rels = append(level.rels, jr)
	}
	if ua := j.JoinUsingAlias; ua != nil && ua.Aliasname != "" {
		// JOIN … USING (cols) AS name: a relation of the USING columns.
		ur := &rel{name: ua.Aliasname, aliased: true, complete: true, loc: -1}
		for _, u := range j.UsingClause {
			name, _ := str(u)
			ur.cols = append(ur.cols, relCol{name: name, tenant: -1})
		}
		if j.Alias != nil && j.Alias.Aliasname != "" {
			ur.joinAliasRel = level.rels[len(level.rels)-1]
		}
		level.rels = append(level.rels, ur)
		if a.usingRels == nil {
			a.usingRels = map[*pg.JoinExpr]*rel{}
		}
		a.usingRels[j] = ur
	}
	return all, nil
}

// usingAliases returns the JOIN … USING … AS relations of the joins
// nested inside j (not j's own): an alias of j hides them.
func (a *analyzer) usingAliases(j *pg.JoinExpr) []*rel {
	var out []*rel
	var walk func(n *pg.Node)
	walk = func(n *pg.Node) {
		if n == nil {
			return
		}
		if je := n.GetJoinExpr(); je != nil {
			if ur := a.usingRels[je]; ur != nil {
				out = append(out, ur)
			}
			walk(je.Larg)
			walk(je.Rarg)
		}
	}
	walk(j.Larg)
	walk(j.Rarg)
	return out
}

// touchesProtected reports whether a write to configured table t, inside
// code pgveil does not analyse, may carry or compare values of a column
// pgveil manages (encrypted, blind index, key_context): any MERGE, an
// INSERT without a column list, or such a column named anywhere in it
// (target list, WHERE, RETURNING). A DELETE or UPDATE by other columns
// passes.
func touchesProtected(n *pg.Node, t *policy.Table) (string, bool) {
	switch {
	case n.GetMergeStmt() != nil:
		return "MERGE", true
	case n.GetInsertStmt() != nil && len(n.GetInsertStmt().Cols) == 0:
		return "an INSERT without a column list", true
	}
	var hit string
	walkAll(n, func(c *pg.Node) bool {
		if hit != "" {
			return false
		}
		if cr := c.GetColumnRef(); cr != nil {
			if name := lastName(cr.Fields); pgveilColumn(t, name) {
				hit = "column " + name
			}
		}
		if rt := c.GetResTarget(); rt != nil && rt.Name != "" && pgveilColumn(t, rt.Name) {
			hit = "column " + rt.Name
		}
		return hit == ""
	})
	return hit, hit != ""
}

// opaque refuses a node pgveil does not analyse when it could read an
// encrypted column: it mentions a configured table or a column name that is
// encrypted in a relation in scope.
func (a *analyzer) opaque(n *pg.Node, sc *scope, what string) *Error {
	var err *Error
	walkAll(n, func(c *pg.Node) bool {
		if err != nil {
			return false
		}
		if rv := c.GetRangeVar(); rv != nil {
			if ref, e := a.resolveTable(rv); e != nil {
				err = e
			} else if ref.table != nil {
				err = tableErr(CodeFeatureNotSupported, ref.table, "rewrite the query without "+what,
					"pgveil cannot analyse %s over configured table %s", what, ref.table.QualifiedName()).at(a.sql, rv.Location)
			}
		}
		// The target of a write inside (a rule action, a BEGIN ATOMIC
		// body) is a field of its statement, not a node of its own: the
		// walk does not reach it as a RangeVar. It is never a CTE's name,
		// so it is pinned too: such bodies bind their names when created.
		if rv := dmlTarget(c); rv != nil && err == nil {
			if oc := c.GetInsertStmt().GetOnConflictClause(); c.GetUpdateStmt() != nil || c.GetMergeStmt() != nil ||
				oc != nil && oc.Action == pg.OnConflictAction_ONCONFLICT_UPDATE {
				if err = a.tenantView(rv, "an UPDATE in "+what); err != nil {
					return false
				}
			}
			if ref, e := a.resolveTable(rv); e != nil {
				err = e
			} else if ref.table != nil {
				if col, ok := touchesProtected(c, ref.table); ok {
					err = tableErr(CodeFeatureNotSupported, ref.table, "write to it from the application, which pgveil encrypts",
						"pgveil cannot analyse %s that writes configured table %s using %s: the database would store or compare what it holds unencrypted", what, ref.table.QualifiedName(), col).at(a.sql, rv.Location)
				}
			} else {
				a.pinSchema(rv, ref)
			}
		}
		if cr := c.GetColumnRef(); cr != nil && sc != nil {
			if ref, e := a.resolveColumn(cr, sc); e != nil {
				err = e
			} else if ref.enc() != nil {
				err = unsupported(ref.enc(), what, hintApp).at(a.sql, cr.Location)
			}
		}
		return true
	})
	return err
}
