package proxy

import (
	"encoding/binary"
)

// Codecs for the few messages pgveil rewrites. They parse into reusable
// structures whose byte slices alias the message body (valid until the next
// read) and encode by appending to a caller's buffer, so the decoded path
// allocates nothing in steady state. Every other message is relayed as raw
// bytes. Layouts: https://www.postgresql.org/docs/current/protocol-message-formats.html

// reader walks a message body; the first malformation sticks in err.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = &protocolError{msg: "malformed " + what}
	}
}

func (r *reader) int16(what string) int16 {
	if r.err != nil || r.off+2 > len(r.b) {
		r.fail(what)
		return 0
	}
	v := int16(binary.BigEndian.Uint16(r.b[r.off:]))
	r.off += 2
	return v
}

func (r *reader) int32(what string) int32 {
	if r.err != nil || r.off+4 > len(r.b) {
		r.fail(what)
		return 0
	}
	v := int32(binary.BigEndian.Uint32(r.b[r.off:]))
	r.off += 4
	return v
}

func (r *reader) cstring(what string) []byte {
	if r.err != nil {
		return nil
	}
	s, next, ok := cstringBytes(r.b, r.off)
	if !ok {
		r.fail(what)
		return nil
	}
	r.off = next
	return s
}

func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil || n < 0 || r.off+n > len(r.b) {
		r.fail(what)
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

// count reads an int16 count and checks it is plausible for the bytes left
// (each item takes at least min bytes), so a hostile count cannot make us
// allocate.
func (r *reader) count(min int, what string) int {
	n := int(r.int16(what))
	if n < 0 || n*min > len(r.b)-r.off {
		r.fail(what)
		return 0
	}
	return n
}

func (r *reader) done(what string) error {
	if r.err == nil && r.off != len(r.b) {
		r.fail(what + " (trailing bytes)")
	}
	return r.err
}

func appendInt16(b []byte, v int16) []byte { return binary.BigEndian.AppendUint16(b, uint16(v)) }
func appendInt32(b []byte, v int32) []byte { return binary.BigEndian.AppendUint32(b, uint32(v)) }

// beginMsg appends a message header with a placeholder length; finishMsg
// fills it in. Use: start := len(b); b = beginMsg(b, 'D'); ...; finishMsg(b, start).
func beginMsg(b []byte, typ byte) []byte { return append(b, typ, 0, 0, 0, 0) }

func finishMsg(b []byte, start int) {
	binary.BigEndian.PutUint32(b[start+1:], uint32(len(b)-start-1))
}

// --- DataRow ---

// dataRow is a parsed DataRow; a nil value is SQL NULL.
type dataRow struct {
	values [][]byte
}

func (d *dataRow) parse(body []byte) error {
	r := reader{b: body}
	n := r.count(4, "DataRow")
	d.values = d.values[:0]
	for i := 0; i < n && r.err == nil; i++ {
		l := r.int32("DataRow")
		if l == -1 {
			d.values = append(d.values, nil)
			continue
		}
		v := r.bytes(int(l), "DataRow")
		if v == nil && r.err == nil {
			v = body[r.off:r.off:r.off] // empty, not NULL
		}
		d.values = append(d.values, v)
	}
	return r.done("DataRow")
}

// appendDataRow encodes the first n values as a DataRow message.
func appendDataRow(b []byte, values [][]byte) []byte {
	start := len(b)
	b = beginMsg(b, 'D')
	b = appendInt16(b, int16(len(values)))
	for _, v := range values {
		if v == nil {
			b = appendInt32(b, -1)
			continue
		}
		b = appendInt32(b, int32(len(v)))
		b = append(b, v...)
	}
	finishMsg(b, start)
	return b
}

// --- RowDescription ---

// fieldDesc is one field of a RowDescription.
type fieldDesc struct {
	Name         []byte
	TableOID     uint32
	AttNum       int16
	TypeOID      uint32
	TypeSize     int16
	TypeModifier int32
	Format       int16
}

type rowDescription struct {
	fields []fieldDesc
}

func (d *rowDescription) parse(body []byte) error {
	r := reader{b: body}
	n := r.count(19, "RowDescription")
	d.fields = d.fields[:0]
	for i := 0; i < n && r.err == nil; i++ {
		f := fieldDesc{Name: r.cstring("RowDescription")}
		f.TableOID = uint32(r.int32("RowDescription"))
		f.AttNum = r.int16("RowDescription")
		f.TypeOID = uint32(r.int32("RowDescription"))
		f.TypeSize = r.int16("RowDescription")
		f.TypeModifier = r.int32("RowDescription")
		f.Format = r.int16("RowDescription")
		d.fields = append(d.fields, f)
	}
	return r.done("RowDescription")
}

func appendRowDescription(b []byte, fields []fieldDesc) []byte {
	start := len(b)
	b = beginMsg(b, 'T')
	b = appendInt16(b, int16(len(fields)))
	for _, f := range fields {
		b = append(b, f.Name...)
		b = append(b, 0)
		b = appendInt32(b, int32(f.TableOID))
		b = appendInt16(b, f.AttNum)
		b = appendInt32(b, int32(f.TypeOID))
		b = appendInt16(b, f.TypeSize)
		b = appendInt32(b, f.TypeModifier)
		b = appendInt16(b, f.Format)
	}
	finishMsg(b, start)
	return b
}

// --- ParameterDescription ---

func parseParameterDescription(body []byte, oids []uint32) ([]uint32, error) {
	r := reader{b: body}
	n := r.count(4, "ParameterDescription")
	oids = oids[:0]
	for i := 0; i < n && r.err == nil; i++ {
		oids = append(oids, uint32(r.int32("ParameterDescription")))
	}
	return oids, r.done("ParameterDescription")
}

func appendParameterDescription(b []byte, oids []uint32) []byte {
	start := len(b)
	b = beginMsg(b, 't')
	b = appendInt16(b, int16(len(oids)))
	for _, o := range oids {
		b = appendInt32(b, int32(o))
	}
	finishMsg(b, start)
	return b
}

// --- Parse ---

type parseMsg struct {
	Name      []byte
	Query     []byte
	ParamOIDs []uint32
}

func (p *parseMsg) parse(body []byte) error {
	r := reader{b: body}
	p.Name = r.cstring("Parse")
	p.Query = r.cstring("Parse")
	n := r.count(4, "Parse")
	p.ParamOIDs = p.ParamOIDs[:0]
	for i := 0; i < n && r.err == nil; i++ {
		p.ParamOIDs = append(p.ParamOIDs, uint32(r.int32("Parse")))
	}
	return r.done("Parse")
}

func appendParse(b []byte, name, query string, oids []uint32) []byte {
	start := len(b)
	b = beginMsg(b, 'P')
	b = append(append(b, name...), 0)
	b = append(append(b, query...), 0)
	b = appendInt16(b, int16(len(oids)))
	for _, o := range oids {
		b = appendInt32(b, int32(o))
	}
	finishMsg(b, start)
	return b
}

// --- Bind ---

// bindMsg is a parsed Bind; a nil parameter is SQL NULL.
type bindMsg struct {
	Portal        []byte
	Statement     []byte
	ParamFormats  []int16
	Params        [][]byte
	ResultFormats []int16
}

func (m *bindMsg) parse(body []byte) error {
	r := reader{b: body}
	m.Portal = r.cstring("Bind")
	m.Statement = r.cstring("Bind")
	nf := r.count(2, "Bind")
	m.ParamFormats = m.ParamFormats[:0]
	for i := 0; i < nf && r.err == nil; i++ {
		m.ParamFormats = append(m.ParamFormats, r.int16("Bind"))
	}
	np := r.count(4, "Bind")
	m.Params = m.Params[:0]
	for i := 0; i < np && r.err == nil; i++ {
		l := r.int32("Bind")
		if l == -1 {
			m.Params = append(m.Params, nil)
			continue
		}
		v := r.bytes(int(l), "Bind")
		if v == nil && r.err == nil {
			v = body[r.off:r.off:r.off]
		}
		m.Params = append(m.Params, v)
	}
	nr := r.count(2, "Bind")
	m.ResultFormats = m.ResultFormats[:0]
	for i := 0; i < nr && r.err == nil; i++ {
		m.ResultFormats = append(m.ResultFormats, r.int16("Bind"))
	}
	if err := r.done("Bind"); err != nil {
		return err
	}
	// More than one format code but not one per parameter is the
	// server's ERROR to give (bindFormatError), not the end of the session.
	return nil
}

// paramFormatsMismatch reports more than one parameter format code but
// not one per parameter, a Bind PostgreSQL refuses (08P01).
func (m *bindMsg) paramFormatsMismatch() bool {
	return len(m.ParamFormats) > 1 && len(m.ParamFormats) != len(m.Params)
}

// paramFormat is the format code of parameter i (0 text, 1 binary).
func (m *bindMsg) paramFormat(i int) int16 {
	switch len(m.ParamFormats) {
	case 0:
		return 0
	case 1:
		return m.ParamFormats[0]
	}
	if i >= len(m.ParamFormats) {
		return 0 // paramFormatsMismatch: refused before any value is read
	}
	return m.ParamFormats[i]
}

// resultFormat is the format code the client asked for result column i.
func resultFormat(formats []int16, i int) int16 {
	switch len(formats) {
	case 0:
		return 0
	case 1:
		return formats[0]
	}
	if i < len(formats) {
		return formats[i]
	}
	return 0
}

func appendBind(b []byte, m *bindMsg) []byte {
	start := len(b)
	b = beginMsg(b, 'B')
	b = append(append(b, m.Portal...), 0)
	b = append(append(b, m.Statement...), 0)
	b = appendInt16(b, int16(len(m.ParamFormats)))
	for _, f := range m.ParamFormats {
		b = appendInt16(b, f)
	}
	b = appendInt16(b, int16(len(m.Params)))
	for _, p := range m.Params {
		if p == nil {
			b = appendInt32(b, -1)
			continue
		}
		b = appendInt32(b, int32(len(p)))
		b = append(b, p...)
	}
	b = appendInt16(b, int16(len(m.ResultFormats)))
	for _, f := range m.ResultFormats {
		b = appendInt16(b, f)
	}
	finishMsg(b, start)
	return b
}

// appendDescribeOrClose encodes Describe ('D') or Close ('C') of a statement
// ('S') or portal ('P').
func appendDescribeOrClose(b []byte, typ, kind byte, name string) []byte {
	start := len(b)
	b = beginMsg(b, typ)
	b = append(b, kind)
	b = append(append(b, name...), 0)
	finishMsg(b, start)
	return b
}

func appendExecute(b []byte, portal string, maxRows int32) []byte {
	start := len(b)
	b = beginMsg(b, 'E')
	b = append(append(b, portal...), 0)
	b = appendInt32(b, maxRows)
	finishMsg(b, start)
	return b
}

func appendQuery(b []byte, sql string) []byte {
	start := len(b)
	b = beginMsg(b, 'Q')
	b = append(append(b, sql...), 0)
	finishMsg(b, start)
	return b
}
