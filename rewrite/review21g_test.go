package rewrite

import "testing"

// TestReview21gCreateNamingExecuteAccepted: CREATE statements that name
// EXECUTE, PREPARE or DEALLOCATE without running a prepared statement are
// accepted as before review 21c parsed them (migration tools' triggers,
// dynamic DDL in PL/pgSQL, messages). Holds except where noted.
func TestReview21gCreateNamingExecuteAccepted(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`CREATE TRIGGER trg BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION touch()`,
		`CREATE TRIGGER trg BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE PROCEDURE touch()`,
		`CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.at := now(); RETURN NEW; END$$`,
		`CREATE OR REPLACE FUNCTION mkpart(d date) RETURNS void LANGUAGE plpgsql AS $$BEGIN EXECUTE format('CREATE TABLE IF NOT EXISTS audit_%s (LIKE audit_log)', to_char(d, 'YYYYMM')); END$$`,
		`CREATE FUNCTION prepare_order(i int) RETURNS int LANGUAGE sql AS 'SELECT i + 1'`,
		`CREATE PROCEDURE run_batch() LANGUAGE plpgsql AS $$BEGIN EXECUTE 'ANALYZE audit_log'; RAISE NOTICE 'execute done'; END$$`,
	} {
		if _, err := p.Plan(sql, publicPath); err != nil {
			t.Errorf("%s: refused: %v", sql, err)
		}
	}
}

// TestReview21gFunctionExecuteAfterRaiseRefused: a RAISE message is
// skipped, the EXECUTE of a prepared statement after it is not.
func TestReview21gFunctionExecuteAfterRaiseRefused(t *testing.T) {
	p := newTestPlanner(t)
	for _, sql := range []string{
		`CREATE PROCEDURE r() LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE 'execute'; EXECUTE 'EXECUTE ins(1, ''x'')'; END$$`,
		`CREATE PROCEDURE r() LANGUAGE plpgsql AS $$BEGIN RAISE 'x'; EXECUTE format('EXECUTE ins(%s)', 1); END$$`,
	} {
		if _, err := p.Plan(sql, publicPath); err == nil {
			t.Errorf("%s: accepted", sql)
		}
	}
}
