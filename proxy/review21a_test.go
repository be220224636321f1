package proxy

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
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

// TestReview21aMapByOrigin: fields mapped by origin read a send-form
// tenant from the hidden field of its table's, in its format; a table
// read twice (two such fields) names neither; a tenant field that is not
// a bytea is not taken for one.
func TestReview21aMapByOrigin(t *testing.T) {
	base := "listen: 127.0.0.1:0\nupstream:\n  address: 127.0.0.1:1\n  tls: disable\n  service_url: postgres://x@127.0.0.1:1/x\nadmin:\n  listen: \"\"\nkeysource:\n  local:\n    key_env: PGVEIL_R21A_KEY\n"
	cfg, err := policy.LoadBytes("t.yaml", []byte(base+"tables:\n  public.t:\n    key_context: org\n    columns:\n      secret: {type: text}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pt := cfg.Tables[0]
	ct := &catTable{policy: pt, oid: 5000, cols: map[int16]*policy.Column{3: pt.Column("secret")},
		physical: map[*policy.Column]uint32{pt.Column("secret"): policy.OIDBytea}, tenantAttNum: 2, tenantType: 1082}
	cat := &catalog{byOID: map[uint32]*catTable{5000: ct}, byTable: map[*policy.Table]*catTable{pt: ct}}
	s := &session{}
	fields := []fieldDesc{{TableOID: 5000, AttNum: 1, TypeOID: 23}, {TableOID: 5000, AttNum: 2, TypeOID: 1082}, {TableOID: 5000, AttNum: 3, TypeOID: 17},
		{TypeOID: 17, Format: 1}}
	m := s.mapByOrigin(cat, fields, []rewrite.Output{{Tenant: -1, Hidden: true, SendOf: pt}}, nil)
	if m.visible != 3 || m.cols[2].tenant != 3 || !m.cols[3].send || !m.cols[2].sendTenant || m.cols[3].srvFmt != 1 {
		t.Errorf("one send field: %+v", m)
	}
	// Read twice: two send fields of the table's.
	two := append(append([]fieldDesc{}, fields...), fieldDesc{TypeOID: 17})
	m = s.mapByOrigin(cat, two, []rewrite.Output{{Tenant: -1, Hidden: true, SendOf: pt}, {Tenant: -1, Hidden: true, SendOf: pt}}, nil)
	if m.cols[2].tenant != -1 {
		t.Errorf("two send fields: secret's tenant %d, want none", m.cols[2].tenant)
	}
	// The hidden field is not a bytea: not a send form.
	bad := append([]fieldDesc{}, fields...)
	bad[3].TypeOID = 1082
	m = s.mapByOrigin(cat, bad, []rewrite.Output{{Tenant: -1, Hidden: true, SendOf: pt}}, nil)
	if m.cols[3].send || m.cols[2].tenant != -1 {
		t.Errorf("a date field taken for a send form: %+v", m.cols)
	}
	// Without a send field the plain column is not read either.
	m = s.mapByOrigin(cat, fields[:3], nil, nil)
	if m.cols[2].tenant != -1 {
		t.Errorf("no send field: secret's tenant %d, want none", m.cols[2].tenant)
	}
}
