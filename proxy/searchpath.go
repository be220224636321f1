package proxy

import (
	"fmt"
	"strings"
)

// initSearchPath asks the upstream session for its effective search_path
// (role and database settings, startup options included) before the relay
// starts, so unqualified table names resolve as the server resolves them.
// The client has already received ReadyForQuery; anything it sends waits
// in the socket until the relay reads it, after this exchange.
func (s *session) initSearchPath() error {
	writeMsg(s.sw, 'Q', []byte("SHOW search_path\x00"))
	if err := s.sw.Flush(); err != nil {
		return err
	}
	var value string
	for {
		typ, _, err := s.sr.readHeader()
		if err != nil {
			return err
		}
		body, err := s.sr.readBody()
		if err != nil {
			return err
		}
		switch typ {
		case 'D':
			var d dataRow
			if err := d.parse(body); err != nil || len(d.values) != 1 {
				return fmt.Errorf("unexpected SHOW search_path row")
			}
			value = string(d.values[0])
		case 'E':
			return fmt.Errorf("SHOW search_path failed: %s", errorField(body, 'M'))
		case 'S':
			s.noteParameterStatus(body)
			writeMsg(s.cw, 'S', body) // the client must see every ParameterStatus
		case 'Z':
			s.initialSearchPath = expandUser(parseSearchPath(value), s.user)
			s.searchPath = s.initialSearchPath
			return s.cw.Flush()
		}
	}
}

// parseSearchPath splits a search_path value ("$user", public, "My Schema")
// into schema names, unquoting quoted identifiers.
func parseSearchPath(v string) []string {
	var out []string
	for _, part := range splitOutsideQuotes(v, ',') {
		p := strings.TrimSpace(part)
		if len(p) >= 2 && p[0] == '"' && p[len(p)-1] == '"' {
			p = strings.ReplaceAll(p[1:len(p)-1], `""`, `"`)
		}
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	quoted := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case sep:
			if !quoted {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

// noteParameterStatus follows the settings that change how SQL and values
// are read: standard_conforming_strings (backslashes in literals) and
// client_encoding (pgveil seals UTF-8 text).
func (s *session) noteParameterStatus(body []byte) {
	name, off, ok := cstringBytes(body, 0)
	if !ok {
		return
	}
	v, _, _ := cstringBytes(body, off)
	switch string(name) {
	case "standard_conforming_strings":
		s.backslash.Store(string(v) == "off")
	case "client_encoding":
		s.nonUTF8.Store(!strings.EqualFold(string(v), "UTF8") && !strings.EqualFold(string(v), "UTF-8"))
	}
}

// encodingRefusal refuses statements on encrypted columns while the client
// sends text in an encoding other than UTF-8: the same value would be
// sealed and indexed as different bytes than a UTF-8 client's.
func encodingRefusal() *pgError {
	return &pgError{Severity: "ERROR", Code: "22021", Message: "pgveil encrypts text as UTF-8, but this session's client_encoding is not UTF8",
		Hint: "SET client_encoding TO 'UTF8' (or connect with client_encoding=UTF8)"}
}
