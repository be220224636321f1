package proxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgveil/pgveil/integration/harness"
	"github.com/pgveil/pgveil/policy"
)

// These tests run the proxy in-process against a real PostgreSQL cluster,
// so that goroutine leaks and session bookkeeping can be checked directly.

var cluster *harness.Cluster

func TestMain(m *testing.M) {
	c, err := harness.StartCluster(harness.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxy tests: cannot start PostgreSQL:", err)
		os.Exit(1)
	}
	cluster = c
	code := m.Run()
	c.Stop()
	os.Exit(code)
}

// testProxy is an in-process pgveil in front of the test cluster.
type testProxy struct {
	srv  *Server
	addr string
	logs *observer.ObservedLogs
	done chan error
}

func startProxy(t *testing.T, extra string) *testProxy {
	t.Helper()
	return startProxyYAML(t, fmt.Sprintf("listen: 127.0.0.1:0\nupstream:\n  address: %s\n  tls: disable\nadmin:\n  listen: \"\"\n%s", cluster.Addr(), extra))
}

func startProxyYAML(t *testing.T, yaml string) *testProxy {
	t.Helper()
	cfg, err := policy.LoadBytes("test.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	srv, err := New(cfg, Options{Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{srv: srv, addr: addr.String(), logs: logs, done: make(chan error, 1)}
	go func() { p.done <- srv.Serve() }()
	return p
}

// stop shuts the proxy down and requires that every session had already
// ended on its own (Shutdown would otherwise report closing busy ones).
func (p *testProxy) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-p.done; err != nil {
		t.Errorf("serve: %v", err)
	}
	for _, msg := range []string{"protocol tracker out of step with the server", "panic in session; session closed"} {
		if n := p.logs.FilterMessage(msg).Len(); n != 0 {
			t.Errorf("the proxy logged %q %d times", msg, n)
		}
	}
}

func (p *testProxy) url(params ...string) string {
	return harness.BuildURL(p.addr, harness.SCRAMUser, harness.SCRAMPass, harness.Database, append([]string{"sslmode=disable"}, params...)...)
}

// waitBackendGone waits until no backend runs a query containing marker.
func waitBackendGone(t *testing.T, marker string) {
	t.Helper()
	ctx := context.Background()
	conn := adminConn(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()", marker).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend running %q still present after client disconnect", marker)
		}
		// Polling a condition with a deadline, not sleeping to synchronise.
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDisconnectMidQueryNoLeak: a client that vanishes while its query runs
// ends its session and its upstream connection; no goroutine is left.
func TestDisconnectMidQueryNoLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startProxy(t, "")
	ctx := context.Background()
	conn, err := pgconn.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	// Start a long query and drop the TCP connection without Terminate.
	mrr := conn.Exec(ctx, "SELECT pg_sleep(60) /* mid-query-marker */")
	_ = mrr
	waitQueryRunning(t, "mid-query-marker")
	conn.Conn().Close()
	waitBackendGone(t, "mid-query-marker")
	p.stop(t, 10*time.Second)
}

// TestDisconnectMidCopyNoLeak: the same in the middle of COPY FROM STDIN.
func TestDisconnectMidCopyNoLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startProxy(t, "")
	ctx := context.Background()
	conn, err := pgconn.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TEMP TABLE copy_leak (a int, b text)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	raw := conn.Conn()
	w := bufio.NewWriter(raw)
	writeMsg(w, 'Q', append([]byte("COPY copy_leak FROM STDIN /* mid-copy-marker */"), 0))
	w.Flush()
	// Read until CopyInResponse.
	r := bufio.NewReader(raw)
	for {
		typ, body := readRawMsg(t, r)
		if typ == 'G' {
			break
		}
		if typ == 'E' {
			t.Fatalf("COPY failed: %q", body)
		}
	}
	writeMsg(w, 'd', []byte("1\tone\n2\ttwo\n"))
	w.Flush()
	raw.Close()
	waitBackendGone(t, "mid-copy-marker")
	p.stop(t, 10*time.Second)
}

// TestOversizedMessage: a message over proxy.max_message ends that session
// with SQLSTATE 54000; another session is unaffected.
func TestOversizedMessage(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startProxy(t, "proxy:\n  max_message: 64KiB\n")
	ctx := context.Background()
	other, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgconn.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "SELECT '"+strings.Repeat("x", 70*1024)+"'").ReadAll()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "54000" || !strings.Contains(pe.Message, "proxy.max_message") && !strings.Contains(pe.Hint, "proxy.max_message") {
		t.Fatalf("oversized query: got %v, want 54000 naming proxy.max_message", err)
	}
	conn.Close(ctx)
	var n int
	if err := other.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("other session hurt: %v", err)
	}
	other.Close(ctx)
	p.stop(t, 10*time.Second)
}

// TestUpstreamUnreachable: 08001 to the client, and the proxy keeps serving.
func TestUpstreamUnreachable(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.LoadBytes("t.yaml", []byte(fmt.Sprintf("listen: 127.0.0.1:0\nupstream:\n  address: 127.0.0.1:%d\n  tls: disable\nadmin:\n  listen: \"\"\n", port)), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := srv.Listen()
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	ctx := context.Background()
	url := harness.BuildURL(addr.String(), harness.SCRAMUser, harness.SCRAMPass, harness.Database, "sslmode=disable")
	for i := 0; i < 3; i++ {
		_, err := pgconn.Connect(ctx, url)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "08001" {
			t.Fatalf("attempt %d: got %v, want SQLSTATE 08001", i, err)
		}
	}
	// Point it at the real server: the same process now serves.
	good, _ := policy.LoadBytes("t.yaml", []byte(fmt.Sprintf("listen: %s\nupstream:\n  address: %s\n  tls: disable\nadmin:\n  listen: \"\"\n", cfg.Listen, cluster.Addr())), nil)
	if err := srv.Reload(good); err != nil {
		t.Fatal(err)
	}
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatalf("after reload: %v", err)
	}
	conn.Close(ctx)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	<-done
}

// TestShutdownDrains: an idle session gets 57P01 at once; a session inside
// a transaction finishes it, then is closed.
func TestShutdownDrains(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startProxy(t, "")
	ctx := context.Background()
	idle, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(ctx)
	busy, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close(ctx)
	tx, err := busy.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "CREATE TEMP TABLE drain_t (a int)"); err != nil {
		t.Fatal(err)
	}
	shutdown := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shutdown <- p.srv.Shutdown(sctx)
	}()
	// The idle session is ended at once (its end is logged), and is told why.
	waitFor(t, func() bool { return p.logs.FilterMessage("session ended by shutdown").Len() == 1 })
	_, err = idle.Exec(ctx, "SELECT 1")
	var pe *pgconn.PgError
	if err == nil {
		t.Fatal("idle session still served after shutdown began")
	}
	if !errors.As(err, &pe) || pe.Code != "57P01" {
		t.Fatalf("idle session: %v", err)
	}
	// The busy one finishes its transaction.
	if _, err := tx.Exec(ctx, "INSERT INTO drain_t VALUES (1)"); err != nil {
		t.Fatalf("busy session cut mid-transaction: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit during drain: %v", err)
	}
	if err := <-shutdown; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	<-p.done
	if p.srv.SessionCount() != 0 {
		t.Fatal("sessions left")
	}
}

// TestStartupGarbage: junk before startup gets an ErrorResponse; the proxy goes on.
func TestStartupGarbage(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startProxy(t, "")
	ctx := context.Background()
	for _, junk := range [][]byte{
		{0, 0, 0, 2},             // length too small
		{0x7f, 0, 0, 0},          // length too large
		{0, 0, 0, 8, 0, 2, 0, 0}, // protocol 2.0
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), // not Postgres at all
	} {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(junk)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		typ, body := readRawMsg(t, r)
		if typ != 'E' {
			t.Fatalf("junk %q: got message %q, want ErrorResponse", junk, typ)
		}
		if code := errorField(body, 'C'); code != "08P01" && code != "0A000" && code != "54000" {
			t.Fatalf("junk %q: SQLSTATE %s", junk, code)
		}
		c.Close()
	}
	conn, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatalf("proxy hurt by garbage: %v", err)
	}
	conn.Close(ctx)
	p.stop(t, 10*time.Second)
}

func waitQueryRunning(t *testing.T, marker string) {
	t.Helper()
	ctx := context.Background()
	conn := adminConn(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()", marker).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("query %q never started", marker)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readRawMsg(t *testing.T, r *bufio.Reader) (byte, []byte) {
	t.Helper()
	var h [5]byte
	if _, err := ioReadFull(r, h[:]); err != nil {
		t.Fatalf("reading message: %v", err)
	}
	n := int(binary.BigEndian.Uint32(h[1:])) - 4
	body := make([]byte, n)
	if _, err := ioReadFull(r, body); err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return h[0], body
}

func ioReadFull(r *bufio.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }

// waitFor polls cond until it holds or 20 s pass: waiting for an event the
// code under test reports, with a deadline, never a fixed sleep.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var testMetrics = NewMetrics(prometheus.NewRegistry(), nil)

// adminConn connects to the test cluster as the superuser, directly; the
// connection closes when the test ends.
func adminConn(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	c, err := cluster.Connect(ctx, harness.SuperUser, harness.Database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(ctx) })
	return c
}
