package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// profileReport is what -profile found.
type profileReport struct {
	Workload string
	// Counted without perturbation (perf stat -p PID -- pgbench -t N).
	Counts []*proxyCounts
	// strace -c -f: calls per syscall, divided by transactions.
	Straces []*straceResult
	// perf record of the real binaries: share of samples by DSO (kernel or
	// user code) and the top symbols.
	PerfDSO map[string]string
	PerfSym map[string]string
	// perf report --children, only syscall entry points and the Go
	// scheduler's idle loop: where the time goes by kind of work.
	PerfByCall map[string]string
	// pprof of the in-process build.
	PprofCPU, PprofCPUCum, PprofAllocs string
	PprofTPS                           float64
	Notes                              []string
}

type proxyCounts struct {
	Target          string
	Tx              int64
	TPS             float64
	Syscalls        float64 // per transaction
	CtxSwitches     float64 // per transaction
	TaskClockUS     float64 // CPU µs per transaction (perf task-clock)
	CPUMigrationsTx float64
	PerSyscall      map[string]float64 // per transaction, by syscall name
}

// countedSyscalls are counted one by one with perf stat (tracepoints, no
// ptrace): the relay's I/O and the event loop / scheduler's sleeps and
// wake-ups.
var countedSyscalls = []string{"read", "write", "recvfrom", "sendto", "readv", "writev",
	"epoll_wait", "epoll_pwait", "futex", "nanosleep", "sched_yield", "tgkill", "getpid"}

type straceResult struct {
	Target string
	Tx     int64
	Total  float64 // calls per transaction
	Rows   []straceRow
}

type straceRow struct {
	Name   string
	Calls  int64
	Errors int64
	PerTx  float64
}

// profileTargets are the proxies whose syscalls and CPU are compared.
var profileTargets = []string{"pgveil", "pgveil-gmp1", "pgbouncer", "relay", "epoll-relay"}

func runProfile(ctx context.Context, e *env, o *options) (*profileReport, error) {
	const clients = 8
	rep := &profileReport{
		Workload: fmt.Sprintf("pgbench -S -M prepared -c %d -j %d", clients, clients),
		PerfDSO:  map[string]string{}, PerfSym: map[string]string{}, PerfByCall: map[string]string{},
	}
	dir := o.profileDir
	if dir == "" {
		dir = filepath.Join(e.tmp, "profile")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	fixed := pgbenchRun{Clients: clients, Mode: "prepared", Tx: o.syscallTx}
	timed := pgbenchRun{Clients: clients, Mode: "prepared", Duration: o.profileDuration}

	// Warm every proxy up (threads created, caches warm) before counting.
	for _, name := range profileTargets {
		if _, _, err := e.runPgbench(ctx, e.targets[name], pgbenchRun{Clients: clients, Mode: "prepared", Duration: 3 * time.Second}, nil); err != nil {
			return nil, err
		}
	}

	perf, _ := exec.LookPath("perf")
	if perf == "" {
		rep.Notes = append(rep.Notes, "perf not found: no perf counts or perf profiles (Debian: apt-get install -y linux-perf)")
	} else {
		for _, name := range profileTargets {
			t := e.targets[name]
			out := filepath.Join(dir, "perfstat-"+name+".csv")
			logf("profile: perf stat -p %d (%s) -- pgbench -t %d", t.pid, name, o.syscallTx)
			events := "raw_syscalls:sys_enter,context-switches,cpu-migrations,task-clock"
			for _, sc := range countedSyscalls {
				events += ",syscalls:sys_enter_" + sc
			}
			s, _, err := e.runPgbench(ctx, t, fixed, func(argv []string) []string {
				return append([]string{perf, "stat", "-x", ",", "-o", out, "-e", events, "-p", strconv.Itoa(t.pid), "--"}, argv...)
			})
			if err != nil {
				return nil, err
			}
			c, err := parsePerfStat(out)
			if err != nil {
				rep.Notes = append(rep.Notes, fmt.Sprintf("perf stat %s: %v", name, err))
				continue
			}
			tx := float64(s.Tx)
			pc := &proxyCounts{Target: name, Tx: s.Tx, TPS: s.TPS,
				Syscalls: c["raw_syscalls:sys_enter"] / tx, CtxSwitches: c["context-switches"] / tx,
				CPUMigrationsTx: c["cpu-migrations"] / tx, TaskClockUS: c["task-clock"] * 1e3 / tx,
				PerSyscall: map[string]float64{}}
			for _, sc := range countedSyscalls {
				pc.PerSyscall[sc] = c["syscalls:sys_enter_"+sc] / tx
			}
			rep.Counts = append(rep.Counts, pc)
		}
		for _, name := range profileTargets {
			t := e.targets[name]
			data := filepath.Join(dir, "perf-"+name+".data")
			logf("profile: perf record -g -p %d (%s) -- pgbench -T %s", t.pid, name, o.profileDuration)
			if _, _, err := e.runPgbench(ctx, t, timed, func(argv []string) []string {
				return append([]string{perf, "record", "-q", "-F", "999", "-g", "-o", data, "-p", strconv.Itoa(t.pid), "--"}, argv...)
			}); err != nil {
				return nil, err
			}
			rep.PerfDSO[name] = perfReport(perf, data, "--sort", "dso", "--percent-limit", "0.5")
			limit := "0.8"
			if name == "pgveil" {
				limit = "0.4"
			}
			rep.PerfSym[name] = perfReport(perf, data, "--sort", "dso,sym", "--percent-limit", limit)
			rep.PerfByCall[name] = filterLines(perfReportChildren(perf, data), byCallPattern)
		}
	}

	if strace, _ := exec.LookPath("strace"); strace == "" {
		rep.Notes = append(rep.Notes, "strace not found: no per-syscall counts (Debian: apt-get install -y strace)")
	} else {
		for _, name := range profileTargets {
			logf("profile: strace -c -f -p %d (%s) -- pgbench -t %d", e.targets[name].pid, name, o.syscallTx)
			r, err := e.straceCount(ctx, strace, e.targets[name], fixed, filepath.Join(dir, "strace-"+name+".txt"))
			if err != nil {
				return nil, err
			}
			rep.Straces = append(rep.Straces, r)
		}
	}

	// pprof of the in-process build under the same load.
	cpuFile, memFile := filepath.Join(dir, "pgveil-cpu.pprof"), filepath.Join(dir, "pgveil-allocs.pprof")
	t, stop, err := e.startPprofPgveil(ctx, cpuFile, memFile)
	if err != nil {
		return nil, err
	}
	logf("profile: pprof build of pgveil (pid %d) under %s for %s", t.pid, rep.Workload, o.profileDuration)
	s, _, err := e.runPgbench(ctx, t, timed, nil)
	if err != nil {
		stop()
		return nil, err
	}
	rep.PprofTPS = s.TPS
	stop()
	rep.PprofCPU = goPprof(e.self, "-top", "-nodecount=30", cpuFile)
	rep.PprofCPUCum = goPprof(e.self, "-top", "-cum", "-nodecount=30", cpuFile)
	rep.PprofAllocs = goPprof(e.self, "-top", "-sample_index=alloc_space", "-nodecount=15", memFile)
	if o.profileDir != "" {
		rep.Notes = append(rep.Notes, "profiles kept in "+o.profileDir)
	}
	return rep, nil
}

func parsePerfStat(path string) (map[string]float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[f[2]] = v
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no counters in %s:\n%s", path, b)
	}
	return out, nil
}

// perfReport is `perf report` as text, only the sample lines.
func perfReport(perf, data string, args ...string) string {
	argv := append([]string{"report", "-i", data, "--stdio", "--no-children", "-g", "none"}, args...)
	out, err := exec.Command(perf, argv...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("perf report failed: %v\n%s", err, out)
	}
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		keep = append(keep, strings.TrimRight(line, " "))
	}
	return strings.Join(keep, "\n")
}

// byCallPattern selects, from perf report --children, the syscall entry
// points, the kernel's network send/receive paths and the user-space
// functions that separate event-loop and scheduler time from relay work.
var byCallPattern = regexp.MustCompile(`\[k\] (__x64_sys_\w+|tcp_sendmsg|tcp_recvmsg|net_rx_action|schedule|try_to_wake_up)$|\[\.\] (runtime\.(findRunnable|netpoll|stealWork|wakep|sysmon|gcBgMarkWorker|mallocgc)|main\.copyLoop|main\.\(\*epollLoop\)\.\w+|github\.com/pgveil/pgveil/proxy\.\(\*session\)\.\w+|github\.com/pgveil/pgveil/proxy\.\(\*tracker\)\.\w+|bufio\.\(\*Writer\)\.Flush|event_base_loop|sbuf_\w+)$`)

func perfReportChildren(perf, data string) string {
	out, err := exec.Command(perf, "report", "-i", data, "--stdio", "--children", "--sort", "sym", "-g", "none", "--percent-limit", "0.3").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("perf report failed: %v\n%s", err, out)
	}
	return string(out)
}

func filterLines(text string, re *regexp.Regexp) string {
	var keep []string
	for _, line := range strings.Split(text, "\n") {
		if re.MatchString(strings.TrimRight(line, " ")) {
			keep = append(keep, strings.TrimRight(line, " "))
		}
	}
	return strings.Join(keep, "\n")
}

func goPprof(bin string, args ...string) string {
	argv := append([]string{"tool", "pprof"}, args...)
	// The binary is given so that symbols resolve even for inlined frames.
	argv = append(argv[:len(argv)-1], bin, argv[len(argv)-1])
	out, err := exec.Command("go", argv...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go tool pprof failed: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// straceCount attaches strace -c -f to every thread of the proxy, runs a
// fixed number of transactions, and divides each syscall's count by them.
// strace slows every syscall down, so it is not used for timing; the
// counts of read/write per transaction do not depend on the slowdown,
// while those of futex/epoll/nanosleep (scheduler wake-ups) grow with it,
// which is why the perf stat totals are reported as well.
func (e *env) straceCount(ctx context.Context, strace string, t *target, r pgbenchRun, out string) (*straceResult, error) {
	cmd := exec.Command(strace, "-c", "-f", "-o", out, "-p", strconv.Itoa(t.pid))
	cmd.Stderr = nil
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() { stopProcess(cmd, exited, syscall.SIGINT, 30*time.Second) }
	e.defer_(stop)
	// Wait until every thread of the target is traced.
	deadline := time.Now().Add(20 * time.Second)
	for !allTraced(t.pid) {
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("strace did not attach to %s within 20s", t.name)
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("strace exited before attaching to %s (ptrace not permitted?)", t.name)
		case <-time.After(20 * time.Millisecond):
		}
	}
	s, _, err := e.runPgbench(ctx, t, r, nil)
	stop()
	if err != nil {
		return nil, err
	}
	rows, err := parseStrace(out)
	if err != nil {
		return nil, err
	}
	res := &straceResult{Target: t.name, Tx: s.Tx}
	for i := range rows {
		rows[i].PerTx = float64(rows[i].Calls) / float64(s.Tx)
		res.Total += rows[i].PerTx
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Calls > rows[j].Calls })
	res.Rows = rows
	return res, nil
}

func allTraced(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		f, err := os.Open(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue // the thread ended
		}
		traced := false
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "TracerPid:"); ok {
				traced = strings.TrimSpace(v) != "0"
				break
			}
		}
		f.Close()
		if !traced {
			return false
		}
	}
	return true
}

// parseStrace reads strace -c's table:
// % time     seconds  usecs/call     calls    errors syscall
func parseStrace(path string) ([]straceRow, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rows []straceRow
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[len(f)-1] == "total" || f[len(f)-1] == "syscall" {
			continue
		}
		if _, err := strconv.ParseFloat(f[0], 64); err != nil {
			continue
		}
		calls, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			continue
		}
		var errs int64
		name := f[len(f)-1]
		if len(f) == 6 {
			errs, _ = strconv.ParseInt(f[4], 10, 64)
		}
		rows = append(rows, straceRow{Name: name, Calls: calls, Errors: errs})
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no syscalls in %s:\n%s", path, b)
	}
	return rows, nil
}
