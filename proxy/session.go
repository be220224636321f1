package proxy

import (
	"bufio"
	"context"
	"errors"
	"math"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// session is one client connection and its upstream connection.
//
// Phases, in order, each owned by the session goroutine:
//
//	startup      SSLRequest / GSSENCRequest / direct TLS, then StartupMessage
//	             or CancelRequest (forwarded upstream, session ends)
//	connect      dial upstream, TLS per upstream.tls, send the StartupMessage
//	authenticate relay (or scram) until ReadyForQuery
//	relay        two goroutines: clientToServer (this one) and serverToClient
//
// Every way a session ends, and who closes what:
//
//   - Client sends Terminate or closes: clientToServer returns; relay sends
//     Terminate upstream, closes the upstream connection, which ends
//     serverToClient; then the client connection is closed.
//   - Upstream closes or fails: serverToClient tells the client (FATAL 08006
//     unless the server already sent its own FATAL), closes the client
//     connection, which ends clientToServer; relay then closes upstream.
//   - Client breaks the protocol (malformed or oversized message): relay
//     closes upstream, waits for serverToClient to end, then sends the
//     client a FATAL ErrorResponse (08P01 or 54000) and closes.
//   - Shutdown: an idle session (nothing in flight, not in a transaction)
//     is woken through a read deadline and ends like a protocol error but
//     with FATAL 57P01; a busy one ends when its transaction does; after
//     proxy.shutdown_timeout forceClose closes both connections.
//
// Only one goroutine writes to each connection at a time: serverToClient
// writes to the client while it runs, clientToServer writes upstream; after
// serverToClient has ended, relay may write a last message to the client.
type session struct {
	srv *Server
	id  uint64
	cfg *policy.Config
	up  *upstreamTLS
	log *zap.Logger

	client    net.Conn
	clientTLS bool
	wake_     *wakeReader
	cr        *msgReader
	cw        *bufio.Writer

	server    net.Conn
	serverTLS bool
	// startDeadline bounds startup and authentication on both connections.
	startDeadline time.Time
	sr            *msgReader
	sw            *bufio.Writer

	// bufs holds the pooled readers and writers behind cr, cw, sr and sw
	// (and those replaced after TLS, which a prefixedConn may still read
	// through); panicked keeps them from the pools after a panic, when a
	// goroutine might still use them.
	bufs     pooledBuffers
	panicked bool

	t          *tracker
	scratch    []byte // reused encode buffer of clientToServer
	out        []byte // reused encode buffer of serverToClient
	user       string
	database   string
	backendPID uint32

	// Encryption (nil eng: the config has no tables; pure relay).
	// engDropped: dropEngine gave back the hold on eng's service pool.
	eng        *engine
	engDropped bool
	ctx        context.Context // for key lookups; cancelled when the session ends
	stop       context.CancelFunc
	// keyCtx is what key lookups run under: ctx, or on an event loop ctx
	// marked not to wait (keysource.WithoutWaiting). loopRun is set while
	// a loop runs the handlers below: what would wait on the network
	// returns a loopWait or errPathAsked instead (loopengine.go). warmErrs are the errors
	// of the key lookups a loop waited for off the loop for the message it
	// runs again, by keysource.WaitError.Key.
	keyCtx  context.Context
	loopRun bool
	// heldMetrics are what a handler running on a loop counted (inc).
	heldMetrics []heldMetric
	warmErrs    map[string]error
	// pathRead: a loop has the answer to the search_path question it
	// asked for the message it runs again (syncSearchPathFor); staleRead
	// and settleRead: it read the catalog for it (plan, settleDDL).
	pathRead, staleRead, settleRead bool
	// Client goroutine state.
	searchPath []string
	// refusing is set when pgveil refused an extended-protocol message
	// (injectExtendedError), until the client's next Sync: the client's
	// Parse, Bind, Describe, Execute and Close meanwhile are dropped, as
	// the server drops them after an error. Forwarded, a Bind could reach
	// an earlier statement of the name the refused Parse meant to replace,
	// and carry its values upstream unsealed. Client side.
	refusing bool
	// pathUnknown, pathStale, effStmts and effPortals: see searchpath.go.
	pathUnknown bool
	pathStale   bool
	// The role in effect (current_user), whose readers see a column
	// (decrypt.go roleCanRead): role is the one the server last reported
	// with the search_path (initSearchPath, applyPath); roleUnknownFrom is
	// the seq of the first message since then that may change it (SET
	// ROLE and the other statements that make the path opaque; 0: none);
	// roleStale is pathStale's twin: a transaction end may undo the
	// change. roleStale is client side; role and roleUnknownFrom are
	// written there and read by the server goroutine, which sets mapSeq to
	// the seq of the message whose answers it decodes.
	role            atomic.Pointer[string]
	roleUnknownFrom atomic.Uint64
	roleStale       bool
	mapSeq          uint64
	effStmts        map[string]uint8
	cursorEff       map[string]uint8  // a DECLAREd cursor's query's effects (noteCursorEffects)
	pathGen         uint64            // counts possible search_path changes
	ptStmts         map[string]ptStmt // see replanOnPathChange
	// orphans are upstream statements replaced by reprepare while a
	// portal made from one was open; closed once it is gone.
	orphans []*Statement
	// sealLog, while non-nil, collects the data-key versions fillLiteral
	// seals under: the text of a statement being prepared (sealedKey).
	sealLog *[]sealedKey
	// srvUnnamed: see keepUnnamedTexts. srvUnnamedSeq is the seq of
	// the last Parse whose text it may hold (forgetGoneUnnamed).
	srvUnnamed    []string
	srvUnnamedSeq uint64
	// unnamedLost is the client's unnamed statement, one pgveil prepared
	// under its own name, when an extended-protocol DEALLOCATE ALL or
	// DISCARD ALL ran (or may have) since: PostgreSQL keeps the unnamed
	// statement, the server dropped pgveil's. It is prepared anew at its
	// next Bind or Describe (preparedAgainIfUnsettled; review 20a).
	unnamedLost *Statement
	// deferCloses: the statement being parsed closes statements when it
	// runs (an extended-protocol DEALLOCATE or DISCARD ALL): applyEffects
	// leaves the view, executeCloses changes it at each Execute.
	deferCloses bool
	sqlPrepared map[string]sqlPrep // see replanExecuted
	// closeStmts and closePortals: the names an extended-protocol
	// DEALLOCATE or DISCARD ALL closes (noteStmtCloses).
	closeStmts   map[string][]string
	closePortals map[string][]string
	// prepStmts and prepPortals: the SQL PREPAREs an extended-protocol
	// statement runs (noteStmtPrepares).
	prepStmts   map[string][]*rewrite.Stmt
	prepPortals map[string][]*rewrite.Stmt
	// ptHeld are records of pass-through statements the server may still
	// hold under a name the client's view gave to a statement pgveil
	// rewrote (heldUnclosed, holdUnclosed).
	ptHeld map[string]ptStmt
	// laterPortals are portals whose statements the server plans at
	// their Execute (laterportal.go).
	laterPortals map[string]laterPortal
	// cursorCode are the DECLAREs sent, checked again at a FETCH or MOVE
	// after a catalog change (cursorcode.go).
	cursorCode map[string]cursorCode
	// inExecuted is the nesting of replanExecutedTexts (maxExecutedDepth).
	inExecuted int
	planGen    uint64 // the planner's Generation when planNow last planned
	effPortals map[string]uint8
	pathCh     chan pathReply // the server goroutine's answer to syncSearchPath
	// lookupCh carries the server goroutine's answer to a tenant lookup,
	// lookupAcc gathers it (server side); lookup is the tenant found for
	// the statement being sent (client side, lookup.go).
	lookupCh    chan lookupReply
	lookupAcc   lookupReply
	lookupOpen  atomic.Bool
	lookupReady *lookupReply // an event loop has the answer for the message it runs again
	// lookupStmts are the lookup statements kept prepared upstream, by text
	// and parameter types; lookupKey is the key of the lookup last sent
	// ("": not kept).
	lookupStmts map[string]*Statement
	lookupKey   string
	// lookupDropsUnnamed: the lookup under way answers an unnamed Parse,
	// which drops the unnamed statement whatever the answer (lookup.go).
	lookupDropsUnnamed bool
	lookup             *lookupState
	stmtSeq            int
	stmtPrefix         string        // serverStmtName
	copyPlan           *rewrite.Stmt // the COPY FROM whose data the client sends
	copyStray          bool          // drop CopyData: see copyOver
	copySeq            uint64        // the tracker seq of copyPlan's Query or Execute
	tzFrom             uint64        // the first seq whose answer may change TimeZone (see effTZ)
	tzStale            bool          // TimeZone may have changed in a block whose end may undo it (pathEffect)
	copyIn             *copyIn
	ddlSent            bool
	ddlUnsettled       bool // DDL sent: plan by name until settleDDL
	ddlSeen            int64
	bindIn, bindOut    bindMsg
	arena              []byte
	spans              []span
	nulls              []bool
	ptBuf, envBuf      []byte
	sendBuf            []byte // a tenant's send form, decoded (sentTenant)
	idxBuf             []byte
	// Server goroutine state.
	syncPath   []string // the row of pgveil's search_path query
	syncRole   string
	syncOK     bool
	backslash  atomic.Bool  // standard_conforming_strings is off
	nonUTF8    atomic.Bool  // client_encoding is not UTF8
	utcSession atomic.Bool  // TimeZone is UTC (ParameterStatus): a timestamptz converts to timestamp as pgveil does
	ddlDone    atomic.Int64 // unix nanos when DDL last completed
	// ddlPending: the server completed DDL this session sent, and has not
	// yet said (ReadyForQuery 'I') that it committed. The server side's.
	ddlPending bool
	curMap     *resultMap // result set whose rows are arriving
	rd         rowDescription
	dr         dataRow
	pdOIDs     []uint32
	rowArena   []byte
	rowSpans   []span
	copyOut    *copyOut
	copyVals   [][]byte
	ptOut      []byte
	jsonBuf    []byte // a value opened inside JSON, before it is written as JSON

	// connMu guards the hand-over to an event loop, and the assignments of
	// client and server, against Shutdown's wake and forceClose: onLoop is
	// the loop session while a loop relays this one; forced records
	// forceClose.
	connMu  sync.Mutex
	onLoop  *loopSession
	restFDs []int    // the sockets a loop handed back, while their last bytes are written
	resume  *resumed // what a loop left to relay when it handed the session back
	forced  bool

	// handedBack is set while a session an event loop handed to goroutines
	// relays there; back is its way back to the loop (loopreturn.go).
	handedBack bool
	back       atomic.Int32

	// desyncsSeen is the tracker's desync count already counted and
	// logged (checkDesync), by whichever relay the session is on.
	desyncsSeen uint64

	// holdsClient and holdsPending: the session has a client slot and a
	// startup slot (limits.go) to give back; refused is why the session
	// only answers 53300 (runRefused), or 0. Set before the session's
	// goroutine starts, then its own.
	holdsClient, holdsPending bool
	refused                   int

	upstreamClosing atomic.Bool // relay is closing upstream on purpose
	serverSentFatal bool        // serverToClient relayed a FATAL from the server
	serverDone      chan struct{}
	closeOnce       sync.Once
}

func (srv *Server) newSession(conn net.Conn) *session {
	cfg := srv.cfg.Load()
	// The session holds its engine's service pool until it ends
	// (dropEngine). An engine a reload retired meanwhile may have let go
	// of a pool no session held: the current engine then.
	eng := srv.eng.Load()
	for eng != nil && !eng.svc.hold() {
		eng = srv.eng.Load()
	}
	s := &session{
		srv:    srv,
		id:     srv.nextID.Add(1),
		cfg:    cfg,
		up:     srv.upTLS.Load(),
		client: conn,
		t:      newTracker(),
		eng:    eng,
	}
	if eng != nil {
		s.t.genOf = eng.planner.Generation
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.keyCtx = s.ctx
	s.log = srv.log.With(zap.Uint64("session", s.id), zap.String("client", conn.RemoteAddr().String()))
	s.setClientConn(conn, authMessageLimit(cfg))
	return s
}

// maxAuthToken is PostgreSQL's bound on a password, SASL or GSSAPI/SSPI
// message (PG_MAX_AUTH_TOKEN_LENGTH); the StartupMessage itself is bounded
// by proxy.max_startup_message (readStartupPacket), as Postgres bounds it
// by 10000. A Kerberos ticket easily exceeds 10 kB.
const maxAuthToken = 65535

// authMessageLimit bounds the client's typed messages before
// authentication ends.
func authMessageLimit(cfg *policy.Config) int {
	return max(cfg.Proxy.MaxStartupMessage, maxAuthToken)
}

// setClientConn (re)builds the client reader and writer, after TLS.
func (s *session) setClientConn(conn net.Conn, max int) {
	s.connMu.Lock() // wake and forceClose read it from Shutdown's goroutine
	s.client = conn
	s.connMu.Unlock()
	s.wake_ = &wakeReader{conn: conn}
	s.cr = s.bufs.msgReader(s.wake_, max)
	s.cr.wake = s.wake_
	s.cw = s.bufs.writer(conn)
}

// dropEngine gives back the session's hold on its engine's service pool
// (newSession), once nothing of the session uses the engine any more.
func (s *session) dropEngine() {
	if s.eng != nil && !s.engDropped {
		s.engDropped = true
		s.eng.svc.drop()
	}
}

// run drives the session through its phases.
func (s *session) run() {
	defer s.dropEngine()     // last: nothing of the session uses the engine any more
	defer s.endClient()      // the slot is free once the connections are closed
	defer s.releaseBuffers() // after the connections are closed
	defer s.closeClient()
	defer s.recoverPanic("session")
	defer s.stop()

	startup, err := s.startup()
	if err != nil {
		s.failStartup(err)
		return
	}
	if startup == nil {
		return // a CancelRequest, already forwarded
	}
	err = s.authenticate(startup)
	if s.server != nil {
		defer s.server.Close()
	}
	if err != nil {
		s.failStartup(err)
		return
	}
	if testHookDeadline != nil {
		testHookDeadline(s, "ready")
	}
	s.clientDeadline(time.Time{})
	s.server.SetDeadline(time.Time{})
	s.endStartup()
	s.log = s.log.With(zap.Uint32("backend_pid", s.backendPID))
	if s.eng != nil {
		if err := s.initSearchPath(); err != nil {
			s.log.Warn("reading search_path failed", zap.Error(err))
			return
		}
	}
	s.log.Debug("session ready", zap.Bool("client_tls", s.clientTLS), zap.Bool("upstream_tls", s.serverTLS))
	s.cr.max = s.cfg.Proxy.MaxMessage
	s.cr.knob = "proxy.max_message"
	err = s.relay()
	if s.ddlPending && s.eng != nil {
		// The session ended between its DDL's CommandComplete and the
		// ReadyForQuery: the server may have committed it all the same.
		s.ddlPending = false
		s.ddlCommitted()
	}
	switch {
	case err == nil:
		s.log.Debug("session ended")
	case errors.Is(err, errDrained):
		s.log.Info("session ended by shutdown")
	default:
		s.log.Info("session ended", zap.Error(err))
	}
}

// recoverPanic keeps a bug triggered by one client from taking down the
// process and every other session: the session ends, the stack is logged.
func (s *session) recoverPanic(where string) {
	if r := recover(); r != nil {
		s.panicked = true
		s.logPanic(where, r)
		s.forceClose()
	}
}

func (s *session) logPanic(where string, r any) {
	s.log.Error("panic in session; session closed", zap.String("where", where), zap.Any("panic", r), zap.Stack("stack"))
}

// failStartup reports an error before the relay phase, when this goroutine
// is the only writer to the client.
func (s *session) failStartup(err error) {
	if errors.Is(err, errAuthFailed) {
		s.log.Info("authentication failed")
		return // the server's own ErrorResponse reached the client
	}
	if isClosedConn(err) && !isUpstreamErr(err) {
		s.log.Debug("client left during startup", zap.Error(err))
		return
	}
	s.log.Info("startup failed", zap.Error(err))
	s.sendError(err)
}

// releaseBuffers gives the session's readers and writers back to the
// pools once nothing can use them: run's own work is over, and the
// goroutine relay's serverToClient has ended (an event loop never uses
// them: it copied what they had buffered before the hand-over). After a
// panic they are left to the garbage collector.
func (s *session) releaseBuffers() {
	if s.panicked {
		return
	}
	if s.serverDone != nil {
		select {
		case <-s.serverDone:
		default:
			return
		}
	}
	s.bufs.release()
}

// sendError writes an ErrorResponse for err to the client and flushes.
func (s *session) sendError(err error) {
	er := toErrorResponse(err)
	s.srv.metrics.Errors.WithLabelValues(sqlstateClass(er.Code), "pgveil").Inc()
	buf, _ := er.Encode(nil)
	s.client.SetWriteDeadline(time.Now().Add(5 * time.Second))
	s.cw.Write(buf)
	s.cw.Flush()
}

func (s *session) closeClient() {
	s.closeOnce.Do(func() { s.client.Close() })
}

// wake lets an idle session notice a shutdown: it interrupts the client
// read of the goroutine relay, or asks the loop relaying it.
func (s *session) wake() {
	s.connMu.Lock()
	ls, client := s.onLoop, s.client
	s.connMu.Unlock()
	if ls != nil {
		ls.wake()
		return
	}
	client.SetReadDeadline(time.Now())
}

// clientDeadline sets the client connection's deadline. A Shutdown wake
// that landed before it (a deadline in the past) would be undone by it:
// while draining the session wakes itself again. Shutdown sets draining
// before it wakes a session, so either that wake comes after this
// deadline, or this load sees draining.
func (s *session) clientDeadline(t time.Time) {
	s.client.SetDeadline(t)
	if s.srv.draining.Load() {
		s.wake()
	}
}

// testHookDeadline, when set by a test, runs before the session sets its
// startup deadline ("startup") and before it clears it ("ready").
var testHookDeadline func(s *session, phase string)

// forceClose ends the session at once (shutdown timeout).
func (s *session) forceClose() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	s.forced = true
	if s.onLoop != nil {
		s.onLoop.forceClose()
		return
	}
	shutdownSockets(s.restFDs)
	s.client.Close()
	if s.server != nil {
		s.server.Close()
	}
}

// idle reports that nothing is in flight and no transaction is open.
func (s *session) idle() bool {
	s.t.mu.Lock()
	defer s.t.mu.Unlock()
	return s.t.n == 0 && s.t.txStatus == 'I'
}

var errDrained = fatal(codeAdminShutdown, "terminating connection due to administrator command")

// upstreamError marks failures to reach the upstream server.
type upstreamError struct{ err error }

func (e *upstreamError) Error() string { return "upstream: " + e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

func isUpstreamErr(err error) bool {
	var ue *upstreamError
	return errors.As(err, &ue)
}

// connect dials the upstream server and sends the client's StartupMessage.
func (s *session) connect(startup []byte) error {
	start := time.Now()
	conn, encrypted, err := s.up.dial(context.Background())
	if err != nil {
		s.log.Warn("upstream unreachable", zap.String("upstream", s.cfg.Upstream.Address), zap.Error(err))
		return &pgError{Severity: "FATAL", Code: codeCannotConnect,
			Message: "pgveil could not connect to the upstream server at " + s.cfg.Upstream.Address,
			Hint:    "check that PostgreSQL is running and upstream.address is right", cause: &upstreamError{err}}
	}
	s.srv.metrics.UpstreamConnect.Observe(time.Since(start).Seconds())
	s.connMu.Lock()
	s.server, s.serverTLS = conn, encrypted
	s.connMu.Unlock()
	if !s.startDeadline.IsZero() {
		conn.SetDeadline(s.startDeadline) // cleared when authentication ends
	}
	// The server is trusted: its messages are bounded only by the protocol's
	// int32 length (a DataRow may exceed the 1 GiB that bounds clients).
	s.sr = s.bufs.msgReader(conn, math.MaxInt32)
	s.sw = s.bufs.writer(conn)
	if _, err := s.sw.Write(startup); err != nil {
		return &pgError{Severity: "FATAL", Code: codeConnectionFailure, Message: "lost the upstream connection during startup", cause: &upstreamError{err}}
	}
	return s.sw.Flush()
}

// relay relays the session until it ends: on an event loop when it can
// (see evloop_linux.go), else on two goroutines, clientToServer (this one)
// and serverToClient, until one ends; then it stops the other.
func (s *session) relay() error {
	for {
		if l := s.srv.loopFor(s); l != nil {
			if ok, err := s.relayOnLoop(l); ok {
				return err
			}
			if s.handedBack && s.back.Load() == backClientOut {
				// On the way back the loop could not take the session
				// (a shutdown): stay on goroutines from here.
				s.handedBack = false
			}
		}
		err := s.relayOnGoroutines()
		if !errors.Is(err, errToLoop) {
			return err
		}
	}
}

// relayOnGoroutines relays the session on two goroutines until it ends,
// or until both stop for the way back to the event loop (errToLoop).
func (s *session) relayOnGoroutines() error {
	s.log.Debug("relaying on goroutines")
	s.back.Store(backNone)
	s.serverDone = make(chan struct{})
	var serr error
	go func() {
		defer close(s.serverDone)
		defer func() {
			if r := recover(); r != nil {
				s.logPanic("server-to-client", r)
				serr = fatal(codeInternalError, "pgveil internal error")
				s.closeClient()
			}
		}()
		serr = s.serverToClient()
		if !errors.Is(serr, errToLoop) && !s.upstreamClosing.Load() {
			// The upstream side ended first: clientToServer is blocked on
			// the client; closing the client connection releases it.
			s.closeClient()
		}
	}()
	cerr := s.clientToServer()
	if errors.Is(cerr, errToLoop) {
		// serverToClient stops at its next message boundary (a deadline
		// wakes it), or has ended on its own.
		<-s.serverDone
		if errors.Is(serr, errToLoop) {
			// Both at rest: what the loop left has been relayed.
			s.resume = nil
			s.client.SetReadDeadline(timeZero)
			s.server.SetReadDeadline(timeZero)
			return errToLoop
		}
		cerr = net.ErrClosed // the server side ended meanwhile and closed the client
	}

	s.upstreamClosing.Store(true)
	s.server.SetWriteDeadline(time.Now().Add(time.Second))
	if !errors.Is(cerr, errTerminated) && !s.cr.cut {
		writeMsg(s.sw, 'X', nil)
	}
	s.sw.Flush()
	s.server.Close()
	<-s.serverDone

	// No last message where the client's stream ends inside one.
	if cerr != nil && !errors.Is(cerr, errTerminated) && !isClosedConn(cerr) && !s.sr.cut {
		s.sendError(cerr)
	}
	return relayResult(cerr, serr)
}

// relayResult is the error a relay ends with, from the client side's
// (cerr) and the upstream side's (serr): nil for the normal ends.
func relayResult(cerr, serr error) error {
	switch {
	case errors.Is(cerr, errTerminated), isClosedConn(cerr) && serr == nil:
		return nil
	case cerr != nil && !isClosedConn(cerr):
		return cerr
	case serr != nil && !isClosedConn(serr):
		return serr
	}
	return nil
}

// errTerminated is the client's Terminate: a normal end.
var errTerminated = errors.New("client sent Terminate")

// wakeReader is the client connection as the reader sees it. Shutdown wakes
// an idle session by setting a read deadline in the past; a deadline that
// strikes inside a message is ignored so no message is ever cut.
type wakeReader struct {
	conn net.Conn
	mid  bool // inside a message body
}

func (w *wakeReader) Read(p []byte) (int, error) {
	for {
		n, err := w.conn.Read(p)
		if n == 0 && w.mid && errors.Is(err, os.ErrDeadlineExceeded) {
			w.conn.SetReadDeadline(time.Time{})
			continue
		}
		return n, err
	}
}

// sessionFields are log fields describing the client after startup.
func (s *session) sessionFields(params map[string]string) []zap.Field {
	f := []zap.Field{zap.String("user", params["user"]), zap.String("database", params["database"])}
	if app := params["application_name"]; app != "" {
		f = append(f, zap.String("application_name", app))
	}
	if r := params["replication"]; r != "" {
		f = append(f, zap.String("replication", r))
	}
	return f
}

func itoa(n int) string { return strconv.Itoa(n) }

var timeZero time.Time

// span locates one value in an arena (i: its index, when needed).
type span struct{ i, start, end int }
