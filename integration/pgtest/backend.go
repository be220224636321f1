package pgtest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"unicode/utf8"

	"github.com/jackc/pgproto3/v2"
)

// maxMessageLen bounds one backend message; a larger length word means the
// stream is out of step, not that a 1 GB row is coming.
const maxMessageLen = 64 << 20

// longValue is the length past which DataRow values print as a digest.
const longValue = 4096

// firstNormalObjectID is FirstNormalObjectId: OIDs from here on belong to
// objects created after initdb, so they differ from run to run.
const firstNormalObjectID = 16384

// backendMessage is one message as read off the wire.
type backendMessage struct {
	typ  byte
	body []byte
	msg  pgproto3.BackendMessage // nil for types pgproto3/v2 does not know
	name string                  // the Type printed and matched by until
}

// backendNames maps message type bytes (other than 'R') to their names.
var backendNames = map[byte]string{
	'K': "BackendKeyData", '2': "BindComplete", '3': "CloseComplete",
	'C': "CommandComplete", 'd': "CopyData", 'c': "CopyDone",
	'G': "CopyInResponse", 'H': "CopyOutResponse", 'W': "CopyBothResponse",
	'D': "DataRow", 'I': "EmptyQueryResponse", 'E': "ErrorResponse",
	'V': "FunctionCallResponse", 'n': "NoData", 'N': "NoticeResponse",
	'A': "NotificationResponse", 't': "ParameterDescription",
	'S': "ParameterStatus", '1': "ParseComplete", 's': "PortalSuspended",
	'Z': "ReadyForQuery", 'T': "RowDescription", 'v': "NegotiateProtocolVersion",
}

// authNames maps Authentication request codes to message names.
var authNames = map[uint32]string{
	pgproto3.AuthTypeOk:                "AuthenticationOk",
	pgproto3.AuthTypeCleartextPassword: "AuthenticationCleartextPassword",
	pgproto3.AuthTypeMD5Password:       "AuthenticationMD5Password",
	pgproto3.AuthTypeGSS:               "AuthenticationGSS",
	pgproto3.AuthTypeGSSCont:           "AuthenticationGSSContinue",
	pgproto3.AuthTypeSASL:              "AuthenticationSASL",
	pgproto3.AuthTypeSASLContinue:      "AuthenticationSASLContinue",
	pgproto3.AuthTypeSASLFinal:         "AuthenticationSASLFinal",
}

func knownBackendType(name string) bool {
	for _, n := range backendNames {
		if n == name {
			return true
		}
	}
	for _, n := range authNames {
		if n == name {
			return true
		}
	}
	return false
}

// newBackendMessage returns an empty pgproto3 message for a type byte.
func newBackendMessage(typ byte, body []byte) (pgproto3.BackendMessage, string) {
	switch typ {
	case 'R':
		if len(body) < 4 {
			return nil, "Unknown"
		}
		code := binary.BigEndian.Uint32(body)
		var m pgproto3.BackendMessage
		switch code {
		case pgproto3.AuthTypeOk:
			m = &pgproto3.AuthenticationOk{}
		case pgproto3.AuthTypeCleartextPassword:
			m = &pgproto3.AuthenticationCleartextPassword{}
		case pgproto3.AuthTypeMD5Password:
			m = &pgproto3.AuthenticationMD5Password{}
		case pgproto3.AuthTypeGSS:
			m = &pgproto3.AuthenticationGSS{}
		case pgproto3.AuthTypeGSSCont:
			m = &pgproto3.AuthenticationGSSContinue{}
		case pgproto3.AuthTypeSASL:
			m = &pgproto3.AuthenticationSASL{}
		case pgproto3.AuthTypeSASLContinue:
			m = &pgproto3.AuthenticationSASLContinue{}
		case pgproto3.AuthTypeSASLFinal:
			m = &pgproto3.AuthenticationSASLFinal{}
		default:
			return nil, "Unknown"
		}
		return m, authNames[code]
	case 'K':
		return &pgproto3.BackendKeyData{}, backendNames[typ]
	case '2':
		return &pgproto3.BindComplete{}, backendNames[typ]
	case '3':
		return &pgproto3.CloseComplete{}, backendNames[typ]
	case 'C':
		return &pgproto3.CommandComplete{}, backendNames[typ]
	case 'd':
		return &pgproto3.CopyData{}, backendNames[typ]
	case 'c':
		return &pgproto3.CopyDone{}, backendNames[typ]
	case 'G':
		return &pgproto3.CopyInResponse{}, backendNames[typ]
	case 'H':
		return &pgproto3.CopyOutResponse{}, backendNames[typ]
	case 'W':
		return &pgproto3.CopyBothResponse{}, backendNames[typ]
	case 'D':
		return &pgproto3.DataRow{}, backendNames[typ]
	case 'I':
		return &pgproto3.EmptyQueryResponse{}, backendNames[typ]
	case 'E':
		return &pgproto3.ErrorResponse{}, backendNames[typ]
	case 'V':
		return &pgproto3.FunctionCallResponse{}, backendNames[typ]
	case 'n':
		return &pgproto3.NoData{}, backendNames[typ]
	case 'N':
		return &pgproto3.NoticeResponse{}, backendNames[typ]
	case 'A':
		return &pgproto3.NotificationResponse{}, backendNames[typ]
	case 't':
		return &pgproto3.ParameterDescription{}, backendNames[typ]
	case 'S':
		return &pgproto3.ParameterStatus{}, backendNames[typ]
	case '1':
		return &pgproto3.ParseComplete{}, backendNames[typ]
	case 's':
		return &pgproto3.PortalSuspended{}, backendNames[typ]
	case 'Z':
		return &pgproto3.ReadyForQuery{}, backendNames[typ]
	case 'T':
		return &pgproto3.RowDescription{}, backendNames[typ]
	case 'v':
		return nil, backendNames[typ] // pgproto3/v2 has no NegotiateProtocolVersion
	}
	return nil, "Unknown"
}

// readMessage reads one backend message. The body is a fresh copy, so the
// message stays valid after the next read.
func readMessage(r *bufio.Reader) (*backendMessage, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
	if n < 0 || n > maxMessageLen {
		return nil, fmt.Errorf("backend message %q with bad length %d", hdr[0], n+4)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("reading %q body: %w", hdr[0], err)
	}
	m := &backendMessage{typ: hdr[0], body: body}
	m.msg, m.name = newBackendMessage(hdr[0], body)
	if fcr, ok := m.msg.(*pgproto3.FunctionCallResponse); ok {
		// pgproto3/v2's Decode reads the length -1 of a NULL result as
		// 4294967295 and rejects the message, so decode it here.
		if len(body) < 4 {
			return nil, fmt.Errorf("FunctionCallResponse of %d bytes", len(body))
		}
		if l := int32(binary.BigEndian.Uint32(body)); l >= 0 {
			if int(l) != len(body)-4 {
				return nil, fmt.Errorf("FunctionCallResponse length %d in %d bytes", l, len(body))
			}
			fcr.Result = body[4:]
		}
		return m, nil
	}
	if m.msg != nil {
		if err := m.msg.Decode(body); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", m.name, err)
		}
	}
	return m, nil
}

// normalizer renders backend messages with the volatile fields replaced. One
// lives per connection, since user OIDs are numbered per connection.
type normalizer struct {
	oids map[uint32]uint32
}

func (n *normalizer) oid(o uint32) uint32 {
	if o < firstNormalObjectID {
		return o
	}
	if n.oids == nil {
		n.oids = map[uint32]uint32{}
	}
	if m, ok := n.oids[o]; ok {
		return m
	}
	m := uint32(firstNormalObjectID + len(n.oids))
	n.oids[o] = m
	return m
}

var tempSchema = regexp.MustCompile(`pg_temp_[0-9]+`)

// render prints m as one JSON line. With portable set, it also drops what
// ties the output to one patch release (see the package doc).
func (n *normalizer) render(m *backendMessage, portable bool) string {
	type obj = []kv
	var o obj
	switch msg := m.msg.(type) {
	case nil:
		if m.typ == 'v' {
			o = renderNegotiate(m.body)
		} else {
			o = obj{{"Byte", string(m.typ)}, {"Data", hex.EncodeToString(m.body)}}
		}
	case *pgproto3.AuthenticationSASL:
		o = obj{{"AuthMechanisms", msg.AuthMechanisms}}
	case *pgproto3.BackendKeyData:
		o = obj{{"ProcessID", 0}, {"SecretKey", 0}}
	case *pgproto3.CommandComplete:
		o = obj{{"CommandTag", string(msg.CommandTag)}}
	case *pgproto3.CopyData:
		if len(msg.Data) > longValue {
			o = obj{{"Data", renderValue(msg.Data)}}
		} else if utf8.Valid(msg.Data) {
			o = obj{{"Data", string(msg.Data)}}
		} else {
			o = obj{{"Binary", hex.EncodeToString(msg.Data)}}
		}
	case *pgproto3.CopyInResponse:
		o = renderCopyResponse(msg.OverallFormat, msg.ColumnFormatCodes)
	case *pgproto3.CopyOutResponse:
		o = renderCopyResponse(msg.OverallFormat, msg.ColumnFormatCodes)
	case *pgproto3.CopyBothResponse:
		o = renderCopyResponse(msg.OverallFormat, msg.ColumnFormatCodes)
	case *pgproto3.DataRow:
		vals := make([]map[string]string, len(msg.Values))
		for i, v := range msg.Values {
			vals[i] = renderValue(v)
		}
		o = obj{{"Values", vals}}
	case *pgproto3.ErrorResponse:
		o = n.renderError(msg, portable)
	case *pgproto3.NoticeResponse:
		o = n.renderError((*pgproto3.ErrorResponse)(msg), portable)
	case *pgproto3.FunctionCallResponse:
		o = obj{{"Result", renderValue(msg.Result)}}
	case *pgproto3.NotificationResponse:
		o = obj{{"PID", 0}, {"Channel", msg.Channel}, {"Payload", msg.Payload}}
	case *pgproto3.ParameterDescription:
		oids := make([]uint32, len(msg.ParameterOIDs))
		for i, x := range msg.ParameterOIDs {
			oids[i] = n.oid(x)
		}
		o = obj{{"ParameterOIDs", oids}}
	case *pgproto3.ParameterStatus:
		v := msg.Value
		if portable && msg.Name == "server_version" {
			v = "*"
		}
		o = obj{{"Name", msg.Name}, {"Value", v}}
	case *pgproto3.ReadyForQuery:
		o = obj{{"TxStatus", string(msg.TxStatus)}}
	case *pgproto3.RowDescription:
		fields := make([]obj, len(msg.Fields))
		for i, f := range msg.Fields {
			fields[i] = obj{
				{"Name", string(f.Name)},
				{"TableOID", n.oid(f.TableOID)},
				{"TableAttributeNumber", f.TableAttributeNumber},
				{"DataTypeOID", n.oid(f.DataTypeOID)},
				{"DataTypeSize", f.DataTypeSize},
				{"TypeModifier", f.TypeModifier},
				{"Format", f.Format},
			}
		}
		o = obj{{"Fields", fields}}
	default:
		// BindComplete, CloseComplete, CopyDone, EmptyQueryResponse, NoData,
		// ParseComplete, PortalSuspended, AuthenticationOk, …: no fields
		// worth printing (challenges are never printed).
	}
	return string(marshalObj(append(obj{{"Type", m.name}}, o...)))
}

func renderCopyResponse(overall byte, codes []uint16) []kv {
	if codes == nil {
		codes = []uint16{}
	}
	return []kv{{"OverallFormat", int(overall)}, {"ColumnFormatCodes", codes}}
}

// renderValue is pgproto3's {"text"}/{"binary"} form, a digest for long
// values, and nil for NULL.
func renderValue(v []byte) map[string]string {
	if v == nil {
		return nil
	}
	if len(v) > longValue {
		sum := sha256.Sum256(v)
		return map[string]string{"len": strconv.Itoa(len(v)), "sha256": hex.EncodeToString(sum[:])}
	}
	if utf8.Valid(v) && !bytes.ContainsFunc(v, func(r rune) bool { return r < 32 || r == 0x7f }) {
		return map[string]string{"text": string(v)}
	}
	return map[string]string{"binary": hex.EncodeToString(v)}
}

func (n *normalizer) renderError(e *pgproto3.ErrorResponse, portable bool) []kv {
	var o []kv
	str := func(k, v string) {
		if v != "" {
			o = append(o, kv{k, tempSchema.ReplaceAllString(v, "pg_temp_N")})
		}
	}
	num := func(k string, v int32) {
		if v != 0 {
			o = append(o, kv{k, v})
		}
	}
	str("Severity", e.Severity)
	str("SeverityUnlocalized", e.SeverityUnlocalized)
	str("Code", e.Code)
	str("Message", e.Message)
	str("Detail", e.Detail)
	str("Hint", e.Hint)
	num("Position", e.Position)
	num("InternalPosition", e.InternalPosition)
	str("InternalQuery", e.InternalQuery)
	str("Where", e.Where)
	str("SchemaName", e.SchemaName)
	str("TableName", e.TableName)
	str("ColumnName", e.ColumnName)
	str("DataTypeName", e.DataTypeName)
	str("ConstraintName", e.ConstraintName)
	if !portable {
		str("File", e.File)
		num("Line", e.Line)
		str("Routine", e.Routine)
	}
	if len(e.UnknownFields) > 0 {
		u := map[string]string{}
		for k, v := range e.UnknownFields {
			u[string(k)] = v
		}
		o = append(o, kv{"UnknownFields", u})
	}
	return o
}

// renderNegotiate prints NegotiateProtocolVersion: an Int32 version, an Int32
// count, then that many option names. The protocol page calls the first the
// newest minor version; servers send the whole version (3<<16 | minor), which
// is printed as sent.
func renderNegotiate(body []byte) []kv {
	if len(body) < 8 {
		return []kv{{"Data", hex.EncodeToString(body)}}
	}
	version := binary.BigEndian.Uint32(body)
	opts := []string{}
	for _, s := range bytes.Split(body[8:], []byte{0}) {
		if len(s) > 0 {
			opts = append(opts, string(s))
		}
	}
	return []kv{{"ProtocolVersion", version}, {"UnrecognizedOptions", opts}}
}

// kv is one field of an ordered JSON object.
type kv struct {
	k string
	v any
}

// marshalObj writes fields in order, recursing into nested ordered objects.
func marshalObj(o []kv) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.k)
		b.Write(k)
		b.WriteByte(':')
		b.Write(marshalAny(f.v))
	}
	b.WriteByte('}')
	return b.Bytes()
}

func marshalAny(v any) []byte {
	switch x := v.(type) {
	case []kv:
		return marshalObj(x)
	case [][]kv:
		var b bytes.Buffer
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(marshalObj(e))
		}
		b.WriteByte(']')
		return b.Bytes()
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // only our own plain values reach here
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}
