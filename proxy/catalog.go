package proxy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// catalog is a snapshot of the live schema of the configured tables, taken
// over the service connection. The planner resolves names with it; the
// relay uses it to recognise encrypted columns by a RowDescription's table
// OID and attribute number, and to know each column's physical type.
type catalog struct {
	rw *rewrite.Catalog
	// byOID maps a configured table's OID to what the relay needs of it.
	byOID map[uint32]*catTable
	// byTable maps a configured table to the same.
	byTable map[*policy.Table]*catTable
	// partial: a view's definition could not be read (its relations were
	// locked); the view is refused until a later snapshot reads it.
	partial bool
	// pathDDL: an enabled event trigger runs a function whose code may
	// change the settings (pathFunctions): any DDL statement may.
	pathDDL bool
}

// catTable is one configured table as it exists in the database.
type catTable struct {
	policy *policy.Table
	oid    uint32
	// cols maps an encrypted column's attnum to its policy.
	cols map[int16]*policy.Column
	// physical is each encrypted column's physical type OID (bytea or text).
	physical map[*policy.Column]uint32
	// tenantAttNum and tenantType describe the key_context column (0 if none).
	tenantAttNum int16
	tenantType   uint32
	// tenantMod is the key_context column's type modifier when its type
	// is varchar, numeric, timestamp or timestamptz, else -1
	// (tenantLengths).
	tenantMod int32
	// tenantBase is, when tenantType is a domain named by its stored text
	// (canon.TenantBase), the domain's last base type, whose output a
	// write's tenant is named as (canon.DomainTenant); else 0.
	tenantBase uint32
	// typeOf is every column's type OID by name (for the planner's needs
	// and for tenant values sent as parameters).
	typeOf map[string]uint32
}

// physicalType of an encrypted column: policy.OIDBytea or policy.OIDText.
func (c *catalog) physicalType(col *policy.Column) uint32 {
	if t := c.byTable[col.Table]; t != nil {
		if p, ok := t.physical[col]; ok {
			return p
		}
	}
	return policy.OIDBytea
}

// tenantBaseOf is catTable.tenantBase of a table's key_context column.
func (c *catalog) tenantBaseOf(t *policy.Table) uint32 {
	if ct := c.byTable[t]; ct != nil {
		return ct.tenantBase
	}
	return 0
}

// tenantType is the type OID of a table's key_context column.
func (c *catalog) tenantType(t *policy.Table) uint32 {
	if ct := c.byTable[t]; ct != nil {
		return ct.tenantType
	}
	return policy.OIDText
}

// catalogQuery reads every relation whose name equals a configured table's
// name (case-insensitively: quoted mixed-case names included), in any
// schema, with its live columns in attnum order.
const catalogQuery = `
SELECT c.oid, n.nspname, c.relname, a.attnum, a.attname, a.atttypid,
       COALESCE((SELECT NOT co.collisdeterministic FROM pg_catalog.pg_collation co WHERE co.oid = a.attcollation), false),
       c.relkind = 'p'
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND lower(c.relname) = ANY($1)
ORDER BY c.oid, a.attnum`

// loadCatalog takes a snapshot and checks it against the policy. Problems
// are returned together, each naming the table and column and the remedy.
func loadCatalog(ctx context.Context, pool *pgxpool.Pool, cfg *policy.Config) (*catalog, error) {
	rows, err := pool.Query(ctx, catalogQuery, cfg.TableNames())
	if err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", err)
	}
	rw := &rewrite.Catalog{Tables: map[string]*rewrite.CatalogTable{}}
	for rows.Next() {
		var oid uint32
		var schema, name, col string
		var attnum int16
		var typ uint32
		var nondet, partitioned bool
		if err := rows.Scan(&oid, &schema, &name, &attnum, &col, &typ, &nondet, &partitioned); err != nil {
			rows.Close()
			return nil, err
		}
		key := schema + "." + name
		t := rw.Tables[key]
		if t == nil {
			t = &rewrite.CatalogTable{Schema: schema, Name: name, OID: oid, Partitioned: partitioned}
			rw.Tables[key] = t
		}
		t.Columns = append(t.Columns, rewrite.CatalogColumn{Name: col, AttNum: attnum, TypeOID: typ, Nondeterministic: nondet})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", err)
	}
	if err := tenantBaseTypes(ctx, pool, rw, cfg); err != nil {
		return nil, err
	}
	c, err := buildCatalog(rw, cfg)
	if err != nil {
		return nil, err
	}
	if err := tenantLengths(ctx, pool, c); err != nil {
		return nil, err
	}
	if err := tenantTypesNamed(ctx, pool, c, cfg); err != nil {
		return nil, err
	}
	c.rw.Guarded = map[string]*rewrite.GuardedView{}
	keys, err := addGuardedChildren(ctx, pool, c)
	if err != nil {
		return nil, err
	}
	if err := addGuardedViews(ctx, pool, c, keys); err != nil {
		return nil, err
	}
	if err := addTenantViews(ctx, pool, c); err != nil {
		return nil, err
	}
	fns, err := readFunctions(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("reading functions' code: %w", err)
	}
	if c.rw.PathFunctions, c.rw.PathRelations, c.pathDDL, err = pathFunctions(ctx, pool, fns); err != nil {
		return nil, err
	}
	if c.rw.GuardedFunctions, c.rw.GuardedRelations, err = guardedCode(ctx, pool, fns, c.rw.Guarded); err != nil {
		return nil, err
	}
	if c.rw.OverlayColumns, err = overlayColumns(ctx, pool); err != nil {
		return nil, err
	}
	return c, nil
}

// tenantBaseTypes gives key_context columns whose type is a domain
// (CREATE DOMAIN tenant_id AS bigint, or a domain over such a domain) their
// base type when canon.TenantBase says so: PostgreSQL reads and stores a value as the base type does
// ('007' is 7), and the tenant must be named as it stores it (review 18b:
// a domain was read as text, '007' named tenant "007" while 7 was stored,
// and the row did not open). Other columns keep their own type.
func tenantBaseTypes(ctx context.Context, pool *pgxpool.Pool, rw *rewrite.Catalog, cfg *policy.Config) error {
	names := map[string]bool{}
	for _, t := range cfg.Tables {
		if t.KeyContext != "" {
			names[t.KeyContext] = true
		}
	}
	var oids []uint32
	for _, t := range rw.Tables {
		for _, c := range t.Columns {
			if names[c.Name] {
				oids = append(oids, c.TypeOID)
			}
		}
	}
	if len(oids) == 0 {
		return nil
	}
	rows, err := pool.Query(ctx, `WITH RECURSIVE d(start, base, depth) AS (
		SELECT t.oid, t.typbasetype, 1 FROM pg_catalog.pg_type t WHERE t.oid = ANY($1) AND t.typtype = 'd'
		UNION ALL
		SELECT d.start, t.typbasetype, d.depth + 1 FROM d JOIN pg_catalog.pg_type t ON t.oid = d.base AND t.typtype = 'd')
		SELECT DISTINCT ON (start) start, base FROM d ORDER BY start, depth DESC`, oids)
	if err != nil {
		return fmt.Errorf("reading the catalog (domain types): %w", err)
	}
	base := map[uint32]uint32{}
	for rows.Next() {
		var d, b uint32
		if err := rows.Scan(&d, &b); err != nil {
			rows.Close()
			return err
		}
		base[d] = b
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the catalog (domain types): %w", err)
	}
	for _, t := range rw.Tables {
		for i, c := range t.Columns {
			if b, ok := base[c.TypeOID]; ok && names[c.Name] {
				t.Columns[i].TypeOID = canon.TenantBase(c.TypeOID, b)
				t.Columns[i].BaseOID = b
			}
		}
	}
	return nil
}

// overlayColumnsQuery reads the column names of the catalog relations the
// planner overlays with logical types (rewrite/overlay.go), as this
// server's version has them.
const overlayColumnsQuery = `
SELECT n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname,
       pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attnum)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE (n.nspname, c.relname) IN (('pg_catalog', 'pg_attribute'), ('information_schema', 'columns'))
GROUP BY 1`

func overlayColumns(ctx context.Context, pool *pgxpool.Pool) (map[string][]string, error) {
	rows, err := pool.Query(ctx, overlayColumnsQuery)
	if err != nil {
		return nil, fmt.Errorf("reading the catalog's own columns: %w", err)
	}
	out := map[string][]string{}
	for rows.Next() {
		var rel string
		var cols []string
		if err := rows.Scan(&rel, &cols); err != nil {
			rows.Close()
			return nil, err
		}
		out[rel] = cols
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the catalog's own columns: %w", err)
	}
	return out, nil
}

// pathCodeQuery reads, outside the system schemas, each function's source
// and (PostgreSQL 14 on, %s) its BEGIN ATOMIC body as a node tree. It
// calls nothing that locks a relation (pg_get_viewdef, pg_get_expr and
// pg_get_function_sqlbody do): a refresh runs while sessions may hold
// locks from DDL in an open transaction, and waits for none of them.
const pathCodeQuery = `
SELECT p.oid, pg_catalog.lower(p.proname), p.prosrc, %s
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND p.prolang NOT IN (SELECT l.oid FROM pg_catalog.pg_language l WHERE l.lanname IN ('internal', 'c'))`

// pathUsesQuery lists, outside the system schemas, the relations whose
// use runs a function: views and column defaults that call one (their
// recorded dependencies), triggers, and index expressions and predicates
// (a function declared IMMUTABLE may still call set_config: review 20f).
const pathUsesQuery = `
SELECT c.oid, pg_catalog.lower(c.relname), d.refobjid
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND r.oid = d.objid
JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT c.oid, pg_catalog.lower(c.relname), d.refobjid
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_attrdef a ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND a.oid = d.objid
JOIN pg_catalog.pg_class c ON c.oid = a.adrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT c.oid, pg_catalog.lower(c.relname), t.tgfoid
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT c.oid, pg_catalog.lower(c.relname), d.refobjid
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_index i ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND i.indexrelid = d.objid
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND n.nspname NOT IN ('pg_catalog', 'information_schema')`

// relationEdgesQuery lists pairs (a relation, another relation whose code
// runs when a statement uses the first): a view or rule (also a
// row-security policy) and the relations its query names, a table and its
// partitions and children (a write or read of the parent reaches their
// rows: their triggers, CHECKs, defaults on routing), a table and those
// whose foreign key references it (ON DELETE CASCADE fires the other
// table's triggers; TRUNCATE … CASCADE its TRUNCATE triggers, whatever
// the key's actions). Review 20f: a view over a view calling
// set_config, a partition's CHECK calling it, a cascaded DELETE firing a
// trigger that does changed the DateStyle unseen. Read without locks.
const relationEdgesQuery = `
SELECT r.ev_class, d.refobjid, pg_catalog.lower(c.relname)
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND r.oid = d.objid
JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> r.ev_class
UNION ALL
SELECT p.polrelid, d.refobjid, pg_catalog.lower(c.relname)
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_policy p ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND p.oid = d.objid
JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> p.polrelid
UNION ALL
SELECT i.inhparent, i.inhrelid, pg_catalog.lower(c.relname)
FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class c ON c.oid = i.inhparent
UNION ALL
SELECT k.confrelid, k.conrelid, pg_catalog.lower(c.relname)
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.confrelid
WHERE k.contype = 'f'`

// pathFunctions finds the functions whose code may change search_path
// (rewrite.Catalog.PathFunctions): those whose own code changesPath (a
// BEGIN ATOMIC body: that calls set_config at all), and, until nothing
// changes, those whose code names or calls one of them. Then the relations
// that run such a function when a statement uses them (a view that calls
// one, a column default, a trigger: PathRelations). Names are matched as
// text, calls in node trees by function OID. Until nothing changes
// (review 20f): a relation whose use reaches a path relation (a view over
// it, its parent, a table whose foreign key cascades to it:
// relationEdgesQuery) is one, and a function whose code names a path
// relation is a path function. ddl: an enabled event trigger runs a path
// function (review 20f: CREATE TABLE …; SELECT … read the rows in the
// DateStyle order last reported while the trigger had changed it).
func pathFunctions(ctx context.Context, pool *pgxpool.Pool, fns []codeFunc) (funcs, rels map[string]bool, ddl bool, err error) {
	var setConfig uint32
	if err := pool.QueryRow(ctx, "SELECT 'pg_catalog.set_config(text,text,boolean)'::pg_catalog.regprocedure::pg_catalog.oid").Scan(&setConfig); err != nil {
		return nil, nil, false, fmt.Errorf("reading set_config's oid: %w", err)
	}
	funcs, rels = map[string]bool{}, map[string]bool{}
	oids := map[uint32]bool{}
	relOIDs := map[uint32]bool{}
	add := func(f codeFunc) { funcs[f.name], oids[f.oid] = true, true }
	for _, f := range fns {
		if changesPath(f.src) || callsAny(f.nodes, map[uint32]bool{setConfig: true}) {
			add(f)
		}
	}
	var uses, edges, opAggs []relEdge
	usesRead, edgesRead, opAggsRead := false, false, false
	scanned := -1 // len(oids) when setConfigUsesQuery last ran
	for {
		for changed := true; changed; {
			changed = false
			for _, f := range fns {
				if !oids[f.oid] && (namesAny(f.src, funcs) || callsAny(f.nodes, oids) || namesAny(f.src, rels) || readsAny(f.nodes, relOIDs)) {
					add(f)
					changed = true
				}
			}
			if len(oids) > 0 && !opAggsRead {
				if opAggs, err = readEdges(ctx, pool, opAggQuery); err != nil {
					return funcs, rels, false, fmt.Errorf("reading operators and aggregates: %w", err)
				}
				opAggsRead = true
			}
			for _, o := range opAggs {
				if oids[o.to] && !oids[o.from] {
					// Called by its name (an aggregate) or symbol (an
					// operator), not the function's (review 20f).
					funcs[o.name], oids[o.from] = true, true
					changed = true
				}
			}
		}
		n := len(relOIDs)
		if len(oids) > 0 && !usesRead {
			if uses, err = readEdges(ctx, pool, pathUsesQuery); err != nil {
				return funcs, rels, false, fmt.Errorf("reading views, defaults and triggers that call functions: %w", err)
			}
			usesRead = true
		}
		for _, u := range uses {
			if oids[u.to] {
				rels[u.name], relOIDs[u.from] = true, true
			}
		}
		if len(oids) != scanned {
			scanned = len(oids)
			if err := relationsCallingSetConfig(ctx, pool, setConfig, oids, rels, relOIDs); err != nil {
				return funcs, rels, false, err
			}
		}
		if len(relOIDs) > 0 && !edgesRead {
			if edges, err = readEdges(ctx, pool, relationEdgesQuery); err != nil {
				return funcs, rels, false, fmt.Errorf("reading the relations views, partitions and foreign keys reach: %w", err)
			}
			edgesRead = true
		}
		for changed := true; changed; {
			changed = false
			for _, e := range edges {
				if relOIDs[e.to] && !relOIDs[e.from] {
					rels[e.name], relOIDs[e.from] = true, true
					changed = true
				}
			}
		}
		grown := false
		for _, f := range fns {
			if !oids[f.oid] && (namesAny(f.src, rels) || readsAny(f.nodes, relOIDs)) {
				grown = true
				break
			}
		}
		if !grown && len(relOIDs) == n {
			ddl, err = eventTriggersRun(ctx, pool, oids)
			return funcs, rels, ddl, err
		}
	}
}

// eventTriggersRun reports whether an enabled event trigger runs one of
// the functions.
func eventTriggersRun(ctx context.Context, pool *pgxpool.Pool, oids map[uint32]bool) (bool, error) {
	if len(oids) == 0 {
		return false, nil
	}
	rows, err := pool.Query(ctx, "SELECT evtfoid FROM pg_catalog.pg_event_trigger WHERE evtenabled <> 'D'")
	if err != nil {
		return false, fmt.Errorf("reading event triggers: %w", err)
	}
	defer rows.Close()
	run := false
	for rows.Next() {
		var oid uint32
		if err := rows.Scan(&oid); err != nil {
			return false, err
		}
		run = run || oids[oid]
	}
	return run, rows.Err()
}

// opAggQuery lists, outside the system schemas, the operators (oid,
// symbol, function) and the aggregates (oid, name, each of their support
// functions): a statement or a view runs the function through them.
const opAggQuery = `
SELECT o.oid, o.oprname::pg_catalog.text, o.oprcode::pg_catalog.oid
FROM pg_catalog.pg_operator o
JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT a.aggfnoid::pg_catalog.oid, pg_catalog.lower(p.proname), f.f::pg_catalog.oid
FROM pg_catalog.pg_aggregate a
JOIN pg_catalog.pg_proc p ON p.oid = a.aggfnoid
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
CROSS JOIN LATERAL (VALUES (a.aggtransfn), (a.aggfinalfn), (a.aggcombinefn), (a.aggserialfn), (a.aggdeserialfn), (a.aggmtransfn), (a.aggminvtransfn), (a.aggmfinalfn)) f(f)
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND f.f <> 0`

// relEdge is a row of pathUsesQuery (a relation, a function it runs) or
// relationEdgesQuery (a relation, another one it reaches); name is from's.
type relEdge struct {
	from, to uint32
	name     string
}

func readEdges(ctx context.Context, pool *pgxpool.Pool, query string) ([]relEdge, error) {
	rows, err := pool.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []relEdge
	for rows.Next() {
		var e relEdge
		if query == pathUsesQuery || query == opAggQuery {
			err = rows.Scan(&e.from, &e.name, &e.to)
		} else {
			err = rows.Scan(&e.from, &e.to, &e.name)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// readsAny reports whether a node tree (a BEGIN ATOMIC body as text)
// names one of the relations (":relid N").
func readsAny(nodes string, oids map[uint32]bool) bool {
	if len(oids) == 0 {
		return false
	}
	for rest := nodes; ; {
		i := strings.Index(rest, ":relid ")
		if i < 0 {
			return false
		}
		rest = rest[i+len(":relid "):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if n, err := strconv.ParseUint(rest[:j], 10, 32); err == nil && oids[uint32(n)] {
			return true
		}
	}
}

// setConfigUsesQuery lists, outside the system schemas, the views, the
// tables with a column default or CHECK constraint, and the tables with a
// row-security policy whose node tree (as text) calls one of the
// functions of the regular expression $1 (":funcid (2078|…) "): set_config
// itself, of which pg_depend records no use (a built-in), and the path
// functions, whose use in a CHECK or a policy pathUsesQuery does not
// read. Read without locks, as pathUsesQuery.
const setConfigUsesQuery = `
SELECT c.oid, pg_catalog.lower(c.relname)
FROM pg_catalog.pg_rewrite r
JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND r.ev_action::text ~ $1
UNION
SELECT c.oid, pg_catalog.lower(c.relname)
FROM pg_catalog.pg_attrdef a
JOIN pg_catalog.pg_class c ON c.oid = a.adrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND a.adbin::text ~ $1
UNION
SELECT c.oid, pg_catalog.lower(c.relname)
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE k.contype = 'c' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND k.conbin::text ~ $1
UNION
SELECT c.oid, pg_catalog.lower(c.relname)
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_attribute a ON a.atttypid = k.contypid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE k.contype = 'c' AND k.contypid <> 0 AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND k.conbin::text ~ $1
UNION
SELECT c.oid, pg_catalog.lower(c.relname)
FROM pg_catalog.pg_policy p
JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND coalesce(p.polqual::text, '') || ' ' || coalesce(p.polwithcheck::text, '') ~ $1`

// relationsCallingSetConfig adds to rels the relations whose use calls
// set_config, or one of the path functions oids, in a view, a column
// default, a CHECK constraint (also a domain's, of a column's type) or a
// row-security policy
// (setConfigUsesQuery): SELECT … FROM a view over set_config('DateStyle',
// …) changed the DateStyle while the rows beside it were printed (review
// 20d: read in the order last reported, a value moved from another
// tenant's row opened).
func relationsCallingSetConfig(ctx context.Context, pool *pgxpool.Pool, setConfig uint32, oids map[uint32]bool, rels map[string]bool, relOIDs map[uint32]bool) error {
	ids := []string{strconv.FormatUint(uint64(setConfig), 10)}
	for oid := range oids {
		ids = append(ids, strconv.FormatUint(uint64(oid), 10))
	}
	rows, err := pool.Query(ctx, setConfigUsesQuery, ":(funcid|opfuncid|aggfnoid|winfnoid) ("+strings.Join(ids, "|")+") ")
	if err != nil {
		return fmt.Errorf("reading views, defaults, constraints and policies that call set_config: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var oid uint32
		if err := rows.Scan(&oid, &name); err != nil {
			return err
		}
		rels[name], relOIDs[oid] = true, true
	}
	return rows.Err()
}

// codeFunc is a function of the database as pathCodeQuery reads it.
type codeFunc struct {
	oid        uint32
	name       string
	src, nodes string // source (lower case), BEGIN ATOMIC body
}

// readFunctions reads every function outside the system schemas
// (pathCodeQuery).
func readFunctions(ctx context.Context, pool *pgxpool.Pool) ([]codeFunc, error) {
	var version int
	if err := pool.QueryRow(ctx, "SELECT pg_catalog.current_setting('server_version_num')::int").Scan(&version); err != nil {
		return nil, fmt.Errorf("reading the server version: %w", err)
	}
	tree := "''"
	if version >= 140000 {
		tree = "coalesce(p.prosqlbody::text, '')"
	}
	rows, err := pool.Query(ctx, fmt.Sprintf(pathCodeQuery, tree))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var fns []codeFunc
	for rows.Next() {
		var f codeFunc
		var src *string
		if err := rows.Scan(&f.oid, &f.name, &src, &f.nodes); err != nil {
			return nil, err
		}
		if src != nil {
			f.src = strings.ToLower(*src)
		}
		fns = append(fns, f)
	}
	return fns, rows.Err()
}

// relationsRunning lists the relations whose use runs one of the
// functions (pathUsesQuery): views and column defaults that call one,
// triggers.
func relationsRunning(ctx context.Context, pool *pgxpool.Pool, oids map[uint32]bool) (map[string]bool, error) {
	rels := map[string]bool{}
	if len(oids) == 0 {
		return rels, nil
	}
	uses, err := readEdges(ctx, pool, pathUsesQuery)
	if err != nil {
		return nil, fmt.Errorf("reading views, defaults and triggers that call functions: %w", err)
	}
	for _, u := range uses {
		if oids[u.to] {
			rels[u.name] = true
		}
	}
	return rels, nil
}

// guardedCode finds the functions whose source names a relation pgveil
// guards (a view over an encrypted column, a partition or child of a
// configured table: Catalog.Guarded), as pgveil's checks of CREATE
// FUNCTION do, and those whose code names or calls one of them; then the
// relations whose use runs one (rewrite.Catalog.GuardedFunctions,
// GuardedRelations). Such code may have been created while the name meant
// a plain table, or directly in the database; values a statement passes
// to it would reach the encrypted column in plaintext.
func guardedCode(ctx context.Context, pool *pgxpool.Pool, fns []codeFunc, guarded map[string]*rewrite.GuardedView) (funcs, rels map[string]bool, err error) {
	names := map[string]bool{}
	for _, g := range guarded {
		names[strings.ToLower(g.Name)] = true
	}
	funcs, rels = map[string]bool{}, map[string]bool{}
	if len(names) == 0 {
		return funcs, rels, nil
	}
	oids := map[uint32]bool{}
	for _, f := range fns {
		if namesAny(f.src, names) {
			funcs[f.name], oids[f.oid] = true, true
		}
	}
	for changed := len(funcs) > 0; changed; {
		changed = false
		for _, f := range fns {
			if !oids[f.oid] && (namesAny(f.src, funcs) || callsAny(f.nodes, oids)) {
				funcs[f.name], oids[f.oid] = true, true
				changed = true
			}
		}
	}
	rels, err = relationsRunning(ctx, pool, oids)
	return funcs, rels, err
}

// callsAny reports whether a node tree (pg_node_tree as text) calls one
// of the functions.
func callsAny(nodes string, oids map[uint32]bool) bool {
	for rest := nodes; ; {
		i := strings.Index(rest, "funcid ")
		k := strings.Index(rest, "fnoid ")
		if i < 0 && k < 0 {
			return false
		}
		var call bool
		if i >= 0 && (k < 0 || i < k) {
			// FuncExpr's :funcid, OpExpr's :opfuncid (review 20f)
			call = i >= 1 && rest[i-1] == ':' || i >= 3 && rest[i-3:i] == ":op"
			rest = rest[i+len("funcid "):]
		} else {
			// Aggref's :aggfnoid, WindowFunc's :winfnoid (review 20f)
			call = k >= 4 && (rest[k-4:k] == ":agg" || rest[k-4:k] == ":win")
			rest = rest[k+len("fnoid "):]
		}
		if !call {
			continue
		}
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if n, err := strconv.ParseUint(rest[:j], 10, 32); err == nil && oids[uint32(n)] {
			return true
		}
	}
}

// namesAny reports whether code names one of names as a whole word.
func namesAny(code string, names map[string]bool) bool {
	for n := range names {
		for i := strings.Index(code, n); i >= 0; {
			end := i + len(n)
			if (i == 0 || !identByte(code[i-1])) && (end == len(code) || !identByte(code[end])) {
				return true
			}
			j := strings.Index(code[i+1:], n)
			if j < 0 {
				break
			}
			i += 1 + j
		}
	}
	return false
}

func identByte(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// changesPath reports whether function code may change search_path or
// what "$user" in it means: it names search_path, or calls set_config with
// a first argument that is not a literal naming another setting
// (set_config('app.tenant', …), common in row-security setups, is not).
// A textual test: code that builds these words from pieces is not seen.
// It also sets TimeZone (SET, RESET, set_config('timezone', …); review
// 20d): the server converts a timestamptz parameter for a date tenant in
// the new zone; the statement's effects then make it unknown until
// answered (effTZ). DateStyle and extra_float_digits no longer matter:
// pgveil reads date, timestamp and float tenants as their send form
// (review 21a).
func changesPath(code string) bool {
	lower := strings.ToLower(code)
	if strings.Contains(lower, "search_path") || setsRoleIn(lower) ||
		setsZone.MatchString(lower) ||
		strings.Contains(lower, "pg_settings") && hasWordFold(lower, "update") {
		// UPDATE pg_settings … WHERE name = 'TimeZone' (or 'role') runs
		// set_config through pg_settings' rule (review 20f).
		return true
	}
	for rest := lower; ; {
		i := strings.Index(rest, "set_config")
		if i < 0 {
			return false
		}
		rest = strings.TrimLeft(rest[i+len("set_config"):], " \t\r\n")
		if !strings.HasPrefix(rest, "(") {
			continue // another identifier that starts with set_config
		}
		name, ok := leadingArgument(rest[1:])
		if !ok || name == "role" || name == "session_authorization" || name == "timezone" {
			return true
		}
	}
}

// setsRole finds SET [SESSION|LOCAL] ROLE, SET SESSION AUTHORIZATION,
// their RESET and RESET ALL in code: they change what "$user" means, and
// the role whose readers see a column (a textual test, like the rest).
// setsZone finds SET [SESSION|LOCAL] TimeZone (or TIME ZONE) and its
// RESET in code; not timezone('utc', …) nor AT TIME ZONE, common in
// trigger code.
var setsZone = regexp.MustCompile(`\b(set|reset)\s+((session|local)\s+)?("timezone"|timezone\b|time\s+zone\b)`)

// setsRole also finds SET [SESSION|LOCAL] SCHEMA 'x', SQL's spelling of SET
// search_path, which names no search_path (review 21c HIGH: a function
// running it changed the server's path unseen, and an INSERT after its
// call went into the table the old path named).
var setsRole = regexp.MustCompile(`\b(set|reset)\s+((session|local)\s+)?(role|session\s+authorization|all|schema)\b`)

// setsRoleIn reports whether lower (code in lower case) holds a setsRole
// match that is not a column assignment: UPDATE … SET schema = …, ON
// CONFLICT … DO UPDATE SET schema = … (SET SCHEMA takes a string, never
// '='). Review 21g: such code became a path function, and every call of
// it, every write to a table whose trigger runs it, asked the server for
// the path again.
func setsRoleIn(lower string) bool {
	for _, m := range setsRole.FindAllStringIndex(lower, -1) {
		if !strings.HasSuffix(lower[m[0]:m[1]], "schema") || !strings.HasPrefix(strings.TrimLeft(lower[m[1]:], " \t\r\n"), "=") {
			return true
		}
	}
	return false
}

// leadingArgument reads a first argument that is a plain '…' string
// literal and nothing else (a comma follows it).
func leadingArgument(s string) (string, bool) {
	s = strings.TrimLeft(s, " \t\r\n")
	if !strings.HasPrefix(s, "'") {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		return b.String(), strings.HasPrefix(strings.TrimLeft(s[i+1:], " \t\r\n"), ",")
	}
	return "", false
}

// buildCatalog indexes a snapshot and validates it against the policy.
func buildCatalog(rw *rewrite.Catalog, cfg *policy.Config) (*catalog, error) {
	c := &catalog{rw: rw, byOID: map[uint32]*catTable{}, byTable: map[*policy.Table]*catTable{}}
	var problems []string
	for _, pt := range cfg.Tables {
		t := rw.Tables[pt.QualifiedName()]
		if t == nil {
			problems = append(problems, fmt.Sprintf("table %s does not exist", pt.QualifiedName()))
			continue
		}
		ct := &catTable{policy: pt, oid: t.OID, cols: map[int16]*policy.Column{}, physical: map[*policy.Column]uint32{}, typeOf: map[string]uint32{}, tenantMod: -1}
		attnum := map[string]int16{}
		for _, col := range t.Columns {
			ct.typeOf[col.Name] = col.TypeOID
			attnum[col.Name] = col.AttNum
		}
		for _, col := range pt.Columns {
			typ, ok := ct.typeOf[col.Name]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("column %s does not exist", col.QualifiedName()))
				continue
			case typ != policy.OIDBytea && typ != policy.OIDText:
				problems = append(problems, fmt.Sprintf("column %s has type OID %d; an encrypted column must be bytea (or text for in-place adoption)", col.QualifiedName(), typ))
				continue
			}
			ct.cols[attnum[col.Name]] = col
			ct.physical[col] = typ
			for _, bi := range col.IndexTargets() {
				btyp, ok := ct.typeOf[bi.Column]
				switch {
				case !ok:
					problems = append(problems, fmt.Sprintf("blind-index column %s.%s (for %s) does not exist", pt.QualifiedName(), bi.Column, col.Name))
				case btyp != policy.OIDBytea:
					problems = append(problems, fmt.Sprintf("blind-index column %s.%s has type OID %d; it must be bytea", pt.QualifiedName(), bi.Column, btyp))
				}
			}
		}
		if kc := pt.KeyContext; kc != "" {
			typ, ok := ct.typeOf[kc]
			if !ok {
				problems = append(problems, fmt.Sprintf("key_context column %s.%s does not exist", pt.QualifiedName(), kc))
			}
			ct.tenantAttNum, ct.tenantType = attnum[kc], typ
		}
		c.byOID[t.OID] = ct
		c.byTable[pt] = ct
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, &schemaError{problems: problems, config: cfg.Path}
	}
	return c, nil
}

// schemaError lists the differences between the policy and the database.
type schemaError struct {
	problems []string
	config   string
}

func (e *schemaError) Error() string {
	cfg := e.config
	if cfg == "" {
		cfg = "config.yaml"
	}
	return "the database does not match the encryption policy:\n  - " + strings.Join(e.problems, "\n  - ") +
		"\nrun `pgveil check -c " + cfg + "` for the DDL that fixes each problem (or `pgveil migrate -c " + cfg + " --apply`)"
}

// guardedQuery finds every view or materialized view that reads an
// encrypted or blind-index column of a configured table ($1: table OID ×
// 65536 + attnum), and, transitively, every view over such a view, with the
// configured table it leads to and the view's columns.
const guardedQuery = `
WITH RECURSIVE dep(view_oid, base) AS (
  SELECT DISTINCT r.ev_class, d.refobjid
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
  WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
    AND r.ev_class <> d.refobjid
    AND d.refobjid::int8 * 65536 + d.refobjsubid = ANY($1::int8[])
  UNION
  SELECT r.ev_class, dep.base
  FROM dep
  JOIN pg_catalog.pg_depend d ON d.refobjid = dep.view_oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
    AND d.classid = 'pg_catalog.pg_rewrite'::regclass
  JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
  WHERE r.ev_class <> dep.view_oid
)
SELECT DISTINCT ON (v.oid, a.attnum) v.oid, n.nspname, v.relname, bn.nspname || '.' || b.relname, a.attnum, a.attname, a.atttypid
FROM dep
JOIN pg_catalog.pg_class v ON v.oid = dep.view_oid
JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace
JOIN pg_catalog.pg_class b ON b.oid = dep.base
JOIN pg_catalog.pg_namespace bn ON bn.oid = b.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = v.oid AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY v.oid, a.attnum`

// childrenQuery finds every table below a configured table ($1: their
// OIDs) by partitioning or inheritance, at any depth, and every table above
// one (up), each with the configured table it is related to (one row per
// such table and column: a table may be below two configured ones).
const childrenQuery = `
WITH RECURSIVE below(rel, conf) AS (
  SELECT i.inhrelid, i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhparent = ANY($1::pg_catalog.oid[])
  UNION
  SELECT i.inhrelid, b.conf FROM below b JOIN pg_catalog.pg_inherits i ON i.inhparent = b.rel
), above(rel, conf) AS (
  SELECT i.inhparent, i.inhrelid FROM pg_catalog.pg_inherits i WHERE i.inhrelid = ANY($1::pg_catalog.oid[])
  UNION
  SELECT i.inhparent, b.conf FROM above b JOIN pg_catalog.pg_inherits i ON i.inhrelid = b.rel
), related(rel, conf, up) AS (
  SELECT rel, conf, false FROM below UNION ALL SELECT rel, conf, true FROM above
)
SELECT c.oid, n.nspname, c.relname, c.relispartition, c.relkind = 'p', r.conf, r.up, a.attnum, a.attname, a.atttypid
FROM related r
JOIN pg_catalog.pg_class c ON c.oid = r.rel
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.oid, r.up, r.conf, a.attnum`

// addGuardedChildren records the partitions and inheritance children of
// configured tables that are not configured themselves: PostgreSQL lets a
// statement name one directly, and pgveil, which encrypts by the
// configured table, would pass a write to it in plaintext. The tables
// above a configured one (a partitioned table with a configured
// partition, an inheritance parent) are recorded too: a write through one
// reaches the configured table in plaintext. Statements that name either
// are refused (rewrite.GuardedView.Child). It returns the
// (OID × 65536 + attnum) keys of their encrypted and blind-index columns,
// so that views over them are guarded as well.
func addGuardedChildren(ctx context.Context, pool *pgxpool.Pool, c *catalog) ([]int64, error) {
	if len(c.byOID) == 0 {
		return nil, nil
	}
	oids := make([]uint32, 0, len(c.byOID))
	for oid := range c.byOID {
		oids = append(oids, oid)
	}
	rows, err := pool.Query(ctx, childrenQuery, oids)
	if err != nil {
		return nil, fmt.Errorf("reading partitions and inheritance children: %w", err)
	}
	type related struct {
		oid, conf, typ        uint32
		schema, name, col     string
		partition, routes, up bool
		attnum                int16
	}
	var all []related
	// An inheritance parent does not pass rows down: it matters only if it
	// has a column named like an encrypted or blind-index column of the
	// table below it (a SELECT of it reads theirs). A partitioned table
	// routes every row it is given.
	matters := map[uint32]bool{}
	for rows.Next() {
		var r related
		if err := rows.Scan(&r.oid, &r.schema, &r.name, &r.partition, &r.routes, &r.conf, &r.up, &r.attnum, &r.col, &r.typ); err != nil {
			rows.Close()
			return nil, err
		}
		if parent := c.byOID[r.conf]; parent != nil && (!r.up || r.routes || guardsColumn(parent.policy, r.col)) {
			matters[r.oid] = true
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var keys []int64
	for _, r := range all {
		parent := c.byOID[r.conf]
		if c.byOID[r.oid] != nil || parent == nil || !matters[r.oid] {
			continue // configured itself (its own policy applies), or harmless
		}
		key := r.schema + "." + r.name
		if c.rw.Guarded[key] == nil {
			kind := rewrite.ChildInheritance
			switch {
			case r.up:
				kind = rewrite.ChildAncestor
			case r.partition:
				kind = rewrite.ChildPartition
			}
			c.rw.Guarded[key] = &rewrite.GuardedView{Schema: r.schema, Name: r.name, Reads: parent.policy.QualifiedName(), Child: kind, Parent: parent.policy}
			if c.rw.Tables[key] == nil {
				c.rw.Tables[key] = &rewrite.CatalogTable{Schema: r.schema, Name: r.name, OID: r.oid}
			}
		}
		if t := c.rw.Tables[key]; t.OID == r.oid && !hasColumn(t, r.col) {
			t.Columns = append(t.Columns, rewrite.CatalogColumn{Name: r.col, AttNum: r.attnum, TypeOID: r.typ})
		}
		if guardsColumn(parent.policy, r.col) {
			keys = append(keys, int64(r.oid)*65536+int64(r.attnum))
		}
	}
	return keys, nil
}

func hasColumn(t *rewrite.CatalogTable, name string) bool {
	for _, c := range t.Columns {
		if c.Name == name {
			return true
		}
	}
	return false
}

// guardsColumn reports whether col of a configured table is encrypted or
// holds a blind index.
func guardsColumn(t *policy.Table, col string) bool {
	for _, c := range t.Columns {
		if c.Name == col {
			return true
		}
		for _, bi := range c.IndexTargets() {
			if bi.Column == col {
				return true
			}
		}
	}
	return false
}

// addGuardedViews records the views over encrypted columns in the planner's
// catalog: statements that name them are refused (rewrite.GuardedView).
// keys holds more columns whose views are guarded (addGuardedChildren).
func addGuardedViews(ctx context.Context, pool *pgxpool.Pool, c *catalog, keys []int64) error {
	for _, ct := range c.byTable {
		for attnum, col := range ct.cols {
			keys = append(keys, int64(ct.oid)*65536+int64(attnum))
			for _, bi := range col.IndexTargets() {
				for _, tc := range c.rw.Tables[ct.policy.QualifiedName()].Columns {
					if tc.Name == bi.Column {
						keys = append(keys, int64(ct.oid)*65536+int64(tc.AttNum))
					}
				}
			}
		}
	}
	if len(keys) == 0 {
		return nil
	}
	rows, err := pool.Query(ctx, guardedQuery, keys)
	if err != nil {
		return fmt.Errorf("reading views over encrypted columns: %w", err)
	}
	defer rows.Close()
	byOID := map[uint32]*rewrite.GuardedView{}
	for rows.Next() {
		var oid, typ uint32
		var schema, name, reads, col string
		var attnum int16
		if err := rows.Scan(&oid, &schema, &name, &reads, &attnum, &col, &typ); err != nil {
			return err
		}
		key := schema + "." + name
		if g := c.rw.Guarded[reads]; g != nil && g.Child != "" {
			reads = g.Reads // a view over a partition reads the configured table
		}
		if c.rw.Guarded[key] == nil {
			c.rw.Guarded[key] = &rewrite.GuardedView{Schema: schema, Name: name, Reads: reads}
			c.rw.Tables[key] = &rewrite.CatalogTable{Schema: schema, Name: name, OID: oid}
			byOID[oid] = c.rw.Guarded[key]
		}
		t := c.rw.Tables[key]
		t.Columns = append(t.Columns, rewrite.CatalogColumn{Name: col, AttNum: attnum, TypeOID: typ})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	return viewDefinitions(ctx, pool, c, byOID)
}

// addTenantViews finds the views over the key_context column of a
// configured table that are not guarded already (rewrite.Catalog
// TenantViews), and lists them among the catalog's tables so that their
// names resolve.
func addTenantViews(ctx context.Context, pool *pgxpool.Pool, c *catalog) error {
	c.rw.TenantViews = map[string]string{}
	var keys []int64
	for _, ct := range c.byTable {
		if ct.tenantAttNum > 0 {
			keys = append(keys, int64(ct.oid)*65536+int64(ct.tenantAttNum))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	rows, err := pool.Query(ctx, guardedQuery, keys)
	if err != nil {
		return fmt.Errorf("reading views over tenant columns: %w", err)
	}
	defer rows.Close()
	listed := map[string]bool{} // added to Tables here
	for rows.Next() {
		var oid, typ uint32
		var schema, name, reads, col string
		var attnum int16
		if err := rows.Scan(&oid, &schema, &name, &reads, &attnum, &col, &typ); err != nil {
			return err
		}
		key := schema + "." + name
		if c.rw.Guarded[key] != nil {
			continue // refused for writes already
		}
		if _, ok := c.rw.TenantViews[key]; !ok {
			c.rw.TenantViews[key] = reads
			if c.rw.Tables[key] == nil { // else named like a configured table: listed already
				c.rw.Tables[key] = &rewrite.CatalogTable{Schema: schema, Name: name, OID: oid}
				listed[key] = true
			}
		}
		if listed[key] {
			t := c.rw.Tables[key]
			t.Columns = append(t.Columns, rewrite.CatalogColumn{Name: col, AttNum: attnum, TypeOID: typ})
		}
	}
	return rows.Err()
}

// SearchPathFunctions lists, sorted, the names of the functions whose code
// may change search_path (pathFunctionsQuery), for `pgveil check`.
func SearchPathFunctions(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	fns, err := readFunctions(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("reading functions' code: %w", err)
	}
	m, _, _, err := pathFunctions(ctx, pool, fns)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// GuardedViews loads the catalog as `pgveil serve` does and reports every
// view over encrypted columns and whether pgveil reads it, and the views
// over a key_context column ("schema.name" to the configured table),
// through which pgveil refuses UPDATE and MERGE (for `pgveil check`). It
// fails where serve would refuse to start.
func GuardedViews(ctx context.Context, pool *pgxpool.Pool, cfg *policy.Config) ([]rewrite.ViewStatus, map[string]string, error) {
	c, err := loadCatalog(ctx, pool, cfg)
	if err != nil {
		return nil, nil, err
	}
	p := rewrite.NewPlanner(cfg, 0)
	p.SetCatalog(c.rw)
	return p.Views(), c.rw.TenantViews, nil
}

// viewDefinitions fills in each guarded view's definition, printed with
// every relation schema-qualified (search_path pg_catalog only), so the
// planner can see through the views it can (rewrite/view.go).
func viewDefinitions(ctx context.Context, pool *pgxpool.Pool, c *catalog, byOID map[uint32]*rewrite.GuardedView) error {
	if len(byOID) == 0 {
		return nil
	}
	oids := make([]uint32, 0, len(byOID))
	for oid := range byOID {
		oids = append(oids, oid)
	}
	// pg_get_viewdef locks the relations a view reads. A session may hold
	// a lock on one in an open transaction (DDL) while it waits for this
	// reload: wait briefly, per view, and leave a view whose definition
	// could not be read without one (it is refused, not seen through).
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL search_path TO pg_catalog; SET LOCAL lock_timeout = '200ms'"); err != nil {
			return err
		}
		for _, oid := range oids {
			if _, err := tx.Exec(ctx, "SAVEPOINT viewdef"); err != nil {
				return err
			}
			var def *string
			err := tx.QueryRow(ctx, "SELECT pg_catalog.pg_get_viewdef($1::pg_catalog.oid)", oid).Scan(&def)
			var pe *pgconn.PgError
			switch {
			case errors.As(err, &pe) && pe.Code == "55P03": // lock_not_available
				if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT viewdef"); err != nil {
					return err
				}
				c.partial = true
				continue
			case err != nil:
				return fmt.Errorf("reading view definitions: %w", err)
			}
			if def != nil {
				byOID[oid].Definition = *def
			}
		}
		return nil
	})
}
