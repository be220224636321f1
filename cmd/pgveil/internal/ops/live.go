package ops

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// liveTable is one configured table as pg_catalog describes it.
type liveTable struct {
	Schema, Name string
	OID          uint32
	Kind         string // pg_class.relkind: r, p, v, m, f
	Cols         map[string]*liveCol
	Indexes      []liveIndex
	// PK are the primary key's columns in key order (nil: no primary key).
	PK []*liveCol
	// Constraints are CHECK and FOREIGN KEY constraints, with their columns.
	Constraints []liveConstraint
	// Triggers are the table's user triggers, by name.
	Triggers []liveTrigger
}

// liveTrigger is one user trigger of a liveTable and its function.
type liveTrigger struct {
	Name     string
	Type     int16  // pg_trigger.tgtype: trigType* bits
	Enabled  string // pg_trigger.tgenabled: O (origin and local), D (disabled), R (replica), A (always)
	Function string // the trigger function, schema.name
	Language string // pg_language.lanname of the function: plpgsql, c, plpython3u, …
	Source   string // pg_proc.prosrc: the code, for a C function its link symbol
}

// liveConstraint is a CHECK ('c') or FOREIGN KEY ('f') constraint.
type liveConstraint struct {
	Name    string
	Kind    string
	Columns []string
	// OnUpdate and OnDelete are a foreign key's actions (pg_constraint's
	// confupdtype, confdeltype: a no action, r restrict, c cascade, n set
	// null, d set default), and References the table it references.
	OnUpdate, OnDelete, References string
	// DeleteSets are the columns ON DELETE SET NULL/DEFAULT (cols) sets
	// (PostgreSQL 15+); none: all of Columns.
	DeleteSets []string
}

// liveCol is one column of a liveTable.
type liveCol struct {
	Name     string
	TypeOID  uint32
	TypMod   int32
	TypeName string // format_type(atttypid, atttypmod): "character varying(64)"
	BaseOID  uint32 // the base type of a domain, else TypeOID
	BaseMod  int32  // the type modifier the column or its nearest domain gives BaseOID (-1: none)
	// BaseType and BaseCategory are BaseOID's pg_type.typtype and
	// typcategory.
	BaseType, BaseCategory string
	NotNull                bool
	// Nondeterministic: the column's collation is nondeterministic ('AB'
	// = 'ab' under a case-insensitive one).
	Nondeterministic bool
}

// liveIndex is one index of a liveTable.
type liveIndex struct {
	Name    string
	Method  string   // pg_am.amname: btree, hash, …
	Columns []string // key columns in order; "" for an expression
	Unique  bool
	Primary bool
	Valid   bool // false after a CREATE INDEX CONCURRENTLY that failed or was killed
	Partial bool
	// Constraint is the UNIQUE or exclusion constraint that owns the
	// index ("" for a plain index): it is dropped with the constraint.
	Constraint string
}

// indexesOn are the indexes whose key columns include column, first ones first.
func (t *liveTable) indexesOn(column string) []liveIndex {
	var out []liveIndex
	for _, ix := range t.Indexes {
		if slices.Contains(ix.Columns, column) {
			out = append(out, ix)
		}
	}
	slices.SortStableFunc(out, func(a, b liveIndex) int {
		ai, bi := slices.Index(a.Columns, column), slices.Index(b.Columns, column)
		return ai - bi
	})
	return out
}

const liveTablesQuery = `
SELECT c.oid, n.nspname, c.relname, c.relkind::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN unnest($1::text[], $2::text[]) AS w(s, t) ON w.s = n.nspname AND w.t = c.relname
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')`

const liveColumnsQuery = `
SELECT a.attrelid, a.attname, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod),
       b.oid, b.typtype::text, b.typcategory::text, a.attnotnull, last.mod,
       coalesce((SELECT NOT co.collisdeterministic FROM pg_catalog.pg_collation co WHERE co.oid = a.attcollation), false)
FROM pg_catalog.pg_attribute a
` + proxy.BaseTypeJoin + `WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`

const liveIndexesQuery = `
SELECT i.indrelid, ic.relname, am.amname, i.indisunique, i.indisprimary, i.indisvalid AND i.indisready,
       i.indpred IS NOT NULL,
       ARRAY(SELECT coalesce(a.attname, '')
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum AND k.attnum > 0
             WHERE k.ord <= i.indnkeyatts ORDER BY k.ord),
       coalesce((SELECT con.conname FROM pg_catalog.pg_constraint con
                 WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('u', 'x')
                 LIMIT 1), '')
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_am am ON am.oid = ic.relam
WHERE i.indrelid = ANY($1::oid[])
ORDER BY i.indrelid, ic.relname`

const liveConstraintsQuery = `
SELECT c.conrelid, c.conname, c.contype::text,
       ARRAY(SELECT a.attname FROM unnest(c.conkey) AS k(attnum)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
       c.confupdtype::text, c.confdeltype::text, coalesce(c.confrelid::regclass::text, ''),
       ARRAY(SELECT a.attname FROM pg_catalog.jsonb_array_elements_text(
               CASE pg_catalog.jsonb_typeof(pg_catalog.to_jsonb(c)->'confdelsetcols') -- PostgreSQL 15+
               WHEN 'array' THEN pg_catalog.to_jsonb(c)->'confdelsetcols' ELSE '[]' END) AS k(attnum)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum::int2)
FROM pg_catalog.pg_constraint c
WHERE c.conrelid = ANY($1::oid[]) AND c.contype IN ('c', 'f')
UNION ALL
SELECT c.confrelid, c.conname, 'F',
       ARRAY(SELECT a.attname FROM unnest(c.confkey) AS k(attnum)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum),
       c.confupdtype::text, c.confdeltype::text, c.confrelid::regclass::text, '{}'::pg_catalog.name[]
FROM pg_catalog.pg_constraint c
WHERE c.confrelid = ANY($1::oid[]) AND c.contype = 'f'
ORDER BY 1, 2`

const liveTriggersQuery = `
SELECT t.tgrelid, t.tgname, t.tgtype, t.tgenabled::text, n.nspname || '.' || p.proname, l.lanname, coalesce(p.prosrc, '')
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE t.tgrelid = ANY($1::oid[]) AND NOT t.tgisinternal ORDER BY 1, 2`

// loadLive reads the configured tables from pg_catalog. A table that does
// not exist is absent from the map (keyed by policy.Table.QualifiedName).
func loadLive(ctx context.Context, pool *pgxpool.Pool, tables []*policy.Table) (map[string]*liveTable, error) {
	schemas := make([]string, len(tables))
	names := make([]string, len(tables))
	for i, t := range tables {
		schemas[i], names[i] = t.Schema, t.Name
	}
	out := map[string]*liveTable{}
	byOID := map[uint32]*liveTable{}
	rows, err := pool.Query(ctx, liveTablesQuery, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("reading pg_class: %w", err)
	}
	for rows.Next() {
		t := &liveTable{Cols: map[string]*liveCol{}}
		if err := rows.Scan(&t.OID, &t.Schema, &t.Name, &t.Kind); err != nil {
			rows.Close()
			return nil, err
		}
		out[t.Schema+"."+t.Name] = t
		byOID[t.OID] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading pg_class: %w", err)
	}
	if len(byOID) == 0 {
		return out, nil
	}
	oids := make([]uint32, 0, len(byOID))
	for oid := range byOID {
		oids = append(oids, oid)
	}
	rows, err = pool.Query(ctx, liveColumnsQuery, oids)
	if err != nil {
		return nil, fmt.Errorf("reading pg_attribute: %w", err)
	}
	for rows.Next() {
		var rel uint32
		c := &liveCol{}
		if err := rows.Scan(&rel, &c.Name, &c.TypeOID, &c.TypMod, &c.TypeName, &c.BaseOID, &c.BaseType, &c.BaseCategory, &c.NotNull, &c.BaseMod, &c.Nondeterministic); err != nil {
			rows.Close()
			return nil, err
		}
		byOID[rel].Cols[c.Name] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading pg_attribute: %w", err)
	}
	rows, err = pool.Query(ctx, liveIndexesQuery, oids)
	if err != nil {
		return nil, fmt.Errorf("reading pg_index: %w", err)
	}
	for rows.Next() {
		var rel uint32
		var ix liveIndex
		if err := rows.Scan(&rel, &ix.Name, &ix.Method, &ix.Unique, &ix.Primary, &ix.Valid, &ix.Partial, &ix.Columns, &ix.Constraint); err != nil {
			rows.Close()
			return nil, err
		}
		t := byOID[rel]
		t.Indexes = append(t.Indexes, ix)
		if ix.Primary {
			for _, name := range ix.Columns {
				t.PK = append(t.PK, t.Cols[name])
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading pg_index: %w", err)
	}
	rows, err = pool.Query(ctx, liveConstraintsQuery, oids)
	if err != nil {
		return nil, fmt.Errorf("reading pg_constraint: %w", err)
	}
	for rows.Next() {
		var rel uint32
		var c liveConstraint
		if err := rows.Scan(&rel, &c.Name, &c.Kind, &c.Columns, &c.OnUpdate, &c.OnDelete, &c.References, &c.DeleteSets); err != nil {
			rows.Close()
			return nil, err
		}
		byOID[rel].Constraints = append(byOID[rel].Constraints, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading pg_constraint: %w", err)
	}
	rows, err = pool.Query(ctx, liveTriggersQuery, oids)
	if err != nil {
		return nil, fmt.Errorf("reading pg_trigger: %w", err)
	}
	for rows.Next() {
		var rel uint32
		var tg liveTrigger
		if err := rows.Scan(&rel, &tg.Name, &tg.Type, &tg.Enabled, &tg.Function, &tg.Language, &tg.Source); err != nil {
			rows.Close()
			return nil, err
		}
		byOID[rel].Triggers = append(byOID[rel].Triggers, tg)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading pg_trigger: %w", err)
	}
	return out, nil
}

// operatorTenant names the tenant an operator gives (--tenant) for
// key_context column lc as a write through pgveil names it: a domain over
// numeric, bool, date, timestamp or char(n) by its base type's output
// ('01.5' for a domain over numeric(5,2) is 1.50), as stored (review 19c:
// it was taken as written, and rotate or shred found no key of it). A
// varchar(n) or character(n) value has its spaces beyond n characters cut,
// as the column stores it; one with other characters there is refused: no
// row can hold it, and `$1::varchar(n)` would cut it to another tenant's
// value (lead, twentieth session: `--tenant 'abc   '` destroyed no key).
func operatorTenant(lc *liveCol, v string) (string, error) {
	if (lc.BaseOID == oidVarchar || lc.BaseOID == oidBpchar) && lc.BaseMod >= 4 {
		n := int(lc.BaseMod - 4)
		cut, ok := canon.CutToLength(v, n)
		if !ok {
			return "", fmt.Errorf("longer than the column's %d characters: no row can hold it", n)
		}
		v = cut
	}
	typ := canon.TenantBase(lc.TypeOID, lc.BaseOID)
	t, err := canon.TenantText(typ, canon.TextFormat, []byte(v))
	if err != nil || typ != lc.TypeOID || lc.TypeOID == lc.BaseOID {
		return t, err
	}
	return canon.DomainTenant(lc.BaseOID, lc.BaseMod, t)
}

// tenantTextGuard reports whether equal values of key_context column lc
// may name different tenants (citext 'AbC' = 'abc', float 0 = -0, a
// nondeterministic collation, a domain over numeric 1.50 = 1.5) while the
// column's text (CAST AS text, with the ops connection's extra_float_digits
// and DateStyle) is the tenant's name: then the tenant's rows are those
// whose text is its name, not those equal to it. As the proxy's
// Lookup.TextGuard (rewrite/plan.go), for the types whose text is the
// name; not the logical types (equality is identity there), name, nor
// char(n) and domains over bool, date or timestamp, unless the column's
// collation is nondeterministic (review 20d: shredding char(5) 'AB'
// counted 'ab”s rows and refused over their plaintext).
func tenantTextGuard(lc *liveCol) bool {
	if lc.Nondeterministic {
		return true
	}
	switch canon.TenantBase(lc.TypeOID, lc.BaseOID) {
	case 700, 701, policy.OIDText, oidVarchar:
		return true
	}
	base := lc.BaseOID
	if lc.TypeOID != lc.BaseOID && base == policy.TypeNumeric.OID() {
		return true
	}
	if base == 19 || base == oidBpchar {
		return false
	}
	for _, lt := range policy.LogicalTypes {
		if lt.OID() == base {
			return false
		}
	}
	return true // citext, enums and other types named by their text
}

// tenantRowsSQL is the condition that selects the rows of one tenant of
// column qc (of lc's type typeName): equal to $1 (as the operator wrote
// it), and with tenantTextGuard, whose text is $2 (its name).
//
// A name column is selected by its text alone: $1::name has name's
// collation C, which conflicts with a column of another collation (42P22,
// review 20d), and under a deterministic one equal names are the same
// bytes. A domain over char(n) is named with its padding, which its cast
// to text drops.
func tenantRowsSQL(lc *liveCol, qc, typeName string) string {
	name := "$2::text"
	if lc.BaseOID == oidBpchar {
		name = "pg_catalog.rtrim($2::text, ' ')"
	}
	if lc.BaseOID == 19 {
		return fmt.Sprintf(`(CAST(%s AS text) COLLATE "C" = %s AND $1::text IS NOT NULL)`, qc, name)
	}
	if tenantTextGuard(lc) {
		return fmt.Sprintf(`(%[1]s = $1::%[2]s AND CAST(%[1]s AS text) COLLATE "C" = %[3]s)`, qc, typeName, name)
	}
	return fmt.Sprintf("(%s = $1::%s AND $2::text IS NOT NULL)", qc, typeName)
}
