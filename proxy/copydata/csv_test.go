package copydata

import "testing"

// TestParseCSV holds the CSV rules from the COPY page ("CSV Format") and
// CopyReadAttributesCSV.
func TestParseCSV(t *testing.T) {
	csv := Options{Format: CSV}
	custom := Options{Format: CSV, Delimiter: '|', Null: "nil", NullSet: true, Quote: '\'', Escape: '\\'}
	force := Options{Format: CSV, ForceNotNull: []bool{true, false}, ForceNull: []bool{false, true, true}}
	runParseCases(t, []parseCase{
		{name: "plain", o: csv, row: "a,b,c\n", want: vals("a", "b", "c")},
		{name: "unquoted empty is null", o: csv, row: ",\"\",x\n", want: vals(nil, "", "x")},
		{name: "empty line is one null", o: csv, row: "\n", want: vals(nil)},
		{name: "quoted delimiter and newlines", o: csv, row: "\"a,b\",\"c\nd\r\ne\"\r\n", want: vals("a,b", "c\nd\r\ne")},
		{name: "doubled quote", o: csv, row: `"say ""hi""",""""` + "\n", want: vals(`say "hi"`, `"`)},
		{name: "quote mid field", o: csv, row: `ab"c,d"ef,"x"y"z"` + "\n", want: vals("abc,def", "xyz")},
		{name: "spaces kept", o: csv, row: " a , \" b \" \n", want: vals(" a ", "  b  ")},
		{name: "backslash is data", o: csv, row: `\N,\.,a\` + "\n", want: vals(`\N`, `\.`, `a\`)},
		{name: "no terminator", o: csv, row: `a,"b"`, want: vals("a", "b")},
		{name: "custom", o: custom, row: `nil|'nil'|'it\'s'|'a\\b'|'a\b'|'x''y'|''` + "\n", want: vals(nil, "nil", "it's", `a\b`, `a\b`, "xy", "")},
		{name: "custom: escape outside quotes is data", o: custom, row: `a\'b'|c` + "\n", want: vals(`a\b`, "c")},
		{name: "custom: quoted empty", o: custom, row: "''|\n", want: vals("", "")},
		{name: "escape other than quote", o: Options{Format: CSV, Escape: '!'}, row: `"a!"b!!c!d"` + "\n", want: vals(`a"b!c!d`)},
		{name: "force not null", o: force, row: ",,\n", want: vals("", nil, nil)},
		{name: "force null", o: force, row: "\"\",\"\",\"x\"\n", want: vals("", nil, "x")},
		{name: "default marker", o: Options{Format: CSV, Default: "D", DefaultSet: true}, row: "D,\"D\",DD\n", want: vals(Field{Default: true}, "D", "DD")},
		{name: "utf8", o: csv, row: "\"日本\",語\n", want: vals("日本", "語")},

		{name: "unterminated quote", o: csv, row: "\"abc\n", err: "unterminated CSV quoted field"},
		{name: "unterminated quote no newline", o: csv, row: `a,"b`, err: "unterminated CSV quoted field"},
		{name: "unquoted newline", o: csv, row: "a\nb\n", err: "unquoted newline found in data"},
		{name: "unquoted cr", o: csv, row: "a\rb\n", err: "unquoted carriage return found in data"},
		{name: "nul", o: csv, row: "a\x00,b\n", err: "0x00"},
		{name: "nul in quotes", o: csv, row: "\"a\x00\",b\n", err: "0x00"},
		{name: "bad options", o: Options{Format: CSV, Delimiter: '"'}, row: "x\n", err: "delimiter and quote must be different"},
	})
}

// TestAppendCSV: AppendRow writes what COPY TO writes (CopyAttributeOutCSV).
func TestAppendCSV(t *testing.T) {
	csv := Options{Format: CSV}
	custom := Options{Format: CSV, Delimiter: '|', Null: "nil", NullSet: true, Quote: '\'', Escape: '\\'}
	cases := []struct {
		o      Options
		fields []Field
		want   string
	}{
		{csv, vals("a", "b"), "a,b\n"},
		{csv, vals(nil, "", " x "), `,"", x ` + "\n"},
		{csv, vals("a,b", `q"q`, "l\nl", "c\rr"), `"a,b","q""q","l` + "\n" + `l","c` + "\r" + `r"` + "\n"},
		{csv, vals(`\.`), `"\."` + "\n"},
		{csv, vals(`\.`, "x"), `\.,x` + "\n"},
		{csv, vals(`\`, `a\b`), `\,a\b` + "\n"},
		{Options{Format: CSV, Delimiter: '.', Null: "N", NullSet: true}, vals(`\`, ""), `"\".` + "\n"},
		{Options{Format: CSV, Delimiter: '.', Null: "N", NullSet: true}, vals(nil, `\`, ""), `N.\.` + "\n"},
		{custom, vals(nil, "nil", "it's", `a\b`, "", "a|b"), `nil|'nil'|'it\'s'|a\b||'a|b'` + "\n"},
		{custom, vals("'", `\'`), `'\''|'\\\''` + "\n"},
		{Options{Format: CSV, ForceQuote: []bool{false, true, true}}, vals("a", "b", nil), `a,"b",` + "\n"},
		{Options{Format: CSV, Default: "D", DefaultSet: true}, vals(Field{Default: true}, "D"), `D,"D"` + "\n"},
		{Options{Format: CSV, EOL: CRLF}, vals("a"), "a\r\n"},
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
