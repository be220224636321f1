package proxy

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// Metrics are pgveil's Prometheus series. Labels never carry values:
// only directions, SQLSTATE classes, statement kinds and table.column names.
type Metrics struct {
	ConnectionsOpen                      prometheus.Gauge
	ConnectionsTotal                     prometheus.Counter
	ConnectionsRefused                   *prometheus.CounterVec // reason: max_client_connections | max_pending_startups
	StartupsPending                      prometheus.Gauge       // sessions in startup or authentication
	refused                              [numRefusals]prometheus.Counter
	LoopSessions                         prometheus.Gauge       // sessions an event loop relays now
	LoopPolls                            *prometheus.CounterVec // result: event | none (proxy.loop_spin)
	LoopPollSeconds                      prometheus.Counter     // CPU time the loops spent polling
	LoopWaits                            *prometheus.CounterVec // what: key | catalog; messages a loop set aside while it loaded
	LoopHandbacks                        prometheus.Counter     // sessions a loop handed to goroutines
	LoopReturns                          prometheus.Counter     // of those, returns to the loop
	CancelsTotal                         prometheus.Counter
	Bytes                                *prometheus.CounterVec // direction: client_to_server | server_to_client
	Messages                             *prometheus.CounterVec // direction
	Errors                               *prometheus.CounterVec // class (SQLSTATE class), source: server | pgveil
	UpstreamConnect                      prometheus.Histogram
	TrackerDesyncs                       prometheus.Counter
	Statements                           *prometheus.CounterVec // kind: passthrough | rewritten | pinned | refused
	ValuesEncrypted                      *prometheus.CounterVec // column: schema.table.column
	ValuesDecrypted                      *prometheus.CounterVec // column
	DecryptFailures                      *prometheus.CounterVec // column, reason
	ReaderMasked                         *prometheus.CounterVec // column: values nulled for a role not in readers
	PlanCacheHits                        prometheus.CounterFunc
	PlanCacheMisses                      prometheus.CounterFunc
	PlanCacheShapeHits                   prometheus.CounterFunc
	PhaseSeconds                         *prometheus.HistogramVec // phase: plan | crypto | upstream
	ReloadsTotal                         *prometheus.CounterVec   // result: ok | error
	SearchPathReads                      prometheus.Counter
	TenantLookups                        *prometheus.CounterVec
	bytesC2S, bytesS2C, msgsC2S, msgsS2C prometheus.Counter
	stmtPassthrough, stmtRewritten       prometheus.Counter
	stmtReprepared                       prometheus.Counter
	stmtPinned                           prometheus.Counter
	phasePlan, phaseCrypto               prometheus.Observer
	phaseUpstream                        prometheus.Observer

	cols sync.Map // *policy.Column → *colCounters
}

// colCounters are one column's counters, resolved once.
type colCounters struct {
	enc, dec, masked prometheus.Counter
}

func (m *Metrics) col(c *policy.Column) *colCounters {
	if cc, ok := m.cols.Load(c); ok {
		return cc.(*colCounters)
	}
	name := c.QualifiedName()
	cc := &colCounters{enc: m.ValuesEncrypted.WithLabelValues(name), dec: m.ValuesDecrypted.WithLabelValues(name), masked: m.ReaderMasked.WithLabelValues(name)}
	actual, _ := m.cols.LoadOrStore(c, cc)
	return actual.(*colCounters)
}

// upstreamDone times the upstream phase of a planned Query or Execute
// when ev is its last response.
func (m *Metrics) upstreamDone(ev backendEvent) {
	if ev.done && !ev.cur.sent.IsZero() {
		m.phaseUpstream.Observe(time.Since(ev.cur.sent).Seconds())
	}
}

// heldMetric is a counter increment or an observation a handler made on
// an event loop, held until the handler completes: a handler that must
// wait (a key to load, the search_path to read) is run again from the
// start, and what it counted the first time did not happen.
type heldMetric struct {
	c prometheus.Counter
	o prometheus.Observer
	v float64
}

// inc counts c now, or, on an event loop, when the handler completes.
func (s *session) inc(c prometheus.Counter) {
	if s.loopRun {
		s.heldMetrics = append(s.heldMetrics, heldMetric{c: c})
		return
	}
	c.Inc()
}

// observe is inc for an observation.
func (s *session) observe(o prometheus.Observer, v float64) {
	if s.loopRun {
		s.heldMetrics = append(s.heldMetrics, heldMetric{o: o, v: v})
		return
	}
	o.Observe(v)
}

// metricsDone applies the held metrics of a handler that completed
// (keep), or forgets those of one that is to run again.
func (s *session) metricsDone(keep bool) {
	if keep {
		for _, h := range s.heldMetrics {
			if h.c != nil {
				h.c.Inc()
			} else {
				h.o.Observe(h.v)
			}
		}
	}
	clear(s.heldMetrics) // drop the references
	s.heldMetrics = s.heldMetrics[:0]
}

// NewMetrics registers pgveil's series with reg. cacheStats feeds the plan
// cache counters (nil before the planner exists).
func NewMetrics(reg prometheus.Registerer, cacheStats func() rewrite.CacheStats) *Metrics {
	if cacheStats == nil {
		cacheStats = func() rewrite.CacheStats { return rewrite.CacheStats{} }
	}
	m := &Metrics{
		ConnectionsOpen: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgveil_connections_open",
			Help: "Client connections currently open, as proxy.max_client_connections counts them (a CancelRequest's connection leaves the count once recognised; refused connections are not counted)."}),
		ConnectionsTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgveil_connections_total", Help: "Client connections accepted (refused ones not included)."}),
		ConnectionsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgveil_connections_refused_total",
			Help: "Client connections refused with FATAL 53300 (too many clients), by the limit reached: max_client_connections or max_pending_startups. CancelRequests are never refused."}, []string{"reason"}),
		StartupsPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgveil_startups_pending",
			Help: "Client connections still in startup or authentication, as proxy.max_pending_startups counts them."}),
		LoopSessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgveil_event_loop_sessions",
			Help: "Sessions relayed by an event loop now (proxy.event_loops); the others in pgveil_connections_open relay on goroutines."}),
		LoopPolls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgveil_event_loop_polls_total",
			Help: "Times an event loop polled for the next message before sleeping (proxy.loop_spin), by whether one came (event) or the loop then slept (none)."}, []string{"result"}),
		LoopPollSeconds: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgveil_event_loop_poll_cpu_seconds_total",
			Help: "CPU time the event loops spent polling (proxy.loop_spin): the price of the latency it saves."}),
		LoopWaits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgveil_event_loop_waits_total",
			Help: "Messages an event loop set aside while it loaded, off the loop, what they needed: a data or blind-index key not cached (what=key), the catalog after DDL or for a relation it lacked (what=catalog)."}, []string{"what"}),
		LoopHandbacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgveil_event_loop_handbacks_total",
			Help: "Times an event loop handed a session to goroutines: for COPY of a configured table."}),
		LoopReturns: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgveil_event_loop_returns_total",
			Help: "Times a session an event loop had handed to goroutines went back to the loop, at the first moment both sides were at rest."}),
		CancelsTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgveil_cancel_requests_total", Help: "CancelRequests forwarded upstream."}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgveil_bytes_total", Help: "Protocol bytes relayed after startup, by direction."},
			[]string{"direction"}),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgveil_messages_total", Help: "Protocol messages relayed after startup, by direction."},
			[]string{"direction"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgveil_errors_total", Help: "ErrorResponses sent to clients, by SQLSTATE class and by who raised them."},
			[]string{"class", "source"}),
		UpstreamConnect: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pgveil_upstream_connect_seconds", Help: "Time to connect to the upstream server, TLS included.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}),
		TrackerDesyncs: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgveil_tracker_desyncs_total", Help: "Backend messages that did not match the expected protocol state (a pgveil bug if non-zero)."}),
		Statements: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgveil_statements_total", Help: "Statements by what pgveil did with them."},
			[]string{"kind"}),
		ValuesEncrypted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgveil_values_encrypted_total", Help: "Values sealed, by column."},
			[]string{"column"}),
		ValuesDecrypted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgveil_values_decrypted_total", Help: "Values opened, by column."},
			[]string{"column"}),
		DecryptFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgveil_decrypt_failures_total", Help: "Values that failed to open, by column and reason."},
			[]string{"column", "reason"}),
		ReaderMasked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgveil_values_masked_total", Help: "Values returned as NULL because the role is not a reader of the column."},
			[]string{"column"}),
		PhaseSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pgveil_phase_seconds", Help: "Time per phase of planned statements: plan (parse and plan, cache hits included), crypto (sealing, indexing, opening), upstream (from sending a Query or Execute to its last response).",
			Buckets: []float64{.00001, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .1, .5, 1}}, []string{"phase"}),
		ReloadsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgveil_config_reloads_total", Help: "SIGHUP config reloads by result."},
			[]string{"result"}),
		SearchPathReads: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgveil_search_path_reads_total",
			Help: "Round trips pgveil added to read a session's search_path again after the client changed it (docs/LIMITS.md)."}),
		TenantLookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgveil_tenant_lookups_total",
			Help: "Tenant lookups of UPDATEs that did not name their tenant (docs/SQL.md), by outcome: one, none, several (refused), error; and checks of UPDATEs that set it: stays, moves (refused)."}, []string{"outcome"}),
	}
	m.PlanCacheHits = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pgveil_plan_cache_hits_total", Help: "Plan cache hits."},
		func() float64 { return float64(cacheStats().Hits) })
	m.PlanCacheMisses = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pgveil_plan_cache_misses_total", Help: "Plan cache misses."},
		func() float64 { return float64(cacheStats().Misses) })
	m.PlanCacheShapeHits = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pgveil_plan_cache_shape_hits_total",
		Help: "Plan cache hits of statement texts planned from another text of their shape (same SQL, other literal values); included in the hits."},
		func() float64 { return float64(cacheStats().ShapeHits) })
	reg.MustRegister(m.ConnectionsOpen, m.ConnectionsTotal, m.ConnectionsRefused, m.StartupsPending, m.LoopSessions, m.LoopPolls, m.LoopPollSeconds, m.LoopWaits, m.LoopHandbacks, m.LoopReturns, m.CancelsTotal, m.Bytes, m.Messages, m.Errors,
		m.UpstreamConnect, m.TrackerDesyncs, m.Statements, m.ValuesEncrypted, m.ValuesDecrypted,
		m.DecryptFailures, m.ReaderMasked, m.PlanCacheHits, m.PlanCacheMisses, m.PlanCacheShapeHits, m.PhaseSeconds, m.ReloadsTotal, m.SearchPathReads, m.TenantLookups)
	for r := refusedClients; r < numRefusals; r++ {
		m.refused[r] = m.ConnectionsRefused.WithLabelValues(refusalReasons[r])
	}
	m.bytesC2S = m.Bytes.WithLabelValues("client_to_server")
	m.bytesS2C = m.Bytes.WithLabelValues("server_to_client")
	m.msgsC2S = m.Messages.WithLabelValues("client_to_server")
	m.msgsS2C = m.Messages.WithLabelValues("server_to_client")
	m.stmtPassthrough = m.Statements.WithLabelValues("passthrough")
	m.stmtRewritten = m.Statements.WithLabelValues("rewritten")
	m.stmtPinned = m.Statements.WithLabelValues("pinned")
	m.stmtReprepared = m.Statements.WithLabelValues("reprepared")
	m.phasePlan = m.PhaseSeconds.WithLabelValues("plan")
	m.phaseCrypto = m.PhaseSeconds.WithLabelValues("crypto")
	m.phaseUpstream = m.PhaseSeconds.WithLabelValues("upstream")
	return m
}

// flowCounter accumulates a direction's traffic inside one goroutine and
// publishes it once per flush, so the hot path touches no shared atomics.
type flowCounter struct {
	bytes, msgs int
}

func (f *flowCounter) add(n int) { f.bytes += n; f.msgs++ }

func (f *flowCounter) publish(bytes, msgs prometheus.Counter) {
	if f.msgs == 0 {
		return
	}
	bytes.Add(float64(f.bytes))
	msgs.Add(float64(f.msgs))
	f.bytes, f.msgs = 0, 0
}
