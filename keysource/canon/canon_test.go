package canon

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

func be16(v int16) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func be32(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
func be64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// numericBin builds numeric's binary format.
func numericBin(weight int16, sign uint16, dscale int16, digits ...uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(digits)))
	b = binary.BigEndian.AppendUint16(b, uint16(weight))
	b = binary.BigEndian.AppendUint16(b, sign)
	b = binary.BigEndian.AppendUint16(b, uint16(dscale))
	for _, d := range digits {
		b = binary.BigEndian.AppendUint16(b, d)
	}
	return b
}

type tcase struct {
	t      policy.LogicalType
	canon  string   // canonical plaintext
	texts  []string // text inputs that must give canon
	binary [][]byte // binary inputs that must give canon
	index  string   // IndexInput without normalisation ("" = canon)
	minPG  int      // server version needed to accept the texts (PostgreSQL 16 syntax)
}

var cases = []tcase{
	{t: policy.TypeText, canon: "Alice é", texts: []string{"Alice é"}, binary: [][]byte{[]byte("Alice é")}},
	{t: policy.TypeVarchar, canon: "", texts: []string{""}, binary: [][]byte{{}}},
	{t: policy.TypeInt2, canon: "7", texts: []string{"7", "007", "+7", " 7 "}, binary: [][]byte{be16(7)}},
	{t: policy.TypeInt2, canon: "7", texts: []string{"0x7", "0b111", "0o7"}, minPG: 16},
	{t: policy.TypeInt2, canon: "-32768", texts: []string{"-32768"}, binary: [][]byte{be16(math.MinInt16)}},
	{t: policy.TypeInt4, canon: "7", texts: []string{"7", "007"}, binary: [][]byte{be32(7)}},
	{t: policy.TypeInt4, canon: "1000000", texts: []string{"1_000_000"}, binary: [][]byte{be32(1000000)}, minPG: 16},
	{t: policy.TypeInt8, canon: "-9223372036854775808", texts: []string{"-9223372036854775808"}, binary: [][]byte{be64(math.MinInt64)}},
	{t: policy.TypeInt8, canon: "42", texts: []string{"42", "0042"}, binary: [][]byte{be64(42)}},
	{t: policy.TypeNumeric, canon: "1.50", texts: []string{"1.50", "+1.50", " 1.50", "0001.50", "15.0e-1", "0.150E1"},
		binary: [][]byte{numericBin(0, 0, 2, 1, 5000)}, index: "1.5"},
	{t: policy.TypeNumeric, canon: "1.5", texts: []string{"1.5"}, binary: [][]byte{numericBin(0, 0, 1, 1, 5000)}, index: "1.5"},
	{t: policy.TypeNumeric, canon: "150", texts: []string{"1.5e2", "150"}, binary: [][]byte{numericBin(0, 0, 0, 150)}},
	{t: policy.TypeNumeric, canon: "-12345678.9", texts: []string{"-12345678.9"}, binary: [][]byte{numericBin(1, 0x4000, 1, 1234, 5678, 9000)}},
	{t: policy.TypeNumeric, canon: "0.00", texts: []string{"0.00", "-0.00"}, binary: [][]byte{numericBin(0, 0, 2)}, index: "0"},
	{t: policy.TypeNumeric, canon: "10000", texts: []string{"1e4"}, binary: [][]byte{numericBin(1, 0, 0, 1)}},
	{t: policy.TypeNumeric, canon: "NaN", texts: []string{"NaN", "nan"}, binary: [][]byte{numericBin(0, 0xC000, 0)}},
	{t: policy.TypeNumeric, canon: "-Infinity", texts: []string{"-Infinity", "-infinity", "-inf"}, binary: [][]byte{numericBin(0, 0xF000, 32)}}, // numeric_send: dscale 32, the special header's bits
	{t: policy.TypeBool, canon: "t", texts: []string{"t", "true", "TRUE", "yes", "on", "1", " tr "}, binary: [][]byte{{1}}},
	{t: policy.TypeBool, canon: "f", texts: []string{"f", "false", "no", "off", "0", "n"}, binary: [][]byte{{0}}},
	{t: policy.TypeDate, canon: "2024-01-02", texts: []string{"2024-01-02", " 2024-1-2 ", "2024-01-02 AD", "2024-01-02 +00", "2024-01-02 10:11:12 +02", "2024-01-02T23:59:59.5Z", "2024-01-02 00:00:00-05"}, binary: [][]byte{be32(8767)}},
	{t: policy.TypeDate, canon: "2000-01-01", texts: []string{"2000-01-01"}, binary: [][]byte{be32(0)}},
	{t: policy.TypeDate, canon: "1970-01-01", texts: []string{"epoch", "1970-01-01"}, binary: [][]byte{be32(-10957)}},
	{t: policy.TypeDate, canon: "0044-03-15 BC", texts: []string{"0044-03-15 BC", "044-03-15 bc"}, binary: [][]byte{be32(-746117)}},
	{t: policy.TypeDate, canon: "infinity", texts: []string{"infinity", "Infinity"}, binary: [][]byte{be32(math.MaxInt32)}},
	{t: policy.TypeDate, canon: "-infinity", texts: []string{"-infinity"}, binary: [][]byte{be32(math.MinInt32)}},
	{t: policy.TypeTimestamp, canon: "2024-01-02 03:04:05.5", texts: []string{"2024-01-02 03:04:05.5", "2024-01-02T03:04:05.500000", "2024-01-02 03:04:05.5+02"},
		binary: [][]byte{be64(757479845500000)}},
	{t: policy.TypeTimestamp, canon: "2024-01-02 00:00:00", texts: []string{"2024-01-02", "2024-01-02 00:00", "2024-01-01 24:00:00"}, binary: [][]byte{be64(757468800000000)}},
	{t: policy.TypeTimestamp, canon: "2024-01-02 03:04:05.000001", texts: []string{"2024-01-02 03:04:05.0000006", "2024-01-02 03:04:05.0000014"}, binary: [][]byte{be64(757479845000001)}},
	{t: policy.TypeTimestamp, canon: "infinity", texts: []string{"infinity"}, binary: [][]byte{be64(math.MaxInt64)}},
	{t: policy.TypeTimestamptz, canon: "2024-01-02 01:04:05+00", texts: []string{"2024-01-02 03:04:05+02", "2024-01-02 03:04:05+02:00", "2024-01-02T01:04:05Z", "2024-01-02 01:04:05 UTC", "2024-01-01 20:34:05-0430"},
		binary: [][]byte{be64(757472645000000)}},
	{t: policy.TypeTimestamptz, canon: "0044-03-15 12:00:00+00 BC", texts: []string{"0044-03-15 12:00:00+00 BC"}, binary: [][]byte{be64(-746117*usPerDay + 12*3600e6)}},
	{t: policy.TypeUUID, canon: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", texts: []string{
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
		"a0eebc999c0b4ef8bb6d6bb9bd380a11", "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11"},
		binary: [][]byte{unhex("a0eebc999c0b4ef8bb6d6bb9bd380a11")}},
	{t: policy.TypeJSON, canon: `{"b": 1,  "a":[1.50]}`, texts: []string{`{"b": 1,  "a":[1.50]}`}, binary: [][]byte{[]byte(`{"b": 1,  "a":[1.50]}`)}},
	{t: policy.TypeJSONB, canon: `{"a": [1.50, "x\n"], "b": 1, "aa": null}`,
		texts:  []string{`{"b":1,"aa":null,"a":[1.50,"x\n"]}`, ` {"aa":null, "b":2, "a":[15.0e-1,"\u0078\n"], "b":1} `},
		binary: [][]byte{append([]byte{1}, `{"b":1,"a":[1.50,"x\n"],"aa":null}`...)},
		index:  `{"a": [1.5, "x\n"], "b": 1, "aa": null}`},
	{t: policy.TypeJSONB, canon: `"é\u0001/"`, texts: []string{`"\u00e9\u0001\/"`}},
	{t: policy.TypeBytea, canon: "\x00\xffA\\", texts: []string{`\x00ff415c`, `\x00 ff 41 5C`, `\000\377A\\`}, binary: [][]byte{[]byte("\x00\xffA\\")}},
}

func TestPlaintextAndIndexEveryType(t *testing.T) {
	covered := map[policy.LogicalType]bool{}
	for _, c := range cases {
		covered[c.t] = true
		wantIndex := c.index
		if wantIndex == "" {
			wantIndex = c.canon
		}
		check := func(how string, format int16, in []byte) {
			t.Helper()
			pt, err := Plaintext(c.t, format, 0, in, nil)
			if err != nil {
				t.Errorf("%s %s %q: %v", c.t, how, in, err)
				return
			}
			if string(pt) != c.canon {
				t.Errorf("%s %s %q: plaintext %q, want %q", c.t, how, in, pt, c.canon)
			}
			ix, err := IndexInput(c.t, pt, nil, nil)
			if err != nil || string(ix) != wantIndex {
				t.Errorf("%s %s %q: index input %q (%v), want %q", c.t, how, in, ix, err, wantIndex)
			}
		}
		for _, s := range c.texts {
			check("text", TextFormat, []byte(s))
		}
		for _, b := range c.binary {
			check("binary", BinaryFormat, b)
		}
		// Wire: binary out then in, and text out then in, give the plaintext back.
		for _, f := range []int16{TextFormat, BinaryFormat} {
			w, err := Wire(c.t, f, []byte(c.canon), nil)
			if err != nil {
				t.Errorf("%s Wire(%d, %q): %v", c.t, f, c.canon, err)
				continue
			}
			if f == BinaryFormat && len(c.binary) > 0 && !bytes.Equal(w, c.binary[0]) && c.t != policy.TypeJSONB {
				t.Errorf("%s Wire binary %x, want %x", c.t, w, c.binary[0])
			}
			back, err := Plaintext(c.t, f, 0, w, nil)
			if err != nil || string(back) != c.canon {
				t.Errorf("%s Wire(%d) round trip: %q, %v", c.t, f, back, err)
			}
		}
	}
	for _, lt := range policy.LogicalTypes {
		if !covered[lt] {
			t.Errorf("no case for %s", lt)
		}
	}
}

func TestSevenAndDoubleOhSeven(t *testing.T) {
	for _, lt := range []policy.LogicalType{policy.TypeInt2, policy.TypeInt4, policy.TypeInt8} {
		a, _ := Plaintext(lt, TextFormat, 0, []byte("7"), nil)
		b, _ := Plaintext(lt, TextFormat, 0, []byte("007"), nil)
		c, _ := Plaintext(lt, BinaryFormat, policy.TypeInt8.OID(), be64(7), nil)
		if string(a) != "7" || string(b) != "7" || string(c) != "7" {
			t.Errorf("%s: %q %q %q", lt, a, b, c)
		}
	}
}

func TestDeclaredTypes(t *testing.T) {
	for _, c := range []struct {
		t      policy.LogicalType
		format int16
		oid    uint32
		in     []byte
		want   string
	}{
		{policy.TypeInt4, BinaryFormat, 20, be64(7), "7"},
		{policy.TypeInt4, TextFormat, 25, []byte("007"), "7"},
		{policy.TypeInt4, BinaryFormat, 25, []byte("7"), "7"},
		{policy.TypeNumeric, BinaryFormat, 701, be64(int64(math.Float64bits(1.5))), "1.5"},
		{policy.TypeNumeric, BinaryFormat, 23, be32(12), "12"},
		{policy.TypeText, BinaryFormat, 23, be32(12), "12"},
		{policy.TypeDate, TextFormat, 705, []byte("2024-01-02"), "2024-01-02"},
		{policy.TypeTimestamp, BinaryFormat, 1184, be64(757472645000000), "2024-01-02 01:04:05"},
		{policy.TypeVarchar, BinaryFormat, 1042, []byte("ab  "), "ab"},
		{policy.TypeBytea, TextFormat, 25, []byte(`\x01`), "\x01"},
	} {
		got, err := Plaintext(c.t, c.format, c.oid, c.in, nil)
		if err != nil || string(got) != c.want {
			t.Errorf("%s from OID %d: %q, %v; want %q", c.t, c.oid, got, err, c.want)
		}
	}
	if _, err := Plaintext(policy.TypeInt2, BinaryFormat, 23, be32(70000), nil); err == nil {
		t.Error("int4 70000 into int2 accepted")
	}
	if _, err := Plaintext(policy.TypeInt4, BinaryFormat, 600, []byte{1, 2}, nil); err == nil {
		t.Error("binary point into int4 accepted")
	}
}

func TestInvalidRejectedWithoutEcho(t *testing.T) {
	secret := "Sekr3t"
	for _, c := range []struct {
		t      policy.LogicalType
		format int16
		in     string
	}{
		{policy.TypeText, 0, secret + "\x00"}, {policy.TypeText, 0, secret + "\xff"},
		{policy.TypeInt2, 0, "32768"}, {policy.TypeInt2, 0, secret}, {policy.TypeInt4, 0, "1__0"}, {policy.TypeInt4, 0, "_1"},
		{policy.TypeInt4, 0, ""}, {policy.TypeInt8, 0, "9223372036854775808"}, {policy.TypeInt4, 1, "\x00\x01"},
		{policy.TypeNumeric, 0, "1.2.3"}, {policy.TypeNumeric, 0, "1e1001"}, {policy.TypeNumeric, 0, "."}, {policy.TypeNumeric, 0, secret},
		{policy.TypeNumeric, 1, string(numericBin(0, 0, 0, 10000))}, {policy.TypeNumeric, 1, string(numericBin(0, 0x1234, 0, 1))},
		{policy.TypeBool, 0, "maybe"}, {policy.TypeBool, 0, "o"}, {policy.TypeBool, 1, "\x01\x00"},
		{policy.TypeDate, 0, "2023-02-29"}, {policy.TypeDate, 0, "0000-01-01"}, {policy.TypeDate, 0, "today"}, {policy.TypeDate, 0, "01/02/2024"},
		{policy.TypeDate, 0, "4714-11-23 BC"}, {policy.TypeDate, 1, "\x00\x00"},
		{policy.TypeTimestamp, 0, "2024-01-02 25:00:00"}, {policy.TypeTimestamp, 0, "2024-01-02 03:04:05 nonsense"}, {policy.TypeTimestamp, 0, "2024-01-02 24:00:01"},
		{policy.TypeTimestamptz, 0, "2024-01-02 03:04:05"}, {policy.TypeTimestamptz, 0, "2024-01-02 03:04:05 Europe/Berlin"},
		{policy.TypeUUID, 0, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"}, {policy.TypeUUID, 0, "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11"},
		{policy.TypeUUID, 0, "-a0eebc999c0b4ef8bb6d6bb9bd380a11"}, {policy.TypeUUID, 1, "short"},
		{policy.TypeJSON, 0, `{"a":` + secret}, {policy.TypeJSONB, 0, `{"a":1,}`}, {policy.TypeJSONB, 0, `"\u0000"`}, {policy.TypeJSONB, 0, `"\ud800"`},
		{policy.TypeJSONB, 0, `01`}, {policy.TypeJSONB, 0, `[1] x`}, {policy.TypeJSONB, 1, `{}`}, {policy.TypeJSONB, 0, strings.Repeat("[", 2000)},
		{policy.TypeBytea, 0, `\x0`}, {policy.TypeBytea, 0, `\xzz`}, {policy.TypeBytea, 0, `a\b`},
	} {
		_, err := Plaintext(c.t, c.format, 0, []byte(c.in), nil)
		if err == nil {
			t.Errorf("%s %q accepted", c.t, c.in)
			continue
		}
		if strings.Contains(err.Error(), secret) || (len(c.in) > 3 && strings.Contains(err.Error(), c.in)) {
			t.Errorf("%s error echoes the value: %v", c.t, err)
		}
	}
}

func TestIndexNormalisation(t *testing.T) {
	all := []policy.Normalization{policy.NormTrim, policy.NormLowercase, policy.NormNFC}
	got, err := IndexInput(policy.TypeText, []byte("  E\u0301COLE "), all, []byte("prefix:"))
	if err != nil || string(got) != "prefix:école" {
		t.Errorf("trim+lowercase+nfc: %q, %v", got, err)
	}
	nfcA, _ := IndexInput(policy.TypeText, []byte("e\u0301"), []policy.Normalization{policy.NormNFC}, nil)
	nfcB, _ := IndexInput(policy.TypeText, []byte("é"), []policy.Normalization{policy.NormNFC}, nil)
	if !bytes.Equal(nfcA, nfcB) {
		t.Errorf("NFC: %q vs %q", nfcA, nfcB)
	}
	low, _ := IndexInput(policy.TypeVarchar, []byte(" Alice@Example.COM\t"), []policy.Normalization{policy.NormLowercase, policy.NormTrim}, nil)
	if string(low) != "alice@example.com" {
		t.Errorf("lowercase+trim: %q", low)
	}
	raw, _ := IndexInput(policy.TypeBytea, []byte(" AB "), all, nil)
	if string(raw) != " AB " {
		t.Errorf("bytea normalised: %q", raw)
	}
	if _, err := IndexInput(policy.TypeText, []byte("x"), []policy.Normalization{"soundex"}, nil); err == nil {
		t.Error("unknown normalization accepted")
	}
}

func TestTenantText(t *testing.T) {
	for _, c := range []struct {
		oid    uint32
		format int16
		in     []byte
		want   string
	}{
		{23, 1, be32(42), "42"}, {23, 0, []byte("042"), "42"}, {20, 1, be64(42), "42"}, {21, 1, be16(42), "42"},
		{25, 0, []byte("acme"), "acme"}, {1043, 1, []byte("acme"), "acme"}, {0, 0, []byte("acme"), "acme"}, {1042, 0, []byte("acme  "), "acme"},
		{2950, 0, []byte("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{2950, 1, unhex("a0eebc999c0b4ef8bb6d6bb9bd380a11"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{1700, 0, []byte("7.0"), "7"}, {17, 1, []byte{1, 2}, `\x0102`},
		{701, 1, be64(int64(math.Float64bits(2.5))), "2.5"}, {701, 0, []byte("2.5"), "2.5"},
	} {
		got, err := TenantText(c.oid, c.format, c.in)
		if err != nil || got != c.want {
			t.Errorf("TenantText(%d, %d, %x) = %q, %v; want %q", c.oid, c.format, c.in, got, err, c.want)
		}
	}
}
