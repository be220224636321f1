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

// TestReview20fCallsAnyOperator: a BEGIN ATOMIC body using an operator
// over a path function calls it (:opfuncid), not an unrelated funcid.
func TestReview20fCallsAnyOperator(t *testing.T) {
	ids := map[uint32]bool{41000: true}
	for nodes, want := range map[string]bool{
		`({OPEXPR :opno 41001 :opfuncid 41000 :opresulttype 16})`: true,
		`({FUNCEXPR :funcid 41000 :funcresulttype 23})`:           true,
		`({FUNCEXPR :funcid 2078 :funcresulttype 25})`:            false,
		`({OPEXPR :opno 96 :opfuncid 65 :opresulttype 16})`:       false,
	} {
		if got := callsAny(nodes, ids); got != want {
			t.Errorf("callsAny(%q) = %v, want %v", nodes, got, want)
		}
	}
}

// TestReview20fCallsAnyAggregate: aggregates and window functions are
// called by :aggfnoid and :winfnoid.
func TestReview20fCallsAnyAggregate(t *testing.T) {
	ids := map[uint32]bool{41000: true}
	for nodes, want := range map[string]bool{
		`({AGGREF :aggfnoid 41000 :aggtype 23})`:               true,
		`({WINDOWFUNC :winfnoid 41000 :wintype 23})`:           true,
		`({AGGREF :aggfnoid 2147 :aggtype 20})`:                false,
		`({CONST :consttype 41000 :constlen 4})`:               false,
		`({FUNCEXPR :funcid 7 :x 1} {AGGREF :aggfnoid 41000})`: true,
	} {
		if got := callsAny(nodes, ids); got != want {
			t.Errorf("callsAny(%q) = %v, want %v", nodes, got, want)
		}
	}
}
