package api

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// followLeopard keeps the engine's nested-group index of the store's data
// current (engine.Leopard): it builds the index at the applied revision,
// then applies the change feed after it as the store commits, until the
// server stops or the store closes. The index answers a check only at
// revisions it has followed; until it catches up with a commit, checks at
// the new revision walk the nesting.
//
// It rebuilds when the feed it needs has been garbage-collected or the
// store's applied revision went back (a snapshot restore). Once the data
// exceeded --leopard-max-edges it stays empty (checks walk) until the
// server restarts.
func (s *Server) followLeopard(idx *engine.Leopard) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	var woke time.Time // zero before the first build
	for {
		changed := s.store.Changed() // before reading, so no commit is missed
		err := s.leopardStep(ctx, idx)
		if err == nil && !woke.IsZero() {
			s.leopardLag.Observe(time.Since(woke).Seconds())
		}
		switch {
		case errors.Is(err, store.ErrClosed) || ctx.Err() != nil:
			return
		case errors.Is(err, engine.ErrTooMany):
			s.log.Warn("nested-group index disabled: checks walk nested groups", "err", err)
			return
		case err != nil:
			s.log.Warn("nested-group index: will retry at the next commit", "err", err)
		}
		select {
		case <-changed:
			woke = time.Now()
		case <-ctx.Done():
			return
		}
	}
}

// newLeopardLag is the histogram of how long the index takes to follow a
// commit: from the follower waking at it (or, when commits came while it
// worked, going on at once) to the index through the revision applied then.
// Checks at revisions the index has not reached walk the nesting.
func newLeopardLag() followLag {
	return followLag{prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ambit_leopard_follow_seconds",
		Help:    "From the nested-group index's follower waking at a commit to the index answering at the revision then applied.",
		Buckets: prometheus.ExponentialBuckets(5e-6, 1.25, 60),
	})}
}

// followLag holds the follower's histogram (newLeopardLag).
type followLag struct{ prometheus.Histogram }

// leopardStep brings idx up to the store's applied revision.
func (s *Server) leopardStep(ctx context.Context, idx *engine.Leopard) error {
	through, ready := idx.Through()
	applied := s.store.AppliedRevision()
	if ready && applied < through {
		ready = false // the store went back: rebuild
	}
	if ready {
		err := s.leopardApply(ctx, idx, through)
		if !errors.Is(err, store.ErrRevisionCompacted) {
			return err
		}
		applied = s.store.AppliedRevision()
	}
	return s.leopardBuild(ctx, idx, applied)
}

// leopardApply applies the change feed after through, up to at least the
// revision applied when it starts, then advances the index to that revision
// (the last revisions may have written nothing the feed records).
func (s *Server) leopardApply(ctx context.Context, idx *engine.Leopard, through tuple.Revision) error {
	applied := s.store.AppliedRevision() // before the feed is read: it holds every change up to here
	var changes []engine.IndexChange
	for piece, err := range s.store.ChangePieces(ctx, through) {
		if err != nil {
			return err
		}
		changes = changes[:0]
		for _, u := range piece.Updates {
			changes = append(changes, engine.IndexChange{Delete: u.Op == store.OpDelete, Rel: u.Rel})
		}
		if err := idx.Apply(piece.Revision, changes, piece.More); err != nil {
			return err
		}
	}
	idx.Advance(applied)
	return nil
}

// leopardBuild builds idx from the store at rev, with the schema in force
// there (none: an empty index).
func (s *Server) leopardBuild(ctx context.Context, idx *engine.Leopard, rev tuple.Revision) error {
	snap, err := s.store.Snapshot(rev)
	if err != nil {
		return err
	}
	sch, _, err := s.schemas.at(rev)
	if err != nil && !errors.Is(err, errNoSchema) {
		return err
	}
	return idx.Build(ctx, snap.WithExpired(), sch, rev)
}

// LeopardMetrics returns the nested-group index's metrics (ambit_leopard_*),
// read at each scrape, for a Prometheus registry; nil when the index is
// disabled.
func (s *Server) LeopardMetrics() prometheus.Collector {
	if s.leopard == nil {
		return nil
	}
	return leopardCollector{s.leopard, s.leopardLag}
}

type leopardCollector struct {
	idx *engine.Leopard
	lag followLag
}

var leopardDescs = struct {
	ready, through, nodes, edges, special, overLimit, builds, buildSeconds, served, fallbacks *prometheus.Desc
}{
	ready:        prometheus.NewDesc("ambit_leopard_ready", "1 when the nested-group index answers checks (built, within --leopard-max-edges).", nil, nil),
	through:      prometheus.NewDesc("ambit_leopard_through_revision", "Last revision whose changes the nested-group index applied.", nil, nil),
	nodes:        prometheus.NewDesc("ambit_leopard_nodes", "Objects with nested subject sets of their own relation in the index.", nil, nil),
	edges:        prometheus.NewDesc("ambit_leopard_edges", "Nesting edges (typ:a#rel@typ:b#rel) the index holds.", nil, nil),
	special:      prometheus.NewDesc("ambit_leopard_special_edges", "Nesting edges with a caveat or an expiration, which checks read and evaluate themselves.", nil, nil),
	overLimit:    prometheus.NewDesc("ambit_leopard_over_limit", "1 when the index is empty because the data exceeded --leopard-max-edges.", nil, nil),
	builds:       prometheus.NewDesc("ambit_leopard_builds_total", "Builds of the nested-group index from the store.", nil, nil),
	buildSeconds: prometheus.NewDesc("ambit_leopard_build_seconds", "Duration of the last build of the nested-group index.", nil, nil),
	served:       prometheus.NewDesc("ambit_leopard_served_total", "Evaluations of a nested relation the index answered the nesting of.", nil, nil),
	fallbacks:    prometheus.NewDesc("ambit_leopard_fallbacks_total", "Evaluations of a nested relation that walked because the index did not cover their revision or was not ready.", nil, nil),
}

func (c leopardCollector) Describe(ch chan<- *prometheus.Desc) {
	d := &leopardDescs
	for _, x := range []*prometheus.Desc{d.ready, d.through, d.nodes, d.edges, d.special, d.overLimit, d.builds, d.buildSeconds, d.served, d.fallbacks} {
		ch <- x
	}
	if c.lag.Histogram != nil {
		c.lag.Describe(ch)
	}
}

func (c leopardCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.idx.Stats()
	d := &leopardDescs
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	gauge := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v)
	}
	counter := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v)
	}
	gauge(d.ready, b(st.Ready))
	gauge(d.through, float64(st.Through))
	gauge(d.nodes, float64(st.Nodes))
	gauge(d.edges, float64(st.Edges))
	gauge(d.special, float64(st.SpecialEdges))
	gauge(d.overLimit, b(st.OverLimit))
	counter(d.builds, float64(st.Builds))
	gauge(d.buildSeconds, st.BuildTime.Seconds())
	counter(d.served, float64(st.Served))
	counter(d.fallbacks, float64(st.Fallbacks))
	if c.lag.Histogram != nil {
		c.lag.Collect(ch)
	}
}
