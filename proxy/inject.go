package proxy

import (
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Refusing a statement without breaking the session.
//
// When pgveil refuses a client message (a statement it cannot encrypt, a
// parameter it cannot convert), the client must see an ErrorResponse in the
// right place of the response stream, and the server must be in the state
// it would be in had the error been its own: an open transaction block
// aborted, the rest of an extended-protocol batch skipped until Sync. So
// pgveil does not answer by itself; it makes the server raise the error.
// The refused message is replaced by a statement that raises it:
//
//	simple Query:    DO $$ BEGIN RAISE EXCEPTION USING ERRCODE=…, MESSAGE=… END $$
//	extended (Parse, Bind, …): Close S/P, Parse, Bind, Execute of that DO,
//	                 under a name of pgveil's own; the responses to all but
//	                 the Execute are suppressed, and the Execute's
//	                 ErrorResponse answers the refused message.
//
// In an aborted transaction the server answers the injected Parse with its
// own 25P02, exactly what it would have said to the client's message.
// The error carries only identifiers (table, column, remedy), never a value.

// refuseName is the statement and portal name pgveil uses for injected errors.
const refuseName = "__pgveil_refuse"

// raiseSQL is a DO block raising e with its SQLSTATE, message, detail,
// hint and the schema, table and column it names.
func raiseSQL(e *pgError) string {
	code := e.Code
	if !validSQLState(code) {
		code = codeInternalError
	}
	var b strings.Builder
	b.WriteString("DO ")
	body := "BEGIN RAISE EXCEPTION USING ERRCODE = '" + code + "', MESSAGE = " + dollarQuote(e.Message)
	if e.Detail != "" {
		body += ", DETAIL = " + dollarQuote(e.Detail)
	}
	if e.Hint != "" {
		body += ", HINT = " + dollarQuote(e.Hint)
	}
	for _, f := range [...]struct{ opt, v string }{{"SCHEMA", e.Schema}, {"TABLE", e.Table}, {"COLUMN", e.Column}} {
		if f.v != "" {
			body += ", " + f.opt + " = " + dollarQuote(f.v)
		}
	}
	body += "; END"
	b.WriteString(dollarQuote(body))
	return b.String()
}

// dollarQuote quotes s with a dollar tag that does not occur in it, so no
// escaping rule (standard_conforming_strings) matters.
func dollarQuote(s string) string {
	for i := 0; ; i++ {
		tag := "$pgv" + strconv.Itoa(i) + "$"
		if !strings.Contains(s, tag) {
			return tag + s + tag
		}
	}
}

func validSQLState(code string) bool {
	if len(code) != 5 {
		return false
	}
	for i := 0; i < 5; i++ {
		c := code[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// injectQueryError replaces a refused simple Query.
// The Query that goes instead ends the unnamed statement, as the client's
// would have (PostgreSQL drops it at every simple Query): pgveil's own
// for it is closed.
func (s *session) injectQueryError(e *pgError) {
	s.countRefusal(e)
	s.copyRefused()
	s.dropUnnamed()
	s.t.push(pending{kind: pendQuery, injected: true, revalidate: e.Routine == revalidateRoutine})
	s.sw.Write(appendQuery(s.scratch[:0], raiseSQL(e)))
}

// injectExtendedError replaces a refused extended-protocol message.
func (s *session) injectExtendedError(e *pgError) {
	s.refusing = true
	s.countRefusal(e)
	s.copyRefused()
	b := s.scratch[:0]
	b = appendDescribeOrClose(b, 'C', 'S', refuseName)
	b = appendDescribeOrClose(b, 'C', 'P', refuseName)
	b = appendParse(b, refuseName, raiseSQL(e), nil)
	b = appendBind(b, &bindMsg{Portal: []byte(refuseName), Statement: []byte(refuseName)})
	b = appendExecute(b, refuseName, 0)
	s.t.push(pending{kind: pendCloseStmt, suppress: true})
	s.t.push(pending{kind: pendClosePortal, suppress: true})
	s.t.push(pending{kind: pendParse, suppress: true})
	s.t.push(pending{kind: pendBind, suppress: true})
	s.t.push(pending{kind: pendExecute, injected: true, revalidate: e.Routine == revalidateRoutine})
	s.sw.Write(b)
	s.scratch = b[:0]
}

func (s *session) countRefusal(e *pgError) {
	s.srv.metrics.Statements.WithLabelValues("refused").Inc()
	s.log.Info("statement refused", zap.String("sqlstate", e.Code), zap.String("reason", e.Message))
}

// cleanInjectedError drops the PL/pgSQL context and source position fields
// from the server's ErrorResponse for an injected error, so the client sees
// pgveil's error as if raised directly.
func cleanInjectedError(body []byte, dst []byte) []byte {
	return cleanInjected(body, "", dst)
}

// cleanInjected is cleanInjectedError that names routine (the R field)
// when it is not "": RAISE cannot set it.
func cleanInjected(body []byte, routine string, dst []byte) []byte {
	for off := 0; off < len(body) && body[off] != 0; {
		f := body[off]
		v, next, ok := cstringBytes(body, off+1)
		if !ok {
			return append(dst, body...)
		}
		switch f {
		case 'W', 'F', 'L', 'R', 'P', 'p', 'q':
		default:
			dst = append(dst, f)
			dst = append(append(dst, v...), 0)
		}
		off = next
	}
	if routine != "" {
		dst = append(append(append(dst, 'R'), routine...), 0)
	}
	return append(dst, 0)
}
