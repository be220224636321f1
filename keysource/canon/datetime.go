package canon

import (
	"encoding/binary"
	"math"

	"github.com/pgveil/pgveil/policy"
)

// Dates and timestamps count from PostgreSQL's epoch, 2000-01-01, in the
// proleptic Gregorian calendar; year 1 BC is astronomical year 0.
const (
	usPerDay    = 86_400_000_000
	pgEpochUnix = 10957 // days from 1970-01-01 to 2000-01-01

	minDate = -2451545                 // 4714-11-24 BC, Julian day 0
	maxDate = 2147483494 - 2451545 - 1 // 5874897-12-31: DATE_END_JULIAN - POSTGRES_EPOCH_JDATE - 1

	minTimestamp = -211813488000000000 // 4714-11-24 00:00:00 BC
	endTimestamp = 9223371331200000000 // 294277-01-01 00:00:00, exclusive

	dateInfinity    = math.MaxInt32
	dateNegInfinity = math.MinInt32
	tsInfinity      = math.MaxInt64
	tsNegInfinity   = math.MinInt64
)

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// daysFromCivil: days since 2000-01-01 of a proleptic Gregorian date
// (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468 - pgEpochUnix
}

func civilFromDays(days int64) (y, m, d int64) {
	z := days + pgEpochUnix + 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return
}

func daysIn(y, m int64) int64 {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// scanner walks a date/time literal.
type scanner struct {
	s []byte
	i int
}

func (p *scanner) done() bool { return p.i >= len(p.s) }
func (p *scanner) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}
func (p *scanner) skipSpace() {
	for !p.done() && isSpace(p.s[p.i]) {
		p.i++
	}
}

// number reads 1 to max decimal digits.
func (p *scanner) number(max int) (int64, int, bool) {
	start := p.i
	var v int64
	for !p.done() && isDigit(p.s[p.i]) && p.i-start < max {
		v = v*10 + int64(p.s[p.i]-'0')
		p.i++
	}
	return v, p.i - start, p.i > start
}

// era reads an optional "BC" or "AD" (after optional space).
func (p *scanner) era() (bc bool) {
	save := p.i
	p.skipSpace()
	if p.i+2 <= len(p.s) {
		w := p.s[p.i : p.i+2]
		if equalFold(w, "bc") || equalFold(w, "ad") {
			p.i += 2
			return equalFold(w, "bc")
		}
	}
	p.i = save
	return false
}

// date reads Y-M-D (ISO 8601 order, which is what DateStyle ISO prints and
// what drivers send) and returns days since 2000-01-01 before applying BC.
// The year must have at least three digits: PostgreSQL reads a first field
// of one or two digits by the session's DateStyle order ('01-02-03' is
// 2003-01-02 under MDY), which pgveil does not guess.
func (p *scanner) date(t policy.LogicalType) (y, m, d int64, err error) {
	var ok bool
	var n int
	if y, n, ok = p.number(9); !ok || p.peek() != '-' {
		return 0, 0, 0, invalid(t, "want an ISO date, YYYY-MM-DD")
	}
	if n < 3 {
		return 0, 0, 0, invalid(t, "want an ISO date, YYYY-MM-DD (a year of one or two digits is read by the session's DateStyle order; write the year in full)")
	}
	p.i++
	if m, _, ok = p.number(2); !ok || p.peek() != '-' {
		return 0, 0, 0, invalid(t, "want an ISO date, YYYY-MM-DD")
	}
	p.i++
	if d, _, ok = p.number(2); !ok {
		return 0, 0, 0, invalid(t, "want an ISO date, YYYY-MM-DD")
	}
	return y, m, d, nil
}

// timeOfDay reads an optional " 10:00:00.5+02", "T10:00Z", " 10:00:00 +00"
// or a bare zone " +00" (pgjdbc sends setDate as "1987-06-05 +00"),
// checked as a timestamp's are, and returns the microseconds since
// midnight and the zone offset.
func (p *scanner) timeOfDay(t policy.LogicalType) (us, offset int64, hasZone bool, err error) {
	save := p.i
	if c := p.peek(); c == 'T' || c == 't' || c == ' ' {
		p.i++
		p.skipSpace()
		if isDigit(p.peek()) {
			if us, err = p.clock(t); err != nil {
				return 0, 0, false, err
			}
		} else {
			p.i = save
		}
	}
	offset, hasZone, err = p.zone(t)
	return us, offset, hasZone, err
}

// resolveDate applies BC and checks the calendar; y is the year as written.
func resolveDate(t policy.LogicalType, y, m, d int64, bc bool) (int64, error) {
	if y == 0 {
		return 0, invalid(t, "date/time field value out of range (there is no year 0)")
	}
	if bc {
		y = 1 - y
	}
	if m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, invalid(t, "date/time field value out of range")
	}
	return daysFromCivil(y, m, d), nil
}

// special reads infinity, -infinity and epoch.
func special(s []byte) (pos, neg, epoch bool) {
	switch {
	case equalFold(s, "infinity"): // not "+infinity": PostgreSQL 15's date/time input refuses it
		return true, false, false
	case equalFold(s, "-infinity"):
		return false, true, false
	case equalFold(s, "epoch"):
		return false, false, true
	}
	return
}

// dateText: ISO dates ("2024-01-02", "0044-03-15 BC"), infinity,
// -infinity, epoch. Other DateStyle orders and words like "today" are
// rejected: their meaning depends on session settings or on the clock.
func dateText(src, dst []byte) ([]byte, error) {
	s := trimSpace(src)
	if pos, neg, epoch := special(s); pos || neg || epoch {
		switch {
		case pos:
			return append(dst, "infinity"...), nil
		case neg:
			return append(dst, "-infinity"...), nil
		}
		return appendDate(dst, daysFromCivil(1970, 1, 1)), nil
	}
	p := &scanner{s: s}
	y, m, d, err := p.date(policy.TypeDate)
	if err != nil {
		return nil, err
	}
	// A time of day and zone after the date are accepted and ignored, as
	// PostgreSQL's date input does ('2024-01-02 10:00:00+02' is 2024-01-02):
	// drivers that do not know the parameter is a date send a timestamp.
	if _, _, _, err := p.timeOfDay(policy.TypeDate); err != nil {
		return nil, err
	}
	bc := p.era()
	p.skipSpace()
	if !p.done() {
		return nil, invalid(policy.TypeDate, "want an ISO date, YYYY-MM-DD")
	}
	days, err := resolveDate(policy.TypeDate, y, m, d, bc)
	if err != nil {
		return nil, err
	}
	if days < minDate || days > maxDate {
		return nil, invalid(policy.TypeDate, "date out of range")
	}
	return appendDate(dst, days), nil
}

func dateBinary(src, dst []byte) ([]byte, error) {
	if len(src) != 4 {
		return nil, binaryLength(policy.TypeDate, len(src), 4)
	}
	v := int64(int32(binary.BigEndian.Uint32(src)))
	switch {
	case v == dateInfinity:
		return append(dst, "infinity"...), nil
	case v == dateNegInfinity:
		return append(dst, "-infinity"...), nil
	case v < minDate || v > maxDate:
		return nil, invalid(policy.TypeDate, "date out of range")
	}
	return appendDate(dst, v), nil
}

// appendDate prints like PostgreSQL with DateStyle ISO: YYYY-MM-DD, the
// year at least 4 digits, " BC" for years before 1.
func appendDate(dst []byte, days int64) []byte {
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
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst
}

func appendPadded(dst []byte, v int64, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for v > 0 || len(buf)-i < width {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[i:]...)
}

func dateBinaryOut(pt, dst []byte) ([]byte, error) {
	var v int64
	switch string(pt) {
	case "infinity":
		v = dateInfinity
	case "-infinity":
		v = dateNegInfinity
	default:
		out, err := dateText(pt, nil)
		if err != nil || string(out) != string(pt) {
			return nil, invalid(policy.TypeDate, "not a canonical date")
		}
		p := &scanner{s: pt}
		y, m, d, _ := p.date(policy.TypeDate)
		v, _ = resolveDate(policy.TypeDate, y, m, d, p.era())
	}
	return binary.BigEndian.AppendUint32(dst, uint32(int32(v))), nil
}
