package proxy

import (
	"slices"

	"github.com/pgveil/pgveil/rewrite"
)

// SQL cursors. DECLARE returns no rows; each FETCH from the cursor returns
// rows of the DECLARE's query, with the encrypted columns as the database
// holds them. The planner gives a DECLARE whose rows carry encrypted
// columns the result map of its query (rewrite.Stmt.Cursor, hidden tenant
// fields included), and the session keeps it by cursor name: a FETCH from
// that cursor is mapped with it, exactly as the query's own result would
// be. psycopg2's named cursors (Django's iterator(), SQLAlchemy's
// stream_results / yield_per) and psycopg 3's server-side cursors read so.
//
// A cursor is recorded when the server completes its DECLARE (the
// statement's CommandComplete, server side), not when pgveil sends it: a
// DECLARE the server rejects (the name is taken) leaves the cursor of that
// name as it was, and a prepared DECLARE is recorded each time it runs. A
// FETCH sent before its DECLARE's answer (pipelined) is therefore not
// mapped: the client gets ciphertext, never another column's plaintext. A
// cursor is forgotten at CLOSE, DISCARD ALL, a later DECLARE of the name
// over no encrypted column, and, unless declared WITH HOLD, at the first
// ReadyForQuery with status idle after it was declared (the end of its
// transaction). A FETCH from a cursor the session does not know (one a
// function opened) passes as it is. Every DECLARE, FETCH and CLOSE is
// parsed (rewrite's pre-check sends them to the parser).

// cursorView is a cursor the server declared: its result map and the seq
// of the message that declared it.
type cursorView struct {
	plan *rewrite.Cursor
	seq  uint64
}

// maxIdleCursors bounds the cursor view before a sweep of dead cursors.
const maxIdleCursors = 32

// declareCursor records a DECLARE the server completed, answering the
// message seq (nil c: a cursor over no encrypted column, which the
// session forgets). Server side.
func (t *tracker) declareCursor(name string, c *rewrite.Cursor, seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c == nil {
		delete(t.cursors, name)
		return
	}
	if len(t.cursors) >= maxIdleCursors {
		for k, old := range t.cursors {
			if !old.plan.Hold && old.seq <= t.idleSeq {
				delete(t.cursors, k)
			}
		}
	}
	if t.cursors == nil {
		t.cursors = map[string]cursorView{}
	}
	t.cursors[name] = cursorView{plan: c, seq: seq}
}

// closeCursor forgets a cursor ("*": all of them) as its CLOSE is sent.
// Client side.
func (t *tracker) closeCursor(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if name == "*" {
		clear(t.cursors)
		return
	}
	delete(t.cursors, name)
}

// cursor returns the result map of a live cursor the session declared, or
// nil. Client side.
func (t *tracker) cursor(name string) *rewrite.Cursor {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.cursors[name]
	if !ok {
		return nil
	}
	if !c.plan.Hold && c.seq <= t.idleSeq { // its transaction has ended
		delete(t.cursors, name)
		return nil
	}
	return c.plan
}

// cursorNames lists the cursors in the view.
func (t *tracker) cursorNames() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.cursors))
	for name := range t.cursors {
		names = append(names, name)
	}
	return names
}

// cursorEffect records what sending st does to the session's cursors
// (a DECLARE counts once the server completes it: declaredBy).
func (s *session) cursorEffect(st *rewrite.Stmt) {
	s.noteCursorEffects(st, true)
	switch {
	case st.CloseCursor != "":
		s.t.closeCursor(st.CloseCursor)
	case st.Deallocate == "*" && st.SearchPathReset: // DISCARD ALL
		s.t.closeCursor("*")
	}
}

// noteCursorEffects remembers the effects of a DECLARE's query, which
// take place at each FETCH or MOVE of the cursor (its query runs then:
// review 20f, DECLARE c CURSOR FOR SELECT f(), secret … with f setting
// the DateStyle, then FETCH, read the rows in the order last reported and
// opened a value moved from another tenant's row). sent: st is sent
// (a Query), not only prepared, and may also forget. Client side.
func (s *session) noteCursorEffects(st *rewrite.Stmt, sent bool) {
	switch {
	case st.Declares != "":
		if e := s.sessionEffects(st); e != 0 {
			if s.cursorEff == nil {
				s.cursorEff = map[string]uint8{}
			}
			s.cursorEff[st.Declares] |= e
			if sent {
				s.cursorEff[st.Declares] = e
			}
		} else if sent {
			delete(s.cursorEff, st.Declares)
		}
	case !sent:
	case st.CloseCursor == "*" || st.Deallocate == "*" && st.SearchPathReset:
		clear(s.cursorEff)
	case st.CloseCursor != "":
		delete(s.cursorEff, st.CloseCursor)
	}
}

// noteFetchEffects gives a portal bound to a FETCH or MOVE the effects of
// its cursor's query as it is known at the Bind. Client side.
func (s *session) noteFetchEffects(portal []byte, stmt *Statement) {
	if len(s.cursorEff) == 0 || stmt == nil || stmt.Plan == nil || stmt.Plan.FetchCursor == "" {
		return
	}
	if e := s.cursorEff[stmt.Plan.FetchCursor]; e != 0 {
		if s.effPortals == nil {
			s.effPortals = map[string]uint8{}
		}
		s.effPortals[string(portal)] |= e
	}
}

// declaredBy records the cursor of a DECLARE the server has just
// completed (done, answering the message seq). Server side.
func (s *session) declaredBy(done *rewrite.Stmt, seq uint64) {
	if done != nil && done.Declares != "" {
		s.t.declareCursor(done.Declares, done.Cursor, seq)
	}
}

// fetchStatement is a prepared FETCH as it runs now: mapped by the cursor
// of that name the session knows at Bind, which need not be the one it
// knew at Parse (a statement cache keeps "FETCH 100 FROM c" across
// transactions that each declare their own c).
func (s *session) fetchStatement(stmt *Statement) *Statement {
	var outs []rewrite.Output
	byOrigin := false
	if c := s.t.cursor(stmt.Plan.Fetch); c != nil {
		outs, byOrigin = c.Outputs, c.OutputsByOrigin
	}
	if byOrigin == stmt.Plan.OutputsByOrigin && sameOutputs(outs, stmt.Plan.Outputs) {
		return stmt
	}
	st := *stmt.Plan
	st.Outputs, st.OutputsByOrigin = outs, byOrigin
	cp := *stmt
	cp.Plan = &st
	return &cp
}

// sameOutputs reports whether a and b are the same result map (plans
// share them, so identity is enough).
func sameOutputs(a, b []rewrite.Output) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// withCursors gives each FETCH of p the result map of its cursor: declared
// earlier in p itself, or before. Plans are shared between sessions, so p
// is copied when a FETCH changes.
func (s *session) withCursors(p *rewrite.Plan) *rewrite.Plan {
	out := p
	var local map[string]*rewrite.Cursor // declared or closed earlier in p
	for i, st := range p.Stmts {
		switch {
		case st.Declares != "" || st.CloseCursor != "":
			if local == nil {
				local = map[string]*rewrite.Cursor{}
			}
			if st.CloseCursor == "*" {
				clear(local)
				for _, name := range s.t.cursorNames() {
					local[name] = nil
				}
			} else if st.Declares != "" {
				local[st.Declares] = st.Cursor
			} else {
				local[st.CloseCursor] = nil
			}
			continue
		case st.Fetch == "":
			continue
		}
		c, seen := local[st.Fetch]
		if !seen {
			c = s.t.cursor(st.Fetch)
		}
		if c == nil {
			continue
		}
		if out == p {
			cp := *p
			cp.Stmts = slices.Clone(p.Stmts)
			out = &cp
		}
		f := *st
		f.Outputs, f.OutputsByOrigin = c.Outputs, c.OutputsByOrigin
		out.Stmts[i] = &f
	}
	return out
}
