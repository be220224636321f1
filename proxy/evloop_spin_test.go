//go:build linux

package proxy

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testSpinner is a spinner with a fixed budget and CPU count, at time 0,
// on a machine that was idle.
func testSpinner(budget time.Duration, cpus int) *spinner {
	sp := &spinner{budgetOf: func() time.Duration { return budget }, cpuSet: cpuSetOf(cpus),
		statOf: idleMachine(cpus), threadCPU: func() int64 { return 0 }}
	sp.tick(0)
	sp.idleOK = true // as a second reading of an idle machine would set it
	return sp
}

// cpuSetOf returns an affinity of CPUs 0…n-1.
func cpuSetOf(n int) func() unix.CPUSet {
	return func() unix.CPUSet {
		var set unix.CPUSet
		for i := 0; i < n; i++ {
			set.Set(i)
		}
		return set
	}
}

// idleMachine returns a statOf whose readings advance by 10 ticks per CPU,
// all of them idle.
func idleMachine(cpus int) func(unix.CPUSet) (cpuTimes, bool) {
	var ct cpuTimes
	return func(unix.CPUSet) (cpuTimes, bool) {
		ct.idle += uint64(10 * cpus)
		ct.total += uint64(10 * cpus)
		ct.cpus = cpus
		return ct, true
	}
}

// TestSpinnerActivity: polling is allowed while at most CPUs−1 sessions
// had events in this window and the last one, never on one CPU, never
// with proxy.loop_spin 0.
func TestSpinnerActivity(t *testing.T) {
	w := spinWindow
	var a, b uint32
	sp := testSpinner(50*time.Microsecond, 2)
	if !sp.allowed() {
		t.Fatal("no session yet: want polling")
	}
	sp.seen(&a)
	sp.seen(&a) // the same session twice counts once
	if !sp.allowed() {
		t.Fatal("one busy session on 2 CPUs: want polling")
	}
	sp.seen(&b)
	if sp.allowed() {
		t.Fatal("two busy sessions on 2 CPUs: want no polling")
	}
	sp.tick(w) // next window: the last one had two
	sp.seen(&a)
	if sp.allowed() {
		t.Fatal("the last window had two busy sessions: want no polling")
	}
	sp.tick(2 * w)
	if !sp.allowed() {
		t.Fatal("the last window had one busy session: want polling")
	}
	sp.seen(&a)
	sp.seen(&b)
	sp.tick(10 * w) // windows without events in between
	if !sp.allowed() {
		t.Fatal("after an idle gap the old activity must not count")
	}

	if testSpinner(50*time.Microsecond, 1).allowed() {
		t.Fatal("one CPU: want no polling")
	}
	if testSpinner(0, 8).allowed() {
		t.Fatal("loop_spin 0: want no polling")
	}
	four := testSpinner(50*time.Microsecond, 4)
	four.seen(&a)
	four.seen(&b)
	if !four.allowed() {
		t.Fatal("two busy sessions on 4 CPUs: want polling")
	}
}

// TestSpinnerRecheck: the budget and the CPU count are read again every
// spinRecheck, so SIGHUP and a changed affinity take effect.
func TestSpinnerRecheck(t *testing.T) {
	budget, cpus := 50*time.Microsecond, 2
	sp := &spinner{budgetOf: func() time.Duration { return budget }, cpuSet: func() unix.CPUSet { return cpuSetOf(cpus)() },
		statOf: idleMachine(2), threadCPU: func() int64 { return 0 }}
	sp.tick(0)
	if sp.allowed() {
		t.Fatal("one reading of /proc/stat cannot tell idle time: want no polling")
	}
	sp.tick(spinRecheck)
	if !sp.allowed() {
		t.Fatal("want polling")
	}
	cpus = 1
	sp.tick(spinRecheck + spinRecheck/2)
	if !sp.allowed() {
		t.Fatal("read again before spinRecheck")
	}
	sp.tick(2 * spinRecheck)
	if sp.allowed() {
		t.Fatal("pinned to one CPU: want no polling")
	}
	cpus, budget = 2, 0
	sp.tick(3 * spinRecheck)
	if sp.allowed() {
		t.Fatal("loop_spin 0 after a reload: want no polling")
	}
}

// TestSpinnerBackoff: after k failed polls in a row the next 2^(k-1) idle
// turns (at most spinMaxSkip) sleep without polling; a poll that finds an
// event ends the back-off.
func TestSpinnerBackoff(t *testing.T) {
	sp := testSpinner(50*time.Microsecond, 2)
	for k, want := range []int{1, 2, 4, 8, 16, 32, 64, 64, 64} {
		if !sp.allowed() {
			t.Fatalf("fail %d: want a poll", k)
		}
		sp.result(false)
		for i := 0; i < want; i++ {
			if sp.allowed() {
				t.Fatalf("after %d failed polls: idle turn %d polled, want %d turns without", k+1, i+1, want)
			}
		}
	}
	if !sp.allowed() {
		t.Fatal("want a poll")
	}
	sp.result(true)
	sp.result(false)
	if sp.allowed() || !sp.allowed() {
		t.Fatal("after a success one failure skips one turn")
	}
}

// TestLoopWaitPolls runs wait on a real epoll set: a poll that finds an
// event returns it at once; one that finds nothing sleeps and backs off.
func TestLoopWaitPolls(t *testing.T) {
	l, err := newEventLoop(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(l.ep)
	defer unix.Close(l.efd)
	l.spin = *testSpinner(200*time.Microsecond, 2)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fds[0], &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fds[0])}); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(fds[1], []byte{1}); err != nil {
		t.Fatal(err)
	}
	if n, errno := l.wait(); n != 1 || errno != 0 || l.events[0].Fd != int32(fds[0]) || l.spin.hits != 1 {
		t.Fatalf("wait with data ready = %d, %v after %d polling phases that found it; want 1, by polling", n, errno, l.spin.hits)
	}
	if l.spin.fails != 0 || l.spin.skip != 0 {
		t.Fatalf("a poll that found data must not back off: %+v", l.spin)
	}
	var b [1]byte
	if _, err := unix.Read(fds[0], b[:]); err != nil {
		t.Fatal(err)
	}
	// The poll finds nothing; the sleep after it ends by its timeout or
	// by a signal of Go's scheduler (EINTR), never with an event.
	if n, errno := l.wait(); n > 0 || (errno != 0 && errno != unix.EINTR) {
		t.Fatalf("wait with nothing ready = %d, %v", n, errno)
	}
	if l.spin.fails != 1 || l.spin.skip != 1 {
		t.Fatalf("a failed poll must back off: %+v", l.spin)
	}
	// The next recheck publishes both phases to the metrics.
	var hit, miss uint64
	cpu := int64(-1)
	l.spin.publish = func(h, m uint64, c int64) { hit, miss, cpu = hit+h, miss+m, c }
	l.spin.tick(l.spin.recheckAt + spinRecheck)
	if hit != 1 || miss != 1 || cpu < 0 {
		t.Fatalf("published %d polls with an event, %d without, %d ns; want 1, 1, >= 0", hit, miss, cpu)
	}
	l.spin.tick(l.spin.recheckAt + spinRecheck)
	if hit != 1 || miss != 1 {
		t.Fatal("published twice")
	}
}

// TestSpinnerIdle: the loop polls only while the machine had spinMinIdle
// CPUs idle over the last spinRecheck, its own polling counted as idle.
func TestSpinnerIdle(t *testing.T) {
	// 2 CPUs; each step advances 20 ticks (10 per CPU) of which idle are idle.
	var ct cpuTimes
	var cpu int64
	idle, ok := uint64(0), true
	sp := &spinner{budgetOf: func() time.Duration { return 50 * time.Microsecond }, cpuSet: cpuSetOf(2),
		statOf: func(unix.CPUSet) (cpuTimes, bool) {
			ct.idle += idle
			ct.total += 20
			ct.cpus = 2
			return ct, ok
		},
		threadCPU: func() int64 { return cpu }}
	at := int64(0)
	// step: over the next spinRecheck (100 ms) idleTicks of 20 were idle
	// and the loop's thread spent spun of CPU time polling.
	step := func(idleTicks uint64, spun time.Duration) bool {
		idle = idleTicks
		sp.spun = int64(spun)
		at += spinRecheck
		sp.tick(at)
		return sp.allowed()
	}
	step(20, 0) // the first reading
	if !step(10, 0) {
		t.Fatal("1 CPU idle: want polling")
	}
	if step(2, 0) {
		t.Fatal("0.2 CPUs idle: want no polling")
	}
	// Busy, but half of it was this loop polling: 0.2 + 0.5 CPUs would be
	// idle without it.
	if !step(2, 50*time.Millisecond) {
		t.Fatal("0.7 CPUs idle counting the loop's own polling: want polling")
	}
	// The idle counter went backwards (iowait may): no judgement.
	ct.idle -= 30
	if step(0, 0) {
		t.Fatal("idle time went backwards: want no polling")
	}
	step(20, 0)
	if !step(20, 0) {
		t.Fatal("idle again: want polling")
	}
	// A reading after a long gap without events says nothing about now.
	at += 10 * spinRecheck
	if step(20, 0) {
		t.Fatal("the previous reading is a second old: want no polling until the next")
	}
	if !step(20, 0) {
		t.Fatal("a fresh pair of readings: want polling")
	}
	var warnings int
	sp.warn = func(string) { warnings++ }
	ok = false
	step(20, 0)
	if warnings != 1 {
		t.Fatalf("%d warnings for an unreadable /proc/stat, want 1", warnings)
	}
	if step(20, 0) || warnings != 1 {
		t.Fatalf("/proc/stat still unreadable: want no polling and no second warning (%d)", warnings)
	}
}

func TestParseProcStat(t *testing.T) {
	stat := []byte("cpu  100 5 50 800 20 3 7 15 0 0\ncpu0 50 2 25 400 10 1 3 7 0 0\ncpu1 50 3 25 400 10 2 4 8 0 0\nintr 1 2 3\nctxt 99\n")
	ct, ok := parseProcStat(stat, cpuSetOf(2)())
	if !ok || ct.total != 1000 || ct.idle != 820 || ct.cpus != 2 {
		t.Fatalf("parsed %+v, %v", ct, ok)
	}
	var one unix.CPUSet
	one.Set(1)
	if ct, ok := parseProcStat(stat, one); !ok || ct.total != 502 || ct.idle != 410 || ct.cpus != 1 {
		t.Fatalf("CPU 1 only: %+v, %v", ct, ok)
	}
	for _, bad := range []string{"", "intr 1\n", "cpu  1 2 3\n", "cpu0 1 2 3\n", "cpu0 1 2 3 x 5 6 7 8\n"} {
		if _, ok := parseProcStat([]byte(bad), cpuSetOf(2)()); ok {
			t.Errorf("%q: parsed", bad)
		}
	}
	if ct, ok := procStat(threadAffinity()); !ok || ct.cpus < 1 || ct.total == 0 {
		t.Fatalf("this machine's /proc/stat: %+v, %v", ct, ok)
	}
}

// TestSpinnerShared: loops count each other's busy sessions, and at most
// one polls at a time.
func TestSpinnerShared(t *testing.T) {
	shared := &spinShared{}
	a, b := testSpinner(50*time.Microsecond, 2), testSpinner(50*time.Microsecond, 2)
	a.shared, b.shared = shared, shared
	var sa, sb uint32
	a.seen(&sa)
	b.seen(&sb)
	a.tick(spinWindow)
	b.tick(spinWindow)
	if a.allowed() || b.allowed() {
		t.Fatal("one busy session on each of two loops, 2 CPUs: want no polling")
	}
	a.tick(2 * spinWindow)
	b.tick(2 * spinWindow)
	if !a.allowed() {
		t.Fatal("no busy session: want polling")
	}
}

// TestSpinnerCrowded: the loop yields after a batch only while its busy
// sessions are at least as many as the CPUs.
func TestSpinnerCrowded(t *testing.T) {
	sp := testSpinner(50*time.Microsecond, 2)
	var a, b uint32
	sp.seen(&a)
	if sp.crowded() {
		t.Fatal("one busy session on 2 CPUs: want no yield")
	}
	sp.seen(&b)
	if !sp.crowded() {
		t.Fatal("two busy sessions on 2 CPUs: want the yield")
	}
	one := testSpinner(50*time.Microsecond, 1)
	var c uint32
	one.seen(&c)
	if !one.crowded() {
		t.Fatal("one busy session on 1 CPU: want the yield")
	}
}
