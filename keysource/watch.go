package keysource

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
		n, err := WaitForNotification(ctx, conn.Conn())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("keysource: watch: %w", err)
		}
		k.apply(n.Payload)
	}
}

// Heartbeat of a listening connection: after HeartbeatIdle without a
// notification, WaitForNotification checks the connection with a query
// that must answer within HeartbeatTimeout.
const (
	HeartbeatIdle    = 10 * time.Second
	HeartbeatTimeout = 5 * time.Second
)

// WaitForNotification waits for the next notification on c, a connection
// that LISTENs, and checks c while none comes: a connection that died
// without a word (a NAT or firewall dropped it, the server's host
// vanished) would otherwise wait for good, and the process would miss
// every notification (a shred, a rotation, a table state) until TCP
// keepalive noticed, tens of minutes later. On an error it closes c (it
// may be mid-message): the caller reconnects and re-reads what it follows.
func WaitForNotification(ctx context.Context, c *pgx.Conn) (*pgconn.Notification, error) {
	return waitForNotification(ctx, c, HeartbeatIdle, HeartbeatTimeout, c.Ping)
}

// WaitForNotificationPing is WaitForNotification with ping as the
// heartbeat's query on c.
func WaitForNotificationPing(ctx context.Context, c *pgx.Conn, ping func(context.Context) error) (*pgconn.Notification, error) {
	return waitForNotification(ctx, c, HeartbeatIdle, HeartbeatTimeout, ping)
}

func waitForNotification(ctx context.Context, c *pgx.Conn, idle, timeout time.Duration, ping func(context.Context) error) (*pgconn.Notification, error) {
	for {
		wctx, cancel := context.WithTimeout(ctx, idle)
		n, err := c.WaitForNotification(wctx)
		cancel()
		if err == nil {
			return n, nil
		}
		if ctx.Err() != nil || !pgconn.Timeout(err) || c.IsClosed() {
			closeQuietly(c)
			return nil, cmp.Or(ctx.Err(), err)
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err = ping(pctx)
		cancel()
		if err != nil {
			closeQuietly(c)
			return nil, cmp.Or(ctx.Err(), fmt.Errorf("listening connection does not answer: %w", err))
		}
	}
}

// closeQuietly closes c without waiting on a peer that may not answer.
func closeQuietly(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.Close(ctx)
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
