package scram

// SQLSTATE codes used by this package, as PostgreSQL reports the same
// conditions during authentication.
const (
	CodeProtocolViolation        = "08P01" // malformed or out-of-order SCRAM message
	CodeInvalidPassword          = "28P01" // wrong password (proof did not verify)
	CodeInvalidAuthorizationSpec = "28000" // channel binding failure or downgrade
	CodeFeatureNotSupported      = "0A000" // authzid, mandatory extensions
)

// Error is an authentication failure with the SQLSTATE, message and detail
// PostgreSQL would send in its ErrorResponse for the same condition. The proxy
// turns it into a FATAL ErrorResponse at its boundary.
//
// Message and Detail never contain secrets: no keys, proofs, nonces or
// passwords, only the user name and, for malformed input, a single sanitized
// character or a truncated attribute name as PostgreSQL does.
type Error struct {
	Code    string // SQLSTATE
	Message string // primary message, as PostgreSQL words it
	Detail  string // optional detail
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return e.Message
	}
	return e.Message + ": " + e.Detail
}

// SQLState returns the SQLSTATE code, the same method name pgconn's
// PgError uses so callers can type-assert on an interface.
func (e *Error) SQLState() string { return e.Code }

// malformed is PostgreSQL's generic protocol violation for a SCRAM message
// that does not parse.
func malformed(detail string) *Error {
	return &Error{Code: CodeProtocolViolation, Message: "malformed SCRAM message", Detail: detail}
}

// authFailed is the error PostgreSQL reports when the proof does not verify
// (or the role has no usable verifier): the same text for every cause, so a
// client learns nothing about which roles exist.
func authFailed(user string) *Error {
	return &Error{Code: CodeInvalidPassword, Message: `password authentication failed for user "` + user + `"`}
}

// outOfOrder reports a method called in the wrong phase of an exchange.
func outOfOrder(what string) *Error {
	return &Error{Code: CodeProtocolViolation, Message: "SCRAM exchange out of order", Detail: what}
}
