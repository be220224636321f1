package keysource

import (
	"context"
	"errors"
)

// Lookups that must not wait.
//
// pgveil's event loop relays many sessions on one thread: a key lookup
// there may use the Keyring's cache but never wait for the key store or
// the master key source. A context marked WithoutWaiting makes a lookup
// that would wait return a *WaitError at once; its Warm does the waiting
// lookup (on another goroutine), after which the same lookup, tried
// again, is answered from the cache.

type noWaitKey struct{}

// WithoutWaiting returns ctx marked so that lookups under it never wait.
func WithoutWaiting(ctx context.Context) context.Context {
	return context.WithValue(ctx, noWaitKey{}, true)
}

func mayWait(ctx context.Context) bool { return ctx.Value(noWaitKey{}) == nil }

// WaitError reports a lookup under WithoutWaiting that needs the key
// store or the master key source.
type WaitError struct {
	what string // for the error text
	key  string // what, with the tenant
	warm func(context.Context) error
}

func (e *WaitError) Error() string { return "keysource: " + e.what + " is not cached" }

// Key names the key the lookup wanted: equal for lookups of the same key.
func (e *WaitError) Key() string { return e.key }

// Warm does the lookup that was refused, waiting as long as ctx allows,
// so that it is cached for the next try. Its error is the lookup's.
func (e *WaitError) Warm(ctx context.Context) error { return e.warm(ctx) }

// AsWait reports whether err is (or wraps) a *WaitError, and returns it.
func AsWait(err error) (*WaitError, bool) {
	var we *WaitError
	ok := errors.As(err, &we)
	return we, ok
}
