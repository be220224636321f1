package proxy

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy/copydata"
	"github.com/pgveil/pgveil/rewrite"
)

// COPY on encrypted tables. The planner has rewritten the statement (blind-
// index columns appended for FROM; a hidden tenant field added for TO) and
// says which fields to encrypt or decrypt. CopyData message boundaries are
// not row boundaries, so rows are reassembled by a copydata.Splitter,
// rewritten field by field, and re-encoded with the statement's options.
//
//	client CopyData ─▶ split ─▶ seal fields, append blind indexes ─▶ server
//	server CopyData ─▶ split ─▶ open fields, drop hidden ones      ─▶ client
//
// A row that cannot be encrypted ends the COPY with CopyFail (the server
// answers with its ErrorResponse, SQLSTATE 57014, carrying pgveil's reason);
// the rest of the client's data is dropped, never forwarded.

// copyInChunk is how much re-encoded COPY FROM data is gathered per
// CopyData to the server (which takes any split). COPY TO goes to the
// client one row per CopyData, as the server sends it (copyOutRows).
const copyInChunk = 64 * 1024

// copyOptions translates a plan's COPY options.
func copyOptions(c *rewrite.Copy) copydata.Options {
	if c.Format == rewrite.CopyBinary {
		return copydata.Options{Format: copydata.Binary}.WithDefaults()
	}
	o := copydata.Options{Delimiter: c.Delimiter, Null: c.Null, NullSet: true, Quote: c.Quote, Escape: c.Escape, Header: c.Header}
	if c.Format == rewrite.CopyCSV {
		o.Format = copydata.CSV
		o.ForceQuote = c.ForceQuote
	}
	return o.WithDefaults()
}

// copyIn is the client goroutine's state during COPY FROM STDIN.
type copyIn struct {
	plan   *rewrite.Copy
	opts   copydata.Options
	split  *copydata.Splitter
	parser *copydata.Parser
	fields []copydata.Field
	out    []copydata.Field
	buf    []byte // re-encoded rows waiting to go upstream
	vals   []byte // arena for sealed values of the current row
	failed bool   // CopyFail sent: drop the rest of the client's data
}

// handleCopyIn processes CopyData, CopyDone or CopyFail from the client
// during a COPY FROM whose plan encrypts fields.
func (s *session) handleCopyIn(typ byte) error {
	body, err := s.cr.readBody()
	if err != nil {
		return err
	}
	ci := s.copyIn
	if ci == nil {
		o := copyOptions(s.copyPlan.Copy)
		ci = &copyIn{plan: s.copyPlan.Copy, opts: o, split: copydata.NewSplitter(o), parser: copydata.NewParser(o)}
		s.copyIn = ci
	}
	if ci.failed {
		if typ != 'd' {
			s.endCopyIn()
		}
		return nil // the server already has CopyFail; nothing more goes up
	}
	switch typ {
	case 'd':
		ci.split.Feed(body)
		if err := s.copyRows(ci); err != nil {
			return s.failCopyIn(ci, err)
		}
		s.flushCopyIn(ci, false)
	case 'c':
		rest, err := ci.split.End()
		if err == nil {
			err = s.copyRows(ci)
		}
		if err == nil && len(rest) > 0 {
			err = s.copyRow(ci, rest, copydata.KindData)
		}
		if err != nil {
			return s.failCopyIn(ci, err)
		}
		s.flushCopyIn(ci, true)
		writeMsg(s.sw, 'c', nil)
		s.endCopyIn()
	case 'f':
		s.forwardClient(body)
		s.endCopyIn()
	}
	return nil
}

func (s *session) endCopyIn() {
	s.copyIn = nil
	s.copyPlan = nil
}

// copyOver ends, at a new statement, the COPY FROM whose data the client
// would send (copyPlan). The client cannot send a statement inside COPY
// IN, so that COPY never started (the server refused it, say in a failed
// transaction or for a bad option) or the new statement aborts it.
//
// CopyData the client sends next is dropped (copyStray) until a statement
// that may start a COPY (mayCopy), unless it is that statement's: the
// server ignores it outside COPY IN, and it may be plaintext of the old
// COPY's encrypted columns. It is the new statement's when the server had
// answered the old one before the new one came (psql sends a corrected
// COPY after the server refused the first: its data follows). It is not
// when the client pipelined the new statement behind the old one: the
// client may send the old COPY's data when the old COPY's CopyInResponse
// comes, behind the new statement (which the server then rejects, in COPY
// IN). Dropped data ends with a CopyFail (strayCopyEnd), so a server that
// did start a COPY fails it instead of waiting for data that never comes.
func (s *session) copyOver(mayCopy bool) {
	if s.copyPlan != nil {
		answered := s.t.answered(s.copySeq)
		s.copyPlan, s.copyIn, s.copyStray = nil, nil, !(mayCopy && answered)
		return
	}
	if mayCopy {
		s.copyStray = false
	}
}

// setCopyPlan records st as the COPY FROM whose data comes next, started
// by the message just pushed (its seq tells copyOver when it is answered).
func (s *session) setCopyPlan(st *rewrite.Stmt) {
	s.copyPlan, s.copySeq = st, s.t.lastSeq()
}

// strayCopyEnd answers the client's CopyDone or CopyFail of dropped data
// (copyStray): the server gets a CopyFail, which fails a COPY it may be in
// and is ignored otherwise, so that neither side waits for the other.
func (s *session) strayCopyEnd() {
	writeMsg(s.sw, 'f', []byte("pgveil: COPY data dropped: it followed a statement that may not be its COPY (the data may be plaintext of an encrypted column); send each COPY's data before the next statement, or wait for its answer\x00"))
}

// copyRefused: pgveil refused the statement, so it starts no COPY; CopyData
// the client sends after it (pgx streams COPY data before the server
// answers) is dropped until a statement that may start a COPY.
func (s *session) copyRefused() {
	s.copyPlan, s.copyIn, s.copyStray = nil, nil, true
}

// mayCopy reports whether a plan has a COPY statement.
func mayCopy(p *rewrite.Plan) bool {
	for _, st := range p.Stmts {
		if st.Kind == rewrite.KindCopy {
			return true
		}
	}
	return false
}

// copyMix refuses a query string with a COPY FROM STDIN of an encrypted
// table next to another COPY: the data the client sends after each
// CopyInResponse could not be told apart, and one COPY's plaintext would
// go to the server as the other's.
func copyMix(p *rewrite.Plan) *pgError {
	n, enc := 0, false
	for _, st := range p.Stmts {
		if st.Kind == rewrite.KindCopy {
			n++
		}
		if st.Copy != nil && st.Copy.From {
			enc = true
		}
	}
	if !enc || n < 2 {
		return nil
	}
	return &pgError{Severity: "ERROR", Code: "0A000",
		Message: "pgveil cannot run COPY FROM STDIN of an encrypted table in one query string with another COPY",
		Hint:    "send each COPY in a query of its own"}
}

// copyRows rewrites every complete row the splitter holds.
func (s *session) copyRows(ci *copyIn) error {
	for {
		row, ok := ci.split.Next()
		if !ok {
			return ci.split.Err()
		}
		if err := s.copyRow(ci, row, ci.split.Kind()); err != nil {
			return err
		}
	}
}

// copyRow rewrites one row (or passes a header or end marker).
func (s *session) copyRow(ci *copyIn, row []byte, kind copydata.RowKind) error {
	switch kind {
	case copydata.KindEnd:
		ci.buf = append(ci.buf, row...)
		return nil
	case copydata.KindHeader:
		if ci.opts.Format == copydata.Binary {
			ci.buf = append(ci.buf, row...)
			return nil
		}
		// The header names the client's columns; name the appended ones
		// too, so the line keeps the row's shape.
		fields, err := ci.parser.Parse(row, ci.fields[:0])
		if err != nil {
			return err
		}
		ci.fields = fields
		out := append(ci.out[:0], fields...)
		for _, a := range ci.plan.Appended {
			out = append(out, copydata.Field{Value: []byte(rewrite.IndexOf(a.Column, a.Action).Column)})
		}
		ci.out = out
		ci.opts.EOL = ci.split.EOL()
		ci.buf = copydata.AppendRow(ci.buf, ci.opts, out)
		return nil
	}
	var fields []copydata.Field
	var err error
	if ci.opts.Format == copydata.Binary {
		var n int
		fields, n, err = copydata.ParseBinaryTuple(row, ci.fields[:0])
		if err == nil && n != len(row) {
			return copyFormatError("malformed binary tuple")
		}
	} else {
		fields, err = ci.parser.Parse(row, ci.fields[:0])
	}
	if err != nil {
		return err // a *copydata.Error carries its SQLSTATE
	}
	ci.fields = fields
	plan := ci.plan
	switch {
	case len(fields) > len(plan.Fields):
		return copyFormatError(fmt.Sprintf("extra data after last expected column (a row has %d fields, the COPY %d columns)", len(fields), len(plan.Fields)))
	case len(fields) < len(plan.Fields):
		return copyFormatError(fmt.Sprintf("missing data for a column (a row has %d fields, the COPY %d columns)", len(fields), len(plan.Fields)))
	}
	format := canon.TextFormat
	if ci.opts.Format == copydata.Binary {
		format = canon.BinaryFormat
	}
	// Sealed values go to an arena and are sliced after the row is done.
	ci.vals = ci.vals[:0]
	spans := s.spans[:0]
	out := append(ci.out[:0], fields...)
	cat := s.eng.catalog()
	for i, f := range plan.Fields {
		if f.Action != rewrite.Encrypt || fields[i].Null {
			continue
		}
		col := f.Column
		s.ptBuf, err = canon.Plaintext(col.Type, format, 0, fields[i].Value, s.ptBuf[:0])
		if err != nil {
			return err
		}
		tenant, has, err := s.copyTenant(col.Table, fields, f.Tenant, format)
		if err != nil {
			return err
		}
		begin := len(ci.vals)
		physical := cat.physicalType(col)
		switch {
		case physical == policy.OIDText:
			s.envBuf, err = s.seal(col, tenant, has, s.ptBuf, s.envBuf[:0])
			ci.vals = envelope.Encode(ci.vals, s.envBuf)
		case format == canon.BinaryFormat:
			ci.vals, err = s.seal(col, tenant, has, s.ptBuf, ci.vals)
		default:
			s.envBuf, err = s.seal(col, tenant, has, s.ptBuf, s.envBuf[:0])
			ci.vals = appendByteaHex(ci.vals, s.envBuf)
		}
		if err != nil {
			return err
		}
		spans = append(spans, span{i: i, start: begin, end: len(ci.vals)})
	}
	for _, a := range plan.Appended {
		src := fields[a.Source]
		if src.Null {
			spans = append(spans, span{i: -1})
			continue
		}
		s.ptBuf, err = canon.Plaintext(a.Column.Type, format, 0, src.Value, s.ptBuf[:0])
		if err != nil {
			return err
		}
		begin := len(ci.vals)
		bi := rewrite.IndexOf(a.Column, a.Action)
		if format == canon.BinaryFormat {
			ci.vals, err = s.index(a.Column, bi, s.ptBuf, ci.vals)
		} else {
			s.envBuf, err = s.index(a.Column, bi, s.ptBuf, s.envBuf[:0])
			ci.vals = appendByteaHex(ci.vals, s.envBuf)
		}
		if err != nil {
			return err
		}
		spans = append(spans, span{i: -2, start: begin, end: len(ci.vals)})
	}
	for _, sp := range spans {
		switch sp.i {
		case -1:
			out = append(out, copydata.Field{Null: true})
		case -2:
			out = append(out, copydata.Field{Value: value(ci.vals, sp)})
		default:
			out[sp.i] = copydata.Field{Value: value(ci.vals, sp)}
		}
	}
	s.spans = spans[:0]
	ci.out = out
	ci.opts.EOL = ci.split.EOL()
	ci.buf = copydata.AppendRow(ci.buf, ci.opts, out)
	return nil
}

// copyTenant reads the row's key_context value.
func (s *session) copyTenant(t *policy.Table, fields []copydata.Field, idx int, format int16) (string, bool, error) {
	if t.KeyContext == "" {
		return "", false, nil
	}
	if idx < 0 || idx >= len(fields) {
		return "", false, tenantMissing(t)
	}
	if fields[idx].Null {
		return "", false, tenantNull(t)
	}
	cat := s.eng.catalog()
	var tenant string
	var err error
	if ct := cat.byTable[t]; ct != nil && ct.tenantBase != 0 && format == canon.BinaryFormat {
		// A domain is described as its base type (pgx.CopyFrom sends
		// numeric for a domain over numeric): read as that type.
		tenant, err = canon.DomainTenantRecv(ct.tenantBase, fields[idx].Value)
	} else {
		tenant, err = canon.TenantText(cat.tenantType(t), format, fields[idx].Value)
	}
	if err != nil {
		return "", false, err
	}
	tenant, err = cat.storedTenant(t, tenant)
	return tenant, err == nil, err
}

// flushCopyIn sends the rewritten rows gathered so far.
func (s *session) flushCopyIn(ci *copyIn, all bool) {
	if len(ci.buf) == 0 || (!all && len(ci.buf) < copyInChunk && s.cr.messageBuffered()) {
		return
	}
	writeMsg(s.sw, 'd', ci.buf)
	ci.buf = ci.buf[:0]
}

// failCopyIn ends the COPY upstream with CopyFail naming the reason; no
// value is ever part of the message.
func (s *session) failCopyIn(ci *copyIn, cause error) error {
	ci.failed = true
	ci.buf = ci.buf[:0]
	pe := refusalFrom(cause)
	s.log.Info("COPY refused", zap.String("reason", pe.Message), zap.Error(cause))
	s.srv.metrics.Statements.WithLabelValues("refused").Inc()
	msg := pe.Message
	if !strings.HasPrefix(msg, "pgveil") {
		msg = "pgveil: " + msg
	}
	writeMsg(s.sw, 'f', append([]byte(msg), 0))
	return nil
}

func appendByteaHex(dst, b []byte) []byte {
	dst = append(dst, '\\', 'x')
	n := len(dst)
	dst = append(dst, make([]byte, hex.EncodedLen(len(b)))...)
	hex.Encode(dst[n:], b)
	return dst
}

// --- COPY TO STDOUT ---

// copyOut is the server goroutine's state during COPY TO STDOUT.
type copyOut struct {
	plan   *rewrite.Copy
	opts   copydata.Options
	split  *copydata.Splitter
	parser *copydata.Parser
	fields []copydata.Field
	m      *resultMap // per-field decrypt plan, in the resultMap shape
	buf    []byte
}

// decodeCopy handles CopyOutResponse, CopyData and CopyDone of a COPY TO
// whose plan decrypts fields (and CopyInResponse of a COPY FROM whose
// appended fields the client must not count).
func (s *session) decodeCopy(typ byte, cur pending) error {
	st := curStmt(cur)
	if st == nil || st.Copy == nil {
		return s.sr.forwardBody(s.cw)
	}
	switch typ {
	case 'G': // CopyInResponse: report the client's own column count
		body, err := s.sr.readBody()
		if err != nil {
			return err
		}
		s.out = appendCopyResponse(s.out[:0], 'G', body, len(st.Copy.Fields))
		s.cw.Write(s.out)
		return nil
	case 'H':
		body, err := s.sr.readBody()
		if err != nil {
			return err
		}
		visible := 0
		for _, f := range st.Copy.Fields {
			if !f.Hidden {
				visible++
			}
		}
		o := copyOptions(st.Copy)
		s.copyOut = &copyOut{plan: st.Copy, opts: o, split: copydata.NewSplitter(o), parser: copydata.NewParser(o), m: s.copyResultMap(st.Copy, o)}
		s.out = appendCopyResponse(s.out[:0], 'H', body, visible)
		s.cw.Write(s.out)
		return nil
	case 'd':
		co := s.copyOut
		if co == nil {
			return s.sr.forwardBody(s.cw)
		}
		body, err := s.sr.readBody()
		if err != nil {
			return err
		}
		co.split.Feed(body)
		return s.copyOutRows(co)
	case 'c':
		co := s.copyOut
		s.copyOut = nil
		if co != nil {
			rest, err := co.split.End()
			if err == nil {
				err = s.copyOutRows(co)
			}
			if err == nil && len(rest) > 0 {
				err = s.copyOutRow(co, rest, copydata.KindData) // written just below
			}
			if err != nil {
				return s.copyOutError(err)
			}
			if len(co.buf) > 0 {
				writeMsg(s.cw, 'd', co.buf)
			}
		}
		return s.sr.forwardBody(s.cw)
	}
	return s.sr.forwardBody(s.cw)
}

// curStmt is the statement whose responses cur is receiving.
func curStmt(cur pending) *rewrite.Stmt {
	switch cur.kind {
	case pendQuery:
		if cur.query != nil && cur.query.stmt < len(cur.query.plan.Stmts) {
			return cur.query.plan.Stmts[cur.query.stmt]
		}
	case pendExecute:
		if cur.portal != nil && cur.portal.Stmt != nil {
			return cur.portal.Stmt.Plan
		}
	}
	return nil
}

// copyResultMap expresses a COPY TO's fields as a resultMap so rows are
// opened by the same code as DataRows.
func (s *session) copyResultMap(c *rewrite.Copy, o copydata.Options) *resultMap {
	cat := s.eng.catalog()
	format := int16(0)
	if o.Format == copydata.Binary {
		format = 1
	}
	m := &resultMap{cols: make([]resultCol, len(c.Fields)), visible: len(c.Fields)}
	for i, f := range c.Fields {
		rc := &m.cols[i]
		rc.tenant, rc.srvFmt, rc.cliFmt = -1, format, format
		if f.Hidden && m.visible > i {
			m.visible = i
		}
		rc.send = f.Send
		if f.Column != nil {
			s.fillCol(cat, rc, f.Column)
			rc.tenant = f.Tenant
		}
	}
	return m
}

func (s *session) copyOutRows(co *copyOut) error {
	for {
		row, ok := co.split.Next()
		if !ok {
			if err := co.split.Err(); err != nil {
				return s.copyOutError(err)
			}
			return nil
		}
		kind := co.split.Kind()
		if err := s.copyOutRow(co, row, kind); err != nil {
			return err
		}
		// One CopyData per row, as the server sends them: libpq's
		// PQgetCopyData promises a row per call, and ruby-pg's row
		// decoder counts on it. A binary header goes with the first row,
		// as the server sends it.
		if kind != copydata.KindHeader || co.opts.Format != copydata.Binary {
			writeMsg(s.cw, 'd', co.buf)
			co.buf = co.buf[:0]
		}
	}
}

func (s *session) copyOutRow(co *copyOut, row []byte, kind copydata.RowKind) error {
	if kind == copydata.KindEnd || (kind == copydata.KindHeader && co.opts.Format == copydata.Binary) {
		co.buf = append(co.buf, row...)
		return nil
	}
	var fields []copydata.Field
	var err error
	if co.opts.Format == copydata.Binary {
		fields, _, err = copydata.ParseBinaryTuple(row, co.fields[:0])
	} else {
		fields, err = co.parser.Parse(row, co.fields[:0])
	}
	if err != nil {
		return s.copyOutError(err)
	}
	co.fields = fields
	m := co.m
	if len(fields) != len(m.cols) {
		return s.copyOutError(fmt.Errorf("a COPY row has %d fields where %d were planned", len(fields), len(m.cols)))
	}
	co.opts.EOL = co.split.EOL()
	if kind == copydata.KindHeader {
		co.buf = copydata.AppendRow(co.buf, co.opts, fields[:m.visible])
		return nil
	}
	start := time.Now()
	// Reuse the row decryption of DataRows: values as [][]byte, NULL nil.
	vals := s.copyVals[:0]
	for _, f := range fields {
		if f.Null {
			vals = append(vals, nil)
		} else {
			vals = append(vals, f.Value)
		}
	}
	out, err := s.decryptRow(m, vals)
	s.copyVals = vals
	if err != nil {
		return err
	}
	fields = fields[:0]
	for _, v := range out {
		fields = append(fields, copydata.Field{Value: v, Null: v == nil})
	}
	co.fields = fields
	co.buf = copydata.AppendRow(co.buf, co.opts, fields)
	s.observe(s.srv.metrics.phaseCrypto, time.Since(start).Seconds())
	return nil
}

// copyOutError ends the session: data pgveil cannot read must not reach
// the client as if it were the table's content.
func (s *session) copyOutError(err error) error {
	var pe *pgError
	if errors.As(err, &pe) {
		return pe
	}
	return &pgError{Severity: "FATAL", Code: codeInternalError, Message: "pgveil could not read the server's COPY data", cause: err}
}

// appendCopyResponse re-encodes a Copy{In,Out}Response with n columns (the
// per-column format codes of the first n columns, or the overall format).
func appendCopyResponse(dst []byte, typ byte, body []byte, n int) []byte {
	if len(body) < 3 {
		return append(append(dst, typ, 0, 0, 0, byte(4+len(body))), body...)
	}
	overall := body[0]
	count := int(be16(body[1:]))
	start := len(dst)
	dst = beginMsg(dst, typ)
	dst = append(dst, overall)
	dst = appendInt16(dst, int16(n))
	for i := 0; i < n; i++ {
		code := int16(overall)
		if i < count && 3+2*i+2 <= len(body) {
			code = be16(body[3+2*i:])
		}
		dst = appendInt16(dst, code)
	}
	finishMsg(dst, start)
	return dst
}

// copyFormatError is a COPY row that does not fit the statement
// (bad_copy_file_format, as the server would say), with pgveil's message,
// which never quotes the row. During COPY FROM it reaches the client as
// the reason in the server's 57014 (failCopyIn).
func copyFormatError(msg string) *pgError {
	return &pgError{Severity: "ERROR", Code: "22P04", Message: "pgveil: COPY: " + msg}
}
