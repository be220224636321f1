package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pgveil/pgveil/cmd/pgveil/internal/logsink"
	"github.com/pgveil/pgveil/cmd/pgveil/internal/ops"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// serveFlags are the settings a flag or PGVEIL_* variable may override.
type serveFlags struct {
	config, listen, upstream, adminListen, logLevel, logFormat string
}

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", stderr, `Run the proxy. Applications connect to --listen as if it were Postgres.
SIGHUP reloads the config file (sessions keep running); SIGTERM or SIGINT stop
accepting, end idle sessions, and wait up to proxy.shutdown_timeout for busy ones.
Without -c, pgveil relays every column unchanged (no encryption policy).`)
	var f serveFlags
	fs.StringVar(&f.config, "c", "", "config file (see config.example.yaml)")
	fs.StringVar(&f.listen, "listen", "", "address clients connect to, overrides listen")
	fs.StringVar(&f.upstream, "upstream", "", "host:port of the real Postgres, overrides upstream.address")
	fs.StringVar(&f.adminListen, "admin-listen", "", "address of /metrics, /healthz, /readyz, overrides admin.listen (\"off\" disables)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug | info | warn | error, overrides log.level")
	fs.StringVar(&f.logFormat, "log-format", "", "json | console, overrides log.format")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := loadServeConfig(f)
	if err != nil {
		fmt.Fprintf(stderr, "pgveil: %v\n", err)
		return exitUsage
	}
	level := zap.NewAtomicLevel()
	sink := logsink.New(stderr, cfg.Log.Buffer)
	defer sink.Close(5 * time.Second)
	log, err := newLogger(cfg.Log, level, sink)
	if err != nil {
		fmt.Fprintf(stderr, "pgveil: %v\n", err)
		return exitUsage
	}
	sink.OnDrop(func(n uint64) {
		log.Warn("log lines dropped: stderr did not take them fast enough (log.buffer)", zap.Uint64("lines", n))
	})
	if err := serve(cfg, f, log, level, sink); err != nil {
		log.Error("pgveil stopped", zap.Error(err))
		return exitProblem
	}
	return exitOK
}

// loadServeConfig reads the config file (or starts from defaults) and
// applies flag overrides.
func loadServeConfig(f serveFlags) (*policy.Config, error) {
	var cfg *policy.Config
	var err error
	if f.config != "" {
		cfg, err = policy.Load(f.config)
	} else {
		cfg, err = policy.LoadBytes("(defaults)", nil, nil)
	}
	if err != nil {
		return nil, err
	}
	if f.listen != "" {
		cfg.Listen = f.listen
	}
	if f.upstream != "" {
		cfg.Upstream.Address = f.upstream
	}
	switch f.adminListen {
	case "":
	case "off":
		cfg.Admin.Listen = ""
	default:
		cfg.Admin.Listen = f.adminListen
	}
	if f.logLevel != "" {
		cfg.Log.Level = f.logLevel
	}
	if f.logFormat != "" {
		cfg.Log.Format = f.logFormat
	}
	if _, err := zapcore.ParseLevel(cfg.Log.Level); err != nil || cfg.Log.Level == "dpanic" {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", cfg.Log.Level)
	}
	if cfg.Log.Format != "json" && cfg.Log.Format != "console" {
		return nil, fmt.Errorf("log format %q: want json or console", cfg.Log.Format)
	}
	return cfg, nil
}

// newLogger builds the process logger. Values never reach it: sessions log
// identifiers, lengths, SQLSTATEs and key ids only.
func newLogger(c policy.Log, level zap.AtomicLevel, w io.Writer) (*zap.Logger, error) {
	l, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	level.SetLevel(l)
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if c.Format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core), nil
}

// serve runs the proxy until SIGTERM/SIGINT.
func serve(cfg *policy.Config, f serveFlags, log *zap.Logger, level zap.AtomicLevel, sink *logsink.Sink) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pgveil_log_lines_dropped_total",
			Help: "Log lines dropped because stderr did not take them as fast as they came (log.buffer was full).",
		}, func() float64 { return float64(sink.Dropped()) }))
	srv, err := proxy.New(cfg, proxy.Options{Log: log, Registry: reg})
	if err != nil {
		return err
	}
	warnFileLimit(log, cfg.Proxy, openFileLimit())
	warnPlaintext(srv, cfg, log)
	addr, err := srv.Listen()
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	ctx, stopAdmin := context.WithCancel(context.Background())
	defer stopAdmin()
	adminAddr := ""
	var adminDone <-chan error
	if cfg.Admin.Listen != "" {
		a, done, err := proxy.ServeAdmin(ctx, cfg.Admin.Listen, srv.AdminHandler(reg))
		if err != nil {
			return fmt.Errorf("admin listen on %s: %w", cfg.Admin.Listen, err)
		}
		adminAddr, adminDone = a.String(), done
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	log.Info("listening", zap.String("addr", addr.String()), zap.String("admin", adminAddr),
		zap.String("upstream", cfg.Upstream.Address), zap.String("version", fullVersion()),
		zap.Int("tables", len(cfg.Tables)))

	for {
		select {
		case err := <-served:
			return err
		case err := <-adminDone:
			return fmt.Errorf("admin server: %w", err)
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reload(srv, f, log, level, cfg)
				continue
			}
			timeout := srv.Config().Proxy.ShutdownTimeout
			log.Info("shutting down", zap.String("signal", sig.String()), zap.Int("sessions", srv.SessionCount()), zap.Duration("timeout", timeout))
			sctx, cancel := context.WithTimeout(context.Background(), timeout)
			err := srv.Shutdown(sctx)
			cancel()
			if serr := <-served; serr != nil && err == nil {
				err = serr
			}
			if err != nil {
				log.Warn("shutdown", zap.Error(err))
			}
			log.Info("stopped")
			return nil
		}
	}
}

// reload re-reads the config file on SIGHUP. A bad file is logged and the
// running config stays. atStart is the config the process started with:
// the settings restartOnly names keep its values until a restart.
func reload(srv *proxy.Server, f serveFlags, log *zap.Logger, level zap.AtomicLevel, atStart *policy.Config) {
	start := time.Now()
	cfg, err := loadServeConfig(f)
	if err != nil {
		srv.Metrics().ReloadsTotal.WithLabelValues("error").Inc()
	} else {
		err = srv.Reload(cfg)
	}
	if err != nil {
		var list policy.ErrorList
		if errors.As(err, &list) {
			log.Error("config reload failed; keeping the running config", zap.Strings("errors", errorStrings(list)))
		} else {
			log.Error("config reload failed; keeping the running config", zap.Error(err))
		}
		return
	}
	if l, err := zapcore.ParseLevel(cfg.Log.Level); err == nil {
		level.SetLevel(l)
	}
	warnFileLimit(log, cfg.Proxy, openFileLimit())
	warnPlaintext(srv, cfg, log)
	if keys := restartOnly(atStart, cfg); len(keys) > 0 {
		log.Warn("changed settings take effect at the next restart; the rest of the config was reloaded", zap.Strings("keys", keys))
	}
	log.Info("config reloaded", zap.Duration("took", time.Since(start)), zap.Int("sessions", srv.SessionCount()))
}

// plaintextWarning is logged for each encrypted column of a complete table
// that holds values without an envelope (`pgveil check`'s
// plaintext_in_complete).
const plaintextWarning = "a configured table holds plaintext while complete: pgveil refuses to return those values (PV003)"

// warnPlaintext logs plaintextWarning for each such column, reading the
// first rows of each complete table as `pgveil check` does: a serve
// started (or a policy reloaded) before `pgveil migrate --apply --prepare`
// ran with it would otherwise show only as every application session
// that reads such a value ending with PV003. It warns and serves on: a
// few values written around pgveil must not keep the proxy down.
func warnPlaintext(srv *proxy.Server, cfg *policy.Config, log *zap.Logger) {
	if !cfg.HasEncryption() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*cfg.Upstream.ConnectTimeout)
	defer cancel()
	found, err := ops.PlaintextInComplete(ctx, cfg, srv.TableStates())
	if err != nil {
		log.Warn("could not check the configured tables for plaintext (`pgveil check` does the same)", zap.Error(err))
	}
	path := cfg.Path
	if path == "" {
		path = "config.yaml"
	}
	for _, f := range found {
		log.Error(plaintextWarning, zap.String("table", f.Table), zap.String("column", f.Table+"."+f.Column),
			zap.String("detail", f.Message),
			zap.String("remedy", fmt.Sprintf("pgveil migrate -c %s --apply --prepare (the table becomes migrating: such values read as legacy plaintext), then pgveil migrate -c %s --apply; "+
				"not on_error: null, which would return them as NULL for the application to write back", path, path)))
	}
}

// restartOnly lists the settings that differ between the config the
// process started with and cfg and that a reload does not apply: the
// admin listener, the logger's sink and the event loops are made once.
// (A changed listen fails the reload: proxy.Server.Reload.)
func restartOnly(atStart, cfg *policy.Config) []string {
	var keys []string
	if cfg.Admin.Listen != atStart.Admin.Listen {
		keys = append(keys, "admin.listen")
	}
	if cfg.Log.Format != atStart.Log.Format {
		keys = append(keys, "log.format")
	}
	if cfg.Log.Buffer != atStart.Log.Buffer {
		keys = append(keys, "log.buffer")
	}
	if cfg.Proxy.EventLoops != atStart.Proxy.EventLoops {
		keys = append(keys, "proxy.event_loops")
	}
	return keys
}

func errorStrings(list policy.ErrorList) []string {
	out := make([]string, len(list))
	for i, e := range list {
		out[i] = e.Error()
	}
	return out
}

// filesNeeded is how many file descriptors the connection limits may take
// at once: per admitted client its socket and the upstream one; per
// connection being refused (at most max_pending_startups) its socket; and
// a margin for the listeners, the service pool, logs.
func filesNeeded(p policy.ProxyOptions) uint64 {
	return 2*uint64(p.MaxClientConnections) + uint64(p.MaxPendingStartups) + 64
}

// warnFileLimit warns when the open-file limit is below what the
// connection limits may take: pgveil would then fail to accept (EMFILE)
// or to dial upstream before it refuses anyone with 53300.
func warnFileLimit(log *zap.Logger, p policy.ProxyOptions, limit uint64) {
	if need := filesNeeded(p); limit != 0 && limit < need {
		log.Warn("the open-file limit is below what proxy.max_client_connections may need: raise it (ulimit -n, LimitNOFILE) or lower the limit",
			zap.Uint64("open_file_limit", limit), zap.Uint64("needed", need),
			zap.Int("max_client_connections", p.MaxClientConnections), zap.Int("max_pending_startups", p.MaxPendingStartups))
	}
}
