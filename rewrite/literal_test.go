package rewrite

import (
	"strings"
	"testing"
)

func TestLiteralValue(t *testing.T) {
	cases := []struct {
		lit    string
		want   string
		isNull bool
		bad    bool
	}{
		{lit: `'a@b.c'`, want: "a@b.c"},
		{lit: `''`, want: ""},
		{lit: `'it''s'`, want: "it's"},
		{lit: `'back\slash'`, want: `back\slash`}, // standard_conforming_strings = on
		{lit: `E'a\nb\tc'`, want: "a\nb\tc"},
		{lit: `e'it\'s'`, want: "it's"},
		{lit: `E'\\x41'`, want: `\x41`},
		{lit: `E'\x41\101\u00e9\U0001F600'`, want: "AAé😀"},
		{lit: `E'\uD83D\uDE00'`, want: "😀"},
		{lit: `E'\q'`, want: "q"},
		{lit: `E'\000'`, bad: true},
		{lit: `E'\xff'`, bad: true},
		{lit: `E'\uD83D'`, bad: true},
		{lit: `U&'d\0061t\+000061'`, want: "data"},
		{lit: `U&'d!0061t' UESCAPE '!'`, want: "dat"},
		{lit: `u&'\\'`, want: `\`},
		{lit: `U&'\D83D\DE00'`, want: "😀"},
		{lit: `U&'x' UESCAPE 'a'`, bad: true},
		{lit: `N'national'`, want: "national"},
		{lit: `$$dollar 'quoted'$$`, want: "dollar 'quoted'"},
		{lit: `$tag$a$$b$tag$`, want: "a$$b"},
		{lit: "'con'\n  'tinued'", want: "continued"},
		{lit: "'con'\t\n\r\n\f'tinued'", want: "continued"},
		{lit: "'con' -- comment\n'tinued'", want: "con"}, // pg_query's scanner: no comment in a continuation
		{lit: "E'a\\n'\n'\\n'", want: "a\n\n"},
		{lit: `42`, want: "42"},
		{lit: `-7`, want: "-7"},
		{lit: `- 7`, want: "-7"},
		{lit: `+7`, want: "7"},
		{lit: `-0`, want: "0"},
		{lit: `3.25`, want: "3.25"},
		{lit: `-12.50`, want: "-12.50"},
		{lit: `.5`, want: ".5"},
		{lit: `1e10`, want: "1e10"},
		{lit: `1_000_000`, want: "1000000"},
		{lit: `0x1F`, want: "31"},
		{lit: `0o17`, want: "15"},
		{lit: `0b101`, want: "5"},
		{lit: `0xFFFFFFFFFFFFFFFFFF`, want: "4722366482869645213695"},
		{lit: `TRUE`, want: "true"},
		{lit: `false`, want: "false"},
		{lit: `NULL`, isNull: true},
		{lit: `null::text`, isNull: true},
		{lit: `'2024-01-02'::date`, want: "2024-01-02"},
		{lit: `CAST('x' AS text)`, want: "x"},
		{lit: `CAST(42 AS bigint)`, want: "42"},
		{lit: `DATE '2024-01-02'`, want: "2024-01-02"},
		{lit: `'x'::character varying(10)`, want: "x"},
		{lit: `B'101'`, bad: true},
		{lit: `X'1F'`, bad: true},
		{lit: `'unterminated`, bad: true},
		{lit: `some_column`, bad: true},
		{lit: `- 'x'`, bad: true},
		{lit: "'\xff'", bad: true},
	}
	for _, c := range cases {
		// Embed the literal in a statement, as the planner sees it.
		sql := "SELECT " + c.lit + " FROM t"
		v, isNull, err := LiteralValue(sql, Literal{Start: 7, End: 7 + len(c.lit)})
		switch {
		case c.bad:
			if err == nil {
				t.Errorf("%s: got %q, want an error", c.lit, v)
			}
		case err != nil:
			t.Errorf("%s: %v", c.lit, err)
		case isNull != c.isNull || string(v) != c.want:
			t.Errorf("%s: got %q null=%v, want %q null=%v", c.lit, v, isNull, c.want, c.isNull)
		}
	}
	if _, _, err := LiteralValue("SELECT 1", Literal{Start: 5, End: 50}); err == nil {
		t.Error("out-of-range literal accepted")
	}
}

// TestLiteralValueOfPlans decodes, through the public API, the literals a
// plan records for each literal form.
func TestLiteralValueOfPlans(t *testing.T) {
	p := newTestPlanner(t)
	for lit, want := range map[string]string{
		`'a@b.c'`:              "a@b.c",
		`E'a\'b'`:              "a'b",
		`U&'d\0061t\0061'`:     "data",
		`$q$x$q$`:              "x",
		`'x'::text`:            "x",
		`CAST('y' AS varchar)`: "y",
		`-5`:                   "-5",
		`- 5`:                  "-5",
		`0x10`:                 "16",
		"'a'\n'b'":             "ab",
	} {
		sql := "SELECT id FROM users WHERE ssn = " + lit
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		st := plan.Stmts[0]
		if len(st.Slots) != 1 {
			t.Fatalf("%s: %d slots", sql, len(st.Slots))
		}
		v, _, err := LiteralValue(sql, st.Literals[st.Slots[0].Source])
		if err != nil || string(v) != want {
			t.Errorf("%s: got %q, %v; want %q", sql, v, err, want)
		}
	}
}

func TestByteaLiteral(t *testing.T) {
	b := []byte{0x00, 0x0a, 0x27, 0x5c, 0xff}
	got := ByteaLiteral(b)
	if got != `E'\\x000a275cff'::bytea` {
		t.Fatalf("got %s", got)
	}
	// The literal reads back the same under both settings of
	// standard_conforming_strings: an E'' string always unescapes \\ to \.
	v, _, err := LiteralValue(got, Literal{Start: 0, End: len(got)})
	if err != nil || string(v) != `\x000a275cff` {
		t.Fatalf("read back %q, %v", v, err)
	}
	for _, backslash := range []bool{false, true} {
		l := lexer{s: got, backslash: backslash}
		if tok := l.next(); tok.kind != tString || tok.end != len(got)-len("::bytea") {
			t.Fatalf("backslash=%v: token %+v", backslash, tok)
		}
	}
	if ByteaLiteral(nil) != `E'\\x'::bytea` {
		t.Fatal("empty bytea")
	}
}

func TestTextLiteral(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", `back\slash`, `'\'`, "pgv1:AAAA+/==", "nul\x00byte", "ünïcode"} {
		lit := TextLiteral(s)
		for _, backslash := range []bool{false, true} {
			l := lexer{s: lit, backslash: backslash}
			if tok := l.next(); tok.kind != tString || tok.end != len(lit) {
				t.Fatalf("%q → %s: not one string token with backslash=%v", s, lit, backslash)
			}
		}
		if strings.Contains(s, "\x00") {
			if !strings.Contains(lit, `\000`) {
				t.Fatalf("NUL not escaped: %s", lit)
			}
			continue
		}
		v, _, err := LiteralValue(lit, Literal{Start: 0, End: len(lit)})
		if err != nil || string(v) != s {
			t.Fatalf("%q → %s → %q, %v", s, lit, v, err)
		}
		if !strings.ContainsAny(s, `\`) && strings.HasPrefix(lit, "E") {
			t.Fatalf("%q needlessly escaped: %s", s, lit)
		}
	}
}
