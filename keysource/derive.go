package keysource

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
)

// Purpose says what a data key is for. Encryption and index keys are
// separate random keys in separate rows; neither is ever derived from the
// other.
type Purpose string

// Purposes, as stored in pgveil.keys.purpose.
const (
	PurposeEnc   Purpose = "enc"
	PurposeIndex Purpose = "index"
)

// dataKeyLen is the length of every data key: AES-256 and HMAC-SHA-256 keys.
const dataKeyLen = 32

// keyMeta is a key row's identity: everything that names what the key is
// for. It is fixed when the row is created and never changes.
type keyMeta struct {
	ID        uint32
	Purpose   Purpose
	Scope     string // "schema.table.column" for enc, the index key name for index
	Tenant    string
	HasTenant bool
	Version   int
}

const deriveLabel = "pgveil/v1/data-key"

// deriveInfo is the HKDF info binding a working key to its row:
//
//	"pgveil/v1/data-key"
//	u16 len, purpose | u16 len, scope | u8 has_tenant | u32 len, tenant | u32 key id | u32 version
//
// (lengths and integers big-endian).
func deriveInfo(m keyMeta) []byte {
	b := make([]byte, 0, len(deriveLabel)+2+len(m.Purpose)+2+len(m.Scope)+1+4+len(m.Tenant)+8)
	b = append(b, deriveLabel...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Purpose)))
	b = append(b, m.Purpose...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Scope)))
	b = append(b, m.Scope...)
	if m.HasTenant {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Tenant)))
	b = append(b, m.Tenant...)
	b = binary.BigEndian.AppendUint32(b, m.ID)
	b = binary.BigEndian.AppendUint32(b, uint32(m.Version))
	return b
}

// deriveKey turns the random key stored (wrapped) in a row into the key
// actually used: HKDF-SHA-256(secret = stored key, salt = none, info =
// deriveInfo(row)). The stored key is random already; the derivation binds
// it to its row, so wrapped bytes copied from one row of pgveil.keys into
// another (another tenant, column, purpose or version) yield a key that
// opens nothing, and the swap fails closed instead of merging two keys.
func deriveKey(stored []byte, m keyMeta) ([]byte, error) {
	return hkdf.Key(sha256.New, stored, nil, string(deriveInfo(m)), dataKeyLen)
}
