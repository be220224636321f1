package canon

import "testing"

// TestTenantTypeNamed: the key_context types whose stored form pgveil
// computes (or which are stored as written) pass; others do not.
func TestTenantTypeNamed(t *testing.T) {
	for _, c := range []struct {
		what     string
		domain   bool
		base     uint32
		typtype  byte
		category byte
		want     bool
	}{
		{"text", false, 25, 'b', 'S', true},
		{"varchar", false, 1043, 'b', 'S', true},
		{"bpchar", false, 1042, 'b', 'S', true},
		{"name", false, 19, 'b', 'S', true},
		{"int8", false, 20, 'b', 'N', true},
		{"numeric", false, 1700, 'b', 'N', true},
		{"float8", false, 701, 'b', 'N', true},
		{"float4", false, 700, 'b', 'N', true},
		{"uuid", false, 2950, 'b', 'U', true},
		{"date", false, 1082, 'b', 'D', true},
		{"citext (an extension's OID)", false, 16400, 'b', 'S', true},
		{"an enum", false, 16500, 'e', 'E', true},
		{"time", false, 1083, 'b', 'D', false},
		{"interval", false, 1186, 'b', 'T', false},
		{"inet", false, 869, 'b', 'I', false},
		{"money", false, 790, 'b', 'N', false},
		{"a composite", false, 16600, 'c', 'C', false},
		{"a range", false, 3904, 'r', 'R', false},
		{`"char"`, false, 18, 'b', 'Z', false},
		{"a domain over numeric", true, 1700, 'b', 'N', true},
		{"a domain over bigint", true, 20, 'b', 'N', true},
		{"a domain over timestamptz", true, 1184, 'b', 'D', false},
		{"a domain over jsonb", true, 3802, 'b', 'U', false},
		{"a domain over bytea", true, 17, 'b', 'U', false},
		{"timestamptz", false, 1184, 'b', 'D', true},
	} {
		if got := TenantTypeNamed(c.domain, c.base, c.typtype, c.category); got != c.want {
			t.Errorf("%s: TenantTypeNamed = %v, want %v", c.what, got, c.want)
		}
	}
}
