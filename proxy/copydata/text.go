package copydata

import "bytes"

// Text format, https://www.postgresql.org/docs/current/sql-copy.html "Text
// Format": fields separated by the delimiter, a row per line, backslash
// escapes. Parsing follows CopyReadAttributesText, writing follows
// CopyAttributeOutText (src/backend/commands/copyfromparse.c, copyto.c).

func (p *Parser) parseText(row []byte, fields []Field) ([]Field, error) {
	cls := &p.class
	n := len(row)
	i := 0
	for {
		start := i
		escaped := false
		var k uint8
	scan:
		for i < n {
			if k = cls[row[i]]; k == clsPlain {
				i++
				continue
			}
			switch k {
			case clsBackslash:
				if i+1 >= n {
					// A backslash that ends the data is dropped, and
					// it is not part of the field for the NULL check.
					k = clsPlain
					break scan
				}
				switch row[i+1] {
				case '.':
					return fields, errMarkerNotAlone()
				case 0:
					return fields, errNUL()
				}
				escaped = true
				i += 2
			case clsNUL:
				return fields, errNUL()
			default: // delimiter or line end
				break scan
			}
		}
		raw := row[start:i:i]
		var f Field
		switch {
		case string(raw) == p.o.Null:
			f.Null = true
		case p.o.DefaultSet && string(raw) == p.o.Default:
			f.Default = true
		case !escaped:
			f.Value = raw
		default:
			v, err := p.unescapeText(raw)
			if err != nil {
				return fields, err
			}
			f.Value = v
		}
		fields = append(fields, f)
		switch {
		case i >= n || k == clsPlain:
			return fields, nil
		case k == clsEOL:
			return fields, terminatorError(row, i, false)
		}
		i++ // the delimiter
	}
}

// unescapeText resolves the backslash sequences of raw into the scratch
// buffer. raw holds no unpaired trailing backslash and no `\.`.
func (p *Parser) unescapeText(raw []byte) ([]byte, error) {
	p.grow()
	out := p.scratch
	start := len(out)
	for len(raw) > 0 {
		j := bytes.IndexByte(raw, '\\')
		if j < 0 || j+1 >= len(raw) {
			out = append(out, raw...)
			break
		}
		out = append(out, raw[:j]...)
		c := raw[j+1]
		raw = raw[j+2:]
		switch c {
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(c - '0')
			for d := 0; d < 2 && len(raw) > 0 && raw[0] >= '0' && raw[0] <= '7'; d++ {
				v = v<<3 + int(raw[0]-'0')
				raw = raw[1:]
			}
			c = byte(v) // PostgreSQL keeps the low 8 bits of \ooo
			if c == 0 {
				return nil, errNUL()
			}
		case 'x':
			if len(raw) > 0 && isHex(raw[0]) {
				v := unhex(raw[0])
				raw = raw[1:]
				if len(raw) > 0 && isHex(raw[0]) {
					v = v<<4 | unhex(raw[0])
					raw = raw[1:]
				}
				c = v
				if c == 0 {
					return nil, errNUL()
				}
			}
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'v':
			c = '\v'
		}
		out = append(out, c)
	}
	p.scratch = out
	return out[start:len(out):len(out)], nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// textEscape maps the bytes COPY TO writes as a backslash sequence (other
// than the delimiter) to the byte after the backslash.
var textEscape = [256]byte{'\b': 'b', '\f': 'f', '\n': 'n', '\r': 'r', '\t': 't', '\v': 'v', '\\': '\\'}

func appendTextRow(dst []byte, o *Options, fields []Field) []byte {
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
		mark := len(dst)
		dst = appendTextValue(dst, f.Value, o.Delimiter)
		if enc := dst[mark:]; len(f.Value) > 0 && (string(enc) == o.Null || (o.DefaultSet && string(enc) == o.Default)) {
			// \ooo for the first byte makes the raw field differ from
			// the marker while it reads back as the same value.
			c := f.Value[0]
			dst = append(dst[:mark], '\\', '0'+c>>6, '0'+c>>3&7, '0'+c&7)
			dst = appendTextValue(dst, f.Value[1:], o.Delimiter)
		}
	}
	return append(dst, o.EOL.terminator()...)
}

// appendTextValue appends v escaped as CopyAttributeOutText escapes it.
func appendTextValue(dst, v []byte, delim byte) []byte {
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		e := textEscape[c]
		if e == 0 {
			if c != delim {
				continue
			}
			e = c // a control-character delimiter is escaped as itself
		}
		dst = append(dst, v[start:i]...)
		dst = append(dst, '\\', e)
		start = i + 1
	}
	return append(dst, v[start:]...)
}
