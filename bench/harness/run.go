package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/bench/workload"
	"github.com/ambit-authz/ambit/internal/v1pb"
	"github.com/ambit-authz/ambit/tuple"
)

// Op is what a run sends.
type Op string

const (
	OpCheck           Op = "check"
	OpCheckBulk       Op = "checkbulk"
	OpLookupResources Op = "lookup-resources"
	OpLookupSubjects  Op = "lookup-subjects"
	OpWrite           Op = "write"
	// OpMixed: 95% checks, 2% LookupResources, 2% LookupSubjects, 1% writes.
	OpMixed Op = "mixed"
)

// Ops lists the runnable operations.
var Ops = []Op{OpCheck, OpCheckBulk, OpLookupResources, OpLookupSubjects, OpWrite, OpMixed,
	OpAuthZENEvaluation, OpAuthZENEvaluations, OpAuthZENSearchResource}

// Config is one run.
type Config struct {
	Op          Op
	Concurrency int           // workers, each with one request in flight; default 8
	Duration    time.Duration // measured time; default 10s
	Warmup      time.Duration // unmeasured time before; 0 for none
	Seed        uint64        // query seed; worker i uses Seed*1000+i
	BulkSize    int           // checks per CheckBulkPermissions; default 10
	// WriteBatch is the number of distinct relationships each
	// WriteRelationships request TOUCHes; default 1.
	WriteBatch int
	// LookupLimit caps results per lookup (0: all).
	LookupLimit uint32
	// WriteRate, when positive, runs a writer beside the workers that
	// sends the workload's writes at this many per second, one
	// relationship each (see writer); NestFraction of them are nesting
	// edges. Its figures are reported apart (Result.Background*): the
	// workers' latencies are those of the operation under the writes.
	WriteRate    float64
	NestFraction float64
	Consistency  Consistency
	// Progress, when not nil, gets a progress line every second ("\r"-updated).
	Progress io.Writer
}

func (c Config) withDefaults() (Config, error) {
	if c.Op == "" {
		c.Op = OpCheck
	}
	if !slices.Contains(Ops, c.Op) {
		return c, fmt.Errorf("harness: unknown operation %q (want one of %v)", c.Op, Ops)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.BulkSize <= 0 {
		c.BulkSize = 10
	}
	if c.WriteBatch <= 0 {
		c.WriteBatch = 1
	}
	if c.NestFraction < 0 || c.NestFraction > 1 {
		return c, fmt.Errorf("harness: the fraction of nesting writes is %v, want 0 to 1", c.NestFraction)
	}
	if _, err := c.Consistency.proto(); err != nil {
		return c, err
	}
	return c, nil
}

// Summary is a latency distribution, in microseconds.
type Summary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_us"`
	P50   float64 `json:"p50_us"`
	P95   float64 `json:"p95_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
}

func summarize(h *Histogram) Summary {
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return Summary{Count: h.Count(), Mean: us(h.Mean()), P50: us(h.Quantile(0.5)), P95: us(h.Quantile(0.95)),
		P99: us(h.Quantile(0.99)), P999: us(h.Quantile(0.999)), Max: us(h.Max())}
}

// Result is the outcome of a run. Latencies are of successful requests only;
// a run with Errors, Mismatches or BackgroundWriteErrors above 0 is not OK,
// and every report says so.
type Result struct {
	Endpoint    string  `json:"endpoint"`
	Workload    string  `json:"workload"`
	Op          Op      `json:"op"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	// Requests counts completed requests, failed ones included.
	Requests  int64   `json:"requests"`
	PerSecond float64 `json:"ok_requests_per_second"`
	Errors    int64   `json:"errors"`
	// ErrorSamples holds up to five distinct error messages.
	ErrorSamples []string `json:"error_samples,omitempty"`
	// Checks counts answered check items (a bulk request holds several).
	Checks          int64   `json:"checks"`
	Allowed         int64   `json:"allowed"`
	AllowedFraction float64 `json:"allowed_fraction"`
	// Known counts checks whose answer the workload knows by construction;
	// Mismatches those that got another answer.
	Known           int64    `json:"known"`
	Mismatches      int64    `json:"mismatches"`
	MismatchSamples []string `json:"mismatch_samples,omitempty"`
	// Results counts lookup results streamed back.
	Results int64 `json:"lookup_results"`
	// Written counts relationships in successful write requests;
	// WrittenPerSecond is their rate.
	Written          int64   `json:"relationships_written,omitempty"`
	WrittenPerSecond float64 `json:"relationships_written_per_second,omitempty"`
	// BackgroundWrites counts the writes of the writer of
	// Config.WriteRate (BackgroundNests of them nesting edges), with their
	// errors, the slots skipped because the server fell behind by more than
	// a second, and their latency.
	BackgroundWrites        int64              `json:"background_writes,omitempty"`
	BackgroundNests         int64              `json:"background_nesting_writes,omitempty"`
	BackgroundWriteErrors   int64              `json:"background_write_errors,omitempty"`
	BackgroundWritesSkipped int64              `json:"background_writes_skipped,omitempty"`
	BackgroundWriteLatency  *Summary           `json:"background_write_latency,omitempty"`
	Latency                 Summary            `json:"latency"`
	Kinds                   map[string]Summary `json:"kinds,omitempty"` // per operation, for mixed runs
	OK                      bool               `json:"ok"`

	hist  *Histogram
	kinds map[Op]*Histogram
}

// merge adds o (another round against the same endpoint) into r.
func (r *Result) merge(o *Result) {
	r.Seconds += o.Seconds
	r.Requests += o.Requests
	r.Errors += o.Errors
	r.Checks += o.Checks
	r.Allowed += o.Allowed
	r.Known += o.Known
	r.Mismatches += o.Mismatches
	r.Results += o.Results
	r.Written += o.Written
	r.BackgroundWrites += o.BackgroundWrites
	r.BackgroundNests += o.BackgroundNests
	r.BackgroundWriteErrors += o.BackgroundWriteErrors
	r.BackgroundWritesSkipped += o.BackgroundWritesSkipped
	if o.BackgroundWriteLatency != nil {
		r.BackgroundWriteLatency = o.BackgroundWriteLatency // the last round's
	}
	r.ErrorSamples = addSamples(r.ErrorSamples, o.ErrorSamples...)
	r.MismatchSamples = addSamples(r.MismatchSamples, o.MismatchSamples...)
	r.hist.Merge(o.hist)
	for k, h := range o.kinds {
		if r.kinds[k] == nil {
			r.kinds[k] = &Histogram{}
		}
		r.kinds[k].Merge(h)
	}
	r.finish()
}

// finish computes the derived fields.
func (r *Result) finish() {
	ok := r.Requests - r.Errors
	r.PerSecond, r.WrittenPerSecond = 0, 0
	if r.Seconds > 0 {
		r.PerSecond = float64(ok) / r.Seconds
		r.WrittenPerSecond = float64(r.Written) / r.Seconds
	}
	r.AllowedFraction = 0
	if r.Checks > 0 {
		r.AllowedFraction = float64(r.Allowed) / float64(r.Checks)
	}
	r.Latency = summarize(r.hist)
	r.Kinds = nil
	if len(r.kinds) > 1 {
		r.Kinds = map[string]Summary{}
		for k, h := range r.kinds {
			r.Kinds[string(k)] = summarize(h)
		}
	}
	r.OK = r.Errors == 0 && r.Mismatches == 0 && r.BackgroundWriteErrors == 0
}

func addSamples(list []string, more ...string) []string {
	for _, s := range more {
		if len(list) < 5 && !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}

// Run runs cfg against c: the warm-up, then the measured phase.
func Run(ctx context.Context, c *Client, w *workload.Workload, cfg Config) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Warmup > 0 {
		if _, err := phase(ctx, c, w, cfg, cfg.Warmup, "warm-up"); err != nil {
			return nil, err
		}
	}
	return phase(ctx, c, w, cfg, cfg.Duration, "")
}

// Comparison is the same workload run against two endpoints in alternating
// rounds. Ratios are A over B.
type Comparison struct {
	A              *Result `json:"a"`
	B              *Result `json:"b"`
	Rounds         int     `json:"rounds"`
	PerSecondRatio float64 `json:"ok_requests_per_second_ratio"`
	P50Ratio       float64 `json:"p50_ratio"`
	P99Ratio       float64 `json:"p99_ratio"`
	OK             bool    `json:"ok"`
}

// Compare warms up both endpoints, then runs rounds rounds of
// cfg.Duration/rounds on each, alternating which goes first, with the same
// query stream for both in each round.
func Compare(ctx context.Context, a, b *Client, w *workload.Workload, cfg Config, rounds int) (*Comparison, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rounds = max(rounds, 1)
	if cfg.Warmup > 0 {
		for _, c := range []*Client{a, b} {
			if _, err := phase(ctx, c, w, cfg, cfg.Warmup, "warm-up"); err != nil {
				return nil, err
			}
		}
	}
	per := cfg.Duration / time.Duration(rounds)
	var ra, rb *Result
	for i := range rounds {
		rc := cfg
		rc.Seed = cfg.Seed + uint64(i)*7919
		order := []*Client{a, b}
		if i%2 == 1 {
			order = []*Client{b, a}
		}
		for _, c := range order {
			r, err := phase(ctx, c, w, rc, per, fmt.Sprintf("round %d/%d", i+1, rounds))
			if err != nil {
				return nil, err
			}
			dst := &ra
			if c == b {
				dst = &rb
			}
			if *dst == nil {
				*dst = r
			} else {
				(*dst).merge(r)
			}
		}
	}
	cmp := &Comparison{A: ra, B: rb, Rounds: rounds, OK: ra.OK && rb.OK}
	ratio := func(x, y float64) float64 {
		if y == 0 {
			return 0
		}
		return x / y
	}
	cmp.PerSecondRatio = ratio(ra.PerSecond, rb.PerSecond)
	cmp.P50Ratio = ratio(ra.Latency.P50, rb.Latency.P50)
	cmp.P99Ratio = ratio(ra.Latency.P99, rb.Latency.P99)
	return cmp, nil
}

// live counts shared with the progress line.
type live struct {
	requests, errors atomic.Int64
}

// phase runs cfg.Concurrency workers for d. Requests in flight at the end
// are allowed to finish, and counted.
func phase(ctx context.Context, c *Client, w *workload.Workload, cfg Config, d time.Duration, label string) (*Result, error) {
	cons, _ := cfg.Consistency.proto()
	var lv live
	workers := make([]*worker, cfg.Concurrency)
	for i := range workers {
		workers[i] = &worker{c: c, cfg: cfg, cons: cons, q: w.Queries(cfg.Seed*1000 + uint64(i)), live: &lv,
			kinds: map[Op]*Histogram{}}
	}
	name := string(cfg.Op)
	if label != "" {
		name += " " + label
	}
	stop := progress(cfg.Progress, func(el time.Duration) string {
		n := lv.requests.Load()
		return fmt.Sprintf("%s %s: %.0fs/%.0fs %d requests %.0f/s %d errors", c.Endpoint, name,
			el.Seconds(), d.Seconds(), n, float64(n)/el.Seconds(), lv.errors.Load())
	})
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	var wr *writer
	if cfg.WriteRate > 0 {
		wr = newWriter(c, w, cfg)
		wg.Go(func() { wr.run(ctx, start, end) })
	}
	for _, wk := range workers {
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				wk.one(ctx)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stop()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &Result{Endpoint: c.Endpoint, Workload: w.String(), Op: cfg.Op, Concurrency: cfg.Concurrency,
		Seconds: elapsed.Seconds(), hist: &Histogram{}, kinds: map[Op]*Histogram{}}
	for _, wk := range workers {
		r.merge(&Result{Requests: wk.requests, Errors: wk.errors, Checks: wk.checks, Allowed: wk.allowed,
			Known: wk.known, Mismatches: wk.mismatches, Results: wk.results, Written: wk.written, ErrorSamples: wk.errSamples,
			MismatchSamples: wk.misSamples, hist: &wk.hist, kinds: wk.kinds})
	}
	r.Seconds = elapsed.Seconds()
	r.finish()
	if wr != nil {
		wr.result(r)
	}
	return r, nil
}

// worker sends one request at a time. Only its own goroutine touches it.
type worker struct {
	c    *Client
	cfg  Config
	cons *v1.Consistency
	q    *workload.Queries
	live *live

	hist                                                 Histogram
	kinds                                                map[Op]*Histogram
	requests, errors, checks, allowed, known, mismatches int64
	results, written                                     int64
	errSamples, misSamples                               []string
}

// pick chooses the operation of the next request.
func (wk *worker) pick() Op {
	if wk.cfg.Op != OpMixed {
		return wk.cfg.Op
	}
	switch p := wk.q.Rand().IntN(100); {
	case p < 95:
		return OpCheck
	case p < 97:
		return OpLookupResources
	case p < 99:
		return OpLookupSubjects
	}
	return OpWrite
}

func (wk *worker) one(ctx context.Context) {
	op := wk.pick()
	start := time.Now()
	err := wk.do(ctx, op)
	d := time.Since(start)
	wk.requests++
	wk.live.requests.Add(1)
	if err != nil {
		wk.errors++
		wk.live.errors.Add(1)
		wk.errSamples = addSamples(wk.errSamples, describe(op, err))
		return
	}
	wk.hist.Record(d)
	h := wk.kinds[op]
	if h == nil {
		h = &Histogram{}
		wk.kinds[op] = h
	}
	h.Record(d)
}

func describe(op Op, err error) string {
	msg := err.Error()
	if s, ok := status.FromError(err); ok {
		msg = s.Code().String() + ": " + s.Message()
	}
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return string(op) + ": " + msg
}

var expectOf = map[v1.CheckPermissionResponse_Permissionship]workload.Expect{
	v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION:         workload.Allowed,
	v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION:          workload.Denied,
	v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION: workload.Conditional,
}

// answered records one check's answer against its expectation.
func (wk *worker) answered(ch workload.Check, p v1.CheckPermissionResponse_Permissionship) {
	wk.checks++
	got, known := expectOf[p]
	if got == workload.Allowed {
		wk.allowed++
	}
	if ch.Expect == workload.Unknown {
		return
	}
	wk.known++
	if !known || got != ch.Expect {
		wk.mismatches++
		wk.misSamples = addSamples(wk.misSamples, fmt.Sprintf("%s: got %s, want %s", ch, p, ch.Expect))
	}
}

var errBulkItem = errors.New("bulk check item failed")

func (wk *worker) do(ctx context.Context, op Op) error {
	pc := wk.c.Permissions
	switch op {
	case OpCheck:
		ch := wk.q.Check()
		cx, err := v1pb.ContextToV1(ch.Context, "caveat context")
		if err != nil {
			return err
		}
		resp, err := pc.CheckPermission(ctx, &v1.CheckPermissionRequest{Consistency: wk.cons, Resource: v1pb.ObjectToV1(ch.Resource),
			Permission: ch.Permission, Subject: v1pb.SubjectToV1(ch.Subject), Context: cx})
		if err != nil {
			return err
		}
		wk.answered(ch, resp.GetPermissionship())
	case OpCheckBulk:
		checks := make([]workload.Check, wk.cfg.BulkSize)
		items := make([]*v1.CheckBulkPermissionsRequestItem, len(checks))
		for i := range checks {
			checks[i] = wk.q.Check()
			cx, err := v1pb.ContextToV1(checks[i].Context, "caveat context")
			if err != nil {
				return err
			}
			items[i] = &v1.CheckBulkPermissionsRequestItem{Resource: v1pb.ObjectToV1(checks[i].Resource), Permission: checks[i].Permission,
				Subject: v1pb.SubjectToV1(checks[i].Subject), Context: cx}
		}
		resp, err := pc.CheckBulkPermissions(ctx, &v1.CheckBulkPermissionsRequest{Consistency: wk.cons, Items: items})
		if err != nil {
			return err
		}
		if len(resp.GetPairs()) != len(checks) {
			return fmt.Errorf("%d bulk results for %d items", len(resp.GetPairs()), len(checks))
		}
		for i, p := range resp.GetPairs() {
			if e := p.GetError(); e != nil {
				return fmt.Errorf("%w: %s: %s", errBulkItem, checks[i], e.GetMessage())
			}
			wk.answered(checks[i], p.GetItem().GetPermissionship())
		}
	case OpLookupResources:
		lr := wk.q.LookupResources()
		cx, err := v1pb.ContextToV1(lr.Context, "caveat context")
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := pc.LookupResources(ctx, &v1.LookupResourcesRequest{Consistency: wk.cons, ResourceObjectType: lr.ResourceType,
			Permission: lr.Permission, Subject: v1pb.SubjectToV1(lr.Subject), Context: cx, OptionalLimit: wk.cfg.LookupLimit})
		if err != nil {
			return err
		}
		return drain(stream.Recv, &wk.results)
	case OpLookupSubjects:
		ls := wk.q.LookupSubjects()
		cx, err := v1pb.ContextToV1(ls.Context, "caveat context")
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := pc.LookupSubjects(ctx, &v1.LookupSubjectsRequest{Consistency: wk.cons, Resource: v1pb.ObjectToV1(ls.Resource),
			Permission: ls.Permission, SubjectObjectType: ls.SubjectType, Context: cx, OptionalConcreteLimit: wk.cfg.LookupLimit})
		if err != nil {
			return err
		}
		return drain(stream.Recv, &wk.results)
	case OpAuthZENEvaluation, OpAuthZENEvaluations, OpAuthZENSearchResource:
		return wk.doAuthZEN(ctx, op)
	case OpWrite:
		updates, err := wk.writeUpdates()
		if err != nil {
			return err
		}
		if _, err := pc.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: updates}); err != nil {
			return err
		}
		wk.written += int64(len(updates))
	default:
		return fmt.Errorf("harness: operation %q cannot be sent", op)
	}
	return nil
}

// writeUpdates draws the next write request: TOUCHes of up to
// cfg.WriteBatch distinct relationships (a request naming one twice is
// refused). A workload with fewer distinct writes than that gives fewer.
func (wk *worker) writeUpdates() ([]*v1.RelationshipUpdate, error) {
	n := wk.cfg.WriteBatch
	updates := make([]*v1.RelationshipUpdate, 0, n)
	seen := make(map[tuple.Key]bool, n)
	for tries := 0; len(updates) < n && tries < 20*n; tries++ {
		rel := wk.q.Write()
		if seen[rel.Key()] {
			continue
		}
		seen[rel.Key()] = true
		r, err := v1pb.RelationshipToV1(rel)
		if err != nil {
			return nil, err
		}
		updates = append(updates, &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: r})
	}
	return updates, nil
}

// drain reads a server stream to its end, counting messages.
func drain[T any](recv func() (T, error), n *int64) error {
	for {
		_, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		*n++
	}
}

// progress writes line(elapsed) to w every second until stop is called, then
// clears it. A nil w does nothing.
func progress(w io.Writer, line func(time.Duration) string) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\x1b[K")
				return
			case <-t.C:
				fmt.Fprint(w, "\r"+line(time.Since(start))+"\x1b[K")
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
