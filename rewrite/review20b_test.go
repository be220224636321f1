package rewrite

import "testing"

// TestReview20bMayChangeSettings: the statements after which the proxy
// does not know the DateStyle order until the server answers, and
// extra_float_digits until it asks again.
func TestReview20bMayChangeSettings(t *testing.T) {
	p := newTestPlanner(t)
	for _, c := range []struct {
		sql       string
		ds, float bool
	}{
		{`SET DateStyle = 'SQL, DMY'`, true, false},
		{`SET LOCAL "datestyle" TO German`, true, false},
		{`RESET DateStyle`, true, false},
		{`RESET ALL`, true, true},
		{`DISCARD ALL`, true, true},
		{`DEALLOCATE ALL`, false, false},
		{`BEGIN`, true, false},
		{`ROLLBACK`, true, false},
		{`ROLLBACK TO SAVEPOINT a`, true, false},
		{`COMMIT`, true, false},
		{`SELECT set_config(E'date\x73tyle', 'SQL, DMY', false)`, true, true},
		{`SET extra_float_digits = 0`, false, true},
		{`SET extra_float_digits TO DEFAULT`, false, true},
		{`DO $$BEGIN PERFORM 1; END$$`, true, true},
		{`CALL p()`, true, true},
		{`SET U&"d\0061testyle" = 'SQL'`, true, true},
		{`SELECT 1`, false, false},
		{`SET TimeZone = 'UTC'`, false, false},
		{`SET application_name = 'x'`, false, false},
	} {
		plan, err := p.Plan(c.sql, Session{SearchPath: []string{"public"}})
		if err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		var ds, float bool
		for _, st := range plan.Stmts {
			ds = ds || st.MayChangeDateStyle()
			float = float || st.MayChangeFloatDigits()
		}
		if ds != c.ds || float != c.float {
			t.Errorf("%s: DateStyle %v, extra_float_digits %v; want %v, %v", c.sql, ds, float, c.ds, c.float)
		}
	}
}
