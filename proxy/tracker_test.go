package proxy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// step is one move of a tracker script: the client sends a message
// (push/define/bind...), or the server sends one and we check which client
// message it is attributed to and whether that message is then complete.
type step struct {
	client func(t *tracker)
	server byte   // backend message type
	body   string // backend body, for ReadyForQuery
	want   string // "Kind" or "Kind done" or "" for asynchronous
}

func run(t *testing.T, tr *tracker, steps []step) {
	t.Helper()
	for i, s := range steps {
		if s.client != nil {
			s.client(tr)
			continue
		}
		ev := tr.onBackend(s.server, []byte(s.body))
		got := ""
		if ev.cur.kind != 0 {
			got = ev.cur.kind.String()
			if ev.done {
				got += " done"
			}
		}
		if got != s.want {
			t.Fatalf("step %d: backend %q attributed to %q, want %q (queue %s)", i, s.server, got, s.want, queueString(tr))
		}
	}
	if d := tr.desyncCount(); d != 0 {
		t.Fatalf("%d desyncs", d)
	}
}

func queueString(tr *tracker) string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var parts []string
	for i := 0; i < tr.n; i++ {
		p := tr.q[(tr.head+i)%len(tr.q)]
		s := p.kind.String()
		if p.void {
			s += "(void)"
		}
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func push(k pendKind) step { return step{client: func(t *tracker) { t.push(pending{kind: k}) }} }
func srv(typ byte, want string) step {
	return step{server: typ, want: want}
}
func rfq(status, want string) step { return step{server: 'Z', body: status, want: want} }

func TestTrackerExtendedPipeline(t *testing.T) {
	tr := newTracker()
	run(t, tr, []step{
		push(pendParse), push(pendBind), push(pendDescribePortal), push(pendExecute),
		push(pendParse), push(pendBind), push(pendExecute), push(pendSync),
		srv('1', "Parse done"), srv('2', "Bind done"), srv('T', "Describe(P) done"),
		srv('D', "Execute"), srv('D', "Execute"), srv('C', "Execute done"),
		srv('1', "Parse done"), srv('2', "Bind done"), srv('C', "Execute done"),
		rfq("I", "Sync done"),
	})
	if tr.len() != 0 || tr.txStatus != 'I' {
		t.Fatalf("queue %s status %c", queueString(tr), tr.txStatus)
	}
}

func TestTrackerErrorMidPipeline(t *testing.T) {
	tr := newTracker()
	run(t, tr, []step{
		push(pendParse), push(pendBind), push(pendExecute), // fails at Execute
		push(pendParse), push(pendBind), push(pendExecute), push(pendSync),
		push(pendParse), push(pendBind), push(pendExecute), push(pendSync), // next batch runs
		srv('1', "Parse done"), srv('2', "Bind done"),
		srv('E', "Execute"), // the rest of the batch is skipped until Sync
		rfq("I", "Sync done"),
		srv('1', "Parse done"), srv('2', "Bind done"), srv('D', "Execute"), srv('C', "Execute done"),
		rfq("I", "Sync done"),
	})
	if tr.len() != 0 {
		t.Fatalf("queue %s", queueString(tr))
	}
}

func TestTrackerErrorAtParseInTransaction(t *testing.T) {
	tr := newTracker()
	run(t, tr, []step{
		push(pendParse), push(pendBind), push(pendDescribePortal), push(pendExecute), push(pendSync),
		srv('E', "Parse"),
		rfq("E", "Sync done"),
	})
	if tr.txStatus != 'E' {
		t.Fatalf("status %c", tr.txStatus)
	}
}

// TestTrackerErrorBeforeSyncSent: the client sends Bind (bad parameter) and
// Flush, reads the error, then sends Execute, Flush, Sync. The backend
// skips the Execute; only the Sync is answered.
func TestTrackerErrorBeforeSyncSent(t *testing.T) {
	tr := newTracker()
	run(t, tr, []step{
		push(pendBind),
		srv('E', "Bind"),
		push(pendExecute), push(pendSync),
		rfq("I", "Sync done"),
		// Normal service afterwards.
		push(pendBind), push(pendExecute), push(pendSync),
		srv('2', "Bind done"), srv('C', "Execute done"), rfq("I", "Sync done"),
	})
	if tr.len() != 0 {
		t.Fatalf("queue %s", queueString(tr))
	}
}

func TestTrackerErrorAtSync(t *testing.T) {
	// A deferred constraint fails at the implicit commit of Sync: the error
	// comes while Sync is the head, and ReadyForQuery still ends it.
	tr := newTracker()
	run(t, tr, []step{
		push(pendBind), push(pendExecute), push(pendSync),
		srv('2', "Bind done"), srv('C', "Execute done"),
		srv('E', "Sync"), rfq("I", "Sync done"),
	})
}

func TestTrackerDescribeStatement(t *testing.T) {
	tr := newTracker()
	run(t, tr, []step{
		push(pendParse), push(pendDescribeStmt), push(pendParse), push(pendDescribeStmt), push(pendSync),
		srv('1', "Parse done"), srv('t', "Describe(S)"), srv('T', "Describe(S) done"),
		srv('1', "Parse done"), srv('t', "Describe(S)"), srv('n', "Describe(S) done"),
		rfq("I", "Sync done"),
	})
}

func TestTrackerPortalSuspended(t *testing.T) {
	tr := newTracker()
	run(t, tr, []step{
		push(pendBind), push(pendExecute), push(pendExecute), push(pendExecute), push(pendClosePortal), push(pendSync),
		srv('2', "Bind done"),
		srv('D', "Execute"), srv('s', "Execute done"),
		srv('D', "Execute"), srv('s', "Execute done"),
		srv('C', "Execute done"), // nothing left
		srv('3', "Close(P) done"),
		rfq("T", "Sync done"),
	})
}

func TestTrackerFlushWithoutSync(t *testing.T) {
	// Flush is not tracked: responses arrive for what was sent, the queue
	// empties, and a later Sync gets its own ReadyForQuery.
	tr := newTracker()
	run(t, tr, []step{
		push(pendParse), push(pendDescribeStmt),
		srv('1', "Parse done"), srv('t', "Describe(S)"), srv('T', "Describe(S) done"),
		push(pendBind), push(pendExecute), push(pendSync),
		srv('2', "Bind done"), srv('C', "Execute done"), rfq("I", "Sync done"),
	})
}

func TestTrackerSimpleQuery(t *testing.T) {
	tr := newTracker()
	q := &queryState{}
	run(t, tr, []step{
		{client: func(t *tracker) { t.push(pending{kind: pendQuery, query: q}) }},
		srv('T', "Query"), srv('D', "Query"), srv('C', "Query"),
		srv('N', ""), // a notice is asynchronous
		srv('T', "Query"), srv('D', "Query"), srv('D', "Query"), srv('C', "Query"),
		srv('C', "Query"), // a statement without rows
		srv('E', "Query"), // error in the fourth: the rest is skipped
		rfq("I", "Query done"),
	})
	if q.stmt != 3 {
		t.Fatalf("statement index %d, want 3", q.stmt)
	}
	run(t, tr, []step{
		push(pendQuery), srv('I', "Query"), rfq("I", "Query done"), // empty query
		push(pendFunctionCall), srv('V', "FunctionCall"), rfq("I", "FunctionCall done"),
		srv('A', ""), srv('S', ""), // notification and parameter status at any time
	})
}

func TestTrackerCopySimple(t *testing.T) {
	tr := newTracker()
	run(t, tr, []step{
		push(pendQuery),
		srv('G', "Query"),
		{client: func(t *tracker) { t.copyEnd() }},
		srv('C', "Query"), rfq("I", "Query done"),
		push(pendQuery), srv('H', "Query"), srv('d', "Query"), srv('d', "Query"), srv('c', "Query"), srv('C', "Query"), rfq("I", "Query done"),
	})
}

// TestTrackerCopyInExtendedVoidSync follows libpq's extended-protocol COPY:
// it sends Sync right after Execute, before it knows the statement is COPY;
// the backend ignores that Sync during copy-in, and libpq sends another
// after CopyDone. Only the second gets a ReadyForQuery.
func TestTrackerCopyInExtendedVoidSync(t *testing.T) {
	tr := newTracker()
	run(t, tr, []step{
		push(pendParse), push(pendBind), push(pendExecute), push(pendSync),
		srv('1', "Parse done"), srv('2', "Bind done"), srv('G', "Execute"),
		{client: func(t *tracker) { t.copyEnd() }}, // CopyDone
		push(pendSync),
		srv('C', "Execute done"),
		rfq("I", "Sync done"),
	})
	if tr.len() != 0 {
		t.Fatalf("queue %s", queueString(tr))
	}
}

func TestTrackerCopyInExtendedError(t *testing.T) {
	tr := newTracker()
	run(t, tr, []step{
		push(pendBind), push(pendExecute), push(pendSync),
		srv('2', "Bind done"), srv('G', "Execute"),
		srv('E', "Execute"),                        // the server errors mid-copy (a bad row): skip to the next real Sync
		{client: func(t *tracker) { t.copyEnd() }}, // CopyDone, discarded by the server
		push(pendSync),
		rfq("I", "Sync done"),
	})
	if tr.len() != 0 {
		t.Fatalf("queue %s", queueString(tr))
	}
}

func TestTrackerCopyFailsBeforeCopyIn(t *testing.T) {
	// COPY on a missing table fails at Execute: the client never sends copy
	// data, so its first Sync is a real one.
	tr := newTracker()
	run(t, tr, []step{
		push(pendBind), push(pendExecute), push(pendSync),
		srv('2', "Bind done"), srv('E', "Execute"), rfq("I", "Sync done"),
		push(pendBind), push(pendExecute), push(pendSync),
		srv('2', "Bind done"), srv('C', "Execute done"), rfq("I", "Sync done"),
	})
}

// TestTrackerCopyInPipelined: the client sends Execute, Sync, its copy
// data, CopyDone and a second Sync before the server answers. When the
// COPY begins (CopyInResponse) the first Sync is ignored by the backend;
// when it fails at Parse (a missing table) the first Sync is answered,
// the copy data ignored, and the second Sync answered too. The tracker
// used to void the first Sync at the client's first copy message, before
// it knew, and counted a desync when the COPY had failed.
func TestTrackerCopyInPipelined(t *testing.T) {
	for _, ok := range []bool{true, false} {
		tr := newTracker()
		steps := []step{
			push(pendParse), push(pendBind), push(pendExecute), push(pendSync),
			{client: func(t *tracker) { t.copyEnd() }}, // CopyData…, CopyDone
			push(pendSync),
		}
		if ok {
			steps = append(steps, srv('1', "Parse done"), srv('2', "Bind done"), srv('G', "Execute"),
				srv('C', "Execute done"), rfq("I", "Sync done"))
		} else {
			steps = append(steps, srv('E', "Parse"), rfq("I", "Sync done"), rfq("I", "Sync done"))
		}
		run(t, tr, steps)
		if tr.len() != 0 || tr.desyncCount() != 0 {
			t.Fatalf("copy began %v: queue %s, %d desyncs", ok, queueString(tr), tr.desyncCount())
		}
	}
}

// TestTrackerCopyInSyncDuringCopy: a Sync the client sends while the
// backend is in COPY IN (after the CopyInResponse, before CopyDone) is
// ignored; one after CopyDone is answered.
func TestTrackerCopyInSyncDuringCopy(t *testing.T) {
	tr := newTracker()
	run(t, tr, []step{
		push(pendBind), push(pendExecute),
		srv('2', "Bind done"), srv('G', "Execute"),
		push(pendSync), // ignored by the backend
		{client: func(t *tracker) { t.copyEnd() }},
		push(pendSync),
		srv('C', "Execute done"), rfq("I", "Sync done"),
	})
	if tr.len() != 0 || tr.desyncCount() != 0 {
		t.Fatalf("queue %s, %d desyncs", queueString(tr), tr.desyncCount())
	}
}

func TestTrackerDesync(t *testing.T) {
	tr := newTracker()
	tr.onBackend('2', nil) // BindComplete with nothing pending
	tr.push(pending{kind: pendParse})
	tr.onBackend('C', nil) // CommandComplete while a Parse is expected
	if got := tr.desyncCount(); got != 2 {
		t.Fatalf("desyncs %d, want 2", got)
	}
}

func TestTrackerRingGrowth(t *testing.T) {
	tr := newTracker()
	for round := 0; round < 3; round++ {
		for i := 0; i < 1000; i++ {
			tr.push(pending{kind: pendParse})
		}
		tr.push(pending{kind: pendSync})
		for i := 0; i < 1000; i++ {
			if ev := tr.onBackend('1', nil); ev.cur.kind != pendParse || !ev.done {
				t.Fatalf("round %d message %d: %+v", round, i, ev)
			}
		}
		if ev := tr.onBackend('Z', []byte("I")); ev.cur.kind != pendSync {
			t.Fatal("sync")
		}
	}
	if tr.len() != 0 {
		t.Fatal(queueString(tr))
	}
}

// TestTrackerView covers the client-side view of statements and portals.
func TestTrackerView(t *testing.T) {
	tr := newTracker()
	plan := &rewrite.Stmt{}
	enc := &Statement{Name: "", ServerName: "pgveil_1", Plan: plan}

	// The unnamed statement: a rewritten one is remembered…
	tr.defineStatement(nil, enc)
	if tr.statement(nil) != enc {
		t.Fatal("unnamed rewritten statement not found")
	}
	// …and a pass-through Parse of the unnamed statement replaces it.
	tr.defineStatement(nil, passthroughStmt)
	if tr.statement(nil) != passthroughStmt {
		t.Fatal("unnamed statement reuse kept the old plan")
	}
	if len(tr.stmts) != 0 {
		t.Fatal("pass-through unnamed statement must not be stored")
	}

	// Named statements, Close, DEALLOCATE ALL.
	named := &Statement{Name: "s1", ServerName: "pgveil_2", Plan: plan}
	tr.defineStatement([]byte("s1"), named)
	tr.defineStatement([]byte("s2"), passthroughStmt)
	if !tr.hasStatement([]byte("s1")) || tr.statement([]byte("s1")) != named || !tr.hasStatement([]byte("s2")) {
		t.Fatal("named statements")
	}
	// A Close takes s1 out of the view (it may be prepared again), but a
	// Bind still reaches pgveil's statement until the server confirms
	// the Close (review of the extended protocol: a Close the server
	// skipped after an error left s1 in the server, and the Bind went
	// upstream raw).
	tr.closeStatement([]byte("s1"))
	tr.push(pending{kind: pendCloseStmt, defName: "s1", stmt: named})
	if tr.hasStatement([]byte("s1")) || tr.statement([]byte("s1")) != named {
		t.Fatal("Close: s1 must be a ghost until the server confirms it")
	}
	tr.onBackend('3', nil)
	if tr.statement([]byte("s1")) != passthroughStmt {
		t.Fatal("CloseComplete did not remove the ghost of s1")
	}
	tr.forgetStatements()
	if tr.hasStatement([]byte("s2")) {
		t.Fatal("forgetStatements")
	}
	// DEALLOCATE ALL in a Query: ghosts until its CommandComplete; a
	// skipped one (an error before it) leaves them.
	tr.defineStatement([]byte("s3"), named)
	tr.forgetStatements()
	dealloc := &rewrite.Plan{Stmts: []*rewrite.Stmt{{Kind: rewrite.KindSelect}, {Deallocate: "*"}}}
	tr.push(pending{kind: pendQuery, query: &queryState{plan: dealloc}})
	tr.onBackend('E', nil)
	tr.onBackend('Z', []byte{'I'})
	if tr.statement([]byte("s3")) != named {
		t.Fatal("a DEALLOCATE ALL the server did not run removed s3")
	}
	tr.forgetStatements()
	tr.push(pending{kind: pendQuery, query: &queryState{plan: dealloc}})
	tr.onBackend('C', nil)
	tr.onBackend('C', nil)
	tr.onBackend('Z', []byte{'I'})
	if tr.statement([]byte("s3")) != passthroughStmt {
		t.Fatal("a DEALLOCATE ALL the server ran left the ghost of s3")
	}

	// Portals: pass-through binds are not stored; others are, until Close.
	p := &Portal{Name: "p1", Stmt: named}
	tr.bindPortal([]byte("p1"), p)
	if tr.portal([]byte("p1")) != p {
		t.Fatal("portal p1")
	}
	tr.bindPortal([]byte("p1"), passthroughPortal)
	if tr.portal([]byte("p1")) != passthroughPortal {
		t.Fatal("rebinding p1 as pass-through kept the old plan")
	}
	tr.bindPortal([]byte("p2"), &Portal{Name: "p2", Stmt: named})
	tr.closePortal([]byte("p2"))
	if tr.portal([]byte("p2")) != passthroughPortal {
		t.Fatal("Close(P)")
	}
}

// TestTrackerPortalSweep checks that portals bound before a transaction
// ended are swept, so a client naming a new portal per query (JDBC with a
// fetch size) does not grow the view without bound.
func TestTrackerPortalSweep(t *testing.T) {
	tr := newTracker()
	stmt := &Statement{Name: "s", ServerName: "pgveil_1", Plan: &rewrite.Stmt{}}
	for i := 0; i < 10*maxIdlePortals; i++ {
		name := fmt.Sprintf("C_%d", i)
		tr.bindPortal([]byte(name), &Portal{Name: name, Stmt: stmt})
		tr.push(pending{kind: pendBind})
		tr.push(pending{kind: pendSync})
		tr.onBackend('2', nil)
		tr.onBackend('Z', []byte("I"))
	}
	if len(tr.portals) > maxIdlePortals+1 {
		t.Fatalf("%d portals kept", len(tr.portals))
	}
	// Inside a transaction nothing is swept.
	tr2 := newTracker()
	for i := 0; i < 3*maxIdlePortals; i++ {
		name := fmt.Sprintf("C_%d", i)
		tr2.bindPortal([]byte(name), &Portal{Name: name, Stmt: stmt})
		tr2.push(pending{kind: pendBind})
		tr2.push(pending{kind: pendSync})
		tr2.onBackend('2', nil)
		tr2.onBackend('Z', []byte("T"))
	}
	if len(tr2.portals) != 3*maxIdlePortals {
		t.Fatalf("portals of an open transaction were swept: %d left", len(tr2.portals))
	}
}
