package proxy

// Adversarial review of the startup and authentication path (startup.go,
// auth.go, auth_scram.go, scram/, client and upstream TLS, CancelRequest,
// the limits before authentication), against PostgreSQL 15 as the
// reference for every expectation.
//
// Failing at the time of the review (defects):
//
//   FIXED: tls.mode: require refuses a client without TLS (28000, "no
//   encryption", as hostnossl … reject does; the test now sets it), and
//   by default pgveil no longer relays a cleartext password request over
//   a plaintext client leg from a non-loopback address when its own leg
//   to the server is encrypted (cleartextGuard, TestCleartextGuard).
//   TestAuthReviewFoundPlaintextClientPassesHostSSL HIGH (downgrade;
//       plaintext credentials): pgveil has no way to require TLS from its
//       clients, and it always presents its own TLS leg to the server. A
//       role that pg_hba.conf restricts to TLS ("hostssl … password",
//       "hostnossl … reject") connects through pgveil over a plaintext
//       client leg: the server, seeing TLS, asks for the cleartext password,
//       and pgveil relays that request to the plaintext client, which sends
//       its password in the clear. Directly, the server refuses the
//       plaintext connection before any password is asked. With libpq's
//       default sslmode=prefer, an active attacker in front of pgveil who
//       answers the client's SSLRequest with 'N' harvests the password
//       (pgveil without a tls block answers 'N' itself). Should: a setting
//       that refuses plaintext clients (PgBouncer: client_tls_sslmode), at
//       least whenever the upstream leg is encrypted and pgveil has a
//       certificate; or never relay AuthenticationCleartextPassword to a
//       plaintext client when the upstream leg is TLS. Cause:
//       startup.go session.startup accepts a StartupMessage without TLS
//       whatever the config; policy has no key to forbid it.
//
//   TestAuthReviewFoundNoAuthenticationTimeout MEDIUM (resource exhaustion
//       with no effort): startup() sets a one-minute deadline on the client
//       connection ("so a client that connects and says nothing cannot hold
//       a session forever") and clears it on return, before authenticate().
//       A client that sends its StartupMessage and then never answers the
//       authentication request is waited for forever: relay mode blocks in
//       relayClientAuthResponse, scram mode in verifyClient/readAuthResponse.
//       Postgres bounds the whole exchange with authentication_timeout (and
//       in relay mode closes its own side after it, but pgveil keeps waiting
//       on the client). Each such client holds a goroutine, a file
//       descriptor and pgveil's session, with no connection limit: enough of
//       them exhaust pgveil's descriptors (accept fails for everyone). Cause:
//       startup.go session.startup (defer SetDeadline(time.Time{})) and
//       auth.go session.authenticate (no deadline).
//
//   TestAuthReviewFoundUpstreamOkWithoutServerSignature MEDIUM (channel
//       binding downgrade on the upstream leg): in auth.mode scram,
//       loginUpstream accepts AuthenticationOk in the middle of its SASL
//       exchange with the server, before any AuthenticationSASLFinal, so
//       the server's signature is never checked, against the contract of
//       scram.Client ("Only after Verify returns nil has the server proved
//       it holds the verifier; AuthenticationOk must not be trusted
//       before"). With upstream.tls require (or prefer), a man in the
//       middle cannot relay pgveil's SCRAM-SHA-256-PLUS exchange (the
//       binding names its own certificate) — that is what channel binding
//       is for — but it need not: it answers AuthenticationOk and the
//       session runs against it. libpq with channel_binding=require refuses
//       exactly this. Should: refuse AuthenticationOk unless the SASL
//       exchange it started completed with a verified server signature (and
//       refuse a server that skips SASL after offering -PLUS). Cause:
//       auth_scram.go session.loginUpstream, case authOK.
//
//   TestAuthReviewFoundMockSaltRevealsMissingRole MEDIUM (role
//       enumeration): for a role that does not exist (or has no password),
//       scram.NewServer builds a fresh MockVerifier with a new random
//       secret and an empty user name for every connection, so the salt in
//       server-first-message changes from one attempt to the next, while a
//       real role's salt never changes. Two unauthenticated connections
//       tell whether any role name exists. Postgres derives its mock salt
//       from the name and a per-cluster nonce (scram_mock_salt): stable per
//       name. The MockVerifier comment promises exactly that ("a random
//       value the proxy keeps for its lifetime") but nothing keeps it.
//       Cause: scram/server.go NewServer (MockVerifier("", fresh secret)),
//       called from auth_scram.go session.verifyClient.
//
//   TestAuthReviewFoundAuthTokenLimitBelowPostgres LOW (legit clients
//       refused): proxy.max_startup_message (10000) bounds every message
//       before authentication, documented "as Postgres". Postgres bounds
//       the StartupMessage by 10000 but password, SASL and GSSAPI/SSPI
//       responses by PG_MAX_AUTH_TOKEN_LENGTH (65535). A Kerberos ticket of
//       an Active Directory user in many groups easily exceeds 10 kB: in
//       relay mode pgveil ends such a login with 54000 where Postgres would
//       authenticate it. Cause: auth.go session.relayClientAuthResponse
//       (reader bounded by MaxStartupMessage, session.go setClientConn).
//
//   TestAuthReviewFoundGSSENCAfterTLS LOW (differs from Postgres): a
//       GSSENCRequest on a connection already encrypted with TLS is
//       answered 'N' (inside TLS) and the negotiation goes on; Postgres
//       treats encryption as negotiated once TLS is up and ends the
//       connection (FATAL 08P01 "unsupported frontend protocol
//       1234.5680"). No security effect found (the answer travels inside
//       TLS). Cause: startup.go session.startup, case codeGSSENCRequest
//       (no s.clientTLS check, unlike codeSSLRequest).
//
// Attacks withstood: TestAuthReviewHolds* (SCRAM downgrade "y" over TLS,
// wrong channel-binding data, replayed client-final, proof made with another
// role's password, mandatory extension, user-name injection into
// auth_query, roles without a password or missing, TLS < 1.2, bytes
// pipelined after SSLRequest, SSLRequest twice, upstream verify-full with a
// wrong name or CA, forged CancelRequest, silent clients not blocking
// others, protocol 3.x minor negotiation, missing user).

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/integration/harness"
	"github.com/pgveil/pgveil/proxy/scram"
)

// ---------------------------------------------------------------- helpers

// arStartupPacket is a StartupMessage with protocol code and key/value pairs.
func arStartupPacket(code uint32, kv ...string) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[4:], code)
	for _, s := range kv {
		b = append(append(b, s...), 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

func arStartup(user string) []byte {
	return arStartupPacket(codeProtocol3, "user", user, "database", harness.Database)
}

// arRead reads one typed message.
func arRead(r io.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(h[1:])) - 4
	if n < 0 || n > 1<<24 {
		return 0, nil, fmt.Errorf("bad length %d", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return h[0], body, nil
}

func arMsg(typ byte, body []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)+4))
	return append(b, body...)
}

// arSASLInitial is a SASLInitialResponse body.
func arSASLInitial(mech string, data []byte) []byte {
	b := append([]byte(mech), 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// arConn is a raw client connection with a reader.
type arConn struct {
	net.Conn
	r *bufio.Reader
	t *testing.T
}

func (c *arConn) send(b []byte) {
	c.t.Helper()
	if _, err := c.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *arConn) read() (byte, []byte) {
	c.t.Helper()
	typ, body, err := arRead(c.r)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return typ, body
}

// expectAuth reads an AuthenticationXXX message with code and returns its data.
func (c *arConn) expectAuth(code uint32) []byte {
	c.t.Helper()
	typ, body := c.read()
	if typ == 'E' {
		c.t.Fatalf("want authentication request %d, got error %s %s", code, errorField(body, 'C'), errorField(body, 'M'))
	}
	if typ != 'R' || len(body) < 4 || binary.BigEndian.Uint32(body) != code {
		c.t.Fatalf("want authentication request %d, got %q %q", code, typ, body)
	}
	return body[4:]
}

// expectError reads messages until an ErrorResponse and returns its SQLSTATE
// and message; it fails the test on ReadyForQuery.
func (c *arConn) expectError() (string, string) {
	c.t.Helper()
	for {
		typ, body := c.read()
		switch typ {
		case 'E':
			return errorField(body, 'C'), errorField(body, 'M')
		case 'Z':
			c.t.Fatal("logged in; want an ErrorResponse")
		}
	}
}

func arDial(t *testing.T, addr string) *arConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &arConn{Conn: c, r: bufio.NewReader(c), t: t}
}

func arCAPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA")
	}
	return pool
}

// arDialTLS connects, negotiates TLS with SSLRequest and returns the
// connection and pgveil's tls-server-end-point data.
func arDialTLS(t *testing.T, addr string) (*arConn, []byte) {
	t.Helper()
	raw := arDial(t, addr)
	raw.send(sslRequest)
	var a [1]byte
	if _, err := io.ReadFull(raw.r, a[:]); err != nil || a[0] != 'S' {
		t.Fatalf("SSLRequest answered %q %v", a[0], err)
	}
	tc := tls.Client(raw.Conn, &tls.Config{RootCAs: arCAPool(t, cluster.Certs.CACert), ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	cb, err := scram.TLSServerEndPoint(tc.ConnectionState().PeerCertificates[0])
	if err != nil {
		t.Fatal(err)
	}
	return &arConn{Conn: tc, r: bufio.NewReader(tc), t: t}, cb
}

// arServerFirstSalt runs the first half of a SCRAM exchange for user and
// returns the s= attribute of server-first-message.
func arServerFirstSalt(t *testing.T, addr, user string) string {
	t.Helper()
	c := arDial(t, addr)
	defer c.Close()
	c.send(arStartup(user))
	mechs := c.expectAuth(authSASL)
	if !strings.Contains(string(mechs), scram.MechanismSCRAM) {
		t.Fatalf("no SCRAM offered: %q", mechs)
	}
	c.send(arMsg('p', arSASLInitial(scram.MechanismSCRAM, []byte("n,,n=,r=reviewnonce0123456789"))))
	first := string(c.expectAuth(authSASLContinue))
	for _, attr := range strings.Split(first, ",") {
		if strings.HasPrefix(attr, "s=") {
			return attr[2:]
		}
	}
	t.Fatalf("no salt in %q", first)
	return ""
}

func startSCRAMProxy(t *testing.T, upstream string) *testProxy {
	t.Helper()
	return startProxyYAML(t, fmt.Sprintf(`listen: 127.0.0.1:0
upstream:
  address: %s
  tls: disable
  service_url: %s
admin:
  listen: ""
%s`, upstream, cluster.SocketURL(harness.SuperUser, "postgres"), tlsBothLegs("scram")))
}

// fakeUpstream accepts one connection on a free port and runs serve on it.
type fakeUpstream struct {
	ln   net.Listener
	done chan error
}

func startFakeUpstream(t *testing.T, serve func(net.Conn) error) *fakeUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUpstream{ln: ln, done: make(chan error, 1)}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			f.done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		f.done <- serve(c)
	}()
	return f
}

func (f *fakeUpstream) addr() string { return f.ln.Addr().String() }

func (f *fakeUpstream) close() error {
	f.ln.Close()
	return <-f.done
}

// readStartup reads an untyped startup packet.
func readUntyped(r io.Reader) ([]byte, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(lb[:]))
	if n < 8 || n > 10000 {
		return nil, fmt.Errorf("startup length %d", n)
	}
	b := make([]byte, n)
	copy(b, lb[:])
	_, err := io.ReadFull(r, b[4:])
	return b, err
}

// ---------------------------------------------------------------- defects

// TestAuthReviewFoundPlaintextClientPassesHostSSL: see the file comment.
func TestAuthReviewFoundPlaintextClientPassesHostSSL(t *testing.T) {
	ctx := context.Background()
	const role, pass = "review_ssl_only", "ssl-only-secret"
	admin := adminConn(t)
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN PASSWORD '"+pass+"'"); err != nil {
		t.Fatal(err)
	}
	hba := filepath.Join(cluster.Dir, "data", "pg_hba.conf")
	orig, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	rules := "hostssl all " + role + " 127.0.0.1/32 password\nhostnossl all " + role + " 127.0.0.1/32 reject\n"
	if err := os.WriteFile(hba, append([]byte(rules), orig...), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.WriteFile(hba, orig, 0o600)
		c, err := cluster.Connect(ctx, harness.SuperUser, "postgres")
		if err == nil {
			c.Exec(ctx, "SELECT pg_reload_conf()")
			c.Exec(ctx, "DROP ROLE IF EXISTS "+role)
			c.Close(ctx)
		}
	})
	if _, err := admin.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	direct := harness.BuildURL(cluster.Addr(), role, pass, harness.Database, "sslmode=disable")
	// Baseline, Postgres alone: the plaintext connection is rejected before
	// any password is asked (polling until the reload took effect).
	waitFor(t, func() bool {
		c, err := pgx.Connect(ctx, direct)
		if err == nil {
			c.Close(ctx)
			return false
		}
		return strings.Contains(err.Error(), "no encryption")
	})

	// pgveil with a certificate and a TLS upstream leg (the recommended set-up).
	p := startProxyYAML(t, fmt.Sprintf(`listen: 127.0.0.1:0
upstream:
  address: %s
  tls: verify-full
  ca_file: %s
  server_name: localhost
admin:
  listen: ""
tls:
  cert_file: %s
  key_file: %s
  mode: require
`, cluster.Addr(), cluster.Certs.CACert, cluster.Certs.ServerCert, cluster.Certs.ServerKey))
	defer p.stop(t, 10*time.Second)

	c := arDial(t, p.addr) // no SSLRequest: a plaintext client leg
	c.send(arStartup(role))
	typ, body := c.read()
	if typ == 'R' && binary.BigEndian.Uint32(body) == authCleartextPassword {
		c.send(arMsg('p', []byte(pass+"\x00")))
		for {
			typ, body = c.read()
			if typ == 'E' || typ == 'Z' {
				break
			}
		}
		t.Errorf("a role pg_hba.conf restricts to TLS was asked for its cleartext password over pgveil's plaintext client leg "+
			"(and the login ended with %q %s): the password crossed the network unencrypted; Postgres alone refuses the plaintext connection",
			typ, errorField(body, 'M'))
		c.Close()
		return
	}
	if typ != 'E' {
		t.Fatalf("unexpected %q %q", typ, body)
	}
	c.Close()
}

// deadlineConn records the read deadline in force at each Read, and how
// many Writes had happened before it.
type deadlineConn struct {
	net.Conn
	mu     sync.Mutex
	rd     time.Time
	writes int
	reads  []readRecord
}

type readRecord struct {
	writesBefore int
	deadline     time.Time
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rd = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rd = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	c.reads = append(c.reads, readRecord{c.writes, c.rd})
	c.mu.Unlock()
	return c.Conn.Read(b)
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// TestAuthReviewFoundNoAuthenticationTimeout: see the file comment. The
// session runs on an in-memory connection whose deadlines are recorded:
// once pgveil has sent the authentication request, its read of the
// client's answer must carry a deadline (at most
// proxy.authentication_timeout away).
func TestAuthReviewFoundNoAuthenticationTimeout(t *testing.T) {
	p := startProxy(t, "")
	defer p.stop(t, 10*time.Second)
	client, server := net.Pipe()
	dc := &deadlineConn{Conn: server}
	sess := p.srv.newSession(dc)
	ran := make(chan struct{})
	go func() { defer close(ran); sess.run() }()
	defer func() { client.Close(); <-ran }()

	client.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := client.Write(arStartup(harness.SCRAMUser)); err != nil {
		t.Fatal(err)
	}
	typ, body, err := arRead(client)
	if err != nil || typ != 'R' || binary.BigEndian.Uint32(body) != authSASL {
		t.Fatalf("want AuthenticationSASL relayed, got %q %v", typ, err)
	}
	// The client now says nothing. Wait for pgveil to block reading it.
	var rec readRecord
	waitFor(t, func() bool {
		dc.mu.Lock()
		defer dc.mu.Unlock()
		for _, r := range dc.reads {
			if r.writesBefore > 0 {
				rec = r
				return true
			}
		}
		return false
	})
	if rec.deadline.IsZero() {
		t.Errorf("pgveil waits for the client's authentication response with no deadline: a client that sends its StartupMessage and then nothing holds its session forever (startup's one-minute deadline is cleared before authenticate)")
	} else if d := time.Until(rec.deadline); d > p.srv.Config().Proxy.AuthenticationTimeout {
		t.Errorf("authentication read deadline %v away, more than proxy.authentication_timeout", d)
	}
}

// TestAuthReviewFoundUpstreamOkWithoutServerSignature: see the file
// comment. The fake upstream speaks TLS (upstream.tls require), offers
// SCRAM-SHA-256-PLUS as Postgres does, and answers pgveil's
// SASLInitialResponse with AuthenticationOk: a man in the middle that never
// saw the role's verifier.
func TestAuthReviewFoundUpstreamOkWithoutServerSignature(t *testing.T) {
	cert, err := tls.LoadX509KeyPair(cluster.Certs.ServerCert, cluster.Certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	var gotMech string
	fake := startFakeUpstream(t, func(raw net.Conn) error {
		req, err := readUntyped(raw)
		if err != nil || binary.BigEndian.Uint32(req[4:]) != codeSSLRequest {
			return fmt.Errorf("want SSLRequest: %v", err)
		}
		raw.Write([]byte{'S'})
		c := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert}})
		r := bufio.NewReader(c)
		if _, err := readUntyped(r); err != nil {
			return err
		}
		c.Write(arMsg('R', []byte("\x00\x00\x00\x0aSCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00")))
		typ, body, err := arRead(r)
		if err != nil || typ != 'p' {
			return fmt.Errorf("want SASLInitialResponse: %q %v", typ, err)
		}
		gotMech, _, _ = cstring(body, 0)
		var out []byte
		out = append(out, arMsg('R', []byte{0, 0, 0, 0})...)
		out = append(out, arMsg('K', []byte{0, 0, 0, 42, 1, 2, 3, 4})...)
		out = append(out, arMsg('Z', []byte{'I'})...)
		c.Write(out)
		io.Copy(io.Discard, r) // until pgveil hangs up
		return nil
	})
	p := startProxyYAML(t, fmt.Sprintf(`listen: 127.0.0.1:0
upstream:
  address: %s
  tls: require
  service_url: %s
admin:
  listen: ""
%s`, fake.addr(), cluster.SocketURL(harness.SuperUser, "postgres"), tlsBothLegs("scram")))
	defer p.stop(t, 10*time.Second)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.url())
	if err == nil {
		conn.Close(ctx)
		t.Errorf("pgveil accepted AuthenticationOk from the upstream in the middle of its %s exchange, without the server's signature: "+
			"a man in the middle on the upstream leg (tls require) poses as the server; channel binding gains nothing", gotMech)
	}
	if err := fake.close(); err != nil {
		t.Logf("fake upstream: %v", err)
	}
	if gotMech != scram.MechanismSCRAMPlus {
		t.Errorf("pgveil answered the upstream's offer with %q, want %s", gotMech, scram.MechanismSCRAMPlus)
	}
}

// TestAuthReviewFoundMockSaltRevealsMissingRole: see the file comment.
func TestAuthReviewFoundMockSaltRevealsMissingRole(t *testing.T) {
	const missing = "review_no_such_role"
	// Postgres alone: the mock salt of a missing role is stable.
	if a, b := arServerFirstSalt(t, cluster.Addr(), missing), arServerFirstSalt(t, cluster.Addr(), missing); a != b {
		t.Fatalf("baseline: Postgres gave a missing role two salts %q %q", a, b)
	}
	p := startSCRAMProxy(t, cluster.Addr())
	defer p.stop(t, 10*time.Second)
	if a, b := arServerFirstSalt(t, p.addr, harness.SCRAMUser), arServerFirstSalt(t, p.addr, harness.SCRAMUser); a != b {
		t.Fatalf("an existing role got two salts %q %q", a, b)
	}
	if a, b := arServerFirstSalt(t, p.addr, missing), arServerFirstSalt(t, p.addr, missing); a != b {
		t.Errorf("a role that does not exist gets a different salt on every attempt (%q, %q) while an existing role's never changes: "+
			"two unauthenticated connections tell whether a role exists", a, b)
	}
}

// TestAuthReviewFoundAuthTokenLimitBelowPostgres: see the file comment.
// The fake upstream asks for GSSAPI and reports the size of the token it
// received.
func TestAuthReviewFoundAuthTokenLimitBelowPostgres(t *testing.T) {
	const tokenLen = 20000 // < PG_MAX_AUTH_TOKEN_LENGTH (65535)
	fake := startFakeUpstream(t, func(c net.Conn) error {
		r := bufio.NewReader(c)
		if _, err := readUntyped(r); err != nil {
			return err
		}
		c.Write(arMsg('R', []byte{0, 0, 0, authGSS}))
		typ, body, err := arRead(r)
		if err != nil {
			return nil // pgveil hung up
		}
		msg := fmt.Sprintf("fake server got %q of %d bytes", typ, len(body))
		e := append([]byte("SFATAL\x00VFATAL\x00C28000\x00M"+msg+"\x00"), 0)
		c.Write(arMsg('E', e))
		return nil
	})
	p := startProxyYAML(t, fmt.Sprintf("listen: 127.0.0.1:0\nupstream:\n  address: %s\n  tls: disable\nadmin:\n  listen: \"\"\n", fake.addr()))
	defer p.stop(t, 10*time.Second)
	c := arDial(t, p.addr)
	c.send(arStartup("kerberos_user"))
	c.expectAuth(authGSS)
	c.send(arMsg('p', make([]byte, tokenLen)))
	code, msg := c.expectError()
	fake.close()
	if code == codeProgramLimit {
		t.Errorf("a %d-byte GSSAPI token was refused by pgveil (%s %s); Postgres accepts authentication responses up to 65535 bytes (PG_MAX_AUTH_TOKEN_LENGTH)", tokenLen, code, msg)
	} else if !strings.Contains(msg, fmt.Sprintf("of %d bytes", tokenLen)) {
		t.Errorf("unexpected error %s %s", code, msg)
	}
}

// ---------------------------------------------------------------- holds

// TestAuthReviewHoldsSCRAM: attacks on pgveil's own SCRAM server (auth.mode
// scram, client over TLS).
func TestAuthReviewHoldsSCRAM(t *testing.T) {
	p := startSCRAMProxy(t, cluster.Addr())
	defer p.stop(t, 10*time.Second)

	// begin opens a TLS session for user and reads the mechanism offer.
	begin := func(t *testing.T, user string) (*arConn, []byte) {
		c, cb := arDialTLS(t, p.addr)
		c.send(arStartup(user))
		mechs := c.expectAuth(authSASL)
		if want := "SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00"; string(mechs) != want {
			t.Fatalf("offer %q, want %q", mechs, want)
		}
		return c, cb
	}
	// exchange runs a SCRAM exchange with sc and returns the client-final
	// message sent and the outcome.
	exchange := func(t *testing.T, c *arConn, sc *scram.Client, mech string, cb []byte) (final []byte, code, msg string) {
		c.send(arMsg('p', arSASLInitial(mech, sc.First(mech, cb))))
		typ, body := c.read()
		if typ == 'E' {
			return nil, errorField(body, 'C'), errorField(body, 'M')
		}
		final, err := sc.Final(body[4:])
		if err != nil {
			t.Fatalf("client final: %v", err)
		}
		c.send(arMsg('p', final))
		typ, body = c.read()
		if typ == 'E' {
			return final, errorField(body, 'C'), errorField(body, 'M')
		}
		if typ != 'R' || binary.BigEndian.Uint32(body) != authSASLFinal {
			t.Fatalf("want SASLFinal, got %q", typ)
		}
		if err := sc.Verify(body[4:]); err != nil {
			t.Fatalf("pgveil's server signature: %v", err)
		}
		for {
			typ, body = c.read()
			if typ == 'E' {
				return final, errorField(body, 'C'), errorField(body, 'M')
			}
			if typ == 'Z' {
				return final, "", ""
			}
		}
	}

	var captured []byte
	t.Run("plus ok", func(t *testing.T) {
		c, cb := begin(t, harness.SCRAMUser)
		final, code, msg := exchange(t, c, scram.NewClientFromPassword(harness.SCRAMPass), scram.MechanismSCRAMPlus, cb)
		if code != "" {
			t.Fatalf("legit -PLUS login: %s %s", code, msg)
		}
		captured = final
	})
	t.Run("y flag when plus offered is a downgrade", func(t *testing.T) {
		c, cb := begin(t, harness.SCRAMUser)
		_, code, _ := exchange(t, c, scram.NewClientFromPassword(harness.SCRAMPass), scram.MechanismSCRAM, cb)
		if code != "28000" {
			t.Fatalf("'y' flag over TLS: %q, want 28000", code)
		}
	})
	t.Run("wrong channel binding data", func(t *testing.T) {
		c, cb := begin(t, harness.SCRAMUser)
		wrong := append([]byte(nil), cb...)
		wrong[0] ^= 1
		_, code, msg := exchange(t, c, scram.NewClientFromPassword(harness.SCRAMPass), scram.MechanismSCRAMPlus, wrong)
		if code != "28000" || !strings.Contains(msg, "channel binding") {
			t.Fatalf("wrong cb data: %s %s", code, msg)
		}
	})
	t.Run("n flag over TLS is allowed (client without channel binding)", func(t *testing.T) {
		c, _ := begin(t, harness.SCRAMUser)
		_, code, msg := exchange(t, c, scram.NewClientFromPassword(harness.SCRAMPass), scram.MechanismSCRAM, nil)
		if code != "" {
			t.Fatalf("'n' flag: %s %s", code, msg)
		}
	})
	t.Run("plus named without p flag", func(t *testing.T) {
		c, _ := begin(t, harness.SCRAMUser)
		c.send(arMsg('p', arSASLInitial(scram.MechanismSCRAMPlus, []byte("n,,n=,r=abcdefgh"))))
		if code, _ := c.expectError(); code != "08P01" {
			t.Fatalf("%s", code)
		}
	})
	t.Run("replayed client-final", func(t *testing.T) {
		if captured == nil {
			t.Skip("no capture")
		}
		c, cb := begin(t, harness.SCRAMUser)
		sc := scram.NewClientFromPassword(harness.SCRAMPass)
		c.send(arMsg('p', arSASLInitial(scram.MechanismSCRAMPlus, sc.First(scram.MechanismSCRAMPlus, cb))))
		c.expectAuth(authSASLContinue)
		c.send(arMsg('p', captured))
		if code, _ := c.expectError(); code != "08P01" && code != "28P01" {
			t.Fatalf("replay: %s", code)
		}
	})
	t.Run("proof made with another role's password", func(t *testing.T) {
		c, cb := begin(t, harness.SCRAMUser)
		_, code, _ := exchange(t, c, scram.NewClientFromPassword(harness.PasswordPass), scram.MechanismSCRAMPlus, cb)
		if code != "28P01" {
			t.Fatalf("%s", code)
		}
	})
	t.Run("empty password", func(t *testing.T) {
		c, cb := begin(t, harness.SCRAMUser)
		_, code, _ := exchange(t, c, scram.NewClientFromPassword(""), scram.MechanismSCRAMPlus, cb)
		if code != "28P01" {
			t.Fatalf("%s", code)
		}
	})
	t.Run("mandatory extension", func(t *testing.T) {
		c, _ := begin(t, harness.SCRAMUser)
		c.send(arMsg('p', arSASLInitial(scram.MechanismSCRAM, []byte("n,,m=ext,n=,r=abcdefgh"))))
		if code, _ := c.expectError(); code != "0A000" {
			t.Fatalf("%s", code)
		}
	})
	t.Run("authzid", func(t *testing.T) {
		c, _ := begin(t, harness.SCRAMUser)
		c.send(arMsg('p', arSASLInitial(scram.MechanismSCRAM, []byte("n,a=postgres,n=,r=abcdefgh"))))
		if code, _ := c.expectError(); code != "0A000" {
			t.Fatalf("%s", code)
		}
	})
	t.Run("SCRAM user name is ignored", func(t *testing.T) {
		// n= names the superuser (escaped), the StartupMessage scram_user:
		// the login is scram_user's, with scram_user's password.
		c, cb := begin(t, harness.SCRAMUser)
		sc := scram.NewClientFromPassword(harness.SCRAMPass)
		first := string(sc.First(scram.MechanismSCRAMPlus, cb))
		first = strings.Replace(first, "n=,", "n=postgres=2Cx=3D,", 1)
		c.send(arMsg('p', arSASLInitial(scram.MechanismSCRAMPlus, []byte(first))))
		typ, body := c.read()
		if typ != 'R' {
			t.Fatalf("%q %s", typ, errorField(body, 'M'))
		}
		// The proof must then cover the altered client-first; our client
		// signed its own, so pgveil must refuse it (AuthMessage differs).
		final, _ := sc.Final(body[4:])
		c.send(arMsg('p', final))
		if code, _ := c.expectError(); code != "28P01" {
			t.Fatalf("%s", code)
		}
	})
	t.Run("auth_query injection and roles without a usable verifier", func(t *testing.T) {
		for _, user := range []string{harness.SCRAMUser + "' OR '1'='1", "x\\'; SELECT 1; --", harness.TrustUser, "review_nobody"} {
			c, cb := begin(t, user)
			_, code, msg := exchange(t, c, scram.NewClientFromPassword(""), scram.MechanismSCRAMPlus, cb)
			if code != "28P01" || msg != `password authentication failed for user "`+user+`"` {
				t.Fatalf("%q: %s %s", user, code, msg)
			}
		}
	})
	t.Run("no secrets in the debug log", func(t *testing.T) {
		var all strings.Builder
		for _, e := range p.logs.All() {
			all.WriteString(e.Message)
			for k, v := range e.ContextMap() {
				fmt.Fprintf(&all, " %s=%v", k, v)
			}
			all.WriteString("\n")
		}
		logs := all.String()
		for _, secret := range []string{harness.SCRAMPass, harness.PasswordPass, string(captured)} {
			if secret != "" && strings.Contains(logs, secret) {
				t.Fatalf("the log holds a secret %q", secret)
			}
		}
		if i := strings.Index(string(captured), "p="); i >= 0 && strings.Contains(logs, string(captured)[i+2:]) {
			t.Fatal("the log holds a client proof")
		}
	})
	t.Run("md5 role over scram mode, wrong password", func(t *testing.T) {
		c, _ := arDialTLS(t, p.addr)
		c.send(arStartup(harness.MD5User))
		salt := c.expectAuth(authMD5Password)
		var s [4]byte
		copy(s[:], salt)
		c.send(arMsg('p', []byte(scram.MD5Response(scram.MD5Verifier("wrong", harness.MD5User), s)+"\x00")))
		if code, _ := c.expectError(); code != "28P01" {
			t.Fatalf("%s", code)
		}
	})
}

// TestAuthReviewHoldsTLS: client-facing TLS negotiation.
func TestAuthReviewHoldsTLS(t *testing.T) {
	p := startProxyYAML(t, fmt.Sprintf(`listen: 127.0.0.1:0
upstream:
  address: %s
  tls: disable
admin:
  listen: ""
tls:
  cert_file: %s
  key_file: %s
`, cluster.Addr(), cluster.Certs.ServerCert, cluster.Certs.ServerKey))
	defer p.stop(t, 10*time.Second)

	t.Run("TLS 1.1 refused", func(t *testing.T) {
		c := arDial(t, p.addr)
		c.send(sslRequest)
		var a [1]byte
		io.ReadFull(c.r, a[:])
		tc := tls.Client(c.Conn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err := tc.Handshake(); err == nil {
			t.Fatal("TLS 1.1 handshake succeeded")
		}
	})
	t.Run("bytes pipelined after SSLRequest", func(t *testing.T) {
		c := arDial(t, p.addr)
		c.send(append(append([]byte(nil), sslRequest...), arStartup(harness.TrustUser)...))
		all, _ := io.ReadAll(c.r)
		if len(all) == 0 || all[0] != 'S' {
			t.Fatalf("answer %q", all)
		}
		if rest := all[1:]; len(rest) > 0 && rest[0] != 'E' {
			t.Fatalf("pgveil processed the plaintext startup packet sent before the handshake: %q", rest)
		}
	})
	t.Run("SSLRequest twice", func(t *testing.T) {
		c, _ := arDialTLS(t, p.addr)
		c.send(sslRequest)
		if code, _ := c.expectError(); code != "08P01" {
			t.Fatalf("%s", code)
		}
	})
	t.Run("SSLRequest after StartupMessage", func(t *testing.T) {
		c := arDial(t, p.addr)
		c.send(arStartup(harness.SCRAMUser))
		c.expectAuth(authSASL)
		c.send(sslRequest) // read as a message of type 0x00
		if code, _ := c.expectError(); code != "08P01" {
			t.Fatalf("%s", code)
		}
	})
	t.Run("GSSENCRequest then SSL", func(t *testing.T) {
		c := arDial(t, p.addr)
		c.send([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30})
		var a [1]byte
		if _, err := io.ReadFull(c.r, a[:]); err != nil || a[0] != 'N' {
			t.Fatalf("GSSENCRequest answered %q %v", a[0], err)
		}
		c.send(sslRequest)
		if _, err := io.ReadFull(c.r, a[:]); err != nil || a[0] != 'S' {
			t.Fatalf("SSLRequest answered %q %v", a[0], err)
		}
	})
	t.Run("direct TLS needs ALPN postgresql", func(t *testing.T) {
		for _, alpn := range [][]string{{"postgresql"}, nil} {
			raw := arDial(t, p.addr)
			tc := tls.Client(raw.Conn, &tls.Config{RootCAs: arCAPool(t, cluster.Certs.CACert), ServerName: "localhost", NextProtos: alpn})
			c := &arConn{Conn: tc, r: bufio.NewReader(tc), t: t}
			if err := tc.Handshake(); err != nil {
				if alpn != nil {
					t.Fatalf("direct TLS with ALPN: %v", err)
				}
				continue
			}
			c.send(arStartup(harness.TrustUser))
			typ, body, err := arRead(c.r)
			if alpn != nil && (err != nil || typ != 'R') {
				t.Fatalf("direct TLS with ALPN: %q %v %s", typ, err, errorField(body, 'M'))
			}
			if alpn == nil && err == nil && typ != 'E' {
				t.Fatalf("direct TLS without ALPN accepted: %q", typ)
			}
		}
	})
	t.Run("pgx verify-full", func(t *testing.T) {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, p.tlsURL(harness.SCRAMUser, harness.SCRAMPass, "channel_binding=disable"))
		if err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
	})
}

// TestAuthReviewHoldsUpstreamVerifyFull: a wrong name or CA fails closed.
func TestAuthReviewHoldsUpstreamVerifyFull(t *testing.T) {
	other, err := harness.WriteCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, ca, server string }{
		{"wrong name", cluster.Certs.CACert, "db.example.com"},
		{"wrong CA", other.CACert, "localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxyYAML(t, fmt.Sprintf("listen: 127.0.0.1:0\nupstream:\n  address: %s\n  tls: verify-full\n  ca_file: %s\n  server_name: %s\nadmin:\n  listen: \"\"\n",
				cluster.Addr(), tc.ca, tc.server))
			defer p.stop(t, 10*time.Second)
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, p.url())
			if err == nil {
				conn.Close(ctx)
				t.Fatal("connected through an unverified upstream")
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != codeCannotConnect {
				t.Fatalf("%v", err)
			}
		})
	}
}

// TestAuthReviewHoldsStartup: startup-packet edge cases, cancel, silence.
func TestAuthReviewHoldsStartup(t *testing.T) {
	p := startProxy(t, "")
	defer p.stop(t, 20*time.Second)
	ctx := context.Background()

	t.Run("missing user", func(t *testing.T) {
		c := arDial(t, p.addr)
		c.send(arStartupPacket(codeProtocol3, "database", harness.Database))
		if code, msg := c.expectError(); code != "28000" || !strings.Contains(msg, "no PostgreSQL user name") {
			t.Fatalf("%s %s", code, msg)
		}
	})
	t.Run("protocol 3.99 negotiated down by the server", func(t *testing.T) {
		c := arDial(t, p.addr)
		c.send(arStartupPacket(codeProtocol3|99, "user", harness.TrustUser, "database", harness.Database, "_pq_.review", "x"))
		var sawV bool
		for {
			typ, body := c.read()
			if typ == 'v' {
				sawV = true
			}
			if typ == 'E' {
				t.Fatalf("%s", errorField(body, 'M'))
			}
			if typ == 'Z' {
				break
			}
		}
		if !sawV {
			t.Fatal("no NegotiateProtocolVersion relayed")
		}
	})
	t.Run("startup packet over the limit", func(t *testing.T) {
		c := arDial(t, p.addr)
		c.send(arStartupPacket(codeProtocol3, "user", harness.TrustUser, "options", strings.Repeat("x", 10001)))
		if code, _ := c.expectError(); code != codeProgramLimit {
			t.Fatalf("%s", code)
		}
	})
	t.Run("password message over the limit", func(t *testing.T) {
		c := arDial(t, p.addr)
		c.send(arStartup(harness.PasswordUser))
		c.expectAuth(authCleartextPassword)
		hdr := []byte{'p', 0x7f, 0xff, 0xff, 0xff}
		c.send(hdr)
		if code, _ := c.expectError(); code != codeProgramLimit {
			t.Fatalf("%s", code)
		}
	})
	t.Run("silent clients do not block others", func(t *testing.T) {
		for i := 0; i < 5; i++ {
			c := arDial(t, p.addr)
			if i%2 == 1 {
				c.send(arStartup(harness.SCRAMUser)) // then silence in authentication
			}
		}
		conn, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
	})
	t.Run("forged CancelRequest", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, p.url())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		pid, key := conn.PgConn().PID(), conn.PgConn().SecretKey()
		done := make(chan error, 1)
		go func() {
			_, err := conn.Exec(ctx, "SELECT pg_sleep(20) /* authreview-cancel */")
			done <- err
		}()
		waitQueryRunning(t, "authreview-cancel")
		forged := append([]byte(nil), key...)
		forged[0] ^= 0xff
		sendCancel := func(k []byte) {
			c := arDial(t, p.addr)
			b := binary.BigEndian.AppendUint32([]byte{0, 0, 0, 0}, codeCancelRequest)
			b = binary.BigEndian.AppendUint32(b, pid)
			b = append(b, k...)
			binary.BigEndian.PutUint32(b, uint32(len(b)))
			c.send(b)
			io.ReadAll(c.r) // pgveil hangs up once the cancel is forwarded
		}
		sendCancel(forged)
		select {
		case err := <-done:
			t.Fatalf("a forged CancelRequest ended the query: %v", err)
		default:
		}
		// A truncated key must not disturb either; then the real one cancels.
		sendCancel(key[:len(key)-1])
		sendCancel(key)
		err = <-done
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" {
			t.Fatalf("the right key did not cancel: %v", err)
		}
	})
}

// TestAuthReviewFoundGSSENCAfterTLS: see the file comment. Postgres itself
// is the baseline.
func TestAuthReviewFoundGSSENCAfterTLS(t *testing.T) {
	gssenc := []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30}
	answer := func(c *arConn) byte {
		c.send(gssenc)
		var a [1]byte
		if _, err := io.ReadFull(c.r, a[:]); err != nil {
			return 0
		}
		return a[0]
	}
	direct, _ := arDialTLS(t, cluster.Addr())
	if a := answer(direct); a != 'E' {
		t.Fatalf("baseline: Postgres answered GSSENCRequest over TLS with %q", a)
	}
	p := startProxyYAML(t, fmt.Sprintf("listen: 127.0.0.1:0\nupstream:\n  address: %s\n  tls: disable\nadmin:\n  listen: \"\"\ntls:\n  cert_file: %s\n  key_file: %s\n",
		cluster.Addr(), cluster.Certs.ServerCert, cluster.Certs.ServerKey))
	defer p.stop(t, 10*time.Second)
	c, _ := arDialTLS(t, p.addr)
	if a := answer(c); a != 'E' {
		t.Errorf("pgveil answered a GSSENCRequest on a TLS connection with %q; Postgres ends the connection with an ErrorResponse (unsupported frontend protocol 1234.5680)", a)
	}
	c.Close()
}

// TestCleartextGuard: the server's cleartext password request is relayed
// to a plaintext client only when that cannot expose the password on a
// network where the operator asked for TLS.
func TestCleartextGuard(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 50000}
	loop := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 50000}
	loop6 := &net.TCPAddr{IP: net.ParseIP("::1"), Port: 50000}
	for _, c := range []struct {
		clientTLS, serverTLS bool
		addr                 net.Addr
		refused              bool
	}{
		{false, true, remote, true},
		{false, true, loop, false},
		{false, true, loop6, false},
		{true, true, remote, false},
		{false, false, remote, false}, // plaintext on both legs: the operator's choice
		{false, true, &net.UnixAddr{Name: "/tmp/x", Net: "unix"}, true},
	} {
		err := cleartextGuard(c.clientTLS, c.serverTLS, c.addr)
		if (err != nil) != c.refused {
			t.Errorf("client TLS %v, server TLS %v, from %v: %v, want refused %v", c.clientTLS, c.serverTLS, c.addr, err, c.refused)
		}
		if err != nil {
			var pe *pgError
			if !errors.As(err, &pe) || pe.Code != codeInvalidAuthSpec {
				t.Errorf("refusal %v is not a 28000", err)
			}
		}
	}
}
