package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/<pid>/stat and /proc/stat times;
// 100 on every Linux architecture Go supports.
const clockTick = 100.0

// statTimes reads utime, stime, cutime and cstime (fields 14–17 of
// /proc/<pid>/stat) in seconds.
func statTimes(pid int) (ut, st, cut, cst float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 15 {
		return 0, 0, 0, 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	v := func(n int) float64 { x, _ := strconv.ParseFloat(f[n-3], 64); return x / clockTick }
	return v(14), v(15), v(16), v(17), nil
}

// procCPU is the user+system CPU seconds a process (all its threads) has
// used so far. pid 0 is "no process".
func procCPU(pid int) (float64, error) {
	if pid == 0 {
		return 0, nil
	}
	ut, st, _, _, err := statTimes(pid)
	return ut + st, err
}

// machineBusy is the busy CPU seconds of all cores so far (/proc/stat:
// everything but idle and iowait).
func machineBusy() float64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, v := range fields[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already counted in user.
		switch i {
		case 3, 4, 8, 9:
			continue
		}
		busy += n
	}
	return busy / clockTick
}

// postmasterPID reads the cluster's postmaster.pid.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

func children(pid int) ([]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// clusterCPU is the CPU seconds the whole PostgreSQL cluster has used: the
// postmaster, its live children (backends, background processes), and the
// children it has reaped (cutime/cstime). The snapshot is retried until the
// set of children is the same before and after it, so a backend that exits
// meanwhile is counted exactly once.
func clusterCPU(ctx context.Context, pm int) (float64, error) {
	if pm == 0 {
		return 0, nil
	}
	for attempt := 0; ; attempt++ {
		before, err := children(pm)
		if err != nil {
			return 0, err
		}
		ut, st, cut, cst, err := statTimes(pm)
		if err != nil {
			return 0, err
		}
		total := ut + st + cut + cst
		ok := true
		for _, c := range before {
			ut, st, cut, cst, err := statTimes(c)
			if err != nil {
				ok = false
				break
			}
			total += ut + st + cut + cst
		}
		after, err := children(pm)
		if err != nil {
			return 0, err
		}
		if ok && slices.Equal(before, after) {
			return total, nil
		}
		if attempt > 200 {
			return total, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitQuiet waits until the machine is quiet — fewer than threshold cores
// busy over a 500 ms window while nothing of ours runs — or until maxWait.
// Other work on the machine (it is shared) would otherwise land in some
// targets' runs and not others'. It returns the load of the last window.
func waitQuiet(ctx context.Context, threshold float64, maxWait time.Duration) float64 {
	deadline := time.Now().Add(maxWait)
	warned := false
	for {
		b0, t0 := machineBusy(), time.Now()
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(500 * time.Millisecond):
		}
		load := (machineBusy() - b0) / time.Since(t0).Seconds()
		if load < threshold || time.Now().After(deadline) {
			if warned {
				logf("machine quiet (%.2f cores busy)", load)
			}
			return load
		}
		if !warned {
			logf("waiting for other work on the machine to finish (%.2f cores busy)", load)
			warned = true
		}
	}
}
