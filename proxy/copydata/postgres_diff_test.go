package copydata

import (
	"context"
	"math/rand"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Differential tests: streams written by hand (not by AppendRow), with
// every escape, quote and line-ending form, go to PostgreSQL as they are
// and through the Splitter and Parser; both must read the same values. Then
// the proxy's path: every data row parsed and written again by AppendRow
// (header and end marker passed through, terminators in the stream's
// style), which PostgreSQL must load as the same values.

var diffSets = []struct {
	name string
	o    Options
	with string
	eol  string
}{
	{"text lf", Options{}, "", "\n"},
	{"text crlf", Options{}, "", "\r\n"},
	{"text cr", Options{}, "", "\r"},
	{"text custom header", Options{Delimiter: '|', Null: "nil", NullSet: true, Header: true}, "(DELIMITER '|', NULL 'nil', HEADER)", "\n"},
	{"csv lf", Options{Format: CSV}, "(FORMAT csv)", "\n"},
	{"csv crlf header", Options{Format: CSV, Header: true}, "(FORMAT csv, HEADER)", "\r\n"},
	{"csv cr", Options{Format: CSV}, "(FORMAT csv)", "\r"},
	{"csv custom", Options{Format: CSV, Delimiter: '|', Null: "nil", NullSet: true, Quote: '\'', Escape: '\\'},
		`(FORMAT csv, DELIMITER '|', NULL 'nil', QUOTE '''', ESCAPE '\')`, "\n"},
	{"csv escape", Options{Format: CSV, Escape: '!', Null: `\N`, NullSet: true}, `(FORMAT csv, ESCAPE '!', NULL '\N')`, "\r\n"},
}

// randRune is a valid UTF-8 character that is none of avoid, never NUL.
func randRune(r *rand.Rand, avoid string) string {
	for {
		var c rune
		switch r.Intn(3) {
		case 0:
			c = rune(1 + r.Intn(127))
		case 1:
			c = rune(0x80 + r.Intn(0x800))
		default:
			c = rune(0x800 + r.Intn(0x10F000))
		}
		if utf8.ValidRune(c) && !strings.ContainsRune(avoid, c) {
			return string(c)
		}
	}
}

func genTextField(r *rand.Rand, o Options) string {
	o = o.WithDefaults()
	if r.Intn(8) == 0 {
		return o.Null
	}
	d := string(o.Delimiter)
	var b strings.Builder
	for n := r.Intn(8); n > 0; n-- {
		switch r.Intn(9) {
		case 0, 1, 2:
			b.WriteString(randRune(r, "\\\r\n"+d))
		case 3:
			const other = "bfnrtvN\\aq\"z '#"
			b.WriteString(`\` + string(other[r.Intn(len(other))]))
		case 4:
			b.WriteString(`\` + d)
		case 5: // octal, three digits or short and followed by a non-digit
			v := 1 + r.Intn(127)
			if r.Intn(2) == 0 {
				b.WriteString(`\` + string(rune('0'+v>>6)) + string(rune('0'+v>>3&7)) + string(rune('0'+v&7)))
			} else {
				b.WriteString(`\` + string(rune('1'+r.Intn(7))) + "z")
			}
		case 6: // hex: two digits, one digit, none
			switch r.Intn(3) {
			case 0:
				b.WriteString(`\x` + string("1234567"[r.Intn(7)]) + string("0123456789abcdefABCDEF"[r.Intn(22)]))
			case 1:
				b.WriteString(`\x` + string("123456789aBf"[r.Intn(12)]) + "g")
			default:
				b.WriteString(`\xq`)
			}
		case 7:
			b.WriteString("\\\n")
		default:
			b.WriteString("\\\r")
		}
	}
	return b.String()
}

func genCSVField(r *rand.Rand, o Options) string {
	o = o.WithDefaults()
	q, e, d := string(o.Quote), string(o.Escape), string(o.Delimiter)
	if r.Intn(8) == 0 {
		return o.Null
	}
	var b strings.Builder
	for n := r.Intn(4); n > 0; n-- {
		if r.Intn(2) == 0 {
			for k := r.Intn(5); k > 0; k-- {
				b.WriteString(randRune(r, q+d+"\r\n"))
			}
			continue
		}
		b.WriteString(q)
		for k := r.Intn(6); k > 0; k-- {
			switch r.Intn(6) {
			case 0, 1:
				b.WriteString(randRune(r, q+e))
			case 2:
				b.WriteString(e + q)
			case 3:
				b.WriteString(e + e)
			case 4:
				b.WriteString(string("\r\n,|\t"[r.Intn(5)]))
			default:
				if e != q {
					b.WriteString(e + randRune(r, q+e)) // an escape before anything else is itself
				} else {
					b.WriteString(d)
				}
			}
		}
		b.WriteString(q)
	}
	return b.String()
}

// genStream writes 1–30 lines of three fields in the set's line style: the
// last one sometimes unterminated (in text sometimes ending in a lone
// backslash), sometimes followed by `\.` and data PostgreSQL ignores.
func genStream(r *rand.Rand, o Options, eol string) string {
	gen := genTextField
	if o.Format == CSV {
		gen = genCSVField
	}
	d := string(o.WithDefaults().Delimiter)
	var b strings.Builder
	if o.Header {
		b.WriteString("h1" + d + "h2" + d + "h3" + eol)
	}
	lines := 1 + r.Intn(30)
	for i := 0; i < lines; i++ {
		b.WriteString(gen(r, o) + d + gen(r, o) + d + gen(r, o))
		if i < lines-1 || r.Intn(3) > 0 {
			b.WriteString(eol)
		} else {
			if o.Format == Text && r.Intn(4) == 0 {
				b.WriteString(`\`)
			}
			return b.String()
		}
	}
	if r.Intn(4) == 0 {
		b.WriteString(`\.` + eol + "ignored" + d + "\\\r\x00" + eol)
	}
	return b.String()
}

// reencode is the proxy's path: rows parsed and written again, header and
// end marker passed through, terminators in the stream's own style.
func reencode(t *testing.T, o Options, data []byte) []byte {
	t.Helper()
	s := NewSplitter(o)
	p := NewParser(o)
	var out []byte
	var fields []Field
	emit := func(row []byte) {
		if s.Kind() != KindData {
			out = append(out, row...)
			return
		}
		var err error
		if fields, err = p.Parse(row, fields); err != nil {
			t.Fatalf("line %d: %v", s.Line(), err)
		}
		w := o
		w.EOL = s.EOL()
		out = AppendRow(out, w, fields)
	}
	for i := 0; i < len(data); i += 7 {
		s.Feed(data[i:min(i+7, len(data))])
		for {
			row, ok := s.Next()
			if !ok {
				break
			}
			emit(row)
		}
	}
	rest, err := s.End()
	if err != nil {
		t.Fatal(err)
	}
	if rest != nil {
		emit(rest)
	}
	return out
}

func TestPostgresReadsLikeParser(t *testing.T) {
	conn := pgConnect(t)
	r := rand.New(rand.NewSource(9))
	for _, set := range diffSets {
		t.Run(set.name, func(t *testing.T) {
			direct, proxied := newTable(t, conn), newTable(t, conn)
			for n := 0; n < 40; n++ {
				stream := []byte(genStream(r, set.o, set.eol))
				emptyTables(t, conn, direct, proxied)
				if err := copyIn(t, conn, direct, set.with, stream, r); err != nil {
					t.Fatalf("PostgreSQL refused %q: %v", stream, err)
				}
				want := selectRows(t, conn, direct)
				got, _, _, err := splitAndParse(set.o, [][]byte{stream})
				if err != nil {
					t.Fatalf("Parser refused %q: %v", stream, err)
				}
				compareRows(t, "Parser against PostgreSQL on "+strconvQuote(stream), got, want)

				again := reencode(t, set.o, stream)
				if err := copyIn(t, conn, proxied, set.with, again, r); err != nil {
					t.Fatalf("PostgreSQL refused re-encoded %q: %v", again, err)
				}
				compareRows(t, "re-encoded "+strconvQuote(again), selectRows(t, conn, proxied), want)
			}
		})
	}
}

func emptyTables(t *testing.T, conn *pgx.Conn, tables ...string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), "DELETE FROM "+strings.Join(tables, "; DELETE FROM ")); err != nil {
		t.Fatal(err)
	}
}

func strconvQuote(b []byte) string {
	var s strings.Builder
	s.WriteString(`"`)
	for _, c := range string(head(b)) {
		switch {
		case c == '\n':
			s.WriteString(`\n`)
		case c == '\r':
			s.WriteString(`\r`)
		default:
			s.WriteRune(c)
		}
	}
	return s.String() + `"`
}

// TestPostgresRefusesLikeParser: malformed streams both refuse.
func TestPostgresRefusesLikeParser(t *testing.T) {
	conn := pgConnect(t)
	r := rand.New(rand.NewSource(10))
	cases := []struct {
		o      Options
		with   string
		stream string
	}{
		{Options{}, "", "a\tb\tc\nd\te\tf\r\n"},
		{Options{}, "", "a\tb\tc\r\nd\te\tf\n"},
		{Options{}, "", "a\tb\tc\r\nd\te\rf\r\n"},
		{Options{}, "", "a\tb\tc\rd\te\tf\n"},
		{Options{}, "", "a\tb\tc\n\\.x\n"},
		{Options{}, "", "a\tb\tc\n\\."},
		{Options{}, "", "a\tb\tc\n\\.\r\n"},
		{Options{}, "", "a\tb\tc\r\n\\.\n"},
		{Options{}, "", "a\tb\x00\tc\n"},
		{Options{}, "", "a\tb\\000\tc\n"},
		{Options{}, "", "a\tb\\x0\tc\n"},
		{Options{Format: CSV}, "(FORMAT csv)", "a,b,\"c\n"},
		{Options{Format: CSV}, "(FORMAT csv)", "a,b,\"c\"\"\n"},
		{Options{Format: CSV}, "(FORMAT csv)", "a,b,c\nd,e,f\r\n"},
		{Options{Format: CSV}, "(FORMAT csv)", "a,b,c\n\\.\r\n"},
		{Options{Format: CSV}, "(FORMAT csv)", "a,b,\"\x00\"\n"},
		{Options{Format: Binary}, "(FORMAT binary)", ""},
		{Options{Format: Binary}, "(FORMAT binary)", "PGCOPY\n\xff\r\n\x00\x00\x01\x00\x00\x00\x00\x00\x00"},
		{Options{Format: Binary}, "(FORMAT binary)", "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x01a\xff\xff\xff\xff\x00\x00\x00\x05b"},
		{Options{Format: Binary}, "(FORMAT binary)", "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x00"},
	}
	table := newTable(t, conn)
	for _, c := range cases {
		pgErr := copyIn(t, conn, table, c.with, []byte(c.stream), r)
		_, _, _, ourErr := splitAndParse(c.o, [][]byte{[]byte(c.stream)})
		if pgErr == nil || ourErr == nil {
			t.Errorf("%q: PostgreSQL: %v; copydata: %v", c.stream, pgErr, ourErr)
		}
	}
}
