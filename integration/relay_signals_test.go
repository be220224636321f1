package integration

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/integration/harness"
)

// TestRelaySIGHUP reloads the config while a session is in the middle of a
// transaction: a good config (log.level info → debug) takes effect for new
// sessions, a bad one is refused with a log line naming the problem and the
// old config stays; the session in the transaction goes on and commits
// across both reloads.
func TestRelaySIGHUP(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	conf := proxyConf{logLevel: "info"}
	p := startRelayProxy(t, conf)

	tx := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
	if _, err := tx.Exec(ctx, "CREATE TEMP TABLE relay_hup (i int); BEGIN; INSERT INTO relay_hup VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(p.Log(), `"msg":"session ready"`) {
		t.Fatalf("debug line logged at log.level info")
	}

	// A good reload.
	conf.logLevel = "debug"
	rewriteConfig(t, p, conf.yaml())
	reloads := logCount(p, "config reloaded")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "config reloaded", reloads)
	if _, err := tx.Exec(ctx, "INSERT INTO relay_hup VALUES (2)"); err != nil {
		t.Fatalf("session in a transaction after reload: %v", err)
	}
	fresh := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
	if _, err := fresh.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	// The new log level applies: new sessions log at debug now.
	waitLog(t, p, "session ready", 0)

	// A bad reload: an unknown key. The running config stays.
	rewriteConfig(t, p, conf.yaml()+"bogus_key: 1\n")
	failures := logCount(p, "config reload failed; keeping the running config")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "config reload failed; keeping the running config", failures)
	if !strings.Contains(p.Log(), "bogus_key") {
		t.Errorf("the reload failure does not name the bad key")
	}
	if _, err := tx.Exec(ctx, "INSERT INTO relay_hup VALUES (3)"); err != nil {
		t.Fatalf("session in a transaction after a failed reload: %v", err)
	}
	if _, err := tx.Exec(ctx, "COMMIT"); err != nil {
		t.Fatalf("commit after reloads: %v", err)
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM relay_hup").Scan(&n); err != nil || n != 3 {
		t.Errorf("rows after commit: %d %v, want 3", n, err)
	}
	// New sessions are still served, with the old (good) config.
	again := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
	if err := again.QueryRow(ctx, "SELECT 5").Scan(&n); err != nil || n != 5 {
		t.Fatalf("new session after a failed reload: %d %v", n, err)
	}
	t.Run("reload metric", func(t *testing.T) {
		m := scrape(t, p)
		if m.get(`pgveil_config_reloads_total{result="ok"}`) != 1 || m.get(`pgveil_config_reloads_total{result="error"}`) != 1 {
			t.Errorf("pgveil_config_reloads_total ok=%v error=%v after one good and one refused reload, want 1 and 1",
				m.get(`pgveil_config_reloads_total{result="ok"}`), m.get(`pgveil_config_reloads_total{result="error"}`))
		}
	})
}

// TestRelaySIGTERM drains: an idle session gets FATAL 57P01 at once, a
// session inside a transaction may finish it (COMMIT succeeds, the rows
// are there) and is then closed, new connections are refused meanwhile, and
// the process exits with status 0 well before proxy.shutdown_timeout; in
// the clear and with TLS on both legs (where waking an idle session means
// interrupting a TLS read).
func TestRelaySIGTERM(t *testing.T) {
	relayLeakCheck(t)
	t.Run("plain", func(t *testing.T) {
		sigtermScenario(t, proxyConf{shutdownTimeout: "60s"}, []string{"sslmode=disable"})
	})
	t.Run("tls both legs", func(t *testing.T) {
		sigtermScenario(t, proxyConf{shutdownTimeout: "60s", clientTLS: true, upstreamTLS: "require"},
			[]string{"sslmode=verify-full", "sslrootcert=" + cluster.Certs.CACert, "channel_binding=disable"})
	})
}

func sigtermScenario(t *testing.T, conf proxyConf, params []string) {
	ctx := testCtx(t, time.Minute)
	with := func(extra ...string) []string { return append(append([]string{}, params...), extra...) }
	direct := connectPgx(t, ctx, directURL(harness.SCRAMUser, "sslmode=disable"))
	if _, err := direct.Exec(ctx, "DROP TABLE IF EXISTS relay_term; CREATE TABLE relay_term (i int)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Exec(context.Background(), "DROP TABLE IF EXISTS relay_term") })

	p := startRelayProxy(t, conf)
	idle := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, params...))
	busy := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, params...))
	if _, err := idle.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := busy.Exec(ctx, "BEGIN; INSERT INTO relay_term VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	// A third session has a query running (outside a transaction) when the
	// signal comes: it gets its result, then the FATAL.
	super := superConn(t, ctx)
	running := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, with("application_name=relay_term_running")...))
	result := make(chan error, 1)
	go func() {
		var n int
		err := running.QueryRow(ctx, "SELECT 42 FROM pg_sleep(2)").Scan(&n)
		if err == nil && n != 42 {
			err = errors.New("wrong result")
		}
		result <- err
	}()
	waitActive(t, ctx, super, "relay_term_running", "pg_sleep")

	signalled := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The idle session is told at once.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := idle.PgConn().WaitForNotification(wctx)
	cancel()
	pe := pgErr(err)
	if pe == nil || pe.Code != "57P01" || pe.Severity != "FATAL" {
		t.Fatalf("idle session on SIGTERM: %v, want FATAL 57P01", err)
	}
	if took := time.Since(signalled); took > 5*time.Second {
		t.Errorf("idle session ended %v after SIGTERM", took)
	}

	// The running query completes, then that session is closed.
	if err := <-result; err != nil {
		t.Errorf("query running at SIGTERM: %v, want its result", err)
	}
	wctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	err = running.PgConn().WaitForNotification(wctx)
	cancel()
	if pe := pgErr(err); pe == nil || pe.Code != "57P01" {
		t.Errorf("session after its running query finished during drain: %v, want FATAL 57P01", err)
	}

	// While draining, pgveil is alive but not ready.
	if code, body := adminGet(t, p, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d %q, want 503", code, body)
	}
	if code, _ := adminGet(t, p, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while draining: %d, want 200", code)
	}

	// New connections are refused while draining.
	if c, err := pgx.Connect(ctx, proxyURL(p, harness.SCRAMUser, with("connect_timeout=5")...)); err == nil {
		c.Close(ctx)
		t.Errorf("pgveil accepted a new session while draining")
	}

	// The busy session finishes its transaction.
	select {
	case <-p.Exited():
		t.Fatalf("pgveil exited with a transaction open: %v", p.ExitErr())
	default:
	}
	if _, err := busy.Exec(ctx, "INSERT INTO relay_term VALUES (2)"); err != nil {
		t.Fatalf("busy session during drain: %v", err)
	}
	if _, err := busy.Exec(ctx, "COMMIT"); err != nil {
		t.Fatalf("COMMIT during drain: %v", err)
	}
	// Then it is closed.
	wctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	err = busy.PgConn().WaitForNotification(wctx)
	timedOut := wctx.Err() != nil
	cancel()
	if err == nil || timedOut {
		t.Errorf("busy session after its transaction: %v, want it closed", err)
	} else if pe := pgErr(err); pe != nil && pe.Code != "57P01" {
		t.Errorf("busy session closed with %s, want 57P01 or a plain close", describePgErr(err))
	}

	select {
	case <-p.Exited():
	case <-time.After(20 * time.Second):
		t.Fatalf("pgveil still running 20s after its last session ended")
	}
	if err := p.ExitErr(); err != nil {
		t.Errorf("pgveil exit status after SIGTERM: %v, want 0", err)
	}
	if took := time.Since(signalled); took > 30*time.Second {
		t.Errorf("drain took %v", took)
	}
	var n int
	if err := direct.QueryRow(ctx, "SELECT count(*) FROM relay_term").Scan(&n); err != nil || n != 2 {
		t.Errorf("rows committed during drain: %d %v, want 2", n, err)
	}
	log := p.Log()
	for _, s := range []string{`"msg":"shutting down"`, `"msg":"stopped"`} {
		if !strings.Contains(log, s) {
			t.Errorf("pgveil log lacks %s", s)
		}
	}
}

// TestRelaySIGTERMTimeout: a session that keeps its transaction open past
// proxy.shutdown_timeout is closed (its transaction rolls back on the
// server, its backend ends) and pgveil still exits with status 0.
func TestRelaySIGTERMTimeout(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	super := superConn(t, ctx)
	p := startRelayProxy(t, proxyConf{shutdownTimeout: "1s"})
	busy := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable", "application_name=relay_term_stuck"))
	if _, err := busy.Exec(ctx, "CREATE TEMP TABLE relay_stuck (i int); BEGIN; INSERT INTO relay_stuck VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-time.After(20 * time.Second):
		t.Fatalf("pgveil still running 20s after SIGTERM with shutdown_timeout 1s")
	}
	took := time.Since(signalled)
	if err := p.ExitErr(); err != nil {
		t.Errorf("exit status after a shutdown timeout: %v, want 0", err)
	}
	if took < 900*time.Millisecond || took > 10*time.Second {
		t.Errorf("pgveil exited %v after SIGTERM, want about proxy.shutdown_timeout (1s)", took)
	}
	if _, err := busy.Exec(ctx, "COMMIT"); err == nil {
		t.Errorf("COMMIT succeeded on a session pgveil closed at the shutdown timeout")
	}
	waitBackendGone(t, ctx, super, "relay_term_stuck")
}
