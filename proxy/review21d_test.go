package proxy

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// review21dEscape is bytea_output = escape as byteaout writes it: a
// backslash doubled, other bytes outside 0x20..0x7e as \ooo.
func review21dEscape(b []byte) []byte {
	var out []byte
	for _, c := range b {
		switch {
		case c == '\\':
			out = append(out, '\\', '\\')
		case c < 0x20 || c > 0x7e:
			out = append(out, []byte(fmt.Sprintf(`\%03o`, c))...)
		default:
			out = append(out, c)
		}
	}
	return out
}

// TestReview21dSentTenantBytes (holds): send forms whose bytes hold a
// backslash, bytes above 0x7e and printable runs read alike in hex,
// escape and binary; -0 is its own tenant, every NaN one tenant (as a
// write names them); a send form of the wrong length (a float4 read as
// a float8's, a date's as a timestamp's) is an error, never a tenant.
func TestReview21dSentTenantBytes(t *testing.T) {
	s := &session{}
	f8 := func(bits uint64) []byte {
		b := make([]byte, 8)
		binary.BigEndian.PutUint64(b, bits)
		return b
	}
	for _, c := range []struct {
		typ  uint32
		raw  []byte
		want string
	}{
		{701, f8(0x5c5c5c5c5c5c5c5c), ""},
		{701, f8(0x3fd3333333333334), "0.30000000000000004"},
		{701, f8(math.Float64bits(math.Copysign(0, -1))), "-0"},
		{701, f8(0), "0"},
		{701, f8(0x7ff8000000000000), "NaN"},
		{701, f8(0xfff8000000000000), "NaN"},
		{701, f8(0x7ff0000000000001), "NaN"},
		{1082, []byte{0x7f, 0xff, 0xff, 0xff}, "infinity"},
		{1082, []byte{0x80, 0, 0, 0}, "-infinity"},
		{1114, f8(0x5c7e207f80ff0a5c), ""},
	} {
		want := c.want
		if want == "" {
			var err error
			if want, err = canon.TenantText(c.typ, canon.BinaryFormat, c.raw); err != nil {
				t.Fatalf("%d %x: %v", c.typ, c.raw, err)
			}
		}
		rc := resultCol{tenantType: c.typ}
		for fi, v := range [][]byte{appendByteaHex(nil, c.raw), review21dEscape(c.raw), c.raw} {
			format := int16(canon.TextFormat)
			if fi == 2 {
				format = canon.BinaryFormat
			}
			got, err := s.sentTenant(&rc, format, v)
			if err != nil || got != want {
				t.Errorf("%d %x as %q (format %d): %q, %v; want %q", c.typ, c.raw, v, format, got, err, want)
			}
		}
	}
	for _, c := range []struct {
		typ uint32
		raw []byte
	}{{701, []byte{0x3f, 0x80, 0, 0}}, {1114, []byte{0, 0, 0x25, 0x1a}}, {1082, f8(0)}, {700, f8(0)}} {
		rc := resultCol{tenantType: c.typ}
		if got, err := s.sentTenant(&rc, canon.BinaryFormat, c.raw); err == nil {
			t.Errorf("%d %x: named %q; want an error", c.typ, c.raw, got)
		}
	}
}

// TestReview21dMapResultSendType (holds): a planned send field the
// server describes as another type than bytea (the text a client's own
// column would be) is not taken for one: the value does not open.
func TestReview21dMapResultSendType(t *testing.T) {
	base := "listen: 127.0.0.1:0\nupstream:\n  address: 127.0.0.1:1\n  tls: disable\n  service_url: postgres://x@127.0.0.1:1/x\nadmin:\n  listen: \"\"\nkeysource:\n  local:\n    key_env: PGVEIL_R21D_KEY\n"
	cfg, err := policy.LoadBytes("t.yaml", []byte(base+"tables:\n  public.t:\n    key_context: org\n    columns:\n      secret: {type: text}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pt := cfg.Tables[0]
	st := &rewrite.Stmt{Outputs: []rewrite.Output{{Column: pt.Column("secret"), Tenant: 1}, {Tenant: -1, Hidden: true, SendOf: pt}}}
	for _, c := range []struct {
		typ  uint32
		send bool
	}{{policy.OIDBytea, true}, {policy.OIDText, false}, {1082, false}} {
		ct := &catTable{policy: pt, oid: 5000, cols: map[int16]*policy.Column{3: pt.Column("secret")},
			physical: map[*policy.Column]uint32{pt.Column("secret"): policy.OIDBytea}, tenantAttNum: 2, tenantType: 1082}
		cat := &catalog{byOID: map[uint32]*catTable{5000: ct}, byTable: map[*policy.Table]*catTable{pt: ct}}
		eng := &engine{}
		eng.cat.Store(cat)
		s := &session{eng: eng}
		m := s.mapResult(st, []fieldDesc{{TableOID: 5000, AttNum: 3, TypeOID: 17}, {TypeOID: c.typ}}, nil, nil)
		if m.cols[1].send != c.send || m.visible != 1 || !m.cols[0].sendTenant || m.cols[0].tenant != 1 {
			t.Errorf("send field of type %d: %+v", c.typ, m)
		}
	}
}
