package canon

import (
	"encoding/binary"
	"math"
	"testing"
)

// TestLowSweep2FloatTenant (item 2): a float4/float8 key_context value is
// named as PostgreSQL 15 stores and prints it ('1.50' is 1.5), whichever
// way it arrives. Expectations are PostgreSQL 15's s::float8::text and
// s::float4::text.
func TestLowSweep2FloatTenant(t *testing.T) {
	for _, c := range []struct{ in, f8, f4 string }{
		{"1.50", "1.5", "1.5"},
		{"1", "1", "1"},
		{"1e2", "100", "100"},
		{"1000000", "1000000", "1e+06"},
		{"1e15", "1e+15", "1e+15"},
		{"999999999999999", "999999999999999", "1e+15"},
		{"1e-4", "0.0001", "0.0001"},
		{"0.00001", "1e-05", "1e-05"},
		{"1.5e-5", "1.5e-05", "1.5e-05"},
		{"-0", "-0", "-0"},
		{"  2.25  ", "2.25", "2.25"},
		{"NaN", "NaN", "NaN"},
		{"inf", "Infinity", "Infinity"},
		{"-Infinity", "-Infinity", "-Infinity"},
		{"0.1", "0.1", "0.1"},
		{"123456.7", "123456.7", "123456.7"},
		{"1234567", "1234567", "1.234567e+06"},
		{"12345678901234567890", "1.2345678901234567e+19", "1.2345679e+19"},
		{"0.30000000000000004", "0.30000000000000004", "0.3"},
		{"3.4e38", "3.4e+38", "3.4e+38"},
		{"1e-45", "1e-45", "1e-45"},
		{"9.999999999999999e14", "999999999999999.9", "1e+15"},
		{"99999.99", "99999.99", "99999.99"},
		{"123456", "123456", "123456"},
	} {
		for _, x := range []struct {
			oid  uint32
			want string
		}{{oidFloat8, c.f8}, {oidFloat4, c.f4}} {
			got, err := TenantText(x.oid, TextFormat, []byte(c.in))
			if err != nil || got != x.want {
				t.Errorf("TenantText(%d, %q) = %q, %v; PostgreSQL stores %q", x.oid, c.in, got, err, x.want)
			}
		}
	}
	// A shorter form exactly halfway to a neighbour is not PostgreSQL's
	// (its Ryu takes the digits strictly inside): 4.501539e+07 reads back
	// as the same float4 by round-half-even, but float4out prints
	// 4.5015392e+07.
	for _, c := range []struct {
		in   string
		oid  uint32
		want string
	}{
		{"4.501539200000e+07", oidFloat4, "4.5015392e+07"},
		{"3.635139200000e+07", oidFloat4, "3.6351392e+07"},
		{"6.4231101204412496000000000e+16", oidFloat8, "6.4231101204412496e+16"},
		{"5.5855617194400243200000000e+17", oidFloat8, "5.5855617194400243e+17"},
	} {
		got, err := TenantText(c.oid, TextFormat, []byte(c.in))
		if err != nil || got != c.want {
			t.Errorf("TenantText(%d, %q) = %q, %v; PostgreSQL prints %q", c.oid, c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in string }{{"1e-400"}, {"1e400"}, {"abc"}, {""}} {
		if got, err := TenantText(oidFloat8, TextFormat, []byte(c.in)); err == nil {
			t.Errorf("float8 %q named %q; PostgreSQL refuses it", c.in, got)
		}
	}
	if got, err := TenantText(oidFloat4, TextFormat, []byte("1e39")); err == nil {
		t.Errorf("float4 1e39 named %q; PostgreSQL refuses it", got)
	}
	// Binary: the same names.
	b8 := binary.BigEndian.AppendUint64(nil, math.Float64bits(1e15))
	if got, err := TenantText(oidFloat8, 1, b8); err != nil || got != "1e+15" {
		t.Errorf("binary float8 1e15: %q %v", got, err)
	}
	b4 := binary.BigEndian.AppendUint32(nil, math.Float32bits(1234567))
	if got, err := TenantText(oidFloat4, 1, b4); err != nil || got != "1.234567e+06" {
		t.Errorf("binary float4 1234567: %q %v", got, err)
	}
	// Parameters declared as another type, assigned as PostgreSQL does:
	// 0.1::float4::float8 is 0.10000000149011612, 7.5::float8::float4 7.5.
	f4 := binary.BigEndian.AppendUint32(nil, math.Float32bits(0.1))
	for _, c := range []struct {
		col, declared uint32
		format        int16
		src           []byte
		want          string
	}{
		{oidFloat8, oidFloat4, 1, f4, "0.10000000149011612"},
		{oidFloat4, oidFloat8, 0, []byte("0.30000000000000004"), "0.3"},
		{oidFloat8, 1700, 0, []byte("1.50"), "1.5"},
		{oidFloat8, 20, 0, []byte("12345678901234567890"[:19]), "1.2345678901234568e+18"},
		{oidFloat8, oidUnknown, 0, []byte("1.50"), "1.5"},
		{oidFloat8, 0, 0, []byte("1.50"), "1.5"},
	} {
		got, err := TenantParam(c.col, c.declared, c.format, c.src)
		if err != nil || got != c.want {
			t.Errorf("TenantParam(%d, %d, %q) = %q, %v; want %q", c.col, c.declared, c.src, got, err, c.want)
		}
	}
}

// TestLowSweep2NameTenant (item 2): a name key_context keeps 63 bytes,
// whole characters, as namein stores it.
func TestLowSweep2NameTenant(t *testing.T) {
	long := ""
	for i := 0; i < 40; i++ {
		long += "é"
	}
	got, err := TenantText(oidName, TextFormat, []byte(long))
	if err != nil || got != long[:62] {
		t.Errorf("name of 80 bytes: %q %v; PostgreSQL stores the first 31 characters", got, err)
	}
	// A parameter declared text or varchar is cut as it is assigned.
	for _, declared := range []uint32{25, 1043, oidUnknown, 0} {
		for _, format := range []int16{0, 1} {
			if (declared == oidUnknown || declared == 0) && format == 1 {
				// binary name: namerecv refuses 64 bytes or more
				continue
			}
			got, err := TenantParam(oidName, declared, format, []byte(long))
			if err != nil || got != long[:62] {
				t.Errorf("name parameter declared %d format %d: %q %v", declared, format, got, err)
			}
		}
	}
}

// TestLowSweep2NumericToInt (item 3): an unquoted number assigned to an
// integer column is rounded half away from zero, as numeric_int4 does.
func TestLowSweep2NumericToInt(t *testing.T) {
	for in, want := range map[string]string{"100": "100", "7.0": "7", "7.5": "8", "-7.5": "-8", "2.5": "3", "0.4": "0", "-0.4": "0", "9.5": "10", "99.9": "100", "-0.5": "-1"} {
		got, err := NumericToInt([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("NumericToInt(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"NaN", "Infinity", "-Infinity"} {
		if got, err := NumericToInt([]byte(in)); err == nil {
			t.Errorf("NumericToInt(%s) = %s; PostgreSQL refuses it", in, got)
		}
	}
}

// TestLowSweep2BpcharTenantParam: a text or varchar parameter (JDBC's
// setString) for a character(n) key_context names the tenant without its
// trailing spaces, as TenantText names the value stored (padded).
func TestLowSweep2BpcharTenantParam(t *testing.T) {
	stored, err := TenantText(oidBpchar, TextFormat, []byte("ab   "))
	if err != nil {
		t.Fatal(err)
	}
	for _, declared := range []uint32{0, 25, 1043, oidBpchar, oidUnknown} {
		got, err := TenantParam(oidBpchar, declared, TextFormat, []byte("ab   "))
		if err != nil || got != stored {
			t.Errorf("declared %d: %q %v; the row's tenant is %q", declared, got, err, stored)
		}
	}
}
