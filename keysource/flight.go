package keysource

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// flight makes concurrent cache misses for the same key share one load, so
// a burst of first requests costs one store read and one unwrap, not one
// per request.
//
// The load belongs to no caller. It runs on its own goroutine under the
// first caller's context stripped of its cancellation and bounded by
// loadTimeout, and each caller waits for it only as long as its own
// context allows. A caller that goes away (its session ended, its client
// hung up) thus returns at once and never fails the load for the callers
// that share it; before, the load ran under the first caller's context,
// and the end of that one session failed every other waiting on the key.
type flight struct {
	mu    sync.Mutex
	calls map[string]*flightCall
}

type flightCall struct {
	done    chan struct{}
	val     any
	err     error
	waiters int // callers waiting on it, under flight.mu (for tests)
}

// loadTimeout bounds one shared load: the store read and the master's
// unwrap, retries included.
const loadTimeout = time.Minute

func (f *flight) do(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]*flightCall{}
	}
	c, ok := f.calls[key]
	if !ok {
		c = &flightCall{done: make(chan struct{})}
		f.calls[key] = c
		go func() {
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
			defer cancel()
			func() {
				// Not on a caller's goroutine: a panic here would end the
				// process rather than the session that asked.
				defer func() {
					if r := recover(); r != nil {
						c.val, c.err = nil, fmt.Errorf("keysource: key load panicked: %v", r)
					}
				}()
				c.val, c.err = fn(lctx)
			}()
			f.mu.Lock()
			delete(f.calls, key)
			f.mu.Unlock()
			close(c.done)
		}()
	}
	c.waiters++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		c.waiters--
		f.mu.Unlock()
	}()
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// waiting reports how many callers wait on key's load (for tests).
func (f *flight) waiting(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.calls[key]; c != nil {
		return c.waiters
	}
	return 0
}
