package envelope

import (
	"crypto/cipher"
	"crypto/rand"
	"slices"
)

// Seal appends to dst a v1 envelope of plaintext under aead (AES-256-GCM
// with a 12-byte nonce) with a fresh random nonce and the given AAD (see
// AppendAAD). When dst has room for len(plaintext)+Overhead more bytes,
// Seal allocates nothing.
//
// Random 96-bit nonces are safe for up to 2^32 envelopes per key (NIST SP
// 800-38D, 8.3); key rotation keeps every key far below that.
func Seal(dst []byte, aead cipher.AEAD, keyID uint32, plaintext, aad []byte) []byte {
	return SealWithNonce(dst, aead, keyID, nil, plaintext, aad)
}

// SealWithNonce is Seal with a caller-chosen nonce. It exists for the test
// vectors of docs/FORMAT.md; everything else must use Seal, because reusing
// a nonce under one key breaks GCM. A nil nonce means a random one.
func SealWithNonce(dst []byte, aead cipher.AEAD, keyID uint32, nonce, plaintext, aad []byte) []byte {
	if nonce != nil && len(nonce) != NonceLen {
		panic("envelope: nonce must be 12 bytes")
	}
	if aead.NonceSize() != NonceLen || aead.Overhead() != TagLen {
		panic("envelope: AEAD must be GCM with a 12-byte nonce and 16-byte tag")
	}
	dst = slices.Grow(dst, Overhead+len(plaintext))
	start := len(dst)
	dst = dst[:start+HeaderLen]
	putHeader(dst[start:], keyID)
	n := dst[start+5 : start+HeaderLen]
	if nonce == nil {
		// crypto/rand.Read never fails (it aborts the program instead).
		rand.Read(n)
	} else {
		copy(n, nonce)
	}
	return aead.Seal(dst, n, plaintext, aad)
}

// Open checks and decrypts a binary envelope under aead and aad, appending
// the plaintext to dst. It returns ErrFormat for bytes that are not an
// envelope and ErrAuth for one that does not authenticate; the caller has
// already chosen aead by KeyID(env). It allocates nothing when dst has room.
//
// The header's key id is not under the GCM tag by itself; it is
// authenticated through the AAD, which carries the key id too. Open refuses
// an AAD whose key id is not the envelope's, so an altered header fails even
// for a caller that built the AAD without looking at the envelope.
func Open(dst []byte, aead cipher.AEAD, env, aad []byte) ([]byte, error) {
	id, err := KeyID(env)
	if err != nil {
		return nil, err
	}
	if aadID, ok := aadKeyID(aad); !ok || aadID != id {
		return nil, ErrAuth
	}
	out, err := aead.Open(dst, env[5:HeaderLen], env[HeaderLen:], aad)
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}
