package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/proxy/scram"
)

// auth.mode scram (DESIGN.md "Authentication and TLS"):
//
//	client ──SASL/md5──▶ pgveil: verified against the role's verifier
//	                     (auth_query over the service connection);
//	                     SCRAM yields the ClientKey from the client's proof
//	pgveil ──SASL/md5──▶ server: logs in as the same role with that
//	                     ClientKey (or the md5 verifier), binding to the
//	                     server's own certificate when upstream uses TLS
//	pgveil ──SASLFinal+AuthenticationOk──▶ client, then the server's
//	                     ParameterStatus, BackendKeyData, ReadyForQuery
//
// pgveil never sees or stores a password. The client's proof of
// SCRAM-SHA-256-PLUS is bound to pgveil's certificate, which is what a
// client with channel_binding=prefer expects when it connected to pgveil.

// clientCredential is what pgveil holds after verifying the client: enough
// to log in upstream as the same role, and nothing more.
type clientCredential struct {
	verifier    *scram.Verifier // SCRAM roles
	clientKey   []byte
	md5         string // md5 roles: the md5 verifier (password-equivalent for md5 only)
	serverFinal []byte // SASLFinal to send the client once upstream accepted
}

// authenticateSCRAM verifies the client, connects upstream and logs in.
// It replaces connect+relayAuth for auth.mode scram.
func (s *session) authenticateSCRAM(startup []byte) error {
	secret, err := s.srv.lookupVerifier(context.Background(), s.user)
	if err != nil {
		s.log.Error("auth_query failed", zap.Error(err))
		return &pgError{Severity: "FATAL", Code: codeCannotConnect, Message: "pgveil could not look up the role's password verifier",
			Hint: "check upstream.service_url and auth.auth_query", cause: err}
	}
	cred, err := s.verifyClient(secret)
	if err != nil {
		return err
	}
	if err := s.connect(startup); err != nil {
		return err
	}
	return s.loginUpstream(cred)
}

// verifyClient runs the client side of authentication against secret (a
// pg_authid.rolpassword value; "" when the role has none or does not exist).
func (s *session) verifyClient(secret string) (*clientCredential, error) {
	if scram.IsMD5Verifier(secret) {
		return s.verifyClientMD5(secret)
	}
	v, perr := scram.ParseVerifier(secret)
	if perr != nil {
		// Mock: the exchange runs and fails with 28P01, as Postgres does,
		// with a salt that is the same at every attempt for this name.
		v = scram.MockVerifier(s.user, s.srv.mockSecret)
	}
	var cb []byte
	if s.clientTLS {
		cb = *s.srv.clientCB.Load()
	}
	srv := scram.NewServer(v, cb)
	srv.User = s.user
	body := []byte{0, 0, 0, authSASL}
	for _, m := range srv.Mechanisms() {
		body = append(append(body, m...), 0)
	}
	body = append(body, 0)
	writeMsg(s.cw, 'R', body)
	if err := s.cw.Flush(); err != nil {
		return nil, err
	}
	// SASLInitialResponse: mechanism, int32 length, client-first-message.
	msg, err := s.readAuthResponse()
	if err != nil {
		return nil, err
	}
	mech, off, ok := cstring(msg, 0)
	if !ok || len(msg) < off+4 {
		return nil, &protocolError{msg: "malformed SASLInitialResponse"}
	}
	n := int(int32(binary.BigEndian.Uint32(msg[off:])))
	data := msg[off+4:]
	if n < 0 || n != len(data) {
		return nil, &protocolError{msg: "malformed SASLInitialResponse length"}
	}
	serverFirst, err := srv.Start(mech, data)
	if err != nil {
		return nil, authError(err)
	}
	writeMsg(s.cw, 'R', append([]byte{0, 0, 0, authSASLContinue}, serverFirst...))
	if err := s.cw.Flush(); err != nil {
		return nil, err
	}
	final, err := s.readAuthResponse()
	if err != nil {
		return nil, err
	}
	serverFinal, clientKey, err := srv.Finish(final)
	if err != nil {
		return nil, authError(err)
	}
	return &clientCredential{verifier: v, clientKey: clientKey, serverFinal: serverFinal}, nil
}

func (s *session) verifyClientMD5(verifier string) (*clientCredential, error) {
	var salt [4]byte
	rand.Read(salt[:])
	writeMsg(s.cw, 'R', append([]byte{0, 0, 0, authMD5Password}, salt[:]...))
	if err := s.cw.Flush(); err != nil {
		return nil, err
	}
	msg, err := s.readAuthResponse()
	if err != nil {
		return nil, err
	}
	resp, _, ok := cstring(msg, 0)
	if !ok || !scram.MD5Check(verifier, resp, salt) {
		return nil, passwordFailed(s.user)
	}
	return &clientCredential{md5: verifier}, nil
}

// readAuthResponse reads one PasswordMessage-family message ('p').
func (s *session) readAuthResponse() ([]byte, error) {
	typ, _, err := s.cr.readHeader()
	if err != nil {
		return nil, err
	}
	if typ != 'p' {
		return nil, &protocolError{msg: fmt.Sprintf("expected an authentication response, got message type %q", typ)}
	}
	body, err := s.cr.readBody()
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), body...), nil
}

// loginUpstream answers the server's authentication requests with the
// client's credential, then completes the client's authentication and
// relays the server's startup messages up to ReadyForQuery.
func (s *session) loginUpstream(cred *clientCredential) error {
	var sc *scram.Client
	verified := false // the server's SCRAM signature checked
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
			switch code := binary.BigEndian.Uint32(body); code {
			case authOK:
				if sc != nil && !verified {
					// A server (or a man in the middle) that started SCRAM
					// and skips its proof: channel binding would be moot.
					return &pgError{Severity: "FATAL", Code: codeConnectionFailure,
						Message: "the upstream server ended SCRAM authentication without proving that it knows the password",
						Hint:    "check upstream.address and upstream.tls: pgveil may not be talking to your PostgreSQL"}
				}
				// The client hears success only now that the server agreed.
				if cred.serverFinal != nil {
					writeMsg(s.cw, 'R', append([]byte{0, 0, 0, authSASLFinal}, cred.serverFinal...))
				}
				writeMsg(s.cw, 'R', []byte{0, 0, 0, authOK})
			case authSASL:
				if cred.verifier == nil {
					return upstreamAuthMismatch("SCRAM", "an md5 password verifier")
				}
				offered := saslMechanisms(body[4:])
				cb := s.upstreamChannelBinding()
				mech, err := scram.SelectMechanism(offered, cb)
				if err != nil {
					return authError(err)
				}
				sc = scram.NewClientFromKey(cred.clientKey, cred.verifier)
				first := sc.First(mech, cb)
				out := append([]byte(mech), 0)
				out = binary.BigEndian.AppendUint32(out, uint32(len(first)))
				writeMsg(s.sw, 'p', append(out, first...))
				if err := s.sw.Flush(); err != nil {
					return upstreamLost(err)
				}
			case authSASLContinue:
				if sc == nil {
					return &protocolError{msg: "SASLContinue before SASL from server"}
				}
				final, err := sc.Final(body[4:])
				if err != nil {
					return authError(err)
				}
				writeMsg(s.sw, 'p', final)
				if err := s.sw.Flush(); err != nil {
					return upstreamLost(err)
				}
			case authSASLFinal:
				if sc == nil {
					return &protocolError{msg: "SASLFinal before SASL from server"}
				}
				if err := sc.Verify(body[4:]); err != nil {
					return authError(err)
				}
				verified = true
			case authMD5Password:
				if cred.md5 == "" || len(body) < 8 {
					return upstreamAuthMismatch("md5", "a SCRAM verifier")
				}
				var salt [4]byte
				copy(salt[:], body[4:8])
				writeMsg(s.sw, 'p', append([]byte(scram.MD5Response(cred.md5, salt)), 0))
				if err := s.sw.Flush(); err != nil {
					return upstreamLost(err)
				}
			default:
				return &pgError{Severity: "FATAL", Code: codeInvalidAuthSpec,
					Message: fmt.Sprintf("the upstream server asked for authentication method %d, which auth.mode scram cannot answer without a password", code),
					Hint:    "configure pg_hba.conf for pgveil's address with scram-sha-256 or md5, or use auth.mode relay"}
			}
		default:
			if ready, err := s.relayStartupMessage(typ, body); ready || err != nil {
				return err
			}
		}
	}
}

// upstreamChannelBinding is the tls-server-end-point data of the server's
// certificate when the upstream connection uses TLS.
func (s *session) upstreamChannelBinding() []byte {
	tc, ok := s.server.(*tls.Conn)
	if !ok {
		return nil
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil
	}
	cb, err := scram.TLSServerEndPoint(certs[0])
	if err != nil {
		return nil
	}
	return cb
}

func saslMechanisms(b []byte) []string {
	var out []string
	for off := 0; off < len(b); {
		name, next, ok := cstring(b, off)
		if !ok || name == "" {
			break
		}
		out = append(out, name)
		off = next
	}
	return out
}

// authError makes an authentication failure FATAL with its own SQLSTATE.
func authError(err error) error {
	var se *scram.Error
	if errors.As(err, &se) {
		return &pgError{Severity: "FATAL", Code: se.SQLState(), Message: se.Message, Detail: se.Detail}
	}
	return &pgError{Severity: "FATAL", Code: codeInvalidAuthSpec, Message: err.Error()}
}

func passwordFailed(user string) error {
	return &pgError{Severity: "FATAL", Code: codeInvalidPassword, Message: fmt.Sprintf("password authentication failed for user %q", user)}
}

func upstreamAuthMismatch(asked, have string) error {
	return &pgError{Severity: "FATAL", Code: codeInvalidAuthSpec,
		Message: "the upstream server asked for " + asked + " authentication but the role has " + have,
		Hint:    "auth.mode scram logs in upstream with the method of the role's stored verifier; align pg_hba.conf with password_encryption"}
}

// lookupVerifier runs auth.auth_query for user over the service connection.
// A role that does not exist or has no password yields "".
//
// It runs before the client's side of the exchange, so a slow client
// holds no service connection: only its startup slot
// (proxy.max_pending_startups). At most half the pool's connections run
// auth_queries at once (svcAuth), each waiting and running at most
// upstream.connect_timeout.
func (srv *Server) lookupVerifier(ctx context.Context, user string) (string, error) {
	svc, err := srv.servicePool()
	if err != nil {
		return "", err
	}
	defer svc.drop()
	pool := svc.pool
	srv.svcMu.Lock()
	slots := srv.svcAuth
	srv.svcMu.Unlock()
	cfg := srv.cfg.Load()
	ctx, cancel := context.WithTimeout(ctx, cfg.Upstream.ConnectTimeout)
	defer cancel()
	select {
	case slots <- struct{}{}:
		defer func() { <-slots }()
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for a service connection for auth_query: %w", ctx.Err())
	}
	var name string
	var secret *string
	err = pool.QueryRow(ctx, cfg.Auth.AuthQuery, user).Scan(&name, &secret)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if secret == nil {
		return "", nil
	}
	return strings.TrimSpace(*secret), nil
}
