package proxy

import (
	"slices"

	"github.com/pgveil/pgveil/rewrite"
)

// SQL cursors. DECLARE returns no rows; each FETCH from the cursor returns
// rows of the DECLARE's query, with the encrypted columns as the database
// holds them. The planner gives a DECLARE whose rows carry encrypted
// columns the result map of its query (rewrite.Stmt.Cursor, hidden tenant
// fields included), and the session keeps it by cursor name in the
// client's view: a FETCH from that cursor is mapped with it, exactly as
// the query's own result would be. psycopg2's named cursors (Django's
// iterator(), SQLAlchemy's stream_results / yield_per) read so.
//
// A cursor lives until CLOSE, DISCARD ALL, or the end of its transaction
// (a ReadyForQuery with status 'I' after the DECLARE was sent), unless
// declared WITH HOLD. A FETCH from a cursor the session does not know (one
// a function opened, or declared over no encrypted column) passes as it
// is. Every DECLARE, FETCH and CLOSE is parsed (rewrite's pre-check sends
// them to the parser), so a DECLARE over other columns replaces a stale
// entry of the same name.

// cursorView is a cursor in the client's view: its result map and the seq
// of the message that declared it.
type cursorView struct {
	plan *rewrite.Cursor
	seq  uint64
}

// maxIdleCursors bounds the cursor view before a sweep of dead cursors.
const maxIdleCursors = 32

// declareCursor records a DECLARE about to be sent (nil c: a cursor over
// no encrypted column, which the session forgets). Client goroutine.
func (t *tracker) declareCursor(name string, c *rewrite.Cursor) {
	if c == nil {
		delete(t.cursors, name)
		return
	}
	t.mu.Lock()
	seq, idle := t.seq+1, t.idleSeq // the seq push will give the DECLARE's message
	t.mu.Unlock()
	if len(t.cursors) >= maxIdleCursors {
		for k, old := range t.cursors {
			if !old.plan.Hold && old.seq <= idle {
				delete(t.cursors, k)
			}
		}
	}
	if t.cursors == nil {
		t.cursors = map[string]cursorView{}
	}
	t.cursors[name] = cursorView{plan: c, seq: seq}
}

// closeCursor forgets a cursor ("*": all of them). Client goroutine.
func (t *tracker) closeCursor(name string) {
	if name == "*" {
		clear(t.cursors)
		return
	}
	delete(t.cursors, name)
}

// cursor returns the result map of a live cursor the session declared, or
// nil. Client goroutine.
func (t *tracker) cursor(name string) *rewrite.Cursor {
	c, ok := t.cursors[name]
	if !ok {
		return nil
	}
	if !c.plan.Hold {
		t.mu.Lock()
		idle := t.idleSeq
		t.mu.Unlock()
		if c.seq <= idle { // its transaction has ended
			delete(t.cursors, name)
			return nil
		}
	}
	return c.plan
}

// cursorEffect records what st does to the session's cursors.
func (s *session) cursorEffect(st *rewrite.Stmt) {
	switch {
	case st.Declares != "":
		s.t.declareCursor(st.Declares, st.Cursor)
	case st.CloseCursor != "":
		s.t.closeCursor(st.CloseCursor)
	case st.Deallocate == "*" && st.SearchPathReset: // DISCARD ALL
		s.t.closeCursor("*")
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
				for name := range s.t.cursors {
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
