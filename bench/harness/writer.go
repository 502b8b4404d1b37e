package harness

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/ambit-authz/ambit/bench/workload"
	"github.com/ambit-authz/ambit/internal/v1pb"
	"github.com/ambit-authz/ambit/tuple"
)

// backgroundWriters is how many WriteRelationships a background writer keeps
// in flight at most: enough for Config.WriteRate at a few milliseconds per
// write, and a bound when the server falls behind.
const backgroundWriters = 16

// writer sends the workload's writes at a fixed rate beside a run's
// workers (Config.WriteRate): one TOUCH per request, on a schedule that
// does not wait for the previous write (at most backgroundWriters in
// flight). A fraction (Config.NestFraction) are nesting edges instead: the
// write's resource T:a#r gets T:<new>#r as a subject set (a fresh empty
// group nested in a, say), and every second such write deletes the oldest
// edge it added, so the nesting changes without growing.
type writer struct {
	c    *Client
	cfg  Config
	q    *workload.Queries
	mu   sync.Mutex // guards q, nested and next
	next int
	// nested holds the nesting edges added and not yet deleted, oldest
	// first.
	nested []tuple.Relationship

	hist            Histogram // guarded by histMu
	histMu          sync.Mutex
	writes, nests   atomic.Int64
	errors, skipped atomic.Int64
	errSamples      []string // guarded by histMu
}

func newWriter(c *Client, w *workload.Workload, cfg Config) *writer {
	return &writer{c: c, cfg: cfg, q: w.Queries(cfg.Seed*1000 + 999)}
}

// update draws the next write; added is the nesting edge it adds, if any,
// to be recorded once written (see written).
func (wr *writer) update() (u *v1.RelationshipUpdate, nest bool, added *tuple.Relationship, err error) {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	rel := wr.q.Write()
	op := v1.RelationshipUpdate_OPERATION_TOUCH
	nest = wr.cfg.NestFraction > 0 && wr.q.Rand().Float64() < wr.cfg.NestFraction
	if nest {
		wr.next++
		// Every second nesting write deletes the oldest edge written
		// (not one still in flight).
		if wr.next%2 == 0 && len(wr.nested) > 0 {
			rel, op = wr.nested[0], v1.RelationshipUpdate_OPERATION_DELETE
			wr.nested = wr.nested[1:]
		} else {
			rel.Subject = tuple.SubjectRef{Type: rel.Resource.Type, ID: fmt.Sprintf("bench-nest-%d-%d", wr.cfg.Seed, wr.next), Relation: rel.Relation}
			added = &rel
		}
	}
	r, err := v1pb.RelationshipToV1(rel)
	return &v1.RelationshipUpdate{Operation: op, Relationship: r}, nest, added, err
}

// written records a nesting edge as written: a later write may delete it.
func (wr *writer) written(rel *tuple.Relationship) {
	wr.mu.Lock()
	wr.nested = append(wr.nested, *rel)
	wr.mu.Unlock()
}

// run writes until end or ctx is done. A slot whose time has passed by more
// than a second is skipped (counted), so a server that falls behind is not
// sent a burst.
func (wr *writer) run(ctx context.Context, start, end time.Time) {
	period := time.Duration(float64(time.Second) / wr.cfg.WriteRate)
	var slot atomic.Int64
	var wg sync.WaitGroup
	for range backgroundWriters {
		wg.Go(func() {
			for ctx.Err() == nil {
				at := start.Add(time.Duration(slot.Add(1)-1) * period)
				if !at.Before(end) {
					return
				}
				if d := time.Until(at); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				} else if d < -time.Second {
					wr.skipped.Add(1)
					continue
				}
				u, nest, added, err := wr.update()
				t0 := time.Now()
				if err == nil {
					_, err = wr.c.Permissions.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{u}})
				}
				if err == nil && added != nil {
					wr.written(added)
				}
				took := time.Since(t0)
				wr.histMu.Lock()
				if err != nil {
					wr.errors.Add(1)
					wr.errSamples = addSamples(wr.errSamples, err.Error())
				} else {
					wr.hist.Record(took)
					wr.writes.Add(1)
					if nest {
						wr.nests.Add(1)
					}
				}
				wr.histMu.Unlock()
			}
		})
	}
	wg.Wait()
}

// result adds the writer's figures to r.
func (wr *writer) result(r *Result) {
	r.BackgroundWrites = wr.writes.Load()
	r.BackgroundNests = wr.nests.Load()
	r.BackgroundWriteErrors = wr.errors.Load()
	r.BackgroundWritesSkipped = wr.skipped.Load()
	r.ErrorSamples = addSamples(r.ErrorSamples, wr.errSamples...)
	s := summarize(&wr.hist)
	r.BackgroundWriteLatency = &s
	r.finish()
}
