package rewrite

import (
	pg "github.com/pganalyze/pg_query_go/v5"
)

// deleteStmt plans DELETE: its WHERE and RETURNING.
func (a *analyzer) deleteStmt(d *pg.DeleteStmt, sc *scope, mode queryMode) (*queryResult, *Error) {
	if d.WithClause != nil {
		pop, err := a.withClause(d.WithClause, sc)
		if err != nil {
			return nil, err
		}
		defer pop()
	}
	target, _, err := a.targetRel(d.Relation)
	if err != nil {
		return nil, err
	}
	level := &scope{parent: sc, rels: []*rel{target}}
	for _, f := range d.UsingClause {
		if _, err := a.fromItem(f, level); err != nil {
			return nil, err
		}
	}
	if err := a.expr(d.WhereClause, level, "WHERE"); err != nil {
		return nil, err
	}
	return a.returning(d.ReturningList, level, mode)
}

// returning plans a RETURNING list like a select list.
func (a *analyzer) returning(list []*pg.Node, level *scope, mode queryMode) (*queryResult, *Error) {
	if len(list) == 0 {
		return &queryResult{complete: true}, nil
	}
	res, err := a.targetList(list, level)
	if err != nil {
		return nil, err
	}
	if mode == modeTop && !a.noOutputs {
		if err := a.bindTenants(res, level, a.listEnd(list), func() string { return "" }); err != nil {
			return nil, err
		}
	}
	return res, nil
}
