package copydata

// CSV format, https://www.postgresql.org/docs/current/sql-copy.html "CSV
// Format". Parsing follows CopyReadAttributesCSV: a quote anywhere in a
// field opens a quoted section, inside which the escape character before
// the quote or escape character stands for that character; writing follows
// CopyAttributeOutCSV.

func (p *Parser) parseCSV(row []byte, fields []Field) ([]Field, error) {
	cls := &p.class
	quote, esc := p.o.Quote, p.o.Escape
	n := len(row)
	i := 0
	for {
		start := i
		run := i     // start of the unquoted run not yet copied to scratch
		vstart := -1 // start of the value in scratch once a quote is seen
		var k uint8
		for {
			for i < n && cls[row[i]] == clsPlain {
				i++
			}
			if i >= n {
				k = clsPlain
				break
			}
			if k = cls[row[i]]; k == clsNUL {
				return fields, errNUL()
			}
			if k != clsQuote {
				break // delimiter or line end
			}
			if vstart < 0 {
				p.grow()
				vstart = len(p.scratch)
			}
			p.scratch = append(p.scratch, row[run:i]...)
			i++
			for {
				j := i
				for j < n && row[j] != quote && row[j] != esc && row[j] != 0 {
					j++
				}
				p.scratch = append(p.scratch, row[i:j]...)
				if j >= n {
					return fields, errUnterminatedQuote()
				}
				c := row[j]
				if c == 0 {
					return fields, errNUL()
				}
				i = j + 1
				if c == esc && i < n && (row[i] == esc || row[i] == quote) {
					p.scratch = append(p.scratch, row[i])
					i++
					continue
				}
				if c == quote {
					break
				}
				p.scratch = append(p.scratch, c) // an escape before anything else is itself
			}
			run = i
		}
		var f Field
		raw := row[start:i:i]
		switch {
		case vstart >= 0:
			p.scratch = append(p.scratch, row[run:i]...)
			f.Value = p.scratch[vstart:len(p.scratch):len(p.scratch)]
		case string(raw) == p.o.Null:
			f.Null = true
		case p.o.DefaultSet && string(raw) == p.o.Default:
			f.Default = true
		default:
			f.Value = raw
		}
		idx := len(fields)
		if f.Null && forced(p.o.ForceNotNull, idx) {
			f = Field{Value: p.null}
		} else if !f.Null && !f.Default && forced(p.o.ForceNull, idx) && string(f.Value) == p.o.Null {
			f = Field{Null: true}
		}
		fields = append(fields, f)
		switch k {
		case clsPlain:
			return fields, nil
		case clsEOL:
			return fields, terminatorError(row, i, true)
		}
		i++ // the delimiter
	}
}

func appendCSVRow(dst []byte, o *Options, fields []Field) []byte {
	line := len(dst)
	dst = appendCSVFields(dst, o, fields, -1)
	if string(dst[line:]) == `\.` {
		// The line would read as the end-of-data marker: quote the first
		// value (COPY TO does so for a single column).
		for k, f := range fields {
			if !f.Null && !f.Default {
				dst = appendCSVFields(dst[:line], o, fields, k)
				break
			}
		}
	}
	return append(dst, o.EOL.terminator()...)
}

// appendCSVFields appends fields, quoting field force in any case.
func appendCSVFields(dst []byte, o *Options, fields []Field, force int) []byte {
	for k, f := range fields {
		if k > 0 {
			dst = append(dst, o.Delimiter)
		}
		switch {
		case f.Null:
			dst = append(dst, o.Null...)
			continue
		case f.Default && o.DefaultSet:
			dst = append(dst, o.Default...)
			continue
		}
		v := f.Value
		if k != force && !forced(o.ForceQuote, k) && string(v) != o.Null &&
			!(o.DefaultSet && string(v) == o.Default) && !csvNeedsQuote(v, o) {
			dst = append(dst, v...)
			continue
		}
		dst = append(dst, o.Quote)
		start := 0
		for i, c := range v {
			if c == o.Quote || c == o.Escape {
				dst = append(dst, v[start:i]...)
				dst = append(dst, o.Escape)
				start = i
			}
		}
		dst = append(dst, v[start:]...)
		dst = append(dst, o.Quote)
	}
	return dst
}

func csvNeedsQuote(v []byte, o *Options) bool {
	for _, c := range v {
		if c == o.Delimiter || c == o.Quote || c == '\n' || c == '\r' {
			return true
		}
	}
	return false
}
