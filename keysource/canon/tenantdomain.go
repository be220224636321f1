package canon

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/pgveil/pgveil/policy"
)

// DomainTenant is the tenant name of a key_context value written as text
// (written) to a column whose type is a domain that TenantBase leaves
// named by its stored text (a domain over numeric, bool, date, timestamp
// or character(n)): the text PostgreSQL outputs for the value stored in
// the domain's base type base, with the type modifier mod the domains
// give it (-1: none). Review 19c: the value was named as written ('01.50',
// 'yes', 'ab'), PostgreSQL stored its normal form (1.50, t, 'ab   '), and
// the row never opened (PV001). A numeric(p,s) or timestamp(p) value
// with more fraction digits than kept is refused (ErrRounded): PostgreSQL
// would round it, and pgveil does not round as it does. Other bases
// (text-like, enums) store the value as written.
func DomainTenant(base uint32, mod int32, written string) (string, error) {
	switch base {
	case policy.TypeNumeric.OID():
		out, err := Plaintext(policy.TypeNumeric, TextFormat, 0, []byte(written), nil)
		if err != nil {
			return "", err
		}
		if mod < 4 || strings.ContainsAny(string(out), "NI") {
			return string(out), nil
		}
		scale := int((mod - 4) & 0x7ff)
		if scale >= 0x400 {
			return "", ErrRounded // a negative scale rounds the whole digits
		}
		whole, frac, _ := strings.Cut(string(out), ".")
		if frac = strings.TrimRight(frac, "0"); len(frac) > scale {
			return "", ErrRounded // '1.50000' is kept as 1.50, '1.555' rounded
		}
		frac += strings.Repeat("0", scale-len(frac))
		if scale == 0 {
			return whole, nil
		}
		return whole + "." + frac, nil
	case policy.TypeBool.OID(), policy.TypeDate.OID(), policy.TypeTimestamp.OID():
		lt, _ := logicalOf(base)
		out, err := Plaintext(lt, TextFormat, 0, []byte(written), nil)
		if err != nil {
			return "", err
		}
		if base == policy.TypeTimestamp.OID() && mod >= 0 {
			if _, frac, ok := strings.Cut(string(out), "."); ok {
				if n := len(strings.TrimRight(frac, " BC")); n > int(mod) {
					return "", ErrRounded
				}
			}
		}
		return string(out), nil
	case oidBpchar:
		v := written
		if mod < 4 {
			return v, nil
		}
		n := int(mod - 4)
		v, ok := CutToLength(v, n)
		if !ok {
			return v, nil // refused by the server
		}
		return v + strings.Repeat(" ", n-utf8.RuneCountInString(v)), nil
	}
	return written, nil
}

// ErrRounded is DomainTenant's refusal of a value the domain's type
// modifier would round.
var ErrRounded = &Error{Type: policy.TypeNumeric, Code: "22003", Msg: "more fraction digits than the column keeps"}

// DomainTenantRecv is DomainTenant of a key_context value received in
// binary format from a column whose tenants are named by their text (a
// domain over one of DomainTenant's bases, citext, an enum): the text
// PostgreSQL prints for it. RowDescription describes a domain as its base
// type, so a client asks binary for it (review 19c: the value was read
// as the domain's own type, unknown, and the row did not open).
func DomainTenantRecv(base uint32, src []byte) (string, error) {
	switch base {
	case policy.TypeNumeric.OID(), policy.TypeBool.OID(), policy.TypeDate.OID(), policy.TypeTimestamp.OID():
		lt, _ := logicalOf(base)
		out, err := Plaintext(lt, BinaryFormat, 0, src, nil)
		return string(out), err
	}
	if !utf8.Valid(src) {
		return "", fmt.Errorf("tenant value is not valid UTF-8")
	}
	return string(src), nil // char(n), citext, an enum's label: the text itself
}

// CutToLength is v assigned to a varchar(n) or character(n) column: spaces
// beyond n characters are cut, as PostgreSQL cuts them; ok is false when
// characters other than spaces lie beyond n (an assignment is refused,
// 22001; an explicit cast would cut them too, naming another value).
func CutToLength(v string, n int) (cut string, ok bool) {
	if n <= 0 || utf8.RuneCountInString(v) <= n {
		return v, true
	}
	at, i := len(v), 0
	for b := range v {
		if i == n {
			at = b
			break
		}
		i++
	}
	if strings.Trim(v[at:], " ") != "" {
		return v, false
	}
	return v[:at], true
}
