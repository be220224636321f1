package canon

import (
	"bytes"
	"math"
	"strconv"

	"github.com/pgveil/pgveil/policy"
)

// floatTenant names the tenant of a float4 or float8 key_context value as
// PostgreSQL stores and prints it (float4out/float8out with the default
// extra_float_digits: the shortest exact digits), so that '1.50' written
// names the tenant "1.5" that the row's stored value is read back as
// (LOW sweep 2: the value was taken as written, and the row did not open).
func floatTenant(typeOID uint32, format int16, src []byte) (string, error) {
	bits := 64
	if typeOID == oidFloat4 {
		bits = 32
	}
	var f float64
	if format == TextFormat {
		v, err := parseFloatIn(src, bits)
		if err != nil {
			return "", err
		}
		f = v
	} else {
		v, ok := floatBinary(src)
		if !ok || len(src) != bits/8 {
			return "", binaryLength(policy.TypeText, len(src), bits/8)
		}
		f = v
	}
	return string(pgFloatOut(f, bits)), nil
}

// parseFloatIn reads float input as float4in/float8in do: spaces around,
// NaN and the infinities in any case, out of range refused (an underflow to
// zero of a non-zero value too).
func parseFloatIn(src []byte, bits int) (float64, error) {
	typ := "double precision"
	if bits == 32 {
		typ = "real"
	}
	s := trimSpace(src)
	v, err := strconv.ParseFloat(string(s), bits)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, &Error{Type: policy.TypeText, Code: "22003", Msg: "value out of range for type " + typ}
		}
		return 0, &Error{Type: policy.TypeText, Code: "22P02", Msg: "invalid input syntax for type " + typ}
	}
	if mant, _, _ := bytes.Cut(bytes.ToLower(s), []byte("e")); v == 0 && !bytes.HasPrefix(mant, []byte("0x")) && bytes.ContainsAny(mant, "123456789") {
		return 0, &Error{Type: policy.TypeText, Code: "22003", Msg: "value out of range for type " + typ}
	}
	return v, nil
}

// pgFloatOut is f as float4out (bits 32) or float8out print it with
// extra_float_digits above 0: the shortest digits that read back as f, in
// exponent form (two exponent digits at least) for a decimal exponent
// below -4 or from 6 (float4) or 15 (float8) up; NaN, Infinity, -Infinity,
// -0.
func pgFloatOut(f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return []byte("NaN")
	case math.IsInf(f, 1):
		return []byte("Infinity")
	case math.IsInf(f, -1):
		return []byte("-Infinity")
	}
	e := strconv.AppendFloat(nil, f, 'e', -1, bits)
	i := bytes.LastIndexByte(e, 'e')
	exp, _ := strconv.Atoi(string(e[i+1:]))
	limit := 15
	if bits == 32 {
		limit = 6
	}
	if exp < -4 || exp >= limit {
		return e
	}
	return strconv.AppendFloat(nil, f, 'f', -1, bits)
}

// NumericToInt is the integer PostgreSQL assigns numeric text num (as
// numericText writes it) to an integer column as: rounded half away from
// zero (7.5 is 8, -2.5 is -3). The integer type's range is checked where
// the result is read as that type.
func NumericToInt(num []byte) ([]byte, error) {
	if !bytes.ContainsAny(num, "0123456789") || bytes.ContainsAny(num, "NnIi") {
		return nil, &Error{Type: policy.TypeInt8, Code: "0A000", Msg: "cannot convert " + string(num) + " to integer"}
	}
	neg := len(num) > 0 && num[0] == '-'
	if neg {
		num = num[1:]
	}
	whole, frac, _ := bytes.Cut(num, []byte("."))
	digits := append([]byte(nil), whole...)
	if len(frac) > 0 && frac[0] >= '5' {
		// Add one to the magnitude.
		i := len(digits) - 1
		for ; i >= 0 && digits[i] == '9'; i-- {
			digits[i] = '0'
		}
		if i < 0 {
			digits = append([]byte{'1'}, digits...)
		} else {
			digits[i]++
		}
	}
	digits = bytes.TrimLeft(digits, "0")
	if len(digits) == 0 {
		return []byte("0"), nil
	}
	if neg {
		digits = append([]byte{'-'}, digits...)
	}
	return digits, nil
}
