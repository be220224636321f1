package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// The way in: statements are planned, literals and parameters of encrypted
// columns are sealed and indexed, and the rewritten messages go upstream.
// Nothing here ever forwards the plaintext of an encrypted column: a value
// that cannot be sealed makes the statement fail (see inject.go).

// planSession is what the planner knows of this session.
func (s *session) planSession() rewrite.Session {
	if s.pathUnknown || s.ddlUnsettled {
		return rewrite.Session{PathUnknown: true, BackslashStrings: s.backslash.Load(), NoPins: s.nonUTF8.Load()}
	}
	return rewrite.Session{SearchPath: s.searchPath, BackslashStrings: s.backslash.Load(), NoPins: s.nonUTF8.Load()}
}

// planNow plans one statement string, timing the phase. It never waits
// (the event loop uses it).
func (s *session) planNow(sql string) (*rewrite.Plan, error) {
	start := time.Now()
	s.planGen = s.eng.planner.Generation()
	p, err := s.eng.planner.Plan(sql, s.planSession())
	s.observe(s.srv.metrics.phasePlan, time.Since(start).Seconds())
	return p, err
}

// plan is planNow that, when the refusal rests on the catalog snapshot
// lacking a relation (rewrite.Error.Stale: a table created directly in
// the database since), reads the catalog again, at most once per
// staleRefreshEvery per engine, and plans once more.
func (s *session) plan(sql string) (*rewrite.Plan, error) {
	p, err := s.planNow(sql)
	var re *rewrite.Error
	if err == nil || !errors.As(err, &re) || !re.Stale {
		return p, err
	}
	if s.loopRun {
		if s.staleRead || !s.eng.staleDue() {
			return p, err // read again for this message, or too recently: still missing
		}
		return nil, &catalogWait{what: "the catalog, for a relation it lacks", run: func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, catalogRefreshTimeout)
			defer cancel()
			s.eng.refreshStale(ctx)
			return nil
		}, done: func(error) { s.staleRead = true }}
	}
	ctx, cancel := context.WithTimeout(s.ctx, catalogRefreshTimeout)
	defer cancel()
	if !s.eng.refreshStale(ctx) {
		return p, err
	}
	return s.planNow(sql)
}

// refusalFrom turns a planner or conversion error into the error the
// server will raise for pgveil. Unknown errors become a generic refusal:
// failing closed, never passing the statement through.
func refusalFrom(err error) *pgError {
	var re *rewrite.Error
	if errors.As(err, &re) {
		return &pgError{Severity: "ERROR", Code: re.Code, Message: re.Message, Detail: re.Detail, Hint: re.Hint,
			Schema: re.Schema, Table: re.Table, Column: re.Column}
	}
	var pe *pgError
	if errors.As(err, &pe) {
		return pe
	}
	var ce *canon.Error
	if errors.As(err, &ce) {
		return &pgError{Severity: "ERROR", Code: ce.SQLState(), Message: "pgveil: " + ce.Error()}
	}
	var ss sqlStater
	if errors.As(err, &ss) {
		return &pgError{Severity: "ERROR", Code: ss.SQLState(), Message: "pgveil: " + err.Error()}
	}
	if keysource.IsRetryable(err) {
		return &pgError{Severity: "ERROR", Code: "58000", Message: "pgveil could not reach its master key source; retry later", Detail: err.Error()}
	}
	return &pgError{Severity: "ERROR", Code: codeInternalError, Message: "pgveil could not encrypt a value of this statement", Detail: safeDetail(err)}
}

// safeDetail is an error text for a client: errors from pgveil's own
// packages never carry values, so their text is safe.
func safeDetail(err error) string { return err.Error() }

// planNeedsWork reports whether the proxy has anything to do for a plan.
func planNeedsWork(p *rewrite.Plan) bool {
	if p.Rewritten {
		return true
	}
	for _, st := range p.Stmts {
		// A FETCH is mapped by its cursor when it runs (fetchStatement); a
		// DECLARE's cursor is recorded when it completes (declaredBy).
		if st.Outputs != nil || st.OutputsByOrigin || st.Copy != nil || st.Kind == rewrite.KindDDL || st.Fetch != "" || st.Declares != "" {
			return true
		}
	}
	return false
}

// applyEffects records what the statements of a plan change in the
// session's view, when they are sent: prepared statements deallocated, DDL,
// and the search_path, which becomes unknown until the server is asked
// again (searchpath.go).
func (s *session) applyEffects(p *rewrite.Plan) {
	for _, st := range p.Stmts {
		s.pathEffect(s.sessionEffects(st))
		s.cursorEffect(st)
		if st.Deallocate != "" && !s.deferCloses {
			s.closeEffects(st.Deallocate)
		}
		if st.Prepares != "" {
			s.noteSQLPrepare(st)
		}
		s.executedPrepares(st)
		if st.Kind == rewrite.KindDDL {
			s.ddlSent = true
			s.ddlUnsettled = true
		}
	}
}

// closeEffects records a DEALLOCATE or DISCARD ALL of name ("*": every
// statement) in the session's view as the message that runs it is sent:
// a simple Query, or an Execute of an extended-protocol one
// (executeCloses).
func (s *session) closeEffects(name string) {
	switch name {
	case "*":
		if st := s.t.stmts[""]; st != nil && st.renamed() {
			// PostgreSQL keeps the unnamed statement; pgveil's upstream
			// one for it goes (review 20a).
			s.unnamedLost = st
		}
		s.t.forgetStatements()
		s.markClosed("*")
		// The server drops pgveil's lookup statements too, if it runs
		// the close: they are closed ahead of it, so that one the server
		// refuses (DISCARD ALL in a transaction block) leaves none
		// upstream without an owner (review 20a).
		for key := range s.lookupStmts {
			s.dropLookupStmt(key)
		}
	default:
		// The server's confirmations of earlier closes are taken
		// first: a session that closes pass-through statements only,
		// and never binds one, had them pile up (review 19b).
		s.t.applyGone()
		s.t.closeStatement([]byte(name))
		s.markClosed(name)
	}
}

// expandUser replaces "$user" in a search path with the role name.
func expandUser(path []string, user string) []string {
	out := make([]string, 0, len(path))
	for _, p := range path {
		if p == "$user" {
			p = user
		}
		out = append(out, p)
	}
	return out
}

// handleQuery plans a simple Query and sends it, rewritten or as it came.
func (s *session) handleQuery(body []byte) error {
	if len(body) == 0 || body[len(body)-1] != 0 {
		return &protocolError{msg: "malformed Query message"}
	}
	if err := s.refreshCatalogIfNeeded(); err != nil {
		return err
	}
	sql := string(body[:len(body)-1])
	if err := s.syncSearchPathFor(sql); err != nil {
		return err
	}
	p, err := s.plan(sql)
	if err != nil {
		if offLoop(err) {
			return err
		}
		s.injectQueryError(refusalFrom(err))
		return nil
	}
	p = s.withCursors(p)
	if perr := copyMix(p); perr != nil {
		s.injectQueryError(perr)
		return nil
	}
	if perr := s.executesOwn(sql); perr != nil {
		s.injectQueryError(perr)
		return nil
	}
	if perr := s.preparesOwn(p); perr != nil {
		s.injectQueryError(perr)
		return nil
	}
	if perr, err := s.replanExecuted(sql); err != nil || perr != nil {
		if perr != nil {
			s.injectQueryError(perr)
		}
		return err
	}
	if perr, err := s.checkCursorCode(p.Stmts); err != nil || perr != nil {
		if perr != nil {
			s.injectQueryError(perr)
		}
		return err
	}
	s.noteCursorCode(p.Stmts)
	if st := lookupOf(p); st != nil {
		perr, err := s.lookupQuery(sql, p, st)
		if err != nil {
			return err
		}
		if perr != nil {
			s.injectQueryError(perr)
			return nil
		}
		if s.lookup == nil {
			return nil // answered with the lookup's error
		}
		defer func() { s.lookup = nil }()
	}
	s.copyOver(mayCopy(p))
	if text, renamed, ok, perr := s.deallocateUpstreamNames(sql, p); perr != nil {
		s.injectQueryError(perr)
		return nil
	} else if ok {
		s.applyEffects(p)
		s.inc(s.srv.metrics.stmtRewritten)
		s.dropUnnamed()
		s.t.push(pending{kind: pendQuery, query: &queryState{plan: p, sql: sql, sent: text, backslash: s.backslash.Load(), renamed: renamed}, sent: time.Now()})
		s.sw.Write(appendQuery(s.scratch[:0], text))
		return nil
	}
	if !planNeedsWork(p) {
		s.applyEffects(p)
		s.inc(s.srv.metrics.stmtPassthrough)
		s.dropUnnamed()
		pd := pending{kind: pendQuery}
		for _, st := range p.Stmts {
			if st.Deallocate != "" || st.Prepares != "" {
				// Its CommandComplete confirms the statements gone
				// (ghosts); its ErrorResponse says which PREPAREs did not
				// run (tracker.failedPreps).
				pd.query = &queryState{plan: p}
				break
			}
		}
		s.t.push(pd)
		s.sw.Write(s.cr.header())
		s.sw.Write(body)
		return nil
	}
	if s.nonUTF8.Load() {
		s.injectQueryError(encodingRefusal())
		return nil
	}
	text := sql
	if p.Rewritten {
		start := time.Now()
		err = s.sameTenants(p, sql)
		if err == nil {
			text, err = p.Render(sql, func(st *rewrite.Stmt, slot *rewrite.Slot) (string, error) {
				return s.fillLiteral(sql, st, slot)
			})
		}
		s.observe(s.srv.metrics.phaseCrypto, time.Since(start).Seconds())
		if err != nil {
			if offLoop(err) {
				return err
			}
			s.injectQueryError(refusalFrom(err))
			return nil
		}
		s.countRewritten(p)
	} else {
		s.inc(s.srv.metrics.stmtPassthrough)
	}
	s.applyEffects(p)
	qs := &queryState{plan: p}
	if text != sql {
		qs.sql, qs.sent, qs.backslash = sql, text, s.backslash.Load()
	}
	s.dropUnnamed()
	s.t.push(pending{kind: pendQuery, query: qs, sent: time.Now()})
	for _, st := range p.Stmts {
		if st.Copy != nil && st.Copy.From {
			s.setCopyPlan(st)
			break
		}
	}
	s.sw.Write(appendQuery(s.scratch[:0], text))
	return nil
}

// executesOwn refuses SQL EXECUTE of a statement pgveil prepared upstream
// under a name of its own (one it rewrote): the arguments would go to the
// server as written, values compared with or written to encrypted
// columns included, and the server, which knows no statement of the
// client's name, would reject it and log the text with them.
func (s *session) executesOwn(sql string) *pgError {
	for _, name := range rewrite.ExecutedNames(sql) {
		if name != "" && s.t.statement([]byte(name)) != passthroughStmt {
			return &pgError{Severity: "ERROR", Code: "0A000",
				Message: fmt.Sprintf("pgveil prepared statement %q with encrypted columns under a name of its own: SQL EXECUTE would send its arguments unencrypted", name),
				Hint:    "run it with Bind and Execute (the extended protocol)"}
		}
	}
	return nil
}

// preparesOwn is PostgreSQL's 42P05 for an SQL PREPARE of a name the
// client prepared in the protocol as a statement pgveil rewrote: that one
// lives upstream under pgveil's name, so the server would not see the
// clash and would prepare a second statement of the name (left behind by
// a later DEALLOCATE, which pgveil sends for its own).
func (s *session) preparesOwn(p *rewrite.Plan) *pgError {
	all := false
	var gone []string
	for _, st := range p.Stmts {
		switch st.Deallocate {
		case "":
		case "*":
			all = true
		default:
			gone = append(gone, st.Deallocate)
		}
		if st.Prepares == "" || all || slices.Contains(gone, st.Prepares) {
			continue
		}
		s.t.restoreUnclosed(st.Prepares)
		if name := []byte(st.Prepares); s.t.hasStatement(name) && s.t.statement(name).renamed() {
			return &pgError{Severity: "ERROR", Code: "42P05", Message: fmt.Sprintf("prepared statement \"%s\" already exists", st.Prepares)}
		}
	}
	return nil
}

// writesParam reports whether the client's parameter client is encrypted
// into a column by st (its blind index beside it is the written value's,
// not a comparison).
func writesParam(st *rewrite.Stmt, client int) bool {
	for _, p := range st.Params {
		if p.Client == client && p.Action == rewrite.Encrypt {
			return true
		}
	}
	return false
}

// deallocateUpstream rewrites an SQL DEALLOCATE of a statement pgveil
// prepared upstream under a name of its own (Statement.ServerName) to name
// that statement: the server has none of the client's name. Drivers drop
// protocol-level statements this way (Rails' statement pool, psycopg 3
// with libpq before 17). ok is false when no DEALLOCATE in p names such a
// statement; then sql goes on as planned.
func (s *session) deallocateUpstream(sql string, p *rewrite.Plan) (text string, ok bool, perr *pgError) {
	text, _, ok, perr = s.deallocateUpstreamNames(sql, p)
	return text, ok, perr
}

// deallocateUpstreamNames is deallocateUpstream that also returns the
// statements whose names it replaced (the server's errors name them by
// pgveil's names: clientWords).
func (s *session) deallocateUpstreamNames(sql string, p *rewrite.Plan) (text string, renamed []*Statement, ok bool, perr *pgError) {
	var b strings.Builder
	cur := 0
	for _, st := range p.Stmts {
		if st.Deallocate == "" || st.Deallocate == "*" {
			continue
		}
		stmt := s.t.statement([]byte(st.Deallocate))
		if !stmt.renamed() {
			continue
		}
		if planNeedsWork(p) {
			// Another statement of the string needs pgveil (a rewrite, a
			// decryption, COPY data): it is not sent by this path.
			return "", nil, false, &pgError{Severity: "ERROR", Code: "0A000",
				Message: fmt.Sprintf("pgveil cannot send DEALLOCATE %q in one query string with a statement on an encrypted table", st.Deallocate),
				Hint:    "send the DEALLOCATE in a query of its own"}
		}
		b.WriteString(sql[cur:st.OriginalStart])
		b.WriteString(`DEALLOCATE "` + stmt.ServerName + `"`)
		cur = st.OriginalStart + len(st.Original)
		ok = true
		renamed = append(renamed, stmt)
	}
	if !ok {
		return "", nil, false, nil
	}
	b.WriteString(sql[cur:])
	return b.String(), renamed, true, nil
}

// countRewritten counts a Rewritten plan: as pinned when pgveil only put
// schemas before names (see onlyPinned), else as rewritten.
func (s *session) countRewritten(p *rewrite.Plan) {
	for _, st := range p.Stmts {
		if st.Rewritten && !onlyPinned(st) {
			s.inc(s.srv.metrics.stmtRewritten)
			return
		}
	}
	s.inc(s.srv.metrics.stmtPinned)
}

// fillLiteral seals or indexes one literal of an encrypted column and
// returns the SQL literal that replaces it.
func (s *session) fillLiteral(orig string, st *rewrite.Stmt, slot *rewrite.Slot) (string, error) {
	if lk := s.lookup; slot.Action == rewrite.TenantLookup || slot.Tenant.Kind == rewrite.RefLookup {
		switch {
		case lk == nil:
			return "", fmt.Errorf("pgveil internal error: no tenant was looked up for this statement")
		case lk.none:
			return "NULL", nil // no row changes: nothing is sealed
		case slot.Action == rewrite.TenantLookup:
			return rewrite.TextLiteral(lk.tenant), nil
		}
	}
	v, null, err := rewrite.LiteralValue(orig, st.Literals[slot.Source])
	if err != nil {
		return "", err
	}
	if null {
		return "NULL", nil
	}
	col := slot.Column
	if err := st.Literals[slot.Source].CheckCasts(orig, col, v); err != nil {
		return "", err
	}
	if (col.Type == policy.TypeText || col.Type == policy.TypeVarchar) && slot.Action != rewrite.IndexEach && slot.Action != rewrite.PlaintextEach {
		if v, err = storedNumber(orig, st.Literals[slot.Source], v); err != nil {
			return "", err
		}
	}
	if slot.Action == rewrite.IndexEach || slot.Action == rewrite.PlaintextEach {
		return s.fillArrayLiteral(col, slot.Action, v)
	}
	pt, err := canon.Plaintext(col.Type, canon.TextFormat, 0, v, nil)
	if err != nil {
		return "", err
	}
	switch slot.Action {
	case rewrite.Encrypt:
		tenant, has, err := s.tenantFromRef(col.Table, slot.Tenant, orig, st, nil, nil)
		if err != nil {
			return "", err
		}
		env, err := s.seal(col, tenant, has, pt, nil)
		if err != nil {
			return "", err
		}
		if s.sealLog != nil {
			id, _ := envelope.KeyID(env)
			*s.sealLog = append(*s.sealLog, sealedKey{col: col, tenant: tenant, has: has, id: id})
		}
		if s.eng.catalog().physicalType(col) == policy.OIDText {
			return rewrite.TextLiteral(string(envelope.Encode(nil, env))), nil
		}
		return rewrite.ByteaLiteral(env), nil
	case rewrite.Index, rewrite.IndexNext:
		return s.indexLiteral(col, rewrite.IndexOf(col, slot.Action), pt)
	case rewrite.Plaintext:
		return s.plaintextLiteral(col, pt)
	}
	return "", fmt.Errorf("literal slot with action %s", slot.Action)
}

// indexLiteral is the bytea literal of pt's blind index bi.
func (s *session) indexLiteral(col *policy.Column, bi *policy.BlindIndex, pt []byte) (string, error) {
	sum, err := s.index(col, bi, pt, nil)
	if err != nil {
		return "", err
	}
	return rewrite.ByteaLiteral(sum), nil
}

// plaintextLiteral is the literal of pt's comparable plaintext (migration
// mode): text for a text column, bytea for a bytea one.
func (s *session) plaintextLiteral(col *policy.Column, pt []byte) (string, error) {
	v, text, err := s.comparablePlaintext(col, pt, nil)
	if err != nil {
		return "", err
	}
	if text {
		return rewrite.TextLiteral(string(v)), nil
	}
	return rewrite.ByteaLiteral(v), nil
}

// seal appends the envelope of plaintext for col (and tenant) to dst.
func (s *session) seal(col *policy.Column, tenant string, has bool, plaintext, dst []byte) ([]byte, error) {
	key, err := s.eng.keys.EncryptionKey(s.keyCtx, col, tenant, has)
	if err != nil {
		return nil, s.keyErr(err)
	}
	s.inc(s.srv.metrics.col(col).enc)
	return key.Seal(dst, plaintext), nil
}

// index appends the blind index bi (col's current one or, during an index
// key rotation, its next) of plaintext to dst.
func (s *session) index(col *policy.Column, bi *policy.BlindIndex, plaintext, dst []byte) ([]byte, error) {
	key, err := s.eng.keys.BlindIndexKey(s.keyCtx, col, bi)
	if err != nil {
		return nil, s.keyErr(err)
	}
	s.idxBuf, err = canon.IndexInput(col.Type, plaintext, bi.Normalize, s.idxBuf[:0])
	if err != nil {
		return nil, err
	}
	return key.Sum(dst, s.idxBuf), nil
}

// fillArrayLiteral turns an array literal ('{a,b}') compared with = ANY
// into ARRAY[…] of the blind index (IndexEach) or the comparable plaintext
// (PlaintextEach) of each element; NULL elements stay NULL.
func (s *session) fillArrayLiteral(col *policy.Column, action rewrite.Action, v []byte) (string, error) {
	elems, err := parseTextArray(v)
	if err != nil {
		return "", fmt.Errorf("pgveil: = ANY on %s: %w", col.QualifiedName(), err)
	}
	typ := "bytea[]"
	if action == rewrite.PlaintextEach && s.eng.catalog().physicalType(col) == policy.OIDText {
		typ = "text[]"
	}
	if len(elems) == 0 {
		return "'{}'::" + typ, nil
	}
	var b strings.Builder
	b.WriteString("ARRAY[")
	for i, e := range elems {
		if i > 0 {
			b.WriteString(", ")
		}
		if e == nil {
			b.WriteString("NULL")
			continue
		}
		pt, err := canon.Plaintext(col.Type, canon.TextFormat, 0, e, nil)
		if err != nil {
			return "", err
		}
		var lit string
		if action == rewrite.IndexEach {
			lit, err = s.indexLiteral(col, col.BlindIndex, pt)
		} else {
			lit, err = s.plaintextLiteral(col, pt)
		}
		if err != nil {
			return "", err
		}
		b.WriteString(lit)
	}
	b.WriteString("]::" + typ)
	return b.String(), nil
}

// comparablePlaintext is the form of a value compared with a legacy
// plaintext column in migration mode: for a text column the normalised
// canonical text (the SQL normalises the column the same way), for a bytea
// column the canonical bytes. text reports which.
func (s *session) comparablePlaintext(col *policy.Column, plaintext, dst []byte) ([]byte, bool, error) {
	if s.eng.catalog().physicalType(col) == policy.OIDBytea {
		return append(dst, plaintext...), false, nil
	}
	var norms []policy.Normalization
	if col.BlindIndex != nil {
		norms = col.BlindIndex.Normalize
	}
	out, err := canon.IndexInput(col.Type, plaintext, norms, dst)
	return out, true, err
}

// tenantFromRef resolves the key_context value a write uses. bind is the
// client's Bind (nil for a Query) and paramOIDs the types it declared.
func (s *session) tenantFromRef(t *policy.Table, ref rewrite.ValueRef, orig string, st *rewrite.Stmt, bind *bindMsg, paramOIDs []uint32) (string, bool, error) {
	if t.KeyContext == "" {
		return "", false, nil
	}
	switch ref.Kind {
	case rewrite.RefParam:
		if bind == nil {
			// Rendering a Parse: a literal value is sealed into the text
			// now, its tenant bound later (the hint of tenantMissing, to
			// name the tenant column, misled: it is named).
			return "", false, &pgError{Severity: "ERROR", Code: codeFeatureNotSupported, Schema: t.Schema, Table: t.Name, Column: t.KeyContext,
				Message: fmt.Sprintf("pgveil cannot tell which tenant this write to %s belongs to when the statement is prepared: its encrypted values written as literals are sealed then, and its %s is a parameter, bound later", t.QualifiedName(), t.KeyContext),
				Hint:    fmt.Sprintf("pass the encrypted values as parameters too, or write %s as a literal", t.KeyContext)}
		}
		if ref.Param >= len(bind.Params) {
			return "", false, tenantMissing(t)
		}
		v := bind.Params[ref.Param]
		if v == nil {
			return "", false, tenantNull(t)
		}
		var declared uint32
		if ref.Param < len(paramOIDs) {
			declared = paramOIDs[ref.Param]
		}
		if s.eng.catalog().tenantZoneDependent(t, declared) && (!s.utcSession.Load() || !s.t.restedSince(s.tzFrom)) {
			// Lead, twentieth session: named in UTC, stored as the
			// session's zone makes it ('2026-01-01 23:30+00' is the date
			// 2026-01-02 in Berlin): the row opened in no session.
			return "", false, &pgError{Severity: "ERROR", Code: "42804", Schema: t.Schema, Table: t.Name, Column: t.KeyContext,
				Message: fmt.Sprintf("pgveil: a timestamptz parameter for the key_context column %s of %s converts through the session's TimeZone, which is not UTC (or may change in this pipeline): pgveil would name another tenant than the row stores", t.KeyContext, t.QualifiedName()),
				Hint:    "declare the parameter as the column's type, or SET TimeZone TO 'UTC' before it"}
		}
		tenant, err := s.eng.catalog().tenantParam(t, declared, bind.paramFormat(ref.Param), v)
		if err != nil {
			return "", false, bindValueError(err, ref.Param)
		}
		tenant, err = s.eng.catalog().storedTenant(t, tenant)
		return tenant, err == nil, err
	case rewrite.RefLiteral:
		v, null, err := rewrite.LiteralValue(orig, st.Literals[ref.Literal])
		if err != nil {
			return "", false, err
		}
		if null {
			return "", false, tenantNull(t)
		}
		typ := s.eng.catalog().tenantType(t)
		switch {
		case typ == policy.OIDText || typ == policy.TypeVarchar.OID() || typ == oidBpchar || typ == oidName || !knownTenantType(typ):
			// The values are sealed under the tenant a text key_context
			// column stores (a type pgveil does not know, citext or a
			// domain over numeric, is named by its text too, which for an
			// unquoted number is the number's output).
			if v, err = storedNumber(orig, st.Literals[ref.Literal], v); err != nil {
				return "", false, err
			}
			if typ == oidName || s.eng.catalog().tenantBaseOf(t) == oidName {
				// TRUE into name (or a domain over it) is converted by
				// boolout, t (pg_cast has bool to text, varchar and
				// bpchar, booltext's true, not to name). Review 20d: it
				// was sealed under "true", and the row opened in no session.
				v = boolKeywordOut(orig, st.Literals[ref.Literal], v)
			}
		case (typ == policy.TypeInt2.OID() || typ == policy.TypeInt4.OID() || typ == policy.TypeInt8.OID()) && rewrite.LiteralIsNumber(orig, st.Literals[ref.Literal]):
			// An unquoted 1e2 or 7.5 is a numeric to PostgreSQL, which
			// assigns it to the integer column rounded (100, 8).
			if v, err = storedNumber(orig, st.Literals[ref.Literal], v); err != nil {
				return "", false, err
			}
			if v, err = canon.NumericToInt(v); err != nil {
				return "", false, err
			}
		case (typ == oidFloat4 || typ == oidFloat8) && rewrite.LiteralIsNumber(orig, st.Literals[ref.Literal]):
			// An unquoted -0.0 is numeric zero (no sign) to PostgreSQL,
			// which assigns it to the float column as 0, not -0 (review
			// 19c: sealed under tenant "-0", the row did not open).
			if v, err = storedNumber(orig, st.Literals[ref.Literal], v); err != nil {
				return "", false, err
			}
		}
		tenant, err := canon.TenantText(typ, canon.TextFormat, v)
		if err != nil {
			return "", false, err
		}
		tenant, err = s.eng.catalog().storedTenant(t, tenant)
		return tenant, err == nil, err
	case rewrite.RefNull:
		return "", false, tenantNull(t)
	case rewrite.RefLookup:
		if s.lookup != nil && !s.lookup.none {
			return s.lookup.tenant, true, nil
		}
	}
	return "", false, tenantMissing(t)
}

// sameTenant refuses a multi-row INSERT … ON CONFLICT DO UPDATE that
// seals one value under its first row's tenant (Stmt.SameTenant) when
// another row names another tenant: the value would land in rows whose
// key does not open it.
func (s *session) sameTenant(st *rewrite.Stmt, orig string, bind *bindMsg, paramOIDs []uint32) error {
	for _, set := range st.SameTenant {
		t := set.Table
		if bind == nil && slices.ContainsFunc(set.Refs, func(r rewrite.ValueRef) bool { return r.Kind == rewrite.RefParam }) {
			continue // rendering a Parse: checked at each Bind
		}
		first, _, err := s.tenantFromRef(t, set.Refs[0], orig, st, bind, paramOIDs)
		if err != nil {
			return err
		}
		for _, ref := range set.Refs[1:] {
			other, _, err := s.tenantFromRef(t, ref, orig, st, bind, paramOIDs)
			if err != nil {
				return err
			}
			if other != first {
				return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported,
					Message: fmt.Sprintf("pgveil: the rows of this INSERT … ON CONFLICT DO UPDATE into %s name more than one tenant (%s), and the value its SET writes is sealed once, under one tenant's key", t.QualifiedName(), t.KeyContext),
					Hint:    "upsert each tenant's rows in a statement of their own, or SET col = EXCLUDED.col"}
			}
		}
	}
	return nil
}

// sameTenants checks, once before a text is rendered, the literal
// tenants of the multi-row upserts of p (parameters: at each Bind).
func (s *session) sameTenants(p *rewrite.Plan, sql string) error {
	for _, st := range p.Stmts {
		if len(st.SameTenant) > 0 {
			if err := s.sameTenant(st, sql, nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func tenantMissing(t *policy.Table) error {
	return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported, Message: fmt.Sprintf("pgveil cannot tell which tenant this write to %s belongs to", t.QualifiedName()),
		Hint: fmt.Sprintf("include %s in the statement (INSERT column list or UPDATE ... WHERE %s = ...)", t.KeyContext, t.KeyContext)}
}

func tenantNull(t *policy.Table) error {
	return &pgError{Severity: "ERROR", Code: "23502", Message: fmt.Sprintf("pgveil cannot encrypt for a NULL %s in %s: the tenant selects the data key", t.KeyContext, t.QualifiedName())}
}

// --- extended protocol ---

// handleParse plans a Parse. Statements pgveil rewrites or must decrypt
// are prepared upstream under a fresh name (see Statement.ServerName).
func (s *session) handleParse(body []byte) error {
	var pm parseMsg
	if err := pm.parse(body); err != nil {
		return err
	}
	notes := s.stmtNotesOf(pm.Name)
	refuse := func(pe *pgError) {
		if len(pm.Name) == 0 {
			// PostgreSQL drops the unnamed statement before it reads the
			// new one: a Bind of it now gets 26000, never the old one.
			s.dropUnnamedEverywhere()
		} else {
			// The server keeps the statement the name held (review 21c).
			s.restoreStmtNotes(pm.Name, notes)
		}
		s.injectExtendedError(pe)
	}
	if err := s.refreshCatalogIfNeeded(); err != nil {
		return err
	}
	sql := string(pm.Query)
	if err := s.syncSearchPathFor(sql); err != nil {
		return err
	}
	if len(pm.Name) > 0 {
		s.t.restoreUnclosed(string(pm.Name))
	}
	cat := s.eng.planner.Generation()
	p, err := s.plan(sql)
	if err != nil {
		if offLoop(err) {
			return err
		}
		refuse(refusalFrom(err))
		return nil
	}
	p = s.withCursors(p)
	if perr := s.executesOwn(sql); perr != nil {
		refuse(perr)
		return nil
	}
	if perr, err := s.replanExecuted(sql); err != nil || perr != nil {
		if perr != nil {
			refuse(perr)
		}
		return err
	}
	s.noteStmtEffects(pm.Name, p)
	closes := closesOf(p)
	s.noteStmtCloses(pm.Name, closes)
	s.noteStmtPrepares(pm.Name, preparesOf(p))
	if text, ok, perr := s.deallocateUpstream(sql, p); perr != nil {
		refuse(perr)
		return nil
	} else if ok {
		// DEALLOCATE through the extended protocol (psycopg 3 sends it so).
		if len(pm.Name) > 0 {
			// The upstream name is fixed now, but the statement may run
			// later, after the client prepared that name again.
			refuse(&pgError{Severity: "ERROR", Code: "0A000",
				Message: "pgveil cannot prepare a named DEALLOCATE of a statement it prepared upstream under its own name",
				Hint:    "run the DEALLOCATE unnamed (as a simple query, or with the unnamed statement)"})
			return nil
		}
		s.deferCloses = true // it closes at each Execute (executeCloses)
		s.applyEffects(p)
		s.deferCloses = false
		s.inc(s.srv.metrics.stmtRewritten)
		s.dropUnnamed()
		s.t.parsed(pm.Name, passthroughStmt)
		s.t.serverUnnamed.Store(true)
		s.sw.Write(appendParse(s.scratch[:0], string(pm.Name), text, pm.ParamOIDs))
		return nil
	}
	if !planNeedsWork(p) {
		if len(pm.Name) > 0 && s.t.hasStatement(pm.Name) && s.t.statement(pm.Name) != passthroughStmt {
			// The name is one pgveil prepared upstream under its own: the
			// server would not see the clash.
			refuse(&pgError{Severity: "ERROR", Code: "42P05", Message: fmt.Sprintf("prepared statement %q already exists", pm.Name)})
			return nil
		}
		// A DEALLOCATE or DISCARD ALL closes at each Execute of its
		// portals (handleExecute), confirmed by its CommandComplete; the
		// view keeps the names until then (review 20a: a Parse of one
		// between got ParseComplete where PostgreSQL answers 42P05).
		s.deferCloses = len(closes) > 0
		s.applyEffects(p)
		s.deferCloses = false
		was := len(pm.Name) == 0 && s.ptStmts[""].earlierNotes
		s.notePassthrough(pm.Name, sql, cat)
		if len(pm.Name) == 0 {
			s.noteUnnamedNotes(notes, was)
		} else if len(s.ptStmts[string(pm.Name)].earlier) > 0 {
			s.mergeStmtNotes(pm.Name, notes)
		}
		s.inc(s.srv.metrics.stmtPassthrough)
		if len(pm.Name) == 0 {
			s.dropUnnamed()
			s.t.serverUnnamed.Store(true)
		}
		s.t.parsed(pm.Name, passthroughStmt)
		if len(pm.Name) == 0 {
			s.noteUnnamedParse()
		}
		s.sw.Write(s.cr.header())
		s.sw.Write(body)
		return nil
	}
	if s.nonUTF8.Load() {
		refuse(encodingRefusal())
		return nil
	}
	if len(pm.Name) > 0 && (s.t.hasStatement(pm.Name) || s.heldUnclosed(pm.Name)) {
		refuse(&pgError{Severity: "ERROR", Code: "42P05", Message: fmt.Sprintf("prepared statement %q already exists", pm.Name)})
		return nil
	}
	if len(p.Stmts) != 1 {
		refuse(&pgError{Severity: "ERROR", Code: "42601", Message: "cannot insert multiple commands into a prepared statement"})
		return nil
	}
	st := p.Stmts[0]
	if st.Lookup != nil && st.ClientParams == 0 {
		// No parameters: the tenant is looked up now, for the literals,
		// which are sealed into the statement; a named statement would
		// keep that tenant for every later execution.
		// (The check of a tenant move seals nothing under what it reads;
		// the guard keeps every later execution safe.)
		if len(pm.Name) > 0 && st.Lookup.Move == nil {
			pe := tenantMissing(st.Lookup.Table).(*pgError)
			pe.Hint = fmt.Sprintf("pass the values as parameters (pgveil then looks the tenant up at each execution), name the tenant (%s = … in WHERE), or use the unnamed statement", st.Lookup.Table.KeyContext)
			refuse(pe)
			return nil
		}
		// The lookup may answer the Parse with an error: the unnamed
		// statement goes with the lookup, as in refuse.
		s.lookupDropsUnnamed = len(pm.Name) == 0
		handled, err := s.lookupExtended(sql, st, nil, pm.ParamOIDs)
		s.lookupDropsUnnamed = false
		if err != nil {
			return err
		}
		if handled {
			return nil
		}
		defer func() { s.lookup = nil }()
	}
	text := sql
	var sealed []sealedKey
	if p.Rewritten {
		err = s.sameTenants(p, sql)
		if err == nil {
			text, sealed, err = s.renderSealed(p, sql)
		}
		if err != nil {
			if offLoop(err) {
				return err
			}
			refuse(refusalFrom(err))
			return nil
		}
		s.countRewritten(p)
	} else {
		s.inc(s.srv.metrics.stmtPassthrough)
	}
	s.applyEffects(p)
	s.stmtSeq++
	stmt := &Statement{
		Name:       string(pm.Name),
		ServerName: s.serverStmtName(),
		Plan:       st,
		SQL:        sql,
		ParamOIDs:  append([]uint32(nil), pm.ParamOIDs...),
		catGen:     cat,
		sealed:     sealed,
	}
	if text != sql {
		stmt.Sent, stmt.sentBackslash = text, s.backslash.Load()
	}
	if len(pm.Name) == 0 {
		s.dropUnnamed()
		if s.t.serverUnnamed.Swap(false) {
			// The client's unnamed statement is now one pgveil prepares
			// under its own name: the server's own unnamed one (an older
			// pass-through statement) must go, or a Bind the view later
			// takes for a pass-through one (after a Close, or a Parse the
			// server skipped) would run it with the client's raw values.
			s.sw.Write(appendDescribeOrClose(s.scratch[:0], 'C', 'S', ""))
			s.t.push(pending{kind: pendCloseStmt, suppress: true, stmt: serverUnnamedSlot})
		}
	}
	if len(pm.Name) == 0 {
		s.keepUnnamedTexts()
	}
	s.holdUnclosed(pm.Name, notes)
	if onlyPinned(st) {
		s.notePinned(pm.Name, sql, text, cat)
	} else {
		delete(s.ptStmts, string(pm.Name))
	}
	if _, ok := s.sqlPrepared[string(pm.Name)]; ok && len(pm.Name) > 0 {
		// An SQL PREPARE may have taken the name upstream, where pgveil's
		// statement goes under its own: the server is asked with a Parse
		// of the name, closed again, whose 42P05 (PostgreSQL's answer to
		// this Parse) reaches the client and makes the server skip the
		// rest, pgveil's Parse included.
		b := appendParse(s.scratch[:0], string(pm.Name), "SELECT NULL", nil)
		b = appendDescribeOrClose(b, 'C', 'S', string(pm.Name))
		s.t.push(pending{kind: pendParse, probe: true})
		s.t.push(pending{kind: pendCloseStmt, probe: true})
		s.sw.Write(b)
		s.scratch = b[:0]
	}
	s.t.parsed(pm.Name, stmt)
	s.sw.Write(appendParse(s.scratch[:0], stmt.ServerName, text, s.serverParamOIDs(stmt)))
	return nil
}

// dropUnnamed closes upstream the statement pgveil prepared under a name
// of its own for the client's unnamed statement, when the client's next
// unnamed Parse or simple Query replaces the unnamed statement. The
// server would otherwise keep it, named by no one, for the rest of the
// session: a Rails connection leaked one per create! (BEGIN, the
// rewritten INSERT, COMMIT), without bound.
//
// A Close the server skipped (after an error earlier in the pipeline) is
// sent again here, at the client's next unnamed Parse or Query.
func (s *session) dropUnnamed() {
	s.reprepareAgain() // first: only at rest
	s.closeAgain()
	old := s.t.statement(nil)
	if old == passthroughStmt || old.ServerName == "" {
		return
	}
	s.closeUpstream(old)
	s.t.defineStatement(nil, passthroughStmt)
}

// dropUnnamedEverywhere drops the client's unnamed statement as a Parse
// of it that pgveil refuses would have at the server: pgveil's upstream
// statement for it, and the server's own unnamed statement.
func (s *session) dropUnnamedEverywhere() {
	s.dropUnnamed()
	if s.t.serverUnnamed.Swap(false) {
		s.sw.Write(appendDescribeOrClose(s.scratch[:0], 'C', 'S', ""))
		s.t.push(pending{kind: pendCloseStmt, suppress: true, stmt: serverUnnamedSlot})
	}
}

// closeAgain sends again the Closes of pgveil's own statements that the
// server skipped after an error (takeFailedCloses); it closes the
// statements reprepare left open for their portals once those are gone.
// (The Parses of statements prepared anew go again before a Bind or
// Describe of theirs, or before an unnamed Parse or a Query at rest:
// reprepareOne, reprepareAgain.)
func (s *session) closeAgain() {
	for _, st := range s.t.takeFailedCloses() {
		s.closeUpstream(st)
	}
	if len(s.orphans) > 0 {
		s.closeOrphans()
	}
}

// closeUpstream closes pgveil's upstream statement st; the client sees
// no answer.
func (s *session) closeUpstream(st *Statement) {
	s.sw.Write(appendDescribeOrClose(s.scratch[:0], 'C', 'S', st.ServerName))
	s.t.push(pending{kind: pendCloseStmt, suppress: true, stmt: st})
}

// serverStmtName names a statement pgveil prepares upstream:
// pgveil_<random per session>_<n>. Clients may not use the prefix
// (rewrite.ReservedName, reservedInMessage), and the random part keeps
// the names of one session from being guessed in another's logs.
func (s *session) serverStmtName() string {
	if s.stmtPrefix == "" {
		var b [6]byte
		rand.Read(b[:])
		s.stmtPrefix = "pgveil_" + hex.EncodeToString(b[:]) + "_"
	}
	s.stmtSeq++
	return s.stmtPrefix + strconv.Itoa(s.stmtSeq)
}

// reservedInMessage refuses a Parse, Bind, Describe or Close that names
// one of pgveil's upstream statements (rewrite.ReservedName): binding one
// would run pgveil's rewritten statement with the client's raw values.
// Portal names are reserved too (a Bind's portal, Execute, Describe and
// Close of a portal): pgveil's tenant lookup binds a portal named as its
// statement, and a client portal of that name made the lookup fail and
// could be closed by pgveil's Close of its own (review 20a).
func reservedInMessage(typ byte, body []byte) *pgError {
	var name, portal []byte
	switch typ {
	case 'P':
		name, _, _ = cstringBytes(body, 0)
	case 'B':
		var off int
		var ok bool
		if portal, off, ok = cstringBytes(body, 0); ok {
			name, _, _ = cstringBytes(body, off)
		}
	case 'E':
		portal, _, _ = cstringBytes(body, 0)
	case 'D', 'C':
		if len(body) > 1 && body[0] == 'S' {
			name, _, _ = cstringBytes(body, 1)
		} else if len(body) > 1 {
			portal, _, _ = cstringBytes(body, 1)
		}
	}
	if len(portal) > 0 && rewrite.ReservedName(string(portal)) {
		return &pgError{Severity: "ERROR", Code: "0A000", Message: fmt.Sprintf("portal and cursor names starting with \"pgveil_\" or \"__pgveil_\" are reserved for pgveil: %q", portal),
			Hint: "give the portal another name"}
	}
	if len(name) == 0 || !rewrite.ReservedName(string(name)) {
		return nil
	}
	return &pgError{Severity: "ERROR", Code: "0A000", Message: fmt.Sprintf("prepared statement names starting with \"pgveil_\" or \"__pgveil_\" are reserved for pgveil: %q", name),
		Hint: "give the statement another name"}
}

// serverParamOIDs are the parameter types of the rewritten statement.
func (s *session) serverParamOIDs(stmt *Statement) []uint32 {
	st := stmt.Plan
	if !stmtRewritten(st) {
		return stmt.ParamOIDs
	}
	cat := s.eng.catalog()
	oids := make([]uint32, len(st.Params))
	for i, p := range st.Params {
		switch p.Action {
		case rewrite.Pass:
			if p.Client < len(stmt.ParamOIDs) {
				oids[i] = stmt.ParamOIDs[p.Client]
			}
		case rewrite.Encrypt:
			oids[i] = cat.physicalType(p.Column)
		case rewrite.Index, rewrite.IndexNext:
			oids[i] = policy.OIDBytea
		case rewrite.IndexEach:
			oids[i] = oidByteaArray
		case rewrite.TenantLookup:
			oids[i] = cat.tenantType(st.Lookup.Table)
		case rewrite.Ignore:
			oids[i] = policy.OIDBytea // unused: declared for the server
		case rewrite.Plaintext:
			oids[i] = cat.physicalType(p.Column)
		case rewrite.PlaintextEach:
			oids[i] = oidByteaArray
			if cat.physicalType(p.Column) == policy.OIDText {
				oids[i] = oidTextArray
			}
		}
	}
	return oids
}

const (
	oidByteaArray = 1001
	oidTextArray  = 1009
)

func stmtRewritten(st *rewrite.Stmt) bool { return st.Rewritten && st.Params != nil }

// handleBind converts the parameters of a Bind to a rewritten statement.
func (s *session) handleBind(body []byte) error {
	bm := &s.bindIn
	if err := bm.parse(body); err != nil {
		return err
	}
	s.refreshStmtEffects(bm.Statement)
	s.notePortalEffects(bm.Portal, bm.Statement)
	s.notePortalSQLPrepared(bm.Portal, bm.Statement)
	s.notePortalCloses(bm.Portal, bm.Statement)
	s.notePortalPrepares(bm.Portal, bm.Statement)
	s.notePortalExecutes(bm.Portal, bm.Statement) // after notePortalPrepares: adds to it
	if len(s.ptHeld) > 0 {
		s.notePortalHeld(bm.Portal, bm.Statement) // adds to it too
	}
	if len(bm.Statement) == 0 && len(s.ptStmts) > 0 {
		s.notePortalUnsettled(bm.Portal)
	}
	stmt := s.t.statement(bm.Statement)
	s.noteFetchEffects(bm.Portal, stmt)
	if stmt != passthroughStmt && s.t.closedInPipeline(bm.Statement) {
		// PostgreSQL looks the statement up before it reads the Bind's
		// formats and values: whatever they are, the answer is 26000.
		s.injectExtendedError(noStatement(bm.Statement))
		s.t.closePortal(bm.Portal)
		return nil
	}
	if (len(s.ptStmts) > 0 || len(s.srvUnnamed) > 0) && (stmt == passthroughStmt || stmt.Plan.NamesOnly) || (len(s.sqlPrepared) > 0 || len(s.ptHeld) > 0) && stmt == passthroughStmt || stmt != passthroughStmt && stmt.Plan != nil {
		var refusal *pgError
		var err error
		if _, ok := s.ptStmts[string(bm.Statement)]; ok || stmt == passthroughStmt {
			refusal, err = s.replanOnPathChange(bm.Statement, false)
			if refusal == nil && err == nil && ok && stmt == passthroughStmt && len(bm.Statement) == 0 && len(s.srvUnnamed) > 0 {
				// The record is of a statement pgveil prepared under its
				// own name (pinned), gone from the view: the Bind runs
				// the server's own unnamed statement (review 19b).
				refusal, err = s.replanServerUnnamed()
			}
		} else {
			stmt, refusal, err = s.replanOnCatalogChange(stmt)
		}
		if err != nil {
			return err
		}
		if refusal != nil {
			s.injectExtendedError(refusal)
			s.t.closePortal(bm.Portal)
			return nil
		}
	}
	if pe, err := s.cursorCodeAtBind(bm.Statement, stmt); err != nil {
		return err
	} else if pe != nil {
		s.injectExtendedError(pe)
		s.t.closePortal(bm.Portal)
		return nil
	}
	if stmt != passthroughStmt && len(stmt.sealed) > 0 {
		ns, refusal, err := s.resealIfRotated(stmt)
		if err != nil {
			return err
		}
		if refusal != nil {
			s.injectExtendedError(refusal)
			s.t.closePortal(bm.Portal)
			return nil
		}
		stmt = ns
	}
	if stmt == passthroughStmt {
		s.noteLaterPortal(bm.Portal, bm.Statement, stmt)
		s.t.bindPortal(bm.Portal, passthroughPortal)
		s.t.push(pending{kind: pendBind, portal: passthroughPortal})
		s.sw.Write(s.cr.header())
		s.sw.Write(body)
		return nil
	}
	if stmt.Plan != nil && stmt.Plan.Fetch != "" {
		stmt = s.fetchStatement(stmt)
	}
	stmt = s.preparedAgainIfUnsettled(stmt)
	if pe := bindFormatError(stmt, bm); pe != nil {
		s.injectExtendedError(pe)
		s.t.closePortal(bm.Portal)
		return nil
	}
	if st := stmt.Plan; st != nil && st.Lookup != nil && st.ClientParams > 0 {
		handled, err := s.lookupExtended(stmt.SQL, st, bm, stmt.ParamOIDs)
		if err != nil {
			return err
		}
		if handled {
			s.t.closePortal(bm.Portal)
			return nil
		}
		defer func() { s.lookup = nil }()
	}
	portal := &Portal{Name: string(bm.Portal), Stmt: stmt, ResultFormats: append([]int16(nil), bm.ResultFormats...)}
	out, err := s.convertBind(stmt, bm)
	if err != nil {
		if offLoop(err) {
			return err
		}
		s.injectExtendedError(refusalFrom(err))
		// The client's portal does not exist now; make sure the view
		// does not pretend it does.
		s.t.closePortal(bm.Portal)
		return nil
	}
	// Nothing below waits: the Bind goes out now (an event loop runs a
	// message that waits again from the start, so nothing may be written
	// before this point).
	s.reprepareOne(stmt) // when the server skipped its Parse
	if stmt.replaces != nil {
		s.commitReprepare(stmt)
	}
	s.noteLaterPortal(bm.Portal, bm.Statement, stmt)
	s.t.bindPortal(bm.Portal, portal)
	s.t.push(pending{kind: pendBind, portal: portal, ownFormats: ownFormats(stmt, bm, out)})
	s.sw.Write(appendBind(s.scratch[:0], out))
	return nil
}

// ownFormats reports a Bind out the server can refuse as a protocol
// violation only for the result formats pgveil chose: more than one, and
// the parameters the statement takes (pgveil's own for a rewritten one;
// the client's, forwarded, counted as PostgreSQL counts them: the types
// declared at Parse or the highest $n, whichever is more).
func ownFormats(stmt *Statement, bm, out *bindMsg) bool {
	st := stmt.Plan
	if st == nil || len(out.ResultFormats) <= 1 {
		return false
	}
	if stmtRewritten(st) {
		return true
	}
	return len(bm.Params) == max(st.ClientParams, len(stmt.ParamOIDs))
}

// knownTenantType reports whether canon.TenantText names a key_context
// value of type oid by the type's own reading: the logical types, float4,
// float8; others by their text as written.
func knownTenantType(oid uint32) bool {
	if oid == 700 || oid == 701 {
		return true
	}
	for _, lt := range policy.LogicalTypes {
		if lt.OID() == oid {
			return true
		}
	}
	return false
}

// oidBpchar is character(n)'s type OID, oidName name's.
const (
	oidBpchar = 1042
	oidName   = 19
	oidFloat4 = 700
	oidFloat8 = 701
)

// paramCastsKeep refuses a Bind whose value under a varchar(n) cast, bound
// for an encrypted column, is longer than n characters (rewrite.ParamCast):
// PostgreSQL would store it truncated, pgveil would seal it whole. A
// binary value of a type other than text's is refused too (its text is
// not read here).
func paramCastsKeep(st *rewrite.Stmt, orig string, bm *bindMsg, declared []uint32) error {
	for _, pc := range st.ParamCasts {
		if pc.Client >= len(bm.Params) || bm.Params[pc.Client] == nil {
			continue
		}
		if bm.paramFormat(pc.Client) != canon.TextFormat {
			var oid uint32
			if pc.Client < len(declared) {
				oid = declared[pc.Client]
			}
			switch oid {
			case 0, policy.OIDText, 1043, oidBpchar, oidName, 705:
			default:
				col := pc.Column
				return &pgError{Severity: "ERROR", Code: "42804", Schema: col.Table.Schema, Table: col.Table.Name, Column: col.Name,
					Message: fmt.Sprintf("pgveil: a binary parameter ($%d) of type OID %d under a %s cast for encrypted column %s: pgveil cannot check the length PostgreSQL would cut it to", pc.Client+1, oid, pc.Cast.Name, col.QualifiedName()),
					Hint:    "send the parameter as text, or remove the length from the cast"}
			}
		}
		if err := pc.Check(orig, bm.Params[pc.Client]); err != nil {
			return err
		}
	}
	return nil
}

// storedNumber is v, the value of literal lit of orig, as a text column
// stores it: an unquoted number is a number to PostgreSQL, which stores
// its output text ('42' for 0042, '100' for 1e2); any other literal as
// it is.
func storedNumber(orig string, lit rewrite.Literal, v []byte) ([]byte, error) {
	if !rewrite.LiteralIsNumber(orig, lit) {
		return v, nil
	}
	return canon.Plaintext(policy.TypeNumeric, canon.TextFormat, 0, v, nil)
}

// boolKeywordOut is v, or boolout's t or f when lit is the keyword TRUE
// or FALSE (LiteralValue gives true or false).
func boolKeywordOut(orig string, lit rewrite.Literal, v []byte) []byte {
	if lit.Start < 0 || lit.End > len(orig) || lit.Start >= lit.End {
		return v
	}
	switch strings.ToLower(strings.TrimSpace(orig[lit.Start:lit.End])) {
	case "true":
		return []byte("t")
	case "false":
		return []byte("f")
	}
	return v
}

// bindValueError is PostgreSQL's own ERROR for a binary parameter (the
// client's 0-based client) whose length is not its type's, else err.
func bindValueError(err error, client int) error {
	var ce *canon.Error
	if !errors.As(err, &ce) {
		return err
	}
	switch ce.Code {
	case canon.CodeShortBinary:
		return &pgError{Severity: "ERROR", Code: ce.Code, Message: ce.Msg}
	case canon.CodeLongBinary:
		return &pgError{Severity: "ERROR", Code: ce.Code, Message: fmt.Sprintf("incorrect binary data format in bind parameter %d", client+1)}
	}
	return err
}

// noStatement is PostgreSQL's ERROR for a Bind of a statement that does
// not exist.
func noStatement(name []byte) *pgError {
	if len(name) == 0 {
		return &pgError{Severity: "ERROR", Code: "26000", Message: "unnamed prepared statement does not exist"}
	}
	return &pgError{Severity: "ERROR", Code: "26000", Message: fmt.Sprintf("prepared statement \"%s\" does not exist", name)}
}

// bindFormatError is PostgreSQL's ERROR for a Bind to a statement pgveil
// planned whose format codes the server would refuse, in the server's
// order (parameter formats, parameter count, each parameter's code,
// result formats): pgveil reads the parameters and chooses the result
// formats upstream itself, so the server would not see the client's
// codes. Nil when the Bind is well formed.
func bindFormatError(stmt *Statement, bm *bindMsg) *pgError {
	if bm.paramFormatsMismatch() {
		return &pgError{Severity: "ERROR", Code: codeProtocolViolation,
			Message: fmt.Sprintf("bind message has %d parameter formats but %d parameters", len(bm.ParamFormats), len(bm.Params))}
	}
	st := stmt.Plan
	if st == nil {
		return nil
	}
	if stmtRewritten(st) {
		if len(bm.Params) != st.ClientParams {
			return &pgError{Severity: "ERROR", Code: codeProtocolViolation,
				Message: fmt.Sprintf("bind message supplies %d parameters, but prepared statement %q requires %d", len(bm.Params), stmt.Name, st.ClientParams)}
		}
		for i := range bm.Params {
			if f := bm.paramFormat(i); f != 0 && f != 1 { // NULLs too, as PostgreSQL
				return &pgError{Severity: "ERROR", Code: "22023", Message: fmt.Sprintf("unsupported format code: %d", f)}
			}
		}
	}
	if n := len(bm.ResultFormats); n > 1 && st.Outputs != nil && !st.OutputsByOrigin {
		cols := 0
		for _, o := range st.Outputs {
			if !o.Hidden {
				cols++
			}
		}
		if n != cols {
			return &pgError{Severity: "ERROR", Code: codeProtocolViolation,
				Message: fmt.Sprintf("bind message has %d result formats but query has %d columns", n, cols)}
		}
	}
	return nil
}

// convertBind builds the Bind for the rewritten statement: derived
// parameters appended, encrypted values sealed, blind indexes computed, and
// result formats chosen so encrypted fields arrive as raw bytes.
func (s *session) convertBind(stmt *Statement, bm *bindMsg) (*bindMsg, error) {
	st := stmt.Plan
	out := &s.bindOut
	out.Portal = bm.Portal
	out.Statement = []byte(stmt.ServerName)
	out.ResultFormats = s.serverResultFormats(st, bm.ResultFormats, out.ResultFormats[:0])
	if !stmtRewritten(st) {
		// Copied, never shared: the next conversion rebuilds out's slices
		// in place, and the client's message (a Bind being converted, or
		// the Bind a tenant lookup goes ahead of) must stay as it came.
		out.ParamFormats = append(out.ParamFormats[:0], bm.ParamFormats...)
		out.Params = append(out.Params[:0], bm.Params...)
		return out, nil
	}
	if len(bm.Params) != st.ClientParams {
		return nil, &pgError{Severity: "ERROR", Code: codeProtocolViolation,
			Message: fmt.Sprintf("bind message supplies %d parameters, but prepared statement %q requires %d", len(bm.Params), stmt.Name, st.ClientParams)}
	}
	if len(st.SameTenant) > 0 {
		if err := s.sameTenant(st, stmt.SQL, bm, stmt.ParamOIDs); err != nil {
			return nil, err
		}
	}
	if err := paramCastsKeep(st, stmt.SQL, bm, stmt.ParamOIDs); err != nil {
		return nil, err
	}
	start := time.Now()
	defer func() { s.observe(s.srv.metrics.phaseCrypto, time.Since(start).Seconds()) }()
	// Values are appended to one arena and sliced at the end, so a Bind
	// costs no allocation per value once the arena has grown.
	arena := s.arena[:0]
	spans := s.spans[:0]
	nulls := s.nulls[:0]
	out.ParamFormats = out.ParamFormats[:0]
	cat := s.eng.catalog()
	for _, p := range st.Params {
		if p.Action == rewrite.TenantLookup || p.Tenant.Kind == rewrite.RefLookup && p.Action == rewrite.Encrypt {
			lk := s.lookup
			if lk == nil {
				return nil, fmt.Errorf("pgveil internal error: no tenant was looked up for this statement")
			}
			if lk.none {
				spans = append(spans, span{})
				nulls = append(nulls, true)
				out.ParamFormats = append(out.ParamFormats, 0)
				continue
			}
			if p.Action == rewrite.TenantLookup {
				begin := len(arena)
				arena = append(arena, lk.tenant...)
				spans = append(spans, span{start: begin, end: len(arena)})
				nulls = append(nulls, false)
				out.ParamFormats = append(out.ParamFormats, 0)
				continue
			}
		}
		v := bm.Params[p.Client]
		f := bm.paramFormat(p.Client)
		if v == nil || p.Action == rewrite.Ignore { // an unused value is not sent
			spans = append(spans, span{})
			nulls = append(nulls, true)
			out.ParamFormats = append(out.ParamFormats, 0)
			continue
		}
		begin := len(arena)
		outFmt := int16(1)
		var err error
		switch p.Action {
		case rewrite.Pass:
			arena = append(arena, v...)
			outFmt = f
		case rewrite.Encrypt, rewrite.Index, rewrite.IndexNext, rewrite.Plaintext:
			var declared uint32
			if p.Client < len(stmt.ParamOIDs) {
				declared = stmt.ParamOIDs[p.Client]
			}
			if err = canon.CheckParamText(p.Column.Type, f, v); err != nil {
				return nil, err
			}
			if p.Action != rewrite.Encrypt && declared != 0 && !writesParam(st, p.Client) {
				// Compared, not stored: PostgreSQL compares some declared
				// types in their own type, not the column's.
				if err = canon.Comparable(p.Column.Type, declared); err != nil {
					return nil, err
				}
			}
			if canon.ZoneDependent(p.Column.Type, declared) && (!s.utcSession.Load() || !s.t.restedSince(s.tzFrom)) {
				return nil, &canon.Error{Type: p.Column.Type, Code: "42804",
					Msg: "a timestamptz parameter converts to this column through the session's TimeZone, which is not UTC (or may change in this pipeline): declare the parameter as " + string(p.Column.Type) + ", or SET TimeZone TO 'UTC' before it"}
			}
			s.ptBuf, err = canon.Plaintext(p.Column.Type, f, declared, v, s.ptBuf[:0])
			if err != nil {
				return nil, bindValueError(err, p.Client)
			}
			if p.Action == rewrite.Index || p.Action == rewrite.IndexNext {
				arena, err = s.index(p.Column, rewrite.IndexOf(p.Column, p.Action), s.ptBuf, arena)
				break
			}
			if p.Action == rewrite.Plaintext {
				var text bool
				arena, text, err = s.comparablePlaintext(p.Column, s.ptBuf, arena)
				if text {
					outFmt = 0
				}
				break
			}
			tenant, has, terr := s.tenantFromRef(p.Column.Table, p.Tenant, stmt.SQL, st, bm, stmt.ParamOIDs)
			if terr != nil {
				return nil, terr
			}
			if cat.physicalType(p.Column) == policy.OIDText {
				s.envBuf, err = s.seal(p.Column, tenant, has, s.ptBuf, s.envBuf[:0])
				arena = envelope.Encode(arena, s.envBuf)
				outFmt = 0
			} else {
				arena, err = s.seal(p.Column, tenant, has, s.ptBuf, arena)
			}
		case rewrite.IndexEach:
			arena, err = s.indexArray(p.Column, f, v, arena)
		case rewrite.PlaintextEach:
			arena, err = s.plaintextArray(p.Column, f, v, arena)
		}
		if err != nil {
			return nil, err
		}
		spans = append(spans, span{start: begin, end: len(arena)})
		nulls = append(nulls, false)
		out.ParamFormats = append(out.ParamFormats, outFmt)
	}
	out.Params = out.Params[:0]
	for i, sp := range spans {
		if nulls[i] {
			out.Params = append(out.Params, nil)
		} else {
			out.Params = append(out.Params, value(arena, sp))
		}
	}
	s.arena, s.nulls, s.spans = arena, nulls, spans[:0]
	return out, nil
}

// serverResultFormats asks the server for encrypted fields in binary (raw
// envelope bytes) and hidden tenant fields in text, other fields as the
// client asked. Without a field list (outputs mapped by origin) the
// client's codes are kept and both formats are decoded.
func (s *session) serverResultFormats(st *rewrite.Stmt, client []int16, dst []int16) []int16 {
	if st.Outputs == nil || st.OutputsByOrigin {
		dst = append(dst, client...)
		if st.OutputsByOrigin && len(client) > 1 {
			// One code per field the client sees: the hidden fields pgveil
			// appended (the last ones) need theirs.
			for range st.Outputs {
				dst = append(dst, 0)
			}
		}
		return dst
	}
	for i, o := range st.Outputs {
		switch {
		case o.Hidden:
			dst = append(dst, 0)
		case o.Column != nil:
			dst = append(dst, 1)
		default:
			dst = append(dst, resultFormat(client, i))
		}
	}
	return dst
}

// refreshCatalogIfNeeded reloads the catalog before planning when DDL this
// session (or another on its engine) sent has completed since the last
// plan, or pgveil was reloaded (SIGHUP: the session's engine, which a new
// one replaced for new sessions only, reads its catalog again). A session whose DDL is
// unsettled plans by name and does not wait: the reload runs on another
// connection, which cannot see the session's uncommitted DDL and may wait
// on its locks; settleDDL reloads once the session is outside a
// transaction.
func (s *session) refreshCatalogIfNeeded() error {
	if s.ddlUnsettled {
		return nil
	}
	reload := s.srv.reloadAt.Load()
	if reload <= s.eng.loadedAt {
		reload = 0 // the engine started after it
	}
	if at := max(s.ddlDone.Load(), s.eng.ddlAt.Load(), reload); at != 0 && at > s.ddlSeen {
		if s.loopRun {
			return &catalogWait{what: "the catalog after DDL", run: func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, catalogRefreshTimeout)
				defer cancel()
				s.eng.refreshCatalog(ctx, time.Unix(0, at))
				return nil
			}, done: func(error) { s.ddlSeen = max(s.ddlSeen, at) }}
		}
		s.ddlSeen = at
		ctx, cancel := context.WithTimeout(s.ctx, catalogRefreshTimeout)
		s.eng.refreshCatalog(ctx, time.Unix(0, at))
		cancel()
	}
	return nil
}
