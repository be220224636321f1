package ops

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/policy"
)

// pass walks one table in primary-key order and rewrites the values of
// some encrypted columns (and their blind indexes), one short transaction
// per batch; see the package doc for the statements.
type pass struct {
	t *target
	// cols are the encrypted columns read and perhaps written; idx are the
	// blind indexes (of columns of cols, in their order) whose column is
	// read (IS NOT NULL) and perhaps written.
	cols []*policy.Column
	idx  []ixTarget
	// pred is the server-side "this row may need work" predicate.
	pred func(a *args) string
	// work decides one row: it fills r.set*/r.new*, and r.opened with the
	// key of every value it opened to compute what it writes. A
	// *rowProblem is counted and what work did set is still written (the
	// value with the problem stays as it is); any other error ends the pass.
	work func(ctx context.Context, r *row) error
	// keys is the Keyring work opens with (lockOpened tells it of shreds).
	keys *keysource.Keyring

	batch      int
	workers    int
	skipLocked bool
	stop       <-chan struct{} // closed: finish the batches in flight, start no more
	progress   func(rows int)  // rows examined, after each committed batch
}

// row is one row of a batch.
type row struct {
	key       []string // primary key values, text form
	ctid      string   // ctid as read, only when target.sealedPK
	tenant    string   // canonical tenant (canon.TenantText)
	tenantRaw []byte   // key_context::text, nil when NULL
	vals      [][]byte // per pass.cols: stored value, nil = NULL
	hasIdx    []bool   // per pass.idx: blind index IS NOT NULL
	setVal    []bool
	newVal    [][]byte
	setIdx    []bool
	newIdx    [][]byte
	changed   bool
	opened    []uint32 // keys of the values opened for what is written
}

// rowProblem is a row a pass cannot handle: left unchanged, counted, and
// reported with a few primary keys so the operator can look.
type rowProblem struct {
	kind string // "column: what", e.g. "email: not valid date input"
}

func (p *rowProblem) Error() string { return p.kind }

// passStats counts what a pass did.
type passStats struct {
	Rows     int64            // rows examined
	Changed  int64            // rows updated
	Values   map[string]int64 // values written, by column (blind indexes under their own name)
	Problems map[string]*problemCount
}

type problemCount struct {
	N    int64
	Keys []string // up to 5 rows, named by target.rowName
	By   string   // how Keys name rows (target.rowsBy)
}

func (s *passStats) add(o *passStats) {
	s.Rows += o.Rows
	s.Changed += o.Changed
	if s.Values == nil {
		s.Values = map[string]int64{}
	}
	for k, v := range o.Values {
		s.Values[k] += v
	}
	if s.Problems == nil {
		s.Problems = map[string]*problemCount{}
	}
	for k, v := range o.Problems {
		pc := s.Problems[k]
		if pc == nil {
			pc = &problemCount{By: v.By}
			s.Problems[k] = pc
		}
		pc.N += v.N
		for _, key := range v.Keys {
			if len(pc.Keys) < 5 {
				pc.Keys = append(pc.Keys, key)
			}
		}
	}
}

// problemLines describes the rows left unchanged, for the final report.
func (s *passStats) problemLines() []string {
	var out []string
	for k, v := range s.Problems {
		out = append(out, fmt.Sprintf("%d row(s): %s (%s, first %d: %s)", v.N, k, cmp.Or(v.By, "primary keys"), len(v.Keys), strings.Join(v.Keys, ", ")))
	}
	sort.Strings(out)
	return out
}

// selectSQL reads the next batch after the cursor (withCursor) or from the
// start. Output columns get names of their own: ORDER BY id would otherwise
// sort by the output column id::text.
func (p *pass) selectSQL(withCursor bool) (string, *args) {
	a := &args{}
	var sel []string
	for i, k := range p.t.pk {
		sel = append(sel, fmt.Sprintf("%s::text AS pgveil_k%d", col(k.Name), i))
	}
	if p.t.sealedPK() {
		sel = append(sel, "pgveil_t.ctid::text AS pgveil_ctid")
	}
	if p.t.tenant != nil {
		sel = append(sel, col(p.t.tenant.Name)+"::text AS pgveil_tenant")
	}
	for i, c := range p.cols {
		sel = append(sel, fmt.Sprintf("%s AS pgveil_v%d", col(c.Name), i))
	}
	for i, x := range p.idx {
		sel = append(sel, fmt.Sprintf("%s IS NOT NULL AS pgveil_i%d", col(x.bi.Column), i))
	}
	var where []string
	if withCursor {
		var ks, ph []string
		for _, k := range p.t.pk {
			ks = append(ks, "pgveil_t."+col(k.Name))
			ph = append(ph, a.add(nil)+"::"+k.TypeName)
		}
		if len(ks) == 1 {
			where = append(where, ks[0]+" > "+ph[0])
		} else {
			where = append(where, "("+strings.Join(ks, ", ")+") > ("+strings.Join(ph, ", ")+")")
		}
	}
	where = append(where, p.pred(a))
	var order []string
	for _, k := range p.t.pk {
		order = append(order, "pgveil_t."+col(k.Name))
	}
	lock := "FOR UPDATE"
	if p.skipLocked {
		lock += " SKIP LOCKED"
	}
	sql := fmt.Sprintf("SELECT %s FROM %s AS pgveil_t WHERE %s ORDER BY %s LIMIT %d %s",
		strings.Join(sel, ", "), p.t.name, strings.Join(where, " AND "), strings.Join(order, ", "), p.batch, lock)
	return sql, a
}

// updateSQL writes a batch: one unnest() of arrays joined on the primary key.
// A value is written only where its flag is set; every other column keeps
// what the row holds (this transaction has it locked, so that is what was read).
func (p *pass) updateSQL() string {
	var arrays, names, sets, join []string
	n := 0
	param := func(typ string) string {
		n++
		return fmt.Sprintf("$%d::%s[]", n, typ)
	}
	for i, k := range p.t.pk {
		arrays = append(arrays, param("text"))
		names = append(names, fmt.Sprintf("k%d", i))
		join = append(join, fmt.Sprintf("pgveil_t.%s = pgveil_v.k%d::%s", col(k.Name), i, k.TypeName))
	}
	for i, c := range p.cols {
		typ := "bytea"
		if p.t.physical[c] == policy.OIDText {
			typ = "text"
		}
		arrays = append(arrays, param("bool"), param(typ))
		names = append(names, fmt.Sprintf("s%d", i), fmt.Sprintf("v%d", i))
		sets = append(sets, fmt.Sprintf("%[1]s = CASE WHEN pgveil_v.s%[2]d THEN pgveil_v.v%[2]d ELSE pgveil_t.%[1]s END", col(c.Name), i))
	}
	for i, x := range p.idx {
		arrays = append(arrays, param("bool"), param("bytea"))
		names = append(names, fmt.Sprintf("si%d", i), fmt.Sprintf("i%d", i))
		sets = append(sets, fmt.Sprintf("%[1]s = CASE WHEN pgveil_v.si%[2]d THEN pgveil_v.i%[2]d ELSE pgveil_t.%[1]s END", col(x.bi.Column), i))
	}
	return fmt.Sprintf("UPDATE %s AS pgveil_t SET %s FROM unnest(%s) AS pgveil_v(%s) WHERE %s",
		p.t.name, strings.Join(sets, ", "), strings.Join(arrays, ", "), strings.Join(names, ", "), strings.Join(join, " AND "))
}

// run walks the table once. Workers share the cursor: a worker takes the
// next batch (SELECT … FOR UPDATE) under a mutex and moves the cursor past
// it, then seals and writes while the next worker reads on; the batches
// are disjoint because the rows of one are locked and the next starts after it.
func (p *pass) run(ctx context.Context, e *Env) (*passStats, error) {
	first, firstArgs := p.selectSQL(false)
	next, nextArgs := p.selectSQL(true)
	update := p.updateSQL()
	var (
		mu     sync.Mutex
		cursor []string
		done   bool
		failed atomic.Bool
		errMu  sync.Mutex
		errs   []error
		wg     sync.WaitGroup
		total  = &passStats{}
		statMu sync.Mutex
	)
	fail := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
		failed.Store(true)
	}
	stopped := func() bool {
		if failed.Load() {
			return true
		}
		select {
		case <-p.stop:
			return true
		default:
			return false
		}
	}
	workers := max(p.workers, 1)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped() {
				st, more, err := p.batchOnce(ctx, e, &mu, &cursor, &done, first, firstArgs, next, nextArgs, update)
				if err != nil {
					fail(err)
					return
				}
				if st != nil {
					statMu.Lock()
					total.add(st)
					statMu.Unlock()
					if p.progress != nil {
						p.progress(int(st.Rows))
					}
				}
				if !more {
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return total, errs[0]
	}
	return total, nil
}

// batchOnce runs one batch transaction. more is false when the table is done.
func (p *pass) batchOnce(ctx context.Context, e *Env, mu *sync.Mutex, cursor *[]string, done *bool,
	first string, firstArgs *args, next string, nextArgs *args, update string) (*passStats, bool, error) {
	tx, err := e.Pool.Begin(ctx)
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback(context.Background())
	mu.Lock()
	if *done {
		mu.Unlock()
		return nil, false, nil
	}
	var rows []*row
	t0 := time.Now()
	if *cursor == nil {
		rows, err = p.read(ctx, tx, first, firstArgs.vals)
	} else {
		vals := append([]any(nil), nextArgs.vals...)
		for i, k := range *cursor {
			vals[i] = k
		}
		rows, err = p.read(ctx, tx, next, vals)
	}
	if err != nil {
		mu.Unlock()
		return nil, false, fmt.Errorf("reading a batch of %s: %w", p.t.pol.QualifiedName(), err)
	}
	if len(rows) == 0 {
		*done = true
		mu.Unlock()
		return nil, false, nil
	}
	*cursor = rows[len(rows)-1].key
	if len(rows) < p.batch {
		*done = true // nothing after this batch matched (or was unlocked)
	}
	mu.Unlock()

	t1 := time.Now()
	st := &passStats{Rows: int64(len(rows)), Values: map[string]int64{}, Problems: map[string]*problemCount{}}
	var changed []*row
	for _, r := range rows {
		if err := p.work(ctx, r); err != nil {
			var rp *rowProblem
			if !errors.As(err, &rp) {
				return nil, false, err
			}
			// The value stays as it is; the row's other values are written.
			p.problem(st, r, rp.kind)
		}
		if r.changed {
			changed = append(changed, r)
		}
	}
	changed, err = p.lockOpened(ctx, tx, changed, st)
	if err != nil {
		return nil, false, err
	}
	t2 := time.Now()
	if len(changed) > 0 {
		if _, err := tx.Exec(ctx, update, p.updateArgs(changed, st)...); err != nil {
			return nil, false, p.updateError(err, changed)
		}
	}
	t3 := time.Now()
	if err := tx.Commit(ctx); err != nil {
		return nil, false, p.updateError(err, changed)
	}
	e.Log.Debug("batch", zap.Duration("select", t1.Sub(t0)), zap.Duration("work", t2.Sub(t1)), zap.Duration("update", t3.Sub(t2)), zap.Duration("commit", time.Since(t3)))
	st.Changed = int64(len(changed))
	return st, true, nil
}

// problem counts r as left (in part) as it is, for kind.
func (p *pass) problem(st *passStats, r *row, kind string) {
	pc := st.Problems[kind]
	if pc == nil {
		pc = &problemCount{By: p.t.rowsBy()}
		st.Problems[kind] = pc
	}
	pc.N++
	if len(pc.Keys) < 5 {
		pc.Keys = append(pc.Keys, p.t.rowName(r))
	}
}

// shreddedMeanwhile is the problem of a row lockOpened does not write.
const shreddedMeanwhile = "a value's key was shredded (`pgveil shred`) while this command ran: the row was left as it is (its values read as NULL)"

// lockOpened makes sure that no batch writes what it opened with a key
// that `pgveil shred` has destroyed, whichever commits first: inside the
// batch's transaction it locks the rows of the keys the batch opened
// values with FOR SHARE, until commit, and returns the rows of changed
// whose keys are all still there; the others are counted (shreddedMeanwhile)
// and not written. Keyring.Shred updates those rows: a shred that comes
// first has committed its tombstones (or this waits for it to) and they
// show here; one that comes later waits for this batch's commit, and then
// destroys every version of the tenant's keys, also any this batch sealed
// with. The Keyring alone cannot promise this: it learns of a shred by a
// notification, a moment later.
func (p *pass) lockOpened(ctx context.Context, tx pgx.Tx, changed []*row, st *passStats) ([]*row, error) {
	var ids []int64
	seen := map[uint32]bool{}
	for _, r := range changed {
		for _, id := range r.opened {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, int64(id))
			}
		}
	}
	if len(ids) == 0 {
		return changed, nil
	}
	slices.Sort(ids) // one lock order for every batch
	rs, err := tx.Query(ctx, `SELECT key_id FROM pgveil.keys WHERE key_id = ANY($1) AND state <> 'shredded' ORDER BY key_id FOR SHARE`, ids)
	if err != nil {
		return nil, fmt.Errorf("checking the keys of a batch of %s: %w", p.t.pol.QualifiedName(), err)
	}
	liveIDs, err := pgx.CollectRows(rs, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("checking the keys of a batch of %s: %w", p.t.pol.QualifiedName(), err)
	}
	live := map[uint32]bool{}
	for _, id := range liveIDs {
		live[uint32(id)] = true
	}
	if len(live) == len(ids) {
		return changed, nil
	}
	var gone []uint32
	for id := range seen {
		if !live[id] {
			gone = append(gone, id)
		}
	}
	p.keys.Forget(gone...) // the next pass opens them to ErrShredded
	var keep []*row
	for _, r := range changed {
		if slices.ContainsFunc(r.opened, func(id uint32) bool { return !live[id] }) {
			p.problem(st, r, shreddedMeanwhile)
			continue
		}
		keep = append(keep, r)
	}
	return keep, nil
}

// read runs the batch SELECT and decodes its rows.
func (p *pass) read(ctx context.Context, tx pgx.Tx, sql string, vals []any) ([]*row, error) {
	rs, err := tx.Query(ctx, sql, vals...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*row
	nk := len(p.t.pk)
	for rs.Next() {
		raw := rs.RawValues()
		r := &row{key: make([]string, nk)}
		i := 0
		for ; i < nk; i++ {
			r.key[i] = string(raw[i])
		}
		if p.t.sealedPK() {
			r.ctid = string(raw[i])
			i++
		}
		if p.t.tenant != nil {
			if raw[i] != nil {
				r.tenantRaw = append([]byte(nil), raw[i]...)
			}
			i++
		}
		r.vals = make([][]byte, len(p.cols))
		for j := range p.cols {
			if raw[i] != nil {
				r.vals[j] = append([]byte{}, raw[i]...)
			}
			i++
		}
		r.hasIdx = make([]bool, len(p.idx))
		for j := range p.idx {
			r.hasIdx[j] = len(raw[i]) == 1 && (raw[i][0] == 1 || raw[i][0] == 't')
			i++
		}
		r.setVal = make([]bool, len(p.cols))
		r.newVal = make([][]byte, len(p.cols))
		r.setIdx = make([]bool, len(p.idx))
		r.newIdx = make([][]byte, len(p.idx))
		out = append(out, r)
	}
	return out, rs.Err()
}

// updateArgs are the arrays of updateSQL for the changed rows.
func (p *pass) updateArgs(rows []*row, st *passStats) []any {
	var out []any
	for i := range p.t.pk {
		keys := make([]string, len(rows))
		for j, r := range rows {
			keys[j] = r.key[i]
		}
		out = append(out, keys)
	}
	for i, c := range p.cols {
		set := make([]bool, len(rows))
		vals := make([][]byte, len(rows))
		for j, r := range rows {
			set[j], vals[j] = r.setVal[i], r.newVal[i]
			if set[j] {
				st.Values[c.Name]++
			}
		}
		out = append(out, set, vals)
	}
	for i, x := range p.idx {
		set := make([]bool, len(rows))
		vals := make([][]byte, len(rows))
		for j, r := range rows {
			set[j], vals[j] = r.setIdx[i], r.newIdx[i]
			if set[j] {
				st.Values[x.bi.Column]++
			}
		}
		out = append(out, set, vals)
	}
	return out
}

// updateError explains the failures an operator can act on. changed are
// the rows the failed batch wrote.
func (p *pass) updateError(err error, changed []*row) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("%s: unique index %s rejects a blind index: two rows hold values that are equal after the column's normalisation%s. "+
			"Find and resolve the duplicates (or drop `unique: true` and its UNIQUE index), then run the same command again: %w",
			p.t.pol.QualifiedName(), pe.ConstraintName, p.duplicates(pe.Detail, changed), err)
	}
	return fmt.Errorf("writing a batch of %s: %w", p.t.pol.QualifiedName(), err)
}

// uniqueDetail is the DETAIL of a unique violation: the index's column
// and the key value, bytea in hex.
var uniqueDetail = regexp.MustCompile(`^Key \((.+)\)=\(\\x([0-9a-f]*)\) already exists\.$`)

// duplicates names, from a unique violation's DETAIL, the rows of the
// batch that carry the rejected blind index (values are never shown: a
// blind index is no secret beyond equality), and the query that finds a
// row already written with it. While the table is migrating the values
// are plaintext and envelopes mixed, so the operator could not search
// for them by value.
func (p *pass) duplicates(detail string, changed []*row) string {
	m := uniqueDetail.FindStringSubmatch(detail)
	if m == nil {
		return ""
	}
	want, err := hex.DecodeString(m[2])
	if err != nil {
		return ""
	}
	col := strings.Trim(m[1], `"`)
	var names []string
	for i, x := range p.idx {
		if x.bi.Column != col {
			continue
		}
		for _, r := range changed {
			if r.setIdx[i] && bytes.Equal(r.newIdx[i], want) && len(names) < 5 {
				names = append(names, p.t.rowName(r))
			}
		}
	}
	pks := make([]string, len(p.t.pk))
	for i, c := range p.t.pk {
		pks[i] = quoteIdent(c.Name)
	}
	out := fmt.Sprintf("; a row already written with it: SELECT %s FROM %s WHERE %s = '\\x%s'; (on a direct connection)",
		strings.Join(pks, ", "), qualified(p.t.pol.Schema, p.t.pol.Name), quoteIdent(col), m[2])
	if len(names) > 0 {
		out = fmt.Sprintf("; in this batch, %s %s%s", p.t.rowsBy(), strings.Join(names, ", "), out)
	}
	return out
}

// passes runs pass until one finds nothing left to change: the first with
// SKIP LOCKED (it never waits for the application), the later ones with
// plain FOR UPDATE, so rows the first skipped because a writer held them
// are waited for and done. It stops after maxPasses with an error when
// work keeps appearing (a writer that bypasses pgveil).
func (p *pass) passes(ctx context.Context, e *Env, interrupted func() bool) (*passStats, error) {
	const maxPasses = 5
	total := &passStats{}
	for i := 0; i < maxPasses; i++ {
		p.skipLocked = i == 0
		start := time.Now()
		st, err := p.run(ctx, e)
		// Rows with problems are met again by every pass: the last pass's
		// count is the number left.
		problems := st.Problems
		st.Problems = nil
		total.add(st)
		total.Problems = problems
		if err != nil {
			return total, err
		}
		if interrupted() {
			return total, ErrInterrupted
		}
		e.Log.Debug("pass done", zap.String("table", p.t.pol.QualifiedName()), zap.Int("pass", i+1),
			zap.Int64("rows", st.Rows), zap.Int64("changed", st.Changed), zap.Duration("took", time.Since(start)))
		if i > 0 && st.Changed == 0 {
			return total, nil
		}
	}
	return total, fmt.Errorf("%s: %w after %d passes; is an application writing to it without going through pgveil?", p.t.pol.QualifiedName(), errKeptAppearing, maxPasses)
}

// errKeptAppearing: every pass found new work (passes).
var errKeptAppearing = errors.New("rows needing work kept appearing")

// ErrInterrupted: the operator asked to stop; the batches in flight were finished.
var ErrInterrupted = errors.New("interrupted")
