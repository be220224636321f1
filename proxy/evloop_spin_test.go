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
	sp := &spinner{budgetOf: func() time.Duration { return budget }, cpusOf: func() int { return cpus },
		statOf: idleMachine(cpus), threadCPU: func() int64 { return 0 }}
	sp.tick(0)
	sp.idleOK = budget > 0 // as a second reading of an idle machine would set it
	return sp
}

// idleMachine returns a statOf whose readings advance by 10 ticks per CPU,
// all of them idle.
func idleMachine(cpus int) func() (cpuTimes, bool) {
	var ct cpuTimes
	return func() (cpuTimes, bool) {
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
	sp := &spinner{budgetOf: func() time.Duration { return budget }, cpusOf: func() int { return cpus }, statOf: idleMachine(2),
		threadCPU: func() int64 { return 0 }}
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
	if n, errno := l.wait(); n != 1 || errno != 0 || l.events[0].Fd != int32(fds[0]) {
		t.Fatalf("wait with data ready = %d, %v", n, errno)
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
}

// TestSpinnerIdle: the loop polls only while the machine had spinMinIdle
// CPUs idle over the last spinRecheck, its own polling counted as idle.
func TestSpinnerIdle(t *testing.T) {
	// 2 CPUs; each step advances 20 ticks (10 per CPU) of which idle are idle.
	var ct cpuTimes
	var cpu int64
	idle, ok := uint64(0), true
	sp := &spinner{budgetOf: func() time.Duration { return 50 * time.Microsecond }, cpusOf: func() int { return 2 },
		statOf: func() (cpuTimes, bool) {
			ct.idle += idle
			ct.total += 20
			ct.cpus = 2
			return ct, ok
		},
		threadCPU: func() int64 { return cpu }}
	at := int64(0)
	// step: over the next spinRecheck (100 ms) idleTicks of 20 were idle,
	// the loop polled for spun and its thread ran for ran.
	step := func(idleTicks uint64, spun, ran time.Duration) bool {
		idle = idleTicks
		sp.spun = int64(spun)
		cpu += int64(ran)
		at += spinRecheck
		sp.tick(at)
		return sp.allowed()
	}
	step(20, 0, 0) // the first reading
	if !step(10, 0, 0) {
		t.Fatal("1 CPU idle: want polling")
	}
	if step(2, 0, 0) {
		t.Fatal("0.2 CPUs idle: want no polling")
	}
	// Busy, but half of it was this loop polling (50 ms of 100 ms, and its
	// thread ran 60 ms): 0.2 + 0.5 CPUs would be idle without it.
	if !step(2, 50*time.Millisecond, 60*time.Millisecond) {
		t.Fatal("0.7 CPUs idle counting the loop's own polling: want polling")
	}
	// Polled 90 ms but ran only 5 ms: others had the CPU (contention).
	if step(2, 90*time.Millisecond, 5*time.Millisecond) {
		t.Fatal("polling time the thread spent waiting for the CPU must not count as idle")
	}
	ok = false
	if step(20, 0, 0) {
		t.Fatal("/proc/stat unreadable: want no polling")
	}
}

func TestParseProcStat(t *testing.T) {
	ct, ok := parseProcStat([]byte("cpu  100 5 50 800 20 3 7 15 0 0\ncpu0 50 2 25 400 10 1 3 7 0 0\ncpu1 50 3 25 400 10 2 4 8 0 0\nintr 1 2 3\nctxt 99\n"))
	if !ok || ct.total != 1000 || ct.idle != 820 || ct.cpus != 2 {
		t.Fatalf("parsed %+v, %v", ct, ok)
	}
	for _, bad := range []string{"", "intr 1\n", "cpu  1 2 3\ncpu0 1 2 3\n", "cpu  1 2 3 x 5 6 7 8\ncpu0 1\n", "cpu  1 2 3 4 5 6 7 8\n"} {
		if _, ok := parseProcStat([]byte(bad)); ok {
			t.Errorf("%q: parsed", bad)
		}
	}
	if ct, ok := procStat(); !ok || ct.cpus < 1 || ct.total == 0 {
		t.Fatalf("this machine's /proc/stat: %+v, %v", ct, ok)
	}
}
