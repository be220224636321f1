package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/integration/harness"
)

// TestReview20dDeclaredTypeTenant: a parameter declared as a type pgveil
// does not mirror (interval, money, point, float8[], oid, …) for a
// key_context column named by its stored text (citext, a domain over
// text or varchar, a domain over citext) is assigned by PostgreSQL
// through that type's input and output ('1 day 2 hours' is stored as
// '1 day 02:00:00', 1000 as '$1,000.00', '{ 0.3 }' as '{0.3}'); pgveil
// named the tenant as written, and the row opened in no session. Each
// such write must be refused, or read back.
func TestReview20dDeclaredTypeTenant(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"ci", "citext"}, {"dtx", "d20_text"}, {"dvc", "d20_vc"}, {"dci", "d20_ci"},
		{"ch", "char(40)"}, {"nm", "name"}, {"tx", "text"}, {"en", "d20_mood"}}
	e := newOpsEnv(t, "review20d_declared", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{`CREATE EXTENSION citext`, `CREATE DOMAIN d20_text AS text`,
		`CREATE DOMAIN d20_vc AS varchar(40)`, `CREATE DOMAIN d20_ci AS citext`,
		`CREATE TYPE d20_mood AS ENUM ('1 day 2 hours', '1.50', 'true')`}, types)
	p := e.proxy(e.config(""))
	var writes []review19cWrite
	for _, ty := range types {
		table := "r19_" + ty.name
		for _, w := range []review19cWrite{
			{param: []byte("1 day 2 hours"), oid: 1186},     // interval
			{param: []byte("1000"), oid: 790},               // money
			{param: []byte("( 1 , 2 )"), oid: 600},          // point
			{param: []byte("{ 0.5 , 1e1 }"), oid: 1022},     // float8[]
			{param: []byte("{ 007 }"), oid: 1007},           // int4[]
			{param: []byte("0042"), oid: 26},                // oid
			{param: []byte("10.0.0.1/32"), oid: 869},        // inet
			{param: []byte("[1,5)"), oid: 3904},             // int4range
			{param: []byte("x"), oid: 18},                   // "char"
			{param: []byte("010:00"), oid: 1083},            // time
			{param: []byte("1.50"), oid: 1700},              // numeric: stored 1.50
			{param: []byte("t"), oid: 16},                   // bool: stored true
			{param: []byte("0007"), oid: 20},                // int8
			{param: []byte(`{"b": 1,  "a": 2}`), oid: 3802}, // jsonb
			{param: []byte(` {"a":1} `), oid: 114},          // json
			{param: []byte("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), oid: 2950},
		} {
			w.table = table
			writes = append(writes, w)
		}
	}
	// The domain's base, declared by its own OID, is still accepted.
	var ciOID, moodOID uint32
	if err := e.conn(ctx).QueryRow(ctx, `SELECT 'citext'::regtype::oid, 'd20_mood'::regtype::oid`).Scan(&ciOID, &moodOID); err != nil {
		t.Fatal(err)
	}
	writes = append(writes, review19cWrite{table: "r19_dci", param: []byte("AbC "), oid: ciOID},
		review19cWrite{table: "r19_ci", param: []byte("AbC "), oid: ciOID},
		review19cWrite{table: "r19_en", param: []byte("1.50"), oid: moodOID})
	id := 0
	review19cCheck(t, ctx, func() *pgx.Conn { return e.appConn(ctx, p) }, &id, writes)
}

// TestReview20dLiteralTenantForms: literal tenant values of other types
// for key_context columns named by their text: each write pgveil accepts
// must read back.
func TestReview20dLiteralTenantForms(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"ci", "citext"}, {"ch", "char(40)"}, {"nm", "name"}, {"tx", "text"}, {"vc", "varchar(40)"}, {"dtx", "d20_text"},
		{"dnm", "d20_name"}, {"dci", "d20_ci"}}
	e := newOpsEnv(t, "review20d_literal", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{`CREATE EXTENSION citext`, `CREATE DOMAIN d20_text AS text`,
		`CREATE DOMAIN d20_name AS name`, `CREATE DOMAIN d20_ci AS citext`}, types)
	p := e.proxy(e.config(""))
	var writes []review19cWrite
	for _, ty := range types {
		for _, lit := range []string{`true`, `FALSE`, ` True `, `1.50`, `1e2`, `-0.0`, `interval '1 day 2 hours'`, `'1 day 2 hours'::interval`,
			`B'101'`, `X'1F'`, `date '2026-01-02'`, `timestamp '2026-01-02 10:00'`, `float8 '0.1'`, `numeric '1.50'`,
			`bool 't'`, `int '007'`, `'007'::int`, `text 'abc '`, `char(5) 'ab'`, `'ab'::char(5)`, `name 'x'`, `money '1000'`,
			`E'a\\tb'`, `U&'\0041'`, `$$x$$`, `0x1F`, `1_000`, `.5`, `5.`, `1e-3`, `NULL::text`, `'x' COLLATE "C"`} {
			writes = append(writes, review19cWrite{table: "r19_" + ty.name, lit: lit})
		}
	}
	id := 0
	review19cCheck(t, ctx, func() *pgx.Conn { return e.appConn(ctx, p) }, &id, writes)
}

// TestReview20dSettingChangedByFunction: a function (or a trigger) whose
// code changes DateStyle or extra_float_digits, called by the statement
// that reads the rows (or by one sent with it), makes the server print
// the tenant in the new setting before it reports it (ParameterStatus
// comes with the next ReadyForQuery; extra_float_digits is never
// reported). pgveil read the printed tenant by the setting last known: a
// value sealed for tenant 2026-02-01 moved into the row of 2026-01-02
// opened there under 'SQL, MDY' when the function switched to DMY, and
// one sealed for 0.3 opened in the row of 0.30000000000000004 when it set
// extra_float_digits to 0. Such a row must not open.
func TestReview20dSettingChangedByFunction(t *testing.T) {
	relayLeakCheck(t)
	for _, loops := range []string{"0", "1"} {
		t.Run("event_loops="+loops, func(t *testing.T) {
			review20dSettingChangedByFunction(t, "enc_review20d_fn"+loops, "proxy:\n  event_loops: "+loops+"\n")
		})
	}
}

func review20dSettingChangedByFunction(t *testing.T, db, extra string) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"dt", "date"}, {"f8", "float8"}}
	e := newOpsEnv(t, db, review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{
		`CREATE FUNCTION f20_dmy() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); RETURN 1; END$$`,
		`CREATE FUNCTION f20_dmy_set() RETURNS int LANGUAGE plpgsql AS $$BEGIN SET datestyle = 'SQL, DMY'; RETURN 1; END$$`,
		`CREATE FUNCTION f20_efd() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('extra_float_digits', '0', false); RETURN 1; END$$`,
		`CREATE FUNCTION f20_outer() RETURNS int LANGUAGE sql AS $$SELECT f20_dmy()$$`,
		`CREATE TABLE t20_log (id int)`,
		`CREATE FUNCTION f20_trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); RETURN NEW; END$$`,
		`CREATE TRIGGER t20_trg BEFORE INSERT ON t20_log FOR EACH ROW EXECUTE FUNCTION f20_trg()`,
		`CREATE VIEW v20_dmy AS SELECT set_config('DateStyle', 'SQL, DMY', false) AS s`,
		`CREATE TABLE t20_def (id int, s text DEFAULT set_config('DateStyle', 'SQL, DMY', false))`,
	}, types)
	p := e.proxy(e.config("") + extra)
	app := e.appConn(ctx, p)
	for _, s := range []string{
		`INSERT INTO r19_dt (id, org, secret) VALUES (1, '2026-01-02', 'dt-1'), (2, '2026-02-01', 'dt-2'), (3, '2026-01-02', 'dt-3')`,
		`INSERT INTO r19_f8 (id, org, secret) VALUES (1, '0.3', 'f8-1'), (2, '0.30000000000000004', 'f8-2'), (3, '0.30000000000000004', 'f8-3')`,
	} {
		if _, err := app.Exec(ctx, s, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	app.Close(ctx)
	d := e.conn(ctx)
	defer d.Close(ctx)
	// Row 3 of each table gets the ciphertext of another tenant's row.
	for _, s := range []string{
		`UPDATE r19_dt SET secret = (SELECT secret FROM r19_dt WHERE id = 2) WHERE id = 3`,
		`UPDATE r19_f8 SET secret = (SELECT secret FROM r19_f8 WHERE id = 1) WHERE id = 3`,
	} {
		if _, err := d.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ set, q string }{

		{`SET DateStyle = 'SQL, MDY'`, `SELECT f20_dmy(), secret FROM r19_dt WHERE id = 3`},
		{`SET DateStyle = 'SQL, MDY'`, `SELECT f20_dmy_set(), secret FROM r19_dt WHERE id = 3`},
		{`SET DateStyle = 'SQL, MDY'`, `SELECT f20_outer(), secret FROM r19_dt WHERE id = 3`},
		{`SET DateStyle = 'SQL, MDY'`, `SELECT f20_dmy(); SELECT secret FROM r19_dt WHERE id = 3`},
		{`SET DateStyle = 'SQL, MDY'`, `INSERT INTO t20_log VALUES (1); SELECT secret FROM r19_dt WHERE id = 3`},
		{`SET DateStyle = 'SQL, MDY'`, `SELECT s, secret FROM v20_dmy, r19_dt WHERE id = 3`},
		{`SET DateStyle = 'SQL, MDY'`, `INSERT INTO t20_def (id) VALUES (1); SELECT secret FROM r19_dt WHERE id = 3`},
		{`SET extra_float_digits = 1`, `SELECT f20_efd(), secret FROM r19_f8 WHERE id = 3`},
		{`SET extra_float_digits = 1`, `SELECT f20_efd(); SELECT secret FROM r19_f8 WHERE id = 3`},
	} {
		c2 := e.appConn(ctx, p)
		if _, err := c2.PgConn().Exec(ctx, c.set).ReadAll(); err != nil {
			t.Fatal(err)
		}
		rs, err := c2.PgConn().Exec(ctx, c.q).ReadAll()
		if err == nil || !strings.Contains(err.Error(), "PV001") {
			t.Errorf("%s, then %s: %v %v; want PV001 (a value moved from another tenant's row)", c.set, c.q, review20bRows(rs), err)
		}
		c2.Close(ctx)
	}
	// The rows of their own tenant still open once the change is known.
	c3 := e.appConn(ctx, p)
	defer c3.Close(ctx)
	for _, q := range []string{`SET DateStyle = 'SQL, MDY'`, `SELECT f20_dmy()`} {
		if _, err := c3.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var got string
	if err := c3.QueryRow(ctx, `SELECT secret FROM r19_dt WHERE id = 1`, pgx.QueryExecModeSimpleProtocol).Scan(&got); err != nil || got != "dt-1" {
		t.Errorf("after f20_dmy() answered: %q %v; want dt-1", got, err)
	}
}

// TestReview20dPreparedSetConfig: SQL EXECUTE of a statement prepared
// as SELECT set_config('DateStyle' | 'extra_float_digits', …) changes the
// setting, and its text names neither (MayChangeDateStyle,
// MayChangeFloatDigits read the statement's text; an EXECUTE is opaque
// only while the database has a function that may change search_path).
// The rows of a SELECT sent with it are printed in the new setting
// before the server reports it: a value moved from another tenant's row
// must not open.
func TestReview20dPreparedSetConfig(t *testing.T) {
	relayLeakCheck(t)
	for _, loops := range []string{"0", "1"} {
		t.Run("event_loops="+loops, func(t *testing.T) {
			review20dPreparedSetConfig(t, "enc_review20d_prep"+loops, "proxy:\n  event_loops: "+loops+"\n")
		})
	}
}

func review20dPreparedSetConfig(t *testing.T, db, extra string) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"dt", "date"}, {"f8", "float8"}}
	e := newOpsEnv(t, db, review19cPolicy(types))
	review19cSetup(t, ctx, e, nil, types)
	p := e.proxy(e.config("") + extra)
	review20dMovedRows(t, ctx, e, p)
	for _, c := range []struct{ set, q string }{
		{`SET DateStyle = 'SQL, MDY'; PREPARE p20 AS SELECT set_config('DateStyle', 'SQL, DMY', false)`, `EXECUTE p20; SELECT secret FROM r19_dt WHERE id = 3`},
		{`SET DateStyle = 'SQL, MDY'; PREPARE p20 (text) AS SELECT set_config('DateStyle', $1, false)`, `EXECUTE p20('SQL, DMY'); SELECT secret FROM r19_dt WHERE id = 3`},
		{`SET extra_float_digits = 1; PREPARE p20 AS SELECT set_config('extra_float_digits', '0', false)`, `EXECUTE p20; SELECT secret FROM r19_f8 WHERE id = 3`},
	} {
		c2 := e.appConn(ctx, p)
		if _, err := c2.PgConn().Exec(ctx, c.set).ReadAll(); err != nil {
			t.Errorf("%s: %v", c.set, err)
			c2.Close(ctx)
			continue
		}
		rs, err := c2.PgConn().Exec(ctx, c.q).ReadAll()
		if err == nil || !strings.Contains(err.Error(), "PV001") {
			t.Errorf("%s, then %s: %v %v; want PV001 (a value moved from another tenant's row)", c.set, c.q, review20bRows(rs), err)
		}
		c2.Close(ctx)
	}
	// An EXECUTE of a statement that changes neither leaves the order
	// known: the row of 2026-01-02 (01/02/2026 in SQL, MDY) opens.
	c3 := e.appConn(ctx, p)
	defer c3.Close(ctx)
	if _, err := c3.PgConn().Exec(ctx, `SET DateStyle = 'SQL, MDY'; PREPARE p21 AS SELECT 1`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	rs, err := c3.PgConn().Exec(ctx, `EXECUTE p21; SELECT secret FROM r19_dt WHERE id = 1`).ReadAll()
	if got := review20bRows(rs); err != nil || len(got) != 2 || got[1][0] != "dt-1" {
		t.Errorf("EXECUTE of SELECT 1, then the row of 2026-01-02 under SQL, MDY: %v %v; want dt-1", got, err)
	}
}

// review20dMovedRows writes rows 1-3 of r19_dt (2026-01-02, 2026-02-01,
// 2026-01-02) and r19_f8 (0.3, 0.30000000000000004 twice) through p, and
// gives row 3 of each the ciphertext of another tenant's row (2 and 1).
func review20dMovedRows(t *testing.T, ctx context.Context, e *opsEnv, p *harness.Proxy) {
	t.Helper()
	app := e.appConn(ctx, p)
	defer app.Close(ctx)
	for _, s := range []string{
		`INSERT INTO r19_dt (id, org, secret) VALUES (1, '2026-01-02', 'dt-1'), (2, '2026-02-01', 'dt-2'), (3, '2026-01-02', 'dt-3')`,
		`INSERT INTO r19_f8 (id, org, secret) VALUES (1, '0.3', 'f8-1'), (2, '0.30000000000000004', 'f8-2'), (3, '0.30000000000000004', 'f8-3')`,
	} {
		if _, err := app.Exec(ctx, s, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	d := e.conn(ctx)
	defer d.Close(ctx)
	for _, s := range []string{
		`UPDATE r19_dt SET secret = (SELECT secret FROM r19_dt WHERE id = 2) WHERE id = 3`,
		`UPDATE r19_f8 SET secret = (SELECT secret FROM r19_f8 WHERE id = 1) WHERE id = 3`,
	} {
		if _, err := d.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReview20dPreparedTimeZone: EXECUTE of a PREPARE that sets TimeZone,
// in the pipeline of a write whose timestamptz parameter names a date
// tenant: the server converts it in the new zone ('2026-01-01 23:30+00' is
// 2026-01-02 in Berlin) while pgveil, which took the session for UTC,
// named 2026-01-01. The write must be refused, or read back.
func TestReview20dPreparedTimeZone(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"d", "date"}}
	e := newOpsEnv(t, "enc_review20d_tz", review19cPolicy(types))
	review19cSetup(t, ctx, e, nil, types)
	p := e.proxy(e.config(""))
	w := e.appConn(ctx, p)
	defer w.Close(ctx)
	if _, err := w.PgConn().Exec(ctx, `SET TimeZone = 'UTC'; PREPARE pz AS SELECT set_config('TimeZone', 'Europe/Berlin', false)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	b := &pgconn.Batch{}
	b.ExecParams(`EXECUTE pz`, nil, nil, nil, nil)
	b.ExecParams(`INSERT INTO r19_d (id, org, secret) VALUES (1, $1, $2)`, [][]byte{[]byte("2026-01-01 23:30:00+00"), []byte("tz-1")}, []uint32{1184, 25}, []int16{0, 0}, nil)
	_, err := w.PgConn().ExecBatch(ctx, b).ReadAll()
	if err != nil {
		t.Logf("refused: %v", err)
		return
	}
	r := e.appConn(ctx, p)
	defer r.Close(ctx)
	if err := review19cReads(ctx, r, "r19_d", 1, "tz-1"); err != nil {
		t.Errorf("written after EXECUTE of a TimeZone change, does not read back: %v", err)
	}
}

// TestReview20dFunctionTimeZone: a function whose code sets TimeZone,
// called in the pipeline of a write whose timestamptz parameter names a
// date tenant: the server converts the parameter in the new zone while
// pgveil took the session for UTC. The write must be refused, or read
// back.
func TestReview20dFunctionTimeZone(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"d", "date"}}
	e := newOpsEnv(t, "enc_review20d_fntz", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{
		`CREATE FUNCTION f20_tz() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('TimeZone', 'Europe/Berlin', false); RETURN 1; END$$`,
		`CREATE FUNCTION f20_tz2() RETURNS int LANGUAGE plpgsql AS $$BEGIN SET TIME ZONE 'Europe/Berlin'; RETURN 1; END$$`,
	}, types)
	p := e.proxy(e.config(""))
	for i, call := range []string{`SELECT f20_tz()`, `SELECT f20_tz2()`} {
		w := e.appConn(ctx, p)
		if _, err := w.Exec(ctx, `SET TimeZone = 'UTC'`); err != nil {
			t.Fatal(err)
		}
		b := &pgconn.Batch{}
		b.ExecParams(call, nil, nil, nil, nil)
		b.ExecParams(fmt.Sprintf(`INSERT INTO r19_d (id, org, secret) VALUES (%d, $1, $2)`, i+1), [][]byte{[]byte("2026-01-01 23:30:00+00"), []byte("tz")}, []uint32{1184, 25}, []int16{0, 0}, nil)
		_, err := w.PgConn().ExecBatch(ctx, b).ReadAll()
		w.Close(ctx)
		if err != nil {
			t.Logf("%s: refused: %v", call, err)
			continue
		}
		r := e.appConn(ctx, p)
		if err := review19cReads(ctx, r, "r19_d", i+1, "tz"); err != nil {
			t.Errorf("written after %s, does not read back: %v", call, err)
		}
		r.Close(ctx)
	}
}

// TestReview20dSetConfigView: a view or a column default that calls
// set_config itself (no function of the database does): a statement that
// uses it changes the DateStyle while the rows beside it are printed.
func TestReview20dSetConfigView(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"dt", "date"}, {"f8", "float8"}}
	e := newOpsEnv(t, "enc_review20d_view", review19cPolicy(types))
	review19cSetup(t, ctx, e, []string{
		`CREATE VIEW v20_dmy AS SELECT set_config('DateStyle', 'SQL, DMY', false) AS s`,
		`CREATE TABLE t20_def (id int, s text DEFAULT set_config('extra_float_digits', '0', false))`,
		`CREATE TABLE t20_chk (id int CHECK (set_config('DateStyle', 'SQL, DMY', false) IS NOT NULL))`,
		`CREATE FUNCTION f20_dmy() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); RETURN 1; END$$`,
		`CREATE TABLE t20_chkf (id int CHECK (f20_dmy() = 1))`,
		`CREATE DOMAIN d20_chk AS int CHECK (set_config('DateStyle', 'SQL, DMY', false) IS NOT NULL)`,
		`CREATE TABLE t20_dom (id d20_chk)`,
	}, types)
	p := e.proxy(e.config(""))
	review20dMovedRows(t, ctx, e, p)
	for _, c := range []struct{ set, q string }{
		{`SET DateStyle = 'SQL, MDY'`, `SELECT s, secret FROM v20_dmy, r19_dt WHERE id = 3`},
		{`SET DateStyle = 'SQL, MDY'`, `SELECT * FROM v20_dmy; SELECT secret FROM r19_dt WHERE id = 3`},
		{`SET extra_float_digits = 1`, `INSERT INTO t20_def (id) VALUES (1); SELECT secret FROM r19_f8 WHERE id = 3`},
		{`SET DateStyle = 'SQL, MDY'`, `INSERT INTO t20_chk VALUES (1); SELECT secret FROM r19_dt WHERE id = 3`},
		{`SET DateStyle = 'SQL, MDY'`, `INSERT INTO t20_chkf VALUES (1); SELECT secret FROM r19_dt WHERE id = 3`},
		{`SET DateStyle = 'SQL, MDY'`, `INSERT INTO t20_dom VALUES (1); SELECT secret FROM r19_dt WHERE id = 3`},
	} {
		c2 := e.appConn(ctx, p)
		if _, err := c2.Exec(ctx, c.set); err != nil {
			t.Fatal(err)
		}
		rs, err := c2.PgConn().Exec(ctx, c.q).ReadAll()
		if err == nil || !strings.Contains(err.Error(), "PV001") {
			t.Errorf("%s, then %s: %v %v; want PV001 (a value moved from another tenant's row)", c.set, c.q, review20bRows(rs), err)
		}
		c2.Close(ctx)
	}
}

// TestReview20dFloatLookupRounded: under extra_float_digits = 0 the rows
// of tenants 0.3 and 0.30000000000000004 both print 0.3. A looked-up
// UPDATE over both took them for one tenant, 0.3, and its guard then
// left the other row alone: UPDATE 1 for two rows asked, silently. It
// must be refused (the tenant cannot be read), or change both rows so
// that each reads back.
func TestReview20dFloatLookupRounded(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	types := []review19cType{{"dt", "date"}, {"f8", "float8"}}
	e := newOpsEnv(t, "enc_review20d_flook", review19cPolicy(types))
	review19cSetup(t, ctx, e, nil, types)
	p := e.proxy(e.config(""))
	review20dMovedRows(t, ctx, e, p)
	c := e.appConn(ctx, p)
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `SET extra_float_digits = 0`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE r19_f8 SET secret = 'u' WHERE id IN (1, 2)`, `UPDATE r19_f8 SET secret = 'v' WHERE id = 2`} {
		tag, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Logf("%s: refused: %v", q, err)
			continue
		}
		want := int64(2)
		if !strings.Contains(q, "IN") {
			want = 1
		}
		if tag.RowsAffected() != want {
			t.Errorf("%s under extra_float_digits 0: UPDATE %d, want %d or refused", q, tag.RowsAffected(), want)
		}
	}
}
