package integration

import (
	"context"
	"testing"
	"time"
)

// TestEncLogStall: pgveil's stderr stops draining (a container log driver
// or journald that fell behind). Sessions go on: statements refused on
// the event loop, each logged at Info, keep being answered; a new session
// encrypts and decrypts; /metrics counts the log lines dropped. Once
// stderr drains, pgveil reports the drop in its log.
func TestEncLogStall(t *testing.T) {
	const org = 9301
	p := startEncProxyLog(t, "  level: debug\n  format: json\n  buffer: 4096\n", org)
	ctx := testCtx(t, 2*time.Minute)
	conn := connectPgx(t, ctx, p.url())
	const like = "stall-secret-4471"
	p.remember(like)
	if got := scrape(t, p.Proxy).get("pgveil_log_lines_dropped_total"); got != 0 {
		t.Fatalf("%v lines dropped before the stall", got)
	}

	resume := p.PauseLog()
	defer resume()
	// Each refusal logs a line of about 250 bytes: 3000 are several times
	// what the pipe (64 KiB) and log.buffer (4 KiB) hold. Were a write to
	// stderr to wait, the session would stop within the first few hundred.
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for i := range 3000 {
		if _, err := conn.Exec(qctx, "SELECT id FROM users WHERE email LIKE '"+like+"%'"); sqlState(err) != "0A000" {
			t.Fatalf("refusal %d while stderr is stalled: %v, want 0A000", i, err)
		}
	}
	conn2 := connectPgx(t, qctx, p.url())
	const email = "stall-user-4472@example.com"
	p.remember(email)
	if _, err := conn2.Exec(qctx, "INSERT INTO users (org_id, name, email) VALUES ($1, 'stall', $2)", int64(org), email); err != nil {
		t.Fatalf("encrypted insert while stderr is stalled: %v", err)
	}
	var got string
	if err := conn2.QueryRow(qctx, "SELECT email FROM users WHERE email = $1", email).Scan(&got); err != nil || got != email {
		t.Fatalf("lookup while stderr is stalled: %q %v", got, err)
	}
	dropped := scrape(t, p.Proxy).get("pgveil_log_lines_dropped_total")
	if dropped < 1000 {
		t.Fatalf("pgveil_log_lines_dropped_total = %v with stderr stalled through 3000 refusals", dropped)
	}

	resume()
	waitLog(t, p.Proxy, "log lines dropped: stderr did not take them fast enough (log.buffer)", 0)
	// The session logs again once stderr drains.
	n := logCount(p.Proxy, "statement refused")
	if _, err := conn.Exec(ctx, "SELECT id FROM users WHERE email LIKE '"+like+"%'"); sqlState(err) != "0A000" {
		t.Fatalf("refusal after the stall: %v", err)
	}
	waitLog(t, p.Proxy, "statement refused", n)
}
