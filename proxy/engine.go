package proxy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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
	log     *zap.Logger

	cat atomic.Pointer[catalog]
	// stop ends the background watchers (key-store notifications).
	stop context.CancelFunc
	done chan struct{}
	// refresh coalesces catalog reloads requested after DDL.
	refreshMu sync.Mutex
	refreshAt time.Time
}

// newEngine connects the service pool, loads and checks the catalog, and
// opens the key store. Any problem is fatal at start: pgveil never serves a
// policy it cannot enforce.
func newEngine(ctx context.Context, cfg *policy.Config, pool *pgxpool.Pool, master keysource.Master, log *zap.Logger) (*engine, error) {
	cat, err := loadCatalog(ctx, pool, cfg)
	if err != nil {
		return nil, err
	}
	keys, err := keysource.NewKeyring(ctx, pool, master, log.Named("keys"))
	if err != nil {
		return nil, fmt.Errorf("opening the key store: %w", err)
	}
	e := &engine{cfg: cfg, planner: rewrite.NewPlanner(cfg, cfg.Proxy.PlanCacheSize), keys: keys, pool: pool, log: log}
	e.setCatalog(cat)
	wctx, stop := context.WithCancel(context.Background())
	e.stop, e.done = stop, make(chan struct{})
	go e.watchKeys(wctx)
	return e, nil
}

// watchKeys applies other processes' key changes (a shred by the CLI or
// another replica, a rotation) to this process's cache as they are
// announced on the database's pgveil_keys channel, so a shredded tenant
// reads as NULL on every replica within one notification round trip. A
// broken listening connection is re-established with backoff; meanwhile
// the keyring's active-key TTL (1 minute) bounds how stale the cache is.
func (e *engine) watchKeys(ctx context.Context) {
	defer close(e.done)
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		err := e.keys.Watch(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		e.log.Warn("key-store notifications interrupted; reconnecting", zap.Error(err), zap.Duration("retry_in", backoff))
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

func (e *engine) setCatalog(c *catalog) {
	e.cat.Store(c)
	e.planner.SetCatalog(c.rw)
}

// catalog is the current snapshot.
func (e *engine) catalog() *catalog { return e.cat.Load() }

// refreshCatalog reloads the snapshot after DDL passed through the proxy.
// Concurrent requests share one reload; a failed reload (the DDL broke the
// policy: a dropped column) keeps the old snapshot and is logged loudly.
func (e *engine) refreshCatalog(ctx context.Context, requested time.Time) {
	e.refreshMu.Lock()
	defer e.refreshMu.Unlock()
	if !e.refreshAt.Before(requested) {
		return // a reload that started after the request already ran
	}
	e.refreshAt = time.Now()
	c, err := loadCatalog(ctx, e.pool, e.cfg)
	if err != nil {
		e.log.Error("catalog refresh after DDL failed; keeping the previous snapshot", zap.Error(err))
		return
	}
	e.setCatalog(c)
	e.log.Info("catalog refreshed after DDL")
}
