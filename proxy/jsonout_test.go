package proxy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/policy"
)

// TestParseJSONSpans: the parser finds every value's span, array elements
// and object members (keys decoded), and refuses what is not JSON.
func TestParseJSONSpans(t *testing.T) {
	src := []byte(` [1, "a\"b", {"k\u00e9": [true, null], "x": {}}, [] ] `)
	d, err := parseJSON(src)
	if err != nil {
		t.Fatal(err)
	}
	root := d.nodes[0]
	if root.kind != '[' || len(root.kids) != 4 {
		t.Fatalf("root %+v", root)
	}
	span := func(i int) string { n := d.nodes[i]; return string(src[n.start:n.end]) }
	if got := span(root.kids[1]); got != `"a\"b"` {
		t.Errorf("string span %q", got)
	}
	obj := d.nodes[root.kids[2]]
	if obj.kind != '{' || len(obj.keys) != 2 || obj.keys[0] != "ké" || obj.keys[1] != "x" {
		t.Errorf("object %+v", obj)
	}
	if got := span(obj.kids[0]); got != "[true, null]" {
		t.Errorf("member span %q", got)
	}
	for _, bad := range []string{``, `[`, `[1,]`, `{"a" 1}`, `{1: 2}`, `"abc`, `[1] 2`, `{"a":1,}`, strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1)} {
		if _, err := parseJSON([]byte(bad)); err == nil {
			t.Errorf("%.40q parsed", bad)
		}
	}
}

// TestJSONStringRoundTrip: canon.UnquoteJSON decodes what PostgreSQL's
// escape_json writes (canon.AppendJSONString), surrogate pairs included.
func TestJSONStringRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " back \ slash`, "tab\tnl\ncr\rff\fbs\b", "\x01\x1f ctl", "zoë 日本 🙂", `\x0102ff`} {
		q := canon.AppendJSONString(nil, []byte(s))
		got, err := canon.UnquoteJSON(q)
		if err != nil || string(got) != s {
			t.Errorf("%q → %s → %q, %v", s, q, got, err)
		}
	}
	if got := string(canon.AppendJSONString(nil, []byte("a\"\\\n\x01"))); got != `"a\"\\\n\u0001"` {
		t.Errorf("escape_json: %s", got)
	}
	got, err := canon.UnquoteJSON([]byte(`"\ud83d\ude42 \u00e9 \/"`))
	if err != nil || string(got) != "🙂 é /" {
		t.Errorf("escapes: %q %v", got, err)
	}
	for _, bad := range []string{`"\u12"`, `"\x"`, `"abc`, `abc`} {
		if _, err := canon.UnquoteJSON([]byte(bad)); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

// TestAppendJSONValue: each logical type as to_json writes it.
func TestAppendJSONValue(t *testing.T) {
	for _, c := range []struct {
		t         policy.LogicalType
		text, out string
	}{
		{policy.TypeText, `say "hi"`, `"say \"hi\""`},
		{policy.TypeVarchar, "x", `"x"`},
		{policy.TypeUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{policy.TypeInt8, "-9223372036854775808", "-9223372036854775808"},
		{policy.TypeInt2, "7", "7"},
		{policy.TypeNumeric, "12.500", "12.500"},
		{policy.TypeNumeric, "NaN", `"NaN"`},
		{policy.TypeNumeric, "Infinity", `"Infinity"`},
		{policy.TypeBool, "t", "true"},
		{policy.TypeBool, "f", "false"},
		{policy.TypeDate, "2024-03-05", `"2024-03-05"`},
		{policy.TypeDate, "0044-03-15 BC", `"0044-03-15 BC"`},
		{policy.TypeTimestamptz, "0044-03-15 10:00:00+00 BC", `"0044-03-15T10:00:00+00:00 BC"`},
		{policy.TypeTimestamptz, "2024-03-05 10:00:00-08", `"2024-03-05T10:00:00-08:00"`},
		{policy.TypeTimestamptz, "2024-03-05 10:00:00+05:30", `"2024-03-05T10:00:00+05:30"`},
		{policy.TypeDate, "infinity", `"infinity"`},
		{policy.TypeTimestamp, "2024-03-05 10:00:00.5", `"2024-03-05T10:00:00.5"`},
		{policy.TypeTimestamptz, "2024-03-05 10:00:00+00", `"2024-03-05T10:00:00+00:00"`},
		{policy.TypeTimestamptz, "-infinity", `"-infinity"`},
		{policy.TypeJSON, `{"a": [1, 2]}`, `{"a": [1, 2]}`},
		{policy.TypeJSONB, `{"a": 1}`, `{"a": 1}`},
		{policy.TypeBytea, `\x00ff`, `"\\x00ff"`},
	} {
		if got := string(appendJSONValue(nil, c.t, []byte(c.text))); got != c.out {
			t.Errorf("%s %q: %s, want %s", c.t, c.text, got, c.out)
		}
	}
}

func TestValidJSONNumber(t *testing.T) {
	for s, want := range map[string]bool{"0": true, "-1": true, "1.5": true, "1e10": true, "1.5E-3": true, "NaN": false, "Infinity": false, "-": false, "1.": false, ".5": false, "1e": false, "": false, "00": false, "-01": false, "0.5": true, "-0": true} {
		if got := validJSONNumber([]byte(s)); got != want {
			t.Errorf("%q: %v", s, got)
		}
	}
}

// FuzzParseJSON: the reader never panics, and what it accepts is JSON
// (encoding/json agrees) whose node spans nest inside the document.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`[]`, `{}`, `[1, "a\"b", {"k": [true, null]}, []]`, `{"a": {"b": [1, {"c": "\u00e9"}]}}`, `"x"`, `-1.5e3`, `[[[]]]`, `{"a":1,"a":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		d, err := parseJSON(src)
		if err != nil {
			return
		}
		if !json.Valid(src) {
			t.Fatalf("accepted %q, which is not JSON", src)
		}
		for i, n := range d.nodes {
			if n.start < 0 || n.end > len(src) || n.start >= n.end {
				t.Fatalf("node %d span [%d,%d) in %d bytes", i, n.start, n.end, len(src))
			}
			for _, k := range n.kids {
				if c := d.nodes[k]; c.start < n.start || c.end > n.end {
					t.Fatalf("node %d outside its parent %d", k, i)
				}
			}
			if n.kind == '{' && (len(n.keys) != len(n.kids) || len(n.keyStarts) != len(n.kids)) {
				t.Fatalf("object %d: %d keys, %d values", i, len(n.keys), len(n.kids))
			}
		}
	})
}
