package copydata

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
	"strings"
	"testing"
)

func TestBinaryHeader(t *testing.T) {
	h := AppendBinaryHeader(nil)
	if len(h) != BinaryHeaderLen || string(h[:11]) != "PGCOPY\n\xff\r\n\x00" {
		t.Fatalf("header %q", h)
	}
	if n, err := ParseBinaryHeader(append(h, 1, 2, 3)); n != BinaryHeaderLen || err != nil {
		t.Fatalf("ParseBinaryHeader = %d, %v", n, err)
	}
	for i := 0; i < len(h); i++ {
		if _, err := ParseBinaryHeader(h[:i]); err != ErrShort {
			t.Fatalf("prefix %d: %v, want ErrShort", i, err)
		}
	}
	// Backwards-compatible flag bits and an extension are accepted and
	// skipped.
	ext := append([]byte(binarySignature), 0, 0, 0xff, 0xff, 0, 0, 0, 3, 'a', 'b', 'c')
	if n, err := ParseBinaryHeader(ext); n != len(ext) || err != nil {
		t.Fatalf("header with extension: %d, %v", n, err)
	}
	if _, err := ParseBinaryHeader(ext[:len(ext)-1]); err != ErrShort {
		t.Fatalf("short extension: %v", err)
	}
	bad := []struct {
		name string
		b    []byte
		err  string
	}{
		{"signature", []byte("PGCOPY\n\xfe"), "signature not recognized"},
		{"text data", []byte("a\tb\n"), "signature not recognized"},
		{"oids", append([]byte(binarySignature), 0, 1, 0, 0, 0, 0, 0, 0), "WITH OIDS"},
		{"critical flag", append([]byte(binarySignature), 0x80, 0, 0, 0, 0, 0, 0, 0), "critical flags"},
		{"negative extension", append([]byte(binarySignature), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe), "missing length"},
		{"huge extension", append([]byte(binarySignature), 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff), "longer than"},
	}
	for _, c := range bad {
		if _, err := ParseBinaryHeader(c.b); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		}
	}
}

func TestBinaryTuple(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	var fields []Field
	for i := 0; i < 2000; i++ {
		want := randFields(r, r.Intn(8), false, false)
		enc := AppendBinaryTuple(nil, want)
		got, n, err := ParseBinaryTuple(append(enc, 9, 9), fields)
		if err != nil || n != len(enc) || !fieldsEqual(got, want) {
			t.Fatalf("ParseBinaryTuple(AppendBinaryTuple(%s)) = %s, %d, %v", showFields(want), showFields(got), n, err)
		}
		fields = got
		for cut := 0; cut < len(enc); cut++ {
			if _, _, err := ParseBinaryTuple(enc[:cut], fields); err != ErrShort {
				t.Fatalf("prefix %d of %d: %v, want ErrShort", cut, len(enc), err)
			}
		}
		if got, err := ParseRow(Options{Format: Binary}, enc, nil); err != nil || !fieldsEqual(got, want) {
			t.Fatalf("ParseRow binary: %s %v", showFields(got), err)
		}
		if got := AppendRow(nil, Options{Format: Binary}, want); !bytes.Equal(got, enc) {
			t.Fatalf("AppendRow binary differs from AppendBinaryTuple")
		}
	}
	if _, n, err := ParseBinaryTuple(AppendBinaryTrailer(nil), nil); n != 2 || err != ErrTrailer {
		t.Fatalf("trailer: %d, %v", n, err)
	}
	bad := []struct {
		name string
		b    []byte
		err  string
	}{
		{"negative count", []byte{0xff, 0xfe}, "invalid field count"},
		{"too many fields", []byte{0x07, 0xd0}, "invalid field count"},
		{"negative size", []byte{0, 1, 0xff, 0xff, 0xff, 0xfe}, "invalid field size"},
		{"size over 1 GiB", []byte{0, 1, 0x40, 0, 0, 0}, "invalid field size"},
	}
	for _, c := range bad {
		if _, _, err := ParseBinaryTuple(c.b, nil); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.name, err, c.err)
		}
	}
	if _, err := ParseRow(Options{Format: Binary}, append(AppendBinaryTuple(nil, vals("a")), 0), nil); err == nil {
		t.Error("ParseRow accepted a tuple with trailing bytes")
	}
	if _, err := ParseRow(Options{Format: Binary}, AppendBinaryTrailer(nil), nil); err == nil {
		t.Error("ParseRow accepted the trailer")
	}
}

func binaryStream(tuples ...[]Field) []byte {
	b := AppendBinaryHeader(nil)
	for _, t := range tuples {
		b = AppendBinaryTuple(b, t)
	}
	return b
}

func TestSplitterBinary(t *testing.T) {
	bin := Options{Format: Binary}
	t1, t2 := vals("a", nil, ""), vals(strings.Repeat("x", 300), "日本")
	stream := binaryStream(t1, t2)
	h := string(stream[:BinaryHeaderLen])
	e1 := string(AppendBinaryTuple(nil, t1))
	e2 := string(AppendBinaryTuple(nil, t2))
	withExt := append([]byte(binarySignature), 0, 0, 0, 1, 0, 0, 0, 2, 'x', 'y')
	runSplitCases(t, []splitCase{
		{name: "tuples and trailer", o: bin, in: string(AppendBinaryTrailer(stream)), rows: []string{h, e1, e2, "\xff\xff"}, kinds: "hdde"},
		{name: "no trailer", o: bin, in: string(stream), rows: []string{h, e1, e2}, kinds: "hdd"},
		{name: "header only", o: bin, in: h, rows: []string{h}, kinds: "h"},
		{name: "header extension", o: bin, in: string(withExt) + e1, rows: []string{string(withExt), e1}, kinds: "hd"},
		{name: "zero fields", o: bin, in: h + "\x00\x00", rows: []string{h, "\x00\x00"}, kinds: "hd"},
		{name: "empty", o: bin, in: "", err: "signature not recognized"},
		{name: "text instead of binary", o: bin, in: "a\tb\n", err: "signature not recognized"},
		{name: "short header", o: bin, in: h[:15], err: "header incomplete"},
		{name: "incomplete tuple", o: bin, in: h + e1[:len(e1)-1], rows: []string{h}, kinds: "h", err: "line 1: unexpected EOF in COPY data"},
		{name: "half a field count", o: bin, in: h + e1 + "\x00", rows: []string{h, e1}, kinds: "hd", err: "line 2: unexpected EOF"},
		{name: "data after trailer", o: bin, in: h + "\xff\xff" + e1, rows: []string{h, "\xff\xff"}, kinds: "he", err: "received copy data after EOF marker"},
		{name: "bad field size", o: bin, in: h + "\x00\x01\xff\xff\xff\x00", rows: []string{h}, kinds: "h", err: "invalid field size"},
		{name: "tuple too long", o: Options{Format: Binary, MaxRow: 100}, in: h + e1 + e2, rows: []string{h, e1}, kinds: "hd", err: "line 2: COPY row is longer than 100 bytes"},
	})
}

// TestBinaryMaxRowHeader: a header extension longer than MaxRow fails
// without waiting for its bytes.
func TestBinaryMaxRowHeader(t *testing.T) {
	s := NewSplitter(Options{Format: Binary, MaxRow: 64})
	b := append([]byte(binarySignature), 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[15:], 1000)
	s.Feed(b)
	if _, ok := s.Next(); ok || s.Err() == nil || !strings.Contains(s.Err().Error(), "longer than 64") {
		t.Fatalf("ok %v err %v", ok, s.Err())
	}
	var e *Error
	if !errors.As(s.Err(), &e) || e.SQLState() != CodeProgramLimit {
		t.Fatalf("error %#v", s.Err())
	}
}
