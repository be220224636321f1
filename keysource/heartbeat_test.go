package keysource

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestWaitForNotificationHeartbeat (review 17a): a live listening
// connection survives its heartbeats (a ping after each idle period) and
// still delivers the notification that comes after them, on the same
// connection.
func TestWaitForNotificationHeartbeat(t *testing.T) {
	pool := testPool(t)
	cx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pool.Acquire(cx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(cx, "LISTEN r17_heartbeat"); err != nil {
		t.Fatal(err)
	}
	pid := conn.Conn().PgConn().PID()
	type res struct {
		n   *pgconn.Notification
		err error
	}
	got := make(chan res, 1)
	go func() {
		n, err := waitForNotification(cx, conn.Conn(), 50*time.Millisecond, 5*time.Second, conn.Conn().Ping)
		got <- res{n, err}
	}()
	// Wait until the listener has pinged at least once.
	for deadline := time.Now().Add(20 * time.Second); ; {
		var q string
		if err := pool.QueryRow(cx, `SELECT query FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&q); err != nil {
			t.Fatal(err)
		}
		if q == "-- ping" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listener never pinged (last query %q)", q)
		}
		select {
		case r := <-got:
			t.Fatalf("WaitForNotification returned before any notification: %v, %v", r.n, r.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, err := pool.Exec(cx, "SELECT pg_notify('r17_heartbeat', 'after the pings')"); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || r.n == nil || r.n.Payload != "after the pings" {
		t.Fatalf("after heartbeats: %v, %v", r.n, r.err)
	}
	if conn.Conn().IsClosed() {
		t.Fatal("the listening connection was closed by its heartbeats")
	}
}
