package keysource

import (
	"errors"
	"fmt"
)

// Errors that callers tell apart with errors.Is. None of them, nor anything
// wrapping them here, carries key bytes or plaintext.
var (
	// ErrShredded: the envelope's key was destroyed (crypto-shredding, or a
	// retired version dropped after re-encryption). The value can never be
	// read again; the proxy returns NULL for it.
	ErrShredded = errors.New("keysource: data key shredded")
	// ErrUnknownKey: no key with the envelope's key id exists in pgveil.keys.
	ErrUnknownKey = errors.New("keysource: unknown data key")
	// ErrTampered: the bytes are not a well-formed envelope, or they do not
	// authenticate (altered, truncated, or sealed for another place).
	ErrTampered = errors.New("keysource: envelope malformed or tampered with")
	// ErrWrongScope: the envelope's key belongs to another table, column or
	// tenant, or is not an encryption key at all.
	ErrWrongScope = errors.New("keysource: data key belongs to another column or tenant")
	// ErrMasterUnavailable: the master key source could not be reached. It
	// always arrives wrapped in a *RetryableError.
	ErrMasterUnavailable = errors.New("keysource: master key source unavailable")
	// ErrMasterMalformed: the master key source answered, but not as its
	// API does (not JSON, too large, fields missing): a wrong address, or
	// a proxy's or load balancer's page in its place. It is not retried.
	ErrMasterMalformed = errors.New("keysource: malformed response from the master key source")
)

// RetryableError marks a failure that may go away by itself: the master key
// source (Vault) was unreachable, sealed or overloaded. Keys already in the
// cache keep working meanwhile; only keys not yet unwrapped are affected.
type RetryableError struct {
	Op  string // what was attempted, e.g. "vault decrypt"
	Err error
}

func (e *RetryableError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// IsRetryable reports whether err (or anything it wraps) is a RetryableError.
func IsRetryable(err error) bool {
	var r *RetryableError
	return errors.As(err, &r)
}

// keyError names the key and the place in an error, never its contents.
func keyError(base error, id uint32, format string, args ...any) error {
	return fmt.Errorf("%w: key %d: %s", base, id, fmt.Sprintf(format, args...))
}
