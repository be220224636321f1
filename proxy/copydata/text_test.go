package copydata

import (
	"strings"
	"testing"
)

type parseCase struct {
	name string
	o    Options
	row  string
	want []Field // nil with err set
	err  string  // substring of the error
}

func runParseCases(t *testing.T, cases []parseCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseRow(c.o, []byte(c.row), nil)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("ParseRow(%q) = %s, %v; want error %q", c.row, showFields(got), err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRow(%q): %v", c.row, err)
			}
			if !fieldsEqual(got, c.want) {
				t.Fatalf("ParseRow(%q) = %s, want %s", c.row, showFields(got), showFields(c.want))
			}
		})
	}
}

// TestParseText holds the text format's rules from the COPY page ("Text
// Format") and CopyReadAttributesText.
func TestParseText(t *testing.T) {
	custom := Options{Delimiter: '|', Null: "nil", NullSet: true}
	def := Options{Default: `\D`, DefaultSet: true}
	runParseCases(t, []parseCase{
		{name: "plain", row: "a\tb\tc\n", want: vals("a", "b", "c")},
		{name: "no terminator", row: "a\tb", want: vals("a", "b")},
		{name: "crlf", row: "a\tb\r\n", want: vals("a", "b")},
		{name: "cr", row: "a\tb\r", want: vals("a", "b")},
		{name: "empty line is one empty field", row: "\n", want: vals("")},
		{name: "empty fields", row: "\t\t\n", want: vals("", "", "")},
		{name: "null", row: "\\N\tx\t\\N\n", want: vals(nil, "x", nil)},
		{name: "escaped null text", row: "\\\\N\n", want: vals(`\N`)},
		{name: "null is matched before unescaping", row: "\\N\\N\n", want: vals("NN")},
		{name: "escapes", row: `\b\f\n\r\t\v\\` + "\n", want: vals("\b\f\n\r\t\v\\")},
		{name: "escaped delimiter", row: "a\\\tb\n", want: vals("a\tb")},
		{name: "any other char", row: `\a\N\q\"` + "\n", want: vals(`aNq"`)},
		{name: "octal", row: `\101\1018\7\77\0101` + "\n", want: vals("AA8\x07?\x081")},
		{name: "octal keeps low 8 bits", row: `\777` + "\n", want: vals("\xff")},
		{name: "hex", row: `\x41\x4a\x4Ag\x7` + "\n", want: vals("AJJg\x07")},
		{name: "hex without digits", row: `\xg\x` + "\n", want: vals("xgx")},
		{name: "backslash newline is data", row: "a\\\nb\n", want: vals("a\nb")},
		{name: "backslash cr is data", row: "a\\\rb\n", want: vals("a\rb")},
		{name: "trailing backslash dropped", row: `ab\`, want: vals("ab")},
		{name: "trailing backslash after null", row: `\N\`, want: vals(nil)},
		{name: "utf8", row: "日本\t語\n", want: vals("日本", "語")},
		{name: "custom delimiter and null", o: custom, row: "nil|a\\|b|nil\n", want: vals(nil, "a|b", nil)},
		{name: "custom: tab is data", o: custom, row: "a\tb|\\N\n", want: vals("a\tb", "N")},
		{name: "custom: escaped null", o: custom, row: `\nil|n\il` + "\n", want: vals("\nil", "nil")},
		{name: "default marker", o: def, row: "\\D\t\\\\D\tD\n", want: vals(Field{Default: true}, `\D`, "D")},
		{name: "empty null", o: Options{Null: "", NullSet: true}, row: "\ta\t\n", want: vals(nil, "a", nil)},

		{name: "literal newline", row: "a\nb\n", err: "literal newline found in data"},
		{name: "literal cr", row: "a\rb\n", err: "literal carriage return found in data"},
		{name: "two terminators", row: "a\n\n", err: "literal newline"},
		{name: "marker inside a row", row: "a\\.\n", err: "end-of-copy marker"},
		{name: "octal nul", row: `a\000` + "\n", err: "0x00"},
		{name: "hex nul", row: `a\x0` + "\n", err: "0x00"},
		{name: "raw nul", row: "a\x00b\n", err: "0x00"},
		{name: "escaped nul", row: "a\\\x00b\n", err: "0x00"},
		{name: "bad options", o: Options{Delimiter: 'a'}, row: "x\n", err: "delimiter cannot be"},
	})
}

// TestAppendText: AppendRow writes what COPY TO writes
// (CopyAttributeOutText), plus the octal escape for values that would read
// as the NULL or DEFAULT string.
func TestAppendText(t *testing.T) {
	cases := []struct {
		o      Options
		fields []Field
		want   string
	}{
		{Options{}, vals("a", "b"), "a\tb\n"},
		{Options{}, vals(nil, "", `\N`), "\\N\t\t\\\\N\n"},
		{Options{}, vals("\b\f\n\r\t\v\\\x01\x7f"), `\b\f\n\r\t\v\\` + "\x01\x7f\n"},
		{Options{Delimiter: '|'}, vals("a|b\tc"), "a\\|b\\tc\n"},
		{Options{Delimiter: '\x01'}, vals("a\x01b"), "a\\\x01b\n"},
		{Options{Delimiter: '|', Null: "nil", NullSet: true}, vals("nil", nil, "nill"), `\156il|nil|nill` + "\n"},
		{Options{Null: "1", NullSet: true}, vals("1", "12"), `\061` + "\t12\n"},
		{Options{Null: `\\N`, NullSet: true}, vals(`\N`), `\134N` + "\n"},
		{Options{Default: "d", DefaultSet: true}, vals(Field{Default: true}, "d"), "d\t\\144\n"},
		{Options{EOL: CRLF}, vals("a"), "a\r\n"},
		{Options{EOL: CR}, vals("a"), "a\r"},
		{Options{}, vals("日本"), "日本\n"},
	}
	for _, c := range cases {
		if got := string(AppendRow(nil, c.o, c.fields)); got != c.want {
			t.Errorf("AppendRow(%s) = %q, want %q", showFields(c.fields), got, c.want)
		}
		back, err := ParseRow(c.o, []byte(c.want), nil)
		if err != nil || !fieldsEqual(back, c.fields) {
			t.Errorf("ParseRow(%q) = %s %v, want %s", c.want, showFields(back), err, showFields(c.fields))
		}
	}
}

// TestParserReuse: a Parser decodes rows without allocating once its
// buffers have grown, and values of one row survive until the next Parse.
func TestParserReuse(t *testing.T) {
	for _, o := range []Options{{}, {Format: CSV}} {
		p := NewParser(o)
		row := AppendRow(nil, o, vals("plain", "esc\\aped\t\"quoted,\"", nil, "x"))
		fields, err := p.Parse(row, nil)
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(100, func() {
			fields, err = p.Parse(row, fields)
		})
		if err != nil || allocs != 0 {
			t.Fatalf("%v: %v allocations per Parse, err %v", o.Format, allocs, err)
		}
		if !fieldsEqual(fields, vals("plain", "esc\\aped\t\"quoted,\"", nil, "x")) {
			t.Fatalf("%v: got %s", o.Format, showFields(fields))
		}
		var dst []byte
		allocs = testing.AllocsPerRun(100, func() { dst = AppendRow(dst[:0], o, fields) })
		if allocs != 0 {
			t.Fatalf("%v: %v allocations per AppendRow", o.Format, allocs)
		}
	}
}
