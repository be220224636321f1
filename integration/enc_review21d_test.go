package integration

// Review 21d: probes of review 21a's send-form tenant reads against a
// real server (scaffolding: enc_review21a_test.go).

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestReview21dTableAndCopyOnly: TABLE t of a date, timestamp,
// timestamptz, float or domain tenant table reads as SELECT * does (it
// was refused after review 21a); COPY t TO returns t's own rows, not
// those of an inheritance child (pgveil's SELECT read them too).
func TestReview21dTableAndCopyOnly(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 3*time.Minute)
	e, conn := review21aEnv(t, ctx, "enc_review21d_table")
	d := e.conn(ctx)
	// A child made on a direct connection after pgveil's snapshot, with
	// a row of its own (its secret NULL: nothing to open).
	for _, ty := range review21aTypes {
		s := fmt.Sprintf(`CREATE TABLE r21k_%s () INHERITS (r21_%s); INSERT INTO r21k_%s (id, org, secret) VALUES (4, '%s', NULL)`, ty.name, ty.name, ty.name, ty.a)
		if _, err := d.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	c := conn()
	if _, err := c.PgConn().Exec(ctx, "SET DateStyle = 'SQL, DMY'; SET extra_float_digits = 0").ReadAll(); err != nil {
		t.Fatal(err)
	}
	for _, ty := range review21aTypes {
		table := "r21_" + ty.name
		want := review21aExpect(true) + ",4="
		for _, q := range []string{
			`TABLE %s ORDER BY id`,
			`TABLE ONLY %s ORDER BY id`,
		} {
			q = fmt.Sprintf(q, table)
			w := want
			if strings.Contains(q, "ONLY") {
				w = review21aExpect(true)
			}
			for _, formats := range [][]int16{nil, {1}, {0, 1, 0}} {
				var rs *pgconn.Result
				if formats == nil {
					all, err := c.PgConn().Exec(ctx, q).ReadAll()
					if err != nil {
						t.Errorf("%s simple: %v", q, err)
						c.Close(ctx)
						c = conn()
						continue
					}
					rs = all[0]
				} else {
					rs = c.PgConn().ExecParams(ctx, q, nil, nil, nil, formats).Read()
				}
				if rs.Err != nil {
					t.Errorf("%s %v: %v", q, formats, rs.Err)
					c.Close(ctx)
					c = conn()
					continue
				}
				if len(rs.FieldDescriptions) != 3 {
					t.Errorf("%s %v: %d fields", q, formats, len(rs.FieldDescriptions))
				}
				if got := review21aSecrets(review21aRows(rs)); got != w {
					t.Errorf("%s %v: %s; want %s", q, formats, got, w)
				}
			}
		}
		// COPY t TO: t's rows, as PostgreSQL's COPY t TO gives them.
		for _, q := range []string{`COPY %s TO STDOUT`, `COPY %s (id, secret) TO STDOUT (FORMAT csv)`, `COPY %s (id, org, secret) TO STDOUT (FORMAT binary)`} {
			q = fmt.Sprintf(q, table)
			var buf bytes.Buffer
			if _, err := c.PgConn().CopyTo(ctx, &buf, q); err != nil {
				t.Errorf("%s: %v", q, err)
				c.Close(ctx)
				c = conn()
				continue
			}
			got, err := review21aCopyRows(buf.Bytes(), q)
			if err != nil {
				t.Errorf("%s: %v", q, err)
			} else if want := review21aExpect(true); got != want {
				t.Errorf("%s: %s; want %s (PostgreSQL's COPY %s TO leaves the child's rows out)", q, got, want, table)
			}
		}
	}
	c.Close(ctx)
}

// TestReview21dFloatMergedUsing: a float tenant's rows of tenants 0 and
// -0 (equal to PostgreSQL, two tenants to pgveil); the -0 row holds the
// ciphertext of the 0 row, moved. Read through a JOIN alias over a RIGHT
// JOIN … USING (org) with a table holding 0, the client's j.org is the
// right side's 0: review 21a read its send form and the moved value
// opened. Refused now; the table's own column still reads the rows.
func TestReview21dFloatMergedUsing(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 3*time.Minute)
	e, conn := review21aEnv(t, ctx, "enc_review21d_merged",
		`CREATE TABLE o21 (org float8)`, `INSERT INTO o21 VALUES (0)`)
	app := conn()
	for _, s := range []string{
		`INSERT INTO r21e_f8 (id, org, secret) VALUES (10, '-0', 'neg'), (11, '0', 'pos')`,
	} {
		if _, err := app.Exec(ctx, s, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	d := e.conn(ctx)
	if _, err := d.Exec(ctx, `UPDATE r21e_f8 SET secret = (SELECT secret FROM r21e_f8 WHERE id = 11) WHERE id = 10`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT j.id, j.secret, j.org FROM (r21e_f8 u RIGHT JOIN o21 o USING (org)) j WHERE j.id = 10`,
		`SELECT j.id, j.secret, org FROM (r21e_f8 u RIGHT JOIN o21 o USING (org)) j WHERE j.id = 10`,
		`SELECT json_build_object('s', j.secret, 'o', j.org) AS secret FROM (r21e_f8 u RIGHT JOIN o21 o USING (org)) j WHERE j.id = 10`,
		`SELECT id, secret, org FROM r21e_f8 WHERE false UNION ALL SELECT j.id, j.secret, j.org FROM (r21e_f8 u RIGHT JOIN o21 o USING (org)) j WHERE j.id = 10`,
		// The merged value as a subquery's tenant (so before review 21a).
		`SELECT id, secret, org FROM (SELECT u.id, u.secret, org FROM r21e_f8 u RIGHT JOIN o21 o USING (org)) s WHERE id = 10`,
		`SELECT id, secret FROM (SELECT j.id, j.secret, j.org FROM (r21e_f8 u RIGHT JOIN o21 o USING (org)) j) s WHERE id = 10`,
	} {
		for _, mode := range []string{"simple", "extended"} {
			var rows [][][]byte
			var err error
			if mode == "simple" {
				var rs []*pgconn.Result
				if rs, err = app.PgConn().Exec(ctx, q).ReadAll(); err == nil {
					rows = rs[0].Rows
				}
			} else {
				rs := app.PgConn().ExecParams(ctx, q, nil, nil, nil, nil).Read()
				rows, err = rs.Rows, rs.Err
			}
			for _, r := range rows {
				for _, v := range r {
					if bytes.Contains(v, []byte("pos")) {
						t.Errorf("%s (%s): the value moved from tenant 0 into the row of tenant -0 opened: %q", q, mode, r)
					}
				}
			}
			if err == nil {
				t.Errorf("%s (%s): %q; want refused", q, mode, rows)
			}
			app.Close(ctx)
			app = conn()
		}
	}
	// The table's own column: the rows of their own tenant open, the
	// moved value does not.
	rs, err := app.PgConn().Exec(ctx, `SELECT id, secret FROM r21e_f8 u RIGHT JOIN o21 o USING (org) WHERE id = 11`).ReadAll()
	if err != nil || len(rs[0].Rows) != 1 || string(rs[0].Rows[0][1]) != "pos" {
		t.Errorf("row 11 through the join: %v %v", review20bRows(rs), err)
	}
	if _, err := app.PgConn().Exec(ctx, `SELECT id, secret FROM r21e_f8 u RIGHT JOIN o21 o USING (org) WHERE id = 10`).ReadAll(); err == nil || !strings.Contains(err.Error(), "PV001") {
		t.Errorf("row 10 through the join: %v; want PV001", err)
	}
	app.Close(ctx)
}

// TestReview21dProtocolShapes (holds): a prepared statement described
// then bound with one result format per visible field, in both orders; a
// cursor WITH HOLD fetched after its transaction under another
// DateStyle; pgx's statement cache; INSERT … ON CONFLICT … RETURNING.
// The hidden send field never reaches the client and the moved value
// (row 3) never opens.
func TestReview21dProtocolShapes(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 3*time.Minute)
	_, conn := review21aEnv(t, ctx, "enc_review21d_proto")
	for _, ty := range review21aTypes {
		table := "r21_" + ty.name
		c := conn()
		if _, err := c.PgConn().Exec(ctx, "SET DateStyle = 'German'; SET extra_float_digits = -3").ReadAll(); err != nil {
			t.Fatal(err)
		}
		q := fmt.Sprintf(`SELECT id, secret, org FROM %s ORDER BY id`, table)
		sd, err := c.PgConn().Prepare(ctx, "p21d", q, nil)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if len(sd.Fields) != 3 {
			t.Errorf("%s: Describe of the statement has %d fields", q, len(sd.Fields))
		}
		for _, formats := range [][]int16{{0, 1, 0}, {1, 0, 1}, {0, 0, 1}, {1}, nil} {
			rs := c.PgConn().ExecPrepared(ctx, "p21d", nil, nil, formats).Read()
			if rs.Err != nil {
				t.Errorf("%s %v: %v", q, formats, rs.Err)
				continue
			}
			if len(rs.FieldDescriptions) != 3 {
				t.Errorf("%s %v: %d fields", q, formats, len(rs.FieldDescriptions))
			}
			if got, want := review21aSecrets(review21aRows(rs)), review21aExpect(true); got != want {
				t.Errorf("%s %v: %s; want %s", q, formats, got, want)
			}
		}
		// pgx's cached statements (Describe, then Bind with its formats).
		rows, err := c.Query(ctx, fmt.Sprintf(`SELECT id, secret FROM %s WHERE id < 3 ORDER BY id`, table))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var id int32
			var s *string
			if err := rows.Scan(&id, &s); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%d=%v", id, *s))
		}
		if rows.Err() != nil || strings.Join(got, ",") != "1=s-1,2=s-2" {
			t.Errorf("%s pgx: %v %v", table, got, rows.Err())
		}
		// A cursor WITH HOLD, fetched after COMMIT under another DateStyle.
		rs, err := c.PgConn().Exec(ctx, fmt.Sprintf(`BEGIN; DECLARE h21 CURSOR WITH HOLD FOR SELECT id, secret FROM %s ORDER BY id; COMMIT; SET DateStyle = 'SQL, DMY'; FETCH 2 FROM h21; FETCH ALL FROM h21; CLOSE h21`, table)).ReadAll()
		if err != nil {
			t.Errorf("%s cursor: %v", table, err)
		} else {
			all := append(review21aRows(rs[4]), review21aRows(rs[5])...)
			if got, want := review21aSecrets(all), review21aExpect(true); got != want || len(rs[4].FieldDescriptions) != 2 {
				t.Errorf("%s cursor: %s (%d fields); want %s", table, got, len(rs[4].FieldDescriptions), want)
			}
		}
		// A BINARY cursor: the send field arrives in binary.
		rs, err = c.PgConn().Exec(ctx, fmt.Sprintf(`BEGIN; DECLARE b21 BINARY CURSOR FOR SELECT id, secret FROM %s ORDER BY id; FETCH ALL FROM b21; COMMIT`, table)).ReadAll()
		if err != nil {
			t.Errorf("%s binary cursor: %v", table, err)
		} else if got, want := review21aSecrets(review21aRows(rs[2])), review21aExpect(true); got != want || len(rs[2].FieldDescriptions) != 2 {
			t.Errorf("%s binary cursor: %s (%d fields); want %s", table, got, len(rs[2].FieldDescriptions), want)
		}
		// INSERT … ON CONFLICT … RETURNING: the row's own value.
		rs, err = c.PgConn().Exec(ctx, fmt.Sprintf(`INSERT INTO %s (id, org, secret) VALUES (20, '%s', 'c1') ON CONFLICT (id) DO UPDATE SET secret = EXCLUDED.secret WHERE %s.org = EXCLUDED.org RETURNING id, secret`, table, ty.b, table)).ReadAll()
		if err != nil || len(rs[0].Rows) != 1 || string(rs[0].Rows[0][1]) != "c1" || len(rs[0].FieldDescriptions) != 2 {
			t.Errorf("%s INSERT … RETURNING: %v %v", table, review20bRows(rs), err)
		}
		rs, err = c.PgConn().Exec(ctx, fmt.Sprintf(`INSERT INTO %s (id, org, secret) VALUES (20, '%s', 'c2') ON CONFLICT (id) DO UPDATE SET secret = EXCLUDED.secret RETURNING id, secret`, table, ty.b)).ReadAll()
		if err != nil || len(rs[0].Rows) != 1 || string(rs[0].Rows[0][1]) != "c2" {
			t.Errorf("%s INSERT … ON CONFLICT DO UPDATE RETURNING: %v %v", table, review20bRows(rs), err)
		}
		c.Close(ctx)
	}
}

// TestReview21dByteaEscape (holds): with bytea_output = escape the send
// field arrives in escape form (a float8's bytes include backslashes and
// bytes above 0x7e) in rows, COPY text and csv, JSON and the UPDATE's
// tenant lookup; the rows of their own tenant open, the moved value
// does not.
func TestReview21dByteaEscape(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 3*time.Minute)
	_, conn := review21aEnv(t, ctx, "enc_review21d_escape")
	c := conn()
	if _, err := c.PgConn().Exec(ctx, "SET bytea_output = escape; SET DateStyle = 'SQL, DMY'").ReadAll(); err != nil {
		t.Fatal(err)
	}
	for _, ty := range review21aTypes {
		table := "r21_" + ty.name
		rs, err := c.PgConn().Exec(ctx, fmt.Sprintf(`SELECT id, secret FROM %s ORDER BY id; TABLE %s ORDER BY id`, table, table)).ReadAll()
		if err != nil {
			t.Errorf("%s: %v", table, err)
			c.Close(ctx)
			c = conn()
			c.PgConn().Exec(ctx, "SET bytea_output = escape").ReadAll()
			continue
		}
		for _, r := range rs {
			if got, want := review21aSecrets(review21aRows(r)), review21aExpect(true); got != want {
				t.Errorf("%s: %s; want %s", table, got, want)
			}
		}
		for _, q := range []string{`COPY %s (id, secret) TO STDOUT`, `COPY %s TO STDOUT (FORMAT csv)`} {
			q = fmt.Sprintf(q, table)
			var buf bytes.Buffer
			if _, err := c.PgConn().CopyTo(ctx, &buf, q); err != nil {
				t.Errorf("%s: %v", q, err)
				continue
			}
			if got, err := review21aCopyRows(buf.Bytes(), q); err != nil || got != review21aExpect(true) {
				t.Errorf("%s: %s %v", q, got, err)
			}
		}
		rs, err = c.PgConn().Exec(ctx, fmt.Sprintf(`SELECT jsonb_build_array(secret) AS secret FROM %s WHERE id = 1`, table)).ReadAll()
		if err != nil || len(rs[0].Rows) != 1 || string(rs[0].Rows[0][0]) != `["s-1"]` {
			t.Errorf("%s JSON: %v %v", table, review20bRows(rs), err)
		}
		if _, err := c.PgConn().Exec(ctx, fmt.Sprintf(`UPDATE %s SET secret = 'esc' WHERE id = 2`, table)).ReadAll(); err != nil {
			t.Errorf("%s looked-up UPDATE: %v", table, err)
		} else if err := review19cReads(ctx, c, table, 2, "esc"); err != nil {
			t.Errorf("%s after the UPDATE: %v", table, err)
		}
	}
	c.Close(ctx)
}

// TestReview21dWritesUnderTimeZone (holds): with the read-side tracking
// of DateStyle and extra_float_digits gone, writes still seal under the
// tenant the row stores: a timestamptz literal with an offset, a
// timestamptz parameter for a date tenant (converted in TimeZone), a
// float written as 0.30000000000000004 under extra_float_digits 0, each
// under a TimeZone and DateStyle changed in the same message; the rows
// read back in a default session. (A timestamptz literal without a zone
// and a cast of a date tenant's literal to timestamptz are refused, as
// before.)
func TestReview21dWritesUnderTimeZone(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 3*time.Minute)
	_, conn := review21aEnv(t, ctx, "enc_review21d_tzwrite")
	c := conn()
	for i, w := range []struct {
		table, set, org string
	}{
		{"r21_tz", "SET TimeZone = 'Asia/Tokyo'", "'2026-01-02 03:04:05+09'"},
		{"r21_tz", "SET TimeZone = 'America/New_York'; SET DateStyle = 'SQL, DMY'", "'2026-01-02 23:30:00-05'"},
		{"r21_f8", "SET extra_float_digits = 0", "'0.30000000000000004'"},
		{"r21_ts", "SET DateStyle = 'German'", "'2026-01-02 03:04:05.5'"},
	} {
		id := 40 + i
		v := fmt.Sprintf("w%d", i)
		q := fmt.Sprintf(`%s; INSERT INTO %s (id, org, secret) VALUES (%d, %s, '%s')`, w.set, w.table, id, w.org, v)
		if _, err := c.PgConn().Exec(ctx, q).ReadAll(); err != nil {
			t.Errorf("%s: %v", q, err)
			c.Close(ctx)
			c = conn()
			continue
		}
		c2 := conn()
		if err := review19cReads(ctx, c2, w.table, id, v); err != nil {
			t.Errorf("%s, read in a default session: %v", q, err)
		}
		c2.Close(ctx)
		c.PgConn().Exec(ctx, "RESET ALL").ReadAll()
	}
	// A timestamptz parameter for a date tenant converts in the session's
	// TimeZone, which pgveil still follows: refused under Kiritimati
	// (2026-01-02 20:00 UTC is 2026-01-03 there), accepted and sealed
	// under the stored date in UTC.
	ins := func(id int, v string) error {
		return c.PgConn().ExecParams(ctx, fmt.Sprintf(`INSERT INTO r21_dt (id, org, secret) VALUES (%d, $1, $2)`, id),
			[][]byte{[]byte("2026-01-02 20:00:00+00"), []byte(v)}, []uint32{1184, 25}, nil, nil).Read().Err
	}
	if _, err := c.PgConn().Exec(ctx, "SET TimeZone = 'Pacific/Kiritimati'").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if err := ins(50, "tzk"); err == nil || !strings.Contains(err.Error(), "TimeZone") {
		t.Errorf("timestamptz parameter under Kiritimati: %v; want refused", err)
	}
	if _, err := c.PgConn().Exec(ctx, "SET TimeZone = 'UTC'").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if err := ins(51, "tzu"); err != nil {
		t.Errorf("timestamptz parameter under UTC: %v", err)
	} else {
		c2 := conn()
		if err := review19cReads(ctx, c2, "r21_dt", 51, "tzu"); err != nil {
			t.Errorf("timestamptz parameter, read in a default session: %v", err)
		}
		c2.Close(ctx)
	}
	c.Close(ctx)
}
