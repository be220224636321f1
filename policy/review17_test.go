package policy

import "testing"

// TestOnErrorNullUnquoted (review 17a): `on_error: null`, as the docs
// write it, is a YAML null to the parser; it must still mean "read a
// value that does not open as NULL", not fall back to the default
// (error). An empty `on_error:` stays the default.
func TestOnErrorNullUnquoted(t *testing.T) {
	for _, c := range []struct {
		val  string
		want OnError
	}{
		{"null", OnErrorNull},
		{"Null", OnErrorNull},
		{"NULL", OnErrorNull},
		{"~", OnErrorNull},
		{`"null"`, OnErrorNull},
		{"'null'", OnErrorNull},
		{"error", OnErrorError},
		{"", OnErrorError},
	} {
		src := tablesPreamble + "tables:\n  users:\n    columns:\n      email:\n        type: text\n        on_error: " + c.val + "\n"
		cfg, err := LoadBytes("t.yaml", []byte(src), env(map[string]string{"K": "x"}))
		if err != nil {
			t.Fatalf("on_error: %s: %v", c.val, err)
		}
		if got := cfg.Table("public", "users").Column("email").OnError; got != c.want {
			t.Errorf("on_error: %s parsed as %q, want %q", c.val, got, c.want)
		}
	}
}
