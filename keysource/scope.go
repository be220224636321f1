package keysource

import (
	"strings"

	"github.com/pgveil/pgveil/policy"
)

// ScopeOf is the scope of a column's encryption keys in pgveil.keys:
// schema, table and column joined by dots. A name containing '.' or '"' is
// written double-quoted with '"' doubled, as SQL quotes identifiers, so two
// different columns never share a scope ("a.b"."c" is not "a"."b.c").
func ScopeOf(col *policy.Column) string {
	return scopePart(col.Table.Schema) + "." + scopePart(col.Table.Name) + "." + scopePart(col.Name)
}

func scopePart(s string) string {
	if !strings.ContainsAny(s, `."`) && s != "" {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// splitScope is ScopeOf's inverse: the schema, table and column a scope
// names. ok is false for a string ScopeOf never writes.
func splitScope(scope string) (schema, table, column string, ok bool) {
	var parts [3]string
	rest := scope
	for i := range parts {
		if i > 0 {
			if rest, ok = strings.CutPrefix(rest, "."); !ok {
				return "", "", "", false
			}
		}
		if q, found := strings.CutPrefix(rest, `"`); found {
			// Up to the '"' that is not doubled.
			var b strings.Builder
			for {
				j := strings.IndexByte(q, '"')
				if j < 0 {
					return "", "", "", false
				}
				b.WriteString(q[:j])
				q = q[j+1:]
				if !strings.HasPrefix(q, `"`) {
					break
				}
				b.WriteByte('"')
				q = q[1:]
			}
			parts[i], rest = b.String(), q
		} else {
			j := strings.IndexByte(rest, '.')
			if j < 0 {
				j = len(rest)
			}
			parts[i], rest = rest[:j], rest[j:]
		}
	}
	if rest != "" || scopePart(parts[0])+"."+scopePart(parts[1])+"."+scopePart(parts[2]) != scope {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// activeKey indexes the active-key cache. It is made of the column's own
// strings, so building it on the hot path allocates nothing, and a config
// reload (new *policy.Column values) still hits the cache.
type activeKey struct {
	schema, table, column string
	tenant                string
	hasTenant             bool
}

func activeKeyOf(col *policy.Column, tenant string, hasTenant bool) activeKey {
	if !hasTenant {
		tenant = ""
	}
	return activeKey{col.Table.Schema, col.Table.Name, col.Name, tenant, hasTenant}
}
