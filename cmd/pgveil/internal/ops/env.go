package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// Env is what every command works with: the loaded config, pgveil's own
// connection pool (upstream.service_url), a logger, and where to print.
type Env struct {
	Cfg *policy.Config
	Log *zap.Logger
	// Out gets results meant for a person or a script (stdout); Err gets
	// progress bars and prompts (stderr).
	Out, Err io.Writer
	Pool     *pgxpool.Pool
	// Terminal: Err is a terminal, so progress is a bar; otherwise a log
	// line every ProgressEvery (default 10s).
	Terminal      bool
	ProgressEvery time.Duration

	master    keysource.Master
	keys      *keysource.Keyring
	stopWatch context.CancelFunc
	watchDone chan struct{}
}

// ErrConfig marks an error in the config or the command line (exit 2).
var ErrConfig = errors.New("config")

// NewEnv connects to upstream.service_url. app names the command in
// pg_stat_activity ("pgveil migrate"); conns bounds the pool.
func NewEnv(ctx context.Context, cfg *policy.Config, app string, conns int, log *zap.Logger, out, errw io.Writer) (*Env, error) {
	return newEnv(ctx, cfg, app, conns, log, out, errw, nil)
}

// newEnv is NewEnv with extra run-time parameters for the connections.
func newEnv(ctx context.Context, cfg *policy.Config, app string, conns int, log *zap.Logger, out, errw io.Writer, params map[string]string) (*Env, error) {
	if cfg.Upstream.ServiceURL == "" {
		return nil, fmt.Errorf("%w: upstream.service_url is not set; pgveil needs its own connection for %s", ErrConfig, app)
	}
	pc, err := pgxpool.ParseConfig(cfg.Upstream.ServiceURL)
	if err != nil {
		return nil, fmt.Errorf("%w: upstream.service_url: %v", ErrConfig, err)
	}
	pc.ConnConfig.RuntimeParams["application_name"] = app
	// Tenants read from rows are named from their text: as the proxy's
	// sessions print them by default, whatever the server's defaults
	// (review 19c).
	pc.ConnConfig.RuntimeParams["DateStyle"] = "ISO"
	pc.ConnConfig.RuntimeParams["extra_float_digits"] = "1" // float tenants in their shortest exact digits
	for k, v := range params {
		pc.ConnConfig.RuntimeParams[k] = v
	}
	if conns < 2 {
		conns = 2
	}
	pc.MaxConns = int32(conns)
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = cfg.Upstream.ConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connecting to upstream.service_url: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to upstream.service_url (%s): %w", endpoint(pc), err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Env{Cfg: cfg, Log: log, Out: out, Err: errw, Pool: pool}, nil
}

func endpoint(pc *pgxpool.Config) string {
	return net.JoinHostPort(pc.ConnConfig.Host, strconv.Itoa(int(pc.ConnConfig.Port))) + "/" + pc.ConnConfig.Database
}

// Master loads the master key source the config names (once).
func (e *Env) Master(ctx context.Context) (keysource.Master, error) {
	if e.master != nil {
		return e.master, nil
	}
	m, err := keysource.NewMaster(ctx, e.Cfg.KeySource, keysource.WithLogger(e.Log.Named("master")))
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	e.master = m
	return m, nil
}

// TableStates reads pgveil.tables and checks its signatures. It creates
// nothing: without pgveil.keys, no row can verify.
func (e *Env) TableStates(ctx context.Context) (*proxy.StateRows, error) {
	var haveKeys bool
	if err := e.Pool.QueryRow(ctx, `SELECT to_regclass('pgveil.keys') IS NOT NULL`).Scan(&haveKeys); err != nil {
		return nil, err
	}
	var keys *keysource.Keyring
	if haveKeys {
		k, err := e.Keyring(ctx)
		if err != nil {
			return nil, &proxy.StateKeyError{Err: err}
		}
		keys = k
	}
	return proxy.LoadTableStates(ctx, e.Pool, keys)
}

// Keyring opens the key store, creating pgveil.keys if it is missing. Only
// commands that change something call it: check and the plans never create
// anything. The Keyring follows pgveil_keys until Close, as the proxy's
// does: migrate and rotate open values and write them back for minutes or
// hours, and must drop a key as soon as `pgveil shred` destroys it. (That
// alone leaves a window; each batch re-checks its keys too: lockOpened.)
func (e *Env) Keyring(ctx context.Context) (*keysource.Keyring, error) {
	if e.keys != nil {
		return e.keys, nil
	}
	m, err := e.Master(ctx)
	if err != nil {
		return nil, err
	}
	k, err := keysource.NewKeyring(ctx, e.Pool, m, e.Log.Named("keys"))
	if err != nil {
		return nil, err
	}
	e.keys = k
	wctx, stop := context.WithCancel(context.Background())
	e.stopWatch, e.watchDone = stop, make(chan struct{})
	go e.watchKeys(wctx, k)
	return k, nil
}

// watchKeys runs k.Watch until ctx ends, reconnecting after a failure.
// While it is down, k re-reads a cached key's row after the active TTL.
func (e *Env) watchKeys(ctx context.Context, k *keysource.Keyring) {
	defer close(e.watchDone)
	backoff := 100 * time.Millisecond
	for {
		err := k.Watch(ctx)
		if ctx.Err() != nil {
			return
		}
		e.Log.Warn("key-store notifications interrupted; reconnecting", zap.Error(err), zap.Duration("retry_in", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// Close stops following pgveil_keys and releases the pool and the master
// key source.
func (e *Env) Close() {
	if e.stopWatch != nil {
		e.stopWatch()
		<-e.watchDone
	}
	if c, ok := e.master.(io.Closer); ok {
		c.Close()
	}
	e.Pool.Close()
}

// describeDB is "app on 127.0.0.1:5432 as pgveil (PostgreSQL 16.4)".
func (e *Env) describeDB(ctx context.Context) string {
	var db, role, ver string
	if err := e.Pool.QueryRow(ctx, `SELECT current_database(), current_user, current_setting('server_version')`).Scan(&db, &role, &ver); err != nil {
		return ""
	}
	cc := e.Pool.Config().ConnConfig
	return fmt.Sprintf("%s on %s as %s (PostgreSQL %s)", db, net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), role, ver)
}

// tables selects configured tables by name ("" = all); a name without a
// schema means public.
func (e *Env) tables(name string) ([]*policy.Table, error) {
	if name == "" {
		return e.Cfg.Tables, nil
	}
	schema, table := "public", name
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			schema, table = name[:i], name[i+1:]
			break
		}
	}
	t := e.Cfg.Table(schema, table)
	if t == nil {
		return nil, fmt.Errorf("%w: table %s.%s is not in the policy of %s", ErrConfig, schema, table, e.Cfg.Path)
	}
	return []*policy.Table{t}, nil
}
