package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/rewrite"
)

// Following the search_path.
//
// pgveil resolves unqualified table names under the session's search_path,
// and a wrong path could let an INSERT into a configured table through
// unencrypted. It is sure of the path only when the server says it: at
// connect (initSearchPath) and when it asks again (syncSearchPathFor). What
// the client sends changes it in ways pgveil cannot follow exactly: a SET
// may not run (an earlier statement of its string failed), a ROLLBACK (to a
// savepoint, or of the block) undoes it, the end of a transaction ends SET
// LOCAL. So:
//
//   - a statement that changes the path (SET, SET LOCAL, RESET, DISCARD ALL,
//     set_config; SET ROLE and SET SESSION AUTHORIZATION, which change what
//     "$user" means; DO, CALL and the FunctionCall message, whose code may
//     change it unseen), when it is sent (Query, Execute; also at Parse), makes
//     the path unknown, and stale;
//   - a transaction statement (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, …) sent
//     while the path is stale makes it unknown again;
//   - while the path is unknown, the planner resolves an unqualified name
//     by the name alone, to the one configured table of that name (refused
//     when several schemas have one): fail closed;
//   - the next statement that may name a configured table, sent while the
//     server owes the client nothing, first asks the server for the path
//     and current_user, which "$user" means (the client sees none of it),
//     and plans with the answer.
//     An answer taken outside a transaction block clears stale: no
//     transaction end can undo the change any more.
//
// A pipelined client (one that sends on without waiting for answers) gets
// no such moment and plans by name until it pauses.

// Statement effects that matter to the path.
const (
	effPath uint8 = 1 << iota // changes the search_path
	effTx                     // begins or ends a transaction or savepoint
	effTZ                     // may change TimeZone (utcSession is unknown until answered)
	effRole                   // may change the role in effect (current_user)
)

// stmtEffects are st's effects on the path.
func stmtEffects(st *rewrite.Stmt) (e uint8) {
	if st.SearchPath != nil || st.SearchPathReset || st.PathOpaque {
		e |= effPath
	}
	if st.PathOpaque {
		// SET ROLE, SET SESSION AUTHORIZATION, RESET ALL, DISCARD ALL,
		// set_config('role', …), and code that may run any of them.
		e |= effRole
	}
	if st.Kind == rewrite.KindTransaction {
		e |= effTx
	}
	if st.MayChangeTimeZone() {
		e |= effTZ
	}
	return e
}

// pathEffect records that statements with effects e were sent.
func (s *session) pathEffect(e uint8) {
	if e&effTZ != 0 {
		// Until the server has answered up to here, its TimeZone report
		// may be about to change (it comes with that ReadyForQuery).
		s.tzFrom = s.t.lastSeq() + 1
	}
	if e&effPath != 0 {
		s.pathUnknown, s.pathStale = true, true
		s.pathGen++
	}
	if e&effTx != 0 && s.pathStale {
		s.pathUnknown = true
		s.pathGen++
	}
	if e&effRole != 0 {
		s.roleStale = true
	}
	if (e&effRole != 0 || e&effTx != 0 && s.roleStale) && s.roleUnknownFrom.Load() == 0 {
		// Rows of this message and later ones are masked for every
		// column with readers until the server says the role again
		// (applyPath): the path is unknown too, so it is asked before the
		// next statement that may name a configured table.
		s.roleUnknownFrom.Store(s.t.lastSeq() + 1)
	}
}

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
	// earlierUntil, when not 0, is the seq of a close of the name sent
	// after every text in earlier (and before this Parse): once the
	// server confirms it, they are gone (applyClosed; review 19b).
	earlierUntil uint64
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
// every statement). A DEALLOCATE through the extended protocol
// (tracker.closeUnconfirmed) runs at an Execute whose answer confirms
// nothing: its records go at once, as before review 19 (psycopg 3 sends
// one for each statement it evicts from its cache, under a new name
// each time: kept, they would grow without bound).
func (s *session) markClosed(name string) {
	s.applyClosed()
	if s.t.closeUnconfirmed {
		// Marked at each Execute of its portals (handleExecute), whose
		// CommandComplete confirms it (review 19b: marked at the Parse,
		// never confirmed, the records stayed for the session's life).
		return
	}
	seq := s.t.lastSeq() + 1
	for n, pt := range s.ptStmts {
		if closes(name, n) && pt.closedSeq == 0 {
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

// executeCloses marks the names the Execute of portal, pushed next,
// closes, and returns them for its pending (its CommandComplete
// confirms them: tracker.goneLocked).
func (s *session) executeCloses(portal []byte) []string {
	c := s.closePortals[string(portal)]
	for _, name := range c {
		s.markClosed(name)
		s.t.closingAt(name, s.t.lastSeq()+1)
	}
	return c
}

// applyClosed forgets the records of statements the server confirmed
// closed (unless prepared again since).
func (s *session) applyClosed() {
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
			case pt.earlierUntil != 0 && pt.earlierUntil <= c.seq:
				// Prepared again after a close now confirmed: the texts
				// before the close are gone (review 19b: kept, past
				// maxEarlier they refused the name for good).
				pt.earlier, pt.earlierUntil = nil, 0
				s.ptStmts[n] = pt
			}
		}
		for n, pr := range s.sqlPrepared {
			switch {
			case !closes(c.name, n):
			case pr.closedSeq != 0 && pr.closedSeq <= c.seq:
				delete(s.sqlPrepared, n)
			case pr.earlierUntil != 0 && pr.earlierUntil <= c.seq:
				pr.sqls, pr.earlierUntil = pr.sqls[:1], 0
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

// notePassthrough records the pass-through statement name with text sql,
// planned under catalog generation cat.
func (s *session) notePassthrough(name []byte, sql string, cat uint64) {
	s.applyClosed()
	if s.ptStmts == nil {
		s.ptStmts = map[string]ptStmt{}
	}
	pt := ptStmt{sql: sql, gen: s.pathGen, cat: cat}
	if old, ok := s.ptStmts[string(name)]; ok && len(name) > 0 {
		pt.earlier = earlierTexts(append([]string{old.sql}, old.earlier...), sql)
		pt.earlierUntil = old.closedSeq // closed, unconfirmed: see applyClosed
	} else if len(name) == 0 {
		// The unnamed statement: the server replaces it at each Parse,
		// unless it skips the Parse after an error earlier in the
		// pipeline; then it keeps the one before (review 19), which a
		// Bind after the next Sync runs. Texts whose Parse the server
		// confirmed are the last ones it can hold (unnamedSettled).
		texts := s.unnamedTexts()
		s.srvUnnamed = nil
		if len(texts) > 0 {
			pt.earlier = earlierTexts(texts, sql)
		}
	}
	s.ptStmts[string(name)] = pt
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
	if texts := s.unnamedTexts(); len(texts) > 0 {
		s.srvUnnamed = earlierTexts(texts, "")
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
	if pt.gen == s.pathGen && pt.cat == s.eng.planner.Generation() {
		return nil, nil
	}
	if !synced {
		if err := s.syncSearchPathFor(pt.sql); err != nil {
			return nil, err
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
		p, err := s.plan(sql)
		if offLoop(err) {
			return nil, err
		}
		if err != nil || planNeedsWork(p) {
			return staleStatement(nil, "may be a statement the server kept after pgveil's Parse of a newer one was skipped, and now names a table pgveil encrypts"), nil
		}
	}
	return nil, nil
}

// sqlPrep is a statement prepared with SQL PREPARE that pgveil passed.
type sqlPrep struct {
	sqls         []string // the PREPARE statement, then earlier ones (earlierTexts)
	cat          uint64   // the planner's Generation they were planned under
	closedSeq    uint64   // see ptStmt.closedSeq
	earlierUntil uint64   // see ptStmt.earlierUntil
}

// noteSQLPrepare records the SQL PREPARE st, sent.
func (s *session) noteSQLPrepare(st *rewrite.Stmt) {
	s.applyClosed()
	if s.sqlPrepared == nil {
		s.sqlPrepared = map[string]sqlPrep{}
	}
	pr := sqlPrep{sqls: []string{st.Original}, cat: s.planGen}
	if old, ok := s.sqlPrepared[st.Prepares]; ok {
		pr.sqls = append(pr.sqls, earlierTexts(old.sqls, st.Original)...)
		pr.cat = min(pr.cat, old.cat)
		pr.earlierUntil = old.closedSeq
	}
	s.sqlPrepared[st.Prepares] = pr
}

// replanExecuted plans again each SQL PREPARE, made under an older
// catalog, of a statement sql runs with EXECUTE: the server plans the
// statement again when its relations change (a table replaced by a view
// over an encrypted column), and EXECUTE's arguments are written in the
// text, where pgveil cannot seal them. A refusal is returned when the
// PREPARE would be refused now.
func (s *session) replanExecuted(sql string) (*pgError, error) {
	s.applyClosed()
	if len(s.sqlPrepared) == 0 && len(s.ptStmts) == 0 {
		return nil, nil
	}
	defer func(gen uint64) { s.planGen = gen }(s.planGen) // the caller's plan's
	// The names a DO block may run with dynamic SQL too (review 19b).
	for _, name := range append(rewrite.ExecutedNames(sql), rewrite.CodeExecutedNames(sql)...) {
		if _, ok := s.ptStmts[name]; ok && name != "" {
			// A protocol-level statement pgveil passed through, run with
			// SQL EXECUTE: checked as its Bind is (review 19).
			if pe, err := s.replanOnPathChange([]byte(name), true); pe != nil || err != nil {
				return pe, err
			}
		}
		pr, ok := s.sqlPrepared[name]
		if !ok || pr.cat == s.eng.planner.Generation() {
			continue
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
			continue
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
	return nil, nil
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
func (s *session) preparedAgainIfUnsettled(st *Statement) *Statement {
	if st == passthroughStmt || st.replaces != nil || !s.t.parseUnsettled(st.parseSeq) {
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
	if s.t.failedReprepN.Load() == 0 {
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

// noteStmtEffects remembers the effects of a prepared statement (name; ""
// is the unnamed one), which take place at each Execute of its portals.
func (s *session) noteStmtEffects(name []byte, p *rewrite.Plan) {
	var e uint8
	for _, st := range p.Stmts {
		e |= stmtEffects(st)
	}
	switch {
	case e != 0:
		if s.effStmts == nil {
			s.effStmts = map[string]uint8{}
		}
		s.effStmts[string(name)] = e
	case len(s.effStmts) > 0:
		delete(s.effStmts, string(name))
	}
}

// notePortalEffects gives a portal bound to stmt the statement's effects.
func (s *session) notePortalEffects(portal, stmt []byte) {
	if len(s.effStmts) == 0 && len(s.effPortals) == 0 {
		return
	}
	if e := s.effStmts[string(stmt)]; e != 0 {
		if s.effPortals == nil {
			s.effPortals = map[string]uint8{}
		}
		s.effPortals[string(portal)] = e
		return
	}
	delete(s.effPortals, string(portal))
}

// pathReply is the server's answer to syncSearchPath.
type pathReply struct {
	path   []string
	role   string // current_user
	ok     bool
	status byte // transaction status after it
}

// showSearchPath is the Query initSearchPath and syncSearchPath send: the
// path, current_user (what "$user" in it means; SET ROLE changes it), and
// the schemas the role may not use, which the server skips in the path
// (a table there must not shadow a configured one for pgveil). Schemas
// that do not exist stay in: one created later is searched at once.
var showSearchPath = appendQuery(nil, "SELECT pg_catalog.current_setting('search_path'), current_user, "+
	"(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(nspname), ',') FROM pg_catalog.pg_namespace "+
	"WHERE NOT pg_catalog.has_schema_privilege(oid, 'USAGE'))")

// pathRow reads the row of showSearchPath: the schemas to search, and
// the role in effect.
func pathRow(body []byte) (path []string, role string, ok bool) {
	var d dataRow
	if err := d.parse(body); err != nil || len(d.values) != 3 || d.values[0] == nil || d.values[1] == nil {
		return nil, "", false
	}
	role = string(d.values[1])
	path = expandUser(parseSearchPath(string(d.values[0])), role)
	if d.values[2] == nil {
		return path, role, true
	}
	denied := parseSearchPath(string(d.values[2]))
	kept := path[:0]
	for _, s := range path {
		if !slices.Contains(denied, s) {
			kept = append(kept, s)
		}
	}
	return kept, role, true
}

// DDL changes what names mean too: a DROP or RENAME of a table that
// shadowed a configured one. The catalog pgveil plans with is reloaded
// after DDL, but over another connection, which sees only committed
// state. So after DDL the session plans by name (as with the path
// unknown) until it is outside any transaction and the catalog has been
// read again after that (settleDDL).

// errNotSettled: a catalog reload to settle DDL did not succeed.
var errNotSettled = errors.New("pgveil: the catalog was not read after DDL")

// settleDDL ends planning by name after DDL, before sql is planned, once
// the server owes the client nothing and no transaction is open.
//
// Any statement waits, not only one that names a configured table as the
// old snapshot knows them: the DDL may have made a name one pgveil must
// see (a view over a tenant column, Catalog.TenantViews). It is one
// reload per DDL.
func (s *session) settleDDL(sql string) error {
	if !s.ddlUnsettled {
		return nil
	}
	if rest, status := s.t.atRest(); !rest || status != 'I' {
		return nil
	}
	if s.loopRun {
		if s.settleRead {
			return nil // read for this message and not settled: by name
		}
		requested := time.Now()
		return &catalogWait{what: "the catalog after DDL, to settle it", run: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, catalogRefreshTimeout)
			defer cancel()
			if !s.eng.refreshCatalog(ctx, requested) {
				return errNotSettled
			}
			return nil
		}, done: func(err error) { s.ddlUnsettled, s.settleRead = err != nil, true }}
	}
	ctx, cancel := context.WithTimeout(s.ctx, catalogRefreshTimeout)
	defer cancel()
	// Until a snapshot taken after the DDL is in use, plan by name.
	s.ddlUnsettled = !s.eng.refreshCatalog(ctx, time.Now())
	return nil
}

// syncSearchPathFor asks the server for the search_path before sql is
// planned, when the path is unknown, sql may name a configured table, and
// now is a moment to ask: the server owes the client nothing (so the
// question neither waits behind a pipeline nor runs inside the client's
// implicit transaction) and no failed transaction block would refuse it.
// Otherwise sql is planned with the path unknown.
func (s *session) syncSearchPathFor(sql string) error {
	if err := s.settleDDL(sql); err != nil {
		return err
	}
	if !s.pathUnknown || !s.eng.planner.MayReference(sql) {
		return nil
	}
	if rest, status := s.t.atRest(); !rest || status == 'E' {
		return nil
	}
	if s.pathRead {
		// An event loop asked for this message and has the answer
		// (pathAnswered): an unknown path now is one the server would
		// not tell; planned by name.
		s.pathRead = false
		return nil
	}
	if s.pathCh == nil {
		s.pathCh = make(chan pathReply, 1)
	}
	s.srv.metrics.SearchPathReads.Inc()
	s.t.push(pending{kind: pendQuery, suppress: true, pathSync: true})
	s.sw.Write(showSearchPath)
	if s.loopRun {
		// The loop sends the question, sets the message aside, and runs
		// it again once the answer is in (loopengine.go).
		return errPathAsked
	}
	if err := s.sw.Flush(); err != nil {
		return err
	}
	var r pathReply
	select {
	case r = <-s.pathCh:
	case <-s.serverDone:
		return net.ErrClosed // serverToClient told the client why
	}
	s.applyPath(r)
	return nil
}

// applyPath takes the server's answer to the search_path question.
func (s *session) applyPath(r pathReply) {
	if !r.ok {
		return // still unknown; planned by name
	}
	s.searchPath = r.path
	s.pathUnknown = false
	if r.status == 'I' {
		s.pathStale = false
	}
	s.setRole(r.role)
	if r.status == 'I' {
		s.roleStale = false
	}
	s.log.Debug("search_path read again", zap.Strings("search_path", s.searchPath))
}

// setRole records the role in effect the server reported: rows of
// messages sent from now are masked by its readers. Client side.
func (s *session) setRole(role string) {
	if role == "" {
		return
	}
	s.role.Store(&role)
	s.roleUnknownFrom.Store(0)
}

// pathSyncMessage takes a message answering syncSearchPath's query: the
// row (its body), an error, and ReadyForQuery, which sends the answer.
// Server goroutine.
func (s *session) pathSyncMessage(typ byte, body []byte) {
	switch typ {
	case 'D':
		s.syncPath, s.syncRole, s.syncOK = pathRow(body)
	case 'E':
		s.syncOK = false
	case 'Z':
		r := pathReply{path: s.syncPath, role: s.syncRole, ok: s.syncOK}
		if len(body) > 0 {
			r.status = body[0]
		}
		s.syncPath, s.syncRole, s.syncOK = nil, "", false
		s.pathCh <- r // buffered; one question at a time
	}
}

// initSearchPath asks the upstream session for its effective search_path
// (role and database settings, startup options included) before the relay
// starts, so unqualified table names resolve as the server resolves them.
// The client has already received ReadyForQuery; anything it sends waits
// in the socket until the relay reads it, after this exchange.
func (s *session) initSearchPath() error {
	s.sw.Write(showSearchPath)
	if err := s.sw.Flush(); err != nil {
		return err
	}
	var path []string
	var role string
	for {
		typ, _, err := s.sr.readHeader()
		if err != nil {
			return err
		}
		body, err := s.sr.readBody()
		if err != nil {
			return err
		}
		switch typ {
		case 'D':
			var ok bool
			if path, role, ok = pathRow(body); !ok {
				return fmt.Errorf("unexpected search_path row")
			}
		case 'E':
			return fmt.Errorf("reading search_path failed: %s", errorField(body, 'M'))
		case 'S':
			s.noteParameterStatus(body)
			writeMsg(s.cw, 'S', body) // the client must see every ParameterStatus
		case 'Z':
			s.searchPath = path
			s.setRole(role)
			return s.cw.Flush()
		}
	}
}

// parseSearchPath splits a search_path value ("$user", public, "My Schema")
// into schema names, unquoting quoted identifiers.
func parseSearchPath(v string) []string {
	var out []string
	for _, part := range splitOutsideQuotes(v, ',') {
		p := strings.TrimSpace(part)
		if len(p) >= 2 && p[0] == '"' && p[len(p)-1] == '"' {
			p = strings.ReplaceAll(p[1:len(p)-1], `""`, `"`)
		}
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	quoted := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case sep:
			if !quoted {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

// noteParameterStatus follows the settings that change how SQL and values
// are read: standard_conforming_strings (backslashes in literals) and
// client_encoding (pgveil seals UTF-8 text).
func (s *session) noteParameterStatus(body []byte) {
	name, off, ok := cstringBytes(body, 0)
	if !ok {
		return
	}
	v, _, _ := cstringBytes(body, off)
	switch string(name) {
	case "standard_conforming_strings":
		s.backslash.Store(string(v) == "off")
	case "client_encoding":
		s.nonUTF8.Store(!strings.EqualFold(string(v), "UTF8") && !strings.EqualFold(string(v), "UTF-8"))
	case "TimeZone":
		s.utcSession.Store(utcZone(string(v)))
	}
}

// utcZone reports whether a TimeZone setting is UTC at every instant.
func utcZone(z string) bool {
	switch strings.ToUpper(z) {
	case "UTC", "ETC/UTC", "GMT", "ETC/GMT", "UCT", "ETC/UCT", "ZULU", "ETC/ZULU", "UNIVERSAL", "ETC/UNIVERSAL", "GREENWICH", "ETC/GREENWICH", "Z", "GMT0", "ETC/GMT0", "GMT+0", "GMT-0", "ETC/GMT+0", "ETC/GMT-0", "+00", "-00", "UTC0", "00:00", "+00:00":
		return true
	}
	return false
}

// encodingRefusal refuses statements on encrypted columns while the client
// sends text in an encoding other than UTF-8: the same value would be
// sealed and indexed as different bytes than a UTF-8 client's.
func encodingRefusal() *pgError {
	return &pgError{Severity: "ERROR", Code: "22021", Message: "pgveil encrypts text as UTF-8, but this session's client_encoding is not UTF8",
		Hint: "SET client_encoding TO 'UTF8' (or connect with client_encoding=UTF8)"}
}
