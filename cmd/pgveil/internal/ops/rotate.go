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
	"github.com/pgveil/pgveil/keysource/envelope"
	"github.com/pgveil/pgveil/policy"
)

// RotateOptions are `pgveil rotate`'s flags.
type RotateOptions struct {
	Table, Column string // "" = every table / every column of Table
	Tenant        string // "" = every tenant; else one key_context value (as SQL text input)
	Master        bool   // rewrap data keys under the current master key; rows untouched
	// Finish skips making new versions: it re-encrypts what is still under
	// retired versions and drops them (after an interrupted rotation).
	Finish bool
	// KeepRetired re-encrypts but leaves the retired versions in place.
	KeepRetired bool
	// Grace is how long after the new versions became active the retired
	// ones are dropped: at least keysource.DefaultActiveTTL, so that every
	// replica whose notification was lost has re-read its active key.
	Grace   time.Duration
	Batch   int
	Workers int
	Stop    *Interrupt
}

// DefaultGrace is the default RotateOptions.Grace: the active-key TTL and
// a margin for clocks and in-flight statements.
const DefaultGrace = keysource.DefaultActiveTTL + 10*time.Second

// Rotate carries out `pgveil rotate`: see the steps in keysource/rotate.go.
func Rotate(ctx context.Context, e *Env, o RotateOptions) error {
	keys, err := e.Keyring(ctx)
	if err != nil {
		return err
	}
	if o.Master {
		return rewrap(ctx, e, keys)
	}
	if o.Column != "" && o.Table == "" {
		return fmt.Errorf("%w: --column needs --table", ErrConfig)
	}
	tables, err := e.tables(o.Table)
	if err != nil {
		return err
	}
	targets, err := loadTargets(ctx, e, tables, false)
	if err != nil {
		return err
	}
	colsOf := map[*target][]*policy.Column{}
	for _, tg := range targets {
		cols := tg.pol.Columns
		if o.Column != "" {
			c := tg.pol.Column(o.Column)
			if c == nil {
				return fmt.Errorf("%w: %s has no encrypted column %q in the policy", ErrConfig, tg.pol.QualifiedName(), o.Column)
			}
			cols = []*policy.Column{c}
		}
		colsOf[tg] = cols
	}
	// Before anything changes: the configured master key must open every
	// version this run retires or re-encrypts from (`pgveil check` tests
	// one key per master key id; a rotation needs them all).
	for _, tg := range targets {
		if err := checkRotatable(ctx, keys, tg, colsOf[tg], o); err != nil {
			return err
		}
	}
	var problems []string
	for _, tg := range targets {
		if err := rotateTable(ctx, e, keys, tg, colsOf[tg], o); err != nil {
			var pe *ProblemError
			if errors.As(err, &pe) {
				problems = append(problems, pe.Msg)
				continue
			}
			return err
		}
	}
	if len(problems) > 0 {
		return &ProblemError{Msg: strings.Join(problems, "\n")}
	}
	return nil
}

// rewrap moves every data key under the current master key (`--master`).
func rewrap(ctx context.Context, e *Env, keys *keysource.Keyring) error {
	n, err := keys.RewrapAll(ctx)
	if err != nil {
		return err
	}
	var left int
	if err := e.Pool.QueryRow(ctx, `SELECT count(*) FROM pgveil.keys WHERE state <> 'shredded' AND master_key_id <> $1`, keys.Master().ID()).Scan(&left); err != nil {
		return err
	}
	e.Log.Info("rewrapped data keys", zap.Int("count", n), zap.String("master", keys.Master().ID()), zap.Int("other_master", left))
	fmt.Fprintf(e.Out, "rewrapped %d data key(s) under master key %s; rows were not touched\n", n, keys.Master().ID())
	if left > 0 && strings.HasPrefix(keys.Master().ID(), "local:") {
		return &ProblemError{Msg: fmt.Sprintf("%d data key(s) are still wrapped under another master key", left)}
	}
	if strings.HasPrefix(keys.Master().ID(), "local:") {
		fmt.Fprintf(e.Out, "every data key is under the current master key: remove the old key from keysource.local.previous_key_files on every replica, reload them (SIGHUP), then destroy the old key file\n")
	} else {
		fmt.Fprintf(e.Out, "once every key is rewrapped, raise the Transit key's min_decryption_version so older key versions can no longer unwrap (docs/KEYS.md)\n")
	}
	return nil
}

// rotateTenant is --tenant in canonical form (ok false: every tenant).
func rotateTenant(tg *target, o RotateOptions) (string, bool, error) {
	if o.Tenant == "" {
		return "", false, nil
	}
	if tg.tenant == nil {
		return "", false, fmt.Errorf("%w: %s has no key_context; --tenant does not apply", ErrConfig, tg.pol.QualifiedName())
	}
	t, err := operatorTenant(tg.tenant, o.Tenant)
	if err != nil {
		return "", false, fmt.Errorf("%w: --tenant %q: %v", ErrConfig, o.Tenant, err)
	}
	return t, true, nil
}

// checkRotatable unwraps every active and retired version of cols' keys
// (of one tenant with --tenant) that rotateTable would retire or open. A
// master key that opens none of them (another key file on this host) would
// otherwise wrap new versions only it can open, make them active for every
// replica and retire the working ones.
func checkRotatable(ctx context.Context, keys *keysource.Keyring, tg *target, cols []*policy.Column, o RotateOptions) error {
	tenant, hasFilter, err := rotateTenant(tg, o)
	if err != nil {
		return err
	}
	var ids []uint32
	for _, c := range cols {
		infos, err := keys.Keys(ctx, c)
		if err != nil {
			return err
		}
		for _, k := range infos {
			if k.State != keysource.StateShredded && (!hasFilter || k.Tenant == tenant) {
				ids = append(ids, k.ID)
			}
		}
	}
	if err := keys.CheckUnwrap(ctx, ids...); err != nil {
		if keysource.IsRetryable(err) {
			return err
		}
		return &ProblemError{Msg: fmt.Sprintf("%s: %v.\nNothing was changed. Configure the master key the data keys were made with "+
			"(`pgveil check` names it; after a change of master key, `pgveil rotate --master` first rewraps them under the new one)", tg.pol.QualifiedName(), err)}
	}
	return nil
}

// rotateTable rotates cols of one table: new versions, re-encryption,
// grace period, last pass, drop.
func rotateTable(ctx context.Context, e *Env, keys *keysource.Keyring, tg *target, cols []*policy.Column, o RotateOptions) error {
	name := tg.pol.QualifiedName()
	tenantFilter, hasFilter, err := rotateTenant(tg, o)
	if err != nil {
		return err
	}
	rotatedAt := time.Now()
	if o.Finish {
		// A store left with several active versions (a crash between
		// steps, an edit by hand): only the newest stays active.
		for _, c := range cols {
			tenants, err := liveTenants(ctx, keys, c)
			if err != nil {
				return err
			}
			for _, tenant := range tenants {
				if hasFilter && tenant != tenantFilter {
					continue
				}
				if n, err := keys.RetireOlder(ctx, c, tenant, tg.tenant != nil); err != nil {
					return err
				} else if n > 0 {
					e.Log.Info("retired older active versions", zap.String("column", c.QualifiedName()), zap.Int("count", n))
				}
			}
		}
	} else {
		for _, c := range cols {
			tenants, err := liveTenants(ctx, keys, c)
			if err != nil {
				return err
			}
			if hasFilter {
				tenants = []string{tenantFilter}
			}
			for _, tenant := range tenants {
				dk, err := keys.Rotate(ctx, c, tenant, tg.tenant != nil)
				if err != nil {
					return err
				}
				e.Log.Info("rotated data key", zap.String("column", c.QualifiedName()), zap.Uint32("key_id", dk.ID()), zap.Int("version", dk.Version()))
			}
			fmt.Fprintf(e.Out, "%s: new data-key version for %d key(s)\n", c.QualifiedName(), len(tenants))
		}
	}
	r := &rotator{keys: keys, t: tg, old: map[*policy.Column]map[uint32]bool{}}
	var retired []uint32
	var last time.Time
	for _, c := range cols {
		infos, err := keys.Keys(ctx, c)
		if err != nil {
			return err
		}
		for _, k := range infos {
			if k.State != keysource.StateRetired || (hasFilter && k.Tenant != tenantFilter) {
				continue
			}
			if r.old[c] == nil {
				r.old[c] = map[uint32]bool{}
			}
			r.old[c][k.ID] = true
			retired = append(retired, k.ID)
		}
	}
	if o.Finish {
		if err := e.Pool.QueryRow(ctx, `SELECT coalesce(max(retired_at), now()) FROM pgveil.keys WHERE key_id = ANY($1)`, idsInt64(retired)).Scan(&last); err != nil {
			return err
		}
		rotatedAt = last
	}
	if len(retired) == 0 {
		fmt.Fprintf(e.Out, "%s: no value can be under a retired key version; nothing to re-encrypt\n", name)
		return nil
	}
	p := r.pass(cols, o)
	if _, err := runPasses(ctx, e, p, "re-encrypt "+name, MigrateOptions{Stop: o.Stop}); err != nil {
		return err
	}
	if o.KeepRetired {
		fmt.Fprintf(e.Out, "%s: retired versions kept (--keep-retired): %s\n", name, joinIDs(retired))
		return nil
	}
	if err := waitGrace(ctx, e, rotatedAt, o); err != nil {
		return err
	}
	// The last pass: values a replica sealed under an old version before it
	// re-read its active key, and rows the first passes skipped.
	st, err := p.passes(ctx, e, o.Stop.Stopped)
	if err != nil {
		return err
	}
	left, err := r.remaining(ctx, e, cols)
	if err != nil {
		return err
	}
	shredded, err := shreddedKeys(ctx, e, retired)
	if err != nil {
		return err
	}
	var drop, keep, gone []uint32
	for _, id := range retired {
		switch {
		case shredded[id]:
			gone = append(gone, id)
		case left[id] > 0:
			keep = append(keep, id)
		default:
			drop = append(drop, id)
		}
	}
	if len(gone) > 0 {
		e.Log.Info("retired data keys shredded during the rotation", zap.String("table", name), zap.Uint32s("key_ids", gone))
		fmt.Fprintf(e.Out, "%s: key version(s) %s were shredded (`pgveil shred`) while this ran: their values were left as they are (they read as NULL)\n", name, joinIDs(gone))
	}
	dropped, err := keys.DropRetired(ctx, drop...)
	if err != nil {
		return err
	}
	e.Log.Info("dropped retired data keys", zap.String("table", name), zap.Uint32s("key_ids", dropped))
	fmt.Fprintf(e.Out, "%s: dropped %d retired key version(s): %s\n", name, len(dropped), joinIDs(dropped))
	if len(keep) == 0 && len(st.Problems) > 0 {
		return &ProblemError{Msg: fmt.Sprintf("%s: some rows were left as they are:\n  - %s", name, strings.Join(st.problemLines(), "\n  - "))}
	}
	if len(keep) > 0 {
		return &ProblemError{Msg: fmt.Sprintf("%s: retired key version(s) %s still encrypt some values and were kept:\n  - %s\nfix or remove those rows, then run `pgveil rotate --finish`",
			name, joinIDs(keep), strings.Join(st.problemLines(), "\n  - "))}
	}
	return nil
}

// liveTenants are the tenants (or "" without key_context) whose newest
// key of c is not shredded: a shredded tenant gets no new key.
func liveTenants(ctx context.Context, keys *keysource.Keyring, c *policy.Column) ([]string, error) {
	infos, err := keys.Keys(ctx, c)
	if err != nil {
		return nil, err
	}
	newest := map[string]keysource.KeyInfo{}
	for _, k := range infos {
		if n, ok := newest[k.Tenant]; !ok || k.Version > n.Version {
			newest[k.Tenant] = k
		}
	}
	var out []string
	for t, k := range newest {
		if k.State != keysource.StateShredded {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out, nil
}

// waitGrace waits until Grace has passed since the rotation, then for every
// transaction that began before the grace period ended to end: such a
// transaction may have sealed values under an old version that no pass can
// see yet. Not only those that began before the rotation: a replica that
// has not heard of it (its notification lost, or not yet arrived) seals
// under the old version until its cached active key expires, also in a
// transaction that began after the rotation, and such a transaction may
// commit after the last pass (review 17a).
func waitGrace(ctx context.Context, e *Env, rotatedAt time.Time, o RotateOptions) error {
	grace := o.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	if wait := time.Until(rotatedAt.Add(grace)); wait > 0 {
		fmt.Fprintf(e.Out, "waiting %s so that every pgveil replica writes with the new versions (active-key TTL %s; --grace)\n", wait.Round(100*time.Millisecond), keysource.DefaultActiveTTL)
		select {
		case <-time.After(wait):
		case <-o.Stop.C():
			return ErrInterrupted
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The server's clock, as xact_start's; and the transaction ids that
	// may be in progress then: pg_stat_activity hides other roles'
	// xact_start from a role without pg_read_all_stats, and shows no
	// prepared transaction at all (review 18b), while the statement's
	// snapshot knows every transaction that has written, of any role,
	// prepared ones included: those it lists in progress, and those from
	// its xmax up to the id this statement takes (assigned meanwhile).
	var graceEnd time.Time
	var xids []string
	var hidden int
	if err := e.Pool.QueryRow(ctx, `WITH s AS MATERIALIZED (SELECT pg_current_snapshot() AS snap, pg_current_xact_id() AS me)
		SELECT statement_timestamp(),
		ARRAY(SELECT x::text FROM s, pg_snapshot_xip(s.snap) x
			UNION SELECT g::text FROM s, generate_series(pg_snapshot_xmax(s.snap)::text::bigint, s.me::text::bigint - 1) g),
		(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type IS NULL)`).Scan(&graceEnd, &xids, &hidden); err != nil {
		return err
	}
	if hidden > 0 {
		fmt.Fprintf(e.Out, "%d session(s) of other roles are hidden from this role in pg_stat_activity: their transactions are waited for once they have written (grant pg_read_all_stats to see them all)\n", hidden)
	}
	deadline := time.Now().Add(5 * time.Minute)
	told := false
	for {
		var n, pending int
		if err := e.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
			AND xact_start < $1),
			(SELECT count(*) FROM unnest($2::xid8[]) x WHERE pg_xact_status(x) = 'in progress'
				-- The snapshot is the cluster's: not another database's
				-- (its session's datname shows whatever the role).
				AND NOT EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
					WHERE l.locktype = 'transactionid' AND l.transactionid::text::bigint = x::text::bigint % 4294967296
					AND a.datname IS DISTINCT FROM current_database())
				AND NOT EXISTS (SELECT FROM pg_prepared_xacts p
					WHERE p.transaction::text::bigint = x::text::bigint % 4294967296 AND p.database <> current_database()))`, graceEnd, xids).Scan(&n, &pending); err != nil {
			return err
		}
		n = max(n, pending)
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return &ProblemError{Msg: fmt.Sprintf("%d transaction(s) that began before the grace period ended are still open after 5 minutes (prepared ones included: pg_prepared_xacts); retired versions are kept. Run `pgveil rotate --finish` once they end", n)}
		}
		if !told {
			told = true
			fmt.Fprintf(e.Out, "waiting for %d transaction(s) that began before the grace period ended (they may hold values sealed under an old version)\n", n)
		}
		select {
		case <-time.After(time.Second):
		case <-o.Stop.C():
			return ErrInterrupted
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// rotator re-seals values under retired key versions with the active one.
type rotator struct {
	keys *keysource.Keyring
	t    *target
	old  map[*policy.Column]map[uint32]bool // retired key ids, per column
}

func (r *rotator) pass(cols []*policy.Column, o RotateOptions) *pass {
	var with []*policy.Column
	for _, c := range cols {
		if len(r.old[c]) > 0 {
			with = append(with, c)
		}
	}
	p := &pass{t: r.t, cols: with, batch: o.Batch, workers: o.Workers, keys: r.keys}
	p.pred = func(a *args) string {
		var ps []string
		for _, c := range with {
			ids := make([]uint32, 0, len(r.old[c]))
			for id := range r.old[c] {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			qc, phys := col(c.Name), r.t.physical[c]
			ps = append(ps, fmt.Sprintf("(%s IS NOT NULL AND %s AND %s = ANY(%s::bytea[]))", qc, sealedSQL(qc, phys), keyIDSQL(qc, phys), a.add(keyIDBytes(ids))))
		}
		return orJoin(ps)
	}
	p.work = func(ctx context.Context, row *row) error { return r.work(ctx, p, row) }
	return p
}

func (r *rotator) work(ctx context.Context, p *pass, row *row) error {
	var problem error
	for i, c := range p.cols {
		v := row.vals[i]
		if v == nil || !sealedGo(v, r.t.physical[c]) {
			continue
		}
		env := v
		if r.t.physical[c] == policy.OIDText {
			b, err := envelope.Decode(nil, v)
			if err != nil {
				problem = cmp.Or(problem, openProblem(c, keysource.ErrTampered))
				continue
			}
			env = b
		}
		id, err := envelope.KeyID(env)
		if err != nil || !r.old[c][id] {
			continue
		}
		tenant, has, err := r.t.tenantOf(row)
		if err != nil {
			return err
		}
		pt, err := r.keys.OpenFor(ctx, c, tenant, has, env, nil)
		if errors.Is(err, keysource.ErrShredded) {
			continue // shredded since this run began: it stays, and reads as NULL
		}
		if err != nil {
			if err := rowOrFatal(openProblem(c, err), &problem); err != nil {
				return err
			}
			continue
		}
		dk, err := r.keys.EncryptionKey(ctx, c, tenant, has)
		if err != nil {
			return err
		}
		if r.old[c][dk.ID()] {
			return fmt.Errorf("%s: the active key %d is one being retired; is another rotation running?", c.QualifiedName(), dk.ID())
		}
		out := dk.Seal(nil, pt)
		clear(pt)
		if r.t.physical[c] == policy.OIDText {
			out = envelope.Encode(nil, out)
		}
		row.setVal[i], row.newVal[i], row.changed = true, out, true
		row.opened = append(row.opened, id)
	}
	return problem
}

// shreddedKeys are those of ids that are tombstones now.
func shreddedKeys(ctx context.Context, e *Env, ids []uint32) (map[uint32]bool, error) {
	rows, err := e.Pool.Query(ctx, `SELECT key_id FROM pgveil.keys WHERE key_id = ANY($1) AND state = 'shredded'`, idsInt64(ids))
	if err != nil {
		return nil, err
	}
	gone, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	out := map[uint32]bool{}
	for _, id := range gone {
		out[uint32(id)] = true
	}
	return out, err
}

// remaining counts values still under each retired id.
func (r *rotator) remaining(ctx context.Context, e *Env, cols []*policy.Column) (map[uint32]int64, error) {
	out := map[uint32]int64{}
	for _, c := range cols {
		if len(r.old[c]) == 0 {
			continue
		}
		qc, phys := col(c.Name), r.t.physical[c]
		rows, err := e.Pool.Query(ctx, fmt.Sprintf(`SELECT %s, count(*) FROM %s WHERE %s IS NOT NULL AND %s GROUP BY 1`,
			keyIDSQL(qc, phys), r.t.name, qc, sealedSQL(qc, phys)))
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id []byte
			var n int64
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return nil, err
			}
			if len(id) == 4 {
				out[uint32(id[0])<<24|uint32(id[1])<<16|uint32(id[2])<<8|uint32(id[3])] += n
			}
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func idsInt64(ids []uint32) []int64 {
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}

func joinIDs(ids []uint32) string {
	if len(ids) == 0 {
		return "none"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ", ")
}
