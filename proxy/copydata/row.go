package copydata

import "errors"

// Field is one field of a row.
type Field struct {
	Value []byte // the decoded value; nil or empty when Null or Default
	Null  bool
	// Default: the field was the DEFAULT marker (Options.Default,
	// PostgreSQL 16+): the column's default is to be used. AppendRow writes
	// the marker back.
	Default bool
}

// Parser decodes rows of one COPY stream without allocating in steady
// state. It is not safe for concurrent use.
type Parser struct {
	o     Options
	err   error
	class [256]uint8 // byte classes of the field scanner (text.go, csv.go)
	null  []byte     // o.Null, the value FORCE_NOT_NULL gives
	// scratch holds values that needed unescaping; reset by every Parse.
	scratch []byte
	need    int // capacity scratch must have for the current row
}

// Byte classes of the field scanners.
const (
	clsPlain uint8 = iota
	clsDelim
	clsEOL       // '\r' or '\n'
	clsBackslash // text
	clsQuote     // CSV
	clsNUL       // 0x00, which no database encoding admits
)

// NewParser returns a Parser for rows with the options of o (defaults
// applied). Invalid options make every Parse fail.
func NewParser(o Options) *Parser {
	p := new(Parser)
	p.init(o)
	return p
}

func (p *Parser) init(o Options) {
	p.o = o.WithDefaults()
	p.err = p.o.Validate()
	if p.err != nil || p.o.Format == Binary {
		return
	}
	p.class['\r'], p.class['\n'] = clsEOL, clsEOL
	p.class[0] = clsNUL
	p.class[p.o.Delimiter] = clsDelim
	if p.o.Format == Text {
		p.class['\\'] = clsBackslash
	} else {
		p.class[p.o.Quote] = clsQuote
	}
	if len(p.o.ForceNotNull) > 0 {
		p.null = []byte(p.o.Null)
	}
}

// Options returns the options the Parser uses, defaults applied.
func (p *Parser) Options() Options { return p.o }

// Parse decodes one row, as the Splitter returned it (its terminator, if
// any, is stripped), into fields, reusing fields' backing array.
//
// Text: the NULL string is recognised on the raw field before any
// backslash is resolved, then \b \f \n \r \t \v, octal \o \oo \ooo, hex \xh
// \xhh are resolved and any other backslashed byte stands for itself; a
// backslash ending the data is dropped, as PostgreSQL drops it. CSV:
// quoted sections (anywhere in a field) and escapes within them are
// resolved; an unquoted field equal to the NULL string is NULL, a quoted one
// is a value; FORCE_NOT_NULL and FORCE_NULL apply. Binary: the row is one
// tuple (ParseBinaryTuple) and must be exactly one.
//
// Values alias row or the Parser's scratch buffer: they are valid until the
// next Parse and while row is unchanged. An error never contains data.
func (p *Parser) Parse(row []byte, fields []Field) ([]Field, error) {
	if p.err != nil {
		return fields[:0], p.err
	}
	p.scratch = p.scratch[:0]
	p.need = len(row)
	switch p.o.Format {
	case Text:
		return p.parseText(row, fields[:0])
	case CSV:
		return p.parseCSV(row, fields[:0])
	}
	fields, n, err := ParseBinaryTuple(row, fields)
	switch {
	case errors.Is(err, ErrShort):
		return fields[:0], formatError("unexpected EOF in COPY data")
	case errors.Is(err, ErrTrailer):
		return fields[:0], formatError("binary file trailer where a tuple was expected")
	case err != nil:
		return fields[:0], err
	case n != len(row):
		return fields[:0], formatError("extra data after binary tuple")
	}
	return fields, nil
}

// grow makes sure scratch can take the rest of the row's values without
// moving, so that values already handed out stay put.
func (p *Parser) grow() {
	if cap(p.scratch)-len(p.scratch) < p.need {
		p.scratch = make([]byte, 0, len(p.scratch)+p.need)
	}
}

// ParseRow decodes one row with options o, as Parser.Parse does. Values
// alias row or a buffer allocated for the row's escaped values; use a
// Parser to decode many rows without allocating.
func ParseRow(o Options, row []byte, fields []Field) ([]Field, error) {
	var p Parser
	p.init(o)
	return p.Parse(row, fields)
}

// AppendRow appends fields encoded with options o and o.EOL's terminator
// ("\n" by default), so that PostgreSQL reads back exactly these values:
//
// Text, as COPY TO writes it: backslash, the delimiter, and \b \f \n \r \t
// \v are backslash-escaped, other bytes are written as they are, NULL is the
// NULL string. A value whose encoding would equal the NULL or DEFAULT string
// has its first byte written as an octal escape (COPY TO does not do this,
// and such a value would read back as NULL). With an empty NULL string in text format
// an empty value cannot be told from NULL and reads back as NULL.
//
// CSV, as COPY TO writes it: a value is quoted when it contains the
// delimiter, the quote, "\r" or "\n", when it equals the NULL or DEFAULT
// string (so "" is quoted by default), when FORCE_QUOTE names its field, or
// when the line would otherwise be `\.`; inside quotes the quote and escape
// characters are preceded by the escape character. NULL is the NULL string,
// unquoted.
//
// Binary: one tuple (AppendBinaryTuple), no terminator.
func AppendRow(dst []byte, o Options, fields []Field) []byte {
	o = o.WithDefaults()
	switch o.Format {
	case Text:
		return appendTextRow(dst, &o, fields)
	case CSV:
		return appendCSVRow(dst, &o, fields)
	}
	return AppendBinaryTuple(dst, fields)
}

// terminatorError checks what follows an unquoted '\r' or '\n' at i, the
// end of a line: nothing, or "\n" after "\r".
func terminatorError(row []byte, i int, csv bool) error {
	rest := row[i+1:]
	if row[i] == '\n' {
		if len(rest) == 0 {
			return nil
		}
		return errLiteralNL(csv)
	}
	if len(rest) == 0 || (len(rest) == 1 && rest[0] == '\n') {
		return nil
	}
	return errLiteralCR(csv)
}

// forced reports flags[i], false beyond the slice.
func forced(flags []bool, i int) bool { return i < len(flags) && flags[i] }
