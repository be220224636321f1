package proxy

import "testing"

func TestChangesPath(t *testing.T) {
	for code, want := range map[string]bool{
		`BEGIN PERFORM set_config('search_path', s, false); END`:         true,
		`BEGIN PERFORM set_config('app.tenant', t, false); END`:          false,
		`SELECT set_config ( 'app.user_id', $1::text, true )`:            false,
		`BEGIN PERFORM set_config(name, value, false); END`:              true, // not a literal
		`BEGIN PERFORM set_config('ROLE', r, false); END`:                true, // changes "$user"
		`BEGIN PERFORM set_config('a''b', t, false); END`:                false,
		`BEGIN EXECUTE 'SET search_path TO ' || quote_ident(s); END`:     true,
		`BEGIN PERFORM set_config('search_' || 'path', 'x', false); END`: true,
		`SELECT 1`: false,
		`BEGIN PERFORM set_config('app.x', 'a', false); PERFORM set_config(v, 'b', false); END`: true,
		// SET ROLE and the like change "$user" and whose readers see a
		// column (review of the extended protocol and session state).
		`BEGIN SET ROLE analyst; END`:                        true,
		`BEGIN set  local role analyst; END`:                 true,
		"BEGIN RESET\n ROLE; END":                            true,
		`BEGIN SET SESSION AUTHORIZATION bob; END`:           true,
		`BEGIN RESET ALL; END`:                               true,
		`BEGIN PERFORM 1; END -- the role of the offset`:     false,
		`SELECT rolname FROM pg_roles WHERE rolname = 'set'`: false,
	} {
		if got := changesPath(code); got != want {
			t.Errorf("changesPath(%q) = %v, want %v", code, got, want)
		}
	}
}
