package scram

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgproto3/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgveil/pgveil/integration/harness"
	"go.uber.org/goleak"
)

// authResult is what the test backend learned from one login.
type authResult struct {
	mechanism string
	clientKey []byte
	err       error
}

// serveOneLogin accepts one connection on l and plays PostgreSQL's
// authentication with Server, as pgveil does in front of a client: TLS on
// request with cert, AuthenticationSASL with Server.Mechanisms, the exchange,
// ErrorResponse on failure. After AuthenticationOk it answers every Query
// with EmptyQueryResponse until Terminate or EOF.
func serveOneLogin(l net.Listener, cert tls.Certificate, v *Verifier) authResult {
	raw, err := l.Accept()
	if err != nil {
		return authResult{err: err}
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(20 * time.Second))
	var conn net.Conn = raw
	be := pgproto3.NewBackend(pgproto3.NewChunkReader(conn), conn)
	var cb []byte
	var startup *pgproto3.StartupMessage
	for startup == nil {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return authResult{err: err}
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if _, err := raw.Write([]byte{'S'}); err != nil {
				return authResult{err: err}
			}
			tc := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
			if err := tc.Handshake(); err != nil {
				return authResult{err: err}
			}
			leaf, err := x509.ParseCertificate(cert.Certificate[0])
			if err != nil {
				return authResult{err: err}
			}
			if cb, err = TLSServerEndPoint(leaf); err != nil {
				return authResult{err: err}
			}
			conn = tc
			be = pgproto3.NewBackend(pgproto3.NewChunkReader(conn), conn)
		case *pgproto3.GSSEncRequest:
			if _, err := raw.Write([]byte{'N'}); err != nil {
				return authResult{err: err}
			}
		case *pgproto3.StartupMessage:
			startup = m
		default:
			return authResult{err: fmt.Errorf("unexpected %T", msg)}
		}
	}

	srv := NewServer(v, cb)
	srv.User = startup.Parameters["user"]
	res := authResult{}
	fail := func(err error) authResult {
		var e *Error
		if errors.As(err, &e) {
			be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: e.Code, Message: e.Message, Detail: e.Detail})
		}
		res.err = err
		return res
	}
	if err := be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: srv.Mechanisms()}); err != nil {
		return fail(err)
	}
	be.SetAuthType(pgproto3.AuthTypeSASL)
	msg, err := be.Receive()
	if err != nil {
		return fail(err)
	}
	init, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok {
		return fail(fmt.Errorf("unexpected %T", msg))
	}
	res.mechanism = init.AuthMechanism
	serverFirst, err := srv.Start(init.AuthMechanism, init.Data)
	if err != nil {
		return fail(err)
	}
	if err := be.Send(&pgproto3.AuthenticationSASLContinue{Data: serverFirst}); err != nil {
		return fail(err)
	}
	be.SetAuthType(pgproto3.AuthTypeSASLContinue)
	if msg, err = be.Receive(); err != nil {
		return fail(err)
	}
	resp, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return fail(fmt.Errorf("unexpected %T", msg))
	}
	serverFinal, key, err := srv.Finish(resp.Data)
	if err != nil {
		return fail(err)
	}
	res.clientKey = key
	for _, m := range []pgproto3.BackendMessage{
		&pgproto3.AuthenticationSASLFinal{Data: serverFinal},
		&pgproto3.AuthenticationOk{},
		&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"},
		&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"},
		&pgproto3.ParameterStatus{Name: "standard_conforming_strings", Value: "on"},
		&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: 2},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	} {
		if err := be.Send(m); err != nil {
			return fail(err)
		}
	}
	for {
		msg, err := be.Receive()
		if err != nil {
			return res // client went away
		}
		switch msg.(type) {
		case *pgproto3.Terminate:
			return res
		case *pgproto3.Query:
			be.Send(&pgproto3.EmptyQueryResponse{})
			be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		}
	}
}

// TestClientLibrariesAgainstServer has real clients (pgx, and libpq through
// psql) log in to Server over TLS: they choose SCRAM-SHA-256-PLUS and bind to
// the test certificate, and Server recovers the ClientKey of their password.
func TestClientLibrariesAgainstServer(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real client libraries; run without -short")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreTopFunction(harness.SpawnerFunction))
	dir := t.TempDir()
	certs, err := harness.WriteCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	const user, password = "alice", "correct horse"
	v := NewVerifier(password, []byte("per-role salt 16"), 4096)
	wantKey, _ := keysFromPassword(password, v.Salt, v.Iterations)

	type client struct {
		name string
		run  func(addr, password string) error
	}
	clients := []client{{"pgx", func(addr, pw string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		url := harness.BuildURL(addr, user, pw, "app", "sslmode=verify-full", "sslrootcert="+certs.CACert, "channel_binding=require")
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	}}}
	if psql, err := exec.LookPath("psql"); err == nil {
		clients = append(clients, client{"psql", func(addr, pw string) error {
			host, port, _ := net.SplitHostPort(addr)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, psql, "-X", "-q", "-c", "SELECT 1",
				fmt.Sprintf("host=%s port=%s user=%s dbname=app sslmode=verify-full sslrootcert=%s channel_binding=require",
					host, port, user, certs.CACert))
			cmd.Env = append(os.Environ(), "PGPASSWORD="+pw, "PGGSSENCMODE=disable", "HOME="+dir,
				"PGSSLCERT="+filepath.Join(dir, "none"), "PGSSLKEY="+filepath.Join(dir, "none"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}})
	} else {
		t.Log("psql not found: libpq interop not tested")
	}

	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			for _, tc := range []struct {
				password string
				ok       bool
			}{{password, true}, {"wrong", false}} {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				done := make(chan authResult, 1)
				go func() { done <- serveOneLogin(l, cert, v) }()
				clientErr := c.run(l.Addr().String(), tc.password)
				res := <-done
				l.Close()
				if tc.ok {
					if clientErr != nil || res.err != nil {
						t.Fatalf("client: %v; server: %v", clientErr, res.err)
					}
					if res.mechanism != MechanismSCRAMPlus {
						t.Fatalf("client chose %s", res.mechanism)
					}
					if !bytes.Equal(res.clientKey, wantKey) {
						t.Fatal("recovered ClientKey is wrong")
					}
					continue
				}
				if sqlState(res.err) != CodeInvalidPassword {
					t.Fatalf("server: %v", res.err)
				}
				var pgErr *pgconn.PgError
				if c.name == "pgx" && (!errors.As(clientErr, &pgErr) || pgErr.Code != CodeInvalidPassword ||
					pgErr.Message != `password authentication failed for user "alice"`) {
					t.Fatalf("pgx saw %v", clientErr)
				}
				if c.name == "psql" && (clientErr == nil || !bytes.Contains([]byte(clientErr.Error()), []byte(`password authentication failed for user "alice"`))) {
					t.Fatalf("psql saw %v", clientErr)
				}
			}
		})
	}
}
