package proxy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// engine is everything the encryption path needs, shared by the sessions
// that started under one config: the planner, the keyring and the catalog
// snapshot. A Server without encrypted tables has no engine, and its
// sessions relay without planning anything.
type engine struct {
	cfg     *policy.Config
	planner *rewrite.Planner
	keys    *keysource.Keyring
	pool    *pgxpool.Pool
	svc     *svcPool // holds pool: see retire and session.dropEngine
	log     *zap.Logger

	cat atomic.Pointer[catalog]
	// ddlAt is when DDL through pgveil last committed (unix nanos), in any
	// session: every session's next plan waits for the reload it started
	// (refreshCatalogIfNeeded), so another connection the client opens
	// right after the DDL plans with the new schema.
	ddlAt atomic.Int64
	// states are the tables' migration states (pgveil.tables), kept up
	// to date with those of the engines before and after a reload.
	states    atomic.Pointer[map[string]string]
	followers *stateFollowers
	// stop ends the background watchers (key-store notifications).
	stop context.CancelFunc
	done chan struct{}
	// refresh coalesces catalog reloads requested after DDL.
	refreshMu sync.Mutex
	refreshAt time.Time
	refreshOK bool         // the last reload succeeded
	failedAt  time.Time    // when the last failed reload ended
	staleAt   atomic.Int64 // unix ns of the last refreshStale reload
	// loadedAt is when the engine's first snapshot was read (unix ns): a
	// reload (SIGHUP) before it asks nothing of its sessions.
	loadedAt int64
	// database is the service connection's current_database(): the one
	// database whose policy, catalog, key store and table states this
	// engine holds. A session of another database is refused at startup.
	database string
}

// newEngine connects the service pool, loads and checks the catalog, and
// opens the key store. A reload passes what it shares with the previous
// engine, whose sessions keep running on it: keys, the keyring of the same
// key store, and followers, the engines that follow pgveil.tables in the
// same database (nil: new ones). Any problem is fatal at start: pgveil
// never serves a policy it cannot enforce.
func newEngine(ctx context.Context, cfg *policy.Config, svc *svcPool, master keysource.Master, keys *keysource.Keyring,
	followers *stateFollowers, log *zap.Logger) (*engine, error) {
	pool := svc.pool
	loaded := time.Now() // the snapshot answers requests made before
	cat, err := loadCatalog(ctx, pool, cfg)
	if err != nil {
		return nil, err
	}
	var database string
	if err := pool.QueryRow(ctx, `SELECT pg_catalog.current_database()`).Scan(&database); err != nil {
		return nil, fmt.Errorf("reading the service connection's database: %w", err)
	}
	if keys == nil {
		if keys, err = keysource.NewKeyring(ctx, pool, master, log.Named("keys")); err != nil {
			return nil, fmt.Errorf("opening the key store: %w", err)
		}
	}
	if followers == nil {
		followers = &stateFollowers{}
	}
	e := &engine{cfg: cfg, planner: rewrite.NewPlanner(cfg, cfg.Proxy.PlanCacheSize), keys: keys, pool: pool, svc: svc, log: log, followers: followers,
		refreshAt: loaded, refreshOK: true, loadedAt: loaded.UnixNano(), database: database}
	e.setCatalog(cat)
	followers.add(e)
	// Before the first session, not when the watcher starts.
	if err := followers.reload(ctx, pool, keys, log); err != nil {
		return nil, fmt.Errorf("reading pgveil.tables: %w", err)
	}
	wctx, stop := context.WithCancel(context.Background())
	e.stop, e.done = stop, make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.watch(wctx, "key-store", e.keys.Watch) }()
	go func() { defer wg.Done(); e.watch(wctx, "table-state", e.watchStates) }()
	go func() { wg.Wait(); close(e.done) }()
	return e, nil
}

// stateFollowers are the engines that follow pgveil.tables in one
// database: the current one, and those a reload replaced that sessions
// still use (a session keeps the engine it started with, whose watchers
// stop at the reload). A reload of the states applies to all of them. The
// references are weak: an engine no session uses any more is collected
// and drops out.
type stateFollowers struct {
	// loadMu orders the reloads: the states applied last are the ones
	// read last, whichever engine's watcher read them.
	loadMu sync.Mutex
	// seen is the newest generation of each table's state read so far
	// (under loadMu): an older one read later is an old row written back.
	seen map[string]int64
	// rejected is what was last logged of each rejected row (under
	// loadMu), so that each reload does not log it again.
	rejected map[string]string
	mu       sync.Mutex
	engines  []weak.Pointer[engine]
}

// add makes e follow the states (and forgets the collected engines).
func (f *stateFollowers) add(e *engine) {
	f.mu.Lock()
	defer f.mu.Unlock()
	live := f.engines[:0]
	for _, w := range f.engines {
		if w.Value() != nil {
			live = append(live, w)
		}
	}
	f.engines = append(live, weak.Make(e))
}

// reload reads pgveil.tables, checks it (signatures, and generations
// against those read before) and applies it to every engine that follows.
// A rejected row counts as complete.
func (f *stateFollowers) reload(ctx context.Context, pool *pgxpool.Pool, keys *keysource.Keyring, log *zap.Logger) error {
	return f.reloadFrom(ctx, log, func(ctx context.Context) (*StateRows, error) { return LoadTableStates(ctx, pool, keys) })
}

// reloadFrom is reload with the rows read by load.
func (f *stateFollowers) reloadFrom(ctx context.Context, log *zap.Logger, load func(context.Context) (*StateRows, error)) error {
	f.loadMu.Lock()
	defer f.loadMu.Unlock()
	rows, err := load(ctx)
	if err != nil {
		return err
	}
	if f.seen == nil {
		f.seen, f.rejected = map[string]int64{}, map[string]string{}
	}
	for t, v := range rows.Verified {
		if last := f.seen[t]; v.Generation < last {
			delete(rows.Verified, t)
			rows.Rejected[t] = fmt.Sprintf("state %q has generation %d, older than generation %d read before: an old row was written back", v.State, v.Generation, last)
			continue
		}
		f.seen[t] = v.Generation
	}
	for t, why := range rows.Rejected {
		if f.rejected[t] != why {
			log.Error("pgveil.tables: a table's state is not trusted; it counts as complete",
				zap.String("table", t), zap.String("reason", why), zap.String("remedy", StateRemedy))
		}
	}
	f.rejected = rows.Rejected
	states := rows.States()
	f.mu.Lock()
	engines := make([]*engine, 0, len(f.engines))
	for _, w := range f.engines {
		if e := w.Value(); e != nil {
			engines = append(engines, e)
		}
	}
	f.mu.Unlock()
	for _, e := range engines {
		e.setStates(states)
		e.planner.SetMigrating(migratingSet(e.cfg, states))
	}
	return nil
}

// applied is the newest generation of the verified rows applied so far.
func (f *stateFollowers) applied() int64 {
	f.loadMu.Lock()
	defer f.loadMu.Unlock()
	var newest int64
	for _, g := range f.seen {
		newest = max(newest, g)
	}
	return newest
}

func (e *engine) setStates(m map[string]string) { e.states.Store(&m) }

// migrating reports whether t is being migrated (or decrypted): values
// without an envelope are then legacy plaintext, not an attack.
func (e *engine) migrating(t *policy.Table) bool {
	switch (*e.states.Load())[t.QualifiedName()] {
	case TableMigrating, TableDecrypting:
		return true
	}
	return false
}

// watchStates follows pgveil.tables: it reloads the states whenever
// `pgveil migrate` announces a change on TableStateChannel, and as the
// heartbeat of its connection. Each reload that applied the states ends
// with statesReadQuery on the connection, which is named stateListenerApp:
// `pgveil migrate` sees in pg_stat_activity that this replica applied a
// state it committed (WaitStateApplied).
func (e *engine) watchStates(ctx context.Context) (err error) {
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && !conn.Conn().IsClosed() {
			// Named and listening: not for the pool's other users.
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Conn().Close(cctx)
			cancel()
		}
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "SET application_name = '"+stateListenerApp+"'"); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+TableStateChannel); err != nil {
		return err
	}
	reload := func(ctx context.Context) error {
		if err := e.followers.reloadFrom(ctx, e.log, func(ctx context.Context) (*StateRows, error) {
			return loadTableStates(ctx, conn.Conn(), e.keys)
		}); err != nil {
			return err
		}
		// Applied: say so (WaitStateApplied), in the connection's name
		// too (seen whatever track_activities is: review 20a). Simple
		// protocol: the texts change with each generation, and are not
		// for pgx's cache.
		gen := e.followers.applied()
		if _, err := conn.Exec(ctx, statesAppQuery(gen), pgx.QueryExecModeSimpleProtocol); err != nil {
			return err
		}
		_, err := conn.Exec(ctx, statesReadQuery(gen), pgx.QueryExecModeSimpleProtocol)
		return err
	}
	// Changes before LISTEN took effect were not announced: reload now.
	if err := reload(ctx); err != nil {
		return err
	}
	for {
		if _, err := keysource.WaitForNotificationPing(ctx, conn.Conn(), reload); err != nil {
			return err
		}
		if err := reload(ctx); err != nil {
			return err
		}
	}
}

// migratingSet is the set of configured tables in migration mode.
func migratingSet(cfg *policy.Config, states map[string]string) map[*policy.Table]bool {
	out := map[*policy.Table]bool{}
	for _, t := range cfg.Tables {
		if s := states[t.QualifiedName()]; s == TableMigrating || s == TableDecrypting {
			out[t] = true
		}
	}
	return out
}

// watch runs a LISTEN loop until ctx ends, re-establishing a broken
// connection with backoff. The key-store loop applies other processes' key
// changes (a shred by the CLI or another replica, a rotation) as they are
// announced, so a shredded tenant reads as NULL on every replica within one
// notification round trip; while it is down, the keyring's active-key TTL
// (1 minute) bounds how stale the cache is.
func (e *engine) watch(ctx context.Context, what string, listen func(context.Context) error) {
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		err := listen(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		e.log.Warn("notifications interrupted; reconnecting", zap.String("channel", what), zap.Error(err), zap.Duration("retry_in", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 30*time.Second {
			backoff *= 2
		}
	}
}

// close stops the engine's background work.
func (e *engine) close() {
	e.stop()
	<-e.done
}

// retire ends the engine's time as the current one (a reload, or the
// shutdown; next is the engine that replaces it, or nil) and gives back its
// hold on the service pool, which its sessions keep until they end. Its
// background work stops now when next is on the same pool: next's watchers
// serve the sessions left on this engine too (they share the keyring, when
// the key source is the same, and the followers of pgveil.tables). On
// another pool (upstream.service_url changed), this engine's watchers run
// on for its sessions until the last of them ends and the pool closes.
func (e *engine) retire(next *engine) {
	if next == nil || next.svc == e.svc {
		e.close()
	} else {
		e.svc.beforeClose(e.close)
	}
	e.svc.drop()
}

func (e *engine) setCatalog(c *catalog) {
	e.cat.Store(c)
	e.planner.SetCatalog(c.rw)
	if c.partial {
		time.AfterFunc(partialRetry, e.retryPartial)
	}
}

// partialRetry is how soon a snapshot that lacks a view's definition (its
// relations were locked) is read again.
const partialRetry = 5 * time.Second

// retryPartial reads the catalog again after a partial snapshot, unless
// the engine was closed meanwhile.
func (e *engine) retryPartial() {
	select {
	case <-e.done:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), catalogRefreshTimeout)
	defer cancel()
	e.refreshCatalog(ctx, time.Now())
}

// staleRefreshEvery limits the catalog reloads asked for by statements
// naming a relation the snapshot lacks (session.plan).
const staleRefreshEvery = 5 * time.Second

// refreshStale reloads the catalog for session.plan, unless one was asked
// for that way less than staleRefreshEvery ago. It reports whether a new
// snapshot is in use.
func (e *engine) refreshStale(ctx context.Context) bool {
	now := time.Now()
	if last := e.staleAt.Load(); last != 0 && now.Sub(time.Unix(0, last)) < staleRefreshEvery {
		return false
	}
	e.staleAt.Store(now.UnixNano())
	return e.refreshCatalog(ctx, now)
}

// staleDue reports whether refreshStale would read the catalog now rather
// than answer at once that it read it too recently.
func (e *engine) staleDue() bool {
	last := e.staleAt.Load()
	return last == 0 || time.Since(time.Unix(0, last)) >= staleRefreshEvery
}

// catalog is the current snapshot.
func (e *engine) catalog() *catalog { return e.cat.Load() }

// catalogRefreshTimeout bounds a catalog reload after DDL. Its queries take
// no relation locks, but a server under a lock queue can still stall them;
// a reload that times out keeps the previous snapshot.
const catalogRefreshTimeout = 10 * time.Second

// refreshCatalog reloads the snapshot after DDL passed through the proxy,
// and reports whether the snapshot now in use was read after requested.
// Concurrent requests share one reload; a failed reload (the DDL broke the
// policy: a dropped column; a timeout) keeps the old snapshot, is logged
// loudly, and is not tried again within a second.
func (e *engine) refreshCatalog(ctx context.Context, requested time.Time) bool {
	e.refreshMu.Lock()
	defer e.refreshMu.Unlock()
	if !e.refreshAt.Before(requested) {
		return e.refreshOK // a reload that started after the request already ran
	}
	if !e.refreshOK && !e.failedAt.IsZero() && time.Since(e.failedAt) < time.Second {
		return false
	}
	e.refreshAt = time.Now()
	c, err := loadCatalog(ctx, e.pool, e.cfg)
	if err != nil {
		e.refreshOK, e.failedAt = false, time.Now()
		e.log.Error("catalog refresh after DDL failed; keeping the previous snapshot", zap.Error(err))
		return false
	}
	e.refreshOK = true
	e.setCatalog(c)
	e.log.Info("catalog refreshed after DDL")
	return true
}
