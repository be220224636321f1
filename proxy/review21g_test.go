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

// TestReview21gRunsAtExecute: a leading DO (after comments) and EXECUTE
// are statements the server plans at their Execute; ON CONFLICT DO
// NOTHING is not.
func TestReview21gRunsAtExecute(t *testing.T) {
	for sql, want := range map[string]bool{
		`DO $$BEGIN PERFORM 1; END$$`:                                  true,
		" -- c\n /* a /* b */ */ do $$BEGIN END$$":                     true,
		`EXECUTE ins(1)`:                                               true,
		`EXPLAIN ANALYZE EXECUTE ins(1)`:                               true,
		`INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING`:              false,
		`SELECT done FROM t`:                                           false,
		`/* unterminated do`:                                           false,
		`INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 1`: false,
	} {
		if got := runsAtExecute(sql); got != want {
			t.Errorf("runsAtExecute(%q) = %v, want %v", sql, got, want)
		}
	}
}
