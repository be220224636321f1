package rewrite

import (
	"fmt"
	"testing"
)

func TestPrecheck(t *testing.T) {
	pc := newPrecheck(testConfig(t).TableNames())
	for sql, want := range map[string]bool{
		"SELECT * FROM users":                        true,
		"select * from USERS":                        true,
		`SELECT * FROM "Users"`:                      true, // parsed, then resolved exactly
		`SELECT * FROM public."users"`:               true,
		"SELECT * FROM app_users_archive":            true, // substring: parsed, then found not configured
		`SELECT * FROM U&"\0075sers"`:                true, // Unicode escapes are always parsed
		"SELECT U&'x'":                               true,
		"SELECT * FROM orders":                       false,
		"SELECT 1":                                   false,
		"":                                           false,
		"SELECT * FROM accounts":                     true,
		"SELECT * FROM contact":                      false,
		"SELECT 'contacts are in the string'":        true,
		"SELECT 1 -- users in a comment":             true,
		"INSERT INTO orders (id) VALUES ($1)":        false,
		"SELECT * FROM orders o JOIN customers c":    false,
		"SELECT u&'ok'":                              true,
		"SELECT * FROM app_user WHERE email = $1":    true,
		"UPDATE line_items SET qty = 1 WHERE id = 2": false,
	} {
		if got := pc.mayReference(sql); got != want {
			t.Errorf("%q: got %v, want %v", sql, got, want)
		}
	}
}

func TestPrecheckQuotedNames(t *testing.T) {
	// A configured name holding a double quote is also searched doubled,
	// as it is written inside a quoted identifier.
	pc := newPrecheck([]string{`we"ird`})
	if !pc.mayReference(`SELECT * FROM "we""ird"`) || !pc.mayReference(`SELECT 'we"ird'`) {
		t.Fatal("quoted forms not found")
	}
	if pc.mayReference(`SELECT * FROM weird`) {
		t.Fatal("false positive")
	}
}

func TestFastStmtKinds(t *testing.T) {
	for sql, want := range map[string]Kind{
		"SELECT 1":                    KindSelect,
		"  insert into t values (1)":  KindInsert,
		"/* c */ UPDATE t SET a = 1;": KindUpdate,
		"delete from t":               KindDelete,
		"BEGIN":                       KindTransaction,
		"CREATE TABLE t (a int)":      KindDDL,
		"VACUUM t":                    KindOther,
		"WITH x AS (SELECT 1) SELECT": KindOther,
	} {
		st, ok := fastStmt(sql)
		if !ok || st.Kind != want {
			t.Errorf("%q: kind %v ok=%v, want %v", sql, st.Kind, ok, want)
		}
	}
	// These must be parsed: several statements, or session state the proxy tracks.
	for _, sql := range []string{"SELECT 1; SELECT 2", "SET search_path = x", "SET SCHEMA 'x'", "SET statement_timeout = 0", "RESET ALL", "DISCARD ALL", "DEALLOCATE x", "SELECT set_config('a', 'b', false)", "PREPARE p AS SELECT 1"} {
		if _, ok := fastStmt(sql); ok {
			t.Errorf("%q planned without parsing", sql)
		}
	}
	st, _ := fastStmt("  SELECT 1 ;  ")
	if st.Original != "SELECT 1" || st.OriginalStart != 2 {
		t.Fatalf("Original %q at %d", st.Original, st.OriginalStart)
	}
}

func TestPlanOfSessionStatementsWithoutTables(t *testing.T) {
	p := newTestPlanner(t)
	for sql, check := range map[string]func(*Stmt) bool{
		"SET search_path TO app, public":      func(s *Stmt) bool { return len(s.SearchPath) == 2 && s.SearchPath[0] == "app" },
		"SET LOCAL search_path = 'My Schema'": func(s *Stmt) bool { return s.SearchPathLocal && s.SearchPath[0] == "My Schema" },
		"SET SCHEMA 'audit'":                  func(s *Stmt) bool { return s.SearchPath[0] == "audit" },
		"SET search_path TO DEFAULT":          func(s *Stmt) bool { return s.SearchPathReset },
		"RESET search_path":                   func(s *Stmt) bool { return s.SearchPathReset },
		"RESET ALL":                           func(s *Stmt) bool { return s.SearchPathReset },
		"RESET statement_timeout":             func(s *Stmt) bool { return !s.SearchPathReset && s.Kind == KindSet },
		"SET statement_timeout = 0":           func(s *Stmt) bool { return s.SearchPath == nil && s.Kind == KindSet },
		"DEALLOCATE ALL":                      func(s *Stmt) bool { return s.Deallocate == "*" && s.Kind == KindDeallocate },
		"DEALLOCATE PREPARE s1":               func(s *Stmt) bool { return s.Deallocate == "s1" },
		"DISCARD ALL":                         func(s *Stmt) bool { return s.Deallocate == "*" && s.SearchPathReset },
		"DISCARD PLANS":                       func(s *Stmt) bool { return s.Deallocate == "" },
		`SELECT pg_catalog.set_config('search_path', '', false)`: func(s *Stmt) bool { return s.SearchPath != nil && len(s.SearchPath) == 0 },
		`SELECT set_config('search_path', 'a, "B c", D', true)`: func(s *Stmt) bool {
			return s.SearchPathLocal && len(s.SearchPath) == 3 && s.SearchPath[1] == "B c" && s.SearchPath[2] == "d"
		},
		`SELECT set_config('statement_timeout', '5s', false)`: func(s *Stmt) bool { return s.SearchPath == nil },
		"BEGIN ISOLATION LEVEL SERIALIZABLE":                  func(s *Stmt) bool { return s.Kind == KindTransaction },
		"CREATE TABLE orders (id int)":                        func(s *Stmt) bool { return s.Kind == KindDDL },
		"ALTER TABLE orders ADD COLUMN x int":                 func(s *Stmt) bool { return s.Kind == KindDDL },
		"COMMENT ON TABLE orders IS 'x'":                      func(s *Stmt) bool { return s.Kind == KindDDL },
		"ALTER TABLE orders RENAME TO orders_old":             func(s *Stmt) bool { return s.Kind == KindDDL },
	} {
		plan, err := p.Plan(sql, publicPath)
		if err != nil {
			t.Errorf("%s: %v", sql, err)
			continue
		}
		if len(plan.Stmts) != 1 || !check(plan.Stmts[0]) || plan.Rewritten {
			t.Errorf("%s: %+v", sql, plan.Stmts[0])
		}
	}
}

func TestPrecheckShortNames(t *testing.T) {
	pc := newPrecheck([]string{"t", "ab"})
	for sql, want := range map[string]bool{"SELECT * FROM t": true, "x": false, "T": true, "SELECT 1": true /* t in SELECT */, "a": false, "xAB": true, "": false} {
		if got := pc.mayReference(sql); got != want {
			t.Errorf("%q: got %v, want %v", sql, got, want)
		}
	}
}

// TestPrecheckDropsContainedNeedles: names that contain another needle
// (partitions named after their table) add nothing to the search, and
// every name is still found.
func TestPrecheckDropsContainedNeedles(t *testing.T) {
	names := []string{"events", "q3_archive"}
	for i := 0; i < 500; i++ {
		names = append(names, fmt.Sprintf("events_2025_%03d", i))
	}
	p := newPrecheck(names)
	if len(p.names) != 3 { // u&, events, q3_archive
		t.Fatalf("%d needles: %q", len(p.names), p.names)
	}
	for _, s := range []string{"SELECT * FROM Events_2025_017", "insert into q3_ARCHIVE values (1)", "select 1 from events"} {
		if !p.mayReference(s) {
			t.Errorf("%s: not found", s)
		}
	}
	if p.mayReference("SELECT level FROM event_log") {
		t.Error("unrelated text matched")
	}
}
