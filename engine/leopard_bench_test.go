package engine_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/bench/cputime"
	"github.com/ambit-authz/ambit/bench/memindex"
	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// Benchmarks of the nested-group index against the walk, measured in the
// same run over the same fixtures:
//
//	go test -run '^$' -bench 'Leopard' -count 5 ./engine

// runLeopardChecks benchmarks reqs on every backend, cold (no result or
// read cache) and cached, with the index ("leopard=on", built before the
// timer starts) and without it ("leopard=off": the walk).
func runLeopardChecks(b *testing.B, s *schema.Schema, backends []backend, reqs []engine.CheckRequest, want engine.Permissionship) {
	for _, be := range backends {
		if be.name == "scan" {
			continue
		}
		for _, mode := range []string{"cold", "cached"} {
			for _, on := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/leopard=off", be.name, mode)
				if on {
					name = fmt.Sprintf("%s/%s/leopard=on", be.name, mode)
				}
				b.Run(name, func(b *testing.B) {
					cfg := engine.Config{LeopardMaxEdges: -1}
					if mode == "cold" {
						cfg.CacheMaxCost, cfg.ReadCacheMaxCost = -1, -1
					}
					if on {
						cfg.LeopardMaxEdges = 0 // the default
					}
					e, err := engine.New(cfg)
					if err != nil {
						b.Fatal(err)
					}
					defer e.Close()
					ctx := context.Background()
					if on {
						if err := e.Leopard(be.at.Source).Build(ctx, be.reader, s, be.at.Revision); err != nil {
							b.Fatal(err)
						}
					}
					v := e.View(s, be.reader, be.at)
					passes := 1
					if mode == "cached" {
						passes = 3
					}
					for range passes {
						for _, r := range reqs {
							res, err := v.Check(ctx, r)
							if err != nil {
								b.Fatal(err)
							}
							if res.Permissionship != want {
								b.Fatalf("%s#%s@%s: %s, want %s", r.Resource, r.Permission, r.Subject, res.Permissionship, want)
							}
						}
					}
					i, reads := 0, 0
					cpu := cputime.Process()
					for b.Loop() {
						res, err := v.Check(ctx, reqs[i%len(reqs)])
						if err != nil {
							b.Fatal(err)
						}
						reads += res.Stats.Reads
						i++
					}
					reportCPU(b, cpu, float64(max(i, 1)))
					b.ReportMetric(float64(reads)/float64(max(i, 1)), "reads/op")
					if on && e.Leopard(be.at.Source).Stats().Served == 0 && mode == "cold" {
						b.Fatal("the index answered nothing")
					}
				})
			}
		}
	}
}

// BenchmarkLeopardCheckNested: the deep workload, chains of 4 and 16 nested
// groups (BenchmarkCheckNested's fixtures).
func BenchmarkLeopardCheckNested(b *testing.B) {
	for _, depth := range []int{4, 16} {
		rels, reqs := chains(200, depth)
		s, bes := loadBackends(b, benchSchema, rels)
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) { runLeopardChecks(b, s, bes, reqs, engine.HasPermission) })
	}
}

// wideNesting is a group with 10k descendants: top holds 100 groups of 100
// groups each; every leaf group has one user.
func wideNesting() []tuple.Relationship { return nestingOf(100, 100) }

// nestingOf is top holding m groups of l groups each; every leaf group has
// one user.
func nestingOf(m, l int) []tuple.Relationship {
	rels := []tuple.Relationship{rel("document:d#viewer@group:top#member")}
	for i := range m {
		rels = append(rels, rel(fmt.Sprintf("group:top#member@group:m%d#member", i)))
		for j := range l {
			rels = append(rels, rel(fmt.Sprintf("group:m%d#member@group:l%d_%d#member", i, i, j)))
			rels = append(rels, rel(fmt.Sprintf("group:l%d_%d#member@user:u%d_%d", i, j, i, j)))
		}
	}
	return rels
}

// BenchmarkLeopardCheckWideNesting: a document viewable by a group with
// 10,100 nested groups; a member of one leaf (allowed) and a user in none
// (denied: the whole nesting is examined).
func BenchmarkLeopardCheckWideNesting(b *testing.B) {
	s, bes := loadBackends(b, benchSchema, wideNesting())
	b.Run("member", func(b *testing.B) {
		var reqs []engine.CheckRequest
		for i := range 10 {
			reqs = append(reqs, check("document:d", "view", fmt.Sprintf("user:u%d_%d", i*7%100, i*13%100)))
		}
		runLeopardChecks(b, s, bes, reqs, engine.HasPermission)
	})
	b.Run("nonmember", func(b *testing.B) {
		runLeopardChecks(b, s, bes, []engine.CheckRequest{check("document:d", "view", "user:nobody")}, engine.NoPermission)
	})
}

// BenchmarkLeopardApply: maintenance of the index at apply, on the nesting
// of BenchmarkLeopardCheckWideNesting (a group with 10,100 descendants):
// one revision that adds, then one that removes, a nesting edge over top
// (group:above#member@group:top#member) or under it (a new child of top, or
// of top's first child). Reports the p50 and p99 of one Apply.
func BenchmarkLeopardApply(b *testing.B) {
	s, err := schema.Compile("bench.zed", benchSchema)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, edge string }{
		{"above-top", "group:above#member@group:top#member"},
		{"under-top", "group:top#member@group:new#member"},
		{"under-m0", "group:m0#member@group:new#member"},
	} {
		b.Run(c.name, func(b *testing.B) {
			e, err := engine.New(engine.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			m := memindex.New(wideNesting())
			idx := e.Leopard(engine.NewSource())
			if err := idx.Build(context.Background(), m, s, 1); err != nil {
				b.Fatal(err)
			}
			edge := rel(c.edge)
			add, del := []engine.IndexChange{{Rel: edge}}, []engine.IndexChange{{Delete: true, Rel: edge}}
			rev := tuple.Revision(1)
			var took []time.Duration
			for b.Loop() {
				for _, ch := range [][]engine.IndexChange{add, del} {
					rev++
					t0 := time.Now()
					if err := idx.Apply(rev, ch, false); err != nil {
						b.Fatal(err)
					}
					took = append(took, time.Since(t0))
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns/apply")
			b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds()), "p99-ns/apply")
			if st := idx.Stats(); st.Edges != 10_100 {
				b.Fatalf("the index holds %d edges after the adds and removes, want 10100", st.Edges)
			}
		})
	}
}

// BenchmarkLeopardLookupSubjects: LookupSubjects (document#view, users) and
// ResourceAccess ([view], users) over the deep workload's chains of 16 nested
// groups, and over a group with 1,010 nested groups (10 of 100; every
// candidate's check walks them all without the index), walking the nesting
// level by level ("leopard=off") or taking it from the index
// ("leopard=on"), with no result or read cache.
//
//	go test -run '^$' -bench LeopardLookupSubjects -count 5 ./engine
func BenchmarkLeopardLookupSubjects(b *testing.B) {
	chainRels, chainReqs := chains(200, 16)
	var docs []tuple.ObjectRef
	for _, r := range chainReqs {
		docs = append(docs, r.Resource)
	}
	for _, fx := range []struct {
		name string
		rels []tuple.Relationship
		docs []tuple.ObjectRef
		want int // subjects per lookup
	}{
		{"depth=16", chainRels, docs, 1},
		{"wide=1010", nestingOf(10, 100), []tuple.ObjectRef{{Type: "document", ID: "d"}}, 1_000},
	} {
		s, bes := loadBackends(b, benchSchema, fx.rels)
		for _, be := range bes {
			if be.name == "scan" {
				continue
			}
			for _, call := range []string{"LookupSubjects", "ResourceAccess"} {
				for _, on := range []bool{false, true} {
					b.Run(fmt.Sprintf("%s/%s/%s/leopard=%v", fx.name, be.name, call, map[bool]string{false: "off", true: "on"}[on]), func(b *testing.B) {
						cfg := engine.Config{LeopardMaxEdges: -1, CacheMaxCost: -1, ReadCacheMaxCost: -1}
						if on {
							cfg.LeopardMaxEdges = 0
						}
						e, err := engine.New(cfg)
						if err != nil {
							b.Fatal(err)
						}
						defer e.Close()
						ctx := context.Background()
						if on {
							if err := e.Leopard(be.at.Source).Build(ctx, be.reader, s, be.at.Revision); err != nil {
								b.Fatal(err)
							}
						}
						v := e.View(s, be.reader, be.at)
						lookup := func(doc tuple.ObjectRef) int {
							n := 0
							if call == "LookupSubjects" {
								for _, err := range v.LookupSubjects(ctx, engine.LookupSubjectsRequest{Resource: doc, Permission: "view", SubjectType: "user"}) {
									if err != nil {
										b.Fatal(err)
									}
									n++
								}
								return n
							}
							for _, err := range v.ResourceAccess(ctx, engine.ResourceAccessRequest{Resource: doc, Ranks: []string{"view"}, SubjectType: "user"}) {
								if err != nil {
									b.Fatal(err)
								}
								n++
							}
							return n
						}
						i := 0
						cpu := cputime.Process()
						for b.Loop() {
							if got := lookup(fx.docs[i%len(fx.docs)]); got != fx.want {
								b.Fatalf("%d subjects, want %d", got, fx.want)
							}
							i++
						}
						reportCPU(b, cpu, float64(max(i, 1)))
					})
				}
			}
		}
	}
}
