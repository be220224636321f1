package rewrite

import (
	"fmt"
	"sort"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/policy"
)

// Catalog overlays. An encrypted column is bytea (or text) in the database,
// but the application is to see its logical type. Results already say so
// (RowDescription, ParameterDescription); the catalog does not, and ORMs
// that build their models from it (ActiveRecord, SQLAlchemy reflection,
// pgjdbc's DatabaseMetaData, Sequelize, Prisma, psql's \d) would type the
// column as binary data: ActiveRecord then binds an 8-digit integer as 8
// bytes of binary int8, and stores another number.
//
// So a read of pg_catalog.pg_attribute or information_schema.columns goes
// upstream through a subquery in its place that returns the same columns,
// in the same order, with the logical type in the type columns of each
// encrypted column and every other value unchanged:
//
//	FROM pg_catalog.pg_attribute a
//	FROM (SELECT o.attrelid, o.attname, CASE WHEN m.rel IS NULL THEN o.atttypid ELSE t.oid END AS atttypid, …
//	      FROM pg_catalog.pg_attribute o
//	      LEFT JOIN (VALUES (16384::oid, 'email'::name, 25::oid), …) m(rel, att, typ) ON …
//	      LEFT JOIN pg_catalog.pg_type t ON t.oid = m.typ) a
//
// The subquery is flattened by PostgreSQL's planner, so a lookup by
// attrelid still uses pg_attribute's index. Only names the server would
// resolve to those two catalog relations are overlaid: pg_attribute
// qualified with pg_catalog or unqualified (pg_catalog is searched first),
// and information_schema.columns qualified. Blind-index columns keep their
// bytea type: they are real columns an application may see, not values
// pgveil translates.

// Overlaid relations, by "schema.name" (OverlayColumns' keys).
const (
	OverlayAttribute = "pg_catalog.pg_attribute"
	OverlayColumns   = "information_schema.columns"
)

// overlays are the subquery texts that stand for the overlaid relations
// under one catalog snapshot; "" where nothing is encrypted or the snapshot
// lacks the relation's column list.
type overlays struct {
	attribute, columns string
}

// overlaidColumn is an encrypted column the catalog snapshot lists.
type overlaidColumn struct {
	oid                   uint32
	schema, table, column string
	typ                   policy.LogicalType
}

// buildOverlays makes the overlay texts for cat under cfg's policy.
func buildOverlays(cfg *policy.Config, cat *Catalog) overlays {
	if cat == nil {
		return overlays{}
	}
	var cols []overlaidColumn
	for _, t := range cfg.Tables {
		ct := cat.Tables[t.QualifiedName()]
		if ct == nil {
			continue
		}
		for _, c := range t.Columns {
			for _, cc := range ct.Columns {
				if cc.Name == c.Name {
					cols = append(cols, overlaidColumn{oid: ct.OID, schema: t.Schema, table: t.Name, column: c.Name, typ: c.Type})
					break
				}
			}
		}
	}
	if len(cols) == 0 {
		return overlays{}
	}
	sort.Slice(cols, func(i, j int) bool {
		if cols[i].oid != cols[j].oid {
			return cols[i].oid < cols[j].oid
		}
		return cols[i].column < cols[j].column
	})
	return overlays{
		attribute: attributeOverlay(cat.OverlayColumns[OverlayAttribute], cols),
		columns:   columnsOverlay(cat.OverlayColumns[OverlayColumns], cols),
	}
}

// attributeOverlay is the subquery for pg_catalog.pg_attribute: the type
// columns (atttypid, attlen, attbyval, attalign, attstorage, attcollation)
// of an encrypted column are those of its logical type, read from pg_type.
func attributeOverlay(names []string, cols []overlaidColumn) string {
	if len(names) == 0 {
		return ""
	}
	from := map[string]string{
		"atttypid": "oid", "attlen": "typlen", "attbyval": "typbyval", "attalign": "typalign",
		"attstorage": "typstorage", "attcollation": "typcollation",
	}
	var b strings.Builder
	selectList(&b, names, func(n, q string) string {
		if tc, ok := from[n]; ok {
			return "CASE WHEN pgveil_m.rel IS NULL THEN pgveil_o." + q + " ELSE pgveil_t." + tc + " END"
		}
		return ""
	})
	b.WriteString(" FROM pg_catalog.pg_attribute pgveil_o LEFT JOIN (VALUES ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%d::pg_catalog.oid, %s::pg_catalog.name, %d::pg_catalog.oid)", c.oid, quoteLiteral(c.column), c.typ.OID())
	}
	b.WriteString(") pgveil_m(rel, att, typ) ON pgveil_o.attrelid = pgveil_m.rel AND pgveil_o.attname = pgveil_m.att" +
		" LEFT JOIN pg_catalog.pg_type pgveil_t ON pgveil_t.oid = pgveil_m.typ)")
	return b.String()
}

// infoType is how information_schema.columns describes a column of a
// logical type (no typmod: the policy's types carry none); "" is NULL.
type infoType struct {
	dataType, udt                       string
	octets, precision, radix, scale, dt string
}

var infoTypes = map[policy.LogicalType]infoType{
	policy.TypeText:        {dataType: "text", udt: "text", octets: "1073741824"},
	policy.TypeVarchar:     {dataType: "character varying", udt: "varchar", octets: "1073741824"},
	policy.TypeInt2:        {dataType: "smallint", udt: "int2", precision: "16", radix: "2", scale: "0"},
	policy.TypeInt4:        {dataType: "integer", udt: "int4", precision: "32", radix: "2", scale: "0"},
	policy.TypeInt8:        {dataType: "bigint", udt: "int8", precision: "64", radix: "2", scale: "0"},
	policy.TypeNumeric:     {dataType: "numeric", udt: "numeric", radix: "10"},
	policy.TypeBool:        {dataType: "boolean", udt: "bool"},
	policy.TypeDate:        {dataType: "date", udt: "date", dt: "0"},
	policy.TypeTimestamp:   {dataType: "timestamp without time zone", udt: "timestamp", dt: "6"},
	policy.TypeTimestamptz: {dataType: "timestamp with time zone", udt: "timestamptz", dt: "6"},
	policy.TypeUUID:        {dataType: "uuid", udt: "uuid"},
	policy.TypeJSON:        {dataType: "json", udt: "json"},
	policy.TypeJSONB:       {dataType: "jsonb", udt: "jsonb"},
	policy.TypeBytea:       {dataType: "bytea", udt: "bytea"},
}

// columnsOverlay is the subquery for information_schema.columns: the type
// columns of an encrypted column describe its logical type.
func columnsOverlay(names []string, cols []overlaidColumn) string {
	if len(names) == 0 {
		return ""
	}
	const (
		ident = "information_schema.sql_identifier"
		chars = "information_schema.character_data"
		num   = "information_schema.cardinal_number"
	)
	over := map[string]string{
		"data_type": chars, "udt_name": ident, "character_octet_length": num,
		"numeric_precision": num, "numeric_precision_radix": num, "numeric_scale": num, "datetime_precision": num,
	}
	order := []string{"data_type", "udt_name", "character_octet_length", "numeric_precision", "numeric_precision_radix", "numeric_scale", "datetime_precision"}
	var b strings.Builder
	selectList(&b, names, func(n, q string) string {
		if _, ok := over[n]; ok {
			return "CASE WHEN pgveil_m.s IS NULL THEN pgveil_o." + q + " ELSE pgveil_m." + q + " END"
		}
		return ""
	})
	b.WriteString(" FROM information_schema.columns pgveil_o LEFT JOIN (VALUES ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		it := infoTypes[c.typ]
		vals := map[string]string{
			"data_type": it.dataType, "udt_name": it.udt, "character_octet_length": it.octets,
			"numeric_precision": it.precision, "numeric_precision_radix": it.radix, "numeric_scale": it.scale, "datetime_precision": it.dt,
		}
		fmt.Fprintf(&b, "(%s::%s, %s::%s, %s::%s", quoteLiteral(c.schema), ident, quoteLiteral(c.table), ident, quoteLiteral(c.column), ident)
		for _, n := range order {
			v := "NULL"
			if s := vals[n]; s != "" {
				v = quoteLiteral(s)
			}
			fmt.Fprintf(&b, ", %s::%s", v, over[n])
		}
		b.WriteString(")")
	}
	b.WriteString(") pgveil_m(s, t, c, " + strings.Join(order, ", ") + ") ON pgveil_o.table_schema = pgveil_m.s AND pgveil_o.table_name = pgveil_m.t AND pgveil_o.column_name = pgveil_m.c)")
	return b.String()
}

// selectList writes "(SELECT " and the overlay's columns: each the
// relation's own (pgveil_o.name), or over's expression for it AS name.
func selectList(b *strings.Builder, names []string, over func(name, quoted string) string) {
	b.WriteString("(SELECT ")
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		q := quoteIdent(n)
		if e := over(n, q); e != "" {
			b.WriteString(e + " AS " + q)
		} else {
			b.WriteString("pgveil_o." + q)
		}
	}
}

// quoteLiteral is a standard-conforming string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// overlay replaces the name of an overlaid catalog relation in FROM by its
// subquery, keeping the client's alias (or giving the subquery the
// relation's own name, so column references qualified by it still
// resolve). ONLY and TABLESAMPLE cannot take a subquery: those are left as
// they are.
func (a *analyzer) overlay(rv *pg.RangeVar) {
	// Not in a query the server stores (a view, CREATE TABLE AS) or only
	// explains: those keep the client's text.
	if a.noOverlay || a.noOutputs || !rv.Inh || a.ov == nil || rv.Location < 0 || a.systemColumns() {
		return
	}
	var text string
	switch {
	case rv.Relname == "pg_attribute" && (rv.Schemaname == "pg_catalog" || rv.Schemaname == "" && a.catalogFirst()):
		text = a.ov.attribute
	case rv.Relname == "columns" && rv.Schemaname == "information_schema":
		text = a.ov.columns
	}
	if text == "" {
		return
	}
	start := int(rv.Location)
	end, ok := a.nameEnd(start)
	if !ok {
		return
	}
	if rv.Alias == nil {
		text += " " + quoteIdent(rv.Relname)
		if a.bareOverlays == nil {
			a.bareOverlays = map[string]string{}
		}
		a.bareOverlays[rv.Relname] = map[string]string{"pg_attribute": "pg_catalog", "columns": "information_schema"}[rv.Relname]
	}
	if start > 0 && isIdentCont(a.sql[start-1]) {
		text = " " + text
	}
	a.replace(start, end, text)
}

// unqualifyOverlaid drops the schema (and database) from column references
// that name an overlaid relation with it (pg_catalog.pg_attribute.attname,
// as SQLAlchemy 2.0's reflection writes them): the subquery in the
// relation's place is named by the relation's name alone.
func (a *analyzer) unqualifyOverlaid(root *pg.Node) {
	if len(a.bareOverlays) == 0 {
		return
	}
	walkAll(root, func(n *pg.Node) bool {
		cr := n.GetColumnRef()
		if cr == nil || len(cr.Fields) < 3 || cr.Location < 0 {
			return true
		}
		k := len(cr.Fields) - 3 // the schema's field
		schema, rel := cr.Fields[k].GetString_(), cr.Fields[k+1].GetString_()
		if schema == nil || rel == nil || a.bareOverlays[rel.Sval] != schema.Sval {
			return true
		}
		// Find where the relation's field starts: after k+1 names and dots.
		l := lexer{s: a.sql[:a.stmtEnd], pos: int(cr.Location), backslash: a.backslash}
		for i := 0; i <= k; i++ {
			if t := l.next(); t.kind != tIdent && t.kind != tQIdent {
				return true
			}
			if t := l.next(); !l.isPunct(t, ".") {
				return true
			}
		}
		t := l.next()
		if t.kind != tIdent && t.kind != tQIdent {
			return true
		}
		a.replace(int(cr.Location), t.start, "")
		return true
	})
}

// catalogFirst reports whether an unqualified name is looked up in
// pg_catalog before any other schema of the search path: unless the path
// names pg_catalog after another schema. A path pgveil does not know is
// taken to leave it first, as nearly every path does. (A temporary table
// of the name comes first for the server; pgveil cannot see those.)
func (a *analyzer) catalogFirst() bool {
	if a.path.unknown {
		return true
	}
	for i, s := range a.path.schemas {
		if s == "pg_catalog" {
			return i == 0
		}
	}
	return true
}

// systemColumns reports whether the statement names a system column
// (ctid, tableoid…), which a subquery does not have: its relations are
// not overlaid.
func (a *analyzer) systemColumns() bool {
	if a.sysCols == 0 {
		a.sysCols = 1
		walkAll(a.root, func(n *pg.Node) bool {
			if cr := n.GetColumnRef(); cr != nil {
				switch lastName(cr.Fields) {
				case "ctid", "tableoid", "xmin", "xmax", "cmin", "cmax":
					a.sysCols = 2
				}
			}
			return a.sysCols == 1
		})
	}
	return a.sysCols == 2
}

// nameEnd returns where the (possibly qualified) relation name starting at
// start ends, with a following "*" ("name *": the name and its children,
// as the name alone).
func (a *analyzer) nameEnd(start int) (int, bool) {
	end, ok := a.qualifiedNameEnd(start)
	if !ok {
		return 0, false
	}
	if t := tokenAt(a.sql[:a.stmtEnd], end, a.backslash); t.kind == tOp && a.sql[t.start:t.end] == "*" {
		return t.end, true
	}
	return end, true
}
