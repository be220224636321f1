package scram

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// verifierScheme is the prefix of a SCRAM secret in pg_authid.rolpassword.
const verifierScheme = "SCRAM-SHA-256"

// DefaultIterations and DefaultSaltLen are PostgreSQL's defaults
// (scram_iterations, SCRAM_DEFAULT_SALT_LEN), used for mock verifiers.
const (
	DefaultIterations = 4096
	DefaultSaltLen    = 16
)

// Verifier is a role's SCRAM-SHA-256 secret as PostgreSQL stores it in
// pg_authid.rolpassword (RFC 5802 §3, "the server stores ... StoredKey,
// ServerKey, salt and iteration count"). It is not the password, but it is
// a secret: StoredKey plus an observed exchange yields the ClientKey, and
// ServerKey lets its holder pose as the server. String redacts both keys.
type Verifier struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte // H(ClientKey)
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key")

	// doomed marks a mock verifier: any exchange against it fails with
	// 28P01, like PostgreSQL's mock authentication.
	doomed bool
}

// ParseVerifier parses a SCRAM secret in PostgreSQL's text form
//
//	SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>
//
// with the same rules as parse_scram_secret in PostgreSQL's auth-scram.c,
// plus a positive iteration count and a non-empty salt. Errors never quote
// the input.
func ParseVerifier(s string) (*Verifier, error) {
	scheme, rest, ok := strings.Cut(s, "$")
	if !ok || scheme != verifierScheme {
		return nil, errors.New("scram: not a SCRAM-SHA-256 secret (want SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)")
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return nil, errors.New("scram: malformed SCRAM secret: missing keys")
	}
	iterStr, saltStr, ok := strings.Cut(params, ":")
	if !ok {
		return nil, errors.New("scram: malformed SCRAM secret: missing salt")
	}
	storedStr, serverStr, ok := strings.Cut(keys, ":")
	if !ok {
		return nil, errors.New("scram: malformed SCRAM secret: missing ServerKey")
	}
	iter, err := strconv.Atoi(iterStr)
	if err != nil || iter < 1 || iter > math.MaxInt32 {
		return nil, errors.New("scram: malformed SCRAM secret: iteration count is not a positive 32-bit integer")
	}
	salt, err := b64.DecodeString(saltStr)
	if err != nil || len(salt) == 0 {
		return nil, errors.New("scram: malformed SCRAM secret: salt is not non-empty base64")
	}
	stored, err := b64.DecodeString(storedStr)
	if err != nil || len(stored) != keyLen {
		return nil, fmt.Errorf("scram: malformed SCRAM secret: StoredKey is not %d bytes of base64", keyLen)
	}
	server, err := b64.DecodeString(serverStr)
	if err != nil || len(server) != keyLen {
		return nil, fmt.Errorf("scram: malformed SCRAM secret: ServerKey is not %d bytes of base64", keyLen)
	}
	return &Verifier{Iterations: iter, Salt: salt, StoredKey: stored, ServerKey: server}, nil
}

// NewVerifier computes the verifier of password with salt and iterations
// (RFC 5802 §3): StoredKey = H(ClientKey), ServerKey = HMAC(SaltedPassword,
// "Server Key"). The password is used as raw bytes; see normalizePassword
// for how that relates to PostgreSQL's SASLprep. For tests and tools.
func NewVerifier(password string, salt []byte, iterations int) *Verifier {
	clientKey, serverKey := keysFromPassword(password, salt, iterations)
	v := &Verifier{
		Iterations: iterations,
		Salt:       append([]byte(nil), salt...),
		StoredKey:  h(clientKey),
		ServerKey:  serverKey,
	}
	clear(clientKey)
	return v
}

// MockVerifier returns a verifier for a role that does not exist or has no
// SCRAM secret, so that the exchange runs to the end and fails with the same
// 28P01 as a wrong password, as PostgreSQL's mock authentication does. The
// salt is derived from user and secret (a random value the proxy keeps for
// its lifetime), so repeated attempts for the same name see the same salt
// and cannot tell a missing role from an existing one.
func MockVerifier(user string, secret []byte) *Verifier {
	sum := sha256.Sum256(append([]byte(user), secret...))
	v := &Verifier{
		Iterations: DefaultIterations,
		Salt:       sum[:DefaultSaltLen],
		StoredKey:  make([]byte, keyLen),
		ServerKey:  make([]byte, keyLen),
		doomed:     true,
	}
	rand.Read(v.StoredKey)
	rand.Read(v.ServerKey)
	return v
}

// Encode returns the verifier in pg_authid.rolpassword form, suitable for
// ALTER ROLE ... PASSWORD '<encoded>'. It contains secrets: do not log it.
func (v Verifier) Encode() string {
	return fmt.Sprintf("%s$%d:%s$%s:%s", verifierScheme, v.Iterations,
		b64.EncodeToString(v.Salt), b64.EncodeToString(v.StoredKey), b64.EncodeToString(v.ServerKey))
}

// String describes the verifier without its keys, so printing one by mistake
// leaks nothing.
func (v Verifier) String() string {
	return fmt.Sprintf("%s$%d:%s$<redacted>", verifierScheme, v.Iterations, b64.EncodeToString(v.Salt))
}

// GoString redacts like String, for %#v.
func (v Verifier) GoString() string { return v.String() }
