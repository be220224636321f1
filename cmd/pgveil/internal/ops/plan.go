package ops

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/pgveil/pgveil/policy"
)

// tablePlan is what migrate will do to one table.
type tablePlan struct {
	pol   *policy.Table
	live  *liveTable
	state string // pgveil.tables state, "" when the table has no row (complete)
	// blocking are problems migrate does not fix itself (run `pgveil check`).
	blocking []string
	// ddl are the statements migrate runs first (blind-index columns and indexes).
	ddl []string
	// counts, filled by count().
	rows, work int64
	shredded   int64            // rows with values under shredded keys that migrate leaves without blind index
	values     map[string]int64 // per encrypted column: values to seal (or open)
	indexes    map[string]int64 // per blind-index column: indexes to fill (or clear)
}

// migrateFixes are the findings migrate fixes itself: blind-index columns
// (nullable bytea, a catalog-only change) and their indexes (built
// CONCURRENTLY). Everything else needs a person.
var migrateFixes = map[string]bool{
	"bidx_missing": true, "bidx_index_missing": true, "bidx_index_not_unique": true, "bidx_index_invalid": true,
}

// planTables reads the live schema and states and plans each table.
func planTables(ctx context.Context, e *Env, tables []*policy.Table, decrypt bool) ([]*tablePlan, error) {
	live, err := loadLive(ctx, e.Pool, tables)
	if err != nil {
		return nil, err
	}
	rows, err := e.TableStates(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading pgveil.tables: %w", err)
	}
	states := rows.States()
	var out []*tablePlan
	for _, t := range tables {
		lt := live[t.QualifiedName()]
		tp := &tablePlan{pol: t, live: lt, state: states[t.QualifiedName()]}
		if why, bad := rows.Rejected[t.QualifiedName()]; bad {
			fmt.Fprintf(e.Out, "%s: its row in pgveil.tables is not trusted (%s); it counts as complete until `pgveil migrate --apply` or `--decrypt` signs a state anew\n", t.QualifiedName(), why)
		}
		r := &Report{}
		checkTable(r, t, lt)
		for _, f := range r.Findings {
			switch {
			case f.Code == "no_primary_key" || f.Code == "not_a_table":
				tp.blocking = append(tp.blocking, f.Message)
			case f.Severity != SevProblem:
			case migrateFixes[f.Code]:
				if !decrypt {
					tp.ddl = append(tp.ddl, f.Fix...)
				}
			case decrypt && (f.Code == "constraint_on_encrypted" || f.Code == "primary_key_encrypted"):
				// Plaintext satisfies it again; decrypting is how to keep it.
			default:
				tp.blocking = append(tp.blocking, f.Message)
			}
		}
		out = append(out, tp)
	}
	return out, nil
}

// count fills the plan's row counts (one scan of the table).
func (tp *tablePlan) count(ctx context.Context, e *Env, decrypt bool) error {
	tg, err := newTarget(tp.pol, tp.live, false)
	if err != nil {
		return err
	}
	if err := e.Pool.QueryRow(ctx, `SELECT to_regclass('pgveil.keys') IS NOT NULL`).Scan(&tg.keyStore); err != nil {
		return err
	}
	var exprs []string
	var names []string
	var isIdx []bool
	a := &args{}
	for _, c := range tp.pol.Columns {
		qc, phys := col(c.Name), tg.physical[c]
		if decrypt {
			exprs = append(exprs, fmt.Sprintf("count(*) FILTER (WHERE %s IS NOT NULL AND %s)", qc, sealedSQL(qc, phys)))
		} else {
			exprs = append(exprs, fmt.Sprintf("count(*) FILTER (WHERE %s IS NOT NULL AND NOT %s)", qc, sealedSQL(qc, phys)))
		}
		names, isIdx = append(names, c.Name), append(isIdx, false)
		for _, bi := range c.IndexTargets() {
			switch {
			case decrypt && tg.hasBidx[bi]:
				exprs = append(exprs, fmt.Sprintf("count(%s)", col(bi.Column)))
			case decrypt:
				exprs = append(exprs, "0")
			case tg.hasBidx[bi]:
				fill := fmt.Sprintf("%s IS NOT NULL AND %s IS NULL", qc, col(bi.Column))
				if tg.keyStore {
					fill += " AND NOT " + shreddedSQL(qc, phys) // shredded: no index on purpose
				}
				exprs = append(exprs, "count(*) FILTER (WHERE "+fill+")")
			default:
				exprs = append(exprs, fmt.Sprintf("count(%s)", qc))
			}
			names, isIdx = append(names, bi.Column), append(isIdx, true)
		}
	}
	pred, shredded := "true", "false"
	if tp.pol.Columns != nil {
		if decrypt {
			pred = decryptPredicate(tg, tp.pol.Columns, indexed(tg, tp.pol.Columns))(a)
		} else {
			pred = migratePredicate(tg, tp.pol.Columns, indexed(tg, tp.pol.Columns))(a)
			shredded = shreddedNoIndex(tg, indexed(tg, tp.pol.Columns))
		}
	}
	exprs = append(exprs, fmt.Sprintf("count(*) FILTER (WHERE %s)", shredded))
	names, isIdx = append(names, ""), append(isIdx, false)
	sql := fmt.Sprintf("SELECT count(*), count(*) FILTER (WHERE %s), %s FROM %s", pred, strings.Join(exprs, ", "), tg.name)
	vals := make([]int64, len(exprs)+2)
	dst := make([]any, len(vals))
	for i := range vals {
		dst[i] = &vals[i]
	}
	if err := e.Pool.QueryRow(ctx, sql, a.vals...).Scan(dst...); err != nil {
		return fmt.Errorf("counting %s: %w", tp.pol.QualifiedName(), err)
	}
	tp.rows, tp.work, tp.shredded = vals[0], vals[1], vals[len(vals)-1]
	tp.values, tp.indexes = map[string]int64{}, map[string]int64{}
	for i, n := range names[:len(names)-1] {
		if isIdx[i] {
			tp.indexes[n] = vals[i+2]
		} else {
			tp.values[n] = vals[i+2]
		}
	}
	return nil
}

// indexed are the blind indexes of cols (current and next) whose column
// exists, in column order.
func indexed(tg *target, cols []*policy.Column) []ixTarget {
	var out []ixTarget
	for _, c := range cols {
		for _, bi := range c.IndexTargets() {
			if tg.hasBidx[bi] {
				out = append(out, ixTarget{c, bi})
			}
		}
	}
	return out
}

// writePlan prints the plans for a person.
func writePlan(w io.Writer, plans []*tablePlan, decrypt bool) {
	for _, tp := range plans {
		state := tp.state
		if state == "" {
			state = "none (complete)"
		}
		fmt.Fprintf(w, "%s  (state: %s)\n", tp.pol.QualifiedName(), state)
		if len(tp.blocking) > 0 {
			fmt.Fprintf(w, "  cannot proceed until these are fixed (`pgveil check` prints the DDL):\n")
			for _, b := range tp.blocking {
				fmt.Fprintf(w, "    - %s\n", b)
			}
		}
		if len(tp.ddl) > 0 {
			fmt.Fprintf(w, "  DDL:\n")
			for _, s := range tp.ddl {
				fmt.Fprintf(w, "    %s\n", s)
			}
		}
		if tp.values == nil {
			fmt.Fprintln(w)
			continue
		}
		verb, iverb := "plaintext values to encrypt", "blind indexes to fill"
		if decrypt {
			verb, iverb = "envelopes to decrypt", "blind indexes to clear"
		}
		fmt.Fprintf(w, "  rows: %d, %d to rewrite\n", tp.rows, tp.work)
		for _, c := range tp.pol.Columns {
			fmt.Fprintf(w, "    %-24s %10d %s\n", c.Name, tp.values[c.Name], verb)
			for _, bi := range c.IndexTargets() {
				fmt.Fprintf(w, "    %-24s %10d %s\n", bi.Column, tp.indexes[bi.Column], iverb)
			}
		}
		if tp.shredded > 0 {
			fmt.Fprintf(w, "  %d row(s) hold values under shredded keys: left as they are, without blind index\n", tp.shredded)
		}
		fmt.Fprintln(w)
	}
}
