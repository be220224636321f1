package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/pgveil/pgveil/integration/harness"
)

// wantTooMany fails unless err is Postgres's own "too many clients" error.
func wantTooMany(t *testing.T, what string, err error) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53300" || pe.Severity != "FATAL" || pe.Message != "sorry, too many clients already" {
		t.Fatalf("%s: got %v, want FATAL 53300 \"sorry, too many clients already\"", what, err)
	}
}

// rawDial connects without saying anything; the connection closes when
// the test ends.
func rawDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// readTooMany reads one message from c and fails unless it is FATAL 53300.
func readTooMany(t *testing.T, what string, c net.Conn) {
	t.Helper()
	typ, body, err := arRead(c)
	if err != nil || typ != 'E' {
		t.Fatalf("%s: got message %q (%v), want ErrorResponse", what, typ, err)
	}
	if code, msg, sev := errorField(body, 'C'), errorField(body, 'M'), errorField(body, 'S'); code != "53300" || msg != "sorry, too many clients already" || sev != "FATAL" {
		t.Fatalf("%s: got %s %s %q, want FATAL 53300", what, sev, code, msg)
	}
}

// upstreamDials is how many upstream connections pgveil made for clients.
func upstreamDials(t *testing.T, p *testProxy) uint64 {
	t.Helper()
	var m dto.Metric
	if err := p.srv.metrics.UpstreamConnect.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// closedByPeer fails unless err says the other side closed the connection
// (not the test's own read deadline).
func closedByPeer(t *testing.T, what string, err error) {
	t.Helper()
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: read returned %v, want the connection closed by pgveil", what, err)
	}
}

// TestLimitsMaxClientConnections: with proxy.max_client_connections 2,
// two sessions open, a third client gets FATAL 53300 (Postgres's words)
// without pgveil dialling upstream for it; a CancelRequest for an open
// session still reaches the server while pgveil is full; once a session
// closes, a new client is served. On both relay cores.
func TestLimitsMaxClientConnections(t *testing.T) {
	for _, loops := range []int{0, 1} {
		t.Run(fmt.Sprintf("event_loops=%d", loops), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			p := startProxy(t, fmt.Sprintf("proxy:\n  event_loops: %d\n  max_client_connections: 2\n", loops))
			ctx := context.Background()
			a, err := pgx.Connect(ctx, p.url("application_name=limits_a"))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close(ctx)
			b, err := pgx.Connect(ctx, p.url())
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(ctx)
			dials := upstreamDials(t, p)

			_, err = pgx.Connect(ctx, p.url())
			wantTooMany(t, "third client", err)
			// Over an SSLRequest too: 'N', then the error after the
			// StartupMessage, as Postgres answers when it is full.
			c := rawDial(t, p.addr)
			c.Write(sslRequest)
			var n [1]byte
			if _, err := c.Read(n[:]); err != nil || n[0] != 'N' {
				t.Fatalf("SSLRequest while full: %q %v", n[0], err)
			}
			c.Write(arStartup(harness.SCRAMUser))
			readTooMany(t, "raw client after SSLRequest", c)
			g := rawDial(t, p.addr)
			g.Write(binary.BigEndian.AppendUint32([]byte{0, 0, 0, 8}, codeGSSENCRequest))
			if _, err := g.Read(n[:]); err != nil || n[0] != 'N' {
				t.Fatalf("GSSENCRequest while full: %q %v", n[0], err)
			}
			g.Write(arStartup(harness.SCRAMUser))
			readTooMany(t, "raw client after GSSENCRequest", g)
			if got := testutil.ToFloat64(p.srv.metrics.refused[refusedClients]); got != 3 {
				t.Errorf("pgveil_connections_refused_total{reason=max_client_connections} = %v, want 3", got)
			}
			if got := upstreamDials(t, p); got != dials {
				t.Errorf("pgveil dialled upstream %d times for refused clients", got-dials)
			}
			if got := testutil.ToFloat64(p.srv.metrics.ConnectionsOpen); got != 2 {
				t.Errorf("pgveil_connections_open = %v, want 2", got)
			}
			if n := p.logs.FilterMessage("connection refused: too many clients (53300)").Len(); n != 1 {
				t.Errorf("refusals logged %d times, want 1 (rate-limited)", n)
			}

			// A cancel while full.
			done := make(chan error, 1)
			go func() {
				_, err := a.Exec(ctx, "SELECT pg_sleep(60) -- limits_cancel")
				done <- err
			}()
			waitQueryRunning(t, "limits_cancel")
			if err := a.PgConn().CancelRequest(ctx); err != nil {
				t.Fatalf("cancel request: %v", err)
			}
			select {
			case err := <-done:
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "57014" {
					t.Fatalf("cancelled query: %v, want 57014", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the cancel request sent while pgveil was full did not cancel the query")
			}
			if got := testutil.ToFloat64(p.srv.metrics.CancelsTotal); got != 1 {
				t.Errorf("pgveil_cancel_requests_total = %v, want 1", got)
			}
			if got := testutil.ToFloat64(p.srv.metrics.refused[refusedClients]); got != 3 {
				t.Errorf("the cancel was counted as refused: %v", got)
			}

			// A slot frees when a session closes.
			b.Close(ctx)
			waitFor(t, func() bool { return p.srv.limits.clients.Load() == 1 })
			d, err := pgx.Connect(ctx, p.url())
			if err != nil {
				t.Fatalf("after a session closed: %v", err)
			}
			var one int
			if err := d.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("new session: %v", err)
			}
			d.Close(ctx)
			a.Close(ctx)
			waitFor(t, func() bool { return p.srv.limits.clients.Load() == 0 && p.srv.limits.pending.Load() == 0 })
			p.stop(t, 10*time.Second)
		})
	}
}

// TestLimitsMaxPendingStartups: clients that connect and say nothing (or
// only SSLRequest) fill proxy.max_pending_startups; the next client gets
// 53300 at once rather than waiting; a session already authenticated is
// not affected; closing the idle connections frees their slots.
func TestLimitsMaxPendingStartups(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startProxy(t, "proxy:\n  max_pending_startups: 3\n")
	ctx := context.Background()
	a, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	var idle []net.Conn
	for i := 0; i < 3; i++ {
		c := rawDial(t, p.addr)
		if i == 2 {
			c.Write(sslRequest)
			var n [1]byte
			if _, err := c.Read(n[:]); err != nil || n[0] != 'N' {
				t.Fatalf("SSLRequest: %q %v", n[0], err)
			}
		}
		idle = append(idle, c)
	}
	waitFor(t, func() bool { return p.srv.limits.pending.Load() == 3 })
	if got := testutil.ToFloat64(p.srv.metrics.StartupsPending); got != 3 {
		t.Errorf("pgveil_startups_pending = %v, want 3", got)
	}
	start := time.Now()
	_, err = pgx.Connect(ctx, p.url())
	wantTooMany(t, "client beyond max_pending_startups", err)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the refusal took %v: queued, not refused", took)
	}
	if got := testutil.ToFloat64(p.srv.metrics.refused[refusedPending]); got != 1 {
		t.Errorf("pgveil_connections_refused_total{reason=max_pending_startups} = %v, want 1", got)
	}
	var one int
	if err := a.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("authenticated session while startups are full: %v", err)
	}
	for _, c := range idle {
		c.Close()
	}
	waitFor(t, func() bool { return p.srv.limits.pending.Load() == 0 })
	if got := testutil.ToFloat64(p.srv.metrics.StartupsPending); got != 0 {
		t.Errorf("pgveil_startups_pending = %v, want 0", got)
	}
	b, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatalf("after the idle clients left: %v", err)
	}
	b.Close(ctx)
	a.Close(ctx)
	p.stop(t, 10*time.Second)
}

// TestLimitsAuthenticationTimeout: a client that never completes startup
// loses its startup slot (and connection) after
// proxy.authentication_timeout.
func TestLimitsAuthenticationTimeout(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startProxy(t, "proxy:\n  max_pending_startups: 1\n  authentication_timeout: 1s\n")
	c := rawDial(t, p.addr)
	start := time.Now()
	var b [1]byte
	n, err := c.Read(b[:])
	if n > 0 {
		t.Fatalf("pgveil sent %q to a client that said nothing", b[0])
	}
	closedByPeer(t, "silent client", err)
	if took := time.Since(start); took < 900*time.Millisecond || took > 15*time.Second {
		t.Errorf("silent client closed after %v, want about 1s", took)
	}
	waitFor(t, func() bool { return p.srv.limits.pending.Load() == 0 && p.srv.limits.clients.Load() == 0 })
	conn, err := pgx.Connect(context.Background(), p.url())
	if err != nil {
		t.Fatalf("after the timeout: %v", err)
	}
	conn.Close(context.Background())
	p.stop(t, 10*time.Second)
}

// TestLimitsRefusedAtOnce: refused connections whose first packet pgveil
// still waits for are bounded too (by max_pending_startups): beyond, a
// client gets the error without a word from it, and the count of them
// goes back to 0.
func TestLimitsRefusedAtOnce(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startProxy(t, "proxy:\n  max_client_connections: 1\n")
	rawDial(t, p.addr) // admitted, silent
	waitFor(t, func() bool { return p.srv.limits.pending.Load() == 1 })
	refused := rawDial(t, p.addr) // refused, silent: pgveil waits for its first packet
	waitFor(t, func() bool { return p.srv.limits.refusing.Load() == 1 })
	c := rawDial(t, p.addr)
	readTooMany(t, "client beyond the refusal bound", c)
	// The waiting one still gets its answer once it speaks.
	refused.Write(arStartup(harness.SCRAMUser))
	readTooMany(t, "refused client after its StartupMessage", refused)
	waitFor(t, func() bool { return p.srv.limits.refusing.Load() == 0 })
	if got := testutil.ToFloat64(p.srv.metrics.refused[refusedClients]); got != 2 {
		t.Errorf("pgveil_connections_refused_total{reason=max_client_connections} = %v, want 2", got)
	}
	p.stop(t, 10*time.Second)
}

// TestLimitsReload: the limits follow a reload for the connections
// accepted after it.
func TestLimitsReload(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startProxy(t, "proxy:\n  max_client_connections: 1\n")
	ctx := context.Background()
	a, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	_, err = pgx.Connect(ctx, p.url())
	wantTooMany(t, "second client", err)
	// a's startup slot is given back just after its ReadyForQuery went
	// out (max_pending_startups followed max_client_connections to 1):
	// wait for it, or b may be refused for it under load.
	waitFor(t, func() bool { return p.srv.limits.pending.Load() == 0 })
	cfg := *p.srv.Config()
	cfg.Proxy.MaxClientConnections = 2
	if err := p.srv.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	b, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatalf("after raising the limit: %v", err)
	}
	b.Close(ctx)
	a.Close(ctx)
	p.stop(t, 10*time.Second)
}

// TestLimitsShutdownWakeBeforeDeadline: a Shutdown wake that lands just
// before a session sets its startup deadline, or just before it clears it
// when authentication ends, is not undone by it: the session still ends
// at once (it used to wait for the client, the authentication timeout or
// the force-close). The hook runs the drain at exactly that point.
func TestLimitsShutdownWakeBeforeDeadline(t *testing.T) {
	for _, tc := range []struct {
		phase string
		loops int
	}{{"startup", 1}, {"ready", 0}, {"ready", 1}} {
		t.Run(fmt.Sprintf("%s/event_loops=%d", tc.phase, tc.loops), func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			// Set before the server starts (its goroutines read it); reset
			// once Shutdown has waited for them.
			testHookDeadline = func(s *session, phase string) {
				if phase == tc.phase {
					s.srv.beginDrain()
				}
			}
			defer func() { testHookDeadline = nil }()
			p := startProxy(t, fmt.Sprintf("proxy:\n  event_loops: %d\n", tc.loops))
			ctx := context.Background()
			if tc.phase == "startup" {
				c := rawDial(t, p.addr) // silent: only the wake can end its session soon
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				var b [1]byte
				n, err := c.Read(b[:])
				if n > 0 {
					t.Fatalf("got %q, want the connection closed", b[0])
				}
				closedByPeer(t, "silent client during the drain", err)
			} else {
				conn, err := pgx.Connect(ctx, p.url())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				waitFor(t, func() bool { return p.logs.FilterMessage("session ended by shutdown").Len() == 1 })
				_, err = conn.Exec(ctx, "SELECT 1")
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "57P01" {
					t.Fatalf("after the drain: %v, want 57P01", err)
				}
			}
			waitFor(t, func() bool { return p.srv.SessionCount() == 0 })
			p.stop(t, 10*time.Second)
		})
	}
}

// TestLimitsAuthQuerySlots: auth_queries (auth.mode scram) take at most
// half the service pool's connections at once, so a burst of logins
// cannot take the connections the key store and catalog reads need; a
// lookup waits for a slot no longer than upstream.connect_timeout.
func TestLimitsAuthQuerySlots(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startProxyYAML(t, fmt.Sprintf("listen: 127.0.0.1:0\nupstream:\n  address: %s\n  tls: disable\n  connect_timeout: 1s\n  service_url: %q\nadmin:\n  listen: \"\"\n",
		cluster.Addr(), cluster.SocketURL(harness.SuperUser, "postgres")+"&pool_max_conns=4"))
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	if v, err := p.srv.lookupVerifier(ctx, harness.SCRAMUser); err != nil || v == "" {
		t.Fatalf("auth_query: %q %v", v, err)
	}
	p.srv.svcMu.Lock()
	slots := p.srv.svcAuth
	p.srv.svcMu.Unlock()
	if cap(slots) != 2 {
		t.Fatalf("%d auth_query slots for a pool of 4, want 2", cap(slots))
	}
	slots <- struct{}{}
	slots <- struct{}{}
	start := time.Now()
	_, err := p.srv.lookupVerifier(ctx, harness.SCRAMUser)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("auth_query with every slot taken: %v, want a timeout", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("waited %v for an auth_query slot, want about connect_timeout (1s)", took)
	}
	<-slots
	if v, err := p.srv.lookupVerifier(ctx, harness.SCRAMUser); err != nil || v == "" {
		t.Fatalf("auth_query once a slot is free: %q %v", v, err)
	}
	<-slots
}
