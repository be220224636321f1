package scram

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/jackc/pgproto3/v2"
)

// This file holds the wire plumbing of the end-to-end tests: just enough of
// the PostgreSQL startup and authentication flow, spoken with pgproto3, to
// carry this package's messages over real sockets.

// pgError is an ErrorResponse received during a test login.
type pgError struct{ code, message string }

func (e *pgError) Error() string    { return e.code + ": " + e.message }
func (e *pgError) SQLState() string { return e.code }

// loginCreds is how the test frontend answers authentication requests.
type loginCreds struct {
	scram     *Client // for AuthenticationSASL
	mechanism string  // "" picks with SelectMechanism
	md5       string  // md5 verifier, for AuthenticationMD5Password
}

// startupLogin connects to addr as user to database, with TLS (verifying the
// server against caFile) when caFile is not empty, and authenticates with
// creds. It returns nil once AuthenticationOk arrives (and, for SCRAM, the
// server's signature verified), or the server's ErrorResponse.
func startupLogin(addr, caFile, user, database string, creds loginCreds) error {
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(20 * time.Second))
	var conn net.Conn = raw
	var cb []byte
	if caFile != "" {
		if conn, cb, err = startTLS(raw, caFile); err != nil {
			return err
		}
	}
	fe := pgproto3.NewFrontend(pgproto3.NewChunkReader(conn), conn)
	if err := fe.Send(&pgproto3.StartupMessage{
		ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters:      map[string]string{"user": user, "database": database},
	}); err != nil {
		return err
	}
	verified := creds.scram == nil
	for {
		msg, err := fe.Receive()
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.AuthenticationSASL:
			mech := creds.mechanism
			if mech == "" {
				if mech, err = SelectMechanism(m.AuthMechanisms, cb); err != nil {
					return err
				}
			}
			err = fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: mech, Data: creds.scram.First(mech, cb)})
		case *pgproto3.AuthenticationSASLContinue:
			var final []byte
			if final, err = creds.scram.Final(append([]byte(nil), m.Data...)); err != nil {
				return err
			}
			err = fe.Send(&pgproto3.SASLResponse{Data: final})
		case *pgproto3.AuthenticationSASLFinal:
			if err = creds.scram.Verify(append([]byte(nil), m.Data...)); err != nil {
				return err
			}
			verified = true
		case *pgproto3.AuthenticationMD5Password:
			err = fe.Send(&pgproto3.PasswordMessage{Password: MD5Response(creds.md5, m.Salt)})
		case *pgproto3.AuthenticationOk:
			if !verified {
				return errors.New("AuthenticationOk before the server proved its identity")
			}
			return fe.Send(&pgproto3.Terminate{})
		case *pgproto3.ErrorResponse:
			return &pgError{code: m.Code, message: m.Message}
		default:
			return fmt.Errorf("unexpected %T during authentication", msg)
		}
		if err != nil {
			return err
		}
	}
}

// startTLS sends SSLRequest and runs the TLS handshake, returning the TLS
// connection and the tls-server-end-point data of the server's certificate.
func startTLS(conn net.Conn, caFile string) (*tls.Conn, []byte, error) {
	req := make([]byte, 8)
	binary.BigEndian.PutUint32(req[0:4], 8)
	binary.BigEndian.PutUint32(req[4:8], 80877103) // SSLRequest code
	if _, err := conn.Write(req); err != nil {
		return nil, nil, err
	}
	answer := make([]byte, 1)
	if _, err := io.ReadFull(conn, answer); err != nil {
		return nil, nil, err
	}
	if answer[0] != 'S' {
		return nil, nil, fmt.Errorf("server refused TLS: %q", answer)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tc := tls.Client(conn, &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		return nil, nil, err
	}
	cb, err := TLSServerEndPoint(tc.ConnectionState().PeerCertificates[0])
	return tc, cb, err
}
