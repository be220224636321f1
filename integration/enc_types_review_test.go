package integration

// Review of the conversions between a client's values of each logical
// type and what pgveil seals and indexes (keysource/canon, proxy/encrypt.go,
// proxy/decrypt.go, rewrite's value casts), end to end: the real pgveil
// binary in front of PostgreSQL 15. The oracle is PostgreSQL itself: every
// value is also written, the same way, into a plain mirror table (the
// logical types, no encryption) on a direct superuser connection, and
// pgveil must store, return and match exactly what the mirror does.
//
// All fixed in the commits after it (see each test): EmptyReadAsNull,
// DeclaredFloat, AcceptsInvalid, NumericInfinity and VarcharParamType by
// matching PostgreSQL; ShortYearDate and CastIgnored by refusing what
// pgveil cannot do as PostgreSQL does (a two-digit year, whose order the
// session's DateStyle decides: 22P02; a cast that would change the value
// pgveil encrypts as written: 42804).
//
// Failing at the time of the review (defects):
//
//   TestTypesReviewFoundEmptyReadAsNull   MEDIUM (value read back
//       differently). '' in a text, varchar or 'pgv1:'-text column (and an
//       empty bytea in binary format) reads back as NULL on a session that
//       has not yet opened a non-empty value: DataRows (simple/extended,
//       text/binary) and COPY (…) TO STDOUT (\N; CSV unquoted empty). A
//       pooled app scanning into string gets "cannot scan NULL"; an export
//       turns '' into NULL. Cause: proxy/decrypt.go decryptRow, arena :=
//       s.rowArena[:0] is nil on a fresh session and
//       arena[sp.start:sp.end:sp.end] of it is nil, taken for NULL by the
//       DataRow writer and by copy.go copyOutRow (Null: v == nil).
//
//   TestTypesReviewFoundShortYearDate   MEDIUM (wrong value stored; the same
//       misreading in WHERE matches the wrong row). A date or timestamp
//       with a 2-digit first field, '01-02-03', is 2003-01-02 to
//       PostgreSQL (DateStyle ISO, MDY, the default; with YMD it is
//       2001-02-03); pgveil stores 0001-02-03. `WHERE c_date = '01-02-03'`
//       returns the row written as '0001-02-03' and misses the one holding
//       2003-01-02. Cause: keysource/canon/datetime.go scanner.date reads
//       the first field as the year whatever its width (number(9)), where
//       PostgreSQL's DecodeDate takes fields of 1-2 digits by DateStyle
//       and adjusts 2-digit years. FORMAT.md promises "ISO order only";
//       the value should be refused, not read as year 1.
//
//   TestTypesReviewFoundCastIgnored   MEDIUM (value stored differs from
//       PostgreSQL's), HIGH by the brief's rubric for the lookup (a WHERE
//       with such a cast matches a row PostgreSQL does not match). A cast on
//       a literal "in the column's family" is removed and the literal read
//       as the column's input, so the cast's own semantics are lost:
//       '1.555'::numeric(5,2) stores 1.555 (PG 1.56), 'abcdef'::varchar(3)
//       stores abcdef (PG abc), '… 10:00:00.6'::timestamp(0) keeps .6 (PG
//       10:00:01), 2.7::int4 into numeric stores 2.7 (PG 3),
//       '2024-01-02 10:00:00+05'::timestamptz into timestamp stores 10:00
//       (PG 05:00 under TimeZone UTC), '{"b":1,"a":1}'::jsonb into json
//       keeps the text (PG {"a": 1, "b": 1}), 40000::int2 into int4 is
//       stored (PG: smallint out of range). `WHERE c_numeric =
//       '1.555'::numeric(5,2)` returns the 1.555 row and misses the 1.56
//       one. Cause: rewrite/values.go castFits (and analyzer.classify)
//       accept any cast of the family, typmods and narrowing casts
//       included, and drop it; proxy/encrypt.go fillLiteral then reads
//       the bare literal with canon.Plaintext(col.Type, …).
//
//   TestTypesReviewFoundDeclaredFloat   MEDIUM (value stored differs). A
//       parameter declared float8 (pgjdbc's setDouble) or float4
//       (setFloat) for a numeric column: PostgreSQL's assignment
//       float8→numeric keeps 15 significant digits (0.1+0.2 → 0.3,
//       float4 1.1 → 1.1); pgveil stores 0.30000000000000004 and
//       1.100000023841858. A parameter declared bool for a text column:
//       PostgreSQL stores 'true' (booltext), pgveil 't'. Cause:
//       keysource/canon/declared.go fromDeclared (strconv.AppendFloat
//       'g' -1, and Wire's canonical 't' for bool).
//
//   TestTypesReviewFoundAcceptsInvalid   MEDIUM (invalid input stored, by the
//       brief's rubric; each stored value still opens). PostgreSQL refuses,
//       pgveil seals and stores: uuid ' a0eebc99-…-6bb9bd380a11 ' (uuid_in
//       skips no white space; canon uuidText trims), date
//       '2024-01-02 99:99:99' and '2024-01-02 ----' (canon
//       scanner.skipTimeOfDay skips any run of digits, ':', '.', '+', '-',
//       'Z' and spaces unchecked), date '5874898-01-01' and binary date
//       2147483494 (canon maxDate is 2147483494, PostgreSQL's
//       DATE_END_JULIAN, a Julian day, not days since 2000: END_DATE is
//       2145031949, so every date from 5874898-01-01 to 5881610-02-08 is
//       accepted), numeric '1e0x10' (canon numericText reads the exponent
//       with parseInt, which takes 0x/0o/0b prefixes), bytea
//       '\x0a\v0b' (canon isSpace includes \v and \f; hex_decode skips
//       only ' ', \t, \n, \r).
//
//   TestTypesReviewFoundNumericInfinity   LOW. numeric 'inf', '-inf',
//       '+inf' (PostgreSQL 15 takes them) refused, 22P02; binary ±Infinity
//       sent with dscale 0 where numeric_send sends 32 (same value, other
//       bytes). Cause: canon numericText / numericBinaryOut.
//
//   TestTypesReviewFoundVarcharParamType   LOW. `c_varchar = $1`:
//       ParameterDescription varchar (1043), PostgreSQL text (25). Cause:
//       proxy/decrypt.go clientParamOIDs (Column.Type.OID for Index).
//
// Attacks withstood: TestTypesReviewHoldsRoundTrip (every logical type,
// edge values, written as a text parameter, a binary parameter and a SQL
// literal, read back in text and binary: equal bytes to the mirror; blind
// index lookups with equal spellings in text, binary and literal form find
// exactly the rows the mirror's = finds; invalid input refused with a
// class 22 SQLSTATE, nothing stored, not logged; RowDescription and
// ParameterDescription OIDs and typmods as the mirror's).
// TestTypesReviewHoldsCopy (the same values COPY'd in text, CSV and
// binary: COPY TO output byte-equal to the mirror's; '' placed after a
// non-empty value, see FoundEmptyReadAsNull).
// TestTypesReviewHoldsSessionTimeZone: under TimeZone
// America/New_York, binary timestamptz results and lookups are right.
//
// Documented, not reported as defects (FORMAT.md: "Text output is
// PostgreSQL's own with DateStyle=ISO, TimeZone=UTC, bytea_output=hex"):
// text output of timestamptz under another TimeZone (+00 instead of the
// session's offset), bytea under bytea_output=escape, dates under
// DateStyle SQL/German; int input in PostgreSQL 16 syntax (0x10, 1_000)
// accepted over a PostgreSQL 15 server; numeric exponents over 1000
// refused (PostgreSQL 15 accepts '1e1001'). Refused where PostgreSQL
// accepts, LOW, not tested: '+530' as a zone (PG: +05:30), '10:5:3' as a
// time, a float8 parameter 2.5 for an int4 column (PG: 2), numeric literal
// 1.5 for an int4 column (PG: 2). All errors of canon are 22P02 (PG:
// 22003 out of range, 22007/22008 datetime, 22021 encoding): same class.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// trCols are the encrypted columns of et, one per logical type (c_ttext
// is a text column holding 'pgv1:' envelopes), and the mirror's types.
var trCols = []struct{ name, typ string }{
	{"c_text", "text"}, {"c_ttext", "text"}, {"c_varchar", "varchar"},
	{"c_int2", "int2"}, {"c_int4", "int4"}, {"c_int8", "int8"},
	{"c_numeric", "numeric"}, {"c_bool", "bool"}, {"c_date", "date"},
	{"c_ts", "timestamp"}, {"c_tstz", "timestamptz"}, {"c_uuid", "uuid"},
	{"c_json", "json"}, {"c_jsonb", "jsonb"}, {"c_bytea", "bytea"},
}

func trPolicy() string {
	var b strings.Builder
	b.WriteString("tables:\n  public.et:\n    columns:\n")
	for _, c := range trCols {
		fmt.Fprintf(&b, "      %s:\n        type: %s\n        blind_index:\n          column: %s_bidx\n", c.name, c.typ, c.name)
	}
	return b.String()
}

// trEnv is pgveil with the types policy, a connection through it and a
// direct one, both at TimeZone UTC.
type trEnv struct {
	t      *testing.T
	ctx    context.Context
	px     *pgconn.PgConn // through pgveil
	su     *pgconn.PgConn // direct
	url    string
	log    string
	nextID int
}

func newTrEnv(t *testing.T, db string) *trEnv {
	t.Helper()
	ctx := testCtx(t, 4*time.Minute)
	e := newOpsEnv(t, db, trPolicy())
	su := e.conn(ctx)
	var ddl strings.Builder
	ddl.WriteString("CREATE TABLE pt (id int8 PRIMARY KEY")
	for _, c := range trCols {
		fmt.Fprintf(&ddl, ", %s %s", c.name, c.typ)
	}
	ddl.WriteString(");\nCREATE TABLE et (id int8 PRIMARY KEY")
	for _, c := range trCols {
		phys := "bytea"
		if c.name == "c_ttext" {
			phys = "text"
		}
		fmt.Fprintf(&ddl, ", %s %s, %s_bidx bytea", c.name, phys, c.name)
	}
	ddl.WriteString(");")
	if _, err := su.Exec(ctx, ddl.String()); err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(e.config(""), "level: "+logLevel(), "level: debug", 1)
	cfg := e.writeConfig("pgveil.yaml", conf)
	e.run(ctx, 0, "migrate", "-c", cfg, "--apply")
	p := e.proxy(conf)
	r := &trEnv{t: t, ctx: ctx, su: su.PgConn(), url: e.appURL(p), log: p.LogPath, nextID: 1}
	r.px = r.connect()
	for _, c := range []*pgconn.PgConn{r.px, r.su} {
		if _, err := c.Exec(ctx, `SET TimeZone = 'UTC'`).ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (r *trEnv) connect() *pgconn.PgConn {
	r.t.Helper()
	c, err := pgconn.Connect(r.ctx, r.url)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// logHas reports which of needles pgveil's log contains.
func (r *trEnv) logHas(needles ...string) []string {
	b, err := os.ReadFile(r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []string
	for _, n := range needles {
		if strings.Contains(string(b), n) {
			out = append(out, n)
		}
	}
	return out
}

// trExec runs one extended-protocol statement and returns its rows.
func trExec(ctx context.Context, c *pgconn.PgConn, sql string, params [][]byte, oids []uint32, formats []int16, resultFormat int16) ([][][]byte, error) {
	res := c.ExecParams(ctx, sql, params, oids, formats, []int16{resultFormat}).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	var out [][][]byte
	for _, row := range res.Rows {
		var vals [][]byte
		for _, v := range row {
			if v == nil {
				vals = append(vals, nil)
			} else {
				vals = append(vals, append([]byte{}, v...))
			}
		}
		out = append(out, vals)
	}
	return out, nil
}

func trState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return "(not a server error: " + err.Error() + ")"
}

// trShow quotes a value, NULL as <NULL>.
func trShow(v []byte) string {
	if v == nil {
		return "<NULL>"
	}
	return fmt.Sprintf("%q", v)
}

func quoteLit(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// binaryOf is PostgreSQL's binary form of the text v of type typ.
func (r *trEnv) binaryOf(typ, v string) ([]byte, error) {
	rows, err := trExec(r.ctx, r.su, "SELECT $1::"+typ, [][]byte{[]byte(v)}, nil, nil, 1)
	if err != nil {
		return nil, err
	}
	return rows[0][0], nil
}

// value reads column col of row id through c in format f.
func (r *trEnv) value(c *pgconn.PgConn, table, col string, id, f int) ([]byte, bool, error) {
	rows, err := trExec(r.ctx, c, "SELECT "+col+" FROM "+table+" WHERE id = $1", [][]byte{[]byte(strconv.Itoa(id))}, nil, nil, int16(f))
	if err != nil || len(rows) == 0 {
		return nil, false, err
	}
	return rows[0][0], true, nil
}

// write writes v into column col of a new row: into the mirror directly
// and into et through pgveil as a text parameter, a binary parameter (the
// mirror's binary form of v) and a SQL literal (simple protocol). It
// returns problems found and the mirror's id (0 when PostgreSQL refused v).
func (r *trEnv) write(col, typ, v string) (int, []string) {
	var probs []string
	id := r.nextID
	r.nextID++
	ids := []byte(strconv.Itoa(id))
	_, errD := trExec(r.ctx, r.su, "INSERT INTO pt (id, "+col+") VALUES ($1, $2)", [][]byte{ids, []byte(v)}, nil, nil, 0)
	_, errP := trExec(r.ctx, r.px, "INSERT INTO et (id, "+col+") VALUES ($1, $2)", [][]byte{ids, []byte(v)}, nil, nil, 0)
	litID := id + 20000
	_, errL := r.px.Exec(r.ctx, fmt.Sprintf("INSERT INTO et (id, %s) VALUES (%d, %s)", col, litID, quoteLit(v))).ReadAll()
	if errD != nil {
		for _, w := range []struct {
			how string
			err error
			id  int
		}{{"text parameter", errP, id}, {"literal", errL, litID}} {
			if w.err == nil {
				stored, _, _ := r.value(r.su, "et", col, w.id, 0)
				probs = append(probs, fmt.Sprintf("%s %q as a %s: PostgreSQL refuses (%s), pgveil stores it (%d bytes sealed)", col, v, w.how, trState(errD), len(stored)))
				continue
			}
			if got, want := trState(w.err), trState(errD); got[:2] != want[:2] {
				probs = append(probs, fmt.Sprintf("%s %q as a %s: SQLSTATE %s, PostgreSQL %s", col, v, w.how, got, want))
			}
			if _, found, _ := r.value(r.su, "et", col, w.id, 0); found {
				probs = append(probs, fmt.Sprintf("%s %q as a %s: refused but a row was stored", col, v, w.how))
			}
		}
		return 0, probs
	}
	if errP != nil {
		return 0, append(probs, fmt.Sprintf("%s %q as a text parameter: pgveil refuses (%v), PostgreSQL accepts", col, v, errP))
	}
	if errL != nil {
		probs = append(probs, fmt.Sprintf("%s %q as a literal: pgveil refuses (%v), PostgreSQL accepts", col, v, errL))
	}
	bin, err := r.binaryOf(typ, v)
	if err != nil {
		return 0, append(probs, fmt.Sprintf("binary of %s %q directly: %v", typ, v, err))
	}
	if _, err := trExec(r.ctx, r.px, "INSERT INTO et (id, "+col+") VALUES ($1, $2)", [][]byte{[]byte(strconv.Itoa(id + 10000)), bin}, nil, []int16{0, 1}, 0); err != nil {
		probs = append(probs, fmt.Sprintf("%s %q as a binary parameter: pgveil refuses (%v), PostgreSQL accepts", col, v, err))
	}
	for _, pid := range []int{id, id + 10000, litID} {
		for f := 0; f <= 1; f++ {
			want, _, err := r.value(r.su, "pt", col, id, f)
			if err != nil {
				probs = append(probs, fmt.Sprintf("%s %q read directly in format %d: %v", col, v, f, err))
				continue
			}
			got, found, err := r.value(r.px, "et", col, pid, f)
			if err != nil || !found {
				if errL == nil || pid != litID {
					probs = append(probs, fmt.Sprintf("%s %q (row %d) read in format %d through pgveil: %v (found %v)", col, v, pid, f, err, found))
				}
				continue
			}
			if string(got) != string(want) || (got == nil) != (want == nil) {
				probs = append(probs, fmt.Sprintf("%s %q (row %d, written as %s) read in format %d: pgveil %s, PostgreSQL %s", col, v, pid, map[int]string{id: "text parameter", id + 10000: "binary parameter", litID: "literal"}[pid], f, trShow(got), trShow(want)))
			}
		}
	}
	return id, probs
}

// lookup compares the rows `col = v` finds in et through pgveil (v as a
// text parameter, a binary parameter and a literal) with the rows the
// mirror's = finds (json, which has no =, by its text).
func (r *trEnv) lookup(col, typ, v string) []string {
	var probs []string
	mcond := col + " = $1"
	if typ == "json" {
		mcond = col + "::text = $1::json::text"
	}
	rows, errD := trExec(r.ctx, r.su, "SELECT id FROM pt WHERE "+mcond+" ORDER BY id", [][]byte{[]byte(v)}, nil, nil, 0)
	if errD != nil {
		return nil // not a value of the type: write() checks the refusal
	}
	var want []string
	for _, row := range rows {
		want = append(want, string(row[0]))
	}
	norm := func(rows [][][]byte) []string {
		var out []string
		for _, row := range rows {
			id, _ := strconv.Atoi(string(row[0]))
			out = append(out, strconv.Itoa(id%10000))
		}
		slices.SortFunc(out, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
		return slices.Compact(out)
	}
	q := "SELECT id FROM et WHERE " + col + " = $1 ORDER BY id"
	got, err := trExec(r.ctx, r.px, q, [][]byte{[]byte(v)}, nil, nil, 0)
	if err != nil {
		probs = append(probs, fmt.Sprintf("%s = %q (text parameter): %v", col, v, err))
	} else if g := norm(got); !slices.Equal(g, want) {
		probs = append(probs, fmt.Sprintf("%s = %q (text parameter): pgveil rows %v, PostgreSQL rows %v", col, v, g, want))
	}
	bin, err := r.binaryOf(typ, v)
	if err != nil {
		return append(probs, fmt.Sprintf("binary of %s %q directly: %v", typ, v, err))
	}
	got, err = trExec(r.ctx, r.px, q, [][]byte{bin}, nil, []int16{1}, 0)
	if err != nil {
		probs = append(probs, fmt.Sprintf("%s = %q (binary parameter): %v", col, v, err))
	} else if g := norm(got); !slices.Equal(g, want) {
		probs = append(probs, fmt.Sprintf("%s = %q (binary parameter): pgveil rows %v, PostgreSQL rows %v", col, v, g, want))
	}
	res, err := r.px.Exec(r.ctx, "SELECT id FROM et WHERE "+col+" = "+quoteLit(v)+" ORDER BY id").ReadAll()
	if err != nil {
		probs = append(probs, fmt.Sprintf("%s = %s (literal): %v", col, quoteLit(v), err))
	} else if g := norm(res[0].Rows); !slices.Equal(g, want) {
		probs = append(probs, fmt.Sprintf("%s = %s (literal): pgveil rows %v, PostgreSQL rows %v", col, quoteLit(v), g, want))
	}
	return probs
}

// trValues are edge values of each type; those PostgreSQL refuses must be
// refused, the others stored and read back as PostgreSQL does. Spellings
// of the same value are lookup probes of each other.
var trValues = map[string][]string{
	"c_text":    {"a", "", "A", " a ", "héllo wörld 😀", "\u2028\t\n\\'\"", "pgv1:AAAA", strings.Repeat("long ", 20000), "Straße", "STRASSE", "İstanbul", "istanbul"},
	"c_ttext":   {"a", "", "pgv1:" + strings.Repeat("A", 60), "\\x00", strings.Repeat("ü", 5000)},
	"c_varchar": {"", "v", "V", strings.Repeat("x", 300)},
	"c_int2":    {"-32768", "32767", "0", "-0", "007", " +7 ", "7", "32768", "-32769", "abc", "1.5", "", " ", "- 1"},
	"c_int4":    {"-2147483648", "2147483647", "2147483648", "42", "0042", "+42", "4 2", "1e3", "zq-int4-secret-9w"},
	"c_int8":    {"-9223372036854775808", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1", "01", "x1"},
	"c_numeric": {"1.50", "1.5", "1.500", "15e-1", "+1.5", "0.150E1", "0", "0.00", "-0", "-0.0", "NaN", "nan",
		"123456789012345678901234567890.123456789012345678901234567890", "1e-20", "0.00000000000000000001", "1.5e2", "150", ".5", "5.", "0.5",
		"1e1000", "-1e-1000", "99999999999999999999999999999999999999e-50", "1,5", "1.2.3", "e5", "zq-num-secret-4k"},
	"c_bool": {"t", "true", "TRUE", " yes ", "y", "on", "1", "tr", "f", "false", "No", "off", "0", "o", "2", "yesno", "zq-bool-secret"},
	"c_date": {"2024-02-29", "2024-1-2", "2024-01-02", "2024-01-02 AD", "0044-03-15 BC", "4714-11-24 BC", "4714-11-23 BC", "5874897-12-31", "infinity", "-infinity", "epoch", "1970-01-01",
		"2023-02-29", "2024-13-01", "2024-00-10", "0000-01-01", "2024-01-02 10:00:00", "2024-01-02T10:00:00+02", "zq-date-secret"},
	"c_ts": {"2024-02-29 23:59:59.999999", "2024-02-29T23:59:59.999999", "2024-01-02 03:04:05", "2024-01-02 03:04:05.000000", "2024-01-02 03:04", "2024-01-02", "2024-01-02 03:04:05.5", "2024-01-02 03:04:05.50",
		"2024-01-02 03:04:05.0000005", "2024-01-02 03:04:05.0000015", "2024-01-02 23:59:59.9999999", "2024-01-02 24:00:00", "2024-01-02 23:59:60", "2024-01-02 03:04:05+05", "2024-01-02 03:04:05Z",
		"0044-03-15 10:00:00 BC", "4714-11-24 00:00:00 BC", "294276-12-31 23:59:59.999999", "294277-01-01 00:00:00", "infinity", "-infinity", "epoch", "2024-01-02 25:00:00", "2024-01-02 10:60:00", "zq-ts-secret"},
	"c_tstz": {"2024-01-02 10:00:00+00", "2024-01-02 10:00:00Z", "2024-01-02 15:30:00+05:30", "2024-01-02 05:00:00-05", "2024-01-02 11:00:00+0100", "2024-01-02T10:00:00.123456Z", "2024-01-02 10:00:00.1234565+00",
		"2024-01-02 10:00:00 UTC", "2024-01-02 10:00:00 GMT", "2024-01-02 10:00:00+14:59:59", "2024-01-02 10:00:00+16", "0044-03-15 10:00:00+00 BC", "infinity", "-infinity", "epoch", "2024-01-02 10:00:00+00:00:30"},
	"c_uuid": {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "a0eebc999c0b4ef8bb6d6bb9bd380a11", "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
		"00000000-0000-0000-0000-000000000000", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11", "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	"c_json": {`{"b":1,"a":2}`, `{"a":2,"b":1}`, `{"b": 1, "a": 2}`, `{"a":1,"a":2}`, ` [1, 2.50, 1e2] `, `"\u00e9\u0000"`, `null`, `"x"`, `{"a":}`, `{'a':1}`, `[1,]`, `01`, ``},
	"c_jsonb": {`{"b":1,"a":2}`, `{"a":2,"b":1}`, `{"b": 1, "a": 2}`, `{"a":1,"a":2}`, `{"a":2}`, `{"a":2.0}`, `{"a":2.00}`, `{"a":20e-1}`, ` [1, 2.50, 1e2, -0, -0.0] `, `"\u00e9\/\u001f\b"`, `"é/\u001f\b"`, `null`, `{"aa":1,"b":2}`,
		`"\u0000"`, `"\ud800"`, `{"a":}`, `[1,]`, `1e1000`, ``},
	"c_bytea": {`\x00ff`, `\x00FF`, `\x 00 ff`, `\000\377`, `\x`, ``, `abc`, `\x616263`, `a\\b`, `\x0`, `\xzz`, `\9`, `\400`},
}

// TestTypesReviewHoldsRoundTrip: every value of trValues, written three
// ways, reads back as the mirror returns it; lookups with each spelling
// find what the mirror's = finds; refused values are refused as
// PostgreSQL refuses them, and never logged; RowDescription and
// ParameterDescription as the mirror's.
func TestTypesReviewHoldsRoundTrip(t *testing.T) {
	r := newTrEnv(t, "ops_types_review")
	var secrets []string
	for _, c := range trCols {
		t.Run(c.name, func(t *testing.T) {
			for _, v := range trValues[c.name] {
				if strings.HasPrefix(v, "zq-") {
					secrets = append(secrets, v)
				}
				_, probs := r.write(c.name, c.typ, v)
				for _, p := range probs {
					t.Error(p)
				}
			}
			for _, v := range trValues[c.name] {
				for _, p := range r.lookup(c.name, c.typ, v) {
					t.Error(p)
				}
			}
		})
	}
	t.Run("descriptions", func(t *testing.T) {
		for _, c := range trCols {
			sd, err := r.su.Prepare(r.ctx, "", "SELECT "+c.name+" FROM pt WHERE "+c.name+" IS NOT NULL AND id = $1", nil)
			if err != nil {
				t.Fatal(err)
			}
			sp, err := r.px.Prepare(r.ctx, "", "SELECT "+c.name+" FROM et WHERE "+c.name+" IS NOT NULL AND id = $1", nil)
			if err != nil {
				t.Fatal(err)
			}
			w, g := sd.Fields[0], sp.Fields[0]
			if g.DataTypeOID != w.DataTypeOID || g.TypeModifier != w.TypeModifier || g.DataTypeSize != w.DataTypeSize {
				t.Errorf("%s RowDescription: pgveil oid %d typmod %d size %d, PostgreSQL %d %d %d", c.name, g.DataTypeOID, g.TypeModifier, g.DataTypeSize, w.DataTypeOID, w.TypeModifier, w.DataTypeSize)
			}
			sd, err = r.su.Prepare(r.ctx, "", "INSERT INTO pt (id, "+c.name+") VALUES ($1, $2)", nil)
			if err != nil {
				t.Fatal(err)
			}
			sp, err = r.px.Prepare(r.ctx, "", "INSERT INTO et (id, "+c.name+") VALUES ($1, $2)", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sd.ParamOIDs, sp.ParamOIDs) {
				t.Errorf("%s ParameterDescription: pgveil %v, PostgreSQL %v", c.name, sp.ParamOIDs, sd.ParamOIDs)
			}
			if c.typ == "json" {
				continue
			}
			sd, err = r.su.Prepare(r.ctx, "", "SELECT id FROM pt WHERE "+c.name+" = $1", nil)
			if err != nil {
				t.Fatal(err)
			}
			sp, err = r.px.Prepare(r.ctx, "", "SELECT id FROM et WHERE "+c.name+" = $1", nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.typ == "varchar" {
				continue // TestTypesReviewFoundVarcharParamType
			}
			if !slices.Equal(sd.ParamOIDs, sp.ParamOIDs) {
				t.Errorf("%s = $1 ParameterDescription: pgveil %v, PostgreSQL %v", c.name, sp.ParamOIDs, sd.ParamOIDs)
			}
		}
	})
	if leaked := r.logHas(secrets...); len(leaked) > 0 {
		t.Errorf("pgveil's log holds refused values: %q", leaked)
	}
}

// trFound runs values of one column through write and lookup and reports
// every problem.
func trFound(t *testing.T, r *trEnv, col, typ string, values ...string) {
	t.Helper()
	for _, v := range values {
		_, probs := r.write(col, typ, v)
		for _, p := range probs {
			t.Error(p)
		}
	}
	for _, v := range values {
		for _, p := range r.lookup(col, typ, v) {
			t.Error(p)
		}
	}
}

// TestTypesReviewFoundShortYearDate (MEDIUM): '01-02-03' is 2003-01-02 to
// PostgreSQL (DateStyle ISO, MDY) and 0001-02-03 to pgveil; the lookup
// with it finds the row written as 0001-02-03.
//
// Fixed by refusing: pgveil does not guess the session's DateStyle order,
// so a year of one or two digits is refused (22P02) in writes and
// lookups alike; a full year works as PostgreSQL's.
func TestTypesReviewFoundShortYearDate(t *testing.T) {
	r := newTrEnv(t, "ops_types_review_date")
	trFound(t, r, "c_date", "date", "0001-02-03", "2003-01-02", "0044-03-15 BC", "044-03-15 BC")
	trFound(t, r, "c_ts", "timestamp", "0001-02-03 04:05:06", "2003-01-02 04:05:06")
	for _, c := range []struct{ col, v string }{{"c_date", "01-02-03"}, {"c_date", "44-03-15 BC"}, {"c_ts", "01-02-03 04:05:06"}} {
		for _, sql := range []string{
			fmt.Sprintf("INSERT INTO et (id, %s) VALUES (990, '%s')", c.col, c.v),
			fmt.Sprintf("SELECT id FROM et WHERE %s = '%s'", c.col, c.v),
		} {
			_, err := r.px.Exec(r.ctx, sql).ReadAll()
			if err == nil || trState(err) != "22P02" {
				t.Errorf("%s: %v, want pgveil's 22P02 (a two-digit year depends on DateStyle)", sql, err)
			}
		}
	}
}

// trLitCase is one literal written (or compared) with a cast through
// pgveil and directly.
type trLitCase struct{ col, lit string }

// TestTypesReviewFoundCastIgnored (MEDIUM; HIGH for the lookup by the
// brief's rubric): casts of the column's family on a literal are dropped,
// their typmods and conversions with them.
func TestTypesReviewFoundCastIgnored(t *testing.T) {
	r := newTrEnv(t, "ops_types_review_cast")
	for i, c := range []trLitCase{
		{"c_numeric", `'1.555'::numeric(5,2)`},
		{"c_varchar", `'abcdef'::varchar(3)`},
		{"c_text", `CAST('abcdef' AS varchar(3))`},
		{"c_ts", `'2024-01-02 10:00:00.6'::timestamp(0)`},
		{"c_numeric", `2.7::int4`},
		{"c_ts", `'2024-01-02 10:00:00+05'::timestamptz`},
		{"c_json", `'{"b":1,"a":1}'::jsonb`},
		{"c_int4", `40000::int2`},
	} {
		id := 500 + i
		_, errD := r.su.Exec(r.ctx, fmt.Sprintf("INSERT INTO pt (id, %s) VALUES (%d, %s)", c.col, id, c.lit)).ReadAll()
		_, errP := r.px.Exec(r.ctx, fmt.Sprintf("INSERT INTO et (id, %s) VALUES (%d, %s)", c.col, id, c.lit)).ReadAll()
		switch {
		case errD != nil && errP == nil:
			got, _, _ := r.value(r.px, "et", c.col, id, 0)
			t.Errorf("%s = %s: PostgreSQL refuses (%s), pgveil stores %q", c.col, c.lit, trState(errD), got)
			continue
		case errD != nil:
			continue
		case errP != nil:
			// Fixed by refusing a cast that changes the value (42804):
			// pgveil encrypts the value as written, not as cast.
			if trState(errP) != "42804" {
				t.Errorf("%s = %s: pgveil refuses with %v, want 42804 (a cast that changes the value)", c.col, c.lit, errP)
			}
			continue
		}
		want, _, _ := r.value(r.su, "pt", c.col, id, 0)
		got, _, _ := r.value(r.px, "et", c.col, id, 0)
		if string(got) != string(want) {
			t.Errorf("INSERT … %s = %s: pgveil stores %q, PostgreSQL %q", c.col, c.lit, got, want)
		}
	}
	// The lookup: a row holding 1.555 and one holding 1.56.
	for _, row := range []struct {
		id int
		v  string
	}{{601, "1.555"}, {602, "1.56"}} {
		r.super(t, fmt.Sprintf("INSERT INTO pt (id, c_numeric) VALUES (%d, %s)", row.id, row.v))
		if _, err := r.px.Exec(r.ctx, fmt.Sprintf("INSERT INTO et (id, c_numeric) VALUES (%d, '%s')", row.id, row.v)).ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	q := `SELECT id FROM %s WHERE c_numeric = '1.555'::numeric(5,2) AND id > 600 ORDER BY id`
	want, err := execRows(r.ctx, r.su, fmt.Sprintf(q, "pt"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := execRows(r.ctx, r.px, fmt.Sprintf(q, "et"))
	if err != nil && trState(err) == "42804" {
		return // refused: the cast would round the literal
	}
	if err != nil {
		t.Fatalf("through pgveil: %v", err)
	}
	if showRows(got) != showRows(want) {
		t.Errorf("%s\n pgveil rows:\n%s PostgreSQL rows:\n%s", fmt.Sprintf(q, "et"), showRows(got), showRows(want))
	}
}

func (r *trEnv) super(t *testing.T, sql string) {
	t.Helper()
	if _, err := r.su.Exec(r.ctx, sql).ReadAll(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestTypesReviewFoundDeclaredFloat (MEDIUM): parameters declared float8,
// float4 (for numeric) and bool (for text), as pgjdbc's setDouble,
// setFloat and setBoolean declare them.
func TestTypesReviewFoundDeclaredFloat(t *testing.T) {
	r := newTrEnv(t, "ops_types_review_float")
	a, b := 0.1, 0.2
	f8 := strconv.FormatFloat(a+b, 'g', -1, 64) // 0.30000000000000004
	for i, c := range []struct {
		col  string
		oid  uint32
		f    int16
		val  []byte
		desc string
	}{
		{"c_numeric", 701, 1, r.mustBinary("float8", f8), "float8 0.1+0.2 (binary)"},
		{"c_numeric", 701, 0, []byte(f8), "float8 0.1+0.2 (text)"},
		{"c_numeric", 700, 1, r.mustBinary("float4", "1.1"), "float4 1.1 (binary)"},
		{"c_text", 16, 1, []byte{1}, "bool true (binary)"},
		{"c_text", 16, 0, []byte("t"), "bool true (text)"},
	} {
		id := []byte(strconv.Itoa(700 + i))
		_, errD := trExec(r.ctx, r.su, "INSERT INTO pt (id, "+c.col+") VALUES ($1, $2)", [][]byte{id, c.val}, []uint32{20, c.oid}, []int16{0, c.f}, 0)
		_, errP := trExec(r.ctx, r.px, "INSERT INTO et (id, "+c.col+") VALUES ($1, $2)", [][]byte{id, c.val}, []uint32{20, c.oid}, []int16{0, c.f}, 0)
		if errD != nil || errP != nil {
			t.Errorf("%s: PostgreSQL %v, pgveil %v", c.desc, errD, errP)
			continue
		}
		want, _, _ := r.value(r.su, "pt", c.col, 700+i, 0)
		got, _, _ := r.value(r.px, "et", c.col, 700+i, 0)
		if string(got) != string(want) {
			t.Errorf("%s into %s: pgveil stores %q, PostgreSQL %q", c.desc, c.col, got, want)
		}
	}
}

func (r *trEnv) mustBinary(typ, v string) []byte {
	b, err := r.binaryOf(typ, v)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// TestTypesReviewFoundAcceptsInvalid (MEDIUM by the rubric: invalid input
// stored): values PostgreSQL refuses that pgveil seals and stores.
func TestTypesReviewFoundAcceptsInvalid(t *testing.T) {
	r := newTrEnv(t, "ops_types_review_invalid")
	trFound(t, r, "c_uuid", "uuid", " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 ")
	trFound(t, r, "c_date", "date", "2024-01-02 99:99:99", "2024-01-02 ----", "5874898-01-01")
	trFound(t, r, "c_numeric", "numeric", "1e0x10")
	trFound(t, r, "c_date", "date", "+infinity")
	trFound(t, r, "c_ts", "timestamp", "+infinity")
	trFound(t, r, "c_tstz", "timestamptz", "+infinity")
	trFound(t, r, "c_bytea", "bytea", "\\x0a\v0b")
	// A binary date PostgreSQL's date_recv refuses (out of range).
	_, err := trExec(r.ctx, r.px, "INSERT INTO et (id, c_date) VALUES (900, $1)", [][]byte{{0x7f, 0xff, 0xff, 0x66}}, nil, []int16{1}, 0)
	if err == nil {
		got, _, _ := r.value(r.px, "et", "c_date", 900, 0)
		t.Errorf("binary date 2147483494: PostgreSQL refuses (date out of range), pgveil stores %q", got)
	}
}

// TestTypesReviewHoldsSessionTimeZone: with TimeZone America/New_York the
// instant written (with an offset, or in binary) is the instant read back
// in binary, and a lookup by another offset of the same instant finds it.
// (Text output stays +00, as FORMAT.md documents.)
func TestTypesReviewHoldsSessionTimeZone(t *testing.T) {
	r := newTrEnv(t, "ops_types_review_tz")
	for _, c := range []*pgconn.PgConn{r.px, r.su} {
		if _, err := c.Exec(r.ctx, `SET TimeZone = 'America/New_York'`).ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	vals := []string{"2024-07-01 12:00:00-04", "2024-07-01 16:00:00Z", "2024-01-01 00:30:00.25+05:30"}
	for _, v := range vals {
		id, probs := r.write("c_tstz", "timestamptz", v)
		for _, p := range probs {
			if !strings.Contains(p, "format 0") {
				t.Error(p)
			}
		}
		_ = id
	}
	for _, v := range append(vals, "2024-07-01 18:00:00+02", "2023-12-31 19:00:00.25Z") {
		for _, p := range r.lookup("c_tstz", "timestamptz", v) {
			t.Error(p)
		}
	}
}

// TestTypesReviewFoundNumericInfinity (LOW): numeric 'inf' and '-inf'
// (PostgreSQL 15's numeric_in takes them, as float8in does) are refused;
// ±Infinity in binary results carries dscale 0 where numeric_send sends
// 32 (the dscale bits of the special header word 0xD000/0xF000): the
// same value, other bytes.
func TestTypesReviewFoundNumericInfinity(t *testing.T) {
	r := newTrEnv(t, "ops_types_review_inf")
	trFound(t, r, "c_numeric", "numeric", "Infinity", "-Infinity", "inf", "-inf", "+inf")
}

// TestTypesReviewFoundVarcharParamType (LOW): for `c_varchar = $1`
// PostgreSQL's ParameterDescription says text (25: varchar = text is
// text = text), pgveil's varchar (1043).
func TestTypesReviewFoundVarcharParamType(t *testing.T) {
	r := newTrEnv(t, "ops_types_review_vcp")
	sd, err := r.su.Prepare(r.ctx, "", "SELECT id FROM pt WHERE c_varchar = $1", nil)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := r.px.Prepare(r.ctx, "", "SELECT id FROM et WHERE c_varchar = $1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sd.ParamOIDs, sp.ParamOIDs) {
		t.Errorf("c_varchar = $1 ParameterDescription: pgveil %v, PostgreSQL %v", sp.ParamOIDs, sd.ParamOIDs)
	}
}

// TestTypesReviewHoldsCopy: every value PostgreSQL accepts in trValues,
// COPY'd out of the mirror in text, CSV and binary, COPY'd into et through
// pgveil in the same format, then COPY'd out of et through pgveil: the
// same bytes as the mirror's COPY TO; and a SELECT of each column in text
// and binary equal to the mirror's.
func TestTypesReviewHoldsCopy(t *testing.T) {
	r := newTrEnv(t, "ops_types_review_copy")
	id := 1
	for _, c := range trCols {
		for _, v := range trValues[c.name] {
			if _, err := trExec(r.ctx, r.su, "INSERT INTO pt (id, "+c.name+") VALUES ($1, $2)", [][]byte{[]byte(strconv.Itoa(id)), []byte(v)}, nil, nil, 0); err == nil {
				id++
			}
		}
	}
	var names []string
	for _, c := range trCols {
		names = append(names, c.name)
	}
	cols := "id, " + strings.Join(names, ", ")
	for _, format := range []string{"text", "csv", "binary"} {
		t.Run(format, func(t *testing.T) {
			var want strings.Builder
			if _, err := r.su.CopyTo(r.ctx, &want, "COPY (SELECT "+cols+" FROM pt ORDER BY id) TO STDOUT (FORMAT "+format+")"); err != nil {
				t.Fatal(err)
			}
			r.super(t, "TRUNCATE et")
			if _, err := r.px.CopyFrom(r.ctx, strings.NewReader(want.String()), "COPY et ("+cols+") FROM STDIN (FORMAT "+format+")"); err != nil {
				t.Fatalf("COPY FROM through pgveil: %v", err)
			}
			var got strings.Builder
			if _, err := r.px.CopyTo(r.ctx, &got, "COPY (SELECT "+cols+" FROM et ORDER BY id) TO STDOUT (FORMAT "+format+")"); err != nil {
				t.Fatalf("COPY TO through pgveil: %v", err)
			}
			if got.String() != want.String() {
				g, w := got.String(), want.String()
				i := 0
				for i < len(g) && i < len(w) && g[i] == w[i] {
					i++
				}
				t.Errorf("COPY TO (FORMAT %s) through pgveil differs from PostgreSQL's at byte %d of %d/%d:\n pgveil %q\n direct %q", format, i, len(g), len(w), g[max(0, i-40):min(len(g), i+80)], w[max(0, i-40):min(len(w), i+80)])
			}
			for f := int16(0); f <= 1; f++ {
				for _, c := range trCols {
					q := "SELECT id, " + c.name + " FROM %s WHERE " + c.name + " IS NOT NULL ORDER BY id"
					w, err := trExec(r.ctx, r.su, fmt.Sprintf(q, "pt"), nil, nil, nil, f)
					if err != nil {
						t.Fatal(err)
					}
					g, err := trExec(r.ctx, r.px, fmt.Sprintf(q, "et"), nil, nil, nil, f)
					if err != nil {
						t.Errorf("%s through pgveil: %v", fmt.Sprintf(q, "et"), err)
						continue
					}
					if showRows(g) != showRows(w) {
						t.Errorf("%s (format %d) after COPY %s:\n pgveil %s\n direct %s", c.name, f, format, tail(showRows(g), 20), tail(showRows(w), 20))
					}
				}
			}
		})
	}
}

// TestTypesReviewFoundEmptyReadAsNull (MEDIUM): an empty string (text,
// varchar, a text column of 'pgv1:' envelopes; an empty bytea in binary
// format) read on a session that has not yet decrypted a non-empty value
// comes back as NULL, in DataRows (simple and extended protocol, text and
// binary) and in COPY … TO STDOUT text/CSV output (\N, an unquoted
// empty field). PostgreSQL returns ”. Once one non-empty value was
// opened on the session, ” reads back right. Cause: proxy/decrypt.go
// decryptRow: arena := s.rowArena[:0] is nil on a fresh session, and
// values[sp.i] = arena[sp.start:sp.end:sp.end] of a nil slice with an
// empty span is nil, which the DataRow writer (and copyOutRow's
// `Null: v == nil`) takes for SQL NULL.
func TestTypesReviewFoundEmptyReadAsNull(t *testing.T) {
	r := newTrEnv(t, "ops_types_review_empty")
	for id, col := range map[int]string{1: "c_text", 2: "c_varchar", 3: "c_ttext", 4: "c_bytea"} {
		if _, err := r.px.Exec(r.ctx, fmt.Sprintf("INSERT INTO et (id, %s) VALUES (%d, '')", col, id)).ReadAll(); err != nil {
			t.Fatal(err)
		}
	}
	for id, col := range map[int]string{1: "c_text", 2: "c_varchar", 3: "c_ttext", 4: "c_bytea"} {
		for _, f := range []int16{0, 1} {
			if col == "c_bytea" && f == 0 {
				continue // '\x' in text: not empty
			}
			c := r.connect() // a fresh session
			got, _, err := r.value(c, "et", col, id, int(f))
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Errorf("%s '' read on a fresh session (extended protocol, format %d): NULL, PostgreSQL ''", col, f)
			}
		}
		if col == "c_bytea" {
			continue
		}
		c := r.connect()
		rows, err := execRows(r.ctx, c, fmt.Sprintf("SELECT %s FROM et WHERE id = %d", col, id))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0][0] == nil {
			t.Errorf("%s '' read on a fresh session (simple protocol): %s, PostgreSQL \"\"", col, showRows(rows))
		}
		for _, opts := range []string{"", " (FORMAT csv)"} {
			c := r.connect()
			var out strings.Builder
			q := fmt.Sprintf("COPY (SELECT id, %s FROM et WHERE id = %d) TO STDOUT%s", col, id, opts)
			if _, err := c.CopyTo(r.ctx, &out, q); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("%d\t\n", id)
			if opts != "" {
				want = fmt.Sprintf("%d,\"\"\n", id)
			}
			if out.String() != want {
				t.Errorf("%s on a fresh session: %q, PostgreSQL %q", q, out.String(), want)
			}
		}
	}
}
