package rewrite

import (
	"fmt"
	"unicode/utf8"

	"github.com/pgveil/pgveil/policy"
)

// SQLSTATE codes the planner refuses with. Class 0A is "pgveil cannot do
// this on an encrypted column"; class 42 is a statement that misuses one.
const (
	CodeFeatureNotSupported = "0A000" // an operation on an encrypted column pgveil cannot rewrite
	CodeSyntaxError         = "42601" // unparseable text that may touch a configured table
	CodeAmbiguousColumn     = "42702" // a name pgveil cannot resolve with certainty
	CodeDatatypeMismatch    = "42804" // a cast on a value that does not fit the column's logical type
	CodeGeneratedAlways     = "428C9" // the client writes a blind-index column pgveil maintains
	CodeUndefinedParameter  = "42P02" // $0, or a $n beyond what Bind can carry
	CodeUndefinedTable      = "42P01" // a configured table's column qualified by a name not in FROM
	CodeDuplicateAlias      = "42712" // two FROM items of one name, one with an encrypted column
	CodeUndefinedColumn     = "42703" // a written column a configured table does not have
	CodeInvalidColumnRef    = "42P10" // ORDER BY k / GROUP BY k beyond the select list (a hidden field would answer it)
	CodeInternalError       = "XX000" // a planner bug; the statement is refused (fail closed)
	CodeProtocolViolation   = "08P01" // statement text PostgreSQL could not have received (a NUL byte)
)

// Error is a refusal, born with the SQLSTATE and the fields the proxy puts
// into an ErrorResponse. Message names the table and column; Hint says
// what to do instead. It never carries a literal's value.
type Error struct {
	Code    string
	Message string
	Detail  string
	Hint    string
	// Schema, Table and Column name the encrypted column concerned, when there is one.
	Schema, Table, Column string
	// Position is the 1-based character (not byte) position in the client's
	// string of the offending token, or 0.
	Position int
	// Stale: the refusal rests on the catalog snapshot lacking a relation,
	// which may have been created since; planning again with a newer
	// snapshot may succeed.
	Stale bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
}

// SQLState returns the error's SQLSTATE code.
func (e *Error) SQLState() string { return e.Code }

// errorf makes an *Error with a formatted message.
func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: "pgveil: " + fmt.Sprintf(format, args...)}
}

// colErr makes an *Error about column col.
func colErr(code string, col *policy.Column, hint, format string, args ...any) *Error {
	e := errorf(code, format, args...)
	e.Hint = hint
	if col != nil {
		e.Schema, e.Table, e.Column = col.Table.Schema, col.Table.Name, col.Name
	}
	return e
}

// tableErr makes an *Error about table t.
func tableErr(code string, t *policy.Table, hint, format string, args ...any) *Error {
	e := errorf(code, format, args...)
	e.Hint = hint
	if t != nil {
		e.Schema, e.Table = t.Schema, t.Name
	}
	return e
}

// at sets the error's position from a byte offset into sql; it keeps an
// earlier, more precise position.
func (e *Error) at(sql string, offset int32) *Error {
	if e.Position == 0 && offset >= 0 && int(offset) <= len(sql) {
		e.Position = utf8.RuneCountInString(sql[:offset]) + 1
	}
	return e
}

// blindIndexHint is the remedy for a comparison on a column without a blind index.
func blindIndexHint(col *policy.Column) string {
	return fmt.Sprintf("add blind_index (column: %s_bidx) to tables.%s.columns.%s in the pgveil policy to allow equality lookups, or compare another column",
		col.Name, col.Table.QualifiedName(), col.Name)
}

// unsupported is the common refusal: operation what on column col.
func unsupported(col *policy.Column, what, hint string) *Error {
	return colErr(CodeFeatureNotSupported, col, hint,
		"%s is not supported on encrypted column %s: the database holds only ciphertext", what, col.QualifiedName())
}
