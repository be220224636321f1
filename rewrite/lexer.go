package rewrite

import "strings"

// The lexer is a small subset of PostgreSQL's scan.l: enough to find where a
// token ends (pg_query's parse tree records only where nodes start), to match
// parentheses when splicing edits into the client's text, and to decode
// literals. It follows scan.l for everything that decides token boundaries:
// nested /* */ comments, quote doubling, E'...' backslash escapes, string
// continuation across a newline, U&'...' with UESCAPE, $tag$ quoting, PG16
// numeric literals (0x1F, 1_000), and "quoted" identifiers.

type tokKind uint8

const (
	tEOF       tokKind = iota
	tIdent             // unquoted identifier or keyword
	tQIdent            // "quoted" or U&"quoted" identifier
	tString            // '..', E'..', N'..', U&'..' [UESCAPE 'c'], $tag$..$tag$, with continuations
	tBitString         // B'..', X'..'
	tNumber            // 42, 4.2, 1e5, 0x1F
	tParam             // $1
	tOp                // operator characters
	tPunct             // ( ) [ ] , ; . : ::
	tError             // unterminated quote or comment
)

type token struct {
	kind       tokKind
	start, end int
}

// lexer walks s from pos. backslash is true when standard_conforming_strings
// is off: backslashes then escape in plain '...' strings too.
type lexer struct {
	s         string
	pos       int
	backslash bool
}

// isSpace is scan.l's {space}: PostgreSQL 16 does not count \v.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentCont(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isOpChar(c byte) bool {
	return strings.IndexByte("~!@#^&|`?+-*/%<>=", c) >= 0
}

// skipSpace skips whitespace and comments; it reports false on an
// unterminated block comment.
func (l *lexer) skipSpace() bool {
	s := l.s
	if l.pos < 0 || l.pos > len(s) {
		l.pos = len(s)
		return false
	}
	for l.pos < len(s) {
		c := s[l.pos]
		switch {
		case isSpace(c):
			l.pos++
		case c == '-' && l.pos+1 < len(s) && s[l.pos+1] == '-':
			for l.pos < len(s) && s[l.pos] != '\n' && s[l.pos] != '\r' {
				l.pos++
			}
		case c == '/' && l.pos+1 < len(s) && s[l.pos+1] == '*':
			depth := 0
			for l.pos < len(s) {
				if s[l.pos] == '/' && l.pos+1 < len(s) && s[l.pos+1] == '*' {
					depth++
					l.pos += 2
				} else if s[l.pos] == '*' && l.pos+1 < len(s) && s[l.pos+1] == '/' {
					depth--
					l.pos += 2
					if depth == 0 {
						break
					}
				} else {
					l.pos++
				}
			}
			if depth != 0 {
				return false
			}
		default:
			return true
		}
	}
	return true
}

// next returns the next token, skipping whitespace and comments.
func (l *lexer) next() token {
	if !l.skipSpace() {
		t := token{tError, l.pos, len(l.s)}
		l.pos = len(l.s)
		return t
	}
	s := l.s
	start := l.pos
	if start >= len(s) {
		return token{tEOF, start, start}
	}
	c := s[start]
	var c1 byte
	if start+1 < len(s) {
		c1 = s[start+1]
	}
	switch {
	case (c == 'e' || c == 'E') && c1 == '\'':
		l.pos++
		return l.string(start, true, tString)
	case (c == 'b' || c == 'B' || c == 'x' || c == 'X') && c1 == '\'':
		l.pos++
		return l.string(start, false, tBitString)
	case (c == 'u' || c == 'U') && c1 == '&' && start+2 < len(s) && (s[start+2] == '\'' || s[start+2] == '"'):
		l.pos += 2
		if s[l.pos] == '"' {
			return l.quotedIdent(start)
		}
		t := l.string(start, false, tString)
		if t.kind == tString {
			l.uescape(&t)
		}
		return t
	case c == '\'':
		return l.string(start, l.backslash, tString)
	case c == '"':
		return l.quotedIdent(start)
	case isIdentStart(c):
		l.pos++
		for l.pos < len(s) && isIdentCont(s[l.pos]) {
			l.pos++
		}
		return token{tIdent, start, l.pos}
	case c == '$':
		return l.dollar(start)
	case c == '.' && c1 == '.': // DOT_DOT, as in PL/pgSQL ranges
		l.pos += 2
		return token{tPunct, start, l.pos}
	case isDigit(c) || c == '.' && isDigit(c1):
		return l.number(start)
	case c == ':' && c1 == ':':
		l.pos += 2
		return token{tPunct, start, l.pos}
	case strings.IndexByte("()[],;.:", c) >= 0:
		l.pos++
		return token{tPunct, start, l.pos}
	case isOpChar(c):
		l.pos++
		for l.pos < len(s) && isOpChar(s[l.pos]) {
			// A comment start ends the operator, as in scan.l.
			if s[l.pos] == '-' && l.pos+1 < len(s) && s[l.pos+1] == '-' ||
				s[l.pos] == '/' && l.pos+1 < len(s) && s[l.pos+1] == '*' {
				break
			}
			l.pos++
		}
		return token{tOp, start, l.pos}
	}
	l.pos++
	return token{tOp, start, l.pos}
}

// string reads a quoted string whose opening quote is at l.pos, with
// continuations ('a'<newline>'b'). escapes makes backslash escape the next
// byte (E'...' strings, or all strings with standard_conforming_strings off).
func (l *lexer) string(start int, escapes bool, kind tokKind) token {
	s := l.s
	for {
		l.pos++ // opening quote
		closed := false
		for l.pos < len(s) {
			c := s[l.pos]
			if c == '\\' && escapes {
				l.pos += 2
				continue
			}
			if c == '\'' {
				// '' is a quote, except in bit strings, where it ends the string.
				if kind != tBitString && l.pos+1 < len(s) && s[l.pos+1] == '\'' {
					l.pos += 2
					continue
				}
				l.pos++
				closed = true
				break
			}
			l.pos++
		}
		if !closed {
			l.pos = len(s)
			return token{tError, start, len(s)}
		}
		if q, ok := continuation(s, l.pos); ok {
			l.pos = q
			continue
		}
		return token{kind, start, l.pos}
	}
}

// continuation reports whether a string that ended at i continues:
// blanks, a newline, whitespace, then a quote. It returns the position of
// that quote. PostgreSQL 16's scanner as pg_query embeds it allows no
// comment in between (checked against pg_query in the lexer tests), so
// neither do we: the planner must read strings exactly as the parser did.
func continuation(s string, i int) (int, bool) {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\f') {
		i++
	}
	if i >= len(s) || (s[i] != '\n' && s[i] != '\r') {
		return 0, false
	}
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i < len(s) && s[i] == '\'' {
		return i, true
	}
	return 0, false
}

// uescape extends a U&'...' string or U&"..." identifier token over a
// following UESCAPE clause, whose string may be any string constant
// ('c', E'c', $$c$$): PostgreSQL's parser filter takes an SCONST there.
func (l *lexer) uescape(t *token) {
	save := l.pos
	n := l.next()
	if n.kind == tIdent && strings.EqualFold(l.s[n.start:n.end], "uescape") {
		if m := l.next(); m.kind == tString {
			t.end = m.end
			return
		}
	}
	l.pos = save
}

func (l *lexer) quotedIdent(start int) token {
	s := l.s
	l.pos++ // opening "
	for l.pos < len(s) {
		if s[l.pos] == '"' {
			if l.pos+1 < len(s) && s[l.pos+1] == '"' {
				l.pos += 2
				continue
			}
			l.pos++
			t := token{tQIdent, start, l.pos}
			if s[start] != '"' { // U&"..." may carry UESCAPE too
				l.uescape(&t)
			}
			return t
		}
		l.pos++
	}
	return token{tError, start, len(s)}
}

// dollar reads $n, $tag$...$tag$ or $$...$$.
func (l *lexer) dollar(start int) token {
	s := l.s
	i := start + 1
	if i < len(s) && isDigit(s[i]) {
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		l.pos = i
		return token{tParam, start, i}
	}
	if i < len(s) && isIdentStart(s[i]) {
		for i < len(s) && isIdentStart(s[i]) || i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i >= len(s) || s[i] != '$' {
		l.pos = start + 1
		return token{tOp, start, start + 1}
	}
	tag := s[start : i+1]
	end := strings.Index(s[i+1:], tag)
	if end < 0 {
		l.pos = len(s)
		return token{tError, start, len(s)}
	}
	l.pos = i + 1 + end + len(tag)
	return token{tString, start, l.pos}
}

// number reads a PG16 numeric literal.
func (l *lexer) number(start int) token {
	s := l.s
	i := start
	if s[i] == '0' && i+1 < len(s) {
		var ok func(byte) bool
		switch s[i+1] {
		case 'x', 'X':
			ok = func(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
		case 'o', 'O':
			ok = func(c byte) bool { return c >= '0' && c <= '7' }
		case 'b', 'B':
			ok = func(c byte) bool { return c == '0' || c == '1' }
		}
		if ok != nil {
			i += 2
			for i < len(s) && (ok(s[i]) || s[i] == '_') {
				i++
			}
			l.pos = i
			return token{tNumber, start, i}
		}
	}
	digits := func() {
		for i < len(s) && (isDigit(s[i]) || s[i] == '_') {
			i++
		}
	}
	digits()
	if i < len(s) && s[i] == '.' && !(i+1 < len(s) && s[i+1] == '.') {
		i++
		digits()
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			i = j
			digits()
		}
	}
	l.pos = i
	return token{tNumber, start, i}
}

// text returns the token's source text.
func (l *lexer) text(t token) string { return l.s[t.start:t.end] }

// isKeyword reports whether t is the unquoted keyword kw (lower case).
func (l *lexer) isKeyword(t token, kw string) bool {
	return t.kind == tIdent && strings.EqualFold(l.s[t.start:t.end], kw)
}

// isPunct reports whether t is the punctuation p.
func (l *lexer) isPunct(t token, p string) bool {
	return t.kind == tPunct && l.s[t.start:t.end] == p
}

// tokenAt lexes the token starting at pos.
func tokenAt(s string, pos int, backslash bool) token {
	l := lexer{s: s, pos: pos, backslash: backslash}
	return l.next()
}
