package ops

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pgveil/pgveil/policy"
)

// target is one configured table ready for passes: its live columns
// checked, its primary key and tenant column known.
type target struct {
	pol      *policy.Table
	live     *liveTable
	name     string // schema.table, quoted for SQL
	pk       []*liveCol
	pkSealed []bool   // per pk column: an encrypted column, whose value is never printed
	tenant   *liveCol // the key_context column; nil without one
	physical map[*policy.Column]uint32
	hasBidx  map[*policy.BlindIndex]bool // the blind-index column exists
	// keyStore: pgveil.keys exists, so SQL may look up key states
	// (shreddedSQL); false before the first migrate --apply.
	keyStore bool
}

// ixTarget is one blind index of an encrypted column: its current one or,
// during an index-key rotation, the next (policy.Column.IndexTargets).
type ixTarget struct {
	c  *policy.Column
	bi *policy.BlindIndex
}

// newTarget checks what a pass over t needs: the table, a primary key, the
// encrypted columns (bytea or text) and the key_context column. Blind-index
// columns may be missing (migrate creates them); needBidx makes them required.
func newTarget(t *policy.Table, lt *liveTable, needBidx bool) (*target, error) {
	name := t.QualifiedName()
	if lt == nil {
		return nil, fmt.Errorf("table %s does not exist (run `pgveil check`)", name)
	}
	var problems []string
	if lt.Kind != "r" && lt.Kind != "p" {
		problems = append(problems, fmt.Sprintf("%s is not an ordinary table (relkind %s)", name, lt.Kind))
	}
	if len(lt.PK) == 0 {
		problems = append(problems, fmt.Sprintf("%s has no primary key: pgveil walks tables by primary key; add one (ALTER TABLE %s ADD PRIMARY KEY (...))", name, qualified(t.Schema, t.Name)))
	}
	tg := &target{pol: t, live: lt, name: qualified(t.Schema, t.Name), pk: lt.PK,
		physical: map[*policy.Column]uint32{}, hasBidx: map[*policy.BlindIndex]bool{}}
	for _, c := range t.Columns {
		lc := lt.Cols[c.Name]
		switch {
		case lc == nil:
			problems = append(problems, fmt.Sprintf("column %s does not exist", c.QualifiedName()))
			continue
		case lc.TypeOID != policy.OIDBytea && lc.TypeOID != policy.OIDText:
			problems = append(problems, fmt.Sprintf("column %s is %s, not bytea or text", c.QualifiedName(), lc.TypeName))
			continue
		}
		tg.physical[c] = lc.TypeOID
		for _, bi := range c.IndexTargets() {
			lb := lt.Cols[bi.Column]
			switch {
			case lb == nil && needBidx:
				problems = append(problems, fmt.Sprintf("blind-index column %s.%s does not exist", name, bi.Column))
			case lb != nil && lb.TypeOID != policy.OIDBytea:
				problems = append(problems, fmt.Sprintf("blind-index column %s.%s is %s, not bytea", name, bi.Column, lb.TypeName))
			case lb != nil:
				tg.hasBidx[bi] = true
			}
		}
	}
	for _, k := range lt.PK {
		tg.pkSealed = append(tg.pkSealed, k != nil && t.Column(k.Name) != nil)
	}
	if kc := t.KeyContext; kc != "" {
		tg.tenant = lt.Cols[kc]
		if tg.tenant == nil {
			problems = append(problems, fmt.Sprintf("key_context column %s.%s does not exist", name, kc))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s does not match the policy:\n  - %s\nrun `pgveil check` for the DDL that fixes each problem", name, strings.Join(problems, "\n  - "))
	}
	return tg, nil
}

// sealedPK: an encrypted column is part of the primary key (`pgveil check`
// reports it; migrate refuses such a table, migrate --decrypt and rotate
// walk it): rows are then named by their ctid.
func (t *target) sealedPK() bool { return slices.Contains(t.pkSealed, true) }

// rowName names a row in a problem report: its primary key or, where an
// encrypted column is part of it, the other key columns and the row's
// ctid as read. The value of an encrypted column is never printed, in any
// form.
func (t *target) rowName(r *row) string {
	if !t.sealedPK() {
		return strings.Join(r.key, ",")
	}
	var parts []string
	for i, k := range r.key {
		if !t.pkSealed[i] {
			parts = append(parts, k)
		}
	}
	return strings.Join(append(parts, "ctid "+r.ctid), ",")
}

// rowsBy says how rowName names rows.
func (t *target) rowsBy() string {
	if t.sealedPK() {
		return "rows (the primary key's plain columns and ctid as read)"
	}
	return "primary keys"
}

// loadTargets reads the live schema of tables and checks each.
func loadTargets(ctx context.Context, e *Env, tables []*policy.Table, needBidx bool) ([]*target, error) {
	live, err := loadLive(ctx, e.Pool, tables)
	if err != nil {
		return nil, err
	}
	var out []*target
	var errs []string
	for _, t := range tables {
		tg, err := newTarget(t, live[t.QualifiedName()], needBidx)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		out = append(out, tg)
	}
	if len(errs) > 0 {
		return nil, &ProblemError{Msg: strings.Join(errs, "\n")}
	}
	return out, nil
}

// ProblemError is a problem found in the database (exit 1), as opposed to
// an operation that failed midway.
type ProblemError struct{ Msg string }

func (e *ProblemError) Error() string { return e.Msg }

// col is a column name quoted for SQL.
func col(name string) string { return quoteIdent(name) }
