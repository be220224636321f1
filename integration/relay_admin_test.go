package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/integration/harness"
)

// TestRelayAdmin checks the admin endpoint of a running pgveil: /healthz
// and /readyz answer 200 (and /readyz 503 when the upstream is down), and
// /metrics carries the series an operator needs, moving with real traffic:
// connections, bytes and messages each way, server errors by SQLSTATE class
// (28 after a wrong password), and the upstream connect histogram.
func TestRelayAdmin(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startRelayProxy(t, proxyConf{})

	if code, body := adminGet(t, p, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := adminGet(t, p, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d %q", code, body)
	}

	before := scrape(t, p)
	conn := connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=disable"))
	var s string
	if err := conn.QueryRow(ctx, "SELECT repeat('m', 10000)").Scan(&s); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELEC syntax error"); sqlState(err) != "42601" {
		t.Fatalf("syntax error: %v", err)
	}
	conn.Close(ctx)
	_, err := pgx.Connect(ctx, harness.BuildURL(p.Addr, harness.SCRAMUser, "wrong", harness.Database, "sslmode=disable"))
	if sqlState(err) != "28P01" {
		t.Fatalf("wrong password: %v, want 28P01", err)
	}

	var after metrics
	// Counters are published when a relay loop flushes; the session has
	// ended, so everything is in, but scrape until it shows.
	waitFor(t, 10*time.Second, "metrics to count the traffic", func() (bool, error) {
		after = scrape(t, p)
		return after.get(`pgveil_errors_total{class="28",source="server"}`) >= 1 &&
			after.get(`pgveil_bytes_total{direction="server_to_client"}`) > before.get(`pgveil_bytes_total{direction="server_to_client"}`)+10000, nil
	})
	checks := []struct {
		series string
		min    float64
	}{
		{"pgveil_connections_total", 2},
		{`pgveil_bytes_total{direction="client_to_server"}`, 1},
		{`pgveil_bytes_total{direction="server_to_client"}`, 10000},
		{`pgveil_messages_total{direction="client_to_server"}`, 2},
		{`pgveil_messages_total{direction="server_to_client"}`, 4},
		{`pgveil_errors_total{class="28",source="server"}`, 1},
		{`pgveil_errors_total{class="42",source="server"}`, 1},
		{"pgveil_upstream_connect_seconds_count", 2},
		{`pgveil_upstream_connect_seconds_bucket{le="+Inf"}`, 2},
	}
	for _, c := range checks {
		if d := after.get(c.series) - before.get(c.series); d < c.min {
			t.Errorf("%s grew by %v, want at least %v", c.series, d, c.min)
		}
	}
	if got := after.get(`pgveil_errors_total{class="28",source="server"}`) - before.get(`pgveil_errors_total{class="28",source="server"}`); got != 1 {
		t.Errorf(`pgveil_errors_total{class="28",source="server"} grew by %v, want exactly 1`, got)
	}
	for _, name := range []string{"pgveil_connections_open", "pgveil_upstream_connect_seconds_bucket", "pgveil_upstream_connect_seconds_sum"} {
		if !after.has(name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// Values never become labels.
	_, body := adminGet(t, p, "/metrics")
	if strings.Contains(body, "mmmmmmmm") || strings.Contains(body, "SELEC") || strings.Contains(body, "wrong") {
		t.Errorf("/metrics leaks query text or credentials")
	}

	t.Run("readyz upstream down", func(t *testing.T) {
		down := startRelayProxy(t, proxyConf{upstream: closedAddr(t)})
		if code, body := adminGet(t, down, "/readyz"); code != http.StatusServiceUnavailable {
			t.Errorf("/readyz with the upstream down: %d %q, want 503", code, body)
		}
		if code, _ := adminGet(t, down, "/healthz"); code != http.StatusOK {
			t.Errorf("/healthz with the upstream down: %d, want 200", code)
		}
	})
}
