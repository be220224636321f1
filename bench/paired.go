package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Paired comparison of two targets. Within a round the targets run back to
// back on the same configuration, so the ratio of their TPS in one round
// cancels the drift between rounds that the spread of medians carries.
// The geometric mean of those ratios with a 95 % t interval says whether a
// difference between two proxies is larger than the noise of the run.

// pairedRatios returns, for configuration c, a's TPS ÷ b's TPS in every
// round that measured both.
func (r *results) pairedRatios(c config, a, b string) []float64 {
	byRound := map[int][2]float64{}
	for _, s := range r.Samples {
		if s.Clients != c.Clients || s.Mode != c.Mode || s.Connect != c.Connect || s.Pinned != c.Pinned {
			continue
		}
		p := byRound[s.Round]
		switch s.Target {
		case a:
			p[0] = s.TPS
		case b:
			p[1] = s.TPS
		default:
			continue
		}
		byRound[s.Round] = p
	}
	rounds := make([]int, 0, len(byRound))
	for k := range byRound {
		rounds = append(rounds, k)
	}
	sort.Ints(rounds)
	var out []float64
	for _, k := range rounds {
		if p := byRound[k]; p[0] > 0 && p[1] > 0 {
			out = append(out, p[0]/p[1])
		}
	}
	return out
}

// ratioStats summarises paired ratios: their geometric mean and its 95 %
// confidence interval (Student's t on the logarithms), and how many rounds
// a won (ratio ≥ 1).
type ratioStats struct {
	n              int
	geo, lo, hi    float64
	wins           int
	minimum, maxim float64
}

func summarizeRatios(v []float64) ratioStats {
	st := ratioStats{n: len(v)}
	if len(v) == 0 {
		return st
	}
	var sum float64
	logs := make([]float64, len(v))
	for i, x := range v {
		logs[i] = math.Log(x)
		sum += logs[i]
		if x >= 1 {
			st.wins++
		}
	}
	st.minimum, st.maxim = minmax(v)
	mean := sum / float64(len(v))
	st.geo, st.lo, st.hi = math.Exp(mean), math.NaN(), math.NaN()
	if len(v) > 1 {
		var ss float64
		for _, l := range logs {
			ss += (l - mean) * (l - mean)
		}
		se := math.Sqrt(ss/float64(len(v)-1)) / math.Sqrt(float64(len(v)))
		h := tQuantile975(len(v)-1) * se
		st.lo, st.hi = math.Exp(mean-h), math.Exp(mean+h)
	}
	return st
}

// verdict classifies a against the reference: above it beyond noise,
// below it beyond noise, or not told apart by this run.
func (st ratioStats) verdict() string {
	switch {
	case st.n < 2:
		return "too few rounds"
	case st.lo > 1:
		return "above"
	case st.hi < 1:
		return "below"
	}
	return "tie within noise"
}

func (st ratioStats) String() string {
	if st.n < 2 {
		return fmt.Sprintf("%.2f (1 round)", st.geo)
	}
	return fmt.Sprintf("%.2f [%.2f, %.2f], %d/%d rounds ≥ 1", st.geo, st.lo, st.hi, st.wins, st.n)
}

// tQuantile975 is the 0.975 quantile of Student's t with df degrees of
// freedom (the two-sided 95 % interval).
func tQuantile975(df int) float64 {
	table := [...]float64{0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086}
	if df >= 1 && df < len(table) {
		return table[df]
	}
	if df >= len(table) {
		return 1.96 + 2.4/float64(df) // within 0.005 of t for df > 20
	}
	return math.NaN()
}

// renderPaired prints pgveil ÷ PgBouncer per configuration and over all of
// them.
func renderPaired(t, m *strings.Builder, res *results, a, b string) {
	has := map[string]bool{}
	for _, n := range res.targets {
		has[n] = true
	}
	if !has[a] || !has[b] || res.Rounds < 2 {
		return
	}
	fmt.Fprintf(t, "\nPaired by round: %s ÷ %s TPS, geometric mean [95%% interval]\n", a, b)
	fmt.Fprintf(m, "Paired by round, %s ÷ %s TPS: geometric mean of the per-round ratios, [95 %% confidence interval], rounds where %s was at least as fast:\n\n", a, b, a)
	fmt.Fprintln(m, "| CPUs | clients | mode | ratio [95 % interval], wins | range | verdict |")
	fmt.Fprintln(m, "|---|---:|---|---|---:|---|")
	var all []float64
	for _, c := range res.configs {
		v := res.pairedRatios(c, a, b)
		if len(v) == 0 {
			continue
		}
		all = append(all, v...)
		st := summarizeRatios(v)
		fmt.Fprintf(t, "  %-28s %s  (range %.2f-%.2f)  %s\n", c, st, st.minimum, st.maxim, st.verdict())
		fmt.Fprintf(m, "| %s | %d | %s | %s | %.2f–%.2f | %s |\n", placement(c), c.Clients, c.Mode, st, st.minimum, st.maxim, st.verdict())
	}
	if len(all) > 0 {
		st := summarizeRatios(all)
		fmt.Fprintf(t, "  %-28s %s  (range %.2f-%.2f)  %s\n", "all configurations", st, st.minimum, st.maxim, st.verdict())
		fmt.Fprintf(m, "| all | | | %s | %.2f–%.2f | %s |\n", st, st.minimum, st.maxim, st.verdict())
	}
	fmt.Fprintln(m)
}
