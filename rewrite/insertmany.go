package rewrite

import (
	"fmt"
	"strconv"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// SQLAlchemy 2.0 sends a multi-row INSERT whose server-generated keys it
// must match to its objects ("insertmanyvalues" with a sentinel: the ORM's
// add_all of objects with server-generated primary keys) as
//
//	INSERT INTO users (org_id, email) SELECT p0::INTEGER, p1::VARCHAR
//	FROM (VALUES (7, 'a@x', 0), (7, 'b@x', 1)) AS imp_sen(p0, p1, sen_counter)
//	ORDER BY sen_counter RETURNING users.id, users.id AS id__1
//
// (parameters instead of literals with psycopg 3 and asyncpg, casts
// inside the rows with asyncpg). Each value still stands in a VALUES row,
// with its tenant in the same row, so pgveil seals it where it stands, as
// in a plain VALUES list; the blind index of an indexed column is added to
// the row beside it, named in the alias list, and selected into the index
// column; a cast of an encrypted column's item names its physical type:
//
//	INSERT INTO users (org_id, email, email_bidx) SELECT p0::INTEGER, p1::bytea, pgveil_i1_0::bytea
//	FROM (VALUES (7, {encrypt}, {index}, 0), …) AS imp_sen(p0, p1, pgveil_i1_0, sen_counter)
//	ORDER BY sen_counter RETURNING …
//
// Only this shape is accepted: every SELECT item is a column of the VALUES
// list, under casts at most, each feeding one INSERT column, or an item
// that reads no column and no subquery (nextval('…_seq'), SQLAlchemy's
// form for a column with an explicit Sequence) feeding a column that is
// neither encrypted, a blind index nor the key_context; nothing else in
// the SELECT but ORDER BY columns of the VALUES list that feed no
// encrypted column. Any other INSERT … SELECT into an encrypted column
// stays refused.

// valuesSelect is an INSERT's SELECT of the shape above.
type valuesSelect struct {
	sel   *pg.SelectStmt
	rows  []*pg.Node
	width int
	names []string    // the alias's column names
	colOf []int       // for each INSERT column, the VALUES column feeding it (-1: none, a standalone item)
	items []*pg.Node  // for each INSERT column, its SELECT item
	sorts map[int]int // VALUES columns named in ORDER BY
}

// matchValuesSelect recognises sel, the SELECT of an INSERT of ncols
// columns, as a valuesSelect.
func matchValuesSelect(sel *pg.SelectStmt, ncols int) (*valuesSelect, bool) {
	if sel == nil || len(sel.ValuesLists) > 0 || sel.Op != pg.SetOperation_SETOP_NONE || sel.WithClause != nil ||
		len(sel.DistinctClause) > 0 || sel.IntoClause != nil || sel.WhereClause != nil || len(sel.GroupClause) > 0 ||
		sel.HavingClause != nil || len(sel.WindowClause) > 0 || sel.LimitCount != nil || sel.LimitOffset != nil ||
		len(sel.LockingClause) > 0 || len(sel.FromClause) != 1 || len(sel.TargetList) != ncols {
		return nil, false
	}
	rs := sel.FromClause[0].GetRangeSubselect()
	if rs == nil || rs.Lateral || rs.Alias == nil || len(rs.Alias.Colnames) == 0 {
		return nil, false
	}
	sub := rs.Subquery.GetSelectStmt()
	if sub == nil || !isPlainValues(sub) || sub.Op != pg.SetOperation_SETOP_NONE || sub.IntoClause != nil || len(sub.LockingClause) > 0 {
		return nil, false
	}
	vs := &valuesSelect{sel: sel, rows: sub.ValuesLists, sorts: map[int]int{}}
	vs.width = len(sub.ValuesLists[0].GetList().GetItems())
	for _, n := range rs.Alias.Colnames {
		vs.names = append(vs.names, n.GetString_().GetSval())
	}
	if vs.width == 0 || len(vs.names) != vs.width {
		return nil, false
	}
	col := func(n *pg.Node) (int, bool) {
		cr := n.GetColumnRef()
		if cr == nil {
			return 0, false
		}
		var parts []string
		for _, f := range cr.Fields {
			s := f.GetString_()
			if s == nil {
				return 0, false
			}
			parts = append(parts, s.Sval)
		}
		switch {
		case len(parts) == 2 && parts[0] == rs.Alias.Aliasname:
			parts = parts[1:]
		case len(parts) != 1:
			return 0, false
		}
		for k, name := range vs.names {
			if name == parts[0] {
				return k, true
			}
		}
		return 0, false
	}
	used := map[int]bool{}
	for _, n := range sel.TargetList {
		rt := n.GetResTarget()
		if rt == nil || rt.Name != "" || len(rt.Indirection) > 0 {
			return nil, false
		}
		inner := rt.Val
		for inner.GetTypeCast() != nil {
			inner = inner.GetTypeCast().Arg
		}
		k, ok := col(inner)
		if !ok && standalone(rt.Val) {
			// nextval('…_seq'): fed by no VALUES column (colOf -1).
			vs.colOf = append(vs.colOf, -1)
			vs.items = append(vs.items, rt.Val)
			continue
		}
		if !ok || used[k] {
			return nil, false
		}
		used[k] = true
		vs.colOf = append(vs.colOf, k)
		vs.items = append(vs.items, rt.Val)
	}
	for _, n := range sel.SortClause {
		sb := n.GetSortBy()
		if sb == nil {
			return nil, false
		}
		k, ok := col(sb.Node)
		if !ok {
			return nil, false
		}
		vs.sorts[k] = int(sb.Location)
	}
	return vs, true
}

// standalone reports whether a SELECT item reads nothing of the FROM list
// nor of any table: no column reference, no subquery (SQLAlchemy's
// nextval('…_seq') for a column with an explicit Sequence).
func standalone(n *pg.Node) bool {
	ok := true
	walkAll(n, func(c *pg.Node) bool {
		if c.GetColumnRef() != nil || c.GetSubLink() != nil {
			ok = false
		}
		return ok
	})
	return ok
}

// insertValuesSelect rewrites an INSERT … SELECT … FROM (VALUES …) into a
// configured table (the shape above).
func (a *analyzer) insertValuesSelect(t *policy.Table, cols []insCol, vs *valuesSelect, sc *scope) *Error {
	for _, c := range cols {
		if c.indexOf != nil {
			return unsupported(c.indexOf, "INSERT … SELECT that writes its blind index "+c.name, "leave "+c.name+" out: pgveil writes the blind index itself").at(a.sql, c.loc)
		}
	}
	aliasEnds, ok := a.aliasNameEnds(vs.sel, vs.width)
	if !ok {
		return errorf(CodeInternalError, "cannot locate the column names of the VALUES list; statement refused").at(a.sql, firstLocation(vs.items[0]))
	}
	enc := make([]*policy.Column, vs.width) // by VALUES column
	castOf := make([][]*pg.TypeCast, vs.width)
	taken := map[string]bool{}
	for _, n := range vs.names {
		taken[n] = true
	}
	for i, c := range cols {
		if vs.colOf[i] < 0 {
			// An item fed by no VALUES column: only into a column
			// that is neither encrypted nor the key_context.
			switch {
			case c.enc != nil:
				return unsupported(c.enc, "INSERT … SELECT of a value that is not a column of the VALUES list", "put the value in the VALUES list").at(a.sql, firstLocation(vs.items[i]))
			case t.KeyContext != "" && c.name == t.KeyContext:
				return tableErr(CodeFeatureNotSupported, t, "put the "+t.KeyContext+" value in the VALUES list",
					"INSERT … SELECT into %s whose %s is not a column of the VALUES list: pgveil cannot tell each row's tenant", t.QualifiedName(), t.KeyContext).at(a.sql, firstLocation(vs.items[i]))
			}
			if err := a.expr(vs.items[i], sc, "SELECT"); err != nil {
				return err
			}
			continue
		}
		if t.KeyContext != "" && c.name == t.KeyContext {
			if err := a.tenantCastsKeep(t, vs.items[i]); err != nil {
				return err
			}
		}
		if c.enc == nil {
			continue
		}
		k := vs.colOf[i]
		if at, ok := vs.sorts[k]; ok {
			return unsupported(c.enc, "ORDER BY its value in INSERT … SELECT", "order by another column of the VALUES list").at(a.sql, int32(at))
		}
		enc[k] = c.enc
		phys := "bytea"
		if a.physicalType(c.enc) == policy.OIDText {
			phys = "text"
		}
		// The item: its casts name the physical type.
		item := vs.items[i]
		for inner := item; inner.GetTypeCast() != nil; inner = inner.GetTypeCast().Arg {
			tc := inner.GetTypeCast()
			if !castFits(tc.TypeName, c.enc.Type, false) {
				return colErr(CodeDatatypeMismatch, c.enc, "remove the cast or cast to "+string(c.enc.Type),
					"cast to %s does not fit encrypted column %s (%s)", typeNameString(tc.TypeName), c.enc.QualifiedName(), c.enc.Type).at(a.sql, tc.Location)
			}
			if len(tc.TypeName.Typmods) > 0 || lastName(tc.TypeName.Names) == "bpchar" {
				castOf[k] = append(castOf[k], tc)
			}
			end, ok := a.typeNameEnd(int(tc.TypeName.GetLocation()))
			if tc.TypeName.GetLocation() < 0 || !ok {
				return errorf(CodeInternalError, "cannot locate the cast of a value for %s; statement refused", c.enc.QualifiedName()).at(a.sql, tc.Location)
			}
			a.replace(int(tc.TypeName.Location), end, phys)
		}
		itemStart, itemEnd, ok := a.castExtent(item, func(n *pg.Node) (int, int, bool) {
			s, e, _, _, ok := a.refTokens(n.GetColumnRef())
			return s, e, ok
		})
		if !ok {
			return errorf(CodeInternalError, "cannot locate the SELECT item of %s; statement refused", c.enc.QualifiedName()).at(a.sql, firstLocation(item))
		}
		if item.GetTypeCast() == nil {
			a.insert(itemEnd, "::"+phys)
		}
		// The index items follow the whole item, outside its
		// parentheses: inside, (p1, i) would be a row.
		itemEnd = a.parenEnd(itemStart, itemEnd, 0)
		// The index columns: listed, selected and named.
		var names string
		for j, bi := range c.enc.IndexTargets() {
			name := "pgveil_i" + strconv.Itoa(i) + "_" + strconv.Itoa(j)
			if taken[name] {
				return unsupported(c.enc, fmt.Sprintf("INSERT … SELECT from a VALUES list with a column named %s", name), "rename that column of the VALUES list").at(a.sql, firstLocation(item))
			}
			a.insert(c.end, ", "+identLike(bi.Column, c.quoted))
			a.insert(itemEnd, ", "+name+"::bytea")
			names += ", " + name
		}
		if names != "" {
			a.insert(aliasEnds[k], names)
		}
	}
	if err := a.tenantRowsAgree(t, cols, vs); err != nil {
		return err
	}
	mapped := make([]*pg.Node, len(cols))
	for _, row := range vs.rows {
		items := row.GetList().GetItems()
		if len(items) != vs.width {
			return errorf(CodeSyntaxError, "VALUES lists must all be the same length").at(a.sql, firstLocation(row))
		}
		for i := range cols {
			mapped[i] = nil
			if k := vs.colOf[i]; k >= 0 {
				mapped[i] = items[k]
			}
		}
		tenant, haveTenant, err := a.rowTenant(t, cols, mapped)
		if err != nil {
			return err
		}
		for k, item := range items {
			col := enc[k]
			if col == nil {
				if err := a.expr(item, sc, "VALUES"); err != nil {
					return err
				}
				continue
			}
			v, err := a.classify(item, col, false)
			if err != nil {
				return err
			}
			if len(castOf[k]) > 0 && (v.kind == vLiteral || v.kind == vParam) {
				if err := a.typmodsKeep(castOf[k], col, v, false); err != nil {
					return err
				}
			}
			if (v.kind == vParam || v.kind == vLiteral) && !haveTenant {
				return missingTenant(t, "in the same VALUES row, as a parameter or a literal", v.loc, a.sql)
			}
			if v.kind == vDefault {
				return unsupported(col, "DEFAULT in a VALUES list under SELECT", "write NULL or the value").at(a.sql, v.loc)
			}
			if err := a.writeValue(v, col, tenant, valuesSep, nil, a.parenEnd(v.start, v.end, 0)); err != nil {
				return err
			}
		}
	}
	return nil
}

// tenantRowsAgree refuses a VALUES list whose key_context column mixes
// unquoted numbers with other values when that column is text: a VALUES
// list outside INSERT … VALUES takes one type per column, so '007' beside
// 8 is read as the integer 7 and stored as '7', while pgveil seals the
// row's values under '007'. (In INSERT … VALUES each value is assigned to
// the column by itself; and all unquoted numbers, or none, keep each
// value's own text.)
//
// The same holds for an encrypted text or varchar column (review 18b):
// '0042' beside 42 is stored as '42' by PostgreSQL ('abc' beside 42 is
// refused), while pgveil seals each value as written.
func (a *analyzer) tenantRowsAgree(t *policy.Table, cols []insCol, vs *valuesSelect) *Error {
	textTenant := false
	if t.KeyContext != "" {
		switch a.tenantTypeOID(t) {
		case policy.OIDText, 1043, 1042, 19, 0:
			textTenant = true
		}
	}
	for i, c := range cols {
		if vs.colOf[i] < 0 {
			continue
		}
		encText := c.enc != nil && (c.enc.Type == policy.TypeText || c.enc.Type == policy.TypeVarchar)
		if !encText && (c.name != t.KeyContext || !textTenant) {
			continue
		}
		numbers, others := false, false
		for _, row := range vs.rows {
			items := row.GetList().GetItems()
			if vs.colOf[i] >= len(items) {
				continue
			}
			ac := items[vs.colOf[i]].GetAConst()
			switch {
			case ac != nil && ac.Isnull:
			case ac != nil && (ac.GetIval() != nil || ac.GetFval() != nil):
				numbers = true
			default:
				others = true
			}
		}
		if numbers && others && encText {
			return colErr(CodeFeatureNotSupported, c.enc, "quote every "+c.name+" value of the VALUES list, or none",
				"the %s values of this INSERT … SELECT … FROM (VALUES …) into %s mix unquoted numbers with other values: PostgreSQL gives the VALUES column one type, and would store other text than pgveil seals", c.name, t.QualifiedName()).at(a.sql, firstLocation(vs.items[i]))
		}
		if numbers && others {
			return tableErr(CodeFeatureNotSupported, t, "quote every "+t.KeyContext+" value of the VALUES list, or none",
				"the %s values of this INSERT … SELECT … FROM (VALUES …) into %s mix unquoted numbers with other values: PostgreSQL gives the VALUES column one type, and would store another tenant than pgveil seals under", t.KeyContext, t.QualifiedName()).at(a.sql, firstLocation(vs.items[i]))
		}
	}
	return a.tenantKindsAgree(t, cols, vs)
}

// tenantKindsAgree refuses a VALUES list whose key_context column mixes
// kinds of values (unquoted numbers, quoted strings, TRUE or
// FALSE, parameters, other expressions): PostgreSQL reads them all as
// the type it chooses for the column ('-0' beside 0.1 is the numeric 0,
// stored 0 in a float8 column; 't' beside TRUE is the bool true, stored
// 'true' in a text column; '007' beside 7 in a citext one '7'), while
// pgveil names each row's tenant as its value alone reads (review 19c:
// the row's values were sealed under another tenant than the one stored).
// Integer, numeric and bool columns read quoted values as the chosen type
// does.
func (a *analyzer) tenantKindsAgree(t *policy.Table, cols []insCol, vs *valuesSelect) *Error {
	if t.KeyContext == "" {
		return nil
	}
	for i, c := range cols {
		if vs.colOf[i] < 0 || c.name != t.KeyContext {
			continue
		}
		kinds := map[string]bool{}
		for _, row := range vs.rows {
			items := row.GetList().GetItems()
			if vs.colOf[i] >= len(items) {
				continue
			}
			n := items[vs.colOf[i]]
			ac := n.GetAConst()
			switch {
			case ac != nil && ac.Isnull:
			case ac != nil && (ac.GetIval() != nil || ac.GetFval() != nil):
				kinds["number"] = true
			case ac != nil && ac.GetSval() != nil:
				kinds["string"] = true
			case ac != nil && ac.GetBoolval() != nil:
				kinds["bool"] = true
			case n.GetParamRef() != nil:
				kinds["parameter"] = true
			default:
				kinds["expression"] = true
			}
		}
		switch a.tenantTypeOID(t) {
		case 20, 21, 23, 1700:
			// '007' beside 8 is the integer 7 (or numeric), as the
			// column itself reads it.
			delete(kinds, "string")
		case 16:
			delete(kinds, "string") // 't' beside TRUE is true
		}
		if len(kinds) > 1 {
			return tableErr(CodeFeatureNotSupported, t, "write every "+t.KeyContext+" value of the VALUES list alike (all quoted, all parameters, or all cast to the column's type)",
				"the %s values of this INSERT … SELECT … FROM (VALUES …) into %s mix kinds of values (quoted, unquoted numbers, TRUE/FALSE, parameters, expressions): PostgreSQL gives the VALUES column one type, and would store another tenant than pgveil seals under", t.KeyContext, t.QualifiedName()).at(a.sql, firstLocation(vs.items[i]))
		}
	}
	return nil
}

// tenantTypeOID is the type of t's key_context column in the catalog (0:
// unknown).
func (a *analyzer) tenantTypeOID(t *policy.Table) uint32 {
	if a.cat == nil {
		return 0
	}
	if ct := a.cat.Tables[t.QualifiedName()]; ct != nil {
		for _, c := range ct.Columns {
			if c.Name == t.KeyContext {
				return c.TypeOID
			}
		}
	}
	return 0
}

// aliasNameEnds returns where each of the n column names of the VALUES
// list's alias ends: SELECT … FROM ( VALUES … ) [AS] alias ( name, … ).
func (a *analyzer) aliasNameEnds(sel *pg.SelectStmt, n int) ([]int, bool) {
	end := a.listEnd(sel.TargetList)
	if end < 0 {
		return nil, false
	}
	l := lexer{s: a.sql[:a.stmtEnd], pos: end, backslash: a.backslash}
	if !l.isKeyword(l.next(), "from") {
		return nil, false
	}
	open := l.next()
	if !l.isPunct(open, "(") {
		return nil, false
	}
	close, ok := a.matchParen(open.start)
	if !ok {
		return nil, false
	}
	l.pos = close
	t := l.next()
	if l.isKeyword(t, "as") {
		t = l.next()
	}
	if t.kind != tIdent && t.kind != tQIdent {
		return nil, false
	}
	if !l.isPunct(l.next(), "(") {
		return nil, false
	}
	ends := make([]int, 0, n)
	for i := 0; i < n; i++ {
		if i > 0 && !l.isPunct(l.next(), ",") {
			return nil, false
		}
		nt := l.next()
		if nt.kind != tIdent && nt.kind != tQIdent {
			return nil, false
		}
		ends = append(ends, nt.end)
	}
	if !l.isPunct(l.next(), ")") {
		return nil, false
	}
	return ends, true
}
