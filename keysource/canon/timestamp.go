package canon

import (
	"encoding/binary"
	"math"
	"strconv"

	"github.com/pgveil/pgveil/policy"
)

// timestampText parses "YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]][zone][ BC]",
// infinity, -infinity and epoch. Fractions beyond microseconds are rounded
// as PostgreSQL rounds them (rint of the fraction times 10^6). For timestamp a zone is accepted and ignored, as PostgreSQL
// does. For timestamptz a zone is required: "Z", "UTC", "GMT", or a numeric
// offset (+hh, +hh:mm, +hhmm, +hh:mm:ss), because a value without one means
// the session's TimeZone, which pgveil cannot know. The canonical
// timestamptz is in UTC: "2024-01-02 03:04:05.5+00".
func timestampText(t policy.LogicalType, src, dst []byte) ([]byte, error) {
	tz := t == policy.TypeTimestamptz
	s := trimSpace(src)
	if pos, neg, epoch := special(s); pos || neg || epoch {
		switch {
		case pos:
			return append(dst, "infinity"...), nil
		case neg:
			return append(dst, "-infinity"...), nil
		}
		return appendTimestamp(dst, daysFromCivil(1970, 1, 1)*usPerDay, tz), nil
	}
	p := &scanner{s: s}
	y, mo, d, err := p.date(t)
	if err != nil {
		return nil, err
	}
	us, offset, hasZone, err := p.timeOfDay(t)
	if err != nil {
		return nil, err
	}
	bc := p.era()
	p.skipSpace()
	if !p.done() {
		return nil, invalid(t, "invalid input syntax")
	}
	if tz && !hasZone {
		return nil, invalid(t, "needs an explicit time zone offset (Z, UTC or +hh:mm): pgveil cannot know the session TimeZone")
	}
	days, err := resolveDate(t, y, mo, d, bc)
	if err != nil {
		return nil, err
	}
	v := days*usPerDay + us
	if tz {
		v -= offset
	}
	if !timestampDays(days) || v < minTimestamp || v >= endTimestamp {
		return nil, invalid(t, "timestamp out of range")
	}
	return appendTimestamp(dst, v, tz), nil
}

// clock reads HH:MM[:SS[.frac]] as microseconds since midnight.
func (p *scanner) clock(t policy.LogicalType) (int64, error) {
	h, _, ok := p.number(2)
	if !ok || p.peek() != ':' {
		return 0, invalid(t, "invalid time")
	}
	p.i++
	m, n, ok := p.number(2)
	if !ok || n != 2 {
		return 0, invalid(t, "invalid time")
	}
	var sec, frac int64
	if p.peek() == ':' {
		p.i++
		if sec, n, ok = p.number(2); !ok || n != 2 {
			return 0, invalid(t, "invalid time")
		}
		if p.peek() == '.' {
			start := p.i
			p.i++
			for !p.done() && isDigit(p.peek()) {
				p.i++
			}
			if p.i == start+1 {
				return 0, invalid(t, "invalid time")
			}
			// As PostgreSQL does: strtod of the fraction, times 10^6, rint.
			f, err := strconv.ParseFloat(string(p.s[start:p.i]), 64)
			if err != nil {
				return 0, invalid(t, "invalid time")
			}
			frac = int64(math.RoundToEven(f * 1e6))
		}
	}
	if h > 24 || m > 59 || sec > 60 || (h == 24 && (m != 0 || sec != 0 || frac != 0)) {
		return 0, invalid(t, "date/time field value out of range")
	}
	return ((h*60+m)*60+sec)*1_000_000 + frac, nil
}

// zone reads an optional zone; the offset is in microseconds east of UTC.
func (p *scanner) zone(t policy.LogicalType) (int64, bool, error) {
	save := p.i
	p.skipSpace()
	rest := p.s[p.i:]
	switch {
	case len(rest) >= 1 && (rest[0] == 'Z' || rest[0] == 'z') && (len(rest) == 1 || !isLetter(rest[1])):
		p.i++
		return 0, true, nil
	case len(rest) >= 3 && (equalFold(rest[:3], "utc") || equalFold(rest[:3], "gmt")) && (len(rest) == 3 || !isLetter(rest[3])):
		p.i += 3
		return 0, true, nil
	case len(rest) >= 1 && (rest[0] == '+' || rest[0] == '-'):
		sign := int64(1)
		if rest[0] == '-' {
			sign = -1
		}
		p.i++
		h, n, ok := p.number(2)
		if !ok {
			return 0, false, invalid(t, "invalid time zone")
		}
		var m, s int64
		if n == 2 && isDigit(p.peek()) { // +hhmm
			if m, n, ok = p.number(2); !ok || n != 2 {
				return 0, false, invalid(t, "invalid time zone")
			}
		} else if p.peek() == ':' {
			p.i++
			if m, n, ok = p.number(2); !ok || n != 2 {
				return 0, false, invalid(t, "invalid time zone")
			}
			if p.peek() == ':' {
				p.i++
				if s, n, ok = p.number(2); !ok || n != 2 {
					return 0, false, invalid(t, "invalid time zone")
				}
			}
		}
		if h > 15 || m > 59 || s > 59 {
			return 0, false, invalid(t, "time zone displacement out of range")
		}
		return sign * ((h*60+m)*60 + s) * 1_000_000, true, nil
	}
	p.i = save
	return 0, false, nil
}

func isLetter(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }

func timestampBinary(t policy.LogicalType, src, dst []byte) ([]byte, error) {
	if len(src) != 8 {
		return nil, binaryLength(t, len(src), 8)
	}
	v := int64(binary.BigEndian.Uint64(src))
	switch {
	case v == tsInfinity:
		return append(dst, "infinity"...), nil
	case v == tsNegInfinity:
		return append(dst, "-infinity"...), nil
	case v < minTimestamp || v >= endTimestamp:
		return nil, invalid(t, "timestamp out of range")
	}
	return appendTimestamp(dst, v, t == policy.TypeTimestamptz), nil
}

// appendTimestamp prints like PostgreSQL (DateStyle ISO, TimeZone UTC):
// "YYYY-MM-DD HH:MM:SS", then ".ffffff" without trailing zeros when there
// is a fraction, "+00" for timestamptz, " BC" for years before 1.
func appendTimestamp(dst []byte, us int64, tz bool) []byte {
	days := floorDiv(us, usPerDay)
	rem := us - days*usPerDay
	y, m, d := civilFromDays(days)
	bc := y <= 0
	if bc {
		y = 1 - y
	}
	dst = appendPadded(dst, y, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, m, 2)
	dst = append(dst, '-')
	dst = appendPadded(dst, d, 2)
	dst = append(dst, ' ')
	secs, frac := rem/1_000_000, rem%1_000_000
	dst = appendPadded(dst, secs/3600, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, secs/60%60, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, secs%60, 2)
	if frac != 0 {
		n := 6
		for frac%10 == 0 {
			frac /= 10
			n--
		}
		dst = append(dst, '.')
		dst = appendPadded(dst, frac, n)
	}
	if tz {
		dst = append(dst, "+00"...)
	}
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst
}

func timestampBinaryOut(t policy.LogicalType, pt, dst []byte) ([]byte, error) {
	var v int64
	switch string(pt) {
	case "infinity":
		v = tsInfinity
	case "-infinity":
		v = tsNegInfinity
	default:
		var err error
		if v, err = parseCanonicalTimestamp(t, pt); err != nil {
			return nil, err
		}
	}
	return binary.BigEndian.AppendUint64(dst, uint64(v)), nil
}

// parseCanonicalTimestamp reads back what appendTimestamp wrote.
func parseCanonicalTimestamp(t policy.LogicalType, pt []byte) (int64, error) {
	p := &scanner{s: pt}
	y, mo, d, err := p.date(t)
	if err != nil || p.peek() != ' ' {
		return 0, invalid(t, "not a canonical timestamp")
	}
	p.i++
	us, err := p.clock(t)
	if err != nil {
		return 0, invalid(t, "not a canonical timestamp")
	}
	if t == policy.TypeTimestamptz {
		if off, ok, err := p.zone(t); err != nil || !ok || off != 0 {
			return 0, invalid(t, "not a canonical timestamp")
		}
	}
	bc := p.era()
	if !p.done() {
		return 0, invalid(t, "not a canonical timestamp")
	}
	days, err := resolveDate(t, y, mo, d, bc)
	if err != nil || !timestampDays(days) {
		return 0, invalid(t, "not a canonical timestamp")
	}
	return days*usPerDay + us, nil
}

// timestampDays reports whether days (since 2000-01-01) is near enough
// the timestamp range that days*usPerDay does not overflow: a date of
// year 5874897 (in date's range) wrapped to 29357-07-04 (review 20d).
func timestampDays(days int64) bool {
	return days >= minTimestamp/usPerDay-2 && days <= endTimestamp/usPerDay+2
}
