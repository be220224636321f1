//go:build linux

package proxy

// Tests from the review of 981e07a (COPY IN Syncs voided at the
// CopyInResponse), e5d73a7 (dropUnnamed; COPY TO one row per CopyData)
// and 67e4127 (flushCopyIn by the whole-message rule).

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/integration/harness"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// --- raw protocol helpers ---

type r2Conn struct {
	t *testing.T
	c net.Conn
	w *bufio.Writer
	r *bufio.Reader
}

func newR2Conn(t *testing.T, c net.Conn) *r2Conn {
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return &r2Conn{t: t, c: c, w: bufio.NewWriter(c), r: bufio.NewReader(c)}
}

func review2Raw(t *testing.T, p *testProxy) *r2Conn { return newR2Conn(t, dialRaw(t, p)) }

// review2Direct is a raw connection straight to the cluster.
func review2Direct(t *testing.T) *r2Conn {
	t.Helper()
	c, err := net.Dial("tcp", cluster.Addr())
	if err != nil {
		t.Fatal(err)
	}
	startupRaw(t, c, harness.TrustUser)
	return newR2Conn(t, c)
}

func (rc *r2Conn) parse(name, sql string) { rc.w.Write(appendParse(nil, name, sql, nil)) }
func (rc *r2Conn) bind(portal, stmt string, params ...string) {
	m := &bindMsg{Portal: []byte(portal), Statement: []byte(stmt)}
	for _, p := range params {
		m.Params = append(m.Params, []byte(p))
	}
	rc.w.Write(appendBind(nil, m))
}
func (rc *r2Conn) execute(portal string) { rc.w.Write(appendExecute(nil, portal, 0)) }
func (rc *r2Conn) sync()                 { writeMsg(rc.w, 'S', nil) }
func (rc *r2Conn) query(sql string)      { rc.w.Write(appendQuery(nil, sql)) }
func (rc *r2Conn) copyData(s string)     { writeMsg(rc.w, 'd', []byte(s)) }
func (rc *r2Conn) copyDone()             { writeMsg(rc.w, 'c', nil) }
func (rc *r2Conn) flush() {
	if err := rc.w.Flush(); err != nil {
		rc.t.Fatal(err)
	}
}
func (rc *r2Conn) close() {
	writeMsg(rc.w, 'X', nil)
	rc.w.Flush()
	rc.c.Close()
}

// untilZ reads to ReadyForQuery: the message types and the SQLSTATEs of
// the errors.
func (rc *r2Conn) untilZ() (types string, codes []string) {
	rc.t.Helper()
	for {
		typ, body := readRawMsg(rc.t, rc.r)
		if typ == 'N' || typ == 'S' {
			continue
		}
		types += string(typ)
		if typ == 'E' {
			codes = append(codes, errField(body, 'C'))
		}
		if typ == 'Z' {
			return
		}
	}
}

// expect reads one message of type want.
func (rc *r2Conn) expect(want byte) []byte {
	rc.t.Helper()
	for {
		typ, body := readRawMsg(rc.t, rc.r)
		if typ == 'N' || typ == 'S' {
			continue
		}
		if typ != want {
			rc.t.Fatalf("got %q %q, want %q", typ, body, want)
		}
		return body
	}
}

func errField(body []byte, f byte) string {
	for len(body) > 0 && body[0] != 0 {
		k := body[0]
		end := strings.IndexByte(string(body[1:]), 0)
		if end < 0 {
			return ""
		}
		if k == f {
			return string(body[1 : 1+end])
		}
		body = body[2+end:]
	}
	return ""
}

func (rc *r2Conn) scalar(sql string) string {
	rc.t.Helper()
	rc.query(sql)
	rc.flush()
	var v string
	for {
		typ, body := readRawMsg(rc.t, rc.r)
		switch typ {
		case 'D':
			n := int(body[2])<<24 | int(body[3])<<16 | int(body[4])<<8 | int(body[5])
			v = string(body[6 : 6+n])
		case 'E':
			rc.t.Fatalf("%s: %q", sql, body)
		case 'Z':
			return v
		}
	}
}

func desyncs(p *testProxy) float64 { return testutil.ToFloat64(p.srv.metrics.TrackerDesyncs) }

// --- tracker: COPY IN ---

// feed applies client pushes and server messages in order and returns
// the desyncs counted.
type tstep struct {
	push    pendKind
	copyEnd bool
	srv     byte
	status  string
}

func feed(tr *tracker, steps []tstep) {
	for _, s := range steps {
		switch {
		case s.push != 0:
			tr.push(pending{kind: s.push})
		case s.copyEnd:
			tr.copyEnd()
		default:
			tr.onBackend(s.srv, []byte(s.status))
		}
	}
}

func cp(k pendKind) tstep { return tstep{push: k} }
func sv(typ byte) tstep   { return tstep{srv: typ} }
func zI() tstep           { return tstep{srv: 'Z', status: "I"} }
func cEnd() tstep         { return tstep{copyEnd: true} }
func seqs(s ...[]tstep) (o []tstep) {
	for _, x := range s {
		o = append(o, x...)
	}
	return
}

// TestReview2TrackerCopyInServerErrorNoCopyDone: the server ends a COPY
// IN with an ErrorResponse (a bad row) and the client, as the protocol
// allows ("any subsequent CopyData, CopyDone, or CopyFail messages ...
// will simply be dropped"), sends no CopyDone. copyIn stays set until a
// copy end that never comes, so every later Sync is voided although the
// backend answers it.
func TestReview2TrackerCopyInServerErrorNoCopyDone(t *testing.T) {
	t.Run("simple", func(t *testing.T) {
		tr := newTracker()
		feed(tr, seqs(
			[]tstep{cp(pendQuery), sv('G'), sv('E'), zI()},
			// the next statement, extended protocol
			[]tstep{cp(pendParse), cp(pendBind), cp(pendExecute), cp(pendSync), sv('1'), sv('2'), sv('C'), zI()},
		))
		if tr.len() != 0 || tr.desyncCount() != 0 {
			t.Errorf("queue %s, %d desyncs", queueString(tr), tr.desyncCount())
		}
	})
	t.Run("extended", func(t *testing.T) {
		tr := newTracker()
		feed(tr, seqs(
			[]tstep{cp(pendBind), cp(pendExecute), cp(pendSync), sv('2'), sv('G'), sv('E')},
			// the client saw the error: it sends the Sync that ends ignore-till-Sync
			[]tstep{cp(pendSync), zI()},
		))
		if tr.len() != 0 || tr.desyncCount() != 0 {
			t.Errorf("queue %s, %d desyncs", queueString(tr), tr.desyncCount())
		}
	})
}

// TestReview2TrackerCopyEndsCap: many COPYs pipelined before the first
// CopyInResponse (Bind, Execute, Sync, data, CopyDone, Sync each). No
// copy end is dropped while a COPY still to come may need it (a cap of 64
// once dropped the oldest: the first COPY's CopyInResponse then claimed
// the second COPY's end and voided a Sync the backend answers).
func TestReview2TrackerCopyEndsCap(t *testing.T) {
	for _, n := range []int{64, 65, 500} {
		tr := newTracker()
		var st []tstep
		for i := 0; i < n; i++ {
			st = append(st, cp(pendBind), cp(pendExecute), cp(pendSync), cEnd(), cp(pendSync))
		}
		for i := 0; i < n; i++ {
			st = append(st, sv('2'), sv('G'), sv('C'), zI())
		}
		feed(tr, st)
		if tr.len() != 0 || tr.desyncCount() != 0 {
			t.Errorf("%d COPYs pipelined: %d left in the queue, %d desyncs", n, tr.len(), tr.desyncCount())
		}
	}
}

// TestReview2TrackerTwoCopiesOneQuery: one simple Query with two COPY
// FROM STDIN (of plain tables: copyMix allows it). The copy end of the
// first COPY (seq >= the Query's) is not consumed when the first
// CopyInResponse claims it, so the second CopyInResponse claims it again
// and does not set copyIn: a Sync sent during the second COPY (ignored
// by the backend) stays queued and the next statement is mis-attributed.
func TestReview2TrackerTwoCopiesOneQuery(t *testing.T) {
	tr := newTracker()
	feed(tr, []tstep{
		cp(pendQuery), sv('G'), cEnd(), sv('C'),
		sv('G'), cp(pendSync) /* ignored by the backend in COPY IN */, cEnd(), sv('C'), zI(),
		cp(pendQuery), sv('T'), sv('D'), sv('C'), zI(),
	})
	if tr.len() != 0 || tr.desyncCount() != 0 {
		t.Errorf("queue %s, %d desyncs", queueString(tr), tr.desyncCount())
	}
	// Control: the same with the Sync during the first COPY is fine.
	tr = newTracker()
	feed(tr, []tstep{
		cp(pendQuery), sv('G'), cp(pendSync), cEnd(), sv('C'),
		sv('G'), cEnd(), sv('C'), zI(),
		cp(pendQuery), sv('T'), sv('D'), sv('C'), zI(),
	})
	if tr.len() != 0 || tr.desyncCount() != 0 {
		t.Errorf("control: queue %s, %d desyncs", queueString(tr), tr.desyncCount())
	}
}

// TestReview2TrackerCopyPipelines covers the pipelines 981e07a is about
// (regression tests, passing): Syncs before and after the copy data,
// failures at Parse, Bind or Execute with data pipelined, CopyFail, a
// server error mid-COPY followed by CopyDone and Sync, two COPYs
// pipelined, COPY TO and CopyBoth unaffected.
func TestReview2TrackerCopyPipelines(t *testing.T) {
	ext := []tstep{cp(pendParse), cp(pendBind), cp(pendExecute), cp(pendSync)}
	cases := []struct {
		name  string
		steps []tstep
	}{
		{"sync before and after data", seqs(ext, []tstep{cEnd(), cp(pendSync), sv('1'), sv('2'), sv('G'), sv('C'), zI()})},
		{"no sync before data", seqs([]tstep{cp(pendParse), cp(pendBind), cp(pendExecute), cEnd(), cp(pendSync), sv('1'), sv('2'), sv('G'), sv('C'), zI()})},
		{"fails at Parse", seqs(ext, []tstep{cEnd(), cp(pendSync), sv('E'), zI(), zI()})},
		{"fails at Bind", seqs(ext, []tstep{cEnd(), cp(pendSync), sv('1'), sv('E'), zI(), zI()})},
		{"fails at Execute before COPY", seqs(ext, []tstep{cEnd(), cp(pendSync), sv('1'), sv('2'), sv('E'), zI(), zI()})},
		{"CopyFail", seqs(ext, []tstep{cEnd(), cp(pendSync), sv('1'), sv('2'), sv('G'), sv('E'), zI()})},
		{"error mid-COPY then CopyDone, Sync", seqs(ext, []tstep{sv('1'), sv('2'), sv('G'), sv('E'), cEnd(), cp(pendSync), zI()})},
		{"two COPYs pipelined", seqs(ext, []tstep{cEnd(), cp(pendSync)}, ext, []tstep{cEnd(), cp(pendSync),
			sv('1'), sv('2'), sv('G'), sv('C'), zI(), sv('1'), sv('2'), sv('G'), sv('C'), zI()})},
		{"two COPYs, first fails mid-COPY", seqs(ext, []tstep{cEnd(), cp(pendSync)}, ext, []tstep{cEnd(), cp(pendSync),
			sv('1'), sv('2'), sv('G'), sv('E'), zI(), sv('1'), sv('2'), sv('G'), sv('C'), zI()})},
		{"two COPYs in one pipeline, one Sync", seqs([]tstep{cp(pendParse), cp(pendBind), cp(pendExecute), cEnd(), cp(pendParse), cp(pendBind), cp(pendExecute), cEnd(), cp(pendSync),
			sv('1'), sv('2'), sv('G'), sv('C'), sv('1'), sv('2'), sv('G'), sv('C'), zI()})},
		{"simple COPY, data after response, stray Sync", []tstep{cp(pendQuery), sv('G'), cp(pendSync), cEnd(), sv('C'), zI()}},
		{"simple COPY, data before response", []tstep{cp(pendQuery), cEnd(), sv('G'), sv('C'), zI()}},
		{"simple COPY fails before starting, data pipelined", []tstep{cp(pendQuery), cEnd(), sv('E'), zI(), cp(pendQuery), sv('G'), cEnd(), sv('C'), zI()}},
		{"COPY TO with Sync", seqs(ext, []tstep{sv('1'), sv('2'), sv('H'), sv('d'), sv('d'), sv('c'), sv('C'), zI()})},
		{"CopyBoth", []tstep{cp(pendQuery), sv('W'), sv('d'), cEnd(), sv('c'), sv('C'), zI()}},
	}
	for _, c := range cases {
		tr := newTracker()
		feed(tr, c.steps)
		tr.peek() // a void Sync pushed after the last answer is dropped at the next one
		if tr.len() != 0 || tr.desyncCount() != 0 {
			t.Errorf("%s: queue %s, %d desyncs", c.name, queueString(tr), tr.desyncCount())
		}
	}
}

// --- live: COPY IN ---

const review2Schema = handBackSchema + `
DROP TABLE IF EXISTS r2_plain2;
CREATE TABLE r2_plain2 (id int, note text);
GRANT ALL ON r2_plain2 TO PUBLIC;
`

// TestReview2CopyServerErrorThenSync: through pgveil, a simple-Query
// COPY FROM STDIN the server fails on its first row; the client reads
// the ErrorResponse and ReadyForQuery and, as the protocol allows, sends
// no CopyDone. Its next extended-protocol statement's Sync is voided by
// the tracker (copyIn is still set): a desync, and the ReadyForQuery is
// attributed to nothing.
func TestReview2CopyServerErrorThenSync(t *testing.T) {
	relayCores(t, review2Schema, hbTables, func(t *testing.T, p *testProxy) {
		rc := review2Raw(t, p)
		defer rc.close()
		rc.query("COPY hb_plain (id, note) FROM STDIN")
		rc.flush()
		rc.expect('G')
		rc.copyData("not-an-int\tx\n")
		rc.flush()
		if types, codes := rc.untilZ(); types != "EZ" || codes[0] != "22P02" {
			t.Fatalf("bad row: %s %v", types, codes)
		}
		before := desyncs(p)
		rc.parse("", "SELECT 1")
		rc.bind("", "")
		rc.execute("")
		rc.sync()
		rc.flush()
		if types, _ := rc.untilZ(); types != "12DCZ" {
			t.Fatalf("next statement: %s", types)
		}
		if v := rc.scalar("SELECT 2"); v != "2" {
			t.Fatalf("then a simple query: %q", v)
		}
		if d := desyncs(p) - before; d != 0 {
			t.Errorf("%v tracker desyncs after a COPY the server failed without the client's CopyDone", d)
		}
	})
}

// TestReview2CopyPipelinesLive: the COPY pipelines of 981e07a against the
// server, on both relays, for a plain and an encrypted table: no desync,
// the right answers. (Regression test, passing.)
func TestReview2CopyPipelinesLive(t *testing.T) {
	relayCores(t, review2Schema, hbTables, func(t *testing.T, p *testProxy) {
		rc := review2Raw(t, p)
		defer rc.close()
		// 1. Execute, Sync, data, CopyDone, Sync: one CopyInResponse, one ReadyForQuery per answered Sync.
		for _, tc := range []struct{ copy, data string }{
			{"COPY hb_plain (id, note) FROM STDIN", "1\tp1\n2\tp2\n"},
			{"COPY hb_secrets (body) FROM STDIN", "r2-s1\nr2-s2\n"},
		} {
			rc.parse("", tc.copy)
			rc.bind("", "")
			rc.execute("")
			rc.sync()
			rc.copyData(tc.data)
			rc.copyDone()
			rc.sync()
			rc.flush()
			if types, codes := rc.untilZ(); types != "12GCZ" {
				t.Fatalf("%s: %s %v", tc.copy, types, codes)
			}
		}
		// 2. fails at Parse (missing table), data and a second Sync pipelined: both Syncs answered.
		rc.parse("", "COPY r2_missing FROM STDIN")
		rc.bind("", "")
		rc.execute("")
		rc.sync()
		rc.copyData("1\n")
		rc.copyDone()
		rc.sync()
		rc.flush()
		if types, codes := rc.untilZ(); types != "12EZ" || codes[0] != "42P01" { // a utility statement is analyzed at Execute
			t.Fatalf("missing table: %s %v", types, codes)
		}
		if types, _ := rc.untilZ(); types != "Z" {
			t.Fatalf("missing table, second Sync: %s", types)
		}
		// 3. error mid-COPY, then CopyDone and Sync.
		rc.parse("", "COPY hb_plain (id, note) FROM STDIN")
		rc.bind("", "")
		rc.execute("")
		rc.sync()
		rc.flush()
		rc.expect('1')
		rc.expect('2')
		rc.expect('G')
		rc.copyData("bad\tx\n")
		rc.flush()
		rc.expect('E')
		rc.copyDone()
		rc.sync()
		rc.flush()
		if types, _ := rc.untilZ(); types != "Z" {
			t.Fatalf("error mid-COPY: %s", types)
		}
		// 4. CopyFail.
		rc.query("COPY hb_plain (id, note) FROM STDIN")
		rc.flush()
		rc.expect('G')
		rc.copyData("3\tp3\n")
		writeMsg(rc.w, 'f', []byte("client gives up\x00"))
		rc.flush()
		if types, codes := rc.untilZ(); types != "EZ" || codes[0] != "57014" {
			t.Fatalf("CopyFail: %s %v", types, codes)
		}
		// 5. two COPYs pipelined in one batch, each with its data, one Sync each.
		for i := 0; i < 2; i++ {
			rc.parse("", "COPY hb_plain (id, note) FROM STDIN")
			rc.bind("", "")
			rc.execute("")
			rc.sync()
			rc.copyData(fmt.Sprintf("%d\tbatch\n", 10+i))
			rc.copyDone()
			rc.sync()
		}
		rc.flush()
		for i := 0; i < 2; i++ {
			if types, codes := rc.untilZ(); types != "12GCZ" {
				t.Fatalf("pipelined COPY %d: %s %v", i, types, codes)
			}
		}
		// 6. simple-Query COPY, data pipelined before the response, a stray Sync during COPY.
		rc.query("COPY hb_plain (id, note) FROM STDIN")
		rc.copyData("20\tsimple\n")
		rc.sync()
		rc.copyDone()
		rc.flush()
		if types, codes := rc.untilZ(); types != "GCZ" {
			t.Fatalf("simple COPY: %s %v", types, codes)
		}
		if v := rc.scalar("SELECT count(*) FROM hb_plain"); v != "5" {
			t.Errorf("hb_plain has %s rows, want 5", v)
		}
		if v := rc.scalar("SELECT count(*) FROM hb_secrets"); v != "2" {
			t.Errorf("hb_secrets has %s rows, want 2", v)
		}
		if d := desyncs(p); d != 0 {
			t.Errorf("%v tracker desyncs", d)
		}
	})
}

// TestReview2TwoCopiesOneQueryLive: the live form of
// TestReview2TrackerTwoCopiesOneQuery (plain tables).
func TestReview2TwoCopiesOneQueryLive(t *testing.T) {
	relayCores(t, review2Schema, hbTables, func(t *testing.T, p *testProxy) {
		rc := review2Raw(t, p)
		defer rc.close()
		rc.query("COPY hb_plain (id, note) FROM STDIN; COPY r2_plain2 (id, note) FROM STDIN")
		rc.flush()
		rc.expect('G')
		rc.copyData("1\ta\n")
		rc.copyDone()
		rc.flush()
		rc.expect('C')
		rc.expect('G')
		rc.sync() // ignored by the backend in COPY IN
		rc.copyData("2\tb\n")
		rc.copyDone()
		rc.flush()
		if types, codes := rc.untilZ(); types != "CZ" {
			t.Fatalf("second COPY: %s %v", types, codes)
		}
		if v := rc.scalar("SELECT count(*) FROM r2_plain2"); v != "1" {
			t.Fatalf("r2_plain2: %q", v)
		}
		if d := desyncs(p); d != 0 {
			t.Errorf("%v tracker desyncs", d)
		}
	})
}

// --- dropUnnamed ---

// TestReview2UnnamedClosedInFailedPipeline: a rewritten unnamed statement
// whose Execute fails, then another unnamed Parse in the same pipeline
// (one Sync at the end, as pgx batches and JDBC batches send). The
// suppressed Close dropUnnamed writes before the second Parse is skipped
// by the server (ignore till Sync), but the view has already forgotten
// the upstream statement: it is never closed. One leaks per such
// pipeline, without bound.
func TestReview2UnnamedClosedInFailedPipeline(t *testing.T) {
	relayCores(t, review2Schema+"INSERT INTO hb_secrets (id, body) VALUES (1, 'x');", hbTables, func(t *testing.T, p *testProxy) {
		rc := review2Raw(t, p)
		defer rc.close()
		const rounds = 5
		for i := 0; i < rounds; i++ {
			rc.parse("", "INSERT INTO hb_secrets (id, body) VALUES ($1, $2)")
			rc.bind("", "", "1", "dup") // duplicate key at Execute
			rc.execute("")
			rc.parse("", "SELECT 1")
			rc.bind("", "")
			rc.execute("")
			rc.sync()
			rc.flush()
			if types, codes := rc.untilZ(); types != "12EZ" || codes[0] != "23505" {
				t.Fatalf("round %d: %s %v", i, types, codes)
			}
		}
		n := rc.scalar("SELECT count(*) FROM pg_prepared_statements")
		if n != "0" {
			t.Errorf("after %d failed pipelines: %s statements held upstream, want 0", rounds, n)
		}
		if d := desyncs(p); d != 0 {
			t.Errorf("%v tracker desyncs", d)
		}
	})
}

// TestReview2UnnamedPortalOutlivesClose: Parse U1 (rewritten), Bind the
// unnamed portal from it, Parse U2 (pgveil closes U1's upstream
// statement first), Execute the unnamed portal. PostgreSQL keeps a
// portal whose statement was closed, so the portal still runs and its
// rows are decrypted with U1's plan; compare with the server directly.
func TestReview2UnnamedPortalOutlivesClose(t *testing.T) {
	relayCores(t, review2Schema, hbTables, func(t *testing.T, p *testProxy) {
		rc := review2Raw(t, p)
		defer rc.close()
		rc.query("INSERT INTO hb_secrets (body) VALUES ('r2-portal')")
		rc.flush()
		rc.untilZ()
		for _, second := range []string{"SELECT 1", "SELECT body FROM hb_secrets WHERE id = $1"} {
			rc.parse("", "SELECT body FROM hb_secrets")
			rc.bind("", "")
			rc.parse("", second)
			writeMsg(rc.w, 'D', []byte("P\x00"))
			rc.execute("")
			rc.sync()
			rc.flush()
			rc.expect('1')
			rc.expect('2')
			rc.expect('1')
			rc.expect('T')
			body := rc.expect('D')
			if !strings.HasSuffix(string(body), "r2-portal") {
				t.Errorf("then %q: row %q, want r2-portal", second, body)
			}
			if types, codes := rc.untilZ(); types != "CZ" {
				t.Fatalf("then %q: %s %v", second, types, codes)
			}
		}
		if n := rc.scalar("SELECT count(*) FROM pg_prepared_statements"); n != "0" {
			t.Errorf("%s statements held upstream, want 0 (the simple Query closed the last unnamed)", n)
		}
		if d := desyncs(p); d != 0 {
			t.Errorf("%v tracker desyncs", d)
		}
	})
}

// TestReview2UnnamedBounded: many rounds of rewritten unnamed statements
// replaced by every kind of successor (rewritten and pass-through Parse,
// simple Query rewritten and not, DEALLOCATE through Parse, a simple
// Query pgveil refuses) keep pg_prepared_statements bounded. (Passing.)
func TestReview2UnnamedBounded(t *testing.T) {
	relayCores(t, review2Schema, hbTables, func(t *testing.T, p *testProxy) {
		rc := review2Raw(t, p)
		defer rc.close()
		rewritten := func(i int) {
			rc.parse("", "INSERT INTO hb_secrets (body) VALUES ($1)")
			rc.bind("", "", "r2-b-"+strconv.Itoa(i))
			rc.execute("")
			rc.sync()
		}
		for i := 0; i < 10; i++ {
			rewritten(i)
			rc.parse("", "SELECT 1")
			rc.bind("", "")
			rc.execute("")
			rc.sync()
			rewritten(i)
			rc.query("SELECT body FROM hb_secrets LIMIT 0")
			rewritten(i)
			rc.query("SELECT 1")
			rewritten(i)
			rc.parse("", "DEALLOCATE ALL")
			rc.bind("", "")
			rc.execute("")
			rc.sync()
			rc.flush()
			for j := 0; j < 8; j++ {
				if types, codes := rc.untilZ(); len(codes) != 0 {
					t.Fatalf("round %d, answer %d: %s %v", i, j, types, codes)
				}
			}
		}
		if n, _ := strconv.Atoi(rc.scalar("SELECT count(*) FROM pg_prepared_statements")); n > 1 {
			t.Errorf("%d statements held upstream", n)
		}
		if d := desyncs(p); d != 0 {
			t.Errorf("%v tracker desyncs", d)
		}
	})
}

// --- COPY TO: one row per CopyData, as the server sends it ---

// copyOutMessages runs a COPY TO on rc and returns the CopyData bodies.
func copyOutMessages(t *testing.T, rc *r2Conn, sql string) []string {
	t.Helper()
	rc.query(sql)
	rc.flush()
	rc.expect('H')
	var got []string
	for {
		typ, body := readRawMsg(t, rc.r)
		if typ == 'd' {
			got = append(got, string(body))
			continue
		}
		if typ != 'c' {
			t.Fatalf("%s: %q %q", sql, typ, body)
		}
		break
	}
	if types, codes := rc.untilZ(); types != "CZ" {
		t.Fatalf("%s: %s %v", sql, types, codes)
	}
	return got
}

// TestReview2CopyOutSplitLikeServer: COPY TO of an encrypted column
// through pgveil is split into CopyData messages exactly as the server
// splits COPY TO of the same plaintext (a text column of a plain table):
// text, CSV with HEADER, binary, NULLs, escapes, a row of 300 kB, no
// rows at all. (Passing.)
func TestReview2CopyOutSplitLikeServer(t *testing.T) {
	values := []*string{ptr("r2-one"), nil, ptr(strings.Repeat("z", 300_000)), ptr("tab\there\nnewline \\ back"), ptr("")}
	relayCores(t, review2Schema+"DROP TABLE IF EXISTS r2_ref; CREATE TABLE r2_ref (id int, body text); GRANT ALL ON r2_ref TO PUBLIC;", hbTables, func(t *testing.T, p *testProxy) {
		ctx := context.Background()
		admin := adminConn(t)
		rc := review2Raw(t, p)
		defer rc.close()
		for i, v := range values {
			rc.parse("", "INSERT INTO hb_secrets (id, body) VALUES ($1, $2)")
			m := &bindMsg{Params: [][]byte{[]byte(strconv.Itoa(i + 1)), nil}}
			if v != nil {
				m.Params[1] = []byte(*v)
			}
			rc.w.Write(appendBind(nil, m))
			rc.execute("")
			rc.sync()
			rc.flush()
			if types, codes := rc.untilZ(); len(codes) != 0 {
				t.Fatalf("insert %d: %s %v", i, types, codes)
			}
			if _, err := admin.Exec(ctx, "INSERT INTO r2_ref VALUES ($1, $2)", i+1, v); err != nil {
				t.Fatal(err)
			}
		}
		direct := review2Direct(t)
		defer direct.close()
		for _, where := range []string{"", " WHERE id > 100"} {
			for _, opts := range []string{"", "(FORMAT csv)", "(FORMAT csv, HEADER)", "(FORMAT text, HEADER)", "(FORMAT binary)"} {
				got := copyOutMessages(t, rc, "COPY (SELECT body FROM hb_secrets"+where+" ORDER BY id) TO STDOUT "+opts)
				want := copyOutMessages(t, direct, "COPY (SELECT body FROM r2_ref"+where+" ORDER BY id) TO STDOUT "+opts)
				if len(got) != len(want) {
					t.Errorf("%q %s: %d CopyData, the server sends %d", where, opts, len(got), len(want))
					continue
				}
				for i := range got {
					if got[i] != want[i] {
						t.Errorf("%q %s: CopyData %d is %.80q, the server sends %.80q", where, opts, i, got[i], want[i])
					}
				}
			}
		}
		if d := desyncs(p); d != 0 {
			t.Errorf("%v tracker desyncs", d)
		}
	})
}

func ptr(s string) *string { return &s }
