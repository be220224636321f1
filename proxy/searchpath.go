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
	if s.tzStale {
		if rest, status := s.t.atRest(); rest && status == 'I' {
			s.tzStale = false // answered outside a block: no end undoes it
		}
	}
	if e&effTZ != 0 || e&effTx != 0 && s.tzStale {
		// Until the server has answered up to here, its TimeZone report
		// may be about to change (it comes with that ReadyForQuery). A
		// transaction end (COMMIT, ROLLBACK [TO SAVEPOINT]) after a change
		// may undo it (review 20f: SET LOCAL TimeZone 'UTC' in a Berlin
		// session, then COMMIT pipelined with a timestamptz parameter for
		// a date tenant: named in UTC, stored in Berlin's date).
		s.tzFrom = s.t.lastSeq() + 1
		s.tzStale = true
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

// sessionEffects is stmtEffects, and those of the SQL PREPAREs an SQL
// EXECUTE in st runs (sqlPrepared): a prepared statement (a query or DML)
// changes a setting only through set_config (or a function, which makes
// the EXECUTE PathOpaque), so one whose text calls it, or may spell it
// (U&"…"), or a name pgveil did not see prepared, may change any:
// EXECUTE p, where p is SELECT set_config('DateStyle', …), changes the
// DateStyle while its own text names none (review 20d: the rows sent
// with it were read in the order last reported, and a value moved from
// another tenant's row opened; one setting TimeZone had a timestamptz
// parameter's date tenant named in UTC while the server stored Berlin's
// date). Client side.
func (s *session) sessionEffects(st *rewrite.Stmt) uint8 {
	const all = effPath | effTZ | effRole
	e := stmtEffects(st)
	if st.FetchCursor != "" {
		e |= s.cursorEff[st.FetchCursor]
	}
	if e&all == all {
		return e
	}
	if c := s.eng.catalog(); c != nil && c.pathDDL && firesEventTrigger(st) {
		// An event trigger runs code that may change the settings at the
		// end of DDL (SELECT … INTO too): review 20f.
		return e | all
	}
	if !hasWordFold(st.Original, "execute") {
		return e // no parse for executed_at and the like
	}
	for _, name := range rewrite.ExecutedNames(st.Original) {
		pr, ok := s.sqlPrepared[name]
		if !ok {
			return e | all
		}
		for _, sql := range pr.sqls {
			if lower := strings.ToLower(sql); strings.Contains(lower, "set_config") || strings.Contains(lower, "u&") {
				return e | all
			}
		}
	}
	return e
}

// firesEventTrigger reports whether st may fire an event trigger: DDL,
// SELECT … INTO (also after WITH, which the fast path leaves KindOther),
// EXPLAIN ANALYZE of CREATE TABLE AS.
func firesEventTrigger(st *rewrite.Stmt) bool {
	switch st.Kind {
	case rewrite.KindDDL:
		return true
	case rewrite.KindSelect, rewrite.KindOther:
		return hasWordFold(st.Original, "into")
	case rewrite.KindExplain:
		return hasWordFold(st.Original, "create") || hasWordFold(st.Original, "into")
	}
	return false
}

// hasWordFold reports whether s holds w (lower case ASCII) as a word of
// its own, in any case: not inside an identifier (executed_at).
func hasWordFold(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if !strings.EqualFold(s[i:i+len(w)], w) {
			continue
		}
		if (i == 0 || !identByte(s[i-1])) && (i+len(w) == len(s) || !identByte(s[i+len(w)])) {
			return true
		}
	}
	return false
}

// noteStmtEffects remembers the effects of a prepared statement (name; ""
// is the unnamed one), which take place at each Execute of its portals.
func (s *session) noteStmtEffects(name []byte, p *rewrite.Plan) {
	var e uint8
	for _, st := range p.Stmts {
		e |= s.sessionEffects(st)
		if st.Declares != "" {
			s.noteCursorEffects(st, false) // at Parse: only ever added
		}
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

// refreshStmtEffects takes, at a Bind, the effects of a prepared
// statement planned under an older catalog from its text planned now,
// while the database has code that changes the settings: the statement
// may call a function (name a view, …) that did not change them when it
// was prepared (review 20f: SELECT f(), secret … prepared, then f
// replaced through pgveil by one setting the DateStyle, then Execute:
// its rows were read in the order last reported, and a value moved from
// another tenant's row opened). Text it cannot plan may change any.
// Client side.
func (s *session) refreshStmtEffects(name []byte) {
	c := s.eng.catalog()
	if c == nil || c.rw == nil || len(c.rw.PathFunctions) == 0 && len(c.rw.PathRelations) == 0 && !c.pathDDL {
		return
	}
	gen := s.eng.planner.Generation()
	var sqls []string
	if stmt := s.t.statement(name); stmt != nil && stmt != passthroughStmt {
		if stmt.catGen == gen {
			return
		}
		sqls = []string{stmt.SQL}
	} else {
		pt, ok := s.ptStmts[string(name)]
		if !ok || pt.cat == gen {
			return
		}
		// The texts the server may hold for the name: a Parse it refused
		// (42P05) or skipped leaves the one before (review 21c).
		sqls = append([]string{pt.sql}, pt.earlier...)
	}
	const all = effPath | effTZ | effRole
	var e uint8
	for _, sql := range sqls {
		p, err := s.eng.planner.Plan(sql, s.planSession())
		if err != nil {
			e = all
			break
		}
		for _, st := range p.Stmts {
			e |= s.sessionEffects(st)
		}
	}
	if e == 0 {
		delete(s.effStmts, string(name))
		return
	}
	if s.effStmts == nil {
		s.effStmts = map[string]uint8{}
	}
	s.effStmts[string(name)] |= e
}

// forgetDeadPortals drops the notes of portals (effects, closes, SQL
// PREPAREs) once they are many and the session is idle, every message
// answered: no portal is alive then (review 21i: a pooler session binding
// distinct portal names to a statement with effects kept a note of each).
func (s *session) forgetDeadPortals() {
	if len(s.effPortals)+len(s.prepPortals)+len(s.closePortals) < maxIdlePortals {
		return
	}
	if rest, status := s.t.atRest(); rest && status == 'I' {
		clear(s.effPortals)
		clear(s.prepPortals)
		clear(s.closePortals)
	}
}

// notePortalEffects gives a portal bound to stmt the statement's effects.
func (s *session) notePortalEffects(portal, stmt []byte) {
	s.forgetDeadPortals()
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

// pathRow reads the row of showSearchPath: the schemas to search and the
// role in effect.
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
// are read: standard_conforming_strings (backslashes in literals),
// client_encoding (pgveil seals UTF-8 text) and TimeZone (how a
// timestamptz parameter for a date tenant converts). A date, timestamp or
// float tenant is read as its send form, whatever DateStyle or
// extra_float_digits print it as (review 21a).
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
