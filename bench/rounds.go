package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"
)

// config is one pgbench configuration measured against every target.
type config struct {
	Clients int
	Mode    string
	Connect bool
	Pinned  bool
}

func (c config) String() string {
	if c.Pinned {
		return fmt.Sprintf("-c %d %s pinned", c.Clients, c.Mode)
	}
	if c.Connect {
		return fmt.Sprintf("-C -c %d %s", c.Clients, c.Mode)
	}
	return fmt.Sprintf("-c %d %s", c.Clients, c.Mode)
}

type results struct {
	Started  time.Time `json:"started"`
	Machine  string    `json:"machine"`
	Rounds   int       `json:"rounds"`
	Duration string    `json:"duration"`
	Samples  []*sample `json:"samples"`

	configs        []config
	targets        []string // targets of the -S runs
	connectTargets []string // targets of the -C runs
}

// runRounds runs every configuration against every target, interleaved:
// round r runs each (configuration, target) pair once, so slow drift over
// the run (page cache, thermal, noisy neighbours) is spread over all
// targets alike. The order of targets rotates by round so that no target
// always runs first after another's load.
func runRounds(ctx context.Context, e *env, o *options) (*results, error) {
	res := &results{Started: time.Now(), Machine: e.machine, Rounds: o.rounds, Duration: o.duration.String(), targets: o.targets}
	for _, c := range o.clients {
		for _, m := range o.modes {
			res.configs = append(res.configs, config{Clients: c, Mode: m})
		}
	}
	for _, c := range o.pinnedClients {
		for _, m := range o.modes {
			res.configs = append(res.configs, config{Clients: c, Mode: m, Pinned: true})
		}
	}
	if !o.skipConnect {
		res.connectTargets = connectTargets(o)
	}

	if o.warmup > 0 {
		maxc := 1
		for _, c := range o.clients {
			maxc = max(maxc, c)
		}
		for _, name := range o.targets {
			logf("warm-up: %s, pgbench -S -M prepared -c %d for %s", name, maxc, o.warmup)
			if _, _, err := e.runPgbench(ctx, e.targets[name], pgbenchRun{Clients: maxc, Mode: "prepared", Duration: o.warmup}, nil); err != nil {
				return nil, err
			}
		}
	}

	nRuns := o.rounds * (len(res.configs)*len(o.targets) + len(res.connectTargets))
	total := time.Duration(o.rounds) * (time.Duration(len(res.configs)*len(o.targets))*o.duration + time.Duration(len(res.connectTargets))*o.connectDuration)
	logf("%d runs, about %s", nRuns, total.Round(time.Minute))
	run := 0
	for r := 1; r <= o.rounds; r++ {
		for _, c := range res.configs {
			for _, name := range rotate(o.targets, r-1) {
				run++
				s, err := measure(ctx, e, o, e.targets[name], pgbenchRun{Clients: c.Clients, Mode: c.Mode, Duration: o.duration, Pinned: c.Pinned})
				if err != nil {
					return nil, err
				}
				s.Round = r
				res.Samples = append(res.Samples, s)
				logf("[%d/%d] round %d %-22s %-16s %9.0f tps  %6.3f ms  proxy cpu %5.2fs  other %.2f cores", run, nRuns, r, c, name, s.TPS, s.LatencyMS, s.ProxyCPU, s.OtherCores)
			}
		}
		for _, name := range rotate(res.connectTargets, r-1) {
			run++
			s, err := measure(ctx, e, o, e.targets[name], pgbenchRun{Clients: 1, Mode: "simple", Connect: true, Duration: o.connectDuration})
			if err != nil {
				return nil, err
			}
			s.Round = r
			res.Samples = append(res.Samples, s)
			logf("[%d/%d] round %d %-22s %-16s %9.0f conn/s  connect %6.3f ms  proxy cpu %5.2fs  other %.2f cores", run, nRuns, r, "-C -c 1 simple", name, s.TPS, s.ConnMS, s.ProxyCPU, s.OtherCores)
		}
	}
	return res, nil
}

// measure runs one sample on a quiet machine. The machine is shared with
// other work this program does not control; a sample during which other
// processes used more than -max-other cores is run again (up to -retries
// times) and the least disturbed attempt is kept.
func measure(ctx context.Context, e *env, o *options, t *target, r pgbenchRun) (*sample, error) {
	var best *sample
	for attempt := 1; attempt <= 1+o.retries; attempt++ {
		waitQuiet(ctx, o.quiet, o.quietWait)
		s, _, err := e.runPgbench(ctx, t, r, nil)
		if err != nil {
			return nil, err
		}
		s.Attempts = attempt
		if best == nil || s.OtherCores < best.OtherCores {
			best = s
		}
		if s.OtherCores <= o.maxOther {
			break
		}
		logf("  %s: other processes used %.2f cores during the run; running it again", t.name, s.OtherCores)
	}
	return best, nil
}

// connectTargets are the -S targets plus, next to PgBouncer, PgBouncer
// without pooling (server_lifetime = 0), whose connect cost is comparable
// with pgveil's (one new server connection per client connection).
func connectTargets(o *options) []string {
	var out []string
	for _, t := range o.targets {
		out = append(out, t)
		if t == "pgbouncer" {
			out = append(out, "pgbouncer-nopool")
		}
	}
	return out
}

func rotate(s []string, k int) []string {
	if len(s) == 0 {
		return nil
	}
	k %= len(s)
	return append(append([]string{}, s[k:]...), s[:k]...)
}

// summary aggregates the samples of one (configuration, target).
type summary struct {
	n                int
	tps, tpsMin      float64 // median, min
	tpsMax           float64
	latency          float64 // median
	connMS           float64 // median
	proxyCPUPerRun   float64 // mean CPU seconds per run
	proxyUSPerTx     float64 // total proxy CPU / total transactions
	machineUSPerTx   float64 // total machine busy CPU / total transactions
	pgbenchUSPerTx   float64
	clusterUSPerTx   float64
	otherCores       float64 // median
	machineCoresBusy float64 // mean busy cores during the runs
}

func (r *results) summarize(c config, target string) *summary {
	var tps, lat, conn, other []float64
	var cpu, mcpu, pcpu, ccpu, wall float64
	var tx int64
	for _, s := range r.Samples {
		if s.Target != target || s.Clients != c.Clients || s.Mode != c.Mode || s.Connect != c.Connect || s.Pinned != c.Pinned {
			continue
		}
		tps = append(tps, s.TPS)
		lat = append(lat, s.LatencyMS)
		conn = append(conn, s.ConnMS)
		other = append(other, s.OtherCores)
		ccpu += s.ClusterCPU
		cpu += s.ProxyCPU
		mcpu += s.MachineCPU
		pcpu += s.PgbenchCPU
		wall += s.Wall
		tx += s.Tx
	}
	if len(tps) == 0 {
		return nil
	}
	sm := &summary{n: len(tps), tps: median(tps), latency: median(lat), connMS: median(conn)}
	sm.tpsMin, sm.tpsMax = minmax(tps)
	sm.proxyCPUPerRun = cpu / float64(len(tps))
	sm.proxyUSPerTx = cpu / float64(tx) * 1e6
	sm.machineUSPerTx = mcpu / float64(tx) * 1e6
	sm.pgbenchUSPerTx = pcpu / float64(tx) * 1e6
	sm.clusterUSPerTx = ccpu / float64(tx) * 1e6
	sm.otherCores = median(other)
	sm.machineCoresBusy = mcpu / wall
	return sm
}

func median(v []float64) float64 {
	s := append([]float64{}, v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func minmax(v []float64) (float64, float64) {
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}

func writeJSON(path string, res *results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
