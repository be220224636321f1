package proxy

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// Tenant lookups. An UPDATE of a table with a key_context that writes
// encrypted values without naming the tenant (an ORM's UPDATE … SET email
// = $1 WHERE id = $2) has a rewrite.Lookup: before pgveil seals the values
// it asks the server, on the session's own connection, for the tenants of
// the rows the UPDATE will change,
//
//	SELECT DISTINCT <key_context> FROM <relation> WHERE <the UPDATE's WHERE>
//
// and then sends the UPDATE with "AND <key_context> = <that tenant>" in its
// WHERE, so that only rows of the tenant whose key sealed the values
// change, whatever happened between the two statements. Exactly one tenant
// proceeds; several refuse the statement (0A000); none sends the UPDATE
// with NULL for the sealed values and a guard no row meets, so the client
// sees UPDATE 0 as it would have.
//
// A simple Query is looked up with a simple Query of its own, while the
// server owes the client nothing. In the extended protocol the lookup goes
// in the pipeline ahead of the client's message, as Parse, Bind, Execute
// and Flush of pgveil's own statement and portal: it runs in the client's
// transaction, implicit or not, and an error it meets (a WHERE the server
// rejects, an aborted transaction) is the error the client sees, after
// which the server skips the rest up to Sync, as it would have. The client
// side waits for the answer: on the goroutine relay it blocks; on an event
// loop the message is set aside until the answer is in and then runs
// again from the start, finding it in s.lookupReady (errLookupAsked).

// errLookupAsked: on an event loop, the lookup went out; the loop sets the
// client side aside and runs the message again with the answer
// (lookupAnswered, s.lookupReady).
var errLookupAsked = errors.New("pgveil: the message waits for a tenant lookup")

// errHandBack: the message runs on the goroutine relay; the event loop
// hands the session back, which runs the message again from the start.
// A lookup goes there when a COPY of a configured table is ahead of it in
// the pipeline: the loop hands such a COPY to goroutines when the server
// starts it, and would stop reading the server, lookup answer included,
// while the message waits parked.
var errHandBack = errors.New("pgveil: the message runs on the goroutine relay")

// copyAhead reports whether a message the server has yet to answer may
// start a COPY of a configured table.
func (t *tracker) copyAhead() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := 0; i < t.n; i++ {
		p := &t.q[(t.head+i)%len(t.q)]
		switch {
		case p.kind == pendQuery && p.query != nil:
			for _, st := range p.query.plan.Stmts {
				if st.Copy != nil {
					return true
				}
			}
		case p.kind == pendExecute && p.portal != nil && p.portal.Stmt != nil && p.portal.Stmt.Plan != nil:
			if p.portal.Stmt.Plan.Copy != nil {
				return true
			}
		}
	}
	return false
}

// lookupState is the tenant found for the statement being sent.
type lookupState struct {
	tenant string
	none   bool // no row matched: sealed values are sent as NULL
}

// lookupReply is what the server answered to a lookup.
type lookupReply struct {
	tenants []string // distinct, at most 2 kept
	err     bool     // the server answered with an error
	code    string   // the error's SQLSTATE, for the log
}

// lookupMessage takes a message answering a lookup (server side): its
// rows, an error, and the message that completes it, which sends the
// answer. extended: the lookup's Execute (complete at CommandComplete or
// ErrorResponse) rather than a simple Query (complete at ReadyForQuery).
func (s *session) lookupMessage(typ byte, body []byte, extended bool) {
	// In the extended protocol an error may answer the lookup's Parse or
	// Bind (the server then skips the rest): it completes the lookup too.
	switch typ {
	case 'D':
		var d dataRow
		if err := d.parse(body); err != nil || len(d.values) != 1 {
			s.lookupAcc.err = true
			return
		}
		if len(s.lookupAcc.tenants) < 2 {
			v := "\x00null" // a NULL key_context: a tenant of its own, refused below
			if d.values[0] != nil {
				v = string(d.values[0])
			}
			s.lookupAcc.tenants = append(s.lookupAcc.tenants, v)
		}
		return
	case 'E':
		s.lookupAcc.err = true
		s.lookupAcc.code = errorField(body, 'C')
		if !extended {
			return // the answer goes at ReadyForQuery
		}
	case 'C':
		if !extended {
			return
		}
	case 'Z':
	default:
		return
	}
	r := s.lookupAcc
	s.lookupAcc = lookupReply{}
	s.answerLookup(r)
}

// answerLookup hands the answer to the waiting client side, once per
// lookup (an error may answer it, then the skip of its other messages).
func (s *session) answerLookup(r lookupReply) {
	if s.lookupOpen.CompareAndSwap(true, false) {
		s.lookupCh <- r // buffered; one lookup at a time
	}
}

// lookupStatementGone is the client's error when the server answered a
// lookup's Bind with 26000: code pgveil did not see (a DEALLOCATE in a
// function created directly, or in dynamic SQL built from pieces)
// dropped pgveil's lookup statement. pgveil forgets it at this error
// (lookupExtendedAnswer) and prepares it again at the next lookup; the
// server's text would name pgveil's statement only (review 20a).
func lookupStatementGone(dst []byte) []byte {
	for _, f := range [...]struct {
		k byte
		v string
	}{
		{'S', "ERROR"}, {'V', "ERROR"}, {'C', "26000"},
		{'M', "pgveil's tenant lookup statement was deallocated by code in the server that pgveil did not see (a DEALLOCATE in a function or in dynamic SQL)"},
		{'H', "run the statement again (pgveil prepares its lookup again); run DEALLOCATE as a statement of its own, through pgveil"},
	} {
		dst = append(append(append(dst, f.k), f.v...), 0)
	}
	return append(dst, 0)
}

// maxLookupStmts bounds the lookup statements a session keeps prepared.
const maxLookupStmts = 64

// keepLookupStmt records a lookup statement prepared upstream under key,
// closing another when the session keeps too many.
func (s *session) keepLookupStmt(key string, st *Statement) {
	if s.lookupStmts == nil {
		s.lookupStmts = map[string]*Statement{}
	}
	if len(s.lookupStmts) >= maxLookupStmts {
		for k := range s.lookupStmts {
			s.dropLookupStmt(k)
			break
		}
	}
	s.lookupStmts[key] = st
}

// dropLookupStmt forgets a lookup statement and closes it upstream (a
// Close the server skips after an error is sent again later).
func (s *session) dropLookupStmt(key string) {
	if st := s.lookupStmts[key]; st != nil {
		delete(s.lookupStmts, key)
		s.closeUpstream(st)
	}
}

// readyLookup is the answer an event loop got for the message it runs
// again (kept until the message is done: a later wait of the same message
// must not look up again).
func (s *session) readyLookup() (lookupReply, bool) {
	if s.lookupReady == nil {
		return lookupReply{}, false
	}
	return *s.lookupReady, true
}

// lookupChan makes the answer's channel before the first lookup is sent,
// and opens the lookup about to be sent.
func (s *session) lookupChan() {
	if s.lookupCh == nil {
		s.lookupCh = make(chan lookupReply, 1)
		s.t.mu.Lock()
		s.t.lookupDrop = func() {
			s.lookupAcc = lookupReply{}
			s.answerLookup(lookupReply{err: true})
		}
		s.t.mu.Unlock()
	}
	s.lookupOpen.Store(true)
}

// awaitLookup waits for the server's answer to the lookup just sent.
func (s *session) awaitLookup() (lookupReply, error) {
	if err := s.sw.Flush(); err != nil {
		return lookupReply{}, err
	}
	select {
	case r := <-s.lookupCh:
		return r, nil
	case <-s.serverDone:
		return lookupReply{}, net.ErrClosed // serverToClient told the client why
	}
}

// lookupOutcome turns an answer into the tenant to use, or a refusal.
func (s *session) lookupOutcome(lk *rewrite.Lookup, r lookupReply) (*lookupState, *pgError) {
	t := lk.Table
	if lk.Move != nil {
		if len(r.tenants) == 0 {
			s.inc(s.srv.metrics.TenantLookups.WithLabelValues("stays"))
			return &lookupState{none: true}, nil // nothing is sealed under a looked-up tenant
		}
		s.inc(s.srv.metrics.TenantLookups.WithLabelValues("moves"))
		return nil, tenantMoves(lk)
	}
	outcome := "one"
	switch {
	case len(r.tenants) == 0:
		outcome = "none"
	case len(r.tenants) > 1:
		outcome = "several"
	}
	s.inc(s.srv.metrics.TenantLookups.WithLabelValues(outcome))
	switch {
	case len(r.tenants) == 0:
		return &lookupState{none: true}, nil
	case len(r.tenants) > 1:
		return nil, &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
			Message: fmt.Sprintf("pgveil: this UPDATE of %s would change rows of more than one tenant (%s): each tenant's values are encrypted under its own key", t.QualifiedName(), t.KeyContext),
			Hint:    fmt.Sprintf("update one tenant's rows at a time: add %s = … to the WHERE", t.KeyContext)}
	case r.tenants[0] == "\x00null":
		return nil, tenantNull(t).(*pgError)
	}
	cat := s.eng.catalog()
	var tenant string
	var err error
	if lk.Send != "" {
		// Review 21a: a date, timestamp or float tenant is looked up as
		// its send form (a bytea), which no session setting changes
		// (reviews 20b, 20d: it was read as printed, under the DateStyle
		// and extra_float_digits pgveil thought the session had).
		if typ, b := cat.tenantType(t), cat.tenantBaseOf(t); rewrite.TenantSend(typ, b) != lk.Send {
			err = fmt.Errorf("the catalog changed the type of %s.%s", t.QualifiedName(), t.KeyContext)
		} else {
			rc := resultCol{tenantType: typ, tenantBase: b}
			tenant, err = s.sentTenant(&rc, canon.TextFormat, []byte(r.tenants[0]))
		}
	} else if tenant, err = canon.TenantText(cat.tenantType(t), canon.TextFormat, []byte(r.tenants[0])); err != nil {
		return nil, refusalFrom(err)
	}
	// As a written value is named (a no-op on a value PostgreSQL printed
	// with the default settings). A value pgveil cannot read back is
	// refused, not named as printed (review 19c: a domain over
	// timestamp's values were sealed under '01/02/2026 …', and the row
	// opened in no session).
	if err == nil {
		tenant, err = cat.storedTenant(t, tenant)
	}
	if err != nil {
		pe := refusalFrom(err)
		if pe.Table == "" {
			pe.Schema, pe.Table, pe.Column = t.Schema, t.Name, t.KeyContext
			pe.Message = fmt.Sprintf("pgveil: the %s value of the rows this UPDATE of %s changes, as this session prints it, does not name their tenant: %s", t.KeyContext, t.QualifiedName(), pe.Message)
			pe.Hint = "write " + t.KeyContext + " = … in WHERE"
		}
		return nil, pe
	}
	return &lookupState{tenant: tenant}, nil
}

// tenantMoves refuses an UPDATE that would move rows with encrypted values
// to another tenant.
func tenantMoves(lk *rewrite.Lookup) *pgError {
	t, cols := lk.Table, strings.Join(lk.Move.Columns, ", ")
	return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported, Schema: t.Schema, Table: t.Name,
		Message: fmt.Sprintf("pgveil: this UPDATE would move rows of %s to another tenant (%s) and keep their encrypted values (%s), sealed under the old tenant's key: they would no longer open", t.QualifiedName(), t.KeyContext, cols),
		Hint:    fmt.Sprintf("set every encrypted column (%s) in the same UPDATE: pgveil seals them under the new tenant", cols)}
}

// lookupMissing refuses the UPDATE of lk when pgveil cannot run its
// lookup (why: the remedy, after "or").
func lookupMissing(lk *rewrite.Lookup, why string) *pgError {
	t := lk.Table
	if lk.Move != nil {
		pe := tenantMoves(lk)
		pe.Message = fmt.Sprintf("pgveil cannot check that this UPDATE of %s moves no row with encrypted values (%s) to another tenant (%s): they would no longer open", t.QualifiedName(), strings.Join(lk.Move.Columns, ", "), t.KeyContext)
		pe.Hint += "; or " + why
		return pe
	}
	pe := tenantMissing(t).(*pgError)
	pe.Hint = why + fmt.Sprintf(", or add %s = … to its WHERE", t.KeyContext)
	return pe
}

// lookupQuery looks up the tenant of a simple Query's UPDATE (the whole
// string: a statement before it could change the rows the lookup reads).
// With (nil, nil) and no s.lookup, the Query is answered already.
func (s *session) lookupQuery(sql string, p *rewrite.Plan, st *rewrite.Stmt) (*pgError, error) {
	lk := st.Lookup
	if len(p.Stmts) != 1 {
		return lookupMissing(lk, "send this UPDATE in a query string of its own (pgveil then reads its rows first)"), nil
	}
	r, ok := s.readyLookup()
	if ok {
		return s.lookupQueryAnswer(lk, r)
	}
	rest, status := s.t.atRest()
	if !rest {
		return lookupMissing(lk, "wait for the answers to earlier queries before this UPDATE (pgveil then reads its rows first)"), nil
	}
	if status == 'E' {
		return &pgError{Severity: "ERROR", Code: "25P02", Message: "current transaction is aborted, commands ignored until end of transaction block"}, nil
	}
	_, text, pe, err := s.lookupStatement(sql, st)
	if pe != nil || err != nil {
		return pe, err
	}
	s.lookupChan()
	s.t.push(pending{kind: pendQuery, suppress: true, lookup: true})
	s.sw.Write(appendQuery(s.scratch[:0], text))
	if s.loopRun {
		return nil, errLookupAsked
	}
	if r, err = s.awaitLookup(); err != nil {
		return nil, err
	}
	return s.lookupQueryAnswer(lk, r)
}

// lookupStatement plans and renders the lookup of st (the client's string
// sql) as any statement: an encrypted predicate becomes a blind-index
// comparison. A refusal, or an error that makes the message wait (a key
// on an event loop), comes back instead.
func (s *session) lookupStatement(sql string, st *rewrite.Stmt) (*rewrite.Stmt, string, *pgError, error) {
	lsql := st.Lookup.Text(sql)
	lp, err := s.plan(lsql)
	if err == nil && len(lp.Stmts) != 1 {
		err = fmt.Errorf("pgveil internal error: a tenant lookup of %d statements", len(lp.Stmts))
	}
	text := lsql
	if err == nil && lp.Rewritten {
		text, err = lp.Render(lsql, func(x *rewrite.Stmt, slot *rewrite.Slot) (string, error) {
			return s.fillLiteral(lsql, x, slot)
		})
	}
	switch {
	case offLoop(err):
		return nil, "", nil, err
	case err != nil:
		return nil, "", refusalFrom(err), nil
	}
	return lp.Stmts[0], text, nil, nil
}

// lookupQueryAnswer takes the answer to a simple Query's lookup.
func (s *session) lookupQueryAnswer(lk *rewrite.Lookup, r lookupReply) (*pgError, error) {
	if r.err {
		// The server's error, which the UPDATE would have met (the WHERE
		// it rejects), went to the client with the ReadyForQuery after
		// it: the client's Query is answered. Logged by SQLSTATE only: its
		// message may quote a value of the WHERE.
		s.inc(s.srv.metrics.Statements.WithLabelValues("refused"))
		s.inc(s.srv.metrics.TenantLookups.WithLabelValues("error"))
		s.log.Info("tenant lookup failed", zap.String("sqlstate", r.code))
		return nil, nil
	}
	ls, pe := s.lookupOutcome(lk, r)
	s.lookup = ls
	return pe, nil
}

// lookupExtended looks up the tenant of an extended-protocol UPDATE, in
// the client's pipeline: with the client's parameters bm (nil at Parse,
// for a statement without parameters). It reports handled when the
// client's message is answered already (the lookup's error went to the
// client, or a refusal was injected): the message is then dropped.
func (s *session) lookupExtended(sql string, st *rewrite.Stmt, bm *bindMsg, paramOIDs []uint32) (handled bool, err error) {
	lk := st.Lookup
	if r, ok := s.readyLookup(); ok {
		return s.lookupExtendedAnswer(lk, r)
	}
	if s.loopRun && s.t.copyAhead() {
		return false, errHandBack
	}
	lst, text, pe, err := s.lookupStatement(sql, st)
	if err != nil {
		return false, err
	}
	if pe != nil {
		if s.lookupDropsUnnamed {
			s.dropUnnamedEverywhere()
		}
		s.injectExtendedError(pe)
		return true, nil
	}
	lsql := st.Lookup.Text(sql)
	// The lookup binds the client's parameters its WHERE uses; the others
	// are NULL, declared text (a type the server need not infer).
	n := lst.ClientParams
	oids := make([]uint32, n)
	lbm := &bindMsg{}
	if bm != nil {
		// The client's format codes: none, one for all, or one each (then
		// those of the parameters the lookup binds).
		switch f := bm.ParamFormats; {
		case len(f) == 1:
			lbm.ParamFormats = []int16{f[0]}
		case len(f) > 1:
			for i := 0; i < n; i++ {
				lbm.ParamFormats = append(lbm.ParamFormats, bm.paramFormat(i))
			}
		}
	}
	for i := 0; i < n; i++ {
		used := i < len(st.Lookup.Uses) && st.Lookup.Uses[i]
		if !used || bm == nil || i >= len(bm.Params) {
			oids[i] = policy.OIDText
			lbm.Params = append(lbm.Params, nil)
			continue
		}
		if i < len(paramOIDs) {
			oids[i] = paramOIDs[i]
		}
		lbm.Params = append(lbm.Params, bm.Params[i])
	}
	stmt := &Statement{Plan: lst, SQL: lsql, ParamOIDs: oids}
	if !stmtRewritten(lst) {
		stmt.Plan = &rewrite.Stmt{ClientParams: n}
	}
	// The lookup of a statement with parameters is prepared once per
	// session, text and types (lookupStmts): the server parses and plans
	// it once, as it does the UPDATE. One without parameters (literals,
	// looked up at Parse) is prepared and closed each time: its text
	// varies with the values.
	upOIDs := s.serverParamOIDs(stmt)
	key := ""
	if bm != nil {
		key = text + "\x00" + fmt.Sprint(upOIDs)
	}
	cached := s.lookupStmts[key]
	if cached != nil {
		stmt = cached
	} else {
		stmt.Name = s.serverStmtName()
		stmt.ServerName = stmt.Name
	}
	name := stmt.ServerName
	out, cerr := s.convertBind(stmt, lbm)
	if cerr != nil {
		if offLoop(cerr) {
			return false, cerr
		}
		if s.lookupDropsUnnamed {
			s.dropUnnamedEverywhere()
		}
		s.injectExtendedError(refusalFrom(cerr))
		return true, nil
	}
	out.Portal = []byte(name)
	out.ResultFormats = out.ResultFormats[:0] // the tenant in text
	b := s.scratch[:0]
	ps := make([]pending, 0, 7)
	// An unnamed Parse drops the unnamed statement, whatever the lookup
	// answers (PostgreSQL drops it first): pgveil's upstream statement
	// for it and the server's own are closed ahead of the lookup, in the
	// same push (none of it if the server is skipping: then so would it
	// skip the client's Parse).
	var dropOld *Statement
	dropServer := false
	if s.lookupDropsUnnamed {
		if old := s.t.statement(nil); old != passthroughStmt && old.ServerName != "" {
			dropOld = old
			b = appendDescribeOrClose(b, 'C', 'S', old.ServerName)
			ps = append(ps, pending{kind: pendCloseStmt, suppress: true, stmt: old})
		}
		if dropServer = s.t.serverUnnamed.Swap(false); dropServer {
			b = appendDescribeOrClose(b, 'C', 'S', "")
			ps = append(ps, pending{kind: pendCloseStmt, suppress: true, stmt: serverUnnamedSlot})
		}
	}
	if cached == nil {
		b = appendParse(b, name, text, upOIDs)
		ps = append(ps, pending{kind: pendParse, suppress: true, lookup: true})
	}
	b = appendBind(b, out)
	b = appendExecute(b, name, 0)
	b = appendDescribeOrClose(b, 'C', 'P', name)
	ps = append(ps,
		pending{kind: pendBind, suppress: true, lookup: true},
		pending{kind: pendExecute, lookup: true},
		pending{kind: pendClosePortal, suppress: true})
	if key == "" {
		b = appendDescribeOrClose(b, 'C', 'S', name)
		// With the statement: a Close the server skips after an error is
		// sent again (takeFailedCloses), or the statement would stay.
		ps = append(ps, pending{kind: pendCloseStmt, suppress: true, stmt: stmt})
	}
	b = append(b, 'H', 0, 0, 0, 4) // Flush
	s.lookupChan()
	if !s.t.pushUnlessSkipping(ps...) {
		// The server skips everything up to Sync after an error in the
		// pipeline; so does pgveil (the client has that error).
		s.inc(s.srv.metrics.TenantLookups.WithLabelValues("error"))
		s.lookupOpen.Store(false)
		s.refusing = true
		if dropServer {
			s.t.serverUnnamed.Store(true)
		}
		return true, nil
	}
	if dropOld != nil {
		s.t.defineStatement(nil, passthroughStmt)
	}
	s.sw.Write(b)
	s.scratch = b[:0]
	if key != "" && cached == nil {
		s.keepLookupStmt(key, stmt)
	}
	s.lookupKey = key
	if s.loopRun {
		return false, errLookupAsked
	}
	r, err := s.awaitLookup()
	if err != nil {
		return false, err
	}
	return s.lookupExtendedAnswer(lk, r)
}

// lookupExtendedAnswer takes the answer to an extended-protocol lookup.
func (s *session) lookupExtendedAnswer(lk *rewrite.Lookup, r lookupReply) (handled bool, err error) {
	if r.err {
		// The statement may not exist (its Parse failed) or be unusable:
		// prepared again next time.
		s.dropLookupStmt(s.lookupKey)
		// The client has the server's error; the server skips the rest
		// of the pipeline up to Sync, and so does pgveil.
		s.inc(s.srv.metrics.TenantLookups.WithLabelValues("error"))
		s.refusing = true
		return true, nil
	}
	ls, pe := s.lookupOutcome(lk, r)
	if pe != nil {
		s.injectExtendedError(pe)
		return true, nil
	}
	s.lookup = ls
	return false, nil
}

// lookupOf is the statement of p whose tenant pgveil looks up, or nil.
func lookupOf(p *rewrite.Plan) *rewrite.Stmt {
	for _, st := range p.Stmts {
		if st.Lookup != nil {
			return st
		}
	}
	return nil
}
