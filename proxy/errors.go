package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/jackc/pgproto3/v2"
)

// SQLSTATE codes pgveil itself reports.
const (
	codeConnectionFailure   = "08006"
	codeCannotConnect       = "08001"
	codeProtocolViolation   = "08P01"
	codeAdminShutdown       = "57P01"
	codeTooManyConnections  = "53300"
	codeInternalError       = "XX000"
	codeInvalidPassword     = "28P01"
	codeInvalidAuthSpec     = "28000"
	codeFeatureNotSupported = "0A000"
	codeProgramLimit        = "54000"
)

// pgError is an error that becomes an ErrorResponse at the boundary. It
// carries its SQLSTATE from the moment it is made.
type pgError struct {
	Severity string // ERROR or FATAL
	Code     string
	Message  string
	Detail   string
	Hint     string
	// Schema, Table and Column name the object concerned, when there is
	// one (the ErrorResponse fields s, t and c, as the server sets them).
	Schema, Table, Column string
	// Routine is the ErrorResponse's R field (the server's function that
	// raised it), set where drivers act on it (staleStatement).
	Routine string
	cause   error
}

func (e *pgError) Error() string {
	s := e.Severity + " " + e.Code + ": " + e.Message
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *pgError) Unwrap() error { return e.cause }

// SQLState returns the error's SQLSTATE code.
func (e *pgError) SQLState() string { return e.Code }

func fatal(code, msg string) *pgError { return &pgError{Severity: "FATAL", Code: code, Message: msg} }

// staleStatement is the refusal of a protocol-level prepared statement
// whose plan a catalog change or a table's migration state made wrong.
// It is worded as PostgreSQL words its own refusal of a prepared
// statement whose plan a schema change invalidated (0A000 "cached plan
// must not change result type", raised by RevalidateCachedQuery): pgx
// (any error), pgjdbc and ActiveRecord (that routine) prepare the
// statement again and go on, as they do after DDL on a direct
// connection. Why is pgveil's own account.
func staleStatement(name []byte, why string) *pgError {
	return &pgError{Severity: "ERROR", Code: "0A000", Message: "cached plan must not change result type",
		Detail:  fmt.Sprintf("pgveil: prepared statement %q %s", name, why),
		Hint:    "prepare it again (DEALLOCATE it, or use a new name); most drivers do so by themselves",
		Routine: revalidateRoutine}
}

// revalidateRoutine is the function of PostgreSQL that refuses a prepared
// statement a schema change invalidated.
const revalidateRoutine = "RevalidateCachedQuery"

// sqlStater is implemented by errors from rewrite, keysource and scram.
type sqlStater interface{ SQLState() string }

// toErrorResponse turns any error into the ErrorResponse a client sees.
// Internal details stay in the log; the client gets the SQLSTATE and a
// message that is safe to show (never a value or key).
func toErrorResponse(err error) *pgproto3.ErrorResponse {
	var pe *pgError
	if errors.As(err, &pe) {
		return &pgproto3.ErrorResponse{Severity: pe.Severity, SeverityUnlocalized: pe.Severity, Code: pe.Code, Message: pe.Message, Detail: pe.Detail, Hint: pe.Hint,
			SchemaName: pe.Schema, TableName: pe.Table, ColumnName: pe.Column, Routine: pe.Routine}
	}
	var tl *tooLargeError
	if errors.As(err, &tl) {
		return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: codeProgramLimit, Message: tl.Error(),
			Hint: "raise " + tl.knob + " in the pgveil config if such messages are expected"}
	}
	var pv *protocolError
	if errors.As(err, &pv) {
		return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: codeProtocolViolation, Message: pv.Error()}
	}
	var ss sqlStater
	if errors.As(err, &ss) {
		return &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: ss.SQLState(), Message: err.Error()}
	}
	return &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: codeInternalError, Message: "pgveil internal error"}
}

// isClosedConn reports errors that only mean the peer went away.
func isClosedConn(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne *net.OpError
	return errors.As(err, &ne)
}

// sqlstateClass is the two-character class of a SQLSTATE, the metrics label.
func sqlstateClass(code string) string {
	if len(code) < 2 {
		return "??"
	}
	return code[:2]
}
