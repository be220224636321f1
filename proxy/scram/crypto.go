package scram

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// keyLen is the SHA-256 output length: the length of every SCRAM-SHA-256 key,
// signature and proof (RFC 7677 §3).
const keyLen = sha256.Size

// rawNonceLen is the number of random bytes in a nonce before base64, the
// same as PostgreSQL's SCRAM_RAW_NONCE_LEN (and libpq's).
const rawNonceLen = 18

var b64 = base64.StdEncoding

// hi is Hi(str, salt, i) of RFC 5802 §2.2: PBKDF2 (RFC 8018 §5.2) with
// HMAC-SHA-256 as the PRF and a single output block, which is all SCRAM ever
// needs since dkLen equals the hash length.
func hi(password, salt []byte, iterations int) []byte {
	mac := hmac.New(sha256.New, password)
	mac.Write(salt)
	mac.Write([]byte{0, 0, 0, 1}) // INT(1)
	u := mac.Sum(nil)
	out := append([]byte(nil), u...)
	for i := 1; i < iterations; i++ {
		mac.Reset()
		mac.Write(u)
		u = mac.Sum(u[:0])
		for j := range out {
			out[j] ^= u[j]
		}
	}
	return out
}

// hmacSHA256 is HMAC(key, str) of RFC 5802 §2.2 (RFC 2104 with SHA-256).
func hmacSHA256(key []byte, parts ...string) []byte {
	mac := hmac.New(sha256.New, key)
	for _, p := range parts {
		mac.Write([]byte(p))
	}
	return mac.Sum(nil)
}

// h is H(str) of RFC 5802 §2.2.
func h(b []byte) []byte {
	sum := sha256.Sum256(b)
	return sum[:]
}

// xor returns a XOR b for equal-length slices (RFC 5802 §2.2 "XOR").
func xor(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

// keysFromPassword derives ClientKey and ServerKey (RFC 5802 §3):
//
//	SaltedPassword := Hi(Normalize(password), salt, i)
//	ClientKey      := HMAC(SaltedPassword, "Client Key")
//	ServerKey      := HMAC(SaltedPassword, "Server Key")
//
// Normalize is normalizePassword (see its comment on SASLprep).
func keysFromPassword(password string, salt []byte, iterations int) (clientKey, serverKey []byte) {
	salted := hi(normalizePassword(password), salt, iterations)
	clientKey = hmacSHA256(salted, "Client Key")
	serverKey = hmacSHA256(salted, "Server Key")
	clear(salted)
	return clientKey, serverKey
}

// normalizePassword is the Normalize() step of RFC 5802 §2.2, as PostgreSQL
// applies it (pg_saslprep, falling back to the raw bytes when SASLprep
// fails). This package uses the raw bytes always, which gives PostgreSQL's
// result exactly for every ASCII password (pg_saslprep returns ASCII input
// unchanged, control characters included) and for every password that is
// not valid UTF-8 (PostgreSQL falls back to the raw bytes). It differs only
// for valid non-ASCII UTF-8 that SASLprep would change (non-ASCII spaces
// mapped to U+0020, characters "mapped to nothing" such as U+00AD, or
// compatibility characters altered by NFKC); full SASLprep needs Unicode
// normalization tables outside the standard library. pgveil itself never
// handles passwords (it works from verifiers and recovered keys), so this
// affects only tests and tools that start from a password.
func normalizePassword(password string) []byte {
	return []byte(password)
}

// newNonce returns a fresh printable nonce: rawNonceLen random bytes in
// base64, as PostgreSQL and libpq make theirs (RFC 5802 §5.1 "r=").
func newNonce() string {
	raw := make([]byte, rawNonceLen)
	rand.Read(raw) // never fails (crypto/rand, Go 1.24+)
	return b64.EncodeToString(raw)
}
