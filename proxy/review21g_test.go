package proxy

import "testing"

// TestReview21gChangesPathSchemaColumn: a column named schema assigned in
// UPDATE or ON CONFLICT code is no SET SCHEMA; SET SCHEMA in any spelling
// still is (review 21c).
func TestReview21gChangesPathSchemaColumn(t *testing.T) {
	for code, want := range map[string]bool{
		`UPDATE audit SET schema = TG_TABLE_SCHEMA WHERE id = NEW.id`:                         false,
		`INSERT INTO m VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET schema=EXCLUDED.schema`: false,
		`SET SCHEMA 'public'`:                           true,
		`BEGIN EXECUTE format('SET SCHEMA %L', s); END`: true,
		`UPDATE a SET schema = 'x'; SET SCHEMA 'y'`:     true,
		`UPDATE a SET role = 'x'`:                       true, // conservative, as before
	} {
		if got := changesPath(code); got != want {
			t.Errorf("changesPath(%q) = %v, want %v", code, got, want)
		}
	}
}
