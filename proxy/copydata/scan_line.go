package copydata

// This file is the Splitter's text and CSV line reader: CopyReadLineText of
// PostgreSQL's src/backend/commands/copyfromparse.c, made resumable. Where
// PostgreSQL peeks at the next byte (after a backslash, after "\r", after
// `\.`) and the byte has not arrived, the scan stops before the byte that
// needs the look-ahead, with no state changed, and resumes there after the
// next Feed. At End (final) a missing byte reads as PostgreSQL's '\0' pad.
//
// Differences from PostgreSQL, all of them refusals: a NUL byte is refused
// here (PostgreSQL refuses it while verifying the encoding); in text format
// `\.` with data before it on its line is refused (PostgreSQL 13–17 end the
// data there, 18 refuses it too).

// scanLine finds the end of the line that starts at s.r. ok is false when
// more data is needed (never when final).
//
// The scan sees one byte past the longest row allowed, no more (s.lim), so
// that what it reports does not depend on how the stream was cut: past the
// limit the row is too long, whatever else is wrong with it (the caller
// reports that).
func (s *Splitter) scanLine(final bool) (end int, kind RowKind, ok bool, err error) {
	s.lim = len(s.buf)
	if len(s.buf)-s.r > s.max {
		s.lim, final = s.r+s.max+1, false
	}
	if s.o.Format == CSV {
		end, kind, ok, err = s.scanCSV(final)
	} else {
		end, kind, ok, err = s.scanText(final)
	}
	if err != nil || ok || !final {
		return end, kind, ok, err
	}
	// At the end of the data: what is left is the last line, unterminated.
	if s.o.Format == CSV && s.inQuote {
		return 0, 0, false, errUnterminatedQuote()
	}
	if len(s.buf) > s.r {
		return len(s.buf), KindData, true, nil
	}
	return 0, 0, false, nil
}

// peek returns buf[j]; more when it has not arrived and more may come; at
// the end of the data a missing byte is 0, as in PostgreSQL's padded buffer.
func (s *Splitter) peek(j int, final bool) (c byte, more bool) {
	if j < s.lim {
		return s.buf[j], false
	}
	return 0, !final
}

// lineEnd handles an unquoted "\r" or "\n" at i: the end of the line, whose
// terminator style must match the stream's.
func (s *Splitter) lineEnd(i int, final, csv bool) (end int, more bool, err error) {
	if s.buf[i] == '\n' {
		if s.eol == CR || s.eol == CRLF {
			return 0, false, errLiteralNL(csv)
		}
		s.eol = LF
		return i + 1, false, nil
	}
	switch s.eol {
	case LF:
		return 0, false, errLiteralCR(csv)
	case CR:
		return i + 1, false, nil
	}
	// Unknown or CRLF: is it "\r\n"?
	c, more := s.peek(i+1, final)
	if more {
		return 0, true, nil
	}
	if c == '\n' {
		s.eol = CRLF
		return i + 2, false, nil
	}
	if s.eol == CRLF {
		return 0, false, errLiteralCR(csv)
	}
	s.eol = CR
	return i + 1, false, nil
}

// markerEnd checks the bytes after a `\.` that starts at the beginning of
// the line at j-2. It returns the end of the marker line; not when the bytes
// do not make a marker (CSV only: the line is data); text errors are
// PostgreSQL's.
func (s *Splitter) markerEnd(j int, final, csv bool) (end int, not, more bool, err error) {
	var c byte
	if s.eol == CRLF {
		if c, more = s.peek(j, final); more {
			return 0, false, true, nil
		}
		j++
		if c == '\n' {
			if csv {
				return 0, true, false, nil
			}
			return 0, false, false, errMarkerStyle()
		}
		if c != '\r' {
			if csv {
				return 0, true, false, nil
			}
			return 0, false, false, errMarkerNotAlone()
		}
	}
	if c, more = s.peek(j, final); more {
		return 0, false, true, nil
	}
	j++
	if c != '\r' && c != '\n' {
		if csv {
			return 0, true, false, nil
		}
		return 0, false, false, errMarkerNotAlone()
	}
	if (s.eol == LF && c != '\n') || (s.eol == CRLF && c != '\n') || (s.eol == CR && c != '\r') {
		return 0, false, false, errMarkerStyle()
	}
	return j, false, false, nil
}

func (s *Splitter) scanText(final bool) (end int, kind RowKind, ok bool, err error) {
	b := s.buf
	special := s.special
	i, n := s.i, s.lim
	for i < n {
		c := b[i]
		if !special[c] {
			i++
			continue
		}
		switch c {
		case 0:
			return 0, 0, false, errNUL()
		case '\n', '\r':
			end, more, err := s.lineEnd(i, final, false)
			if more {
				s.i = i
				return 0, 0, false, nil
			}
			return end, KindData, err == nil, err
		case '\\':
			c2, more := s.peek(i+1, final)
			if more {
				s.i = i
				return 0, 0, false, nil
			}
			if i+1 >= n {
				i++ // a backslash just before the end of data is data
				continue
			}
			if c2 == 0 {
				return 0, 0, false, errNUL()
			}
			if c2 != '.' {
				i += 2 // anything after a backslash is part of the field
				continue
			}
			end, _, more, err := s.markerEnd(i+2, final, false)
			if more {
				s.i = i
				return 0, 0, false, nil
			}
			if err != nil {
				return 0, 0, false, err
			}
			if i > s.r {
				return 0, 0, false, errMarkerNotAlone()
			}
			return end, KindEnd, true, nil
		}
	}
	s.i = i
	return 0, 0, false, nil
}

func (s *Splitter) scanCSV(final bool) (end int, kind RowKind, ok bool, err error) {
	b := s.buf
	special := s.special
	quote, esc := s.o.Quote, s.o.Escape
	hasEsc := esc != quote
	marker := s.o.csvEndMarker()
	i, n := s.i, s.lim
	inQuote, lastWasEsc := s.inQuote, s.lastWasEsc
	defer func() { s.inQuote, s.lastWasEsc = inQuote, lastWasEsc }()
	for i < n {
		c := b[i]
		if !special[c] {
			lastWasEsc = false
			i++
			continue
		}
		if c == 0 {
			return 0, 0, false, errNUL()
		}
		// PostgreSQL fetches the byte after '\\' and '\r' before it
		// changes the quote state.
		if (c == '\\' || c == '\r') && i+1 >= n && !final {
			s.i = i
			return 0, 0, false, nil
		}
		if c == '\\' && marker && i == s.r && i+1 < n && b[i+1] == '.' {
			end, not, more, err := s.markerEnd(i+2, final, true)
			if more {
				s.i = i
				return 0, 0, false, nil
			}
			if err != nil {
				return 0, 0, false, err
			}
			if !not {
				return end, KindEnd, true, nil
			}
		}
		if hasEsc && inQuote && c == esc {
			lastWasEsc = !lastWasEsc
		}
		if c == quote && !lastWasEsc {
			inQuote = !inQuote
		}
		if !hasEsc || c != esc {
			lastWasEsc = false
		}
		if (c == '\r' || c == '\n') && !inQuote {
			end, more, err := s.lineEnd(i, final, true)
			if more {
				// Only a "\r" at the end of the data can get here, and
				// the look-ahead check above already waited for it.
				s.i = i
				return 0, 0, false, nil
			}
			return end, KindData, err == nil, err
		}
		i++
	}
	s.i = i
	return 0, 0, false, nil
}
