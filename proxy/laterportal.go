package proxy

import (
	"fmt"
	"strings"

	"github.com/pgveil/pgveil/rewrite"
)

// Portals whose statements are planned only when they run. PostgreSQL's
// Bind of a statement locks the relations its plan reads, so no view swap
// commits between a portal's Bind and its Execute; but a utility portal
// whose work is planned at its Execute takes no such lock: EXECUTE ins(…)
// (also in EXPLAIN ANALYZE and CREATE TABLE … AS), a DO block. Bound in a
// transaction block before a view swap and executed after it, ins ran
// over the view, and the plaintext in its text or arguments went into the
// encrypted column (review 21g HIGH). Such a portal is checked again at
// its Execute when the catalog changed since its Bind.

// laterPortal is the record of such a portal: the texts its statement
// may run (the server's statement may be one of several: ptStmt.earlier),
// the catalog generation they were checked under at the Bind, and whether
// the statement is one pgveil rewrote (its plan needs pgveil by design).
type laterPortal struct {
	texts     []string
	cat       uint64
	rewritten bool
	// code marks the record of any other portal (review 21i HIGH): its
	// Bind locks the relations its plan reads, but not those of the code
	// it calls at its Execute (a PL/pgSQL function or procedure, a
	// trigger, a DO block after a ';'), planned then. Checked at each
	// Execute after a catalog change, not only the first (a row limit:
	// the code may reach the table only at a later row).
	code bool
	// seq is the Bind's: the record is dead once a ReadyForQuery 'I'
	// answered a later message (the portal ended with its transaction).
	seq uint64
}

// runsAtExecute reports whether sql, the text of one statement (a Parse
// holds one), may run statements the server plans only at the portal's
// Execute: an EXECUTE, a DO block. Only a leading DO counts: ON CONFLICT
// DO NOTHING, common in plain sessions, is no DO block (review 21g: no
// record, and no catalog check at each Execute, for those).
func runsAtExecute(sql string) bool {
	return hasWordFold(sql, "execute") || leadingDo(sql)
}

// leadingDo reports whether sql begins with the word DO, after blanks and
// comments.
func leadingDo(sql string) bool { return leadingWord(sql, "do") }

// leadingWord reports whether sql begins with word (lower case), after
// blanks, comments and empty statements.
func leadingWord(sql, word string) bool {
	for {
		// Empty statements too: ";DO $$…$$" is one statement, a DO block
		// (review 21i HIGH).
		sql = strings.TrimLeft(sql, " \t\r\n\f\v;")
		switch {
		case strings.HasPrefix(sql, "--"):
			i := strings.IndexByte(sql, '\n')
			if i < 0 {
				return false
			}
			sql = sql[i+1:]
		case strings.HasPrefix(sql, "/*"):
			// Nested comments: PostgreSQL's /* /* */ */.
			depth, i := 0, 0
			for i < len(sql) {
				if strings.HasPrefix(sql[i:], "/*") {
					depth++
					i += 2
				} else if strings.HasPrefix(sql[i:], "*/") {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
			if depth != 0 {
				return false
			}
			sql = sql[i:]
		default:
			n := len(word)
			return len(sql) >= n && strings.EqualFold(sql[:n], word) && (len(sql) == n || !identByte(sql[n]))
		}
	}
}

// noteLaterPortal records portal, bound now to the statement name (stmt
// its entry in the view), when its statement runs statements planned at
// its Execute; it forgets the portal's record otherwise.
func (s *session) noteLaterPortal(portal, name []byte, stmt *Statement) {
	var lp laterPortal
	// The portal's last record's texts are reused: a Bind of the same
	// portal (the unnamed one, mostly) allocates nothing.
	reuse := s.laterPortals[string(portal)].texts[:0]
	if stmt != passthroughStmt && stmt != nil {
		if k := stmt.Plan; k != nil && (k.Kind == rewrite.KindDDL || k.Kind == rewrite.KindExplain || k.Kind == rewrite.KindOther) && runsAtExecute(stmt.SQL) {
			lp = laterPortal{texts: append(reuse, stmt.SQL), rewritten: true}
		} else {
			lp = laterPortal{texts: append(reuse, stmt.SQL), rewritten: true, code: true}
		}
	} else {
		texts := reuse
		later := false
		if pt, ok := s.ptStmts[string(name)]; ok && pt.atExecute {
			texts = append(append(texts, pt.sql), pt.earlier...)
			later = true
		}
		if len(s.ptHeld) > 0 && len(name) > 0 {
			if pt, ok := s.ptHeld[string(name)]; ok && pt.atExecute {
				texts = append(append(texts, pt.sql), pt.earlier...)
				later = true
			}
		}
		if len(name) == 0 && len(s.srvUnnamed) > 0 {
			for _, t := range s.srvUnnamed {
				if runsAtExecute(t) {
					later = true
				}
			}
			if later {
				texts = append(texts, s.srvUnnamed...)
			}
		}
		if later {
			lp.texts = texts
		} else {
			// Any other statement may call code (review 21i HIGH): the
			// texts the server's statement may hold, checked at each
			// Execute after a catalog change.
			if pt, ok := s.ptStmts[string(name)]; ok {
				texts = append(append(texts, pt.sql), pt.earlier...)
			}
			if len(s.ptHeld) > 0 && len(name) > 0 {
				if pt, ok := s.ptHeld[string(name)]; ok {
					texts = append(append(texts, pt.sql), pt.earlier...)
				}
			}
			if len(name) == 0 {
				texts = append(texts, s.srvUnnamed...)
			}
			if len(texts) > 0 {
				lp = laterPortal{texts: texts, code: true}
			}
		}
	}
	if lp.texts == nil {
		if len(s.laterPortals) > 0 {
			delete(s.laterPortals, string(portal))
		}
		return
	}
	lp.cat = s.eng.planner.Generation()
	lp.seq = s.t.lastSeq() + 1 // the Bind, pushed next
	if s.laterPortals == nil {
		s.laterPortals = map[string]laterPortal{}
	}
	if len(s.laterPortals) >= maxIdlePortals {
		// Records of portals whose transaction ended (review 21i HIGH: a
		// pooler session binding distinct portal names kept them all).
		idle := s.t.idle()
		for k, old := range s.laterPortals {
			if old.seq <= idle {
				delete(s.laterPortals, k)
			}
		}
	}
	s.laterPortals[string(portal)] = lp
}

// laterPortalDone forgets the record of portal after its Execute was
// sent: a utility portal runs whole at its first Execute (the server
// stores its rows), a later Execute only reads them; any other portal's
// record stays for its next Execute.
func (s *session) laterPortalDone(portal []byte) {
	if lp, ok := s.laterPortals[string(portal)]; ok && !lp.code {
		delete(s.laterPortals, string(portal))
	}
}

// recheckLaterPortal checks the Execute of portal, about to be sent, when
// its record (noteLaterPortal) was checked under an older catalog: each
// text is planned now, and what it executes checked (replanExecuted). A
// refusal is returned when one needs pgveil. Nothing is changed before a
// wait (an event loop runs the message again from the start).
func (s *session) recheckLaterPortal(portal []byte) (*pgError, error) {
	lp, ok := s.laterPortals[string(portal)]
	if !ok {
		return nil, nil
	}
	if err := s.catalogCurrent(lp.texts[0]); err != nil {
		return nil, err
	}
	gen := s.eng.planner.Generation()
	if lp.cat == gen {
		return nil, nil
	}
	if lp.seq <= s.t.idle() {
		// The portal ended with its transaction: the server answers
		// 34000, as PostgreSQL does (review 21i).
		delete(s.laterPortals, string(portal))
		return nil, nil
	}
	refuse := &pgError{Severity: "ERROR", Code: "0A000",
		Message: fmt.Sprintf("pgveil cannot run portal %q: the catalog changed since its Bind, and the statements it runs now name a table pgveil encrypts", portal),
		Hint:    "bind the statement again"}
	for _, sql := range lp.texts {
		if sql == sentinelText {
			return refuse, nil
		}
		if lp.code && leadingWord(sql, "prepare") {
			// A SQL PREPARE runs no code: what it prepares is recorded
			// (notePortalPrepares) and checked where it runs.
			continue
		}
		if lp.rewritten && lp.code {
			// Its Bind locked what its plan reads: only the code it calls
			// may have changed, and a statement calling code that names
			// a view over an encrypted column is refused by the planner.
			if err := s.syncSearchPathFor(sql); err != nil {
				return nil, err
			}
			p, err := s.plan(sql)
			if offLoop(err) {
				return nil, err
			} else if err != nil {
				return refuse, nil
			}
			if pe, err := s.checkCursorCode(p.Stmts); pe != nil || err != nil {
				return pe, err
			}
			continue
		}
		if !lp.rewritten {
			if err := s.syncSearchPathFor(sql); err != nil {
				return nil, err
			}
			p, err := s.plan(sql)
			if offLoop(err) {
				return nil, err
			}
			if err != nil || planNeedsWork(p) {
				return refuse, nil
			}
			if pe, err := s.checkCursorCode(p.Stmts); pe != nil || err != nil {
				return pe, err
			}
		}
		if pe, err := s.replanExecuted(sql); pe != nil || err != nil {
			return pe, err
		}
	}
	lp.cat = gen
	s.laterPortals[string(portal)] = lp
	return nil, nil
}
