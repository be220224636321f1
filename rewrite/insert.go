package rewrite

import (
	"fmt"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// insertStmt plans INSERT. Into a configured table, each encrypted value of
// a VALUES row is encrypted (a literal becomes a slot, a parameter gets
// Action Encrypt) and, when the column has a blind index, its index is
// added beside it: "(email, org_id) VALUES ($1, $2)" becomes
// "(email, email_bidx, org_id) VALUES ($1, $3, $2)" with $3 the index of $1.
func (a *analyzer) insertStmt(ins *pg.InsertStmt, sc *scope, mode queryMode) (*queryResult, *Error) {
	if ins.WithClause != nil {
		pop, err := a.withClause(ins.WithClause, sc)
		if err != nil {
			return nil, err
		}
		defer pop()
	}
	if oc := ins.OnConflictClause; oc != nil && oc.Action == pg.OnConflictAction_ONCONFLICT_UPDATE {
		if err := a.tenantView(ins.Relation, "INSERT … ON CONFLICT DO UPDATE"); err != nil {
			return nil, err
		}
	}
	ref, err := a.resolveTable(ins.Relation)
	if err != nil {
		return nil, err
	}
	a.pinSchema(ins.Relation, ref)
	target, err := a.baseRel(ref, ins.Relation.Alias, ins.Relation.Location)
	if err != nil {
		return nil, err
	}
	t := ref.table
	cols, err := a.insertColumns(ins, t)
	if err != nil {
		return nil, err
	}
	encWrites := false
	for _, c := range cols {
		encWrites = encWrites || c.enc != nil
	}
	// A table in migration mode: the values written to a column whose
	// blind index is unique are checked against rows not yet backfilled
	// (unique.go).
	fill, err := a.startUniqueFill(ins, t, cols, mode)
	if err != nil {
		return nil, err
	}
	outer := a.fill
	a.fill = fill
	defer func() { a.fill = outer }()
	sel := ins.SelectStmt.GetSelectStmt()
	vs, fromValues := matchValuesSelect(sel, len(cols))
	switch {
	case sel == nil: // DEFAULT VALUES
	case t != nil && len(t.Columns) > 0 && len(ins.Cols) == 0:
		return nil, tableErr(CodeFeatureNotSupported, t, "list the columns: INSERT INTO "+t.Name+" (col, …) VALUES (…)",
			"INSERT into %s needs a column list: it has encrypted columns and pgveil maps values to columns by name", t.QualifiedName()).at(a.sql, ins.Relation.Location)
	case encWrites && isPlainValues(sel):
		if err := a.insertValues(t, cols, sel, sc); err != nil {
			return nil, err
		}
	case encWrites && t != nil && fromValues:
		if err := a.insertValuesSelect(t, cols, vs, sc); err != nil {
			return nil, err
		}
	case encWrites:
		for _, c := range cols {
			if c.enc != nil {
				return nil, unsupported(c.enc, "INSERT … SELECT into it", "insert with VALUES and parameters, so that pgveil can encrypt each value").at(a.sql, c.loc)
			}
		}
	default:
		res, err := a.query(ins.SelectStmt, &scope{parent: sc}, modeSub)
		if err != nil {
			return nil, err
		}
		for _, c := range res.cols {
			if e := c.sealed(); e != nil {
				return nil, unsupported(e, "copying it with INSERT … SELECT", "copying ciphertext into another table or column makes it undecryptable; read the value and insert it with a parameter")
			}
		}
	}
	level := &scope{parent: sc, rels: []*rel{target}}
	if oc := ins.OnConflictClause; oc != nil {
		if err := a.onConflict(oc, t, target, sel, cols, level); err != nil {
			return nil, err
		}
	}
	a.fill = outer
	a.emitUniqueFill(fill)
	return a.returning(ins.ReturningList, level, mode)
}

// insCol is one column of an INSERT's column list.
type insCol struct {
	name    string
	enc     *policy.Column
	indexOf *policy.Column // a blind-index column the client lists beside its encrypted column
	loc     int32
	quoted  bool
	end     int // end of the column name's token
}

func (a *analyzer) insertColumns(ins *pg.InsertStmt, t *policy.Table) ([]insCol, *Error) {
	var cols []insCol
	listed := map[string]bool{}
	for _, n := range ins.Cols {
		rt := n.GetResTarget()
		if t != nil && listed[rt.GetName()] && (t.Column(rt.Name) != nil || t.BlindIndexColumn(rt.Name) != nil) {
			return nil, errorf("42701", "column %s of configured table %s is specified more than once", quoteIdent(rt.Name), t.QualifiedName()).at(a.sql, rt.Location)
		}
		listed[rt.GetName()] = true
	}
	for _, n := range ins.Cols {
		rt := n.GetResTarget()
		c := insCol{name: rt.Name, loc: rt.Location}
		if t != nil {
			if src := t.BlindIndexColumn(rt.Name); src != nil && listed[src.Name] && len(rt.Indirection) == 0 {
				c.indexOf = src // written beside its column: pgveil puts its own index there
			} else if err := a.checkNotIndex(t, rt.Name, rt.Location); err != nil {
				return nil, err
			}
			if err := a.knownColumn(t, rt.Name, rt.Location); err != nil {
				return nil, err
			}
			c.enc = t.Column(rt.Name)
			if c.enc != nil && len(rt.Indirection) > 0 {
				return nil, unsupported(c.enc, "assigning a subscript or field", "write the whole value").at(a.sql, rt.Location)
			}
			if c.enc != nil {
				tok := tokenAt(a.sql, int(rt.Location), a.backslash)
				c.quoted, c.end = tok.kind == tQIdent, tok.end
			}
		}
		cols = append(cols, c)
	}
	return cols, nil
}

// knownColumn refuses a write to a column configured table t does not have
// in the catalog snapshot ("Email" for email): the server would reject
// the statement and log its text, values included. Stale: a column added
// directly since is found once the catalog is read again.
func (a *analyzer) knownColumn(t *policy.Table, name string, loc int32) *Error {
	ct := a.catalogTable(t.Schema, t.Name)
	if ct == nil || a.path.unknown {
		return nil // after DDL (unsettled) the column may be the session's own, uncommitted
	}
	for _, c := range ct.Columns {
		if c.Name == name {
			return nil
		}
	}
	e := errorf(CodeUndefinedColumn, "column %s of configured table %s does not exist in pgveil's catalog; pgveil refuses the statement rather than send values that may be meant for an encrypted column to the server, which logs failed statements", quoteIdent(name), t.QualifiedName())
	e.Hint = "name the column exactly (unquoted names are lower case)"
	e.Schema, e.Table, e.Column, e.Stale = t.Schema, t.Name, name, true
	return e.at(a.sql, loc)
}

// checkNotIndex refuses a write into a blind-index column.
func (a *analyzer) checkNotIndex(t *policy.Table, name string, loc int32) *Error {
	if c := t.BlindIndexColumn(name); c != nil {
		e := colErr(CodeGeneratedAlways, c, "write "+c.Name+" only; pgveil fills "+name+" itself",
			"column %s.%s is the blind index of encrypted column %s and is maintained by pgveil", t.QualifiedName(), name, c.QualifiedName())
		e.Column = name
		return e.at(a.sql, loc)
	}
	return nil
}

// isPlainValues reports whether sel is a bare VALUES list.
func isPlainValues(sel *pg.SelectStmt) bool {
	return len(sel.ValuesLists) > 0 && sel.WithClause == nil && len(sel.SortClause) == 0 &&
		sel.LimitCount == nil && sel.LimitOffset == nil
}

// rowTenant finds a VALUES row's key_context value.
func (a *analyzer) rowTenant(t *policy.Table, cols []insCol, items []*pg.Node) (ValueRef, bool, *Error) {
	if t == nil || t.KeyContext == "" {
		return ValueRef{Kind: RefNone}, true, nil
	}
	for i, c := range cols {
		if c.name != t.KeyContext || i >= len(items) {
			continue
		}
		if items[i] == nil {
			return ValueRef{}, false, nil // not in the VALUES list (insertmany.go)
		}
		if err := a.tenantCastsKeep(t, items[i]); err != nil {
			return ValueRef{}, false, err
		}
		v, err := a.classify(items[i], nil, false)
		if err != nil {
			return ValueRef{}, false, err
		}
		switch v.kind {
		case vParam:
			return ValueRef{Kind: RefParam, Param: int(v.param) - 1}, true, nil
		case vLiteral:
			return ValueRef{Kind: RefLiteral, Literal: v.lit}, true, nil
		case vNull:
			return ValueRef{Kind: RefNull}, true, nil
		}
		return ValueRef{}, false, nil
	}
	return ValueRef{}, false, nil
}

// tenantCastsKeep refuses casts on a key_context value that may change it
// on its way to the column: pgveil seals the row's values under the tenant
// as written, while PostgreSQL stores it cast ('77'::varchar(1) is '7', a
// bpchar cast drops trailing spaces, "char" and name truncate). A length or
// precision is refused even where the value fits: a plan stands for every
// text of its shape, whatever its literals, and a parameter's value is not
// known when the statement is planned.
//
// A cast to another type than the column's (int8 '007' or '1e2'::numeric
// for a text column, which stores '7' and '100'; 't'::bool, 'true') is
// refused the same way: only the casts castFits allows on an encrypted
// value of the column's type pass (text, varchar for a text column; the
// integer types and numeric for an integer column, whose value the proxy
// then reads as that integer or refuses; text and varchar, which keep the
// text, for any column).
func (a *analyzer) tenantCastsKeep(t *policy.Table, n *pg.Node) *Error {
	lt := a.tenantLogical(t)
	for tc := n.GetTypeCast(); tc != nil; tc = tc.Arg.GetTypeCast() {
		name := lastName(tc.TypeName.Names)
		if len(tc.TypeName.Typmods) > 0 || len(tc.TypeName.ArrayBounds) > 0 || name == "bpchar" || name == "char" || name == "name" {
			return tableErr(CodeDatatypeMismatch, t, "cast the "+t.KeyContext+" value without a length or precision (the column's own type applies)",
				"cast to %s of the %s value of a write to %s: it may change the tenant PostgreSQL stores, while pgveil seals the row's values under the tenant as written",
				typeNameString(tc.TypeName), t.KeyContext, t.QualifiedName()).at(a.sql, tc.Location)
		}
		// A cast to text or varchar keeps the text (the next cast, or the
		// column's input, reads it as the proxy does: $1::text::int8).
		if !castFits(tc.TypeName, lt, false) && !(isIntType(lt) && castFits(tc.TypeName, policy.TypeInt2, false)) &&
			!castFits(tc.TypeName, policy.TypeVarchar, false) {
			return tableErr(CodeDatatypeMismatch, t, "cast the "+t.KeyContext+" value to the column's type ("+string(lt)+"), or leave the cast out",
				"cast to %s of the %s value (%s) of a write to %s: PostgreSQL stores the cast value's text, which may name another tenant than the value pgveil seals the row's values under",
				typeNameString(tc.TypeName), t.KeyContext, lt, t.QualifiedName()).at(a.sql, tc.Location)
		}
	}
	return nil
}

// tenantLogical is the logical type of t's key_context column: text when
// the catalog does not tell or the type is not one of pgveil's (bpchar,
// name: text-like).
func (a *analyzer) tenantLogical(t *policy.Table) policy.LogicalType {
	oid := a.tenantTypeOID(t)
	for _, lt := range policy.LogicalTypes {
		if lt.OID() == oid {
			return lt
		}
	}
	return policy.TypeText
}

func isIntType(lt policy.LogicalType) bool {
	return lt == policy.TypeInt2 || lt == policy.TypeInt4 || lt == policy.TypeInt8
}

// missingTenant refuses a write whose tenant cannot be found; need says
// where the statement must give it.
func missingTenant(t *policy.Table, need string, loc int32, sql string) *Error {
	return tableErr(CodeFeatureNotSupported, t,
		fmt.Sprintf("write %s %s", t.KeyContext, need),
		"cannot tell the tenant of this write to %s: each tenant's values are encrypted under their own key, chosen by the key_context column %s",
		t.QualifiedName(), t.KeyContext).at(sql, loc)
}

// insertValues rewrites the VALUES rows of an INSERT into a configured table.
func (a *analyzer) insertValues(t *policy.Table, cols []insCol, sel *pg.SelectStmt, sc *scope) *Error {
	listed := map[string]int{} // blind-index columns the client lists, by position
	for i, c := range cols {
		if c.indexOf != nil {
			listed[c.name] = i
		}
	}
	for _, c := range cols {
		if c.enc == nil {
			continue
		}
		for _, bi := range c.enc.IndexTargets() {
			if _, ok := listed[bi.Column]; !ok {
				a.insert(c.end, ", "+identLike(bi.Column, c.quoted))
			}
		}
	}
	for _, row := range sel.ValuesLists {
		items := row.GetList().GetItems()
		if len(items) != len(cols) {
			return errorf(CodeSyntaxError, "INSERT has %d target columns but %d values in a row", len(cols), len(items)).at(a.sql, firstLocation(row))
		}
		tenant, haveTenant, err := a.rowTenant(t, cols, items)
		if err != nil {
			return err
		}
		own := clientIndexes{}
		for name, i := range listed {
			own[name] = items[i]
		}
		for i, c := range cols {
			if c.indexOf != nil {
				continue // written with c.indexOf's value
			}
			if c.enc == nil {
				if err := a.expr(items[i], sc, "VALUES"); err != nil {
					return err
				}
				continue
			}
			v, err := a.classify(items[i], c.enc, false)
			if err != nil {
				return err
			}
			if (v.kind == vParam || v.kind == vLiteral) && !haveTenant {
				return missingTenant(t, "in the same VALUES row, as a parameter or a literal", v.loc, a.sql)
			}
			// A row of one value: its own parentheses are the row's.
			keep := 0
			if len(items) == 1 {
				keep = 1
			}
			if err := a.writeValue(v, c.enc, tenant, valuesSep, own, a.parenEnd(v.start, v.end, keep)); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeValue encrypts v into col and, when col is blind-indexed, inserts
// each of its indexes (the next one too, during a rotation) at after, the
// end of the value and of the parentheses around it, each preceded by
// sep(index column): ", " in VALUES, ", email_bidx = " in SET lists.
func (a *analyzer) writeValue(v value, col *policy.Column, tenant ValueRef, sep func(bidxColumn string) string, own clientIndexes, after int) *Error {
	if err := a.sealValue(v, col, tenant); err != nil {
		return err
	}
	for _, bi := range col.IndexTargets() {
		if n := own[bi.Column]; n != nil {
			if err := a.replaceIndex(n, v, col, bi); err != nil {
				return err
			}
			continue
		}
		before, behind := "", ""
		if a.fillsUnique(v, col, bi) {
			before, behind = uniqueWrap()
		}
		switch v.kind {
		case vParam:
			a.uses = append(a.uses, paramUse{number: v.param, start: after, insert: true, prefix: sep(bi.Column) + before, suffix: behind, action: IndexAction(col, bi), col: col})
		case vLiteral:
			a.slot(after, after, Slot{Action: IndexAction(col, bi), Column: col, Source: v.lit}, sep(bi.Column)+before)
			if behind != "" {
				a.insert(after, behind)
			}
		case vNull:
			a.insert(after, sep(bi.Column)+"NULL")
		case vDefault:
			a.insert(after, sep(bi.Column)+"DEFAULT")
		}
	}
	return nil
}

// clientIndexes are the values the client wrote to blind-index columns
// beside their encrypted columns, by column name: a row read with SELECT *
// and written back (ActiveRecord's dup, Knex), ON CONFLICT … SET email_bidx
// = EXCLUDED.email_bidx.
type clientIndexes map[string]*pg.Node

// replaceIndex puts the blind index bi of v, a value written to col, where
// the client wrote its own value of bi's column (n): pgveil writes the
// index it computes, and a parameter the client bound for it is no longer
// used (Ignore: sent as NULL).
func (a *analyzer) replaceIndex(n *pg.Node, v value, col *policy.Column, bi *policy.BlindIndex) *Error {
	bv, err := a.classify(n, nil, false)
	if err != nil {
		return err
	}
	switch bv.kind {
	case vParam, vLiteral, vNull, vDefault:
	default:
		e := colErr(CodeGeneratedAlways, col, "leave "+bi.Column+" out, or pass it as a parameter: pgveil writes the blind index itself",
			"column %s.%s, the blind index of %s, is written here by an expression pgveil cannot replace with the index it computes", col.Table.QualifiedName(), bi.Column, col.QualifiedName())
		e.Column = bi.Column
		return e.at(a.sql, bv.loc)
	}
	if a.fillsUnique(v, col, bi) {
		before, behind := uniqueWrap()
		a.edits = append(a.edits, edit{start: bv.start, end: bv.start, text: before, sub: -1, seq: len(a.edits)})
		a.edits = append(a.edits, edit{start: bv.end, end: bv.end, text: behind, sub: lastSub, seq: len(a.edits)})
	}
	if bv.kind == vParam {
		if a.dropped == nil {
			a.dropped = map[int32]int{}
		}
		a.dropped[bv.param]++
	}
	switch v.kind {
	case vParam:
		a.uses = append(a.uses, paramUse{number: v.param, start: bv.start, end: bv.end, elsewhere: true, action: IndexAction(col, bi), col: col})
	case vLiteral:
		a.slot(bv.start, bv.end, Slot{Action: IndexAction(col, bi), Column: col, Source: v.lit}, "")
	case vNull:
		a.replace(bv.start, bv.end, "NULL")
	case vDefault:
		a.replace(bv.start, bv.end, "DEFAULT")
	}
	return nil
}

// sealValue encrypts v, a value written to col, in place: a parameter or a
// literal under tenant, NULL (its casts dropped) and DEFAULT as they are.
func (a *analyzer) sealValue(v value, col *policy.Column, tenant ValueRef) *Error {
	if tenant.Kind == RefLookup && (v.kind == vParam || v.kind == vLiteral) {
		a.lookupUsed = true
	}
	switch v.kind {
	case vParam:
		a.uses = append(a.uses, paramUse{number: v.param, start: v.start, end: v.end, bare: v.bare, action: Encrypt, col: col, tenant: tenant})
	case vLiteral:
		a.slot(v.start, v.end, Slot{Action: Encrypt, Column: col, Source: v.lit, Tenant: tenant}, "")
	case vNull:
		if !v.bare {
			a.replace(v.start, v.end, "NULL")
		}
	case vDefault:
	default:
		return colErr(CodeFeatureNotSupported, col, "pass the value as a parameter or a literal; compute it in the application",
			"a value written to encrypted column %s must be a parameter, a literal, NULL or DEFAULT", col.QualifiedName()).at(a.sql, v.loc)
	}
	return nil
}

// valuesSep separates the values of a VALUES row.
func valuesSep(string) string { return ", " }

// onConflict rewrites ON CONFLICT: an arbiter naming an encrypted column
// names its blind index instead, and DO UPDATE SET col = EXCLUDED.col also
// copies the blind index.
func (a *analyzer) onConflict(oc *pg.OnConflictClause, t *policy.Table, target *rel, sel *pg.SelectStmt, cols []insCol, level *scope) *Error {
	if inf := oc.Infer; inf != nil {
		for _, n := range inf.IndexElems {
			ie := n.GetIndexElem()
			if ie == nil {
				continue
			}
			if ie.Name != "" && t != nil {
				if c := t.Column(ie.Name); c != nil {
					if c.BlindIndex == nil {
						return colErr(CodeFeatureNotSupported, c, blindIndexHint(c)+" (unique: true)",
							"ON CONFLICT on encrypted column %s needs a blind index", c.QualifiedName()).at(a.sql, inf.Location)
					}
					if err := a.renameArbiter(inf, ie.Name, c.BlindIndex.Column); err != nil {
						return err
					}
				}
			}
			if err := a.expr(ie.Expr, level, "an ON CONFLICT arbiter"); err != nil {
				return err
			}
		}
		if err := a.expr(inf.WhereClause, level, "ON CONFLICT … WHERE"); err != nil {
			return err
		}
	}
	if oc.Action != pg.OnConflictAction_ONCONFLICT_UPDATE {
		return nil
	}
	excluded := &rel{name: "excluded", cols: target.cols, complete: target.complete, loc: -1}
	upd := &scope{parent: level.parent, rels: []*rel{target, excluded}}
	if err := a.conflictTenant(oc, t, upd, excluded); err != nil {
		return err
	}
	var tenant ValueRef
	haveTenant := false
	var others []ValueRef // the tenants of the other rows of a multi-row VALUES
	rows := valueRows(sel, len(cols))
	switch {
	case len(rows) == 1:
		tenant, haveTenant, _ = a.rowTenant(t, cols, rows[0])
	case t == nil || t.KeyContext == "":
		tenant, haveTenant = ValueRef{Kind: RefNone}, true
	case len(rows) > 1:
		// SET col = $n over several rows (Knex's merge({col: v})): one
		// value, sealed under the first row's tenant, and the proxy checks
		// that every row names the same tenant before it seals.
		for i, row := range rows {
			ref, ok, _ := a.rowTenant(t, cols, row)
			if !ok || ref.Kind != RefParam && ref.Kind != RefLiteral {
				haveTenant, others = false, nil
				break
			}
			if i == 0 {
				tenant, haveTenant = ref, true
			} else if ref != tenant {
				others = append(others, ref)
			}
		}
	}
	usesBefore, editsBefore := len(a.uses), len(a.edits)
	if err := a.setList(oc.TargetList, t, upd, false, tenant, haveTenant, excluded, "as a parameter or a literal of a VALUES whose rows name their tenant"); err != nil {
		return err
	}
	if len(others) > 0 {
		params, literals := a.sealedUnder(tenant, usesBefore, editsBefore)
		if literals && tenant.Kind == RefParam {
			// A literal is sealed when the text is rendered, before a
			// parameter tenant is bound.
			return missingTenant(t, "as a literal beside a literal value, or pass the value as a parameter", oc.Location, a.sql)
		}
		if params || literals {
			a.st.SameTenant = append(a.st.SameTenant, TenantSet{Table: t, Refs: append([]ValueRef{tenant}, others...)})
		}
	}
	if err := a.expr(oc.WhereClause, upd, "ON CONFLICT … WHERE"); err != nil {
		return err
	}
	return a.tenantGuard(oc, t, target)
}

// valueRows is the rows of an INSERT's VALUES, or of the VALUES list of an
// INSERT … SELECT … FROM (VALUES …) (insertmany.go), each row's items
// in the order of the INSERT's ncols columns.
func valueRows(sel *pg.SelectStmt, ncols int) [][]*pg.Node {
	if sel == nil {
		return nil
	}
	var out [][]*pg.Node
	if len(sel.ValuesLists) > 0 {
		for _, row := range sel.ValuesLists {
			out = append(out, row.GetList().GetItems())
		}
		return out
	}
	vs, ok := matchValuesSelect(sel, ncols)
	if !ok {
		return nil
	}
	for _, row := range vs.rows {
		items := row.GetList().GetItems()
		mapped := make([]*pg.Node, ncols)
		for i, k := range vs.colOf {
			if k >= len(items) {
				return nil
			}
			if k >= 0 {
				mapped[i] = items[k]
			}
		}
		out = append(out, mapped)
	}
	return out
}

// sealedUnder reports whether parameters, and literals, were sealed under
// tenant by the parameter uses and edits made after the first uses and
// edits.
func (a *analyzer) sealedUnder(tenant ValueRef, uses, edits int) (params, literals bool) {
	for _, u := range a.uses[uses:] {
		params = params || u.action == Encrypt && u.tenant == tenant
	}
	for _, e := range a.edits[edits:] {
		literals = literals || e.slot != nil && e.slot.Action == Encrypt && e.slot.Tenant == tenant
	}
	return params, literals
}

// conflictTenant refuses a DO UPDATE that sets the key_context column to
// anything but EXCLUDED's: it would move the conflicting row to another
// tenant, whose key does not open the values it keeps. (tenantGuard then
// makes SET org_id = EXCLUDED.org_id change nothing.)
func (a *analyzer) conflictTenant(oc *pg.OnConflictClause, t *policy.Table, upd *scope, excluded *rel) *Error {
	if t == nil || t.KeyContext == "" {
		return nil
	}
	for _, n := range oc.TargetList {
		rt := n.GetResTarget()
		if rt == nil || rt.Name != t.KeyContext {
			continue
		}
		if cr := rt.Val.GetColumnRef(); cr != nil && len(rt.Indirection) == 0 {
			if ref, err := a.resolveColumn(cr, upd); err == nil && ref.rel == excluded && ref.idx >= 0 && excluded.cols[ref.idx].name == t.KeyContext {
				continue
			}
		}
		return tableErr(CodeFeatureNotSupported, t, "set "+t.KeyContext+" = EXCLUDED."+t.KeyContext+", or leave it out",
			"ON CONFLICT … DO UPDATE of %s may set %s only to EXCLUDED.%s: the conflicting row would move to another tenant and keep values sealed under its old tenant's key",
			t.QualifiedName(), t.KeyContext, t.KeyContext).at(a.sql, rt.Location)
	}
	return nil
}

// tenantGuard keeps ON CONFLICT DO UPDATE within the inserting tenant.
// The values it writes are sealed under the tenant of the VALUES row; a
// blind index unique across tenants can make the conflicting row another
// tenant's, whose key must not be mixed in (its row would no longer open).
// So the update only applies when the existing row's key_context equals
// the new one:
//
//	DO UPDATE SET phone = EXCLUDED.phone
//	  → DO UPDATE SET phone = EXCLUDED.phone WHERE users.org_id = EXCLUDED.org_id
//
// A conflict with another tenant's row then inserts and updates nothing,
// as a DO UPDATE whose WHERE is false does.
func (a *analyzer) tenantGuard(oc *pg.OnConflictClause, t *policy.Table, target *rel) *Error {
	if t == nil || t.KeyContext == "" {
		return nil
	}
	writesEncrypted := false
	for _, n := range oc.TargetList {
		if rt := n.GetResTarget(); rt != nil && (t.Column(rt.Name) != nil || rt.Name == t.KeyContext) {
			writesEncrypted = true // or sets the tenant (conflictTenant): a row of another stays
		}
	}
	if !writesEncrypted {
		return nil
	}
	kc := quoteIdent(t.KeyContext)
	guard := quoteIdent(target.name) + "." + kc + " = EXCLUDED." + kc
	if a.tenantTextGuard(t) {
		// citext 'AbC' = 'abc', float 0 = -0, …: another tenant's row
		// (review 19c: the values were sealed under the inserted row's
		// tenant and written into the other's, PV001).
		guard = "(" + guard + " AND " + TextOf(quoteIdent(target.name)+"."+kc) + " = " + TextOf("EXCLUDED."+kc) + ")"
	}
	end := a.onConflictEnd(int(oc.Location))
	if oc.WhereClause != nil {
		start, ok := a.doUpdateWhere(int(oc.Location))
		if !ok {
			return errorf(CodeInternalError, "cannot locate ON CONFLICT … DO UPDATE … WHERE; statement refused").at(a.sql, oc.Location)
		}
		a.edits = append(a.edits, edit{start: start, end: start, text: "(", sub: -1, seq: len(a.edits)})
		a.edits = append(a.edits, edit{start: end, end: end, text: ") AND " + guard, sub: lastSub, seq: len(a.edits)})
		return nil
	}
	// After whatever else ends there (a CASE's blind-index copy).
	a.edits = append(a.edits, edit{start: end, end: end, text: " WHERE " + guard, sub: lastSub, seq: len(a.edits)})
	return nil
}

// doUpdateWhere is the start of the condition after the WHERE keyword of DO UPDATE … WHERE (not
// the arbiter's index predicate, which comes before DO UPDATE).
func (a *analyzer) doUpdateWhere(from int) (int, bool) {
	l := lexer{s: a.sql[:a.stmtEnd], pos: from, backslash: a.backslash}
	depth, update := 0, false
	for t := l.next(); t.kind != tEOF && t.kind != tError; t = l.next() {
		switch {
		case l.isPunct(t, "("):
			depth++
		case l.isPunct(t, ")"):
			depth--
		case depth == 0 && t.kind == tIdent && strings.EqualFold(l.text(t), "update"):
			update = true
		case depth == 0 && update && t.kind == tIdent && strings.EqualFold(l.text(t), "where"):
			if next := l.next(); next.kind != tEOF && next.kind != tError {
				return next.start, true
			}
			return 0, false
		}
	}
	return 0, false
}

// onConflictEnd is where the ON CONFLICT clause ends: before RETURNING at
// the top level, else at the end of the statement's last token.
func (a *analyzer) onConflictEnd(from int) int {
	l := lexer{s: a.sql[:a.stmtEnd], pos: from, backslash: a.backslash}
	depth, last := 0, from
	for t := l.next(); t.kind != tEOF && t.kind != tError; t = l.next() {
		switch {
		case l.isPunct(t, "("):
			depth++
		case l.isPunct(t, ")"):
			depth--
		case depth == 0 && t.kind == tIdent && strings.EqualFold(l.text(t), "returning"):
			return last
		}
		if !l.isPunct(t, ";") {
			last = t.end
		}
	}
	return last
}

// renameArbiter replaces the name of an ON CONFLICT (…) arbiter column.
func (a *analyzer) renameArbiter(inf *pg.InferClause, name, bidx string) *Error {
	l := lexer{s: a.sql[:a.stmtEnd], pos: int(inf.Location), backslash: a.backslash}
	depth := 0
	for {
		t := l.next()
		switch {
		case t.kind == tEOF || t.kind == tError:
			return errorf(CodeInternalError, "cannot locate ON CONFLICT column %s; statement refused", name).at(a.sql, inf.Location)
		case l.isPunct(t, "("):
			depth++
		case l.isPunct(t, ")"):
			depth--
			if depth <= 0 {
				return errorf(CodeInternalError, "cannot locate ON CONFLICT column %s; statement refused", name).at(a.sql, inf.Location)
			}
		case depth == 1 && identValue(l.text(t), t.kind) == name:
			a.replace(t.start, t.end, identLike(bidx, t.kind == tQIdent))
			return nil
		}
	}
}

// identValue returns the name an identifier token denotes: unquoted names
// fold to lower case, quoted ones keep theirs.
func identValue(text string, kind tokKind) string {
	switch kind {
	case tIdent:
		return lowerASCII(text)
	case tQIdent:
		if len(text) >= 2 && text[0] == '"' {
			return unquoteDouble(text[1 : len(text)-1])
		}
	}
	return ""
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i := range b {
		b[i] = lowerTable[b[i]]
	}
	return string(b)
}

func unquoteDouble(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		out = append(out, s[i])
		if s[i] == '"' && i+1 < len(s) && s[i+1] == '"' {
			i++
		}
	}
	return string(out)
}
