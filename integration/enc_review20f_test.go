package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestReview20fSettingChangedIndirectly: code that changes the DateStyle
// (set_config in a view, a CHECK, a trigger) reached through another
// relation: a view over such a view, a trigger on another table that
// writes to one, a function whose code reads one, a partition of the
// table written, a table an ON DELETE CASCADE reaches. The rows printed
// beside it are printed DMY, and a value moved from another tenant's row
// must not open.
func TestReview20fSettingChangedIndirectly(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"dt", "date"}, {"f8", "float8"}}
	e := newOpsEnv(t, "enc_review20f_ind", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{
		`CREATE VIEW v20f_dmy AS SELECT set_config('DateStyle', 'SQL, DMY', false) AS s`,
		`CREATE VIEW v20f_outer AS SELECT s FROM v20f_dmy`,
		`CREATE FUNCTION f20f_reads() RETURNS text LANGUAGE sql AS $$SELECT s FROM v20f_dmy$$`,
		`CREATE TABLE t20f_chk (id int CHECK (set_config('DateStyle', 'SQL, DMY', false) IS NOT NULL))`,
		`CREATE TABLE t20f_a (id int)`,
		`CREATE FUNCTION f20f_trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO t20f_chk VALUES (NEW.id); RETURN NEW; END$$`,
		`CREATE TRIGGER t20f_trg BEFORE INSERT ON t20f_a FOR EACH ROW EXECUTE FUNCTION f20f_trg()`,
		`CREATE TABLE t20f_p (id int) PARTITION BY RANGE (id)`,
		`CREATE TABLE t20f_p1 PARTITION OF t20f_p FOR VALUES FROM (0) TO (10)`,
		`ALTER TABLE t20f_p1 ADD CHECK (set_config('DateStyle', 'SQL, DMY', false) IS NOT NULL)`,
		`CREATE TABLE t20f_par (id int PRIMARY KEY)`,
		`CREATE TABLE t20f_ch (pid int REFERENCES t20f_par ON DELETE CASCADE)`,
		`CREATE FUNCTION f20f_deltrg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); RETURN OLD; END$$`,
		`CREATE TRIGGER t20f_deltrg BEFORE DELETE ON t20f_ch FOR EACH ROW EXECUTE FUNCTION f20f_deltrg()`,
		`INSERT INTO t20f_par VALUES (1)`,
		`INSERT INTO t20f_ch VALUES (1)`,
		`CREATE FUNCTION f20f_imm(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); RETURN $1; END$$`,
		`CREATE TABLE t20f_idx (id int)`,
		`CREATE INDEX ON t20f_idx ((f20f_imm(id)))`,
		`CREATE TABLE t20f_par2 (id int PRIMARY KEY)`,
		`CREATE TABLE t20f_ch2 (pid int REFERENCES t20f_par2)`,
		`CREATE FUNCTION f20f_trunc() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); RETURN NULL; END$$`,
		`CREATE TRIGGER t20f_trunc BEFORE TRUNCATE ON t20f_ch2 FOR EACH STATEMENT EXECUTE FUNCTION f20f_trunc()`,
	}, types)
	p := e.proxy(e.config(""))
	review20dMovedRows(t, ctx, e, p)
	for _, q := range []string{
		`SELECT s, secret FROM v20f_outer, r19_dt WHERE id = 3`,
		`SELECT f20f_reads(), secret FROM r19_dt WHERE id = 3`,
		`INSERT INTO t20f_a VALUES (1); SELECT secret FROM r19_dt WHERE id = 3`,
		`INSERT INTO t20f_p VALUES (1); SELECT secret FROM r19_dt WHERE id = 3`,
		`DELETE FROM t20f_par; SELECT secret FROM r19_dt WHERE id = 3`,
		`INSERT INTO t20f_idx VALUES (1); SELECT secret FROM r19_dt WHERE id = 3`,
		`TRUNCATE t20f_par2 CASCADE; SELECT secret FROM r19_dt WHERE id = 3`,
	} {
		c2 := e.appConn(ctx, p)
		if _, err := c2.Exec(ctx, `SET DateStyle = 'SQL, MDY'`); err != nil {
			t.Fatal(err)
		}
		rs, err := c2.PgConn().Exec(ctx, q).ReadAll()
		if err == nil || !strings.Contains(err.Error(), "PV001") {
			t.Errorf("SET DateStyle = 'SQL, MDY', then %s: %v %v; want PV001 (a value moved from another tenant's row)", q, review20bRows(rs), err)
		}
		c2.Close(ctx)
	}
}

// TestReview20fFunctionTimeZoneSettings: a function that sets TimeZone
// through UPDATE pg_settings (its rule calls set_config), called in the
// pipeline of a write whose timestamptz parameter names a date tenant.
// The write must be refused, or read back.
func TestReview20fFunctionTimeZoneSettings(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"d", "date"}}
	e := newOpsEnv(t, "enc_review20f_tzs", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{
		`CREATE FUNCTION f20f_tz() RETURNS int LANGUAGE plpgsql AS $$BEGIN UPDATE pg_settings SET setting = 'Europe/Berlin' WHERE name = 'TimeZone'; RETURN 1; END$$`,
	}, types)
	p := e.proxy(e.config(""))
	w := e.appConn(ctx, p)
	defer w.Close(ctx)
	if _, err := w.Exec(ctx, `SET TimeZone = 'UTC'`); err != nil {
		t.Fatal(err)
	}
	b := &pgconn.Batch{}
	b.ExecParams(`SELECT f20f_tz()`, nil, nil, nil, nil)
	b.ExecParams(`INSERT INTO r19_d (id, org, secret) VALUES (1, $1, $2)`, [][]byte{[]byte("2026-01-01 23:30:00+00"), []byte("tz")}, []uint32{1184, 25}, []int16{0, 0}, nil)
	if _, err := w.PgConn().ExecBatch(ctx, b).ReadAll(); err != nil {
		t.Logf("refused: %v", err)
		return
	}
	r := e.appConn(ctx, p)
	defer r.Close(ctx)
	if err := review19cReads(ctx, r, "r19_d", 1, "tz"); err != nil {
		t.Errorf("written after a function set TimeZone through pg_settings, does not read back: %v", err)
	}
}

// TestReview20fEventTrigger: an event trigger whose function sets the
// DateStyle fires at the end of any DDL statement: the rows printed
// after it in the same string are printed DMY, and a value moved from
// another tenant's row must not open.
func TestReview20fEventTrigger(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"dt", "date"}, {"f8", "float8"}}
	e := newOpsEnv(t, "enc_review20f_evt", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{
		`CREATE FUNCTION f20f_evt() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); END$$`,
		`CREATE EVENT TRIGGER e20f ON ddl_command_end EXECUTE FUNCTION f20f_evt()`,
		`CREATE TABLE t20f_e0 (id int)`,
	}, types)
	p := e.proxy(e.config(""))
	review20dMovedRows(t, ctx, e, p)
	for i, q := range []string{
		`CREATE TABLE t20f_e1 (id int); SELECT secret FROM r19_dt WHERE id = 3`,
		`COMMENT ON TABLE r19_f8 IS 'x'; SELECT secret FROM r19_dt WHERE id = 3`,
		`SELECT 1 AS x INTO t20f_e2; SELECT secret FROM r19_dt WHERE id = 3`,
	} {
		c2 := e.appConn(ctx, p)
		if _, err := c2.Exec(ctx, `SET DateStyle = 'SQL, MDY'`); err != nil {
			t.Fatal(err)
		}
		rs, err := c2.PgConn().Exec(ctx, q).ReadAll()
		if err == nil || !strings.Contains(err.Error(), "PV001") {
			t.Errorf("%d: SET DateStyle = 'SQL, MDY', then %s: %v %v; want PV001 (a value moved from another tenant's row)", i, q, review20bRows(rs), err)
		}
		c2.Close(ctx)
	}
	// Writes and reads fire no event trigger: the rows beside them open.
	c3 := e.appConn(ctx, p)
	defer c3.Close(ctx)
	if _, err := c3.Exec(ctx, `SET DateStyle = 'SQL, MDY'`); err != nil {
		t.Fatal(err)
	}
	rs, err := c3.PgConn().Exec(ctx, `INSERT INTO t20f_e0 VALUES (1); WITH x AS (SELECT 1) SELECT * FROM x; SELECT secret FROM r19_dt WHERE id = 1`).ReadAll()
	if err != nil || !strings.Contains(fmt.Sprint(review20bRows(rs)), "dt-1") {
		t.Errorf("INSERT, WITH …, SELECT beside an event trigger: %v %v; want dt-1", review20bRows(rs), err)
	}
}

// TestReview20fTransactionEndTimeZone: the end of a transaction undoes
// SET LOCAL TimeZone (and ROLLBACK undoes SET): in the pipeline of a
// write whose timestamptz parameter names a date tenant, the server
// converts in the zone restored while pgveil took the session for the
// UTC it last reported. The write must be refused, or read back.
func TestReview20fTransactionEndTimeZone(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"d", "date"}}
	e := newOpsEnv(t, "enc_review20f_txtz", review19cPolicy(types))
	review19cSetup(t, ctx, e, nil, types)
	p := e.proxy(e.config(""))
	for i, c := range []struct{ before, end string }{
		{`SET TimeZone = 'Europe/Berlin'; BEGIN; SET LOCAL TimeZone = 'UTC'`, `COMMIT`},
		{`SET TimeZone = 'Europe/Berlin'; BEGIN; SET TimeZone = 'UTC'`, `ROLLBACK`},
		{`SET TimeZone = 'Europe/Berlin'; BEGIN; SAVEPOINT s; SET TimeZone = 'UTC'`, `ROLLBACK TO SAVEPOINT s`},
	} {
		w := e.appConn(ctx, p)
		if _, err := w.PgConn().Exec(ctx, c.before).ReadAll(); err != nil {
			t.Fatal(err)
		}
		b := &pgconn.Batch{}
		b.ExecParams(c.end, nil, nil, nil, nil)
		b.ExecParams(`INSERT INTO r19_d (id, org, secret) VALUES ($3, $1, $2)`, [][]byte{[]byte("2026-01-01 23:30:00+00"), []byte("tz"), []byte(fmt.Sprint(i + 1))}, []uint32{1184, 25, 23}, []int16{0, 0, 0}, nil)
		b.ExecParams(`COMMIT`, nil, nil, nil, nil)
		_, err := w.PgConn().ExecBatch(ctx, b).ReadAll()
		w.Close(ctx)
		if err != nil {
			t.Logf("%s: refused: %v", c.end, err)
			continue
		}
		r := e.appConn(ctx, p)
		if err := review19cReads(ctx, r, "r19_d", i+1, "tz"); err != nil {
			t.Errorf("written after %s; %s, does not read back: %v", c.before, c.end, err)
		}
		r.Close(ctx)
	}
	// A block in a session whose UTC was answered outside one still writes.
	w := e.appConn(ctx, p)
	defer w.Close(ctx)
	if _, err := w.PgConn().Exec(ctx, `SET TimeZone = 'UTC'; BEGIN; SET LOCAL TimeZone = 'UTC'; COMMIT`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	b := &pgconn.Batch{}
	b.ExecParams(`BEGIN`, nil, nil, nil, nil)
	b.ExecParams(`INSERT INTO r19_d (id, org, secret) VALUES (10, $1, $2)`, [][]byte{[]byte("2026-01-01 23:30:00+00"), []byte("tz")}, []uint32{1184, 25}, []int16{0, 0}, nil)
	b.ExecParams(`COMMIT`, nil, nil, nil, nil)
	if _, err := w.PgConn().ExecBatch(ctx, b).ReadAll(); err != nil {
		t.Fatalf("BEGIN; INSERT; COMMIT in a UTC session: %v", err)
	}
	if err := review19cReads(ctx, w, "r19_d", 10, "tz"); err != nil {
		t.Error(err)
	}
}

// TestReview20fOperatorAggregate: an operator or an aggregate whose
// function sets the DateStyle, used by a statement (or a view) that names
// the operator or aggregate, not the function: the rows printed beside it
// are printed DMY, and a value moved from another tenant's row must not
// open.
func TestReview20fOperatorAggregate(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"dt", "date"}, {"f8", "float8"}}
	e := newOpsEnv(t, "enc_review20f_op", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{
		`CREATE FUNCTION f20f_op(int, int) RETURNS bool LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); RETURN true; END$$`,
		`CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = f20f_op)`,
		`CREATE FUNCTION f20f_sf(int, int) RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); RETURN 1; END$$`,
		`CREATE AGGREGATE a20f(int) (SFUNC = f20f_sf, STYPE = int)`,
		`CREATE VIEW v20f_op AS SELECT 1 === 1 AS b`,
		`CREATE VIEW v20f_agg AS SELECT a20f(1) AS n`,
	}, types)
	p := e.proxy(e.config(""))
	review20dMovedRows(t, ctx, e, p)
	for _, q := range []string{
		`SELECT 1 === 1, secret FROM r19_dt WHERE id = 3`,
		`SELECT a20f(1); SELECT secret FROM r19_dt WHERE id = 3`,
		`SELECT b, secret FROM v20f_op, r19_dt WHERE id = 3`,
		`SELECT n, secret FROM v20f_agg, r19_dt WHERE id = 3`,
	} {
		c2 := e.appConn(ctx, p)
		if _, err := c2.Exec(ctx, `SET DateStyle = 'SQL, MDY'`); err != nil {
			t.Fatal(err)
		}
		rs, err := c2.PgConn().Exec(ctx, q).ReadAll()
		if err == nil || !strings.Contains(err.Error(), "PV001") {
			t.Errorf("SET DateStyle = 'SQL, MDY', then %s: %v %v; want PV001 (a value moved from another tenant's row)", q, review20bRows(rs), err)
		}
		c2.Close(ctx)
	}
}

// TestReview20fCursorFetch: a cursor whose query calls a function that
// sets the DateStyle runs it at FETCH, not at DECLARE: the rows fetched
// are printed DMY, and a value moved from another tenant's row must not
// open (a cursor a function opened is not decrypted at all).
func TestReview20fCursorFetch(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"dt", "date"}, {"f8", "float8"}}
	e := newOpsEnv(t, "enc_review20f_cur", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{
		`CREATE FUNCTION f20f_dmy() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); RETURN 1; END$$`,
		`CREATE VIEW v20f_dmy AS SELECT set_config('DateStyle', 'SQL, DMY', false) AS s`,
		`CREATE FUNCTION f20f_open() RETURNS refcursor LANGUAGE plpgsql AS $$DECLARE r refcursor := 'c'; BEGIN OPEN r FOR SELECT s, secret FROM v20f_dmy, r19_dt WHERE id = 3; RETURN r; END$$`,
	}, types)
	p := e.proxy(e.config(""))
	review20dMovedRows(t, ctx, e, p)
	for _, decl := range []string{
		`DECLARE c CURSOR FOR SELECT f20f_dmy(), secret FROM r19_dt WHERE id = 3`,
		`DECLARE c CURSOR FOR SELECT s, secret FROM v20f_dmy, r19_dt WHERE id = 3`,
		`SELECT f20f_open()`,
	} {
		c2 := e.appConn(ctx, p)
		if _, err := c2.PgConn().Exec(ctx, `SET DateStyle = 'SQL, MDY'; BEGIN; `+decl).ReadAll(); err != nil {
			t.Fatal(err)
		}
		rs, err := c2.PgConn().Exec(ctx, `FETCH ALL FROM c`).ReadAll()
		if strings.Contains(fmt.Sprint(review20bRows(rs)), "dt-2") {
			t.Errorf("SET DateStyle = 'SQL, MDY'; %s, then FETCH: %v %v; want PV001 (a value moved from another tenant's row)", decl, review20bRows(rs), err)
		}
		c2.Close(ctx)
		// The same through the extended protocol.
		c3 := e.appConn(ctx, p)
		if _, err := c3.PgConn().Exec(ctx, `SET DateStyle = 'SQL, MDY'; BEGIN; `+decl).ReadAll(); err != nil {
			t.Fatal(err)
		}
		r := c3.PgConn().ExecParams(ctx, `FETCH ALL FROM c`, nil, nil, nil, nil).Read()
		if strings.Contains(fmt.Sprintf("%q", r.Rows), "dt-2") {
			t.Errorf("SET DateStyle = 'SQL, MDY'; %s, then FETCH (extended): %q %v; want PV001", decl, r.Rows, r.Err)
		}
		c3.Close(ctx)
	}
}

// TestReview20fSpelledTimeZone: a TimeZone change whose text does not
// spell "zone" (an E'…' escape in set_config's name, a U&"…" name in
// SET), pipelined with a write whose timestamptz parameter names a date
// tenant: the server converts in the new zone. The write must be
// refused, or read back.
func TestReview20fSpelledTimeZone(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"d", "date"}}
	e := newOpsEnv(t, "enc_review20f_sptz", review19cPolicy(types))
	review19cSetup(t, ctx, e, nil, types)
	p := e.proxy(e.config(""))
	for i, change := range []string{
		`SELECT set_config(E'TimeZ\157ne', 'Europe/Berlin', false)`,
		`SET U&"time\007Aone" = 'Europe/Berlin'`,
	} {
		w := e.appConn(ctx, p)
		if _, err := w.Exec(ctx, `SET TimeZone = 'UTC'`); err != nil {
			t.Fatal(err)
		}
		b := &pgconn.Batch{}
		b.ExecParams(change, nil, nil, nil, nil)
		b.ExecParams(`INSERT INTO r19_d (id, org, secret) VALUES ($3, $1, $2)`, [][]byte{[]byte("2026-01-01 23:30:00+00"), []byte("tz"), []byte(fmt.Sprint(i + 1))}, []uint32{1184, 25, 23}, []int16{0, 0, 0}, nil)
		_, err := w.PgConn().ExecBatch(ctx, b).ReadAll()
		w.Close(ctx)
		if err != nil {
			t.Logf("%s: refused: %v", change, err)
			continue
		}
		r := e.appConn(ctx, p)
		if err := review19cReads(ctx, r, "r19_d", i+1, "tz"); err != nil {
			t.Errorf("written after %s, does not read back: %v", change, err)
		}
		r.Close(ctx)
	}
}

// TestReview20fWriteAfterDateStyleChange: a date tenant written as text
// right after a statement that changes the DateStyle (a function, an
// EXECUTE, a view), in the same string or pipeline: PostgreSQL reads
// '01/02/2026' in the new order. The write must be refused, or read back.
func TestReview20fWriteAfterDateStyleChange(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"dt", "date"}}
	e := newOpsEnv(t, "enc_review20f_wds", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{
		`CREATE FUNCTION f20f_dmy() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); RETURN 1; END$$`,
		`CREATE VIEW v20f_dmy AS SELECT set_config('DateStyle', 'SQL, DMY', false) AS s`,
		`CREATE VIEW v20f_outer AS SELECT s FROM v20f_dmy`,
	}, types)
	p := e.proxy(e.config(""))
	for i, change := range []string{
		`SELECT f20f_dmy()`,
		`SELECT * FROM v20f_outer`,
		`SELECT set_config('DateStyle', 'SQL, DMY', false)`,
	} {
		w := e.appConn(ctx, p)
		if _, err := w.Exec(ctx, `SET DateStyle = 'SQL, MDY'`); err != nil {
			t.Fatal(err)
		}
		ins := fmt.Sprintf(`INSERT INTO r19_dt (id, org, secret) VALUES (%d, '01/02/2026', 'w')`, i+1)
		_, err := w.PgConn().Exec(ctx, change+"; "+ins).ReadAll()
		if err == nil {
			b := &pgconn.Batch{}
			b.ExecParams(change, nil, nil, nil, nil)
			b.ExecParams(fmt.Sprintf(`INSERT INTO r19_dt (id, org, secret) VALUES (%d, $1, 'w')`, i+11), [][]byte{[]byte("01/02/2026")}, []uint32{25}, []int16{0}, nil)
			w.Exec(ctx, `SET DateStyle = 'SQL, MDY'`)
			if _, err2 := w.PgConn().ExecBatch(ctx, b).ReadAll(); err2 == nil {
				r := e.appConn(ctx, p)
				if err := review19cReads(ctx, r, "r19_dt", i+11, "w"); err != nil {
					t.Errorf("written pipelined after %s, does not read back: %v", change, err)
				}
				r.Close(ctx)
			}
		}
		w.Close(ctx)
		if err != nil {
			t.Logf("%s: refused: %v", change, err)
			continue
		}
		r := e.appConn(ctx, p)
		if err := review19cReads(ctx, r, "r19_dt", i+1, "w"); err != nil {
			t.Errorf("written after %s, does not read back: %v", change, err)
		}
		r.Close(ctx)
	}
}

// TestReview20fCopyAfterDateStyleChange: COPY … TO STDOUT right after a
// statement that changes the DateStyle, in the same string: the tenant
// column is printed DMY, and a value moved from another tenant's row
// must not open.
func TestReview20fCopyAfterDateStyleChange(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"dt", "date"}, {"f8", "float8"}}
	e := newOpsEnv(t, "enc_review20f_copy", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{
		`CREATE FUNCTION f20f_dmy() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); RETURN 1; END$$`,
		`CREATE VIEW v20f_dmy AS SELECT set_config('DateStyle', 'SQL, DMY', false) AS s`,
		`CREATE VIEW v20f_outer AS SELECT s FROM v20f_dmy`,
	}, types)
	p := e.proxy(e.config(""))
	review20dMovedRows(t, ctx, e, p)
	for _, q := range []string{
		`SELECT f20f_dmy(); COPY (SELECT id, org, secret FROM r19_dt WHERE id = 3) TO STDOUT`,
		`SELECT * FROM v20f_outer; COPY r19_dt (id, org, secret) TO STDOUT`,
		`COPY (SELECT s, id, org, secret FROM v20f_outer, r19_dt WHERE id = 3) TO STDOUT`,
	} {
		c2 := e.appConn(ctx, p)
		if _, err := c2.Exec(ctx, `SET DateStyle = 'SQL, MDY'`); err != nil {
			t.Fatal(err)
		}
		var buf strings.Builder
		_, err := c2.PgConn().CopyTo(ctx, &buf, q)
		t.Logf("%s: %q %v", q, buf.String(), err)
		for _, line := range strings.Split(buf.String(), "\n") {
			if strings.HasPrefix(line, "3\t") && strings.HasSuffix(line, "\tdt-2") || strings.Contains(line, "\t3\t") && strings.HasSuffix(line, "\tdt-2") {
				t.Errorf("SET DateStyle = 'SQL, MDY', then %s: %q: a value moved from another tenant's row opened", q, line)
			}
		}
		c2.Close(ctx)
	}
}

// TestReview20fPreparedBeforeCodeChange: a statement prepared while the
// function it calls changed no setting, run after the function was
// replaced (through pgveil, which reads the catalog again) by one that
// sets the DateStyle: its rows are printed DMY, and a value moved from
// another tenant's row must not open.
func TestReview20fPreparedBeforeCodeChange(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"dt", "date"}, {"f8", "float8"}}
	e := newOpsEnv(t, "enc_review20f_prep", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{
		`CREATE FUNCTION f20f_x() RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN 1; END$$`,
	}, types)
	p := e.proxy(e.config(""))
	review20dMovedRows(t, ctx, e, p)
	a := e.appConn(ctx, p)
	defer a.Close(ctx)
	if _, err := a.Exec(ctx, `SET DateStyle = 'SQL, MDY'`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PgConn().Prepare(ctx, "s20f", `SELECT f20f_x(), secret FROM r19_dt WHERE id = $1`, nil); err != nil {
		t.Fatal(err)
	}
	b := e.appConn(ctx, p)
	if _, err := b.Exec(ctx, `CREATE OR REPLACE FUNCTION f20f_x() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); RETURN 1; END$$`); err != nil {
		t.Fatal(err)
	}
	b.Close(ctx)
	r := a.PgConn().ExecPrepared(ctx, "s20f", [][]byte{[]byte("3")}, nil, nil).Read()
	if strings.Contains(fmt.Sprintf("%q", r.Rows), "dt-2") {
		t.Errorf("prepared before the function changed the DateStyle: %q %v; a value moved from another tenant's row opened", r.Rows, r.Err)
	}
}
