package copydata

// RowKind says what a row the Splitter returned is.
type RowKind uint8

// Kinds of rows.
const (
	// KindData is a data row: a text or CSV line, or a binary tuple.
	KindData RowKind = iota
	// KindHeader is the first line when Options.Header is set (text, CSV),
	// or the binary file header (signature, flags, extension).
	KindHeader
	// KindEnd ends the data: the `\.` line of text (and CSV before
	// PostgreSQL 18) or the binary file trailer. PostgreSQL ignores
	// whatever follows `\.` up to CopyDone, so the Splitter discards it
	// (see Discarded); after a binary trailer more data is an error.
	KindEnd
)

func (k RowKind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindHeader:
		return "header"
	case KindEnd:
		return "end"
	}
	return "unknown"
}

// Splitter turns a stream of CopyData payloads into complete rows. Call Feed
// with each payload, then Next until it reports false; at CopyDone call End
// for the last row if it had no terminator. After Next reports false, Err
// says whether the stream is malformed; once it is, the Splitter stays failed.
//
// A Splitter holds at most one partial row plus the payload last fed, and
// fails a row longer than Options.MaxRow instead of buffering it. Scanning
// is linear: a row fed one byte at a time is not rescanned.
//
// Rows are slices of the Splitter's buffer, terminator included, valid until
// the next Feed or End (Next does not move the buffer).
type Splitter struct {
	o   Options
	max int
	err error

	buf []byte
	r   int // start of the pending row in buf
	i   int // where scanning of the pending row resumes
	lim int // where the current line scan stops (scanLine)

	// text and CSV line reader state, as CopyReadLineText keeps it
	eol        EOL
	inQuote    bool
	lastWasEsc bool
	special    *[256]bool

	// binary state
	gotHeader  bool
	fieldsLeft int // fields of the pending tuple not scanned yet; -1 = count not read

	rows      int64 // rows returned, the binary header not counted
	kind      RowKind
	done      bool // end marker or trailer returned
	ended     bool // End called
	discarded int64
}

// NewSplitter returns a Splitter for a stream in the format and with the
// options of o (defaults applied). Invalid options make Next report false
// and Err the reason.
func NewSplitter(o Options) *Splitter {
	o = o.WithDefaults()
	s := &Splitter{o: o, max: o.MaxRow, fieldsLeft: -1}
	s.err = o.Validate()
	switch o.Format {
	case Text:
		s.special = &textSpecial
	case CSV:
		t := new([256]bool)
		for _, c := range []byte{0, '\\', '\r', '\n', o.Quote, o.Escape} {
			t[c] = true
		}
		s.special = t
	}
	return s
}

var textSpecial = func() (t [256]bool) {
	for _, c := range []byte{0, '\\', '\r', '\n'} {
		t[c] = true
	}
	return t
}()

// Options returns the options the Splitter uses, defaults applied.
func (s *Splitter) Options() Options { return s.o }

// Feed appends one CopyData payload. The Splitter copies what it keeps.
// After the end-of-data marker, text and CSV payloads are discarded (as
// PostgreSQL discards them); after a binary trailer any byte is an error.
func (s *Splitter) Feed(chunk []byte) {
	if s.err != nil || len(chunk) == 0 {
		return
	}
	if s.ended {
		s.err = formatError("COPY data after CopyDone")
		return
	}
	if s.done {
		if s.o.Format == Binary {
			s.err = s.lineErr(formatError("received copy data after EOF marker"))
			return
		}
		s.discarded += int64(len(chunk))
		return
	}
	if s.r > 0 {
		n := copy(s.buf, s.buf[s.r:])
		s.buf = s.buf[:n]
		s.i -= s.r
		s.r = 0
		// Give back the memory of a past long row.
		if cap(s.buf) > 1<<20 && cap(s.buf) > 4*(n+len(chunk)) {
			s.buf = append(make([]byte, 0, 2*(n+len(chunk))), s.buf...)
		}
	}
	if len(s.buf) > s.max {
		// The caller fed again without draining Next; do not grow further.
		s.err = s.lineErr(errRowTooLong(s.max))
		return
	}
	s.buf = append(s.buf, chunk...)
}

// Next returns the next complete row, or false when more data is needed,
// the data ended, or the stream is malformed (see Err). Kind tells what the
// row is. For text and CSV the row includes its line terminator as sent;
// for binary it is the header, one tuple (field count and fields) or the
// trailer.
func (s *Splitter) Next() (row []byte, ok bool) {
	if s.err != nil || s.done || s.ended {
		return nil, false
	}
	var end int
	var kind RowKind
	var err error
	eol := s.eol
	if s.o.Format == Binary {
		end, kind, ok, err = s.scanBinary(false)
	} else {
		end, kind, ok, err = s.scanLine(false)
	}
	if err != nil {
		s.err = s.lineErr(err)
		return nil, false
	}
	if !ok {
		if len(s.buf)-s.r > s.max {
			s.err = s.lineErr(errRowTooLong(s.max))
		}
		return nil, false
	}
	if end-s.r > s.max {
		// Fail as a cut before the terminator would have: the
		// terminator's style is not learnt from a row that is refused.
		s.eol = eol
		s.err = s.lineErr(errRowTooLong(s.max))
		return nil, false
	}
	return s.take(end, kind), true
}

// take returns buf[r:end] as the next row of the given kind.
func (s *Splitter) take(end int, kind RowKind) []byte {
	row := s.buf[s.r:end:end]
	s.r, s.i = end, end
	s.inQuote, s.lastWasEsc = false, false
	s.fieldsLeft = -1
	if kind == KindHeader && s.o.Format == Binary {
		s.gotHeader = true
	} else {
		s.rows++
	}
	if kind == KindData && s.o.Header && s.o.Format != Binary && s.rows == 1 {
		kind = KindHeader
	}
	s.kind = kind
	if kind == KindEnd {
		s.done = true
		if rest := len(s.buf) - end; rest > 0 {
			if s.o.Format == Binary {
				s.err = s.lineErr(formatError("received copy data after EOF marker"))
			} else {
				s.discarded += int64(rest)
			}
		}
	}
	return row
}

// End is called at CopyDone. It returns the last row when the data ended
// without a terminator (PostgreSQL accepts a last line without newline) or
// with a "\r" whose meaning waited for the next byte; Kind describes it.
// An unterminated CSV quote, an incomplete binary header or tuple, or a
// `\.` without its newline is an error. Call Next until it reports false
// before End.
func (s *Splitter) End() (rest []byte, err error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.ended {
		return nil, nil
	}
	defer func() { s.ended = true }()
	if s.done {
		return nil, nil
	}
	var end int
	var kind RowKind
	var ok bool
	eol := s.eol
	if s.o.Format == Binary {
		end, kind, ok, err = s.scanBinary(true)
	} else {
		end, kind, ok, err = s.scanLine(true)
	}
	if err == nil && ok && end < len(s.buf) {
		err = formatError("End called with complete rows not taken by Next")
	}
	if err == nil && (ok && end-s.r > s.max || !ok && len(s.buf)-s.r > s.max) {
		s.eol = eol
		err = errRowTooLong(s.max)
	}
	if err != nil {
		s.err = s.lineErr(err)
		return nil, s.err
	}
	if !ok {
		return nil, nil
	}
	row := s.take(end, kind)
	return row, s.err
}

// Err returns why the stream is malformed, or nil.
func (s *Splitter) Err() error { return s.err }

// Kind returns what the row last returned by Next or End is.
func (s *Splitter) Kind() RowKind { return s.kind }

// Line returns the 1-based number of the row last returned, as PostgreSQL
// numbers lines in its COPY error context: text and CSV count the header
// line, binary counts tuples only (the header is 0).
func (s *Splitter) Line() int64 { return s.rows }

// EOL returns the line terminator style of the stream, known from the first
// terminated line on (EOLUnknown before, and always for binary).
func (s *Splitter) EOL() EOL { return s.eol }

// Discarded returns how many bytes after the end-of-data marker were
// dropped.
func (s *Splitter) Discarded() int64 { return s.discarded }

// Done reports whether the end-of-data marker or binary trailer was seen.
func (s *Splitter) Done() bool { return s.done }

func (s *Splitter) lineErr(err error) error { return atLine(err, s.rows+1) }
