package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgveil/pgveil/integration/harness"
)

// benchUser is the role every pgbench run connects as: trusted over TCP in
// the harness's pg_hba.conf, so that the connect+disconnect runs measure
// the hop and the backend start, not a password exchange.
const benchUser = harness.TrustUser

// target is something pgbench connects to.
type target struct {
	name string
	addr string // host:port
	pid  int    // the proxy's process (0 for direct)
	stop func()
}

// env is everything the benchmark started. cleanup stops it all.
type env struct {
	machine    string
	cluster    *harness.Cluster
	tmp        string // our own temp dir: pgveil binary, configs, profiles
	pgveil     string // path of the pgveil binary
	self       string // path of this binary (for the relay and pprof build)
	targets    map[string]*target
	pgbench    string
	postmaster int // PID, for PostgreSQL's CPU time
	versions   map[string]string

	mu       sync.Mutex
	cleanups []func()
	once     sync.Once
}

func newEnv() *env {
	return &env{machine: machineDescription(), targets: map[string]*target{}, versions: map[string]string{}}
}

// defer_ registers f to run at cleanup, last registered first.
func (e *env) defer_(f func()) {
	e.mu.Lock()
	e.cleanups = append(e.cleanups, f)
	e.mu.Unlock()
}

// cleanup runs every registered stop and removal once; a concurrent caller
// (the signal handler and main) waits until it has finished.
func (e *env) cleanup() {
	e.once.Do(func() {
		e.mu.Lock()
		fs := e.cleanups
		e.mu.Unlock()
		for i := len(fs) - 1; i >= 0; i-- {
			fs[i]()
		}
	})
}

func (e *env) setup(ctx context.Context, o *options) error {
	var err error
	if e.pgbench, err = exec.LookPath("pgbench"); err != nil {
		return fmt.Errorf("pgbench not found on PATH (Debian: apt-get install -y postgresql-client)")
	}
	if e.self, err = os.Executable(); err != nil {
		return err
	}
	if e.tmp, err = os.MkdirTemp("", "pgveil-bench-"); err != nil {
		return err
	}
	e.defer_(func() { os.RemoveAll(e.tmp) })
	// PgBouncer runs as the postgres user when we are root; let it in.
	if err := os.Chmod(e.tmp, 0o755); err != nil {
		return err
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		return err
	}
	// The relays and the pprof build run as this program's subcommands.
	// `go run` links without a symbol table, which leaves perf unable to
	// name their functions: run them from a copy built with one.
	helper := filepath.Join(e.tmp, "bench")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", helper, "./bench")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err == nil {
		e.self = helper
	} else {
		logf("go build ./bench failed, using %s: %v\n%s", e.self, err, out)
	}
	e.versions["pgbench"] = commandVersion(e.pgbench, "--version")

	if o.pgveilBin != "" {
		e.pgveil = o.pgveilBin
	} else {
		logf("building pgveil (go build ./cmd/pgveil)")
		e.pgveil = filepath.Join(e.tmp, "pgveil")
		if out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty", "--exclude", "*").Output(); err == nil {
			e.versions["git"] = strings.TrimSpace(string(out))
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-o", e.pgveil, "./cmd/pgveil")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/pgveil: %v\n%s", err, out)
		}
	}
	// harness.StartProxy builds its own binary unless PGVEIL_BIN names one;
	// point it at ours so that nothing is left behind in another temp dir.
	os.Setenv("PGVEIL_BIN", e.pgveil)
	e.versions["pgveil"] = strings.TrimSpace(commandVersion(e.pgveil, "version"))

	logf("starting PostgreSQL")
	e.cluster, err = harness.StartCluster(harness.Options{Settings: []string{
		// The pgbench tables at scale 10 (~160 MB) fit in shared buffers.
		"shared_buffers = 256MB",
		// The harness polls for vanished clients during queries; a
		// benchmark has none and should not pay for the timer.
		"client_connection_check_interval = 0",
	}})
	if err != nil {
		return err
	}
	e.defer_(e.cluster.Stop)
	if e.postmaster, err = postmasterPID(filepath.Join(e.cluster.Dir, "data")); err != nil {
		return err
	}
	e.versions["postgres"] = fmt.Sprintf("PostgreSQL %d (%s)", e.cluster.Version, e.cluster.BinDir)

	logf("pgbench -i -s %d", o.scale)
	if err := e.initPgbench(ctx, o.scale); err != nil {
		return err
	}

	for _, name := range e.allTargets(o) {
		t, err := e.startTarget(ctx, name)
		if err != nil {
			return fmt.Errorf("starting %s: %w", name, err)
		}
		e.targets[name] = t
		logf("%s listening on %s (pid %d)", name, t.addr, t.pid)
	}
	return nil
}

// allTargets are the targets needed by the rounds and the profile.
func (e *env) allTargets(o *options) []string {
	want := map[string]bool{}
	if !o.profileOnly {
		for _, t := range o.targets {
			want[t] = true
		}
	}
	if !o.profileOnly && !o.skipConnect && want["pgbouncer"] {
		want["pgbouncer-nopool"] = true
	}
	if o.profile || o.profileOnly {
		for _, t := range profileTargets {
			want[t] = true
		}
	}
	var out []string
	for _, t := range []string{"direct", "pgbouncer", "pgbouncer-nopool", "relay", "relay-gmp1", "epoll-relay", "epoll-relay-raw", "pgveil", "pgveil-goroutines", "pgveil-gmp1"} {
		if want[t] {
			out = append(out, t)
		}
	}
	return out
}

func (e *env) startTarget(ctx context.Context, name string) (*target, error) {
	// "<go target>-gmp1" is the same Go program with GOMAXPROCS=1: one
	// thread running Go code, as PgBouncer runs one event loop.
	var goEnv []string
	base := name
	if b, ok := strings.CutSuffix(name, "-gmp1"); ok && (b == "relay" || b == "pgveil") {
		base, goEnv = b, []string{"GOMAXPROCS=1"}
	}
	switch base {
	case "direct":
		return &target{name: name, addr: e.cluster.Addr(), stop: func() {}}, nil
	case "pgbouncer":
		return e.startPgBouncer(ctx, name, pgbouncerOptions{})
	case "pgbouncer-nopool":
		return e.startPgBouncer(ctx, name, pgbouncerOptions{serverLifetime0: true})
	case "relay":
		return e.startRelay(ctx, name, relayCommand, goEnv)
	case "epoll-relay":
		return e.startRelay(ctx, name, epollRelayCommand, nil)
	case "epoll-relay-raw":
		return e.startRelay(ctx, name, epollRelayCommand, []string{"EPOLL_RAW=1"})
	case "pgveil", "pgveil-goroutines":
		conf := pgveilConfig(e.cluster.Addr())
		if name == "pgveil-goroutines" {
			conf += "proxy:\n  event_loops: 0\n"
		}
		p, err := harness.StartProxy(harness.ProxyOptions{Config: conf, Env: goEnv})
		if err != nil {
			return nil, err
		}
		e.defer_(func() { p.Stop() })
		return &target{name: name, addr: p.Addr, pid: p.PID(), stop: func() { p.Stop() }}, nil
	}
	return nil, fmt.Errorf("unknown target %q", name)
}

// pgveilConfig is the relay configuration measured: no encryption policy,
// plain TCP on both legs (as PgBouncer and the relay), relay authentication,
// metrics on (they cost the relay loop a counter update per flush whether
// or not anyone scrapes them), admin listener off.
func pgveilConfig(upstream string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
upstream:
  address: %s
  tls: disable
auth:
  mode: relay
admin:
  listen: ""
log:
  level: info
  format: json
`, upstream)
}

// initPgbench loads pgbench's tables into the harness database as the
// superuser over the Unix socket, and lets the bench role read them.
func (e *env) initPgbench(ctx context.Context, scale int) error {
	cmd := exec.CommandContext(ctx, e.pgbench, "-i", "-q", "-s", strconv.Itoa(scale),
		"-h", e.cluster.Dir, "-p", strconv.Itoa(e.cluster.Port), "-U", harness.SuperUser, harness.Database)
	cmd.Env = pgEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	conn, err := e.cluster.Connect(ctx, harness.SuperUser, harness.Database)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, s := range []string{
		"GRANT SELECT ON ALL TABLES IN SCHEMA public TO " + benchUser,
		"VACUUM ANALYZE",
		"CHECKPOINT",
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// pgEnv is the environment of pgbench runs: no TLS and no GSS encryption
// attempt on any target, so every target speaks the same plain protocol.
func pgEnv() []string {
	env := []string{"PGSSLMODE=disable", "PGGSSENCMODE=disable", "PGAPPNAME=bench"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func commandVersion(bin string, arg string) string {
	out, err := exec.Command(bin, arg).CombinedOutput()
	if err != nil {
		return "?"
	}
	return strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
}

// stopProcess ends a process we started: sig, then SIGKILL after grace.
func stopProcess(cmd *exec.Cmd, exited <-chan struct{}, sig os.Signal, grace time.Duration) {
	if cmd.Process == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-exited
	}
}
