package scram

import (
	"crypto/rand"
	"crypto/subtle"
	"strconv"
)

// Server is pgveil's side of one SCRAM exchange with a client, acting as the
// PostgreSQL server (RFC 5802 §5, server role). Its phases are:
//
//	NewServer -> Mechanisms (AuthenticationSASL)
//	          -> Start  (SASLInitialResponse in, AuthenticationSASLContinue out)
//	          -> Finish (SASLResponse in, AuthenticationSASLFinal out + ClientKey)
//
// Any error ends the exchange: later calls fail with 08P01. A Server is used
// by one goroutine and discarded after Finish.
type Server struct {
	// User is the user name of the StartupMessage. PostgreSQL ignores the
	// name in client-first-message (libpq sends "n=") and so does Server;
	// User only appears in the 28P01 error text.
	User string

	v  *Verifier
	cb []byte // tls-server-end-point data of our certificate; nil without TLS

	phase serverPhase

	plus            bool   // client chose SCRAM-SHA-256-PLUS
	cbindFlag       byte   // 'n', 'y' or 'p'
	clientFirstBare string // client-first-message-bare, for AuthMessage
	clientNonce     string
	serverNonce     string
	serverFirst     string

	fixedNonce string // tests only: server nonce to use instead of a random one
}

type serverPhase uint8

const (
	serverInitial serverPhase = iota
	serverStarted
	serverDone // finished, successfully or not
)

// NewServer starts an exchange against verifier v. channelBinding is the
// tls-server-end-point data of pgveil's own certificate (TLSServerEndPoint)
// when the client connection uses TLS, nil otherwise; with it, Server offers
// SCRAM-SHA-256-PLUS and refuses downgrades. A nil v behaves like a
// MockVerifier: the exchange runs and fails with 28P01.
func NewServer(v *Verifier, channelBinding []byte) *Server {
	if v == nil {
		secret := make([]byte, 32)
		rand.Read(secret)
		v = MockVerifier("", secret)
	}
	var cb []byte
	if len(channelBinding) > 0 {
		cb = append([]byte(nil), channelBinding...)
	}
	return &Server{v: v, cb: cb}
}

// Mechanisms lists the SASL mechanisms to offer in AuthenticationSASL, in
// order of preference, as PostgreSQL does: -PLUS first when channel binding
// is possible.
func (s *Server) Mechanisms() []string {
	if s.cb != nil {
		return []string{MechanismSCRAMPlus, MechanismSCRAM}
	}
	return []string{MechanismSCRAM}
}

// Start reads the client's SASLInitialResponse (mechanism and
// client-first-message, RFC 5802 §7) and returns server-first-message
// "r=<client nonce><server nonce>,s=<salt>,i=<iterations>" (RFC 5802 §5.1).
//
// It refuses, as PostgreSQL does: a mechanism not offered (08P01); the "p"
// flag unless the mechanism is -PLUS, and "n"/"y" when it is (08P01); a
// channel-binding type other than tls-server-end-point (08P01); the "y" flag
// when -PLUS was offered, which means an attacker removed it from the offer
// (RFC 5802 §6, 28000); an authzid or a mandatory extension (0A000); a
// non-printable nonce (08P01).
func (s *Server) Start(mechanism string, clientFirst []byte) (serverFirst []byte, err error) {
	if s.phase != serverInitial {
		s.phase = serverDone
		return nil, outOfOrder("SASLInitialResponse after the exchange started")
	}
	s.phase = serverDone // until proven otherwise
	if e := s.readClientFirst(mechanism, clientFirst); e != nil {
		return nil, e
	}
	s.serverNonce = s.fixedNonce
	if s.serverNonce == "" {
		s.serverNonce = newNonce()
	}
	s.serverFirst = "r=" + s.clientNonce + s.serverNonce +
		",s=" + b64.EncodeToString(s.v.Salt) + ",i=" + strconv.Itoa(s.v.Iterations)
	s.phase = serverStarted
	return []byte(s.serverFirst), nil
}

// readClientFirst parses client-first-message in the order and with the
// errors of read_client_first_message in PostgreSQL's auth-scram.c.
func (s *Server) readClientFirst(mechanism string, msg []byte) *Error {
	switch {
	case mechanism == MechanismSCRAMPlus && s.cb != nil:
		s.plus = true
	case mechanism == MechanismSCRAM:
	default:
		return &Error{Code: CodeProtocolViolation, Message: "client selected an invalid SASL authentication mechanism"}
	}
	if e := checkMessage(msg); e != nil {
		return e
	}
	r := &attrReader{s: string(msg)}

	// gs2-cbind-flag (RFC 5802 §6 and §7).
	s.cbindFlag = r.peek()
	switch s.cbindFlag {
	case 'n', 'y':
		if s.plus {
			return malformed("The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data.")
		}
		if s.cbindFlag == 'y' && s.cb != nil {
			return &Error{Code: CodeInvalidAuthorizationSpec, Message: "SCRAM channel binding negotiation error",
				Detail: "The client supports SCRAM channel binding but thinks the server does not.  However, this server does support channel binding."}
		}
		r.pos++
		if c := r.peek(); c != ',' {
			return malformed(`Comma expected, but found character "` + sanitizeChar(c) + `".`)
		}
		r.pos++
	case 'p':
		if !s.plus {
			return malformed("The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data.")
		}
		name, e := r.expect('p')
		if e != nil {
			return e
		}
		if name != cbType {
			return &Error{Code: CodeProtocolViolation, Message: `unsupported SCRAM channel-binding type "` + sanitizeStr(name) + `"`}
		}
		// expect consumed the comma after the name, so r is now where the
		// optional authzid would start, as after "n," and "y,".
	default:
		return malformed(`Unexpected channel-binding flag "` + sanitizeChar(s.cbindFlag) + `".`)
	}

	// authzid: not supported by PostgreSQL.
	if r.peek() == 'a' {
		return &Error{Code: CodeFeatureNotSupported, Message: "client uses authorization identity, but it is not supported"}
	}
	if c := r.peek(); c != ',' {
		return malformed(`Unexpected attribute "` + sanitizeChar(c) + `" in client-first-message.`)
	}
	r.pos++
	s.clientFirstBare = r.s[r.pos:]

	// reserved-mext: mandatory extensions, none supported (RFC 5802 §7).
	if r.peek() == 'm' {
		return &Error{Code: CodeFeatureNotSupported, Message: "client requires an unsupported SCRAM extension"}
	}
	// username: ignored, PostgreSQL uses the StartupMessage's user.
	if _, e := r.expect('n'); e != nil {
		return e
	}
	nonce, e := r.expect('r')
	if e != nil {
		return e
	}
	if !isPrintable(nonce) {
		return &Error{Code: CodeProtocolViolation, Message: "non-printable characters in SCRAM nonce"}
	}
	s.clientNonce = nonce
	return r.skipExtensions()
}

// Finish reads client-final-message "c=<cbind>,r=<nonce>[,ext],p=<proof>"
// (RFC 5802 §7) and, when the proof verifies, returns server-final-message
// "v=<ServerSignature>" and the ClientKey the proof carries.
//
// Verification (RFC 5802 §3 and §5.1), every comparison in constant time:
// the channel-binding attribute must be the base64 of the gs2 header the
// client sent in client-first-message, followed for -PLUS by pgveil's own
// tls-server-end-point data (else 28000 "SCRAM channel binding check
// failed"); the nonce must be the client's plus the server's (else 08P01);
// then
//
//	ClientSignature := HMAC(StoredKey, AuthMessage)
//	ClientKey       := ClientProof XOR ClientSignature
//	H(ClientKey) == StoredKey, else 28P01
//
// The returned ClientKey is the secret from which Client signs the upstream
// login; the caller must not log or keep it beyond that login.
func (s *Server) Finish(clientFinal []byte) (serverFinal, clientKey []byte, err error) {
	if s.phase != serverStarted {
		s.phase = serverDone
		return nil, nil, outOfOrder("SASLResponse before SASLInitialResponse or after the exchange ended")
	}
	s.phase = serverDone
	withoutProof, proof, nonce, e := s.readClientFinal(clientFinal)
	if e != nil {
		return nil, nil, e
	}
	if !s.nonceMatches(nonce) {
		return nil, nil, &Error{Code: CodeProtocolViolation, Message: "invalid SCRAM response", Detail: "Nonce does not match."}
	}
	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	clientSignature := hmacSHA256(s.v.StoredKey, authMessage)
	key := xor(proof, clientSignature)
	ok := subtle.ConstantTimeCompare(h(key), s.v.StoredKey) == 1
	if !ok || s.v.doomed {
		clear(key)
		return nil, nil, authFailed(s.User)
	}
	serverSignature := hmacSHA256(s.v.ServerKey, authMessage)
	return []byte("v=" + b64.EncodeToString(serverSignature)), key, nil
}

// readClientFinal parses client-final-message as read_client_final_message
// in PostgreSQL's auth-scram.c does, returning
// client-final-message-without-proof, the decoded proof and the nonce.
func (s *Server) readClientFinal(msg []byte) (withoutProof string, proof []byte, nonce string, e *Error) {
	if e := checkMessage(msg); e != nil {
		return "", nil, "", e
	}
	r := &attrReader{s: string(msg)}
	cbind, e := r.expect('c')
	if e != nil {
		return "", nil, "", e
	}
	if s.plus {
		want := b64.EncodeToString(append([]byte(gs2Plus), s.cb...))
		if subtle.ConstantTimeCompare([]byte(cbind), []byte(want)) != 1 {
			return "", nil, "", &Error{Code: CodeInvalidAuthorizationSpec, Message: "SCRAM channel binding check failed"}
		}
	} else {
		// "biws" is base64("n,,"), "eSws" is base64("y,,").
		if !(cbind == "biws" && s.cbindFlag == 'n') && !(cbind == "eSws" && s.cbindFlag == 'y') {
			return "", nil, "", &Error{Code: CodeProtocolViolation, Message: "unexpected SCRAM channel-binding attribute in client-final-message"}
		}
	}
	if nonce, e = r.expect('r'); e != nil {
		return "", nil, "", e
	}
	// Optional extensions, up to the proof, which must come last.
	var start int
	var value string
	for attr := byte(0); attr != 'p'; {
		start = r.pos
		if attr, value, e = r.any(); e != nil {
			return "", nil, "", e
		}
	}
	proof, err := b64.DecodeString(value)
	if err != nil || len(proof) != keyLen {
		return "", nil, "", malformed("Malformed proof in client-final-message.")
	}
	if !r.atEnd() {
		return "", nil, "", malformed("Garbage found at the end of client-final-message.")
	}
	return r.s[:start-1], proof, nonce, nil
}

// nonceMatches compares the client-final nonce with client nonce + server
// nonce in constant time (RFC 5802 §5.1: the server verifies the nonce).
func (s *Server) nonceMatches(nonce string) bool {
	want := s.clientNonce + s.serverNonce
	return subtle.ConstantTimeCompare([]byte(nonce), []byte(want)) == 1
}

// String describes the exchange without secrets.
func (s *Server) String() string {
	mech := MechanismSCRAM
	if s.plus {
		mech = MechanismSCRAMPlus
	}
	return "scram.Server{user=" + s.User + " mechanism=" + mech + "}"
}

// GoString redacts like String, for %#v.
func (s *Server) GoString() string { return s.String() }
