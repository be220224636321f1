package ops

import (
	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/policy"
)

// envelopeTextLen is the length of the text form of a value's envelope, as
// stored in a physical text column: "pgv1:" and the unpadded base64url of
// version (1) + key id (4) + nonce (12) + ciphertext (n) + tag (16).
func envelopeTextLen(plaintextBytes int) int {
	return envelope.EncodedLen(plaintextBytes + envelope.Overhead)
}

// maxPlaintextLen is the longest canonical plaintext of a logical type in
// bytes, or ok=false when the type has no bound (text, json, bytea, …).
// The canonical forms are docs/FORMAT.md's.
func maxPlaintextLen(t policy.LogicalType) (n int, ok bool) {
	switch t {
	case policy.TypeBool:
		return 1, true // t | f
	case policy.TypeInt2:
		return len("-32768"), true
	case policy.TypeInt4:
		return len("-2147483648"), true
	case policy.TypeInt8:
		return len("-9223372036854775808"), true
	case policy.TypeUUID:
		return 36, true
	case policy.TypeDate:
		return len("5874897-12-31 BC"), true
	case policy.TypeTimestamp:
		return len("294276-12-31 23:59:59.999999 BC"), true
	case policy.TypeTimestamptz:
		return len("294276-12-31 23:59:59.999999+00 BC"), true
	}
	return 0, false
}
