package canon

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/pgveil/pgveil/policy"
)

// jsonText checks json input (valid UTF-8 JSON text, no NUL byte). json
// keeps its text exactly, whitespace, key order and duplicate keys
// included, as PostgreSQL does; so its canonical form, and its blind index
// input, is the text itself: two json values are equal when their texts are.
func jsonText(src, dst []byte) ([]byte, error) {
	if !utf8.Valid(src) || bytes.IndexByte(src, 0) >= 0 || !json.Valid(src) {
		return nil, invalid(policy.TypeJSON, "invalid input syntax for type json")
	}
	return append(dst, src...), nil
}

// maxJSONDepth bounds nesting, as PostgreSQL's stack depth limit does.
const maxJSONDepth = 1000

// jsonbText parses JSON and writes it the way PostgreSQL prints jsonb:
// object keys sorted by length, then bytewise; the last of duplicate keys
// kept; ", " and ": " separators; numbers as numeric prints them ("1e2" →
// "100", "1.50" stays "1.50"); strings re-escaped as PostgreSQL's
// escape_json does. With equality set, numbers are written in numeric's
// equality form instead ("1.50" → "1.5"), which is what jsonb = compares.
func jsonbText(src, dst []byte, equality bool) ([]byte, error) {
	p := &jsonParser{s: src, equality: equality}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return nil, invalid(policy.TypeJSONB, "invalid input syntax for type json")
	}
	return v.appendTo(dst), nil
}

type jsonValue struct {
	kind byte   // '{', '[', '"', '0' (number), 'l' (literal)
	text []byte // string contents (unescaped), number or literal text
	arr  []jsonValue
	keys [][]byte
	vals []jsonValue
}

type jsonParser struct {
	s        []byte
	i        int
	equality bool
}

func (p *jsonParser) fail() error {
	return invalid(policy.TypeJSONB, "invalid input syntax for type json")
}

func (p *jsonParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *jsonParser) value(depth int) (jsonValue, error) {
	if depth > maxJSONDepth {
		return jsonValue{}, invalid(policy.TypeJSONB, "nested too deeply")
	}
	if p.i >= len(p.s) {
		return jsonValue{}, p.fail()
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.str()
		return jsonValue{kind: '"', text: s}, err
	case c == '-' || isDigit(c):
		return p.number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(p.s[p.i:], []byte(lit)) {
				p.i += len(lit)
				return jsonValue{kind: 'l', text: []byte(lit)}, nil
			}
		}
	}
	return jsonValue{}, p.fail()
}

func (p *jsonParser) object(depth int) (jsonValue, error) {
	p.i++ // {
	v := jsonValue{kind: '{'}
	type member struct {
		key []byte
		val jsonValue
	}
	var ms []member
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return v, nil
	}
	for {
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return v, p.fail()
		}
		k, err := p.str()
		if err != nil {
			return v, err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return v, p.fail()
		}
		p.i++
		p.space()
		val, err := p.value(depth + 1)
		if err != nil {
			return v, err
		}
		ms = append(ms, member{k, val})
		p.space()
		if p.i >= len(p.s) {
			return v, p.fail()
		}
		if p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.s[p.i] != '}' {
			return v, p.fail()
		}
		p.i++
		break
	}
	// jsonb order: shorter keys first, then bytewise; stable, so among
	// duplicates the last one written ends up last and wins.
	slices.SortStableFunc(ms, func(a, b member) int {
		if len(a.key) != len(b.key) {
			return len(a.key) - len(b.key)
		}
		return bytes.Compare(a.key, b.key)
	})
	for i, m := range ms {
		if i+1 < len(ms) && bytes.Equal(ms[i+1].key, m.key) {
			continue
		}
		v.keys = append(v.keys, m.key)
		v.vals = append(v.vals, m.val)
	}
	return v, nil
}

func (p *jsonParser) array(depth int) (jsonValue, error) {
	p.i++ // [
	v := jsonValue{kind: '['}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return v, nil
	}
	for {
		p.space()
		e, err := p.value(depth + 1)
		if err != nil {
			return v, err
		}
		v.arr = append(v.arr, e)
		p.space()
		if p.i >= len(p.s) {
			return v, p.fail()
		}
		if p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.s[p.i] != ']' {
			return v, p.fail()
		}
		p.i++
		return v, nil
	}
}

// number reads a JSON number (RFC 8259 grammar) and converts it to numeric.
func (p *jsonParser) number() (jsonValue, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	intStart := p.i
	for p.i < len(p.s) && isDigit(p.s[p.i]) {
		p.i++
	}
	if p.i == intStart || (p.s[intStart] == '0' && p.i-intStart > 1) {
		return jsonValue{}, p.fail()
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		fs := p.i
		for p.i < len(p.s) && isDigit(p.s[p.i]) {
			p.i++
		}
		if p.i == fs {
			return jsonValue{}, p.fail()
		}
	}
	if p.i < len(p.s) && (p.s[p.i]|0x20) == 'e' {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		es := p.i
		for p.i < len(p.s) && isDigit(p.s[p.i]) {
			p.i++
		}
		if p.i == es {
			return jsonValue{}, p.fail()
		}
	}
	n, err := numericText(p.s[start:p.i], nil)
	if err != nil {
		return jsonValue{}, invalid(policy.TypeJSONB, "number out of range for numeric")
	}
	if p.equality {
		n = appendNumericEquality(nil, n)
	}
	return jsonValue{kind: '0', text: n}, nil
}

// str reads a JSON string and returns its unescaped UTF-8 contents.
func (p *jsonParser) str() ([]byte, error) {
	p.i++ // "
	var out []byte
	for {
		if p.i >= len(p.s) {
			return nil, p.fail()
		}
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return out, nil
		case c < 0x20:
			return nil, p.fail()
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return nil, p.fail()
			}
			e := p.s[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
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
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return nil, p.fail()
				}
				if utf16.IsSurrogate(r) {
					if r >= 0xDC00 || p.i+1 >= len(p.s) || p.s[p.i] != '\\' || p.s[p.i+1] != 'u' {
						return nil, invalid(policy.TypeJSONB, "unpaired Unicode surrogate")
					}
					p.i += 2
					lo, ok := p.hex4()
					if !ok || lo < 0xDC00 || lo > 0xDFFF {
						return nil, invalid(policy.TypeJSONB, "unpaired Unicode surrogate")
					}
					r = utf16.DecodeRune(r, lo)
				}
				if r == 0 {
					return nil, invalid(policy.TypeJSONB, "unsupported Unicode escape sequence (\\u0000)")
				}
				out = utf8.AppendRune(out, r)
			default:
				return nil, p.fail()
			}
		default:
			r, size := utf8.DecodeRune(p.s[p.i:])
			if r == utf8.RuneError && size <= 1 {
				return nil, invalid(policy.TypeJSONB, "invalid byte sequence for encoding UTF8")
			}
			out = append(out, p.s[p.i:p.i+size]...)
			p.i += size
		}
	}
}

func (p *jsonParser) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.s[p.i:p.i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(v), true
}

func (v *jsonValue) appendTo(dst []byte) []byte {
	switch v.kind {
	case '{':
		dst = append(dst, '{')
		for i := range v.keys {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendJSONString(dst, v.keys[i])
			dst = append(dst, ": "...)
			dst = v.vals[i].appendTo(dst)
		}
		return append(dst, '}')
	case '[':
		dst = append(dst, '[')
		for i := range v.arr {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = v.arr[i].appendTo(dst)
		}
		return append(dst, ']')
	case '"':
		return appendJSONString(dst, v.text)
	}
	return append(dst, v.text...)
}

// appendJSONString escapes as PostgreSQL's escape_json: \" \\ \b \f \n \r
// \t, other control characters as \u00xx, everything else as it is.
func appendJSONString(dst, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for _, c := range s {
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			} else {
				dst = append(dst, c)
			}
		}
	}
	return append(dst, '"')
}

// AppendJSONString appends s as a JSON string, escaped as PostgreSQL's
// escape_json does.
func AppendJSONString(dst, s []byte) []byte { return appendJSONString(dst, s) }

// UnquoteJSON decodes one JSON string token, its quotes included, as
// PostgreSQL reads one (valid UTF-8, escapes, surrogate pairs; no \u0000).
func UnquoteJSON(tok []byte) ([]byte, error) {
	p := &jsonParser{s: tok}
	if len(tok) == 0 || tok[0] != '"' {
		return nil, p.fail()
	}
	s, err := p.str()
	if err != nil {
		return nil, err
	}
	if p.i != len(tok) {
		return nil, p.fail()
	}
	return s, nil
}

// JSONBText appends json text src as PostgreSQL prints it once converted
// to jsonb (keys sorted and deduplicated, its separators and numbers).
func JSONBText(src, dst []byte) ([]byte, error) { return jsonbText(src, dst, false) }
