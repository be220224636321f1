package rewrite

import (
	"cmp"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// relCol is one column of a relation in scope.
type relCol struct {
	name   string
	enc    *policy.Column     // the encrypted column whose stored value this column carries unchanged
	bidxOf *policy.Column     // this column is enc's blind index…
	bidx   *policy.BlindIndex // …this one (its current index or, while it rotates, its next)
	// origin is the base relation (one table reference) the column's value
	// comes from unchanged, through subqueries, CTEs and views; nil when
	// it is computed. An encrypted column and a blind index match only
	// when they come from the same origin (the same row).
	origin *rel
	// tenant is, for an encrypted column, the index in the relation's cols of
	// the column holding the row's key_context value; -1 when the table has
	// no key_context or the relation does not expose it (see noTenant).
	tenant int
	// noTenant marks an encrypted column of a table with a key_context that
	// a subquery or CTE passes on without the key_context column: reading
	// it through that relation is refused (lazily, only if it is read).
	noTenant bool
	// row, when set, marks a column whose value is a whole row of a
	// configured table (the OUT row of a wrapped INSERT's function,
	// wrapped.go): its fields are row's columns, read by name only.
	row *rel
	// json is set on a column of a subquery or CTE that holds JSON built
	// from encrypted columns (json.go).
	json *JSONShape
}

// rel is one relation in a query's FROM (or a statement's target): a base
// table, a subquery, a CTE reference, a function, a VALUES list.
type rel struct {
	name     string        // the name columns are qualified with: the alias, else the table name
	schema   string        // a base table's schema ("" when aliased: then it cannot be named)
	table    *policy.Table // configured base table
	cols     []relCol
	complete bool // cols lists every column, in order
	base     bool
	aliased  bool
	merged   bool // joined with USING/NATURAL: * expands merged columns first, positions unknown
	// using names the columns a USING join r takes part in compares
	// ("*" for a NATURAL join): a reference to one of them through a
	// JOIN's alias may read the merged value (mergedSendRef).
	using []string
	// joinAlias marks the relation a JOIN's alias names; * skips it (its
	// columns are those of the joined relations, expanded in their place).
	joinAlias bool
	loc       int32
	// rowOf is set on the relation of a row column's fields: the SQL
	// that names the row, so that a field is (rowOf).field.
	rowOf string
	// joinAliasRel, when set, is the outermost aliased JOIN the relation
	// is inside: its alias hides the relation's own name, and the
	// relation's columns are its columns from joinOffset on (-1: not
	// known, a relation before it does not list its columns).
	joinAliasRel *rel
	joinOffset   int
	// view is the guarded view this relation reads (seen through), nil for
	// any other relation.
	view *GuardedView
}

// colIn returns SQL that reaches column idx of r from scope sc: r's name
// and the column's, when PostgreSQL resolves that name to r there (no
// relation of that name in between), or the JOIN alias hiding r and the
// column's name under it. ok is false when no name is sure.
func (r *rel) colIn(sc *scope, idx int) (string, bool) {
	if sc == nil || idx < 0 || idx >= len(r.cols) {
		return "", false
	}
	if j := r.joinAliasRel; j != nil {
		// The offset is exact when every relation before r in the join
		// lists all its columns; a name there twice is the server's
		// ambiguity error, never another column.
		k := r.joinOffset + idx
		if j.merged || r.joinOffset < 0 || k >= len(j.cols) || sc.find(j.name) != j {
			return "", false
		}
		if n, _ := named([]*rel{j}, j.cols[k].name); n > 1 {
			return "", false // j.org_id would be ambiguous: the statement is refused, not failed
		}
		return quoteIdent(j.name) + "." + quoteIdent(j.cols[k].name), true
	}
	if n, _ := named([]*rel{r}, r.cols[idx].name); n > 1 {
		return "", false
	}
	if r.name == "" || sc.find(r.name) != r || r.joinAlias && r.merged {
		// (a USING column under a join's alias is the merged value, of
		// the common type, COALESCEd in outer joins: not the row's own)
		return "", false
	}
	return quoteIdent(r.name) + "." + quoteIdent(r.cols[idx].name), true
}

func (r *rel) col(name string) int {
	for i := range r.cols {
		if r.cols[i].name == name {
			return i
		}
	}
	return -1
}

// hasEnc reports whether any known column of r is encrypted, or holds a
// row with encrypted columns.
func (r *rel) hasEnc() bool { return r.firstEnc() != nil }

// firstEnc returns the first encrypted column of r, looking into row
// columns too, or nil.
func (r *rel) firstEnc() *policy.Column {
	for i := range r.cols {
		if r.cols[i].enc != nil {
			return r.cols[i].enc
		}
		if row := r.cols[i].row; row != nil {
			if e := row.firstEnc(); e != nil {
				return e
			}
		}
		if e := r.cols[i].json.FirstColumn(); e != nil {
			return e
		}
	}
	return nil
}

// rename applies an alias column list (t AS x(a, b)) to the leading columns.
func (r *rel) rename(colnames []*pg.Node) {
	for i, n := range colnames {
		s, _ := str(n)
		if i < len(r.cols) {
			r.cols[i].name = s
		} else {
			r.cols = append(r.cols, relCol{name: s, tenant: -1})
		}
	}
}

// scope is the relations visible at one query level, with the enclosing
// levels behind parent (for correlated subqueries and LATERAL).
type scope struct {
	rels   []*rel
	parent *scope
	// hidden are relations of the query that names here cannot reach
	// (the FROM items before a JOIN, from its ON clause; those before a
	// subquery in FROM without LATERAL; a MERGE's target, from WHEN NOT
	// MATCHED): PostgreSQL rejects a reference to one, but only after
	// logging the text, so a reference to an encrypted column of one is
	// refused first. hiddenHint says why and what to do.
	hidden     []*rel
	hiddenHint string
	// selectList is the select list of the query at this level: its
	// output names, which expressions of the query cannot see.
	selectList []*pg.Node
}

const (
	onHiddenHint       = "a JOIN's ON clause sees only the join's own relations: move the condition to WHERE"
	subqueryHiddenHint = "a subquery in FROM sees the FROM items before it only when it is LATERAL: write LATERAL (…), or move the condition out of the subquery"
	notMatchedHint     = "MERGE … WHEN NOT MATCHED sees only the source relation: name the source's columns"
	rightJoinHint      = "the right side of a RIGHT or FULL JOIN cannot refer to its left side (LATERAL needs INNER or LEFT JOIN)"
)

// hiddenEncrypted returns the encrypted column called name of a relation
// hidden from sc (named qual, when qual is not empty), or nil, and the
// hint of the scope that hides it.
func hiddenEncrypted(qual, name string, sc *scope) (*policy.Column, string) {
	for s := sc; s != nil; s = s.parent {
		for _, r := range s.hidden {
			if qual != "" && r.name != qual {
				continue
			}
			if i := r.col(name); i >= 0 {
				if e := cmp.Or(r.cols[i].enc, r.cols[i].json.FirstColumn()); e != nil {
					return e, s.hiddenHint
				}
			}
		}
	}
	return nil, ""
}

func (s *scope) find(name string) *rel {
	for sc := s; sc != nil; sc = sc.parent {
		for i := len(sc.rels) - 1; i >= 0; i-- {
			// A relation inside an aliased JOIN has no name outside it.
			if sc.rels[i].name == name && sc.rels[i].joinAliasRel == nil {
				return sc.rels[i]
			}
		}
	}
	return nil
}

// twiceEncrypted returns an encrypted column of r called name when r has
// more than one column of that name, or nil.
func (r *rel) twiceEncrypted(name string) *policy.Column {
	if n, enc := named([]*rel{r}, name); n > 1 {
		return enc
	}
	return nil
}

// named counts the columns called name of rels and returns the first
// encrypted one among them (or one holding JSON built from one).
func named(rels []*rel, name string) (n int, enc *policy.Column) {
	for _, r := range rels {
		for i := range r.cols {
			if r.cols[i].name != name {
				continue
			}
			n++
			if e := cmp.Or(r.cols[i].enc, r.cols[i].json.FirstColumn()); e != nil && enc == nil {
				enc = e
			}
		}
	}
	return n, enc
}

// twiceNamed returns the encrypted column called col of a relation named q
// when the innermost level with a relation named q has two of them
// (PostgreSQL rejects the FROM clause, after logging the text), or nil.
func (s *scope) twiceNamed(q, col string) *policy.Column {
	for sc := s; sc != nil; sc = sc.parent {
		n := 0
		var enc *policy.Column
		for _, r := range sc.rels {
			if r.name != q || r.joinAliasRel != nil {
				continue
			}
			n++
			if i := r.col(col); i >= 0 && enc == nil {
				enc = cmp.Or(r.cols[i].enc, r.cols[i].json.FirstColumn())
			}
		}
		if n > 0 {
			if n > 1 {
				return enc
			}
			return nil
		}
	}
	return nil
}

// colRef is a resolved column reference. rel is nil and idx -1 when the
// name belongs to nothing pgveil knows, which means a column that is not
// encrypted (every encrypted column is known by name, catalog or not).
type colRef struct {
	rel  *rel
	idx  int
	star bool
}

func (c colRef) col() *relCol {
	if c.rel == nil || c.idx < 0 {
		return nil
	}
	return &c.rel.cols[c.idx]
}

// enc returns the encrypted column the reference reads, or nil.
func (c colRef) enc() *policy.Column {
	if rc := c.col(); rc != nil {
		return rc.enc
	}
	return nil
}

// resolveColumn resolves a ColumnRef against the scope chain.
func (a *analyzer) resolveColumn(cr *pg.ColumnRef, sc *scope) (colRef, *Error) {
	var parts []string
	star := false
	for _, f := range cr.Fields {
		if f.GetAStar() != nil {
			star = true
			continue
		}
		s, _ := str(f)
		parts = append(parts, s)
	}
	none := colRef{idx: -1}
	if star {
		switch len(parts) {
		case 0:
			return colRef{idx: -1, star: true}, nil
		default:
			r := a.findRel(parts, sc)
			return colRef{rel: r, idx: -1, star: true}, nil
		}
	}
	switch len(parts) {
	case 0:
		return none, nil
	case 1:
		return a.resolveBare(parts[0], cr.Location, sc)
	default:
		name := parts[len(parts)-1]
		r := a.findRel(parts[:len(parts)-1], sc)
		if r == nil {
			if ref, ok, err := a.rowField(parts, cr.Location, sc); ok || err != nil {
				return ref, err
			}
			// users.email where users is not in FROM (or hidden by an
			// alias): PostgreSQL rejects it, but only after the text (and
			// any value in it) has reached the server and its log.
			if t := a.configuredNamed(parts[:len(parts)-1]); t != nil && t.Column(name) != nil {
				e := colErr(CodeUndefinedTable, t.Column(name), "refer to the table by its alias or add it to FROM",
					"invalid reference to FROM-clause entry for table %q", parts[len(parts)-2])
				return none, e.at(a.sql, cr.Location)
			}
			// t.f where t is not a relation: a field of a composite column.
			if len(parts) == 2 {
				c, err := a.resolveBare(parts[0], cr.Location, sc)
				if err == nil && c.enc() != nil {
					return none, unsupported(c.enc(), "field selection", "select the column itself").at(a.sql, cr.Location)
				}
				if err == nil && c.rel != nil {
					return none, nil // a known column: its field
				}
			}
			if enc, hint := hiddenEncrypted(parts[len(parts)-2], name, sc); enc != nil {
				e := colErr(CodeUndefinedTable, enc, hint,
					"invalid reference to FROM-clause entry for table %q", parts[len(parts)-2])
				return none, e.at(a.sql, cr.Location)
			}
			// A qualifier that names nothing in scope, with the name of an
			// encrypted column in scope (u.email when FROM says users x):
			// most likely a mistake PostgreSQL will reject after logging
			// the text. Refuse it first.
			if enc := encryptedNamed(name, sc); enc != nil {
				e := colErr(CodeUndefinedTable, enc, "qualify the column with a table name or alias that is in FROM",
					"missing FROM-clause entry for table %q", parts[len(parts)-2])
				return none, e.at(a.sql, cr.Location)
			}
			return none, nil
		}
		if enc := sc.twiceNamed(parts[len(parts)-2], name); len(parts) == 2 && enc != nil {
			e := colErr(CodeDuplicateAlias, enc, "give each FROM item its own alias",
				"table name %q specified more than once", parts[0])
			return none, e.at(a.sql, cr.Location)
		}
		idx := r.col(name)
		if enc := r.twiceEncrypted(name); enc != nil {
			// s.email where s has two columns of the name: PostgreSQL
			// rejects it as ambiguous, after logging the text.
			e := colErr(CodeAmbiguousColumn, enc, "give the columns distinct names in the subquery, CTE or JOIN alias",
				"column reference %q is ambiguous", strings.Join(parts, "."))
			return none, e.at(a.sql, cr.Location)
		}
		if enc, hint := hiddenEncrypted(parts[len(parts)-2], name, sc); idx < 0 && enc != nil {
			// The name reaches another relation than the hidden one that
			// has the encrypted column: PostgreSQL rejects it, after
			// logging the text.
			e := colErr(CodeUndefinedColumn, enc, hint,
				"column %s.%s does not exist here", strings.Join(parts[:len(parts)-1], "."), name)
			return none, e.at(a.sql, cr.Location)
		}
		if t := a.configuredNamed(parts[:len(parts)-1]); idx < 0 && !r.complete && t != nil && t.Column(name) != nil {
			// A relation named like a configured table whose columns pgveil
			// does not all know: the name most likely means the table's
			// encrypted column, which this relation would not have.
			e := colErr(CodeUndefinedColumn, t.Column(name), "qualify the column with the configured table, or rename the alias",
				"column %s.%s is not a column pgveil knows of relation %s, which is named like configured table %s", strings.Join(parts[:len(parts)-1], "."), name, r.name, t.QualifiedName())
			return none, e.at(a.sql, cr.Location)
		}
		if idx < 0 && r.complete {
			// A relation known not to have the column, while an encrypted
			// column of that name is in scope: PostgreSQL rejects the
			// statement, after its text (and the value) reached the log.
			enc := encryptedNamed(name, sc)
			if t := a.configuredNamed(parts[:len(parts)-1]); enc == nil && t != nil {
				enc = t.Column(name)
			}
			if enc == nil {
				enc = encryptedFolded(name, sc)
			}
			if enc != nil {
				e := colErr(CodeUndefinedColumn, enc, "qualify the column with the relation that has it",
					"column %s.%s does not exist", strings.Join(parts[:len(parts)-1], "."), name)
				return none, e.at(a.sql, cr.Location)
			}
		}
		if idx < 0 && r.view != nil && r.complete {
			return none, staleViewColumn(r, name).at(a.sql, cr.Location)
		}
		return colRef{rel: r, idx: idx}, nil
	}
}

// staleViewColumn refuses a column a guarded view does not have in
// pgveil's catalog. PostgreSQL would reject it too, unless the view
// changed on a direct connection since pgveil read its catalog (ALTER
// VIEW … RENAME COLUMN, CREATE OR REPLACE VIEW): then the name may be one
// of its encrypted columns, which pgveil would pass as a plain one (a
// value compared in plaintext, ciphertext returned).
func staleViewColumn(r *rel, name string) *Error {
	v := r.view
	return colErr(CodeUndefinedColumn, r.firstEnc(), "if the view was changed on a direct connection, make pgveil read its catalog again (SIGHUP)",
		"column %q of view %s.%s, which reads encrypted columns, is not in pgveil's catalog; pgveil refuses the statement rather than guess what it holds", name, v.Schema, v.Name)
}

// outputNamed returns the encrypted column an output of a select list in
// scope called name reads (SELECT c.email AS e … WHERE e = …: PostgreSQL
// rejects e, after logging the text), or nil.
func (a *analyzer) outputNamed(name string, sc *scope) *policy.Column {
	if a.inOutputNamed {
		return nil
	}
	a.inOutputNamed = true
	defer func() { a.inOutputNamed = false }()
	for s := sc; s != nil; s = s.parent {
		for _, n := range s.selectList {
			rt := n.GetResTarget()
			if rt == nil || rt.Name != name {
				continue
			}
			if cr := rt.Val.GetColumnRef(); cr != nil {
				if ref, err := a.resolveColumn(cr, s); err == nil {
					if rc := ref.col(); rc != nil {
						if e := cmp.Or(rc.enc, rc.json.FirstColumn()); e != nil {
							return e
						}
					}
				}
			}
		}
	}
	return nil
}

// ambiguousEncrypted returns an encrypted column called name when more
// than one column of that name is visible at level s (PostgreSQL rejects
// the reference as ambiguous, after logging the text), or nil. The
// relations inside an aliased JOIN are counted through its alias.
func ambiguousEncrypted(name string, s *scope) *policy.Column {
	var visible []*rel
	for _, r := range s.rels {
		if r.joinAliasRel == nil {
			visible = append(visible, r)
		}
	}
	if n, enc := named(visible, name); n > 1 {
		return enc
	}
	return nil
}

// encryptedFolded returns an encrypted column of a relation in scope whose
// name differs from name only in case (u."EMAIL" for u.email): PostgreSQL
// rejects the reference (column does not exist), after logging the text.
func encryptedFolded(name string, sc *scope) *policy.Column {
	for s := sc; s != nil; s = s.parent {
		for _, r := range s.rels {
			for _, c := range r.cols {
				if c.enc != nil && strings.EqualFold(c.name, name) {
					return c.enc
				}
			}
		}
	}
	return nil
}

// encryptedNamed returns an encrypted column called name of a relation in scope.
func encryptedNamed(name string, sc *scope) *policy.Column {
	for s := sc; s != nil; s = s.parent {
		for _, r := range s.rels {
			if i := r.col(name); i >= 0 && r.cols[i].enc != nil {
				return r.cols[i].enc
			}
		}
	}
	return nil
}

// configuredNamed returns the configured table a qualifier could mean:
// [t] in any schema, [schema, t] or [db, schema, t].
func (a *analyzer) configuredNamed(q []string) *policy.Table {
	switch len(q) {
	case 1:
		for _, t := range a.cfg.Tables {
			if t.Name == q[0] {
				return t
			}
		}
	case 2, 3:
		return a.cfg.Table(q[len(q)-2], q[len(q)-1])
	}
	return nil
}

// findRel finds the relation a qualifier names: [t], [schema, t] or [db, schema, t].
func (a *analyzer) findRel(q []string, sc *scope) *rel {
	switch len(q) {
	case 1:
		return sc.find(q[0])
	case 2, 3:
		schema, name := q[len(q)-2], q[len(q)-1]
		for s := sc; s != nil; s = s.parent {
			for _, r := range s.rels {
				if r.base && !r.aliased && r.name == name && r.schema == schema && r.joinAliasRel == nil {
					return r
				}
			}
		}
	}
	return nil
}

// resolveBare resolves an unqualified column name. The innermost level that
// certainly has the column wins. When a level has relations whose columns
// pgveil does not know (tables outside the policy and its catalog) and an
// outer level has an encrypted column of that name, the reference could be
// either: it is refused rather than guessed.
func (a *analyzer) resolveBare(name string, loc int32, sc *scope) (colRef, *Error) {
	uncertain := false
	for s := sc; s != nil; s = s.parent {
		if enc := ambiguousEncrypted(name, s); enc != nil {
			return colRef{idx: -1}, colErr(CodeAmbiguousColumn, enc, "qualify the column with its table name or alias",
				"column reference %q is ambiguous", name).at(a.sql, loc)
		}
		for _, r := range s.rels {
			if r.joinAliasRel != nil {
				continue // inside an aliased JOIN: its columns are the alias's, under the alias's names
			}
			if i := r.col(name); i >= 0 {
				if uncertain && r.cols[i].enc != nil {
					return colRef{idx: -1}, colErr(CodeAmbiguousColumn, r.cols[i].enc,
						"qualify the column with its table name or alias",
						"column reference %q may be the encrypted column %s or a column of a table pgveil does not know; pgveil cannot tell which", name, r.cols[i].enc.QualifiedName()).at(a.sql, loc)
				}
				return colRef{rel: r, idx: i}, nil
			}
		}
		for _, r := range s.rels {
			if !r.complete {
				uncertain = true
			}
		}
	}
	for s := sc; s != nil; s = s.parent {
		for _, r := range s.hidden {
			if e := r.firstEnc(); r.name == name && e != nil {
				return colRef{idx: -1}, unsupported(e, "a whole-row reference to "+name+", a FROM item not visible here", s.hiddenHint).at(a.sql, loc)
			}
		}
	}
	if enc, hint := hiddenEncrypted("", name, sc); enc != nil {
		return colRef{idx: -1}, colErr(CodeUndefinedColumn, enc, hint,
			"column %q does not exist here: it is a column of a FROM item not visible here", name).at(a.sql, loc)
	}
	// A relation's name used as a column is a whole-row reference.
	if r := sc.find(name); r != nil {
		if e := r.firstEnc(); e != nil {
			return colRef{idx: -1}, unsupported(e, "a whole-row reference to "+name, "name the columns as "+name+".column (not ("+name+").column)").at(a.sql, loc)
		}
	}
	// Every relation in scope is known and none has the column, but an
	// encrypted one differs only in case ("Email"): PostgreSQL rejects it,
	// after logging the text.
	if enc := a.outputNamed(name, sc); enc != nil && !a.outputFallback && !uncertain {
		return colRef{idx: -1}, colErr(CodeUndefinedColumn, enc, "write the expression itself: an output's name is not visible in WHERE, HAVING or an expression",
			"column %q does not exist: it is the name of an output of the select list", name).at(a.sql, loc)
	}
	if enc := encryptedFolded(name, sc); enc != nil && !a.outputFallback {
		return colRef{idx: -1}, colErr(CodeUndefinedColumn, enc, "write the column's name as it is, unquoted or in its own case",
			"column %q does not exist", name).at(a.sql, loc)
	}
	if !uncertain && !a.outputFallback {
		for s := sc; s != nil; s = s.parent {
			for _, r := range s.rels {
				if r.view != nil && r.complete && r.joinAliasRel == nil {
					return colRef{idx: -1}, staleViewColumn(r, name).at(a.sql, loc)
				}
			}
		}
	}
	return colRef{idx: -1}, nil
}
