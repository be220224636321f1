//go:build linux

package proxy

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Spinning: polling for the next message before sleeping.
//
// When a loop runs out of events it normally sleeps in epoll_wait. With one
// busy client the next event (the server's answer, then the client's next
// query) comes tens of microseconds later, and the sleep costs more than
// the wait: the CPU goes idle, and waking it again is an inter-processor
// interrupt and, in a VM, an exit to the hypervisor. On a 2-vCPU VM that is
// what made a round trip through any proxy 15–20 µs slower than direct
// (docs/BENCH.md run H). So a loop first polls (epoll_wait with a zero
// timeout, yielding the CPU between polls to anything runnable) for up to
// proxy.loop_spin, and sleeps only if nothing came.
//
// Polling spends CPU to save latency, so it is done only where it can win:
//   - the loop's thread may run on at least 2 CPUs (the affinity is read
//     again every spinRecheck) and GOMAXPROCS, as Go set it from the
//     cgroup's CPU quota, is at least 2: on one CPU the poller would take
//     the time of the very processes it waits for, and under a quota of
//     one CPU it would spend the quota;
//   - at most CPUs−1 sessions had events in this or the last spinWindow:
//     each busy session keeps a client and a server process running, so
//     with more of them the CPUs are taken and the poll only slows them
//     (at 8 clients on 2 CPUs it cost a third of the throughput);
//   - the machine had at least spinMinIdle CPUs idle over the last
//     spinRecheck (from /proc/stat): sessions relayed on goroutines,
//     PostgreSQL's other clients and every other process on the machine
//     count, not only the loop's sessions. The loop's own polling counts as
//     idle, but only as far as its thread got the CPU (its CPU clock):
//     under contention the polls yield, the thread waits, and the time it
//     spent polling is mostly time others ran;
//   - polls that end with nothing back off: after k failed polls in a row
//     the loop sleeps the next 2^k idle turns (at most spinMaxSkip) without
//     polling, so an idle or slow client costs at most one poll per
//     spinMaxSkip waits.

const (
	// spinWindow is the period over which sessions with events are counted.
	spinWindow = int64(time.Millisecond)
	// spinRecheck is how often the affinity and proxy.loop_spin are read.
	spinRecheck = int64(100 * time.Millisecond)
	// spinMaxSkip bounds the back-off after failed polls.
	spinMaxSkip = 64
	// spinMinIdle is the idle CPU time, in CPUs, the machine must have had
	// over the last spinRecheck for the loop to poll.
	spinMinIdle = 0.5
)

// cpuTimes are the machine's CPU times (the "cpu" line of /proc/stat, in
// clock ticks summed over all CPUs) and its number of CPUs.
type cpuTimes struct {
	idle, total uint64
	cpus        int
}

// spinner is a loop's polling state; only the loop thread uses it.
type spinner struct {
	budget int64 // nanoseconds of polling per idle turn; 0: never poll
	cpus   int   // CPUs the loop thread may run on
	// window numbers the current spinWindow; sessions stamp it when they
	// have events, active counts the stamps of this window and last those
	// of the previous one.
	window      uint32
	windowEnd   int64
	active      int
	last        int
	recheckAt   int64
	skip, fails int
	budgetOf    func() time.Duration // proxy.loop_spin of the current config
	cpusOf      func() int           // CPUs the calling thread may run on
	statOf      func() (cpuTimes, bool)
	threadCPU   func() int64 // the loop thread's CPU time, nanoseconds
	// idleOK: the machine had spinMinIdle CPUs idle over the last
	// spinRecheck; prev and prevAt are the reading it was computed from,
	// spun the nanoseconds this loop polled since.
	idleOK  bool
	hasPrev bool
	prev    cpuTimes
	prevAt  int64
	prevCPU int64
	spun    int64
}

// threadCPUTime is the calling thread's CPU time (the loop's thread is
// locked to its goroutine).
func threadCPUTime() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

// procStat reads the machine's CPU times from /proc/stat.
func procStat() (cpuTimes, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, false
	}
	return parseProcStat(b)
}

// parseProcStat parses /proc/stat: the aggregate "cpu" line (user, nice,
// system, idle, iowait, irq, softirq, steal; guest time is inside user)
// and the count of "cpuN" lines.
func parseProcStat(b []byte) (cpuTimes, bool) {
	var ct cpuTimes
	ok := false
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if !bytes.HasPrefix(line, []byte("cpu")) {
			continue
		}
		if len(line) > 3 && line[3] >= '0' && line[3] <= '9' {
			ct.cpus++
			continue
		}
		f := strings.Fields(string(line[3:]))
		if len(f) < 8 {
			return cpuTimes{}, false
		}
		for i := 0; i < 8; i++ {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return cpuTimes{}, false
			}
			ct.total += v
			if i == 3 || i == 4 { // idle, iowait
				ct.idle += v
			}
		}
		ok = true
	}
	return ct, ok && ct.cpus > 0
}

// threadCPUs counts the CPUs in the calling thread's affinity mask.
func threadCPUs() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 1
	}
	return set.Count()
}

// now is the monotonic clock in nanoseconds (vDSO, no system call).
func now() int64 { return int64(time.Since(spinEpoch)) }

var spinEpoch = time.Now()

// tick starts a new window when the current one is over, and rereads the
// affinity and the budget every spinRecheck.
func (sp *spinner) tick(t int64) {
	if t < sp.windowEnd {
		return
	}
	sp.last, sp.active = sp.active, 0
	if t >= sp.windowEnd+spinWindow {
		sp.last = 0 // a whole window passed without events
	}
	sp.window++
	sp.windowEnd = t + spinWindow
	if t >= sp.recheckAt {
		sp.recheckAt = t + spinRecheck
		sp.budget = int64(sp.budgetOf())
		sp.cpus = sp.cpusOf()
		if sp.budget > 0 {
			sp.readIdle(t)
		} else {
			sp.idleOK, sp.hasPrev = false, false
		}
	}
}

// readIdle computes idleOK from a new /proc/stat reading at time t.
func (sp *spinner) readIdle(t int64) {
	ct, ok := sp.statOf()
	cpu := sp.threadCPU()
	if !ok {
		sp.idleOK, sp.hasPrev = false, false
		return
	}
	if sp.hasPrev && ct.total > sp.prev.total && t > sp.prevAt {
		idle := float64(ct.idle-sp.prev.idle) / float64(ct.total-sp.prev.total) * float64(ct.cpus)
		// The loop's polling would be idle time without it, as far as the
		// thread ran while it polled.
		idle += float64(min(sp.spun, cpu-sp.prevCPU)) / float64(t-sp.prevAt)
		sp.idleOK = idle >= spinMinIdle
	}
	sp.prev, sp.prevAt, sp.prevCPU, sp.spun, sp.hasPrev = ct, t, cpu, 0, true
}

// seen counts a session with events in this window.
func (sp *spinner) seen(stamp *uint32) {
	if *stamp != sp.window {
		*stamp = sp.window
		sp.active++
	}
}

// allowed reports whether this idle turn polls before sleeping.
func (sp *spinner) allowed() bool {
	if sp.budget <= 0 || sp.cpus < 2 || !sp.idleOK || max(sp.active, sp.last) > sp.cpus-1 {
		return false
	}
	if sp.skip > 0 {
		sp.skip--
		return false
	}
	return true
}

// result records how a poll ended.
func (sp *spinner) result(found bool) {
	if found {
		sp.fails = 0
		return
	}
	sp.fails = min(sp.fails+1, 7)
	sp.skip = min(1<<(sp.fails-1), spinMaxSkip)
}

// wait returns the loop's next batch of events: it polls first when the
// spinner allows, and otherwise (or when the poll found nothing) sleeps
// up to loopWaitMillis.
func (l *eventLoop) wait() (int, syscall.Errno) {
	sp := &l.spin
	if !sp.allowed() {
		return epollWaitRaw(l.ep, l.events, loopWaitMillis)
	}
	start := now()
	deadline := start + sp.budget
	for {
		n, errno := epollWaitRaw(l.ep, l.events, 0)
		if n != 0 || errno != 0 {
			sp.spun += now() - start
			sp.result(true)
			return n, errno
		}
		t := now()
		if t >= deadline {
			sp.spun += t - start
			break
		}
		schedYield()
	}
	sp.result(false)
	return epollWaitRaw(l.ep, l.events, loopWaitMillis)
}
