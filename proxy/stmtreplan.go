package proxy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pgveil/pgveil/rewrite"
)

// A prepared statement the server planned under one search_path is planned
// again by the server when the path changes (its names resolve anew);
// pgveil must do the same, or a statement it passed through because a name
// meant an unconfigured table would write plaintext into the configured
// table the name means now. The server does the same when a relation the
// statement uses changes: a table dropped and replaced by a view over an
// encrypted column of the same name, which pgveil knows from its next
// catalog snapshot. pgveil remembers the text of every prepared statement
// it passed through, with the path generation and the planner's catalog
// generation it was planned under, and plans it again at a Bind under a
// newer one. If the statement now needs pgveil, the Bind is refused: the
// client must prepare it again. A statement pgveil rewrote is planned
// again under a newer catalog too (replanOnCatalogChange), and refused
// unless the plan is the same.
//
// A statement pgveil prepared with schema-qualified names (pinSchema in
// rewrite/resolve.go) keeps them on the server whatever the path; at a
// Bind under a newer path it is planned again too, and refused unless the
// names still resolve as they did, so it never runs on other tables than
// the client's text now means.

// ptStmt is a pass-through prepared statement.
type ptStmt struct {
	sql    string
	gen    uint64 // pathGen when it was planned
	cat    uint64 // the planner's Generation when it was planned
	pinned string // the text prepared upstream, when its names were pinned
	// earlier are texts of earlier Parses of the name the server may still
	// hold (earlierTexts).
	earlier []string
	// closedSeq is the seq of the message that closed the name (Close,
	// DEALLOCATE, DISCARD ALL) while the server has not confirmed it
	// (markClosed); 0 when open.
	closedSeq uint64
	// parseSeq is the seq of the unnamed statement's Parse (the unnamed
	// statement only: noteUnnamedParse).
	parseSeq uint64
	// seq is the seq of the Parse that sent sql, earlierSeq those of the
	// texts in earlier (a named statement only; 0: sent by more than one,
	// kept until closed): a Parse the server refused or skipped takes its
	// text out (applyFailedParses; review 20a: past maxEarlier such texts
	// the name was refused for good).
	seq        uint64
	earlierSeq []uint64
	// over counts the Parses whose texts went past maxEarlier (-1: one
	// of a text sent by an unknown Parse), overMax the last one's seq.
	over             int
	overMin, overMax uint64
	// earlierUntil, when not 0, is the seq of a close of the name sent
	// after every text in earlier (and before this Parse): once the
	// server confirms it, they are gone (applyClosed; review 19b).
	earlierUntil uint64
	// stale marks texts in earlier not planned under gen and cat (they
	// came from a record planned under older ones, or from srvUnnamed):
	// the next Bind plans every text again (review 20a HIGH: a Parse of
	// the name the server refused, 42P05, after a view swap took the
	// kept text for one planned under the new catalog, and a Bind ran it
	// with the client's plaintext).
	stale bool
	// executes marks a record one of whose texts runs EXECUTE (or code
	// that does): the statements it executes are checked at each Bind,
	// not only at the Parse (review 20e HIGH: parsed before a view swap,
	// bound after it, EXECUTE ins(…) wrote plaintext through the view).
	executes bool
	// earlierNotes marks an unnamed record whose earlier texts may have
	// effects, closes or SQL PREPAREs (notePortalUnsettled).
	earlierNotes bool
	// atExecute marks a record one of whose texts the server plans at
	// each Execute of a portal (runsAtExecute; laterportal.go), set at
	// the Parse: no scan of the texts at each Bind.
	atExecute bool
	// held are the notes (effects, SQL PREPAREs) of a record kept in
	// ptHeld: what the server's statement runs (notePortalHeld).
	held *stmtNotes
}

// Closing a statement. A Close, DEALLOCATE or DISCARD ALL the server does
// not run (skipped after an error earlier in the pipeline or string,
// refused in an aborted or any transaction block) leaves the statement
// upstream, and PostgreSQL plans it again at its next Bind or EXECUTE. So
// pgveil keeps its record of a statement it passed through (ptStmts) or
// an SQL PREPARE (sqlPrepared) until the server confirms the close
// (tracker.closed, applyClosed), and plans it again at a Bind or EXECUTE
// under a newer path or catalog meanwhile. Review 19: the records went
// at the close, and a statement whose close failed, bound after its
// table was replaced by a view over an encrypted column, wrote the
// client's plaintext there.

// markClosed records that the message pushed next closes name ("*":
// every statement). A DEALLOCATE through the extended protocol is marked
// at each Execute of its portals (executeCloses), whose CommandComplete
// confirms it (review 19b: marked at the Parse, never confirmed, the
// records stayed for the session's life).
func (s *session) markClosed(name string) {
	s.applyClosed()
	seq := s.t.lastSeq() + 1
	for n, pt := range s.ptStmts {
		// A close answered (applyClosed took any confirmation) was
		// skipped or refused: this one is the close pending now
		// (review 21g HIGH: heldUnclosed took the name for one the server
		// keeps, and a Parse pgveil rewrites after Close x in the same
		// pipeline got a false 42P05).
		if closes(name, n) && (pt.closedSeq == 0 || s.t.answered(pt.closedSeq)) {
			pt.closedSeq = seq
			s.ptStmts[n] = pt
		}
	}
	for n, pr := range s.sqlPrepared {
		if closes(name, n) && pr.closedSeq == 0 {
			pr.closedSeq = seq
			s.sqlPrepared[n] = pr
		}
	}
}

// closes reports whether a close of name ("*": DEALLOCATE ALL, DISCARD
// ALL) closes the statement n. "*" leaves the unnamed statement, which
// PostgreSQL keeps apart from the named ones (review 19b: its record went,
// and a Bind ran it unchecked after a view swap).
func closes(name, n string) bool {
	return name == n || name == "*" && n != ""
}

// closesOf returns the statement names a DEALLOCATE or DISCARD ALL in p
// closes ("*": every one).
func closesOf(p *rewrite.Plan) []string {
	var names []string
	for _, st := range p.Stmts {
		if st.Deallocate != "" {
			names = append(names, st.Deallocate)
		}
	}
	return names
}

// noteStmtCloses remembers the names the extended-protocol statement name
// closes at each Execute of its portals (closesOf).
func (s *session) noteStmtCloses(name []byte, closes []string) {
	switch {
	case len(closes) > 0:
		if s.closeStmts == nil {
			s.closeStmts = map[string][]string{}
		}
		s.closeStmts[string(name)] = closes
	case len(s.closeStmts) > 0:
		delete(s.closeStmts, string(name))
	}
}

// notePortalCloses gives a portal bound to stmt the names it closes.
func (s *session) notePortalCloses(portal, stmt []byte) {
	if len(s.closeStmts) == 0 && len(s.closePortals) == 0 {
		return
	}
	if c := s.closeStmts[string(stmt)]; len(c) > 0 {
		if s.closePortals == nil {
			s.closePortals = map[string][]string{}
		}
		s.closePortals[string(portal)] = c
		return
	}
	delete(s.closePortals, string(portal))
}

// sqlPreparedEffects are the effects of running a statement SQL PREPARE
// made: those of an EXECUTE of it (the planner takes its path effects as
// unknown, PathOpaque).
const sqlPreparedEffects = effPath | effRole | effTZ

// notePortalSQLPrepared gives a portal bound to a statement SQL PREPARE
// made the effects of an EXECUTE of it (after notePortalEffects): one
// that calls set_config('search_path', …) changed the server's path
// unseen, and pgveil went on resolving names under the old one (review
// 20e HIGH: an INSERT went into the table the old path named, not the
// one PostgreSQL's path names).
func (s *session) notePortalSQLPrepared(portal, stmt []byte) {
	if len(s.sqlPrepared) == 0 || len(stmt) == 0 {
		return
	}
	if _, ok := s.sqlPrepared[string(stmt)]; !ok {
		return
	}
	if s.effPortals == nil {
		s.effPortals = map[string]uint8{}
	}
	s.effPortals[string(portal)] |= sqlPreparedEffects
}

// notePortalExecutes gives a portal bound to a pass-through statement
// whose texts run EXECUTE the effects (and SQL PREPAREs: executedPrepares)
// of the statements they execute as the server holds them now (sessionEffects read them at the Parse): an
// SQL PREPARE of the name may have been deallocated and prepared again
// since (review 21c HIGH: EXECUTE sp parsed while sp was SELECT 1, sp
// then prepared as a set_config of the path; the Execute changed the
// server's path unseen, and an INSERT went into the table the old path
// named).
func (s *session) notePortalExecutes(portal, stmt []byte) {
	pt, ok := s.ptStmts[string(stmt)]
	if !ok || !pt.executes {
		return
	}
	const all = effPath | effTZ | effRole
	var e uint8
	for _, text := range append([]string{pt.sql}, pt.earlier...) {
		for _, name := range rewrite.ExecutedAndCodeNames(text) {
			if ps := s.prepStmts[name]; len(ps) > 0 {
				// A protocol-level statement that prepares: its Execute
				// records them (executedPrepares).
				if s.prepPortals == nil {
					s.prepPortals = map[string][]*rewrite.Stmt{}
				}
				s.prepPortals[string(portal)] = append(slices.Clip(s.prepPortals[string(portal)]), ps...)
			}
			pr, ok := s.sqlPrepared[name]
			if !ok {
				e = all // a protocol-level statement, or none known
				break
			}
			for _, sql := range pr.sqls {
				if lower := strings.ToLower(sql); sql == sentinelText || strings.Contains(lower, "set_config") || strings.Contains(lower, "u&") {
					e = all
				}
			}
		}
	}
	if e != 0 {
		if s.effPortals == nil {
			s.effPortals = map[string]uint8{}
		}
		s.effPortals[string(portal)] |= e
	}
}

// preparesOf returns the SQL PREPAREs in p.
func preparesOf(p *rewrite.Plan) []*rewrite.Stmt {
	var out []*rewrite.Stmt
	for _, st := range p.Stmts {
		if st.Prepares != "" {
			out = append(out, st)
		}
	}
	return out
}

// noteStmtPrepares remembers the SQL PREPAREs the extended-protocol
// statement name runs at each Execute of its portals: recorded at the
// Parse only, one run again after a DEALLOCATE of its name left no record
// of the statement the server held again (review 20e HIGH: after a view
// swap its Bind or EXECUTE wrote the client's plaintext into an encrypted
// column).
func (s *session) noteStmtPrepares(name []byte, preps []*rewrite.Stmt) {
	switch {
	case len(preps) > 0:
		if s.prepStmts == nil {
			s.prepStmts = map[string][]*rewrite.Stmt{}
		}
		s.prepStmts[string(name)] = preps
	case len(s.prepStmts) > 0:
		delete(s.prepStmts, string(name))
	}
}

// notePortalPrepares gives a portal bound to stmt the SQL PREPAREs it
// runs.
func (s *session) notePortalPrepares(portal, stmt []byte) {
	if len(s.prepStmts) == 0 && len(s.prepPortals) == 0 {
		return
	}
	if p := s.prepStmts[string(stmt)]; len(p) > 0 {
		if s.prepPortals == nil {
			s.prepPortals = map[string][]*rewrite.Stmt{}
		}
		s.prepPortals[string(portal)] = p
		return
	}
	delete(s.prepPortals, string(portal))
}

// stmtNotes are what a statement name runs besides its rows: its
// effects (effStmts), closes (closeStmts) and SQL PREPAREs (prepStmts).
type stmtNotes struct {
	eff    uint8
	closes []string
	preps  []*rewrite.Stmt
}

// stmtNotesOf returns the notes of the statement name.
func (s *session) stmtNotesOf(name []byte) stmtNotes {
	return stmtNotes{s.effStmts[string(name)], s.closeStmts[string(name)], s.prepStmts[string(name)]}
}

// restoreStmtNotes puts the notes of the named statement name back as
// they were before a Parse of it that pgveil refused: the server keeps
// the statement the name held (review 21c HIGH: the notes of the refused
// text replaced them, and the kept PREPARE ran unrecorded).
func (s *session) restoreStmtNotes(name []byte, old stmtNotes) {
	if len(s.effStmts) == 0 && len(s.closeStmts) == 0 && len(s.prepStmts) == 0 && old.eff == 0 && old.closes == nil && old.preps == nil {
		return
	}
	s.noteStmtCloses(name, old.closes)
	s.noteStmtPrepares(name, old.preps)
	switch {
	case old.eff != 0:
		if s.effStmts == nil {
			s.effStmts = map[string]uint8{}
		}
		s.effStmts[string(name)] = old.eff
	default:
		delete(s.effStmts, string(name))
	}
}

// mergeStmtNotes adds old to the notes of the named statement name after
// a pass-through Parse of it the server may refuse (42P05: the name was
// taken, and stays) or skip: a Bind may run the statement it held
// (review 21c HIGH: its SQL PREPARE ran unrecorded, its set_config
// changed the path unseen).
func (s *session) mergeStmtNotes(name []byte, old stmtNotes) {
	n := s.stmtNotesOf(name)
	if old.eff != 0 {
		if s.effStmts == nil {
			s.effStmts = map[string]uint8{}
		}
		s.effStmts[string(name)] = n.eff | old.eff
	}
	// Closes only those both texts close: a close confirmed is a record
	// dropped, and a record dropped while the server keeps the statement
	// lets it run unchecked (review 21c HIGH: DEALLOCATE ins parsed over
	// SELECT 1, refused 42P05; the Execute ran SELECT 1 and ins's record
	// went).
	s.noteStmtCloses(name, commonCloses(n.closes, old.closes))
	for _, p := range old.preps {
		if !slices.ContainsFunc(n.preps, func(q *rewrite.Stmt) bool { return q.Prepares == p.Prepares && q.Original == p.Original }) {
			n.preps = append(n.preps, p)
		}
	}
	s.noteStmtPrepares(name, n.preps)
}

// noteUnnamedNotes sets, after an unnamed pass-through Parse, whether
// the earlier texts the server may still hold have notes: those of the
// statement before (notes), or its own earlier ones (was); or the new
// text closes statements.
func (s *session) noteUnnamedNotes(notes stmtNotes, was bool) {
	pt, ok := s.ptStmts[""]
	if !ok {
		return
	}
	// Its own closes too: the server may run an earlier text instead,
	// and only closes every text has are kept (commonCloses).
	if n := len(pt.earlier) > 0 && (was || notes.eff != 0 || len(notes.closes) > 0 || len(notes.preps) > 0 || len(s.closeStmts[""]) > 0); n != pt.earlierNotes {
		pt.earlierNotes = n
		s.ptStmts[""] = pt
	}
}

// commonCloses returns the names both a and b close.
func commonCloses(a, b []string) []string {
	var out []string
	for _, c := range a {
		if slices.Contains(b, c) && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// notePortalUnsettled gives a portal bound to the unnamed statement the
// effects and SQL PREPAREs of the earlier texts the server may still
// hold for it, and only the closes every one of them has (an unnamed Parse skipped after an error keeps the
// one before: unnamedSettled). Review 21c HIGH: its PREPARE ran again
// unrecorded, and after a view swap a Bind of that statement wrote the
// client's plaintext into an encrypted column.
func (s *session) notePortalUnsettled(portal []byte) {
	pt, ok := s.ptStmts[""]
	if !ok || !pt.earlierNotes || len(pt.earlier) == 0 || s.unnamedSettled(pt) {
		return
	}
	const all = effPath | effTZ | effRole
	var e uint8
	closes := s.closePortals[string(portal)]
	preps := slices.Clone(s.prepPortals[string(portal)])
	for _, text := range pt.earlier {
		p, err := s.eng.planner.Plan(text, s.planSession())
		if err != nil {
			e = all // no Bind runs it: a refusal plans it again
			closes = nil
			continue
		}
		var cs []string
		for _, st := range p.Stmts {
			e |= s.sessionEffects(st)
			if st.Deallocate != "" {
				cs = append(cs, st.Deallocate)
			}
			if st.Prepares != "" {
				preps = append(preps, st)
			}
		}
		closes = commonCloses(closes, cs) // as in mergeStmtNotes
	}
	if e != 0 {
		if s.effPortals == nil {
			s.effPortals = map[string]uint8{}
		}
		s.effPortals[string(portal)] |= e
	}
	if len(closes) > 0 {
		s.closePortals[string(portal)] = closes
	} else {
		delete(s.closePortals, string(portal))
	}
	if len(preps) > 0 {
		if s.prepPortals == nil {
			s.prepPortals = map[string][]*rewrite.Stmt{}
		}
		s.prepPortals[string(portal)] = preps
	}
}

// executePrepares records the SQL PREPAREs the Execute of portal, pushed
// next, runs: the name gets the text again unless its record holds it
// and no close of it is pending (the server then holds one of the texts
// recorded, or this one).
func (s *session) executePrepares(portal []byte) {
	if len(s.prepPortals) == 0 {
		return
	}
	ps := s.prepPortals[string(portal)]
	if len(ps) == 0 {
		return
	}
	s.recordPrepares(ps)
}

// executedPrepares records the SQL PREPAREs of the protocol-level
// statements that st, sent, runs with SQL EXECUTE (review 21c HIGH: EXECUTE
// pp, pp a Parse of PREPARE ins …, prepared ins again after DEALLOCATE
// ins, unrecorded; after a view swap Bind ins wrote the client's
// plaintext into an encrypted column).
func (s *session) executedPrepares(st *rewrite.Stmt) {
	if len(s.prepStmts) == 0 && len(s.ptHeld) == 0 || !hasWordFold(st.Original, "execute") {
		return
	}
	for _, name := range rewrite.ExecutedAndCodeNames(st.Original) {
		if ps := s.prepStmts[name]; len(ps) > 0 {
			s.recordPrepares(ps)
		}
		if h := s.heldNotes([]byte(name)); h != nil && len(h.preps) > 0 {
			s.recordPrepares(h.preps)
		}
	}
}

// heldNotes returns the notes of the server's statement name kept in
// ptHeld (holdUnclosed) when the client's view runs it: the name is no
// statement pgveil prepared under its own.
func (s *session) heldNotes(name []byte) *stmtNotes {
	if len(s.ptHeld) == 0 || len(name) == 0 {
		return nil
	}
	pt, ok := s.ptHeld[string(name)]
	if !ok || pt.held == nil || s.t.statement(name) != passthroughStmt {
		return nil
	}
	return pt.held
}

// notePortalHeld gives a portal bound to name, when the server's
// statement of the name may be one ptHeld keeps, its effects and SQL
// PREPAREs (review 21g HIGH).
func (s *session) notePortalHeld(portal, name []byte) {
	h := s.heldNotes(name)
	if h == nil {
		return
	}
	if h.eff != 0 {
		if s.effPortals == nil {
			s.effPortals = map[string]uint8{}
		}
		s.effPortals[string(portal)] |= h.eff
	}
	if len(h.preps) > 0 {
		if s.prepPortals == nil {
			s.prepPortals = map[string][]*rewrite.Stmt{}
		}
		s.prepPortals[string(portal)] = append(slices.Clip(s.prepPortals[string(portal)]), h.preps...)
	}
}

// recordPrepares records the SQL PREPAREs ps, run now.
func (s *session) recordPrepares(ps []*rewrite.Stmt) {
	s.applyClosed()
	for _, st := range ps {
		if pr, ok := s.sqlPrepared[st.Prepares]; ok && pr.closedSeq == 0 && slices.Contains(pr.sqls, st.Original) {
			continue
		}
		// The server plans the statement now, under its catalog, which
		// may be newer than the one its text was checked under at the
		// Parse or Bind: planned again at its first use (review 21c
		// HIGH: bound before a view swap, executed after pgveil read the
		// new catalog, it was taken for one planned under that catalog,
		// and its Bind wrote the client's plaintext through the view).
		s.noteSQLPrepare(st)
		pr := s.sqlPrepared[st.Prepares]
		pr.cat = catUnplanned
		s.sqlPrepared[st.Prepares] = pr
	}
}

// catUnplanned is the catalog generation of a record whose texts were not
// planned under any that pgveil knows: the next use plans them again.
const catUnplanned = ^uint64(0)

// executeCloses records the closes of the Execute of portal, pushed
// next, in the view (closeEffects), and returns the names for its
// pending (its CommandComplete confirms them: tracker.goneLocked; an
// Execute the server answers otherwise leaves them, restoreUnclosed).
func (s *session) executeCloses(portal []byte) []string {
	c := s.closePortals[string(portal)]
	for _, name := range c {
		s.closeEffects(name)
	}
	return c
}

// unnamedGoneNow reports, after pgveil read the search_path with a
// simple Query of its own (which drops the server's unnamed statement),
// that the server holds no unnamed statement of a text pgveil kept: the
// Bind gets the server's 26000 whichever engine runs it.
func (s *session) unnamedGoneNow() bool {
	s.forgetGoneUnnamed()
	_, ok := s.ptStmts[""]
	return !ok && len(s.srvUnnamed) == 0
}

// forgetGoneUnnamed forgets the texts the server's own unnamed statement
// may have held once the server answered a message that dropped it after
// their Parses (tracker.unnamedDropSeq): a Bind of the unnamed statement
// now gets PostgreSQL's 26000, not pgveil's refusal (review 20a).
func (s *session) forgetGoneUnnamed() {
	d := s.t.unnamedDropSeq.Load()
	if d == 0 {
		return
	}
	if len(s.srvUnnamed) > 0 && d > s.srvUnnamedSeq {
		s.srvUnnamed, s.srvUnnamedSeq = nil, 0
	}
	if pt, ok := s.ptStmts[""]; ok && pt.pinned == "" && pt.parseSeq != 0 && d > pt.parseSeq {
		delete(s.ptStmts, "")
	}
}

// applyClosed forgets the records of statements the server confirmed
// closed (unless prepared again since).
func (s *session) applyClosed() {
	s.applyFailedParses()
	s.applyFailedPrepares()
	for _, c := range s.t.takeClosed() {
		for n, pt := range s.ptStmts {
			switch {
			case !closes(c.name, n):
			case pt.closedSeq != 0 && pt.closedSeq <= c.seq:
				delete(s.ptStmts, n)
				// Its effects and closes go with it (kept for a close the
				// server may skip: review 19).
				delete(s.effStmts, n)
				delete(s.closeStmts, n)
				delete(s.prepStmts, n)
			case pt.earlierUntil != 0 && pt.earlierUntil <= c.seq:
				// Prepared again after a close now confirmed: the texts
				// before the close are gone (review 19b: kept, past
				// maxEarlier they refused the name for good).
				pt.earlier, pt.earlierSeq, pt.earlierUntil = nil, nil, 0
				pt.over, pt.overMin, pt.overMax = 0, 0, 0
				s.ptStmts[n] = pt
			}
		}
		for n, pt := range s.ptHeld {
			if closes(c.name, n) && pt.closedSeq <= c.seq {
				delete(s.ptHeld, n)
			}
		}
		for n, pr := range s.sqlPrepared {
			switch {
			case !closes(c.name, n):
			case pr.closedSeq != 0 && pr.closedSeq <= c.seq:
				delete(s.sqlPrepared, n)
			case pr.earlierUntil != 0 && pr.earlierUntil <= c.seq:
				if len(pr.sqls) > 1 {
					pr.sqls = pr.sqls[:1]
				}
				pr.earlierUntil, pr.over = 0, 0
				s.sqlPrepared[n] = pr
			}
		}
	}
}

// maxEarlier bounds the earlier texts kept for one statement name; past
// it, earlierTexts keeps a text no plan accepts.
const maxEarlier = 16

// earlierTexts returns the texts a statement name may run after a Parse
// or PREPARE of sql under it, when texts (the last one first, then the
// ones before) were sent under it since it was last closed: the server
// refuses a statement of an existing name (42P05) and keeps the earlier
// one, and pgveil learns whether that Parse succeeded only later. Every
// one is planned again when the catalog or path changes.
func earlierTexts(texts []string, sql string) []string {
	var out []string
	for _, t := range texts {
		if t != sql && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	if len(out) > maxEarlier {
		out = append(out[:maxEarlier], "\x00") // refused: a NUL byte
	}
	return out
}

// earlierWithSeqs is earlierTexts for a Parse of sql under the named
// statement whose record is old, with the seqs of the Parses that sent
// them (ptStmt.seq). A text sent by several Parses is kept once for each
// (the failure of one leaves the others). Past maxEarlier, the newest go
// and a NUL text stands for them (refused by every plan) until the
// server has refused or skipped each of their Parses (over, overMax).
func earlierWithSeqs(old ptStmt, sql string) (pt ptStmt) {
	pt.earlier = append(make([]string, 0, len(old.earlier)+1), old.sql) // the newest first
	pt.earlierSeq = append(make([]uint64, 0, len(old.earlier)+1), old.seq)
	for i, t := range old.earlier {
		if t == sentinelText && i == len(old.earlier)-1 && old.over != 0 {
			break
		}
		var seq uint64
		if i < len(old.earlierSeq) {
			seq = old.earlierSeq[i]
		}
		pt.earlier = append(pt.earlier, t)
		pt.earlierSeq = append(pt.earlierSeq, seq)
	}
	pt.over, pt.overMin, pt.overMax = old.over, old.overMin, old.overMax
	if n := len(pt.earlier) - maxEarlier; n > 0 {
		// The newest go: the server holds the text of the first Parse
		// it ran since the name was last closed, and refuses the later
		// ones (42P05).
		for _, seq := range pt.earlierSeq[:n] {
			switch {
			case pt.over < 0:
			case seq == 0:
				pt.over = -1 // for good: a text whose Parse is not known
			default:
				if pt.over == 0 {
					pt.overMin, pt.overMax = seq, seq
				}
				pt.over++
				pt.overMin, pt.overMax = min(pt.overMin, seq), max(pt.overMax, seq)
			}
		}
		pt.earlier, pt.earlierSeq = pt.earlier[n:], pt.earlierSeq[n:]
	}
	if pt.over != 0 {
		pt.earlier = append(pt.earlier, sentinelText)
		pt.earlierSeq = append(pt.earlierSeq, 0)
	}
	return pt
}

// maxExecutedDepth bounds replanExecutedTexts' nesting.
const maxExecutedDepth = 8

// sentinelText stands for texts no longer kept: no plan accepts it.
const sentinelText = "\x00"

// applyFailedParses takes out of the records of named pass-through
// statements the texts of Parses the server refused (42P05: the name was
// taken) or skipped (tracker.failedPts): the server never held them.
func (s *session) applyFailedParses() {
	for _, f := range s.t.takeFailedPts() {
		pt, ok := s.ptStmts[f.name]
		if !ok || f.seq == 0 {
			continue
		}
		switch i := slices.Index(pt.earlierSeq, f.seq); {
		case pt.seq == f.seq && len(pt.earlier) == 0:
			delete(s.ptStmts, f.name) // no statement of the name upstream
			continue
		case pt.seq == f.seq:
			pt.sql, pt.earlier = pt.earlier[0], pt.earlier[1:]
			pt.seq = 0
			if len(pt.earlierSeq) > 0 {
				pt.seq, pt.earlierSeq = pt.earlierSeq[0], pt.earlierSeq[1:]
			}
		case i >= 0 && i < len(pt.earlier):
			pt.earlier = slices.Delete(slices.Clone(pt.earlier), i, i+1)
			pt.earlierSeq = slices.Delete(slices.Clone(pt.earlierSeq), i, i+1)
		case pt.over > 0 && f.seq >= pt.overMin && f.seq <= pt.overMax:
			if pt.over--; pt.over > 0 {
				break
			}
			switch {
			case pt.sql == sentinelText && len(pt.earlier) == 0:
				delete(s.ptStmts, f.name) // every Parse of the name failed
				continue
			case len(pt.earlier) > 0 && pt.earlier[len(pt.earlier)-1] == sentinelText:
				pt.earlier = slices.Clone(pt.earlier[:len(pt.earlier)-1])
				pt.earlierSeq = slices.Clone(pt.earlierSeq[:len(pt.earlierSeq)-1])
			}
		default:
			continue
		}
		s.ptStmts[f.name] = pt
	}
}

// heldUnclosed reports whether the server still holds the pass-through
// statement name although the client closed it: the server answered the
// close (a Close or DEALLOCATE skipped after an error, refused in a
// transaction block) without confirming it. PostgreSQL refuses a Parse of
// the name (42P05); pgveil, preparing one it rewrites under a name of its
// own, dropped the record of the server's statement, which SQL EXECUTE
// or a Bind then ran unchecked once the client's view let the name go
// (review 21c HIGH: after a view swap, the kept INSERT wrote the
// plaintext into contacts.note).
func (s *session) heldUnclosed(name []byte) bool {
	pt, ok := s.ptStmts[string(name)]
	if !ok || pt.closedSeq == 0 || !s.t.answered(pt.closedSeq) {
		return false
	}
	s.applyClosed() // a confirmation is in once the close is answered
	pt, ok = s.ptStmts[string(name)]
	return ok && pt.closedSeq != 0
}

// holdUnclosed keeps, when a Parse pgveil rewrites takes the name in the
// client's view, the record of the pass-through statement of the name
// whose close the server has not confirmed: in one pipeline after an
// error, the close and the Parse are both skipped, and the server keeps
// the old statement, which SQL EXECUTE or a Bind of the name runs once
// the view lets the name go (review 21c HIGH: after a view swap, the kept
// INSERT wrote the plaintext into contacts.note). It is checked as a
// Bind of it is (replanOnPathChange) until the close is confirmed.
func (s *session) holdUnclosed(name []byte, notes stmtNotes) {
	pt, ok := s.ptStmts[string(name)]
	if !ok || len(name) == 0 || pt.closedSeq == 0 {
		return
	}
	if s.ptHeld == nil {
		s.ptHeld = map[string]ptStmt{}
	}
	pt.stale = true // planned again at each use
	if notes.eff != 0 || len(notes.preps) > 0 {
		// The rewritten Parse's notes replaced them (review 21g HIGH: the
		// kept PREPARE ins ran unrecorded at a Bind of the name, and
		// after a view swap Bind ins wrote the plaintext into
		// contacts.note).
		pt.held = &notes
	}
	s.ptHeld[string(name)] = pt
}

// replanHeld checks a Bind or EXECUTE of name that may run a statement
// holdUnclosed kept: each of its texts is planned now, and a refusal
// returned when one needs pgveil.
func (s *session) replanHeld(name []byte) (*pgError, error) {
	pt, ok := s.ptHeld[string(name)]
	if !ok {
		return nil, nil
	}
	if err := s.catalogCurrent(pt.sql); err != nil {
		return nil, err
	}
	if err := s.syncSearchPathFor(pt.sql); err != nil {
		return nil, err
	}
	for _, sql := range append([]string{pt.sql}, pt.earlier...) {
		p, err := s.plan(sql)
		if offLoop(err) {
			return nil, err
		}
		if err != nil || planNeedsWork(p) {
			return staleStatement(name, "may be a statement the server kept after its close was skipped, and now names a table pgveil encrypts"), nil
		}
		if pe, err := s.replanExecuted(sql); pe != nil || err != nil {
			return pe, err
		}
	}
	return nil, nil
}

// notePassthrough records the pass-through statement name with text sql,
// planned under catalog generation cat.
func (s *session) notePassthrough(name []byte, sql string, cat uint64) {
	s.applyClosed()
	if s.ptStmts == nil {
		s.ptStmts = map[string]ptStmt{}
	}
	pt := ptStmt{sql: sql, gen: s.pathGen, cat: cat}
	old, ok := s.ptStmts[string(name)]
	if len(name) > 0 {
		pt.seq = s.t.lastSeq() + 1 // the Parse, pushed next
	}
	if ok && len(name) > 0 {
		e := earlierWithSeqs(old, sql)
		pt.earlier, pt.earlierSeq = e.earlier, e.earlierSeq
		pt.over, pt.overMin, pt.overMax = e.over, e.overMin, e.overMax
		pt.earlierUntil = old.closedSeq // closed, unconfirmed: see applyClosed
		pt.stale = len(pt.earlier) > 0 && (old.stale || old.gen != pt.gen || old.cat != cat)
	} else if len(name) == 0 {
		// The unnamed statement: the server replaces it at each Parse,
		// unless it skips the Parse after an error earlier in the
		// pipeline; then it keeps the one before (review 19), which a
		// Bind after the next Sync runs. Texts whose Parse the server
		// confirmed are the last ones it can hold (unnamedSettled).
		s.forgetGoneUnnamed()
		texts := s.unnamedTexts()
		fromSrv := len(s.srvUnnamed) > 0
		s.srvUnnamed, s.srvUnnamedSeq = nil, 0
		if len(texts) > 0 {
			pt.earlier = earlierTexts(texts, sql)
			pt.stale = len(pt.earlier) > 0 && (fromSrv || !ok || old.stale || old.gen != pt.gen || old.cat != cat)
		}
	}
	pt.executes = len(rewrite.ExecutedAndCodeNames(sql)) > 0
	for _, t := range pt.earlier {
		if pt.executes {
			break
		}
		pt.executes = t != sentinelText && len(rewrite.ExecutedAndCodeNames(t)) > 0
	}
	pt.atExecute = pt.executes || runsAtExecute(sql)
	for _, t := range pt.earlier {
		if pt.atExecute {
			break
		}
		pt.atExecute = t != sentinelText && runsAtExecute(t)
	}
	s.ptStmts[string(name)] = pt
}

// replanExecutedTexts checks, at a Bind of the record pt, the statements
// its texts run with EXECUTE (replanExecuted), as at their Parse.
// A statement may execute one that executes another: each is checked, to
// maxExecutedDepth (one that executes itself stops there).
func (s *session) replanExecutedTexts(pt ptStmt) (*pgError, error) {
	s.inExecuted++
	defer func() { s.inExecuted-- }()
	for _, text := range append([]string{pt.sql}, pt.earlier...) {
		if pe, err := s.replanExecuted(text); pe != nil || err != nil {
			return pe, err
		}
	}
	return nil, nil
}

// unnamedTexts are the texts of pass-through Parses the server's own
// unnamed statement may hold now: the last one recorded and, until the
// server confirmed it, those before; and those kept while the client's
// unnamed statement was one pgveil prepared under a name of its own
// (srvUnnamed).
func (s *session) unnamedTexts() []string {
	texts := slices.Clone(s.srvUnnamed)
	if old, ok := s.ptStmts[""]; ok && old.pinned == "" {
		texts = append([]string{old.sql}, texts...)
		if !s.t.unnamedParsed(old.parseSeq) {
			texts = append(texts, old.earlier...)
		}
	} else if ok && !s.t.unnamedParsed(old.parseSeq) {
		texts = append(texts, old.earlier...)
	}
	return texts
}

// keepUnnamedTexts is called when the client's unnamed statement becomes
// one pgveil prepares under a name of its own: the record of the
// pass-through one goes (a Bind of the unnamed statement is pgveil's
// now), but the texts the server's own unnamed statement may still hold
// are kept for the next pass-through one (review 19: that Parse, skipped
// after an error, leaves the server's statement in place).
func (s *session) keepUnnamedTexts() {
	s.forgetGoneUnnamed()
	if texts := s.unnamedTexts(); len(texts) > 0 {
		s.srvUnnamed = earlierTexts(texts, "")
		if pt, ok := s.ptStmts[""]; ok && pt.parseSeq > s.srvUnnamedSeq {
			s.srvUnnamedSeq = pt.parseSeq
		}
	}
}

// noteUnnamedParse records the seq of the pass-through unnamed Parse just
// pushed (notePassthrough).
func (s *session) noteUnnamedParse() {
	if pt, ok := s.ptStmts[""]; ok {
		pt.parseSeq = s.t.lastSeq()
		s.ptStmts[""] = pt
	}
}

// unnamedSettled reports whether a Bind of the unnamed statement now can
// only run pt.sql: its Parse was confirmed, or no Sync came after it (an
// error that skipped the Parse skips this Bind too).
func (s *session) unnamedSettled(pt ptStmt) bool {
	return pt.parseSeq == 0 || s.t.unnamedParsed(pt.parseSeq) || !s.t.syncSince(pt.parseSeq)
}

// notePinned records the statement name with text sql, prepared upstream
// as pinned (names schema-qualified, nothing else changed).
func (s *session) notePinned(name []byte, sql, pinned string, cat uint64) {
	if s.ptStmts == nil {
		s.ptStmts = map[string]ptStmt{}
	}
	s.ptStmts[string(name)] = ptStmt{sql: sql, gen: s.pathGen, cat: cat, pinned: pinned}
}

// replanOnPathChange checks a Bind of pass-through statement name: planned
// under an older path or catalog, it is planned again now; a refusal is
// returned when it no longer passes through. synced: the caller's message
// has had its search_path and catalog brought up to date already (an SQL
// EXECUTE of the name: replanExecuted).
func (s *session) replanOnPathChange(name []byte, synced bool) (*pgError, error) {
	s.applyClosed()
	if len(name) == 0 {
		s.forgetGoneUnnamed()
	}
	if pr, ok := s.sqlPrepared[string(name)]; ok && len(name) > 0 {
		// A statement SQL PREPARE made, bound through the protocol: checked
		// as its EXECUTE is (review 20a HIGH: after a view swap the Bind
		// wrote the client's plaintext into an encrypted column). Also
		// when a Parse of the name is recorded: the server refuses that
		// one (42P05) if the PREPARE ran, and pgveil may not know yet.
		if !synced {
			if err := s.catalogCurrent(pr.sqls[0]); err != nil {
				return nil, err
			}
		}
		gen := s.planGen
		pe, err := s.replanSQLPrepared(string(name))
		s.planGen = gen
		if pe != nil || err != nil {
			return pe, err
		}
	}
	if len(s.ptHeld) > 0 && len(name) > 0 && s.t.statement(name) == passthroughStmt {
		// The server's statement of the name runs: it may be one kept
		// after its close was skipped (holdUnclosed), also when a later
		// pass-through Parse of the name was refused (42P05).
		if pe, err := s.replanHeld(name); pe != nil || err != nil {
			return pe, err
		}
	}
	pt, ok := s.ptStmts[string(name)]
	if !ok {
		if len(name) == 0 && len(s.srvUnnamed) > 0 {
			return s.replanServerUnnamed()
		}
		return nil, nil
	}
	if !synced {
		if err := s.catalogCurrent(pt.sql); err != nil {
			return nil, err
		}
	}
	if pt.executes {
		if s.inExecuted >= maxExecutedDepth {
			return &pgError{Severity: "ERROR", Code: "0A000",
				Message: fmt.Sprintf("prepared statement %q executes statements that execute others more than %d deep: pgveil cannot check them", name, maxExecutedDepth),
				Hint:    "EXECUTE the statement that does the work directly"}, nil
		}
		if pe, err := s.replanExecutedTexts(pt); pe != nil || err != nil {
			return pe, err
		}
		if pt, ok = s.ptStmts[string(name)]; !ok {
			return nil, nil
		}
	}
	if !pt.stale && pt.gen == s.pathGen && pt.cat == s.eng.planner.Generation() {
		return nil, nil
	}
	if !synced {
		if err := s.syncSearchPathFor(pt.sql); err != nil {
			return nil, err
		}
		if len(name) == 0 && s.unnamedGoneNow() {
			return nil, nil
		}
	}
	cat := s.eng.planner.Generation()
	p, err := s.plan(pt.sql)
	if offLoop(err) {
		return nil, err
	}
	ok = err == nil && (pt.pinned == "" && !planNeedsWork(p) || pt.pinned != "" && samePins(p, pt))
	earlier := pt.earlier
	if len(name) == 0 && s.unnamedSettled(pt) {
		earlier = nil
	}
	for _, sql := range earlier {
		if !ok {
			break
		}
		p, err := s.plan(sql)
		if offLoop(err) {
			return nil, err
		}
		ok = err == nil && !planNeedsWork(p)
	}
	if ok {
		pt.gen, pt.cat = s.pathGen, cat
		pt.stale = pt.stale && len(earlier) == 0 // the unnamed statement's earlier texts, settled, not planned
		if len(name) == 0 && s.t.unnamedParsed(pt.parseSeq) {
			// The server confirmed this Parse: the earlier texts are gone
			// for good (unsettled again by no later Sync).
			pt.earlier, pt.stale = nil, false
		}
		s.ptStmts[string(name)] = pt
		return nil, nil
	}
	return staleStatement(name, "was planned under another search_path or an older catalog, and now names a table pgveil encrypts"), nil
}

// replanServerUnnamed checks a Bind of the unnamed statement when the
// client's view holds no record of it but the server's own unnamed
// statement may still hold one of srvUnnamed: after an unnamed Parse
// pgveil rewrote, whose Close of the server's statement the server
// skipped, the client's view became a pass-through one again without a
// Parse (a Close of the unnamed statement, which pgveil sends for its own
// statement; a simple Query the server skipped too). The Bind runs such a
// text: each is planned now, and the Bind refused when one needs pgveil
// (review 19b: after a view swap it wrote the client's plaintext into an
// encrypted column).
func (s *session) replanServerUnnamed() (*pgError, error) {
	for _, sql := range s.srvUnnamed {
		if err := s.catalogCurrent(sql); err != nil {
			return nil, err
		}
		if err := s.syncSearchPathFor(sql); err != nil {
			return nil, err
		}
		if s.unnamedGoneNow() {
			return nil, nil
		}
		p, err := s.plan(sql)
		if offLoop(err) {
			return nil, err
		}
		if err != nil || planNeedsWork(p) {
			return staleStatement(nil, "may be a statement the server kept after pgveil's Parse of a newer one was skipped, and now names a table pgveil encrypts"), nil
		}
		// What it executes, as for a record's texts (replanExecutedTexts).
		if pe, err := s.replanExecuted(sql); pe != nil || err != nil {
			return pe, err
		}
	}
	return nil, nil
}

// sqlPrep is a statement prepared with SQL PREPARE that pgveil passed.
type sqlPrep struct {
	// sqls are the PREPARE statement, then earlier ones: one for each
	// PREPARE of the name not known refused (a text sent twice is there
	// twice; applyFailedPrepares takes one out for each refused). Past
	// maxEarlier the newest go, counted in over, and a NUL text stands
	// for them until each is known refused (review 20a).
	sqls         []string
	over         int
	cat          uint64 // the planner's Generation they were planned under
	closedSeq    uint64 // see ptStmt.closedSeq
	earlierUntil uint64 // see ptStmt.earlierUntil
}

// noteSQLPrepare records the SQL PREPARE st, sent.
func (s *session) noteSQLPrepare(st *rewrite.Stmt) {
	s.applyClosed()
	if s.sqlPrepared == nil {
		s.sqlPrepared = map[string]sqlPrep{}
	}
	pr := sqlPrep{sqls: []string{st.Original}, cat: s.planGen}
	if old, ok := s.sqlPrepared[st.Prepares]; ok {
		olds := old.sqls
		if old.over != 0 && len(olds) > 0 && olds[len(olds)-1] == sentinelText {
			olds = olds[:len(olds)-1]
		}
		pr.sqls = append(pr.sqls, olds...)
		pr.over = old.over
		if n := len(pr.sqls) - 1 - maxEarlier; n > 0 {
			// The newest go (after this one): the server holds the first
			// PREPARE it ran since the name was last deallocated.
			pr.sqls = append(pr.sqls[:1], pr.sqls[1+n:]...)
			pr.over += n
		}
		if pr.over != 0 {
			pr.sqls = append(pr.sqls, sentinelText)
		}
		if old.cat != pr.cat {
			pr.cat = catUnplanned // planned again at the next use
		}
		pr.earlierUntil = old.closedSeq
	}
	s.sqlPrepared[st.Prepares] = pr
}

// applyFailedPrepares takes out of the records of SQL PREPAREs the text
// of each PREPARE the server refused (42P05: the name was taken) or did
// not run (an error before it in its string, a string skipped after an
// error: tracker.failedPreps).
func (s *session) applyFailedPrepares() {
	for _, f := range s.t.takeFailedPreps() {
		pr, ok := s.sqlPrepared[f.name]
		if !ok {
			continue
		}
		if i := slices.Index(pr.sqls, f.sql); i >= 0 && f.sql != sentinelText {
			pr.sqls = slices.Delete(slices.Clone(pr.sqls), i, i+1)
		} else if pr.over > 0 {
			if pr.over--; pr.over == 0 && len(pr.sqls) > 0 && pr.sqls[len(pr.sqls)-1] == sentinelText {
				pr.sqls = slices.Clone(pr.sqls[:len(pr.sqls)-1])
			}
		} else {
			continue
		}
		if len(pr.sqls) == 0 || pr.over == 0 && len(pr.sqls) == 1 && pr.sqls[0] == sentinelText {
			delete(s.sqlPrepared, f.name) // no PREPARE of the name ran
			continue
		}
		s.sqlPrepared[f.name] = pr
	}
}

// replanExecuted plans again each SQL PREPARE, made under an older
// catalog, of a statement sql runs with EXECUTE: the server plans the
// statement again when its relations change (a table replaced by a view
// over an encrypted column), and EXECUTE's arguments are written in the
// text, where pgveil cannot seal them. A refusal is returned when the
// PREPARE would be refused now.
func (s *session) replanExecuted(sql string) (*pgError, error) {
	s.applyClosed()
	if len(s.sqlPrepared) == 0 && len(s.ptStmts) == 0 && len(s.closeStmts) == 0 && len(s.ptHeld) == 0 {
		return nil, nil
	}
	defer func(gen uint64) { s.planGen = gen }(s.planGen) // the caller's plan's
	// The names a DO block may run with dynamic SQL too (review 19b).
	for _, name := range rewrite.ExecutedAndCodeNames(sql) {
		if len(s.closeStmts[name]) > 0 && name != "" {
			// EXECUTE d, d a Parse of DEALLOCATE ALL: the server drops
			// pgveil's own statements, and the client's, unseen (review
			// 21c: a Parse of a name it dropped got 42P05). Refused, as
			// code that deallocates is.
			return &pgError{Severity: "ERROR", Code: "0A000",
				Message: fmt.Sprintf("pgveil cannot run prepared statement %q with EXECUTE: it deallocates prepared statements, which pgveil must follow", name),
				Hint:    "run DEALLOCATE or DISCARD ALL directly, or bind the statement through the protocol"}, nil
		}
		if _, ok := s.ptStmts[name]; ok && name != "" {
			// A protocol-level statement pgveil passed through, run with
			// SQL EXECUTE: checked as its Bind is (review 19).
			if pe, err := s.replanOnPathChange([]byte(name), true); pe != nil || err != nil {
				return pe, err
			}
		} else if _, ok := s.ptHeld[name]; ok && s.t.statement([]byte(name)) == passthroughStmt {
			if pe, err := s.replanHeld([]byte(name)); pe != nil || err != nil {
				return pe, err
			}
		}
		if pe, err := s.replanSQLPrepared(name); pe != nil || err != nil {
			return pe, err
		}
	}
	return nil, nil
}

// replanSQLPrepared plans again the SQL PREPARE of name, made under an
// older catalog; a refusal is returned when it would be refused now.
func (s *session) replanSQLPrepared(name string) (*pgError, error) {
	pr, ok := s.sqlPrepared[name]
	if !ok || pr.cat == s.eng.planner.Generation() {
		return nil, nil
	}
	cat := s.eng.planner.Generation()
	var err error
	ok = true
	for _, text := range pr.sqls {
		var p *rewrite.Plan
		p, err = s.plan(text)
		if offLoop(err) {
			return nil, err
		}
		if ok = err == nil && !planNeedsWork(p); !ok {
			break
		}
	}
	if ok {
		pr.cat = cat
		s.sqlPrepared[name] = pr
		return nil, nil
	}
	pe := &pgError{Severity: "ERROR", Code: "0A000",
		Message: fmt.Sprintf("prepared statement %q (SQL PREPARE) was checked by pgveil under an older catalog, and would not be accepted now", name),
		Hint:    "DEALLOCATE it; prepare it again to see why"}
	if err != nil {
		r := refusalFrom(err)
		pe.Message += ": " + r.Message
		pe.Schema, pe.Table, pe.Column = r.Schema, r.Table, r.Column
	}
	return pe, nil
}

// catalogCurrent reads the catalog again, before a prepared statement of
// text sql is bound, when DDL completed since it was last read: DDL of
// another session (refreshCatalogIfNeeded), or this session's own once it
// is outside any transaction (settleDDL).
func (s *session) catalogCurrent(sql string) error {
	if err := s.refreshCatalogIfNeeded(); err != nil {
		return err
	}
	return s.settleDDL(sql)
}

// replanOnCatalogChange checks a Bind of a statement pgveil rewrote: planned
// under an older catalog, it is planned again now. The same plan is
// kept; a plan that reads the result otherwise but sends the same text
// and seals the same values serves this Bind (the server resolves the
// text anew too); any other change is refused.
func (s *session) replanOnCatalogChange(stmt *Statement) (*Statement, *pgError, error) {
	if stmt.Plan == nil || stmt.Plan.Fetch != "" {
		return stmt, nil, nil // a FETCH takes its cursor's plan at each Bind
	}
	if err := s.catalogCurrent(stmt.SQL); err != nil {
		return nil, nil, err
	}
	if k := stmt.Plan.Kind; (k == rewrite.KindDDL || k == rewrite.KindExplain || k == rewrite.KindOther) && hasWordFold(stmt.SQL, "execute") {
		// CREATE TABLE … AS EXECUTE ins(…) runs ins, whose table may have
		// become a view over an encrypted column since the Parse: checked
		// at each Bind, as a pass-through statement's (review 21c HIGH:
		// parsed before a view swap, bound after it, it wrote the
		// plaintext in its text into contacts.note).
		if pe, err := s.replanExecuted(stmt.SQL); pe != nil || err != nil {
			return nil, pe, err
		}
	}
	if stmt.catGen == s.eng.planner.Generation() {
		return stmt, nil, nil
	}
	if err := s.syncSearchPathFor(stmt.SQL); err != nil {
		return nil, nil, err
	}
	cat := s.eng.planner.Generation()
	p, err := s.plan(stmt.SQL)
	if offLoop(err) {
		return nil, nil, err
	}
	if err == nil {
		p = s.withCursors(p)
		switch {
		case len(p.Stmts) != 1:
		case rewrite.SamePlan(p.Stmts[0], stmt.Plan):
			stmt.catGen = cat
			return stmt, nil, nil
		case rewrite.SameInput(p.Stmts[0], stmt.Plan):
			cp := *stmt
			cp.Plan = p.Stmts[0]
			return &cp, nil, nil
		case rewrite.SameInterface(stmt.Plan, p.Stmts[0]):
			ns, err := s.reprepare(stmt, p, cat)
			if offLoop(err) {
				return nil, nil, err
			}
			if err == nil {
				return ns, nil, nil
			}
		}
	}
	return nil, staleStatement([]byte(stmt.Name), "was planned under an older catalog or migration state, and its relations now need another plan"), nil
}

// onlyPinned reports a statement whose only change is pinned names: no
// value, no output and no COPY data for pgveil to handle.
func onlyPinned(st *rewrite.Stmt) bool {
	return st.NamesOnly && st.Outputs == nil && !st.OutputsByOrigin && st.Copy == nil
}

// samePins reports whether p, a new plan of pt.sql, pins the same names
// to the same schemas as the text prepared upstream.
func samePins(p *rewrite.Plan, pt ptStmt) bool {
	if len(p.Stmts) != 1 || !onlyPinned(p.Stmts[0]) {
		return false
	}
	text, err := p.Render(pt.sql, func(*rewrite.Stmt, *rewrite.Slot) (string, error) {
		return "", errors.New("a pinned statement has no slots")
	})
	return err == nil && text == pt.pinned
}
