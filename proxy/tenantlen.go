package proxy

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/policy"
)

// varlenaHeader is what atttypmod adds to a varchar(n)'s n (VARHDRSZ).
const varlenaHeader = 4

// tenantLengths reads the type modifier of each key_context column of
// type varchar(n), numeric(p,s), timestamp(p) or timestamptz(p) (or a
// domain over one): PostgreSQL assigns a value to such a column cut or
// rounded ('abc   ' into varchar(3) is stored 'abc', '1.55' into
// numeric(5,1) 1.6), and the tenant a write's values are sealed under
// must be the one stored (LOW sweep 2: they were sealed under the value
// as written, and the row did not open).
func tenantLengths(ctx context.Context, pool *pgxpool.Pool, c *catalog) error {
	var oids []uint32
	var names []string
	for _, ct := range c.byOID {
		if ct.policy.KeyContext == "" {
			continue
		}
		switch ct.tenantType {
		case policy.TypeVarchar.OID(), policy.TypeNumeric.OID(), policy.TypeTimestamp.OID(), policy.TypeTimestamptz.OID():
			oids = append(oids, ct.oid)
			names = append(names, ct.policy.KeyContext)
		}
	}
	if len(oids) == 0 {
		return nil
	}
	rows, err := pool.Query(ctx, `SELECT a.attrelid, a.attname::text, CASE WHEN a.atttypmod >= 0 THEN a.atttypmod ELSE t.typtypmod END
		FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = ANY($1) AND a.attname = ANY($2::text[]) AND a.attnum > 0 AND NOT a.attisdropped`, oids, names)
	if err != nil {
		return fmt.Errorf("reading the catalog (tenant column modifiers): %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var oid uint32
		var name string
		var mod int32
		if err := rows.Scan(&oid, &name, &mod); err != nil {
			return err
		}
		if ct := c.byOID[oid]; ct != nil && ct.policy.KeyContext == name && mod >= 0 {
			ct.tenantMod = mod
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the catalog (tenant column modifiers): %w", err)
	}
	return nil
}

// storedTenant is the tenant name a write's key_context value (named
// tenant by canon) names as t's column stores it: a varchar(n) column cuts
// a longer value's spaces beyond n (a value with other characters there
// is refused by the server, whatever pgveil names it). A value that a
// numeric(p,s) or timestamp(p) column would round (more fraction digits
// than it keeps) is refused: pgveil does not round as PostgreSQL does.
func (c *catalog) storedTenant(t *policy.Table, tenant string) (string, error) {
	ct := c.byTable[t]
	if ct != nil && ct.tenantBase != 0 {
		name, err := canon.DomainTenant(ct.tenantBase, ct.tenantMod, tenant)
		if err == canon.ErrRounded {
			return "", roundedTenant(t, fmt.Sprintf("a domain over %s", pgTypeName(ct.tenantBase, ct.tenantMod)))
		}
		return name, err
	}
	if ct == nil || ct.tenantMod < 0 {
		return tenant, nil
	}
	switch ct.tenantType {
	case policy.TypeVarchar.OID():
		return cutVarchar(tenant, int(ct.tenantMod-varlenaHeader)), nil
	case policy.TypeNumeric.OID():
		scale := int((ct.tenantMod - varlenaHeader) & 0x7ff)
		if scale >= 0x400 {
			scale -= 0x800 // PostgreSQL 15: a negative scale, sign-extended from 11 bits
		}
		whole, frac, _ := strings.Cut(tenant, ".")
		keeps := len(frac) <= scale
		if scale < 0 {
			keeps = frac == "" && (strings.HasSuffix(whole, strings.Repeat("0", -scale)) || strings.Trim(whole, "-0") == "")
		}
		if !keeps && !strings.ContainsAny(tenant, "NI") {
			return "", roundedTenant(t, fmt.Sprintf("numeric(%d,%d)", (ct.tenantMod-varlenaHeader)>>16, scale))
		}
	case policy.TypeTimestamp.OID(), policy.TypeTimestamptz.OID():
		if i := strings.IndexByte(tenant, '.'); i >= 0 {
			n := 0
			for n < len(tenant)-i-1 && tenant[i+1+n] >= '0' && tenant[i+1+n] <= '9' {
				n++
			}
			if n > int(ct.tenantMod) {
				return "", roundedTenant(t, fmt.Sprintf("timestamp(%d)", ct.tenantMod))
			}
		}
	}
	return tenant, nil
}

// roundedTenant refuses a key_context value that the column (of type typ)
// would round.
func roundedTenant(t *policy.Table, typ string) error {
	return &pgError{Severity: "ERROR", Code: "22003", Schema: t.Schema, Table: t.Name, Column: t.KeyContext,
		Message: fmt.Sprintf("pgveil: the %s value of this write to %s has more fraction digits than its column (%s) keeps: PostgreSQL would store it rounded, another tenant than the one pgveil seals the row's values under", t.KeyContext, t.QualifiedName(), typ),
		Hint:    fmt.Sprintf("round the %s value to the column's precision in the application", t.KeyContext)}
}

// cutVarchar cuts the spaces beyond n characters of a value assigned to
// varchar(n); a value with other characters there is left as it is.
func cutVarchar(v string, n int) string {
	cut, _ := canon.CutToLength(v, n)
	return cut
}

// tenantTypesNamed refuses key_context columns of a type whose stored
// form pgveil does not compute (canon.TenantTypeNamed: time, inet, …,
// or a domain over one): a write would seal its values under the tenant
// as written while PostgreSQL stores a normal form of it, another tenant,
// and the row would not open.
func tenantTypesNamed(ctx context.Context, pool *pgxpool.Pool, c *catalog, cfg *policy.Config) error {
	var oids []uint32
	var names []string
	for _, ct := range c.byOID {
		if ct.policy.KeyContext != "" {
			oids = append(oids, ct.oid)
			names = append(names, ct.policy.KeyContext)
		}
	}
	if len(oids) == 0 {
		return nil
	}
	rows, err := pool.Query(ctx, tenantTypesQuery, oids, names)
	if err != nil {
		return fmt.Errorf("reading the catalog (tenant column types): %w", err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var oid, typ, base uint32
		var mod int32
		var name, typeName, typtype, category string
		if err := rows.Scan(&oid, &name, &typeName, &typ, &base, &mod, &typtype, &category); err != nil {
			return err
		}
		ct := c.byOID[oid]
		if ct == nil || ct.policy.KeyContext != name {
			continue
		}
		if ct.tenantType == typ && (typ != base || !knownTenantType(typ) && typ != oidName && typ != oidBpchar) {
			// A domain named by its stored text (canon.TenantBase left
			// it): a write names its tenant as the base type prints it
			// (review 19c). citext and enums are named by their text too,
			// and their binary form is that text.
			ct.tenantBase = base
		}
		if mod >= 0 && (ct.tenantBase != 0 || typ != base) {
			// The type modifier a domain (over a domain) gives its base
			// (review 19c: a domain over a domain over varchar(3) was not
			// cut).
			ct.tenantMod = mod
		}
		if canon.TenantTypeNamed(typ != base, base, typtype[0], category[0]) {
			continue
		}
		problems = append(problems, TenantTypeProblem(ct.policy, typeName))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the catalog (tenant column types): %w", err)
	}
	if len(problems) > 0 {
		return &schemaError{problems: problems, config: cfg.Path}
	}
	return nil
}

// TenantTypeProblem says why t's key_context column, of type typeName,
// cannot hold tenants (pgveil check reports the same words).
func TenantTypeProblem(t *policy.Table, typeName string) string {
	return fmt.Sprintf("key_context column %s.%s has type %s, whose values PostgreSQL stores in a normal form pgveil does not compute "+
		"(a write would seal the row's values under another tenant than the one stored, and the row would not open); "+
		"make it text, varchar, an integer, numeric, uuid, an enum or a domain over one (docs/LIMITS.md, \"Tenants\")", t.QualifiedName(), t.KeyContext, typeName)
}

// tenantTypesQuery reads, for key_context columns ($2) of relations
// ($1), the type's name and OID and, domains resolved, the last base
// type's OID, the type modifier the column or its nearest domain gives
// it, and its typtype and typcategory.
const tenantTypesQuery = `
SELECT a.attrelid, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid, b.oid, last.mod, b.typtype::text, b.typcategory::text
FROM pg_catalog.pg_attribute a
` + BaseTypeJoin + `WHERE a.attrelid = ANY($1) AND a.attname = ANY($2::text[]) AND a.attnum > 0 AND NOT a.attisdropped`

// BaseTypeJoin joins, to a pg_attribute row a, its type with domains
// resolved: b, the last base type's pg_type row, and last.mod, the type
// modifier the column or its nearest domain gives it (pgveil check reads
// columns through it too).
const BaseTypeJoin = `JOIN LATERAL (
    WITH RECURSIVE d(oid, depth, mod) AS (
        SELECT a.atttypid, 0, a.atttypmod
        UNION ALL
        SELECT t.typbasetype, d.depth + 1, CASE WHEN d.mod >= 0 THEN d.mod ELSE t.typtypmod END
        FROM d JOIN pg_catalog.pg_type t ON t.oid = d.oid AND t.typtype = 'd')
    SELECT oid, mod FROM d ORDER BY depth DESC LIMIT 1) last ON true
JOIN pg_catalog.pg_type b ON b.oid = last.oid
`

// pgTypeName names a domain's base type for an error message.
func pgTypeName(base uint32, mod int32) string {
	switch base {
	case policy.TypeNumeric.OID():
		if mod >= varlenaHeader {
			return fmt.Sprintf("numeric(%d,%d)", (mod-varlenaHeader)>>16, (mod-varlenaHeader)&0x7ff)
		}
		return "numeric"
	case policy.TypeTimestamp.OID():
		return fmt.Sprintf("timestamp(%d)", mod)
	}
	return fmt.Sprintf("type OID %d", base)
}

// tenantZoneDependent reports whether a parameter declared as type
// declared converts to t's key_context column through the session's
// TimeZone: a timestamptz for a date or timestamp column, or a domain over
// one.
func (c *catalog) tenantZoneDependent(t *policy.Table, declared uint32) bool {
	if declared != policy.TypeTimestamptz.OID() {
		return false
	}
	typ := c.tenantType(t)
	if ct := c.byTable[t]; ct != nil && ct.tenantBase != 0 {
		typ = ct.tenantBase
	}
	return typ == policy.TypeDate.OID() || typ == policy.TypeTimestamp.OID()
}

// tenantParam is canon.TenantParam for t's key_context column, except
// that a parameter declared as another type than text for a domain over
// numeric, bool, date or timestamp is assigned to that base type as
// PostgreSQL assigns it (a float8 0.30000000000000004 into numeric is
// 0.3, DBL_DIG digits), whose output names the tenant (storedTenant),
// not read as the declared type's own text (review 19c).
func (c *catalog) tenantParam(t *policy.Table, declared uint32, format int16, v []byte) (string, error) {
	ct := c.byTable[t]
	if ct == nil || ct.tenantBase == 0 || v == nil {
		return canon.TenantParam(c.tenantType(t), declared, format, v)
	}
	switch declared {
	case 0, 705, ct.tenantType:
		if format == canon.BinaryFormat {
			return canon.DomainTenantRecv(ct.tenantBase, v) // the base type's binary form
		}
		return canon.TenantParam(c.tenantType(t), declared, format, v)
	case policy.OIDText, policy.TypeVarchar.OID(), oidBpchar, oidName:
		return canon.TenantParam(c.tenantType(t), declared, format, v)
	}
	if declared == ct.tenantBase && declared >= firstNormalOID {
		// The domain's base is a type created in the database (citext,
		// an enum), stored as it is: named as the domain's own value
		// (canon.TenantParam refuses other types it does not mirror,
		// review 20d).
		if format == canon.BinaryFormat {
			return canon.DomainTenantRecv(ct.tenantBase, v)
		}
		return canon.TenantParam(c.tenantType(t), 0, format, v)
	}
	for _, lt := range []policy.LogicalType{policy.TypeNumeric, policy.TypeBool, policy.TypeDate, policy.TypeTimestamp} {
		if lt.OID() == ct.tenantBase {
			pt, err := canon.Plaintext(lt, format, declared, v, nil)
			return string(pt), err
		}
	}
	return canon.TenantParam(c.tenantType(t), declared, format, v)
}

// firstNormalOID is PostgreSQL's FirstNormalObjectId: the types below
// it are built in.
const firstNormalOID = 16384
