package rewrite

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// Migration mode (DESIGN.md "Online adoption"). While `pgveil migrate`
// encrypts a table's existing plaintext, rows not yet backfilled hold
// plaintext and a NULL blind index. An equality lookup must still find
// them, so on a table in migration mode
//
//	email = $1
//	  → (email_bidx = $2 AND email_bidx IS NOT NULL
//	     OR (email_bidx IS NULL AND btrim(lower(email), E' \t\n\x0b\f\r') = $3))
//
// with $2 the blind index of $1 and $3 its normalised plaintext (Action
// Plaintext). The plaintext goes to the server only while the table still
// holds plaintext anyway, only for comparison, and only for tables the
// operator put in migration mode. IN lists and = ANY get the same
// treatment; comparisons between two encrypted columns (joins) match
// backfilled rows only (IS [NOT] DISTINCT FROM between them is NULL on a
// row not yet backfilled: migrationDistinct).

// migrationOp describes the comparison the fallback repeats on plaintext.
type migrationOp struct {
	open, close string // e.g. "IN (" and ")", or "= ANY(" and ")"
	each        bool   // the value is an array parameter (PlaintextEach)
}

// migrationFallback adds the plaintext alternative to a comparison whose
// text spans [start, end) and whose encrypted operand is ref (col), when
// col's table is in migration mode. vals are the compared values; NULLs
// are kept as NULL.
func (a *analyzer) migrationFallback(start, end int, ref *pg.ColumnRef, col *policy.Column, op migrationOp, vals []value) *Error {
	if !a.p.isMigrating(col.Table) {
		return nil
	}
	if a.storedDef != "" {
		// A view keeps its definition: the plaintext would stay in the
		// catalog after the migration, long after the rows lost theirs.
		return colErr(CodeFeatureNotSupported, col, "create the view once `pgveil migrate` has completed the table (its lookups then use the blind index only)",
			"%s comparing encrypted column %s is not supported while its table is in migration mode: the view would store the plaintext fallback of the comparison in its definition", a.storedDef, col.QualifiedName()).at(a.sql, ref.Location)
	}
	refStart, refEnd, lastStart, quoted, ok := a.refTokens(ref)
	if !ok {
		return errorf(CodeInternalError, "cannot locate column reference; statement refused").at(a.sql, ref.Location)
	}
	// (email) = ($1): the spans of the column and the value stop inside
	// their parentheses; the alternative goes around the whole comparison.
	if start, end, ok = a.widenBalanced(start, end); !ok {
		return errorf(CodeInternalError, "cannot locate the comparison's parentheses; statement refused").at(a.sql, ref.Location)
	}
	colText := a.sql[refStart:refEnd]
	bidxText := a.sql[refStart:lastStart] + identLike(col.BlindIndex.Column, quoted)
	plain := colText
	if a.physicalType(col) != policy.OIDBytea {
		plain = normalizeSQL(colText, col.BlindIndex.Normalize)
	}
	sub := 0
	add := func(text string) {
		sub++
		a.edits = append(a.edits, edit{start: end, end: end, text: text, sub: sub, seq: len(a.edits)})
	}
	a.edits = append(a.edits, edit{start: start, end: start, text: "(", sub: -1, seq: len(a.edits)})
	// Each row is compared by its index when it has one and by its
	// plaintext when it has none, never by both: on a row not yet
	// backfilled the index's comparison is NULL (IS NOT DISTINCT FROM
	// NULL is even true), and "NULL OR false" would be NULL where
	// PostgreSQL answers false (NOT (email = $1) would miss the row).
	add(" AND " + bidxText + " IS NOT NULL OR (" + bidxText + " IS NULL AND " + plain + " " + op.open)
	action := Plaintext
	if op.each {
		action = PlaintextEach
	}
	for i, v := range vals {
		if i > 0 {
			add(", ")
		}
		switch v.kind {
		case vParam:
			sub++
			a.uses = append(a.uses, paramUse{number: v.param, start: end, insert: true, action: action, col: col, sub: sub})
		case vLiteral:
			sub++
			s := Slot{Action: action, Column: col, Source: v.lit}
			a.edits = append(a.edits, edit{start: end, end: end, slot: &s, sub: sub, seq: len(a.edits)})
		default:
			add("NULL")
		}
	}
	add(op.close + "))")
	return nil
}

// migrationDistinct guards IS [NOT] DISTINCT FROM between two encrypted
// columns when a table of theirs is in migration mode. Their blind
// indexes tell their values apart only on rows that have one (or whose
// value is NULL); on a row not yet backfilled both indexes may be NULL
// (NOT DISTINCT: true whatever the values) or one (DISTINCT: true for
// equal values). There the comparison is unknown, NULL, as = and <> are:
//
//	x.email IS NOT DISTINCT FROM y.email
//	  → (CASE WHEN (x.email_bidx IS NOT NULL OR x.email IS NULL) AND (…y…)
//	     THEN x.email_bidx IS NOT DISTINCT FROM y.email_bidx END)
func (a *analyzer) migrationDistinct(lc *policy.Column, lref *pg.ColumnRef, rc *policy.Column, rref *pg.ColumnRef, loc int32) *Error {
	start, end := -1, -1
	var guards []string
	for _, side := range []struct {
		col *policy.Column
		ref *pg.ColumnRef
	}{{lc, lref}, {rc, rref}} {
		refStart, refEnd, lastStart, quoted, ok := a.refTokens(side.ref)
		if !ok {
			return errorf(CodeInternalError, "cannot locate column reference; statement refused").at(a.sql, side.ref.Location)
		}
		if start < 0 || refStart < start {
			start = refStart
		}
		end = max(end, refEnd)
		if a.p.isMigrating(side.col.Table) {
			bidx := a.sql[refStart:lastStart] + identLike(side.col.BlindIndex.Column, quoted)
			guards = append(guards, "("+bidx+" IS NOT NULL OR "+a.sql[refStart:refEnd]+" IS NULL)")
		}
	}
	if len(guards) == 0 {
		return nil
	}
	start, end, ok := a.widenBalanced(start, end)
	if !ok {
		return errorf(CodeInternalError, "cannot locate the comparison's parentheses; statement refused").at(a.sql, loc)
	}
	a.edits = append(a.edits,
		edit{start: start, end: start, text: "(CASE WHEN " + strings.Join(guards, " AND ") + " THEN ", sub: -1, seq: len(a.edits)},
		edit{start: end, end: end, text: " END)", seq: len(a.edits) + 1})
	return nil
}

// widenBalanced widens [start, end) over the parentheses it opens or
// closes without the other half, so that text put around it encloses
// whole parenthesised operands: "email) IS NOT DISTINCT FROM ($1" of
// (email) IS NOT DISTINCT FROM ($1) becomes the whole comparison.
func (a *analyzer) widenBalanced(start, end int) (int, int, bool) {
	l := lexer{s: a.sql[:end], pos: start, backslash: a.backslash}
	depth, low := 0, 0
	for t := l.next(); t.kind != tEOF; t = l.next() {
		switch {
		case t.kind == tError:
			return start, end, false
		case l.isPunct(t, "("):
			depth++
		case l.isPunct(t, ")"):
			depth--
			low = min(low, depth)
		}
	}
	for closed := -low; closed > 0; closed-- { // a ")" inside closes a "(" before start
		s, ok := a.tokenBefore(start, "(")
		if !ok {
			return start, end, false
		}
		start = s
	}
	for open := depth - low; open > 0; open-- { // a "(" inside: its ")" follows
		l := lexer{s: a.sql[:a.stmtEnd], pos: end, backslash: a.backslash}
		t := l.next()
		if !l.isPunct(t, ")") {
			return start, end, false
		}
		end = t.end
	}
	return start, end, true
}

// trimSetSQL is the set of characters normalisation trim strips in SQL:
// the ASCII white space Go's unicode.IsSpace strips from the value (tab,
// newline, vertical tab, form feed, carriage return, space), written with
// escapes any server encoding reads. Review 21e: btrim's default strips
// spaces only, so a legacy value ending in "\r" (a CSV import) was not
// found by a migration-mode lookup nor by the uniqueness fill, while the
// backfill indexed it as the trimmed value (a duplicate got in, and the
// backfill stopped on it). The non-ASCII white space IsSpace also strips
// (U+0085, U+00A0, U+1680, U+2000–U+200A, U+2028, U+2029, U+202F, U+205F,
// U+3000) is not in the set: an E'\u…' escape fails where the server
// encoding is not UTF8 (docs/SQL.md, as for lowercase).
const trimSetSQL = `E' \t\n\x0b\f\r'`

// normalizeSQL applies a blind index's normalisations to a column in SQL,
// in the order the proxy applies them to the value. The functions are
// named with their schema: the value compared is plaintext, and a
// function of that name in a schema of the session's path (a varchar
// overload is a closer match than pg_catalog's text one) must not see it.
func normalizeSQL(expr string, norms []policy.Normalization) string {
	for _, n := range norms {
		switch n {
		case policy.NormLowercase:
			expr = "pg_catalog.lower(" + expr + ")"
		case policy.NormTrim:
			expr = "pg_catalog.btrim(" + expr + ", " + trimSetSQL + ")"
		case policy.NormNFC:
			expr = "normalize(" + expr + ", NFC)"
		}
	}
	return expr
}

// physicalType is the column's type OID in the catalog (text when unknown:
// a table not yet in the snapshot is treated as holding text).
func (a *analyzer) physicalType(col *policy.Column) uint32 {
	if a.cat != nil {
		if t := a.cat.Tables[col.Table.QualifiedName()]; t != nil {
			for _, c := range t.Columns {
				if c.Name == col.Name {
					return c.TypeOID
				}
			}
		}
	}
	return policy.OIDText
}

// refTokens locates a column reference's text: its span, the start of its
// last name, and whether that name was quoted.
func (a *analyzer) refTokens(cr *pg.ColumnRef) (start, end, lastStart int, quoted, ok bool) {
	l := lexer{s: a.sql[:a.stmtEnd], pos: int(cr.Location), backslash: a.backslash}
	var last token
	for i := range cr.Fields {
		if i > 0 {
			if dot := l.next(); !l.isPunct(dot, ".") {
				return 0, 0, 0, false, false
			}
		}
		last = l.next()
		if last.kind != tIdent && last.kind != tQIdent {
			return 0, 0, 0, false, false
		}
		if i == 0 {
			start = last.start
		}
	}
	return start, last.end, last.start, last.kind == tQIdent, true
}

// closingParen returns the end of the first ")" at or after pos.
func (a *analyzer) closingParen(pos int) (int, bool) {
	l := lexer{s: a.sql[:a.stmtEnd], pos: pos, backslash: a.backslash}
	for t := l.next(); t.kind != tEOF && t.kind != tError; t = l.next() {
		if l.isPunct(t, ")") {
			return t.end, true
		}
		if strings.TrimSpace(a.sql[t.start:t.end]) != "" && !l.isPunct(t, "]") {
			return 0, false
		}
	}
	return 0, false
}
