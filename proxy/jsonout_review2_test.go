package proxy

// Review of 5f59fb7 (the hidden tenant) and 592f049 (the JSON fixes), the
// proxy side: removing the members and elements pgveil added, byte for
// byte, as pure functions over the server's document.
//
// No defect found here. Attacks withstood: TestJSONReview2HiddenRemovalHolds
// (hidden array elements, one or two, after nested shapes; hidden object
// members first, in the middle, last, two apart, alone, in json and jsonb
// formatting, nested in json_agg inside an object, in jsonb's binary
// format) and TestJSONReview2MissingHiddenHolds (a document without the
// element or member pgveil added fails closed, it is not returned).

import (
	"testing"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

func jrev2Hidden(key string) rewrite.JSONElem {
	return rewrite.JSONElem{Key: key, Tenant: -1, Hidden: true}
}

func jrev2Plain(key string) rewrite.JSONElem {
	return rewrite.JSONElem{Key: key, Tenant: -1}
}

// jrev2Open runs openJSON over doc with shape and returns the result.
func jrev2Open(shape *rewrite.JSONShape, doc string, binary bool) (string, error) {
	s := &session{}
	rc := &resultCol{json: shape, tenant: -1}
	raw := []byte(doc)
	if binary {
		rc.srvFmt = 1
		raw = append([]byte{1}, raw...)
	}
	out, err := s.openJSON(rc, raw, nil)
	if binary && err == nil {
		if len(out) == 0 || out[0] != 1 {
			return string(out), errBadJSON
		}
		out = out[1:]
	}
	return string(out), err
}

// TestJSONReview2HiddenRemovalHolds: the members and elements pgveil added
// go, every other byte of the document stays. The shapes hold no encrypted
// element (their opening is tested elsewhere): what is checked is the cut.
func TestJSONReview2HiddenRemovalHolds(t *testing.T) {
	arr := func(elems ...rewrite.JSONElem) *rewrite.JSONShape {
		return &rewrite.JSONShape{Kind: rewrite.JSONArray, Elems: elems}
	}
	obj := func(elems ...rewrite.JSONElem) *rewrite.JSONShape {
		return &rewrite.JSONShape{Kind: rewrite.JSONObject, Elems: elems}
	}
	nested := func(key string, s *rewrite.JSONShape) rewrite.JSONElem {
		return rewrite.JSONElem{Key: key, Tenant: -1, Shape: s}
	}
	h1, h2 := "__pgveil_tenant_1", "__pgveil_tenant_2"
	long := "a_key_longer_than_the_hidden_one"
	for _, c := range []struct {
		name      string
		shape     *rewrite.JSONShape
		doc, want string
	}{
		{"array one hidden", arr(jrev2Plain(""), jrev2Hidden("")), `[1, 9601]`, `[1]`},
		{"array two hidden (two tenants)", arr(jrev2Plain(""), jrev2Plain(""), jrev2Hidden(""), jrev2Hidden("")), `["a", "b", 9601, 9602]`, `["a", "b"]`},
		{"array only hidden", arr(jrev2Hidden(""), jrev2Hidden("")), `[9601, 9602]`, `[]`},
		{"array nested before hidden", arr(nested("", arr(jrev2Plain(""), jrev2Hidden(""))), jrev2Hidden("")), `[[1, 9601], 9601]`, `[[1]]`},
		{"array json_agg", &rewrite.JSONShape{Kind: rewrite.JSONAgg, Each: arr(jrev2Plain(""), jrev2Hidden(""))}, `[[1, 9601], [2, 9602], null, [3,9603]]`, `[[1], [2], null, [3]]`},
		{"json object last", obj(jrev2Plain("e"), jrev2Hidden(h1)), `{"e" : 1, "__pgveil_tenant_1" : 9601}`, `{"e" : 1}`},
		{"json object two last", obj(jrev2Plain("e"), jrev2Plain("p"), jrev2Hidden(h2), jrev2Hidden("__pgveil_tenant_3")), `{"e" : 1, "p" : 2, "__pgveil_tenant_2" : 9601, "__pgveil_tenant_3" : 9602}`, `{"e" : 1, "p" : 2}`},
		{"jsonb object hidden last", obj(jrev2Plain("e"), jrev2Hidden(h1)), `{"e": 1, "__pgveil_tenant_1": 9601}`, `{"e": 1}`},
		{"jsonb object hidden first", obj(jrev2Plain(long), jrev2Hidden(h1)), `{"__pgveil_tenant_1": 9601, "` + long + `": 1}`, `{"` + long + `": 1}`},
		{"jsonb object hidden middle", obj(jrev2Plain("e"), jrev2Plain(long), jrev2Hidden(h2)), `{"e": 1, "__pgveil_tenant_2": 9601, "` + long + `": 2}`, `{"e": 1, "` + long + `": 2}`},
		{"jsonb object hidden apart", obj(jrev2Plain("e"), jrev2Plain("__pgveil_tenant_20x"), jrev2Plain(long), jrev2Hidden(h2), jrev2Hidden("__pgveil_tenant_99")),
			`{"e": 1, "__pgveil_tenant_2": 9601, "__pgveil_tenant_20x": 5, "__pgveil_tenant_99": 9602, "` + long + `": 2}`,
			`{"e": 1, "__pgveil_tenant_20x": 5, "` + long + `": 2}`},
		{"jsonb object only hidden", obj(jrev2Hidden(h1), jrev2Hidden(h2)), `{"__pgveil_tenant_1": 9601, "__pgveil_tenant_2": 9602}`, `{}`},
		{"nested in json_agg in object", obj(jrev2Plain("id"), nested("users", &rewrite.JSONShape{Kind: rewrite.JSONAgg, Each: obj(jrev2Plain("e"), jrev2Hidden(h1))}), jrev2Hidden(h2)),
			`{"id": 7, "users": [{"e": "x", "__pgveil_tenant_1": 9601}, {"e": "y", "__pgveil_tenant_1": 9602}], "__pgveil_tenant_2": 9601}`,
			`{"id": 7, "users": [{"e": "x"}, {"e": "y"}]}`},
		{"object members of other keys kept", obj(jrev2Plain("e"), jrev2Hidden(h1)), `{"e": 1, "zz": {"__pgveil_tenant_1": 3}, "__pgveil_tenant_1": 9601}`, `{"e": 1, "zz": {"__pgveil_tenant_1": 3}}`},
		{"null object", obj(jrev2Plain("e"), jrev2Hidden(h1)), `null`, `null`},
	} {
		for _, binary := range []bool{false, true} {
			got, err := jrev2Open(c.shape, c.doc, binary)
			if err != nil || got != c.want {
				t.Errorf("%s (binary %v): %s\n got %q, %v\nwant %q", c.name, binary, c.doc, got, err, c.want)
			}
		}
	}
}

// TestJSONReview2MissingHiddenHolds: where the element or member pgveil
// added is not in the document (a server or a function that built other
// JSON), the value fails closed: an error, never the document.
func TestJSONReview2MissingHiddenHolds(t *testing.T) {
	tbl := &policy.Table{Schema: "public", Name: "users", KeyContext: "org_id"}
	email := &policy.Column{Table: tbl, Name: "email", Type: policy.TypeText}
	arr := &rewrite.JSONShape{Kind: rewrite.JSONArray, Elems: []rewrite.JSONElem{{Column: email, Tenant: 1}, jrev2Hidden("")}}
	obj := &rewrite.JSONShape{Kind: rewrite.JSONObject, Elems: []rewrite.JSONElem{{Key: "e", Column: email, Tenant: 1}, jrev2Hidden("__pgveil_tenant_1")}}
	for _, c := range []struct {
		shape *rewrite.JSONShape
		doc   string
	}{
		{arr, `["\\x0102"]`},
		{arr, `["\\x0102", 9601, 9602]`},
		{arr, `{"e": "\\x0102"}`},
		{obj, `{"e": "\\x0102"}`},
		{obj, `{"e": "\\x0102", "__pgveil_tenant_2": 9601}`},
		{obj, `["\\x0102", 9601]`},
		{&rewrite.JSONShape{Kind: rewrite.JSONAgg, Each: arr}, `[["\\x0102"], ["\\x0102", 9601]]`},
	} {
		got, err := jrev2Open(c.shape, c.doc, false)
		if err == nil {
			t.Errorf("%s: returned %q, want an error", c.doc, got)
		}
	}
}
