package integration

// Review 21a: the tenant of a date, timestamp, timestamptz, float4 or
// float8 key_context column (or of a domain over one) is read through
// its type's send function, a hidden bytea field pgveil adds (date_send,
// float8send, …), never through the text the session prints: no
// DateStyle, extra_float_digits or TimeZone, however and whenever it was
// set, makes a row of one tenant read as another's. Each table has rows
// of two tenants that print alike under some setting (2026-01-02 and
// 2026-02-01 swap day and month; 0.3 and 0.30000000000000004 print 0.3
// under extra_float_digits 0) and a row of the first tenant holding the
// ciphertext of the second's row, moved by a direct connection: every
// read path must open the rows of their own tenant and never the moved
// value (on_error: null reads it as NULL; the default, PV001).

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// review21aType is one key_context type under test: its two tenants (the
// first's row 3 holds the second's ciphertext).
type review21aType struct {
	name, sql string
	a, b      string
}

var review21aTypes = []review21aType{
	{"dt", "date", "2026-01-02", "2026-02-01"},
	{"ts", "timestamp", "2026-01-02 03:04:05.5", "2026-02-01 03:04:05.5"},
	{"tz", "timestamptz", "2026-01-02 03:04:05.5+00", "2026-02-01 03:04:05.5+00"},
	{"f8", "float8", "0.30000000000000004", "0.3"},
	{"f4", "float4", "1", "1.0000001"},
	{"dd", "d21_date", "2026-01-02", "2026-02-01"},
}

// review21aSessions are the settings each read runs under.
var review21aSessions = []string{
	"",
	"SET DateStyle = 'SQL, DMY'",
	"SET DateStyle = 'German'",
	"SET DateStyle = 'Postgres, MDY'",
	"SET extra_float_digits = 0",
	"SET extra_float_digits = -15",
	"SET TimeZone = 'Asia/Tokyo'",
	"SET DateStyle = 'SQL, DMY'; SET extra_float_digits = 0; SET TimeZone = 'Asia/Tokyo'",
}

// review21aPolicy: r21_<name> (secret on_error: null) and r21e_<name>
// (secret on_error: error) for every type.
func review21aPolicy() string {
	var b strings.Builder
	b.WriteString("tables:\n")
	for _, ty := range review21aTypes {
		fmt.Fprintf(&b, "  public.r21_%s:\n    key_context: org\n    columns:\n      secret: {type: text, on_error: \"null\"}\n", ty.name)
		fmt.Fprintf(&b, "  public.r21e_%s:\n    key_context: org\n    columns:\n      secret: {type: text}\n", ty.name)
	}
	return b.String()
}

// review21aWant is what rows 1, 2, 3 read as ("" for NULL).
var review21aWant = map[int]string{1: "s-1", 2: "s-2", 3: ""}

// review21aEnv makes the tables and rows; post runs on a direct
// connection after the tables are made, before pgveil starts.
func review21aEnv(t *testing.T, ctx context.Context, db string, post ...string) (*opsEnv, func() *pgx.Conn) {
	e := newOpsEnv(t, db, review21aPolicy())
	d := e.conn(ctx)
	for _, s := range []string{
		`CREATE DOMAIN d21_date AS date`,
		// Review 20d's case: the statement that reads the rows switches
		// DateStyle (or extra_float_digits) before the rows are printed.
		`CREATE FUNCTION f21_dmy() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('DateStyle', 'SQL, DMY', false); RETURN 1; END$$`,
		`CREATE FUNCTION f21_efd() RETURNS int LANGUAGE plpgsql AS $$BEGIN PERFORM set_config('extra_float_digits', '0', false); RETURN 1; END$$`,
	} {
		if _, err := d.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for _, ty := range review21aTypes {
		for _, p := range []string{"r21_", "r21e_"} {
			s := fmt.Sprintf(`CREATE TABLE %s%s (id int PRIMARY KEY, org %s, secret bytea)`, p, ty.name, ty.sql)
			if _, err := d.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	for _, s := range post {
		if _, err := d.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	e.run(ctx, 0, "migrate", "-c", e.writeConfig("c.yaml", e.config("")), "--apply")
	p := e.proxy(e.config(""))
	app := e.appConn(ctx, p)
	for _, ty := range review21aTypes {
		for _, pre := range []string{"r21_", "r21e_"} {
			table := pre + ty.name
			for _, s := range []string{
				fmt.Sprintf(`INSERT INTO %s (id, org, secret) VALUES (1, '%s', 's-1'), (2, '%s', 's-2'), (3, '%s', 's-3')`, table, ty.a, ty.b, ty.a),
			} {
				if _, err := app.Exec(ctx, s, pgx.QueryExecModeSimpleProtocol); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			// Row 3 (tenant a) gets the ciphertext sealed for tenant b.
			if _, err := d.Exec(ctx, fmt.Sprintf(`UPDATE %s SET secret = (SELECT secret FROM %s WHERE id = 2) WHERE id = 3`, table, table)); err != nil {
				t.Fatal(err)
			}
		}
	}
	app.Close(ctx)
	return e, func() *pgx.Conn { return e.appConn(ctx, p) }
}

// review21aValue decodes a field of a raw result: text as it is, int4
// and text in binary.
func review21aValue(fd pgconn.FieldDescription, v []byte) string {
	if v == nil {
		return "<null>"
	}
	if fd.Format == 1 && fd.DataTypeOID == 23 && len(v) == 4 {
		return fmt.Sprint(int32(binary.BigEndian.Uint32(v)))
	}
	return string(v)
}

// review21aRows returns, for every row, its fields by column name.
func review21aRows(rs *pgconn.Result) []map[string]string {
	var out []map[string]string
	for _, r := range rs.Rows {
		m := map[string]string{}
		for i, fd := range rs.FieldDescriptions {
			m[fd.Name] = review21aValue(fd, r[i])
		}
		out = append(out, m)
	}
	return out
}

// review21aSecrets checks rows: by id when the query returns it, else as
// a multiset of secrets.
func review21aSecrets(rows []map[string]string) string {
	var got []string
	for _, r := range rows {
		s := r["secret"]
		if s == "<null>" {
			s = ""
		}
		if id, ok := r["id"]; ok {
			got = append(got, id+"="+s)
		} else {
			got = append(got, s)
		}
	}
	sort.Strings(got)
	return strings.Join(got, ",")
}

func review21aExpect(byID bool) string {
	var want []string
	for id, s := range review21aWant {
		if byID {
			want = append(want, fmt.Sprintf("%d=%s", id, s))
		} else {
			want = append(want, s)
		}
	}
	sort.Strings(want)
	return strings.Join(want, ",")
}

// TestReview21aSendFormReads: every session setting, query shape and
// protocol (simple; extended with text, binary and per-column result
// formats) reads rows 1 and 2 and never the value moved into row 3.
func TestReview21aSendFormReads(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 4*time.Minute)
	_, conn := review21aEnv(t, ctx, "enc_review21a_reads")
	for _, set := range append(review21aSessions, "SET DateStyle = 'SQL, MDY'; SELECT f21_dmy()", "SELECT f21_efd()") {
		c := conn()
		if set != "" {
			if _, err := c.PgConn().Exec(ctx, set).ReadAll(); err != nil {
				t.Fatalf("%s: %v", set, err)
			}
		}
		for _, ty := range review21aTypes {
			table := "r21_" + ty.name
			shapes := []struct {
				q    string
				byID bool
			}{
				{fmt.Sprintf(`SELECT id, secret FROM %s ORDER BY id`, table), true},
				{fmt.Sprintf(`SELECT id, org, secret FROM %s ORDER BY id`, table), true},
				{fmt.Sprintf(`SELECT secret, org, id FROM %s ORDER BY id`, table), true},
				{fmt.Sprintf(`SELECT * FROM %s ORDER BY id`, table), true},
				{fmt.Sprintf(`SELECT t.* FROM %s t ORDER BY id`, table), true},
				{fmt.Sprintf(`SELECT DISTINCT ON (id) id, org, secret FROM %s ORDER BY id`, table), true},
				{fmt.Sprintf(`SELECT DISTINCT ON (org, id) org, secret, id FROM %s ORDER BY id, org`, table), true},
				{fmt.Sprintf(`SELECT id, org, secret FROM %s GROUP BY id ORDER BY id`, table), true},
				{fmt.Sprintf(`SELECT id, org, secret FROM %s GROUP BY org, id ORDER BY id`, table), true},
				{fmt.Sprintf(`SELECT * FROM %s GROUP BY id ORDER BY id`, table), true},
				{fmt.Sprintf(`SELECT id, org, secret FROM %s WHERE id = 1 UNION ALL SELECT id, org, secret FROM %s WHERE id > 1`, table, table), true},
				{fmt.Sprintf(`SELECT id, secret FROM (SELECT id, org, secret FROM %s) s ORDER BY id`, table), true},
				{fmt.Sprintf(`SELECT id, org, secret FROM (%s JOIN (SELECT 1 AS k) k ON true) j ORDER BY id`, table), true},
				{fmt.Sprintf(`SELECT id, secret, org FROM %s WHERE id = 1 UNION ALL (SELECT id, secret, org FROM %s WHERE id = 2 UNION ALL SELECT id, secret, t.org FROM %s t WHERE id = 3) ORDER BY 1`, table, table, table), true},
				{fmt.Sprintf(`SELECT f21_dmy() AS f, id, secret FROM %s ORDER BY id`, table), true},
				{fmt.Sprintf(`SELECT f21_efd() AS f, id, org, secret FROM %s ORDER BY id`, table), true},
			}
			for _, sh := range shapes {
				n := strings.Count(strings.SplitN(sh.q, " FROM ", 2)[0], ",") + 1
				if strings.Contains(sh.q, "DISTINCT ON (org, id)") {
					n = 3
				}
				if strings.Contains(sh.q, "SELECT *") || strings.Contains(sh.q, "t.*") {
					n = 3
				}
				perCol := make([]int16, n)
				for i := range perCol {
					perCol[i] = int16(i % 2)
				}
				perCol2 := make([]int16, n)
				for i := range perCol2 {
					perCol2[i] = int16((i + 1) % 2)
				}
				for _, how := range []struct {
					name    string
					formats []int16
				}{{"simple", nil}, {"extended-text", nil}, {"extended-binary", []int16{1}}, {"extended-per-column", perCol}, {"extended-per-column2", perCol2}} {
					var rs *pgconn.Result
					if how.name == "simple" {
						all, err := c.PgConn().Exec(ctx, sh.q).ReadAll()
						if err == nil {
							rs = all[len(all)-1]
						} else {
							rs = &pgconn.Result{Err: err}
						}
					} else {
						rs = c.PgConn().ExecParams(ctx, sh.q, nil, nil, nil, how.formats).Read()
					}
					if rs.Err != nil {
						t.Errorf("%q %s %s: %v", set, sh.q, how.name, rs.Err)
						c.Close(ctx)
						c = conn()
						c.PgConn().Exec(ctx, set).ReadAll()
						continue
					}
					if got, want := review21aSecrets(review21aRows(rs)), review21aExpect(sh.byID); got != want {
						t.Errorf("%q %s %s: %s; want %s", set, sh.q, how.name, got, want)
					}
				}
			}
			// A cursor.
			rs, err := c.PgConn().Exec(ctx, fmt.Sprintf(`BEGIN; DECLARE c21 CURSOR FOR SELECT id, secret FROM %s ORDER BY id; FETCH ALL FROM c21; COMMIT`, table)).ReadAll()
			if err != nil {
				t.Errorf("%q %s cursor: %v", set, table, err)
			} else if got, want := review21aSecrets(review21aRows(rs[2])), review21aExpect(true); got != want {
				t.Errorf("%q %s cursor: %s; want %s", set, table, got, want)
			}
			// JSON.
			rs2, err := c.PgConn().Exec(ctx, fmt.Sprintf(`SELECT id, json_build_object('s', secret) AS j, jsonb_build_array(secret, org) AS a FROM %s ORDER BY id`, table)).ReadAll()
			if err != nil {
				t.Errorf("%q %s JSON: %v", set, table, err)
			} else {
				for _, r := range review21aRows(rs2[0]) {
					var o map[string]any
					var a []any
					if err := json.Unmarshal([]byte(r["j"]), &o); err != nil || len(o) != 1 {
						t.Errorf("%q %s JSON %q: %v", set, table, r["j"], err)
						continue
					}
					if err := json.Unmarshal([]byte(r["a"]), &a); err != nil || len(a) != 2 {
						t.Errorf("%q %s JSON %q: %v", set, table, r["a"], err)
						continue
					}
					var id int
					fmt.Sscan(r["id"], &id)
					s, _ := o["s"].(string)
					s2, _ := a[0].(string)
					if s != review21aWant[id] || s2 != review21aWant[id] {
						t.Errorf("%q %s JSON row %d: %q %q; want %q", set, table, id, r["j"], r["a"], review21aWant[id])
					}
				}
			}
			// COPY TO, text, csv and binary; the columns listed and not.
			for _, q := range []string{
				`COPY %s (id, secret) TO STDOUT`, `COPY %s (id, org, secret) TO STDOUT (FORMAT csv)`,
				`COPY %s TO STDOUT (FORMAT binary)`, `COPY (SELECT id, org, secret FROM %s) TO STDOUT (FORMAT csv)`,
				`COPY (SELECT id, secret FROM %s) TO STDOUT (FORMAT binary)`,
			} {
				q = fmt.Sprintf(q, table)
				var buf bytes.Buffer
				if _, err := c.PgConn().CopyTo(ctx, &buf, q); err != nil {
					t.Errorf("%q %s: %v", set, q, err)
					c.Close(ctx)
					c = conn()
					c.PgConn().Exec(ctx, set).ReadAll()
					continue
				}
				got, err := review21aCopyRows(buf.Bytes(), q)
				if err != nil {
					t.Errorf("%q %s: %v", set, q, err)
				} else if want := review21aExpect(true); got != want {
					t.Errorf("%q %s: %s; want %s", set, q, got, want)
				}
			}
		}
		c.Close(ctx)
	}
}

// review21aCopyRows reads COPY output: id first, secret last.
func review21aCopyRows(b []byte, q string) (string, error) {
	var got []string
	switch {
	case strings.Contains(q, "binary"):
		const sig = "PGCOPY\n\xff\r\n\x00"
		if !bytes.HasPrefix(b, []byte(sig)) || len(b) < 19 {
			return "", fmt.Errorf("not a binary COPY")
		}
		ext := binary.BigEndian.Uint32(b[15:19])
		b = b[19+ext:]
		for {
			n := int16(binary.BigEndian.Uint16(b))
			b = b[2:]
			if n == -1 {
				break
			}
			var fields [][]byte
			for range n {
				l := int32(binary.BigEndian.Uint32(b))
				b = b[4:]
				if l < 0 {
					fields = append(fields, nil)
					continue
				}
				fields = append(fields, b[:l])
				b = b[l:]
			}
			got = append(got, fmt.Sprintf("%d=%s", int32(binary.BigEndian.Uint32(fields[0])), fields[len(fields)-1]))
		}
	case strings.Contains(q, "csv"):
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			f := strings.Split(line, ",")
			got = append(got, f[0]+"="+f[len(f)-1])
		}
	default:
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			f := strings.Split(line, "\t")
			s := f[len(f)-1]
			if s == `\N` {
				s = ""
			}
			got = append(got, f[0]+"="+s)
		}
	}
	sort.Strings(got)
	return strings.Join(got, ","), nil
}

// TestReview21aMovedFailsClosed: with on_error: error the moved value is
// PV001 in every session (review 20d's function switching DateStyle or
// extra_float_digits inside the statement included), while the rows of
// their own tenant open.
func TestReview21aMovedFailsClosed(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 3*time.Minute)
	_, conn := review21aEnv(t, ctx, "enc_review21a_strict")
	for _, set := range append(review21aSessions, "SET DateStyle = 'SQL, MDY'") {
		for _, ty := range review21aTypes {
			table := "r21e_" + ty.name
			for _, q := range []string{
				`SELECT secret FROM %s WHERE id = 3`,
				`SELECT id, org, secret FROM %s WHERE id = 3`,
				`SELECT f21_dmy(), secret FROM %s WHERE id = 3`,
				`SELECT f21_efd(), org, secret FROM %s WHERE id = 3`,
				`SELECT * FROM %s WHERE id = 3`,
			} {
				q = fmt.Sprintf(q, table)
				for _, mode := range []string{"simple", "binary"} {
					c := conn()
					if set != "" {
						if _, err := c.PgConn().Exec(ctx, set).ReadAll(); err != nil {
							t.Fatalf("%s: %v", set, err)
						}
					}
					var err error
					var rows [][][]byte
					if mode == "simple" {
						var rs []*pgconn.Result
						rs, err = c.PgConn().Exec(ctx, q).ReadAll()
						if err == nil {
							rows = rs[0].Rows
						}
					} else {
						rs := c.PgConn().ExecParams(ctx, q, nil, nil, nil, []int16{1}).Read()
						err, rows = rs.Err, rs.Rows
					}
					if err == nil || !strings.Contains(err.Error(), "PV001") {
						t.Errorf("%q %s (%s): %q, %v; want PV001", set, q, mode, rows, err)
					}
					c.Close(ctx)
				}
			}
			c := conn()
			if set != "" {
				c.PgConn().Exec(ctx, set).ReadAll()
			}
			rs, err := c.PgConn().Exec(ctx, fmt.Sprintf(`SELECT f21_dmy(), f21_efd(), id, org, secret FROM %s WHERE id < 3 ORDER BY id`, table)).ReadAll()
			if err != nil {
				t.Errorf("%q %s rows 1, 2: %v", set, table, err)
			} else if got := review21aSecrets(review21aRows(rs[0])); got != "1=s-1,2=s-2" {
				t.Errorf("%q %s rows 1, 2: %s", set, table, got)
			}
			c.Close(ctx)
		}
	}
}

// TestReview21aLookedUpUpdate: an UPDATE whose tenant pgveil looks up
// (no key_context in WHERE) seals under the row's own tenant in every
// session (simple and extended), and the value reads back in another
// session; the move check (SET org) sees the rows as they are.
func TestReview21aLookedUpUpdate(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 3*time.Minute)
	_, conn := review21aEnv(t, ctx, "enc_review21a_update")
	for i, set := range review21aSessions {
		c := conn()
		if set != "" {
			if _, err := c.PgConn().Exec(ctx, set).ReadAll(); err != nil {
				t.Fatalf("%s: %v", set, err)
			}
		}
		for _, ty := range review21aTypes {
			table := "r21_" + ty.name
			for _, id := range []int{1, 2} {
				v := fmt.Sprintf("u%d-%d-s", i, id)
				if _, err := c.PgConn().Exec(ctx, fmt.Sprintf(`UPDATE %s SET secret = '%s' WHERE id = %d`, table, v, id)).ReadAll(); err != nil {
					t.Errorf("%q %s simple UPDATE of row %d: %v", set, table, id, err)
					continue
				}
				if err := review19cReads(ctx, c, table, id, v); err != nil {
					t.Errorf("%q %s row %d after the simple UPDATE: %v", set, table, id, err)
				}
				v = fmt.Sprintf("u%d-%d-e", i, id)
				if _, err := c.Exec(ctx, fmt.Sprintf(`UPDATE %s SET secret = $1 WHERE id = $2`, table), v, id); err != nil {
					t.Errorf("%q %s extended UPDATE of row %d: %v", set, table, id, err)
					continue
				}
				c2 := conn()
				if err := review19cReads(ctx, c2, table, id, v); err != nil {
					t.Errorf("%q %s row %d after the extended UPDATE, in a default session: %v", set, table, id, err)
				}
				c2.Close(ctx)
			}
			// Rows of two tenants: refused, whatever they print as.
			if _, err := c.PgConn().Exec(ctx, fmt.Sprintf(`UPDATE %s SET secret = 'x' WHERE id IN (1, 2)`, table)).ReadAll(); err == nil || !strings.Contains(err.Error(), "more than one tenant") {
				t.Errorf("%q %s UPDATE of rows of two tenants: %v; want refused", set, table, err)
			}
		}
		c.Close(ctx)
	}
}

// TestReview21aByOriginAndReturning: a * over a relation pgveil's catalog
// does not list (the fields are then mapped by origin, and the send field
// by its table), a view, and INSERT/UPDATE/DELETE … RETURNING, under
// settings that print the tenants alike.
func TestReview21aByOriginAndReturning(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 3*time.Minute)
	var views []string
	for _, ty := range review21aTypes {
		views = append(views, fmt.Sprintf(`CREATE VIEW v21_%s AS SELECT id, org, secret FROM r21_%s`, ty.name, ty.name))
	}
	e, conn := review21aEnv(t, ctx, "enc_review21a_origin", views...)
	d := e.conn(ctx)
	// Created after pgveil's catalog snapshot: not listed.
	if _, err := d.Exec(ctx, `CREATE TABLE r21_other (x int); INSERT INTO r21_other VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{"SET DateStyle = 'SQL, DMY'; SET extra_float_digits = 0", "SET DateStyle = 'German'; SET TimeZone = 'Asia/Tokyo'; SET extra_float_digits = -15"} {
		c := conn()
		if _, err := c.PgConn().Exec(ctx, set).ReadAll(); err != nil {
			t.Fatal(err)
		}
		for i, ty := range review21aTypes {
			table := "r21_" + ty.name
			for _, q := range []string{
				`SELECT * FROM r21_other o, %s t ORDER BY t.id`,
				`SELECT t.*, o.* FROM %s t CROSS JOIN r21_other o ORDER BY t.id`,
				`SELECT * FROM v21_` + ty.name + ` ORDER BY id -- %s`,
			} {
				q = fmt.Sprintf(q, table)
				for _, formats := range [][]int16{nil, {1}} {
					rs := c.PgConn().ExecParams(ctx, q, nil, nil, nil, formats).Read()
					if rs.Err != nil {
						t.Errorf("%q %s %v: %v", set, q, formats, rs.Err)
						c.Close(ctx)
						c = conn()
						c.PgConn().Exec(ctx, set).ReadAll()
						continue
					}
					if got, want := review21aSecrets(review21aRows(rs)), review21aExpect(true); got != want {
						t.Errorf("%q %s %v: %s; want %s", set, q, formats, got, want)
					}
				}
			}
			id := 10 + i
			for _, q := range []string{
				fmt.Sprintf(`INSERT INTO %s (id, org, secret) VALUES (%d, '%s', 'ins') RETURNING id, secret`, table, id, ty.b),
				fmt.Sprintf(`UPDATE %s SET secret = 'upd' WHERE id = %d AND org = '%s' RETURNING id, org, secret`, table, id, ty.b),
				fmt.Sprintf(`DELETE FROM %s WHERE id = %d RETURNING secret`, table, id),
			} {
				rs, err := c.PgConn().Exec(ctx, q).ReadAll()
				if err != nil {
					t.Errorf("%q %s: %v", set, q, err)
					continue
				}
				rows := review21aRows(rs[0])
				if want := map[byte]string{'I': "ins", 'U': "upd", 'D': "upd"}[q[0]]; len(rows) != 1 || rows[0]["secret"] != want {
					t.Errorf("%q %s: %v; want %s", set, q, rows, want)
				}
			}
			// The moved value through RETURNING fails closed too.
			rs, err := c.PgConn().Exec(ctx, fmt.Sprintf(`UPDATE %s SET id = id WHERE id = 3 RETURNING id, secret`, table)).ReadAll()
			if err != nil || len(rs[0].Rows) != 1 || rs[0].Rows[0][1] != nil {
				t.Errorf("%q %s: RETURNING of the moved row: %v %v; want NULL", set, table, review20bRows(rs), err)
			}
		}
		c.Close(ctx)
	}
}
