// Package scram implements the password-proof exchanges pgveil speaks on
// both legs of a connection in auth mode "scram" (DESIGN.md, "Authentication
// and TLS"): SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677,
// channel binding type tls-server-end-point of RFC 5929) and md5, exactly as
// PostgreSQL speaks them (protocol docs, "SASL Authentication":
// https://www.postgresql.org/docs/current/sasl-authentication.html).
//
// The package is pure message logic over []byte: no sockets, no pgproto3.
// The proxy carries the bytes in AuthenticationSASL* and SASL*Response
// messages. The flow it serves:
//
//	client                      pgveil                         Postgres
//	  |   AuthenticationSASL      |                                |
//	  |<-- Server.Mechanisms() ---|                                |
//	  |-- SASLInitialResponse --->| Server.Start                   |
//	  |<- SASLContinue(s-first) --|                                |
//	  |-- SASLResponse(c-final) ->| Server.Finish -> ClientKey     |
//	  |                           |--- StartupMessage ------------>|
//	  |                           |<-- AuthenticationSASL ---------|
//	  |                           |--- Client.First -------------->|
//	  |                           |<-- SASLContinue(s-first) ------|
//	  |                           |--- Client.Final -------------->|
//	  |                           |<-- SASLFinal(s-final) ---------|
//	  |                           |    Client.Verify               |
//	  |<- SASLFinal(Finish's v=) -|<-- AuthenticationOk -----------|
//	  |<- AuthenticationOk -------|                                |
//
// pgveil never knows a password. Server verifies the client's proof against
// the role's verifier from pg_authid (StoredKey, ServerKey) and, in doing so,
// recovers the ClientKey (RFC 5802 §3: ClientKey = ClientProof XOR
// ClientSignature). Because a SCRAM proof depends only on ClientKey and the
// AuthMessage, Client can then sign a fresh exchange with the upstream server
// from that key alone, provided the upstream uses the same salt and iteration
// count, which it does when the verifier was read from that same server.
//
// Server follows PostgreSQL's src/backend/libpq/auth-scram.c in the order of
// its checks, its message and detail texts and its SQLSTATEs, so a client
// sees the same errors through pgveil as it would directly. Every error is an
// *Error with an SQLState method.
//
// Secrets (keys, proofs, passwords, verifiers) never appear in errors or in
// the String forms of this package's types.
package scram
