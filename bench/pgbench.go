package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgveil/pgveil/integration/harness"
)

// pgbenchRun is one invocation of pgbench.
type pgbenchRun struct {
	Clients  int
	Mode     string // simple | extended | prepared
	Connect  bool   // -C: a new connection per transaction
	Duration time.Duration
	Tx       int // -t (transactions per client) instead of -T when > 0
	Pinned   bool
}

func (r pgbenchRun) args(addr string) []string {
	host, port, _ := strings.Cut(addr, ":")
	a := []string{"-S", "-n", "-M", r.Mode, "-c", strconv.Itoa(r.Clients), "-j", strconv.Itoa(r.Clients)}
	if r.Tx > 0 {
		a = append(a, "-t", strconv.Itoa(r.Tx))
	} else {
		a = append(a, "-T", strconv.Itoa(int(r.Duration/time.Second)))
	}
	if r.Connect {
		a = append(a, "-C")
	}
	return append(a, "-h", host, "-p", port, "-U", benchUser, harness.Database)
}

// sample is the outcome of one pgbench run against one target.
type sample struct {
	Target     string  `json:"target"`
	Round      int     `json:"round"`
	Clients    int     `json:"clients"`
	Mode       string  `json:"mode"`
	Connect    bool    `json:"connect"`
	Pinned     bool    `json:"pinned,omitempty"`
	TPS        float64 `json:"tps"`
	LatencyMS  float64 `json:"latency_ms"`
	ConnMS     float64 `json:"conn_ms,omitempty"` // average connection time (-C)
	Tx         int64   `json:"tx"`
	Failed     int64   `json:"failed"`
	Wall       float64 `json:"wall_s"`
	ProxyCPU   float64 `json:"proxy_cpu_s"`   // utime+stime delta of the proxy process
	PgbenchCPU float64 `json:"pgbench_cpu_s"` // pgbench's own rusage
	ClusterCPU float64 `json:"cluster_cpu_s"` // PostgreSQL: postmaster, backends, reaped backends
	MachineCPU float64 `json:"machine_cpu_s"` // all cores' busy time (from /proc/stat)
	// OtherCores is the machine's busy time not accounted for by pgbench,
	// the proxy or PostgreSQL, per second of the run: other work on the
	// shared machine (plus interrupt time the kernel charged to no one).
	OtherCores float64 `json:"other_cores"`
	Attempts   int     `json:"attempts"`
}

var (
	reTx      = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	reFailed  = regexp.MustCompile(`number of failed transactions: (\d+)`)
	reLatency = regexp.MustCompile(`latency average = ([0-9.]+) ms`)
	reConn    = regexp.MustCompile(`average connection time = ([0-9.]+) ms`)
	reTPS     = regexp.MustCompile(`tps = ([0-9.]+) \(`)
)

// runPgbench runs pgbench against t and measures the proxy's CPU time and
// the whole machine's busy time around it. wrap, when set, turns the
// pgbench command line into another (perf stat -p PID -- pgbench ...).
func (e *env) runPgbench(ctx context.Context, t *target, r pgbenchRun, wrap func([]string) []string) (*sample, []byte, error) {
	argv := append([]string{e.pgbench}, r.args(t.addr)...)
	if r.Pinned {
		argv = append([]string{"taskset", "-c", strconv.Itoa(pinCPU())}, argv...)
		if err := e.pin(t, []int{pinCPU()}); err != nil {
			return nil, nil, err
		}
		defer e.pin(t, allCPUs())
	}
	if wrap != nil {
		argv = wrap(argv)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = pgEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb

	cpu0, err := procCPU(t.pid)
	if err != nil {
		return nil, nil, err
	}
	pg0, err := clusterCPU(ctx, e.postmaster)
	if err != nil {
		return nil, nil, err
	}
	m0 := machineBusy()
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start)
	m1 := machineBusy()
	cpu1, err := procCPU(t.pid)
	if err != nil {
		return nil, nil, fmt.Errorf("%s (pid %d) is gone: %w", t.name, t.pid, err)
	}
	pg1, err := clusterCPU(ctx, e.postmaster)
	if err != nil {
		return nil, nil, err
	}
	if runErr != nil {
		return nil, nil, fmt.Errorf("%s: %v\n%s%s", strings.Join(argv, " "), runErr, out.String(), errb.String())
	}
	s := &sample{Target: t.name, Clients: r.Clients, Mode: r.Mode, Connect: r.Connect, Pinned: r.Pinned,
		Wall: wall.Seconds(), ProxyCPU: cpu1 - cpu0, MachineCPU: m1 - m0, ClusterCPU: pg1 - pg0}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && wrap == nil {
		s.PgbenchCPU = tv(ru.Utime) + tv(ru.Stime)
		s.OtherCores = max(0, s.MachineCPU-s.PgbenchCPU-s.ProxyCPU-s.ClusterCPU) / s.Wall
	}
	text := out.String() + errb.String()
	s.Tx = int64(atof(match(reTx, text)))
	s.Failed = int64(atof(match(reFailed, text)))
	s.TPS = atof(match(reTPS, text))
	s.LatencyMS = atof(match(reLatency, text))
	s.ConnMS = atof(match(reConn, text))
	if s.Tx == 0 || s.TPS == 0 {
		return nil, nil, fmt.Errorf("%s: could not read pgbench's result:\n%s", strings.Join(argv, " "), text)
	}
	if s.Failed > 0 {
		return nil, nil, fmt.Errorf("%s: %d failed transactions:\n%s", strings.Join(argv, " "), s.Failed, text)
	}
	return s, errb.Bytes(), nil
}

func match(re *regexp.Regexp, s string) string {
	if m := re.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

func atof(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
