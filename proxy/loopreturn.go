package proxy

import (
	"errors"
	"time"
)

// The way back to the event loop.
//
// An event loop hands a session to goroutines for COPY of a configured
// table (loopengine.go). Once that is over, the session goes back to the
// loop at the first moment both sides are at rest: the server has sent
// ReadyForQuery for everything the client sent, and neither relay
// goroutine is inside a message. Without it a pooled connection that
// once ran such a COPY stayed on goroutines, at about twice the CPU per
// round trip, for the rest of its life.
//
// The two goroutines agree through s.back:
//
//  1. serverToClient, after a ReadyForQuery leaves nothing pending, moves
//     it from backNone to backAsked and sets a read deadline in the past
//     on the client connection (askLoopReturn).
//  2. clientToServer, woken by that deadline while it waits for a header,
//     or at its next message boundary, checks again that nothing is
//     pending. If so it moves backAsked to backClientOut, sets a deadline
//     on the server connection and returns errToLoop; if the client sent
//     something meanwhile it moves back to backNone and goes on, and the
//     next ReadyForQuery asks again (clientReturns).
//  3. serverToClient, woken by its deadline while it waits for a header,
//     or at its next message boundary, sees backClientOut and returns
//     errToLoop.
//
// A deadline never cuts a message: one that strikes inside a body is
// ignored (wakeReader), and a header is peeked before it is consumed, so
// a header begun is left in the read buffer. What each reader holds
// unread goes to the loop in front of the socket (relayOnLoop). A server
// message that arrives in between (a notification) is relayed by
// serverToClient before it stops, since step 3 is checked between
// messages.

// The states of session.back.
const (
	backNone      = iota // relaying on goroutines
	backAsked            // serverToClient found the session at rest
	backClientOut        // clientToServer stopped for the loop
)

// errToLoop ends a relay goroutine whose session goes back to its loop.
var errToLoop = errors.New("pgveil: the session goes back to its event loop")

// askLoopReturn is step 1, called by serverToClient after a ReadyForQuery.
func (s *session) askLoopReturn() {
	if s.t.len() != 0 || s.srv.draining.Load() || s.srv.loopFor(s) == nil {
		return
	}
	if !s.back.CompareAndSwap(backNone, backAsked) {
		return
	}
	s.connMu.Lock()
	c := s.client
	s.connMu.Unlock()
	c.SetReadDeadline(time.Now())
}

// clientReturns is step 2, called by clientToServer between messages
// (after a read deadline, or before the next header). It reports whether
// clientToServer stops for the loop.
func (s *session) clientReturns() bool {
	if s.back.Load() != backAsked {
		return false
	}
	if s.t.len() != 0 || s.srv.draining.Load() {
		// Not now. The read deadline stays: a Shutdown may have set it
		// too (it ends an idle session at the next read), and
		// clientToServer clears it after its own checks when it strikes.
		s.back.CompareAndSwap(backAsked, backNone)
		return false
	}
	if !s.back.CompareAndSwap(backAsked, backClientOut) {
		return false
	}
	s.server.SetReadDeadline(time.Now())
	return true
}

// serverReturns is step 3: it reports whether serverToClient stops for
// the loop.
func (s *session) serverReturns() bool { return s.back.Load() == backClientOut }

// toLoop ends a relay goroutine for the loop: what it wrote goes out
// first.
func (s *session) toLoop(w interface{ Flush() error }) error {
	if err := w.Flush(); err != nil {
		return err
	}
	return errToLoop
}
