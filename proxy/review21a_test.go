package proxy

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/pgveil/pgveil/keysource/canon"
)

// TestReview21aSentTenant: a tenant's send form read from a hidden bytea
// field, in text (hex, escape) or binary format, names the tenant a write
// of the value seals under; anything else is an error (the row fails).
func TestReview21aSentTenant(t *testing.T) {
	s := &session{}
	date := make([]byte, 4)
	binary.BigEndian.PutUint32(date, uint32(int32(9498))) // 2026-01-02: days since 2000-01-01
	f8 := make([]byte, 8)
	binary.BigEndian.PutUint64(f8, math.Float64bits(0.30000000000000004))
	escape := func(b []byte) []byte {
		var out []byte
		for _, c := range b {
			out = append(out, '\\', '0'+c>>6, '0'+(c>>3)&7, '0'+c&7)
		}
		return out
	}
	hex := func(b []byte) []byte { return appendByteaHex(nil, b) }
	for _, c := range []struct {
		rc   resultCol
		raw  []byte
		want string
	}{
		{resultCol{tenantType: 1082}, date, "2026-01-02"},
		{resultCol{tenantType: 90001, tenantBase: 1082}, date, "2026-01-02"},
		{resultCol{tenantType: 701}, f8, "0.30000000000000004"},
	} {
		for fi, v := range [][]byte{hex(c.raw), escape(c.raw), c.raw} {
			format := int16(canon.TextFormat)
			if fi == 2 {
				format = canon.BinaryFormat
			}
			got, err := s.sentTenant(&c.rc, format, v)
			if err != nil || got != c.want {
				t.Errorf("%d format %d %q: %q, %v; want %q", c.rc.tenantType, format, v, got, err, c.want)
			}
			if want, err := canon.TenantParam(c.rc.tenantType%90000, 0, canon.TextFormat, []byte(c.want)); c.rc.tenantBase == 0 && (err != nil || want != got) {
				t.Errorf("%d: a write of %s names %q, %v", c.rc.tenantType, c.want, want, err)
			}
		}
	}
	// The printed value is not a send form: refused, never read as text.
	for _, c := range []struct {
		rc resultCol
		v  string
	}{
		{resultCol{tenantType: 1082}, "2026-01-02"}, {resultCol{tenantType: 1082}, `\x0000`}, {resultCol{tenantType: 701}, "0.3"},
		{resultCol{tenantType: 701}, `\x3fd33333`}, {resultCol{tenantType: 1082}, `\xzz`},
	} {
		if got, err := s.sentTenant(&c.rc, canon.TextFormat, []byte(c.v)); err == nil {
			t.Errorf("%d %q: named %q; want an error", c.rc.tenantType, c.v, got)
		}
	}
}

// BenchmarkReview21aSentTenant: naming a date and a float8 tenant from
// its send form as text (hex), against reading the printed ISO text.
func BenchmarkReview21aSentTenant(b *testing.B) {
	s := &session{}
	date := appendByteaHex(nil, []byte{0, 0, 0x25, 0x1a})
	f8 := make([]byte, 8)
	binary.BigEndian.PutUint64(f8, math.Float64bits(0.30000000000000004))
	f8hex := appendByteaHex(nil, f8)
	b.Run("date-send-hex", func(b *testing.B) {
		rc := resultCol{tenantType: 1082}
		for i := 0; i < b.N; i++ {
			if _, err := s.sentTenant(&rc, canon.TextFormat, date); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("date-printed-iso", func(b *testing.B) {
		v := []byte("2026-01-02")
		for i := 0; i < b.N; i++ {
			if _, err := canon.TenantText(1082, canon.TextFormat, v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("float8-send-hex", func(b *testing.B) {
		rc := resultCol{tenantType: 701}
		for i := 0; i < b.N; i++ {
			if _, err := s.sentTenant(&rc, canon.TextFormat, f8hex); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("float8-printed", func(b *testing.B) {
		v := []byte("0.30000000000000004")
		for i := 0; i < b.N; i++ {
			if _, err := canon.TenantText(701, canon.TextFormat, v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
