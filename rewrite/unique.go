package rewrite

import (
	"math"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v5"

	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/policy"
)

// Uniqueness while a table migrates (review 20c, fixed in 21b). A UNIQUE
// blind index compares only rows whose index is filled, and the table's
// own UNIQUE index on the plaintext column compares an envelope with
// plaintext: a value written through pgveil that a row not yet backfilled
// holds (its blind index NULL) was taken twice. So an INSERT … VALUES
// into a table in migration mode that writes a column whose blind index
// is unique first fills, in the same statement, the blind index of each
// legacy row holding an equal value (compared by normalised plaintext, as
// migration-mode lookups compare: docs/SQL.md "Migration mode"), with the
// index pgveil computed for the value it writes:
//
//	INSERT INTO users (org, email) VALUES ($1, $2)
//	  → WITH pgveil_unique AS (UPDATE public.users
//	      SET email_bidx = COALESCE(email_bidx, CASE WHEN NOT <sealed(email)>
//	        THEN CASE lower(email) WHEN $4 THEN $3::bytea END END)
//	      WHERE email_bidx IS NULL AND NOT <sealed(email)> AND lower(email) IN ($4)
//	      RETURNING 1)
//	    INSERT INTO users (org, email, email_bidx)
//	      VALUES ($1, $2, (SELECT $3::bytea FROM (SELECT count(*) FROM pgveil_unique) pgveil_unique))
//
// The UNIQUE index on the blind index then decides, as it does for a
// complete table: a plain INSERT gets the server's own 23505, ON
// CONFLICT … DO NOTHING inserts nothing (each row of a multi-row VALUES
// for itself). The VALUES' blind index reads the CTE, so the server runs
// the UPDATE first (a CTE no one reads runs after the main statement);
// its row locks order it with the backfill (which re-indexes a legacy
// row anyway when it seals it) and with a concurrent DELETE of the legacy
// row, as PostgreSQL's own index check waits for them. The fill rolls
// back with the statement; after DO NOTHING it stays, the index the
// backfill writes.
//
// ON CONFLICT … DO UPDATE and UPDATE … SET cannot read the CTE first:
// their update would then meet a row the same statement filled (21000,
// "cannot affect row a second time"). Nothing reads their CTE, so the
// server runs it after the statement: a legacy row holding a value the
// statement wrote then gets that index, which the row written holds
// already (23505: fail closed; PostgreSQL would have updated the legacy
// row under DO UPDATE, and failed too under UPDATE); a legacy row the
// statement itself updated is skipped by the CTE's UPDATE (a row updated
// by the same command), so an ORM saving a legacy row's own email
// passes. CASE and COALESCE results in SET are all checked (NULLIF of an
// encrypted value is refused anyway).
//
// Not done yet (review 21f): DO UPDATE of a value only a legacy row
// holds should update that row, as PostgreSQL would. The way there is to
// send the fill as a statement of its own just before the client's (the
// proxy's injected statements, as the tenant lookup's: a suppressed Query
// before a single-statement simple Query; Parse/Bind/Execute of pgveil's
// own statement ahead of the client's Bind, its ErrorResponse answering
// the client's message), after which ON CONFLICT finds the filled row by
// its blind index. A fill left committed on its own is harmless: it
// writes the index the backfill computes, and the backfill still seals
// the row (TestReview21fFilledLegacyRowsBackfilled).
//
// Legacy rows are found by the column's current blind index (NULL) and
// its normalisation, which Action Plaintext applies to the value; every
// unique index of the column (a rotation's next one too) is filled.
//
// Refused (fail closed), as pgveil cannot place the CTE or check each
// row: COPY FROM, and a write that is not a statement of its own (in a
// CTE, EXPLAIN, PREPARE, COPY, a rule). A complete table, and an index
// without unique: true, get none of it: the plan is made again when the
// table's state changes.

// uniqueFill collects the values an INSERT or UPDATE writes to columns
// whose blind index is unique, while the table migrates.
type uniqueFill struct {
	table *policy.Table
	at    int    // where the CTE goes
	lead  string // "WITH " when the statement has no WITH clause
	vals  []uniqueVal
	// after: nothing reads the CTE, so the server runs it after the
	// statement (ON CONFLICT … DO UPDATE, UPDATE).
	after bool
}

type uniqueVal struct {
	col *policy.Column
	bi  *policy.BlindIndex
	v   value
}

// uniqueCTE is the CTE's name, read by each blind index written.
const uniqueCTE = "pgveil_unique"

// uniqueTargets are the unique blind indexes of col (a rotation's next
// index too) when its table is in migration mode.
func (a *analyzer) uniqueTargets(col *policy.Column) []*policy.BlindIndex {
	if col == nil || !a.p.isMigrating(col.Table) {
		return nil
	}
	var out []*policy.BlindIndex
	for _, bi := range col.IndexTargets() {
		if bi.Unique {
			out = append(out, bi)
		}
	}
	return out
}

// uniqueRefusal refuses a form of write to col pgveil cannot check
// against legacy rows while its table migrates.
func (a *analyzer) uniqueRefusal(col *policy.Column, what string, loc int32) *Error {
	e := colErr(CodeFeatureNotSupported, col,
		"write it with INSERT … VALUES (plain or ON CONFLICT … DO NOTHING) as a statement of its own, or complete the table first (`pgveil migrate --apply`)",
		"%s writing %s is not supported while table %s is in migration mode: its blind index is unique, and pgveil cannot check the value against rows not yet backfilled (their blind index is still NULL)",
		what, col.QualifiedName(), col.Table.QualifiedName())
	return e.at(a.sql, loc)
}

// startUniqueFill prepares the fill of an INSERT into t that writes a
// column with a unique blind index while t migrates: nil when none is
// needed, an error when the INSERT's form cannot take it.
func (a *analyzer) startUniqueFill(ins *pg.InsertStmt, t *policy.Table, cols []insCol, mode queryMode) (*uniqueFill, *Error) {
	// DO UPDATE: the CTE runs after the INSERT (uniqueFill.after).
	oc := ins.OnConflictClause
	after := oc != nil && oc.Action == pg.OnConflictAction_ONCONFLICT_UPDATE
	for _, c := range cols {
		if c.enc != nil && len(a.uniqueTargets(c.enc)) > 0 {
			return a.uniqueFillAt(t, c.enc, "insert", ins.WithClause != nil, mode, after, c.loc)
		}
	}
	// Review 21e: a DO UPDATE whose SET writes such a column that the
	// INSERT's own list does not name (INSERT (id, phone) … ON CONFLICT
	// (id) DO UPDATE SET email = $3) is checked too: without the fill it
	// set a row's email to a value a legacy row holds.
	if after && t != nil {
		for _, n := range oc.TargetList {
			if rt := n.GetResTarget(); rt != nil {
				if c := t.Column(rt.Name); c != nil && len(a.uniqueTargets(c)) > 0 {
					return a.uniqueFillAt(t, c, "insert", ins.WithClause != nil, mode, true, rt.Location)
				}
			}
		}
	}
	return nil, nil
}

// startUniqueUpdate prepares the fill of an UPDATE of t that sets a column
// with a unique blind index while t migrates.
func (a *analyzer) startUniqueUpdate(up *pg.UpdateStmt, t *policy.Table, mode queryMode) (*uniqueFill, *Error) {
	if t == nil {
		return nil, nil
	}
	for _, n := range up.TargetList {
		if rt := n.GetResTarget(); rt != nil {
			if c := t.Column(rt.Name); c != nil && len(a.uniqueTargets(c)) > 0 {
				return a.uniqueFillAt(t, c, "update", up.WithClause != nil, mode, true, rt.Location)
			}
		}
	}
	return nil, nil
}

// uniqueFillAt finds where the CTE goes: at the statement's top level,
// before its keyword kw, or first in its own WITH list.
func (a *analyzer) uniqueFillAt(t *policy.Table, col *policy.Column, kw string, hasWith bool, mode queryMode, after bool, loc int32) (*uniqueFill, *Error) {
	l := lexer{s: a.sql[:a.stmtEnd], pos: a.stmtStart, backslash: a.backslash}
	first := l.next()
	switch {
	case mode != modeTop || a.noOutputs || first.kind != tIdent:
	case !hasWith && strings.EqualFold(l.text(first), kw):
		return &uniqueFill{table: t, at: first.start, lead: "WITH ", after: after}, nil
	case hasWith && strings.EqualFold(l.text(first), "with"):
		next := l.next()
		if next.kind == tIdent && strings.EqualFold(l.text(next), "recursive") {
			next = l.next()
		}
		if next.kind == tIdent || next.kind == tQIdent {
			return &uniqueFill{table: t, at: next.start, after: after}, nil
		}
	}
	return nil, a.uniqueRefusal(col, "an "+strings.ToUpper(kw)+" that is not a statement of its own (in a CTE, EXPLAIN, PREPARE, COPY, a rule)", loc)
}

// wrapIndex is the text around a unique blind index written in VALUES,
// which reads the CTE.
func uniqueWrap() (before, after string) {
	return "(SELECT ", "::bytea FROM (SELECT count(*) FROM " + uniqueCTE + ") " + uniqueCTE + ")"
}

// emitUniqueFill writes the CTE of f (finish numbers its parameters).
func (a *analyzer) emitUniqueFill(f *uniqueFill) {
	if f == nil || len(f.vals) == 0 {
		return
	}
	sub := math.MinInt / 2 // before anything else at f.at, however many values
	text := func(s string) {
		a.edits = append(a.edits, edit{start: f.at, end: f.at, text: s, sub: sub, seq: len(a.edits)})
		sub++
	}
	val := func(u uniqueVal, action Action) {
		switch u.v.kind {
		case vParam:
			a.uses = append(a.uses, paramUse{number: u.v.param, start: f.at, insert: true, action: action, col: u.col, sub: sub})
		case vLiteral:
			a.edits = append(a.edits, edit{start: f.at, end: f.at, slot: &Slot{Action: action, Column: u.col, Source: u.v.lit}, sub: sub, seq: len(a.edits)})
		}
		sub++
	}
	// One UPDATE for every index: two CTEs updating one row in one
	// statement would leave one of their changes out. A legacy row is one
	// whose current blind index is NULL and whose value is no envelope,
	// compared under the current index's normalisation (Action Plaintext
	// normalises the value so); each unique index of the column (a
	// rotation's next one too) gets the index of the value it equals.
	type target struct {
		col  *policy.Column
		bis  []*policy.BlindIndex
		vals map[*policy.BlindIndex][]uniqueVal
	}
	var targets []*target
	for _, u := range f.vals {
		var tg *target
		for _, x := range targets {
			if x.col == u.col {
				tg = x
			}
		}
		if tg == nil {
			tg = &target{col: u.col, vals: map[*policy.BlindIndex][]uniqueVal{}}
			targets = append(targets, tg)
		}
		if tg.vals[u.bi] == nil {
			tg.bis = append(tg.bis, u.bi)
		}
		tg.vals[u.bi] = append(tg.vals[u.bi], u)
	}
	text(f.lead + uniqueCTE + " AS (UPDATE " + quoteIdent(f.table.Schema) + "." + quoteIdent(f.table.Name) + " SET ")
	legacy := func(tg *target) (cond, plain string) {
		c := quoteIdent(tg.col.Name)
		plain = c
		phys := a.physicalType(tg.col)
		if phys != policy.OIDBytea {
			plain = normalizeSQL(c, tg.col.BlindIndex.Normalize)
		}
		return quoteIdent(tg.col.BlindIndex.Column) + " IS NULL AND NOT " + sealedSQL(c, phys), plain
	}
	first := true
	for _, tg := range targets {
		_, plain := legacy(tg)
		for _, bi := range tg.bis {
			if !first {
				text(", ")
			}
			first = false
			b := quoteIdent(bi.Column)
			text(b + " = COALESCE(" + b + ", CASE WHEN NOT " + sealedSQL(quoteIdent(tg.col.Name), a.physicalType(tg.col)) + " THEN CASE " + plain)
			for _, u := range tg.vals[bi] {
				text(" WHEN ")
				val(u, Plaintext)
				text(" THEN ")
				val(u, IndexAction(u.col, u.bi))
				text("::bytea")
			}
			text(" END END)")
		}
	}
	text(" WHERE ")
	for i, tg := range targets {
		if i > 0 {
			text(" OR ")
		}
		cond, plain := legacy(tg)
		text("(" + cond + " AND " + plain + " IN (")
		for j, u := range tg.vals[tg.bis[0]] {
			if j > 0 {
				text(", ")
			}
			val(u, Plaintext)
		}
		text("))")
	}
	sep := ") "
	if f.lead == "" {
		sep = "), "
	}
	text(" RETURNING 1" + sep)
}

// sealedSQL is true when the stored value has the shape of an envelope
// (envelope.SealedSQL, as the operator commands judge it): a row sealed
// before its blind index existed holds no plaintext to compare.
func sealedSQL(col string, physical uint32) string {
	return envelope.SealedSQL(col, physical != policy.OIDBytea)
}

// fillsUnique records v, written to col with blind index bi, in the
// INSERT's fill when bi is unique and its table migrates: its index is
// then written around with uniqueWrap.
func (a *analyzer) fillsUnique(v value, col *policy.Column, bi *policy.BlindIndex) bool {
	f := a.fill
	if f == nil || !bi.Unique || col.Table != f.table || (v.kind != vParam && v.kind != vLiteral) {
		return false
	}
	f.vals = append(f.vals, uniqueVal{col: col, bi: bi, v: v})
	return !f.after
}
