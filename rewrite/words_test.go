package rewrite

import (
	"reflect"
	"testing"
)

func TestWords(t *testing.T) {
	src := `NEW."Org""Id" := E'it''s \' -- not' || $q$ /* x */ $q$; -- NEW.org_id
	/* outer /* NEW.org_id */ still */ Return`
	want := []Word{
		{Kind: WordName, Text: "new"}, {Kind: WordOther, Text: "."}, {Kind: WordName, Text: `Org"Id`, Quoted: true},
		{Kind: WordOther, Text: ":"}, {Kind: WordOther, Text: "="},
		{Kind: WordString}, {Kind: WordOther, Text: "||"}, {Kind: WordString}, {Kind: WordOther, Text: ";"},
		{Kind: WordName, Text: "return"},
	}
	got, err := Words(src)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Words = %+v, %v\nwant %+v", got, err, want)
	}
	if _, err := Words("x := 'open"); err == nil {
		t.Error("an unterminated string is no error")
	}
	if _, err := Words("x /* open"); err == nil {
		t.Error("an unterminated comment is no error")
	}
}
