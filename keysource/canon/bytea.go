package canon

import (
	"encoding/hex"

	"github.com/pgveil/pgveil/policy"
)

// byteaText parses bytea text input: the hex format "\x0a1b" (whitespace
// allowed between byte pairs) or the escape format (\\ for a backslash,
// \ooo octal, other bytes as they are). The canonical plaintext is the raw
// bytes.
func byteaText(src, dst []byte) ([]byte, error) {
	if len(src) >= 2 && src[0] == '\\' && src[1] == 'x' {
		s := src[2:]
		for i := 0; i < len(s); {
			if c := s[i]; c == ' ' || c == '\t' || c == '\n' || c == '\r' { // hex_decode's whitespace
				i++
				continue
			}
			if i+1 >= len(s) {
				return nil, invalid(policy.TypeBytea, "invalid hexadecimal data: odd number of digits")
			}
			hi, lo := digitVal(s[i]), digitVal(s[i+1])
			if hi > 15 || lo > 15 {
				return nil, invalid(policy.TypeBytea, "invalid hexadecimal digit")
			}
			dst = append(dst, byte(hi<<4|lo))
			i += 2
		}
		return dst, nil
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		switch {
		case i+1 < len(src) && src[i+1] == '\\':
			dst = append(dst, '\\')
			i++
		case i+3 < len(src) && isOctal(src[i+1]) && src[i+1] <= '3' && isOctal(src[i+2]) && isOctal(src[i+3]):
			dst = append(dst, (src[i+1]-'0')<<6|(src[i+2]-'0')<<3|(src[i+3]-'0'))
			i += 3
		default:
			return nil, invalid(policy.TypeBytea, "invalid escape sequence")
		}
	}
	return dst, nil
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// appendByteaHex is bytea's text output (bytea_output = hex).
func appendByteaHex(dst, b []byte) []byte {
	dst = append(dst, '\\', 'x')
	return hex.AppendEncode(dst, b)
}
