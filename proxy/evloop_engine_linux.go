//go:build linux

package proxy

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
)

// The encryption handlers on an event loop (see loopengine.go).

// maxWaits bounds how often one message is set aside for the same key or
// reload: a key evicted again while it loads (a shred announced
// meanwhile, an active-key TTL shorter than the load) must not keep a
// message waiting for ever. Each distinct thing it needs may take that
// many waits.
const maxWaits = 4

// mayWait counts a wait of sd's message for key, and reports whether it is
// within maxWaits.
func (sd *loopSide) mayWait(key string) bool {
	if sd.waits == nil {
		sd.waits = map[string]int{}
	}
	sd.waits[key]++
	return sd.waits[key] <= maxWaits
}

// engineClient runs the goroutine relay's handler on a frontend message of
// an encryption session that pgveil may rewrite (Parse, Bind, Describe,
// Execute, Close, Query), whole in c.in at c.r, writing what it sends into
// the upstream output. done is false when the message stays unhandled: the
// side was parked while a key loads, or the session is to be handed back.
func (ls *loopSession) engineClient(typ byte, n int) (done bool, err error) {
	s, c := ls.s, &ls.c
	body := c.in[c.r+5 : c.r+1+n]
	copy(s.cr.hdr[:], c.in[c.r:c.r+5])
	out := len(ls.u.out)
	s.loopRun, s.warmErrs = true, c.warmErrs
	if typ == 'Q' {
		err = s.handleQuery(body)
	} else {
		err = s.handleExtended(typ, body)
	}
	s.loopRun, s.warmErrs = false, nil
	s.metricsDone(!offLoop(err)) // a message that waits runs again
	if !offLoop(err) {
		// Handled (or a protocol error, which ends the session).
		ls.clientMessageDone()
		if err != nil {
			return false, err
		}
		// pgveil's own statements whose Close the server skipped after an
		// error (a failed tenant lookup's) are closed again now that the
		// message is done (handleExtended does it first on goroutines).
		s.closeAgain()
		return true, s.sw.Flush() // into u.out: cannot fail
	}
	if errors.Is(err, errPathAsked) {
		// The question goes out now; the message waits for the answer.
		c.parked, c.pathWait = true, true
		return false, s.sw.Flush()
	}
	if errors.Is(err, errLookupAsked) {
		// A tenant lookup goes out now (lookup.go); the message waits.
		c.parked, c.lookupWait = true, true
		return false, s.sw.Flush()
	}
	if s.sw.Buffered() > 0 || len(ls.u.out) != out {
		// A handler wrote before it found it must wait: never send half.
		return false, fatal(codeInternalError, "pgveil internal error: a message was half handled on the event loop")
	}
	if w, ok := asLoopWait(err); ok && c.mayWait(w.Key()) {
		ls.park(c, w)
		return false, nil
	}
	// The goroutine relay runs the message from the start.
	ls.clientMessageDone()
	ls.handback = true
	return false, nil
}

// clientMessageDone forgets what the client side's message waited for and
// found out meanwhile: the next message starts afresh.
func (ls *loopSession) clientMessageDone() {
	ls.c.waits, ls.c.warmErrs = nil, nil
	ls.s.pathRead, ls.s.staleRead, ls.s.settleRead = false, false, false
	ls.s.lookupReady = nil
}

// needsDecode reports whether decodeBackend must see a backend message of
// type typ that answers cur (the tracker's head, before onBackend) whole:
// it is rewritten, or it changes what decodeBackend does next. The others
// stream through as on a session without tables.
func (s *session) needsDecode(typ byte, cur *pending) bool {
	if cur == nil || cur.suppress || cur.injected || cur.probe || cur.pathSync {
		return false
	}
	switch typ {
	case 't':
		return cur.kind == pendDescribeStmt && cur.stmt != nil && cur.stmt.Plan != nil && stmtRewritten(cur.stmt.Plan)
	case 'T':
		st, _, _ := rowDescStmt(cur)
		return st != nil
	case 'D':
		m := s.rowMap(*cur)
		return m != nil && m.work
	case 'C', 'I', 's':
		return true // the end of a result (curMap) or of DDL (a catalog reload at its ReadyForQuery)
	}
	return false
}

// engineServer runs decodeBackend on a backend message, whole in u.in at
// u.r, that the tracker has taken (ev), writing what the client gets into
// its output. done is false when the side was parked while a key loads:
// the message and ev are held for the next run (u.held).
func (ls *loopSession) engineServer(typ byte, n int, ev backendEvent) (done bool, err error) {
	s, u := ls.s, &ls.u
	ls.uSrc.Reset(u.in[u.r+5 : u.r+1+n])
	s.sr.r.Reset(&ls.uSrc)
	copy(s.sr.hdr[:], u.in[u.r:u.r+5])
	s.sr.pending = n - 4
	out := len(ls.c.out)
	s.loopRun, s.warmErrs = true, u.warmErrs
	err = s.decodeBackend(typ, ev)
	s.loopRun, s.warmErrs = false, nil
	s.metricsDone(!offLoop(err))
	if err == nil {
		if s.sr.pending != 0 || s.sr.r.Buffered() != 0 || ls.uSrc.Len() != 0 {
			return false, fatal(codeInternalError, "pgveil internal error: a server message was half read on the event loop")
		}
		u.held, u.waits, u.warmErrs = false, nil, nil
		u.r += n + 1
		u.flow.add(n + 1)
		return true, s.cw.Flush() // into c.out: cannot fail
	}
	if w, ok := asLoopWait(err); ok {
		if s.cw.Buffered() > 0 || len(ls.c.out) != out {
			return false, fatal(codeInternalError, "pgveil internal error: a server message was half handled on the event loop")
		}
		if !u.mayWait(w.Key()) {
			return false, &pgError{Severity: "FATAL", Code: codeKeySourceDown, Message: "pgveil could not keep a data key cached long enough to decrypt a value; retry"}
		}
		u.held, u.heldTyp, u.heldN, u.heldEv = true, typ, n, ev
		ls.park(u, w)
		return false, nil
	}
	return false, err
}

// warmTimeout bounds the work of one wait off the loop.
const warmTimeout = time.Minute

// park sets sd aside at its current message while w's work runs on
// another goroutine; the loop stops reading sd until unpark.
func (ls *loopSession) park(sd *loopSide, w loopWait) {
	sd.parked = true
	s, l := ls.s, ls.l
	s.srv.metrics.LoopWaits.WithLabelValues(waitKind(w)).Inc()
	go func() {
		// Not the session's context: the session may end while it waits
		// (its server gone, a shutdown), and a reload or key load that
		// other sessions share must not fail for that.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), warmTimeout)
		defer cancel()
		err := w.Warm(ctx)
		l.submit(func() { ls.unpark(sd, w, err) })
	}()
}

func waitKind(w loopWait) string {
	if _, ok := w.(*catalogWait); ok {
		return "catalog"
	}
	return "key"
}

// unpark runs sd's message again after w's work: a catalog reload's
// outcome goes into the session (catalogWait.done); a failed key load
// goes into warmErrs, so that lookup fails as on the goroutine relay.
func (ls *loopSession) unpark(sd *loopSide, w loopWait, err error) {
	defer ls.recoverPanic()
	if ls.ended {
		return
	}
	sd.parked = false
	if cw, ok := w.(*catalogWait); ok {
		cw.done(err)
	} else if err != nil {
		if sd.warmErrs == nil {
			sd.warmErrs = map[string]error{}
		}
		sd.warmErrs[w.Key()] = err
	}
	ls.process(sd)
}

// pathAnswered runs the client side's message again once the server
// side has taken the answer to the search_path question it asked for it.
func (ls *loopSession) pathAnswered() {
	s, c := ls.s, &ls.c
	select {
	case r := <-s.pathCh:
		s.applyPath(r)
		s.pathRead = true
		c.parked, c.pathWait = false, false
		ls.process(c)
	default:
	}
}

// lookupAnswered runs the client side's message again once the server
// side has the answer to the tenant lookup it sent for it.
func (ls *loopSession) lookupAnswered() {
	s, c := ls.s, &ls.c
	select {
	case r := <-s.lookupCh:
		s.lookupReady = &r
		c.parked, c.lookupWait = false, false
		ls.process(c)
	default:
	}
}

// serverFatal ends the session for a *pgError of decodeBackend (a value
// that does not open): the client gets it as its last message, as
// endWithFatal does on the goroutine relay.
func (ls *loopSession) serverFatal(pe *pgError) {
	ls.s.log.Error("closing session", zap.String("sqlstate", pe.Code), zap.String("reason", pe.Message), zap.NamedError("cause", pe.cause))
	ls.cerr = pe
	ls.end()
}

// serverError sorts an error of engineServer: a *pgError ends the session
// with it; any other ends the upstream side.
func (ls *loopSession) serverError(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgError
	if errors.As(err, &pe) {
		ls.serverFatal(pe)
		return nil
	}
	return err
}
