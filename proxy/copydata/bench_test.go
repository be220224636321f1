package copydata

import (
	"fmt"
	"testing"
)

// A typical row of five fields: id, e-mail, name, timestamp, NULL.
var benchFields = vals("48213", "alice.smith@example.com", "Alice \"Al\" Smith, Jr.", "2024-01-15 10:30:00+00", nil)

func benchRowCodec(b *testing.B, o Options) {
	row := AppendRow(nil, o, benchFields)
	p := NewParser(o)
	var fields []Field
	var out []byte
	b.SetBytes(int64(len(row)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if fields, err = p.Parse(row, fields); err != nil {
			b.Fatal(err)
		}
		out = AppendRow(out[:0], o, fields)
	}
}

func BenchmarkParseAppendText(b *testing.B)   { benchRowCodec(b, Options{}) }
func BenchmarkParseAppendCSV(b *testing.B)    { benchRowCodec(b, Options{Format: CSV}) }
func BenchmarkParseAppendBinary(b *testing.B) { benchRowCodec(b, Options{Format: Binary}) }

// BenchmarkSplitter splits a 4 MB stream fed as 8 KB CopyData payloads.
func BenchmarkSplitter(b *testing.B) {
	for _, o := range []Options{{}, {Format: CSV}, {Format: Binary}} {
		var stream []byte
		if o.Format == Binary {
			stream = AppendBinaryHeader(stream)
		}
		for i := 0; len(stream) < 4<<20; i++ {
			fs := benchFields
			fs[0].Value = fmt.Appendf(nil, "%d", i)
			stream = AppendRow(stream, o, fs)
		}
		b.Run(o.Format.String(), func(b *testing.B) {
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				s := NewSplitter(o)
				rows := 0
				for i := 0; i < len(stream); i += 8192 {
					s.Feed(stream[i:min(i+8192, len(stream))])
					for {
						if _, ok := s.Next(); !ok {
							break
						}
						rows++
					}
				}
				if _, err := s.End(); err != nil || rows == 0 {
					b.Fatal(err, rows)
				}
			}
		})
	}
}
