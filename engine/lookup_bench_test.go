package engine_test

import (
	"context"
	"testing"

	"github.com/ambit-authz/ambit/bench/cputime"
	"github.com/ambit-authz/ambit/bench/workload"
	"github.com/ambit-authz/ambit/engine"
)

// BenchmarkLookupCollabMedium: the LookupResources requests of the collab
// workload (a random user's workflows or datasets, `view`) on collab medium
// over the badger store, in each engine mode, the same 64 requests cycled.
// "cached" has seen each request once before, so it measures a lookup whose
// checks are in the result cache; a server answering many users sits between
// "sets" and "cached".
//
//	go test -run '^$' -bench LookupCollabMedium -benchtime 200x ./engine
func BenchmarkLookupCollabMedium(b *testing.B) {
	w := workload.MustNew("collab", workload.Medium, 1)
	s, bes := loadBackends(b, w.Schema(), w.Slice())
	q := w.Queries(7)
	reqs := make([]engine.LookupResourcesRequest, 64)
	for i := range reqs {
		l := q.LookupResources()
		reqs[i] = engine.LookupResourcesRequest{ResourceType: l.ResourceType, Permission: l.Permission, Subject: l.Subject, Context: l.Context}
	}
	for _, be := range bes {
		for _, mode := range modes {
			b.Run(be.name+"/"+mode, func(b *testing.B) {
				v := newEngine(b, mode).View(s, be.reader, be.at)
				ctx := context.Background()
				lookup := func(r engine.LookupResourcesRequest) int {
					n := 0
					for _, err := range v.LookupResources(ctx, r) {
						if err != nil {
							b.Fatal(err)
						}
						n++
					}
					return n
				}
				if mode != "cold" {
					for _, r := range reqs {
						lookup(r)
					}
				}
				cpu, i, results := cputime.Process(), 0, 0
				for b.Loop() {
					results += lookup(reqs[i%len(reqs)])
					i++
				}
				reportCPU(b, cpu, float64(i))
				b.ReportMetric(float64(results)/float64(i), "results/op")
			})
		}
	}
}
