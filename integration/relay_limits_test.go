package integration

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/lib/pq"

	"github.com/pgveil/pgveil/integration/harness"
)

// Connection limits (docs/OPERATING.md, "Connection limits"), on the real
// binary in front of the real server, on both relay cores (`make test`
// runs TestRelay* again with event loops off).

const tooManyClients = "sorry, too many clients already"

// wantPgxTooMany fails unless err is FATAL 53300 with Postgres's message.
func wantPgxTooMany(t *testing.T, what string, err error) {
	t.Helper()
	pe := pgErr(err)
	if pe == nil || pe.Code != "53300" || pe.Severity != "FATAL" || pe.Message != tooManyClients {
		t.Fatalf("%s: got %v, want FATAL 53300 %q", what, err, tooManyClients)
	}
}

// pgxConnect connects and closes at once: for clients expected to be
// refused.
func pgxConnect(ctx context.Context, url string) (*pgx.Conn, error) {
	c, err := pgx.Connect(ctx, url)
	if err == nil {
		c.Close(ctx)
	}
	return c, err
}

// startupPacket is a protocol 3.0 StartupMessage for user.
func startupPacket(user string) []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 4), 3<<16)
	for _, s := range []string{"user", user, "database", harness.Database} {
		b = append(append(b, s...), 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

var sslRequestPacket = binary.BigEndian.AppendUint32([]byte{0, 0, 0, 8}, 80877103)

// dialIdle opens a TCP connection to pgveil, optionally sends an
// SSLRequest (and reads the 'N'), then says nothing more. It closes when
// the test ends.
func dialIdle(t *testing.T, p *harness.Proxy, ssl bool) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if ssl {
		c.SetDeadline(time.Now().Add(15 * time.Second))
		if _, err := c.Write(sslRequestPacket); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil || b[0] != 'N' {
			t.Fatalf("SSLRequest: answer %q, %v; want 'N'", b[0], err)
		}
		c.SetDeadline(time.Time{})
	}
	return c
}

// TestRelayLimitsMaxClientConnections: with proxy.max_client_connections
// 2 and two sessions open, pgx, lib/pq, psql and a raw client that starts
// with an SSLRequest all get FATAL 53300 "sorry, too many clients
// already", as from a full Postgres; a CancelRequest for an open session
// still cancels its query; the refusals are counted by reason and logged
// (rate-limited, address only); when a session closes a new client is
// served.
func TestRelayLimitsMaxClientConnections(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)
	p := startRelayProxy(t, proxyConf{extra: "  max_client_connections: 2\n"})
	super := superConn(t, ctx)
	a := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable", "application_name=relay_limits_a"))
	b := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable", "application_name=relay_limits_b"))

	start := time.Now()
	refusals := 0
	t.Run("pgx", func(t *testing.T) {
		_, err := pgxConnect(ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
		refusals++
		wantPgxTooMany(t, "pgx", err)
	})
	t.Run("lib/pq", func(t *testing.T) {
		db, err := sql.Open("postgres", proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.PingContext(ctx)
		refusals++
		var pe *pq.Error
		if !errors.As(err, &pe) || pe.Code != "53300" || pe.Severity != "FATAL" || pe.Message != tooManyClients {
			t.Fatalf("lib/pq: got %v, want FATAL 53300 %q", err, tooManyClients)
		}
	})
	t.Run("psql", func(t *testing.T) {
		res := runPsql(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"), nil, nil, "-c", "SELECT 1")
		refusals++
		if res.Code != 2 || !strings.Contains(res.Stderr, "FATAL:  "+tooManyClients) {
			t.Fatalf("psql: exit %d, stderr %q; want 2 and FATAL:  %s", res.Code, res.Stderr, tooManyClients)
		}
	})
	t.Run("SSLRequest then StartupMessage", func(t *testing.T) {
		c := dialIdle(t, p, true)
		c.SetDeadline(time.Now().Add(15 * time.Second))
		if _, err := c.Write(startupPacket(harness.SCRAMUser)); err != nil {
			t.Fatal(err)
		}
		refusals++
		var hdr [5]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil || hdr[0] != 'E' {
			t.Fatalf("after SSLRequest and StartupMessage: %q %v, want an ErrorResponse", hdr[0], err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
		if _, err := io.ReadFull(c, body); err != nil {
			t.Fatal(err)
		}
		var e pgproto3.ErrorResponse
		if err := e.Decode(body); err != nil || e.Code != "53300" || e.Severity != "FATAL" || e.Message != tooManyClients {
			t.Fatalf("after SSLRequest and StartupMessage: %+v %v", e, err)
		}
	})
	took := time.Since(start)

	m := scrape(t, p)
	if got := m.get(`pgveil_connections_refused_total{reason="max_client_connections"}`); got != float64(refusals) {
		t.Errorf(`pgveil_connections_refused_total{reason="max_client_connections"} = %v, want %d`, got, refusals)
	}
	if got := m.get(`pgveil_connections_refused_total{reason="max_pending_startups"}`); got != 0 {
		t.Errorf(`pgveil_connections_refused_total{reason="max_pending_startups"} = %v, want 0`, got)
	}
	if got := m.get("pgveil_connections_open"); got != 2 {
		t.Errorf("pgveil_connections_open = %v, want 2", got)
	}
	if got := m.get(`pgveil_connection_limit{limit="max_client_connections"}`); got != 2 {
		t.Errorf(`pgveil_connection_limit{limit="max_client_connections"} = %v, want 2`, got)
	}
	// One warning per 10 s, however many refusals.
	if n, most := logCount(p, "connection refused: too many clients (53300)"), 1+int(took/(10*time.Second)); n < 1 || n > most {
		t.Errorf("refusals logged %d times in %v, want 1 to %d", n, took, most)
	}
	if strings.Contains(p.Log(), `"msg":"upstream unreachable"`) || m.get("pgveil_upstream_connect_seconds_count") != 2 {
		t.Errorf("pgveil dialled upstream %v times, want 2 (the open sessions only)", m.get("pgveil_upstream_connect_seconds_count"))
	}

	t.Run("cancel while full", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			_, err := a.Exec(ctx, "SELECT pg_sleep(60)")
			done <- err
		}()
		waitActive(t, ctx, super, "relay_limits_a", "pg_sleep")
		if err := a.PgConn().CancelRequest(ctx); err != nil {
			t.Fatalf("CancelRequest: %v", err)
		}
		select {
		case err := <-done:
			if sqlState(err) != "57014" {
				t.Fatalf("cancelled query: %v, want 57014", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a CancelRequest sent while pgveil was full did not cancel the query")
		}
		m := scrape(t, p)
		if got := m.get("pgveil_cancel_requests_total"); got != 1 {
			t.Errorf("pgveil_cancel_requests_total = %v, want 1", got)
		}
		if got := m.get(`pgveil_connections_refused_total{reason="max_client_connections"}`); got != float64(refusals) {
			t.Errorf("the cancel was refused or counted as refused: %v refusals, want %d", got, refusals)
		}
		var n int
		if err := a.QueryRow(ctx, "SELECT 7").Scan(&n); err != nil || n != 7 {
			t.Fatalf("session after the cancel: %d %v", n, err)
		}
	})

	t.Run("a slot frees when a session closes", func(t *testing.T) {
		b.Close(ctx)
		waitFor(t, 15*time.Second, "pgveil_connections_open to reach 1", func() (bool, error) {
			return scrape(t, p).get("pgveil_connections_open") == 1, nil
		})
		c := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
		var n int
		if err := c.QueryRow(ctx, "SELECT 3").Scan(&n); err != nil || n != 3 {
			t.Fatalf("new session: %d %v", n, err)
		}
	})
}

// TestRelayLimitsMaxPendingStartups: with proxy.max_pending_startups 3,
// three raw clients that connect and send nothing (one only an
// SSLRequest) fill it; the next client is refused with 53300 at once
// instead of waiting; a session that had authenticated before keeps
// working; closing the idle connections frees their slots.
func TestRelayLimitsMaxPendingStartups(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)
	p := startRelayProxy(t, proxyConf{extra: "  max_pending_startups: 3\n"})
	a := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))

	idle := []net.Conn{dialIdle(t, p, false), dialIdle(t, p, false), dialIdle(t, p, true)}
	waitFor(t, 15*time.Second, "pgveil_startups_pending to reach 3", func() (bool, error) {
		return scrape(t, p).get("pgveil_startups_pending") == 3, nil
	})
	start := time.Now()
	_, err := pgxConnect(ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
	wantPgxTooMany(t, "client beyond max_pending_startups", err)
	code, msg, err := rawStartup(p.Addr, startupPacket(harness.SCRAMUser))
	if err != nil || code != "53300" || msg != tooManyClients {
		t.Fatalf("raw client beyond max_pending_startups: %q %q %v", code, msg, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("refusals took %v: queued rather than refused", took)
	}
	m := scrape(t, p)
	if got := m.get(`pgveil_connections_refused_total{reason="max_pending_startups"}`); got != 2 {
		t.Errorf(`pgveil_connections_refused_total{reason="max_pending_startups"} = %v, want 2`, got)
	}
	if got := m.get(`pgveil_connection_limit{limit="max_pending_startups"}`); got != 3 {
		t.Errorf(`pgveil_connection_limit{limit="max_pending_startups"} = %v, want 3`, got)
	}
	var n int
	if err := a.QueryRow(ctx, "SELECT 11").Scan(&n); err != nil || n != 11 {
		t.Fatalf("authenticated session while startups are full: %d %v", n, err)
	}

	for _, c := range idle {
		c.Close()
	}
	waitFor(t, 15*time.Second, "pgveil_startups_pending to reach 0", func() (bool, error) {
		return scrape(t, p).get("pgveil_startups_pending") == 0, nil
	})
	c := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
	if err := c.QueryRow(ctx, "SELECT 12").Scan(&n); err != nil || n != 12 {
		t.Fatalf("after the idle clients left: %d %v", n, err)
	}
}

// TestRelayLimitsSIGHUP: the limits reload on SIGHUP, for the connections
// accepted after it; the sessions already open stay.
func TestRelayLimitsSIGHUP(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	conf := proxyConf{extra: "  max_client_connections: 1\n"}
	p := startRelayProxy(t, conf)
	a := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
	_, err := pgxConnect(ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
	wantPgxTooMany(t, "second client at limit 1", err)

	conf.extra = "  max_client_connections: 2\n"
	rewriteConfig(t, p, conf.yaml())
	reloads := logCount(p, "config reloaded")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "config reloaded", reloads)
	if got := scrape(t, p).get(`pgveil_connection_limit{limit="max_client_connections"}`); got != 2 {
		t.Errorf("limit after reload: %v, want 2", got)
	}
	b := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
	var n int
	if err := b.QueryRow(ctx, "SELECT 2").Scan(&n); err != nil || n != 2 {
		t.Fatalf("second session after the reload: %d %v", n, err)
	}
	if err := a.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("first session after the reload: %d %v", n, err)
	}
	_, err = pgxConnect(ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
	wantPgxTooMany(t, "third client at limit 2", err)
}

// TestRelayLimitsTLS: a client refused over TLS gets the error inside
// TLS, after the handshake, as from a full Postgres (a plaintext error
// in answer to its SSLRequest would not be trusted by recent libpq).
func TestRelayLimitsTLS(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startRelayProxy(t, proxyConf{clientTLS: true, upstreamTLS: "require", extra: "  max_client_connections: 1\n"})
	tlsParams := []string{"sslmode=verify-full", "sslrootcert=" + cluster.Certs.CACert, "channel_binding=disable"}
	a := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, tlsParams...))
	_, err := pgxConnect(ctx, proxyURL(p, harness.SCRAMUser, tlsParams...))
	wantPgxTooMany(t, "second TLS client", err)
	res := runPsql(t, ctx, proxyURL(p, harness.SCRAMUser, tlsParams...), nil, nil, "-c", "SELECT 1")
	if res.Code != 2 || !strings.Contains(res.Stderr, "FATAL:  "+tooManyClients) {
		t.Fatalf("psql over TLS: exit %d, stderr %q; want 2 and FATAL:  %s", res.Code, res.Stderr, tooManyClients)
	}
	var n int
	if err := a.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("open TLS session: %d %v", n, err)
	}
	if got := scrape(t, p).get(`pgveil_connections_refused_total{reason="max_client_connections"}`); got != 2 {
		t.Errorf("refusals counted: %v, want 2", got)
	}
}
