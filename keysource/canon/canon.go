package canon

import (
	"bytes"
	"fmt"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/pgveil/pgveil/policy"
)

// Wire format codes of the PostgreSQL protocol.
const (
	TextFormat   int16 = 0
	BinaryFormat int16 = 1
)

// Error is an invalid value. Its message names the logical type and the
// problem, never the value.
type Error struct {
	Type policy.LogicalType
	Msg  string
	// Code is the SQLSTATE when it is not 22P02 (invalid text
	// representation): 22021 for bytes that are not UTF-8, 22003 for a
	// value out of range, 42804 for a type pgveil cannot convert, 08P01
	// and 22P03 for a binary value of the wrong length (binaryLength).
	Code string
}

// SQLState is e's SQLSTATE.
func (e *Error) SQLState() string {
	if e.Code != "" {
		return e.Code
	}
	return "22P02"
}

func (e *Error) Error() string { return fmt.Sprintf("invalid input for type %s: %s", e.Type, e.Msg) }

// Binary parameters whose length is not their type's fail as PostgreSQL's
// receive functions fail: out of data (08P01, CodeShortBinary) or with
// data left over (22P03, CodeLongBinary; the server's message names the
// parameter, which the caller knows).
const (
	CodeShortBinary = "08P01"
	CodeLongBinary  = "22P03"
)

// binaryLength is the error for a binary value of t of n bytes where its
// receive function reads want.
func binaryLength(t policy.LogicalType, n, want int) error {
	if n < want {
		msg := "insufficient data left in message"
		if want == 1 {
			msg = "no data left in message" // pq_getmsgbyte
		}
		return &Error{Type: t, Msg: msg, Code: CodeShortBinary}
	}
	return &Error{Type: t, Msg: "incorrect binary data format", Code: CodeLongBinary}
}

func invalid(t policy.LogicalType, format string, args ...any) error {
	return &Error{Type: t, Msg: fmt.Sprintf(format, args...)}
}

// CheckParamText refuses a text-format parameter that is not UTF-8: it is
// text in the client encoding (UTF8), which PostgreSQL verifies before any
// input function (a bytea parameter's escape format included).
func CheckParamText(t policy.LogicalType, format int16, src []byte) error {
	if format == TextFormat && (!utf8.Valid(src) || bytes.IndexByte(src, 0) >= 0) {
		return &Error{Type: t, Msg: "invalid byte sequence for encoding \"UTF8\"", Code: "22021"}
	}
	return nil
}

// Plaintext canonicalises a client's parameter of logical type t, sent in
// format (0 text, 1 binary) and declared at Parse as declaredOID (0, or 705
// unknown, means t's own type), and appends the result to dst: the bytes
// pgveil seals. Invalid input is rejected as PostgreSQL would reject it.
// SQL NULL is not a value: the caller passes it through without sealing.
func Plaintext(t policy.LogicalType, format int16, declaredOID uint32, src []byte, dst []byte) ([]byte, error) {
	if format != TextFormat && format != BinaryFormat {
		return nil, invalid(t, "unknown format code %d", format)
	}
	if declaredOID != 0 && declaredOID != t.OID() && declaredOID != oidUnknown {
		return fromDeclared(t, format, declaredOID, src, dst)
	}
	if format == BinaryFormat {
		return binaryIn(t, src, dst)
	}
	return textIn(t, src, dst)
}

// textIn parses PostgreSQL's text input of t.
func textIn(t policy.LogicalType, src, dst []byte) ([]byte, error) {
	switch t {
	case policy.TypeText, policy.TypeVarchar:
		return textValue(t, src, dst)
	case policy.TypeInt2, policy.TypeInt4, policy.TypeInt8:
		return intText(t, src, dst)
	case policy.TypeNumeric:
		return numericText(src, dst)
	case policy.TypeBool:
		return boolText(src, dst)
	case policy.TypeDate:
		return dateText(src, dst)
	case policy.TypeTimestamp, policy.TypeTimestamptz:
		return timestampText(t, src, dst)
	case policy.TypeUUID:
		return uuidText(src, dst)
	case policy.TypeJSON:
		return jsonText(src, dst)
	case policy.TypeJSONB:
		return jsonbText(src, dst, false)
	case policy.TypeBytea:
		return byteaText(src, dst)
	}
	return nil, invalid(t, "unsupported logical type")
}

// binaryIn parses PostgreSQL's binary (send/recv) format of t.
func binaryIn(t policy.LogicalType, src, dst []byte) ([]byte, error) {
	switch t {
	case policy.TypeText, policy.TypeVarchar:
		return textValue(t, src, dst)
	case policy.TypeInt2, policy.TypeInt4, policy.TypeInt8:
		return intBinary(t, src, dst)
	case policy.TypeNumeric:
		return numericBinary(src, dst)
	case policy.TypeBool:
		if len(src) != 1 {
			return nil, binaryLength(t, len(src), 1)
		}
		return appendBool(dst, src[0] != 0), nil
	case policy.TypeDate:
		return dateBinary(src, dst)
	case policy.TypeTimestamp, policy.TypeTimestamptz:
		return timestampBinary(t, src, dst)
	case policy.TypeUUID:
		if len(src) != 16 {
			return nil, binaryLength(t, len(src), 16)
		}
		return appendUUID(dst, src), nil
	case policy.TypeJSON:
		return jsonText(src, dst)
	case policy.TypeJSONB:
		if len(src) == 0 || src[0] != 1 {
			return nil, invalid(t, "binary jsonb must start with version 1")
		}
		return jsonbText(src[1:], dst, false)
	case policy.TypeBytea:
		return append(dst, src...), nil
	}
	return nil, invalid(t, "unsupported logical type")
}

// Wire turns a canonical plaintext of t into the client's result format,
// appending to dst. Text output is PostgreSQL's own (DateStyle ISO,
// bytea_output hex; timestamptz in UTC, "+00").
func Wire(t policy.LogicalType, format int16, plaintext []byte, dst []byte) ([]byte, error) {
	switch format {
	case TextFormat:
		if t == policy.TypeBytea {
			return appendByteaHex(dst, plaintext), nil
		}
		return append(dst, plaintext...), nil
	case BinaryFormat:
		return binaryOut(t, plaintext, dst)
	}
	return nil, invalid(t, "unknown format code %d", format)
}

func binaryOut(t policy.LogicalType, pt, dst []byte) ([]byte, error) {
	switch t {
	case policy.TypeText, policy.TypeVarchar, policy.TypeJSON, policy.TypeBytea:
		return append(dst, pt...), nil
	case policy.TypeJSONB:
		return append(append(dst, 1), pt...), nil
	case policy.TypeInt2, policy.TypeInt4, policy.TypeInt8:
		return intBinaryOut(t, pt, dst)
	case policy.TypeNumeric:
		return numericBinaryOut(pt, dst)
	case policy.TypeBool:
		switch string(pt) {
		case "t":
			return append(dst, 1), nil
		case "f":
			return append(dst, 0), nil
		}
		return nil, invalid(t, "not a canonical bool")
	case policy.TypeDate:
		return dateBinaryOut(pt, dst)
	case policy.TypeTimestamp, policy.TypeTimestamptz:
		return timestampBinaryOut(t, pt, dst)
	case policy.TypeUUID:
		return uuidBinaryOut(pt, dst)
	}
	return nil, invalid(t, "unsupported logical type")
}

// IndexInput appends the input of a blind index for a canonical plaintext of
// t: its equality form (numeric without trailing fractional zeros, jsonb
// with such numbers; every other type's canonical plaintext already is one),
// then the column's normalisations in order. Normalisations apply to the
// canonical text of every type but bytea, whose raw bytes are hashed as
// they are.
func IndexInput(t policy.LogicalType, plaintext []byte, norms []policy.Normalization, dst []byte) ([]byte, error) {
	start := len(dst)
	switch t {
	case policy.TypeNumeric:
		dst = appendNumericEquality(dst, plaintext)
	case policy.TypeJSONB:
		var err error
		if dst, err = jsonbText(plaintext, dst, true); err != nil {
			return nil, err
		}
	default:
		dst = append(dst, plaintext...)
	}
	if t == policy.TypeBytea || len(norms) == 0 {
		return dst, nil
	}
	v := dst[start:]
	for _, n := range norms {
		switch n {
		case policy.NormLowercase:
			v = bytes.ToLower(v)
		case policy.NormTrim:
			v = bytes.TrimFunc(v, unicode.IsSpace)
		case policy.NormNFC:
			v = norm.NFC.Bytes(v)
		default:
			return nil, invalid(t, "unknown normalization %q", n)
		}
	}
	return append(dst[:start], v...), nil
}
