package proxy

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/jackc/pgproto3/v2"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/policy"
)

// Connection limits (docs/OPERATING.md, "Connection limits").
//
// The accept loop is the only goroutine that takes a slot, so a check
// and the increment that follows it cannot interleave with another
// admission: the counts never exceed their bounds. Slots are given back
// by the session goroutine (release), with an atomic decrement each: no
// lock, and nothing on the relay's path.
//
//	clients   connections admitted and not yet closed (proxy.max_client_connections)
//	pending   of those, sessions still in startup or authentication
//	          (proxy.max_pending_startups)
//	refusing  refused connections whose first packets pgveil still reads,
//	          to forward a CancelRequest or to answer 53300 after the
//	          StartupMessage, as Postgres does (bounded by
//	          proxy.max_pending_startups too; beyond, the error goes out at
//	          once, unread)
type connLimits struct {
	clients, pending, refusing atomic.Int64
	logs                       [numRefusals]refusalLog
}

// Why a connection was refused; the values index connLimits.logs and
// Metrics.refused.
const (
	refusedClients = iota + 1 // proxy.max_client_connections
	refusedPending            // proxy.max_pending_startups
	numRefusals
)

// refusalReasons are the reason labels of pgveil_connections_refused_total.
var refusalReasons = [numRefusals]string{refusedClients: "max_client_connections", refusedPending: "max_pending_startups"}

// refusalLog rate-limits the warning about one reason: a flood of
// connections must not flood the log.
type refusalLog struct {
	next     atomic.Int64  // unix nanos before which no line is logged
	unlogged atomic.Uint64 // refusals since the last line
}

// refusalLogEvery is the least time between two warnings of one reason.
const refusalLogEvery = 10 * time.Second

// refusalTimeout bounds how long a refused connection may take to send
// its first packets (the answer to a cancel or to 53300 needs them), if
// proxy.authentication_timeout is not shorter.
const refusalTimeout = 10 * time.Second

// errTooManyClients is what Postgres answers when max_connections is
// reached, word for word: drivers and tools recognise it.
var errTooManyClients = fatal(codeTooManyConnections, "sorry, too many clients already")

// tooManyClientsMsg is errTooManyClients encoded, for the connections
// refused at once.
var tooManyClientsMsg, _ = (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL",
	Code: codeTooManyConnections, Message: errTooManyClients.Message}).Encode(nil)

// admit takes the slots of a new connection, or says why it cannot have
// them (0: admitted). Only the accept loop calls it.
func (s *Server) admit(p *policy.ProxyOptions) int {
	l := &s.limits
	if l.clients.Load() >= int64(p.MaxClientConnections) {
		return refusedClients
	}
	if l.pending.Load() >= int64(p.MaxPendingStartups) {
		return refusedPending
	}
	l.clients.Add(1)
	l.pending.Add(1)
	s.metrics.ConnectionsOpen.Inc()
	s.metrics.ConnectionsTotal.Inc()
	s.metrics.StartupsPending.Inc()
	return 0
}

// endStartup gives back the session's startup slot: authentication
// ended, the connection was a CancelRequest, or the session ends.
func (s *session) endStartup() {
	if s.holdsPending {
		s.holdsPending = false
		s.srv.limits.pending.Add(-1)
		s.srv.metrics.StartupsPending.Dec()
	}
}

// endClient gives back the session's client slot (and its startup slot
// if it still holds it): the connection is closed, or was a
// CancelRequest, which does not count.
func (s *session) endClient() {
	s.endStartup()
	if s.holdsClient {
		s.holdsClient = false
		s.srv.limits.clients.Add(-1)
		s.srv.metrics.ConnectionsOpen.Dec()
	}
}

// refuse deals with a connection admit refused: a session that reads its
// first packets and answers them (runRefused), while fewer than
// proxy.max_pending_startups do; else the ErrorResponse at once. It
// returns the session to run, or nil when the connection is done with.
func (s *Server) refuse(conn net.Conn, reason int, p *policy.ProxyOptions) *session {
	if s.limits.refusing.Load() >= int64(p.MaxPendingStartups) {
		s.noteRefusal(reason, conn.RemoteAddr())
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		conn.Write(tooManyClientsMsg)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite() // the error, then FIN, before what close may reset
		}
		conn.Close()
		return nil
	}
	s.limits.refusing.Add(1)
	sess := s.newSession(conn)
	sess.refused = reason
	return sess
}

// runRefused answers a refused connection as Postgres answers one when it
// is full: encryption negotiated as usual, a CancelRequest forwarded (a
// cancel is never refused), and after the StartupMessage FATAL 53300.
// Nothing is dialled upstream but a cancel.
func (s *session) runRefused() {
	defer s.srv.limits.refusing.Add(-1)
	defer s.dropEngine()
	defer s.releaseBuffers() // last: after the connection is closed
	defer s.closeClient()
	defer s.recoverPanic("session")
	defer s.stop()

	startup, err := s.startup()
	if err == nil && startup == nil {
		return // a CancelRequest, forwarded
	}
	s.srv.noteRefusal(s.refused, s.client.RemoteAddr())
	switch {
	case err == nil:
		err = errTooManyClients
	case isClosedConn(err):
		return // gone, or silent until refusalTimeout
	}
	// Logged by noteRefusal alone: one line per refusal would let a flood
	// flood the log.
	s.log.Debug("connection refused", zap.Error(err))
	s.sendError(err)
}

// noteRefusal counts a refusal and logs it, at most once per
// refusalLogEvery and reason, with how many went unlogged since. Only the
// client's address is logged.
func (s *Server) noteRefusal(reason int, addr net.Addr) {
	s.metrics.refused[reason].Inc()
	rl := &s.limits.logs[reason]
	now := time.Now().UnixNano()
	next := rl.next.Load()
	if now < next || !rl.next.CompareAndSwap(next, now+int64(refusalLogEvery)) {
		rl.unlogged.Add(1)
		return
	}
	p := s.cfg.Load().Proxy
	limit := p.MaxClientConnections
	if reason == refusedPending {
		limit = p.MaxPendingStartups
	}
	s.log.Warn("connection refused: too many clients (53300)", zap.String("reason", refusalReasons[reason]), zap.Int("limit", limit),
		zap.String("client", addr.String()), zap.Uint64("refused_unlogged_since_last", rl.unlogged.Swap(0)))
}

// startupTimeout bounds the session's startup and authentication.
func (s *session) startupTimeout() time.Duration {
	d := s.cfg.Proxy.AuthenticationTimeout
	if d <= 0 {
		d = policy.DefaultAuthenticationTimeout
	}
	if s.refused != 0 {
		d = min(d, refusalTimeout)
	}
	return d
}
