package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgveil/pgveil/rewrite"
)

// Statement is a prepared statement as the client named it. A statement
// whose plan needs nothing from pgveil is represented by passthroughStmt, so
// the relay allocates nothing for it.
type Statement struct {
	// Name is the client's name ("" for the unnamed statement).
	Name string
	// ServerName is the name used upstream. pgveil gives every statement it
	// rewrites a fresh upstream name, so a Bind can only ever reach the very
	// plan the proxy recorded for it: if that Parse failed or was skipped,
	// the server has no statement of that name and rejects the Bind.
	ServerName string
	// Plan is the rewrite plan; nil for a statement pgveil does not touch.
	Plan *rewrite.Stmt
	// SQL is the client's text (literal offsets in Plan refer to it).
	SQL string
	// Sent is the text pgveil prepared upstream when it is not SQL ("" when
	// it is): the server's error positions point into it. sentBackslash is
	// standard_conforming_strings = off when it was written.
	Sent          string
	sentBackslash bool
	// ParamOIDs are the parameter types the client declared at Parse.
	ParamOIDs []uint32
	// catGen is the planner's Generation Plan was made under (see
	// replanOnCatalogChange). Client side.
	catGen uint64
	// replaces is set on a statement reprepare planned to take the place
	// of this one in the client's view, until the Bind that found it is
	// sent (commitReprepare). Client side.
	replaces *Statement
	// parseSeq is the seq of pgveil's last Parse of a statement prepared
	// anew (parseUpstream). Client side.
	parseSeq uint64
	// sealed are the data-key versions the literals of Sent were sealed
	// under (see resealIfRotated). Client side.
	sealed []sealedKey
}

// renamed reports a statement pgveil prepared upstream under a name other
// than the client's.
func (st *Statement) renamed() bool { return st.ServerName != "" && st.ServerName != st.Name }

// Portal is a bound portal as the client named it.
type Portal struct {
	Name string
	Stmt *Statement
	// ResultFormats are the result-column format codes the client asked
	// for at Bind (0 = text, 1 = binary; one code means all columns).
	ResultFormats []int16
	// bindSeq orders the portal against transaction ends: portals bound
	// before the last ReadyForQuery with status 'I' no longer exist.
	bindSeq uint64
	// described is set by the client goroutine when a Describe of this
	// portal was sent; rmap is the result map, owned by the server goroutine.
	described bool
	rmap      *resultMap
}

// passthroughStmt and passthroughPortal stand for every statement and portal
// pgveil does not touch.
var (
	passthroughStmt   = &Statement{}
	passthroughPortal = &Portal{Stmt: passthroughStmt}
)

// pendKind is the kind of client message whose responses are awaited.
type pendKind uint8

const (
	pendParse pendKind = iota + 1
	pendBind
	pendDescribeStmt
	pendDescribePortal
	pendExecute
	pendCloseStmt
	pendClosePortal
	pendSync
	pendQuery
	pendFunctionCall
)

var pendNames = [...]string{"", "Parse", "Bind", "Describe(S)", "Describe(P)", "Execute", "Close(S)", "Close(P)", "Sync", "Query", "FunctionCall"}

func (k pendKind) String() string { return pendNames[k] }

// pending is one client message whose responses the server has yet to send.
type pending struct {
	kind pendKind
	// The flags sit beside kind, in its word: a pending is copied with
	// every message (96 bytes).
	//
	// pathSync marks the search_path query pgveil sends for itself
	// (suppress is set too): its row and ReadyForQuery answer
	// syncSearchPath.
	pathSync bool
	// lookup marks pgveil's tenant lookup (lookup.go): a simple Query
	// (suppress set too) or the Execute of its own portal, whose rows and
	// completion answer it.
	lookup bool
	// unnamed marks the client's pass-through Parse of the unnamed
	// statement: its ParseComplete says the server holds that text
	// (unnamedParsed).
	unnamed bool
	// clientClose marks the client's Close of a statement (handleClose):
	// its CloseComplete confirms the name closed (tracker.closed).
	clientClose bool
	// void marks a Sync the server ignores because it arrived while the
	// backend was in COPY IN mode (libpq sends Sync before it learns a
	// statement was COPY; the backend discards Sync and Flush during copy-in).
	void bool
	seq  uint64
	// defName is the client's name a Parse put into the view ("" for the
	// unnamed statement, or a name the view already had).
	defName string
	stmt    *Statement // Parse, Describe(S), Close(S)
	portal  *Portal    // Bind, Describe(P), Execute, Close(P)
	query   *queryState
	// suppress marks a message pgveil injected whose responses the client
	// must not see; injected marks the one whose ErrorResponse answers a
	// message pgveil refused (see inject.go).
	suppress bool
	injected bool
	// probe marks a message pgveil sent to learn whether the server would
	// refuse the client's (its Parse of a name an SQL PREPARE may have
	// taken, handleParse): its success is not forwarded, its error is, as
	// the server wrote it.
	probe bool
	// revalidate marks an injected error that is a stale statement's
	// (staleStatement): the client's copy names PostgreSQL's routine.
	revalidate bool
	// internal marks a Describe pgveil sent for itself: its RowDescription
	// maps the portal's fields and is not forwarded.
	internal bool
	// ownFormats marks a Bind whose only fault the server could call a
	// protocol violation (08P01) is the result formats pgveil gave (more
	// than one, counted from the plan): a refusal then means a stale
	// catalog. A client's Bind of the wrong parameter count, forwarded as
	// it came, must not make pgveil read its catalog again (review 21h).
	ownFormats bool
	// sent is when a planned Query or Execute went upstream (zero for
	// pass-through ones): the upstream phase is timed from it.
	sent time.Time
	// closes are the statement names the Execute's DEALLOCATE or DISCARD
	// ALL closes: its CommandComplete confirms them (executeCloses). Nil
	// for every other message: a pointer, so that the pending each
	// message pushes stays small (96 bytes before review 19b's field).
	closes *[]string
}

// texts are the client's text behind p and the text pgveil sent upstream
// instead (sent is "" when pgveil sent the client's text), and whether
// backslashes escaped in plain strings when they were written.
func (p *pending) texts() (sql, sent string, backslash bool) {
	if p.query != nil {
		return p.query.sql, p.query.sent, p.query.backslash
	}
	if st := p.statement(); st != nil {
		return st.SQL, st.Sent, st.sentBackslash
	}
	return "", "", false
}

// statement is the prepared statement p names, directly or through its
// portal; nil when none.
func (p *pending) statement() *Statement {
	if p.stmt != nil {
		return p.stmt
	}
	if p.portal != nil {
		return p.portal.Stmt
	}
	return nil
}

// serverWords reports whether the server's answers to p may carry words
// of pgveil's rather than the client's: positions in a text pgveil
// rewrote, or the upstream name of a statement pgveil prepared.
func (p *pending) serverWords() bool {
	if _, sent, _ := p.texts(); sent != "" {
		return true
	}
	st := p.statement()
	return st != nil && st.renamed()
}

// queryState is the bookkeeping of one simple Query in flight.
type queryState struct {
	plan *rewrite.Plan
	// sql is the client's text and sent the text pgveil sent instead
	// ("" when it sent sql): the server's error positions point into sent.
	// backslash is standard_conforming_strings = off when it was sent.
	sql, sent string
	backslash bool
	// renamed are the statements a DEALLOCATE in sent names by pgveil's
	// names (deallocateUpstreamNames).
	renamed []*Statement
	// stmt is the index of the statement whose results are arriving; it
	// advances at each CommandComplete or EmptyQueryResponse.
	stmt int
}

// tracker follows the extended and simple query protocols so that each
// backend message can be attributed to the client message that caused it.
//
// Ownership: the client-side view (stmts, portals, copy bookkeeping) belongs
// to the goroutine reading from the client; the skip state and transaction
// status belong to the goroutine reading from the server; the queue is
// shared under mu (pushed by the first, popped by the second).
type tracker struct {
	mu    sync.Mutex
	q     []pending // ring buffer
	head  int
	n     int
	seq   uint64
	stats trackerStats

	// Client side.
	stmts map[string]*Statement
	// defSeq is the seq of the Parse that put each named statement in
	// stmts: a failure of that Parse (failedDefs) takes it out again.
	defSeq  map[string]uint64
	portals map[string]*Portal
	// cursors are the SQL cursors declared over encrypted columns
	// (cursor.go). Under mu: the server side records them.
	cursors map[string]cursorView
	// A backend in COPY IN ignores every Sync until the client's CopyDone
	// or CopyFail (libpq sends one right after Execute, before it knows
	// the statement is COPY). copyEnds are the seqs of the last message
	// pushed before each CopyDone or CopyFail the client sent that no
	// CopyInResponse has claimed yet (each is claimed once); copyIn is set
	// from a CopyInResponse that found no end yet until the client's copy
	// end (which it uses up) or the server's ErrorResponse. Under mu.
	// (See copyInResponse.)
	copyEnds []uint64
	copyIn   bool

	// Server side.
	txStatus byte // from the last ReadyForQuery: 'I', 'T' or 'E'
	// skipping is set after an ErrorResponse in the extended protocol when
	// no Sync was queued yet: the backend discards every message until the
	// next Sync, so entries pushed meanwhile will get no response. Under mu.
	skipping bool
	// idleSeq is the seq of the last message answered by a ReadyForQuery
	// with status 'I': every portal bound before it is gone. Under mu.
	idleSeq uint64
	// txGen is the catalog generation (genOf) when the first message
	// after the session was last at rest and idle was pushed: what the
	// transaction's statements were checked under, at the oldest. Under
	// mu.
	txGen uint64
	genOf func() uint64
	// restSeq is the seq of the last message a ReadyForQuery answered:
	// when it is the last message pushed, the server waits for a new
	// command (atRest). Under mu.
	restSeq uint64
	// failedDefs are the named Parses that defined a statement in the
	// client's view and that the server rejected or skipped, for the
	// client side to take out (applyFailedDefs).
	failedDefs handoff[failedDef]
	// failedPts are the named pass-through Parses the server rejected or
	// skipped, for the session's records (session.applyFailedParses).
	failedPts handoff[failedDef]
	// failedPreps are the SQL PREPAREs of simple Queries the server did
	// not run (refused, or after an error before them, or the Query
	// skipped), for the session's records (session.applyFailedPrepares).
	failedPreps handoff[failedPrep]
	// failedCloses are upstream statements pgveil closed for itself
	// (dropUnnamed) whose Close the server skipped after an error; the
	// client side sends them again.
	failedCloses handoff[*Statement]
	// failedReprepares are statements prepared anew (reprepare) whose
	// Parse the server skipped after an error: the client side sends it
	// again.
	failedReprepares handoff[*Statement]
	// serverUnnamed is set while the server's own unnamed statement may
	// exist: a pass-through unnamed Parse was forwarded and pgveil has
	// not closed the server's unnamed statement since (handleParse).
	// A rewritten unnamed statement lives upstream under pgveil's name, so
	// while the client's unnamed statement is one of those the server's
	// must not exist: a Bind the view takes for a pass-through one would
	// run it with the client's raw values.
	serverUnnamed atomic.Bool
	// ghosts are statements pgveil rewrote that the client closed
	// or deallocated and the server has not confirmed gone (a Close or
	// DEALLOCATE the server skips after an error leaves them): a Bind of
	// the name still goes to pgveil's upstream statement, sealed, and
	// fails there if it is gone (statement). Client side; gone holds the
	// server's confirmations.
	ghosts map[string]ghost
	// syncSeq is the seq of the last Sync pushed (under mu).
	syncSeq uint64
	gone    handoff[goneStmt]
	// closed holds the server's confirmations of every close of a
	// statement name (Close, DEALLOCATE, DISCARD ALL), pass-through ones
	// included, for the session's own records of them (applyClosed).
	closed handoff[goneStmt]
	// unnamedSeq is the seq of the last Parse of the unnamed statement
	// the server confirmed (ParseComplete).
	unnamedSeq atomic.Uint64
	// unnamedDropSeq is the seq of the last message the server answered
	// that dropped its own unnamed statement: a Close of it (pgveil's or
	// the client's, passed through) or a simple Query (PostgreSQL drops
	// the unnamed statement at each). Texts it may have held before are
	// gone (session.forgetGoneUnnamed; review 20a).
	unnamedDropSeq atomic.Uint64
	// lookupDrop is called (under mu) when the server skips a message of
	// a tenant lookup after an error (lookup.go): the lookup is answered
	// then, with a failure.
	lookupDrop func()
}

// ghost is a closed statement and the seq of the message that closed it.
type ghost struct {
	stmt *Statement
	seq  uint64
	// byClose marks a ghost a Close message made (not a DEALLOCATE or
	// DISCARD ALL, which act only when they run): see closedInPipeline.
	byClose bool
}

// goneStmt is the server's confirmation that the message seq closed or
// deallocated name ("*": every statement).
type goneStmt struct {
	name string
	seq  uint64
}

// maxGhosts bounds the ghosts; the oldest go first.
const maxGhosts = 256

// serverUnnamedSlot is the Statement of pgveil's Close of the server's
// own unnamed statement (pending.stmt).
var serverUnnamedSlot = &Statement{}

// failedPrep is an SQL PREPARE the server did not run: the name and the
// PREPARE statement's text (rewrite.Stmt.Original).
type failedPrep struct{ name, sql string }

// preparesFailedLocked records the SQL PREPAREs of q from its statement
// from on as not run. mu held.
func (t *tracker) preparesFailedLocked(q *queryState, from int) {
	if q == nil || q.plan == nil {
		return
	}
	for k := max(from, 0); k < len(q.plan.Stmts); k++ {
		if st := q.plan.Stmts[k]; st.Prepares != "" {
			t.failedPreps.addLocked(failedPrep{st.Prepares, st.Original})
		}
	}
}

// takeFailedPreps returns the SQL PREPAREs the server did not run.
// Client side.
func (t *tracker) takeFailedPreps() []failedPrep {
	return t.failedPreps.take(&t.mu)
}

// failedDef is a named Parse the server did not run: its name and seq.
type failedDef struct {
	name string
	seq  uint64
}

// trackerStats counts attribution problems; tests assert they stay zero.
type trackerStats struct {
	desyncs uint64
}

func newTracker() *tracker {
	return &tracker{
		q:        make([]pending, 16),
		stmts:    map[string]*Statement{},
		defSeq:   map[string]uint64{},
		portals:  map[string]*Portal{},
		txStatus: 'I',
	}
}

// push records a client message that expects responses. Client goroutine.
func (t *tracker) push(p pending) {
	t.mu.Lock()
	t.pushLocked(p)
	t.mu.Unlock()
}

func (t *tracker) pushLocked(p pending) {
	if t.genOf != nil && t.n == 0 && t.restSeq == t.seq && t.txStatus == 'I' {
		t.txGen = t.genOf()
	}
	t.seq++
	p.seq = t.seq
	if p.kind == pendSync {
		t.syncSeq = t.seq
	}
	if p.kind == pendSync && t.copyIn {
		p.void = true // the backend is in COPY IN: it ignores this Sync
	}
	if t.n == len(t.q) {
		t.grow()
	}
	t.q[(t.head+t.n)%len(t.q)] = p
	t.n++
}

// pushUnlessSkipping records messages the client side sends together,
// unless the server is skipping messages after an error (they would get
// no response): then it records nothing and reports false. Messages after
// a Sync still queued are not skipped: the server skips up to that Sync
// only, and answers what the client pipelined after it (the client's
// next pipeline, sent before the first one's answers came back).
func (t *tracker) pushUnlessSkipping(ps ...pending) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.skipping && !t.syncQueuedLocked() {
		return false
	}
	for _, p := range ps {
		t.pushLocked(p) // under one lock: an error cannot come between
	}
	return true
}

// syncQueuedLocked reports whether a Sync the server will answer is
// queued. mu held.
func (t *tracker) syncQueuedLocked() bool {
	for i := 0; i < t.n; i++ {
		if p := &t.q[(t.head+i)%len(t.q)]; p.kind == pendSync && !p.void {
			return true
		}
	}
	return false
}

func (t *tracker) grow() {
	q := make([]pending, 2*len(t.q))
	for i := 0; i < t.n; i++ {
		q[i] = t.q[(t.head+i)%len(t.q)]
	}
	t.q, t.head = q, 0
}

// copyEnd is called by the client side before it forwards CopyDone or
// CopyFail: a Sync the client sends after it is answered again.
func (t *tracker) copyEnd() {
	t.mu.Lock()
	// A CopyInResponse can still come only for a queued message: ends
	// before the oldest one belong to no COPY to come (it failed before it
	// began, or the client sent the end unasked).
	oldest := t.seq + 1
	if t.n > 0 {
		oldest = t.q[t.head].seq
	}
	i := 0
	for i < len(t.copyEnds) && t.copyEnds[i] < oldest {
		i++
	}
	t.copyEnds = append(t.copyEnds[:0], t.copyEnds[i:]...)
	if t.copyIn {
		t.copyIn = false // the end of the COPY under way: used up
	} else {
		t.copyEnds = append(t.copyEnds, t.seq) // for a CopyInResponse to come
	}
	t.mu.Unlock()
}

// copyInResponse marks void the Syncs the backend ignores because the
// client message x (an Execute or a Query) started COPY IN: those the
// client sent after x and before its CopyDone or CopyFail. Only the
// server's CopyInResponse proves the COPY began: when the statement
// fails instead (a missing table), the backend answers the first Sync
// after the error, and the client's copy data is ignored. mu held.
func (t *tracker) copyInResponse(x uint64) {
	end, known := uint64(0), false
	i := 0
	for ; i < len(t.copyEnds); i++ {
		if t.copyEnds[i] >= x {
			end, known = t.copyEnds[i], true
			break
		}
	}
	if known {
		i++ // this COPY's end: used up (a Query may hold several COPYs)
	}
	t.copyEnds = append(t.copyEnds[:0], t.copyEnds[i:]...) // earlier ends belong to no COPY still to come
	for j := 0; j < t.n; j++ {
		p := &t.q[(t.head+j)%len(t.q)]
		if p.kind == pendSync && p.seq > x && (!known || p.seq <= end) {
			p.void = true
		}
	}
	t.copyIn = !known
}

// peek returns the oldest pending message, or nil. Server goroutine. The
// pointer stays valid until the next pop or push.
func (t *tracker) peek() *pending {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropVoid()
	if t.n == 0 {
		return nil
	}
	return &t.q[t.head]
}

// dropVoid discards entries the backend will never answer: void Syncs at
// the head, and while skipping after an error, everything before a Sync.
// mu held.
func (t *tracker) dropVoid() {
	for t.n > 0 {
		h := &t.q[t.head]
		if h.kind == pendSync && h.void || t.skipping && h.kind != pendSync {
			if h.lookup && t.lookupDrop != nil {
				t.lookupDrop()
			}
			if h.kind == pendQuery && h.query != nil {
				t.preparesFailedLocked(h.query, 0) // a Query the server skipped
			}
			if h.kind == pendCloseStmt && h.suppress && h.stmt == serverUnnamedSlot {
				t.serverUnnamed.Store(true) // not closed: close it again before the next
			}
			if h.kind == pendCloseStmt && h.suppress && h.stmt != nil && h.stmt.ServerName != "" {
				// pgveil's Close of its own statement, skipped after an
				// error: it must go again (takeFailedCloses).
				t.failedCloses.addLocked(h.stmt)
			}
			if h.kind == pendParse && (h.injected || h.suppress) && h.stmt != nil && h.stmt.ServerName != "" {
				// A statement prepared anew (reprepare), skipped.
				t.failedReprepares.addLocked(h.stmt)
			}
			if h.kind == pendParse && h.defName != "" {
				// The statement was never made (the failed Parse itself, or
				// one the server skipped after an error).
				t.failedDefs.addLocked(failedDef{h.defName, h.seq})
				if h.stmt == passthroughStmt {
					t.failedPts.addLocked(failedDef{h.defName, h.seq})
				}
			}
			t.popLocked()
			continue
		}
		return
	}
}

func (t *tracker) popLocked() pending {
	p := t.q[t.head]
	t.q[t.head] = pending{}
	t.head = (t.head + 1) % len(t.q)
	t.n--
	return p
}

// lastSeq is the seq of the last message pushed. Client side.
func (t *tracker) lastSeq() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seq
}

// restedSince reports whether a ReadyForQuery has answered a message at or
// after seq (0: nothing to wait for): the server's reports up to it are in.
func (t *tracker) restedSince(seq uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return seq == 0 || t.restSeq >= seq
}

// idle is the seq of the last message a ReadyForQuery 'I' answered: no
// portal bound at or before it is alive.
func (t *tracker) idle() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.idleSeq
}

// txGeneration is txGen, and whether the session is at rest and idle (no
// transaction, nothing pending).
func (t *tracker) txGeneration() (gen uint64, idle bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.txGen, t.n == 0 && !t.skipping && t.restSeq == t.seq && t.txStatus == 'I'
}

// answered reports whether the server has answered every message pushed
// up to seq (none of them is still queued).
func (t *tracker) answered(seq uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n == 0 || t.q[t.head].seq > seq
}

// desyncCount is the number of attribution failures so far.
func (t *tracker) desyncCount() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats.desyncs
}

// atRest reports that the server has answered everything with a final
// ReadyForQuery and waits for a new command: not inside an extended-query
// sequence before its Sync (where a Query would end the implicit
// transaction, or after an error would be discarded), not in COPY. status
// is the transaction status then. Client goroutine.
func (t *tracker) atRest() (ok bool, status byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n == 0 && !t.skipping && t.restSeq == t.seq, t.txStatus
}

// status is the transaction status of the last ReadyForQuery.
func (t *tracker) status() byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.txStatus
}

// len is the number of messages awaiting responses.
func (t *tracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// backendEvent is the tracker's reading of one backend message.
type backendEvent struct {
	// cur is the client message the backend message answers (nil for
	// asynchronous messages: notices, notifications, parameter status).
	cur pending
	// done reports that cur has received its last response.
	done bool
}

// onBackend attributes a backend message of type typ to the client message
// it answers and advances the protocol state. Server goroutine. body is
// only read for ReadyForQuery (the transaction status).
func (t *tracker) onBackend(typ byte, body []byte) (ev backendEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropVoid()
	var head *pending
	if t.n > 0 {
		head = &t.q[t.head]
	}
	expect := func(kinds ...pendKind) bool {
		if head == nil {
			t.stats.desyncs++
			return false
		}
		for _, k := range kinds {
			if head.kind == k {
				return true
			}
		}
		t.stats.desyncs++
		return false
	}
	switch typ {
	case '1': // ParseComplete
		if expect(pendParse) {
			ev.cur, ev.done = t.popLocked(), true
			if ev.cur.unnamed {
				t.unnamedSeq.Store(ev.cur.seq)
			}
		}
	case '2': // BindComplete
		if expect(pendBind) {
			ev.cur, ev.done = t.popLocked(), true
		}
	case '3': // CloseComplete
		if expect(pendCloseStmt, pendClosePortal) {
			ev.cur, ev.done = t.popLocked(), true
			if ev.cur.kind == pendCloseStmt && !ev.cur.suppress && ev.cur.stmt != nil && ev.cur.stmt.ServerName != "" {
				// Only statements pgveil rewrote become ghosts.
				t.goneLocked(ev.cur.defName, ev.cur.seq)
			} else if ev.cur.kind == pendCloseStmt && ev.cur.clientClose {
				t.closedLocked(ev.cur.defName, ev.cur.seq) // a pass-through one (review 19)
				if ev.cur.defName == "" {
					t.unnamedDropSeq.Store(ev.cur.seq) // the server's own
				}
			} else if ev.cur.stmt == serverUnnamedSlot {
				t.unnamedDropSeq.Store(ev.cur.seq)
			}
		}
	case 't': // ParameterDescription: RowDescription or NoData follows
		if expect(pendDescribeStmt) {
			ev.cur = *head
		}
	case 'n': // NoData
		if expect(pendDescribeStmt, pendDescribePortal) {
			ev.cur, ev.done = t.popLocked(), true
		}
	case 'T': // RowDescription: ends a Describe, or starts the rows of an Execute or Query
		if expect(pendDescribeStmt, pendDescribePortal, pendExecute, pendQuery) {
			if head.kind == pendDescribeStmt || head.kind == pendDescribePortal {
				ev.cur, ev.done = t.popLocked(), true
			} else {
				ev.cur = *head
			}
		}
	case 'D', 'G', 'H', 'W', 'd', 'c': // DataRow, Copy{In,Out,Both}Response, CopyData, CopyDone
		if expect(pendExecute, pendQuery) {
			ev.cur = *head
			if typ == 'G' {
				t.copyInResponse(head.seq)
			}
		}
	case 'C', 'I': // CommandComplete, EmptyQueryResponse
		if expect(pendExecute, pendQuery) {
			if head.kind == pendExecute {
				ev.cur, ev.done = t.popLocked(), true
				if typ == 'C' {
					if ev.cur.closes != nil {
						for _, name := range *ev.cur.closes {
							t.goneLocked(name, ev.cur.seq)
						}
					}
				}
			} else {
				ev.cur = *head
				if head.query != nil {
					if i := head.query.stmt; typ == 'C' && head.query.plan != nil && i < len(head.query.plan.Stmts) && head.query.plan.Stmts[i].Deallocate != "" {
						t.goneLocked(head.query.plan.Stmts[i].Deallocate, head.seq)
					}
					head.query.stmt++
				}
			}
		}
	case 's': // PortalSuspended
		if expect(pendExecute) {
			ev.cur, ev.done = t.popLocked(), true
		}
	case 'V': // FunctionCallResponse
		if expect(pendFunctionCall) {
			ev.cur = *head
		}
	case 'E': // ErrorResponse
		// An error ends COPY IN: the backend drops the client's copy data
		// from here on, and a Sync after it counts again (a client may
		// even skip its CopyDone).
		t.copyIn = false
		if head == nil {
			return // asynchronous (e.g. FATAL on shutdown)
		}
		ev.cur = *head
		if head.kind == pendQuery && head.query != nil {
			// The statement at hand failed; the rest of the string does
			// not run.
			t.preparesFailedLocked(head.query, head.query.stmt)
		}
		if head.kind == pendQuery || head.kind == pendFunctionCall || head.kind == pendSync {
			return // ReadyForQuery ends it
		}
		// Extended protocol: the backend discards every message until Sync,
		// including ones the client has not sent yet.
		t.skipping = true
		t.dropVoid()
	case 'Z': // ReadyForQuery
		if len(body) > 0 {
			t.txStatus = body[0]
		}
		if expect(pendSync, pendQuery, pendFunctionCall) {
			t.skipping = false
			ev.cur, ev.done = t.popLocked(), true
			t.restSeq = ev.cur.seq
			if ev.cur.kind == pendQuery {
				// The server ran it: it dropped its unnamed statement.
				t.unnamedDropSeq.Store(ev.cur.seq)
			}
			if t.txStatus == 'I' {
				t.idleSeq = ev.cur.seq
			}
		}
	}
	return ev
}

// --- client-side view ---
//
// The view is optimistic: it assumes every message the client sent succeeds.
// That is safe because every statement pgveil rewrites gets a fresh upstream
// name (Statement.ServerName): a Bind resolved through a stale view entry
// names a statement the server does not have, and fails there. Unnamed
// pass-through statements are not stored at all, so the common path
// allocates nothing.

// parsed records a Parse of the client's statement name, planned as stmt:
// the statement goes into the view (a pass-through Parse of a name already
// there leaves the view as it is: the server refuses the duplicate), and
// the Parse is queued for its response.
func (t *tracker) parsed(name []byte, stmt *Statement) {
	p := pending{kind: pendParse, stmt: stmt, unnamed: len(name) == 0 && stmt == passthroughStmt}
	switch {
	case len(name) == 0:
		t.defineStatement(name, stmt)
	case stmt != passthroughStmt || !t.hasStatement(name):
		key := string(name)
		t.stmts[key] = stmt
		t.defSeq[key] = t.seq + 1 // push numbers p so
		p.defName = key
	default:
		// A pass-through Parse of a name the view has: its failure is
		// reported too (failedPts), for the session's records; the view
		// keeps the name (defSeq is another Parse's).
		p.defName = string(name)
	}
	t.push(p)
}

// applyFailedDefs takes out of the view the statements whose Parse the
// server did not run, unless the name was defined again since.
func (t *tracker) applyFailedDefs() {
	for _, d := range t.failedDefs.take(&t.mu) {
		if seq, ok := t.defSeq[d.name]; ok && seq == d.seq {
			delete(t.stmts, d.name)
			delete(t.defSeq, d.name)
		}
	}
}

// takeFailedPts returns the named pass-through Parses the server did not
// run. Client side.
func (t *tracker) takeFailedPts() []failedDef {
	return t.failedPts.take(&t.mu)
}

// goneLocked records the server's confirmation that the message seq
// closed or deallocated name. mu held.
func (t *tracker) goneLocked(name string, seq uint64) {
	t.gone.addLocked(goneStmt{name, seq})
	t.closedLocked(name, seq)
}

// closedLocked records the server's confirmation that the message seq
// closed or deallocated name, whoever prepared it. mu held.
func (t *tracker) closedLocked(name string, seq uint64) {
	t.closed.addLocked(goneStmt{name, seq})
}

// takeClosed returns the confirmations closedLocked recorded. Client side.
func (t *tracker) takeClosed() []goneStmt {
	return t.closed.take(&t.mu)
}

// applyGone forgets the ghosts the server confirmed gone. Client side.
func (t *tracker) applyGone() {
	for _, c := range t.gone.take(&t.mu) {
		for name, gh := range t.ghosts {
			if (c.name == "*" || c.name == name) && gh.seq <= c.seq {
				delete(t.ghosts, name)
			}
		}
	}
}

// takeFailedReprepares returns the statements prepared anew whose Parse
// the server skipped (dropVoid), for the client side to send again.
func (t *tracker) takeFailedReprepares() []*Statement {
	return t.failedReprepares.take(&t.mu)
}

// takeFailedReprepare takes the statement prepared anew under st's
// upstream name out of those whose Parse the server skipped, and returns
// it (nil when it is not one of them).
func (t *tracker) takeFailedReprepare(st *Statement) *Statement {
	if st == nil || st.ServerName == "" {
		return nil
	}
	f, _ := t.failedReprepares.takeOne(&t.mu, func(f *Statement) bool { return f.ServerName == st.ServerName })
	return f
}

// unnamedParsed reports whether the server confirmed the Parse of the
// unnamed statement seq, or a later one.
func (t *tracker) unnamedParsed(seq uint64) bool {
	return seq != 0 && t.unnamedSeq.Load() >= seq
}

// syncSince reports whether a Sync was pushed after the message seq.
func (t *tracker) syncSince(seq uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.syncSeq > seq
}

// parseUnsettled reports whether the message seq (pgveil's Parse of a
// statement prepared anew) awaits its answer behind a Sync the client
// sent since: the server may yet skip it, after an error in that earlier
// pipeline, while it runs the client's later one.
func (t *tracker) parseUnsettled(seq uint64) bool {
	if seq == 0 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.syncSeq > seq && t.n > 0 && t.q[t.head].seq <= seq
}

// takeFailedCloses returns the upstream statements whose Close the
// server skipped (dropVoid), for the client side to close again.
func (t *tracker) takeFailedCloses() []*Statement {
	return t.failedCloses.take(&t.mu)
}

// portalFrom reports whether a portal that may still exist was made
// from the statement st: one in the client's view bound since the last
// transaction end. Client side.
func (t *tracker) portalFrom(st *Statement) bool {
	t.mu.Lock()
	idle := t.idleSeq
	t.mu.Unlock()
	for _, p := range t.portals {
		if p.Stmt == st && p.bindSeq > idle {
			return true
		}
	}
	return false
}

// defineStatement records a Parse in the client's view.
func (t *tracker) defineStatement(name []byte, s *Statement) {
	if len(name) == 0 {
		delete(t.ghosts, "") // replaced, closed or not
	}
	if s == passthroughStmt && len(name) == 0 {
		delete(t.stmts, "")
		return
	}
	t.stmts[string(name)] = s
}

// statement looks up a statement by the client's name; a name not in the
// view is a statement pgveil did not rewrite (or one the server lacks).
func (t *tracker) statement(name []byte) *Statement {
	t.applyFailedDefs()
	if s, ok := t.stmts[string(name)]; ok {
		return s
	}
	t.applyGone()
	if g, ok := t.ghosts[string(name)]; ok {
		return g.stmt
	}
	return passthroughStmt
}

// hasStatement reports whether a named statement is in the view.
func (t *tracker) hasStatement(name []byte) bool {
	t.applyFailedDefs()
	_, ok := t.stmts[string(name)]
	return ok
}

// closeStatement removes a statement from the client's view as the
// message that closes it is sent (it is pushed next). A named statement
// pgveil rewrote stays a ghost until the server confirms it gone.
func (t *tracker) closeStatement(name []byte) {
	t.ghost(string(name))
	delete(t.stmts, string(name))
	delete(t.defSeq, string(name))
}

// closeStatementMsg is closeStatement for the client's Close message:
// its ghost is one closedInPipeline may report.
func (t *tracker) closeStatementMsg(name []byte) {
	t.closeStatement(name)
	if g, ok := t.ghosts[string(name)]; ok {
		g.byClose = true
		t.ghosts[string(name)] = g
	}
}

// closedInPipeline reports a statement pgveil rewrote that the client
// closed with a Close message sent after its last Sync: the server has
// either run that Close (the statement is gone) or skipped it after an
// error, and then skips everything up to the next Sync too. A Bind of it
// now can only get PostgreSQL's 26000 (or be skipped). Client side.
func (t *tracker) closedInPipeline(name []byte) bool {
	if _, ok := t.stmts[string(name)]; ok {
		return false
	}
	g, ok := t.ghosts[string(name)]
	if !ok || !g.byClose {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return g.seq > t.syncSeq
}

// ghostOf reports whether the client's name for st is a ghost of st's:
// closed by a message the server has not confirmed.
func (t *tracker) ghostOf(name string, st *Statement) bool {
	if _, ok := t.stmts[name]; ok {
		return false
	}
	g, ok := t.ghosts[name]
	return ok && g.stmt == st
}

// reghost makes the ghost of name stand for st, a statement prepared
// anew in its place: the server's confirmation of the close (or of a
// later one) forgets it.
func (t *tracker) reghost(name string, st *Statement) {
	if g, ok := t.ghosts[name]; ok {
		g.stmt = st
		t.ghosts[name] = g
	}
}

// forgetStatements drops the named statements from the view (DEALLOCATE
// ALL, DISCARD ALL); those pgveil rewrote stay ghosts until the server
// confirms. The unnamed statement stays: PostgreSQL keeps it apart from
// the named ones (review 20a: its Bind got 26000). Its upstream statement
// pgveil named is gone with the rest, or will be: the caller prepares it
// anew (session.unnamedLost).
func (t *tracker) forgetStatements() {
	for name := range t.stmts {
		if name != "" {
			t.ghost(name)
			delete(t.stmts, name)
		}
	}
	clear(t.defSeq)
}

// ghost keeps the named statement pgveil rewrote that name maps to, as
// closed by the message pushed next.
func (t *tracker) ghost(name string) {
	st, ok := t.stmts[name]
	if !ok || st == passthroughStmt || st.ServerName == "" {
		return
	}
	t.applyGone()
	if t.ghosts == nil {
		t.ghosts = map[string]ghost{}
	}
	if len(t.ghosts) >= maxGhosts {
		oldest := ""
		for n, g := range t.ghosts {
			if oldest == "" || g.seq < t.ghosts[oldest].seq {
				oldest = n
			}
		}
		delete(t.ghosts, oldest)
	}
	t.mu.Lock()
	seq := t.seq + 1
	t.mu.Unlock()
	t.ghosts[name] = ghost{stmt: st, seq: seq}
}

// restoreUnclosed puts name back into the view when it is the ghost of
// a statement whose close the server has answered without confirming it
// (a Close skipped after an error, a DEALLOCATE or DISCARD ALL refused in
// a transaction block or skipped after an error earlier in its string):
// the server still has the statement, and refuses a Parse of its name
// (42P05), as pgveil then does, instead of preparing a second one
// upstream for each such round (review 19). Client side.
func (t *tracker) restoreUnclosed(name string) {
	g, ok := t.ghosts[name]
	if !ok {
		return
	}
	if _, in := t.stmts[name]; in {
		return
	}
	// At rest first (every message sent is answered, the close among
	// them): a confirmation is recorded before its answer ends. Not
	// answered(g.seq): g.seq may be a message pgveil pushed before the
	// close (dropUnnamed's Close before a Query).
	if rest, _ := t.atRest(); !rest {
		return
	}
	t.applyGone()
	if g, ok = t.ghosts[name]; !ok {
		return
	}
	delete(t.ghosts, name)
	t.stmts[name] = g.stmt
}

// maxIdlePortals bounds the portal view before a sweep of dead portals.
const maxIdlePortals = 32

// bindPortal records a Bind in the client's view.
func (t *tracker) bindPortal(name []byte, p *Portal) {
	if p == passthroughPortal {
		delete(t.portals, string(name))
		return
	}
	t.mu.Lock()
	p.bindSeq = t.seq + 1 // the seq push will give this Bind
	idle := t.idleSeq
	t.mu.Unlock()
	if len(t.portals) >= maxIdlePortals {
		for k, old := range t.portals {
			if old.bindSeq <= idle {
				delete(t.portals, k)
			}
		}
	}
	t.portals[p.Name] = p
}

// portal looks up a portal by the client's name.
func (t *tracker) portal(name []byte) *Portal {
	if p, ok := t.portals[string(name)]; ok {
		return p
	}
	return passthroughPortal
}

func (t *tracker) closePortal(name []byte) { delete(t.portals, string(name)) }

// handoff is a list the server side appends to under tracker.mu and the
// client side takes whole. n counts it, so that the client side, which
// looks at every message, skips the lock while the list is empty (almost
// always).
type handoff[T any] struct {
	items []T
	n     atomic.Int32
}

// addLocked appends v. tracker.mu held.
func (h *handoff[T]) addLocked(v T) {
	h.items = append(h.items, v)
	h.n.Add(1)
}

// pending reports whether the list may hold an item (without the lock).
func (h *handoff[T]) pending() bool { return h.n.Load() != 0 }

// take returns the items and empties the list. The empty check inlines
// into the callers, which run at every message.
func (h *handoff[T]) take(mu *sync.Mutex) []T {
	if h.n.Load() == 0 {
		return nil
	}
	return h.takeAll(mu)
}

func (h *handoff[T]) takeAll(mu *sync.Mutex) []T {
	mu.Lock()
	defer mu.Unlock()
	v := h.items
	h.items = nil
	h.n.Store(0)
	return v
}

// takeOne takes out the first item match accepts.
func (h *handoff[T]) takeOne(mu *sync.Mutex, match func(T) bool) (T, bool) {
	var zero T
	if h.n.Load() == 0 {
		return zero, false
	}
	mu.Lock()
	defer mu.Unlock()
	for i, v := range h.items {
		if match(v) {
			h.items = append(h.items[:i], h.items[i+1:]...)
			h.n.Add(-1)
			return v, true
		}
	}
	return zero, false
}
