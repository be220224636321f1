package copydata

import (
	"fmt"
	"math/rand"
	"strings"
	"unicode/utf8"
)

// split is what a Splitter made of a whole stream.
type split struct {
	Rows      []string
	Kinds     []RowKind
	Err       string
	Discarded int64
	EOL       EOL
}

func (s split) String() string {
	var b strings.Builder
	for i, r := range s.Rows {
		fmt.Fprintf(&b, "%s %q\n", s.Kinds[i], r)
	}
	if s.Err != "" {
		fmt.Fprintf(&b, "error: %s\n", s.Err)
	}
	fmt.Fprintf(&b, "discarded %d, eol %s", s.Discarded, s.EOL)
	return b.String()
}

// runSplitter feeds chunks to a new Splitter, draining Next after each,
// then calls End; the last row (End's rest) is listed like any other.
func runSplitter(o Options, chunks [][]byte) split {
	s := NewSplitter(o)
	var out split
	drain := func() {
		for {
			row, ok := s.Next()
			if !ok {
				return
			}
			out.Rows = append(out.Rows, string(row))
			out.Kinds = append(out.Kinds, s.Kind())
		}
	}
	for _, c := range chunks {
		// Feed must copy: scribble over the caller's chunk afterwards.
		buf := append([]byte(nil), c...)
		s.Feed(buf)
		for i := range buf {
			buf[i] = 0xAA
		}
		drain()
	}
	rest, err := s.End()
	if rest != nil {
		out.Rows = append(out.Rows, string(rest))
		out.Kinds = append(out.Kinds, s.Kind())
	}
	if err != nil {
		out.Err = err.Error()
	}
	out.Discarded = s.Discarded()
	out.EOL = s.EOL()
	return out
}

// chunkings returns the ways the tests cut a stream: whole, one byte at a
// time, every two-piece cut, and random cuts.
func chunkings(data []byte, r *rand.Rand) [][][]byte {
	all := [][][]byte{{data}}
	ones := make([][]byte, len(data))
	for i := range data {
		ones[i] = data[i : i+1]
	}
	all = append(all, ones)
	for cut := 1; cut < len(data); cut++ {
		all = append(all, [][]byte{data[:cut], data[cut:]})
	}
	for n := 0; n < 20; n++ {
		var cs [][]byte
		for rest := data; len(rest) > 0; {
			k := 1 + r.Intn(min(len(rest), 1+r.Intn(16)))
			cs = append(cs, rest[:k])
			rest = rest[k:]
		}
		all = append(all, cs)
	}
	return all
}

// tricky values every round trip includes.
var trickyValues = []string{
	"", " ", `\N`, "N", "nil", `\.`, ".", `\`, `\\`, `"`, `""`, `'`, `''`,
	"\r", "\n", "\r\n", "\t", ",", "|", " lead", "trail ", "a,b", "a|b",
	"日本語", "\x7f", "\x01", `\x41`, `\101`, "\\\n", "\\.\n", "#", "\v\b\f",
}

// randValue returns a random value from one of several alphabets.
func randValue(r *rand.Rand) []byte {
	n := r.Intn(12)
	if r.Intn(8) == 0 {
		n = r.Intn(300)
	}
	b := make([]byte, 0, n)
	switch r.Intn(4) {
	case 0: // every byte but 0x00
		for i := 0; i < n; i++ {
			b = append(b, byte(1+r.Intn(255)))
		}
	case 1: // the bytes that matter to COPY
		const special = "\\\t\n\r,|\"'N.xn01 \b\f\v"
		for i := 0; i < n; i++ {
			b = append(b, special[r.Intn(len(special))])
		}
	case 2: // unicode
		for i := 0; i < n; i++ {
			b = utf8.AppendRune(b, rune(1+r.Intn(0x10FFFF-1)))
		}
	default:
		b = append(b, trickyValues[r.Intn(len(trickyValues))]...)
	}
	return b
}

// validUTF8Value is randValue restricted to what a UTF8 database stores in
// a text column: valid UTF-8 without 0x00.
func validUTF8Value(r *rand.Rand) []byte {
	for {
		v := randValue(r)
		if utf8.Valid(v) {
			return v
		}
	}
}

func randFields(r *rand.Rand, n int, valid, defaults bool) []Field {
	fs := make([]Field, n)
	for i := range fs {
		switch {
		case r.Intn(6) == 0:
			fs[i].Null = true
		case defaults && r.Intn(6) == 0:
			fs[i].Default = true
		case valid:
			fs[i].Value = validUTF8Value(r)
		default:
			fs[i].Value = randValue(r)
		}
	}
	return fs
}

func fieldsEqual(a, b []Field) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Null != b[i].Null || a[i].Default != b[i].Default || string(a[i].Value) != string(b[i].Value) {
			return false
		}
	}
	return true
}

func showFields(fs []Field) string {
	var b strings.Builder
	for i, f := range fs {
		if i > 0 {
			b.WriteString(", ")
		}
		switch {
		case f.Null:
			b.WriteString("NULL")
		case f.Default:
			b.WriteString("DEFAULT")
		default:
			fmt.Fprintf(&b, "%q", f.Value)
		}
	}
	return "[" + b.String() + "]"
}

func vals(vs ...any) []Field {
	fs := make([]Field, len(vs))
	for i, v := range vs {
		switch v := v.(type) {
		case nil:
			fs[i].Null = true
		case string:
			fs[i].Value = []byte(v)
		case Field:
			fs[i] = v
		}
	}
	return fs
}

// optionSets are the option sets of the round-trip tests.
var optionSets = map[string]Options{
	"text":                {},
	"text custom":         {Delimiter: '|', Null: "nil", NullSet: true},
	"text default marker": {Delimiter: ',', Default: `\D`, DefaultSet: true},
	"csv":                 {Format: CSV},
	"csv custom":          {Format: CSV, Delimiter: '|', Null: "nil", NullSet: true, Quote: '\'', Escape: '\\'},
	"csv tab":             {Format: CSV, Delimiter: '\t', Null: `\N`, NullSet: true},
	"csv default":         {Format: CSV, Default: "DEF", DefaultSet: true},
	"csv crlf":            {Format: CSV, EOL: CRLF},
	"text cr":             {EOL: CR},
}

func cloneFields(fs []Field) []Field {
	out := make([]Field, len(fs))
	for i, f := range fs {
		out[i] = f
		if f.Value != nil {
			out[i].Value = append([]byte{}, f.Value...)
		}
	}
	return out
}
