package proxy

import (
	"errors"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/rewrite"
)

// Preparing a statement anew, unseen by the client.
//
// A statement pgveil rewrote whose new plan shows the client the same
// parameters and result (rewrite.SameInterface) after a migration-state
// change (stmtreplan.go) or a key rotation (reseal.go) is prepared
// upstream again under a new name at its next Bind (reprepare), and
// swapped into the client's view when that Bind is sent
// (commitReprepare). The old upstream statement is closed, or once its
// portals are gone (closeOrphans). A Parse the server skipped after an
// error goes again before the next Bind or Describe of its statement, or
// at rest behind a Sync of pgveil's own (reprepareOne, reprepareAgain).

// closeOrphans closes the statements reprepare left open for their
// portals, once those portals are gone.
func (s *session) closeOrphans() {
	keep := s.orphans[:0]
	for _, st := range s.orphans {
		if s.t.portalFrom(st) {
			keep = append(keep, st)
			continue
		}
		s.closeUpstream(st)
	}
	clear(s.orphans[len(keep):])
	s.orphans = keep
}

// errNoReprepare: the statement cannot be prepared again transparently.
var errNoReprepare = errors.New("not prepared again")

// reprepare plans to prepare upstream, under a new name, p, the new plan
// of the client's statement stmt, which shows the client what stmt's
// showed (rewrite.SameInterface): a table whose migration started or
// ended changes the text pgveil sends for a lookup (migration mode
// compares the plaintext of rows not yet backfilled), not its parameters
// or result. It writes nothing: the Bind that found stmt may yet wait (an
// event loop runs it again) or be refused; commitReprepare does the rest
// when the Bind is sent.
func (s *session) reprepare(stmt *Statement, p *rewrite.Plan, cat uint64) (*Statement, error) {
	st := p.Stmts[0]
	if st.Lookup != nil && st.ClientParams == 0 {
		// A statement without parameters seals its literals under the
		// tenant looked up when it is prepared.
		return nil, errNoReprepare
	}
	sql := stmt.SQL
	text := sql
	var sealed []sealedKey
	if p.Rewritten {
		err := s.sameTenants(p, sql)
		if err == nil {
			text, sealed, err = s.renderSealed(p, sql)
		}
		if err != nil {
			return nil, err
		}
	}
	ns := &Statement{Name: stmt.Name, ServerName: s.serverStmtName(), Plan: st, SQL: sql, ParamOIDs: stmt.ParamOIDs, catGen: cat, replaces: stmt, sealed: sealed}
	if text != sql {
		ns.Sent, ns.sentBackslash = text, s.backslash.Load()
	}
	return ns, nil
}

// commitReprepare sends the Parse of ns, a statement reprepare planned,
// before the Bind at hand, and puts ns in the place of the statement it
// replaces in the client's view, so this Bind and every later one run it.
// The client sees nothing of it: its ParseComplete is dropped, and an
// error answers the Bind at hand. The old upstream statement is closed
// unless a portal made from it may still be open (the server would close
// that portal too); it is then closed once the portal is gone
// (closeOrphans).
func (s *session) commitReprepare(ns *Statement) {
	old := ns.replaces
	ns.replaces = nil
	if old == s.unnamedLost {
		s.unnamedLost = nil
	}
	ghost := s.t.ghostOf(ns.Name, old)
	if ghost {
		// The client closed the statement (Close, DEALLOCATE, DISCARD
		// ALL) in a message the server has not answered, or skipped: the
		// old statement upstream says which. Described first, for pgveil's
		// eyes, it makes the server answer the Bind with 26000 (the rest
		// skipped) when the client's close ran (review 18a).
		s.sw.Write(appendDescribeOrClose(s.scratch[:0], 'D', 'S', old.ServerName))
		s.t.push(pending{kind: pendDescribeStmt, probe: true, stmt: old})
	}
	s.parseUpstream(ns, false)
	if ghost {
		s.t.reghost(ns.Name, ns) // still closed, unless the server says otherwise
	} else {
		s.t.defineStatement([]byte(ns.Name), ns)
	}
	if s.t.portalFrom(old) {
		s.orphans = append(s.orphans, old)
	} else {
		s.closeUpstream(old)
	}
	s.inc(s.srv.metrics.stmtReprepared)
	s.log.Debug("prepared statement planned again and prepared upstream anew", zap.String("statement", ns.Name))
}

// parseUpstream prepares pgveil's statement st upstream; the client sees
// its error only, unless quiet (then it sees nothing of it).
func (s *session) parseUpstream(st *Statement, quiet bool) {
	text := st.SQL
	if st.Sent != "" {
		text = st.Sent
	}
	s.sw.Write(appendParse(s.scratch[:0], st.ServerName, text, s.serverParamOIDs(st)))
	s.t.push(pending{kind: pendParse, injected: !quiet, suppress: quiet, stmt: st})
	st.parseSeq = s.t.lastSeq()
}

// preparedAgainIfUnsettled is st, or, when pgveil's Parse of st (a
// statement prepared anew) is still unanswered in an earlier pipeline
// the server may skip it in (an error there), a copy of st to prepare
// upstream under a new name of its own (commitReprepare): a Bind or
// Describe of st in the client's later pipeline must not depend on it
// (review 18a: 26000 where PostgreSQL runs the statement).
//
// The client's unnamed statement after an extended-protocol DEALLOCATE
// ALL or DISCARD ALL (unnamedLost) is prepared anew too: PostgreSQL
// keeps it, the server dropped pgveil's upstream one (or, when the close
// failed, still has it: commitReprepare closes it).
func (s *session) preparedAgainIfUnsettled(st *Statement) *Statement {
	if st == passthroughStmt || st.replaces != nil {
		return st
	}
	if st != s.unnamedLost && !s.t.parseUnsettled(st.parseSeq) {
		return st
	}
	cp := *st
	cp.ServerName = s.serverStmtName()
	cp.replaces = st
	cp.parseSeq = 0
	return &cp
}

// reprepareOne sends again the Parse of st, a statement prepared anew,
// when the server skipped it after an error: before a Bind or Describe of
// st, whose answer its error then is (25P02 in an aborted transaction, as
// PostgreSQL answers the Bind).
func (s *session) reprepareOne(st *Statement) {
	if f := s.t.takeFailedReprepare(st); f != nil && !s.t.ghostOf(f.Name, st) {
		// (A ghost's is not: the client closed the statement, and the
		// server's 26000 for the missing one is PostgreSQL's answer.)
		s.parseUpstream(f, false)
	}
}

// reprepareAgain sends again the Parses of statements prepared anew that
// the server skipped after an error, while the client's view still has
// them, when the server is at rest outside a transaction block: quietly,
// and followed by a Sync of pgveil's own, so that an error of theirs
// neither reaches the client nor makes the server skip the client's next
// message (a simple Query the server would discard until a Sync: the
// session hung; a ROLLBACK of an aborted block refused with 25P02, the
// block never ended; review 18a). Otherwise they wait for the next Bind
// or Describe of their statement (reprepareOne) or the next rest.
func (s *session) reprepareAgain() {
	if !s.t.failedReprepares.pending() {
		return
	}
	if ok, status := s.t.atRest(); !ok || status != 'I' {
		return
	}
	sent := false
	for _, st := range s.t.takeFailedReprepares() {
		if s.t.statement([]byte(st.Name)) == st {
			s.parseUpstream(st, true)
			sent = true
		}
	}
	if sent {
		s.sw.Write([]byte{'S', 0, 0, 0, 4})
		s.t.push(pending{kind: pendSync, suppress: true})
	}
}
