package rewrite

import (
	"sort"
	"strconv"
	"unicode/utf8"
)

// Error positions. The server's ErrorResponse carries the position of the
// error as a character offset into the text it received. For a statement
// pgveil rewrote, that is the rewritten text, and a client that draws a
// caret under its own text (psql's "LINE 1: ... ^", ORMs, IDEs) would point
// at the wrong place, or past the end. ClientPosition maps the position
// back.
//
// The map is rebuilt on each error from the two texts rather than kept
// from the rewrite: it costs nothing on the statement path, and it also
// covers the texts that a shape plan or a literal fill produced. pgveil's
// edits insert and replace whole tokens and keep every other token, in
// order, so the two token sequences are aligned as a longest common
// subsequence (alignTokens). A position in a kept token maps into the same
// token of the client's text; one in a token pgveil inserted or replaced
// maps to the start of the client's token at that point (the literal a
// ciphertext replaced, the name a schema was pinned to). Texts that differ
// in more than posMaxEdits tokens are not mapped: the position is dropped.

const (
	posMaxEdits  = 1024    // tokens inserted or removed, at most (the trace holds about posMaxEdits² int32s: 4 MiB)
	posBudget    = 1 << 22 // comparisons and diagonals per mapping, at most
	posMaxLen    = 1 << 20 // longest text whose positions are mapped
	posMaxTokens = 1 << 16 // most tokens in a text whose positions are mapped (1.5 MiB of tokens each)
)

// ClientPosition maps pos, the value of an ErrorResponse's position field
// (a 1-based character offset into sent, the UTF-8 text pgveil sent), to
// the matching position in orig, the client's text. backslash is the
// session's standard_conforming_strings = off. ok is false when the
// position cannot be mapped (a malformed value, a text too long to align):
// the caller then drops the field rather than point at the wrong place.
func ClientPosition(sent, orig, pos string, backslash bool) (mapped string, ok bool) {
	if sent == orig {
		return pos, true
	}
	n, err := strconv.Atoi(pos)
	if err != nil || n < 1 || len(sent) > posMaxLen || len(orig) > posMaxLen {
		return "", false
	}
	off, ok := runeOffset(sent, n-1)
	if !ok {
		return "", false
	}
	o, ok := mapOffset(sent, orig, off, backslash)
	if !ok {
		return "", false
	}
	return strconv.Itoa(utf8.RuneCountInString(orig[:o]) + 1), true
}

// runeOffset is the byte offset of the n-th character (0-based) of s; n
// may be the character count (the end of s).
func runeOffset(s string, n int) (int, bool) {
	i := 0
	for off := range s {
		if i == n {
			return off, true
		}
		i++
	}
	return len(s), i == n
}

// mapOffset maps the byte offset off in sent to one in orig.
func mapOffset(sent, orig string, off int, backslash bool) (int, bool) {
	a, aok := lexAll(sent, backslash)
	b, bok := lexAll(orig, backslash)
	if !aok || !bok || abs(len(a)-len(b)) > posMaxEdits {
		return 0, false
	}
	match, ok := alignTokens(sent, orig, a, b)
	if !ok {
		return 0, false
	}
	// The token at or before off.
	k := sort.Search(len(a), func(i int) bool { return a[i].start > off }) - 1
	switch {
	case k < 0:
		// Before the first token: the leading space and comments.
		if len(b) > 0 {
			return min(off, b[0].start), true
		}
		return min(off, len(orig)), true
	case off >= a[k].end:
		// Between tokens, or at the end: where the next token maps.
		if k+1 < len(a) {
			return match[k+1].at(b, 0), true
		}
		return len(orig), true
	}
	return match[k].at(b, off-a[k].start), true
}

// tokMatch is where a token of sent comes from: token j of orig when kept,
// else the point in orig before token j (j may be len of orig's tokens:
// the end).
type tokMatch struct {
	j    int
	kept bool
}

// at is the byte offset in orig of the token's byte rel.
func (m tokMatch) at(b []token, rel int) int {
	if m.j >= len(b) {
		if len(b) == 0 {
			return 0
		}
		return b[len(b)-1].end
	}
	t := b[m.j]
	if !m.kept {
		return t.start
	}
	return t.start + min(rel, max(t.end-t.start-1, 0))
}

// lexAll is the tokens of s, up to the first lexing error (included); ok
// is false past posMaxTokens.
func lexAll(s string, backslash bool) (ts []token, ok bool) {
	l := lexer{s: s, backslash: backslash}
	ts = make([]token, 0, min(len(s)/4+1, posMaxTokens))
	for {
		t := l.next()
		if t.kind == tEOF {
			return ts, true
		}
		if len(ts) == posMaxTokens {
			return nil, false
		}
		ts = append(ts, t)
		if t.kind == tError {
			return ts, true
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// alignTokens pairs the tokens a of sent with the tokens b of orig: a
// longest common subsequence of the two (Myers' O(ND) difference
// algorithm), so that every token pgveil kept pairs with itself however
// close its edits are. A token of sent outside the subsequence maps to
// the token of orig after the last pair before it. ok is false
// when the texts differ in more than posMaxEdits tokens or the search
// takes more than posBudget steps.
func alignTokens(sent, orig string, a, b []token) ([]tokMatch, bool) {
	n, m := len(a), len(b)
	budget := posBudget
	eq := func(x, y int) bool {
		budget--
		return sent[a[x].start:a[x].end] == orig[b[y].start:b[y].end]
	}
	// trace[d] holds v for diagonals -d..d after round d: v[k+d] is the
	// furthest x reached on diagonal k = x - y.
	var trace [][]int32
	var prev []int32
	dEnd := -1
	for d := 0; d <= posMaxEdits && dEnd < 0; d++ {
		v := make([]int32, 2*d+1)
		get := func(k int) int { return int(prev[k+d-1]) } // prev spans -(d-1)..d-1
		for k := -d; k <= d; k += 2 {
			var x int
			switch {
			case d == 0:
				x = 0
			case k == -d || k != d && get(k-1) < get(k+1):
				x = get(k + 1) // down: a token of orig that sent lacks
			default:
				x = get(k-1) + 1 // right: a token pgveil added
			}
			y := x - k
			for x < n && y < m && eq(x, y) {
				x, y = x+1, y+1
			}
			if budget < 0 {
				return nil, false
			}
			budget -= 1
			v[k+d] = int32(x)
			if x >= n && y >= m {
				dEnd = d
			}
		}
		trace = append(trace, v)
		prev = v
	}
	if dEnd < 0 {
		return nil, false
	}
	// Walk back from the end, pairing the diagonal steps.
	pair := make([]int, n)
	for i := range pair {
		pair[i] = -1
	}
	x, y := n, m
	for d := dEnd; d > 0; d-- {
		v := trace[d-1]
		get := func(k int) int { return int(v[k+d-1]) }
		k := x - y
		pk := k - 1
		if k == -d || k != d && get(k-1) < get(k+1) {
			pk = k + 1
		}
		px := get(pk)
		py := px - pk
		for x > px && y > py {
			x, y = x-1, y-1
			pair[x] = y
		}
		x, y = px, py
	}
	for x > 0 && y > 0 {
		x, y = x-1, y-1
		pair[x] = y
	}
	// An unpaired token of sent maps to the token of orig after the last
	// pair before it: the literal a ciphertext replaced, the name a schema
	// was pinned to, the token after an inserted column.
	match := make([]tokMatch, n)
	after := 0
	for i := range match {
		if pair[i] >= 0 {
			match[i] = tokMatch{pair[i], true}
			after = pair[i] + 1
		} else {
			match[i] = tokMatch{j: after}
		}
	}
	return match, true
}
