package canon

import (
	"bytes"
	"encoding/binary"
	"math/big"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgveil/pgveil/policy"
)

// PostgreSQL's numeric limits (src/backend/utils/adt/numeric.c).
const (
	numericMaxExponent = 1000   // NUMERIC_MAX_PRECISION: |exponent| in input
	numericMaxDscale   = 16383  // NUMERIC_DSCALE_MAX
	numericMaxIntDigit = 131072 // digits before the decimal point
)

// numericText parses numeric input (NaN, [+-]Infinity, or digits with an
// optional point and exponent, underscores between digits) into
// PostgreSQL's output form, which keeps the display scale: "1.50" stays
// "1.50", "1.5e2" becomes "150", "-0.0" becomes "0.0".
func numericText(src, dst []byte) ([]byte, error) {
	s := trimSpace(src)
	switch {
	case equalFold(s, "nan"):
		return append(dst, "NaN"...), nil
	case equalFold(s, "infinity"), equalFold(s, "+infinity"):
		return append(dst, "Infinity"...), nil
	case equalFold(s, "-infinity"):
		return append(dst, "-Infinity"...), nil
	}
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var digits []byte // integer and fraction digits, without the point
	frac, seenPoint, any := 0, false, false
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
			any = true
			if seenPoint {
				frac++
			}
		case c == '_' && i > 0 && i+1 < len(s) && isDigit(s[i-1]) && isDigit(s[i+1]):
		case c == '.' && !seenPoint:
			seenPoint = true
		default:
			goto exponent
		}
	}
exponent:
	if !any {
		return nil, invalid(policy.TypeNumeric, "invalid input syntax")
	}
	exp := 0
	if i < len(s) {
		if s[i]|0x20 != 'e' || i+1 >= len(s) {
			return nil, invalid(policy.TypeNumeric, "invalid input syntax")
		}
		e, err := parseInt(policy.TypeInt4, s[i+1:])
		if err != nil || e > numericMaxExponent || e < -numericMaxExponent {
			return nil, invalid(policy.TypeNumeric, "invalid input syntax")
		}
		exp = int(e)
	}
	return appendDecimal(dst, neg, digits, frac-exp)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// appendDecimal writes the value digits × 10^-scale with display scale
// max(scale, 0), in PostgreSQL's output form.
func appendDecimal(dst []byte, neg bool, digits []byte, scale int) ([]byte, error) {
	for scale < 0 {
		digits = append(digits, '0')
		scale++
	}
	if scale > numericMaxDscale {
		return nil, invalid(policy.TypeNumeric, "display scale exceeds %d", numericMaxDscale)
	}
	// Strip leading zeros but keep at least scale+1 digits.
	for len(digits) > scale+1 && digits[0] == '0' {
		digits = digits[1:]
	}
	for len(digits) < scale+1 {
		digits = append([]byte{'0'}, digits...)
	}
	if len(digits)-scale > numericMaxIntDigit {
		return nil, invalid(policy.TypeNumeric, "value overflows numeric format")
	}
	if neg && bytes.IndexFunc(digits, func(r rune) bool { return r != '0' }) >= 0 {
		dst = append(dst, '-')
	}
	ip := len(digits) - scale
	dst = append(dst, digits[:ip]...)
	if scale > 0 {
		dst = append(dst, '.')
		dst = append(dst, digits[ip:]...)
	}
	return dst, nil
}

// appendNumericEquality writes the form in which equal numerics are equal
// bytes: trailing fractional zeros and a bare point dropped ("1.50" → "1.5",
// "2.00" → "2"). NaN and the infinities stay as they are (PostgreSQL sorts
// NaN equal to NaN).
func appendNumericEquality(dst, pt []byte) []byte {
	if bytes.IndexByte(pt, '.') >= 0 {
		pt = bytes.TrimRight(pt, "0")
		pt = bytes.TrimSuffix(pt, []byte("."))
	}
	if string(pt) == "-0" {
		pt = pt[1:]
	}
	return append(dst, pt...)
}

// numericBinary reads numeric's binary format (ndigits, weight, sign,
// dscale, base-10000 digits), checking it as numeric_recv does, and decodes
// it with pgtype's numeric codec.
func numericBinary(src, dst []byte) ([]byte, error) {
	if len(src) < 8 {
		return nil, invalid(policy.TypeNumeric, "binary numeric too short")
	}
	ndigits := int(binary.BigEndian.Uint16(src[0:]))
	sign := binary.BigEndian.Uint16(src[4:])
	dscale := binary.BigEndian.Uint16(src[6:])
	if len(src) != 8+2*ndigits {
		return nil, invalid(policy.TypeNumeric, "binary numeric has the wrong length")
	}
	if sign != 0x0000 && sign != 0x4000 && sign != 0xC000 && sign != 0xD000 && sign != 0xF000 {
		return nil, invalid(policy.TypeNumeric, "invalid sign in external numeric value")
	}
	if dscale > numericMaxDscale {
		return nil, invalid(policy.TypeNumeric, "invalid scale in external numeric value")
	}
	for i := 0; i < ndigits; i++ {
		if binary.BigEndian.Uint16(src[8+2*i:]) >= 10000 {
			return nil, invalid(policy.TypeNumeric, "invalid digit in external numeric value")
		}
	}
	if ndigits == 0 && sign < 0xC000 {
		// Zero: pgtype drops the display scale of a digitless zero.
		return appendDecimal(dst, false, []byte{'0'}, int(dscale))
	}
	var n pgtype.Numeric
	plan := pgtype.NumericCodec{}.PlanScan(nil, pgtype.NumericOID, pgtype.BinaryFormatCode, &n)
	if err := plan.Scan(src, &n); err != nil {
		return nil, invalid(policy.TypeNumeric, "malformed binary numeric")
	}
	switch {
	case n.NaN:
		return append(dst, "NaN"...), nil
	case n.InfinityModifier == pgtype.Infinity:
		return append(dst, "Infinity"...), nil
	case n.InfinityModifier == pgtype.NegativeInfinity:
		return append(dst, "-Infinity"...), nil
	}
	digits := []byte(new(big.Int).Abs(n.Int).String())
	return appendDecimal(dst, n.Int.Sign() < 0, digits, -int(n.Exp))
}

// numericBinaryOut encodes a canonical numeric text with pgtype's codec,
// keeping its display scale.
func numericBinaryOut(pt, dst []byte) ([]byte, error) {
	var n pgtype.Numeric
	switch string(pt) {
	case "NaN":
		n = pgtype.Numeric{NaN: true, Valid: true}
	case "Infinity":
		n = pgtype.Numeric{InfinityModifier: pgtype.Infinity, Valid: true}
	case "-Infinity":
		n = pgtype.Numeric{InfinityModifier: pgtype.NegativeInfinity, Valid: true}
	default:
		s := string(pt)
		scale := 0
		if i := bytes.IndexByte(pt, '.'); i >= 0 {
			scale = len(s) - i - 1
			s = s[:i] + s[i+1:]
		}
		v, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return nil, invalid(policy.TypeNumeric, "not a canonical numeric")
		}
		n = pgtype.Numeric{Int: v, Exp: int32(-scale), Valid: true}
	}
	plan := pgtype.NumericCodec{}.PlanEncode(nil, pgtype.NumericOID, pgtype.BinaryFormatCode, n)
	if plan == nil {
		return nil, invalid(policy.TypeNumeric, "cannot encode")
	}
	out, err := plan.Encode(n, dst)
	if err != nil {
		return nil, invalid(policy.TypeNumeric, "cannot encode")
	}
	return out, nil
}
