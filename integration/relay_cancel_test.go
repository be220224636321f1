package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/pgveil/pgveil/integration/harness"
)

// TestRelayCancel cancels a running pg_sleep from the client, directly and
// through pgveil: pgx with a cancelled context (pgconn sends a CancelRequest
// to the address it is connected to, so through pgveil the request reaches
// pgveil's listener, which forwards it upstream), and psql on SIGINT. The
// server's own 57014 must arrive quickly, the pgx connection must stay
// usable on the same backend, and pgveil must count the forwarded cancels.
func TestRelayCancel(t *testing.T) {
	relayLeakCheck(t)
	p := startRelayProxy(t, proxyConf{})
	ctx := testCtx(t, 2*time.Minute)
	super := superConn(t, ctx)

	t.Run("pgx context", func(t *testing.T) {
		before := scrape(t, p).get("pgveil_cancel_requests_total")
		want := pgxCancel(t, ctx, super, directURL(harness.SCRAMUser, "sslmode=disable", "application_name=relay_cancel_pgx_direct"), "relay_cancel_pgx_direct")
		got := pgxCancel(t, ctx, super, proxyURL(p, harness.SCRAMUser, "sslmode=disable", "application_name=relay_cancel_pgx_proxy"), "relay_cancel_pgx_proxy")
		if want != got {
			t.Errorf("cancel error through pgveil differs from direct\n direct: %s\n pgveil: %s", want, got)
		}
		if after := scrape(t, p).get("pgveil_cancel_requests_total"); after != before+1 {
			t.Errorf("pgveil_cancel_requests_total went from %v to %v, want one forwarded cancel", before, after)
		}
	})

	// With TLS on both legs pgx encrypts the cancel connection too
	// (SSLRequest, then the CancelRequest inside TLS), and pgveil forwards
	// it over its own TLS connection upstream.
	t.Run("pgx context over TLS", func(t *testing.T) {
		tp := startRelayProxy(t, proxyConf{clientTLS: true, upstreamTLS: "require"})
		before := scrape(t, tp).get("pgveil_cancel_requests_total")
		tlsParams := []string{"sslmode=verify-full", "sslrootcert=" + cluster.Certs.CACert, "channel_binding=disable"}
		want := pgxCancel(t, ctx, super, directURL(harness.SCRAMUser, append(tlsParams, "application_name=relay_cancel_tls_direct")...), "relay_cancel_tls_direct")
		got := pgxCancel(t, ctx, super, proxyURL(tp, harness.SCRAMUser, append(tlsParams, "application_name=relay_cancel_tls_proxy")...), "relay_cancel_tls_proxy")
		if want != got {
			t.Errorf("cancel error through pgveil (TLS) differs from direct\n direct: %s\n pgveil: %s", want, got)
		}
		if after := scrape(t, tp).get("pgveil_cancel_requests_total"); after != before+1 {
			t.Errorf("pgveil_cancel_requests_total went from %v to %v, want one forwarded cancel", before, after)
		}
	})

	t.Run("psql SIGINT", func(t *testing.T) {
		before := scrape(t, p).get("pgveil_cancel_requests_total")
		want := psqlCancel(t, ctx, super, directURL(harness.SCRAMUser, "sslmode=disable", "application_name=relay_cancel_psql_direct"), "relay_cancel_psql_direct")
		got := psqlCancel(t, ctx, super, proxyURL(p, harness.SCRAMUser, "sslmode=disable", "application_name=relay_cancel_psql_proxy"), "relay_cancel_psql_proxy")
		if want != got {
			t.Errorf("psql cancel through pgveil differs from direct\n direct: %+v\n pgveil: %+v", want, got)
		}
		if !strings.Contains(got.Stderr, "ERROR:  canceling statement due to user request") || got.Code != 1 {
			t.Errorf("psql through pgveil after SIGINT: exit %d, stderr %q; want the server's cancel error", got.Code, got.Stderr)
		}
		if after := scrape(t, p).get("pgveil_cancel_requests_total"); after != before+1 {
			t.Errorf("pgveil_cancel_requests_total went from %v to %v, want one forwarded cancel", before, after)
		}
	})
	if strings.Contains(p.Log(), "forwarding cancel request failed") {
		t.Errorf("pgveil failed to forward a cancel request")
	}
}

// pgxCancel runs pg_sleep(30) on a connection whose context watcher sends
// a CancelRequest, cancels the context once the backend is seen running
// the sleep, and returns the error the client saw.
func pgxCancel(t *testing.T, ctx context.Context, super *pgx.Conn, url, app string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 20 * time.Second}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect %s: %v", redact(url), err)
	}
	defer conn.Close(context.Background())

	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(qctx, "SELECT pg_sleep(30)")
		done <- err
	}()
	pid := waitActive(t, ctx, super, app, "pg_sleep")
	cancelled := time.Now()
	cancel()
	var qerr error
	select {
	case qerr = <-done:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: query still running 15s after its context was cancelled", app)
	}
	if took := time.Since(cancelled); took > 5*time.Second {
		t.Errorf("%s: cancel took %v", app, took)
	}
	if sqlState(qerr) != "57014" {
		t.Errorf("%s: cancelled query returned %v, want SQLSTATE 57014", app, qerr)
	}
	// The connection survives the cancel, on the same backend.
	var n, backend int
	if err := conn.QueryRow(ctx, "SELECT 1 + 1, pg_backend_pid()").Scan(&n, &backend); err != nil || n != 2 {
		t.Fatalf("%s: connection unusable after cancel: %d %v", app, n, err)
	}
	if backend != pid || int(conn.PgConn().PID()) != pid {
		t.Errorf("%s: backend pid %d after cancel, BackendKeyData pid %d, was %d", app, backend, conn.PgConn().PID(), pid)
	}
	return describePgErr(qerr)
}

// psqlCancel runs psql -c "SELECT pg_sleep(30)", sends it SIGINT once the
// backend runs the sleep, and returns what psql printed.
func psqlCancel(t *testing.T, ctx context.Context, super *pgx.Conn, url, app string) psqlResult {
	t.Helper()
	cmd := exec.Command(psqlPath(t), "-X", "-d", url, "-c", "SELECT pg_sleep(30)")
	cmd.Env = psqlEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	}()
	waitActive(t, ctx, super, app, "pg_sleep")
	sent := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
		done <- err // for the deferred check
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: psql still running 15s after SIGINT", app)
	}
	if took := time.Since(sent); took > 5*time.Second {
		t.Errorf("%s: psql took %v to end after SIGINT", app, took)
	}
	res := psqlResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("psql: %v", err)
	}
	return res
}

// TestRelayCancelPsqlTLS: libpq (psql 15) sends its CancelRequest in the
// clear on a new connection even when the session uses TLS; pgveil, which
// serves TLS, must accept it and forward it over its TLS upstream leg.
func TestRelayCancelPsqlTLS(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	super := superConn(t, ctx)
	p := startRelayProxy(t, proxyConf{clientTLS: true, upstreamTLS: "verify-full", caFile: cluster.Certs.CACert})
	params := []string{"sslmode=verify-full", "sslrootcert=" + cluster.Certs.CACert, "channel_binding=disable"}
	before := scrape(t, p).get("pgveil_cancel_requests_total")
	want := psqlCancel(t, ctx, super, directURL(harness.SCRAMUser, append(params, "application_name=relay_cancel_psqltls_direct")...), "relay_cancel_psqltls_direct")
	got := psqlCancel(t, ctx, super, proxyURL(p, harness.SCRAMUser, append(params, "application_name=relay_cancel_psqltls_proxy")...), "relay_cancel_psqltls_proxy")
	if want != got {
		t.Errorf("psql cancel over TLS through pgveil differs from direct\n direct: %+v\n pgveil: %+v", want, got)
	}
	if !strings.Contains(got.Stderr, "ERROR:  canceling statement due to user request") {
		t.Errorf("psql over TLS through pgveil after SIGINT: %+v", got)
	}
	if after := scrape(t, p).get("pgveil_cancel_requests_total"); after != before+1 {
		t.Errorf("pgveil_cancel_requests_total went from %v to %v, want one forwarded cancel", before, after)
	}
}

// TestRelayCancelAcrossReplicas: pgveil relays BackendKeyData unchanged and
// forwards a CancelRequest byte for byte, so a cancel that reaches another
// pgveil process in front of the same server (a load balancer picked a
// different replica) still cancels the query.
func TestRelayCancelAcrossReplicas(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	super := superConn(t, ctx)
	a := startRelayProxy(t, proxyConf{})
	b := startRelayProxy(t, proxyConf{})
	conn := connectPgx(t, ctx, proxyURL(a, harness.SCRAMUser, "sslmode=disable", "application_name=relay_cancel_replica"))
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(30)")
		done <- err
	}()
	pid := waitActive(t, ctx, super, "relay_cancel_replica", "pg_sleep")
	if int(conn.PgConn().PID()) != pid {
		t.Errorf("BackendKeyData pid through pgveil %d, backend %d", conn.PgConn().PID(), pid)
	}
	// CancelRequest: int32 length, int32 80877102, int32 pid, secret key.
	key := conn.PgConn().SecretKey()
	packet := binary.BigEndian.AppendUint32(nil, uint32(12+len(key)))
	packet = binary.BigEndian.AppendUint32(packet, 80877102)
	packet = binary.BigEndian.AppendUint32(packet, conn.PgConn().PID())
	packet = append(packet, key...)
	c, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(packet); err != nil {
		t.Fatal(err)
	}
	// The protocol gives no answer: the server (and pgveil) just close.
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("answer to a CancelRequest: %d bytes, %v; want the connection closed", n, err)
	}
	c.Close()
	select {
	case err := <-done:
		if sqlState(err) != "57014" {
			t.Errorf("query cancelled through the other replica: %v, want 57014", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("query not cancelled 10s after a CancelRequest through the other pgveil")
	}
	if n := scrape(t, b).get("pgveil_cancel_requests_total"); n != 1 {
		t.Errorf("pgveil_cancel_requests_total on the other replica = %v, want 1", n)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT 3").Scan(&n); err != nil || n != 3 {
		t.Errorf("connection after a cancel: %d %v", n, err)
	}
}
