package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/keysource"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy/scram"
	"github.com/pgveil/pgveil/rewrite"
)

// Server accepts client connections and runs one session per connection.
//
// Concurrency: Serve runs the accept loop; each accepted connection gets a
// session goroutine (client → server) which starts a second goroutine
// (server → client). Shutdown stops the accept loop, asks idle sessions to
// end, waits for the rest until its context expires, then closes them.
type Server struct {
	log     *zap.Logger
	metrics *Metrics

	cfg       atomic.Pointer[policy.Config]
	clientTLS atomic.Pointer[tls.Config] // nil: answer SSLRequest with 'N'
	// mockSecret salts the mock SCRAM verifier of a role that does not
	// exist, so that its salt is the same at every attempt (as a real
	// role's is), for the life of the process.
	mockSecret []byte
	clientCB   atomic.Pointer[[]byte] // tls-server-end-point data of our certificate
	upTLS      atomic.Pointer[upstreamTLS]

	mu       sync.Mutex
	ln       net.Listener
	sessions map[*session]struct{}
	wg       sync.WaitGroup
	draining atomic.Bool
	nextID   atomic.Uint64
	limits   connLimits // limits.go

	eng atomic.Pointer[engine] // nil when no table is configured
	// reloadAt is when the last SIGHUP reload began (unix nanos). A
	// session keeps the engine it started with, so each engine reads its
	// catalog again at its sessions' next statement after it
	// (refreshCatalogIfNeeded): relations created directly in the database
	// reach the sessions already open too, as docs/LIMITS.md promises.
	reloadAt atomic.Int64

	// loops relay eligible sessions (loopFor); started by Listen with
	// proxy.event_loops, stopped by Shutdown once no session runs.
	loops []*eventLoop

	svcMu  sync.Mutex
	svc    *svcPool // the service connection (upstream.service_url)
	svcURL string
	// svcAuth bounds the auth_queries running at once (auth.mode scram)
	// to half the service pool's connections: a burst of logins leaves
	// the rest to the key store and catalog reads of running sessions.
	svcAuth chan struct{}
}

// Options configure a Server beyond its config file.
type Options struct {
	Log      *zap.Logger
	Registry prometheus.Registerer // nil: a private registry
}

// New builds a Server for cfg. It loads certificates now so that a bad
// certificate fails at start, not at the first client.
func New(cfg *policy.Config, opts Options) (*Server, error) {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	s := &Server{log: opts.Log, sessions: map[*session]struct{}{}, mockSecret: make([]byte, 32)}
	if _, err := rand.Read(s.mockSecret); err != nil {
		return nil, err
	}
	s.metrics = NewMetrics(opts.Registry, func() rewrite.CacheStats {
		if e := s.eng.Load(); e != nil {
			return e.planner.Stats()
		}
		return rewrite.CacheStats{}
	})
	opts.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pgveil_sessions_previous_config",
		Help: "Sessions still running on a config older than the current one (they keep the config they started with; see docs/KEYS.md on blind-index rotation).",
	}, func() float64 { return float64(s.previousConfigSessions()) }))
	for _, l := range []struct {
		name string
		get  func(p *policy.ProxyOptions) int
	}{
		{"max_client_connections", func(p *policy.ProxyOptions) int { return p.MaxClientConnections }},
		{"max_pending_startups", func(p *policy.ProxyOptions) int { return p.MaxPendingStartups }},
	} {
		opts.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "pgveil_connection_limit",
			Help:        "The connection limits in force (proxy.max_client_connections, proxy.max_pending_startups): compare pgveil_connections_open and pgveil_startups_pending with them.",
			ConstLabels: prometheus.Labels{"limit": l.name},
		}, func() float64 { return float64(l.get(&s.cfg.Load().Proxy)) }))
	}
	if err := s.apply(cfg); err != nil {
		return nil, err
	}
	if err := s.startEngine(cfg, nil); err != nil {
		s.closeService()
		return nil, err
	}
	return s, nil
}

// startEngine builds the encryption engine for cfg (none when cfg has no
// tables) and installs it for new sessions. old, when reloading, lends its
// master key source if the keysource settings did not change.
func (s *Server) startEngine(cfg *policy.Config, old *engine) error {
	if !cfg.HasEncryption() {
		if prev := s.eng.Swap(nil); prev != nil {
			prev.retire(nil)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*cfg.Upstream.ConnectTimeout)
	defer cancel()
	svc, err := s.servicePool() // the engine's hold, given back when it is retired
	if err != nil {
		return err
	}
	pool := svc.pool
	var master keysource.Master
	var keys *keysource.Keyring
	var followers *stateFollowers
	if old != nil && old.pool == pool {
		followers = old.followers // the same database's pgveil.tables
	}
	switch {
	case old != nil && sameKeySource(old.cfg.KeySource, cfg.KeySource) && old.pool == pool:
		// The same key store under the same master: the sessions that
		// keep the old engine share its keyring with the new one, whose
		// watcher then applies a rotation or a shred to them too (the old
		// engine's stops with it).
		keys = old.keys
	case old != nil && sameKeySource(old.cfg.KeySource, cfg.KeySource):
		master = old.keys.Master()
	default:
		if master, err = keysource.NewMaster(ctx, cfg.KeySource); err != nil {
			svc.drop()
			return fmt.Errorf("master key: %w", err)
		}
	}
	e, err := newEngine(ctx, cfg, svc, master, keys, followers, s.log)
	if err != nil {
		svc.drop()
		return err
	}
	if prev := s.eng.Swap(e); prev != nil {
		prev.retire(e)
	}
	return nil
}

func sameKeySource(a, b policy.KeySource) bool {
	return a.Kind == b.Kind && a.Local.KeyFile == b.Local.KeyFile && a.Local.KeyEnv == b.Local.KeyEnv &&
		strings.Join(a.Local.PreviousKeyFiles, "\x00") == strings.Join(b.Local.PreviousKeyFiles, "\x00") && a.Vault == b.Vault
}

// Metrics exposes the server's metric handles.
func (s *Server) Metrics() *Metrics { return s.metrics }

// TableStates returns a copy of the migration states (pgveil.tables,
// verified) that the current engine applies, by qualified table name; a
// configured table without one counts as complete. nil without tables.
func (s *Server) TableStates() map[string]string {
	e := s.eng.Load()
	if e == nil {
		return nil
	}
	m := *e.states.Load()
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// apply installs cfg for sessions that start from now on.
func (s *Server) apply(cfg *policy.Config) error {
	var ctls *tls.Config
	var cb []byte
	if cfg.TLS != nil {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("tls: loading %s and %s: %w", cfg.TLS.CertFile, cfg.TLS.KeyFile, err)
		}
		ctls = &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
			// ALPN "postgresql" is required for direct TLS (PostgreSQL 17
			// sslnegotiation=direct) and harmless for SSLRequest clients.
			NextProtos: []string{"postgresql"},
		}
		if cfg.TLS.MinVersion == "1.3" {
			ctls.MinVersion = tls.VersionTLS13
		}
		if cert.Leaf != nil {
			if cb, err = scram.TLSServerEndPoint(cert.Leaf); err != nil {
				return fmt.Errorf("tls: certificate %s: %w", cfg.TLS.CertFile, err)
			}
		}
	}
	up, err := newUpstreamTLS(cfg.Upstream)
	if err != nil {
		return err
	}
	s.cfg.Store(cfg)
	s.clientTLS.Store(ctls)
	s.clientCB.Store(&cb)
	s.upTLS.Store(up)
	return nil
}

// Reload swaps in a new config. Sessions already running keep the config
// they started with; new sessions use the new one. The listen address
// cannot change without a restart.
func (s *Server) Reload(cfg *policy.Config) error {
	old := s.cfg.Load()
	if cfg.Listen != old.Listen {
		s.metrics.ReloadsTotal.WithLabelValues("error").Inc()
		return fmt.Errorf("listen changed from %s to %s: restart pgveil to move the listener", old.Listen, cfg.Listen)
	}
	s.reloadAt.Store(time.Now().UnixNano())
	prevCfg := s.cfg.Load()
	if err := s.apply(cfg); err != nil {
		s.metrics.ReloadsTotal.WithLabelValues("error").Inc()
		return err
	}
	if err := s.startEngine(cfg, s.eng.Load()); err != nil {
		s.apply(prevCfg) // keep serving with what worked
		s.metrics.ReloadsTotal.WithLabelValues("error").Inc()
		return err
	}
	s.metrics.ReloadsTotal.WithLabelValues("ok").Inc()
	return nil
}

// Config is the config new sessions use.
func (s *Server) Config() *policy.Config { return s.cfg.Load() }

// Listen binds the client listener. The bound address is returned so that
// "127.0.0.1:0" in tests yields a free port.
func (s *Server) Listen() (net.Addr, error) {
	cfg := s.cfg.Load()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	loops, err := startEventLoops(s, cfg.Proxy.EventLoops)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s.mu.Lock()
	s.ln = ln
	s.loops = loops
	s.mu.Unlock()
	return ln.Addr(), nil
}

// loopFor picks the event loop that relays s, or nil: sessions relay on a
// loop when both legs are plain TCP (crypto/tls needs a net.Conn). A
// session with encryption goes back to goroutines at its first message
// that needs more than passing through (loopengine.go).
func (s *Server) loopFor(sess *session) *eventLoop {
	if len(s.loops) == 0 || sess.clientTLS || sess.serverTLS {
		return nil
	}
	if l := s.loops[sess.id%uint64(len(s.loops))]; l.alive() {
		return l
	}
	return nil
}

// Serve accepts connections until Shutdown. It returns nil after Shutdown.
func (s *Server) Serve() error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return errors.New("proxy: Serve before Listen")
	}
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.draining.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Temporary failures such as EMFILE: back off and keep serving.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			s.log.Warn("accept failed", zap.Error(err), zap.Duration("retry_in", backoff))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
			tc.SetKeepAlive(true)
		}
		if s.draining.Load() {
			conn.Close()
			continue
		}
		// Limits are read per connection: a reload changes them for the
		// connections accepted after it.
		p := &s.cfg.Load().Proxy
		var sess *session
		if reason := s.admit(p); reason != 0 {
			if sess = s.refuse(conn, reason, p); sess == nil {
				continue
			}
		} else {
			sess = s.newSession(conn)
			sess.holdsClient, sess.holdsPending = true, true
		}
		s.mu.Lock()
		if s.draining.Load() {
			s.mu.Unlock()
			conn.Close()
			sess.stop()
			sess.dropEngine()
			sess.releaseBuffers() // no goroutine ever saw them
			if sess.refused != 0 {
				s.limits.refusing.Add(-1)
			}
			sess.endClient()
			continue
		}
		s.sessions[sess] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			if sess.refused != 0 {
				sess.runRefused()
			} else {
				sess.run()
			}
			s.mu.Lock()
			delete(s.sessions, sess)
			s.mu.Unlock()
		}()
	}
}

// beginDrain stops accepting and wakes every session, so that the idle
// ones end (57P01) and those still starting stop waiting for the client.
// A session that sets or clears a client deadline after its wake checks
// draining itself (session.clientDeadline).
func (s *Server) beginDrain() {
	s.draining.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	for sess := range s.sessions {
		sess.wake()
	}
	s.mu.Unlock()
}

// Shutdown stops accepting, ends idle sessions at once (FATAL 57P01, as
// Postgres does on a fast shutdown), lets busy sessions finish their
// transaction, and when ctx expires closes whatever is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginDrain()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		stopEventLoops(s.loops)
		s.closeService()
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	n := len(s.sessions)
	for sess := range s.sessions {
		sess.forceClose()
	}
	s.mu.Unlock()
	<-done
	stopEventLoops(s.loops)
	s.closeService()
	return fmt.Errorf("shutdown timeout: closed %d busy sessions", n)
}

// svcPool is a service pool and the count of its holders: the server
// while it is the pool of upstream.service_url, each engine made on it
// until a reload retires the engine, each session of such an engine until
// the session ends (a session keeps its engine, whose key and catalog
// reads go through this pool), and an auth_query while it runs. The last
// to let go closes it: a reload that changes upstream.service_url, or
// fails after making the new pool, never closes a pool under the engine
// and the sessions still using it.
type svcPool struct {
	pool    *pgxpool.Pool
	holders atomic.Int64

	closeMu sync.Mutex
	closing []func() // run before the pool closes (engine.retire)
}

// beforeClose has f run when the last holder lets go, before the pool
// closes. The caller holds the pool.
func (p *svcPool) beforeClose(f func()) {
	p.closeMu.Lock()
	p.closing = append(p.closing, f)
	p.closeMu.Unlock()
}

// hold adds a holder, unless the pool is closed (false).
func (p *svcPool) hold() bool {
	for {
		n := p.holders.Load()
		if n <= 0 {
			return false
		}
		if p.holders.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// drop gives back a hold; the last one closes the pool.
func (p *svcPool) drop() {
	if p.holders.Add(-1) == 0 {
		p.closeMu.Lock()
		closing := p.closing
		p.closing = nil
		p.closeMu.Unlock()
		for _, f := range closing {
			f()
		}
		p.pool.Close()
	}
}

// servicePool returns pgveil's own connection pool to the database, made on
// first use from upstream.service_url (and remade when a reload changed it),
// with a hold for the caller to drop.
func (s *Server) servicePool() (*svcPool, error) {
	url := s.cfg.Load().Upstream.ServiceURL
	if url == "" {
		return nil, errors.New("upstream.service_url is not set")
	}
	s.svcMu.Lock()
	if s.svc != nil && s.svcURL == url {
		defer s.svcMu.Unlock()
		s.svc.hold() // cannot fail: the server holds it
		return s.svc, nil
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		s.svcMu.Unlock()
		return nil, fmt.Errorf("upstream.service_url: %w", err)
	}
	pc.ConnConfig.RuntimeParams["application_name"] = "pgveil"
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		s.svcMu.Unlock()
		return nil, err
	}
	p := &svcPool{pool: pool}
	p.holders.Store(2) // the server's and the caller's
	prev := s.svc
	s.svc, s.svcURL = p, url
	s.svcAuth = make(chan struct{}, max(1, pool.Config().MaxConns/2))
	s.svcMu.Unlock()
	if prev != nil {
		prev.drop() // closed now if no engine or session holds it
	}
	return p, nil
}

func (s *Server) closeService() {
	if e := s.eng.Swap(nil); e != nil {
		e.retire(nil)
	}
	s.svcMu.Lock()
	p := s.svc
	s.svc = nil
	s.svcMu.Unlock()
	if p != nil {
		p.drop()
	}
}

// previousConfigSessions counts the sessions that started before the last
// successful reload and so still plan with the config they started with.
func (s *Server) previousConfigSessions() int {
	cur, eng := s.cfg.Load(), s.eng.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for sess := range s.sessions {
		// A session accepted while a reload was building its engine has the
		// new config but the old engine (and so the old policy's planner).
		if sess.cfg != cur || sess.eng != eng {
			n++
		}
	}
	return n
}

// SessionCount is the number of sessions running (refused connections
// being answered included).
func (s *Server) SessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Ready reports whether the upstream server accepts TCP connections.
func (s *Server) Ready(ctx context.Context) error {
	if s.draining.Load() {
		return errors.New("draining")
	}
	cfg := s.cfg.Load()
	d := net.Dialer{Timeout: cfg.Upstream.ConnectTimeout}
	c, err := d.DialContext(ctx, "tcp", cfg.Upstream.Address)
	if err != nil {
		return err
	}
	return c.Close()
}
