package envelope

import "encoding/binary"

// aadLabel starts every v1 AAD. It keeps envelope AADs disjoint from any
// other use pgveil makes of the same AEAD construction (key wrapping uses a
// different label), so a wrapped key can never be passed off as a value.
const aadLabel = "pgveil/envelope/v1"

// AppendAAD appends the additional authenticated data that binds a value to
// its place:
//
//	"pgveil/envelope/v1"            18 bytes, ASCII
//	key id                          4 bytes, big-endian
//	len(schema)  schema             2 bytes big-endian, then UTF-8 bytes
//	len(table)   table              2 bytes big-endian, then UTF-8 bytes
//	len(column)  column             2 bytes big-endian, then UTF-8 bytes
//
// Every name is length-prefixed, so no two (schema, table, column) triples
// share an encoding even when names contain dots or are empty. The tenant is
// not in the AAD: it is bound through the key id, because each tenant has
// keys of its own and the key store records whose a key id is.
//
// Names longer than 65535 bytes cannot occur (PostgreSQL truncates
// identifiers at 63 bytes); AppendAAD panics on one rather than silently
// producing an ambiguous encoding.
func AppendAAD(dst []byte, schema, table, column string, keyID uint32) []byte {
	dst = append(dst, aadLabel...)
	dst = binary.BigEndian.AppendUint32(dst, keyID)
	for _, s := range [3]string{schema, table, column} {
		if len(s) > 0xFFFF {
			panic("envelope: identifier longer than 65535 bytes")
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// aadKeyID returns the key id field of an AAD made by AppendAAD.
func aadKeyID(aad []byte) (uint32, bool) {
	if len(aad) < len(aadLabel)+4 || string(aad[:len(aadLabel)]) != aadLabel {
		return 0, false
	}
	return binary.BigEndian.Uint32(aad[len(aadLabel):]), true
}
