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

// TestCodeExecutedNames: the names a DO block that uses EXECUTE may run
// as prepared statements with dynamic SQL (review 19b).
func TestCodeExecutedNames(t *testing.T) {
	for sql, want := range map[string][]string{
		"DO $$ BEGIN EXECUTE 'EXECUTE ins(1, ''x'')'; END $$":        {"begin", "execute", "end", "ins"},
		"DO $$ BEGIN EXECUTE format('EXECUTE %s(1)', 'Ins'); END $$": {"begin", "execute", "format", "end", "%s", "ins"},
		"DO $$ BEGIN PERFORM 1; END $$":                              nil,
		"SELECT 'DO EXECUTE ins'":                                    nil,
		"EXECUTE ins(1)":                                             nil,
	} {
		got := CodeExecutedNames(sql)
		for _, w := range want {
			if w != "%s" && !slices.Contains(got, w) {
				t.Errorf("%s: %q, want %q among them", sql, got, w)
			}
		}
		if want == nil && got != nil {
			t.Errorf("%s: %q, want none", sql, got)
		}
	}
}

// TestPreparesStatement: code that prepares a statement, in its text or a
// string of it (review 19b), and code that only says the word.
func TestPreparesStatement(t *testing.T) {
	for code, want := range map[string]bool{
		"BEGIN EXECUTE 'PREPARE p (int) AS SELECT $1'; END":      true,
		"BEGIN PREPARE p AS SELECT 1; END":                       true,
		`BEGIN EXECUTE 'PREPARE "P" AS SELECT 1'; END`:           true,
		"BEGIN RAISE NOTICE 'prepare the report'; END":           false,
		"BEGIN PREPARE TRANSACTION 'x'; END":                     false,
		"BEGIN EXECUTE format('PREPARE %I AS SELECT 1', n); END": false, // built: not seen
	} {
		ws, _ := bodyWords(code, 0)
		if got := preparesStatement(ws); got != want {
			t.Errorf("%s: %v, want %v", code, got, want)
		}
	}
}

// TestDeallocatesStatement: code that deallocates prepared statements, in
// its text or a string of it (review 20a), and code that only says a
// word like it.
func TestDeallocatesStatement(t *testing.T) {
	for code, want := range map[string]bool{
		"BEGIN EXECUTE 'DEALLOCATE ALL'; END":               true,
		"BEGIN EXECUTE format('DEALLOCATE %s', 'ALL'); END": true,
		"BEGIN EXECUTE 'deallocate prepare x'; END":         true,
		"BEGIN DEALLOCATE x; END":                           true,
		"BEGIN RAISE NOTICE 'deallocated: %', 1; END":       false,
		`BEGIN PERFORM "deallocate"(1); END`:                false,
		"BEGIN EXECUTE 'SELECT 1 AS deallocate_count'; END": false,
		"BEGIN EXECUTE 'DEAL' || 'LOCATE ALL'; END":         false, // built: not seen
	} {
		ws, _ := bodyWords(code, 0)
		if got := deallocatesStatement(ws); got != want {
			t.Errorf("%s: %v, want %v", code, got, want)
		}
	}
}
