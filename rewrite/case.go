package rewrite

import (
	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// caseUnder returns the CASE under the casts of a value, or nil.
func caseUnder(n *pg.Node) *pg.CaseExpr {
	for n.GetTypeCast() != nil {
		n = n.GetTypeCast().Arg
	}
	return n.GetCaseExpr()
}

// caseResult is one result of a CASE written to an encrypted column.
type caseResult struct {
	v          value
	start, end int // the result's text
	// self: the result is the column itself; qualifier is its text up to
	// the column's name.
	self      bool
	qualifier string
	quoted    bool
}

// caseValue plans an encrypted column set to a CASE whose results are
// parameters, literals, NULL or the column itself, as Django's bulk_update
// writes it:
//
//	SET phone = (CASE WHEN ("users"."id" = 2) THEN '…' WHEN … ELSE NULL END)::varchar(32)
//
// Each result is sealed like a value of its own (under the tenant the
// UPDATE names or pgveil looks up: one for all the rows), and a cast around
// the CASE names the column's physical type instead. A blind index is set
// by the same CASE with each result's index in its place:
//
//	SET phone = (CASE WHEN (…) THEN {encrypt} … END)::bytea,
//	    phone_bidx = CASE WHEN (…) THEN {index} … END
//
// The copy repeats the client's text of the conditions; conditions pgveil
// rewrites (a comparison of an encrypted column) are refused there.
func (a *analyzer) caseValue(n *pg.Node, ce *pg.CaseExpr, enc *policy.Column, sc *scope, tenant ValueRef, haveTenant bool,
	missing func(loc int32) *Error, sep func(bidxColumn string) string) *Error {
	phys := "bytea"
	if a.physicalType(enc) == policy.OIDText {
		phys = "text"
	}
	casts := 0
	for inner := n; inner.GetTypeCast() != nil; inner = inner.GetTypeCast().Arg {
		// classify checked that each cast fits the column's logical type.
		tn := inner.GetTypeCast().TypeName
		end, ok := a.typeNameEnd(int(tn.GetLocation()))
		if tn.GetLocation() < 0 || !ok {
			return errorf(CodeInternalError, "cannot locate the cast around CASE; statement refused").at(a.sql, inner.GetTypeCast().Location)
		}
		a.replace(int(tn.Location), end, phys)
		casts++
	}
	caseStart := int(ce.Location)
	caseEnd, ok := a.caseEnd(caseStart)
	if !ok {
		return errorf(CodeInternalError, "cannot locate the end of CASE; statement refused").at(a.sql, ce.Location)
	}
	if casts == 0 {
		// Results that are all parameters or NULL would make a CASE of
		// type text.
		a.insert(caseEnd, "::"+phys)
	}

	edits, uses := len(a.edits), len(a.uses)
	if err := a.expr(ce.Arg, sc, "CASE"); err != nil {
		return err
	}
	nodes := make([]*pg.Node, 0, len(ce.Args)+1)
	for _, w := range ce.Args {
		cw := w.GetCaseWhen()
		if err := a.expr(cw.Expr, sc, "CASE … WHEN"); err != nil {
			return err
		}
		nodes = append(nodes, cw.Result)
	}
	rewritten := len(a.edits) > edits || len(a.uses) > uses
	if ce.Defresult != nil {
		nodes = append(nodes, ce.Defresult)
	}

	results := make([]caseResult, 0, len(nodes))
	for _, r := range nodes {
		v, err := a.classify(r, enc, false)
		if err != nil {
			return err
		}
		res := caseResult{v: v, start: v.start, end: v.end}
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
				same = ref.enc() == enc
			}
			start, end, last, quoted, ok := 0, 0, 0, false, false
			if same {
				start, end, last, quoted, ok = a.refTokens(cr)
			}
			if !ok {
				return unsupported(enc, "a CASE result other than a parameter, a literal, NULL or the column itself",
					"compute the value in the application; each result must be a parameter or a literal").at(a.sql, v.loc)
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

	targets := enc.IndexTargets()
	if len(targets) == 0 {
		return nil
	}
	if rewritten {
		return unsupported(enc, "a CASE whose conditions pgveil rewrites, written to a column with a blind index,",
			"compare unencrypted columns (such as the primary key) in the WHEN conditions").at(a.sql, ce.Location)
	}
	s, end, ok := a.exprExtent(n)
	if !ok {
		return errorf(CodeInternalError, "cannot locate CASE; statement refused").at(a.sql, ce.Location)
	}
	_, end = a.widenParens(s, end)
	sub := 0
	add := func(e edit) {
		sub++
		e.start, e.end, e.sub, e.seq = end, end, sub, len(a.edits)
		a.edits = append(a.edits, e)
	}
	copySpan := func(from, to int) {
		if from < to {
			add(edit{copied: true, from: from, to: to})
		}
	}
	for _, bi := range targets {
		action := IndexAction(enc, bi)
		add(edit{text: sep(bi.Column)})
		cur := caseStart
		for _, r := range results {
			copySpan(cur, r.start)
			switch {
			case r.self:
				add(edit{text: r.qualifier + identLike(bi.Column, r.quoted)})
			case r.v.kind == vParam:
				sub++
				a.uses = append(a.uses, paramUse{number: r.v.param, start: end, insert: true, action: action, col: enc, sub: sub})
			case r.v.kind == vLiteral:
				add(edit{slot: &Slot{Action: action, Column: enc, Source: r.v.lit}})
			default:
				add(edit{text: "NULL"})
			}
			cur = r.end
		}
		copySpan(cur, caseEnd)
	}
	return nil
}

// caseEnd returns the end of the END that closes the CASE at start.
func (a *analyzer) caseEnd(start int) (int, bool) {
	l := lexer{s: a.sql[:a.stmtEnd], pos: start, backslash: a.backslash}
	depth := 0
	for {
		t := l.next()
		switch {
		case t.kind == tEOF || t.kind == tError:
			return 0, false
		case l.isKeyword(t, "case"):
			depth++
		case l.isKeyword(t, "end"):
			depth--
			if depth == 0 {
				return t.end, true
			}
		}
	}
}

// widenParens widens [start,end) over parentheses around it: (x) for x.
func (a *analyzer) widenParens(start, end int) (int, int) {
	for {
		open, ok := a.openParenBefore(start)
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
