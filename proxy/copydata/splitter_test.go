package copydata

import (
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

type splitCase struct {
	name      string
	o         Options
	in        string
	rows      []string
	kinds     string // one letter per row: d data, h header, e end
	err       string // substring of the error, "" for none
	discarded int64
	eol       EOL
}

func kindLetters(ks []RowKind) string {
	var b strings.Builder
	for _, k := range ks {
		b.WriteByte(k.String()[0])
	}
	return b.String()
}

// runSplitCases checks each case under every chunking of its input: the
// result must be the expected one, and the same, error text included, for
// every way of cutting the stream.
func runSplitCases(t *testing.T, cases []splitCase) {
	t.Helper()
	r := rand.New(rand.NewSource(3))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var first split
			for n, chunks := range chunkings([]byte(c.in), r) {
				got := runSplitter(c.o, chunks)
				if n == 0 {
					first = got
					if !reflect.DeepEqual(got.Rows, c.rows) && !(len(got.Rows) == 0 && len(c.rows) == 0) {
						t.Fatalf("rows:\n%s\nwant %q", got, c.rows)
					}
					if kindLetters(got.Kinds) != c.kinds {
						t.Fatalf("kinds %q, want %q\n%s", kindLetters(got.Kinds), c.kinds, got)
					}
					if (c.err == "") != (got.Err == "") || !strings.Contains(got.Err, c.err) {
						t.Fatalf("error %q, want %q\n%s", got.Err, c.err, got)
					}
					if got.Discarded != c.discarded || got.EOL != c.eol {
						t.Fatalf("discarded %d eol %s, want %d %s", got.Discarded, got.EOL, c.discarded, c.eol)
					}
					continue
				}
				if !reflect.DeepEqual(got, first) {
					t.Fatalf("chunking %d (%d chunks) differs:\n%s\nwhole stream:\n%s", n, len(chunks), got, first)
				}
			}
		})
	}
}

func TestSplitterText(t *testing.T) {
	runSplitCases(t, []splitCase{
		{name: "empty", in: ""},
		{name: "lf", in: "a\tb\nc\td\n", rows: []string{"a\tb\n", "c\td\n"}, kinds: "dd", eol: LF},
		{name: "crlf", in: "a\r\nb\r\n", rows: []string{"a\r\n", "b\r\n"}, kinds: "dd", eol: CRLF},
		{name: "cr", in: "a\rb\r", rows: []string{"a\r", "b\r"}, kinds: "dd", eol: CR},
		{name: "last line without newline", in: "a\nb", rows: []string{"a\n", "b"}, kinds: "dd", eol: LF},
		{name: "empty lines", in: "\n\n", rows: []string{"\n", "\n"}, kinds: "dd", eol: LF},
		{name: "escaped newline", in: "a\\\nb\nc\n", rows: []string{"a\\\nb\n", "c\n"}, kinds: "dd", eol: LF},
		{name: "escaped cr", in: "a\\\rb\r\n", rows: []string{"a\\\rb\r\n"}, kinds: "d", eol: CRLF},
		{name: "escaped backslash then dot", in: "\\\\.\n", rows: []string{"\\\\.\n"}, kinds: "d", eol: LF},
		{name: "trailing backslash", in: "a\nab\\", rows: []string{"a\n", "ab\\"}, kinds: "dd", eol: LF},
		{name: "end marker", in: "x\n\\.\nignored\n", rows: []string{"x\n", "\\.\n"}, kinds: "de", discarded: 8, eol: LF},
		{name: "end marker crlf", in: "x\r\n\\.\r\nrest", rows: []string{"x\r\n", "\\.\r\n"}, kinds: "de", discarded: 4, eol: CRLF},
		{name: "end marker cr", in: "x\r\\.\r", rows: []string{"x\r", "\\.\r"}, kinds: "de", eol: CR},
		{name: "end marker first, cr then lf", in: "\\.\r\n", rows: []string{"\\.\r"}, kinds: "e", discarded: 1},
		{name: "end marker only", in: "\\.\n", rows: []string{"\\.\n"}, kinds: "e"},
		{name: "header", o: Options{Header: true}, in: "h1\th2\na\tb\n", rows: []string{"h1\th2\n", "a\tb\n"}, kinds: "hd", eol: LF},
		{name: "header only", o: Options{Header: true}, in: "h1", rows: []string{"h1"}, kinds: "h"},
		{name: "header then marker", o: Options{Header: true}, in: "h\n\\.\n", rows: []string{"h\n", "\\.\n"}, kinds: "he", eol: LF},

		{name: "cr after lf", in: "a\nb\r\n", rows: []string{"a\n"}, kinds: "d", err: "line 2: literal carriage return found in data", eol: LF},
		{name: "lf after crlf", in: "a\r\nb\n", rows: []string{"a\r\n"}, kinds: "d", err: "line 2: literal newline found in data", eol: CRLF},
		{name: "bare cr after crlf", in: "a\r\nb\rc\r\n", rows: []string{"a\r\n"}, kinds: "d", err: "literal carriage return", eol: CRLF},
		{name: "lf after cr", in: "a\rb\n", rows: []string{"a\r"}, kinds: "d", err: "literal newline", eol: CR},
		{name: "marker after data", in: "a\\.\n", err: "line 1: end-of-copy marker is not alone on its line"},
		{name: "marker before data", in: "\\.x\n", err: "end-of-copy marker is not alone"},
		{name: "marker without newline", in: "a\n\\.", rows: []string{"a\n"}, kinds: "d", err: "line 2: end-of-copy marker is not alone", eol: LF},
		{name: "marker newline style", in: "a\n\\.\r\n", rows: []string{"a\n"}, kinds: "d", err: "does not match previous newline style", eol: LF},
		{name: "marker lf in crlf", in: "a\r\n\\.\n", rows: []string{"a\r\n"}, kinds: "d", err: "does not match previous newline style", eol: CRLF},
		{name: "nul", in: "ok\na\x00b\n", rows: []string{"ok\n"}, kinds: "d", err: "line 2: invalid byte sequence", eol: LF},
		{name: "escaped nul", in: "a\\\x00b\n", err: "line 1: invalid byte sequence"},
		{name: "row too long", o: Options{MaxRow: 8}, in: "short\n0123456789\n", rows: []string{"short\n"}, kinds: "d", err: "line 2: COPY row is longer than 8 bytes", eol: LF},
		{name: "last row too long", o: Options{MaxRow: 8}, in: "0123456789", err: "longer than 8 bytes"},
		{name: "too long before other errors", o: Options{MaxRow: 8}, in: "0123456789\x00\r\n", err: "line 1: COPY row is longer than 8 bytes"},
		{name: "bad options", o: Options{Quote: '"'}, in: "a\n", err: "requires CSV mode"},
	})
}

func TestSplitterCSV(t *testing.T) {
	csv := Options{Format: CSV}
	custom := Options{Format: CSV, Delimiter: '|', Null: "nil", NullSet: true, Quote: '\'', Escape: '\\'}
	runSplitCases(t, []splitCase{
		{name: "newline in quotes", o: csv, in: "a,\"b\nc\"\nd\n", rows: []string{"a,\"b\nc\"\n", "d\n"}, kinds: "dd", eol: LF},
		{name: "crlf in quotes", o: csv, in: "\"a\r\nb\"\r\nx\r\n", rows: []string{"\"a\r\nb\"\r\n", "x\r\n"}, kinds: "dd", eol: CRLF},
		{name: "cr in quotes with cr lines", o: csv, in: "\"a\rb\"\rx\r", rows: []string{"\"a\rb\"\r", "x\r"}, kinds: "dd", eol: CR},
		{name: "doubled quotes", o: csv, in: "\"a\"\"\n\"\n", rows: []string{"\"a\"\"\n\"\n"}, kinds: "d", eol: LF},
		{name: "quote mid field", o: csv, in: "a\"b\nc\"d\n", rows: []string{"a\"b\nc\"d\n"}, kinds: "d", eol: LF},
		{name: "custom escape", o: custom, in: "'a\\'b\n'|x\n'\\\\'\n", rows: []string{"'a\\'b\n'|x\n", "'\\\\'\n"}, kinds: "dd", eol: LF},
		{name: "end marker", o: csv, in: "x\n\\.\nrest", rows: []string{"x\n", "\\.\n"}, kinds: "de", discarded: 4, eol: LF},
		{name: "end marker crlf", o: csv, in: "x\r\n\\.\r\n", rows: []string{"x\r\n", "\\.\r\n"}, kinds: "de", eol: CRLF},
		{name: "marker-like data", o: csv, in: "\\.x\na,\\.\n\"\\.\"\n", rows: []string{"\\.x\n", "a,\\.\n", "\"\\.\"\n"}, kinds: "ddd", eol: LF},
		{name: "marker lf in crlf is data", o: csv, in: "x\r\n\\.\n", rows: []string{"x\r\n"}, kinds: "d", err: "unquoted newline found in data", eol: CRLF},
		{name: "marker at end without newline is data", o: csv, in: "x\n\\.", rows: []string{"x\n", "\\."}, kinds: "dd", eol: LF},
		{name: "marker style", o: csv, in: "x\n\\.\r\n", rows: []string{"x\n"}, kinds: "d", err: "does not match previous newline style", eol: LF},
		{name: "pg18: no end marker", o: Options{Format: CSV, ServerVersion: 18}, in: "x\n\\.\ny\n", rows: []string{"x\n", "\\.\n", "y\n"}, kinds: "ddd", eol: LF},
		{name: "header with newline", o: Options{Format: CSV, Header: true}, in: "\"h\n1\",h2\na,b\n", rows: []string{"\"h\n1\",h2\n", "a,b\n"}, kinds: "hd", eol: LF},
		{name: "last line without newline", o: csv, in: "a\n\"b\nc\"", rows: []string{"a\n", "\"b\nc\""}, kinds: "dd", eol: LF},
		{name: "backslash is plain", o: csv, in: "a\\\nb\n", rows: []string{"a\\\n", "b\n"}, kinds: "dd", eol: LF},

		{name: "unterminated quote", o: csv, in: "a\n\"b\nc\n", rows: []string{"a\n"}, kinds: "d", err: "line 2: unterminated CSV quoted field", eol: LF},
		{name: "unquoted cr", o: csv, in: "a\nb\r\n", rows: []string{"a\n"}, kinds: "d", err: "unquoted carriage return found in data", eol: LF},
		{name: "nul in quotes", o: csv, in: "\"a\x00\"\n", err: "invalid byte sequence"},
		{name: "row too long in quotes", o: Options{Format: CSV, MaxRow: 16}, in: "\"" + strings.Repeat("x\n", 20) + "\"\n", err: "longer than 16 bytes"},
	})
}

// TestSplitterFeedAfterEnd: data after the end marker is discarded, after
// CopyDone it is an error, and End is idempotent.
func TestSplitterLifecycle(t *testing.T) {
	s := NewSplitter(Options{})
	s.Feed([]byte("a\n\\.\n"))
	for _, want := range []string{"a\n", "\\.\n"} {
		row, ok := s.Next()
		if !ok || string(row) != want {
			t.Fatalf("Next = %q %v, want %q", row, ok, want)
		}
	}
	s.Feed([]byte("more\n"))
	if _, ok := s.Next(); ok || s.Err() != nil || !s.Done() || s.Discarded() != 5 {
		t.Fatalf("after marker: ok %v err %v done %v discarded %d", ok, s.Err(), s.Done(), s.Discarded())
	}
	if rest, err := s.End(); rest != nil || err != nil {
		t.Fatalf("End = %q, %v", rest, err)
	}
	if rest, err := s.End(); rest != nil || err != nil {
		t.Fatalf("second End = %q, %v", rest, err)
	}
	s.Feed([]byte("x"))
	if s.Err() == nil {
		t.Fatal("Feed after End accepted")
	}

	s = NewSplitter(Options{})
	s.Feed([]byte("a\nb\n"))
	if _, err := s.End(); err == nil {
		t.Fatal("End with rows not taken by Next accepted")
	}
}

// TestSplitterNoRescan: a long row fed a byte at a time is scanned once:
// the time per byte does not grow with the row.
func TestSplitterMemory(t *testing.T) {
	s := NewSplitter(Options{})
	long := strings.Repeat("x", 1<<20)
	s.Feed([]byte(long[:1]))
	for i := 1; i < len(long); i += 1000 {
		s.Feed([]byte(long[i:min(i+1000, len(long))]))
		if _, ok := s.Next(); ok {
			t.Fatal("row before newline")
		}
	}
	s.Feed([]byte("\nnext"))
	row, ok := s.Next()
	if !ok || len(row) != len(long)+1 {
		t.Fatalf("long row: %d %v", len(row), ok)
	}
	s.Feed([]byte("\n"))
	if row, ok := s.Next(); !ok || string(row) != "next\n" {
		t.Fatalf("after long row: %q %v", row, ok)
	}
	if c := cap(s.buf); c > 1<<20 {
		t.Fatalf("buffer kept %d bytes after the long row", c)
	}
}
