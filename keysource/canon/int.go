package canon

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/pgveil/pgveil/policy"
)

func intBits(t policy.LogicalType) int {
	switch t {
	case policy.TypeInt2:
		return 16
	case policy.TypeInt4:
		return 32
	}
	return 64
}

// intText parses integer input as PostgreSQL 16 does: surrounding
// whitespace, a sign, decimal digits or 0x/0o/0b prefixed digits, and
// underscores between digits. The canonical form is plain decimal: "007"
// and "+7" become "7".
func intText(t policy.LogicalType, src, dst []byte) ([]byte, error) {
	v, err := parseInt(t, trimSpace(src))
	if err != nil {
		return nil, err
	}
	return strconv.AppendInt(dst, v, 10), nil
}

func parseInt(t policy.LogicalType, s []byte) (int64, error) {
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := uint64(10)
	if len(s) > 2 && s[0] == '0' {
		switch s[1] | 0x20 {
		case 'x':
			base = 16
		case 'o':
			base = 8
		case 'b':
			base = 2
		}
		if base != 10 {
			s = s[2:]
		}
	}
	if len(s) == 0 {
		return 0, invalid(t, "invalid input syntax")
	}
	var mag uint64
	prevDigit := false
	for i, c := range s {
		if c == '_' {
			if !prevDigit || i == len(s)-1 {
				return 0, invalid(t, "invalid input syntax")
			}
			prevDigit = false
			continue
		}
		d := digitVal(c)
		if d >= base {
			return 0, invalid(t, "invalid input syntax")
		}
		if mag > (math.MaxUint64-d)/base {
			return 0, invalid(t, "value out of range")
		}
		mag = mag*base + d
		prevDigit = true
	}
	bits := intBits(t)
	limit := uint64(1) << (bits - 1) // |min|
	if (!neg && mag >= limit) || (neg && mag > limit) {
		return 0, invalid(t, "value out of range")
	}
	if neg {
		return -int64(mag-1) - 1, nil
	}
	return int64(mag), nil
}

func digitVal(c byte) uint64 {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0')
	case c >= 'a' && c <= 'f':
		return uint64(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return uint64(c-'A') + 10
	}
	return 99
}

func intBinary(t policy.LogicalType, src, dst []byte) ([]byte, error) {
	var v int64
	switch {
	case t == policy.TypeInt2 && len(src) == 2:
		v = int64(int16(binary.BigEndian.Uint16(src)))
	case t == policy.TypeInt4 && len(src) == 4:
		v = int64(int32(binary.BigEndian.Uint32(src)))
	case t == policy.TypeInt8 && len(src) == 8:
		v = int64(binary.BigEndian.Uint64(src))
	default:
		return nil, binaryLength(t, len(src), intBits(t)/8)
	}
	return strconv.AppendInt(dst, v, 10), nil
}

func intBinaryOut(t policy.LogicalType, pt, dst []byte) ([]byte, error) {
	v, err := strconv.ParseInt(string(pt), 10, intBits(t))
	if err != nil {
		return nil, invalid(t, "not a canonical integer")
	}
	switch t {
	case policy.TypeInt2:
		return binary.BigEndian.AppendUint16(dst, uint16(v)), nil
	case policy.TypeInt4:
		return binary.BigEndian.AppendUint32(dst, uint32(v)), nil
	}
	return binary.BigEndian.AppendUint64(dst, uint64(v)), nil
}
