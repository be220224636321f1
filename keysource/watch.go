package keysource

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Watch listens on the pgveil_keys channel and applies other processes'
// changes to this Keyring's cache at once: "forget:<ids>" after a shred or
// a drop, "active" after a rotation. Without it those changes arrive within
// the active TTL. Watch holds one pool connection and returns when ctx ends
// or the connection fails (the caller restarts it). Each (re)start drops the
// whole cache, so the bound on a shred reaching this process is one
// notification round trip while listening, and the listener's reconnect
// time otherwise.
func (k *Keyring) Watch(ctx context.Context) error {
	conn, err := k.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("keysource: watch: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return fmt.Errorf("keysource: watch: %w", err)
	}
	// Changes made before LISTEN took effect were not announced to us: a
	// shred committed while this listener was down must not leave its keys
	// readable here, so drop every cached key (they reload on demand).
	// While listening, cached keys need no re-reading (see keyByID).
	k.Forget()
	k.setWatching(1)
	defer k.setWatching(-1)
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				// The connection is mid-wait; do not hand it back to the pool.
				conn.Conn().Close(context.Background())
				return ctx.Err()
			}
			return fmt.Errorf("keysource: watch: %w", err)
		}
		k.apply(n.Payload)
	}
}

func (k *Keyring) setWatching(d int) {
	k.mu.Lock()
	k.watching += d
	k.mu.Unlock()
}

func (k *Keyring) apply(payload string) {
	switch {
	case payload == "active":
		k.forgetActive()
	case strings.HasPrefix(payload, "forget:"):
		var ids []uint32
		for _, s := range strings.Split(payload[len("forget:"):], ",") {
			id, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				k.log.Warn("keysource: bad notification", zap.Int("len", len(payload)))
				k.Forget()
				return
			}
			ids = append(ids, uint32(id))
		}
		k.Forget(ids...)
	}
}
