package proxy

// Review 14, proxy side: array literals compared with an encrypted column
// (= ANY('{…}'), <> ALL('{…}'), a text-format array parameter). The full
// explanation is in rewrite/review14_test.go; each answer below is
// PostgreSQL 15's (SELECT unnest('…'::text[]) on a scratch cluster).

import (
	"strings"
	"testing"

	"github.com/pgveil/pgveil/keysource/canon"
)

// rev14Null marks a NULL element in the expected lists.
const rev14Null = "\x00NULL"

func TestReview14FoundArrayLiteral(t *testing.T) {
	for _, c := range []struct {
		lit  string
		want []string // nil: PostgreSQL rejects the literal (malformed array literal)
	}{
		{`{a,b}`, []string{"a", "b"}},
		{`{a, b}`, []string{"a", "b"}},
		{`{ a , "b c" }`, []string{"a", "b c"}},
		{`{a,"b"  ,c}`, []string{"a", "b", "c"}},
		{"{\"a\"\t}", []string{"a"}},
		{`{"a" }`, []string{"a"}},
		{` {a} `, []string{"a"}},
		{`{a b}`, []string{"a b"}},
		{`{ a  b }`, []string{"a  b"}},
		{`{{a,b},{c,d}}`, []string{"a", "b", "c", "d"}},
		{`{ {a} , {b} }`, []string{"a", "b"}},
		{`[1:2]={a,b}`, []string{"a", "b"}},
		{`[0:1]={x,y}`, []string{"x", "y"}},
		{`[1:1][1:2]={{a,b}}`, []string{"a", "b"}},
		{`{NULL,null,"NULL", NuLl}`, []string{rev14Null, rev14Null, "NULL", rev14Null}},
		{`{NULL }`, []string{rev14Null}},
		{`{N\ULL}`, []string{"NULL"}},
		{`{NULLx}`, []string{"NULLx"}},
		{`{a\,b,c\"d}`, []string{"a,b", `c"d`}},
		{`{a\\b}`, []string{`a\b`}},
		{`{"a\\\\b"}`, []string{`a\\b`}},
		{`{"a\"b"}`, []string{`a"b`}},
		{`{a\ }`, []string{"a "}},
		{`{ \ a}`, []string{" a"}},
		{`{  a\\  }`, []string{`a\`}},
		{`{\N}`, []string{"N"}},
		{`{a''b}`, []string{"a''b"}},
		{`{""}`, []string{""}},
		{`{}`, []string{}},
		{`{ }`, []string{}},
		{`{a,}`, nil},
		{`{ , }`, nil},
		{`{"a"b}`, nil},
		{`{a"b"}`, nil},
		{`{"a" "b"}`, nil},
		{`{"a",{b}}`, nil},
		{`{{a,b},c}`, nil},
		{`{{a},{b,c}}`, nil},
		{`{{}}`, nil},
		{`{a}x`, nil},
		{`{NULL}x`, nil},
		{`{a,b`, nil},
		{`{}}`, nil},
		{`[1:2]={a}`, nil},
		{`a,b`, nil},
	} {
		got, err := parseTextArray([]byte(c.lit))
		if c.want == nil {
			if err == nil {
				t.Errorf("%s: parsed as %s; PostgreSQL rejects it (malformed array literal)", c.lit, rev14Elems(got))
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v; PostgreSQL reads %s", c.lit, err, strings.Join(c.want, "|"))
			continue
		}
		want := make([][]byte, len(c.want))
		for i, w := range c.want {
			if w != rev14Null {
				want[i] = []byte(w)
			}
		}
		if rev14Elems(got) != rev14Elems(want) {
			t.Errorf("%s: elements %s; PostgreSQL compares %s", c.lit, rev14Elems(got), rev14Elems(want))
		}
	}
}

func rev14Elems(es [][]byte) string {
	var b strings.Builder
	for _, e := range es {
		if e == nil {
			b.WriteString("NULL")
		} else {
			b.WriteString("<" + string(e) + ">")
		}
		b.WriteString(" ")
	}
	return b.String()
}

// TestReview14DeclaredTenant: a tenant parameter is assigned to the
// key_context column's type as PostgreSQL assigns it before it names the
// tenant (integration/enc_review14_test.go TestEncReview14FoundDeclaredTenant).
func TestReview14DeclaredTenant(t *testing.T) {
	for _, c := range []struct {
		declared uint32
		v        string
		want     string // "": refused
	}{
		{0, "42", "42"},
		{0, "042", "42"},
		{23, "42", "42"},
		{1700, "42.000", "42"},
		{1700, "9142.6", ""},
		{701, "42", "42"},
		{701, "1.5", ""},
		{25, "42", "42"},
	} {
		got, err := canon.TenantParam(20, c.declared, canon.TextFormat, []byte(c.v))
		if c.want == "" {
			if err == nil {
				t.Errorf("declared %d %q: tenant %q; PostgreSQL stores another bigint", c.declared, c.v, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("declared %d %q: %q, %v; want %q", c.declared, c.v, got, err, c.want)
		}
	}
}
