package ops

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/policy"
)

// The SQL below decides on the server which rows a pass must look at. Each
// predicate is exact about the envelope's shape, as the proxy judges it
// (proxy/decrypt.go: envelope.IsText for a physical text column,
// envelope.IsBinary for bytea), so that finished rows never leave the
// server and no row that needs work is left behind. Go then decides again
// per value with the same functions.

// args collects a statement's parameters and hands out placeholders.
type args struct{ vals []any }

func (a *args) add(v any) string {
	a.vals = append(a.vals, v)
	return "$" + strconv.Itoa(len(a.vals))
}

// sealedSQL is true when the stored value has the shape of an envelope.
//
//	text:  envelope.IsText   "pgv1:" prefix, at least 49 bytes, (len-5) % 4 != 1
//	bytea: envelope.IsBinary at least 33 bytes, version 0x01, key id not 0
func sealedSQL(col string, physical uint32) string {
	return envelope.SealedSQL(col, physical == policy.OIDText)
}

// keyIDSQL is the envelope's key id as 4 big-endian bytes (a sealed value only).
// The text form's first 8 base64url characters hold its first 6 bytes.
func keyIDSQL(col string, physical uint32) string {
	if physical == policy.OIDText {
		return fmt.Sprintf("substr(decode(translate(substr(%s, 6, 8), '-_', '+/'), 'base64'), 2, 4)", col)
	}
	return fmt.Sprintf("substr(%s, 2, 4)", col)
}

// shreddedSQL is true when the stored value is an envelope whose key is a
// tombstone in pgveil.keys (`pgveil shred`, or a retired version rotate
// dropped): the proxy reads it as NULL, and nothing can open it again. The
// key id is compared as a number so the lookup uses pgveil.keys' primary
// key; CASE keeps the decoding away from values that are not envelopes (the
// planner may reorder the arms of an AND). Only for SQL run while
// pgveil.keys exists.
func shreddedSQL(col string, physical uint32) string {
	shape := sealedSQL(col, physical)
	if physical == policy.OIDText {
		shape = fmt.Sprintf("(%s AND substr(%s, 6, 8) ~ '^[A-Za-z0-9_-]{8}$')", shape, col)
	}
	return fmt.Sprintf(`(CASE WHEN %s THEN EXISTS (SELECT 1 FROM pgveil.keys pgveil_k
		WHERE pgveil_k.key_id = ('x' || encode(%s, 'hex'))::bit(32)::bigint AND pgveil_k.state = 'shredded') ELSE false END)`,
		shape, keyIDSQL(col, physical))
}

// keyIDBytes encodes key ids as keyIDSQL shows them.
func keyIDBytes(ids []uint32) [][]byte {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = binary.BigEndian.AppendUint32(nil, id)
	}
	return out
}

// keyIDGo is the key id of a sealed value (sealedGo), as keyIDSQL reads it.
func keyIDGo(v []byte, physical uint32) (uint32, error) {
	if physical == policy.OIDText {
		if len(v) < 13 {
			return 0, keysource.ErrTampered
		}
		h, err := base64.RawURLEncoding.DecodeString(string(v[5:13]))
		if err != nil {
			return 0, keysource.ErrTampered
		}
		return binary.BigEndian.Uint32(h[1:5]), nil
	}
	return envelope.KeyID(v)
}

// sealedGo is the proxy's own test of a stored value.
func sealedGo(v []byte, physical uint32) bool {
	if physical == policy.OIDText {
		return envelope.IsText(v)
	}
	return envelope.IsBinary(v)
}

// orJoin joins predicates with OR ("false" for none).
func orJoin(ps []string) string {
	if len(ps) == 0 {
		return "false"
	}
	return "(" + strings.Join(ps, " OR ") + ")"
}
