package rewrite

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// LiteralValue decodes the SQL literal at lit in orig, the statement text
// the plan was made from. It accepts every form the planner records:
// '...' with quotes doubled, E'...' escapes, U&'...' [UESCAPE 'c'], $tag$...$tag$,
// N'...' (the N is read like a type name), strings continued across newlines, integers and decimals (with a
// sign, PG16 underscores, 0x/0o/0b prefixes), TRUE/FALSE, NULL, and any of
// them under a cast ('2024-01-02'::date, CAST('x' AS text), DATE '2024-01-02'):
// the value is the literal's text, not the cast's result.
//
// Plain '...' strings are read as standard_conforming_strings = on does;
// the planner refuses statements whose meaning would differ when the
// session has it off (see Session.BackslashStrings).
func LiteralValue(orig string, lit Literal) (value []byte, isNull bool, err error) {
	if lit.Start < 0 || lit.End > len(orig) || lit.Start >= lit.End {
		return nil, false, fmt.Errorf("literal %d..%d outside the statement (%d bytes)", lit.Start, lit.End, len(orig))
	}
	l := lexer{s: orig[:lit.End], pos: lit.Start}
	sign := ""
	for {
		t := l.next()
		switch t.kind {
		case tEOF, tError:
			return nil, false, errors.New("no literal found")
		case tString:
			if sign != "" {
				return nil, false, errors.New("sign before a string literal")
			}
			v, err := decodeString(l.text(t))
			return v, false, err
		case tBitString:
			return nil, false, errors.New("bit-string literals are not supported for encrypted columns")
		case tNumber:
			v, err := decodeNumber(l.text(t))
			if err != nil {
				return nil, false, err
			}
			if sign == "-" && v != "0" {
				v = "-" + v
			}
			return []byte(v), false, nil
		case tOp:
			op := l.text(t)
			if (op != "-" && op != "+") || sign != "" {
				return nil, false, fmt.Errorf("unexpected operator %q in literal", op)
			}
			sign = op
		case tIdent:
			switch strings.ToLower(l.text(t)) {
			case "null":
				return nil, true, nil
			case "true":
				return []byte("true"), false, nil
			case "false":
				return []byte("false"), false, nil
			}
			// CAST, or a type name before a typed literal (DATE '...').
		}
	}
}

// LiteralIsNumber reports whether lit is an unquoted number (7, -7, 007,
// 1e2, 1.50), which PostgreSQL reads as an integer or numeric: written to
// a text column, it stores that number's output text ('7' for 007, '100'
// for 1e2), not the digits as written.
func LiteralIsNumber(orig string, lit Literal) bool {
	if lit.Start < 0 || lit.End > len(orig) || lit.Start >= lit.End {
		return false
	}
	l := lexer{s: orig[:lit.End], pos: lit.Start}
	for {
		t := l.next()
		switch t.kind {
		case tNumber:
			return true
		case tOp:
			if op := l.text(t); op == "-" || op == "+" {
				continue
			}
		}
		return false
	}
}

// decodeNumber returns a numeric literal's value as decimal text.
func decodeNumber(s string) (string, error) {
	s = strings.ReplaceAll(s, "_", "")
	if len(s) > 2 && s[0] == '0' {
		base := 0
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			n, ok := new(big.Int).SetString(s[2:], base)
			if !ok {
				return "", fmt.Errorf("invalid numeric literal %q", s)
			}
			return n.String(), nil
		}
	}
	if s == "" {
		return "", errors.New("empty numeric literal")
	}
	return s, nil
}

// decodeString decodes one string token: its prefix selects the escape
// rules, and continuation pieces are decoded the same way and joined.
func decodeString(tok string) ([]byte, error) {
	if strings.HasPrefix(tok, "$") {
		end := strings.IndexByte(tok[1:], '$') + 2
		return []byte(tok[end : len(tok)-end]), nil
	}
	mode := byte(0)
	switch tok[0] {
	case 'e', 'E':
		mode, tok = 'e', tok[1:]
	case 'u', 'U':
		mode, tok = 'u', tok[2:]
	}
	var raw []byte
	i := 0
	for {
		// tok[i] is an opening quote.
		i++
		for i < len(tok) {
			c := tok[i]
			if c == '\\' && mode == 'e' && i+1 < len(tok) {
				raw = append(raw, c, tok[i+1])
				i += 2
				continue
			}
			if c == '\'' {
				if i+1 < len(tok) && tok[i+1] == '\'' {
					raw = append(raw, '\'')
					i += 2
					continue
				}
				break
			}
			raw = append(raw, c)
			i++
		}
		i++ // closing quote
		q, ok := continuation(tok, i)
		if !ok {
			break
		}
		i = q
	}
	switch mode {
	case 'e':
		return unescapeE(raw)
	case 'u':
		esc := byte('\\')
		if rest := strings.TrimSpace(stripComments(tok[i:])); rest != "" {
			// UESCAPE 'c'
			j := strings.IndexByte(rest, '\'')
			if len(rest) < j+3 || rest[j+2] != '\'' {
				return nil, errors.New("invalid UESCAPE clause")
			}
			esc = rest[j+1]
			if isSpace(esc) || esc == '+' || esc == '\'' || esc == '"' || isHex(esc) {
				return nil, errors.New("invalid Unicode escape character")
			}
		}
		return unescapeU(raw, esc)
	}
	if !utf8.Valid(raw) {
		return nil, errors.New("invalid UTF-8 in string literal")
	}
	return raw, nil
}

func stripComments(s string) string {
	l := lexer{s: s}
	var b strings.Builder
	for t := l.next(); t.kind != tEOF && t.kind != tError; t = l.next() {
		b.WriteString(l.text(t))
		b.WriteByte(' ')
	}
	return b.String()
}

func isHex(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// unescapeE applies E'...' escapes: \b \f \n \r \t, \ooo, \xhh, \uXXXX,
// \UXXXXXXXX (surrogate pairs joined), and \c for any other c.
func unescapeE(raw []byte) ([]byte, error) {
	out := make([]byte, 0, len(raw))
	var pendingHigh rune
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			if pendingHigh != 0 {
				return nil, errors.New("invalid Unicode surrogate pair")
			}
			out = append(out, c)
			continue
		}
		i++
		c = raw[i]
		if pendingHigh != 0 && c != 'u' && c != 'U' {
			return nil, errors.New("invalid Unicode surrogate pair")
		}
		switch c {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'x':
			j := i + 1
			for j < len(raw) && j < i+3 && isHex(raw[j]) {
				j++
			}
			if j == i+1 {
				out = append(out, 'x')
				continue
			}
			v, _ := strconv.ParseUint(string(raw[i+1:j]), 16, 8)
			out = append(out, byte(v))
			i = j - 1
		case 'u', 'U':
			n := 4
			if c == 'U' {
				n = 8
			}
			if i+1+n > len(raw) {
				return nil, errors.New("invalid Unicode escape: want \\uXXXX or \\UXXXXXXXX")
			}
			hexs := string(raw[i+1 : i+1+n])
			v, err := strconv.ParseUint(hexs, 16, 32)
			if err != nil {
				return nil, errors.New("invalid Unicode escape: want \\uXXXX or \\UXXXXXXXX")
			}
			i += n
			r, err := joinSurrogate(rune(v), &pendingHigh)
			if err != nil {
				return nil, err
			}
			if r >= 0 {
				out = utf8.AppendRune(out, r)
			}
		default:
			if c >= '0' && c <= '7' {
				j := i
				for j < len(raw) && j < i+3 && raw[j] >= '0' && raw[j] <= '7' {
					j++
				}
				v, _ := strconv.ParseUint(string(raw[i:j]), 8, 16)
				out = append(out, byte(v))
				i = j - 1
				continue
			}
			out = append(out, c)
		}
	}
	if pendingHigh != 0 {
		return nil, errors.New("invalid Unicode surrogate pair")
	}
	if !utf8.Valid(out) {
		return nil, errors.New("invalid UTF-8 in escaped string literal")
	}
	for _, b := range out {
		if b == 0 {
			return nil, errors.New("null character not permitted in a string literal")
		}
	}
	return out, nil
}

// unescapeU applies U&'...' escapes with escape character esc: \XXXX, \+XXXXXX
// and \\ (esc doubled).
func unescapeU(raw []byte, esc byte) ([]byte, error) {
	out := make([]byte, 0, len(raw))
	var pendingHigh rune
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != esc {
			if pendingHigh != 0 {
				return nil, errors.New("invalid Unicode surrogate pair")
			}
			out = append(out, c)
			continue
		}
		if i+1 < len(raw) && raw[i+1] == esc {
			out = append(out, esc)
			i++
			continue
		}
		n, from := 4, i+1
		if i+1 < len(raw) && raw[i+1] == '+' {
			n, from = 6, i+2
		}
		if from+n > len(raw) {
			return nil, errors.New("invalid Unicode escape")
		}
		v, err := strconv.ParseUint(string(raw[from:from+n]), 16, 32)
		if err != nil {
			return nil, errors.New("invalid Unicode escape")
		}
		i = from + n - 1
		r, err := joinSurrogate(rune(v), &pendingHigh)
		if err != nil {
			return nil, err
		}
		if r >= 0 {
			out = utf8.AppendRune(out, r)
		}
	}
	if pendingHigh != 0 {
		return nil, errors.New("invalid Unicode surrogate pair")
	}
	if !utf8.Valid(out) {
		return nil, errors.New("invalid UTF-8 in Unicode string literal")
	}
	return out, nil
}

// joinSurrogate returns the rune to emit, or -1 while a high surrogate waits
// for its low half.
func joinSurrogate(r rune, pendingHigh *rune) (rune, error) {
	switch {
	case r == 0 || r > utf8.MaxRune:
		return 0, errors.New("invalid Unicode code point")
	case r >= 0xD800 && r <= 0xDBFF:
		if *pendingHigh != 0 {
			return 0, errors.New("invalid Unicode surrogate pair")
		}
		*pendingHigh = r
		return -1, nil
	case r >= 0xDC00 && r <= 0xDFFF:
		if *pendingHigh == 0 {
			return 0, errors.New("invalid Unicode surrogate pair")
		}
		j := utf16.DecodeRune(*pendingHigh, r)
		*pendingHigh = 0
		return j, nil
	}
	if *pendingHigh != 0 {
		return 0, errors.New("invalid Unicode surrogate pair")
	}
	return r, nil
}

// ByteaLiteral formats b as E'\\x…'::bytea. An E'...' string reads the same
// whatever standard_conforming_strings is, so the server always sees the
// hex form \x… (a plain '\x…' would lose its backslash with the setting off).
func ByteaLiteral(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b)*2 + 16)
	sb.WriteString(`E'\\x`)
	sb.WriteString(hex.EncodeToString(b))
	sb.WriteString(`'::bytea`)
	return sb.String()
}

// TextLiteral quotes s as a string literal that reads the same whatever
// standard_conforming_strings is: '…' with quotes doubled when s has no
// backslash, else E'…' with backslashes doubled too. A NUL byte, which
// PostgreSQL text cannot hold, is written as \000 so the server rejects it.
func TextLiteral(s string) string {
	if !strings.ContainsAny(s, "\\\x00") {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	var b strings.Builder
	b.WriteString("E'")
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\'':
			b.WriteString(`''`)
		case 0:
			b.WriteString(`\000`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
