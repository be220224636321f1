package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/integration/harness"
)

// clientTLSModes are the libpq sslmodes a client uses towards pgveil.
func clientTLSModes() []struct{ name, params string } {
	return []struct{ name, params string }{
		{"require", "sslmode=require"},
		{"verify-full", "sslmode=verify-full&sslrootcert=" + cluster.Certs.CACert},
	}
}

// upstreamSSL reports pg_stat_ssl.ssl for the session's own backend: whether
// the pgveil→Postgres leg is encrypted.
func upstreamSSL(t *testing.T, ctx context.Context, conn *pgx.Conn) bool {
	t.Helper()
	var ssl bool
	if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
		t.Fatalf("pg_stat_ssl: %v", err)
	}
	return ssl
}

// clientTLSVersion is the TLS version of the client→pgveil leg, 0 if none.
func clientTLSVersion(conn *pgx.Conn) uint16 {
	if tc, ok := conn.PgConn().Conn().(*tls.Conn); ok {
		return tc.ConnectionState().Version
	}
	return 0
}

// TestRelayTLS covers client-facing TLS (pgveil's own certificate, verified
// by the client with sslmode=verify-full) combined with every upstream.tls
// mode, checked from both ends: the client's connection is TLS 1.2+, and
// Postgres's pg_stat_ssl shows whether the upstream leg is encrypted. Every
// authentication method works through TLS to pgveil; a wrong password
// yields the server's own 28P01; SCRAM works with TLS on both legs when the
// client does not ask for channel binding.
func TestRelayTLS(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, 2*time.Minute)

	upstreams := []struct {
		name    string
		conf    proxyConf
		encrypt bool
	}{
		{"upstream disable", proxyConf{clientTLS: true, upstreamTLS: "disable"}, false},
		{"upstream prefer", proxyConf{clientTLS: true, upstreamTLS: "prefer"}, true},
		{"upstream require", proxyConf{clientTLS: true, upstreamTLS: "require"}, true},
		{"upstream verify-full 127.0.0.1", proxyConf{clientTLS: true, upstreamTLS: "verify-full", caFile: cluster.Certs.CACert, serverName: "127.0.0.1"}, true},
		{"upstream verify-full localhost", proxyConf{clientTLS: true, upstreamTLS: "verify-full", caFile: cluster.Certs.CACert, serverName: "localhost"}, true},
		{"upstream verify-full default name", proxyConf{clientTLS: true, upstreamTLS: "verify-full", caFile: cluster.Certs.CACert}, true},
	}
	for _, up := range upstreams {
		t.Run(up.name, func(t *testing.T) {
			p := startRelayProxy(t, up.conf)
			for _, cm := range clientTLSModes() {
				for _, user := range []string{harness.SCRAMUser, harness.MD5User, harness.TrustUser} {
					// With TLS on both legs, relay mode serves SCRAM only
					// without channel binding (see TestRelayTLSChannelBindingSCRAMMode).
					conn := connectPgx(t, ctx, proxyURL(p, user, cm.params, "channel_binding=disable"))
					if v := clientTLSVersion(conn); v < tls.VersionTLS12 {
						t.Errorf("%s %s: client leg TLS version %#x, want TLS 1.2 or later", cm.name, user, v)
					}
					if got := upstreamSSL(t, ctx, conn); got != up.encrypt {
						t.Errorf("%s %s: pg_stat_ssl.ssl = %v, want %v", cm.name, user, got, up.encrypt)
					}
					var who string
					if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != user {
						t.Errorf("%s: current_user %q %v, want %q", cm.name, who, err, user)
					}
					conn.Close(ctx)
				}
			}
		})
	}

	t.Run("upstream verify-full wrong name", func(t *testing.T) {
		p := startRelayProxy(t, proxyConf{clientTLS: true, upstreamTLS: "verify-full", caFile: cluster.Certs.CACert, serverName: "wrong.example"})
		_, err := pgx.Connect(ctx, proxyURL(p, harness.TrustUser, "sslmode=require"))
		if code := sqlState(err); code != "08001" && code != "08006" {
			t.Errorf("upstream certificate for another name: %v, want SQLSTATE 08001 or 08006", err)
		}
		waitLog(t, p, "upstream unreachable", 0)
	})

	// PostgreSQL 17's direct TLS (sslnegotiation=direct): the first bytes
	// are a ClientHello with ALPN "postgresql", no SSLRequest.
	t.Run("direct tls", func(t *testing.T) {
		p := startRelayProxy(t, proxyConf{clientTLS: true, upstreamTLS: "require"})
		conn := connectPgx(t, ctx, proxyURL(p, harness.MD5User, "sslmode=verify-full", "sslrootcert="+cluster.Certs.CACert, "sslnegotiation=direct"))
		if clientTLSVersion(conn) < tls.VersionTLS12 || !upstreamSSL(t, ctx, conn) {
			t.Errorf("direct TLS: client TLS %#x, upstream ssl %v", clientTLSVersion(conn), upstreamSSL(t, ctx, conn))
		}
		// Large results through TLS on both legs.
		var n int64
		var s string
		if err := conn.QueryRow(ctx, "SELECT sum(g), repeat('t', 1 << 20) FROM generate_series(1, 100000) g").Scan(&n, &s); err != nil || n != 5000050000 || len(s) != 1<<20 {
			t.Errorf("large result over TLS: %d %d %v", n, len(s), err)
		}
	})

	t.Run("no tls configured", func(t *testing.T) {
		p := startRelayProxy(t, proxyConf{})
		if conn, err := pgx.Connect(ctx, proxyURL(p, harness.TrustUser, "sslmode=require")); err == nil {
			conn.Close(ctx)
			t.Errorf("sslmode=require succeeded against pgveil without tls")
		}
		conn := connectPgx(t, ctx, proxyURL(p, harness.TrustUser, "sslmode=prefer"))
		if clientTLSVersion(conn) != 0 {
			t.Errorf("sslmode=prefer negotiated TLS with pgveil that has none")
		}
	})

	// Every authentication method through TLS to pgveil, upstream in the
	// clear, with the client's default channel_binding (prefer).
	t.Run("auth methods", func(t *testing.T) {
		p := startRelayProxy(t, proxyConf{clientTLS: true, upstreamTLS: "disable"})
		for _, user := range []string{harness.SCRAMUser, harness.MD5User, harness.PasswordUser, harness.TrustUser} {
			for _, cm := range clientTLSModes() {
				t.Run(user+" "+cm.name, func(t *testing.T) {
					conn := connectPgx(t, ctx, proxyURL(p, user, cm.params))
					var who string
					var ssl bool
					if err := conn.QueryRow(ctx, "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&who, &ssl); err != nil {
						t.Fatal(err)
					}
					if who != user || ssl || clientTLSVersion(conn) < tls.VersionTLS12 {
						t.Errorf("user %q upstream ssl %v client TLS %#x", who, ssl, clientTLSVersion(conn))
					}
				})
			}
		}
		// libpq (psql) with verify-full against pgveil's certificate.
		for _, user := range []string{harness.SCRAMUser, harness.MD5User, harness.PasswordUser} {
			res := runPsql(t, ctx, proxyURL(p, user, clientTLSModes()[1].params), nil, nil,
				"-A", "-t", "-c", "SELECT current_user || ' ' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
			if res.Code != 0 || strings.TrimSpace(res.Stdout) != user+" false" {
				t.Errorf("psql %s verify-full through pgveil: exit %d stdout %q stderr %q", user, res.Code, res.Stdout, res.Stderr)
			}
		}
	})

	// A wrong password gets the server's own error, field for field.
	t.Run("wrong password", func(t *testing.T) {
		p := startRelayProxy(t, proxyConf{clientTLS: true, upstreamTLS: "disable"})
		for _, user := range []string{harness.SCRAMUser, harness.MD5User, harness.PasswordUser} {
			_, derr := pgx.Connect(ctx, harness.BuildURL(cluster.Addr(), user, "wrong", harness.Database, "sslmode=require"))
			_, perr := pgx.Connect(ctx, harness.BuildURL(p.Addr, user, "wrong", harness.Database, "sslmode=require"))
			if sqlState(perr) != "28P01" {
				t.Errorf("%s wrong password through pgveil: %v, want the server's 28P01", user, perr)
			}
			if describePgErr(derr) != describePgErr(perr) {
				t.Errorf("%s wrong password through pgveil differs from direct\n direct: %s\n pgveil: %s", user, describePgErr(derr), describePgErr(perr))
			}
		}
		// And pgveil goes on serving the same user with the right password.
		connectPgx(t, ctx, proxyURL(p, harness.SCRAMUser, "sslmode=require"))
	})
}

// TestRelayTLSChannelBindingSCRAMMode is the case that forces auth.mode
// scram (DESIGN.md "Authentication and TLS"): TLS on both legs and a client
// that uses channel binding when offered (channel_binding=prefer, the
// default of libpq 14+ and pgx) or insists on it (require). pgveil must
// authenticate the client itself with SCRAM-SHA-256-PLUS bound to its own
// certificate and log in upstream with the recovered ClientKey.
func TestRelayTLSChannelBindingSCRAMMode(t *testing.T) {
	relayLeakCheck(t)
	ctx := testCtx(t, time.Minute)
	p := startRelayProxy(t, proxyConf{
		clientTLS:   true,
		upstreamTLS: "verify-full", caFile: cluster.Certs.CACert, serverName: "127.0.0.1",
		authMode:   "scram",
		serviceURL: directURL(harness.SuperUser, "sslmode=disable"),
	})
	for _, cb := range []string{"prefer", "require"} {
		for _, cm := range clientTLSModes() {
			t.Run(fmt.Sprintf("pgx channel_binding=%s %s", cb, cm.name), func(t *testing.T) {
				conn, err := pgx.Connect(ctx, proxyURL(p, harness.SCRAMUser, cm.params, "channel_binding="+cb))
				if err != nil {
					t.Fatalf("SCRAM with channel_binding=%s and TLS on both legs: %v", cb, err)
				}
				defer conn.Close(ctx)
				if !upstreamSSL(t, ctx, conn) {
					t.Errorf("upstream leg not encrypted")
				}
			})
		}
		t.Run("psql channel_binding="+cb, func(t *testing.T) {
			res := runPsql(t, ctx, proxyURL(p, harness.SCRAMUser, clientTLSModes()[1].params, "channel_binding="+cb), nil, nil,
				"-A", "-t", "-c", "SELECT current_user || ' ' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
			if res.Code != 0 || strings.TrimSpace(res.Stdout) != harness.SCRAMUser+" true" {
				t.Errorf("psql channel_binding=%s through pgveil (auth.mode scram): exit %d stdout %q stderr %q", cb, res.Code, res.Stdout, res.Stderr)
			}
		})
	}
	t.Run("md5 verifier", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, proxyURL(p, harness.MD5User, clientTLSModes()[1].params))
		if err != nil {
			t.Fatalf("md5 user through auth.mode scram: %v", err)
		}
		conn.Close(ctx)
	})
	t.Run("wrong password", func(t *testing.T) {
		_, err := pgx.Connect(ctx, harness.BuildURL(p.Addr, harness.SCRAMUser, "wrong", harness.Database, clientTLSModes()[1].params))
		if sqlState(err) != "28P01" {
			t.Errorf("wrong password through auth.mode scram: %v, want 28P01", err)
		}
	})
}
