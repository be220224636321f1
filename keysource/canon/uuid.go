package canon

import (
	"encoding/hex"

	"github.com/pgveil/pgveil/policy"
)

// uuidText accepts PostgreSQL's uuid input: 32 hex digits, any case,
// optionally in braces, with a hyphen allowed after any group of four
// digits. The canonical form is lowercase 8-4-4-4-12.
func uuidText(src, dst []byte) ([]byte, error) {
	s := src // uuid_in skips no spaces
	if len(s) == 0 {
		return nil, invalid(policy.TypeUUID, "invalid input syntax")
	}
	if len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}' {
		s = s[1 : len(s)-1]
	}
	var raw [16]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '-' {
			if n == 0 || n%4 != 0 || n == 32 || s[i-1] == '-' {
				return nil, invalid(policy.TypeUUID, "invalid input syntax")
			}
			continue
		}
		d := digitVal(c)
		if d > 15 || n == 32 {
			return nil, invalid(policy.TypeUUID, "invalid input syntax")
		}
		raw[n/2] |= byte(d) << (4 * (1 - n%2))
		n++
	}
	if n != 32 || s[len(s)-1] == '-' {
		return nil, invalid(policy.TypeUUID, "invalid input syntax")
	}
	return appendUUID(dst, raw[:]), nil
}

func appendUUID(dst, raw []byte) []byte {
	dst = hex.AppendEncode(dst, raw[0:4])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, raw[4:6])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, raw[6:8])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, raw[8:10])
	dst = append(dst, '-')
	return hex.AppendEncode(dst, raw[10:16])
}

func uuidBinaryOut(pt, dst []byte) ([]byte, error) {
	if len(pt) != 36 {
		return nil, invalid(policy.TypeUUID, "not a canonical uuid")
	}
	var raw [16]byte
	j := 0
	for i := 0; i < 36; i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		d := digitVal(pt[i])
		if d > 15 {
			return nil, invalid(policy.TypeUUID, "not a canonical uuid")
		}
		raw[j/2] |= byte(d) << (4 * (1 - j%2))
		j++
	}
	return append(dst, raw[:]...), nil
}
