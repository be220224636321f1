package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"

	"github.com/pgveil/pgveil/rewrite"
	"go.uber.org/zap"
)

// clientToServer relays frontend messages after startup. Messages that open
// or name statements and portals are read whole so the tracker can follow
// them; every message is forwarded as the client's own bytes. The writer is
// flushed when no more client input is buffered: once per round trip.
func (s *session) clientToServer() error {
	var flow flowCounter
	defer flow.publish(s.srv.metrics.bytesC2S, s.srv.metrics.msgsC2S)
	if err := s.resumeToServer(); err != nil {
		return err
	}
	for {
		if s.handedBack && s.clientReturns() {
			return s.toLoop(s.sw)
		}
		typ, n, err := s.cr.readHeader()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// A shutdown wake-up at a message boundary.
				if s.srv.draining.Load() && s.idle() {
					return errDrained
				}
				// Or the way back to the loop (loopreturn.go).
				if s.handedBack && s.clientReturns() {
					return s.toLoop(s.sw)
				}
				s.client.SetReadDeadline(timeZero)
				continue
			}
			return err
		}
		flow.add(n + 5)
		switch typ {
		case 'P', 'B', 'D', 'E', 'C':
			body, err := s.cr.readBody()
			if err != nil {
				return err
			}
			if s.eng != nil {
				if err := s.handleExtended(typ, body); err != nil {
					return err
				}
				break
			}
			if err := s.trackFrontend(typ, body); err != nil {
				return err
			}
			s.sw.Write(s.cr.header())
			s.sw.Write(body)
		case 'S':
			s.trackFrontend(typ, nil)
			err = s.cr.forwardBody(s.sw)
		case 'Q':
			if s.eng != nil {
				body, err := s.cr.readBody()
				if err != nil {
					return err
				}
				if err := s.handleQuery(body); err != nil {
					return err
				}
				break
			}
			s.trackFrontend(typ, nil)
			err = s.cr.forwardBody(s.sw)
		case 'F':
			if s.eng != nil {
				// The function may change search_path (set_config).
				s.pathEffect(effPath | effTZ)
			}
			s.trackFrontend(typ, nil)
			err = s.cr.forwardBody(s.sw)
		case 'd', 'c', 'f': // CopyData, CopyDone, CopyFail
			if s.copyStray {
				err = s.cr.discardBody() // see copyOver
				if err == nil && typ != 'd' {
					s.trackFrontend(typ, nil)
					s.strayCopyEnd()
				}
				break
			}
			s.trackFrontend(typ, nil)
			if s.eng != nil && s.copyPlan != nil {
				err = s.handleCopyIn(typ)
				break
			}
			err = s.cr.forwardBody(s.sw)
		case 'H': // Flush: the client wants what is buffered now
			err = s.cr.forwardBody(s.sw)
			if err == nil {
				err = s.sw.Flush()
			}
		case 'X':
			// The server closes right after Terminate: that close is ours.
			s.upstreamClosing.Store(true)
			if err := s.cr.forwardBody(s.sw); err != nil {
				return err
			}
			s.sw.Flush()
			return errTerminated
		default:
			// Unknown to pgveil: the server will judge it.
			err = s.cr.forwardBody(s.sw)
		}
		if err != nil {
			return err
		}
		if !s.cr.messageBuffered() {
			flow.publish(s.srv.metrics.bytesC2S, s.srv.metrics.msgsC2S)
			if err := s.sw.Flush(); err != nil {
				return err
			}
		}
	}
}

// resumed is what a session taken back from its loop must relay before
// its goroutines read a header: bytes the loop had for each peer, and the
// rest of a message it had begun to pass (dropped, when the loop dropped
// its start).
type resumed struct {
	toClient, toServer     []byte
	fromServer, fromClient int
	dropServer, dropClient bool
}

// resumeToServer is clientToServer's share of resumed.
func (s *session) resumeToServer() error {
	r := s.resume
	if r == nil {
		return nil
	}
	s.sw.Write(r.toServer)
	if r.fromClient > 0 {
		s.wake_.mid = true // no shutdown wake-up inside the message
		err := s.cr.passRest(s.sw, r.fromClient, r.dropClient)
		s.wake_.mid = false
		if err != nil {
			return err
		}
	}
	return s.sw.Flush()
}

// resumeToClient is serverToClient's share of resumed.
func (s *session) resumeToClient() error {
	r := s.resume
	if r == nil {
		return nil
	}
	s.cw.Write(r.toClient)
	if r.fromServer > 0 {
		if err := s.sr.passRest(s.cw, r.fromServer, r.dropServer); err != nil {
			return err
		}
	}
	return s.cw.Flush()
}

// frontendNamed reports the frontend messages whose names the tracker
// reads (trackExtended); every other one it counts by type alone.
func frontendNamed(typ byte) bool {
	switch typ {
	case 'P', 'B', 'D', 'E', 'C':
		return true
	}
	return false
}

// trackFrontend records a frontend message of a relay session in the
// tracker. body is, for frontendNamed types, the body or at least its
// names (namesIn); nil otherwise.
func (s *session) trackFrontend(typ byte, body []byte) error {
	switch typ {
	case 'P', 'B', 'D', 'E', 'C':
		return s.trackExtended(typ, body)
	case 'S':
		s.refusing = false
		s.t.push(pending{kind: pendSync})
	case 'Q':
		s.t.push(pending{kind: pendQuery})
	case 'F':
		s.t.push(pending{kind: pendFunctionCall})
	case 'c', 'f': // CopyDone, CopyFail
		s.t.copyEnd()
	}
	return nil
}

// trackExtended records an extended-protocol message in the tracker.
func (s *session) trackExtended(typ byte, body []byte) error {
	switch typ {
	case 'P': // Parse: name, query, parameter types
		name, _, ok := cstringBytes(body, 0)
		if !ok {
			return &protocolError{msg: "malformed Parse message"}
		}
		s.t.parsed(name, passthroughStmt)
	case 'B': // Bind: portal, statement, ...
		portalName, off, ok := cstringBytes(body, 0)
		if !ok {
			return &protocolError{msg: "malformed Bind message"}
		}
		stmtName, _, ok := cstringBytes(body, off)
		if !ok {
			return &protocolError{msg: "malformed Bind message"}
		}
		portal := passthroughPortal
		if stmt := s.t.statement(stmtName); stmt != passthroughStmt {
			portal = &Portal{Name: string(portalName), Stmt: stmt}
		}
		s.t.bindPortal(portalName, portal)
		s.t.push(pending{kind: pendBind, portal: portal})
	case 'D': // Describe: 'S' or 'P', name
		if len(body) < 2 {
			return &protocolError{msg: "malformed Describe message"}
		}
		name, _, ok := cstringBytes(body, 1)
		if !ok {
			return &protocolError{msg: "malformed Describe message"}
		}
		if body[0] == 'S' {
			s.t.push(pending{kind: pendDescribeStmt, stmt: s.t.statement(name)})
		} else {
			s.t.push(pending{kind: pendDescribePortal, portal: s.t.portal(name)})
		}
	case 'E': // Execute: portal, max rows
		name, _, ok := cstringBytes(body, 0)
		if !ok {
			return &protocolError{msg: "malformed Execute message"}
		}
		s.t.push(pending{kind: pendExecute, portal: s.t.portal(name)})
	case 'C': // Close: 'S' or 'P', name
		if len(body) < 2 {
			return &protocolError{msg: "malformed Close message"}
		}
		name, _, ok := cstringBytes(body, 1)
		if !ok {
			return &protocolError{msg: "malformed Close message"}
		}
		if body[0] == 'S' {
			s.t.closeStatement(name)
			s.t.push(pending{kind: pendCloseStmt})
		} else {
			s.t.closePortal(name)
			s.t.push(pending{kind: pendClosePortal})
		}
	}
	return nil
}

// serverToClient relays backend messages after startup, attributing each to
// the client message it answers. Large messages that need no change are
// streamed; the writer is flushed once the server's output is drained.
func (s *session) serverToClient() error {
	var flow flowCounter
	m := s.srv.metrics
	defer flow.publish(m.bytesS2C, m.msgsS2C)
	if err := s.resumeToClient(); err != nil {
		return s.upstreamEnded(err)
	}
	for {
		if s.handedBack && s.serverReturns() {
			return s.toLoop(s.cw)
		}
		typ, n, err := s.sr.readHeader()
		if err != nil {
			if s.handedBack && errors.Is(err, os.ErrDeadlineExceeded) {
				if s.serverReturns() {
					return s.toLoop(s.cw)
				}
				s.server.SetReadDeadline(timeZero)
				continue
			}
			return s.upstreamEnded(err)
		}
		flow.add(n + 5)
		switch typ {
		case 'Z', 'E':
			body, err := s.sr.readBody()
			if err != nil {
				return s.upstreamEnded(err)
			}
			if s.backendControl(s.cw, typ, s.sr.header(), body) {
				s.wake()
			}
			if typ == 'Z' && s.handedBack {
				s.askLoopReturn()
			}
		default:
			ev := s.t.onBackend(typ, nil)
			m.upstreamDone(ev)
			switch {
			case ev.cur.pathSync && typ == 'D':
				var body []byte
				if body, err = s.sr.readBody(); err == nil {
					s.pathSyncMessage(typ, body)
				}
			case ev.cur.lookup && (typ == 'D' || typ == 'C' || typ == 'T'):
				// The rows of a tenant lookup (lookup.go): pgveil's own.
				var body []byte
				if body, err = s.sr.readBody(); err == nil {
					s.lookupMessage(typ, body, ev.cur.kind != pendQuery)
				}
			case ev.cur.suppress || ev.cur.injected || ev.cur.probe:
				err = s.sr.discardBody()
			case s.eng != nil:
				err = s.decodeBackend(typ, ev)
				var pe *pgError
				if errors.As(err, &pe) {
					return s.endWithFatal(pe)
				}
			default:
				err = s.sr.forwardBody(s.cw)
			}
			if err != nil {
				return s.upstreamEnded(err)
			}
		}
		if !s.sr.messageBuffered() {
			flow.publish(m.bytesS2C, m.msgsS2C)
			s.checkDesync(&s.desyncsSeen)
			if err := s.cw.Flush(); err != nil {
				return err
			}
		}
	}
}

// backendControl relays a ReadyForQuery or an ErrorResponse (hdr and the
// whole body) to w: the tracker learns what it answers, injected replies
// are cleaned or dropped, errors are counted and a FATAL noted. It reports
// that the session has just become idle while pgveil drains.
func (s *session) backendControl(w io.Writer, typ byte, hdr, body []byte) (drainNow bool) {
	if typ == 'Z' && s.ddlPending && len(body) == 1 && body[0] == 'I' {
		// The DDL committed (or rolled back): before the client has this
		// ReadyForQuery.
		s.ddlPending = false
		s.ddlCommitted()
	}
	ev := s.t.onBackend(typ, body)
	s.srv.metrics.upstreamDone(ev)
	if ev.cur.pathSync {
		s.pathSyncMessage(typ, body)
	}
	// A simple tenant lookup that failed answers the client's Query (its
	// error, then this ReadyForQuery); one that succeeded is pgveil's own.
	lookupFailed := ev.cur.lookup && ev.cur.kind == pendQuery && (typ == 'E' || s.lookupAcc.err)
	if ev.cur.lookup {
		s.lookupMessage(typ, body, ev.cur.kind != pendQuery)
	}
	// An error ends the result whose rows were arriving (as
	// CommandComplete does, decodeBackend): the next rows are another's.
	s.curMap = nil
	switch {
	case typ == 'E' && ev.cur.lookup && (ev.cur.kind != pendQuery || lookupFailed):
		// A tenant lookup's error is the client's (lookup.go), without a
		// position in pgveil's text.
		if ev.cur.kind == pendBind && errorField(body, 'C') == "26000" {
			s.out = lookupStatementGone(s.out[:0])
		} else {
			s.out = cleanInjectedError(body, s.out[:0])
		}
		writeMsg(w, 'E', s.out)
	case lookupFailed:
		w.Write(hdr)
		w.Write(body)
	case ev.cur.suppress:
	case typ == 'E' && ev.cur.injected:
		routine := ""
		if ev.cur.revalidate {
			routine = revalidateRoutine
		}
		s.out = cleanInjected(body, routine, s.out[:0])
		writeMsg(w, 'E', s.out)
	case typ == 'E' && ev.cur.serverWords():
		s.out = s.clientWords(body, s.out[:0], &ev.cur)
		writeMsg(w, 'E', s.out)
	default:
		w.Write(hdr)
		w.Write(body)
	}
	if typ == 'E' && ev.cur.kind == pendBind && ev.cur.ownFormats && ev.cur.portal != nil && ev.cur.portal.Stmt != nil &&
		ev.cur.portal.Stmt.Plan != nil && ev.cur.portal.Stmt.Plan.Outputs != nil && !clientFormatsByOrigin(ev.cur.portal) &&
		resultFormatsRefused(body) {
		// The server refused the result formats pgveil gave a planned
		// statement ("bind message has 6 result formats but query has 8
		// columns"): its table has other columns than the snapshot says
		// (ADD COLUMN run directly). Like a RowDescription that differs
		// (decodeRowDescription), every session plans with a new
		// snapshot from now; before, a client that binds without
		// describing first (node-postgres) met this error until SIGHUP.
		s.log.Warn("the server refused the result formats of a planned statement: the catalog snapshot is stale; reading it again")
		s.ddlCommitted()
	}
	if typ == 'E' {
		if ev.cur.injected {
			// A refusal (or a stale statement's revalidation error) is
			// pgveil's, though the server raised it for pgveil: counted
			// so, as docs/OPERATING.md's alert on source="pgveil" expects.
			s.srv.metrics.Errors.WithLabelValues(sqlstateClass(errorField(body, 'C')), "pgveil").Inc()
		} else {
			s.countServerError(body)
		}
		if sev := errorField(body, 'V'); sev == "FATAL" || sev == "PANIC" {
			s.serverSentFatal = true
		}
		return false
	}
	return s.srv.draining.Load() && len(body) > 0 && body[0] == 'I' && s.t.len() == 0
}

// resultFormatsRefused reports an ErrorResponse to a Bind that refuses its
// result formats ("bind message has 6 result formats but query has 8
// columns"): 08P01 raised in PortalSetResultFormat. Other protocol
// violations of a Bind are the client's (a binary parameter too short
// for its type: "insufficient data left in message", review 21j) and do
// not make pgveil read its catalog again. The routine field is not
// translated (lc_messages); a server that sends none is taken at its
// code alone.
func resultFormatsRefused(body []byte) bool {
	if errorField(body, 'C') != "08P01" {
		return false
	}
	r := errorField(body, 'R')
	return r == "" || r == "PortalSetResultFormat"
}

// clientFormatsByOrigin reports a portal of a statement whose fields
// pgveil maps by origin (a * over a JOIN … USING, or over a relation its
// catalog does not list) bound with a result format per column by the
// client: pgveil sends the client's formats with one for each field it
// added (fixed in the text it wrote), so a count the server refuses is the
// client's, whatever the catalog says; pgveil does not check it (it cannot
// count the *), and the refusal must not make it read its catalog again
// (review 21j: a client could make it reload at will).
func clientFormatsByOrigin(p *Portal) bool {
	return p.Stmt.Plan.OutputsByOrigin && len(p.ResultFormats) > 1
}

// clientWords copies the server's ErrorResponse body for cur to dst in
// the client's words:
//   - the position field is mapped from the text pgveil sent to the
//     client's text (rewrite.ClientPosition), so that a caret drawn under
//     the client's statement points where the server meant. A position
//     that cannot be mapped, or any in a session whose client_encoding is
//     not UTF-8 (the field counts characters), is dropped rather than
//     point elsewhere;
//   - the upstream name of a statement pgveil prepared becomes the
//     client's name (prepared statement "s1" does not exist, after a
//     Parse that failed), and the unnamed statement is called unnamed, as
//     the server calls it.
func (s *session) clientWords(body, dst []byte, cur *pending) []byte {
	sql, sent, backslash := cur.texts()
	var rename *Statement
	if st := cur.statement(); st != nil && st.renamed() {
		rename = st
	}
	for off := 0; off < len(body) && body[off] != 0; {
		f := body[off]
		v, next, ok := cstringBytes(body, off+1)
		if !ok {
			return append(dst[:0], body...)
		}
		off = next
		if rename != nil && (f == 'M' || f == 'D' || f == 'H') {
			v = clientName(v, rename)
		}
		if cur.query != nil && (f == 'M' || f == 'D' || f == 'H') {
			for _, st := range cur.query.renamed {
				v = clientName(v, st)
			}
		}
		if f == 'P' && sent != "" {
			if s.nonUTF8.Load() {
				continue
			}
			mapped, ok := rewrite.ClientPosition(sent, sql, string(v), backslash)
			if !ok {
				continue
			}
			v = []byte(mapped)
		}
		dst = append(dst, f)
		dst = append(append(dst, v...), 0)
	}
	return append(dst, 0)
}

// clientName replaces, in one field of an error, the upstream name of st
// (pgveil_<session>_<n> as a whole word) with the client's name. The
// server's English message about the unnamed statement reads as the
// server would have written it; in another language the unnamed
// statement's upstream name stays (an empty name would read worse).
func clientName(v []byte, st *Statement) []byte {
	if st.Name == "" {
		if string(v) == `prepared statement "`+st.ServerName+`" does not exist` {
			return []byte("unnamed prepared statement does not exist")
		}
		// Elsewhere the server quotes the unnamed statement's name as ""
		// ("bind message supplies 1 parameters, but prepared statement ""
		// requires 0").
		return bytes.ReplaceAll(v, []byte(`"`+st.ServerName+`"`), []byte(`""`))
	}
	var out []byte
	for {
		i := bytes.Index(v, []byte(st.ServerName))
		if i < 0 {
			break
		}
		end := i + len(st.ServerName)
		if end < len(v) && asciiNameByte(v[end]) || i > 0 && asciiNameByte(v[i-1]) {
			out = append(out, v[:end]...)
		} else {
			out = append(append(out, v[:i]...), st.Name...)
		}
		v = v[end:]
	}
	if out == nil {
		return v
	}
	return append(out, v...)
}

// asciiNameByte reports an ASCII letter, digit, underscore or dollar: a
// byte that would continue pgveil's upstream names. (identByte also takes
// every byte of a multi-byte character, which the quotes of some
// languages' messages are: »name«.)
func asciiNameByte(c byte) bool {
	return c < 0x80 && identByte(c)
}

// checkDesync counts and logs the tracker falling out of step with the
// server since the last check (*seen: the count then).
func (s *session) checkDesync(seen *uint64) {
	if d := s.t.desyncCount(); d != *seen {
		s.srv.metrics.TrackerDesyncs.Add(float64(d - *seen))
		s.log.Error("protocol tracker out of step with the server")
		*seen = d
	}
}

// endWithFatal tells the client why its session ends (a value that does
// not open) and ends serverToClient; relay then closes both sides.
func (s *session) endWithFatal(pe *pgError) error {
	s.log.Error("closing session", zap.String("sqlstate", pe.Code), zap.String("reason", pe.Message), zap.NamedError("cause", pe.cause))
	er := toErrorResponse(pe)
	buf, _ := er.Encode(s.out[:0])
	s.cw.Write(buf)
	s.cw.Flush()
	s.srv.metrics.Errors.WithLabelValues(sqlstateClass(pe.Code), "pgveil").Inc()
	return pe
}

// upstreamEnded handles the end of the upstream stream. If the session is
// not closing it on purpose, the client learns the connection is gone
// (unless the server already said so with its own FATAL).
func (s *session) upstreamEnded(err error) error {
	if s.upstreamClosing.Load() {
		return nil
	}
	// The FATAL goes only at a message boundary: after part of a message
	// the client just sees the stream end, as it would from the server.
	if !s.serverSentFatal && !s.sr.cut {
		er := toErrorResponse(&pgError{Severity: "FATAL", Code: codeConnectionFailure,
			Message: "pgveil lost the connection to the upstream server"})
		buf, _ := er.Encode(nil)
		s.cw.Write(buf)
		s.srv.metrics.Errors.WithLabelValues("08", "pgveil").Inc()
	}
	s.cw.Flush()
	return &upstreamError{err}
}

func be16(b []byte) int16 { return int16(binary.BigEndian.Uint16(b)) }
