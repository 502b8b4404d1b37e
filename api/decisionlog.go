package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ambit-authz/ambit/tuple"
)

// DecisionLogOptions configure a DecisionLog.
type DecisionLogOptions struct {
	Path string
	// Sample is the fraction of decisions recorded, in (0, 1].
	Sample float64
	// Queue bounds the decisions waiting to be written; when it is full a
	// decision is dropped (and counted) rather than slowing the check.
	// Default 16384.
	Queue int
	// MaxBytes rotates the file at this size (0: never); Keep rotated
	// files are kept (default 5).
	MaxBytes int64
	Keep     int
	Logger   *slog.Logger
}

// DecisionLog records a sample of authorization decisions (Check,
// CheckBulk, the lookups, and AuthZEN, which calls them) as JSON lines. A
// request only samples and enqueues; one goroutine formats and writes, and
// flushes every decisionFlush (or when its 64 KiB buffer fills). It is not
// fsynced: a crash loses the decisions still queued or buffered, and what
// the operating system had not written.
type DecisionLog struct {
	sample  float64
	q       chan decision
	dropped atomic.Uint64
	written atomic.Uint64
	file    *lineFile
	log     *slog.Logger
	done    chan struct{}
	mu      sync.RWMutex // add holds it to read closed; Close to set it
	closed  bool
	err     error
}

// decisionFlush is how often buffered decisions are handed to the OS.
const decisionFlush = 200 * time.Millisecond

// decision is one sampled decision, formatted by the writer.
type decision struct {
	at         time.Time
	method     string
	resource   tuple.ObjectRef
	resType    string // lookups of resources: the type looked up
	permission string
	subject    tuple.SubjectRef
	subjType   string // lookups of subjects
	result     string
	results    int // lookups: how many results were sent
	rev        tuple.Revision
	schemaHash string
	tokenID    string
	requestID  string
	latency    time.Duration
}

// OpenDecisionLog opens (appends to) the file and starts the writer.
func OpenDecisionLog(o DecisionLogOptions) (*DecisionLog, error) {
	if !(o.Sample > 0 && o.Sample <= 1) {
		return nil, errors.New("the decision sample rate must be in (0, 1]")
	}
	if o.Queue <= 0 {
		o.Queue = 16384
	}
	if o.Keep <= 0 {
		o.Keep = 5
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	f, err := openLineFile(o.Path, o.MaxBytes, o.Keep)
	if err != nil {
		return nil, err
	}
	d := &DecisionLog{sample: o.Sample, q: make(chan decision, o.Queue), file: f, log: o.Logger, done: make(chan struct{})}
	go d.run()
	return d, nil
}

// Register adds the decision log's metrics to reg.
func (d *DecisionLog) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ambit_decision_log_dropped_total", Help: "Sampled decisions dropped because the decision log's queue was full."},
			func() float64 { return float64(d.dropped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ambit_decision_log_written_total", Help: "Decisions written to the decision log."},
			func() float64 { return float64(d.written.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ambit_decision_log_lag", Help: "Sampled decisions waiting to be written."},
			func() float64 { return float64(len(d.q)) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Dropped is the number of decisions dropped so far.
func (d *DecisionLog) Dropped() uint64 { return d.dropped.Load() }

// sampled draws whether to record one decision. Safe on a nil log.
func (d *DecisionLog) sampled() bool {
	return d != nil && (d.sample >= 1 || rand.Float64() < d.sample)
}

// add enqueues a decision, or drops it if the queue is full (or the log
// is closed: a request still running at shutdown).
func (d *DecisionLog) add(e decision) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		d.dropped.Add(1)
		return
	}
	select {
	case d.q <- e:
	default:
		d.dropped.Add(1)
	}
}

// Close stops accepting decisions, writes the queued ones and closes the
// file. Call it after the servers that log decisions have stopped.
func (d *DecisionLog) Close() error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.q)
	}
	d.mu.Unlock()
	<-d.done
	return d.err
}

func (d *DecisionLog) run() {
	defer close(d.done)
	var buf []byte
	// Lines go out when the 64 KiB buffer fills or every decisionFlush,
	// not one write call per decision.
	tick := time.NewTicker(decisionFlush)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-d.q:
			if !ok {
				if err := d.file.close(); err != nil {
					d.fail(err)
				}
				return
			}
			buf = e.appendJSON(buf[:0])
			if err := d.file.write(buf); err != nil {
				d.fail(err)
			}
			d.written.Add(1)
		case <-tick.C:
			if err := d.file.flush(); err != nil {
				d.fail(err)
			}
		}
	}
}

func (d *DecisionLog) fail(err error) {
	if d.err == nil {
		d.err = err
		d.log.Error("decision log: write failed; decisions are being lost", "err", err)
	}
}

type decisionJSON struct {
	Time       string `json:"time"`
	Method     string `json:"method"`
	Resource   string `json:"resource,omitempty"`
	Permission string `json:"permission"`
	Subject    string `json:"subject,omitempty"`
	Result     string `json:"result"`
	Results    *int   `json:"results,omitempty"`
	Revision   uint64 `json:"revision"`
	SchemaHash string `json:"schema_hash,omitempty"`
	TokenID    string `json:"token_id,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
	LatencyUS  int64  `json:"latency_us"`
}

func (e decision) appendJSON(buf []byte) []byte {
	j := decisionJSON{Time: e.at.UTC().Format(time.RFC3339Nano), Method: e.method, Permission: e.permission, Result: e.result,
		Revision: uint64(e.rev), SchemaHash: e.schemaHash, TokenID: e.tokenID, RequestID: e.requestID, LatencyUS: e.latency.Microseconds()}
	switch {
	case e.resType != "":
		j.Resource = e.resType
	case e.resource.Type != "":
		j.Resource = e.resource.String()
	}
	switch {
	case e.subjType != "":
		j.Subject = e.subjType
	case e.subject.Type != "":
		j.Subject = e.subject.String()
	}
	if e.result == "" {
		j.Results = &e.results
	}
	b, _ := json.Marshal(j) // plain strings and numbers: cannot fail
	return append(buf, b...)
}

// decide records one decision if it is sampled. Safe when the server has
// no decision log.
func (s *Server) decide(ctx context.Context, e decision, start time.Time) {
	d := s.decisions
	if !d.sampled() {
		return
	}
	e.at = time.Now()
	e.latency = e.at.Sub(start)
	if cs, _, err := s.schemas.entry(e.rev); err == nil {
		e.schemaHash = cs.hash.String()
	}
	if c, ok := CallerFrom(ctx); ok {
		e.tokenID = c.TokenID
	}
	e.requestID = requestIDFrom(ctx) // gRPC metadata or an HTTP front end's header, cut to raft.MaxRequestID
	d.add(e)
}
