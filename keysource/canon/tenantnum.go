package canon

import (
	"bytes"
	"math"
	"math/big"
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
	e := pgShortest(f, bits)
	i := bytes.LastIndexByte(e, 'e')
	exp, _ := strconv.Atoi(string(e[i+1:]))
	limit := 15
	if bits == 32 {
		limit = 6
	}
	if exp < -4 || exp >= limit {
		return e
	}
	// The same digits in positional form.
	mant := e[:i]
	neg := mant[0] == '-'
	if neg {
		mant = mant[1:]
	}
	digits := append([]byte{mant[0]}, bytes.TrimPrefix(mant[1:], []byte("."))...)
	var out []byte
	if neg {
		out = append(out, '-')
	}
	switch {
	case exp < 0:
		out = append(out, "0."...)
		out = append(out, bytes.Repeat([]byte{'0'}, -exp-1)...)
		out = append(out, digits...)
	case exp+1 >= len(digits):
		out = append(out, digits...)
		out = append(out, bytes.Repeat([]byte{'0'}, exp+1-len(digits))...)
	default:
		out = append(out, digits[:exp+1]...)
		out = append(out, '.')
		out = append(out, digits[exp+1:]...)
	}
	return out
}

// pgShortest is f in exponent form with the fewest digits that read back
// as f and lie strictly between f's neighbours' midpoints, as PostgreSQL's
// Ryu (float4out/float8out) chooses them: a shorter form exactly at a
// midpoint, which reads back as f by round-half-even and which Go's
// shortest form accepts, is not taken (3.6004848e+07, not 3.600485e+07).
func pgShortest(f float64, bits int) []byte {
	e := strconv.AppendFloat(nil, f, 'e', -1, bits)
	if f == 0 || !atMidpoint(f, e, bits) {
		return e
	}
	max := 17
	if bits == 32 {
		max = 9
	}
	n := bytes.IndexByte(e, 'e')
	if e[0] == '-' {
		n--
	}
	if bytes.IndexByte(e, '.') >= 0 {
		n--
	}
	for p := n + 1; p <= max; p++ {
		c := strconv.AppendFloat(nil, f, 'e', p-1, bits)
		if r, err := strconv.ParseFloat(string(c), bits); err == nil && r == f && !atMidpoint(f, c, bits) {
			// Trailing zeros of the fraction go, as Ryu drops them.
			m, x, _ := bytes.Cut(c, []byte("e"))
			if bytes.IndexByte(m, '.') >= 0 {
				m = bytes.TrimRight(m, "0")
				m = bytes.TrimSuffix(m, []byte("."))
			}
			return append(append(m, 'e'), x...)
		}
	}
	return e
}

// atMidpoint reports whether the decimal d (read exactly) is the midpoint
// between f and one of its neighbours.
func atMidpoint(f float64, d []byte, bits int) bool {
	const prec = 1200
	dv, _, err := big.ParseFloat(string(d), 10, prec, big.ToNearestEven)
	if err != nil {
		return false
	}
	var up, down float64
	if bits == 32 {
		up = float64(math.Nextafter32(float32(f), float32(math.Inf(1))))
		down = float64(math.Nextafter32(float32(f), float32(math.Inf(-1))))
	} else {
		up, down = math.Nextafter(f, math.Inf(1)), math.Nextafter(f, math.Inf(-1))
	}
	fv := new(big.Float).SetPrec(prec).SetFloat64(f)
	for _, n := range []float64{up, down} {
		if math.IsInf(n, 0) {
			continue
		}
		mid := new(big.Float).SetPrec(prec).Add(fv, new(big.Float).SetPrec(prec).SetFloat64(n))
		mid.Quo(mid, new(big.Float).SetPrec(prec).SetInt64(2))
		if mid.Cmp(dv) == 0 {
			return true
		}
	}
	return false
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
