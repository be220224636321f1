package proxy

import "testing"

// TestReview20fChangesPathSettings: function code that changes a setting
// through UPDATE pg_settings (whose rule calls set_config) changes it.
func TestReview20fChangesPathSettings(t *testing.T) {
	for code, want := range map[string]bool{
		`BEGIN UPDATE pg_settings SET setting = 'Europe/Berlin' WHERE name = 'TimeZone'; RETURN 1; END`: true,
		`BEGIN UPDATE pg_catalog.pg_settings SET setting = 'r2' WHERE name = 'role'; END`:               true,
		`BEGIN RETURN (SELECT setting FROM pg_settings WHERE name = 'TimeZone'); END`:                   false,
	} {
		if got := changesPath(code); got != want {
			t.Errorf("changesPath(%q) = %v, want %v", code, got, want)
		}
	}
}
