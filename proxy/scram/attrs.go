package scram

import (
	"strings"
)

// maxMessageLen bounds every SCRAM message this package parses. It is
// PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH, so anything PostgreSQL would accept
// is accepted here.
const maxMessageLen = 65535

// checkMessage applies PostgreSQL's checks on a raw SASL payload before
// parsing (auth-scram.c, scram_exchange): not empty, no NUL byte (PostgreSQL
// reads it as a C string and refuses a length mismatch), and bounded.
func checkMessage(msg []byte) *Error {
	switch {
	case len(msg) == 0:
		return malformed("The message is empty.")
	case len(msg) > maxMessageLen:
		return malformed("The message is too long.")
	case strings.IndexByte(string(msg), 0) >= 0:
		return malformed("Message length does not match input length.")
	}
	return nil
}

// attrReader walks the comma-separated attr=value list of a SCRAM message
// (RFC 5802 §7, "attr-val"). It reproduces read_attr_value and read_any_attr
// of PostgreSQL's auth-scram.c, including their tolerance of one trailing
// comma.
type attrReader struct {
	s   string
	pos int
}

func (r *attrReader) atEnd() bool { return r.pos >= len(r.s) }

// peek returns the next byte, or 0 at the end.
func (r *attrReader) peek() byte {
	if r.atEnd() {
		return 0
	}
	return r.s[r.pos]
}

// value reads up to the next comma (consumed) or the end.
func (r *attrReader) value() string {
	rest := r.s[r.pos:]
	if i := strings.IndexByte(rest, ','); i >= 0 {
		r.pos += i + 1
		return rest[:i]
	}
	r.pos = len(r.s)
	return rest
}

// expect reads "<attr>=<value>" for a known attribute.
func (r *attrReader) expect(attr byte) (string, *Error) {
	if c := r.peek(); c != attr {
		return "", malformed(`Expected attribute "` + string(attr) + `" but found "` + sanitizeChar(c) + `".`)
	}
	r.pos++
	if r.peek() != '=' {
		return "", malformed(`Expected character "=" for attribute "` + string(attr) + `".`)
	}
	r.pos++
	return r.value(), nil
}

// any reads the next "<ALPHA>=<value>".
func (r *attrReader) any() (attr byte, val string, err *Error) {
	if r.atEnd() {
		return 0, "", malformed("Attribute expected, but found end of string.")
	}
	attr = r.s[r.pos]
	if !(attr >= 'A' && attr <= 'Z' || attr >= 'a' && attr <= 'z') {
		return 0, "", malformed(`Attribute expected, but found invalid character "` + sanitizeChar(attr) + `".`)
	}
	r.pos++
	if r.peek() != '=' {
		return 0, "", malformed(`Expected character "=" for attribute "` + string(attr) + `".`)
	}
	r.pos++
	return attr, r.value(), nil
}

// skipExtensions reads and ignores optional extensions up to the end
// (RFC 5802 §7, "extensions").
func (r *attrReader) skipExtensions() *Error {
	for !r.atEnd() {
		if _, _, err := r.any(); err != nil {
			return err
		}
	}
	return nil
}

// isPrintable reports whether s is a non-empty RFC 5802 "printable":
// %x21-2B / %x2D-7E, printable ASCII except ",".
func isPrintable(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// sanitizeChar renders one byte of untrusted input for an error detail, as
// PostgreSQL's sanitize_char: 'c' when printable, else 0xNN.
func sanitizeChar(c byte) string {
	if c >= 0x21 && c <= 0x7e {
		return "'" + string(c) + "'"
	}
	const hex = "0123456789abcdef"
	return "0x" + string([]byte{hex[c>>4], hex[c&0xf]})
}

// sanitizeStr renders untrusted text for an error message, as PostgreSQL's
// sanitize_str: non-printables become '?', at most 30 characters.
func sanitizeStr(s string) string {
	if len(s) > 30 {
		s = s[:30]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x21 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// escapeSASLName escapes a user name for "n=" (RFC 5802 §5.1: "," as "=2C",
// "=" as "=3D").
func escapeSASLName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}
