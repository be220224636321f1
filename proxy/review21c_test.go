package proxy

import "testing"

// TestReview21cChangesPathSetSchema: SET SCHEMA 'x' is SET search_path
// spelled without the name; function code running it changes the path
// (integration TestReview21cFunctionSetSchema).
func TestReview21cChangesPathSetSchema(t *testing.T) {
	for code, want := range map[string]bool{
		`SET SCHEMA 'public'`:                                  true,
		"BEGIN set local\n schema 'x'; END":                    true,
		`BEGIN SET SESSION SCHEMA 'x'; END`:                    true,
		`SELECT 'schema' AS set_name`:                          false,
		`BEGIN PERFORM set_config('app.tenant', t, true); END`: false,
	} {
		if got := changesPath(code); got != want {
			t.Errorf("changesPath(%q) = %v, want %v", code, got, want)
		}
	}
}
