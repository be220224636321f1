package canon

import (
	"fmt"
	"strings"

	"github.com/pgveil/pgveil/policy"
)

// DateStyle is a session's DateStyle as the server reports it: the output
// style (ISO, SQL, Postgres, German) and the order of the day and month
// fields that SQL and Postgres print (ISO and German print one order
// whatever it is). The zero value is not known.
type DateStyle uint8

// The output styles.
const (
	StyleISO DateStyle = 1 + iota
	StyleSQL
	StylePostgres
	StyleGerman
)

// DateOrder is a DateStyle's day and month order.
type DateOrder uint8

const (
	// OrderUnknown: the order is not known (a change may be under way);
	// a printed date whose day and month could be swapped is refused.
	OrderUnknown DateOrder = iota
	// OrderMDY: month first (DateStyle MDY, and YMD, which SQL and
	// Postgres print month first too).
	OrderMDY
	// OrderDMY: day first.
	OrderDMY
)

func (o DateOrder) String() string {
	switch o {
	case OrderMDY:
		return "MDY"
	case OrderDMY:
		return "DMY"
	}
	return "unknown"
}

// Style is the output style (0: not known).
func (d DateStyle) Style() DateStyle { return d & 0xf }

// Order is the day and month order.
func (d DateStyle) Order() DateOrder { return DateOrder(d >> 4) }

// ISO reports whether the style is ISO, whose output pgveil names tenants by.
func (d DateStyle) ISO() bool { return d.Style() == StyleISO }

// ParseDateStyle reads a DateStyle ParameterStatus value: the server
// always reports the style, then the order ("SQL, DMY"). Anything else is
// not known (0).
func ParseDateStyle(v string) DateStyle {
	style, order, ok := strings.Cut(v, ",")
	if !ok {
		return 0
	}
	var d DateStyle
	switch strings.ToUpper(strings.TrimSpace(style)) {
	case "ISO":
		d = StyleISO
	case "SQL":
		d = StyleSQL
	case "POSTGRES":
		d = StylePostgres
	case "GERMAN":
		d = StyleGerman
	default:
		return 0
	}
	switch strings.ToUpper(strings.TrimSpace(order)) {
	case "DMY":
		return d | DateStyle(OrderDMY)<<4
	case "MDY", "YMD":
		return d | DateStyle(OrderMDY)<<4
	}
	return 0
}

// PrintedTenant is the tenant name of a key_context value of type base
// (date or timestamp; or a domain's base among them) that the server
// printed in text format under any DateStyle: ISO ("2026-01-02 10:00:00.5"),
// SQL ("02/01/2026 10:00:00.5" DMY, "01/02/2026 …" MDY and YMD), Postgres
// ("02-01-2026" / "01-02-2026" for a date; "Fri 02 Jan 10:00:00.5 2026" /
// "Fri Jan 02 …" for a timestamp), German ("02.01.2026 …"), with " BC",
// and infinity, -infinity. The name is the value's ISO text, as pgveil
// names these tenants (TenantText). ds is the session's DateStyle: the
// output itself says which style printed it, but not whether "02/01/2026"
// is the 2nd of January or the 1st of February. Its order is taken only
// when ds is known and is the style that printed the value (one that is
// not says the setting changed out of pgveil's sight); else such a value
// is refused, and one whose day and month are equal or cannot be swapped
// (13/01) is read. Refused too: timestamptz, whose non-ISO output
// names its zone by an abbreviation pgveil cannot read (TimeZone
// 'UTC+3' prints 07:00:00 UTC for 10:00 UTC), and anything the server
// does not print. Review 20b: such rows did not open in a session with a
// DateStyle other than ISO (PV001).
func PrintedTenant(base uint32, ds DateStyle, src []byte) (string, error) {
	var t policy.LogicalType
	switch base {
	case policy.TypeDate.OID():
		t = policy.TypeDate
	case policy.TypeTimestamp.OID():
		t = policy.TypeTimestamp
	default:
		return "", fmt.Errorf("tenant value of type OID %d printed in another DateStyle than ISO", base)
	}
	if len(src) > 0 && isDigit(src[0]) {
		if i := digitRun(src, 0); i >= 3 && i < len(src) && src[i] == '-' {
			out, err := Plaintext(t, TextFormat, 0, src, nil) // ISO
			return string(out), err
		}
	}
	if string(src) == "infinity" || string(src) == "-infinity" {
		return string(src), nil
	}
	p := &printed{s: src, t: t, dow: -1}
	var y, m, d int64
	if t == policy.TypeTimestamp && len(src) > 0 && isLetter(src[0]) {
		if !p.postgresTimestamp(&y, &m, &d) {
			return "", p.refuse()
		}
	} else {
		a, ok1 := p.digits(2, 2)
		sep := p.next()
		b, ok2 := p.digits(2, 2)
		if !ok1 || !ok2 || (sep != '/' && sep != '.' && sep != '-') || p.next() != sep {
			return "", p.refuse()
		}
		if sep == '-' && t != policy.TypeDate {
			return "", p.refuse() // Postgres prints a timestamp with words
		}
		order := OrderUnknown
		if (sep == '/' && ds.Style() == StyleSQL) || (sep == '-' && ds.Style() == StylePostgres) {
			order = ds.Order()
		}
		var ok bool
		if y, ok = p.digits(4, 9); !ok {
			return "", p.refuse()
		}
		switch {
		case sep == '.' || order == OrderDMY:
			d, m = a, b
		case order == OrderMDY:
			m, d = a, b
		case a == b || b > 12:
			m, d = a, b
		case a > 12:
			d, m = a, b
		default:
			return "", &Error{Type: t, Code: "22008", Msg: "the session's DateStyle order (DMY or MDY) is not known here, and this printed date reads both ways"}
		}
		if t == policy.TypeTimestamp {
			if p.next() != ' ' || !p.clock() {
				return "", p.refuse()
			}
		}
	}
	bc := false
	if rest := p.s[p.i:]; string(rest) == " BC" {
		bc, p.i = true, len(p.s)
	}
	if p.i != len(p.s) || y == 0 {
		return "", p.refuse()
	}
	days, err := resolveDate(t, y, m, d, bc)
	if err != nil {
		return "", p.refuse()
	}
	if p.dow >= 0 && floorMod(days+6, 7) != int64(p.dow) { // 2000-01-01 was a Saturday
		return "", p.refuse()
	}
	if t == policy.TypeDate {
		if days < minDate || days > maxDate {
			return "", p.refuse()
		}
		return string(appendDate(nil, days)), nil
	}
	v := days*usPerDay + p.us
	if !timestampDays(days) || v < minTimestamp || v >= endTimestamp {
		return "", p.refuse()
	}
	return string(appendTimestamp(nil, v, false)), nil
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

func digitRun(s []byte, i int) int {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	return j - i
}

// printed reads a date or timestamp as the server prints it, strictly.
type printed struct {
	s   []byte
	i   int
	t   policy.LogicalType
	us  int64 // time of day
	dow int   // day of week printed (0 Sunday), -1 none
}

func (p *printed) refuse() error {
	return invalid(p.t, "not a %s as PostgreSQL prints one", p.t)
}

func (p *printed) next() byte {
	if p.i >= len(p.s) {
		return 0
	}
	p.i++
	return p.s[p.i-1]
}

// digits reads min to max decimal digits.
func (p *printed) digits(min, max int) (int64, bool) {
	n := digitRun(p.s, p.i)
	if n < min || n > max {
		return 0, false
	}
	var v int64
	for _, c := range p.s[p.i : p.i+n] {
		v = v*10 + int64(c-'0')
	}
	p.i += n
	return v, true
}

// clock reads HH:MM:SS[.f], the fraction as PostgreSQL prints it (1 to 6
// digits, no trailing zero), into p.us.
func (p *printed) clock() bool {
	h, ok1 := p.digits(2, 2)
	c1 := p.next()
	mi, ok2 := p.digits(2, 2)
	c2 := p.next()
	sec, ok3 := p.digits(2, 2)
	if !ok1 || !ok2 || !ok3 || c1 != ':' || c2 != ':' || h > 23 || mi > 59 || sec > 59 {
		return false
	}
	var frac int64
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		start := p.i
		f, ok := p.digits(1, 6)
		if !ok || p.s[p.i-1] == '0' {
			return false
		}
		for n := p.i - start; n < 6; n++ {
			f *= 10
		}
		frac = f
	}
	p.us = ((h*60+mi)*60+sec)*1_000_000 + frac
	return true
}

var (
	weekdays = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	months   = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// word reads one of words (three letters) and returns its index.
func (p *printed) word(words []string) (int, bool) {
	if p.i+3 > len(p.s) {
		return 0, false
	}
	for k, w := range words {
		if string(p.s[p.i:p.i+3]) == w {
			p.i += 3
			return k, true
		}
	}
	return 0, false
}

// postgresTimestamp reads "Fri Jan 02 10:00:00.5 2026" (MDY, YMD) or
// "Fri 02 Jan 10:00:00.5 2026" (DMY): the month is a word, so either
// order reads as one date, whatever the session's order.
func (p *printed) postgresTimestamp(y, m, d *int64) bool {
	dow, ok := p.word(weekdays[:])
	if !ok || p.next() != ' ' {
		return false
	}
	p.dow = dow
	var mon int
	if isDigit(p.peek()) {
		if *d, ok = p.digits(2, 2); !ok || p.next() != ' ' {
			return false
		}
		if mon, ok = p.word(months[:]); !ok {
			return false
		}
	} else {
		if mon, ok = p.word(months[:]); !ok || p.next() != ' ' {
			return false
		}
		if *d, ok = p.digits(2, 2); !ok {
			return false
		}
	}
	*m = int64(mon) + 1
	if p.next() != ' ' || !p.clock() || p.next() != ' ' {
		return false
	}
	*y, ok = p.digits(4, 9)
	return ok
}

func (p *printed) peek() byte {
	if p.i >= len(p.s) {
		return 0
	}
	return p.s[p.i]
}
