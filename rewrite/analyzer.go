package rewrite

import (
	"cmp"
	"sort"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// The planner rewrites by splicing: it never deparses. pg_query tells where
// each node starts, the lexer tells where its tokens end, and every change
// is an edit on the client's own text (replace a column name by its blind
// index column, a literal by a slot, insert ", email_bidx"). Everything the
// planner does not change reaches the server byte for byte, comments and
// formatting included, and a miss costs one parse instead of a parse and a
// deparse.

// edit replaces sql[start:end] (an insertion when start == end).
type edit struct {
	start, end int
	text       string
	slot       *Slot // when set, the replacement is this slot (text is ignored)
	// sub orders edits that start at one position before seq does: the
	// migration fallback's opening parenthesis (-1) precedes a replacement
	// there, and its pieces (1, 2, …) follow in order whoever made them.
	sub int
	seq int // keeps insertions at one position in the order they were made
	// copied: the replacement is the client's text [from,to), repeated
	// elsewhere (a CASE copied for a blind index); a shape plan moves it
	// with the literals (text is ignored).
	copied   bool
	from, to int
}

// lastSub orders guards pgveil appends at the end of a clause after every
// other edit there (a CASE's blind-index copy has one sub per piece).
const lastSub = 1 << 30

// paramUse is one place where a client parameter feeds an encrypted column.
type paramUse struct {
	number int32 // the client's $n
	// A replacement of sql[start:end] (the $n token, possibly with casts and
	// parentheses) or, when insert is set, an insertion at start of prefix+"$k".
	start, end int
	bare       bool // sql[start:end] is exactly "$n"
	insert     bool
	elsewhere  bool // sql[start:end] is other text (not the client's $n), replaced
	prefix     string
	suffix     string // inserted after "$k" (insert only)
	sub        int    // edit.sub of the insertion
	action     Action
	col        *policy.Column
	tenant     ValueRef
}

// analyzer plans one statement of a string.
type analyzer struct {
	p         *Planner
	cfg       *policy.Config
	cat       *Catalog
	sql       string // the client's whole string; all offsets index it
	stmtStart int
	stmtEnd   int
	path      *pathState
	backslash bool

	st    *Stmt
	edits []edit
	uses  []paramUse
	// nullTests are the client's $n tested with IS [NOT] NULL (casts
	// included in the span): where $n also has a special use, the test
	// reads that use's parameter, NULL exactly when the value is, and the
	// client's value does not reach the server as plain data.
	nullTests  []paramUse
	paramCount map[int32]int // ParamRef nodes per number
	// dropped counts the client's $n pgveil removed from the text (a
	// blind index the client wrote): all of them, and $n is Ignore.
	dropped    map[int32]int
	maxParam   int32
	litIndex   map[int]int // literal start → index in st.Literals
	ctes       *cteScope
	tenantRels map[*policy.Table]int    // base references to tables with a key_context
	refRels    map[*pg.ColumnRef]*rel   // the relation each encrypted column reference resolved to
	refScopes  map[*pg.ColumnRef]*scope // and the scope it was resolved in

	// noOutputs: the statement's rows never reach the client decrypted
	// (EXPLAIN, CREATE TABLE AS…), so no hidden tenant is appended.
	noOutputs bool
	// storedDef names a statement whose query the server keeps (CREATE
	// VIEW, CREATE MATERIALIZED VIEW): no plaintext fallback of migration
	// mode may go into it.
	storedDef string
	// strict, when set, names a context where any reference to an
	// encrypted column refuses (expressions stored in the schema, MERGE).
	strict string
	// copyRefusal names a COPY option pgveil cannot honour on encrypted
	// columns; it refuses only when the COPY carries one.
	copyRefusal string
	// badParam refuses a $n the protocol cannot bind ($0, above 65535).
	badParam *Error
	// valueDependent: the plan depends on a literal's value, not only on
	// where it is, so it cannot stand for other texts of its shape.
	valueDependent bool
	// viewReads counts the views read through their definition.
	viewReads int
	// pins counts the edits that only schema-qualify a name (pinSchema):
	// they change no value, so they do not make a statement one that
	// needs pgveil.
	pins int
	// noPins: names are not pinned (Session.NoPins; inside SQL PREPARE).
	noPins bool
	// ov are the catalog overlays of the snapshot (overlay.go). noOverlay
	// is set while planning a FROM item that cannot take a subquery
	// (TABLESAMPLE).
	ov        *overlays
	noOverlay bool
	// outputFallback: the column reference being resolved may name an
	// output column instead (GROUP BY, ORDER BY): no case-only refusal.
	outputFallback bool
	inOutputNamed  bool // outputNamed resolving an output's own reference
	// bareOverlays maps the overlaid relations given no alias to their
	// schema (unqualifyOverlaid). sysCols: 0 not known yet, 1 no system
	// column named in root (the statement), 2 one is (systemColumns).
	bareOverlays map[string]string
	root         *pg.Node
	sysCols      uint8
	// fill: the INSERT or UPDATE being planned fills the unique blind
	// indexes of legacy rows holding its values (unique.go).
	fill *uniqueFill
	// lookupUsed: a value was sealed under a looked-up tenant (RefLookup).
	// lookupGuard is where the tenant parameter of the guard goes, with
	// the text before it (finish numbers it).
	lookupUsed  bool
	lookupGuard *edit
	// lookupGuardAfter follows the guard's tenant parameter, "\x00"
	// standing for it again (Lookup.TextGuard).
	lookupGuardAfter string
	// resealed: encrypted columns an UPDATE's SET writes with new values
	// (not keeping the row's own, sealed under its tenant).
	resealed map[*policy.Column]bool
	// usingRels are the JOIN … USING … AS relations, by their join.
	usingRels map[*pg.JoinExpr]*rel
	// wrap is shared by the statements of a string that may wrap an
	// INSERT in a temporary function (wrapped.go); nil otherwise.
	wrap *wrapState
}

// maxParams is the most parameters a Bind message can carry (an int16 count).
const maxParams = 65535

func newAnalyzer(p *Planner, cat *Catalog, sql string, raw *pg.RawStmt, start, end int, path *pathState, backslash bool) *analyzer {
	a := &analyzer{
		p: p, cfg: p.cfg, cat: cat, sql: sql, stmtStart: start, stmtEnd: end, path: path, backslash: backslash,
		st:         &Stmt{Original: sql[start:end], OriginalStart: start},
		paramCount: map[int32]int{},
		litIndex:   map[int]int{},
		tenantRels: map[*policy.Table]int{},
		refRels:    map[*pg.ColumnRef]*rel{},
		refScopes:  map[*pg.ColumnRef]*scope{},
	}
	if cat != nil {
		a.ov = &cat.ov
	}
	a.root = raw.Stmt
	if raw.Stmt.GetPrepareStmt() == nil && raw.Stmt.GetCreateFunctionStmt() == nil { // their $n are their own
		a.countParams()
	}
	return a
}

// countParams counts the client's $n in the statement's text. Each $n token
// is exactly one ParamRef in the raw parse tree, and the lexer finds them
// much faster than a walk of the tree.
func (a *analyzer) countParams() {
	l := lexer{s: a.sql[:a.stmtEnd], pos: a.stmtStart, backslash: a.backslash}
	for t := l.next(); t.kind != tEOF && t.kind != tError; t = l.next() {
		if t.kind != tParam {
			continue
		}
		n, err := strconv.Atoi(a.sql[t.start+1 : t.end])
		if err != nil || n < 1 || n > maxParams {
			if a.badParam == nil {
				a.badParam = errorf(CodeUndefinedParameter, "there is no parameter %s", a.sql[t.start:t.end]).at(a.sql, int32(t.start))
			}
			continue
		}
		a.paramCount[int32(n)]++
		if int32(n) > a.maxParam {
			a.maxParam = int32(n)
		}
	}
}

func (a *analyzer) replace(start, end int, text string) {
	a.edits = append(a.edits, edit{start: start, end: end, text: text, seq: len(a.edits)})
}

func (a *analyzer) insert(at int, text string) { a.replace(at, at, text) }

func (a *analyzer) slot(start, end int, s Slot, prefix string) {
	if prefix != "" {
		a.edits = append(a.edits, edit{start: start, end: end, text: prefix, seq: len(a.edits)})
		start = end // the prefix replaced the span; the slot follows it
	}
	a.edits = append(a.edits, edit{start: start, end: end, slot: &s, seq: len(a.edits)})
}

// literal registers the literal token at [start,end) and returns its index
// in Stmt.Literals.
func (a *analyzer) literal(start, end int) int {
	if i, ok := a.litIndex[start]; ok {
		return i
	}
	a.st.Literals = append(a.st.Literals, Literal{Start: start, End: end})
	a.litIndex[start] = len(a.st.Literals) - 1
	return len(a.st.Literals) - 1
}

// lookupNullTests refuses a NULL test in the WHERE of an UPDATE whose
// tenant is looked up, of a parameter whose special use is outside that
// WHERE (SET phone = $1 WHERE … AND $1 IS NOT NULL): the lookup runs the
// WHERE alone, where the test would read the client's value as plain data.
func (a *analyzer) lookupNullTests() *Error {
	lk := a.st.Lookup
	if lk == nil || lk.Where[0] < 0 {
		return nil
	}
	in := func(at int) bool { return at >= lk.Where[0] && at < lk.Where[1] }
	for _, nt := range a.nullTests {
		if !in(nt.start) {
			continue
		}
		var col *policy.Column
		inside := false
		for _, u := range a.uses {
			if u.number == nt.number {
				col = cmp.Or(col, u.col)
				inside = inside || in(u.start)
			}
		}
		if col != nil && !inside {
			return colErr(CodeFeatureNotSupported, col, "test the parameter for NULL in the application, or name the tenant ("+lk.Table.KeyContext+" = …) in WHERE",
				"the tenant lookup of this UPDATE would send $%d, a value of encrypted column %s, to the server as plain data for IS NULL", nt.number, col.QualifiedName()).at(a.sql, int32(nt.start))
		}
	}
	return nil
}

// finish assigns parameter numbers and builds Text and Slots from the edits.
func (a *analyzer) finish() *Error {
	st := a.st
	st.ClientParams = int(a.maxParam)
	if err := a.lookupNullTests(); err != nil {
		return err
	}
	a.assignParams()
	if g := a.lookupGuard; g != nil {
		st.Params = append(st.Params, Param{Client: -1, Action: TenantLookup})
		n := "$" + strconv.Itoa(len(st.Params))
		g.text += n + strings.ReplaceAll(a.lookupGuardAfter, "\x00", n)
		g.seq = len(a.edits)
		a.edits = append(a.edits, *g)
	}
	if len(st.Params) > maxParams {
		// The Bind pgveil sends counts them in an int16: beyond the limit
		// the count wrapped, and the server read another number of
		// parameters than the statement has (lead, 21st session).
		e := errorf("54000", "this statement needs %d parameters once pgveil adds its own (blind indexes, tenants, uniqueness checks: %d from the client), more than the protocol's limit of %d", len(st.Params), st.ClientParams, maxParams)
		e.Hint = "write fewer rows per statement"
		return e
	}
	if len(a.edits) == 0 && len(st.Params) == 0 {
		st.Params = nil
		return nil
	}
	st.Rewritten = true
	st.NamesOnly = a.pins > 0 && len(a.edits) == a.pins && len(a.uses) == 0
	if st.NamesOnly {
		st.Params = nil // the client's parameters and their types pass unchanged
	}
	sort.SliceStable(a.edits, func(i, j int) bool {
		if a.edits[i].start != a.edits[j].start {
			return a.edits[i].start < a.edits[j].start
		}
		if a.edits[i].sub != a.edits[j].sub {
			return a.edits[i].sub < a.edits[j].sub
		}
		return a.edits[i].seq < a.edits[j].seq
	})
	// Each segment of Text is recorded as pieces too (spans of the client's
	// text and pgveil's own text), so a shape plan can rebuild it for
	// another text of the same shape (shape.go).
	var b strings.Builder
	var seg []piece
	cur := a.stmtStart
	for _, e := range a.edits {
		if e.start < cur || e.end > a.stmtEnd {
			return errorf(CodeInternalError, "overlapping rewrite of statement text at byte %d; statement refused", e.start)
		}
		b.WriteString(a.sql[cur:e.start])
		seg = appendSpan(seg, cur, e.start)
		switch {
		case e.slot != nil:
			st.Text = append(st.Text, b.String())
			st.pieces = append(st.pieces, seg)
			st.Slots = append(st.Slots, *e.slot)
			b.Reset()
			seg = nil
		case e.copied:
			b.WriteString(a.sql[e.from:e.to])
			seg = appendSpan(seg, e.from, e.to)
		default:
			b.WriteString(e.text)
			if e.text != "" {
				seg = append(seg, piece{own: true, text: e.text})
			}
		}
		cur = e.end
	}
	b.WriteString(a.sql[cur:a.stmtEnd])
	st.Text = append(st.Text, b.String())
	st.pieces = append(st.pieces, appendSpan(seg, cur, a.stmtEnd))
	return nil
}

// assignParams numbers the derived parameters. A client parameter keeps its
// number for its first use when it has no plain (Pass) use; every other
// distinct use (another action, column or tenant) gets a new number after
// the client's, so the client still binds only its own parameters.
func (a *analyzer) assignParams() {
	if len(a.uses) == 0 {
		if a.st.Rewritten || len(a.edits) > 0 {
			a.st.Params = a.ignoreDropped(passParams(int(a.maxParam)))
		}
		return
	}
	params := passParams(int(a.maxParam))
	type groupKey struct {
		number int32
		action Action
		col    *policy.Column
		tenant ValueRef
	}
	numbers := map[groupKey]int{}
	replaced := map[int32]int{}
	first := map[int32]int{} // the number of each client parameter's first special use
	for _, u := range a.uses {
		if !u.insert && !u.elsewhere {
			replaced[u.number]++
		}
		first[u.number] = 0
	}
	for _, nt := range a.nullTests {
		if _, ok := first[nt.number]; ok {
			replaced[nt.number]++
		}
	}
	for i := range a.uses {
		u := &a.uses[i]
		k := groupKey{u.number, u.action, u.col, u.tenant}
		n, ok := numbers[k]
		if !ok {
			kept := params[u.number-1].Action != Pass || params[u.number-1].Column != nil
			if !kept && a.paramCount[u.number] == replaced[u.number]+a.dropped[u.number] {
				n = int(u.number)
				params[n-1] = Param{Client: n - 1, Action: u.action, Column: u.col, Tenant: u.tenant}
			} else {
				params = append(params, Param{Client: int(u.number) - 1, Action: u.action, Column: u.col, Tenant: u.tenant})
				n = len(params)
			}
			numbers[k] = n
		}
		if first[u.number] == 0 {
			first[u.number] = n
		}
		text := "$" + strconv.Itoa(n)
		switch {
		case u.insert:
			a.edits = append(a.edits, edit{start: u.start, end: u.start, text: u.prefix + text + u.suffix, sub: u.sub, seq: len(a.edits)})
		case n != int(u.number) || !u.bare:
			a.replace(u.start, u.end, text)
		}
	}
	for _, nt := range a.nullTests {
		if n := first[nt.number]; n > 0 {
			a.replace(nt.start, nt.end, "$"+strconv.Itoa(n))
		}
	}
	a.st.Params = a.ignoreDropped(params)
}

// ignoreDropped marks Ignore the client parameters whose every use pgveil
// removed.
func (a *analyzer) ignoreDropped(params []Param) []Param {
	for n, k := range a.dropped {
		if p := &params[n-1]; k == a.paramCount[n] && p.Action == Pass && p.Column == nil {
			*p = Param{Client: int(n) - 1, Action: Ignore}
		}
	}
	return params
}

func passParams(n int) []Param {
	p := make([]Param, n)
	for i := range p {
		p[i] = Param{Client: i, Action: Pass}
	}
	return p
}
