package policy

import (
	"strings"
)

// expandEnv replaces ${VAR} and ${VAR:-default} in s from lookup. "$$" is a
// literal "$"; a "$" not followed by "{" or "$" is kept as it is, so
// passwords and regular expressions survive. It returns the names of
// variables that were referenced without a default and are unset, so that a
// later "is required" error can say why a value is empty.
func expandEnv(s string, lookup func(string) (string, bool)) (out string, unset []string, err error) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", nil, errUnclosedVar
			}
			expr := s[i+2 : i+2+end]
			name, def, hasDef := strings.Cut(expr, ":-")
			if !validEnvName(name) {
				return "", nil, &envNameError{name: name}
			}
			v, ok := lookup(name)
			switch {
			case ok && v != "":
				b.WriteString(v)
			case hasDef:
				b.WriteString(def)
			case !ok:
				unset = append(unset, name)
			}
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), unset, nil
}

func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

type constError string

func (e constError) Error() string { return string(e) }

const errUnclosedVar = constError(`unclosed "${" (write "$$" for a literal "$")`)

type envNameError struct{ name string }

func (e *envNameError) Error() string {
	return "invalid environment variable name " + quote(e.name) + " in ${...}"
}

func quote(s string) string { return `"` + s + `"` }
