//go:build linux

package proxy

import (
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
)

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
	}
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
	if sp.budget <= 0 || sp.cpus < 2 || max(sp.active, sp.last) > sp.cpus-1 {
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
	deadline := now() + sp.budget
	for {
		n, errno := epollWaitRaw(l.ep, l.events, 0)
		if n != 0 || errno != 0 {
			sp.result(true)
			return n, errno
		}
		if now() >= deadline {
			break
		}
		schedYield()
	}
	sp.result(false)
	return epollWaitRaw(l.ep, l.events, loopWaitMillis)
}
