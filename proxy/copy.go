package proxy

// COPY on encrypted tables: being written (proxy/copydata); until then every
// COPY plan is refused at planning time (copyUnsupported), so nothing here
// ever sees an encrypted column's data.

func copyUnsupported() *pgError {
	return &pgError{Severity: "ERROR", Code: codeFeatureNotSupported, Message: "pgveil: COPY on a table with encrypted columns is not available in this build"}
}

func (s *session) handleCopyIn(typ byte) error { return s.cr.forwardBody(s.sw) }

func (s *session) decodeCopy(typ byte, cur pending) error { return s.sr.forwardBody(s.cw) }
