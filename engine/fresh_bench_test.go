package engine_test

import (
	"context"
	"testing"

	"github.com/ambit-authz/ambit/bench/cputime"
	"github.com/ambit-authz/ambit/bench/workload"
	"github.com/ambit-authz/ambit/engine"
)

// BenchmarkCheckFresh: the checks `ambit bench check` sends (random
// resource-subject pairs of the workload, so the top-level check is almost
// never cached) against an engine configured as the server's (both caches,
// the nested-group index built), over the badger store. The sets and
// sub-results shared across pairs warm up in an unmeasured pass over other
// queries. This is the engine's part of the server's CPU per check over
// gRPC (bench/RESULTS.md).
func BenchmarkCheckFresh(b *testing.B) {
	for _, name := range []string{"collab", "deep"} {
		b.Run(name, func(b *testing.B) {
			w := workload.MustNew(name, workload.Small, 1)
			s, bes := loadBackends(b, w.Schema(), w.Slice())
			be := bes[len(bes)-1] // badger
			e, err := engine.New(engine.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			ctx := context.Background()
			if err := e.Leopard(be.at.Source).Build(ctx, be.reader, s, be.at.Revision); err != nil {
				b.Fatal(err)
			}
			v := e.View(s, be.reader, be.at)
			warm := w.Queries(2)
			for range 20_000 {
				c := warm.Check()
				if _, err := v.Check(ctx, engine.CheckRequest{Resource: c.Resource, Permission: c.Permission, Subject: c.Subject, Context: c.Context}); err != nil {
					b.Fatal(err)
				}
			}
			q := w.Queries(3)
			reqs := make([]engine.CheckRequest, 200_000)
			for i := range reqs {
				c := q.Check()
				reqs[i] = engine.CheckRequest{Resource: c.Resource, Permission: c.Permission, Subject: c.Subject, Context: c.Context}
			}
			b.ReportAllocs()
			i, hits := 0, 0
			cpu := cputime.Process()
			for b.Loop() {
				res, err := v.Check(ctx, reqs[i%len(reqs)])
				if err != nil {
					b.Fatal(err)
				}
				hits += res.Stats.CacheHits
				i++
			}
			n := float64(max(i, 1))
			reportCPU(b, cpu, n)
			b.ReportMetric(float64(hits)/n, "hits/op")
		})
	}
}
