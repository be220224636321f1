package copydata

import (
	"bytes"
	"math/rand"
	"sort"
	"testing"
)

// TestRoundTrip: for every option set, ParseRow ∘ AppendRow is the identity
// on field values (every byte 0x01–0xff, delimiters, quotes, backslashes,
// newlines, `\N` text against NULL, empty strings, unicode), and the
// Splitter finds exactly one row in what AppendRow wrote.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, name := range sortedKeys(optionSets) {
		o := optionSets[name]
		t.Run(name, func(t *testing.T) {
			p := NewParser(o)
			var fields []Field
			check := func(want []Field) {
				t.Helper()
				enc := AppendRow(nil, o, want)
				got, err := p.Parse(enc, fields)
				if err != nil {
					t.Fatalf("Parse(AppendRow(%s)) = %q: %v", showFields(want), enc, err)
				}
				if !fieldsEqual(got, want) {
					t.Fatalf("round trip of %s through %q gave %s", showFields(want), enc, showFields(got))
				}
				fields = got
				s := NewSplitter(o)
				s.Feed(enc)
				rows := 0
				for {
					row, ok := s.Next()
					if !ok {
						break
					}
					rows++
					if !bytes.Equal(row, enc) {
						t.Fatalf("Splitter row %q, want %q", row, enc)
					}
				}
				rest, err := s.End()
				if err != nil {
					t.Fatalf("Splitter on %q: %v", enc, err)
				}
				if rest != nil {
					rows++
					if !bytes.Equal(rest, enc) {
						t.Fatalf("Splitter rest %q, want %q", rest, enc)
					}
				}
				if rows != 1 {
					t.Fatalf("Splitter found %d rows in %q", rows, enc)
				}
			}
			for _, v := range trickyValues {
				check(vals(v))
				check(vals(v, v))
				check(vals(nil, v, nil))
			}
			for b := 1; b < 256; b++ {
				check(vals(string([]byte{byte(b)})))
				check(vals("a"+string([]byte{byte(b)})+"z", string([]byte{byte(b), byte(b)})))
			}
			check(vals(nil))
			check(vals(nil, nil))
			for i := 0; i < 3000; i++ {
				check(randFields(r, 1+r.Intn(6), false, o.DefaultSet))
			}
		})
	}
}

// TestRoundTripStream: many encoded rows in one stream, cut at random,
// split and parse back to the same rows.
func TestRoundTripStream(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for _, name := range sortedKeys(optionSets) {
		o := optionSets[name]
		t.Run(name, func(t *testing.T) {
			var stream []byte
			var want [][]Field
			for i := 0; i < 300; i++ {
				fs := randFields(r, 3, false, o.DefaultSet)
				want = append(want, fs)
				stream = AppendRow(stream, o, fs)
			}
			for n, chunks := range chunkings(stream, r)[:40] {
				got := runSplitter(o, chunks)
				if got.Err != "" || len(got.Rows) != len(want) {
					t.Fatalf("chunking %d: %d rows, err %q", n, len(got.Rows), got.Err)
				}
				for i, row := range got.Rows {
					fs, err := ParseRow(o, []byte(row), nil)
					if err != nil || !fieldsEqual(fs, want[i]) {
						t.Fatalf("chunking %d row %d: %s %v, want %s", n, i, showFields(fs), err, showFields(want[i]))
					}
				}
			}
		})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
