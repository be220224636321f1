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
// order, so the two token sequences are aligned greedily: equal tokens
// pair up, and at a difference the alignment resumes at the nearest pair
// of positions where posRun tokens agree again (fewest tokens skipped on
// both sides together, an insertion before a replacement). A position in
// a kept token maps into the same token of the client's text; one in a
// token pgveil inserted or replaced maps to the start of the client's
// token at that point (the literal a ciphertext replaced, or the token
// before which names were inserted).

const (
	posWindow = 64      // tokens skipped on either side when resyncing, at most
	posRun    = 3       // tokens that must agree for a resync
	posBudget = 1 << 20 // token comparisons per mapping, at most
	posMaxLen = 1 << 20 // longest text whose positions are mapped
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
	a, b := lexAll(sent, backslash), lexAll(orig, backslash)
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

// tokMatch is where a token of sent comes from: token j of orig, or, when
// kept is false, the point in orig before token j (j may be len(orig's
// tokens): the end).
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

// lexAll is the tokens of s, up to the first lexing error (included).
func lexAll(s string, backslash bool) []token {
	l := lexer{s: s, backslash: backslash}
	var ts []token
	for {
		t := l.next()
		if t.kind == tEOF {
			return ts
		}
		ts = append(ts, t)
		if t.kind == tError {
			return ts
		}
	}
}

// alignTokens pairs the tokens a of sent with the tokens b of orig (see
// the comment at the top of the file).
func alignTokens(sent, orig string, a, b []token) ([]tokMatch, bool) {
	match := make([]tokMatch, len(a))
	budget := posBudget
	same := func(i, j int) bool {
		budget--
		return sent[a[i].start:a[i].end] == orig[b[j].start:b[j].end]
	}
	// agree reports whether posRun tokens agree from (i, j), or both texts
	// end together before that.
	agree := func(i, j int) bool {
		for k := 0; k < posRun; k++ {
			if i+k >= len(a) || j+k >= len(b) {
				return i+k >= len(a) && j+k >= len(b)
			}
			if !same(i+k, j+k) {
				return false
			}
		}
		return true
	}
	i, j := 0, 0
	for i < len(a) {
		if budget < 0 {
			return nil, false
		}
		if j < len(b) && same(i, j) {
			match[i] = tokMatch{j, true}
			i, j = i+1, j+1
			continue
		}
		x, y, found := 0, 0, false
	search:
		for d := 1; d <= 2*posWindow; d++ {
			for x = min(d, posWindow); x >= 0 && d-x <= posWindow; x-- {
				y = d - x
				if i+x > len(a) || j+y > len(b) {
					continue
				}
				if agree(i+x, j+y) {
					found = true
					break search
				}
			}
		}
		if !found {
			// No way back into step: the rest of sent maps to here.
			x, y = len(a)-i, 0
		}
		for k := i; k < i+x; k++ {
			match[k] = tokMatch{j: j}
		}
		i, j = i+x, j+y
	}
	return match, budget >= 0
}
