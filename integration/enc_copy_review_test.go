package integration

// Review tests of the COPY path for encrypted tables (proxy/copy.go,
// rewrite/copy.go), on the goroutine relay and the event loop
// (PGVEIL_TEST_EVENT_LOOPS=0 and default). Tests named
// TestCopyReviewFound* demonstrate defects and FAIL on this revision;
// TestCopyReviewHolds* are attacks that held. The oracle is PostgreSQL 15
// itself: the same COPY into a plain mirror table (copyrev_contacts,
// copyrev_users, the logical types) on a direct superuser connection.
//
// FIXED (copyOver: a statement that may start a COPY ends the drop):
// MEDIUM (hang) TestCopyReviewFoundStrayAfterRefusedCopy,
// TestCopyReviewFoundStrayAfterRefusedCopyPsql: a COPY FROM STDIN of an
// encrypted table that the server refuses before its CopyInResponse (here
// QUOTE in text format, 0A000; equally a permission error, a lock timeout)
// leaves s.copyPlan set, because a libpq client (psql) sends no data
// after an error. The next Query, if it is itself a COPY FROM STDIN (the
// corrected statement, of this table or any other, encrypted or not),
// goes to session.copyOver, which sees copyPlan != nil and sets
// copyStray = true without looking at mayCopy; handleQuery (or
// handleExecute) then sets copyPlan for the new COPY but copyStray stays
// true, and relay.go drops every CopyData and the CopyDone of the new
// COPY (copyStray is checked before copyPlan; the event loop hands the
// message back to the same code). The server waits in COPY IN forever:
// psql hangs until killed. Directly, PostgreSQL answers the corrected
// COPY with COPY 1. Cause: proxy/copy.go copyOver (the copyPlan branch
// returns before "if mayCopy { copyStray = false }"). The same state
// follows an extended-protocol COPY whose server error the client ends
// with Sync instead of CopyDone.
//
// FIXED (rewrite.Copy.ForceQuote, by field name): LOW
// TestCopyReviewFoundForceQuoteIgnored: COPY … TO STDOUT (FORMAT csv,
// FORCE_QUOTE * | (col)) through pgveil writes no forced quotes, on the
// encrypted and on the plain columns alike: PostgreSQL writes
// "4401","fq.one@example.org","plain note", pgveil 4401,fq.one@example.org,plain note.
// The values read back the same, but the requested format is silently
// not honoured. Cause: proxy/copy.go copyOptions never fills
// copydata.Options.ForceQuote (rewrite.Copy does not carry FORCE_QUOTE),
// and every row of a planned COPY TO is re-encoded by copydata.AppendRow.
//
// LOW TestCopyReviewRefusedMarkerMidLine (not fixed; was Found…; the
// COPY fails as a whole, nothing stored, see docs/SQL.md): text-format COPY FROM data with
// `\.` inside a line (4501<TAB>mk.one@example.org<TAB>a\.<LF>…):
// PostgreSQL 15 ends the data there and stores the line up to it (note
// "a", COPY 1; the check that `\.` be alone is PostgreSQL 18's), pgveil
// fails the COPY (57014, "end-of-copy marker is not alone on its line").
// An unneeded refusal (copydata.Parser.parseText, errMarkerNotAlone).
//
// Not a defect, noted: with a text NULL string that a decrypted value
// equals (NULL 'nil', value "nil"), PostgreSQL writes nil (which reads
// back as NULL) and pgveil writes \156il (which reads back as "nil"), as
// copydata.AppendRow documents; the case is left out of the byte compare.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// copyRun is what one Query of a raw COPY exchange returned.
type copyRun struct {
	errs  []*pgproto3.ErrorResponse
	tags  []string
	out   []byte   // CopyData from the server, concatenated
	outN  int      // CopyData messages
	trace []string // message types
}

func (r copyRun) err() string {
	var s []string
	for _, e := range r.errs {
		s = append(s, e.Code+": "+e.Message)
	}
	return strings.Join(s, "; ")
}

// rawCopy sends sql as a simple Query. The client's COPY data (each
// element one CopyData) goes after CopyInResponse as libpq does, or right
// behind the Query when eager (as pgx does); end is CopyDone or CopyFail
// (nil: CopyDone). It reads until ReadyForQuery.
func rawCopy(t *testing.T, ctx context.Context, pc *pgconn.PgConn, sql string, in [][]byte, end pgproto3.FrontendMessage, eager bool) (copyRun, error) {
	t.Helper()
	if end == nil {
		end = &pgproto3.CopyDone{}
	}
	fe := pc.Frontend()
	send := func() error {
		for _, d := range in {
			fe.Send(&pgproto3.CopyData{Data: d})
		}
		fe.Send(end)
		return fe.Flush()
	}
	fe.Send(&pgproto3.Query{String: sql})
	if eager {
		if err := send(); err != nil {
			return copyRun{}, err
		}
	} else if err := fe.Flush(); err != nil {
		return copyRun{}, err
	}
	var r copyRun
	for {
		msg, err := pc.ReceiveMessage(ctx)
		if err != nil {
			return r, fmt.Errorf("after %v: %w", r.trace, err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyInResponse:
			r.trace = append(r.trace, fmt.Sprintf("CopyIn(%d,%v)", m.OverallFormat, m.ColumnFormatCodes))
			if !eager {
				if err := send(); err != nil {
					return r, err
				}
			}
		case *pgproto3.CopyOutResponse:
			r.trace = append(r.trace, fmt.Sprintf("CopyOut(%d,%v)", m.OverallFormat, m.ColumnFormatCodes))
		case *pgproto3.CopyData:
			r.out = append(r.out, m.Data...)
			r.outN++
		case *pgproto3.CopyDone:
			r.trace = append(r.trace, "CopyDone")
		case *pgproto3.ErrorResponse:
			r.trace = append(r.trace, "Error "+m.Code)
			r.errs = append(r.errs, m)
		case *pgproto3.CommandComplete:
			r.trace = append(r.trace, string(m.CommandTag))
			r.tags = append(r.tags, string(m.CommandTag))
		case *pgproto3.ReadyForQuery:
			return r, nil
		default:
			r.trace = append(r.trace, fmt.Sprintf("%T", m))
		}
	}
}

func TestCopyReviewFoundStrayAfterRefusedCopy(t *testing.T) {
	relayLeakCheck(t)
	const org = 4101
	p := startEncProxy(t, org)
	ctx := testCtx(t, time.Minute)
	email := "stray.copy-4101@example.org"
	p.remember(email)
	cases := []struct{ name, bad, good, row string }{
		{"enc_then_enc", "COPY users (org_id, name, email) FROM STDIN (QUOTE '|')", "COPY users (org_id, name, email) FROM STDIN", fmt.Sprintf("%d\tstray1\t%s\n", org, email)},
		{"enc_then_plain", "COPY users (org_id, name, email) FROM STDIN (QUOTE '|')", "COPY orgs (id, name) FROM STDIN", "4102\tstray org\n"},
	}
	// PostgreSQL directly: the corrected COPY works.
	su := superConn(t, ctx).PgConn()
	if r, err := rawCopy(t, ctx, su, "COPY orgs (id, name) FROM STDIN (QUOTE '|')", nil, nil, false); err != nil || len(r.errs) != 1 || r.errs[0].Code != "0A000" {
		t.Fatalf("directly, the mistaken COPY: %v %v", r.trace, err)
	}
	if r, err := rawCopy(t, ctx, su, "COPY orgs (id, name) FROM STDIN", [][]byte{[]byte("4104\tdirect\n")}, nil, false); err != nil || len(r.tags) != 1 || r.tags[0] != "COPY 1" {
		t.Fatalf("directly, the corrected COPY: %v %v %s", r.trace, err, r.err())
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := connectPgx(t, ctx, p.url())
			pc := conn.PgConn()
			r, err := rawCopy(t, ctx, pc, c.bad, nil, nil, false)
			if err != nil || len(r.errs) != 1 || r.errs[0].Code != "0A000" {
				t.Fatalf("the mistaken COPY: %v %v, want the server's 0A000 (QUOTE in text format)", r.trace, err)
			}
			short, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			r, err = rawCopy(t, short, pc, c.good, [][]byte{[]byte(c.row)}, nil, false)
			if err != nil || len(r.errs) != 0 || len(r.tags) != 1 || r.tags[0] != "COPY 1" {
				t.Errorf("the corrected COPY right after the mistaken one: %v %v %s, want COPY 1", r.trace, err, r.err())
			}
		})
	}
}

// copyReview is one pgveil with the suite's policy, a pgveil connection,
// a superuser connection, and plain mirror tables of contacts and users
// (the logical types, no encryption) that PostgreSQL itself fills as the
// oracle.
type copyReview struct {
	p     *encProxy
	ctx   context.Context
	pc    *pgconn.PgConn // through pgveil
	su    *pgconn.PgConn // superuser, direct
	secre []string
}

const copyReviewMirrors = `
DROP TABLE IF EXISTS copyrev_contacts, copyrev_users;
CREATE TABLE copyrev_contacts (id bigserial PRIMARY KEY, org_id int8, email text, note text);
CREATE TABLE copyrev_users (id bigserial PRIMARY KEY, org_id int8, name text, email text, phone text, ssn text, birth_date date, api_token int8);
`

func newCopyReview(t *testing.T, orgs ...int64) *copyReview {
	t.Helper()
	p := startEncProxy(t, orgs...)
	ctx := testCtx(t, 5*time.Minute)
	su := superConn(t, ctx)
	if _, err := su.Exec(ctx, copyReviewMirrors); err != nil {
		t.Fatal(err)
	}
	conn := connectPgx(t, ctx, p.url())
	return &copyReview{p: p, ctx: ctx, pc: conn.PgConn(), su: su.PgConn()}
}

// exec runs sql (simple protocol) and returns its rows as text, NULL nil.
func execRows(ctx context.Context, c *pgconn.PgConn, sql string) ([][][]byte, error) {
	res, err := c.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	var out [][][]byte
	for _, r := range res {
		for _, row := range r.Rows {
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
	}
	return out, nil
}

func showRows(rows [][][]byte) string {
	var b strings.Builder
	for _, r := range rows {
		for i, v := range r {
			if i > 0 {
				b.WriteString(" | ")
			}
			if v == nil {
				b.WriteString("<NULL>")
			} else {
				fmt.Fprintf(&b, "%q", v)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (r *copyReview) super(t *testing.T, sql string) {
	t.Helper()
	if _, err := r.su.Exec(r.ctx, sql).ReadAll(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// copyCase is one COPY FROM of the same data into an encrypted table
// through pgveil and into its plain mirror directly.
type copyCase struct {
	name   string
	table  string // contacts or users
	cols   string // "(org_id, email, note)" or ""
	opts   string // options of COPY FROM
	toOpts string // options of COPY TO; "-" skips the COPY TO check
	data   string
	// splits: feed the data in two CopyData messages at every byte
	// position (true) or in one.
	splits bool
}

// directCopyIn runs the case's COPY FROM on the mirror directly.
func (r *copyReview) directCopyIn(t *testing.T, c copyCase) error {
	t.Helper()
	r.super(t, "TRUNCATE copyrev_"+c.table+" RESTART IDENTITY")
	_, err := r.su.CopyFrom(r.ctx, strings.NewReader(c.data), "COPY copyrev_"+c.table+" "+c.cols+" FROM STDIN "+c.opts)
	return err
}

// proxyCopyIn runs the case's COPY FROM through pgveil, the data cut into
// the CopyData messages given.
func (r *copyReview) proxyCopyIn(t *testing.T, c copyCase, msgs [][]byte) copyRun {
	t.Helper()
	r.super(t, "TRUNCATE "+c.table+" RESTART IDENTITY CASCADE")
	res, err := rawCopy(t, r.ctx, r.pc, "COPY "+c.table+" "+c.cols+" FROM STDIN "+c.opts, msgs, nil, false)
	if err != nil {
		t.Fatalf("COPY through pgveil: %v", err)
	}
	return res
}

func (r *copyReview) colsOf(c copyCase) string {
	if c.table == "contacts" {
		return "org_id, email, note"
	}
	return "org_id, name, email, phone, ssn, birth_date, api_token"
}

// check runs c and compares what pgveil stored (read back through pgveil
// by SELECT and by COPY TO) with what PostgreSQL stored in the mirror.
func (r *copyReview) check(t *testing.T, c copyCase) {
	t.Helper()
	derr := r.directCopyIn(t, c)
	cols := r.colsOf(c)
	want, err := execRows(r.ctx, r.su, "SELECT "+cols+" FROM copyrev_"+c.table+" ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var wantOut []byte
	toSQL := func(tbl string) string {
		return "COPY (SELECT " + cols + " FROM " + tbl + " ORDER BY id) TO STDOUT " + c.toOpts
	}
	if derr == nil && c.toOpts != "-" {
		res, err := rawCopy(t, r.ctx, r.su, toSQL("copyrev_"+c.table), nil, nil, false)
		if err != nil || len(res.errs) > 0 {
			t.Fatalf("direct COPY TO: %v %s", err, res.err())
		}
		wantOut = res.out
	}
	var cuts [][][]byte
	data := []byte(c.data)
	cuts = append(cuts, [][]byte{data})
	if c.splits {
		for k := 1; k < len(data); k++ {
			cuts = append(cuts, [][]byte{data[:k], data[k:]})
		}
	}
	bad := 0
	for _, msgs := range cuts {
		what := "in one CopyData"
		if len(msgs) == 2 {
			what = fmt.Sprintf("cut at byte %d (%q|%q)", len(msgs[0]), tailBytes(msgs[0]), headBytes(msgs[1]))
		}
		res := r.proxyCopyIn(t, c, msgs)
		if derr != nil {
			if len(res.errs) == 0 {
				got, _ := execRows(r.ctx, r.pc, "SELECT "+cols+" FROM "+c.table+" ORDER BY id")
				t.Errorf("%s %s: PostgreSQL refuses the data (%v), pgveil stored:\n%s", c.name, what, derr, showRows(got))
				bad++
			}
		} else if len(res.errs) > 0 {
			t.Errorf("%s %s: PostgreSQL takes the data, pgveil: %s", c.name, what, res.err())
			bad++
		} else {
			got, err := execRows(r.ctx, r.pc, "SELECT "+cols+" FROM "+c.table+" ORDER BY id")
			if err != nil {
				t.Errorf("%s %s: reading back: %v", c.name, what, err)
				bad++
			} else if showRows(got) != showRows(want) {
				t.Errorf("%s %s: read back through pgveil:\n%swant (PostgreSQL):\n%s", c.name, what, showRows(got), showRows(want))
				bad++
			}
			if wantOut != nil {
				out, err := rawCopy(t, r.ctx, r.pc, toSQL(c.table), nil, nil, false)
				if err != nil || len(out.errs) > 0 {
					t.Errorf("%s: COPY TO through pgveil: %v %s", c.name, err, out.err())
					bad++
				} else if string(out.out) != string(wantOut) {
					t.Errorf("%s: COPY TO through pgveil:\n%q\nwant (PostgreSQL):\n%q", c.name, out.out, wantOut)
					bad++
				}
			}
		}
		if bad >= 3 {
			t.Fatalf("%s: giving up after %d failures", c.name, bad)
		}
	}
}

func tailBytes(b []byte) []byte {
	if len(b) > 6 {
		return b[len(b)-6:]
	}
	return b
}

func headBytes(b []byte) []byte {
	if len(b) > 6 {
		return b[:6]
	}
	return b
}

// TestCopyReviewHoldsRoundTrip: COPY FROM through pgveil, in text and CSV
// with the options and the awkward values of COPY's spec, the data cut
// into two CopyData messages at every byte, stores what PostgreSQL stores
// from the same data into a plain table (read back through pgveil by
// SELECT), COPY TO through pgveil writes what PostgreSQL writes from the
// plain table byte for byte, and data PostgreSQL refuses is refused.
func TestCopyReviewHoldsRoundTrip(t *testing.T) {
	relayLeakCheck(t)
	const org = 4201
	r := newCopyReview(t, org)
	o := fmt.Sprint(org)
	cc := "(org_id, email, note)"
	cases := []copyCase{
		{name: "text", table: "contacts", cols: cc, splits: true, data: o + "\trt.plain@example.org\tnote with\\ttab\n" +
			o + "\trt.nl\\nline@x\tback\\\\slash \\\\N and \\\\.\n" +
			o + "\t\t\\N\n" +
			o + "\t\\N\t\n" +
			o + "\t\\\\N\tNULL\n" +
			o + "\t\\x41\\101\\1012\\x4a4\tcr\\r\\nlf ü€😀\n"},
		{name: "text_crlf_end", table: "contacts", cols: cc, splits: true, data: o + "\trt.crlf@example.org\tcrlf row\r\n" +
			o + "\trt.crlf2@example.org\t\\\\\r\n\\.\r\n"},
		{name: "text_custom", table: "contacts", cols: cc, opts: "(DELIMITER '|', NULL 'nil')", toOpts: "(DELIMITER '|', NULL 'nil')", splits: true, data: o + "|rt.custom@example.org|a\\|b\n" +
			o + "|nil|\\nil\n"},
		{name: "text_header", table: "contacts", cols: cc, opts: "(HEADER)", toOpts: "(HEADER)", data: "org_id\temail\tnote\n" + o + "\trt.header@example.org\th\n"},
		{name: "csv", table: "contacts", cols: cc, opts: "(FORMAT csv)", toOpts: "(FORMAT csv)", splits: true, data: o + `,rt.csv@example.org,"quote "" and ,comma"` + "\n" +
			o + `,"multi` + "\n" + `line, ""q""",` + "\n" +
			o + `,"",` + "\n" +
			o + `,"\.",\N` + "\n" +
			o + `,ab"c,d"ef,"ü€😀"` + "\r\n"},
		{name: "csv_custom", table: "contacts", cols: cc, opts: "(FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\\', NULL 'NULL', HEADER true)",
			toOpts: "(FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\\', NULL 'NULL', HEADER true)", splits: true,
			data: "a;b;c\n" + o + `;'rt.csvc\'q@example.org';'NULL'` + "\n" + o + `;NULL;'x\\y;z'` + "\n" + o + `;'';"dq"` + "\n"},
		{name: "csv_legacy", table: "contacts", cols: cc, opts: "WITH CSV HEADER DELIMITER AS '|' NULL AS '~'", toOpts: "WITH CSV HEADER DELIMITER '|' NULL '~'",
			data: "h1|h2|h3\n" + o + "|rt.legacy@example.org|~\n" + o + "|\"~\"|a\n"},
		{name: "no_column_list", table: "contacts", cols: "", opts: "", toOpts: "-",
			data: "1\t" + o + "\trt.nolist@example.org\t\\N\tnote\n"},
		// Delimiters, quotes and NULL strings made of the bytes of the
		// envelopes pgveil writes ('pgv1:' base64, bytea hex).
		{name: "text_delim_X", table: "contacts", cols: cc, opts: "(DELIMITER 'X')", toOpts: "(DELIMITER 'X')", splits: true, data: o + `Xrt.d\X@example.orgXa\\\Xb\Xc` + "\n"},
		{name: "text_delim_eq", table: "contacts", cols: cc, opts: "(DELIMITER '=', NULL 'pgv1')", toOpts: "(DELIMITER '=', NULL 'pgv1')", data: o + "=rt.eq@example.org=pgv1\n" + o + `=pgv1=x\=y` + "\n"},
		{name: "text_delim_plus", table: "contacts", cols: cc, opts: "(DELIMITER '+')", toOpts: "(DELIMITER '+')", data: o + `+rt.plus@example.org+a\+b` + "\n"},
		{name: "csv_quote_x", table: "contacts", cols: cc, opts: "(FORMAT csv, QUOTE 'x', DELIMITER '/')", toOpts: "(FORMAT csv, QUOTE 'x', DELIMITER '/')", splits: true, data: o + "/rt.qx@example.org/xaxx/bx\n" + o + "//\n"},
		{name: "csv_escape_A", table: "contacts", cols: cc, opts: "(FORMAT csv, QUOTE '=', ESCAPE 'A', NULL 'pgv1:')", toOpts: "(FORMAT csv, QUOTE '=', ESCAPE 'A', NULL 'pgv1:')", data: o + ",=rt.eA@example.org=,=xA=yAAz=\n" + o + ",pgv1:,=pgv1:=\n"},
		// Refused by PostgreSQL: pgveil must refuse too.
		{name: "too_many", table: "contacts", cols: cc, data: o + "\trt.many@example.org\tn\textra\n"},
		{name: "too_few", table: "contacts", cols: cc, data: o + "\trt.few@example.org\n"},
		{name: "nul_escape", table: "contacts", cols: cc, data: o + "\trt.nul@example.org\ta\\000b\n"},
		{name: "bad_utf8", table: "contacts", cols: cc, data: o + "\trt.utf\xff@example.org\tn\n"},
		{name: "bad_utf8_escape", table: "contacts", cols: cc, data: o + "\trt.utf\\377@example.org\tn\n"},
		{name: "mixed_eol", table: "contacts", cols: cc, data: o + "\trt.eol1@example.org\tn\r\n" + o + "\trt.eol2@example.org\tn\n"},
		{name: "csv_unterminated", table: "contacts", cols: cc, opts: "(FORMAT csv)", data: o + `,"rt.unterminated@example.org,n` + "\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { r.check(t, c) })
	}
	r.p.remember("rt.plain@example.org", "note with\ttab", "quote \" and ,comma", "rt.custom@example.org", "rt.csvc'q@example.org", "rt.legacy@example.org")
	verifyAtRest(t, r.ctx, []string{"rt.plain@example.org", "rt.custom@example.org", "rt.csvc'q@example.org", "rt.legacy@example.org", "rt.nolist@example.org"})
}

// TestCopyReviewHoldsTenantRoundTrip: users (key_context org_id) through
// COPY FROM in text, CSV and binary, columns in any order, the tenant
// spelled as PostgreSQL's int8 input allows, rows of several tenants in
// one COPY; read back by SELECT and by COPY TO (the tenant in the list,
// and hidden) in every format, byte for byte as PostgreSQL writes the
// plain mirror.
func TestCopyReviewHoldsTenantRoundTrip(t *testing.T) {
	relayLeakCheck(t)
	r := newCopyReview(t, 4301, 4302)
	uc := "(api_token, email, org_id, birth_date, name, phone, ssn)"
	text := "9223372036854775807\tT.One@Example.org\t4301\t1990-01-31\tn1\tph\\t1\t123-45-6789\n" +
		"-1\tt.two@example.org\t 4302 \t2000-02-29\tn2\t\\N\t\n" +
		"0\tt.three@example.org\t+4301\t\\N\t\\N\tü€😀\t\\\\x\n" +
		"\\N\t\\N\t04302\t1970-01-01\tn4\t,\"\t\\N\n"
	csv := "9223372036854775807,T.One@Example.org,4301,1990-01-31,n1,\"ph\t1\",123-45-6789\n" +
		"-1,t.two@example.org, 4302 ,2000-02-29,n2,,\"\"\n" +
		"0,t.three@example.org,+4301,,,ü€😀,\\x\n" +
		",,04302,1970-01-01,n4,\",\"\"\",\n"
	cases := []copyCase{
		{name: "text", table: "users", cols: uc, splits: true, data: text},
		{name: "csv", table: "users", cols: uc, opts: "(FORMAT csv)", toOpts: "(FORMAT csv)", splits: true, data: csv},
		{name: "csv_header", table: "users", cols: uc, opts: "(FORMAT csv, HEADER)", toOpts: "(FORMAT csv, HEADER)", data: "a,b,c,d,e,f,g\n" + csv},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { r.check(t, c) })
	}
	// Binary: the data as PostgreSQL writes it from the mirror (filled
	// from the text case), cut at every byte.
	t.Run("binary", func(t *testing.T) {
		if err := r.directCopyIn(t, copyCase{table: "users", cols: uc, data: text}); err != nil {
			t.Fatal(err)
		}
		res, err := rawCopy(t, r.ctx, r.su, "COPY copyrev_users "+uc+" TO STDOUT (FORMAT binary)", nil, nil, false)
		if err != nil || len(res.errs) > 0 {
			t.Fatalf("%v %s", err, res.err())
		}
		r.check(t, copyCase{name: "binary", table: "users", cols: uc, opts: "(FORMAT binary)", toOpts: "(FORMAT binary)", splits: true, data: string(res.out)})
	})
	// COPY TO of the table, the tenant hidden or listed, every format.
	r.super(t, "TRUNCATE users, copyrev_users RESTART IDENTITY")
	if err := r.directCopyIn(t, copyCase{table: "users", cols: uc, data: text}); err != nil {
		t.Fatal(err)
	}
	if res := r.proxyCopyIn(t, copyCase{table: "users", cols: uc}, [][]byte{[]byte(text)}); len(res.errs) > 0 {
		t.Fatal(res.err())
	}
	for _, list := range []string{"(email)", "(ssn, phone)", "(org_id, email)", "(email, org_id, name)", "(birth_date, api_token, email)"} {
		for _, opts := range []string{"", "(FORMAT csv)", "(FORMAT csv, HEADER)", "(HEADER)", "(FORMAT binary)", "(FORMAT csv, DELIMITER E'\\t', QUOTE '''')"} {
			want, err := rawCopy(t, r.ctx, r.su, "COPY copyrev_users "+list+" TO STDOUT "+opts, nil, nil, false)
			if err != nil || len(want.errs) > 0 {
				t.Fatalf("%v %s", err, want.err())
			}
			got, err := rawCopy(t, r.ctx, r.pc, "COPY users "+list+" TO STDOUT "+opts, nil, nil, false)
			if err != nil || len(got.errs) > 0 {
				t.Errorf("COPY users %s TO STDOUT %s: %v %s", list, opts, err, got.err())
				continue
			}
			if string(got.out) != string(want.out) {
				t.Errorf("COPY users %s TO STDOUT %s:\n%q\nwant (PostgreSQL):\n%q", list, opts, got.out, want.out)
			}
			if got.outN != want.outN {
				t.Errorf("COPY users %s TO STDOUT %s: %d CopyData, PostgreSQL sends %d", list, opts, got.outN, want.outN)
			}
		}
	}
	// The blind index was computed: lookups by a differently cased email.
	rows, err := execRows(r.ctx, r.pc, "SELECT name FROM users WHERE email = 't.one@example.org'")
	if err != nil || showRows(rows) != "\"n1\"\n" {
		t.Errorf("lookup by email after COPY: %v %s", err, showRows(rows))
	}
	rows, err = execRows(r.ctx, r.pc, "SELECT name FROM users WHERE ssn = '123-45-6789'")
	if err != nil || showRows(rows) != "\"n1\"\n" {
		t.Errorf("lookup by ssn after COPY: %v %s", err, showRows(rows))
	}
	r.p.remember("T.One@Example.org", "t.two@example.org", "t.three@example.org", "123-45-6789")
	verifyAtRest(t, r.ctx, []string{"T.One@Example.org", "t.two@example.org", "t.three@example.org", "123-45-6789"})
}

func TestCopyReviewFoundForceQuoteIgnored(t *testing.T) {
	relayLeakCheck(t)
	const org = 4401
	r := newCopyReview(t, org)
	r.p.remember("fq.one@example.org")
	r.check(t, copyCase{name: "csv_force_quote", table: "contacts", cols: "(org_id, email, note)", opts: "(FORMAT csv)",
		toOpts: "(FORMAT csv, FORCE_QUOTE *)", data: "4401,fq.one@example.org,plain note\n4401,,\n"})
	r.check(t, copyCase{name: "csv_force_quote_col", table: "contacts", cols: "(org_id, email, note)", opts: "(FORMAT csv)",
		toOpts: "(FORMAT csv, FORCE_QUOTE (email))", data: "4401,fq.one@example.org,plain note\n"})
}

// TestCopyReviewRefusedMarkerMidLine: the LOW finding, not fixed: the
// COPY fails as a whole with a clear reason, and nothing is stored.
func TestCopyReviewRefusedMarkerMidLine(t *testing.T) {
	relayLeakCheck(t)
	const org = 4501
	r := newCopyReview(t, org)
	r.p.remember("mk.one@example.org", "mk.two@example.org")
	res := r.proxyCopyIn(t, copyCase{table: "contacts", cols: "(org_id, email, note)"},
		[][]byte{[]byte("4501\tmk.one@example.org\ta\\.\n4501\tmk.two@example.org\tb\n")})
	if !strings.Contains(res.err(), "end-of-copy marker is not alone on its line") {
		t.Errorf("COPY with \\. inside a line: %q, want pgveil's refusal", res.err())
	}
	rows, err := r.su.Exec(r.ctx, fmt.Sprintf("SELECT count(*) FROM contacts WHERE org_id = %d", org)).ReadAll()
	if err != nil || len(rows) != 1 || len(rows[0].Rows) != 1 || string(rows[0].Rows[0][0]) != "0" {
		t.Errorf("rows stored after the refused COPY: %v (%v)", rows, err)
	}
}

// TestCopyReviewHoldsTamperedAtRest: a ciphertext changed at rest (a bit
// flipped, an envelope moved to another tenant's row or another column)
// makes COPY TO through pgveil fail in every format; the client never
// gets the row as data.
func TestCopyReviewHoldsTamperedAtRest(t *testing.T) {
	relayLeakCheck(t)
	r := newCopyReview(t, 4601, 4602)
	data := "4601\ttp.one@example.org\tph.one-4601\n4602\ttp.two@example.org\tph.two-4602\n"
	r.p.remember("tp.one@example.org", "tp.two@example.org", "ph.one-4601", "ph.two-4602", "note-tamper-4601")
	if res := r.proxyCopyIn(t, copyCase{table: "users", cols: "(org_id, email, phone)"}, [][]byte{[]byte(data)}); len(res.errs) > 0 {
		t.Fatal(res.err())
	}
	if res, err := rawCopy(t, r.ctx, r.pc, "COPY contacts (org_id, note) FROM STDIN", [][]byte{[]byte("4601\tnote-tamper-4601\n")}, nil, false); err != nil || len(res.errs) > 0 {
		t.Fatal(err, res.err())
	}
	tampers := []struct{ name, sql, copy, bad string }{
		{"bit_flip", `UPDATE users SET email = set_byte(email, 30, get_byte(email, 30) # 1) WHERE org_id = 4601`, "COPY users (email) TO STDOUT", "tp.one"},
		{"other_tenant", `UPDATE users SET phone = (SELECT phone FROM users WHERE org_id = 4602) WHERE org_id = 4601`, "COPY users (org_id, phone) TO STDOUT", "ph.two-4602\n4602"},
		{"other_column", `UPDATE users SET email = phone WHERE org_id = 4602`, "COPY users (email) TO STDOUT", "ph.two"},
		{"text_envelope", `UPDATE contacts SET note = overlay(note placing CASE substr(note, 20, 1) WHEN 'A' THEN 'B' ELSE 'A' END from 20 for 1)`, "COPY contacts (note) TO STDOUT", "note-tamper"},
	}
	for _, tp := range tampers {
		for _, opts := range []string{"", "(FORMAT csv)", "(FORMAT binary)"} {
			t.Run(tp.name+"/"+opts, func(t *testing.T) {
				su := superConn(t, r.ctx)
				tx, err := su.Begin(r.ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(r.ctx, tp.sql); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(r.ctx); err != nil {
					t.Fatal(err)
				}
				conn := connectPgx(t, r.ctx, r.p.url())
				res, err := rawCopy(t, r.ctx, conn.PgConn(), tp.copy+" "+opts, nil, nil, false)
				if err == nil && len(res.errs) == 0 {
					t.Errorf("%s %s after %s: %q, want an error", tp.copy, opts, tp.name, res.out)
				}
				if strings.Contains(string(res.out), tp.bad) || strings.Count(string(res.out), "ph.two") > 1 {
					t.Errorf("%s: a tampered row's value reached the client: %q", tp.name, res.out)
				}
				// Restore for the next format: undo by re-running the COPY.
				r.super(t, "TRUNCATE users, contacts RESTART IDENTITY")
				if res := r.proxyCopyIn(t, copyCase{table: "users", cols: "(org_id, email, phone)"}, [][]byte{[]byte(data)}); len(res.errs) > 0 {
					t.Fatal(res.err())
				}
				if res, err := rawCopy(t, r.ctx, r.pc, "COPY contacts (org_id, note) FROM STDIN", [][]byte{[]byte("4601\tnote-tamper-4601\n")}, nil, false); err != nil || len(res.errs) > 0 {
					t.Fatal(err, res.err())
				}
			})
		}
	}
}

// readUntilReady collects messages until ReadyForQuery.
func readUntilReady(ctx context.Context, pc *pgconn.PgConn) (copyRun, error) {
	var r copyRun
	for {
		msg, err := pc.ReceiveMessage(ctx)
		if err != nil {
			return r, fmt.Errorf("after %v: %w", r.trace, err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			r.out = append(r.out, m.Data...)
			r.outN++
		case *pgproto3.ErrorResponse:
			r.trace = append(r.trace, "Error "+m.Code)
			r.errs = append(r.errs, m)
		case *pgproto3.CommandComplete:
			r.trace = append(r.trace, string(m.CommandTag))
			r.tags = append(r.tags, string(m.CommandTag))
		case *pgproto3.ReadyForQuery:
			return r, nil
		default:
			r.trace = append(r.trace, fmt.Sprintf("%T", m))
		}
	}
}

// TestCopyReviewHoldsProtocol: CopyFail, the server failing mid-COPY,
// pgveil failing a row, ROLLBACK, the extended protocol (one pipeline with
// two COPYs of a prepared statement), several COPY TO in one query
// string, a long value across CopyData messages, and a client that
// disconnects mid-COPY: nothing half-written, the session (or the next
// one) keeps working, what is stored reads back.
func TestCopyReviewHoldsProtocol(t *testing.T) {
	relayLeakCheck(t)
	r := newCopyReview(t, 4701, 4702)
	count := func(t *testing.T, table string) string {
		t.Helper()
		rows, err := execRows(r.ctx, r.su, "SELECT count(*) FROM "+table)
		if err != nil {
			t.Fatal(err)
		}
		return string(rows[0][0])
	}
	good := func(t *testing.T, pc *pgconn.PgConn, email string) {
		t.Helper()
		r.p.remember(email)
		res, err := rawCopy(t, r.ctx, pc, "COPY users (org_id, email) FROM STDIN", [][]byte{[]byte("4701\t" + email + "\n")}, nil, false)
		if err != nil || len(res.errs) > 0 || len(res.tags) != 1 || res.tags[0] != "COPY 1" {
			t.Fatalf("the next COPY: %v %v %s", res.trace, err, res.err())
		}
		rows, err := execRows(r.ctx, pc, "SELECT email FROM users WHERE email = '"+email+"'")
		if err != nil || len(rows) != 1 || string(rows[0][0]) != email {
			t.Fatalf("reading %s back: %v %s", email, err, showRows(rows))
		}
	}
	t.Run("copyfail", func(t *testing.T) {
		r.super(t, "TRUNCATE users RESTART IDENTITY")
		r.p.remember("cf.one@example.org", "cf.two@exam")
		for _, eager := range []bool{false, true} {
			res, err := rawCopy(t, r.ctx, r.pc, "COPY users (org_id, email) FROM STDIN", [][]byte{[]byte("4701\tcf.one@example.org\n4701\tcf.two@exam")}, &pgproto3.CopyFail{Message: "client gave up"}, eager)
			if err != nil || len(res.errs) != 1 || res.errs[0].Code != "57014" || !strings.Contains(res.errs[0].Message, "client gave up") {
				t.Errorf("CopyFail: %v %v %s", res.trace, err, res.err())
			}
		}
		if n := count(t, "users"); n != "0" {
			t.Errorf("%s rows after CopyFail", n)
		}
		good(t, r.pc, "cf.after@example.org")
	})
	t.Run("server_error", func(t *testing.T) {
		r.super(t, "TRUNCATE users RESTART IDENTITY")
		r.p.remember("se.dup@example.org", "SE.Dup@Example.org ")
		for _, eager := range []bool{false, true} {
			data := "4701\tse.dup@example.org\n4701\tSE.Dup@Example.org \n" + strings.Repeat("4701\t\\N\n", 5000)
			res, err := rawCopy(t, r.ctx, r.pc, "COPY users (org_id, email) FROM STDIN", [][]byte{[]byte(data)}, nil, eager)
			if err != nil || len(res.errs) != 1 || res.errs[0].Code != "23505" {
				t.Errorf("duplicate blind index: %v %v %s, want 23505", res.trace, err, res.err())
			}
		}
		if n := count(t, "users"); n != "0" {
			t.Errorf("%s rows after the failed COPY", n)
		}
		good(t, r.pc, "se.after@example.org")
	})
	t.Run("pgveil_fails_row", func(t *testing.T) {
		r.super(t, "TRUNCATE users RESTART IDENTITY")
		r.p.remember("not-a-number", "pf.two@example.org")
		for _, eager := range []bool{false, true} {
			res, err := rawCopy(t, r.ctx, r.pc, "COPY users (org_id, email, api_token) FROM STDIN",
				[][]byte{[]byte("4701\tpf.one@example.org\t1\n4701\tpf.two@example.org\tnot-a-number\n"), []byte("4701\tpf.three@example.org\t3\n")}, nil, eager)
			if err != nil || len(res.errs) != 1 || strings.Contains(res.err(), "not-a-number") {
				t.Errorf("a bad int8: %v %v %s", res.trace, err, res.err())
			}
		}
		if n := count(t, "users"); n != "0" {
			t.Errorf("%s rows after the failed COPY", n)
		}
		good(t, r.pc, "pf.after@example.org")
	})
	t.Run("rollback", func(t *testing.T) {
		r.super(t, "TRUNCATE users RESTART IDENTITY")
		if _, err := execRows(r.ctx, r.pc, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		res, err := rawCopy(t, r.ctx, r.pc, "COPY users (org_id, email) FROM STDIN", [][]byte{[]byte("4701\trb.one@example.org\n")}, nil, false)
		if err != nil || len(res.errs) > 0 {
			t.Fatal(err, res.err())
		}
		if _, err := execRows(r.ctx, r.pc, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		if n := count(t, "users"); n != "0" {
			t.Errorf("%s rows after ROLLBACK", n)
		}
	})
	t.Run("extended_pipeline", func(t *testing.T) {
		r.super(t, "TRUNCATE users RESTART IDENTITY")
		r.p.remember("ex.one@example.org", "ex.two@example.org", "ex.three@example.org")
		fe := r.pc.Frontend()
		fe.Send(&pgproto3.Parse{Name: "cp", Query: "COPY users (email, org_id) FROM STDIN (FORMAT csv)"})
		fe.Send(&pgproto3.Bind{PreparedStatement: "cp"})
		fe.Send(&pgproto3.Execute{})
		fe.Send(&pgproto3.CopyData{Data: []byte("ex.one@example.org,4701\nex.tw")})
		fe.Send(&pgproto3.CopyData{Data: []byte("o@example.org,4702\n")})
		fe.Send(&pgproto3.CopyDone{})
		fe.Send(&pgproto3.Bind{PreparedStatement: "cp"})
		fe.Send(&pgproto3.Execute{})
		fe.Send(&pgproto3.CopyData{Data: []byte("ex.three@example.org,4702\n")})
		fe.Send(&pgproto3.CopyDone{})
		fe.Send(&pgproto3.Sync{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		res, err := readUntilReady(r.ctx, r.pc)
		if err != nil || len(res.errs) > 0 || strings.Join(res.tags, ",") != "COPY 2,COPY 1" {
			t.Fatalf("%v %v %s", res.trace, err, res.err())
		}
		rows, err := execRows(r.ctx, r.pc, "SELECT org_id, email FROM users ORDER BY id")
		if want := "\"4701\" | \"ex.one@example.org\"\n\"4702\" | \"ex.two@example.org\"\n\"4702\" | \"ex.three@example.org\"\n"; err != nil || showRows(rows) != want {
			t.Errorf("read back: %v\n%s", err, showRows(rows))
		}
		// Extended COPY TO, binary and text.
		fe.Send(&pgproto3.Parse{Query: "COPY (SELECT email, org_id FROM users ORDER BY id) TO STDOUT (FORMAT csv)"})
		fe.Send(&pgproto3.Bind{})
		fe.Send(&pgproto3.Execute{})
		fe.Send(&pgproto3.Sync{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		res, err = readUntilReady(r.ctx, r.pc)
		if want := "ex.one@example.org,4701\nex.two@example.org,4702\nex.three@example.org,4702\n"; err != nil || len(res.errs) > 0 || string(res.out) != want {
			t.Errorf("extended COPY TO: %v %v %q", res.trace, err, res.out)
		}
	})
	t.Run("several_copy_to", func(t *testing.T) {
		r.super(t, "TRUNCATE users, contacts, copyrev_users, copyrev_contacts RESTART IDENTITY")
		data := "4701\tsc.one@example.org\tp1\n4702\tsc.two@example.org\t\\N\n"
		r.p.remember("sc.one@example.org", "sc.two@example.org")
		for _, tbl := range []string{"users", "copyrev_users"} {
			c := r.pc
			if tbl != "users" {
				c = r.su
			}
			if res, err := rawCopy(t, r.ctx, c, "COPY "+tbl+" (org_id, email, phone) FROM STDIN", [][]byte{[]byte(data)}, nil, false); err != nil || len(res.errs) > 0 {
				t.Fatal(err, res.err())
			}
		}
		q := "SELECT 1; COPY %[1]s (email) TO STDOUT; COPY (SELECT phone, email FROM %[1]s ORDER BY id) TO STDOUT (FORMAT csv, HEADER); COPY %[1]s (phone) TO STDOUT (FORMAT binary); COPY orgs (id) TO STDOUT"
		want, err := rawCopy(t, r.ctx, r.su, fmt.Sprintf(q, "copyrev_users"), nil, nil, false)
		if err != nil || len(want.errs) > 0 {
			t.Fatal(err, want.err())
		}
		got, err := rawCopy(t, r.ctx, r.pc, fmt.Sprintf(q, "users"), nil, nil, false)
		if err != nil || len(got.errs) > 0 || string(got.out) != string(want.out) {
			t.Errorf("several COPY TO in one query: %v %s\n%q\nwant\n%q", err, got.err(), got.out, want.out)
		}
		// An encrypted COPY FROM beside another COPY is refused.
		res, err := rawCopy(t, r.ctx, r.pc, "COPY users (org_id, email) FROM STDIN; COPY orgs TO STDOUT", [][]byte{[]byte("4701\tsc.mix@example.org\n")}, nil, true)
		if err != nil || len(res.errs) != 1 || res.errs[0].Code != "0A000" {
			t.Errorf("two COPYs in one query: %v %v %s", res.trace, err, res.err())
		}
		good(t, r.pc, "sc.after@example.org")
	})
	t.Run("long_value", func(t *testing.T) {
		r.super(t, "TRUNCATE users RESTART IDENTITY")
		long := strings.Repeat("long-value-ü€\\t|", 200000) // 3.4 MB
		esc := strings.ReplaceAll(long, "\\", "\\\\")
		row := []byte("4701\tlong@example.org\t" + esc + "\n4702\tlong2@example.org\tshort\n")
		third := len(row) / 3
		r.p.remember("long@example.org", long[:200])
		res, err := rawCopy(t, r.ctx, r.pc, "COPY users (org_id, email, phone) FROM STDIN", [][]byte{row[:third], row[third : 2*third], row[2*third:]}, nil, false)
		if err != nil || len(res.errs) > 0 {
			t.Fatal(err, res.err())
		}
		out, err := rawCopy(t, r.ctx, r.pc, "COPY (SELECT org_id, email, phone FROM users ORDER BY id) TO STDOUT", nil, nil, false)
		if err != nil || len(out.errs) > 0 || string(out.out) != string(row) || out.outN != 2 {
			t.Errorf("long value read back by COPY TO: %v %s, %d bytes in %d messages, equal %v", err, out.err(), len(out.out), out.outN, string(out.out) == string(row))
		}
	})
	t.Run("disconnect_mid_copy", func(t *testing.T) {
		r.super(t, "TRUNCATE users RESTART IDENTITY")
		r.p.remember("dc.one@example.org")
		conn, err := pgconn.Connect(r.ctx, r.p.url("application_name=copyrev_disconnect"))
		if err != nil {
			t.Fatal(err)
		}
		fe := conn.Frontend()
		fe.Send(&pgproto3.Query{String: "COPY users (org_id, email) FROM STDIN"})
		fe.Send(&pgproto3.CopyData{Data: []byte("4701\tdc.one@example.org\n4701\tdc.tw")})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		if msg, err := conn.ReceiveMessage(r.ctx); err != nil {
			t.Fatal(err)
		} else if _, ok := msg.(*pgproto3.CopyInResponse); !ok {
			t.Fatalf("got %T", msg)
		}
		conn.Conn().Close()
		waitFor(t, 30*time.Second, "the server backend of the abandoned COPY to end", func() (bool, error) {
			rows, err := execRows(r.ctx, r.su, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'copyrev_disconnect'")
			if err != nil {
				return false, err
			}
			return string(rows[0][0]) == "0", nil
		})
		if n := count(t, "users"); n != "0" {
			t.Errorf("%s rows after the client vanished mid-COPY", n)
		}
		good(t, r.pc, "dc.after@example.org")
	})
}

// TestCopyReviewHoldsNamesAndRefusals: quoted, upper-case and schema-
// qualified names, COPY (SELECT …) without the tenant, COPY … WHERE on a
// plain column; the Copy{In,Out}Response column counts are PostgreSQL's
// for the same statement on the mirror; and the documented refusals (a
// blind-index column listed, the tenant missing, a server file, FORCE_NULL,
// HEADER MATCH, ENCODING) keep every value away from the server.
func TestCopyReviewHoldsNamesAndRefusals(t *testing.T) {
	relayLeakCheck(t)
	r := newCopyReview(t, 4801, 4802)
	r.p.remember("nm.one@example.org", "nm.two@example.org", "nm.three@example.org", "nm.four@example.org", "refused-4801")
	data := []struct{ proxy, direct, rows string }{
		{`COPY "public"."users" ("org_id", "email") FROM STDIN`, `COPY copyrev_users ("org_id", "email") FROM STDIN`, "4801\tnm.one@example.org\n"},
		{`COPY PUBLIC.USERS (ORG_ID, Email) FROM STDIN (FORMAT CSV)`, `COPY copyrev_users (ORG_ID, Email) FROM STDIN (FORMAT CSV)`, "4802,nm.two@example.org\n"},
		{`copy users(email,org_id)from stdin with csv`, `copy copyrev_users(email,org_id)from stdin with csv`, "nm.three@example.org,4801\n"},
		{`COPY users (org_id, email) FROM STDIN WHERE org_id = 4802`, `COPY copyrev_users (org_id, email) FROM STDIN WHERE org_id = 4802`, "4801\tnm.skip@example.org\n4802\tnm.four@example.org\n"},
	}
	for _, d := range data {
		got, err := rawCopy(t, r.ctx, r.pc, d.proxy, [][]byte{[]byte(d.rows)}, nil, false)
		if err != nil || len(got.errs) > 0 {
			t.Errorf("%s: %v %s", d.proxy, err, got.err())
			continue
		}
		want, err := rawCopy(t, r.ctx, r.su, d.direct, [][]byte{[]byte(d.rows)}, nil, false)
		if err != nil || len(want.errs) > 0 {
			t.Fatal(err, want.err())
		}
		if strings.Join(got.trace, " ") != strings.Join(want.trace, " ") {
			t.Errorf("%s: %v, PostgreSQL %v", d.proxy, got.trace, want.trace)
		}
	}
	for _, q := range []string{
		"COPY users (email) TO STDOUT", "COPY users (email) TO STDOUT (FORMAT binary)",
		"COPY (SELECT email, name FROM users WHERE org_id = 4801 ORDER BY id) TO STDOUT (FORMAT csv, HEADER)",
		"COPY (SELECT email FROM users ORDER BY id) TO STDOUT (FORMAT binary)",
		`COPY "public"."users" (email, org_id) TO STDOUT`,
	} {
		direct := strings.NewReplacer(`"public"."users"`, "copyrev_users", " users ", " copyrev_users ").Replace(q)
		got, err := rawCopy(t, r.ctx, r.pc, q, nil, nil, false)
		if err != nil || len(got.errs) > 0 {
			t.Errorf("%s: %v %s", q, err, got.err())
			continue
		}
		want, err := rawCopy(t, r.ctx, r.su, direct, nil, nil, false)
		if err != nil || len(want.errs) > 0 {
			t.Fatal(direct, err, want.err())
		}
		if strings.Join(got.trace, " ") != strings.Join(want.trace, " ") || string(got.out) != string(want.out) {
			t.Errorf("%s: %v %q\nPostgreSQL %v %q", q, got.trace, got.out, want.trace, want.out)
		}
	}
	before, _ := execRows(r.ctx, r.su, "SELECT count(*) FROM users")
	for _, c := range []struct{ sql, code string }{
		{"COPY users (org_id, email, email_bidx) FROM STDIN", "428C9"},
		{"COPY users (org_id, email_bidx) FROM STDIN", "428C9"},
		{"COPY users (email) FROM STDIN", ""},
		{"COPY users (org_id, email) FROM '/tmp/x'", "0A000"},
		{"COPY users (org_id, email) FROM PROGRAM 'cat'", "0A000"},
		{"COPY users (org_id, email) TO '/tmp/copyrev_out'", "0A000"},
		{"COPY users (org_id, email) FROM STDIN (FORMAT csv, FORCE_NULL (email))", "0A000"},
		{"COPY users (org_id, email) FROM STDIN (FORMAT csv, FORCE_NOT_NULL (email))", "0A000"},
		{"COPY users (org_id, email) FROM STDIN (FORMAT csv, HEADER MATCH)", "0A000"},
		{"COPY users (org_id, email) FROM STDIN (ENCODING 'LATIN1')", "0A000"},
		{"COPY users (org_id, email) FROM STDIN WHERE email = 'x'", ""},
	} {
		for _, eager := range []bool{false, true} {
			res, err := rawCopy(t, r.ctx, r.pc, c.sql, [][]byte{[]byte("4801\trefused-4801\n")}, nil, eager)
			if err != nil || len(res.errs) == 0 || (c.code != "" && res.errs[0].Code != c.code) || len(res.tags) > 0 {
				t.Errorf("%s: %v %v %s, want refusal %s", c.sql, res.trace, err, res.err(), c.code)
			}
		}
	}
	after, _ := execRows(r.ctx, r.su, "SELECT count(*) FROM users")
	if showRows(before) != showRows(after) {
		t.Errorf("refused COPYs stored rows: %s -> %s", showRows(before), showRows(after))
	}
	verifyAtRest(t, r.ctx, []string{"nm.one@example.org", "nm.two@example.org", "nm.three@example.org", "nm.four@example.org", "refused-4801"})
}

// The same through psql: a COPY the server refuses (a typo in an
// option), then the corrected COPY with inline data. Directly psql
// prints COPY 1; through pgveil psql hangs until killed.
func TestCopyReviewFoundStrayAfterRefusedCopyPsql(t *testing.T) {
	relayLeakCheck(t)
	const org = 4103
	p := startEncProxy(t, org)
	ctx := testCtx(t, time.Minute)
	email := "stray.psql-4103@example.org"
	p.remember(email)
	script := "COPY users (org_id, name, email) FROM STDIN (QUOTE '|');\n" +
		"COPY users (org_id, name, email) FROM STDIN;\n" + fmt.Sprintf("%d\tstray-psql\t%s\n", org, email) + "\\.\n" +
		"SELECT 'done';\n"
	short, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	res := runPsql(t, short, p.url(), []byte(script), nil, "-q", "-A", "-t")
	if short.Err() != nil || !strings.Contains(res.Stdout, "done") {
		t.Errorf("psql through pgveil (killed at the deadline: %v): exit %d, stdout %q, stderr %q", short.Err() != nil, res.Code, res.Stdout, tail(res.Stderr, 5))
	}
}
