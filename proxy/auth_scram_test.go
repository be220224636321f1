package proxy

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/pgveil/pgveil/integration/harness"
)

// tlsBothLegs is the config fragment for TLS from the client to pgveil and
// from pgveil to Postgres.
func tlsBothLegs(mode string) string {
	c := cluster.Certs
	return fmt.Sprintf(`tls:
  cert_file: %s
  key_file: %s
auth:
  mode: %s
`, c.ServerCert, c.ServerKey, mode)
}

func startTLSProxy(t *testing.T, mode string) *testProxy {
	t.Helper()
	c := cluster.Certs
	extra := tlsBothLegs(mode)
	// Replace the upstream block: TLS verified against the test CA.
	p := startProxyYAML(t, fmt.Sprintf(`listen: 127.0.0.1:0
upstream:
  address: %s
  tls: verify-full
  ca_file: %s
  server_name: localhost
  service_url: %s
admin:
  listen: ""
%s`, cluster.Addr(), c.CACert, cluster.SocketURL(harness.SuperUser, "postgres"), extra))
	return p
}

func (p *testProxy) tlsURL(user, password string, params ...string) string {
	return harness.BuildURL(p.addr, user, password, harness.Database,
		append([]string{"sslmode=verify-full", "sslrootcert=" + cluster.Certs.CACert}, params...)...)
}

// TestRelayModeCannotServeChannelBindingPrefer documents why auth.mode
// scram exists: with TLS on both legs, a client that prefers channel
// binding answers pgveil's offer (without -PLUS) with the gs2 flag "y",
// and Postgres, which supports channel binding, rejects the downgrade.
func TestRelayModeCannotServeChannelBindingPrefer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startTLSProxy(t, "relay")
	defer p.stop(t, 10e9)
	ctx := context.Background()
	_, err := pgx.Connect(ctx, p.tlsURL(harness.SCRAMUser, harness.SCRAMPass, "channel_binding=prefer"))
	if err == nil {
		t.Fatal("relay mode with TLS on both legs served channel_binding=prefer; the scram mode test would prove nothing")
	}
	// channel_binding=disable works in relay mode.
	conn, err := pgx.Connect(ctx, p.tlsURL(harness.SCRAMUser, harness.SCRAMPass, "channel_binding=disable"))
	if err != nil {
		t.Fatalf("relay mode, channel_binding=disable: %v", err)
	}
	conn.Close(ctx)
}

// TestSCRAMModeChannelBinding: auth.mode scram serves exactly the case relay
// cannot, for pgx and libpq (psql), and md5 roles too.
func TestSCRAMModeChannelBinding(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startTLSProxy(t, "scram")
	defer p.stop(t, 10e9)
	ctx := context.Background()
	for _, tc := range []struct{ user, pass, cb string }{
		{harness.SCRAMUser, harness.SCRAMPass, "prefer"},
		{harness.SCRAMUser, harness.SCRAMPass, "require"},
		{harness.SCRAMUser, harness.SCRAMPass, "disable"},
		{harness.MD5User, harness.MD5Pass, "disable"},
	} {
		conn, err := pgx.Connect(ctx, p.tlsURL(tc.user, tc.pass, "channel_binding="+tc.cb))
		if err != nil {
			t.Fatalf("%s channel_binding=%s: %v", tc.user, tc.cb, err)
		}
		var who string
		var ssl bool
		if err := conn.QueryRow(ctx, "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&who, &ssl); err != nil {
			t.Fatal(err)
		}
		if who != tc.user || !ssl {
			t.Fatalf("logged in as %q ssl=%v", who, ssl)
		}
		conn.Close(ctx)
	}
	// A wrong password gets Postgres's own wording and SQLSTATE.
	for _, user := range []string{harness.SCRAMUser, harness.MD5User, "no_such_role"} {
		_, err := pgx.Connect(ctx, p.tlsURL(user, "wrong", "channel_binding=prefer"))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" || !strings.Contains(pe.Message, "password authentication failed") {
			t.Fatalf("%s wrong password: %v", user, err)
		}
	}
	// libpq 15 (psql) prefers channel binding by default.
	psql := psqlPath(t)
	out, err := exec.Command(psql, p.tlsURL(harness.SCRAMUser, harness.SCRAMPass, "channel_binding=require"), "-XAtc", "select current_user").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != harness.SCRAMUser {
		t.Fatalf("psql channel_binding=require through scram mode: %v\n%s", err, out)
	}
}

func psqlPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("psql"); err == nil {
		return p
	}
	p := filepath.Join(cluster.BinDir, "psql")
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("psql not found: install postgresql-client")
	}
	return p
}

// TestRelayPlainClientTLSUpstream: a client without TLS in front of an
// upstream with TLS must not be offered SCRAM-SHA-256-PLUS (libpq refuses
// such an offer); SCRAM without channel binding works.
func TestRelayPlainClientTLSUpstream(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := startProxyYAML(t, fmt.Sprintf("listen: 127.0.0.1:0\nupstream:\n  address: %s\n  tls: require\nadmin:\n  listen: \"\"\n", cluster.Addr()))
	defer p.stop(t, 10e9)
	out, err := exec.Command(psqlPath(t), p.url(), "-XAtc", "select current_user").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != harness.SCRAMUser {
		t.Fatalf("psql, plain client, TLS upstream: %v\n%s", err, out)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.url())
	if err != nil {
		t.Fatalf("pgx: %v", err)
	}
	conn.Close(ctx)
}
