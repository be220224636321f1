package rewrite

import (
	"strings"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/policy"
)

// A value written to or compared with an encrypted column must be something
// the proxy can encrypt or index on its way through: a parameter, a literal,
// NULL or DEFAULT, optionally under casts that ORMs add ($1::text,
// CAST($1 AS varchar), '2024-01-02'::date). Casts are stripped, since the
// server now compares bytea, once their type is shown to fit the column.

type valueKind uint8

const (
	vOther valueKind = iota
	vParam
	vLiteral
	vNull
	vDefault
)

// value is a classified value expression.
type value struct {
	kind       valueKind
	param      int32 // vParam: the client's $n
	lit        int   // vLiteral: index into Stmt.Literals
	start, end int   // the whole expression's text, casts and parentheses included
	bare       bool  // the text is exactly the parameter or literal token
	loc        int32
}

// classify classifies n as a value for col. array is set for the operand of
// = ANY(...), whose casts name array types. A cast that does not fit col's
// logical type is refused; anything that is not a value is vOther.
func (a *analyzer) classify(n *pg.Node, col *policy.Column, array bool) (v value, retErr *Error) {
	v = value{loc: nodeLocation(n)}
	inner := n
	casts := 0
	var modded []*pg.TypeCast // casts with a length or precision
	for {
		if tc := inner.GetTypeCast(); tc != nil {
			if col != nil && !castFits(tc.TypeName, col.Type, array) {
				return v, colErr(CodeDatatypeMismatch, col,
					"remove the cast or cast to "+string(col.Type),
					"cast to %s does not fit encrypted column %s (%s)", typeNameString(tc.TypeName), col.QualifiedName(), col.Type).at(a.sql, tc.Location)
			}
			if len(tc.TypeName.Typmods) > 0 || lastName(tc.TypeName.Names) == "bpchar" {
				modded = append(modded, tc) // N'…' is a bpchar literal
			}
			inner = tc.Arg
			casts++
			continue
		}
		break
	}
	defer func() {
		if retErr == nil && col != nil && len(modded) > 0 && array && v.kind == vLiteral {
			// '{…}'::varchar(3)[]: the cast applies to each element of the
			// array literal, which is read only when the text is rendered.
			retErr = colErr(CodeDatatypeMismatch, col, "write ARRAY[…] with the cast, or drop the length from the cast",
				"a length or bpchar cast on an array literal compared with encrypted column %s", col.QualifiedName()).at(a.sql, v.loc)
			return
		}
		if retErr == nil && col != nil && len(modded) > 0 && (v.kind == vLiteral || v.kind == vParam) {
			if err := a.typmodsKeep(modded, col, v, array); err != nil {
				retErr = err
			}
		}
	}()
	switch {
	case inner.GetParamRef() != nil:
		p := inner.GetParamRef()
		v.kind, v.param = vParam, p.Number
		v.start = int(p.Location)
		v.end = tokenAt(a.sql, v.start, a.backslash).end
	case inner.GetAConst() != nil:
		c := inner.GetAConst()
		v.start = int(c.Location)
		v.end = a.constEnd(v.start)
		if c.Isnull {
			v.kind = vNull
			break
		}
		if c.GetBsval() != nil {
			if col == nil {
				return v, nil
			}
			return v, unsupported(col, "a bit-string literal", "write the value as a string literal or a parameter").at(a.sql, c.Location)
		}
		// The parser folds "- -5" and "-(-5)" into one constant at the
		// first sign: only [sign] number is read as a literal.
		l := lexer{s: a.sql, pos: v.start, backslash: a.backslash}
		if t := l.next(); t.kind == tOp && l.next().kind != tNumber {
			return value{kind: vOther, loc: v.loc}, nil
		}
		v.kind = vLiteral
		v.lit = -1
	case inner.GetSetToDefault() != nil:
		v.kind = vDefault
		v.start = int(inner.GetSetToDefault().Location)
		v.end = tokenAt(a.sql, v.start, a.backslash).end
		return v, nil
	default:
		return value{kind: vOther, loc: v.loc}, nil
	}
	v.bare = casts == 0
	if casts > 0 {
		s, e, ok := a.exprExtent(n)
		if !ok {
			return value{kind: vOther, loc: v.loc}, nil
		}
		v.start, v.end = s, e
	}
	v.start, v.end = a.balanceParens(v.start, v.end)
	if v.kind == vLiteral {
		tok := tokenAt(a.sql, int(inner.GetAConst().Location), a.backslash)
		if tok.kind == tOp { // a sign: the literal runs to the number's end
			tok.end = a.constEnd(tok.start)
		}
		v.lit = a.literal(tok.start, tok.end)
	}
	return v, nil
}

// constEnd returns the end of the constant token at start; a leading sign
// (the parser folds "- 7" into the constant -7 located at the "-") is
// followed to its number.
func (a *analyzer) constEnd(start int) int {
	l := lexer{s: a.sql, pos: start, backslash: a.backslash}
	t := l.next()
	if t.kind == tOp && (a.sql[t.start] == '-' || a.sql[t.start] == '+') && t.end == t.start+1 {
		t = l.next()
	}
	return t.end
}

// exprExtent returns the text span of a value expression made of casts
// around a parameter or a constant: x::t, CAST(x AS t), t 'x'.
func (a *analyzer) exprExtent(n *pg.Node) (start, end int, ok bool) {
	return a.castExtent(n, func(n *pg.Node) (int, int, bool) {
		if p := n.GetParamRef(); p != nil {
			return int(p.Location), tokenAt(a.sql, int(p.Location), a.backslash).end, true
		}
		if c := n.GetAConst(); c != nil {
			return int(c.Location), a.constEnd(int(c.Location)), true
		}
		return 0, 0, false
	})
}

// castExtent returns the text span of the casts around an expression
// whose own span leaf tells.
func (a *analyzer) castExtent(n *pg.Node, leaf func(*pg.Node) (int, int, bool)) (start, end int, ok bool) {
	tc := n.GetTypeCast()
	if tc == nil {
		return leaf(n)
	}
	s, e, ok := a.castExtent(tc.Arg, leaf)
	if !ok {
		return 0, 0, false
	}
	loc := int(tc.Location)
	if loc < 0 { // a typed literal, DATE '2024-01-02': the type name comes first
		if tl := int(tc.TypeName.GetLocation()); tl >= 0 && tl < s {
			return tl, e, true
		}
		return 0, 0, false
	}
	l := lexer{s: a.sql, pos: loc, backslash: a.backslash}
	t := l.next()
	switch {
	case l.isKeyword(t, "cast"):
		open := l.next()
		if !l.isPunct(open, "(") {
			return 0, 0, false
		}
		close, ok := a.matchParen(open.start)
		if !ok {
			return 0, 0, false
		}
		return min(s, loc), max(e, close), true
	case l.isPunct(t, "::"):
		te, ok := a.typeNameEnd(int(tc.TypeName.Location))
		if !ok {
			return 0, 0, false
		}
		return min(s, loc), max(e, te), true
	default: // a typed literal with a location: the type name
		return min(s, loc), e, true
	}
}

// matchParen returns the end of the ")" matching the "(" at open.
func (a *analyzer) matchParen(open int) (int, bool) {
	l := lexer{s: a.sql[:a.stmtEnd], pos: open, backslash: a.backslash}
	depth := 0
	for {
		t := l.next()
		switch {
		case t.kind == tEOF || t.kind == tError:
			return 0, false
		case l.isPunct(t, "(") || l.isPunct(t, "["):
			depth++
		case l.isPunct(t, ")") || l.isPunct(t, "]"):
			depth--
			if depth == 0 {
				return t.end, true
			}
		}
	}
}

// typeNameEnd returns where the type name starting at pos ends: a possibly
// qualified name, the words of multi-word types (character varying,
// double precision, timestamp with time zone), a typmod list and array
// bounds.
func (a *analyzer) typeNameEnd(pos int) (int, bool) {
	l := lexer{s: a.sql[:a.stmtEnd], pos: pos, backslash: a.backslash}
	t := l.next()
	if t.kind != tIdent && t.kind != tQIdent {
		return 0, false
	}
	end := t.end
	first := strings.ToLower(l.text(t))
	peek := func() token { save := l.pos; n := l.next(); l.pos = save; return n }
	take := func(words ...string) bool {
		n := peek()
		for _, w := range words {
			if l.isKeyword(n, w) {
				l.next()
				end = n.end
				return true
			}
		}
		return false
	}
	for l.isPunct(peek(), ".") {
		l.next()
		n := l.next()
		if n.kind != tIdent && n.kind != tQIdent {
			return 0, false
		}
		end = n.end
	}
	typmod := func() bool {
		if n := peek(); l.isPunct(n, "(") {
			e, ok := a.matchParen(n.start)
			if !ok {
				return false
			}
			end = e
			l.pos = e
		}
		return true
	}
	switch first {
	case "double":
		take("precision")
	case "character", "char", "bit", "nchar":
		take("varying")
	case "national":
		take("character", "char")
		take("varying")
	case "timestamp", "time":
		if !typmod() {
			return 0, false
		}
		if take("with", "without") {
			take("time")
			take("zone")
		}
	case "interval":
		for take("year", "month", "day", "hour", "minute", "second", "to") {
		}
	}
	if !typmod() {
		return 0, false
	}
	for {
		n := peek()
		if l.isPunct(n, "[") {
			e, ok := a.matchParen(n.start)
			if !ok {
				return 0, false
			}
			end, l.pos = e, e
			continue
		}
		if l.isKeyword(n, "array") {
			l.next()
			end = n.end
			continue
		}
		return end, true
	}
}

// balanceParens widens [start,end) over parentheses that enclose only part
// of it, as in ($1)::text, where the cast's span starts inside them.
func (a *analyzer) balanceParens(start, end int) (int, int) {
	l := lexer{s: a.sql[:end], pos: start, backslash: a.backslash}
	open := 0
	for t := l.next(); t.kind != tEOF && t.kind != tError; t = l.next() {
		switch {
		case l.isPunct(t, "("):
			open++
		case l.isPunct(t, ")"):
			if open > 0 {
				open--
			} else {
				// An unmatched ")" inside: take in the "(" before start.
				if s, ok := a.tokenBefore(start, "("); ok {
					start = s
				}
			}
		}
	}
	return start, end
}

// parenEnd returns where text that follows the value at [start, end)
// goes: after the parentheses that enclose exactly that value (in SET
// email = (($1)) the value is (($1))), so that ", email_bidx = $2" or
// ", $2" inserted there follows the value instead of making a row of it
// with the value (PostgreSQL stores a row's text in a text column). The
// keep outermost pairs are not the value's own (a VALUES row of one
// value).
func (a *analyzer) parenEnd(start, end, keep int) int {
	ends := []int{end}
	for {
		s, ok := a.tokenBefore(start, "(")
		if !ok {
			break
		}
		l := lexer{s: a.sql[:a.stmtEnd], pos: end, backslash: a.backslash}
		t := l.next()
		if !l.isPunct(t, ")") {
			break
		}
		start, end = s, t.end
		ends = append(ends, end)
	}
	return ends[max(0, len(ends)-1-keep)]
}

// typeNameString renders a TypeName for messages ("pg_catalog.int4" → "int4").
func typeNameString(t *pg.TypeName) string {
	n := strings.TrimPrefix(names(t.Names), "pg_catalog.")
	if len(t.ArrayBounds) > 0 {
		n += "[]"
	}
	return n
}

// typmodsKeep refuses a value under a cast with a length or precision
// (varchar(3), numeric(5,2), timestamp(0)) unless the cast leaves it as it
// is: PostgreSQL applies the cast (truncating, rounding) and pgveil, which
// encrypts the value as written, would store another value. A literal's
// casts are recorded on it (Literal.Casts) and checked when the text is
// rendered, so that the plan serves every literal of its shape; a
// parameter is accepted only under varchar(n), as ORMs cast to a column's
// declared type (Django's bulk_update), and its value checked at each
// Bind (Stmt.ParamCasts: a longer one, which PostgreSQL would truncate,
// is refused). A parameter under an array cast (= ANY($1::varchar(3)[]))
// is not checked.
func (a *analyzer) typmodsKeep(casts []*pg.TypeCast, col *policy.Column, v value, array bool) *Error {
	for _, tc := range casts {
		name := lastName(tc.TypeName.Names)
		var mods []int64
		for _, m := range tc.TypeName.Typmods {
			if c := m.GetAConst(); c != nil && c.GetIval() != nil {
				mods = append(mods, int64(c.GetIval().Ival))
			}
		}
		refuse := func(why string) *Error {
			return colErr(CodeDatatypeMismatch, col, "remove the length or precision from the cast (the column's own type applies), or round the value in the application",
				"cast to %s of a value for encrypted column %s: %s", typeNameString(tc.TypeName), col.QualifiedName(), why).at(a.sql, tc.Location)
		}
		if len(mods) != len(tc.TypeName.Typmods) {
			return refuse("its modifier is not a number")
		}
		if v.kind == vParam && name != "varchar" {
			return refuse("a parameter's value is not known when the statement is planned, and the cast may change it")
		}
		// Checked on the value when the text is rendered (Literal.CheckCasts)
		// or the parameter bound (Stmt.ParamCasts).
		var at []int
		for _, m := range tc.TypeName.Typmods {
			// -1: a modifier the grammar supplies (char is char(1)).
			at = append(at, int(m.GetAConst().GetLocation()))
		}
		if v.kind == vParam && !array {
			a.st.ParamCasts = append(a.st.ParamCasts, ParamCast{Client: int(v.param) - 1, Column: col, Cast: Typmod{Name: name, ModAt: at}})
			continue
		}
		if v.kind == vParam {
			continue
		}
		l := &a.st.Literals[v.lit]
		l.Casts = append(l.Casts, Typmod{Name: name, ModAt: at})
	}
	return nil
}

// typmodKeeps reports whether a cast to name(mods) leaves the literal v
// unchanged: its length within varchar(n), its scale and digits within
// numeric(p,s), its fraction of a second within timestamp(p).
func typmodKeeps(name string, mods []int64, lt policy.LogicalType, v []byte) bool {
	switch name {
	case "varchar":
		return len(mods) == 1 && int64(utf8.RuneCount(v)) <= mods[0]
	case "bpchar":
		// bpchar to text strips trailing spaces; bpchar(n) cuts at n.
		return (len(v) == 0 || v[len(v)-1] != ' ') && (len(mods) == 0 || len(mods) == 1 && int64(utf8.RuneCount(v)) <= mods[0])
	case "numeric":
		pt, err := canon.Plaintext(policy.TypeNumeric, canon.TextFormat, 0, v, nil)
		if err != nil {
			return true // refused as a numeric anyway
		}
		s := string(pt)
		if s == "NaN" {
			return true
		}
		if len(mods) == 0 || len(mods) > 2 || strings.Contains(s, "Infinity") {
			return false
		}
		prec, scale := mods[0], int64(0)
		if len(mods) == 2 {
			scale = mods[1]
		}
		s = strings.TrimPrefix(s, "-")
		whole, frac, _ := strings.Cut(s, ".")
		whole = strings.TrimLeft(whole, "0")
		// numeric(5,2) shows two decimals: '1.5' becomes 1.50 there.
		return int64(len(frac)) == scale && int64(len(whole)) <= prec-scale
	case "timestamp", "timestamptz":
		pt, err := canon.Plaintext(lt, canon.TextFormat, 0, v, nil)
		if err != nil {
			return true
		}
		s := string(pt)
		if len(mods) != 1 {
			return false
		}
		_, rest, found := strings.Cut(s, ".")
		if !found {
			return true
		}
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		return int64(n) <= mods[0]
	}
	return false
}

// castFits reports whether a cast to t on a value keeps it acceptable for a
// column of logical type lt: the same type or one of its family (an ORM
// casting to varchar for a text column, to int8 for an int4 column).
// For = ANY operands the cast must name an array of such a type.
func castFits(t *pg.TypeName, lt policy.LogicalType, array bool) bool {
	if t == nil || t.Setof || t.PctType {
		return false
	}
	if (len(t.ArrayBounds) > 0) != array {
		return false
	}
	name := lastName(t.Names)
	if name == "citext" && (lt == policy.TypeText || lt == policy.TypeVarchar) {
		return (len(t.ArrayBounds) > 0) == array // the citext extension, in whatever schema
	}
	if len(t.Names) == 2 {
		if s, _ := str(t.Names[0]); s != "pg_catalog" {
			return false
		}
	} else if len(t.Names) != 1 {
		return false
	}
	family := func(names ...string) bool {
		for _, n := range names {
			if n == name {
				return true
			}
		}
		return false
	}
	// Only casts that leave every value as PostgreSQL would store it in the
	// column: not "char" or name (they truncate), bpchar only on a value it
	// leaves alone (typmodsKeep: no trailing space), not
	// a narrower integer (out of range there), not an integer for numeric
	// (it rounds), not across timestamp and timestamptz (the session's
	// TimeZone decides), not jsonb for json (it reorders). A length or
	// precision is checked on the value (typmodsKeep).
	switch lt {
	case policy.TypeText:
		return family("text", "varchar", "unknown", "bpchar")
	case policy.TypeVarchar:
		// Not bpchar: varchar = bpchar compares as bpchar, trailing
		// spaces ignored, which the blind index cannot.
		return family("text", "varchar", "unknown")
	case policy.TypeInt2:
		return family("int2", "int4", "int8", "numeric", "integer", "bigint", "smallint", "int")
	case policy.TypeInt4:
		return family("int4", "int8", "numeric", "integer", "bigint", "int")
	case policy.TypeInt8:
		return family("int8", "numeric", "bigint")
	case policy.TypeNumeric:
		return family("numeric", "decimal")
	case policy.TypeBool:
		return family("bool", "boolean")
	case policy.TypeDate:
		return family("date")
	case policy.TypeTimestamp:
		return family("timestamp")
	case policy.TypeTimestamptz:
		return family("timestamptz")
	case policy.TypeUUID:
		return family("uuid")
	case policy.TypeJSON:
		return family("json")
	case policy.TypeJSONB:
		return family("json", "jsonb")
	case policy.TypeBytea:
		return family("bytea")
	}
	return false
}
