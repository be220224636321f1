package rewrite

import (
	"slices"
	"strconv"
	"strings"

	"github.com/pgveil/pgveil/policy"
)

// This file is the contract between the planner and the proxy. The proxy
// (package proxy) reads these types; it never looks at SQL itself.
//
// Life of a statement:
//
//	Query / Parse text → Planner.Plan(text, session) → *Plan (cached by text+search_path)
//	  for each Stmt: if !Stmt.Rewritten, the proxy sends Stmt.Original unchanged;
//	  otherwise it renders Stmt.Text with Stmt.Slots filled (literals sealed or
//	  indexed by the proxy) and, at Bind, builds the parameters of Stmt.Params.
//	RowDescription / DataRow → Stmt.Outputs says which fields to decrypt and
//	  which hidden fields (tenant values) to drop.

// Action is what the proxy does with one value on its way to the server.
type Action uint8

const (
	// Pass forwards the client's value unchanged.
	Pass Action = iota
	// Encrypt seals the value under the column's data key (the tenant's, when
	// the table has a key_context) and sends the envelope.
	Encrypt
	// Index sends the blind index of the value under the column's index key.
	Index
	// IndexEach treats the value as a one-dimensional array of the column's
	// logical type and sends a bytea[] of the blind index of each element
	// (for col = ANY($1)). NULL elements stay NULL.
	IndexEach
	// Plaintext sends the value for comparison with legacy plaintext while
	// the table is in migration mode (pgveil.tables): for a text physical
	// column the normalised canonical text (what the blind index hashes; the
	// SQL applies the same normalisation to the column), for a bytea column
	// the canonical plaintext bytes. Only ever compared, never stored.
	Plaintext
	// PlaintextEach is Plaintext for each element of an array (= ANY($1)),
	// sent as text[] (text columns) or bytea[] (bytea columns).
	PlaintextEach
	// IndexNext sends the blind index of the value under the next index
	// key (blind_index.next), for the second index column that writes fill
	// while an index key is rotated. Only writes use it; lookups use Index.
	IndexNext
	// TenantLookup sends the tenant pgveil looked up for the statement
	// (Stmt.Lookup), or NULL when no row matched. Its Param has Client -1:
	// the client binds no value for it.
	TenantLookup
	// Ignore marks a client parameter the rewritten statement no longer
	// uses: the value of a blind-index column the client wrote beside its
	// encrypted column (pgveil writes the index it computes). Declared
	// bytea and sent as NULL: the client's bytes do not reach the server.
	Ignore
)

// IndexAction is the action that fills the blind index bi of col: Index
// for the current one, IndexNext for its successor.
func IndexAction(col *policy.Column, bi *policy.BlindIndex) Action {
	if col.BlindIndex != nil && bi == col.BlindIndex.Next {
		return IndexNext
	}
	return Index
}

// IndexOf is the blind index an Index or IndexNext action fills for col.
func IndexOf(col *policy.Column, a Action) *policy.BlindIndex {
	if a == IndexNext {
		return col.BlindIndex.Next
	}
	return col.BlindIndex
}

func (a Action) String() string {
	switch a {
	case Pass:
		return "pass"
	case Encrypt:
		return "encrypt"
	case Index:
		return "index"
	case IndexEach:
		return "index-each"
	case Plaintext:
		return "plaintext"
	case PlaintextEach:
		return "plaintext-each"
	case IndexNext:
		return "index-next"
	case TenantLookup:
		return "tenant-lookup"
	case Ignore:
		return "ignore"
	}
	return "?"
}

// RefKind says where a ValueRef's value comes from.
type RefKind uint8

const (
	// RefNone: no value (the table has no key_context).
	RefNone RefKind = iota
	// RefParam: the client's bound parameter Param (0-based).
	RefParam
	// RefLiteral: the literal at Stmt.Literals[Literal] in the original text.
	RefLiteral
	// RefNull: SQL NULL (a write whose tenant is NULL: the proxy refuses it).
	RefNull
	// RefLookup: the tenant the proxy looks up for the statement before it
	// sends it (Stmt.Lookup).
	RefLookup
)

// ValueRef locates a value the proxy needs at run time, such as the tenant
// (key_context) value that selects the data key of an Encrypt.
type ValueRef struct {
	Kind    RefKind
	Param   int // RefParam: 0-based client parameter index
	Literal int // RefLiteral: index into Stmt.Literals
}

// Literal is the location of one SQL literal in the statement text the
// client sent: the whole string of a Query (offsets count from its start),
// or the text of a Parse. The plan stores where, never what: the value is
// read from the text at render time by LiteralValue, so a cached plan holds
// no plaintext.
type Literal struct {
	Start, End int // byte offsets of the literal's tokens, e.g. 'a@b.c', E'x\n', 42, -7, NULL, 'x'::text
	// Casts are the casts with a length or precision (or to bpchar) the
	// literal stands under, outermost first: the proxy refuses a value
	// they would change (CheckCasts), since it encrypts the value as
	// written. Checked when the text is rendered, so that a plan serves
	// every literal of its shape.
	Casts []Typmod
}

// Typmod is a cast that may change a value: varchar(n), bpchar[(n)],
// numeric(p[,s]), timestamp(p), timestamptz(p). Its modifiers are read
// from the statement's text (ModAt: their offsets), as literals are, so
// that a plan made for varchar(254) serves varchar(7) of the same shape.
type Typmod struct {
	Name  string
	ModAt []int
}

// ParamCast is a varchar(n) cast on a client parameter bound for an
// encrypted column: PostgreSQL truncates a longer value to n characters,
// while pgveil would seal it whole, so the proxy refuses a value the cast
// would change (Check) at each Bind.
type ParamCast struct {
	Client int // 0-based client parameter
	Column *policy.Column
	Cast   Typmod
}

// Check refuses (42804) a parameter's value v, as text, that the cast
// would change; orig is the statement's text.
func (c ParamCast) Check(orig string, v []byte) error {
	err := Literal{Casts: []Typmod{c.Cast}}.CheckCasts(orig, c.Column, v)
	if e, ok := err.(*Error); ok {
		e.Detail = "the value bound to $" + strconv.Itoa(c.Client+1) + " has more characters than the cast allows"
	}
	return err
}

// CheckCasts refuses (42804) a literal's value v for col that one of its
// casts would change; orig is the statement's text.
func (l Literal) CheckCasts(orig string, col *policy.Column, v []byte) error {
	for _, c := range l.Casts {
		mods := make([]int64, 0, len(c.ModAt))
		for _, at := range c.ModAt {
			n, ok := int64(0), false
			if at < 0 {
				n, ok = 1, true // the grammar's own modifier: char and bit are char(1), bit(1)
			}
			for i := at; i >= 0 && i < len(orig) && orig[i] >= '0' && orig[i] <= '9' && n < 1<<40; i++ {
				n, ok = n*10+int64(orig[i]-'0'), true
			}
			if !ok {
				return errorf(CodeInternalError, "cannot read the modifier of a cast to %s; statement refused", c.Name)
			}
			mods = append(mods, n)
		}
		if !typmodKeeps(c.Name, mods, col.Type, v) {
			return colErr(CodeDatatypeMismatch, col, "remove the length or precision from the cast (the column's own type applies), or round the value in the application",
				"cast to %s%v of a value for encrypted column %s: the cast changes the value (PostgreSQL truncates, pads or rounds it there)", c.Name, mods, col.QualifiedName())
		}
	}
	return nil
}

// Slot is one place in the rewritten text where the proxy inserts a value it
// derived from a literal: an envelope (Encrypt) or a blind index (Index,
// IndexNext).
// The proxy formats the result as a bytea literal ('\x…'::bytea) or, for
// Encrypt into a text physical column, as a text literal ('pgv1:…').
// IndexEach and PlaintextEach slots hold an array literal ('{a,b}', for
// = ANY) and become ARRAY[…] expressions of one element per value.
type Slot struct {
	Action Action // Encrypt or Index
	Column *policy.Column
	// Source is the index into Stmt.Literals of the value.
	Source int
	// Tenant is the key_context value for Encrypt on a table that has one.
	Tenant ValueRef
}

// Param is one parameter of the rewritten statement. Params[i] is $(i+1).
type Param struct {
	// Client is the 0-based index of the client's parameter that feeds this one.
	Client int
	Action Action
	Column *policy.Column // nil for Pass
	// Tenant is the key_context value for Encrypt on a table that has one.
	Tenant ValueRef
}

// Output describes one field of the rows the server will send for this
// statement (SELECT, RETURNING, COPY TO), in server order.
type Output struct {
	// Column is the encrypted column whose stored value this field carries
	// unchanged, or nil.
	Column *policy.Column
	// Tenant is the index into Outputs of the field holding the row's
	// key_context value for Column, or -1 (table without key_context, or
	// not known: the proxy then checks only table and column).
	Tenant int
	// Hidden marks a field pgveil added (a tenant value the query did not
	// select). Hidden fields are always the last ones; the proxy drops them
	// from RowDescription and DataRow.
	Hidden bool
	// JSON is set on a json or jsonb field built from encrypted columns:
	// where their envelopes sit in it (rewrite/json.go).
	JSON *JSONShape
	// SendOf marks a hidden field holding the binary send form (a bytea:
	// date_send, float8send, …) of SendOf's key_context column
	// (TenantSend): the tenants of those types are read through it, never
	// through the text the session prints.
	SendOf *policy.Table
}

// Kind classifies a statement for metrics and for the proxy's bookkeeping.
type Kind uint8

const (
	KindOther Kind = iota
	KindSelect
	KindInsert
	KindUpdate
	KindDelete
	KindCopy
	KindDDL        // CREATE/ALTER/DROP/… : the proxy refreshes its catalog after success
	KindSet        // SET/RESET: see Stmt.SearchPath
	KindDeallocate // DEALLOCATE name|ALL, DISCARD ALL: see Stmt.Deallocate
	KindExplain
	KindTransaction // BEGIN/COMMIT/ROLLBACK/SAVEPOINT…
)

// Stmt is the plan for one statement.
type Stmt struct {
	Kind Kind
	// Original is the statement's text as the client sent it, without the
	// separating semicolon (a slice of the client's string).
	Original string
	// OriginalStart is Original's byte offset in the client's string.
	OriginalStart int
	// Rewritten is false when the server must receive Original unchanged,
	// byte for byte (Outputs may still name fields to decrypt).
	Rewritten bool
	// NamesOnly is set on a Rewritten statement whose only edits put a
	// schema before relation names (see pinSchema in resolve.go): no value
	// changes, Slots is empty and the client's parameters pass unchanged.
	NamesOnly bool
	// Text is the SQL to send when Rewritten, split around Slots:
	// Text[0] + slot0 + Text[1] + … ; len(Text) == len(Slots)+1.
	Text  []string
	Slots []Slot
	// Literals are the literals of encrypted values in the original text.
	Literals []Literal
	// ParamCasts are the varchar(n) casts on client parameters bound for
	// encrypted columns, checked at each Bind.
	ParamCasts []ParamCast
	// ClientParams is the number of parameters the client binds ($1…$n of
	// the original text): the highest $n it references. It is 0 in the
	// pass-through plans made without parsing (text that names no
	// configured table), where the proxy relays the parameters as they are.
	ClientParams int
	// Params are the rewritten statement's parameters. Nil when not
	// Rewritten (the client's parameters pass unchanged). When set they
	// describe every parameter of the rewritten text: $1…$ClientParams keep
	// their numbers, derived ones follow. The proxy sends len(Params)
	// values, each built from the client's value Client; a value the
	// client declared and bound but the text never references is dropped.
	Params []Param
	// Outputs map the result fields; nil when the statement returns no
	// rows or when no field is encrypted. When a field's origin cannot be
	// known from the SQL (views, functions), its Output has Column nil and
	// the proxy falls back on RowDescription's table OID and attribute number.
	Outputs []Output
	// OutputsByOrigin is set when the fields could not be numbered from the
	// SQL: a * over a relation whose columns the Catalog does not list, in a
	// statement that returns encrypted columns. Outputs then holds only the
	// Hidden fields pgveil appended (the last len(Outputs) fields of each
	// row), and the proxy maps every field, hidden ones included, by
	// RowDescription's table OID and attribute number: an encrypted column by
	// its own attnum, the row's tenant by the key_context column's attnum of
	// the same table. The planner refuses this mode when a table with a
	// key_context and encrypted output appears twice (a self-join), because
	// origin alone could not tell the two tenants apart.
	OutputsByOrigin bool
	// Copy is set for COPY statements that carry encrypted columns (a COPY
	// of a configured table that names none of them passes unchanged).
	Copy *Copy
	// SearchPath is set by SET [SESSION|LOCAL] search_path / RESET
	// search_path: the new schemas, in order, as written ("$user" kept).
	// Nil when the statement does not change it. SearchPathLocal marks SET LOCAL.
	// SET SCHEMA 'x' and SELECT set_config('search_path', '…', is_local)
	// with literal arguments set them too; SearchPathReset is also set by
	// RESET ALL and DISCARD ALL.
	SearchPath      []string
	SearchPathReset bool
	SearchPathLocal bool
	// PathOpaque is set by statements after which pgveil cannot know the
	// search_path: SET ROLE, SET SESSION AUTHORIZATION, their RESET, RESET
	// ALL and set_config('role', …) ("$user" now names another schema), and
	// DO and CALL, whose code may change it out of pgveil's sight.
	PathOpaque bool
	// Deallocate names the prepared statement a DEALLOCATE drops; "*" for
	// DEALLOCATE ALL and DISCARD ALL (which closes every cursor too).
	Deallocate string
	// Prepares names the statement an SQL PREPARE (Original) prepares. The
	// server plans it again at EXECUTE when its relations change; the proxy
	// plans Original again then, under a newer catalog.
	Prepares string
	// Declares names the cursor a DECLARE CURSOR opens; Cursor is set when
	// its rows carry encrypted columns, and then maps the fields of every
	// FETCH from it, as Outputs would map the query's own result (DECLARE
	// itself returns no rows). A DECLARE without Cursor makes the proxy
	// forget any cursor of that name it knew.
	Declares string
	Cursor   *Cursor
	// Fetch names the cursor a FETCH reads rows from. The proxy maps them
	// with the cursor's Cursor.Outputs, when it saw the cursor declared.
	Fetch string
	// FetchCursor names the cursor a FETCH or MOVE runs: the cursor's
	// query runs then, and with it the code it calls (review 20f).
	FetchCursor string
	// SetsZone: SET/RESET of TimeZone or set_config of it, by the name
	// as parsed (an E'…' or U&"…" spelling need not read "zone": review
	// 20f).
	SetsZone bool
	// CloseCursor names the cursor a CLOSE closes; "*" for CLOSE ALL.
	CloseCursor string
	// SameTenant lists, for each multi-row INSERT … ON CONFLICT DO UPDATE
	// SET col = $n in the statement (a CTE may hold more), the tenant
	// values its rows name: the proxy refuses the statement unless those
	// of each set are equal, since its value is sealed once, under the
	// first.
	SameTenant []TenantSet
	// Lookup is set on an UPDATE of a table with a key_context that writes
	// encrypted values without naming the tenant: the proxy asks the
	// server for the tenant of the rows it will change before it seals the
	// values (proxy/lookup.go), and the statement carries a guard so that
	// it changes only rows of that tenant.
	Lookup *Lookup

	// pieces say where each segment of Text came from (shape.go).
	pieces [][]piece
}

// TenantSet is the rows' tenants of one multi-row upsert into Table.
type TenantSet struct {
	Table *policy.Table
	Refs  []ValueRef
}

// Lookup is how the proxy finds the tenant of an UPDATE's rows:
//
//	SELECT DISTINCT <key_context> FROM <the UPDATE's relation> [WHERE <its WHERE>]
//
// built from spans of the client's text (Text), so that the lookup reads
// the literals and parameters the client wrote. The proxy plans that text
// like any other (encrypted predicates become blind-index lookups). The
// statement itself gets "AND <key_context> = <the tenant>" added to its
// WHERE: a TenantLookup parameter when the statement has parameters (the
// lookup then runs at Bind), else a TenantLookup slot (it runs before the
// text is rendered). Exactly one tenant proceeds; none sends NULL values
// and a guard no row meets; several refuse the statement.
type Lookup struct {
	Table *policy.Table
	// Rel and Where are [start, end) byte spans of the client's string:
	// the relation with its alias, and the WHERE condition (Where[0] < 0:
	// no WHERE).
	Rel, Where [2]int
	// Column is the key_context column, qualified by the relation's alias
	// or name and quoted as needed.
	Column string
	// Uses[i] reports that the WHERE references the client's $(i+1).
	Uses []bool
	// Only: UPDATE ONLY, whose rows are the relation's own, not its
	// children's.
	Only bool
	// Move, when set, makes this the check of an UPDATE that sets the
	// rows' tenant and keeps some of their encrypted values (tenantMove):
	// a row found is one those values would no longer open in, and
	// refuses the UPDATE; none lets it go.
	Move *Move
	// TextGuard: the key_context column's type has equal values that
	// name different tenants (citext 'AbC' and 'abc', float8 0 and -0, a
	// nondeterministic collation, a domain over numeric named as printed:
	// 1.50 and 1.5), so the lookup reads, the guard compares and the
	// move check tells tenants by the column's text (TextOf), not by the
	// type's equality (review 19c: rows of two tenants were taken for one
	// and sealed under it, PV001).
	TextGuard bool
	// Send, when set, is the send function (TenantSend) the lookup reads
	// the key_context column through: its binary form, as a bytea,
	// whatever the session's DateStyle or extra_float_digits.
	Send string
}

// TextOf is the SQL text of expression x as the lookup tells tenants
// apart: its output text compared byte for byte.
func TextOf(x string) string {
	return "CAST(" + x + " AS pg_catalog.text) COLLATE pg_catalog.\"C\""
}

// Move is what the check of a tenant move reads.
type Move struct {
	// Tenant is the span of the new tenant's value in the client's string
	// (a parameter or a literal).
	Tenant [2]int
	// Kept is the SQL condition "a kept value is not NULL"; Columns names
	// those columns.
	Kept    string
	Columns []string
	// Cast, when set, is the type an unquoted number is compared as
	// (CAST(007 AS text)): the value the column stores.
	Cast string
}

// Text is the lookup statement for the client's string sql.
func (l *Lookup) Text(sql string) string {
	from := " FROM "
	if l.Only {
		from = " FROM ONLY "
	}
	col := l.Column
	switch {
	case l.Send != "":
		col = l.Send + "(" + l.Column + ")"
	case l.TextGuard:
		col = TextOf(l.Column)
	}
	s := "SELECT DISTINCT " + col + from + sql[l.Rel[0]:l.Rel[1]]
	var conds []string
	if l.Where[0] >= 0 {
		conds = append(conds, sql[l.Where[0]:l.Where[1]])
	}
	if m := l.Move; m != nil {
		v := sql[m.Tenant[0]:m.Tenant[1]]
		if m.Cast != "" {
			v = "CAST(" + v + " AS " + m.Cast + ")"
		}
		moved := l.Column + " IS DISTINCT FROM " + v
		if l.TextGuard {
			moved += " OR " + TextOf(l.Column) + " IS DISTINCT FROM " + TextOf(asColumn(l.Column, v))
		}
		conds = append(conds, moved, m.Kept)
	}
	switch len(conds) {
	case 0:
		return s
	case 1:
		return s + " WHERE " + conds[0]
	}
	return s + " WHERE (" + strings.Join(conds, ") AND (") + ")"
}

// Cursor is what FETCH returns from a cursor whose rows carry encrypted
// columns: the Outputs (and OutputsByOrigin) of its query, hidden tenant
// fields included.
type Cursor struct {
	Outputs         []Output
	OutputsByOrigin bool
	// Hold is set for WITH HOLD: the cursor outlives its transaction.
	Hold bool
}

// Plan is the plan for one statement string: one Stmt per statement of a
// multi-statement simple Query.
type Plan struct {
	Stmts []*Stmt
	// Rewritten is true when any Stmt is Rewritten: the proxy then sends
	// Render's result instead of the client's text.
	Rewritten bool

	// shape is set on the cache entries of statement shapes (shape.go):
	// such a Plan has no Stmts and is never handed out.
	shape *shapePlan
}

// CopyFormat is the format of a COPY's data.
type CopyFormat uint8

const (
	CopyText CopyFormat = iota
	CopyCSV
	CopyBinary // planned like text; the proxy edits binary tuples
)

// Copy is the plan for COPY table [(cols)] FROM STDIN / TO STDOUT and
// COPY (query) TO STDOUT.
type Copy struct {
	From   bool // FROM STDIN; false for TO STDOUT
	Format CopyFormat
	// The data's syntax, with COPY's defaults filled in.
	Delimiter byte   // text: '\t', csv: ','
	Null      string // text: `\N`, csv: ""
	Quote     byte   // csv only; default '"'
	Escape    byte   // csv only; default = Quote
	Header    bool
	// Fields of each row as the client sends it (FROM) or as the server
	// sends it (TO), in order. Action is Encrypt (FROM) or Pass; for TO,
	// Column names the encrypted column to decrypt.
	Fields []CopyField
	// Appended are the fields pgveil adds to each row sent to the server
	// (FROM only): blind indexes, Action Index, Source the input field.
	Appended []CopyField
	// ForceQuote (CSV TO only) marks the fields FORCE_QUOTE names, by
	// position in Fields; nil without the option.
	ForceQuote []bool

	forceQuoteAll   bool     // FORCE_QUOTE *
	forceQuoteNames []string // FORCE_QUOTE (a, b)
}

// placeForceQuote maps FORCE_QUOTE to the fields, named names in order
// (a name FORCE_QUOTE lists that no field has: PostgreSQL rejects it).
func (c *Copy) placeForceQuote(names []string) {
	if !c.forceQuoteAll && c.forceQuoteNames == nil {
		return
	}
	c.ForceQuote = make([]bool, len(c.Fields))
	for i := range c.ForceQuote {
		c.ForceQuote[i] = c.forceQuoteAll
	}
	for _, n := range c.forceQuoteNames {
		if i := slices.Index(names, n); i >= 0 && i < len(c.ForceQuote) {
			c.ForceQuote[i] = true // PostgreSQL marks the first field of the name
		}
	}
}

// CopyField is one field of a COPY row.
type CopyField struct {
	Column *policy.Column // nil: pass unchanged
	Action Action
	// Source is the index into Copy.Fields of the value (Appended only).
	Source int
	// Tenant is the index into Copy.Fields of the row's key_context value, or -1.
	Tenant int
	// Hidden fields (TO only) were added by pgveil and are dropped before the client.
	Hidden bool
	// Send marks a hidden field holding the binary send form of a
	// key_context value (Output.SendOf).
	Send bool
}

// Session is what the planner needs to know of the client's session.
type Session struct {
	// SearchPath is the session's effective search_path, "$user" already
	// replaced by the role name, schemas that do not exist left in (they
	// never match). pg_catalog is searched first implicitly, as Postgres does.
	SearchPath []string
	// BackslashStrings is true when the session runs with
	// standard_conforming_strings = off, where a backslash escapes inside
	// plain '...' strings. pg_query always parses with the setting on, so the
	// planner then refuses statements on configured tables whose plain
	// strings hold a backslash (the only case where the two readings differ).
	BackslashStrings bool
	// PathUnknown is set while the proxy cannot be sure of the session's
	// search_path (a change it saw may have been rolled back, or may not
	// have run): unqualified names then resolve by name alone, to the one
	// configured table of that name (refused when several schemas have
	// one), as after a RESET earlier in the same string. SearchPath is
	// ignored.
	PathUnknown bool
	// NoPins turns off the schema-qualifying of shadowing names (pinSchema
	// in resolve.go): set for a client_encoding other than UTF8, where
	// pgveil changes no statement text.
	NoPins bool
}

// Catalog is a snapshot of the live schema, taken by the proxy over its
// service connection. It holds every configured table, and every relation
// (table, view, materialized view, foreign table) in any schema whose name
// equals a configured table's name, so unqualified names resolve through
// the search path exactly as Postgres resolves them.
type Catalog struct {
	// Tables by "schema.name" (exact, case-sensitive).
	Tables map[string]*CatalogTable
	// Guarded are views (and views of those views) that read an encrypted
	// or blind-index column of a configured table, by "schema.name". A
	// write through one would store plaintext and a predicate on one would
	// send plaintext, so statements that name one are refused, except reads
	// of views the planner sees through (GuardedView.Definition,
	// rewrite/view.go). The planner adds their names to its pre-check.
	// Partitions and inheritance children of a configured table that are
	// not configured themselves are guarded too (GuardedView.Child): a row
	// written to one by its own name would be stored in plaintext.
	Guarded map[string]*GuardedView
	// TenantViews are views (and views of those) that read the
	// key_context column of a configured table and none of its encrypted
	// columns (those are Guarded), by "schema.name", each with that table.
	// An UPDATE through one could move rows to another tenant with their
	// values sealed under the old one's key, unseen: refused.
	TenantViews map[string]string
	// PathFunctions are the names (lower case) of functions in the
	// database whose code may change search_path for the rest of the
	// session: it names search_path or set_config (a textual test). A
	// statement that calls one makes the path unknown after it, as CALL and
	// DO do. The planner adds them to its pre-check.
	PathFunctions map[string]bool
	// PathRelations are the names (lower case) of relations whose use runs
	// such a function: a view that calls one, a column default, a trigger.
	// A statement naming one makes the path unknown after it, and so does
	// a SQL EXECUTE while either set is not empty (pgveil does not follow
	// what a SQL prepared statement runs).
	PathRelations map[string]bool
	// GuardedFunctions are the names (lower case) of functions whose code
	// names a relation of Guarded (a textual test, as for CREATE FUNCTION
	// through pgveil), or names or calls such a function: code created
	// while the name meant a plain table, or directly in the database.
	// Values a statement passes to one could reach an encrypted column in
	// plaintext: a statement that calls one is refused, and so is one that
	// names a relation whose use runs one (GuardedRelations: a view that
	// calls one, a column default, a trigger).
	GuardedFunctions map[string]bool
	GuardedRelations map[string]bool
	// OverlayColumns are the column names, in order, of the catalog
	// relations pgveil overlays (OverlayAttribute, OverlayColumns; see
	// overlay.go). A relation missing here is not overlaid.
	OverlayColumns map[string][]string

	ov overlays // made by Planner.SetCatalog
}

// GuardedView is a view over encrypted columns, or a table that inherits
// them.
type GuardedView struct {
	Schema, Name string
	// Reads names one configured table the view reads encrypted columns
	// of ("schema.table"), for the error message; for a Child, the
	// configured table it descends from.
	Reads string
	// Child is "partition" or "inheritance child" when the relation is a
	// table below the configured table Reads (at any depth) rather than a
	// view. Every statement that names one is refused: pgveil encrypts and
	// decrypts by the configured table's name.
	Child string
	// Parent is the configured table Reads names, for a Child: DDL on the
	// child is checked as DDL on it (defaults, constraints, indexes,
	// partitions attached below).
	Parent *policy.Table
	// Definition is the view's query as pg_get_viewdef prints it with
	// every relation schema-qualified, or "". When SetCatalog can plan it
	// and every column of the view that carries an encrypted column carries
	// it unchanged, reads of the view are planned as reads of that query
	// (a subquery): encrypted fields are decrypted, equality on them uses
	// the blind index when the view returns it; writes through the view
	// stay refused.
	Definition string

	cols []relCol // the view's columns, seen through; nil: refused
}

// CatalogTable is one relation of the catalog snapshot.
type CatalogTable struct {
	Schema, Name string
	OID          uint32
	Columns      []CatalogColumn // in attnum order, dropped columns left out
	// Partitioned: a partitioned table (relkind 'p'), whose rows are all
	// in its partitions (a COPY TO pgveil turns into a SELECT reads it
	// whole; another table's, ONLY its own rows, as COPY t TO does).
	Partitioned bool
}

// CatalogColumn is one column of a CatalogTable.
type CatalogColumn struct {
	Name    string
	AttNum  int16
	TypeOID uint32
	// Nondeterministic: the column's collation is nondeterministic (its
	// = holds between different strings: review 19c).
	Nondeterministic bool
	// BaseOID is, for a key_context column whose type is a domain, the
	// domain's last base type (0 otherwise): a tenant of a domain over
	// date is read through date_send (TenantSend).
	BaseOID uint32
}

// GuardedView.Child values.
const (
	ChildPartition   = "partition"
	ChildInheritance = "inheritance child"
	// ChildAncestor: the table is above Reads (a partitioned table with a
	// configured partition, an inheritance parent), not configured itself.
	ChildAncestor = "partitioned or inheritance parent"
)

// asColumn is value v assigned the type of column col (CASE chooses the
// common type: an unknown literal or parameter becomes col's), so that
// its text is the one col would store.
func asColumn(col, v string) string {
	return "(CASE WHEN false THEN " + col + " ELSE " + v + " END)"
}

// tenantTextGuard reports whether t's key_context column has equal
// values that name different tenants (Lookup.TextGuard): float4 and
// float8 (0 = -0), a nondeterministic collation, and the types pgveil
// names by their text (citext, enums, domains over numeric, …); not the
// logical types, char(n) and name under a deterministic collation, nor
// any without a catalog (as before).
func (a *analyzer) tenantTextGuard(t *policy.Table) bool {
	if a.tenantNondeterministic(t) {
		return true
	}
	switch oid := a.tenantTypeOID(t); oid {
	case 0, 19, 1042:
		return false
	case 700, 701:
		return true
	default:
		for _, lt := range policy.LogicalTypes {
			if lt.OID() == oid {
				return false
			}
		}
	}
	return true
}
