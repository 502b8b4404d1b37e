package api

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/ambit-authz/ambit/engine"
)

// Metrics are the server's Prometheus metrics, all named ambit_*.
type Metrics struct {
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	dispatches  prometheus.Counter
	reads       prometheus.Counter
	cacheHits   prometheus.Counter
	cacheMisses prometheus.Counter
	caveatEvals prometheus.Counter
	deduped     prometheus.Counter

	// byMethod holds each method's series once resolved (string ->
	// *methodSeries): a label lookup hashes the label values and takes a
	// lock on every call.
	byMethod sync.Map
}

// methodSeries are one method's latency observer and its request counters
// by status code, each made on the method's first call with that code (as
// WithLabelValues would), so /metrics shows no series that never counted.
type methodSeries struct {
	latency prometheus.Observer
	codes   [maxCode + 1]atomic.Pointer[prometheus.Counter]
}

const maxCode = codes.Unauthenticated // the largest code gRPC defines

// call records one finished call of method.
func (m *Metrics) call(method string, code codes.Code, d time.Duration) {
	ms, ok := m.byMethod.Load(method)
	if !ok {
		ms, _ = m.byMethod.LoadOrStore(method, &methodSeries{latency: m.latency.WithLabelValues(method)})
	}
	se := ms.(*methodSeries)
	if code > maxCode {
		m.requests.WithLabelValues(method, code.String()).Inc()
	} else {
		c := se.codes[code].Load()
		if c == nil {
			cnt := m.requests.WithLabelValues(method, code.String())
			se.codes[code].Store(&cnt)
			c = &cnt
		}
		(*c).Inc()
	}
	se.latency.Observe(d.Seconds())
}

// NewMetrics registers the metrics on reg. applied and role feed the
// ambit_applied_revision and ambit_raft_state gauges (either may be nil).
func NewMetrics(reg prometheus.Registerer, applied func() float64, role func() float64) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ambit_grpc_requests_total",
			Help: "gRPC requests handled, by full method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ambit_grpc_request_duration_seconds",
			Help:    "gRPC request latency (to the end of the stream for streaming calls), by full method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method"}),
		dispatches:  prometheus.NewCounter(prometheus.CounterOpts{Name: "ambit_check_dispatches_total", Help: "Sub-problems the check engine evaluated."}),
		reads:       prometheus.NewCounter(prometheus.CounterOpts{Name: "ambit_check_reads_total", Help: "Store reads issued by the check engine."}),
		cacheHits:   prometheus.NewCounter(prometheus.CounterOpts{Name: "ambit_check_cache_hits_total", Help: "Check result cache hits."}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{Name: "ambit_check_cache_misses_total", Help: "Check result cache misses."}),
		caveatEvals: prometheus.NewCounter(prometheus.CounterOpts{Name: "ambit_check_caveat_evaluations_total", Help: "Caveat expressions evaluated."}),
		deduped:     prometheus.NewCounter(prometheus.CounterOpts{Name: "ambit_check_deduplicated_total", Help: "Sub-problems answered by an identical evaluation in flight for another request."}),
	}
	cs := []prometheus.Collector{m.requests, m.latency, m.dispatches, m.reads, m.cacheHits, m.cacheMisses, m.caveatEvals, m.deduped}
	if applied != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ambit_applied_revision", Help: "Latest revision applied to the local store."}, applied))
	}
	if role != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ambit_raft_state", Help: "Raft role of this node: 0 unknown, 1 follower, 2 candidate, 3 leader, 4 shutdown."}, role))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe adds one request's engine statistics. Safe on a nil *Metrics.
func (m *Metrics) observe(st engine.Stats) {
	if m == nil {
		return
	}
	m.dispatches.Add(float64(st.Dispatches))
	m.reads.Add(float64(st.Reads))
	m.cacheHits.Add(float64(st.CacheHits))
	m.cacheMisses.Add(float64(st.CacheMisses))
	m.caveatEvals.Add(float64(st.CaveatEvals))
	m.deduped.Add(float64(st.Deduplicated))
}
