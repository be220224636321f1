package copydata

import (
	"errors"
	"strconv"
)

// SQLSTATE codes of the errors this package makes.
const (
	CodeBadCopyFileFormat   = "22P04" // bad_copy_file_format: what PostgreSQL reports for malformed COPY data
	CodeCharNotInRepertoire = "22021" // character_not_in_repertoire: a 0x00 byte
	CodeProgramLimit        = "54000" // program_limit_exceeded: a row over Options.MaxRow
	CodeInvalidParameter    = "22023" // invalid_parameter_value: inconsistent Options
)

var (
	// ErrShort says that a binary header or tuple is not complete yet: call
	// again with more bytes.
	ErrShort = errors.New("copydata: incomplete binary data")
	// ErrTrailer is what ParseBinaryTuple returns when it meets the file
	// trailer (a field count of -1) instead of a tuple.
	ErrTrailer = errors.New("copydata: binary file trailer")
)

// Error is malformed COPY data or inconsistent options. Its message never
// contains data from a row: it names the line and what is wrong.
type Error struct {
	Code string // SQLSTATE
	Msg  string // PostgreSQL's wording where PostgreSQL has the same check
	Hint string
	// Line is the 1-based number of the line (text, CSV: header included)
	// or tuple (binary) the error is in, as PostgreSQL counts them in the
	// CONTEXT of its COPY errors; 0 when not known (ParseRow alone).
	Line int64
}

func (e *Error) Error() string {
	s := "copydata: "
	if e.Line > 0 {
		s += "line " + strconv.FormatInt(e.Line, 10) + ": "
	}
	return s + e.Msg
}

// SQLState returns the error's SQLSTATE code.
func (e *Error) SQLState() string { return e.Code }

func formatError(msg string) *Error { return &Error{Code: CodeBadCopyFileFormat, Msg: msg} }

func optionError(msg string) *Error { return &Error{Code: CodeInvalidParameter, Msg: msg} }

// atLine sets the line number of err if it is an *Error without one.
func atLine(err error, line int64) error {
	var e *Error
	if errors.As(err, &e) && e.Line == 0 {
		c := *e
		c.Line = line
		return &c
	}
	return err
}

// Errors of the text and CSV line reader, worded as PostgreSQL words them.
func errLiteralCR(csv bool) *Error {
	if csv {
		return &Error{Code: CodeBadCopyFileFormat, Msg: "unquoted carriage return found in data", Hint: "Use quoted CSV field to represent carriage return."}
	}
	return &Error{Code: CodeBadCopyFileFormat, Msg: "literal carriage return found in data", Hint: `Use "\r" to represent carriage return.`}
}

func errLiteralNL(csv bool) *Error {
	if csv {
		return &Error{Code: CodeBadCopyFileFormat, Msg: "unquoted newline found in data", Hint: "Use quoted CSV field to represent newline."}
	}
	return &Error{Code: CodeBadCopyFileFormat, Msg: "literal newline found in data", Hint: `Use "\n" to represent newline.`}
}

func errMarkerNotAlone() *Error {
	return formatError(`end-of-copy marker is not alone on its line`)
}

func errMarkerStyle() *Error {
	return formatError("end-of-copy marker does not match previous newline style")
}

func errNUL() *Error {
	return &Error{Code: CodeCharNotInRepertoire, Msg: "invalid byte sequence: COPY data contains a 0x00 byte"}
}

func errUnterminatedQuote() *Error { return formatError("unterminated CSV quoted field") }

func errRowTooLong(max int) *Error {
	return &Error{Code: CodeProgramLimit, Msg: "COPY row is longer than " + strconv.Itoa(max) + " bytes"}
}
