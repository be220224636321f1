package proxy

import (
	"bytes"
	"testing"

	"github.com/jackc/pgproto3/v2"

	"github.com/pgveil/pgveil/policy"
)

// The codecs are checked against pgproto3's encoders, the reference.

func encode(t testing.TB, m pgproto3.Message) []byte {
	t.Helper()
	b, err := m.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDataRowCodec(t *testing.T) {
	want := encode(t, &pgproto3.DataRow{Values: [][]byte{[]byte("a"), nil, {}, []byte("\x00\xff")}})
	var d dataRow
	if err := d.parse(want[5:]); err != nil {
		t.Fatal(err)
	}
	if len(d.values) != 4 || d.values[1] != nil || d.values[2] == nil || len(d.values[2]) != 0 {
		t.Fatalf("values %q", d.values)
	}
	if got := appendDataRow(nil, d.values); !bytes.Equal(got, want) {
		t.Fatalf("re-encoded\n%x\nwant\n%x", got, want)
	}
}

func TestRowDescriptionCodec(t *testing.T) {
	want := encode(t, &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		{Name: []byte("id"), TableOID: 16400, TableAttributeNumber: 1, DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1, Format: 1},
		{Name: []byte("email"), TableOID: 16400, TableAttributeNumber: 2, DataTypeOID: 17, DataTypeSize: -1, TypeModifier: -1, Format: 0},
	}})
	var d rowDescription
	if err := d.parse(want[5:]); err != nil {
		t.Fatal(err)
	}
	if string(d.fields[1].Name) != "email" || d.fields[1].AttNum != 2 || d.fields[0].Format != 1 {
		t.Fatalf("%+v", d.fields)
	}
	if got := appendRowDescription(nil, d.fields); !bytes.Equal(got, want) {
		t.Fatalf("re-encoded\n%x\nwant\n%x", got, want)
	}
}

func TestBindCodec(t *testing.T) {
	for _, m := range []*pgproto3.Bind{
		{DestinationPortal: "p", PreparedStatement: "s", ParameterFormatCodes: []int16{1, 0}, Parameters: [][]byte{{1, 2}, nil}, ResultFormatCodes: []int16{1}},
		{Parameters: [][]byte{[]byte("x"), {}}},
		{},
	} {
		want := encode(t, m)
		var b bindMsg
		if err := b.parse(want[5:]); err != nil {
			t.Fatal(err)
		}
		if got := appendBind(nil, &b); !bytes.Equal(got, want) {
			t.Fatalf("re-encoded\n%x\nwant\n%x", got, want)
		}
	}
}

func TestParseAndParameterDescriptionCodec(t *testing.T) {
	want := encode(t, &pgproto3.Parse{Name: "s1", Query: "select $1", ParameterOIDs: []uint32{25, 0}})
	var p parseMsg
	if err := p.parse(want[5:]); err != nil {
		t.Fatal(err)
	}
	if got := appendParse(nil, string(p.Name), string(p.Query), p.ParamOIDs); !bytes.Equal(got, want) {
		t.Fatalf("Parse re-encoded\n%x\nwant\n%x", got, want)
	}
	pd := encode(t, &pgproto3.ParameterDescription{ParameterOIDs: []uint32{23, 17}})
	oids, err := parseParameterDescription(pd[5:], nil)
	if err != nil || len(oids) != 2 || oids[1] != 17 {
		t.Fatal(oids, err)
	}
	if got := appendParameterDescription(nil, oids); !bytes.Equal(got, pd) {
		t.Fatal("ParameterDescription")
	}
	for _, c := range []struct {
		got  []byte
		want pgproto3.Message
	}{
		{appendDescribeOrClose(nil, 'D', 'S', "s"), &pgproto3.Describe{ObjectType: 'S', Name: "s"}},
		{appendDescribeOrClose(nil, 'C', 'P', ""), &pgproto3.Close{ObjectType: 'P'}},
		{appendExecute(nil, "p", 10), &pgproto3.Execute{Portal: "p", MaxRows: 10}},
		{appendQuery(nil, "select 1"), &pgproto3.Query{String: "select 1"}},
	} {
		if w := encode(t, c.want); !bytes.Equal(c.got, w) {
			t.Fatalf("%T: %x want %x", c.want, c.got, w)
		}
	}
}

func TestMalformedMessagesAreErrors(t *testing.T) {
	bodies := [][]byte{
		{}, {0}, {0, 1}, {0, 1, 0, 0, 0, 5, 'a'}, {0x7f, 0xff}, {0, 1, 0xff, 0xff, 0xff, 0xfe},
	}
	for _, b := range bodies {
		var d dataRow
		if err := d.parse(b); err == nil && len(b) != 2 {
			t.Errorf("DataRow %x parsed", b)
		}
		var bm bindMsg
		if err := bm.parse(b); err == nil {
			t.Errorf("Bind %x parsed", b)
		}
		var rd rowDescription
		rd.parse(b)
	}
	// A Bind with 2 format codes for 1 parameter is well formed: the
	// server refuses it with an ERROR and the session goes on
	// (bindFormatError, review of the extended protocol).
	bad := encode(t, &pgproto3.Bind{ParameterFormatCodes: []int16{0, 1}, Parameters: [][]byte{nil}})
	var bm bindMsg
	if err := bm.parse(bad[5:]); err != nil || !bm.paramFormatsMismatch() || bm.paramFormat(3) != 0 {
		t.Fatalf("format/parameter count mismatch: %v %v", err, bm.paramFormatsMismatch())
	}
	pe := bindFormatError(&Statement{}, &bm)
	if pe == nil || pe.Code != codeProtocolViolation || pe.Severity != "ERROR" {
		t.Fatalf("bindFormatError: %+v", pe)
	}
}

func FuzzWireDecoders(f *testing.F) {
	f.Add(encode(f, &pgproto3.DataRow{Values: [][]byte{[]byte("a"), nil}})[5:])
	f.Add(encode(f, &pgproto3.Bind{Parameters: [][]byte{[]byte("x")}, ResultFormatCodes: []int16{1}})[5:])
	f.Add(encode(f, &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("a")}}})[5:])
	f.Fuzz(func(t *testing.T, b []byte) {
		var d dataRow
		if d.parse(b) == nil {
			if got := appendDataRow(nil, d.values); !bytes.Equal(got[5:], b) {
				t.Fatalf("DataRow round trip %x → %x", b, got[5:])
			}
		}
		var bm bindMsg
		if bm.parse(b) == nil {
			if got := appendBind(nil, &bm); !bytes.Equal(got[5:], b) {
				t.Fatalf("Bind round trip %x → %x", b, got[5:])
			}
		}
		var rd rowDescription
		if rd.parse(b) == nil {
			if got := appendRowDescription(nil, rd.fields); !bytes.Equal(got[5:], b) {
				t.Fatalf("RowDescription round trip")
			}
		}
		var p parseMsg
		p.parse(b)
		parseParameterDescription(b, nil)
	})
}

func BenchmarkDataRowParseAppend(b *testing.B) {
	row := encode(b, &pgproto3.DataRow{Values: [][]byte{[]byte("12345"), []byte("someone@example.com"), nil, bytes.Repeat([]byte("x"), 100)}})[5:]
	var d dataRow
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		d.parse(row)
		buf = appendDataRow(buf[:0], d.values)
	}
}

// TestRoleCanRead: a column with readers is read as the role in effect
// (SET ROLE), and by nobody while that role is unknown to pgveil (from
// the message that may have changed it until the server says it again).
func TestRoleCanRead(t *testing.T) {
	open := &policy.Column{Name: "a"}
	col := &policy.Column{Name: "b", Readers: []string{"app"}}
	s := &session{}
	if !s.roleCanRead(open) || s.roleCanRead(col) {
		t.Fatal("no role known: a column without readers is read, one with readers is not")
	}
	s.setRole("app")
	s.mapSeq = 5
	if !s.roleCanRead(col) {
		t.Fatal("role app is a reader")
	}
	s.roleUnknownFrom.Store(7)
	if !s.roleCanRead(col) {
		t.Fatal("a message sent before the role change is read as app")
	}
	s.mapSeq = 7
	if s.roleCanRead(col) || !s.roleCanRead(open) {
		t.Fatal("after SET ROLE, until the role is known, readers' columns are masked")
	}
	s.setRole("other")
	if s.roleCanRead(col) {
		t.Fatal("role other is not a reader")
	}
	if s.roleUnknownFrom.Load() != 0 {
		t.Fatal("setRole makes the role known")
	}
}
