//go:build linux

package proxy

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
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
//   - the CPUs the loop may run on had at least spinMinIdle CPUs idle
//     over the last spinRecheck (from /proc/stat): sessions relayed on
//     goroutines, PostgreSQL's other clients and every other process count,
//     not only the loop's sessions. The loop's own polling counts as idle,
//     but only the CPU time its thread spent polling (its CPU clock, read
//     around each polling phase): under contention the polls yield, the
//     thread waits, and that wall time is time others ran;
//   - with several loops, at most one polls at a time, and each counts
//     the busy sessions of all;
//   - polls that end with nothing back off: after k failed polls in a row
//     the loop sleeps the next 2^(k-1) idle turns (at most spinMaxSkip) without
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

// cpuTimes are CPU times from /proc/stat, in clock ticks summed over the
// CPUs the loop may run on, and the number of those CPUs.
type cpuTimes struct {
	idle, total uint64
	cpus        int
}

// spinShared is what the loops of one server share: at most one of them
// polls at a time, and each counts the others' busy sessions too.
type spinShared struct {
	polling atomic.Bool
	active  atomic.Int64 // sum over the loops of their last window's busy sessions
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
	cpuSet      func() unix.CPUSet   // the calling thread's affinity
	procs       int                  // GOMAXPROCS before the loops' own (0: no bound)
	statOf      func(unix.CPUSet) (cpuTimes, bool)
	threadCPU   func() int64 // the loop thread's CPU time, nanoseconds
	shared      *spinShared  // nil: this loop alone
	// idleOK: the CPUs had spinMinIdle idle over the last spinRecheck;
	// prev and prevAt are the reading it was computed from.
	idleOK  bool
	hasPrev bool
	set     unix.CPUSet
	prev    cpuTimes
	prevAt  int64
	// Since the last recheck: polling phases that found an event and that
	// did not, and the CPU time the thread spent in them.
	hits, misses uint64
	spun         int64
	publish      func(hit, miss uint64, cpu int64) // nil: no metrics
	warn         func(msg string)                  // logs that polling is off; nil: silent
	warned       bool                              // since /proc/stat was last readable
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

// procStat reads the CPU times of the CPUs in set from /proc/stat.
func procStat(set unix.CPUSet) (cpuTimes, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, false
	}
	return parseProcStat(b, set)
}

// parseProcStat sums the "cpuN" lines of /proc/stat for the CPUs in set
// (user, nice, system, idle, iowait, irq, softirq, steal; guest time is
// inside user): a loop confined to some CPUs (a cpuset, taskset) judges
// by those, not by the whole machine.
func parseProcStat(b []byte, set unix.CPUSet) (cpuTimes, bool) {
	var ct cpuTimes
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) < 4 || !bytes.HasPrefix(line, []byte("cpu")) || line[3] < '0' || line[3] > '9' {
			continue
		}
		f := strings.Fields(string(line[3:]))
		n, err := strconv.Atoi(f[0])
		if err != nil || len(f) < 9 {
			return cpuTimes{}, false
		}
		if !set.IsSet(n) {
			continue
		}
		for i := 1; i <= 8; i++ {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return cpuTimes{}, false
			}
			ct.total += v
			if i == 4 || i == 5 { // idle, iowait
				ct.idle += v
			}
		}
		ct.cpus++
	}
	return ct, ct.cpus > 0
}

// threadAffinity is the calling thread's affinity mask (empty when it
// cannot be read: then the loop never polls).
func threadAffinity() unix.CPUSet {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		set.Zero()
	}
	return set
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
	last := sp.active
	if t >= sp.windowEnd+spinWindow {
		last = 0 // a whole window passed without events
	}
	if sp.shared != nil {
		sp.shared.active.Add(int64(last - sp.last))
	}
	sp.last, sp.active = last, 0
	sp.window++
	sp.windowEnd = t + spinWindow
	if t >= sp.recheckAt {
		sp.recheckAt = t + spinRecheck
		sp.budget = int64(sp.budgetOf())
		sp.set = sp.cpuSet()
		sp.cpus = sp.set.Count()
		if sp.procs > 0 {
			sp.cpus = min(sp.cpus, sp.procs)
		}
		spun := sp.spun
		if sp.publish != nil && sp.hits+sp.misses > 0 {
			sp.publish(sp.hits, sp.misses, spun)
		}
		sp.hits, sp.misses, sp.spun = 0, 0, 0
		if sp.budget > 0 && sp.cpus >= 2 {
			sp.readIdle(t, spun)
		} else {
			sp.idleOK, sp.hasPrev = false, false
		}
	}
}

// readIdle computes idleOK from a new /proc/stat reading at time t, spun
// being the CPU time the loop spent polling since the last one. A
// reading more than two rechecks old (the loop had no events in between)
// says nothing about now: the loop then waits for the next one.
func (sp *spinner) readIdle(t, spun int64) {
	ct, ok := sp.statOf(sp.set)
	if !ok {
		if !sp.warned && sp.warn != nil {
			sp.warn("event loop: /proc/stat is unreadable, so the loop cannot tell idle CPUs; it does not poll (proxy.loop_spin) until it can")
		}
		sp.idleOK, sp.hasPrev, sp.warned = false, false, true
		return
	}
	sp.warned = false
	sp.idleOK = false
	if sp.hasPrev && t > sp.prevAt && t-sp.prevAt <= 2*spinRecheck &&
		ct.cpus == sp.prev.cpus && ct.total > sp.prev.total && ct.idle >= sp.prev.idle {
		frac := min(float64(ct.idle-sp.prev.idle)/float64(ct.total-sp.prev.total), 1)
		// The loop's polling would be idle time without it: the CPU time
		// its thread spent polling, not the wall time (under contention
		// the polls yield and the thread mostly waits).
		idle := frac*float64(ct.cpus) + float64(spun)/float64(t-sp.prevAt)
		sp.idleOK = idle >= spinMinIdle
	}
	sp.prev, sp.prevAt, sp.hasPrev = ct, t, true
}

// seen counts a session with events in this window.
func (sp *spinner) seen(stamp *uint32) {
	if *stamp != sp.window {
		*stamp = sp.window
		sp.active++
	}
}

// busy is the number of sessions with traffic in this or the last window,
// over all loops when they share.
func (sp *spinner) busy() int {
	if sp.shared != nil {
		return max(sp.active, int(sp.shared.active.Load()))
	}
	return max(sp.active, sp.last)
}

// crowded reports whether the loops' busy sessions are at least as many as
// the CPUs: then the loop yields after each batch (see run).
func (sp *spinner) crowded() bool { return sp.busy() >= sp.cpus }

// allowed reports whether this idle turn polls before sleeping.
func (sp *spinner) allowed() bool {
	if sp.budget <= 0 || sp.cpus < 2 || !sp.idleOK || sp.busy() > sp.cpus-1 {
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
	if sp.shared != nil {
		if !sp.shared.polling.CompareAndSwap(false, true) {
			return epollWaitRaw(l.ep, l.events, loopWaitMillis) // another loop polls
		}
		defer sp.shared.polling.Store(false)
	}
	cpu0 := sp.threadCPU()
	deadline := now() + sp.budget
	for {
		n, errno := epollWaitRaw(l.ep, l.events, 0)
		if n != 0 || errno != 0 {
			sp.spun += sp.threadCPU() - cpu0
			sp.hits++
			sp.result(true)
			return n, errno
		}
		if now() >= deadline {
			break
		}
		schedYield()
	}
	sp.spun += sp.threadCPU() - cpu0
	sp.misses++
	sp.result(false)
	return epollWaitRaw(l.ep, l.events, loopWaitMillis)
}
