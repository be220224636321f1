package rewrite

import (
	"fmt"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// Name resolution follows PostgreSQL's: an unqualified relation name is
// looked up in pg_catalog (unless the path names it elsewhere), then in each
// schema of the search path in order; the first schema that has a relation
// of that name wins, so a same-named table earlier in the path shadows a
// configured one. The Catalog says which relations exist. One deliberate
// difference, to fail closed: a configured table is taken to exist in its
// schema even when the Catalog has no entry for it, because a snapshot
// taken before the table was created (a migration run directly against the
// database) must not let an INSERT through unencrypted.

// pathState is the search path in effect for one statement of a string;
// a SET search_path earlier in the same string changes it for the rest.
type pathState struct {
	schemas []string
	// unknown is set after RESET search_path or a set_config pgveil cannot
	// read: unqualified names then resolve by name alone, to the one
	// configured table of that name (or are refused when there are several).
	unknown bool
}

// tableRef is a resolved relation name.
type tableRef struct {
	schema, name string
	table        *policy.Table // configured table, or nil
	cat          *CatalogTable // catalog entry, or nil
}

func (a *analyzer) catalogTable(schema, name string) *CatalogTable {
	if a.cat == nil || a.cat.Tables == nil {
		return nil
	}
	return a.cat.Tables[schema+"."+name]
}

// resolveTable resolves a RangeVar through the search path, refusing a
// view over encrypted columns (Catalog.Guarded).
func (a *analyzer) resolveTable(rv *pg.RangeVar) (tableRef, *Error) {
	ref, _, err := a.resolveRelation(rv, false)
	return ref, err
}

// resolveRelation is resolveTable that, when read is set, returns a view
// over encrypted columns that pgveil sees through instead of refusing it.
func (a *analyzer) resolveRelation(rv *pg.RangeVar, read bool) (tableRef, *GuardedView, *Error) {
	ref, err := a.resolveName(rv)
	if err == nil {
		err = a.unknownConfiguredName(rv, ref)
	}
	if err != nil || a.cat == nil || a.cat.Guarded == nil {
		return ref, nil, err
	}
	v := a.cat.Guarded[ref.schema+"."+ref.name]
	exact := v != nil
	if v == nil && ref.schema == "" && a.path.unknown {
		// Resolved by name alone (search path unknown): any guarded view of
		// that name could be meant, so none is seen through. Under a known
		// path a name the snapshot does not find there is another relation
		// (the snapshot lists every guarded one with its schema).
		for _, g := range a.cat.Guarded {
			if g.Name == ref.name {
				v = g
				break
			}
		}
	}
	if v != nil && read && exact && v.cols != nil {
		a.viewReads++
		return ref, v, nil
	}
	if v != nil && v.Child != "" {
		e := errorf(CodeFeatureNotSupported,
			"table %s.%s is a %s of configured table %s; statements that name it are refused: pgveil encrypts and decrypts by the configured table, so through this name the database would receive plaintext or return ciphertext",
			v.Schema, v.Name, v.Child, v.Reads)
		switch v.Child {
		case ChildPartition:
			e.Hint = "name " + v.Reads + " instead (PostgreSQL routes each row to its partition)"
		case ChildAncestor:
			e.Hint = "configure " + v.Schema + "." + v.Name + " in the policy rather than the table below it, or name " + v.Reads + " directly"
		default:
			e.Hint = "name " + v.Reads + " instead, or end the inheritance on a direct connection (ALTER TABLE … NO INHERIT)"
		}
		e.Schema, e.Table = v.Schema, v.Name
		return ref, nil, e.at(a.sql, rv.Location)
	}
	if v != nil {
		e := errorf(CodeFeatureNotSupported,
			"view %s.%s reads encrypted columns of %s; statements that name it are refused: pgveil cannot see through a view, so the database would receive plaintext or return ciphertext",
			v.Schema, v.Name, v.Reads)
		e.Hint = "query " + v.Reads + " directly (pgveil encrypts and decrypts it), or drop the view"
		e.Schema, e.Table = v.Schema, v.Name
		if v.cols != nil && exact {
			e.Message = fmt.Sprintf("pgveil: view %s.%s reads encrypted columns of %s; pgveil plans reads of it, but not writes through it or other uses", v.Schema, v.Name, v.Reads)
			e.Hint = "write to " + v.Reads + " directly"
		}
		return ref, nil, e.at(a.sql, rv.Location)
	}
	return ref, nil, nil
}

// unknownConfiguredName refuses a relation name that is a configured
// table's name up to case or schema but resolves to no relation of the
// catalog snapshot (which lists every relation of such a name): a quoted
// name in the wrong case, a misspelt schema, a path without the table's
// schema. The server would reject the statement, and by default it logs
// the text of a statement that fails, with any values meant for an
// encrypted column; pgveil answers 42P01 itself instead. While the path is
// unknown (after DDL or a path change) the snapshot may be behind, so the
// name passes as before.
func (a *analyzer) unknownConfiguredName(rv *pg.RangeVar, ref tableRef) *Error {
	if ref.table != nil || ref.cat != nil || ref.schema == "pg_temp" || rv.Relpersistence == "t" ||
		a.path.unknown || a.cat == nil || a.cat.Tables == nil {
		return nil
	}
	for _, t := range a.cfg.Tables {
		if !strings.EqualFold(t.Name, ref.name) {
			continue
		}
		name := quoteIdent(ref.name)
		if rv.Schemaname != "" {
			name = quoteIdent(rv.Schemaname) + "." + name
		}
		e := tableErr(CodeUndefinedTable, t,
			"name the configured table exactly (unquoted names are lower case) or put its schema on the search_path; if the relation was created after pgveil read its catalog, send pgveil SIGHUP",
			"relation %s does not exist in pgveil's catalog: its name is that of configured table %s up to case or schema, so pgveil refuses the statement rather than send values that may be meant for an encrypted column to the server, which logs failed statements", name, t.QualifiedName())
		e.Schema, e.Table, e.Stale = rv.Schemaname, ref.name, true
		return e.at(a.sql, rv.Location)
	}
	return nil
}

// resolveName resolves a RangeVar through the search path.
func (a *analyzer) resolveName(rv *pg.RangeVar) (tableRef, *Error) {
	name := rv.Relname
	if rv.Schemaname != "" {
		return tableRef{schema: rv.Schemaname, name: name,
			table: a.cfg.Table(rv.Schemaname, name), cat: a.catalogTable(rv.Schemaname, name)}, nil
	}
	if rv.Relpersistence == "t" {
		return tableRef{schema: "pg_temp", name: name}, nil
	}
	if a.path.unknown {
		var found *policy.Table
		for _, t := range a.cfg.Tables {
			if t.Name == name {
				if found != nil {
					return tableRef{}, tableErr(CodeFeatureNotSupported, t,
						"qualify the table with its schema, or send what changes the search_path (SET, RESET, a call of a function that may change it) in a query string of its own and wait for its answer",
						"cannot tell which table %q is meant: the search_path may have changed (earlier in the same query string or pipeline, or after DDL) and pgveil has not read it yet, and several schemas have a configured table of that name", name).at(a.sql, rv.Location)
				}
				found = t
			}
		}
		if found != nil {
			return tableRef{schema: found.Schema, name: name, table: found, cat: a.catalogTable(found.Schema, name)}, nil
		}
		return tableRef{name: name}, nil
	}
	sawCatalog := false
	try := func(schema string) (tableRef, bool) {
		if c := a.catalogTable(schema, name); c != nil {
			return tableRef{schema: schema, name: name, table: a.cfg.Table(schema, name), cat: c}, true
		}
		if t := a.cfg.Table(schema, name); t != nil {
			return tableRef{schema: schema, name: name, table: t}, true
		}
		return tableRef{}, false
	}
	for _, s := range a.path.schemas {
		if s == "pg_catalog" {
			sawCatalog = true
			break
		}
	}
	if !sawCatalog {
		if r, ok := try("pg_catalog"); ok {
			return r, nil
		}
	}
	for _, s := range a.path.schemas {
		if r, ok := try(s); ok {
			return r, nil
		}
	}
	return tableRef{name: name}, nil
}

// baseRel builds the relation for a table reference in FROM or as a
// statement's target: its columns come from the Catalog when it lists the
// table, else (a configured table missing from the snapshot) from the
// policy alone, marked incomplete.
func (a *analyzer) baseRel(ref tableRef, alias *pg.Alias, loc int32) (*rel, *Error) {
	r := &rel{name: ref.name, schema: ref.schema, table: ref.table, base: true, loc: loc}
	if alias != nil && alias.Aliasname != "" {
		r.name, r.aliased = alias.Aliasname, true
	}
	t := ref.table
	if ref.cat != nil {
		r.complete = true
		for _, c := range ref.cat.Columns {
			r.cols = append(r.cols, relCol{name: c.Name, tenant: -1})
		}
	} else if t != nil {
		for _, c := range t.Columns {
			r.cols = append(r.cols, relCol{name: c.Name, tenant: -1})
			for _, bi := range c.IndexTargets() {
				r.cols = append(r.cols, relCol{name: bi.Column, tenant: -1})
			}
		}
		if t.KeyContext != "" {
			r.cols = append(r.cols, relCol{name: t.KeyContext, tenant: -1})
		}
	}
	if t != nil {
		tenant := -1
		if t.KeyContext != "" {
			tenant = r.col(t.KeyContext)
		}
		for i := range r.cols {
			c := &r.cols[i]
			c.origin = r
			if e := t.Column(c.name); e != nil {
				c.enc, c.tenant = e, tenant
			} else if b, bi := t.IndexByColumn(c.name); b != nil {
				c.bidxOf, c.bidx = b, bi
			}
		}
		if t.KeyContext != "" {
			a.tenantRels[t]++
		}
	}
	if alias != nil && len(alias.Colnames) > 0 {
		if !r.complete && t != nil {
			return nil, tableErr(CodeFeatureNotSupported, t, "drop the column aliases, or let pgveil refresh its catalog",
				"column aliases on %s cannot be mapped: pgveil's catalog does not list its columns", t.QualifiedName()).at(a.sql, loc)
		}
		r.rename(alias.Colnames)
	}
	return r, nil
}

// pinSchema schema-qualifies, in the text sent upstream, an unqualified
// relation name that the session's search_path resolves to a relation
// pgveil leaves alone while a configured table, or a relation guarded with
// one, of the same name lives in another schema. pgveil relays values for
// that relation unencrypted; with its schema written out, a search_path
// that changed without pgveil seeing it (code that builds the statement
// from pieces, an event trigger, a function created after the catalog
// snapshot) cannot send them to the configured table instead. Names
// resolved by name alone (path unknown) already resolve to the configured
// table, and are encrypted.
func (a *analyzer) pinSchema(rv *pg.RangeVar, ref tableRef) {
	if rv == nil || a.noPins || rv.Schemaname != "" || rv.Relpersistence == "t" || a.path.unknown ||
		ref.table != nil || ref.cat == nil || ref.schema == "" ||
		int(rv.Location) < a.stmtStart || int(rv.Location) >= a.stmtEnd || !a.shadowed(ref.schema, rv.Relname) {
		return
	}
	if a.tempShadow(rv.Relname) {
		return
	}
	pin := quoteIdent(ref.schema) + "."
	if at := int(rv.Location); at > 0 && isIdentCont(a.sql[at-1]) {
		pin = " " + pin // FROM"users": the keyword must stay a word of its own
	}
	for _, e := range a.edits {
		if e.start == int(rv.Location) && e.end == e.start && e.text == pin {
			return // the same name seen twice (a target planned again)
		}
	}
	a.insert(int(rv.Location), pin)
	a.pins++
}

// pinExisting pins the name of an existing relation that DDL changes
// (ALTER TABLE, CREATE INDEX, policies): after a path change pgveil did
// not see, a default, constraint, index predicate or policy meant for an
// unconfigured table must not land on the configured one, literals and
// all.
func (a *analyzer) pinExisting(rv *pg.RangeVar) {
	if rv == nil {
		return
	}
	if ref, err := a.resolveName(rv); err == nil {
		a.pinSchema(rv, ref)
	}
}

// tempShadow reports whether the snapshot holds a temporary table named
// name. pgveil does not know which session's temporary schema is which, and
// the server looks in the session's own before the search path: a name a
// temporary table may take is left unpinned, as it was sent.
func (a *analyzer) tempShadow(name string) bool {
	if a.cat == nil {
		return false
	}
	for _, t := range a.cat.Tables {
		if t.Name == name && strings.HasPrefix(t.Schema, "pg_temp_") {
			return true
		}
	}
	return false
}

// shadowed reports whether a configured table or a guarded relation named
// name lives in a schema other than schema.
func (a *analyzer) shadowed(schema, name string) bool {
	for _, t := range a.cfg.Tables {
		if t.Name == name && t.Schema != schema {
			return true
		}
	}
	if a.cat != nil {
		for _, g := range a.cat.Guarded {
			if g.Name == name && g.Schema != schema {
				return true
			}
		}
	}
	return false
}
