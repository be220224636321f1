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
