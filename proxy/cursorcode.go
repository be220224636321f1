package proxy

import (
	"fmt"

	"github.com/pgveil/pgveil/rewrite"
)

// The code a cursor's query calls runs at each FETCH or MOVE, planned
// then: a DECLARE locks the relations its query reads, not those of the
// functions it calls. Declared in a transaction block before a view swap
// and fetched from after it, a function reaching the table at a later row
// wrote the plaintext through the view (review 21i HIGH). Each DECLARE
// sent is recorded with the catalog generation it was checked under; a
// FETCH or MOVE of it after a catalog change plans the DECLARE again, and
// is refused (0A000) when the planner refuses it now.

// cursorCode is the record of a DECLARE: its text (the statement as the
// client sent it), the catalog generation, the seq of the message that
// sent it (dead once a ReadyForQuery 'I' answered a later one: its
// transaction ended, and a WITH HOLD cursor's rows were stored then).
type cursorCode struct {
	text string
	cat  uint64
	seq  uint64
}

// noteCursorCode records the DECLAREs of stmts, about to be sent, and forgets
// the cursors its CLOSEs and DISCARD ALL close. Client side.
func (s *session) noteCursorCode(stmts []*rewrite.Stmt) {
	for _, st := range stmts {
		switch {
		case st.Declares != "":
			if s.cursorCode == nil {
				s.cursorCode = map[string]cursorCode{}
			}
			if len(s.cursorCode) >= maxIdleCursors {
				idle := s.t.idle()
				for k, old := range s.cursorCode {
					if old.seq <= idle {
						delete(s.cursorCode, k)
					}
				}
			}
			s.cursorCode[st.Declares] = cursorCode{text: st.Original, cat: s.eng.planner.Generation(), seq: s.t.lastSeq() + 1}
		case len(s.cursorCode) == 0:
		case st.CloseCursor == "*" || st.Deallocate == "*" && st.SearchPathReset:
			clear(s.cursorCode)
		case st.CloseCursor != "":
			delete(s.cursorCode, st.CloseCursor)
		}
	}
}

// checkCursorCode checks each FETCH or MOVE of stmts of a cursor declared
// under an older catalog: its DECLARE is planned again, and a refusal
// returned when the planner refuses it now.
func (s *session) checkCursorCode(stmts []*rewrite.Stmt) (*pgError, error) {
	gen := s.eng.planner.Generation()
	for _, st := range stmts {
		if st.FetchCursor == "" {
			continue
		}
		cc, ok := s.cursorCode[st.FetchCursor]
		if ok && cc.cat == gen {
			continue
		}
		if ok && cc.seq <= s.t.idle() {
			delete(s.cursorCode, st.FetchCursor) // ended with its transaction
			ok = false
		}
		if !ok {
			// A cursor pgveil saw no DECLARE of in this transaction: a
			// function opened it (OPEN … FOR, a refcursor returned), its
			// query checked with the call. Refused when the catalog
			// changed since the transaction's first statement (review 21i
			// HIGH: opened before a view swap, fetched from after it).
			// No code naming a view over an encrypted column, none to
			// fear: refused only when the catalog has some.
			if txGen, idle := s.t.txGeneration(); !idle && txGen != gen && s.t.genOf != nil && s.guardedCode() {
				return &pgError{Severity: "ERROR", Code: "0A000",
					Message: fmt.Sprintf("pgveil cannot run cursor %q: pgveil did not see it declared, and the catalog changed since this transaction began", st.FetchCursor),
					Hint:    "open the cursor again in a new transaction"}, nil
			}
			continue
		}
		if err := s.syncSearchPathFor(cc.text); err != nil {
			return nil, err
		}
		defer func(g uint64) { s.planGen = g }(s.planGen) // the caller's plan's
		if _, err := s.plan(cc.text); offLoop(err) {
			return nil, err
		} else if err != nil {
			return &pgError{Severity: "ERROR", Code: "0A000",
				Message: fmt.Sprintf("pgveil cannot run cursor %q: the catalog changed since its DECLARE, and its query would not be accepted now: %v", st.FetchCursor, refusalFrom(err).Message),
				Hint:    "close the cursor and declare it again"}, nil
		}
		cc.cat = gen
		s.cursorCode[st.FetchCursor] = cc
	}
	return nil, nil
}

// cursorCodeAtBind checks a Bind of stmt (the client's statement name)
// when it is a FETCH or MOVE, and records it when it is a DECLARE.
func (s *session) cursorCodeAtBind(name []byte, stmt *Statement) (*pgError, error) {
	var one [1]*rewrite.Stmt
	stmts := one[:0]
	if stmt != passthroughStmt && stmt != nil {
		if st := stmt.Plan; st != nil && (st.FetchCursor != "" || st.Declares != "") {
			stmts = append(stmts, st)
		}
	} else if pt, ok := s.ptStmts[string(name)]; ok && pt.sql != sentinelText &&
		(leadingWord(pt.sql, "fetch") || leadingWord(pt.sql, "move") || leadingWord(pt.sql, "declare")) {
		p, err := s.plan(pt.sql)
		if offLoop(err) {
			return nil, err
		}
		if err == nil {
			stmts = p.Stmts
		}
	}
	if len(stmts) == 0 {
		return nil, nil
	}
	if pe, err := s.checkCursorCode(stmts); pe != nil || err != nil {
		return pe, err
	}
	s.noteCursorCode(stmts)
	return nil, nil
}

// guardedCode reports whether the catalog has code that names a view over
// an encrypted column (rewrite.Catalog.GuardedFunctions, GuardedRelations),
// or may: no catalog read yet.
func (s *session) guardedCode() bool {
	c := s.eng.catalog()
	return c == nil || c.rw == nil || len(c.rw.GuardedFunctions)+len(c.rw.GuardedRelations) > 0
}
