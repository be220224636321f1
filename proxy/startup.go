package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/policy"
)

// startup negotiates encryption and reads the StartupMessage. It returns
// the raw StartupMessage packet to forward, or nil when the connection was
// a CancelRequest that has been forwarded.
//
// See https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
//
// The deadline it sets on the client connection stays until
// authentication ends (session.run clears it). It bounds the whole
// startup phase, authentication included, so a client that connects and
// says nothing (or never answers the password request) cannot hold a
// session, and its startup slot, forever: proxy.authentication_timeout,
// as Postgres's authentication_timeout.
func (s *session) startup() ([]byte, error) {
	if testHookDeadline != nil {
		testHookDeadline(s, "startup")
	}
	s.startDeadline = time.Now().Add(s.startupTimeout())
	s.clientDeadline(s.startDeadline)

	// Direct TLS (PostgreSQL 17, sslnegotiation=direct): the first byte is
	// a TLS handshake record instead of a packet length.
	if first, err := s.cr.r.Peek(1); err == nil && first[0] == tlsHandshakeRecord {
		if err := s.startTLS(true); err != nil {
			return nil, err
		}
	}
	for negotiations := 0; ; negotiations++ {
		if negotiations > 3 {
			return nil, &protocolError{msg: "too many encryption negotiation requests"}
		}
		packet, err := s.readStartupPacket()
		if err != nil {
			return nil, err
		}
		code := be32(packet[4:8])
		switch {
		case code == codeSSLRequest:
			if s.clientTLS {
				return nil, &protocolError{msg: "SSLRequest on an encrypted connection"}
			}
			if s.srv.clientTLS.Load() == nil {
				if err := s.answerByte('N'); err != nil {
					return nil, err
				}
				continue
			}
			if err := s.answerByte('S'); err != nil {
				return nil, err
			}
			if err := s.startTLS(false); err != nil {
				return nil, err
			}
		case code == codeGSSENCRequest:
			if s.clientTLS {
				// As Postgres: encryption is negotiated once TLS is up.
				return nil, &protocolError{msg: "GSSENCRequest on an encrypted connection"}
			}
			if err := s.answerByte('N'); err != nil {
				return nil, err
			}
		case code == codeCancelRequest:
			// Not counted and never refused, as Postgres serves cancel
			// requests whatever max_connections.
			s.endClient()
			s.cancel(packet)
			return nil, nil
		case code>>16 == 3:
			if err := s.readStartupParams(packet); err != nil {
				return packet, err
			}
			if !s.clientTLS && s.cfg.TLS != nil && s.cfg.TLS.Mode == policy.ClientTLSRequire {
				return nil, fatal(codeInvalidAuthSpec, fmt.Sprintf("pgveil accepts only TLS connections (tls.mode: require): user %q, database %q, no encryption", s.user, s.database))
			}
			return packet, nil
		default:
			return nil, &pgError{Severity: "FATAL", Code: codeFeatureNotSupported,
				Message: fmt.Sprintf("unsupported frontend protocol %d.%d: pgveil speaks 3.x", code>>16, code&0xffff)}
		}
	}
}

// readStartupPacket reads an untyped startup-phase packet (int32 length,
// int32 code, rest), bounded by proxy.max_startup_message.
func (s *session) readStartupPacket() ([]byte, error) {
	var lb [4]byte
	if _, err := io.ReadFull(s.cr.r, lb[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(lb[:])))
	if n < 8 {
		return nil, &protocolError{msg: fmt.Sprintf("invalid startup packet length %d", n)}
	}
	if n > s.cfg.Proxy.MaxStartupMessage {
		return nil, &tooLargeError{typ: '?', length: n, limit: s.cfg.Proxy.MaxStartupMessage, knob: "proxy.max_startup_message"}
	}
	packet := make([]byte, n)
	copy(packet, lb[:])
	if _, err := io.ReadFull(s.cr.r, packet[4:]); err != nil {
		return nil, unexpectedEOF(err)
	}
	return packet, nil
}

// answerByte answers SSLRequest or GSSENCRequest with one byte.
func (s *session) answerByte(b byte) error {
	s.cw.WriteByte(b)
	return s.cw.Flush()
}

// startTLS performs the TLS handshake with the client. Bytes the client
// sent after SSLRequest but before the handshake would be plaintext the
// client believes encrypted (CVE-2021-23214): refuse them.
func (s *session) startTLS(direct bool) error {
	cfg := s.srv.clientTLS.Load()
	if cfg == nil {
		return &protocolError{msg: "direct TLS connection but pgveil has no tls configured"}
	}
	if !direct && s.cr.buffered() > 0 {
		return &protocolError{msg: "received unencrypted data after SSL request"}
	}
	var conn = s.client
	if direct {
		// The peeked ClientHello bytes are in our read buffer: hand them
		// to the TLS layer through a reader that drains the buffer first.
		conn = &prefixedConn{Conn: s.client, r: s.cr.r}
	}
	tc := tls.Server(conn, cfg)
	ctx, cancel := context.WithDeadline(context.Background(), s.startDeadline)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("client TLS handshake: %w", err)
	}
	if direct && tc.ConnectionState().NegotiatedProtocol != "postgresql" {
		return &protocolError{msg: "direct TLS connection without ALPN \"postgresql\""}
	}
	s.clientTLS = true
	s.setClientConn(tc, authMessageLimit(s.cfg))
	return nil
}

// readStartupParams extracts user and database for logs; the packet itself
// is forwarded unchanged.
func (s *session) readStartupParams(packet []byte) error {
	params := map[string]string{}
	b := packet[8:]
	for off := 0; off < len(b); {
		if b[off] == 0 {
			break
		}
		k, next, ok := cstring(b, off)
		if !ok {
			return &protocolError{msg: "malformed startup packet"}
		}
		v, next2, ok := cstring(b, next)
		if !ok {
			return &protocolError{msg: "malformed startup packet"}
		}
		params[k] = v
		off = next2
	}
	if params["user"] == "" {
		return fatal(codeInvalidAuthSpec, "no PostgreSQL user name specified in startup packet")
	}
	if params["database"] == "" {
		params["database"] = params["user"]
	}
	s.user, s.database = params["user"], params["database"]
	s.log = s.log.With(s.sessionFields(params)...)
	if s.eng != nil && physicalReplication(params["replication"]) {
		// A physical replication connection (pg_basebackup, a standby)
		// runs no SQL: PostgreSQL refuses SQL, the extended protocol and
		// function calls in a physical WAL sender, and its stream is the
		// cluster's files and WAL, ciphertext for encrypted columns. It is
		// relayed as a session without tables (lead, twentieth session:
		// review 20c's database check refused it, and before that its
		// search_path read failed and the session was closed).
		s.dropEngine()
		s.eng = nil
	}
	if e := s.eng; e != nil && e.database != "" && s.database != e.database {
		// The policy, catalog, key store and table states are those of
		// the service connection's database: applied to another one, its
		// tables of the same names would have their plaintext refused and
		// their writes sealed under keys kept in the first database.
		return fatal(codeFeatureNotSupported, fmt.Sprintf("this pgveil encrypts database %q (upstream.service_url), not %q: connect to %q directly or through a pgveil configured for it", e.database, s.database, s.database))
	}
	return nil
}

// cancel forwards a CancelRequest upstream. Errors are only logged: the
// protocol gives the client no answer to a cancel.
func (s *session) cancel(packet []byte) {
	s.srv.metrics.CancelsTotal.Inc()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Upstream.ConnectTimeout)
	defer cancel()
	if err := s.up.forwardCancel(ctx, packet); err != nil {
		s.log.Warn("forwarding cancel request failed", zap.Error(err))
		return
	}
	s.log.Debug("cancel request forwarded")
}

// physicalReplication reports whether PostgreSQL reads a startup packet's
// replication parameter as true (a physical WAL sender): as its
// parse_bool does, a non-empty prefix of "true" or "yes", "on" or "1", in
// any case (with nothing around it: parse_bool does not trim, unlike
// boolin). "database" (logical replication, which runs SQL) and every
// other value are not; a value PostgreSQL would refuse is refused by it.
// It must never say true where the server starts an ordinary backend:
// such a session is relayed without encryption.
func physicalReplication(v string) bool {
	l := strings.ToLower(v)
	switch {
	case l == "":
		return false
	case l == "on" || l == "1":
		return true
	case strings.HasPrefix("true", l) || strings.HasPrefix("yes", l):
		return true
	}
	return false
}
