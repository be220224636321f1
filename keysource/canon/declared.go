package canon

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/pgveil/pgveil/policy"
)

// OIDs of types a client may declare for a parameter beyond the logical ones.
const (
	oidUnknown = 705
	oidName    = 19
	oidBpchar  = 1042
	oidFloat4  = 700
	oidFloat8  = 701
)

// logicalOf maps a type OID to the logical type with that OID.
func logicalOf(oid uint32) (policy.LogicalType, bool) {
	for _, t := range policy.LogicalTypes {
		if t.OID() == oid {
			return t, true
		}
	}
	return "", false
}

// fromDeclared handles a parameter whose declared type is not t's own: the
// value is read as the declared type, written as that type's text, and that
// text is read as t's input. This is PostgreSQL's assignment through text
// (an int8 parameter into an int4 column gets a range check, a text
// parameter into an int column is parsed), short of casts that need the
// session (a timestamptz into a timestamp uses UTC here, not TimeZone).
func fromDeclared(t policy.LogicalType, format int16, oid uint32, src, dst []byte) ([]byte, error) {
	var text []byte
	switch {
	case oid == policy.OIDText || oid == 1043:
		text = src // text-like: binary and text formats are the same bytes
	case oid == oidName:
		text = clipName(src) // name keeps NAMEDATALEN-1 bytes, whole characters
	case oid == oidBpchar:
		text = trimTrailingSpaces(src)
	case oid == oidFloat4 || oid == oidFloat8:
		bits := 64
		if oid == oidFloat4 {
			bits = 32
		}
		var f float64
		if format == TextFormat {
			s := trimSpace(src)
			v, err := strconv.ParseFloat(string(s), bits)
			if err != nil {
				return nil, invalid(t, "invalid input syntax for type double precision")
			}
			if mant, _, _ := bytes.Cut(bytes.ToLower(s), []byte("e")); v == 0 && bytes.ContainsAny(mant, "123456789") {
				// 1e-400: PostgreSQL's float input refuses an underflow.
				return nil, &Error{Type: t, Msg: "value out of range for type double precision", Code: "22003"}
			}
			f = v
		} else {
			v, ok := floatBinary(src)
			if !ok || len(src) != bits/8 {
				return nil, binaryLength(t, len(src), bits/8)
			}
			f = v
		}
		text = floatText(t, f, bits)
	default:
		lt, ok := logicalOf(oid)
		if !ok {
			// "char", interval, money, …: PostgreSQL converts them by their
			// own input and output functions, which pgveil does not mirror.
			return nil, &Error{Type: t, Code: "42804", Msg: fmt.Sprintf("cannot convert a parameter declared as type OID %d: declare it as %s", oid, t)}
		}
		pt, err := Plaintext(lt, format, 0, src, nil)
		if err != nil {
			var ce *Error
			if errors.As(err, &ce) {
				if ce.Code == CodeShortBinary || ce.Code == CodeLongBinary {
					return nil, ce // the declared type's receive function's error
				}
				return nil, invalid(t, "parameter declared as %s: %s", lt, ce.Msg)
			}
			return nil, err
		}
		if text, err = Wire(lt, TextFormat, pt, nil); err != nil {
			return nil, err
		}
		if lt == policy.TypeNumeric && (t == policy.TypeInt2 || t == policy.TypeInt4 || t == policy.TypeInt8) {
			// A whole numeric (1.0, setBigDecimal) is that integer; one
			// with a fraction is refused as an integer's input.
			if whole, frac, ok := bytes.Cut(text, []byte(".")); ok && len(bytes.Trim(frac, "0")) == 0 {
				text = whole
			}
		}
		if lt == policy.TypeBool && (t == policy.TypeText || t == policy.TypeVarchar) {
			// bool to text is booltext: true/false, not boolout's t/f.
			text = []byte("false")
			if len(pt) > 0 && pt[0] == 't' {
				text = []byte("true")
			}
		}
	}
	if t == policy.TypeBytea {
		// Text given for a bytea: its bytes, as PostgreSQL's text→bytea input
		// reads the text's escapes.
		return byteaText(text, dst)
	}
	return textIn(t, text, dst)
}

// floatText is a float parameter as PostgreSQL assigns it to a column of
// type t: to numeric (and the integer types) with DBL_DIG or FLT_DIG
// significant digits (float8_numeric: 0.1+0.2 is 0.3), to text as
// float8out/float4out print it (the shortest exact form).
func floatText(t policy.LogicalType, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return []byte("NaN")
	case math.IsInf(f, 1):
		return []byte("Infinity")
	case math.IsInf(f, -1):
		return []byte("-Infinity")
	}
	switch t {
	case policy.TypeInt2, policy.TypeInt4, policy.TypeInt8:
		if f == math.Trunc(f) && math.Abs(f) < 1e19 {
			return strconv.AppendFloat(nil, f, 'f', 0, 64) // 1e15 is 1000000000000000
		}
		fallthrough // not whole: refused as an integer's input
	case policy.TypeNumeric:
		digits := 15 // DBL_DIG
		if bits == 32 {
			digits = 6 // FLT_DIG
		}
		return strconv.AppendFloat(nil, f, 'g', digits, 64)
	}
	if bits == 64 {
		// float8out: the shortest exact digits, in exponent form only for
		// an exponent below -4 or from 15 (DBL_DIG) up: 1234567, 1e+15.
		if exp := math.Floor(math.Log10(math.Abs(f))); f != 0 && (exp < -4 || exp >= 15) {
			return strconv.AppendFloat(nil, f, 'e', -1, 64)
		}
		return strconv.AppendFloat(nil, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(nil, f, 'g', -1, bits)
}

// Comparable reports whether a parameter declared as oid can be compared
// with a column of logical type t through its blind index: PostgreSQL
// compares those pairs in the parameter's type (the column cast to it),
// which equality of the column's own values cannot reproduce. A date
// equals a timestamp only at midnight; a numeric equals a float8 by its
// float8 rounding; varchar = bpchar ignores trailing spaces.
func Comparable(t policy.LogicalType, oid uint32) error {
	switch {
	case t == policy.TypeDate && (oid == policy.TypeTimestamp.OID() || oid == policy.TypeTimestamptz.OID()),
		t == policy.TypeNumeric && (oid == oidFloat4 || oid == oidFloat8),
		t == policy.TypeVarchar && oid == oidBpchar:
		return &Error{Type: t, Code: "42804", Msg: fmt.Sprintf("a parameter declared as type OID %d is compared with the column in its own type, which pgveil's blind index cannot do: declare it as %s", oid, t)}
	}
	return nil
}

// ZoneDependent reports whether a parameter declared as oid converts to a
// column of type t through the session's TimeZone (timestamptz into a
// timestamp or date column).
func ZoneDependent(t policy.LogicalType, oid uint32) bool {
	return oid == policy.TypeTimestamptz.OID() && (t == policy.TypeTimestamp || t == policy.TypeDate)
}

func floatBinary(src []byte) (float64, bool) {
	switch len(src) {
	case 4:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(src))), true
	case 8:
		return math.Float64frombits(binary.BigEndian.Uint64(src)), true
	}
	return 0, false
}

// clipName cuts b to at most 63 bytes at a character boundary, as a value
// converted to name is (NAMEDATALEN - 1).
func clipName(b []byte) []byte {
	if len(b) <= 63 {
		return b
	}
	n := 63
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return b[:n]
}

func trimTrailingSpaces(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}
