package proxy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"

	"github.com/pgveil/pgveil/policy"
)

// Authentication request codes (AuthenticationXXX messages, type 'R').
const (
	authOK                = 0
	authCleartextPassword = 3
	authMD5Password       = 5
	authGSS               = 7
	authGSSContinue       = 8
	authSSPI              = 9
	authSASL              = 10
	authSASLContinue      = 11
	authSASLFinal         = 12
)

// authenticate connects upstream and runs the authentication phase, then
// relays the server's ParameterStatus and BackendKeyData up to the first
// ReadyForQuery.
func (s *session) authenticate(startup []byte) error {
	if s.cfg.Auth.Mode == policy.AuthSCRAM {
		return s.authenticateSCRAM(startup)
	}
	if err := s.connect(startup); err != nil {
		return err
	}
	return s.relayAuth()
}

// relayAuth passes authentication between client and server unchanged,
// except that SCRAM-SHA-256-PLUS is always removed from the server's offer:
// channel binding cannot cross a relay. With TLS to pgveil the client would
// bind to pgveil's certificate, which the server cannot verify; without it,
// libpq refuses an offer of -PLUS over its non-TLS connection when only the
// upstream leg is encrypted. (auth.mode scram serves channel binding.)
func (s *session) relayAuth() error {
	for {
		typ, _, err := s.sr.readHeader()
		if err != nil {
			return upstreamLost(err)
		}
		body, err := s.sr.readBody()
		if err != nil {
			return upstreamLost(err)
		}
		switch typ {
		case 'R':
			if len(body) < 4 {
				return &protocolError{msg: "short authentication request from server"}
			}
			code := binary.BigEndian.Uint32(body)
			if code == authSASL {
				body = withoutMechanism(body, "SCRAM-SHA-256-PLUS")
			}
			if code == authCleartextPassword {
				if err := cleartextGuard(s.clientTLS, s.serverTLS, s.client.RemoteAddr()); err != nil {
					return err
				}
			}
			writeMsg(s.cw, 'R', body)
			switch code {
			case authCleartextPassword, authMD5Password, authGSS, authGSSContinue, authSSPI, authSASL, authSASLContinue:
				// The client answers with a PasswordMessage-family message.
				if err := s.cw.Flush(); err != nil {
					return err
				}
				if err := s.relayClientAuthResponse(); err != nil {
					return err
				}
			}
		default:
			if ready, err := s.relayStartupMessage(typ, body); ready || err != nil {
				return err
			}
		}
	}
}

// cleartextGuard refuses to pass the server's request for a cleartext
// password to a client whose leg is plaintext over the network while
// pgveil's leg to the server is encrypted: the server chose cleartext
// because it sees TLS (pg_hba.conf's hostssl … password), and the client
// would send its password unencrypted where the operator asked for TLS.
// A client on the loopback interface sends it across no network.
func cleartextGuard(clientTLS, serverTLS bool, client net.Addr) error {
	if clientTLS || !serverTLS {
		return nil
	}
	if a, ok := client.(*net.TCPAddr); ok && a.IP.IsLoopback() {
		return nil
	}
	return &pgError{Severity: "FATAL", Code: codeInvalidAuthSpec,
		Message: "the server asks for a cleartext password over pgveil's encrypted connection to it, and this client's connection to pgveil is not encrypted",
		Hint:    "connect to pgveil with TLS (sslmode=require), or set tls.mode: require so that no client connects without it"}
}

// relayStartupMessage relays a server message of the startup phase other
// than an authentication request, in either auth mode. ready reports the
// first ReadyForQuery: the session can start relaying.
func (s *session) relayStartupMessage(typ byte, body []byte) (ready bool, err error) {
	switch typ {
	case 'E':
		// The server's own error (28P01 for a wrong password): relay it.
		writeMsg(s.cw, 'E', body)
		s.cw.Flush()
		s.countServerError(body)
		return false, errAuthFailed
	case 'K':
		if len(body) >= 4 {
			s.backendPID = binary.BigEndian.Uint32(body)
		}
	case 'S':
		s.noteParameterStatus(body)
	case 'N', 'v': // NoticeResponse, NegotiateProtocolVersion
	case 'Z':
		if len(body) > 0 {
			s.t.txStatus = body[0]
		}
		writeMsg(s.cw, typ, body)
		return true, s.cw.Flush()
	default:
		return false, &protocolError{msg: fmt.Sprintf("unexpected message %q from server during authentication", typ)}
	}
	writeMsg(s.cw, typ, body)
	return false, nil
}

// errAuthFailed ends a session whose authentication the server refused;
// the server's ErrorResponse has already reached the client.
var errAuthFailed = &authFailed{}

type authFailed struct{}

func (*authFailed) Error() string { return "authentication failed (server's error relayed)" }

// relayClientAuthResponse forwards one message of the client's side of
// authentication (type 'p'), bounded by proxy.max_startup_message.
func (s *session) relayClientAuthResponse() error {
	typ, _, err := s.cr.readHeader()
	if err != nil {
		return err
	}
	if typ != 'p' {
		return &protocolError{msg: fmt.Sprintf("expected an authentication response, got message type %q", typ)}
	}
	body, err := s.cr.readBody()
	if err != nil {
		return err
	}
	writeMsg(s.sw, 'p', body)
	return s.sw.Flush()
}

// withoutMechanism rewrites an AuthenticationSASL body (int32 10, then a
// list of NUL-terminated mechanism names ending with an empty one) without
// the named mechanism.
func withoutMechanism(body []byte, mech string) []byte {
	out := make([]byte, 4, len(body))
	copy(out, body[:4])
	for off := 4; off < len(body); {
		name, next, ok := cstringBytes(body, off)
		if !ok || len(name) == 0 {
			break
		}
		if string(name) != mech {
			out = append(out, name...)
			out = append(out, 0)
		}
		off = next
	}
	return append(out, 0)
}

// upstreamLost wraps an upstream read failure during startup.
func upstreamLost(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &pgError{Severity: "FATAL", Code: codeConnectionFailure, Message: "the upstream server closed the connection during startup", cause: &upstreamError{err}}
	}
	if _, ok := err.(*protocolError); ok {
		return err
	}
	return &pgError{Severity: "FATAL", Code: codeConnectionFailure, Message: "lost the upstream connection during startup", cause: &upstreamError{err}}
}

// countServerError counts a server ErrorResponse by SQLSTATE class.
func (s *session) countServerError(body []byte) {
	s.srv.metrics.Errors.WithLabelValues(sqlstateClass(errorField(body, 'C')), "server").Inc()
}

// errorField returns one field of an ErrorResponse/NoticeResponse body.
func errorField(body []byte, field byte) string {
	for off := 0; off < len(body) && body[off] != 0; {
		f := body[off]
		v, next, ok := cstringBytes(body, off+1)
		if !ok {
			return ""
		}
		if f == field {
			return string(v)
		}
		off = next
	}
	return ""
}

// prefixedConn is a net.Conn whose reads come through r (a reader that
// already buffered the start of the stream).
type prefixedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *prefixedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
