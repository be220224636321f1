package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Pinned runs put pgbench, PostgreSQL and the proxy on one CPU.
//
// At one client a transaction is a chain of wake-ups (pgbench → proxy →
// backend → proxy → pgbench). On this machine (a VM with 2 vCPUs) a
// wake-up that crosses to an idle vCPU costs tens of microseconds and
// varies with where the scheduler happened to put each process, so
// unpinned one-client TPS is bimodal from run to run (4k–20k through the
// same proxy). With everything on one CPU there are no cross-CPU wake-ups:
// TPS is stable and measures the CPU path of a round trip — what each
// proxy's own work costs — which is what a proxy can change.

// pinCPU is the CPU pinned runs use: the last one.
func pinCPU() int { return runtime.NumCPU() - 1 }

// setAffinity sets the CPU affinity of every thread of pid.
func setAffinity(pid int, cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(t.Name())
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("sched_setaffinity(%d): %w", tid, err)
		}
	}
	return nil
}

func allCPUs() []int {
	out := make([]int, runtime.NumCPU())
	for i := range out {
		out[i] = i
	}
	return out
}

// pin puts PostgreSQL (the postmaster, whose new backends inherit its
// affinity, and every existing child) and the proxy on cpus.
func (e *env) pin(t *target, cpus []int) error {
	pids := []int{e.postmaster}
	kids, err := children(e.postmaster)
	if err != nil {
		return err
	}
	pids = append(pids, kids...)
	if t.pid != 0 {
		pids = append(pids, t.pid)
	}
	for _, p := range pids {
		if err := setAffinity(p, cpus); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}
