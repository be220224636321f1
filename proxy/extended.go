package proxy

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// handleExtended processes an extended-protocol message when encryption is
// configured. Statements and portals pgveil does not touch keep the
// client's bytes; the others are rewritten.
func (s *session) handleExtended(typ byte, body []byte) error {
	if s.refusing {
		if typ == 'B' {
			if name, _, ok := cstringBytes(body, 0); ok {
				s.t.closePortal(name) // the server would not bind it either
			}
		}
		return nil
	}
	if pe := reservedInMessage(typ, body); pe != nil {
		s.injectExtendedError(pe)
		if typ == 'B' {
			if name, _, ok := cstringBytes(body, 0); ok {
				s.t.closePortal(name) // the client's portal does not exist now
			}
		}
		return nil
	}
	if (typ == 'P' || typ == 'B') && !s.loopRun {
		// pgveil's own statements whose Close the server skipped after an
		// error (a tenant lookup's, an unnamed one's) are closed again at
		// the next Parse or Bind, so none stays for the session's life.
		// Not on an event loop, where a message may wait and run again
		// (it must not have written); there the next unnamed Parse or
		// Query sends them (dropUnnamed), and engineClient after each
		// message.
		if typ == 'P' {
			s.reprepareAgain() // before the Closes: only at rest
		}
		s.closeAgain()
	}
	switch typ {
	case 'P':
		return s.handleParse(body)
	case 'B':
		return s.handleBind(body)
	case 'D':
		return s.handleDescribe(body)
	case 'E':
		return s.handleExecute(body)
	case 'C':
		return s.handleClose(body)
	}
	return nil
}

func (s *session) forwardClient(body []byte) {
	s.sw.Write(s.cr.header())
	s.sw.Write(body)
}

func (s *session) handleDescribe(body []byte) error {
	if len(body) < 2 {
		return &protocolError{msg: "malformed Describe message"}
	}
	name, _, ok := cstringBytes(body, 1)
	if !ok {
		return &protocolError{msg: "malformed Describe message"}
	}
	if body[0] == 'S' {
		stmt := s.t.statement(name)
		// A statement prepared anew whose Parse the server skipped, or
		// may skip in an earlier pipeline: the server must have it before
		// it is described (review 18a).
		s.reprepareOne(stmt)
		if ns := s.preparedAgainIfUnsettled(stmt); ns != stmt {
			s.commitReprepare(ns)
			stmt = ns
		}
		s.t.push(pending{kind: pendDescribeStmt, stmt: stmt})
		if stmt == passthroughStmt {
			s.forwardClient(body)
			return nil
		}
		s.sw.Write(appendDescribeOrClose(s.scratch[:0], 'D', 'S', stmt.ServerName))
		return nil
	}
	portal := s.t.portal(name)
	if portal != passthroughPortal {
		portal.described = true
	}
	s.t.push(pending{kind: pendDescribePortal, portal: portal})
	s.forwardClient(body)
	return nil
}

func (s *session) handleExecute(body []byte) error {
	name, _, ok := cstringBytes(body, 0)
	if !ok {
		return &protocolError{msg: "malformed Execute message"}
	}
	if len(s.laterPortals) > 0 {
		pe, err := s.recheckLaterPortal(name)
		if err != nil {
			return err
		}
		if pe != nil {
			s.injectExtendedError(pe)
			return nil
		}
		s.laterPortalDone(name)
	}
	if e := s.effPortals[string(name)]; e != 0 {
		s.pathEffect(e)
	}
	portal := s.t.portal(name)
	if portal != passthroughPortal && portal.Stmt.Plan != nil && portal.Stmt.Plan.OutputsByOrigin && !portal.described {
		// Fields are known only from a RowDescription: ask for one, for
		// pgveil's eyes only.
		portal.described = true
		s.t.push(pending{kind: pendDescribePortal, portal: portal, internal: true})
		s.sw.Write(appendDescribeOrClose(s.scratch[:0], 'D', 'P', portal.Name))
	}
	copyFrom := portal != passthroughPortal && portal.Stmt.Plan != nil && portal.Stmt.Plan.Copy != nil && portal.Stmt.Plan.Copy.From
	if copyFrom {
		s.copyOver(true)
	} else {
		// A pass-through portal may be a COPY of another table.
		s.copyOver(portal == passthroughPortal || portal.Stmt.Plan == nil || portal.Stmt.Plan.Kind == rewrite.KindCopy)
	}
	var sent time.Time
	if portal != passthroughPortal {
		sent = time.Now()
	}
	p := pending{kind: pendExecute, portal: portal, sent: sent}
	s.executePrepares(name)
	if closes := s.executeCloses(name); len(closes) > 0 {
		p.closes = &closes
	}
	s.t.push(p)
	if copyFrom {
		s.setCopyPlan(portal.Stmt.Plan)
	}
	s.forwardClient(body)
	return nil
}

func (s *session) handleClose(body []byte) error {
	if len(body) < 2 {
		return &protocolError{msg: "malformed Close message"}
	}
	name, _, ok := cstringBytes(body, 1)
	if !ok {
		return &protocolError{msg: "malformed Close message"}
	}
	if body[0] == 'S' {
		// The server may skip the Close (an error earlier in the
		// pipeline): until it confirms it, the statement keeps its
		// records (markClosed; review 19).
		s.markClosed(string(name))
		stmt := s.t.statement(name)
		// A statement prepared anew whose Parse the server skipped is
		// not sent again once closed (a statement upstream for no one,
		// and a ghost running it: review 18a).
		s.t.takeFailedReprepare(stmt)
		s.t.closeStatementMsg(name)
		p := pending{kind: pendCloseStmt, defName: string(name), clientClose: true}
		if stmt != passthroughStmt {
			p.stmt = stmt // its CloseComplete confirms the ghost gone
		}
		s.t.push(p)
		if stmt == passthroughStmt {
			s.forwardClient(body)
			return nil
		}
		s.sw.Write(appendDescribeOrClose(s.scratch[:0], 'C', 'S', stmt.ServerName))
		return nil
	}
	delete(s.effPortals, string(name))
	delete(s.closePortals, string(name))
	delete(s.prepPortals, string(name))
	delete(s.laterPortals, string(name))
	s.t.closePortal(name)
	s.t.push(pending{kind: pendClosePortal})
	s.forwardClient(body)
	return nil
}

// decodeBackend handles a backend message when encryption is configured:
// descriptions and rows of planned statements are rewritten, everything
// else is relayed raw. A *pgError return ends the session (see decrypt.go).
func (s *session) decodeBackend(typ byte, ev backendEvent) error {
	cur := ev.cur
	s.mapSeq = cur.seq
	switch typ {
	case 'S':
		body, err := s.sr.readBody()
		if err != nil {
			return err
		}
		s.noteParameterStatus(body)
		s.cw.Write(s.sr.header())
		s.cw.Write(body)
		return nil
	case 't':
		if cur.kind != pendDescribeStmt || cur.stmt == nil || cur.stmt.Plan == nil || !stmtRewritten(cur.stmt.Plan) {
			return s.sr.forwardBody(s.cw)
		}
		body, err := s.sr.readBody()
		if err != nil {
			return err
		}
		if s.pdOIDs, err = parseParameterDescription(body, s.pdOIDs[:0]); err != nil {
			return err
		}
		oids := clientParamOIDs(cur.stmt.Plan, s.pdOIDs, cur.stmt.ParamOIDs, nil)
		s.out = appendParameterDescription(s.out[:0], oids)
		s.cw.Write(s.out)
		return nil
	case 'T':
		return s.decodeRowDescription(cur)
	case 'D':
		m := s.rowMap(cur)
		if m == nil || !m.work {
			return s.sr.forwardBody(s.cw)
		}
		body, err := s.sr.readBody()
		if err != nil {
			return err
		}
		if err := s.dr.parse(body); err != nil {
			return err
		}
		if len(s.dr.values) != len(m.cols) {
			return &pgError{Severity: "FATAL", Code: codeInternalError, Message: "pgveil: a row does not match its description"}
		}
		vals, err := s.decryptRow(m, s.dr.values)
		if err != nil {
			return err
		}
		s.out = appendDataRow(s.out[:0], vals)
		s.cw.Write(s.out)
		return nil
	case 'C', 'I':
		s.curMap = nil
		var done *rewrite.Stmt
		switch {
		case cur.kind == pendQuery && cur.query != nil && cur.query.stmt-1 < len(cur.query.plan.Stmts):
			done = cur.query.plan.Stmts[cur.query.stmt-1]
		case cur.kind == pendExecute && cur.portal != nil && cur.portal.Stmt != nil:
			done = cur.portal.Stmt.Plan
		}
		s.declaredBy(done, cur.seq)
		if done != nil && done.Kind == rewrite.KindDDL {
			// The server commits the DDL after this CommandComplete (at the
			// end of the implicit transaction, or at COMMIT): the reload
			// waits for the ReadyForQuery that says so.
			s.ddlPending = true
		}
		return s.sr.forwardBody(s.cw)
	case 'H', 'd', 'c', 'G':
		return s.decodeCopy(typ, cur)
	case 'Z', 's':
		s.curMap = nil
	}
	return s.sr.forwardBody(s.cw)
}

// ddlCommitted makes every session plan with the new schema from now: it
// reloads the shared snapshot in the background, and this session's next
// plan waits for it (refreshCatalogIfNeeded). It runs before the client
// has the ReadyForQuery, so the client's next message sees it.
func (s *session) ddlCommitted() {
	at := time.Now()
	s.ddlDone.Store(at.UnixNano())
	for {
		old := s.eng.ddlAt.Load()
		if old >= at.UnixNano() || s.eng.ddlAt.CompareAndSwap(old, at.UnixNano()) {
			break
		}
	}
	go func() {
		// Bounded: the reload must not wait for ever on a lock that a
		// session's open transaction holds.
		ctx, cancel := context.WithTimeout(context.Background(), catalogRefreshTimeout)
		defer cancel()
		s.eng.refreshCatalog(ctx, at)
	}()
}

// decodeRowDescription maps a result set (or a description) and sends the
// client the logical view of it.
func (s *session) decodeRowDescription(cur pending) error {
	st, clientFormats, describeStmt := rowDescStmt(&cur)
	if st == nil {
		return s.sr.forwardBody(s.cw)
	}
	body, err := s.sr.readBody()
	if err != nil {
		return err
	}
	if err := s.rd.parse(body); err != nil {
		return err
	}
	if t, stale := planDisagrees(s.eng.catalog(), st, s.rd.fields); stale {
		// The table changed since pgveil's snapshot (DDL run directly on
		// the database): every session plans with a new snapshot from
		// now. The plan's positions would open one column's values as
		// another's, or pass an envelope as plain; with fields added or
		// dropped, a Bind would give the server one format code per
		// planned field. So the session ends, as when a value does not
		// open (the server may be running what the client pipelined after
		// it), except for a simple query whose fields only number
		// differently: it is mapped by origin (mapResult).
		name := "a configured table"
		if t != nil {
			name = t.QualifiedName()
		}
		s.log.Warn("result fields differ from the plan: the catalog snapshot is stale; reading it again", zap.String("table", name))
		s.ddlCommitted()
		if cur.kind != pendQuery || len(s.rd.fields) == len(st.Outputs) {
			pe := &pgError{Severity: "FATAL", Code: "0A000",
				Message: fmt.Sprintf("pgveil: the columns of %s changed since pgveil read its catalog; it reads the catalog again now", name),
				Hint:    "run the statement again on a new connection"}
			if t != nil {
				pe.Table, pe.Schema = t.Name, t.Schema
			}
			return pe
		}
	}
	if cur.kind == pendQuery {
		// Simple queries: the client reads each field in the format the
		// server announces (text, or binary for a binary cursor).
		clientFormats = clientFormats[:0]
		for _, f := range s.rd.fields {
			clientFormats = append(clientFormats, f.Format)
		}
	}
	m := s.mapResult(st, s.rd.fields, clientFormats, nil)
	switch cur.kind {
	case pendQuery:
		s.curMap = m
	case pendDescribePortal:
		cur.portal.rmap = m
	}
	if cur.internal {
		return nil
	}
	if m == nil {
		s.cw.Write(s.sr.header())
		s.cw.Write(body)
		return nil
	}
	fields := rewriteRowDescription(s.rd.fields, m, describeStmt)
	s.out = appendRowDescription(s.out[:0], fields)
	s.cw.Write(s.out)
	return nil
}

// planDisagrees reports whether the server's fields disagree with st's
// plan: another number of fields, or a field whose origin
// (RowDescription's table OID and attribute number) is a configured
// table's column other than the one the plan put at that position (or a
// plain one); t is that table (for another number of fields, the first
// configured table among the origins; it may be nil). Attribute numbers
// are never reused within a table, so a disagreement means pgveil's
// catalog snapshot is older than the table. Only plans that number their
// fields are checked, by the fields' own origins: views and expressions
// have none in a configured table.
func planDisagrees(cat *catalog, st *rewrite.Stmt, fields []fieldDesc) (t *policy.Table, stale bool) {
	if st.Outputs == nil || st.OutputsByOrigin {
		return nil, false
	}
	for i, f := range fields {
		if f.TableOID == 0 {
			continue
		}
		ct := cat.byOID[f.TableOID]
		if ct == nil {
			continue
		}
		if len(fields) != len(st.Outputs) {
			return ct.policy, true
		}
		if ct.cols[f.AttNum] != st.Outputs[i].Column {
			return ct.policy, true
		}
	}
	return nil, len(fields) != len(st.Outputs)
}

// rowDescStmt is the planned statement a RowDescription answering cur
// describes (nil: none, the message passes as it is), the formats the
// client asked for its fields, and whether cur is a Describe of a
// statement.
func rowDescStmt(cur *pending) (st *rewrite.Stmt, clientFormats []int16, describeStmt bool) {
	switch cur.kind {
	case pendQuery:
		if cur.query != nil && cur.query.stmt < len(cur.query.plan.Stmts) {
			st = cur.query.plan.Stmts[cur.query.stmt]
		}
	case pendDescribeStmt:
		if cur.stmt != nil {
			st = cur.stmt.Plan
		}
		describeStmt = true
	case pendDescribePortal:
		if cur.portal != nil && cur.portal.Stmt != nil {
			st = cur.portal.Stmt.Plan
			clientFormats = cur.portal.ResultFormats
		}
	}
	return st, clientFormats, describeStmt
}

// rowMap is the result map DataRows of cur are decoded with.
func (s *session) rowMap(cur pending) *resultMap {
	switch cur.kind {
	case pendQuery:
		return s.curMap
	case pendExecute:
		p := cur.portal
		if p == nil || p == passthroughPortal || p.Stmt.Plan == nil {
			return nil
		}
		if p.rmap == nil {
			p.rmap = s.mapResult(p.Stmt.Plan, nil, p.ResultFormats, s.serverResultFormats(p.Stmt.Plan, p.ResultFormats, nil))
		}
		return p.rmap
	}
	return nil
}
