package rewrite

import (
	"cmp"
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// Views over encrypted columns.
//
// PostgreSQL reports a view's own OID and column number in RowDescription,
// so the proxy cannot decrypt a view's fields by their origin. Instead the
// planner sees through the view: SetCatalog plans each guarded view's
// definition once, as the subquery it is, and keeps the relation that
// subquery produces (which columns carry which encrypted column unchanged,
// where their tenant is, which carry a blind index). A statement that
// reads the view is then planned as if it read that subquery: fields are
// decrypted by plan, equality uses the blind index if the view returns it
// (else it is refused), and an encrypted column whose tenant the view does
// not return is refused when read. Writes through a view, COPY and DDL
// naming it stay refused.
//
// A view is not seen through when its definition cannot be planned, when
// it compares or transforms an encrypted column (the server would do that
// on ciphertext; the planner would have had to edit the definition), or
// when it reads another guarded view that is not seen through.

// seeThroughViews computes the columns of every guarded view of c that can
// be seen through. Views over views are resolved in rounds, inner first.
func (p *Planner) seeThroughViews(c *Catalog) {
	for _, v := range c.Guarded {
		v.cols = nil
	}
	for round := 0; round <= len(c.Guarded); round++ {
		progress := false
		for _, v := range c.Guarded {
			if v.cols != nil || v.Definition == "" {
				continue
			}
			if cols, ok := p.viewColumns(v, c); ok {
				v.cols = cols
				progress = true
			}
		}
		if !progress {
			return
		}
	}
}

// viewColumns plans v's definition as a subquery and returns the view's
// columns as a relation sees them.
func (p *Planner) viewColumns(v *GuardedView, c *Catalog) (cols []relCol, ok bool) {
	defer func() {
		if recover() != nil {
			cols, ok = nil, false
		}
	}()
	ct := c.Tables[v.Schema+"."+v.Name]
	if ct == nil {
		return nil, false
	}
	def := v.Definition
	tree, err := pg.Parse(def)
	if err != nil || len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetSelectStmt() == nil {
		return nil, false
	}
	raw := tree.Stmts[0]
	start, end := trimSpan(def, 0, len(def))
	// The definition names every relation with its schema; the search path
	// only matters for functions and types, which the planner does not resolve.
	a := newAnalyzer(p, c, def, raw, start, end, &pathState{schemas: []string{"pg_catalog"}}, false)
	res, perr := a.selectStmt(raw.Stmt.GetSelectStmt(), nil, modeSub)
	if perr != nil || a.badParam != nil || len(a.edits) > a.pins || len(a.uses) > 0 || a.maxParam > 0 {
		return nil, false
	}
	r := res.asRel(v.Name, nil)
	if len(r.cols) != len(ct.Columns) {
		return nil, false
	}
	for i := range r.cols {
		r.cols[i].name = ct.Columns[i].Name // CREATE VIEW v (a, b) renames
	}
	return r.cols, true
}

// ViewStatus is a view over encrypted columns in the planner's catalog.
type ViewStatus struct {
	Schema, Name string
	Reads        string // a configured table it reads encrypted columns of
	// Child is set for a partition or inheritance child of Reads
	// (GuardedView.Child); such a table is never Readable.
	Child string
	// Readable: reads of the view are planned through its definition;
	// false: every statement naming it is refused.
	Readable bool
}

// Views lists the views over encrypted columns of the current catalog.
func (p *Planner) Views() []ViewStatus {
	c := p.cat.Load()
	if c == nil {
		return nil
	}
	out := make([]ViewStatus, 0, len(c.Guarded))
	for _, v := range c.Guarded {
		out = append(out, ViewStatus{Schema: v.Schema, Name: v.Name, Reads: v.Reads, Child: v.Child, Readable: v.cols != nil})
	}
	slices.SortFunc(out, func(a, b ViewStatus) int {
		return cmp.Or(strings.Compare(a.Schema, b.Schema), strings.Compare(a.Name, b.Name))
	})
	return out
}

// rel is the relation a read of the view in FROM sees.
func (v *GuardedView) rel(rv *pg.RangeVar) *rel {
	r := &rel{name: v.Name, schema: v.Schema, complete: true, loc: rv.Location, view: v}
	r.cols = append([]relCol(nil), v.cols...)
	if rv.Alias != nil && rv.Alias.Aliasname != "" {
		r.name, r.schema, r.aliased = rv.Alias.Aliasname, "", true
		if len(rv.Alias.Colnames) > 0 {
			r.rename(rv.Alias.Colnames)
		}
	}
	return r
}

// carriesIndex reports whether a subquery, CTE or view returns, under its
// name, the blind index of its encrypted column enc (an index into
// r.cols): the blind index of that same column of the same row, not
// another column renamed, nor the index of another row or table that
// happens to share the key.
func (r *rel) carriesIndex(enc int, col *policy.Column) bool {
	i := r.col(col.BlindIndex.Column)
	if i < 0 || enc < 0 {
		return false
	}
	b, e := r.cols[i], r.cols[enc]
	return b.bidxOf == col && b.bidx == col.BlindIndex && b.origin != nil && b.origin == e.origin
}
