package canon

import "testing"

// TestTenantTypeNamed: the key_context types whose stored form pgveil
// computes (or which are stored as written) pass; others do not.
func TestTenantTypeNamed(t *testing.T) {
	for _, c := range []struct {
		what     string
		base     uint32
		typtype  byte
		category byte
		want     bool
	}{
		{"text", 25, 'b', 'S', true},
		{"varchar", 1043, 'b', 'S', true},
		{"bpchar", 1042, 'b', 'S', true},
		{"name", 19, 'b', 'S', true},
		{"int8", 20, 'b', 'N', true},
		{"numeric", 1700, 'b', 'N', true},
		{"float8", 701, 'b', 'N', true},
		{"float4", 700, 'b', 'N', true},
		{"uuid", 2950, 'b', 'U', true},
		{"date", 1082, 'b', 'D', true},
		{"citext (an extension's OID)", 16400, 'b', 'S', true},
		{"an enum", 16500, 'e', 'E', true},
		{"time", 1083, 'b', 'D', false},
		{"interval", 1186, 'b', 'T', false},
		{"inet", 869, 'b', 'I', false},
		{"money", 790, 'b', 'N', false},
		{"a composite", 16600, 'c', 'C', false},
		{"a range", 3904, 'r', 'R', false},
		{`"char"`, 18, 'b', 'Z', false},
	} {
		if got := TenantTypeNamed(c.base, c.typtype, c.category); got != c.want {
			t.Errorf("%s: TenantTypeNamed = %v, want %v", c.what, got, c.want)
		}
	}
}
