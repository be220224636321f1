package rewrite

import (
	"slices"
	"sort"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// choice is a CASE or a COALESCE written to an encrypted column: an
// expression that picks one of its results.
type choice struct {
	what       string // "CASE" or "COALESCE", for messages
	loc        int32
	start, end int        // its text, from the keyword
	conds      []*pg.Node // a CASE's argument and WHEN conditions
	results    []*pg.Node // in the order of the text
	selfLast   bool       // the column itself only as the last result (COALESCE)
}

// choiceUnder returns the CASE or COALESCE under the casts of a value.
func (a *analyzer) choiceUnder(n *pg.Node) (*choice, *Error) {
	for n.GetTypeCast() != nil {
		n = n.GetTypeCast().Arg
	}
	if ce := n.GetCaseExpr(); ce != nil {
		c := &choice{what: "CASE", loc: ce.Location, start: int(ce.Location), conds: []*pg.Node{ce.Arg}}
		for _, w := range ce.Args {
			cw := w.GetCaseWhen()
			c.conds = append(c.conds, cw.Expr)
			c.results = append(c.results, cw.Result)
		}
		if ce.Defresult != nil {
			c.results = append(c.results, ce.Defresult)
		}
		c.end = -1 // found from the last result (endAfter): a label or field may be named end
		return c, nil
	}
	if ce := n.GetCoalesceExpr(); ce != nil {
		c := &choice{what: "COALESCE", loc: ce.Location, start: int(ce.Location), results: ce.Args, selfLast: true}
		end, ok := a.callEnd(c.start)
		if !ok {
			return nil, errorf(CodeInternalError, "cannot locate the end of COALESCE; statement refused").at(a.sql, ce.Location)
		}
		c.end = end
		return c, nil
	}
	return nil, nil
}

// choiceResult is one result of a choice written to an encrypted column.
type choiceResult struct {
	v          value
	start, end int // the result's text
	// self: the result is the column itself; qualifier is its text up to
	// the column's name.
	self      bool
	qualifier string
	quoted    bool
}

// choiceValue plans an encrypted column set to a CASE or a COALESCE whose
// results are parameters, literals, NULL or the column itself, as Django's
// bulk_update writes it:
//
//	SET phone = (CASE WHEN ("users"."id" = 2) THEN '…' WHEN … ELSE NULL END)::varchar(32)
//
// and as partial updates do (sqlc's narg): SET email = COALESCE($1, email).
// Each result is sealed like a value of its own (under the tenant the
// UPDATE names or pgveil looks up: one for all the rows), and a cast around
// the expression names the column's physical type instead. A blind index is
// set by the same expression with each result's index in its place:
//
//	SET phone = (CASE WHEN (…) THEN {encrypt} … END)::bytea,
//	    phone_bidx = CASE WHEN (…) THEN {index} … END
//
// The copy repeats the client's text of the conditions; conditions pgveil
// rewrites (a comparison of an encrypted column) are refused there. In a
// COALESCE the column itself may only come last: COALESCE(email, $1) would
// take email_bidx where a row not yet backfilled (migration mode) has
// plaintext and no index; EXCLUDED.email, the row being inserted, may come
// anywhere (ON CONFLICT … SET email = COALESCE(EXCLUDED.email, users.email)).
func (a *analyzer) choiceValue(n *pg.Node, c *choice, enc *policy.Column, sc *scope, excluded *rel, tenant ValueRef, haveTenant bool,
	missing func(loc int32) *Error, sep func(bidxColumn string) string) *Error {
	phys := "bytea"
	if a.physicalType(enc) == policy.OIDText {
		phys = "text"
	}
	casts := 0
	var modded []*pg.TypeCast // the outer casts that may change a result
	for inner := n; inner.GetTypeCast() != nil; inner = inner.GetTypeCast().Arg {
		// classify checked that each cast fits the column's logical type.
		tn := inner.GetTypeCast().TypeName
		if len(tn.Typmods) > 0 || lastName(tn.Names) == "bpchar" {
			modded = append(modded, inner.GetTypeCast())
		}
		end, ok := a.typeNameEnd(int(tn.GetLocation()))
		if tn.GetLocation() < 0 || !ok {
			return errorf(CodeInternalError, "cannot locate the cast around %s; statement refused", c.what).at(a.sql, inner.GetTypeCast().Location)
		}
		a.replace(int(tn.Location), end, phys)
		casts++
	}
	edits, uses := len(a.edits), len(a.uses)
	for _, cond := range c.conds {
		if err := a.expr(cond, sc, c.what); err != nil {
			return err
		}
	}
	// What pgveil changed in the conditions: a name pinned to its schema
	// is repeated in the blind index's copy; anything else (an encrypted
	// comparison: a slot or a parameter of its own) refuses the copy.
	pins := slices.Clone(a.edits[edits:])
	rewritten := len(a.uses) > uses
	for _, e := range pins {
		rewritten = rewritten || e.slot != nil || e.copied
	}
	sort.SliceStable(pins, func(i, j int) bool { return pins[i].start < pins[j].start })

	results := make([]choiceResult, 0, len(c.results))
	for i, r := range c.results {
		v, err := a.classify(r, enc, false)
		if err != nil {
			return err
		}
		if len(modded) > 0 && (v.kind == vLiteral || v.kind == vParam) {
			// The cast around the CASE applies to each result: the same
			// check as on a value cast directly (a parameter: varchar(n)).
			if err := a.typmodsKeep(modded, enc, v, false); err != nil {
				return err
			}
		}
		res := choiceResult{v: v, start: v.start, end: v.end}
		switch v.kind {
		case vParam, vLiteral:
			if !haveTenant {
				return missing(v.loc)
			}
		case vNull:
		default:
			cr := r.GetColumnRef()
			same := false
			if cr != nil {
				ref, err := a.resolveColumn(cr, sc)
				if err != nil {
					return err
				}
				// EXCLUDED.col anywhere: the row pgveil wrote has its index.
				same = ref.enc() == enc && (!c.selfLast || i == len(c.results)-1 || (excluded != nil && ref.rel == excluded))
			}
			start, end, last, quoted, ok := 0, 0, 0, false, false
			if same {
				start, end, last, quoted, ok = a.refTokens(cr)
			}
			if !ok {
				what, hint := "a "+c.what+" result other than a parameter, a literal, NULL or the column itself",
					"compute the value in the application; each result must be a parameter or a literal"
				if c.selfLast {
					what = "a COALESCE argument other than a parameter, a literal, NULL or (last) the column itself"
					hint = "write COALESCE($1, " + enc.Name + ")"
				}
				return unsupported(enc, what, hint).at(a.sql, v.loc)
			}
			res.start, res.end, res.self, res.qualifier, res.quoted = start, end, true, a.sql[start:last], quoted
		}
		if !res.self {
			if err := a.sealValue(v, enc, tenant); err != nil {
				return err
			}
		}
		results = append(results, res)
	}

	if c.end < 0 {
		end, ok := a.endAfter(results[len(results)-1].end)
		if !ok {
			return errorf(CodeInternalError, "cannot locate the end of CASE; statement refused").at(a.sql, c.loc)
		}
		c.end = end
	}
	if casts == 0 {
		// Results that are all parameters or NULL would make an
		// expression of type text.
		a.insert(c.end, "::"+phys)
	}
	kept := false
	for _, r := range results {
		kept = kept || r.self
	}
	if !kept {
		a.reseal(enc)
	}
	targets := enc.IndexTargets()
	if len(targets) == 0 {
		return nil
	}
	if rewritten {
		return unsupported(enc, "a CASE whose conditions compare an encrypted column, written to a column with a blind index,",
			"compare unencrypted columns (such as the primary key) in the WHEN conditions").at(a.sql, c.loc)
	}
	for _, cond := range c.conds {
		if loc, ok := a.noCallsThrough(cond); !ok {
			return unsupported(enc, "a CASE condition that calls a function, samples or skips rows (the blind index's copy evaluates it again), written to a column with a blind index,",
				"compare columns with parameters or literals (such as the primary key) in the WHEN conditions").at(a.sql, loc)
		}
	}
	s, end, ok := a.castExtent(n, func(*pg.Node) (int, int, bool) { return c.start, c.end, true })
	if !ok {
		return errorf(CodeInternalError, "cannot locate %s; statement refused", c.what).at(a.sql, c.loc)
	}
	_, end = a.widenParens(s, end)
	sub := 0
	add := func(e edit) {
		sub++
		e.start, e.end, e.sub, e.seq = end, end, sub, len(a.edits)
		a.edits = append(a.edits, e)
	}
	clientSpan := func(from, to int) {
		if from < to {
			add(edit{copied: true, from: from, to: to})
		}
	}
	copySpan := func(from, to int) {
		for _, e := range pins {
			if e.start >= from && e.end <= to {
				clientSpan(from, e.start)
				add(edit{text: e.text})
				from = e.end
			}
		}
		clientSpan(from, to)
	}
	for _, bi := range targets {
		action := IndexAction(enc, bi)
		add(edit{text: sep(bi.Column)})
		cur := c.start
		for _, r := range results {
			copySpan(cur, r.start)
			switch {
			case r.self:
				add(edit{text: r.qualifier + identLike(bi.Column, r.quoted)})
			case r.v.kind == vParam:
				a.fillsUnique(r.v, enc, bi) // each result is checked (unique.go: a fill after the statement)
				sub++
				a.uses = append(a.uses, paramUse{number: r.v.param, start: end, insert: true, action: action, col: enc, sub: sub})
			case r.v.kind == vLiteral:
				a.fillsUnique(r.v, enc, bi)
				add(edit{slot: &Slot{Action: action, Column: enc, Source: r.v.lit}})
			default:
				add(edit{text: "NULL"})
			}
			cur = r.end
		}
		copySpan(cur, c.end)
	}
	return nil
}

// widenParens widens [start,end) over parentheses around it: (x) for x.
func (a *analyzer) widenParens(start, end int) (int, int) {
	for {
		open, ok := a.tokenBefore(start, "(")
		if !ok {
			return start, end
		}
		l := lexer{s: a.sql[:a.stmtEnd], pos: end, backslash: a.backslash}
		t := l.next()
		if !l.isPunct(t, ")") {
			return start, end
		}
		start, end = open, t.end
	}
}

// callEnd returns the end of the ")" that closes the call whose name,
// possibly qualified, is at start: COALESCE(…), pg_catalog.json_build_array(…).
func (a *analyzer) callEnd(start int) (int, bool) {
	l := lexer{s: a.sql[:a.stmtEnd], pos: start, backslash: a.backslash}
	for t := l.next(); ; t = l.next() {
		switch {
		case l.isPunct(t, "("):
			return a.matchParen(t.start)
		case t.kind == tIdent || t.kind == tQIdent || l.isPunct(t, "."):
		default:
			return 0, false
		}
	}
}

// endAfter returns the end of the END that follows the last result of a
// CASE (whose text ends at from): only ")" closing the result's own
// parentheses may come between.
func (a *analyzer) endAfter(from int) (int, bool) {
	l := lexer{s: a.sql[:a.stmtEnd], pos: from, backslash: a.backslash}
	for {
		t := l.next()
		switch {
		case l.isPunct(t, ")"):
		case l.isKeyword(t, "end"):
			return t.end, true
		default:
			return 0, false
		}
	}
}

// noCallsThrough is noCalls over a condition and the CTEs in scope it
// reads, at any depth (a sibling's too): PostgreSQL may inline a CTE into
// both the value's CASE and the blind index's copy. A MATERIALIZED one
// runs once, and both read its rows.
func (a *analyzer) noCallsThrough(cond *pg.Node) (int32, bool) {
	seen := map[string]bool{}
	queue := []*pg.Node{cond}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if loc, ok := noCalls(n); !ok {
			return loc, false
		}
		walkAll(n, func(x *pg.Node) bool {
			rv := x.GetRangeVar()
			if rv == nil || rv.Schemaname != "" || seen[rv.Relname] {
				return true
			}
			seen[rv.Relname] = true
			if d := a.ctes.def(rv.Relname); d != nil && d.Ctematerialized != pg.CTEMaterialize_CTEMaterializeAlways {
				queue = append(queue, d.Ctequery)
			}
			return true
		})
	}
	return 0, true
}

// noCalls reports whether a condition can give one answer twice: it calls
// no function anywhere (its subqueries included) and samples or skips no
// rows. random(), nextval(), clock_timestamp() or a volatile function of
// the application's, TABLESAMPLE and SKIP LOCKED would be evaluated again
// by the blind index's copy and could choose another branch.
func noCalls(n *pg.Node) (int32, bool) {
	loc, ok := int32(0), true
	walkAll(n, func(x *pg.Node) bool {
		switch {
		case !ok:
		case x.GetFuncCall() != nil:
			loc, ok = x.GetFuncCall().Location, false
		case x.GetRangeTableSample() != nil:
			loc, ok = x.GetRangeTableSample().Location, false
		case x.GetLockingClause() != nil && x.GetLockingClause().WaitPolicy == pg.LockWaitPolicy_LockWaitSkip:
			loc, ok = nodeLocation(n), false
		}
		return ok
	})
	return loc, ok
}

// tokenBefore finds the token before pos (comments skipped) when it is the
// punctuation p. It looks back over white space; only when a comment may
// stand between does it lex the statement from its start.
func (a *analyzer) tokenBefore(pos int, p string) (int, bool) {
	i := pos - 1
	for i >= a.stmtStart && isSpace(a.sql[i]) {
		i--
	}
	line := strings.LastIndexByte(a.sql[:i+1], '\n') + 1
	if i < a.stmtStart || a.sql[i] != '/' && !strings.Contains(a.sql[line:i+1], "--") {
		if i >= a.stmtStart && a.sql[i:i+1] == p {
			return i, true
		}
		return pos, false
	}
	l := lexer{s: a.sql[:pos], pos: a.stmtStart, backslash: a.backslash}
	last := token{kind: tEOF}
	for t := l.next(); t.kind != tEOF && t.kind != tError; t = l.next() {
		last = t
	}
	if last.kind != tEOF && l.isPunct(last, p) {
		return last.start, true
	}
	return pos, false
}
