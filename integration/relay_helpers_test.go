package integration

// Helpers of the relay suite (issue 2, "Tests (real parts only)"): every
// TestRelay* test drives the real pgveil binary in front of the package's
// real Postgres cluster with real clients, and compares what a client sees
// through pgveil with what it sees talking to Postgres directly.
//
// Synchronisation is by observation, never by sleeping: a test waits for a
// log line, a pg_stat_activity row or a metric, polling with a short pause
// and a deadline (waitFor).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/pgveil/pgveil/integration/harness"
)

// relayLeakCheck fails the test if it leaves goroutines behind in this
// process. It runs after every cleanup the test registers later (cleanups
// run last-in first-out), so proxies and connections are gone by then.
// Goroutines that existed before the test (the shared cluster's log reader)
// are not counted.
func relayLeakCheck(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

// proxyConf is the part of pgveil's YAML config the relay tests vary.
type proxyConf struct {
	upstream        string // host:port; default the cluster
	upstreamTLS     string // disable | prefer | require | verify-full; default disable
	caFile          string
	serverName      string
	clientTLS       bool // serve TLS with the cluster's certificate
	authMode        string
	serviceURL      string
	maxMessage      string
	shutdownTimeout string
	logLevel        string // default debug
	extra           string // appended verbatim
}

func (c proxyConf) yaml() string {
	var b strings.Builder
	up := c.upstream
	if up == "" {
		up = cluster.Addr()
	}
	tlsMode := c.upstreamTLS
	if tlsMode == "" {
		tlsMode = "disable"
	}
	fmt.Fprintf(&b, "listen: 127.0.0.1:0\nupstream:\n  address: %s\n  tls: %s\n  connect_timeout: 5s\n", up, tlsMode)
	if c.caFile != "" {
		fmt.Fprintf(&b, "  ca_file: %s\n", c.caFile)
	}
	if c.serverName != "" {
		fmt.Fprintf(&b, "  server_name: %s\n", c.serverName)
	}
	if c.serviceURL != "" {
		fmt.Fprintf(&b, "  service_url: %q\n", c.serviceURL)
	}
	if c.clientTLS {
		fmt.Fprintf(&b, "tls:\n  cert_file: %s\n  key_file: %s\n", cluster.Certs.ServerCert, cluster.Certs.ServerKey)
	}
	if c.authMode != "" {
		fmt.Fprintf(&b, "auth:\n  mode: %s\n", c.authMode)
	}
	b.WriteString("admin:\n  listen: 127.0.0.1:0\n")
	level := c.logLevel
	if level == "" {
		level = "debug"
	}
	fmt.Fprintf(&b, "log:\n  level: %s\n  format: json\n", level)
	shutdown := c.shutdownTimeout
	if shutdown == "" {
		shutdown = "30s"
	}
	fmt.Fprintf(&b, "proxy:\n  shutdown_timeout: %s\n", shutdown)
	b.WriteString(eventLoopsSetting())
	if c.maxMessage != "" {
		fmt.Fprintf(&b, "  max_message: %s\n", c.maxMessage)
	}
	b.WriteString(c.extra)
	return b.String()
}

// eventLoopsEnv, when set, is proxy.event_loops for every relay and
// encryption test's proxy: `make test` runs those tests once more with 0,
// so that both relay cores (event loop and goroutines) serve every client
// they test.
const eventLoopsEnv = "PGVEIL_TEST_EVENT_LOOPS"

// eventLoopsSetting is the proxy.event_loops line for eventLoopsEnv (in a
// proxy: section), or nothing.
func eventLoopsSetting() string {
	if n := os.Getenv(eventLoopsEnv); n != "" {
		return "  event_loops: " + n + "\n"
	}
	return ""
}

// checkRelayCore checks, from a debug log, that every session relayed on
// the core it should: goroutines when event loops are off, an event loop
// when on and the config makes every session eligible (plain TCP both
// ways, no tables).
func checkRelayCore(t *testing.T, conf proxyConf, logText string) {
	t.Helper()
	loop := strings.Count(logText, `"msg":"relaying on an event loop"`)
	gor := strings.Count(logText, `"msg":"relaying on goroutines"`)
	ready := strings.Count(logText, `"msg":"session ready"`)
	if loop+gor != ready {
		t.Errorf("%d sessions ready, %d relayed on an event loop, %d on goroutines", ready, loop, gor)
	}
	plain := !conf.clientTLS && (conf.upstreamTLS == "" || conf.upstreamTLS == "disable") && !strings.Contains(conf.extra, "tables:")
	switch {
	case os.Getenv(eventLoopsEnv) == "0" && loop > 0:
		t.Errorf("%d sessions relayed on an event loop with %s=0", loop, eventLoopsEnv)
	case os.Getenv(eventLoopsEnv) != "0" && plain && gor > 0:
		t.Errorf("%d sessions relayed on goroutines, want the event loop for a plain config", gor)
	}
}

// startRelayProxy starts the real pgveil binary with conf and stops it when
// the test ends, failing the test if it does not exit cleanly (status 0).
// On failure the proxy's log is attached to the test output.
func startRelayProxy(t *testing.T, conf proxyConf) *harness.Proxy {
	t.Helper()
	p, err := harness.StartProxy(harness.ProxyOptions{Config: conf.yaml()})
	if err != nil {
		t.Fatalf("starting pgveil: %v", err)
	}
	t.Cleanup(func() {
		// Stop removes the proxy's directory; an open handle keeps the log
		// readable to its last line, written before the process is reaped.
		logFile, err := os.Open(p.LogPath)
		if err != nil {
			t.Errorf("pgveil log: %v", err)
		}
		if err := p.Stop(); err != nil {
			t.Errorf("pgveil did not exit cleanly on SIGTERM: %v", err)
		}
		var logText string
		if logFile != nil {
			b, _ := io.ReadAll(logFile)
			logFile.Close()
			logText = string(b)
		}
		// Every test doubles as a check of the protocol tracker: real
		// clients' traffic must never put it out of step with the server.
		for _, bad := range []string{`"msg":"protocol tracker out of step with the server"`, `"msg":"panic in session; session closed"`} {
			if n := strings.Count(logText, bad); n > 0 {
				t.Errorf("pgveil logged %s %d times", bad, n)
			}
		}
		// Values never reach logs, at any level: no password and none of
		// the values the relay tests send.
		for _, secret := range logSentinels() {
			if strings.Contains(logText, secret) {
				t.Errorf("pgveil's log contains %q", secret)
			}
		}
		if conf.logLevel == "" || conf.logLevel == "debug" {
			checkRelayCore(t, conf, logText)
		}
		if t.Failed() {
			t.Logf("pgveil log:\n%s", tail(logText, 200))
		}
	})
	return p
}

// logSentinels are strings the relay tests send through pgveil that must
// never appear in its log.
func logSentinels() []string {
	out := []string{"héllo wörld", "payload ü", "hello from another session", "partial row", "béta 🐘"}
	for _, pw := range harness.Passwords {
		if pw != "" {
			out = append(out, pw)
		}
	}
	return out
}

// tail keeps the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// proxyURL is a URL for user (with its fixture password) to the app
// database through pgveil.
func proxyURL(p *harness.Proxy, user string, params ...string) string {
	return harness.BuildURL(p.Addr, user, harness.Passwords[user], harness.Database, params...)
}

// directURL is the same URL straight to Postgres.
func directURL(user string, params ...string) string {
	return cluster.URL(user, harness.Database, params...)
}

// testCtx is a context bounded well below the package timeout.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// connectPgx opens a pgx connection and closes it when the test ends.
func connectPgx(t *testing.T, ctx context.Context, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", redact(url), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// connectMode is connectPgx with mode as the connection's default exec
// mode.
func connectMode(t *testing.T, ctx context.Context, url string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = mode
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect %s: %v", redact(url), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

var passwordInURL = regexp.MustCompile(`//([^:/@]+):[^@]*@`)

// redact hides the password of a URL for messages.
func redact(url string) string { return passwordInURL.ReplaceAllString(url, "//$1:***@") }

// superConn is the harness's back door: the superuser over the Unix socket,
// for watching pg_stat_activity.
func superConn(t *testing.T, ctx context.Context) *pgx.Conn {
	t.Helper()
	conn, err := cluster.Connect(ctx, harness.SuperUser, harness.Database)
	if err != nil {
		t.Fatalf("superuser connection: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// waitFor polls cond every 20ms until it reports true, failing the test at
// the deadline. The pause bounds CPU use; the deadline bounds the test.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last error: %v)", timeout, what, lastErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitActive waits until a backend with application_name app runs a query
// containing fragment, and returns its pid.
func waitActive(t *testing.T, ctx context.Context, super *pgx.Conn, app, fragment string) int {
	t.Helper()
	var pid int
	// A query's text shows as active from its Parse on: a driver that
	// prepares first (pgx) shows it during that round trip too, before the
	// query runs. A pg_sleep is waited for in the sleep itself (its wait
	// event), or a signal sent "while it runs" may reach an idle session.
	waitFor(t, 15*time.Second, fmt.Sprintf("backend %q to run %q", app, fragment), func() (bool, error) {
		err := super.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			WHERE application_name = $1 AND state = 'active' AND position($2 in query) > 0
			  AND (position('pg_sleep' in $2) = 0 OR wait_event = 'PgSleep')`, app, fragment).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	})
	return pid
}

// waitBackendGone waits until no backend has application_name app.
func waitBackendGone(t *testing.T, ctx context.Context, super *pgx.Conn, app string) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("backend %q to end", app), func() (bool, error) {
		var n int
		err := super.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n)
		return err == nil && n == 0, err
	})
}

// logCount counts the proxy's JSON log records whose msg is msg.
func logCount(p *harness.Proxy, msg string) int {
	needle := `"msg":"` + msg + `"`
	return strings.Count(p.Log(), needle)
}

// waitLog waits until the proxy has logged msg more than `after` times.
func waitLog(t *testing.T, p *harness.Proxy, msg string, after int) {
	t.Helper()
	waitFor(t, 15*time.Second, fmt.Sprintf("pgveil to log %q", msg), func() (bool, error) {
		return logCount(p, msg) > after, nil
	})
}

// rewriteConfig replaces the running proxy's config file (for SIGHUP).
func rewriteConfig(t *testing.T, p *harness.Proxy, yaml string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.Dir, "pgveil.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
}

// adminGet fetches a path of the admin endpoint without keeping the
// connection alive (no transport goroutines survive the call).
func adminGet(t *testing.T, p *harness.Proxy, path string) (int, string) {
	t.Helper()
	if p.AdminAddr == "" {
		t.Fatal("pgveil has no admin listener")
	}
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + p.AdminAddr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// metrics is a scrape of /metrics: series (name plus sorted labels, as
// exposed) to value.
type metrics map[string]float64

var seriesLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)`)

func scrape(t *testing.T, p *harness.Proxy) metrics {
	t.Helper()
	code, body := adminGet(t, p, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d", code)
	}
	m := metrics{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		g := seriesLine.FindStringSubmatch(line)
		if g == nil {
			continue
		}
		v, err := strconv.ParseFloat(g[3], 64)
		if err != nil {
			continue
		}
		m[g[1]+g[2]] = v
	}
	return m
}

// get returns a series' value; missing series read as 0.
func (m metrics) get(series string) float64 { return m[series] }

// has reports whether any series of the metric family name exists.
func (m metrics) has(name string) bool {
	for k := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			return true
		}
	}
	return false
}

// pgErr extracts the *pgconn.PgError of err, or nil.
func pgErr(err error) *pgconn.PgError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe
	}
	return nil
}

// sqlState is the SQLSTATE of err, or "" if it is not a server error.
func sqlState(err error) string {
	if pe := pgErr(err); pe != nil {
		return pe.Code
	}
	return ""
}

var tempSchema = regexp.MustCompile(`pg_temp_\d+`)

// describePgErr prints every field of a server error, with what differs
// between two sessions of the same server (the temp schema's number)
// normalised, so errors direct and through pgveil can be compared whole.
func describePgErr(err error) string {
	if err == nil {
		return ""
	}
	pe := pgErr(err)
	if pe == nil {
		return "non-server error: " + err.Error()
	}
	s := fmt.Sprintf("%s %s %q detail=%q hint=%q pos=%d ipos=%d iq=%q where=%q schema=%q table=%q column=%q type=%q constraint=%q file=%q line=%d routine=%q",
		pe.Severity, pe.Code, pe.Message, pe.Detail, pe.Hint, pe.Position, pe.InternalPosition, pe.InternalQuery,
		pe.Where, pe.SchemaName, pe.TableName, pe.ColumnName, pe.DataTypeName, pe.ConstraintName, pe.File, pe.Line, pe.Routine)
	return tempSchema.ReplaceAllString(s, "pg_temp_N")
}
