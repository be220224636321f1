package proxy

// Sessions with encryption on an event loop.
//
// A session of a config with tables starts on an event loop like any
// plain-TCP session, and stays there while everything it sends passes
// through as it came: statements that name no configured table and change
// nothing pgveil follows (the search_path, prepared statements it tracks,
// the catalog). The loop plans each Query and Parse (a cache hit, or the
// pre-check alone for text without a configured table's name); the first
// message that needs more (a rewrite, a decryption, a refusal, a catalog
// refresh or a search_path read, which may wait on the network) hands the
// session back to its goroutine at that message's boundary, and the
// goroutine relay goes on from there for the rest of the session
// (relayOnLoop, resumeOnGoroutines).

// loopPassthrough reports whether a loop may send on a Query or Parse
// (typ, body) of an encryption session unchanged; if so the message is
// planned, counted and tracked as the goroutine relay's handleQuery and
// handleParse would for a statement they pass through. If not, nothing
// was recorded: the goroutine relay handles the message from the start.
func (s *session) loopPassthrough(typ byte, body []byte) bool {
	if s.copyPlan != nil || s.pathUnknown || s.ddlUnsettled || len(s.effStmts) > 0 || len(s.effPortals) > 0 || reservedInMessage(typ, body) != nil {
		return false
	}
	if at := s.ddlDone.Load(); at != 0 && at > s.ddlSeen {
		return false // a catalog refresh is due
	}
	var name, sql []byte
	switch typ {
	case 'Q':
		if len(body) == 0 || body[len(body)-1] != 0 {
			return false // malformed: the goroutine relay says so
		}
		sql = body[:len(body)-1]
	case 'P':
		var off int
		var ok bool
		if name, off, ok = cstringBytes(body, 0); !ok {
			return false
		}
		if sql, _, ok = cstringBytes(body, off); !ok {
			return false
		}
	default:
		return false
	}
	text := string(sql)
	if typ == 'P' && s.eng.planner.MayReference(text) {
		return false // the goroutine relay remembers it (replanOnPathChange)
	}
	p, err := s.planNow(text)
	if err != nil || planNeedsWork(p) {
		return false
	}
	for _, st := range p.Stmts {
		e := stmtEffects(st)
		// A prepared statement's effects happen at each Execute, which the
		// loop does not follow (effStmts); a Query's, now.
		if typ == 'P' && e != 0 || e&effPath != 0 || e&effTx != 0 && s.pathStale || st.Deallocate != "" {
			return false
		}
	}
	s.srv.metrics.stmtPassthrough.Inc()
	if typ == 'Q' {
		s.t.push(pending{kind: pendQuery})
		return true
	}
	s.t.parsed(name, passthroughStmt)
	return true
}
