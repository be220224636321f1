package rewrite

import (
	"cmp"
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"
)

// plan plans one parsed statement into a.st.
func (a *analyzer) plan(n *pg.Node) *Error {
	st := a.st
	if a.badParam != nil {
		return a.badParam
	}
	if err := a.setConfig(n); err != nil {
		return err
	}
	a.pathFunctions(n)
	if err := a.reservedNames(n); err != nil {
		return err
	}
	if err := a.guardedCode(n); err != nil {
		return err
	}
	switch {
	case n.GetSelectStmt() != nil:
		sel := n.GetSelectStmt()
		if sel.IntoClause != nil {
			st.Kind = KindDDL
			if err := a.intoConfigured(sel.IntoClause); err != nil {
				return err
			}
			return a.storedQuery(n, "SELECT INTO")
		}
		if st.Kind == KindOther {
			st.Kind = KindSelect
		}
		res, err := a.selectStmt(sel, nil, modeTop)
		if err != nil {
			return err
		}
		return a.setOutputs(res)
	case n.GetInsertStmt() != nil, n.GetUpdateStmt() != nil, n.GetDeleteStmt() != nil:
		switch {
		case n.GetInsertStmt() != nil:
			st.Kind = KindInsert
		case n.GetUpdateStmt() != nil:
			st.Kind = KindUpdate
		default:
			st.Kind = KindDelete
		}
		res, err := a.query(n, nil, modeTop)
		if err != nil {
			return err
		}
		return a.setOutputs(res)
	case n.GetMergeStmt() != nil:
		st.Kind = KindOther
		return a.merge(n.GetMergeStmt())
	case n.GetCopyStmt() != nil:
		st.Kind = KindCopy
		return a.copyStmt(n.GetCopyStmt())
	case n.GetExplainStmt() != nil:
		a.noOutputs = true
		err := a.plan(n.GetExplainStmt().Query)
		st.Kind, st.Outputs, st.OutputsByOrigin, st.Copy = KindExplain, nil, false, nil
		return err
	case n.GetCreateTableAsStmt() != nil:
		st.Kind = KindDDL
		what := "CREATE TABLE AS"
		if n.GetCreateTableAsStmt().Objtype == pg.ObjectType_OBJECT_MATVIEW {
			what = "CREATE MATERIALIZED VIEW"
		}
		if err := a.intoConfigured(n.GetCreateTableAsStmt().Into); err != nil {
			return err
		}
		return a.storedQuery(n.GetCreateTableAsStmt().Query, what)
	case n.GetViewStmt() != nil:
		st.Kind = KindDDL
		return a.storedQuery(n.GetViewStmt().Query, "CREATE VIEW")
	case n.GetDeclareCursorStmt() != nil:
		return a.declareCursor(n.GetDeclareCursorStmt())
	case n.GetFetchStmt() != nil:
		if f := n.GetFetchStmt(); !f.Ismove {
			st.Fetch = f.Portalname
		}
		st.FetchCursor = n.GetFetchStmt().Portalname
		return nil
	case n.GetClosePortalStmt() != nil:
		st.CloseCursor = n.GetClosePortalStmt().Portalname
		if st.CloseCursor == "" {
			st.CloseCursor = "*" // CLOSE ALL
		}
		return nil
	case n.GetPrepareStmt() != nil:
		st.Kind = KindOther
		return a.prepare(n.GetPrepareStmt())
	case n.GetVariableSetStmt() != nil:
		st.Kind = KindSet
		a.variableSet(n.GetVariableSetStmt())
		return nil
	case n.GetDeallocateStmt() != nil:
		st.Kind = KindDeallocate
		st.Deallocate = n.GetDeallocateStmt().Name
		if st.Deallocate == "" {
			st.Deallocate = "*"
		}
		return nil
	case n.GetDiscardStmt() != nil:
		if n.GetDiscardStmt().Target == pg.DiscardMode_DISCARD_ALL {
			st.Kind, st.Deallocate, st.SearchPathReset = KindDeallocate, "*", true
		}
		return nil
	case n.GetTransactionStmt() != nil:
		st.Kind = KindTransaction
		return nil
	}
	if isDDL(nodeName(n)) {
		st.Kind = KindDDL
	}
	return a.utility(n)
}

// isDDL reports whether a statement type changes the schema, after which
// the proxy refreshes its catalog.
func isDDL(name string) bool {
	for _, p := range []string{"Create", "Alter", "Drop", "Rename", "Truncate", "Comment", "Grant", "Refresh", "Reindex", "Cluster", "SecLabel", "ImportForeignSchema", "CompositeType", "Rule", "Define", "Index", "View"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// cursorOptHold is PostgreSQL's CURSOR_OPT_HOLD (WITH HOLD).
const cursorOptHold = 0x0020

// declareCursor plans DECLARE CURSOR: its query as a SELECT that returns
// its rows (hidden tenant fields appended as needed), whose result map
// moves to Cursor for the FETCHes to come.
func (a *analyzer) declareCursor(dc *pg.DeclareCursorStmt) *Error {
	st := a.st
	st.Kind = KindOther
	st.Declares = dc.Portalname
	res, err := a.query(dc.Query, nil, modeTop)
	if err != nil {
		return err
	}
	if err := a.setOutputs(res); err != nil {
		return err
	}
	if st.Outputs != nil || st.OutputsByOrigin {
		st.Cursor = &Cursor{Outputs: st.Outputs, OutputsByOrigin: st.OutputsByOrigin, Hold: dc.Options&cursorOptHold != 0}
		st.Outputs, st.OutputsByOrigin = nil, false
	}
	return nil
}

// storedQuery plans a query whose rows do not reach the client through
// pgveil but are stored or deferred (CREATE TABLE AS, SELECT INTO, views,
// cursors). Its predicates are rewritten as usual, so no plaintext literal
// reaches the server, but returning an encrypted column is refused: the
// ciphertext would land where pgveil cannot decrypt it or bind its tenant.
func (a *analyzer) storedQuery(n *pg.Node, what string) *Error {
	a.noOutputs = true
	if what == "CREATE VIEW" || what == "CREATE MATERIALIZED VIEW" {
		a.storedDef = what
	}
	var res *queryResult
	var err *Error
	if sel := n.GetSelectStmt(); sel != nil && sel.IntoClause != nil {
		res, err = a.selectStmt(sel, nil, modeSub)
	} else {
		res, err = a.query(n, nil, modeSub)
	}
	if err != nil {
		return err
	}
	hint := "select the other columns only, or read the encrypted column through pgveil and write it back with parameters"
	for _, c := range res.cols {
		if e := c.sealed(); e != nil {
			loc := int32(-1)
			if c.ref != nil {
				loc = c.ref.Location
			}
			return unsupported(e, what+" returning it", hint).at(a.sql, loc)
		}
	}
	for _, r := range res.starRels {
		for _, c := range r.cols {
			if e := cmp.Or(c.enc, c.json.FirstColumn()); e != nil {
				return unsupported(e, what+" returning it", hint)
			}
		}
	}
	return nil
}

// prepare refuses SQL-level PREPARE of a statement that touches an
// encrypted column: EXECUTE would later run it with values pgveil never sees.
// ReservedName reports the prepared statement names pgveil uses upstream
// (for statements it rewrote, and to raise its refusals). A client that
// could execute one would run pgveil's rewritten statement with its own
// raw values as the sealed ones: plaintext stored. Clients may not name
// them, in the protocol (the proxy checks) or in SQL (reservedNames).
func ReservedName(name string) bool {
	return strings.HasPrefix(name, "pgveil_") || strings.HasPrefix(name, "__pgveil_")
}

// reservedNames refuses EXECUTE, PREPARE and DEALLOCATE of a reserved
// name anywhere in n (EXPLAIN EXECUTE and CREATE TABLE AS EXECUTE too),
// and DECLARE, FETCH, MOVE and CLOSE of a cursor of such a name.
func (a *analyzer) reservedNames(n *pg.Node) *Error {
	if !containsFold(a.st.Original, "pgveil_") && !containsFold(a.st.Original, "u&") {
		return nil // U&"…" may spell the name
	}
	var err *Error
	walkAll(n, func(c *pg.Node) bool {
		var name, cursor string
		switch {
		case c.GetExecuteStmt() != nil:
			name = c.GetExecuteStmt().Name
		case c.GetPrepareStmt() != nil:
			name = c.GetPrepareStmt().Name
		case c.GetDeallocateStmt() != nil:
			name = c.GetDeallocateStmt().Name
		case c.GetDeclareCursorStmt() != nil:
			cursor = c.GetDeclareCursorStmt().Portalname
		case c.GetClosePortalStmt() != nil:
			cursor = c.GetClosePortalStmt().Portalname
		case c.GetFetchStmt() != nil:
			cursor = c.GetFetchStmt().Portalname
		}
		if err == nil && ReservedName(name) {
			err = errorf(CodeFeatureNotSupported, "prepared statement names starting with \"pgveil_\" or \"__pgveil_\" are reserved for pgveil: %q", name)
			err.Hint = "give the statement another name"
		}
		if err == nil && ReservedName(cursor) {
			// A cursor is a portal: pgveil's tenant lookup binds portals
			// of such names (review 20a).
			err = errorf(CodeFeatureNotSupported, "portal and cursor names starting with \"pgveil_\" or \"__pgveil_\" are reserved for pgveil: %q", cursor)
			err.Hint = "give the cursor another name"
		}
		return err == nil
	})
	return err
}

func (a *analyzer) prepare(p *pg.PrepareStmt) *Error {
	// Names inside a SQL PREPARE are not pinned: the server resolves them
	// again at each EXECUTE after a path change, as without pgveil, and the
	// checks below refuse whatever could then touch an encrypted column.
	a.noPins = true
	if err := a.plan(p.Query); err != nil {
		return err
	}
	st := a.st
	if len(a.edits) > 0 || len(a.uses) > 0 || len(st.Literals) > 0 || st.Outputs != nil || st.OutputsByOrigin || st.Copy != nil {
		e := errorf(CodeFeatureNotSupported, "SQL-level PREPARE of a statement on encrypted columns is not supported: pgveil cannot see the values EXECUTE passes")
		e.Hint = "use protocol-level prepared statements (Parse/Bind), which every driver offers"
		return e.at(a.sql, int32(a.stmtStart))
	}
	// The server plans a prepared statement again when search_path
	// changes, and EXECUTE does not show pgveil which statement runs: a
	// write to an unqualified name that means an unconfigured table now
	// may write a configured one at EXECUTE, with the values as sent.
	var err *Error
	walkAll(p.Query, func(c *pg.Node) bool {
		var rv *pg.RangeVar
		switch {
		case c.GetInsertStmt() != nil:
			rv = c.GetInsertStmt().Relation
		case c.GetUpdateStmt() != nil:
			rv = c.GetUpdateStmt().Relation
		case c.GetMergeStmt() != nil:
			rv = c.GetMergeStmt().Relation
		}
		if rv == nil || rv.Schemaname != "" || err != nil {
			return err == nil
		}
		for _, t := range a.cfg.Tables {
			if t.Name == rv.Relname {
				err = tableErr(CodeFeatureNotSupported, t, "qualify the table with its schema, or use protocol-level prepared statements (Parse/Bind)",
					"SQL-level PREPARE writing %q without a schema is not supported: after a search_path change it could write configured table %s at EXECUTE, unseen by pgveil", rv.Relname, t.QualifiedName()).at(a.sql, rv.Location)
				break
			}
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	if err := a.prepareElsewhere(p); err != nil {
		return err
	}
	st.Kind, st.Outputs, st.Prepares = KindOther, nil, p.Name
	return nil
}

// prepareElsewhere refuses a SQL-level PREPARE that needs nothing from
// pgveil under the current search_path but would under another: planned
// again with every unqualified name taken as the configured table of that
// name (as when the path is unknown), it reads, filters or writes an
// encrypted column. The server re-plans the statement at EXECUTE after a
// search_path change, and EXECUTE shows pgveil neither the statement nor,
// in a form it could encrypt, the values.
func (a *analyzer) prepareElsewhere(p *pg.PrepareStmt) *Error {
	if a.path.unknown {
		return nil // the plan just made already resolved names that way
	}
	var named *pg.RangeVar
	var schemas []string // of the configured tables those names may mean
	walkAll(p.Query, func(c *pg.Node) bool {
		for _, rv := range [...]*pg.RangeVar{c.GetRangeVar(), dmlTarget(c)} {
			if rv == nil || rv.Schemaname != "" || rv.Relpersistence == "t" {
				continue
			}
			note := func(schema string) {
				if named == nil {
					named = rv
				}
				if !slices.Contains(schemas, schema) {
					schemas = append(schemas, schema)
				}
			}
			for _, t := range a.cfg.Tables {
				if t.Name == rv.Relname {
					note(t.Schema)
				}
			}
			if a.cat != nil {
				for _, g := range a.cat.Guarded { // partitions, children, views: refused there
					if g.Name == rv.Relname {
						note(g.Schema)
					}
				}
			}
		}
		return true
	})
	// One plan per schema first on the path, the other schemas after it:
	// every configured table of a name gets its turn, and several that
	// share one name need not be told apart.
	raw := &pg.RawStmt{Stmt: &pg.Node{Node: &pg.Node_PrepareStmt{PrepareStmt: p}}}
	for i, first := range schemas {
		path := append([]string{first}, slices.Delete(slices.Clone(schemas), i, i+1)...)
		b := newAnalyzer(a.p, a.cat, a.sql, raw, a.stmtStart, a.stmtEnd, &pathState{schemas: path}, a.backslash)
		b.noPins = true
		err := b.plan(p.Query)
		st := b.st
		if err == nil && len(b.edits) == 0 && len(b.uses) == 0 && len(st.Literals) == 0 && st.Outputs == nil && !st.OutputsByOrigin && st.Copy == nil {
			continue
		}
		e := errorf(CodeFeatureNotSupported,
			"SQL-level PREPARE naming %q without a schema is not supported: it needs nothing from pgveil under the current search_path, but under another (the server plans it again at EXECUTE after a search_path change) it would use encrypted columns of a configured table in %s, unseen by pgveil", named.Relname, first)
		e.Hint = "qualify the table with its schema, or use protocol-level prepared statements (Parse/Bind)"
		return e.at(a.sql, named.Location)
	}
	return nil
}

// ExecutedNames lists the prepared statements sql runs with SQL EXECUTE
// (also inside EXPLAIN and CREATE TABLE AS), as the server looks them up
// (unquoted names folded); nil when there is none or sql does not parse (the server
// will refuse it). The proxy refuses an EXECUTE of a statement it
// prepared upstream under its own name: the arguments are written in the
// text, where pgveil cannot seal them, and the server, which does not know
// the client's name, would reject the statement and log its text.
func ExecutedNames(sql string) []string {
	if !containsFold(sql, "execute") {
		return nil
	}
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil
	}
	return executedIn(tree)
}

// ExecutedAndCodeNames is ExecutedNames and CodeExecutedNames of sql
// from one parse.
func ExecutedAndCodeNames(sql string) []string {
	if !containsFold(sql, "execute") {
		return nil
	}
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil
	}
	return append(executedIn(tree), codeExecutedIn(tree)...)
}

// executedIn lists the names of the EXECUTE statements in tree.
func executedIn(tree *pg.ParseResult) []string {
	var names []string
	for _, raw := range tree.Stmts {
		walkAll(raw.Stmt, func(c *pg.Node) bool {
			if e := c.GetExecuteStmt(); e != nil {
				names = append(names, e.Name)
			}
			return true
		})
	}
	return names
}

// CodeExecutedNames lists the names in the code of the DO blocks of sql
// that uses EXECUTE (its words, and those of its string constants two
// levels deep: bodyWords), unquoted ones folded: the prepared statements
// the block may run with dynamic SQL (`EXECUTE 'EXECUTE name(…)'`, or
// format('EXECUTE %s(…)', 'name')), for the proxy to check as it checks
// ExecutedNames (review 19b). A name built from pieces is not seen
// (docs/LIMITS.md: dynamic SQL). Nil when there is none.
func CodeExecutedNames(sql string) []string {
	if !containsFold(sql, "execute") || !containsFold(sql, "do") {
		return nil
	}
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil
	}
	return codeExecutedIn(tree)
}

// codeExecutedIn lists the names in the code of tree's DO blocks that
// use EXECUTE (CodeExecutedNames).
func codeExecutedIn(tree *pg.ParseResult) []string {
	var names []string
	for _, raw := range tree.Stmts {
		d := raw.Stmt.GetDoStmt()
		if d == nil {
			continue
		}
		for _, o := range d.Args {
			de := o.GetDefElem()
			if de == nil || de.Defname != "as" {
				continue
			}
			code, ok := str(de.Arg)
			if !ok {
				continue
			}
			ws, _ := bodyWords(code, 0)
			if !slices.ContainsFunc(ws, func(w Word) bool { return w.Kind == WordName && !w.Quoted && w.Text == "execute" }) {
				continue
			}
			for _, w := range ws {
				if w.Kind == WordName && !slices.Contains(names, w.Text) {
					names = append(names, w.Text)
				}
			}
		}
	}
	return names
}
