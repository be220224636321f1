package canon

import (
	"bytes"
	"unicode/utf8"

	"github.com/pgveil/pgveil/policy"
)

// textValue checks a text or varchar value as a UTF-8 database would: valid
// UTF-8 and no NUL byte. Its canonical form is itself.
func textValue(t policy.LogicalType, src, dst []byte) ([]byte, error) {
	if !utf8.Valid(src) {
		return nil, invalid(t, "invalid byte sequence for encoding UTF8")
	}
	if bytes.IndexByte(src, 0) >= 0 {
		return nil, invalid(t, "contains a NUL byte")
	}
	return append(dst, src...), nil
}

// isSpace is PostgreSQL's (C locale) isspace, which its input functions
// skip around a value.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares ASCII case-insensitively.
func equalFold(b []byte, s string) bool { return bytes.EqualFold(b, []byte(s)) }
