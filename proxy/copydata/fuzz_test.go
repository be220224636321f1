package copydata

import (
	"bytes"
	"errors"
	"math/rand"
	"reflect"
	"testing"
)

var fuzzOptions = func() []Options {
	var os []Options
	for _, k := range sortedKeys(optionSets) {
		os = append(os, optionSets[k])
	}
	return append(os,
		Options{Header: true},
		Options{Format: CSV, Header: true, ServerVersion: 18},
		Options{Format: CSV, ForceNull: []bool{true, true}, ForceNotNull: []bool{false, true}},
		Options{MaxRow: 16},
	)
}()

var fuzzSeeds = []string{
	"a\tb\n", "\\N\t\\\\N\t\\101\\x4a\\q\n", "a\r\nb\r\n\\.\r\nx", "a\rb\r", "a\\\nb\n",
	"x,\"y\nz\",\"\"\"\"\n", "'a\\'b'|nil|''\n", "\\.\n", "h1\th2\na\tb", "\"unterminated\n",
	"a\\.\n", "\\.x\n", "a\nb\r\n", "a\x00b\n", "ab\\", "DEF,\"DEF\"\n", "\\D\t\\\\D\n",
}

func checkError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if err != nil && !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
}

// FuzzParseRow: ParseRow never panics, fails only with *Error, and what it
// decodes, encoded again by AppendRow, decodes to the same values.
func FuzzParseRow(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add([]byte(s), uint8(i))
	}
	f.Fuzz(func(t *testing.T, row []byte, opt uint8) {
		o := fuzzOptions[int(opt)%len(fuzzOptions)]
		o.ForceNull, o.ForceNotNull = nil, nil // they change values on purpose
		fields, err := ParseRow(o, row, nil)
		checkError(t, err)
		if err != nil {
			return
		}
		enc := AppendRow(nil, o, fields)
		again, err := ParseRow(o, enc, nil)
		if err != nil || !fieldsEqual(again, fields) {
			t.Fatalf("%q → %s → %q → %s, %v", row, showFields(fields), enc, showFields(again), err)
		}
	})
}

// FuzzSplitter: the Splitter never panics, and a stream gives the same rows,
// kinds and error whole, a byte at a time, and cut at random; every data
// row it returns parses or fails with an *Error.
func FuzzSplitter(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add([]byte(s), uint8(i), int64(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, opt uint8, seed int64) {
		o := fuzzOptions[int(opt)%len(fuzzOptions)]
		whole := runSplitter(o, [][]byte{data})
		ones := make([][]byte, len(data))
		for i := range data {
			ones[i] = data[i : i+1]
		}
		if got := runSplitter(o, ones); !reflect.DeepEqual(got, whole) {
			t.Fatalf("byte at a time:\n%s\nwhole:\n%s", got, whole)
		}
		r := rand.New(rand.NewSource(seed))
		var cs [][]byte
		for rest := data; len(rest) > 0; {
			k := 1 + r.Intn(len(rest))
			cs = append(cs, rest[:k])
			rest = rest[k:]
		}
		if got := runSplitter(o, cs); !reflect.DeepEqual(got, whole) {
			t.Fatalf("random cuts:\n%s\nwhole:\n%s", got, whole)
		}
		p := NewParser(o)
		var fields []Field
		for i, row := range whole.Rows {
			if whole.Kinds[i] != KindData {
				continue
			}
			var err error
			fields, err = p.Parse([]byte(row), fields)
			checkError(t, err)
		}
	})
}

// FuzzBinary: the binary decoders never panic, a tuple that parses encodes
// to the same bytes, and the Splitter agrees whole and a byte at a time.
func FuzzBinary(f *testing.F) {
	f.Add(binaryStream(vals("a", nil, "")))
	f.Add(AppendBinaryTrailer(binaryStream(vals("x"), vals("y"))))
	f.Add([]byte{0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Add(AppendBinaryTuple(nil, vals("abc", nil)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if n, err := ParseBinaryHeader(data); err == nil && (n < BinaryHeaderLen || n > len(data)) {
			t.Fatalf("header length %d of %d", n, len(data))
		} else if err != ErrShort {
			checkError(t, err)
		}
		fields, n, err := ParseBinaryTuple(data, nil)
		switch {
		case err == nil:
			if enc := AppendBinaryTuple(nil, fields); !bytes.Equal(enc, data[:n]) {
				t.Fatalf("tuple %x re-encodes as %x", data[:n], enc)
			}
		case err == ErrShort || err == ErrTrailer:
		default:
			checkError(t, err)
		}
		o := Options{Format: Binary, MaxRow: 1 << 16}
		stream := append(AppendBinaryHeader(nil), data...)
		whole := runSplitter(o, [][]byte{stream})
		ones := make([][]byte, len(stream))
		for i := range stream {
			ones[i] = stream[i : i+1]
		}
		if got := runSplitter(o, ones); !reflect.DeepEqual(got, whole) {
			t.Fatalf("byte at a time:\n%s\nwhole:\n%s", got, whole)
		}
		for i, row := range whole.Rows {
			if whole.Kinds[i] == KindData {
				if _, err := ParseRow(o, []byte(row), nil); err != nil {
					t.Fatalf("Splitter tuple does not parse: %v", err)
				}
			}
		}
	})
}
