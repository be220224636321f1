package rewrite

import (
	"fmt"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// updateStmt plans UPDATE. An encrypted column set to a parameter or a
// literal is encrypted under the row's tenant, which the statement must
// state: SET org_id = … (the row's tenant after the update), or else an
// equality org_id = … among the top-level ANDs of WHERE. A blind-indexed
// column's index is set beside it: "SET email = $1" becomes
// "SET email = $1, email_bidx = $3".
func (a *analyzer) updateStmt(up *pg.UpdateStmt, sc *scope, mode queryMode) (*queryResult, *Error) {
	if up.WithClause != nil {
		pop, err := a.withClause(up.WithClause, sc)
		if err != nil {
			return nil, err
		}
		defer pop()
	}
	if err := a.settingsWrite(up.Relation); err != nil {
		return nil, err
	}
	if err := a.tenantView(up.Relation, "UPDATE"); err != nil {
		return nil, err
	}
	target, t, err := a.targetRel(up.Relation)
	if err != nil {
		return nil, err
	}
	level := &scope{parent: sc, rels: []*rel{target}}
	for _, f := range up.FromClause {
		if _, err := a.fromItem(f, level); err != nil {
			return nil, err
		}
	}
	if err := a.expr(up.WhereClause, level, "WHERE"); err != nil {
		return nil, err
	}
	if t != nil && t.KeyContext != "" {
		for _, n := range up.TargetList {
			if rt := n.GetResTarget(); rt != nil && rt.Name == t.KeyContext && rt.Val != nil {
				if err := a.tenantCastsKeep(t, rt.Val); err != nil {
					return nil, err
				}
			}
		}
	}
	tenant, have := a.updateTenant(up, t, target, level)
	lookup := !have && sc == nil && a.mayLookUpTenant(up, t, mode)
	if lookup {
		tenant, have = ValueRef{Kind: RefLookup}, true
	}
	where := "in SET, or as " + keyContext(t) + " = $n (or a literal) among the top-level ANDs of WHERE"
	if t != nil && t.KeyContext != "" && !have && setsColumn(up, t.KeyContext) {
		where = "as a parameter or a literal in SET (" + t.KeyContext + " = $n), not an expression: the row's tenant after the UPDATE selects the key"
	}
	a.resealed = nil // this UPDATE's writes, not a CTE's
	fill, err := a.startUniqueUpdate(up, t, mode)
	if err != nil {
		return nil, err
	}
	outer := a.fill
	a.fill = fill
	err = a.setList(up.TargetList, t, level, len(up.FromClause) > 0, tenant, have, nil, where)
	a.fill = outer
	if err != nil {
		return nil, err
	}
	a.emitUniqueFill(fill)
	if lookup && a.lookupUsed {
		if err := a.tenantLookup(up, t, target); err != nil {
			return nil, err
		}
	}
	if t != nil && t.KeyContext != "" && setsColumn(up, t.KeyContext) {
		if err := a.tenantMove(up, t, target, sc, mode); err != nil {
			return nil, err
		}
	}
	return a.returning(up.ReturningList, level, mode)
}

// mayLookUpTenant reports whether pgveil may look up the tenant of an
// UPDATE that does not name it: a top-level UPDATE of one table (no FROM,
// no WITH, not WHERE CURRENT OF), as ORMs write them (UPDATE … SET email =
// $1 WHERE id = $2).
func (a *analyzer) mayLookUpTenant(up *pg.UpdateStmt, t *policy.Table, mode queryMode) bool {
	// SET org_id = <something pgveil cannot read>: the row's tenant after
	// the UPDATE is not the one a lookup finds.
	return t != nil && t.KeyContext != "" && !setsColumn(up, t.KeyContext) && a.mayLookUp(up, mode)
}

// mayLookUp reports whether pgveil may read the rows of an UPDATE before
// sending it: a top-level UPDATE of one table (no FROM, no WITH, not WHERE
// CURRENT OF), not inside EXPLAIN or COPY (…).
func (a *analyzer) mayLookUp(up *pg.UpdateStmt, mode queryMode) bool {
	if mode != modeTop || a.noOutputs || a.st.Kind != KindUpdate || a.st.Copy != nil ||
		len(up.FromClause) > 0 || up.WithClause != nil {
		return false
	}
	current := false
	walkAll(up.WhereClause, func(n *pg.Node) bool {
		current = current || n.GetCurrentOfExpr() != nil
		return !current
	})
	return !current
}

// setsColumn reports whether an UPDATE's SET list assigns column name.
func setsColumn(up *pg.UpdateStmt, name string) bool {
	for _, n := range up.TargetList {
		if rt := n.GetResTarget(); rt != nil && rt.Name == name {
			return true
		}
	}
	return false
}

// tenantLookup records the tenant lookup of an UPDATE (Stmt.Lookup) and
// adds its guard: WHERE (<condition>) AND <key_context> = <tenant>.
func (a *analyzer) tenantLookup(up *pg.UpdateStmt, t *policy.Table, target *rel) *Error {
	if a.maxParam > 0 {
		for _, e := range a.edits {
			if e.slot != nil && e.slot.Tenant.Kind == RefLookup {
				// A literal is sealed when the statement is prepared, and
				// the tenant of a statement with parameters is looked up
				// at each execution.
				e := missingTenant(t, "", int32(e.start), a.sql)
				e.Hint = "pass the encrypted values as parameters (pgveil then looks the tenant up), or write " + t.KeyContext + " = … in WHERE"
				return e
			}
		}
	}
	lk, guardAt, join, err := a.newLookup(up, t, target)
	if err != nil {
		return err
	}
	prefix := join + lk.Column + " = "
	// With TextGuard: (org = <t> AND CAST(org AS text) COLLATE "C" =
	// CAST((CASE WHEN false THEN org ELSE <t> END) AS text) COLLATE "C"),
	// <t> read as the column's type (a char(n) tenant's padding goes as
	// the column's own does).
	var mid, after string
	if lk.TextGuard {
		prefix = join + "(" + lk.Column + " = "
		mid = " AND " + TextOf(lk.Column) + " = CAST((CASE WHEN false THEN " + lk.Column + " ELSE "
		after = " END) AS pg_catalog.text) COLLATE pg_catalog.\"C\")"
	}
	if a.maxParam > 0 {
		a.lookupGuard = &edit{start: guardAt, end: guardAt, text: prefix, sub: lastSub}
		if lk.TextGuard {
			a.lookupGuardAfter = mid + "\x00" + after
		}
	} else {
		a.edits = append(a.edits,
			edit{start: guardAt, end: guardAt, text: prefix, sub: lastSub, seq: len(a.edits)},
			edit{start: guardAt, end: guardAt, slot: &Slot{Action: TenantLookup, Source: -1}, sub: lastSub, seq: len(a.edits) + 1})
		if lk.TextGuard {
			a.edits = append(a.edits,
				edit{start: guardAt, end: guardAt, text: mid, sub: lastSub, seq: len(a.edits)},
				edit{start: guardAt, end: guardAt, slot: &Slot{Action: TenantLookup, Source: -1}, sub: lastSub, seq: len(a.edits) + 1},
				edit{start: guardAt, end: guardAt, text: after, sub: lastSub, seq: len(a.edits) + 2})
		}
	}
	a.st.Lookup = lk
	a.valueDependent = true // the lookup's spans are this text's
	return nil
}

// newLookup starts the Lookup of an UPDATE (a tenant lookup or the check of
// a tenant move): the relation's and the WHERE's spans, the key_context
// column as the relation names it, and the parameters the WHERE uses. The
// WHERE is put in parentheses for a guard at guardAt, after join (" WHERE
// " or ") AND ").
func (a *analyzer) newLookup(up *pg.UpdateStmt, t *policy.Table, target *rel) (lk *Lookup, guardAt int, join string, err *Error) {
	relStart := int(up.Relation.Location)
	relEnd, setEnd, whereStart, whereEnd, ok := a.updateClauses(relStart)
	if !ok {
		return nil, 0, "", errorf(CodeInternalError, "cannot locate the clauses of this UPDATE; statement refused").at(a.sql, up.Relation.Location)
	}
	lk = &Lookup{Table: t, Rel: [2]int{relStart, relEnd}, Where: [2]int{-1, -1},
		Column: quoteIdent(target.name) + "." + quoteIdent(t.KeyContext), Only: !up.Relation.Inh, Uses: make([]bool, a.maxParam),
		TextGuard: a.tenantTextGuard(t), Send: a.tenantSend(t)}
	if whereStart < 0 {
		return lk, setEnd, " WHERE ", nil
	}
	lk.Where = [2]int{whereStart, whereEnd}
	a.paramsIn(whereStart, whereEnd, lk.Uses)
	a.edits = append(a.edits, edit{start: whereStart, end: whereStart, text: "(", sub: -2, seq: len(a.edits)})
	return lk, whereEnd, ") AND ", nil
}

// paramsIn marks in uses the parameters that sql[start:end] references.
func (a *analyzer) paramsIn(start, end int, uses []bool) {
	pl := lexer{s: a.sql[:end], pos: start, backslash: a.backslash}
	for tk := pl.next(); tk.kind != tEOF && tk.kind != tError; tk = pl.next() {
		if tk.kind == tParam {
			if n, err := strconv.Atoi(a.sql[tk.start+1 : tk.end]); err == nil && n >= 1 && n <= len(uses) {
				uses[n-1] = true
			}
		}
	}
}

// tenantMove guards an UPDATE that sets its rows' tenant (SET org_id = …)
// and keeps encrypted values of theirs: those stay sealed under the old
// tenant's key and would no longer open in a row of another tenant (PV001
// to every reader). pgveil first checks, with a lookup of its own, that no
// row the UPDATE matches has another tenant and a value kept:
//
//	SELECT DISTINCT users.org_id FROM users WHERE (<where>)
//	  AND (users.org_id IS DISTINCT FROM <new>) AND (users.email IS NOT NULL OR …)
//
// and refuses the UPDATE when one has. It sends the UPDATE guarded by the
// same condition, so that a row changed in between is left alone:
//
//	UPDATE users SET org_id = $1, phone = $2 WHERE (id = $3)
//	  AND (users.org_id = $1 OR (users.email IS NULL AND …))
//
// Rows whose encrypted columns the UPDATE writes anew, or which hold none,
// move freely.
func (a *analyzer) tenantMove(up *pg.UpdateStmt, t *policy.Table, target *rel, sc *scope, mode queryMode) *Error {
	var kept []*policy.Column
	for _, c := range t.Columns {
		if !a.resealed[c] {
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	names := make([]string, len(kept))
	for i, c := range kept {
		names[i] = c.Name
	}
	hint := fmt.Sprintf("set every encrypted column of %s (%s) in the same UPDATE: pgveil seals them under the new tenant", t.QualifiedName(), strings.Join(names, ", "))
	var val *pg.Node
	loc := up.Relation.Location
	for _, n := range up.TargetList {
		if rt := n.GetResTarget(); rt != nil && rt.Name == t.KeyContext {
			val, loc = rt.Val, rt.Location
		}
	}
	v := value{kind: vOther}
	if val != nil && val.GetMultiAssignRef() == nil {
		var err *Error
		if v, err = a.classify(val, nil, false); err != nil {
			return err
		}
	}
	if v.kind != vParam && v.kind != vLiteral {
		return tableErr(CodeFeatureNotSupported, t, hint,
			"this UPDATE sets %s to a value pgveil cannot read and keeps encrypted values of %s (%s), sealed under each row's old tenant: moved, they would no longer open",
			t.KeyContext, t.QualifiedName(), strings.Join(names, ", ")).at(a.sql, loc)
	}
	if sc != nil || !a.mayLookUp(up, mode) {
		return tableErr(CodeFeatureNotSupported, t, hint+"; or send it as a plain UPDATE (no FROM, WITH or CURRENT OF), which pgveil checks",
			"pgveil cannot check that this UPDATE of %s moves no row with encrypted values (%s) to another tenant (%s): they would no longer open",
			t.QualifiedName(), strings.Join(names, ", "), t.KeyContext).at(a.sql, loc)
	}
	lk, guardAt, join, err := a.newLookup(up, t, target)
	if err != nil {
		return err
	}
	nulls, values := make([]string, len(kept)), make([]string, len(kept))
	for i, c := range kept {
		ref := quoteIdent(target.name) + "." + quoteIdent(c.Name)
		nulls[i], values[i] = ref+" IS NULL", ref+" IS NOT NULL"
	}
	// An unquoted number is compared as the column stores it: a text
	// column its output text (SET org = 007 stores '7', and org = 007,
	// text = integer, has no operator), an integer column the number
	// rounded (7.5 stores 8, and org_id = 7.5 matches no row).
	cast := ""
	if v.kind == vLiteral && val.GetTypeCast() == nil && LiteralIsNumber(a.sql, a.st.Literals[v.lit]) {
		cast = numberTenantCast(a.tenantTypeOID(t))
		if n, _, err := LiteralValue(a.sql, a.st.Literals[v.lit]); cast != "text" && err == nil && !strings.ContainsAny(string(n), ".eE") {
			cast = "" // an integer compares as it is
		}
	}
	lk.Move = &Move{Tenant: [2]int{v.start, v.end}, Kept: strings.Join(values, " OR "), Columns: names, Cast: cast}
	if v.kind == vParam && int(v.param) <= len(lk.Uses) {
		lk.Uses[v.param-1] = true
	}
	sub := lastSub
	add := func(e edit) {
		e.start, e.end, e.sub, e.seq = guardAt, guardAt, sub, len(a.edits)
		sub++
		a.edits = append(a.edits, e)
	}
	value := func() {
		if cast != "" {
			add(edit{text: "CAST("})
			add(edit{copied: true, from: v.start, to: v.end})
			add(edit{text: " AS " + cast + ")"})
		} else {
			add(edit{copied: true, from: v.start, to: v.end})
		}
	}
	add(edit{text: join + "(" + lk.Column + " = "})
	value()
	if lk.TextGuard {
		// … AND CAST(org AS text) COLLATE "C" = CAST((CASE WHEN false
		// THEN org ELSE <new> END) AS text) COLLATE "C"
		add(edit{text: " AND " + TextOf(lk.Column) + " = CAST((CASE WHEN false THEN " + lk.Column + " ELSE "})
		value()
		add(edit{text: " END) AS pg_catalog.text) COLLATE pg_catalog.\"C\""})
	}
	add(edit{text: " OR (" + strings.Join(nulls, " AND ") + "))"})
	a.st.Lookup = lk
	a.valueDependent = true // the lookup's spans are this text's
	return nil
}

// updateClauses reads an UPDATE's text from where its relation starts:
// where the relation (with its alias) ends, where the SET list ends, and
// the span of the WHERE condition (-1 when there is none), before
// RETURNING or the statement's end. Clause keywords count only outside
// parentheses. (An UPDATE … FROM is not looked up.)
func (a *analyzer) updateClauses(from int) (relEnd, setEnd, whereStart, whereEnd int, ok bool) {
	l := lexer{s: a.sql[:a.stmtEnd], pos: from, backslash: a.backslash}
	relEnd, setEnd, whereStart, whereEnd = -1, -1, -1, -1
	last, depth, inWhere := -1, 0, false
	for {
		t := l.next()
		switch {
		case t.kind == tError:
			return 0, 0, 0, 0, false
		case t.kind == tEOF || depth == 0 && (l.isKeyword(t, "returning") || l.isPunct(t, ";")):
			if inWhere {
				whereEnd = last
			} else {
				setEnd = last
			}
			return relEnd, setEnd, whereStart, whereEnd, relEnd >= 0 && setEnd > relEnd && (whereStart < 0 || whereEnd > whereStart)
		case depth == 0 && relEnd < 0 && l.isKeyword(t, "set"):
			relEnd = last
		case depth == 0 && l.isKeyword(t, "where") && !inWhere:
			setEnd, inWhere = last, true
			whereStart = tokenAt(a.sql[:a.stmtEnd], t.end, a.backslash).start
		case l.isPunct(t, "(") || l.isPunct(t, "["):
			depth++
		case l.isPunct(t, ")") || l.isPunct(t, "]"):
			depth--
		}
		last = t.end
	}
}

// numberTenantCast is the type an unquoted number written to a
// key_context column of type oid is compared as, "" for as it is: text
// for the text-like types PostgreSQL stores its output text in (text,
// varchar, bpchar, name; the catalog not telling: pgveil reads the tenant
// as text then), the column's type for the integer types.
func numberTenantCast(oid uint32) string {
	switch oid {
	case 0, 19, 25, 1042, 1043:
		return "text"
	case 20:
		return "int8"
	case 21:
		return "int2"
	case 23:
		return "int4"
	}
	return ""
}

func keyContext(t *policy.Table) string {
	if t == nil {
		return ""
	}
	return t.KeyContext
}

// targetRel resolves the target table of UPDATE/DELETE.
func (a *analyzer) targetRel(rv *pg.RangeVar) (*rel, *policy.Table, *Error) {
	ref, err := a.resolveTable(rv)
	if err != nil {
		return nil, nil, err
	}
	a.pinSchema(rv, ref)
	r, err := a.baseRel(ref, rv.Alias, rv.Location)
	if err != nil {
		return nil, nil, err
	}
	return r, ref.table, nil
}

// tenantView refuses an UPDATE (or MERGE) through a view that reads the
// key_context column of a configured table (Catalog.TenantViews).
func (a *analyzer) tenantView(rv *pg.RangeVar, what string) *Error {
	if a.cat == nil || len(a.cat.TenantViews) == 0 {
		return nil
	}
	ref, err := a.resolveName(rv)
	if err != nil {
		return err
	}
	reads, ok := a.cat.TenantViews[ref.schema+"."+ref.name]
	if !ok && ref.schema == "" && a.path.unknown {
		// Resolved by name alone (search path unknown): any such view of
		// that name could be meant.
		for k, r := range a.cat.TenantViews {
			if k[strings.IndexByte(k, '.')+1:] == ref.name {
				reads, ok, ref.schema = r, true, k[:strings.IndexByte(k, '.')]
				break
			}
		}
	}
	if !ok {
		return nil
	}
	e := errorf(CodeFeatureNotSupported, "%s through view %s.%s, which reads the tenant column of configured table %s, is not supported: it could move rows to another tenant, whose key does not open the values they keep", what, ref.schema, ref.name, reads)
	e.Hint = "update " + reads + " directly (pgveil checks a change of tenant there)"
	e.Schema, e.Table = ref.schema, ref.name
	return e.at(a.sql, rv.Location)
}

// updateTenant finds the tenant of an UPDATE's writes.
func (a *analyzer) updateTenant(up *pg.UpdateStmt, t *policy.Table, target *rel, level *scope) (ValueRef, bool) {
	if t == nil || t.KeyContext == "" {
		return ValueRef{Kind: RefNone}, true
	}
	for _, n := range up.TargetList {
		if rt := n.GetResTarget(); rt != nil && rt.Name == t.KeyContext && len(rt.Indirection) == 0 {
			if rt.Val.GetMultiAssignRef() != nil {
				return ValueRef{}, false
			}
			return a.tenantValue(rt.Val)
		}
	}
	if !a.tenantTypeKnown(t) {
		// citext, float8, …: the column's own equality (org_id = 'ACME'
		// matches 'acme' on citext) is not the tenant text's. Looked up.
		return ValueRef{}, false
	}
	for _, c := range conjuncts(up.WhereClause) {
		e := c.GetAExpr()
		if e == nil || e.Kind != pg.A_Expr_Kind_AEXPR_OP || lastName(e.Name) != "=" {
			continue
		}
		for _, side := range [][2]*pg.Node{{e.Lexpr, e.Rexpr}, {e.Rexpr, e.Lexpr}} {
			cr := side[0].GetColumnRef()
			if cr == nil {
				continue
			}
			ref, err := a.resolveColumn(cr, level)
			if err != nil || ref.rel != target || ref.idx < 0 || target.cols[ref.idx].name != t.KeyContext {
				continue
			}
			if a.tenantCastsKeep(t, side[1]) != nil {
				continue // a cast that may change it: looked up instead
			}
			if v, ok := a.tenantValue(side[1]); ok {
				return v, true
			}
		}
	}
	return ValueRef{}, false
}

// tenantTypeKnown reports whether t's key_context column has a type whose
// values pgveil names tenants by as PostgreSQL compares them: one of the
// logical types, or bpchar (trailing spaces dropped); or the catalog does
// not tell.
func (a *analyzer) tenantTypeKnown(t *policy.Table) bool {
	if a.tenantNondeterministic(t) {
		return false // org = 'abc' matches 'AbC' rows too: looked up
	}
	oid := a.tenantTypeOID(t)
	if oid == 0 || oid == 1042 {
		return true
	}
	for _, lt := range policy.LogicalTypes {
		if lt.OID() == oid {
			return true
		}
	}
	return false
}

// tenantNondeterministic reports whether t's key_context column has a
// nondeterministic collation.
func (a *analyzer) tenantNondeterministic(t *policy.Table) bool {
	if a.cat == nil {
		return false
	}
	if ct := a.cat.Tables[t.QualifiedName()]; ct != nil {
		for _, c := range ct.Columns {
			if c.Name == t.KeyContext {
				return c.Nondeterministic
			}
		}
	}
	return false
}

// tenantValue reads a key_context value: a parameter, a literal or NULL.
func (a *analyzer) tenantValue(n *pg.Node) (ValueRef, bool) {
	v, err := a.classify(n, nil, false)
	if err != nil {
		return ValueRef{}, false
	}
	switch v.kind {
	case vParam:
		return ValueRef{Kind: RefParam, Param: int(v.param) - 1}, true
	case vLiteral:
		return ValueRef{Kind: RefLiteral, Literal: v.lit}, true
	case vNull:
		return ValueRef{Kind: RefNull}, true
	}
	return ValueRef{}, false
}

// conjuncts flattens the top-level ANDs of a WHERE clause.
func conjuncts(n *pg.Node) []*pg.Node {
	if n == nil {
		return nil
	}
	if b := n.GetBoolExpr(); b != nil && b.Boolop == pg.BoolExprType_AND_EXPR {
		var out []*pg.Node
		for _, c := range b.Args {
			out = append(out, conjuncts(c)...)
		}
		return out
	}
	return []*pg.Node{n}
}

// setList plans SET assignments of UPDATE and ON CONFLICT DO UPDATE.
// hasFrom refuses encrypted writes of UPDATE … FROM, whose values may come
// from another table. excluded is ON CONFLICT's EXCLUDED relation.
func (a *analyzer) setList(list []*pg.Node, t *policy.Table, sc *scope, hasFrom bool, tenant ValueRef, haveTenant bool, excluded *rel, tenantWhere string) *Error {
	// Blind-index columns the client sets beside their encrypted columns
	// (a row read with SELECT * and written back): pgveil writes the index
	// of the column's value there.
	own := clientIndexes{}
	if t != nil {
		set := map[string]bool{}
		seen := map[string]bool{}
		for _, n := range list {
			if rt := n.GetResTarget(); rt != nil {
				if seen[rt.Name] && (t.Column(rt.Name) != nil || t.BlindIndexColumn(rt.Name) != nil) {
					return errorf(CodeSyntaxError, "multiple assignments to same column %q of configured table %s", rt.Name, t.QualifiedName()).at(a.sql, rt.Location)
				}
				seen[rt.Name] = true
			}
			if rt := n.GetResTarget(); rt != nil && rt.Val.GetMultiAssignRef() == nil && len(rt.Indirection) == 0 {
				set[rt.Name] = true
			}
		}
		for _, n := range list {
			rt := n.GetResTarget()
			if src := t.BlindIndexColumn(rt.GetName()); src != nil && set[rt.Name] && set[src.Name] {
				own[rt.Name] = rt.Val
			}
		}
	}
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			continue
		}
		var enc *policy.Column
		if t != nil {
			if own[rt.Name] != nil {
				continue // written with its encrypted column's value
			}
			if err := a.checkNotIndex(t, rt.Name, rt.Location); err != nil {
				return err
			}
			if err := a.knownColumn(t, rt.Name, rt.Location); err != nil {
				return err
			}
			enc = t.Column(rt.Name)
		}
		if mar := rt.Val.GetMultiAssignRef(); mar != nil {
			if enc != nil {
				return unsupported(enc, "a multiple-column assignment (a, b) = (…)", "assign "+enc.Name+" on its own: SET "+enc.Name+" = …").at(a.sql, rt.Location)
			}
			if mar.Colno == 1 {
				if err := a.expr(mar.Source, sc, "SET"); err != nil {
					return err
				}
			}
			continue
		}
		if enc == nil {
			if err := a.expr(rt.Val, sc, "SET"); err != nil {
				return err
			}
			continue
		}
		if len(rt.Indirection) > 0 {
			return unsupported(enc, "assigning a subscript or field", "write the whole value").at(a.sql, rt.Location)
		}
		if hasFrom {
			return unsupported(enc, "writing it with UPDATE … FROM", "set it in an UPDATE without FROM, from a parameter or literal").at(a.sql, rt.Location)
		}
		quoted := tokenAt(a.sql, int(rt.Location), a.backslash).kind == tQIdent
		sep := func(bidx string) string { return ", " + identLike(bidx, quoted) + " = " }
		if cr := rt.Val.GetColumnRef(); cr != nil && excluded != nil {
			ref, err := a.resolveColumn(cr, sc)
			if err != nil {
				return err
			}
			if ref.rel == excluded {
				if ref.enc() != enc {
					return unsupported(enc, "assigning EXCLUDED of another column", "write "+enc.Name+" = EXCLUDED."+enc.Name).at(a.sql, cr.Location)
				}
				if targets := enc.IndexTargets(); len(targets) > 0 {
					end, ok := a.colRefEnd(cr)
					if !ok {
						return errorf(CodeInternalError, "cannot locate column reference; statement refused").at(a.sql, cr.Location)
					}
					end = a.parenEnd(int(cr.Location), end, 0)
					for _, bi := range targets {
						if n := own[bi.Column]; n != nil {
							// The client's own SET email_bidx = EXCLUDED.email_bidx stays.
							if r := n.GetColumnRef(); r == nil || !a.isExcludedColumn(r, sc, excluded, bi.Column) {
								return a.checkNotIndex(t, bi.Column, nodeLocation(n))
							}
							continue
						}
						a.insert(end, sep(bi.Column)+"excluded."+identLike(bi.Column, quoted))
					}
				}
				continue
			}
		}
		v, err := a.classify(rt.Val, enc, false)
		if err != nil {
			return err
		}
		if v.kind == vOther {
			c, err := a.choiceUnder(rt.Val)
			if err != nil {
				return err
			}
			if c != nil {
				for _, bi := range enc.IndexTargets() {
					if n := own[bi.Column]; n != nil { // the CASE's copy sets it
						return a.checkNotIndex(t, bi.Column, nodeLocation(n))
					}
				}
				missing := func(loc int32) *Error { return missingTenant(t, tenantWhere, loc, a.sql) }
				if err := a.choiceValue(rt.Val, c, enc, sc, excluded, tenant, haveTenant, missing, sep); err != nil {
					return err
				}
				continue
			}
		}
		if (v.kind == vParam || v.kind == vLiteral) && !haveTenant {
			return missingTenant(t, tenantWhere, v.loc, a.sql)
		}
		if err := a.writeValue(v, enc, tenant, sep, own, a.parenEnd(v.start, v.end, 0)); err != nil {
			return err
		}
		a.reseal(enc)
	}
	return nil
}

// isExcludedColumn reports whether cr is EXCLUDED.name.
func (a *analyzer) isExcludedColumn(cr *pg.ColumnRef, sc *scope, excluded *rel, name string) bool {
	ref, err := a.resolveColumn(cr, sc)
	return err == nil && ref.rel == excluded && ref.idx >= 0 && excluded.cols[ref.idx].name == name
}

// reseal records that col is written with new values.
func (a *analyzer) reseal(col *policy.Column) {
	if a.resealed == nil {
		a.resealed = map[*policy.Column]bool{}
	}
	a.resealed[col] = true
}

// colRefEnd returns where a column reference's text ends.
func (a *analyzer) colRefEnd(cr *pg.ColumnRef) (int, bool) {
	l := lexer{s: a.sql[:a.stmtEnd], pos: int(cr.Location), backslash: a.backslash}
	end := -1
	for i := range cr.Fields {
		if i > 0 && !l.isPunct(l.next(), ".") {
			return 0, false
		}
		t := l.next()
		if t.kind != tIdent && t.kind != tQIdent && !l.isPunct(t, "*") && t.kind != tOp {
			return 0, false
		}
		end = t.end
	}
	return end, end >= 0
}
