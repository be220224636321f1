package proxy

import (
	"errors"
	"fmt"
	"time"

	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// The way out: RowDescription and ParameterDescription report logical
// types, DataRow fields of encrypted columns are opened and encoded in the
// format the client asked for, hidden tenant fields are dropped.
//
// A value that does not open (tampered, moved from another column or
// tenant, unknown key) never reaches the client as ciphertext or as another
// row's value. With on_error: null it becomes NULL; by default the session
// ends with a FATAL ErrorResponse (SQLSTATE class PV, below): the server
// may already be running statements the client pipelined after this one,
// and only a closed session makes every client treat the batch as lost.
// A shredded tenant's value is always NULL.

// SQLSTATEs of values that fail to open (class PV, implementation-defined).
const (
	codeValueTampered   = "PV001" // does not authenticate: altered, or moved from another column, table or tenant
	codeValueUnknownKey = "PV002" // sealed under a key pgveil.keys does not have
	codeValueNotSealed  = "PV003" // plaintext where an envelope was expected
	codeKeySourceDown   = "PV004" // the master key source is unreachable; retry
)

// resultCol says what to do with one field of a result set.
type resultCol struct {
	col        *policy.Column // nil: relay as it is
	tenant     int            // field holding the row's key_context value, -1 if none
	tenantType uint32
	tenantBase uint32 // catTable.tenantBase: a binary tenant is read as this type
	// sendTenant: the tenant's type is one rewrite.TenantSend names
	// (date, timestamp, timestamptz, float4, float8, a domain over one),
	// whose text depends on the session's settings: it is read from a
	// hidden field of its send form only (send), never as printed.
	sendTenant bool
	// send marks a hidden field pgveil added holding a tenant's send form
	// (a bytea: rewrite.Output.SendOf).
	send     bool
	srvFmt   int16 // format the server sends the field in
	cliFmt   int16 // format the client asked for
	physical uint32
	masked   bool // the role is not a reader: NULL
	// json is set on a json or jsonb field built from encrypted columns.
	json *rewrite.JSONShape
	// tenantAlso are further fields of the tenant's origin (mapped by
	// origin: a * over a JOIN … USING shows the merged column and pgveil
	// adds the table's own): the value opens only where each names the
	// same tenant as tenant, whatever its format (review 21h).
	tenantAlso []int
}

// resultMap is the decrypt plan of one result set.
type resultMap struct {
	cols    []resultCol
	visible int  // fields the client sees (hidden ones are the last)
	work    bool // something to decrypt, mask or drop
}

// mapResult builds the decrypt map of a result set of st. fields is the
// server's RowDescription when there is one; clientFormats are the formats
// the client asked for at Bind (nil: text, as for simple queries and
// Describe of a statement); serverFormats is what pgveil asked the server
// for (when fields is nil).
func (s *session) mapResult(st *rewrite.Stmt, fields []fieldDesc, clientFormats, serverFormats []int16) *resultMap {
	if st == nil || (st.Outputs == nil && !st.OutputsByOrigin) {
		return nil
	}
	cat := s.eng.catalog()
	n := len(st.Outputs)
	if fields != nil {
		n = len(fields)
	}
	if !st.OutputsByOrigin && fields != nil && len(fields) != len(st.Outputs) {
		// The server's row does not have the shape the planner predicted:
		// map by origin rather than trust positions.
		s.log.Warn("result shape differs from the plan; mapping fields by origin")
		var hidden []rewrite.Output
		for _, o := range st.Outputs {
			if o.Hidden {
				hidden = append(hidden, o) // pgveil's additions, still the last fields
			}
		}
		return s.mapByOrigin(cat, fields, hidden, clientFormats)
	}
	if st.OutputsByOrigin {
		if fields == nil {
			return nil // the caller makes sure a RowDescription is read first
		}
		return s.mapByOrigin(cat, fields, st.Outputs, clientFormats)
	}
	m := &resultMap{cols: make([]resultCol, n), visible: n}
	for i, o := range st.Outputs {
		rc := &m.cols[i]
		rc.tenant = -1
		rc.cliFmt = resultFormat(clientFormats, i)
		rc.srvFmt = resultFormat(serverFormats, i)
		if fields != nil {
			rc.srvFmt = fields[i].Format
		}
		if o.Hidden {
			m.visible = min(m.visible, i)
			m.work = true
		}
		// A send form is a bytea: a field the server describes as another
		// type is not one, and a tenant read from it fails closed.
		rc.send = o.SendOf != nil && (fields == nil || fields[i].TypeOID == policy.OIDBytea)
		if o.JSON != nil {
			rc.json = o.JSON
			m.work = true
			continue
		}
		if o.Column == nil {
			continue
		}
		s.fillCol(cat, rc, o.Column)
		rc.tenant = o.Tenant
		m.work = true
	}
	return m
}

// mapByOrigin maps fields by RowDescription's table OID and attribute
// number; the last fields are pgveil's additions (hidden, in order). A
// tenant read through its send form is the hidden field of its table's.
func (s *session) mapByOrigin(cat *catalog, fields []fieldDesc, hidden []rewrite.Output, clientFormats []int16) *resultMap {
	m := &resultMap{cols: make([]resultCol, len(fields)), visible: len(fields) - len(hidden)}
	if len(hidden) > 0 {
		m.work = true
	}
	for k, o := range hidden {
		if i := m.visible + k; i >= 0 && i < len(fields) && o.SendOf != nil && fields[i].TypeOID == policy.OIDBytea {
			m.cols[i].send = true
		}
	}
	for i, f := range fields {
		rc := &m.cols[i]
		rc.tenant = -1
		rc.srvFmt = f.Format
		rc.cliFmt = resultFormat(clientFormats, i)
		ct := cat.byOID[f.TableOID]
		if ct == nil {
			continue
		}
		col := ct.cols[f.AttNum]
		if col == nil {
			continue
		}
		s.fillCol(cat, rc, col)
		m.work = true
		if rc.sendTenant {
			// The one send field of the table's (two, of a table read
			// twice, would not say which row's: neither is taken, and
			// the value does not open).
			for k, o := range hidden {
				if j := m.visible + k; o.SendOf == ct.policy && j >= 0 && j < len(fields) && m.cols[j].send {
					if rc.tenant >= 0 {
						rc.tenant = -1
						break
					}
					rc.tenant = j
				}
			}
		} else if ct.tenantAttNum != 0 {
			// The one key_context field of the table's. Of a table read
			// twice (a self-join whose row no longer has the planned
			// shape) the first was taken for every value's tenant, and a
			// value moved from the other side's tenant opened (lead, 21st
			// session): two candidates name neither, and the value does
			// not open.
			// Review 21h: fields of one origin that hold the same value
			// in a row name that row's tenant whichever is the table's
			// own (a * over a JOIN … USING shows the merged column, and
			// pgveil adds the table's own beside it); different values
			// (a self-join's two sides) name neither.
			for j, g := range fields {
				if g.TableOID == f.TableOID && g.AttNum == ct.tenantAttNum {
					if rc.tenant >= 0 {
						rc.tenantAlso = append(rc.tenantAlso, j)
						continue
					}
					rc.tenant = j
				}
			}
		}
	}
	return m
}

func (s *session) fillCol(cat *catalog, rc *resultCol, col *policy.Column) {
	rc.col = col
	rc.physical = cat.physicalType(col)
	rc.tenantType = cat.tenantType(col.Table)
	rc.tenantBase = 0
	if ct := cat.byTable[col.Table]; ct != nil {
		rc.tenantBase = ct.tenantBase
	}
	rc.sendTenant = col.Table.KeyContext != "" && rewrite.TenantSend(rc.tenantType, rc.tenantBase) != ""
	rc.masked = !col.CanRead(s.user) || !s.roleCanRead(col)
}

// roleCanRead reports whether the role in effect for the message whose
// answers are being decoded (mapSeq) is among col's readers: after SET
// ROLE a column is read as the role set, not as the login user. A role
// pgveil does not know yet (a SET ROLE sent, the server not asked since)
// reads no column that has readers. Server side.
func (s *session) roleCanRead(col *policy.Column) bool {
	if col.Readers == nil {
		return true
	}
	if from := s.roleUnknownFrom.Load(); from != 0 && s.mapSeq >= from {
		return false
	}
	r := s.role.Load()
	return r != nil && col.CanRead(*r)
}

// rewriteRowDescription reports logical types and the client's formats for
// encrypted fields and drops hidden ones. describeStmt marks a Describe of
// a statement, whose formats are always text (not yet bound).
func rewriteRowDescription(fields []fieldDesc, m *resultMap, describeStmt bool) []fieldDesc {
	fields = fields[:m.visible]
	for i := range fields {
		rc := &m.cols[i]
		if !describeStmt {
			fields[i].Format = rc.cliFmt
		}
		if rc.col != nil {
			fields[i].TypeOID = rc.col.Type.OID()
			fields[i].TypeSize = rc.col.Type.TypeSize()
			fields[i].TypeModifier = -1
		}
	}
	return fields
}

// clientParamOIDs maps the rewritten statement's ParameterDescription back
// to the client's parameters: a type the client declared at Parse is
// echoed, as the server does (pgjdbc drops the connection when a resolved
// type changes); otherwise the logical type for parameters that feed an
// encrypted column, the server's type for the others.
func clientParamOIDs(st *rewrite.Stmt, server, declared []uint32, dst []uint32) []uint32 {
	dst = dst[:0]
	for i := 0; i < st.ClientParams; i++ {
		if i < len(declared) && declared[i] != 0 {
			dst = append(dst, declared[i])
			continue
		}
		var oid uint32
		for j, p := range st.Params {
			if p.Client != i {
				continue
			}
			if p.Action == rewrite.Pass {
				if oid == 0 && j < len(server) {
					oid = server[j]
				}
				continue
			}
			oid = p.ClientOID()
			break
		}
		dst = append(dst, oid)
	}
	return dst
}

// value is the bytes of sp in arena: never nil, which would stand for NULL
// (a slice of a nil arena is nil, and an empty value leaves the arena as
// it was: an empty string on a session that has opened nothing yet read
// as NULL).
func value(arena []byte, sp span) []byte {
	if sp.start == sp.end {
		return emptyValue
	}
	return arena[sp.start:sp.end:sp.end]
}

// emptyValue is the zero-length, non-NULL value.
var emptyValue = []byte{}

// decryptRow rewrites one DataRow's values in place; values of encrypted
// fields are appended to s.rowArena. It returns the visible values.
func (s *session) decryptRow(m *resultMap, values [][]byte) ([][]byte, error) {
	start := time.Now()
	arena := s.rowArena[:0]
	spans := s.rowSpans[:0]
	for i := range m.cols[:m.visible] {
		rc := &m.cols[i]
		if rc.json != nil && values[i] != nil {
			begin := len(arena)
			var err error
			if arena, err = s.openJSON(rc, values[i], arena); err != nil {
				return nil, err
			}
			spans = append(spans, span{i: i, start: begin, end: len(arena)})
			continue
		}
		if rc.col == nil || values[i] == nil {
			continue
		}
		begin := len(arena)
		var null bool
		var err error
		arena, null, err = s.openValue(m, rc, values[i], values, arena)
		if err != nil {
			return nil, err
		}
		if null {
			values[i] = nil
			continue
		}
		spans = append(spans, span{i: i, start: begin, end: len(arena)})
	}
	for _, sp := range spans {
		values[sp.i] = value(arena, sp)
	}
	s.rowArena, s.rowSpans = arena, spans[:0]
	s.observe(s.srv.metrics.phaseCrypto, time.Since(start).Seconds())
	return values[:m.visible], nil
}

// openValue opens one stored value and appends it, in the client's format,
// to dst. null reports a value that becomes NULL (masked, shredded, or a
// failure under on_error: null).
func (s *session) openValue(m *resultMap, rc *resultCol, raw []byte, row [][]byte, dst []byte) ([]byte, bool, error) {
	col := rc.col
	if rc.masked {
		s.inc(s.srv.metrics.col(col).masked)
		return dst, true, nil
	}
	var env []byte
	var err error
	switch {
	case rc.physical == policy.OIDText:
		if !envelope.IsText(raw) {
			if s.eng.migrating(col.Table) {
				return s.legacyPlaintext(rc, raw, dst)
			}
			return s.openFailed(rc, errNotSealed, dst)
		}
		env, err = envelope.Decode(s.envBuf[:0], raw)
		s.envBuf = env
	case rc.srvFmt == 1:
		env = raw
	default:
		env, err = decodeByteaText(s.envBuf[:0], raw)
		s.envBuf = env
	}
	if err != nil {
		return s.openFailed(rc, keysource.ErrTampered, dst)
	}
	if !envelope.IsBinary(env) {
		if s.eng.migrating(col.Table) {
			return s.legacyPlaintext(rc, env, dst)
		}
		return s.openFailed(rc, errNotSealed, dst)
	}
	pt, key, err := s.eng.keys.Open(s.keyCtx, col, env, s.ptOut[:0])
	if err != nil {
		if err = s.keyErr(err); offLoop(err) {
			return dst, false, err
		}
		return s.openFailed(rc, err, dst)
	}
	s.ptOut = pt
	if rc.sendTenant {
		// Review 21a: a date, timestamp or float tenant is read from the
		// bytes of its send form, which no session setting changes; a
		// row without one does not open.
		if !(rc.tenant >= 0 && rc.tenant < len(row) && rc.tenant < len(m.cols) && m.cols[rc.tenant].send) || row[rc.tenant] == nil {
			return s.openFailed(rc, keysource.ErrWrongScope, dst)
		}
		tenant, err := s.sentTenant(rc, m.cols[rc.tenant].srvFmt, row[rc.tenant])
		if err != nil || !key.BelongsTo(tenant, true) {
			return s.openFailed(rc, keysource.ErrWrongScope, dst)
		}
	} else if col.Table.KeyContext != "" {
		// A value of a table with a key_context opens only beside its
		// row's tenant: without a known tenant field (fields mapped by
		// origin that lack it, or name two) it does not (lead, 21st
		// session: the check was skipped).
		if rc.tenant < 0 || rc.tenant >= len(row) || rc.tenant >= len(m.cols) || row[rc.tenant] == nil {
			return s.openFailed(rc, keysource.ErrWrongScope, dst)
		}
		tenantOf := func(j int) (string, error) {
			if rc.tenantBase != 0 && m.cols[j].srvFmt == canon.BinaryFormat {
				return canon.DomainTenantRecv(rc.tenantBase, row[j])
			}
			return canon.TenantText(rc.tenantType, m.cols[j].srvFmt, row[j])
		}
		tenant, err := tenantOf(rc.tenant)
		if err != nil || !key.BelongsTo(tenant, true) {
			return s.openFailed(rc, keysource.ErrWrongScope, dst)
		}
		// Further fields of the tenant's origin (tenantAlso: the merged
		// column of a * over a JOIN … USING beside the table's own, in
		// the client's format and pgveil's) must name the same tenant.
		for _, j := range rc.tenantAlso {
			if j >= len(row) || j >= len(m.cols) || row[j] == nil {
				return s.openFailed(rc, keysource.ErrWrongScope, dst)
			}
			if other, err := tenantOf(j); err != nil || other != tenant {
				return s.openFailed(rc, keysource.ErrWrongScope, dst)
			}
		}
	}
	s.inc(s.srv.metrics.col(col).dec)
	out, err := canon.Wire(col.Type, rc.cliFmt, pt, dst)
	if err != nil {
		return s.openFailed(rc, err, dst)
	}
	return out, false, nil
}

var errNotSealed = errors.New("plaintext found where an envelope was expected")

// sentTenant is the tenant name of a key_context value the server sent as
// its type's send form (a bytea, in text, hex or escape, or binary
// format): the type's binary wire form, named as a write names it.
func (s *session) sentTenant(rc *resultCol, format int16, v []byte) (string, error) {
	raw := v
	if format == canon.TextFormat {
		var err error
		if raw, err = decodeByteaText(s.sendBuf[:0], v); err != nil {
			return "", err
		}
		s.sendBuf = raw
	}
	if rc.tenantBase != 0 {
		return canon.DomainTenantRecv(rc.tenantBase, raw)
	}
	return canon.TenantText(rc.tenantType, canon.BinaryFormat, raw)
}

// errLegacyInvalid: a value stored before the table was encrypted (read
// in migration mode) is not valid input of the column's logical type
// (review 20c: it was reported as errNotSealed, plaintext where an
// envelope belongs, which in a migrating table is expected).
var errLegacyInvalid = errors.New("a value stored before encryption is not valid input of the column's type")

// legacyPlaintext returns a value stored before the table was encrypted,
// during migration mode: the column's text form (or raw bytes for bytea).
func (s *session) legacyPlaintext(rc *resultCol, raw, dst []byte) ([]byte, bool, error) {
	col := rc.col
	pt := raw
	if col.Type != policy.TypeBytea {
		var err error
		if s.ptOut, err = canon.Plaintext(col.Type, canon.TextFormat, 0, raw, s.ptOut[:0]); err != nil {
			return s.openFailed(rc, errLegacyInvalid, dst)
		}
		pt = s.ptOut
	}
	out, err := canon.Wire(col.Type, rc.cliFmt, pt, dst)
	if err != nil {
		return s.openFailed(rc, err, dst)
	}
	return out, false, nil
}

// openFailed decides what a value that does not open becomes.
func (s *session) openFailed(rc *resultCol, err error, dst []byte) ([]byte, bool, error) {
	col := rc.col
	reason, code := "tampered", codeValueTampered
	hint := "a value altered, or moved from another row, column or tenant (tampering, or a row copied around pgveil); set on_error: null on the column to read such values as NULL"
	switch {
	case errors.Is(err, keysource.ErrShredded):
		s.inc(s.srv.metrics.DecryptFailures.WithLabelValues(col.QualifiedName(), "shredded"))
		return dst, true, nil
	case errors.Is(err, keysource.ErrUnknownKey):
		reason, code = "unknown_key", codeValueUnknownKey
		hint = "the value is sealed under a key id this database's pgveil.keys does not have (a key store from another database, or restored from an older backup?); set on_error: null on the column to read such values as NULL"
	case errors.Is(err, errNotSealed):
		// Not on_error: null (review 20c): it would hide the plaintext,
		// and an application that saves what it read writes NULL over it.
		reason, code = "not_sealed", codeValueNotSealed
		hint = fmt.Sprintf("plaintext where an envelope belongs: something wrote to %s around pgveil; encrypt it with `pgveil migrate --apply --table %s` (docs/OPERATING.md)", col.Table.QualifiedName(), col.Table.QualifiedName())
	case errors.Is(err, errLegacyInvalid):
		reason, code = "legacy_invalid", codeValueNotSealed
		hint = fmt.Sprintf("a value of %s stored before the table was encrypted is not valid %s input, so pgveil cannot encrypt or return it: correct it on a direct connection (`pgveil migrate --apply` names such rows)", col.QualifiedName(), col.Type)
	case keysource.IsRetryable(err):
		reason, code = "key_source_down", codeKeySourceDown
		hint = "the master key source is unreachable for a key not yet in memory: retry, and check the key source (Vault)"
	case errors.Is(err, keysource.ErrMasterMalformed):
		// The master key source answered nonsense (vault.address not
		// Vault's API): not the value's fault, and not to be read as NULL.
		reason, code = "key_source_malformed", codeKeySourceDown
		hint = "the master key source's answer is not Vault's Transit API: check keysource.vault.address"
	case errors.Is(err, keysource.ErrWrongScope):
		reason = "wrong_scope"
	}
	s.inc(s.srv.metrics.DecryptFailures.WithLabelValues(col.QualifiedName(), reason))
	if col.OnError == policy.OnErrorNull && code != codeKeySourceDown {
		return dst, true, nil
	}
	return dst, false, &pgError{Severity: "FATAL", Code: code,
		Message: fmt.Sprintf("pgveil could not decrypt a value of %s (%s)", col.QualifiedName(), reason),
		Detail:  "the session is closed so that no statement pipelined after this one is mistaken for skipped",
		Hint:    hint,
		cause:   err}
}

// decodeByteaText decodes bytea's text output: hex (\x…) or escape format.
func decodeByteaText(dst, b []byte) ([]byte, error) {
	if len(b) >= 2 && b[0] == '\\' && b[1] == 'x' {
		h := b[2:]
		if len(h)%2 != 0 {
			return nil, errors.New("odd hex")
		}
		for i := 0; i < len(h); i += 2 {
			hi, ok1 := unhex(h[i])
			lo, ok2 := unhex(h[i+1])
			if !ok1 || !ok2 {
				return nil, errors.New("bad hex")
			}
			dst = append(dst, hi<<4|lo)
		}
		return dst, nil
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		if i+1 < len(b) && b[i+1] == '\\' {
			dst = append(dst, '\\')
			i++
			continue
		}
		if i+3 < len(b) && isOctal(b[i+1]) && isOctal(b[i+2]) && isOctal(b[i+3]) {
			dst = append(dst, (b[i+1]-'0')<<6|(b[i+2]-'0')<<3|(b[i+3]-'0'))
			i += 3
			continue
		}
		return nil, errors.New("bad escape")
	}
	return dst, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
