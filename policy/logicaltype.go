package policy

// LogicalType is the PostgreSQL type an application sees for an encrypted
// column, whatever the physical column (bytea or text) holds.
type LogicalType string

// The logical types of DESIGN.md.
const (
	TypeText        LogicalType = "text"
	TypeVarchar     LogicalType = "varchar"
	TypeInt2        LogicalType = "int2"
	TypeInt4        LogicalType = "int4"
	TypeInt8        LogicalType = "int8"
	TypeNumeric     LogicalType = "numeric"
	TypeBool        LogicalType = "bool"
	TypeDate        LogicalType = "date"
	TypeTimestamp   LogicalType = "timestamp"
	TypeTimestamptz LogicalType = "timestamptz"
	TypeUUID        LogicalType = "uuid"
	TypeJSON        LogicalType = "json"
	TypeJSONB       LogicalType = "jsonb"
	TypeBytea       LogicalType = "bytea"
)

// LogicalTypes lists every supported logical type.
var LogicalTypes = []LogicalType{
	TypeText, TypeVarchar, TypeInt2, TypeInt4, TypeInt8, TypeNumeric, TypeBool,
	TypeDate, TypeTimestamp, TypeTimestamptz, TypeUUID, TypeJSON, TypeJSONB, TypeBytea,
}

// typeAliases maps the spellings PostgreSQL accepts to the canonical name.
var typeAliases = map[string]LogicalType{
	"text": TypeText, "varchar": TypeVarchar, "character varying": TypeVarchar,
	"int2": TypeInt2, "smallint": TypeInt2,
	"int4": TypeInt4, "int": TypeInt4, "integer": TypeInt4,
	"int8": TypeInt8, "bigint": TypeInt8,
	"numeric": TypeNumeric, "decimal": TypeNumeric,
	"bool": TypeBool, "boolean": TypeBool,
	"date":      TypeDate,
	"timestamp": TypeTimestamp, "timestamp without time zone": TypeTimestamp,
	"timestamptz": TypeTimestamptz, "timestamp with time zone": TypeTimestamptz,
	"uuid": TypeUUID, "json": TypeJSON, "jsonb": TypeJSONB, "bytea": TypeBytea,
}

// ParseLogicalType accepts a canonical name or a PostgreSQL alias ("integer", "bigint").
func ParseLogicalType(s string) (LogicalType, bool) {
	t, ok := typeAliases[s]
	return t, ok
}

// OID is the type's pg_type OID, as reported in RowDescription and ParameterDescription.
func (t LogicalType) OID() uint32 {
	switch t {
	case TypeText:
		return 25
	case TypeVarchar:
		return 1043
	case TypeInt2:
		return 21
	case TypeInt4:
		return 23
	case TypeInt8:
		return 20
	case TypeNumeric:
		return 1700
	case TypeBool:
		return 16
	case TypeDate:
		return 1082
	case TypeTimestamp:
		return 1114
	case TypeTimestamptz:
		return 1184
	case TypeUUID:
		return 2950
	case TypeJSON:
		return 114
	case TypeJSONB:
		return 3802
	case TypeBytea:
		return 17
	}
	return 0
}

// ArrayOID is the OID of the type's one-dimensional array type (for = ANY($1)).
func (t LogicalType) ArrayOID() uint32 {
	switch t {
	case TypeText:
		return 1009
	case TypeVarchar:
		return 1015
	case TypeInt2:
		return 1005
	case TypeInt4:
		return 1007
	case TypeInt8:
		return 1016
	case TypeNumeric:
		return 1231
	case TypeBool:
		return 1000
	case TypeDate:
		return 1182
	case TypeTimestamp:
		return 1115
	case TypeTimestamptz:
		return 1185
	case TypeUUID:
		return 2951
	case TypeJSON:
		return 199
	case TypeJSONB:
		return 3807
	case TypeBytea:
		return 1001
	}
	return 0
}

// TypeSize is the typlen reported in RowDescription (-1 for variable length).
func (t LogicalType) TypeSize() int16 {
	switch t {
	case TypeInt2:
		return 2
	case TypeInt4, TypeDate:
		return 4
	case TypeInt8, TypeTimestamp, TypeTimestamptz:
		return 8
	case TypeBool:
		return 1
	case TypeUUID:
		return 16
	}
	return -1
}

// Physical type OIDs of an encrypted column.
const (
	OIDBytea = 17
	OIDText  = 25
)
