package canon

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgveil/pgveil/policy"
)

// TenantParam is TenantText for a parameter bound to a key_context column
// of type col that the client declared as type declared (0: not
// declared): the value is first assigned to the column's type as
// PostgreSQL assigns it (Plaintext with the declared type), so that a
// numeric 9142.6 for a bigint column is refused rather than naming tenant
// "9142.6" while the server stores 9143.
func TenantParam(col, declared uint32, format int16, src []byte) (string, error) {
	if setting := printedBySetting(declared); setting != "" && namedByText(col) {
		return "", &Error{Type: policy.TypeText, Code: "42804", Msg: fmt.Sprintf(
			"a %s parameter for this key_context column is stored as the session prints it (by %s, which pgveil does not follow): declare the parameter as text", typeNameOf(declared), setting)}
	}
	if col == oidFloat4 || col == oidFloat8 {
		return floatTenantParam(col, declared, format, src)
	}
	t, ok := logicalOf(col)
	lt, isLogical := logicalOf(declared)
	if !ok && !isLogical && declared != 0 && declared != col && declared != oidUnknown && declared != oidName && declared != oidBpchar {
		// interval, money, point, an array, oid, time, …: PostgreSQL
		// assigns such a value to a column named by its text (citext,
		// name, character(n), an enum, a domain) through the declared
		// type's input and output ('1 day 2 hours' is stored as
		// '1 day 02:00:00', '{ 0.5 }' as '{0.5}'), which pgveil does not
		// mirror: it named the tenant as written, and the row opened in
		// no session (review 20d).
		return "", &Error{Type: policy.TypeText, Code: "42804", Msg: fmt.Sprintf(
			"a parameter declared as type OID %d for this key_context column is stored as that type prints it, which pgveil does not mirror: declare the parameter as text", declared)}
	}
	if (col == oidName || col == oidBpchar) && declared != 0 && declared != col {
		// text, varchar (JDBC's setString), …: assigned to name cut to 63
		// bytes, as namein cuts its input; to character(n) padded, its
		// trailing spaces not part of the tenant (TenantText of bpchar),
		// so that 'ab   ' read from a char(5) and written back names the
		// tenant stored. Another type is assigned as its output (review
		// 20d: numeric 1.50 was named 1.5, its equality form; a bool into
		// character(n) is booltext's true, into name boolout's t, as
		// pg_cast has bool to bpchar and not to name).
		var name string
		var err error
		if isLogical && lt != policy.TypeText && lt != policy.TypeVarchar && !(col == oidName && lt == policy.TypeBool) {
			name, err = declaredOutput(lt, format, src)
		} else {
			name, err = TenantText(declared, format, src)
		}
		if err != nil {
			return "", err
		}
		if col == oidBpchar {
			return string(trimTrailingSpaces([]byte(name))), nil
		}
		return string(clipName([]byte(name))), nil
	}
	if !ok && isLogical && lt != policy.TypeText && lt != policy.TypeVarchar && src != nil {
		// A column named by its stored text (citext, an enum, a domain
		// over numeric) assigned a number, a bool, …: PostgreSQL stores
		// the declared type's output ('1.50', not the equality form
		// 1.5; a bool as booltext's true/false).
		return declaredOutput(lt, format, src)
	}
	if declared == 0 || declared == col || !ok {
		if declared == 0 {
			declared = col
		}
		return TenantText(declared, format, src)
	}
	if src == nil {
		return "", fmt.Errorf("tenant value is NULL")
	}
	pt, err := Plaintext(t, format, declared, src, nil)
	if err != nil {
		return "", err
	}
	return tenantEquality(t, pt)
}

// floatTenantParam is TenantParam for a float4 or float8 column: a value
// declared as another number type is read as that type and assigned to
// the column's as PostgreSQL does (a numeric or an integer through its
// text, a float8 into float4 rounded to the nearest); an undeclared one is
// the column's own; others (text) are named as their text, as before
// (PostgreSQL refuses to assign them).
func floatTenantParam(col, declared uint32, format int16, src []byte) (string, error) {
	if src == nil {
		return "", fmt.Errorf("tenant value is NULL")
	}
	bits := 64
	if col == oidFloat4 {
		bits = 32
	}
	switch declared {
	case 0, oidUnknown, col:
		return TenantText(col, format, src)
	case oidFloat4, oidFloat8:
		// float4 into float8 is exact; float8 into float4 rounds once.
		name, err := TenantText(declared, format, src)
		if err != nil {
			return "", err
		}
		from := 64
		if declared == oidFloat4 {
			from = 32 // the float4 itself, widened exactly
		}
		f, err := strconv.ParseFloat(name, from)
		if err != nil {
			return "", err
		}
		if bits == 32 {
			if math.Abs(f) > math.MaxFloat32 && !math.IsInf(f, 0) {
				return "", &Error{Type: policy.TypeText, Code: "22003", Msg: "value out of range: overflow"}
			}
			f = float64(float32(f))
		}
		return string(pgFloatOut(f, bits)), nil
	case policy.TypeInt2.OID(), policy.TypeInt4.OID(), policy.TypeInt8.OID(), policy.TypeNumeric.OID():
		name, err := TenantText(declared, format, src)
		if err != nil {
			return "", err
		}
		return floatTenant(col, TextFormat, []byte(name))
	}
	return TenantText(declared, format, src)
}

// tenantEquality is the tenant name of a logical type's plaintext: its
// equality form (IndexInput without normalisation), bytea as \x hex.
func tenantEquality(t policy.LogicalType, pt []byte) (string, error) {
	if t == policy.TypeBytea {
		return string(appendByteaHex(nil, pt)), nil
	}
	eq, err := IndexInput(t, pt, nil, nil)
	return string(eq), err
}

// TenantText turns a key_context value (a column of type typeOID, in text
// or binary format) into the canonical text that names its tenant in
// pgveil.keys, so the same tenant selects the same key whichever way it
// arrives: 42 as int4 binary, int8 binary or the text "042" all give "42";
// a uuid in any case or spelling gives its lowercase form. Logical types use
// their equality form (IndexInput without normalisation; bytea as \x hex);
// bpchar drops trailing spaces; other types use their text output, read
// through pgtype's codec when sent in binary.
func TenantText(typeOID uint32, format int16, src []byte) (string, error) {
	if src == nil {
		return "", fmt.Errorf("tenant value is NULL")
	}
	if typeOID == oidFloat4 || typeOID == oidFloat8 {
		return floatTenant(typeOID, format, src)
	}
	if typeOID == oidName && format == TextFormat {
		src = clipName(src) // namein keeps 63 bytes, whole characters
	}
	if typeOID == 0 || typeOID == oidUnknown || typeOID == oidName {
		typeOID = policy.OIDText
	}
	if typeOID == oidBpchar {
		src = trimTrailingSpaces(src)
		typeOID = policy.OIDText
	}
	if t, ok := logicalOf(typeOID); ok {
		pt, err := Plaintext(t, format, 0, src, nil)
		if err != nil {
			return "", err
		}
		return tenantEquality(t, pt)
	}
	if format == TextFormat {
		if !utf8.Valid(src) {
			return "", fmt.Errorf("tenant value is not valid UTF-8")
		}
		return string(src), nil
	}
	m := pgtype.NewMap()
	typ, ok := m.TypeForOID(typeOID)
	if !ok {
		return "", fmt.Errorf("tenant column of type OID %d must be sent in text format", typeOID)
	}
	v, err := typ.Codec.DecodeValue(m, typeOID, pgtype.BinaryFormatCode, src)
	if err != nil {
		return "", fmt.Errorf("tenant value of type OID %d: malformed binary value", typeOID)
	}
	out, err := m.Encode(typeOID, pgtype.TextFormatCode, v, nil)
	if err != nil {
		return "", fmt.Errorf("tenant value of type OID %d: cannot write as text", typeOID)
	}
	return string(out), nil
}

// TenantBase is the type a key_context column of type typeOID, a domain
// over base (typeOID itself when it is no domain), names its tenants by:
// the base type when the text PostgreSQL outputs for a stored value is
// already that type's tenant name (integers, text, varchar, uuid; float4,
// float8 and name, whose TenantText is their output text), so that '007'
// written to a domain over bigint names tenant 7 as it stores 7;
// else the domain itself, read as text as stored, as pgveil always named
// such tenants (a numeric base would name '1.50' as '1.5', and a char(n)
// base drop its blanks: the values sealed before would no longer open).
func TenantBase(typeOID, base uint32) uint32 {
	switch base {
	case policy.TypeInt2.OID(), policy.TypeInt4.OID(), policy.TypeInt8.OID(), policy.OIDText, policy.TypeVarchar.OID(), policy.TypeUUID.OID(),
		oidFloat4, oidFloat8, oidName:
		return base
	}
	return typeOID
}

// TenantTypeNamed reports whether pgveil names the tenants of a
// key_context column as PostgreSQL stores them, given the column's type
// with domains resolved: base is the last base type's OID, typtype and
// category its pg_type.typtype and typcategory. True for the types whose
// stored form TenantText computes (the logical types, float4, float8,
// name, character(n)), for enums (a label is stored as written) and for
// other string types (citext: stored as written). Other types (time,
// interval, inet, money, …) store a normal form of what was written
// ('10:00' is stored 10:00:00) that pgveil does not compute: a write
// would seal the row's values under another tenant than the one stored
// (LOW sweep 2: the row did not open, PV001), so such columns are refused.
// So are domains (domain: the column's type is one) over timestamptz,
// jsonb and bytea, whose tenants are named by their stored text
// (TenantBase): the text PostgreSQL outputs for them depends on the
// reading session's TimeZone or is a normal form pgveil does not write
// (review 19c).
func TenantTypeNamed(domain bool, base uint32, typtype, category byte) bool {
	if domain && TenantBase(0, base) == 0 {
		switch base {
		case policy.TypeTimestamptz.OID(), policy.TypeJSONB.OID(), policy.OIDBytea:
			return false
		}
	}
	if _, ok := logicalOf(base); ok {
		return true
	}
	switch base {
	case oidFloat4, oidFloat8, oidName, oidBpchar:
		return true
	}
	return typtype == 'e' || (typtype == 'b' && category == 'S')
}

// declaredOutput is the text a parameter of logical type lt assigns to a
// string-like column (its output; a bool's booltext). A timestamptz is
// refused: its output depends on the session's TimeZone.
func declaredOutput(lt policy.LogicalType, format int16, src []byte) (string, error) {
	if lt == policy.TypeTimestamptz {
		return "", &Error{Type: lt, Code: "42804", Msg: "a timestamptz parameter for this key_context column is stored as the session's TimeZone prints it: declare the parameter as text"}
	}
	pt, err := Plaintext(lt, format, 0, src, nil)
	if err != nil {
		return "", err
	}
	switch lt {
	case policy.TypeBool:
		if len(pt) > 0 && pt[0] == 't' {
			return "true", nil
		}
		return "false", nil
	case policy.TypeBytea:
		return string(appendByteaHex(nil, pt)), nil
	}
	return string(pt), nil
}

// printedBySetting is the session setting by which PostgreSQL prints a
// value of type oid when it assigns it to a string column ("": none
// pgveil needs to know): extra_float_digits, bytea_output, DateStyle,
// TimeZone. pgveil is not told the first two (they are not reported in
// ParameterStatus) and names a tenant by the defaults of all four, so a
// tenant of such a parameter was sealed under "0.30000000000000004"
// while a session with extra_float_digits = 0 stored "0.3" (lead,
// twentieth session; the row opened in no session).
func printedBySetting(oid uint32) string {
	switch oid {
	case oidFloat4, oidFloat8:
		return "extra_float_digits"
	case policy.TypeBytea.OID():
		return "bytea_output"
	case policy.TypeDate.OID(), policy.TypeTimestamp.OID():
		return "DateStyle"
	case policy.TypeTimestamptz.OID():
		return "DateStyle and TimeZone"
	}
	return ""
}

// namedByText reports whether a key_context column of type col stores
// the text of a value of another type assigned to it: the string types
// and the types pgveil names by their text (citext, enums, domains).
func namedByText(col uint32) bool {
	switch col {
	case policy.OIDText, policy.TypeVarchar.OID(), oidBpchar, oidName:
		return true
	case oidFloat4, oidFloat8:
		return false
	}
	_, logical := logicalOf(col)
	return !logical
}

// typeNameOf names the types printedBySetting knows.
func typeNameOf(oid uint32) string {
	switch oid {
	case oidFloat4:
		return "float4"
	case oidFloat8:
		return "float8"
	}
	if lt, ok := logicalOf(oid); ok {
		return string(lt)
	}
	return fmt.Sprintf("type %d", oid)
}
