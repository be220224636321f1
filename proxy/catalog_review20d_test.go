package proxy

import "testing"

// TestReview20dChangesPath: function code that changes TimeZone is found
// with the search_path functions (its callers' statements make the zone
// unknown until answered); code that only uses a zone is not, nor (review
// 21a: date, timestamp and float tenants are read as their send form)
// code that changes DateStyle or extra_float_digits.
func TestReview20dChangesPath(t *testing.T) {
	for code, want := range map[string]bool{
		`BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); END`:     false,
		`BEGIN SET datestyle = 'SQL, DMY'; END`:                             false,
		`BEGIN PERFORM set_config('extra_float_digits', '0', true); END`:    false,
		`BEGIN PERFORM set_config('TimeZone', 'Europe/Berlin', false); END`: true,
		`BEGIN SET TIME ZONE 'Europe/Berlin'; END`:                          true,
		`BEGIN SET LOCAL timezone = 'Europe/Berlin'; END`:                   true,
		`BEGIN SET "TimeZone" = 'Europe/Berlin'; END`:                       true,
		`BEGIN RESET timezone; END`:                                         true,
		`BEGIN EXECUTE 'set   time  zone ' || quote_literal(z); END`:        true,
		`BEGIN NEW.at := timezone('utc', now()); RETURN NEW; END`:           false,
		`SELECT now() AT TIME ZONE 'UTC'`:                                   false,
		`DECLARE x timestamp with time zone; BEGIN RETURN x; END`:           false,
		`BEGIN PERFORM set_config('app.tenant', '7', true); END`:            false,
	} {
		if got := changesPath(code); got != want {
			t.Errorf("changesPath(%q) = %v, want %v", code, got, want)
		}
	}
}

func TestReview20dHasWordFold(t *testing.T) {
	for s, want := range map[string]bool{
		"EXECUTE p":                    true,
		"explain analyze execute p(1)": true,
		"SELECT executed_at FROM t":    false,
		"SELECT x_execute FROM t":      false,
		"select 1;execute":             true,
		"":                             false,
	} {
		if got := hasWordFold(s, "execute"); got != want {
			t.Errorf("hasWordFold(%q) = %v, want %v", s, got, want)
		}
	}
}
