package canon

import (
	"bytes"
	"encoding/binary"

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
	case equalFold(s, "infinity"), equalFold(s, "+infinity"), equalFold(s, "inf"), equalFold(s, "+inf"):
		return append(dst, "Infinity"...), nil
	case equalFold(s, "-infinity"), equalFold(s, "-inf"):
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
		e, ok := exponent(s[i+1:])
		if !ok || e > numericMaxExponent || e < -numericMaxExponent {
			return nil, invalid(policy.TypeNumeric, "invalid input syntax")
		}
		exp = int(e)
	}
	return appendDecimal(dst, neg, digits, frac-exp)
}

// exponent reads a numeric's exponent as PostgreSQL does (strtol):
// optional spaces, an optional sign, decimal digits, nothing after.
func exponent(s []byte) (int64, bool) {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	if len(s) == 0 || len(s) > 9 {
		return 0, false
	}
	var v int64
	for _, c := range s {
		if !isDigit(c) {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
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
	if pad := scale + 1 - len(digits); pad > 0 {
		digits = append(bytes.Repeat([]byte{'0'}, pad), digits...)
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
// dscale, then ndigits base-10000 digits), checking it as numeric_recv
// does, and writes the canonical text in linear time. Digits below the
// display scale are truncated, as numeric_recv truncates them. (pgtype's
// codec goes through math/big, which is quadratic in the digit count; a
// 131072-digit numeric is legal and must not cost seconds.)
func numericBinary(src, dst []byte) ([]byte, error) {
	if len(src) < 8 {
		return nil, invalid(policy.TypeNumeric, "binary numeric too short")
	}
	ndigits := int(binary.BigEndian.Uint16(src[0:]))
	weight := int(int16(binary.BigEndian.Uint16(src[2:])))
	sign := binary.BigEndian.Uint16(src[4:])
	dscale := int(binary.BigEndian.Uint16(src[6:]))
	if len(src) != 8+2*ndigits {
		return nil, invalid(policy.TypeNumeric, "binary numeric has the wrong length")
	}
	switch sign {
	case numericPos, numericNeg:
	case numericNaN:
		return append(dst, "NaN"...), nil
	case numericPInf:
		return append(dst, "Infinity"...), nil
	case numericNInf:
		return append(dst, "-Infinity"...), nil
	default:
		return nil, invalid(policy.TypeNumeric, "invalid sign in external numeric value")
	}
	if dscale > numericMaxDscale {
		return nil, invalid(policy.TypeNumeric, "invalid scale in external numeric value")
	}
	digit := func(i int) int { // base-10000 digit of weight weight-i, 0 outside
		if i < 0 || i >= ndigits {
			return 0
		}
		return int(binary.BigEndian.Uint16(src[8+2*i:]))
	}
	for i := 0; i < ndigits; i++ {
		if digit(i) >= 10000 {
			return nil, invalid(policy.TypeNumeric, "invalid digit in external numeric value")
		}
	}
	if ndigits > 0 && (weight+1)*4 > numericMaxIntDigit+4 {
		return nil, invalid(policy.TypeNumeric, "value overflows numeric format")
	}
	// Decimal digits: integer groups for weights max(weight,0)..0, then
	// fraction groups for weights -1, -2, ... until dscale digits.
	var digits []byte
	top := max(weight, 0)
	for w := top; w >= 0; w-- {
		digits = appendGroup(digits, digit(weight-w))
	}
	intLen := len(digits)
	for w := -1; len(digits)-intLen < dscale; w-- {
		digits = appendGroup(digits, digit(weight-w))
	}
	digits = digits[:intLen+dscale]
	neg := sign == numericNeg
	return appendDecimal(dst, neg, digits, dscale)
}

// Sign words of numeric's binary format.
const (
	numericPos  = 0x0000
	numericNeg  = 0x4000
	numericNaN  = 0xC000
	numericPInf = 0xD000
	numericNInf = 0xF000
)

func appendGroup(dst []byte, g int) []byte {
	return append(dst, byte('0'+g/1000), byte('0'+g/100%10), byte('0'+g/10%10), byte('0'+g%10))
}

// numericBinaryOut writes numeric's binary format for a canonical text
// exactly as numeric_send does: no leading or trailing zero digits, the
// display scale kept.
func numericBinaryOut(pt, dst []byte) ([]byte, error) {
	head := func(ndigits, weight int, sign uint16, dscale int) []byte {
		dst = binary.BigEndian.AppendUint16(dst, uint16(ndigits))
		dst = binary.BigEndian.AppendUint16(dst, uint16(int16(weight)))
		dst = binary.BigEndian.AppendUint16(dst, sign)
		return binary.BigEndian.AppendUint16(dst, uint16(dscale))
	}
	switch string(pt) {
	case "NaN":
		return head(0, 0, numericNaN, 0), nil
	case "Infinity": // numeric_send's dscale of ±Infinity is its header's bits: 32
		return head(0, 0, numericPInf, 32), nil
	case "-Infinity":
		return head(0, 0, numericNInf, 32), nil
	}
	sign := uint16(numericPos)
	s := pt
	if len(s) > 0 && s[0] == '-' {
		sign, s = numericNeg, s[1:]
	}
	intPart, frac := s, []byte(nil)
	if i := bytes.IndexByte(s, '.'); i >= 0 {
		intPart, frac = s[:i], s[i+1:]
	}
	if len(intPart) == 0 || !allDigits(intPart) || !allDigits(frac) {
		return nil, invalid(policy.TypeNumeric, "not a canonical numeric")
	}
	// Align to base-10000 groups: pad the integer part on the left and the
	// fraction on the right to multiples of 4.
	lead := (4 - len(intPart)%4) % 4
	all := make([]byte, 0, lead+len(intPart)+len(frac)+3)
	for range lead {
		all = append(all, '0')
	}
	all = append(all, intPart...)
	all = append(all, frac...)
	for (len(all)-lead-len(intPart))%4 != 0 {
		all = append(all, '0')
	}
	groups := make([]int, len(all)/4)
	for i := range groups {
		g := all[4*i : 4*i+4]
		groups[i] = int(g[0]-'0')*1000 + int(g[1]-'0')*100 + int(g[2]-'0')*10 + int(g[3]-'0')
	}
	weight := (lead+len(intPart))/4 - 1
	for len(groups) > 0 && groups[0] == 0 {
		groups = groups[1:]
		weight--
	}
	for len(groups) > 0 && groups[len(groups)-1] == 0 {
		groups = groups[:len(groups)-1]
	}
	if len(groups) == 0 {
		weight, sign = 0, numericPos
	}
	dst = head(len(groups), weight, sign, len(frac))
	for _, g := range groups {
		dst = binary.BigEndian.AppendUint16(dst, uint16(g))
	}
	return dst, nil
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return true
}
