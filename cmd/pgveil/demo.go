package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/integration/harness"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", stderr, `Start a throwaway PostgreSQL cluster in a temp dir (initdb; as the postgres
user when run as root), with pgveil in front of it, and keep both running until
Ctrl-C. Nothing outside the temp dir is touched; it is removed on exit.`)
	listen := fs.String("listen", "127.0.0.1:6432", "where pgveil listens (a free port is picked if this one is taken)")
	logLevel := fs.String("log-level", "warn", "pgveil's log level while the demo runs")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fmt.Fprintln(stdout, "Starting a throwaway PostgreSQL cluster...")
	cluster, err := harness.StartCluster(harness.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "pgveil demo: %v\n", err)
		return exitProblem
	}
	defer cluster.Stop()

	addr := *listen
	if l, err := net.Listen("tcp", addr); err != nil {
		addr = "127.0.0.1:0"
	} else {
		l.Close()
	}
	cfgText := fmt.Sprintf("listen: %s\nupstream:\n  address: %s\n  tls: prefer\nadmin:\n  listen: 127.0.0.1:0\n", addr, cluster.Addr())
	cfg, err := policy.LoadBytes("demo.yaml", []byte(cfgText), nil)
	if err != nil {
		fmt.Fprintf(stderr, "pgveil demo: %v\n", err)
		return exitProblem
	}
	level := zap.NewAtomicLevel()
	cfg.Log.Level = *logLevel
	log, err := newLogger(cfg.Log, level, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pgveil demo: %v\n", err)
		return exitUsage
	}
	srv, err := proxy.New(cfg, proxy.Options{Log: log})
	if err != nil {
		fmt.Fprintf(stderr, "pgveil demo: %v\n", err)
		return exitProblem
	}
	bound, err := srv.Listen()
	if err != nil {
		fmt.Fprintf(stderr, "pgveil demo: %v\n", err)
		return exitProblem
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()

	user, pass := harness.SCRAMUser, harness.SCRAMPass
	via := harness.BuildURL(bound.String(), user, pass, harness.Database, "sslmode=disable")
	direct := harness.BuildURL(cluster.Addr(), user, pass, harness.Database, "sslmode=disable")
	fmt.Fprintf(stdout, `
pgveil is running in front of a throwaway PostgreSQL %d.

  through pgveil:  %s
  direct:          %s

Try:
  psql '%s' -c 'select version()'

Press Ctrl-C to stop; the cluster and its data directory are removed.
`, cluster.Version, via, direct, via)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	select {
	case <-sigs:
	case err := <-served:
		fmt.Fprintf(stderr, "pgveil demo: proxy stopped: %v\n", err)
	}
	fmt.Fprintln(stdout, "\nStopping...")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	return exitOK
}
