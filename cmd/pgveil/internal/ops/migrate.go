package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/keysource/canon"
	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// MigrateOptions are `pgveil migrate`'s flags.
type MigrateOptions struct {
	Table   string // "" = every configured table
	Apply   bool   // false: print the plan only
	Prepare bool   // with Apply: DDL, keys and state migrating; no rows touched
	Decrypt bool   // leave pgveil: write plaintext back
	Batch   int    // rows per batch transaction
	Workers int    // batches in flight
	Stop    *Interrupt
}

// Defaults of the batch flags.
const (
	DefaultBatch   = 2000
	DefaultWorkers = 2
)

// Migrate prints the plan or, with Apply, carries it out table by table.
func Migrate(ctx context.Context, e *Env, o MigrateOptions) error {
	tables, err := e.tables(o.Table)
	if err != nil {
		return err
	}
	plans, err := planTables(ctx, e, tables, o.Decrypt)
	if err != nil {
		return err
	}
	if !o.Apply {
		for _, tp := range plans {
			if len(tp.blocking) == 0 {
				if err := tp.count(ctx, e, o.Decrypt); err != nil {
					return err
				}
			}
		}
		writePlan(e.Out, plans, o.Decrypt)
		fmt.Fprintf(e.Out, "This is the plan. Run the same command with --apply to carry it out.\n")
		return blockingError(plans)
	}
	if err := blockingError(plans); err != nil {
		writePlan(e.Out, plans, o.Decrypt)
		return err
	}
	keys, err := e.Keyring(ctx)
	if err != nil {
		return err
	}
	if err := proxy.EnsureTableStates(ctx, e.Pool); err != nil {
		return fmt.Errorf("creating pgveil.tables: %w", err)
	}
	var problems []string
	for _, tp := range plans {
		if o.Stop.Stopped() {
			return ErrInterrupted
		}
		var err error
		if o.Decrypt {
			err = decryptTable(ctx, e, keys, tp, o)
		} else {
			err = migrateTable(ctx, e, keys, tp, o)
		}
		var pe *ProblemError
		switch {
		case errors.As(err, &pe):
			problems = append(problems, pe.Msg)
		case err != nil:
			return err
		}
	}
	if len(problems) > 0 {
		return &ProblemError{Msg: strings.Join(problems, "\n")}
	}
	return nil
}

func blockingError(plans []*tablePlan) error {
	var msgs []string
	for _, tp := range plans {
		for _, b := range tp.blocking {
			msgs = append(msgs, b)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return &ProblemError{Msg: "the schema does not match the policy:\n  - " + strings.Join(msgs, "\n  - ") + "\nrun `pgveil check` for the DDL that fixes each problem"}
}

// runDDL applies migrate's DDL: ADD COLUMN under a short lock timeout (it
// needs an ACCESS EXCLUSIVE lock for a moment and must not queue behind a
// long transaction, blocking every query behind it), indexes CONCURRENTLY
// outside any transaction. Each statement is idempotent, so a rerun after
// a kill finishes the job (an index left invalid is dropped and rebuilt).
func runDDL(ctx context.Context, e *Env, tp *tablePlan) error {
	for _, stmt := range tp.ddl {
		sql := stmt
		if strings.HasPrefix(sql, "ALTER TABLE ") && strings.Contains(sql, " ADD COLUMN ") {
			sql = strings.Replace(sql, " ADD COLUMN ", " ADD COLUMN IF NOT EXISTS ", 1)
			err := pgx.BeginFunc(ctx, e.Pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'"); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, sql)
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: %w (a long transaction holds the table? run again)", stmt, err)
			}
		} else if _, err := e.Pool.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
		e.Log.Info("ran DDL", zap.String("table", tp.pol.QualifiedName()), zap.String("sql", stmt))
		fmt.Fprintf(e.Out, "%s: %s\n", tp.pol.QualifiedName(), stmt)
	}
	if len(tp.ddl) == 0 {
		return nil
	}
	live, err := loadLive(ctx, e.Pool, []*policy.Table{tp.pol})
	if err != nil {
		return err
	}
	tp.live = live[tp.pol.QualifiedName()]
	return nil
}

// migrateTable: DDL, keys, state migrating, passes, state complete.
func migrateTable(ctx context.Context, e *Env, keys *keysource.Keyring, tp *tablePlan, o MigrateOptions) error {
	name := tp.pol.QualifiedName()
	if err := runDDL(ctx, e, tp); err != nil {
		return err
	}
	tg, err := newTarget(tp.pol, tp.live, true)
	if err != nil {
		return &ProblemError{Msg: err.Error()}
	}
	// Keys that do not depend on a row: index keys, and the data keys of a
	// table without tenants. Tenants' keys are made as their rows come.
	for _, c := range tp.pol.Columns {
		for _, bi := range c.IndexTargets() {
			if _, err := keys.BlindIndexKey(ctx, c, bi); err != nil {
				return err
			}
		}
		if tp.pol.KeyContext == "" {
			if _, err := keys.EncryptionKey(ctx, c, "", false); err != nil {
				return err
			}
		}
	}
	tg.keyStore = true
	m := &migrator{keys: keys, t: tg}
	p := m.pass(o)
	a := &args{}
	var work bool
	if err := e.Pool.QueryRow(ctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s)", tg.name, p.pred(a)), a.vals...).Scan(&work); err != nil {
		return fmt.Errorf("looking for plaintext in %s: %w", name, err)
	}
	// Values of shredded tenants stay without blind index: counted (one
	// more scan) only when the table has blind indexes and tombstones.
	scopes := make([]string, len(tp.pol.Columns))
	for i, c := range tp.pol.Columns {
		scopes[i] = keysource.ScopeOf(c)
	}
	var shredded int64
	if err := e.Pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s AND EXISTS (SELECT 1 FROM pgveil.keys
		WHERE purpose = 'enc' AND state = 'shredded' AND scope = ANY($1))`, tg.name, shreddedNoIndex(tg, p.idx)), scopes).Scan(&shredded); err != nil {
		return fmt.Errorf("counting values under shredded keys in %s: %w", name, err)
	}
	if shredded > 0 {
		e.Log.Info("rows of shredded tenants skipped", zap.String("table", name), zap.Int64("rows", shredded))
		fmt.Fprintf(e.Out, "%s: %d row(s) hold values under shredded keys: left as they are, without blind index (they read as NULL)\n", name, shredded)
	}
	if !work {
		if tp.state != proxy.TableComplete {
			gen, err := setTableState(ctx, e, name, proxy.TableComplete)
			if err != nil {
				return err
			}
			if err := settleState(ctx, e, name, proxy.TableComplete, gen); err != nil {
				return err
			}
		}
		fmt.Fprintf(e.Out, "%s: nothing to encrypt; state complete\n", name)
		return nil
	}
	// Migration mode (lookups that also compare plaintext, reads that
	// accept values without an envelope) only while plaintext is left: a
	// run that fills blind indexes of sealed values only (a new index
	// column, the next index of a rotation) leaves the state alone.
	pa := &args{}
	var plain bool
	if err := e.Pool.QueryRow(ctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s)", tg.name, migratePredicate(tg, tp.pol.Columns, nil)(pa)), pa.vals...).Scan(&plain); err != nil {
		return fmt.Errorf("looking for plaintext in %s: %w", name, err)
	}
	switch {
	case plain && tp.state != proxy.TableMigrating:
		gen, err := setTableState(ctx, e, name, proxy.TableMigrating)
		if err != nil {
			return err
		}
		e.Log.Info("table state", zap.String("table", name), zap.String("state", proxy.TableMigrating))
		fmt.Fprintf(e.Out, "%s: state migrating (every pgveil replica now reads values without an envelope as legacy plaintext)\n", name)
		if err := settleState(ctx, e, name, proxy.TableMigrating, gen); err != nil {
			return err
		}
	case !plain && tp.state != proxy.TableMigrating:
		fmt.Fprintf(e.Out, "%s: every value is sealed; filling blind indexes only (the table stays out of migration mode)\n", name)
	}
	if o.Prepare {
		fmt.Fprintf(e.Out, "%s: prepared. Start pgveil (or reload it), move the application to it, then run `pgveil migrate --apply` without --prepare.\n", name)
		return nil
	}
	st, err := runPasses(ctx, e, p, "encrypt "+name, o)
	if err != nil {
		return err
	}
	if len(st.Problems) > 0 {
		stays := "the table stays in state migrating"
		if !plain && tp.state != proxy.TableMigrating {
			stays = "the table's state is unchanged (" + cmp.Or(tp.state, proxy.TableComplete) + ")"
		}
		return &ProblemError{Msg: fmt.Sprintf("%s: some rows could not be encrypted and were left as they are; %s:\n  - %s\nfix them and run `pgveil migrate --apply` again (docs/ADOPTION.md, \"Rows migrate cannot encrypt\")",
			name, stays, strings.Join(st.problemLines(), "\n  - "))}
	}
	gen, err := setTableState(ctx, e, name, proxy.TableComplete)
	if err != nil {
		return err
	}
	if err := settleState(ctx, e, name, proxy.TableComplete, gen); err != nil {
		return err
	}
	e.Log.Info("table state", zap.String("table", name), zap.String("state", proxy.TableComplete))
	fmt.Fprintf(e.Out, "%s: state complete (plaintext is no longer accepted on read)\n", name)
	return nil
}

// runPasses runs p's passes with progress and prints the summary line.
func runPasses(ctx context.Context, e *Env, p *pass, what string, o MigrateOptions) (*passStats, error) {
	a := &args{}
	var total int64
	if err := e.Pool.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", p.t.name, p.pred(a)), a.vals...).Scan(&total); err != nil {
		return nil, fmt.Errorf("counting rows of %s: %w", p.t.pol.QualifiedName(), err)
	}
	pr := e.newProgress(what, total)
	p.progress = pr.add
	p.stop = o.Stop.C()
	st, err := p.passes(ctx, e, o.Stop.Stopped)
	rows, took := pr.finish()
	rate := float64(rows) / max(took.Seconds(), 1e-9)
	var vals []string
	for _, c := range p.cols {
		if n := st.Values[c.Name]; n > 0 {
			vals = append(vals, fmt.Sprintf("%s %d", c.Name, n))
		}
		for _, bi := range c.IndexTargets() {
			if n := st.Values[bi.Column]; n > 0 {
				vals = append(vals, fmt.Sprintf("%s %d", bi.Column, n))
			}
		}
	}
	if len(vals) == 0 {
		vals = []string{"none"}
	}
	fmt.Fprintf(e.Out, "%s: %d rows examined, %d rewritten in %s (%.0f rows/s); values written: %s\n",
		what, rows, st.Changed, took.Round(time.Millisecond), rate, strings.Join(vals, ", "))
	e.Log.Info("done", zap.String("what", what), zap.Int64("rows", rows), zap.Int64("rewritten", st.Changed),
		zap.Duration("took", took), zap.Int("rows_per_s", int(rate)))
	if errors.Is(err, ErrInterrupted) {
		fmt.Fprintf(e.Out, "%s: interrupted after the batches in flight committed; run the same command again to continue (finished values are recognised and skipped)\n", what)
	}
	return st, err
}

// migrator seals legacy plaintext and fills blind indexes.
type migrator struct {
	keys *keysource.Keyring
	t    *target
}

func (m *migrator) pass(o MigrateOptions) *pass {
	cols := m.t.pol.Columns
	idx := indexed(m.t, cols)
	p := &pass{t: m.t, cols: cols, idx: idx, batch: o.Batch, workers: o.Workers, keys: m.keys}
	p.pred = migratePredicate(m.t, cols, idx)
	p.work = func(ctx context.Context, r *row) error { return m.work(ctx, p, r) }
	return p
}

// migratePredicate: some value is not sealed, or a sealed value lacks its
// blind index. A value under a shredded key has none on purpose (shred
// cleared it, and nothing can open the value to index it again): it is
// not work (shreddedNoIndex counts those).
func migratePredicate(t *target, cols []*policy.Column, idx []ixTarget) func(a *args) string {
	return func(a *args) string {
		var ps []string
		for _, c := range cols {
			qc := col(c.Name)
			ps = append(ps, fmt.Sprintf("(%s IS NOT NULL AND NOT %s)", qc, sealedSQL(qc, t.physical[c])))
		}
		for _, x := range idx {
			qc := col(x.c.Name)
			p := fmt.Sprintf("(%s IS NOT NULL AND %s IS NULL", qc, col(x.bi.Column))
			if t.keyStore {
				p += " AND NOT " + shreddedSQL(qc, t.physical[x.c])
			}
			ps = append(ps, p+")")
		}
		return orJoin(ps)
	}
}

// shreddedNoIndex: a value under a shredded key without its blind index,
// which migrate leaves alone.
func shreddedNoIndex(t *target, idx []ixTarget) string {
	if !t.keyStore {
		return "false"
	}
	var ps []string
	for _, x := range idx {
		qc := col(x.c.Name)
		ps = append(ps, fmt.Sprintf("(%s IS NOT NULL AND %s IS NULL AND %s)", qc, col(x.bi.Column), shreddedSQL(qc, t.physical[x.c])))
	}
	return orJoin(ps)
}

// tenantOf is the row's tenant, as the proxy computes it from a text field.
func (t *target) tenantOf(r *row) (string, bool, error) {
	if t.tenant == nil {
		return "", false, nil
	}
	if r.tenantRaw == nil {
		return "", false, &rowProblem{kind: fmt.Sprintf("%[1]s is NULL: no tenant to encrypt for; set it on a direct connection (UPDATE %[2]s SET %[3]s = … WHERE …): its values are still plaintext, and pgveil refuses to change a row's tenant alone",
			t.tenant.Name, t.name, col(t.tenant.Name))}
	}
	tenant, err := operatorTenant(t.tenant, string(r.tenantRaw)) // key_context::text: a char(n) domain's padding goes
	if err != nil {
		return "", false, &rowProblem{kind: fmt.Sprintf("%s: %v", t.tenant.Name, err)}
	}
	return tenant, true, nil
}

// legacyPlaintext is the canonical plaintext of a value stored before
// adoption, read as the proxy reads it in migration mode
// (proxy/decrypt.go legacyPlaintext): a bytea column's raw bytes for the
// logical type bytea, else the type's text input.
func legacyPlaintext(c *policy.Column, raw []byte) ([]byte, error) {
	if c.Type == policy.TypeBytea {
		return raw, nil
	}
	pt, err := canon.Plaintext(c.Type, canon.TextFormat, 0, raw, nil)
	if err != nil {
		return nil, &rowProblem{kind: fmt.Sprintf("%s: not valid %s input", c.Name, c.Type)}
	}
	return pt, nil
}

func (m *migrator) work(ctx context.Context, p *pass, r *row) error {
	var problem error // the first value left as it is
	tenant, has, terr := "", false, error(nil)
	tenantDone := false
	getTenant := func() error {
		if !tenantDone {
			tenant, has, terr = m.t.tenantOf(r)
			tenantDone = true
		}
		return terr
	}
	ix := 0 // p.idx[ix:] are the blind indexes of c and the columns after it
	for i, c := range p.cols {
		first := ix // p.idx[first:ix] are c's
		for ix < len(p.idx) && p.idx[ix].c == c {
			ix++
		}
		mine := p.idx[first:ix]
		v := r.vals[i]
		switch {
		case v == nil:
		case !sealedGo(v, m.t.physical[c]):
			if err := getTenant(); err != nil {
				return err // no tenant: nothing in this row can be sealed
			}
			pt, err := legacyPlaintext(c, v)
			if err != nil {
				problem = cmp.Or(problem, err)
				break
			}
			dk, err := m.keys.EncryptionKey(ctx, c, tenant, has)
			if err != nil {
				return err
			}
			env := dk.Seal(nil, pt)
			if m.t.physical[c] == policy.OIDText {
				env = envelope.Encode(nil, env)
			}
			r.setVal[i], r.newVal[i], r.changed = true, env, true
			for j, x := range mine {
				sum, err := blindIndex(ctx, m.keys, x, pt)
				if err != nil {
					return rowOrFatal(err, &problem)
				}
				r.setIdx[first+j], r.newIdx[first+j] = true, sum
			}
		case slices.ContainsFunc(r.hasIdx[first:ix], func(has bool) bool { return !has }):
			// Sealed before a blind-index column existed (adoption of an
			// index, or the next index of a rotation): open it to index it.
			if err := getTenant(); err != nil {
				return err
			}
			pt, err := m.keys.OpenFor(ctx, c, tenant, has, v, nil)
			if errors.Is(err, keysource.ErrShredded) {
				break // shredded since this run began: it has no blind index on purpose
			}
			if err != nil {
				if err := rowOrFatal(openProblem(c, err), &problem); err != nil {
					return err
				}
				break
			}
			id, err := keyIDGo(v, m.t.physical[c])
			if err != nil {
				return err // it opened: cannot happen
			}
			r.opened = append(r.opened, id)
			for j, x := range mine {
				if r.hasIdx[first+j] {
					continue
				}
				sum, err := blindIndex(ctx, m.keys, x, pt)
				if err != nil {
					if err := rowOrFatal(err, &problem); err != nil {
						return err
					}
					break
				}
				r.setIdx[first+j], r.newIdx[first+j], r.changed = true, sum, true
			}
		}
	}
	return problem
}

// rowOrFatal records a *rowProblem in *problem (the first one wins) and
// returns nil for it; any other error is returned to end the pass.
func rowOrFatal(err error, problem *error) error {
	var rp *rowProblem
	if errors.As(err, &rp) {
		*problem = cmp.Or(*problem, err)
		return nil
	}
	return err
}

// blindIndex is the proxy's blind index x of a canonical plaintext.
func blindIndex(ctx context.Context, keys *keysource.Keyring, x ixTarget, pt []byte) ([]byte, error) {
	ik, err := keys.BlindIndexKey(ctx, x.c, x.bi)
	if err != nil {
		return nil, err
	}
	in, err := canon.IndexInput(x.c.Type, pt, x.bi.Normalize, nil)
	if err != nil {
		return nil, &rowProblem{kind: fmt.Sprintf("%s: %v", x.c.Name, err)}
	}
	return ik.Sum(nil, in), nil
}

// openProblem turns a value that does not open into a row problem; a
// master key source that is down is an error that ends the run instead.
func openProblem(c *policy.Column, err error) error {
	if keysource.IsRetryable(err) {
		return err
	}
	reason := "tampered"
	switch {
	case errors.Is(err, keysource.ErrShredded):
		reason = "key shredded"
	case errors.Is(err, keysource.ErrUnknownKey):
		reason = "unknown key"
	case errors.Is(err, keysource.ErrWrongScope):
		reason = "key of another column or tenant"
	}
	return &rowProblem{kind: fmt.Sprintf("%s: sealed value does not open (%s)", c.Name, reason)}
}

// setTableState is proxy.SetTableState: it returns the generation of the
// row it wrote, which settleState waits for the replicas to apply.
func setTableState(ctx context.Context, e *Env, name, state string) (int64, error) {
	keys, err := e.Keyring(ctx)
	if err != nil {
		return 0, err
	}
	return proxy.SetTableState(ctx, e.Pool, keys, name, state)
}

// stateSettleTimeout bounds settleState: a replica whose listener went
// silent finds out within keysource.HeartbeatIdle + HeartbeatTimeout and
// reconnects.
const stateSettleTimeout = 30 * time.Second

// settleState waits until every running replica has read the state just
// set (proxy.WaitStateApplied): before --decrypt writes plaintext back, a
// replica still at complete would refuse each value (PV003) and miss it in
// lookups; after complete, one still at migrating would send lookups'
// plaintext. A replica that does not confirm in time is reported and the
// command goes on (it reads the state when its listener reconnects).
func settleState(ctx context.Context, e *Env, name, state string, gen int64) error {
	total, pending, hidden, err := proxy.WaitStateApplied(ctx, e.Pool, gen, stateSettleTimeout, func(n int) {
		fmt.Fprintf(e.Out, "%s: waiting for %d pgveil replica(s) to read state %s\n", name, n, state)
	})
	if err != nil {
		return fmt.Errorf("waiting for the pgveil replicas to read state %s of %s: %w", state, name, err)
	}
	if hidden > 0 {
		e.Log.Warn("sessions hidden from this role; replicas among them were not waited for", zap.String("table", name), zap.String("state", state), zap.Int("hidden", hidden))
		fmt.Fprintf(e.Out, "%s: %d session(s) in this database are hidden from this role in pg_stat_activity: pgveil replicas among them were not waited for to read state %s "+
			"(run this command with the replicas' service_url role, or grant pg_read_all_stats to this one)\n", name, hidden, state)
	}
	if pending > 0 {
		if blind, err := proxy.UntrackedListeners(ctx, e.Pool); err == nil && blind > 0 {
			// review 20a: they cannot confirm; not waited for.
			e.Log.Warn("replicas cannot confirm the table state: track_activities is off for their sessions", zap.String("table", name), zap.String("state", state), zap.Int("replicas", blind))
			fmt.Fprintf(e.Out, "%s: %d pgveil replica(s) run with track_activities off and cannot confirm state %s (pg_stat_activity shows their listener disabled): "+
				"not waited for; upgrade them (a replica since review 20a confirms in its application_name) or set track_activities on for their role\n", name, blind, state)
			pending -= blind
			if pending == 0 {
				return nil
			}
		}
		e.Log.Warn("replicas did not confirm the table state", zap.String("table", name), zap.String("state", state),
			zap.Int("pending", pending), zap.Int("replicas", total))
		fmt.Fprintf(e.Out, "%s: %d of %d pgveil replica(s) did not confirm state %s within %s; going on (a replica whose listener is down reads it when it reconnects; "+
			"a role that cannot see other roles' sessions needs pg_read_all_stats)\n", name, pending, total, state, stateSettleTimeout)
	}
	return nil
}
