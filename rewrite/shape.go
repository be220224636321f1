package rewrite

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Shape plans: one plan for every text that differs only in its literals.
//
// A driver that interpolates values into the SQL (psycopg2, most ORMs on
// top of it, pgbench -M simple) sends a new text for every row, and plans
// cached by text never hit: each statement on a configured table would pay
// a parse (about 100 µs, docs/BENCH.md). The planner's decisions, however,
// depend on where the literals are and what kind they are, not on their
// values, with few exceptions that mark the analyzer valueDependent
// (ORDER BY / GROUP BY ordinals, set_config's arguments, JSON keys, the
// constant a JSON value falls back to in COALESCE) or that are not
// shape-cached at all (SET, COPY, DDL and other utility statements).
//
// The shape of a text is the text with every literal token (string, bit
// string and number) masked by its kind: two texts of one shape lex to the
// same tokens apart from the literals' contents, so pg_query parses them
// to the same tree apart from constant values. A shape plan records every
// offset of the plan it was made from (statement spans, literal spans,
// the spans of the client's text in each rewritten segment) and moves them
// to another text of that shape by the difference in length of the
// literals before each offset.
//
// A shape plan holds no text of the statement it was made from: values of
// encrypted columns never stay in the cache (the plan of a text with
// encrypted literals is not cached by text for the same reason).

// piece is part of a rewritten segment: a span of the client's text, or
// pgveil's own text (own).
type piece struct {
	own        bool
	start, end int
	text       string
}

// appendSpan appends the span [start,end) of the client's text, merging it
// with a span that ends where it starts.
func appendSpan(seg []piece, start, end int) []piece {
	if start >= end {
		return seg
	}
	if n := len(seg); n > 0 && !seg[n-1].own && seg[n-1].end == start {
		seg[n-1].end = end
		return seg
	}
	return append(seg, piece{start: start, end: end})
}

// litSpan is a literal token of a text.
type litSpan struct{ start, end int }

// shapeKeyPrefix keeps shape keys apart from statement texts in the cache
// (a statement text cannot hold a NUL byte).
const shapeKeyPrefix = "\x00shape\x00"

// shapeOf returns the shape key of sql and its literal tokens. ok is false
// when sql has no literal, or a construct the mask cannot stand for:
// unterminated tokens; numbers in other bases or with separators; E'…'
// and U&'…' strings, whose contents PostgreSQL's scanner may reject (a
// bad escape is a syntax error a shape hit would not see); and UESCAPE,
// whose string decides what a U&"…" identifier names.
func shapeOf(sql string) (key string, lits []litSpan, ok bool) {
	if containsFold(sql, "uescape") || !utf8.ValidString(sql) {
		return "", nil, false // pg_query refuses invalid UTF-8 in strings
	}
	var b strings.Builder
	b.Grow(len(shapeKeyPrefix) + len(sql))
	b.WriteString(shapeKeyPrefix)
	l := lexer{s: sql}
	cur := 0
	var t, prev1, prev2 token // t and the two tokens before it
	for ; ; prev2, prev1 = prev1, t {
		t = l.next()
		switch t.kind {
		case tEOF:
			if len(lits) == 0 {
				return "", nil, false
			}
			b.WriteString(sql[cur:])
			return b.String(), lits, true
		case tError:
			return "", nil, false
		case tString, tBitString:
			if c := sql[t.start]; c == 'E' || c == 'e' || c == 'U' || c == 'u' {
				return "", nil, false
			}
			b.WriteString(sql[cur:t.start])
			// The prefix (N, B, X, or $ of a $tag$ string) and the kind
			// stay: they decide how the parser reads the literal.
			q := strings.IndexAny(sql[t.start:t.end], "'$")
			b.WriteByte(0)
			b.WriteString(sql[t.start : t.start+q+1])
			b.WriteByte(0)
			cur = t.end
			lits = append(lits, litSpan{t.start, t.end})
		case tNumber:
			if prev1.kind == tPunct && sql[prev1.start:prev1.end] == "(" && prev2.kind == tIdent && strings.EqualFold(sql[prev2.start:prev2.end], "float") {
				continue // float(p): the grammar checks p, so it stays in the key
			}
			s := sql[t.start:t.end]
			var class byte
			if _, err := strconv.ParseInt(s, 10, 32); err == nil {
				class = 'i' // an Integer node
			} else if strings.IndexFunc(s, func(r rune) bool {
				return !(r >= '0' && r <= '9' || r == '.' || r == 'e' || r == 'E' || r == '+' || r == '-')
			}) < 0 {
				class = 'f' // a Float node: decimals, exponents, integers beyond int32
			} else {
				return "", nil, false // 0x1F, 1_000: leave to the text cache
			}
			b.WriteString(sql[cur:t.start])
			b.WriteByte(0)
			b.WriteByte(class)
			b.WriteByte(0)
			cur = t.end
			lits = append(lits, litSpan{t.start, t.end})
		}
	}
}

// shapePlan is a plan with its offsets kept as offsets.
type shapePlan struct {
	lits      []litSpan // the literal tokens of the text it was made from
	stmts     []shapeStmt
	rewritten bool
}

type shapeStmt struct {
	st         Stmt // Original, Text and pieces cleared; Literals as made
	start, end int  // Original's span
	pieces     [][]piece
}

// shapeSafe reports whether a plan may stand for every text of its shape.
func shapeSafe(st *Stmt) bool {
	switch st.Kind {
	case KindSelect, KindInsert, KindUpdate, KindDelete, KindTransaction:
	default:
		return false
	}
	return st.Copy == nil && st.SearchPath == nil && !st.SearchPathReset && st.Deallocate == ""
}

// newShapePlan makes the shape plan of plan, made from sql whose literal
// tokens are lits. It fails when a value of an encrypted column does not
// begin with a masked token (TRUE, FALSE, a sign before a number, a typed
// literal such as DATE '…': the key would keep the value, and texts with
// other values would not share the shape anyway), and when a rewritten
// segment holds pgveil text that contains a quoted literal of sql (text
// copied from the statement, which moving offsets would not update).
func newShapePlan(sql string, plan *Plan, lits []litSpan) (*shapePlan, bool) {
	starts := make(map[int]bool, len(lits))
	for _, l := range lits {
		starts[l.start] = true
	}
	sp := &shapePlan{lits: lits, rewritten: plan.Rewritten, stmts: make([]shapeStmt, len(plan.Stmts))}
	for i, st := range plan.Stmts {
		if !shapeSafe(st) {
			return nil, false
		}
		for _, l := range st.Literals {
			if !starts[l.Start] {
				return nil, false
			}
		}
		ss := shapeStmt{st: *st, start: st.OriginalStart, end: st.OriginalStart + len(st.Original)}
		ss.st.Original, ss.st.Text, ss.st.pieces = "", nil, nil
		if st.Rewritten {
			if len(st.pieces) != len(st.Text) {
				return nil, false
			}
			ss.pieces = make([][]piece, len(st.pieces))
			for j, seg := range st.pieces {
				out := make([]piece, len(seg))
				for k, pc := range seg {
					if pc.own {
						for _, lit := range lits {
							if q := sql[lit.start:lit.end]; (q[0] != '-' && !isDigit(q[0]) && q[0] != '.') && strings.Contains(pc.text, q) {
								return nil, false
							}
						}
						pc.text = strings.Clone(pc.text) // never a slice of sql
					}
					out[k] = pc
				}
				ss.pieces[j] = out
			}
		}
		sp.stmts[i] = ss
	}
	return sp, true
}

// offsetMap moves offsets of the text a shape plan was made from to
// another text of the same shape.
type offsetMap struct {
	from  []litSpan
	shift []int // shift[k]: length difference of the first k literals
}

func newOffsetMap(from, to []litSpan) offsetMap {
	m := offsetMap{from: from, shift: make([]int, len(from)+1)}
	for k := range from {
		m.shift[k+1] = m.shift[k] + (to[k].end - to[k].start) - (from[k].end - from[k].start)
	}
	return m
}

// at maps x; false when x falls inside a literal.
func (m offsetMap) at(x int) (int, bool) {
	k := sort.Search(len(m.from), func(i int) bool { return m.from[i].end > x })
	if k < len(m.from) && m.from[k].start < x {
		return 0, false
	}
	return x + m.shift[k], true
}

// instantiate returns the plan for sql, a text of the shape sp was made
// for, whose literal tokens are lits. ok is false when an offset cannot
// be moved (the caller then plans sql from scratch).
func (sp *shapePlan) instantiate(sql string, lits []litSpan) (*Plan, bool) {
	if len(lits) != len(sp.lits) {
		return nil, false
	}
	m := newOffsetMap(sp.lits, lits)
	plan := &Plan{Rewritten: sp.rewritten, Stmts: make([]*Stmt, len(sp.stmts))}
	stmts := make([]Stmt, len(sp.stmts))
	for i := range sp.stmts {
		ss := &sp.stmts[i]
		st := &stmts[i]
		*st = ss.st
		start, ok1 := m.at(ss.start)
		end, ok2 := m.at(ss.end)
		if !ok1 || !ok2 || start > end || end > len(sql) {
			return nil, false
		}
		st.Original, st.OriginalStart = sql[start:end], start
		if len(ss.st.Literals) > 0 {
			st.Literals = make([]Literal, len(ss.st.Literals))
			for j, lit := range ss.st.Literals {
				s, ok1 := m.at(lit.Start)
				e, ok2 := m.at(lit.End)
				if !ok1 || !ok2 || s > e || e > len(sql) {
					return nil, false
				}
				st.Literals[j] = Literal{Start: s, End: e}
				for _, c := range lit.Casts {
					nc := Typmod{Name: c.Name}
					for _, at := range c.ModAt {
						if at < 0 {
							nc.ModAt = append(nc.ModAt, at) // not in the text
							continue
						}
						p, ok := m.at(at)
						if !ok || p >= len(sql) {
							return nil, false
						}
						nc.ModAt = append(nc.ModAt, p)
					}
					st.Literals[j].Casts = append(st.Literals[j].Casts, nc)
				}
			}
		}
		if st.Rewritten {
			st.Text = make([]string, len(ss.pieces))
			for j, seg := range ss.pieces {
				var b strings.Builder
				for _, pc := range seg {
					if pc.own {
						b.WriteString(pc.text)
						continue
					}
					s, ok1 := m.at(pc.start)
					e, ok2 := m.at(pc.end)
					if !ok1 || !ok2 || s > e || e > len(sql) {
						return nil, false
					}
					b.WriteString(sql[s:e])
				}
				st.Text[j] = b.String()
			}
		}
		plan.Stmts[i] = st
	}
	return plan, true
}
