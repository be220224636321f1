package rewrite

import (
	"slices"
	"testing"
)

// TestExecutedNames: the prepared statements a string runs with SQL
// EXECUTE, as the server looks them up (review of the extended protocol:
// the proxy refuses an EXECUTE of a statement it prepared under its own
// name).
func TestExecutedNames(t *testing.T) {
	for sql, want := range map[string][]string{
		"EXECUTE n5('a@b')":                              {"n5"},
		"execute N6(1); EXPLAIN EXECUTE \"Q\"(2)":        {"n6", "Q"},
		"CREATE TABLE t AS EXECUTE q7(3)":                {"q7"},
		"SELECT 'execute n5(1)'":                         nil,
		"SELECT 1":                                       nil,
		"EXECUTE (":                                      nil,
		"DO $$ BEGIN EXECUTE 'SELECT 1'; END $$":         nil,
		"PREPARE p AS SELECT 1; EXECUTE p; DEALLOCATE p": {"p"},
	} {
		if got := ExecutedNames(sql); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", sql, got, want)
		}
	}
}
