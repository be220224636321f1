package copydata

import (
	"errors"
	"strings"
	"testing"
)

func TestWithDefaults(t *testing.T) {
	cases := []struct {
		in, want Options
	}{
		{Options{}, Options{Delimiter: '\t', Null: `\N`, NullSet: true, MaxRow: DefaultMaxRow}},
		{Options{NullSet: true}, Options{Delimiter: '\t', Null: "", NullSet: true, MaxRow: DefaultMaxRow}},
		{Options{Format: CSV}, Options{Format: CSV, Delimiter: ',', Quote: '"', Escape: '"', NullSet: true, MaxRow: DefaultMaxRow}},
		{Options{Format: CSV, Quote: '\''}, Options{Format: CSV, Delimiter: ',', Quote: '\'', Escape: '\'', NullSet: true, MaxRow: DefaultMaxRow}},
		{Options{Format: Binary, MaxRow: 10}, Options{Format: Binary, MaxRow: 10}},
	}
	for _, c := range cases {
		got := c.in.WithDefaults()
		if got.Format != c.want.Format || got.Delimiter != c.want.Delimiter || got.Null != c.want.Null ||
			got.NullSet != c.want.NullSet || got.Quote != c.want.Quote || got.Escape != c.want.Escape || got.MaxRow != c.want.MaxRow {
			t.Errorf("%+v.WithDefaults() = %+v, want %+v", c.in, got, c.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("%+v: %v", got, err)
		}
	}
}

// TestValidate: PostgreSQL's checks of COPY options (ProcessCopyOptions)
// and this package's own.
func TestValidate(t *testing.T) {
	cases := []struct {
		o   Options
		err string
	}{
		{Options{Delimiter: '\\'}, `delimiter cannot be "\"`},
		{Options{Delimiter: '.'}, "delimiter cannot be"},
		{Options{Delimiter: 'a'}, "delimiter cannot be"},
		{Options{Delimiter: '7'}, "delimiter cannot be"},
		{Options{Delimiter: '\n'}, "newline or carriage return"},
		{Options{Format: CSV, Delimiter: '\r'}, "newline or carriage return"},
		{Options{Null: "a\nb", NullSet: true}, "null representation cannot use newline"},
		{Options{Null: "a\tb", NullSet: true}, "delimiter character must not appear in the NULL"},
		{Options{Null: `x\.`, NullSet: true}, "end-of-copy marker"},
		{Options{Quote: '"'}, "QUOTE requires CSV mode"},
		{Options{Escape: '"'}, "ESCAPE requires CSV mode"},
		{Options{ForceNull: []bool{true}}, "FORCE_NULL requires CSV mode"},
		{Options{Format: CSV, Delimiter: '"'}, "must be different"},
		{Options{Format: CSV, Quote: ','}, "must be different"},
		{Options{Format: CSV, Null: `"`, NullSet: true}, "quote character must not appear in the NULL"},
		{Options{Format: CSV, Null: `\.`, NullSet: true}, "end-of-copy marker"},
		{Options{Format: CSV, Default: "a,b", DefaultSet: true}, "delimiter character must not appear in the DEFAULT"},
		{Options{Format: CSV, Default: "", DefaultSet: true}, "cannot be the same"},
		{Options{Default: "\r", DefaultSet: true}, "default representation cannot use newline"},
		{Options{Format: Binary, Delimiter: ','}, "DELIMITER in BINARY"},
		{Options{Format: Binary, Header: true}, "HEADER in BINARY"},
		{Options{Format: Binary, Null: "x", NullSet: true}, "NULL or DEFAULT in BINARY"},
		{Options{Format: Binary, Quote: '"'}, "requires CSV mode"},
		{Options{Format: 7}, "unknown COPY format"},
		{Options{MaxRow: -1}, "MaxRow"},
	}
	for _, c := range cases {
		err := c.o.WithDefaults().Validate()
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.err)
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.SQLState() != CodeInvalidParameter {
			t.Errorf("%+v: error %#v has no SQLSTATE 22023", c.o, err)
		}
		if _, err := ParseRow(c.o, []byte("x\n"), nil); err == nil {
			t.Errorf("%+v: ParseRow accepted invalid options", c.o)
		}
		s := NewSplitter(c.o)
		s.Feed([]byte("x\n"))
		if _, ok := s.Next(); ok || s.Err() == nil {
			t.Errorf("%+v: Splitter accepted invalid options", c.o)
		}
	}
	for _, o := range []Options{
		{Delimiter: '|', Null: "nil", NullSet: true}, {Delimiter: ','}, {Delimiter: '\x01'},
		{Format: CSV, Delimiter: ';', Quote: '\'', Escape: '\\', Null: `\N`, NullSet: true},
		{Format: CSV, ForceQuote: []bool{true}, ForceNull: []bool{true}, ForceNotNull: []bool{false}},
		{Default: `\D`, DefaultSet: true}, {Format: Binary},
	} {
		if err := o.WithDefaults().Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

func TestIsEndMarker(t *testing.T) {
	for _, c := range []struct {
		o    Options
		row  string
		want bool
	}{
		{Options{}, "\\.\n", true},
		{Options{}, "\\.\r\n", true},
		{Options{}, "\\.\r", true},
		{Options{}, "\\.", false},
		{Options{}, "\\.x\n", false},
		{Options{Format: CSV}, "\\.\n", true},
		{Options{Format: CSV, ServerVersion: 17}, "\\.\n", true},
		{Options{Format: CSV, ServerVersion: 18}, "\\.\n", false},
		{Options{Format: Binary}, "\\.\n", false},
	} {
		if got := c.o.IsEndMarker([]byte(c.row)); got != c.want {
			t.Errorf("%+v.IsEndMarker(%q) = %v", c.o, c.row, got)
		}
	}
}

func TestEncodingSafe(t *testing.T) {
	for name, want := range map[string]bool{
		"UTF8": true, "utf-8": true, "LATIN1": true, "SQL_ASCII": true, "EUC_JP": true, "WIN1252": true,
		"SJIS": false, "Shift_JIS_2004": false, "big5": false, "GBK": false, "gb18030": false,
		"UHC": false, "JOHAB": false, "win932": false, "Windows-950": false, "cp936": false,
	} {
		if got := EncodingSafe(name); got != want {
			t.Errorf("EncodingSafe(%q) = %v", name, got)
		}
	}
}

// TestErrorsHoldNoData: a value never appears in an error, whatever is
// wrong with the row around it.
func TestErrorsHoldNoData(t *testing.T) {
	const secret = "s3cr3t-4111111111111111"
	streams := []struct {
		o  Options
		in string
	}{
		{Options{}, secret + "\\.\n"},
		{Options{}, secret + "\n" + secret + "\r\n"},
		{Options{}, secret + "\x00\n"},
		{Options{}, secret + "\\000\n"},
		{Options{MaxRow: 8}, secret + "\n"},
		{Options{Format: CSV}, `"` + secret + "\n"},
		{Options{Format: CSV}, secret + "\r" + secret + "\n"},
		{Options{Format: Binary}, secret},
		{Options{Format: Binary}, string(AppendBinaryHeader(nil)) + "\x00\x01\x00\x00\x00\x40" + secret},
	}
	for _, s := range streams {
		got, _, _, err := splitAndParse(s.o, [][]byte{[]byte(s.in)})
		if err == nil {
			t.Errorf("%q: no error (rows %v)", s.in, got)
			continue
		}
		if strings.Contains(err.Error(), secret[:6]) {
			t.Errorf("error shows data: %v", err)
		}
		var e *Error
		if !errors.As(err, &e) || e.Code == "" || e.Line == 0 {
			t.Errorf("%q: error %#v lacks SQLSTATE or line", s.in, err)
		}
	}
}
