package canon

import "github.com/pgveil/pgveil/policy"

// boolText accepts what PostgreSQL's boolin accepts: true/false, yes/no,
// on/off, 1/0 and unique prefixes, any case, surrounded by whitespace. The
// canonical form is "t" or "f", as PostgreSQL prints a bool.
func boolText(src, dst []byte) ([]byte, error) {
	s := trimSpace(src)
	if len(s) == 0 {
		return nil, invalid(policy.TypeBool, "invalid input syntax")
	}
	prefixOf := func(word string, min int) bool {
		return len(s) >= min && len(s) <= len(word) && equalFold(s, word[:len(s)])
	}
	switch {
	case prefixOf("true", 1), prefixOf("yes", 1), prefixOf("on", 2), len(s) == 1 && s[0] == '1':
		return appendBool(dst, true), nil
	case prefixOf("false", 1), prefixOf("no", 1), prefixOf("off", 2), len(s) == 1 && s[0] == '0':
		return appendBool(dst, false), nil
	}
	return nil, invalid(policy.TypeBool, "invalid input syntax")
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 't')
	}
	return append(dst, 'f')
}
