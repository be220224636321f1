package main

import (
	"math"
	"testing"
)

func TestSummarizeRatios(t *testing.T) {
	near := func(got, want float64) bool { return math.Abs(got-want) < 5e-4 }
	st := summarizeRatios([]float64{1.1, 0.9})
	// ln 1.1 = 0.09531, ln 0.9 = -0.10536: mean -0.005025, sd 0.14190,
	// se 0.10034, t(1) = 12.706.
	if !near(st.geo, 0.99499) || !near(st.lo, 0.27804) || !near(st.hi, 3.5606) || st.wins != 1 || st.verdict() != "tie within noise" {
		t.Errorf("[1.1 0.9]: %+v %s", st, st.verdict())
	}
	if st := summarizeRatios([]float64{1, 1, 1}); st.geo != 1 || st.lo != 1 || st.hi != 1 || st.verdict() != "tie within noise" || st.wins != 3 {
		t.Errorf("equal: %+v %s", st, st.verdict())
	}
	if st := summarizeRatios([]float64{1.2, 1.21, 1.19, 1.2}); st.verdict() != "above" {
		t.Errorf("clearly faster: %+v %s", st, st.verdict())
	}
	if st := summarizeRatios([]float64{0.8, 0.81, 0.79}); st.verdict() != "below" || st.wins != 0 {
		t.Errorf("clearly slower: %+v %s", st, st.verdict())
	}
	if st := summarizeRatios([]float64{1.3}); st.verdict() != "too few rounds" {
		t.Errorf("one round: %s", st.verdict())
	}
	if q := tQuantile975(30); math.Abs(q-2.042) > 0.005 {
		t.Errorf("t(30) = %.3f, want 2.042", q)
	}
}

func TestPairedRatios(t *testing.T) {
	c := config{Clients: 8, Mode: "prepared"}
	r := &results{Samples: []*sample{
		{Target: "pgveil", Round: 2, Clients: 8, Mode: "prepared", TPS: 300},
		{Target: "pgbouncer", Round: 1, Clients: 8, Mode: "prepared", TPS: 100},
		{Target: "pgveil", Round: 1, Clients: 8, Mode: "prepared", TPS: 110},
		{Target: "pgbouncer", Round: 2, Clients: 8, Mode: "prepared", TPS: 200},
		{Target: "pgveil", Round: 3, Clients: 8, Mode: "prepared", TPS: 50}, // no partner
		{Target: "pgbouncer", Round: 1, Clients: 1, Mode: "prepared", TPS: 7},
		{Target: "direct", Round: 1, Clients: 8, Mode: "prepared", TPS: 1000},
	}}
	got := r.pairedRatios(c, "pgveil", "pgbouncer")
	if len(got) != 2 || math.Abs(got[0]-1.1) > 1e-9 || math.Abs(got[1]-1.5) > 1e-9 {
		t.Errorf("paired ratios = %v, want [1.1 1.5] in round order", got)
	}
}
