package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// render returns the results as an aligned text report and as markdown.
func render(e *env, o *options, res *results, prof *profileReport) (string, string) {
	var t, m strings.Builder
	now := time.Now().Format("2006-01-02")
	fmt.Fprintf(&m, "### pgveil relay benchmark, %s\n\n", now)
	fmt.Fprintf(&m, "Machine: %s.  \n", e.machine)
	fmt.Fprintf(&m, "Versions: %s; %s; %s; pgveil %s (working tree %s).  \n", e.versions["postgres"], e.versions["pgbench"], e.versions["pgbouncer"], e.versions["pgveil"], e.versions["git"])
	if res != nil {
		fmt.Fprintf(&m, "Method: `pgbench -S -n` (scale %d), %d rounds × %s per run, targets interleaved per round; TPS and latency are medians over rounds, CPU is summed over all rounds. ",
			o.scale, o.rounds, o.duration)
		fmt.Fprintf(&m, "Proxy CPU = utime+stime of the proxy process (/proc/<pid>/stat); PostgreSQL µs/tx = CPU of the postmaster and all its children, reaped ones included; "+
			"machine µs/tx = busy time of all cores (/proc/stat) per transaction: pgbench + PostgreSQL + proxy + kernel; other load = cores used meanwhile by processes outside the benchmark "+
			"(the machine is shared; runs wait for a quiet machine and a run above -max-other is repeated). "+
			"2 CPUs = free placement, as deployed; 1 CPU = pgbench, PostgreSQL and the proxy pinned to one CPU (no cross-CPU wake-ups: stable, and TPS is decided by the CPU cost of a round trip).\n\n")
		renderMain(&t, &m, res)
		renderTargets(&t, &m, res)
		renderPaired(&t, &m, res, "pgveil", "pgbouncer")
		renderConnect(&t, &m, res, o)
	}
	if prof != nil {
		renderProfile(&t, &m, prof)
	}
	return t.String(), m.String()
}

func placement(c config) string {
	if c.Pinned {
		return "1 CPU"
	}
	return "2 CPUs"
}

func renderMain(t, m *strings.Builder, res *results) {
	fmt.Fprintf(t, "\npgbench -S (select only): medians over %d rounds\n", res.Rounds)
	fmt.Fprintf(t, "%-6s %-3s %-9s %-12s %9s %15s %8s %7s %10s %10s %9s %10s %6s\n",
		"cpus", "c", "mode", "target", "TPS", "min-max", "x direct", "lat ms", "proxy s/run", "proxy us/tx", "pg us/tx", "total us/tx", "other")
	fmt.Fprintln(m, "| CPUs | clients | mode | target | TPS (median) | min–max | × direct | latency ms | proxy CPU s/run | proxy µs/tx | PostgreSQL µs/tx | machine µs/tx | other load |")
	fmt.Fprintln(m, "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range res.configs {
		d := res.summarize(c, "direct")
		for _, name := range res.targets {
			s := res.summarize(c, name)
			if s == nil {
				continue
			}
			ratio := "—"
			if d != nil {
				ratio = fmt.Sprintf("%.2f", s.tps/d.tps)
			}
			cpu, us := "—", "—"
			if name != "direct" {
				cpu, us = fmt.Sprintf("%.2f", s.proxyCPUPerRun), fmt.Sprintf("%.1f", s.proxyUSPerTx)
			}
			fmt.Fprintf(t, "%-6s %-3d %-9s %-12s %9.0f %7.0f-%-7.0f %8s %7.3f %10s %10s %9.1f %10.1f %6.2f\n",
				placement(c), c.Clients, c.Mode, name, s.tps, s.tpsMin, s.tpsMax, ratio, s.latency, cpu, us, s.clusterUSPerTx, s.machineUSPerTx, s.otherCores)
			fmt.Fprintf(m, "| %s | %d | %s | %s | %.0f | %.0f–%.0f | %s | %.3f | %s | %s | %.1f | %.1f | %.2f |\n",
				placement(c), c.Clients, c.Mode, name, s.tps, s.tpsMin, s.tpsMax, ratio, s.latency, cpu, us, s.clusterUSPerTx, s.machineUSPerTx, s.otherCores)
		}
	}
	fmt.Fprintln(m)
}

// renderTargets checks the targets: pgveil >= PgBouncer in every
// mode, pgveil >= 0.9 of direct at 1 client.
func renderTargets(t, m *strings.Builder, res *results) {
	has := map[string]bool{}
	for _, n := range res.targets {
		has[n] = true
	}
	if !has["pgveil"] || !has["direct"] {
		return
	}
	fmt.Fprintln(t, "\nTargets (issue 2): pgveil >= PgBouncer TPS in every mode; pgveil >= 0.9 x direct at 1 client")
	fmt.Fprintln(m, "| CPUs | clients | mode | pgveil × direct | PgBouncer × direct | relay × direct | pgveil ÷ PgBouncer | verdict |")
	fmt.Fprintln(m, "|---|---:|---|---:|---:|---:|---:|---|")
	for _, c := range res.configs {
		d, v := res.summarize(c, "direct"), res.summarize(c, "pgveil")
		b, r := res.summarize(c, "pgbouncer"), res.summarize(c, "relay")
		if d == nil || v == nil {
			continue
		}
		ratio := func(s *summary) string {
			if s == nil {
				return "—"
			}
			return fmt.Sprintf("%.2f", s.tps/d.tps)
		}
		var verdict []string
		vb := "—"
		if b != nil {
			vb = fmt.Sprintf("%.2f", v.tps/b.tps)
			if v.tps >= b.tps {
				verdict = append(verdict, "≥ PgBouncer: met")
			} else {
				verdict = append(verdict, "≥ PgBouncer: MISSED")
			}
		}
		if c.Clients == 1 {
			if v.tps >= 0.9*d.tps {
				verdict = append(verdict, "≥ 0.9 direct: met")
			} else {
				verdict = append(verdict, "≥ 0.9 direct: MISSED")
			}
		}
		fmt.Fprintf(t, "  %-28s pgveil %s x direct, PgBouncer %s, relay %s, pgveil/PgBouncer %s  %s\n",
			c, ratio(v), ratio(b), ratio(r), vb, strings.Join(verdict, "; "))
		fmt.Fprintf(m, "| %s | %d | %s | %s | %s | %s | %s | %s |\n", placement(c), c.Clients, c.Mode, ratio(v), ratio(b), ratio(r), vb, strings.Join(verdict, "; "))
	}
	fmt.Fprintln(m)
}

func renderConnect(t, m *strings.Builder, res *results, o *options) {
	if len(res.connectTargets) == 0 {
		return
	}
	c := config{Clients: 1, Mode: "simple", Connect: true}
	d := res.summarize(c, "direct")
	fmt.Fprintf(t, "\nConnect+disconnect: pgbench -S -C -c 1 (a new connection per transaction), %s per run, medians over %d rounds\n", o.connectDuration, res.Rounds)
	fmt.Fprintf(t, "%-16s %10s %9s %12s %10s %12s %13s\n", "target", "conn/s", "x direct", "connect ms", "lat ms", "proxy us/conn", "machine us/conn")
	fmt.Fprintf(m, "Connect+disconnect, `pgbench -S -C -c 1` (one new connection per transaction), %s per run, medians over %d rounds:\n\n", o.connectDuration, res.Rounds)
	fmt.Fprintln(m, "| target | conn+tx/s | × direct | avg connect ms | latency ms | proxy µs/conn | machine µs/conn |")
	fmt.Fprintln(m, "|---|---:|---:|---:|---:|---:|---:|")
	for _, name := range res.connectTargets {
		s := res.summarize(c, name)
		if s == nil {
			continue
		}
		ratio := "—"
		if d != nil {
			ratio = fmt.Sprintf("%.2f", s.tps/d.tps)
		}
		us := "—"
		if name != "direct" {
			us = fmt.Sprintf("%.0f", s.proxyUSPerTx)
		}
		fmt.Fprintf(t, "%-16s %10.0f %9s %12.3f %10.3f %12s %13.0f\n", name, s.tps, ratio, s.connMS, s.latency, us, s.machineUSPerTx)
		fmt.Fprintf(m, "| %s | %.0f | %s | %.3f | %.3f | %s | %.0f |\n", name, s.tps, ratio, s.connMS, s.latency, us, s.machineUSPerTx)
	}
	fmt.Fprintln(m, "\npgbouncer pools server connections (session mode: a client's server connection is reset with DISCARD ALL and reused), so its -C row measures pooling; pgbouncer-nopool (server_lifetime = 0) opens a server connection per client connection, as pgveil does.")
	fmt.Fprintln(m)
}

func renderProfile(t, m *strings.Builder, p *profileReport) {
	fmt.Fprintf(t, "\nProfile: %s\n", p.Workload)
	fmt.Fprintf(m, "#### Profile under `%s`\n\n", p.Workload)
	if len(p.Counts) > 0 {
		fmt.Fprintln(t, "perf stat on the proxy process (tracepoints, unperturbed), per transaction:")
		fmt.Fprintf(t, "%-14s", "")
		fmt.Fprint(m, "Per transaction, counted with `perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_<name>,context-switches,cpu-migrations,task-clock -p <proxy pid> -- pgbench … -t N` (tracepoints: no perturbation):\n\n|  |")
		sep := "|---|"
		for _, c := range p.Counts {
			fmt.Fprintf(t, " %12s", c.Target)
			fmt.Fprintf(m, " %s |", c.Target)
			sep += "---:|"
		}
		fmt.Fprintln(t)
		fmt.Fprintln(m, "\n"+sep)
		row := func(label, format string, v func(*proxyCounts) float64) {
			fmt.Fprintf(t, "%-14s", label)
			fmt.Fprintf(m, "| %s |", label)
			for _, c := range p.Counts {
				fmt.Fprintf(t, " %12s", fmt.Sprintf(format, v(c)))
				fmt.Fprintf(m, " %s |", fmt.Sprintf(format, v(c)))
			}
			fmt.Fprintln(t)
			fmt.Fprintln(m)
		}
		row("TPS in the run", "%.0f", func(c *proxyCounts) float64 { return c.TPS })
		row("CPU µs/tx", "%.1f", func(c *proxyCounts) float64 { return c.TaskClockUS })
		row("syscalls/tx", "%.2f", func(c *proxyCounts) float64 { return c.Syscalls })
		for _, sc := range countedSyscalls {
			any := false
			for _, c := range p.Counts {
				if c.PerSyscall[sc] >= 0.005 {
					any = true
				}
			}
			if any {
				row("  "+sc, "%.2f", func(c *proxyCounts) float64 { return c.PerSyscall[sc] })
			}
		}
		row("ctx switches/tx", "%.2f", func(c *proxyCounts) float64 { return c.CtxSwitches })
		row("migrations/tx", "%.3f", func(c *proxyCounts) float64 { return c.CPUMigrationsTx })
		fmt.Fprintln(m)
	}
	if len(p.Straces) > 0 {
		// One table: syscall rows, one column per proxy.
		names := map[string]bool{}
		for _, s := range p.Straces {
			for _, r := range s.Rows {
				if r.PerTx >= 0.01 {
					names[r.Name] = true
				}
			}
		}
		var list []string
		for n := range names {
			list = append(list, n)
		}
		per := func(s *straceResult, n string) (float64, int64) {
			for _, r := range s.Rows {
				if r.Name == n {
					return r.PerTx, r.Errors
				}
			}
			return 0, 0
		}
		sort.Slice(list, func(i, j int) bool {
			a, _ := per(p.Straces[0], list[i])
			b, _ := per(p.Straces[0], list[j])
			if a != b {
				return a > b
			}
			return list[i] < list[j]
		})
		fmt.Fprintln(t, "strace -c -f (perturbed: futex/epoll/nanosleep counts grow under ptrace), calls per transaction:")
		fmt.Fprintf(t, "%-16s", "syscall")
		fmt.Fprint(m, "Calls per transaction by syscall, `strace -c -f -p <proxy pid>` over `pgbench … -t N` (ptrace slows each call, which inflates scheduler wake-ups — futex, epoll_pwait, nanosleep — and the EAGAIN reads; the totals above are the unperturbed ones):\n\n| syscall |")
		sep := "|---|"
		for _, s := range p.Straces {
			fmt.Fprintf(t, " %14s", s.Target)
			fmt.Fprintf(m, " %s |", s.Target)
			sep += "---:|"
		}
		fmt.Fprintln(t)
		fmt.Fprintln(m, "\n"+sep)
		for _, n := range list {
			fmt.Fprintf(t, "%-16s", n)
			fmt.Fprintf(m, "| %s |", n)
			for _, s := range p.Straces {
				v, errs := per(s, n)
				cell := fmt.Sprintf("%.2f", v)
				if errs > 0 {
					cell += fmt.Sprintf(" (%.2f err)", float64(errs)/float64(s.Tx))
				}
				fmt.Fprintf(t, " %14s", cell)
				fmt.Fprintf(m, " %s |", cell)
			}
			fmt.Fprintln(t)
			fmt.Fprintln(m)
		}
		fmt.Fprintf(t, "%-16s", "total")
		fmt.Fprint(m, "| **total** |")
		for _, s := range p.Straces {
			fmt.Fprintf(t, " %14.2f", s.Total)
			fmt.Fprintf(m, " **%.2f** |", s.Total)
		}
		fmt.Fprintln(t)
		fmt.Fprint(m, "\n\n")
	}
	for _, name := range profileTargets {
		if d, ok := p.PerfDSO[name]; ok {
			block(t, m, fmt.Sprintf("perf record -g -p <%s pid>: samples by DSO", name), d)
		}
	}
	for _, name := range profileTargets {
		if d, ok := p.PerfByCall[name]; ok {
			block(t, m, fmt.Sprintf("perf record -g -p <%s pid>: children %% (self + callees) of syscall entry points, kernel send/receive, scheduler and relay functions", name), d)
		}
	}
	for _, name := range profileTargets {
		if d, ok := p.PerfSym[name]; ok {
			block(t, m, fmt.Sprintf("perf record -g -p <%s pid>: top symbols (self)", name), d)
		}
	}
	if p.PprofCPU != "" {
		block(t, m, fmt.Sprintf("pprof CPU of the in-process pgveil build (%.0f TPS during the profile): flat", p.PprofTPS), p.PprofCPU)
		block(t, m, "pprof CPU: cumulative", p.PprofCPUCum)
		block(t, m, "pprof allocations (alloc_space, whole life of the process)", p.PprofAllocs)
	}
	for _, n := range p.Notes {
		fmt.Fprintln(t, "note:", n)
		fmt.Fprintln(m, "Note:", n+"\n")
	}
}

func block(t, m *strings.Builder, title, body string) {
	fmt.Fprintf(t, "\n%s:\n%s\n", title, body)
	fmt.Fprintf(m, "%s:\n\n```\n%s\n```\n\n", title, body)
}
