package scram

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
)

// md5Prefix starts both an md5 verifier in pg_authid and an md5 response on
// the wire.
const md5Prefix = "md5"

// MD5Verifier returns PostgreSQL's md5 secret for password and user:
// "md5" + hex(md5(password || user)). For tests and tools.
func MD5Verifier(password, user string) string {
	sum := md5.Sum([]byte(password + user))
	return md5Prefix + hex.EncodeToString(sum[:])
}

// IsMD5Verifier reports whether s has the form of an md5 secret: "md5"
// followed by 32 lowercase hex digits.
func IsMD5Verifier(s string) bool {
	if len(s) != len(md5Prefix)+2*md5.Size || s[:len(md5Prefix)] != md5Prefix {
		return false
	}
	for _, c := range s[len(md5Prefix):] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// MD5Response answers an AuthenticationMD5Password challenge with salt from
// the verifier alone, as the PasswordMessage a client would send:
// "md5" + hex(md5(hex(md5(password || user)) || salt)). The inner hash is
// exactly the verifier's hex part, which is why an md5 verifier is
// password-equivalent. It returns "" when verifier is not an md5 secret.
func MD5Response(verifier string, salt [4]byte) string {
	if !IsMD5Verifier(verifier) {
		return ""
	}
	sum := md5.Sum(append([]byte(verifier[len(md5Prefix):]), salt[:]...))
	return md5Prefix + hex.EncodeToString(sum[:])
}

// MD5Check reports whether response, a client's PasswordMessage to an
// AuthenticationMD5Password challenge with salt, matches verifier, in
// constant time (PostgreSQL: md5_crypt_verify). A malformed verifier never
// matches.
func MD5Check(verifier, response string, salt [4]byte) bool {
	want := MD5Response(verifier, salt)
	if want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(response)) == 1
}
