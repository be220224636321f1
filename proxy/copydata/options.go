package copydata

import "strings"

// Format is COPY's FORMAT option.
type Format uint8

// The formats of https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9
const (
	Text Format = iota
	CSV
	Binary
)

func (f Format) String() string {
	switch f {
	case Text:
		return "text"
	case CSV:
		return "csv"
	case Binary:
		return "binary"
	}
	return "unknown"
}

// EOL is a line terminator style. COPY FROM accepts "\n", "\r\n" or "\r"
// but complains unless every line of the input ends alike; COPY TO STDOUT
// always writes "\n".
type EOL uint8

// Line terminator styles.
const (
	EOLUnknown EOL = iota // not seen yet; AppendRow writes "\n"
	LF                    // "\n"
	CRLF                  // "\r\n"
	CR                    // "\r"
)

func (e EOL) String() string {
	switch e {
	case LF:
		return `\n`
	case CRLF:
		return `\r\n`
	case CR:
		return `\r`
	}
	return "unknown"
}

func (e EOL) terminator() string {
	switch e {
	case CRLF:
		return "\r\n"
	case CR:
		return "\r"
	}
	return "\n"
}

// DefaultMaxRow is the longest row a Splitter accepts when Options.MaxRow is
// zero: 1 GiB, PostgreSQL's own limit on a line (MaxAllocSize).
const DefaultMaxRow = 1 << 30

// maxFieldSize is the largest binary field PostgreSQL can hold (MaxAllocSize - 1).
const maxFieldSize = 1<<30 - 1

// Options are the options of one COPY statement, as the caller read them
// from it. The zero value (after WithDefaults) is COPY's default: text,
// tab-delimited, NULL as \N.
//
// FORCE_QUOTE, FORCE_NOT_NULL and FORCE_NULL name columns; the caller maps
// them to field positions (ForceQuote[i] is field i of a row).
type Options struct {
	Format    Format
	Delimiter byte // DELIMITER; 0 = '\t' in text, ',' in CSV
	// Null is the NULL string. When NullSet is false WithDefaults sets the
	// format's default (`\N` in text, "" in CSV); set NullSet for an
	// explicit empty NULL string in text format.
	Null    string
	NullSet bool
	// Default is the DEFAULT marker (PostgreSQL 16+, COPY FROM only): a
	// field equal to it asks for the column's default. Used only when
	// DefaultSet; ParseRow reports such fields as Field.Default.
	Default    string
	DefaultSet bool
	Quote      byte // QUOTE, CSV only; 0 = '"'
	Escape     byte // ESCAPE, CSV only; 0 = Quote
	// Header: the first line is a header (HEADER true or MATCH; text
	// format from PostgreSQL 15). The Splitter reports it as KindHeader.
	Header bool

	ForceQuote   []bool // FORCE_QUOTE, CSV COPY TO: AppendRow quotes every non-NULL value of field i
	ForceNotNull []bool // FORCE_NOT_NULL, CSV COPY FROM: ParseRow reads an unquoted NULL string in field i as a value
	ForceNull    []bool // FORCE_NULL, CSV COPY FROM: ParseRow reads a quoted NULL string in field i as NULL

	// EOL is the terminator AppendRow writes; EOLUnknown means "\n". A
	// proxy that re-encodes some rows of a client's stream and passes
	// others (header, end marker) through sets it to Splitter.EOL(), since
	// PostgreSQL rejects mixed line endings.
	EOL EOL
	// ServerVersion is the major version of the server the data goes to or
	// comes from (ParameterStatus server_version); 0 means 13–17. From 18
	// a `\.` line in CSV is data, not the end-of-data marker.
	ServerVersion int
	// MaxRow bounds a row's length in bytes, terminator included, and a
	// binary header; 0 means DefaultMaxRow.
	MaxRow int
}

// WithDefaults returns o with every unset option given PostgreSQL's default
// for its format.
func (o Options) WithDefaults() Options {
	switch o.Format {
	case Text:
		if o.Delimiter == 0 {
			o.Delimiter = '\t'
		}
		if !o.NullSet {
			o.Null = `\N`
		}
	case CSV:
		if o.Delimiter == 0 {
			o.Delimiter = ','
		}
		if !o.NullSet {
			o.Null = ""
		}
		if o.Quote == 0 {
			o.Quote = '"'
		}
		if o.Escape == 0 {
			o.Escape = o.Quote
		}
	}
	o.NullSet = o.Format != Binary
	if o.MaxRow == 0 {
		o.MaxRow = DefaultMaxRow
	}
	return o
}

// textDelimiterForbidden are the delimiters text format refuses, because
// they would be read as part of a backslash sequence.
const textDelimiterForbidden = `\.abcdefghijklmnopqrstuvwxyz0123456789`

// Validate checks o (after WithDefaults) as PostgreSQL's ProcessCopyOptions
// does, and adds the checks without which AppendRow could not write every
// value unambiguously: a text NULL or DEFAULT string must not contain `\.`,
// and a CSV NULL string must not be `\.`.
func (o Options) Validate() error {
	if o.MaxRow < 0 {
		return optionError("MaxRow must not be negative")
	}
	switch o.Format {
	case Binary:
		switch {
		case o.Delimiter != 0:
			return optionError("cannot specify DELIMITER in BINARY mode")
		case o.Null != "" || o.Default != "" || o.DefaultSet:
			return optionError("cannot specify NULL or DEFAULT in BINARY mode")
		case o.Header:
			return optionError("cannot specify HEADER in BINARY mode")
		}
		return o.checkCSVOnly()
	case Text:
		if err := o.checkCSVOnly(); err != nil {
			return err
		}
		if strings.IndexByte(textDelimiterForbidden, o.Delimiter) >= 0 {
			return optionError("COPY delimiter cannot be " + quoteByte(o.Delimiter))
		}
		if strings.Contains(o.Null, `\.`) || (o.DefaultSet && strings.Contains(o.Default, `\.`)) {
			return optionError(`COPY NULL and DEFAULT must not contain the end-of-copy marker \.`)
		}
	case CSV:
		if o.Delimiter == o.Quote {
			return optionError("COPY delimiter and quote must be different")
		}
		if o.Quote == '\r' || o.Quote == '\n' || o.Escape == '\r' || o.Escape == '\n' {
			return optionError("COPY quote and escape cannot be newline or carriage return")
		}
		if strings.IndexByte(o.Null, o.Quote) >= 0 {
			return optionError("CSV quote character must not appear in the NULL specification")
		}
		if o.DefaultSet && strings.IndexByte(o.Default, o.Quote) >= 0 {
			return optionError("CSV quote character must not appear in the DEFAULT specification")
		}
		if o.Null == `\.` {
			return optionError(`COPY NULL must not be the end-of-copy marker \.`)
		}
	default:
		return optionError("unknown COPY format")
	}
	if o.Delimiter == '\r' || o.Delimiter == '\n' {
		return optionError("COPY delimiter cannot be newline or carriage return")
	}
	if o.Delimiter == 0 {
		return optionError("COPY delimiter must be a single one-byte character")
	}
	if strings.ContainsAny(o.Null, "\r\n") {
		return optionError("COPY null representation cannot use newline or carriage return")
	}
	if strings.IndexByte(o.Null, o.Delimiter) >= 0 {
		return optionError("COPY delimiter character must not appear in the NULL specification")
	}
	if o.DefaultSet {
		if strings.ContainsAny(o.Default, "\r\n") {
			return optionError("COPY default representation cannot use newline or carriage return")
		}
		if strings.IndexByte(o.Default, o.Delimiter) >= 0 {
			return optionError("COPY delimiter character must not appear in the DEFAULT specification")
		}
		if o.Default == o.Null {
			return optionError("NULL specification and DEFAULT specification cannot be the same")
		}
	}
	return nil
}

func (o Options) checkCSVOnly() error {
	switch {
	case o.Quote != 0:
		return optionError("COPY QUOTE requires CSV mode")
	case o.Escape != 0:
		return optionError("COPY ESCAPE requires CSV mode")
	case o.ForceQuote != nil:
		return optionError("COPY FORCE_QUOTE requires CSV mode")
	case o.ForceNotNull != nil:
		return optionError("COPY FORCE_NOT_NULL requires CSV mode")
	case o.ForceNull != nil:
		return optionError("COPY FORCE_NULL requires CSV mode")
	}
	return nil
}

// quoteByte names an option byte in an error message (options are not data).
func quoteByte(b byte) string {
	if b >= 0x20 && b < 0x7f {
		return `"` + string(rune(b)) + `"`
	}
	const hex = "0123456789abcdef"
	return "0x" + string([]byte{hex[b>>4], hex[b&15]})
}

// csvEndMarker reports whether a `\.` line ends CSV data on this server.
func (o Options) csvEndMarker() bool { return o.ServerVersion < 18 }

// IsEndMarker reports whether row, as a Splitter returned it, is the
// end-of-data marker: `\.` alone on a line with its terminator. In CSV it is
// one only before PostgreSQL 18. Callers pass the marker on untouched.
// Splitter.Kind says the same with the line reader's context and is the one
// to prefer.
func (o Options) IsEndMarker(row []byte) bool {
	switch o.Format {
	case Text:
	case CSV:
		if !o.csvEndMarker() {
			return false
		}
	default:
		return false
	}
	s := string(row)
	return s == "\\.\n" || s == "\\.\r\n" || s == "\\.\r"
}

// EncodingSafe reports whether a client_encoding (or COPY ENCODING) name
// is one whose multibyte characters never contain an ASCII byte, which the
// line reader needs. PostgreSQL's client-only encodings SJIS,
// SHIFT_JIS_2004, BIG5, GBK, GB18030, UHC and JOHAB (and their aliases) are
// not. Names compare as PostgreSQL compares them: case and punctuation
// ignored.
func EncodingSafe(name string) bool {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	switch b.String() {
	case "sjis", "shiftjis", "mskanji", "win932", "windows932",
		"shiftjis2004",
		"big5", "win950", "windows950",
		"gbk", "win936", "windows936", "cp936",
		"gb18030",
		"uhc", "win949", "windows949",
		"johab":
		return false
	}
	return true
}
