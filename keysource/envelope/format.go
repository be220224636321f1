package envelope

import (
	"encoding/binary"
	"errors"
)

// Layout of a v1 envelope.
const (
	Version   byte = 0x01
	KeyIDLen       = 4
	NonceLen       = 12
	TagLen         = 16
	HeaderLen      = 1 + KeyIDLen + NonceLen // 17
	// Overhead is what an envelope adds to its plaintext: header and tag.
	Overhead = HeaderLen + TagLen // 33
	// MaxLen bounds an envelope we agree to parse: a PostgreSQL bytea holds
	// at most 1 GiB, so anything longer is not ours.
	MaxLen = 1 << 30
)

// ErrFormat says the bytes are not a well-formed v1 envelope (wrong version,
// too short, key id 0, bad text encoding). It never says which byte, so that
// an error message cannot be used as an oracle on attacker-supplied data.
var ErrFormat = errors.New("envelope: not a valid v1 envelope")

// ErrAuth says the envelope is well-formed but does not authenticate under
// the key and AAD it was opened with: it was altered, moved to another
// column, table or tenant, or sealed under another key.
var ErrAuth = errors.New("envelope: authentication failed")

// KeyID returns the key id of a binary envelope after checking its shape:
// version, minimum length and a non-zero id. It does no cryptography, so a
// caller can pick the key first and open second.
func KeyID(env []byte) (uint32, error) {
	if len(env) < Overhead || len(env) > MaxLen || env[0] != Version {
		return 0, ErrFormat
	}
	id := binary.BigEndian.Uint32(env[1:5])
	if id == 0 {
		return 0, ErrFormat
	}
	return id, nil
}

// PutHeader writes version and key id into the first 5 bytes of b.
func putHeader(b []byte, keyID uint32) {
	b[0] = Version
	binary.BigEndian.PutUint32(b[1:5], keyID)
}
