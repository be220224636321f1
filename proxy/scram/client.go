package scram

import (
	"bytes"
	"crypto/subtle"
	"math"
	"strconv"
	"strings"
)

// Client is pgveil's side of one SCRAM exchange with the upstream PostgreSQL
// server, acting as the client (RFC 5802 §5, client role). Its phases are:
//
//	NewClientFromKey / NewClientFromPassword
//	  -> First  (SASLInitialResponse data out)
//	  -> Final  (AuthenticationSASLContinue data in, SASLResponse data out)
//	  -> Verify (AuthenticationSASLFinal data in)
//
// Only after Verify returns nil has the server proved it holds the verifier;
// AuthenticationOk must not be trusted before. Any error ends the exchange.
// A Client is used by one goroutine and discarded after Verify.
type Client struct {
	// Credentials: either a ClientKey recovered by Server.Finish together
	// with the verifier it belongs to, or a password.
	clientKey []byte
	v         *Verifier
	password  *string

	user       string // tests only: the "n=" value; PostgreSQL ignores it, libpq sends ""
	fixedNonce string // tests only: client nonce to use instead of a random one

	phase           clientPhase
	err             error  // error from First, reported by Final
	gs2             string // gs2-header sent in client-first-message
	cb              []byte // channel-binding data for "p"
	clientNonce     string
	clientFirstBare string
	serverKey       []byte
	authMessage     string
}

type clientPhase uint8

const (
	clientInitial clientPhase = iota
	clientFirstSent
	clientFinalSent
	clientDone
)

// NewClientFromKey returns a Client that logs in with clientKey, the ClientKey
// that Server.Finish recovered from the user's own proof, instead of a
// password. v is the same role's verifier: its salt and iteration count must
// match what the upstream server sends, and its ServerKey checks the
// server's signature. Both are copied, so the caller may clear its own.
func NewClientFromKey(clientKey []byte, v *Verifier) *Client {
	c := &Client{clientKey: append([]byte(nil), clientKey...)}
	if v != nil {
		c.v = &Verifier{
			Iterations: v.Iterations,
			Salt:       append([]byte(nil), v.Salt...),
			StoredKey:  append([]byte(nil), v.StoredKey...),
			ServerKey:  append([]byte(nil), v.ServerKey...),
		}
	}
	return c
}

// NewClientFromPassword returns a Client that derives its keys from password
// and the salt and iteration count the server sends (RFC 5802 §3). The
// password is used as raw bytes (see normalizePassword on SASLprep). For
// tests and relay tooling.
func NewClientFromPassword(password string) *Client {
	return &Client{password: &password}
}

// SelectMechanism picks the mechanism to answer an upstream
// AuthenticationSASL with: SCRAM-SHA-256-PLUS when it is offered and
// channelBinding is available (TLS to the upstream), else SCRAM-SHA-256.
// It fails when neither is offered.
func SelectMechanism(offered []string, channelBinding []byte) (string, error) {
	var plain bool
	for _, m := range offered {
		if m == MechanismSCRAMPlus && len(channelBinding) > 0 {
			return MechanismSCRAMPlus, nil
		}
		plain = plain || m == MechanismSCRAM
	}
	if plain {
		return MechanismSCRAM, nil
	}
	return "", &Error{Code: CodeProtocolViolation, Message: "upstream server offers no supported SASL mechanism",
		Detail: "pgveil supports " + MechanismSCRAMPlus + " and " + MechanismSCRAM + "."}
}

// First returns client-first-message for mechanism (RFC 5802 §7):
// "<gs2-header>n=,r=<nonce>". The gs2 header follows RFC 5802 §6 as libpq
// does: "p=tls-server-end-point,," for SCRAM-SHA-256-PLUS, with
// channelBinding (TLSServerEndPoint of the upstream server's certificate)
// bound into the final message; for SCRAM-SHA-256, "y,," when channelBinding
// is given (we could bind but the server did not offer it) and "n,," when
// not. An unknown mechanism, or -PLUS without channelBinding, is reported by
// Final.
func (c *Client) First(mechanism string, channelBinding []byte) []byte {
	if c.phase != clientInitial {
		c.err = outOfOrder("First called twice")
		c.phase = clientDone
		return nil
	}
	c.phase = clientFirstSent
	switch {
	case mechanism == MechanismSCRAMPlus && len(channelBinding) > 0:
		c.gs2 = gs2Plus
		c.cb = append([]byte(nil), channelBinding...)
	case mechanism == MechanismSCRAMPlus:
		c.err = &Error{Code: CodeProtocolViolation, Message: "SCRAM-SHA-256-PLUS needs channel binding data",
			Detail: "Pass TLSServerEndPoint of the upstream server's certificate, or choose SCRAM-SHA-256."}
	case mechanism == MechanismSCRAM && len(channelBinding) > 0:
		c.gs2 = gs2Yes
	case mechanism == MechanismSCRAM:
		c.gs2 = gs2None
	default:
		c.err = &Error{Code: CodeProtocolViolation, Message: `unsupported SASL mechanism "` + sanitizeStr(mechanism) + `"`}
	}
	c.clientNonce = c.fixedNonce
	if c.clientNonce == "" {
		c.clientNonce = newNonce()
	}
	c.clientFirstBare = "n=" + escapeSASLName(c.user) + ",r=" + c.clientNonce
	return []byte(c.gs2 + c.clientFirstBare)
}

// Final reads server-first-message "r=<nonce>,s=<salt>,i=<iterations>"
// (RFC 5802 §7) and returns client-final-message
// "c=<cbind-input>,r=<nonce>,p=<ClientProof>" where (RFC 5802 §3)
//
//	ClientSignature := HMAC(StoredKey, AuthMessage), StoredKey = H(ClientKey)
//	ClientProof     := ClientKey XOR ClientSignature
//
// With a recovered ClientKey, the server's salt and iteration count must be
// those of the verifier: otherwise the key belongs to another secret (the
// password was changed, or the verifier came from another server) and Final
// refuses rather than send a proof that must fail.
func (c *Client) Final(serverFirst []byte) ([]byte, error) {
	if c.err != nil {
		c.phase = clientDone
		return nil, c.err
	}
	if c.phase != clientFirstSent {
		c.phase = clientDone
		return nil, outOfOrder("Final called before First or twice")
	}
	c.phase = clientDone
	nonce, salt, iterations, e := c.readServerFirst(serverFirst)
	if e != nil {
		return nil, e
	}
	clientKey, e := c.keys(salt, iterations)
	if e != nil {
		return nil, e
	}
	cbindInput := append([]byte(c.gs2), c.cb...)
	withoutProof := "c=" + b64.EncodeToString(cbindInput) + ",r=" + nonce
	c.authMessage = c.clientFirstBare + "," + string(serverFirst) + "," + withoutProof
	clientSignature := hmacSHA256(h(clientKey), c.authMessage)
	proof := xor(clientKey, clientSignature)
	if c.password != nil {
		clear(clientKey)
	}
	c.phase = clientFinalSent
	return []byte(withoutProof + ",p=" + b64.EncodeToString(proof)), nil
}

// keys returns the ClientKey to sign with, and sets serverKey for Verify.
func (c *Client) keys(salt []byte, iterations int) ([]byte, *Error) {
	if c.password != nil {
		clientKey, serverKey := keysFromPassword(*c.password, salt, iterations)
		c.serverKey = serverKey
		return clientKey, nil
	}
	if c.v == nil || len(c.clientKey) != keyLen {
		return nil, &Error{Code: CodeInvalidAuthorizationSpec, Message: "SCRAM client has no usable ClientKey and verifier"}
	}
	if subtle.ConstantTimeCompare(h(c.clientKey), c.v.StoredKey) != 1 {
		return nil, &Error{Code: CodeInvalidAuthorizationSpec, Message: "ClientKey does not belong to the role's SCRAM verifier",
			Detail: "H(ClientKey) differs from the verifier's StoredKey."}
	}
	if iterations != c.v.Iterations || !bytes.Equal(salt, c.v.Salt) {
		return nil, &Error{Code: CodeInvalidAuthorizationSpec, Message: "upstream SCRAM salt or iteration count differ from the role's verifier",
			Detail: "The ClientKey recovered from the client's proof cannot sign this login; the role's password was probably changed since its verifier was read, or the verifier came from another server."}
	}
	c.serverKey = c.v.ServerKey
	return c.clientKey, nil
}

// readServerFirst parses server-first-message (RFC 5802 §7):
//
//	[reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
//
// The nonce must start with ours and add a non-empty printable server part
// (RFC 5802 §5.1).
func (c *Client) readServerFirst(msg []byte) (nonce string, salt []byte, iterations int, e *Error) {
	if e := checkMessage(msg); e != nil {
		return "", nil, 0, e
	}
	r := &attrReader{s: string(msg)}
	if r.peek() == 'm' {
		return "", nil, 0, &Error{Code: CodeFeatureNotSupported, Message: "server requires an unsupported SCRAM extension"}
	}
	if nonce, e = r.expect('r'); e != nil {
		return "", nil, 0, e
	}
	if len(nonce) <= len(c.clientNonce) || !strings.HasPrefix(nonce, c.clientNonce) || !isPrintable(nonce) {
		return "", nil, 0, &Error{Code: CodeProtocolViolation, Message: "invalid SCRAM response", Detail: "Nonce does not match."}
	}
	saltStr, e := r.expect('s')
	if e != nil {
		return "", nil, 0, e
	}
	salt, err := b64.DecodeString(saltStr)
	if err != nil || len(salt) == 0 {
		return "", nil, 0, malformed("Invalid salt in server-first-message.")
	}
	iterStr, e := r.expect('i')
	if e != nil {
		return "", nil, 0, e
	}
	iterations, err = strconv.Atoi(iterStr)
	if err != nil || iterations < 1 || iterations > math.MaxInt32 || iterStr[0] == '+' {
		return "", nil, 0, malformed("Invalid iteration count in server-first-message.")
	}
	if e := r.skipExtensions(); e != nil {
		return "", nil, 0, e
	}
	return nonce, salt, iterations, nil
}

// Verify reads server-final-message (RFC 5802 §7): "v=<ServerSignature>"
// or "e=<server-error-value>". It checks in constant time that
//
//	ServerSignature == HMAC(ServerKey, AuthMessage)
//
// which proves the server holds the role's verifier (RFC 5802 §3, §9).
func (c *Client) Verify(serverFinal []byte) error {
	if c.phase != clientFinalSent {
		c.phase = clientDone
		return outOfOrder("Verify called before Final or twice")
	}
	c.phase = clientDone
	if e := checkMessage(serverFinal); e != nil {
		return e
	}
	r := &attrReader{s: string(serverFinal)}
	attr, value, e := r.any()
	if e != nil {
		return e
	}
	switch attr {
	case 'e':
		return &Error{Code: CodeInvalidAuthorizationSpec, Message: "upstream server rejected the SCRAM exchange",
			Detail: `Server error "` + sanitizeStr(value) + `".`}
	case 'v':
	default:
		return malformed(`Expected attribute "v" but found "` + sanitizeChar(attr) + `".`)
	}
	if e := r.skipExtensions(); e != nil {
		return e
	}
	got, err := b64.DecodeString(value)
	if err != nil || len(got) != keyLen {
		return malformed("Malformed server signature in server-final-message.")
	}
	want := hmacSHA256(c.serverKey, c.authMessage)
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return &Error{Code: CodeInvalidAuthorizationSpec, Message: "incorrect server signature",
			Detail: "The upstream server does not hold the role's SCRAM verifier."}
	}
	return nil
}

// String describes the client without secrets.
func (c *Client) String() string {
	how := "key"
	if c.password != nil {
		how = "password"
	}
	return "scram.Client{credential=" + how + " gs2=" + c.gs2 + "}"
}

// GoString redacts like String, for %#v.
func (c *Client) GoString() string { return c.String() }
