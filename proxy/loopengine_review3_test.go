package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/pgveil/pgveil/integration/harness"
)

// Regression tests from the third review of encryption on the event loop.

// upstreamTap sits between pgveil and PostgreSQL and keeps every byte
// pgveil sends upstream, so a test can check that a plaintext never left.
type upstreamTap struct {
	ln  net.Listener
	mu  sync.Mutex
	buf bytes.Buffer
	wg  sync.WaitGroup
}

func (u *upstreamTap) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.buf.Write(p)
}

func (u *upstreamTap) saw(s string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return bytes.Contains(u.buf.Bytes(), []byte(s))
}

func startUpstreamTap(t *testing.T) *upstreamTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstreamTap{ln: ln}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", cluster.Addr())
			if err != nil {
				c.Close()
				continue
			}
			u.wg.Add(2)
			go func() { defer u.wg.Done(); io.Copy(io.MultiWriter(s, u), c); s.Close() }()
			go func() { defer u.wg.Done(); io.Copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); u.wg.Wait() })
	return u
}

// tappedProxies runs f on both relays, each behind its own tap.
func tappedProxies(t *testing.T, f func(t *testing.T, p *testProxy, tap *upstreamTap)) {
	if _, err := adminConn(t).Exec(context.Background(), handBackSchema); err != nil {
		t.Fatal(err)
	}
	for _, core := range relayCoreConfigs {
		t.Run(core.name, func(t *testing.T) {
			tap := startUpstreamTap(t)
			p := startTablesProxyAt(t, tap.ln.Addr().String(), hbTables+core.extra)
			defer p.stop(t, 10*time.Second)
			f(t, p, tap)
		})
	}
}

// readUntilZ reads messages to ReadyForQuery (or the end of the stream)
// and returns their types and the last SQLSTATE.
func readUntilZ(t *testing.T, r *bufio.Reader) (types []byte, code string) {
	t.Helper()
	for {
		var h [5]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return types, code // the server may end the session
		}
		body := make([]byte, int(h[1])<<24|int(h[2])<<16|int(h[3])<<8|int(h[4])-4)
		if _, err := io.ReadFull(r, body); err != nil {
			return types, code
		}
		types = append(types, h[0])
		if h[0] == 'E' {
			code = errorField(body, 'C')
		}
		if h[0] == 'Z' {
			return types, code
		}
	}
}

// TestRefusedCopyDataDropped: pgx streams COPY data right after the COPY,
// before the server answers. When pgveil refuses that COPY (an option it
// cannot apply, a client_encoding it does not seal), the data that follows
// never goes upstream: it would be the plaintext of encrypted columns.
func TestRefusedCopyDataDropped(t *testing.T) {
	tappedProxies(t, func(t *testing.T, p *testProxy, tap *upstreamTap) {
		for i, c := range []struct{ pre, copy, code string }{
			{"", "COPY hb_secrets (body) FROM STDIN WITH (ENCODING 'LATIN1')", "0A000"},
			{"SET client_encoding TO 'LATIN1'", "COPY hb_secrets (body) FROM STDIN", "22021"},
		} {
			conn := dialRaw(t, p)
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			w, r := bufio.NewWriter(conn), bufio.NewReader(conn)
			if c.pre != "" {
				writeMsg(w, 'Q', []byte(c.pre+"\x00"))
				w.Flush()
				readUntilZ(t, r)
			}
			secret := fmt.Sprintf("hb-refused-copy-%d", i)
			writeMsg(w, 'Q', []byte(c.copy+"\x00"))
			writeMsg(w, 'd', []byte(secret+"\n"))
			writeMsg(w, 'c', nil)
			writeMsg(w, 'Q', []byte("SELECT 1\x00"))
			w.Flush()
			got, code := readUntilZ(t, r)
			if string(got) != "EZ" || code != c.code {
				t.Errorf("%s: %q, SQLSTATE %s; want a %s refusal", c.copy, got, code, c.code)
			}
			if got, _ := readUntilZ(t, r); string(got) != "TDCZ" {
				t.Errorf("the query after it: %q", got)
			}
			writeMsg(w, 'X', nil)
			w.Flush()
			conn.Close()
			waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
			if tap.saw(secret) {
				t.Errorf("%s: the plaintext %q went upstream", c.copy, secret)
			}
		}
	})
}

// TestTwoCopyPortals: an Execute of a COPY FROM of an encrypted table and,
// pipelined behind it, an Execute of another COPY. The second aborts the
// first on the server; the data the client sends for the first is not
// sent upstream raw (the second's plan is not the first's).
func TestTwoCopyPortals(t *testing.T) {
	tappedProxies(t, func(t *testing.T, p *testProxy, tap *upstreamTap) {
		conn := dialRaw(t, p)
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		w, r := bufio.NewWriter(conn), bufio.NewReader(conn)
		writeMsg(w, 'P', []byte("s1\x00COPY hb_secrets (body) FROM STDIN\x00\x00\x00"))
		writeMsg(w, 'P', []byte("s2\x00COPY hb_plain (id, note) FROM STDIN\x00\x00\x00"))
		writeMsg(w, 'B', []byte("p1\x00s1\x00\x00\x00\x00\x00\x00\x00"))
		writeMsg(w, 'B', []byte("p2\x00s2\x00\x00\x00\x00\x00\x00\x00"))
		writeMsg(w, 'E', []byte("p1\x00\x00\x00\x00\x00"))
		writeMsg(w, 'E', []byte("p2\x00\x00\x00\x00\x00"))
		writeMsg(w, 'S', nil)
		w.Flush()
		secret := "hb-two-portals"
		for {
			var h [5]byte
			if _, err := io.ReadFull(r, h[:]); err != nil {
				break // the server ends the session
			}
			body := make([]byte, int(h[1])<<24|int(h[2])<<16|int(h[3])<<8|int(h[4])-4)
			if _, err := io.ReadFull(r, body); err != nil {
				break
			}
			if h[0] == 'G' {
				writeMsg(w, 'd', []byte(secret+"\n"))
				writeMsg(w, 'c', nil)
				w.Flush()
			}
			if h[0] == 'Z' {
				break
			}
		}
		conn.Close()
		waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
		if tap.saw(secret) {
			t.Errorf("the plaintext %q went upstream", secret)
		}
	})
}

// TestWaitOutlivesSession: a catalog reload a session on the loop waits
// for is not cancelled when that session ends meanwhile (its server
// connection terminated): the reload is the engine's, shared by every
// session, and completes.
func TestWaitOutlivesSession(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	p := startHandBackProxy(t)
	defer p.stop(t, 20*time.Second)
	if _, err := adminConn(t).Exec(ctx, "ALTER TABLE hb_secrets ADD COLUMN late int"); err != nil { // the snapshot lacks it
		t.Fatal(err)
	}
	conn := dialRaw(t, p)
	defer conn.Close()
	waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 1 })
	// Hold every service connection (the engine's watchers hold some for
	// good), so that the reload waits.
	eng := p.srv.eng.Load()
	var held []*pgxpool.Conn
	for eng.pool.Stat().AcquiredConns() < eng.pool.Config().MaxConns {
		c, err := eng.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	w := bufio.NewWriter(conn)
	writeMsg(w, 'Q', []byte("INSERT INTO hb_secrets (body, late) VALUES ('v', 1)\x00"))
	w.Flush()
	waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopWaits.WithLabelValues("catalog")) == 1 })
	if _, err := adminConn(t).Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", harness.TrustUser); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
	for _, c := range held {
		c.Release()
	}
	waitFor(t, func() bool {
		return p.logs.FilterMessage("catalog refreshed after DDL").Len() > 0 ||
			p.logs.FilterMessage("catalog refresh after DDL failed; keeping the previous snapshot").Len() > 0
	})
	if n := p.logs.FilterMessage("catalog refresh after DDL failed; keeping the previous snapshot").Len(); n > 0 {
		t.Errorf("the reload failed when the waiting session ended (%d failures)", n)
	}
}

// TestParkedClientHangsUp: a client that closes its connection while its
// message waits for a key ends its session at once, not when the wait
// does (the loop does not read a parked side, but hears its hang-up).
func TestParkedClientHangsUp(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startHandBackProxy(t)
	defer p.stop(t, 10*time.Second)
	unlock := lockKeys(t)
	defer unlock()
	conn := dialRaw(t, p)
	waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopSessions) == 1 })
	w := bufio.NewWriter(conn)
	writeMsg(w, 'Q', []byte("INSERT INTO hb_secrets (body) VALUES ('hb-hung-up')\x00"))
	w.Flush()
	waitFor(t, func() bool { return testutil.ToFloat64(p.srv.metrics.LoopWaits.WithLabelValues("key")) == 1 })
	conn.Close()
	waitFor(t, func() bool { return p.srv.SessionCount() == 0 }) // the key is still locked
}
