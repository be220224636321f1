// Command bench measures the cost of the extra hop pgveil puts between an
// application and PostgreSQL, against the same hop through PgBouncer (the
// reference proxy) and through a bare Go relay (accept, dial, copy bytes both
// ways: the floor any user-space proxy pays).
//
//	go run ./bench -rounds 3 -duration 15s
//
// It starts one throwaway PostgreSQL cluster (integration/harness), loads
// pgbench's tables (pgbench -i -s 10), starts the real pgveil binary, PgBouncer
// and the bare relay, and runs `pgbench -S` at 1 and 8 clients in the simple,
// extended and prepared query modes against every target, interleaved in
// rounds so that drift (page cache, CPU frequency, neighbours) hits every
// target alike. Then sequential connect+disconnect cost (pgbench -C). With
// -profile it also profiles pgveil under `pgbench -S -M prepared -c 8` (pprof
// of an in-process build, perf of the real binary, syscalls per transaction
// of every proxy). docs/BENCH.md describes the method and the results.
//
// Every process it starts is stopped by its PID and every temp dir removed,
// also on Ctrl-C. This command is not part of `go test ./...`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type options struct {
	rounds          int
	duration        time.Duration
	connectDuration time.Duration
	warmup          time.Duration
	clients         []int
	pinnedClients   []int
	modes           []string
	targets         []string
	scale           int
	markdown        string
	jsonOut         string
	profile         bool
	profileOnly     bool
	profileDuration time.Duration
	profileDir      string
	syscallTx       int
	pgveilBin       string
	skipConnect     bool
	hold            bool
	quiet           float64
	quietWait       time.Duration
	maxOther        float64
	retries         int
}

func main() {
	// Hidden subcommands: the bench binary re-executes itself to run the
	// bare relay and the profiling build of pgveil as processes of their own,
	// so that their CPU time can be read from /proc/<pid>/stat.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case relayCommand:
			os.Exit(runRelayCommand(os.Args[2:]))
		case epollRelayCommand:
			os.Exit(runEpollRelayCommand(os.Args[2:]))
		case pprofCommand:
			os.Exit(runPprofCommand(os.Args[2:]))
		}
	}
	var o options
	var clients, pinned, modes, targets string
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: go run ./bench [flags]

Benchmarks pgveil against a direct connection, PgBouncer and a bare Go relay
with pgbench -S, interleaved in rounds, and prints the results as text and
markdown. Needs PostgreSQL server binaries, pgbench and pgbouncer; -profile
also uses perf and strace when present.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; in each, every target runs every configuration once")
	fs.DurationVar(&o.duration, "duration", 15*time.Second, "length of each pgbench run (whole seconds)")
	fs.DurationVar(&o.connectDuration, "connect-duration", 0, "length of each pgbench -C run (default: -duration)")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "warm-up run per target before the first round (0: none)")
	fs.StringVar(&clients, "clients", "1,8", "client counts (pgbench -c, with -j equal)")
	fs.StringVar(&pinned, "pinned-clients", "1", "client counts also run with pgbench, PostgreSQL and the proxy pinned to one CPU (\"\": none)")
	fs.StringVar(&modes, "modes", "simple,extended,prepared", "pgbench query modes (-M)")
	fs.StringVar(&targets, "targets", "direct,pgbouncer,relay,pgveil", "targets to measure: direct, pgbouncer, relay (Go, net.Conn), epoll-relay (Go, raw epoll event loop), pgveil; relay-gmp1 and pgveil-gmp1 are relay and pgveil with GOMAXPROCS=1")
	fs.IntVar(&o.scale, "scale", 10, "pgbench scale factor (-i -s)")
	fs.StringVar(&o.markdown, "markdown", "", "also write the markdown tables to this file")
	fs.StringVar(&o.jsonOut, "json", "", "also write every raw sample as JSON to this file")
	fs.BoolVar(&o.profile, "profile", false, "after the rounds, profile pgveil under pgbench -S -M prepared -c 8")
	fs.BoolVar(&o.profileOnly, "profile-only", false, "only profile (no rounds)")
	fs.DurationVar(&o.profileDuration, "profile-duration", 15*time.Second, "length of each profiling run")
	fs.StringVar(&o.profileDir, "profile-dir", "", "keep profiles (pprof, perf.data, strace output) in this directory")
	fs.IntVar(&o.syscallTx, "syscall-tx", 5000, "transactions per client in the syscall-counting runs")
	fs.StringVar(&o.pgveilBin, "pgveil-bin", "", "pgveil binary to measure (default: go build ./cmd/pgveil)")
	fs.BoolVar(&o.skipConnect, "skip-connect", false, "skip the pgbench -C connect+disconnect runs")
	fs.Float64Var(&o.quiet, "quiet", 0.2, "before each run, wait until fewer than this many cores are busy (the machine is shared)")
	fs.DurationVar(&o.quietWait, "quiet-wait", 3*time.Minute, "longest wait for a quiet machine before a run")
	fs.Float64Var(&o.maxOther, "max-other", 0.25, "rerun a sample when other processes used more than this many cores during it")
	fs.IntVar(&o.retries, "retries", 2, "reruns of a disturbed sample; the least disturbed attempt is kept")
	fs.BoolVar(&o.hold, "hold", false, "start everything, print the targets' addresses, and wait for Ctrl-C (for experiments by hand)")
	fs.Parse(os.Args[1:])
	if o.connectDuration == 0 {
		o.connectDuration = o.duration
	}
	var err error
	if o.clients, err = parseInts(clients); err != nil {
		fatalf("-clients: %v", err)
	}
	if o.pinnedClients, err = parseInts(pinned); err != nil {
		fatalf("-pinned-clients: %v", err)
	}
	o.modes = splitList(modes)
	for _, m := range o.modes {
		if m != "simple" && m != "extended" && m != "prepared" {
			fatalf("-modes: unknown mode %q", m)
		}
	}
	o.targets = splitList(targets)
	for _, t := range o.targets {
		if !knownTarget(t) {
			fatalf("-targets: unknown target %q (want direct, pgbouncer, relay, epoll-relay, pgveil, relay-gmp1, pgveil-gmp1)", t)
		}
	}
	if o.duration%time.Second != 0 || o.connectDuration%time.Second != 0 || o.duration < time.Second {
		fatalf("-duration and -connect-duration must be whole seconds")
	}

	env := newEnv()
	// Ctrl-C or SIGTERM: stop what runs, stop every process we started by
	// its PID, remove temp dirs, exit non-zero.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "\nbench: %v: stopping\n", s)
		cancel()
		env.cleanup()
		os.Exit(130)
	}()
	code := run(ctx, env, &o)
	env.cleanup()
	os.Exit(code)
}

func run(ctx context.Context, env *env, o *options) int {
	if err := env.setup(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "bench: %s\n", env.machine)
	if o.hold {
		for _, name := range env.allTargets(o) {
			t := env.targets[name]
			fmt.Printf("%-18s PGSSLMODE=disable pgbench -S -n -h %s -p %s -U %s %s   (pid %d)\n", name,
				strings.Split(t.addr, ":")[0], strings.Split(t.addr, ":")[1], benchUser, "app", t.pid)
		}
		<-ctx.Done()
		return 0
	}
	var res *results
	if !o.profileOnly {
		var err error
		res, err = runRounds(ctx, env, o)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 1
		}
	}
	var prof *profileReport
	if o.profile || o.profileOnly {
		var err error
		prof, err = runProfile(ctx, env, o)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: profile: %v\n", err)
			return 1
		}
	}
	text, md := render(env, o, res, prof)
	fmt.Println(text)
	fmt.Println(md)
	if o.markdown != "" {
		if err := os.WriteFile(o.markdown, []byte(md), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 1
		}
	}
	if o.jsonOut != "" && res != nil {
		if err := writeJSON(o.jsonOut, res); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			return 1
		}
	}
	return 0
}

func knownTarget(t string) bool {
	switch t {
	case "direct", "pgbouncer", "relay", "pgveil", "relay-gmp1", "pgveil-gmp1", "epoll-relay", "epoll-relay-raw", "pgveil-goroutines":
		return true
	}
	return false
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		var n int
		if _, err := fmt.Sscanf(f, "%d", &n); err != nil || n < 1 {
			return nil, fmt.Errorf("bad count %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(2)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05")+" "+format+"\n", args...)
}

func machineDescription() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if i := strings.IndexByte(line, ':'); i >= 0 {
					model = strings.TrimSpace(line[i+1:])
				}
				break
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d cores (%s), Linux %s, %s; pgbench, PostgreSQL and the proxy share the cores",
		runtime.NumCPU(), model, kernel, runtime.Version())
}
