package canon

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"

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
	case oid == policy.OIDText || oid == 1043 || oid == oidName:
		text = src // text-like: binary and text formats are the same bytes
	case oid == oidBpchar:
		text = trimTrailingSpaces(src)
	case oid == oidFloat4 || oid == oidFloat8:
		bits := 64
		if oid == oidFloat4 {
			bits = 32
		}
		var f float64
		if format == TextFormat {
			v, err := strconv.ParseFloat(string(trimSpace(src)), bits)
			if err != nil {
				return nil, invalid(t, "invalid input syntax for type double precision")
			}
			f = v
		} else {
			v, ok := floatBinary(src)
			if !ok {
				return nil, invalid(t, "binary float parameter has the wrong length")
			}
			f = v
		}
		text = floatText(t, f, bits)
	default:
		lt, ok := logicalOf(oid)
		if !ok {
			if format == TextFormat {
				text = src
				break
			}
			return nil, invalid(t, "cannot convert a binary parameter of type OID %d", oid)
		}
		pt, err := Plaintext(lt, format, 0, src, nil)
		if err != nil {
			var ce *Error
			if errors.As(err, &ce) {
				return nil, invalid(t, "parameter declared as %s: %s", lt, ce.Msg)
			}
			return nil, err
		}
		if text, err = Wire(lt, TextFormat, pt, nil); err != nil {
			return nil, err
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
	case policy.TypeNumeric, policy.TypeInt2, policy.TypeInt4, policy.TypeInt8:
		digits := 15 // DBL_DIG
		if bits == 32 {
			digits = 6 // FLT_DIG
		}
		return strconv.AppendFloat(nil, f, 'g', digits, 64)
	}
	return strconv.AppendFloat(nil, f, 'g', -1, bits)
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

func trimTrailingSpaces(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}
