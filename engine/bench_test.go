package engine_test

// In-process benchmarks of the engine over the badger store and, as
// baselines measured in the same run, two in-memory readers: "scan"
// (enginetest.Memory, which scans every relationship on every query; only on
// small fixtures) and "memindex" (bench/memindex, binary search over sorted
// slices: what the engine costs when reads cost almost nothing).
//
// Besides ns/op (wall time) every benchmark reports cpu-ns/op, the process
// CPU time per operation, which a loaded machine inflates far less.
//
// "cold" runs an engine with both caches disabled, so every check walks the
// graph and reads the store; "sets" keeps the read cache (the relationships
// of one resource's relation, per revision) but not the result cache, so
// every check walks the graph over sets read before; "cached" runs the
// default engine. "sets" and "cached" run after warm-up passes over the same
// requests.
//
//	go test -run '^$' -bench . -count 5 ./engine
//
// Each benchmark builds its fixtures once, in its parent function, in a
// temporary directory removed at its end.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/bench/cputime"
	"github.com/ambit-authz/ambit/bench/memindex"
	"github.com/ambit-authz/ambit/bench/workload"
	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

var _ engine.Reader = (*store.Snapshot)(nil)

const benchSchema = `
definition user {}

definition group {
	relation member: user | group#member
}

definition folder {
	relation viewer: user | group#member
	permission view = viewer
}

definition document {
	relation viewer: user | group#member
	relation parent: folder
	permission view = viewer + parent->view
}
`

// backend is one reader holding a fixture's relationships.
type backend struct {
	name   string
	reader engine.Reader
	at     engine.Snapshot
}

// scanLimit bounds the fixtures the scanning reader gets: it reads every
// relationship on every query.
const scanLimit = 5_000

// loadBackends loads rels into the badger store (in b's temp dir) and the
// in-memory readers.
func loadBackends(b *testing.B, src string, rels []tuple.Relationship) (*schema.Schema, []backend) {
	b.Helper()
	s, err := schema.Compile("bench.zed", src)
	if err != nil {
		b.Fatal(err)
	}
	var out []backend
	if len(rels) <= scanLimit {
		m := enginetest.NewMemory(rels...)
		out = append(out, backend{"scan", m, m.Snapshot(1)})
	}
	x := memindex.New(rels)
	out = append(out, backend{"memindex", x, x.Snapshot(1)})
	st, err := store.Open(store.Options{Dir: b.TempDir(), GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	// Relationships first, into the empty store, then the schema: the engine
	// takes the schema from the caller, and a bulk import into an empty
	// store is the store's fastest path.
	now := time.Now()
	if err := st.Import(1, now, rels); err != nil {
		b.Fatal(err)
	}
	if err := st.WriteSchema(2, now, s.Source); err != nil {
		b.Fatal(err)
	}
	snap, err := st.Snapshot(2)
	if err != nil {
		b.Fatal(err)
	}
	return s, append(out, backend{"badger", snap, engine.Snapshot{Source: engine.NewSource(), Revision: 2, Time: snap.Time()}})
}

// modes are the engine configurations benchmarks compare: no caches,
// the read cache only (every check walks the graph, but the sets it reads
// come from memory after the first pass), and both caches.
var modes = []string{"cold", "sets", "cached"}

func newEngine(b *testing.B, mode string) *engine.Engine {
	b.Helper()
	var cfg engine.Config
	switch mode {
	case "cold":
		cfg = engine.Config{CacheMaxCost: -1, ReadCacheMaxCost: -1}
	case "sets":
		cfg = engine.Config{CacheMaxCost: -1}
	case "cached":
	default:
		b.Fatalf("unknown mode %q", mode)
	}
	e, err := engine.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.Close)
	return e
}

func rel(s string) tuple.Relationship { return tuple.MustParse(s) }

func check(res, perm, subj string) engine.CheckRequest {
	r, err := tuple.ParseObject(res)
	if err != nil {
		panic(err)
	}
	sub, err := tuple.ParseSubject(subj)
	if err != nil {
		panic(err)
	}
	return engine.CheckRequest{Resource: r, Permission: perm, Subject: sub}
}

// runChecks benchmarks reqs, cycled, on every backend, cold and cached.
// want, when not nil, is the answer every request must get.
func runChecks(b *testing.B, s *schema.Schema, backends []backend, reqs []engine.CheckRequest, want *engine.Permissionship) {
	for _, be := range backends {
		for _, mode := range modes {
			b.Run(be.name+"/"+mode, func(b *testing.B) {
				v := newEngine(b, mode).View(s, be.reader, be.at)
				ctx := context.Background()
				passes := 1
				if mode != "cold" {
					passes = 3 // the caches admit a key after it has been seen
				}
				for range passes {
					for _, r := range reqs {
						res, err := v.Check(ctx, r)
						if err != nil {
							b.Fatal(err)
						}
						if want != nil && res.Permissionship != *want {
							b.Fatalf("%s#%s@%s: %s, want %s", r.Resource, r.Permission, r.Subject, res.Permissionship, *want)
						}
					}
				}
				var allowed, reads, dispatches, hits int
				i := 0
				cpu := cputime.Process()
				for b.Loop() {
					res, err := v.Check(ctx, reqs[i%len(reqs)])
					if err != nil {
						b.Fatal(err)
					}
					i++
					if res.Permissionship == engine.HasPermission {
						allowed++
					}
					reads += res.Stats.Reads
					dispatches += res.Stats.Dispatches
					hits += res.Stats.CacheHits
				}
				n := float64(max(i, 1))
				reportCPU(b, cpu, n)
				b.ReportMetric(float64(allowed)/n, "allowed/op")
				b.ReportMetric(float64(reads)/n, "reads/op")
				b.ReportMetric(float64(dispatches)/n, "dispatches/op")
				if mode == "cached" {
					b.ReportMetric(float64(hits)/n, "hits/op")
				}
			})
		}
	}
}

// reportCPU reports the process CPU time per operation since start: on a
// shared machine wall time (ns/op) grows with other processes' load, CPU time
// far less. It includes GC and badger's background goroutines.
func reportCPU(b *testing.B, start time.Duration, ops float64) {
	if cputime.Supported() && ops > 0 {
		b.ReportMetric(float64(cputime.Process()-start)/ops, "cpu-ns/op")
	}
}

var allowed = engine.HasPermission
var denied = engine.NoPermission

// BenchmarkCheckDirect: document#viewer@user, one relationship read.
func BenchmarkCheckDirect(b *testing.B) {
	const n = 2000
	var rels []tuple.Relationship
	var reqs []engine.CheckRequest
	for i := range n {
		rels = append(rels, rel(fmt.Sprintf("document:d%d#viewer@user:u%d", i, i)))
		reqs = append(reqs, check(fmt.Sprintf("document:d%d", i), "view", fmt.Sprintf("user:u%d", i)))
	}
	s, bes := loadBackends(b, benchSchema, rels)
	runChecks(b, s, bes, reqs, &allowed)
}

// chains builds n chains of depth nested groups: document:d<i> is viewable by
// group c<i>l0, which contains c<i>l1, ..., whose last level holds user:u<i>.
func chains(n, depth int) ([]tuple.Relationship, []engine.CheckRequest) {
	var rels []tuple.Relationship
	var reqs []engine.CheckRequest
	for i := range n {
		g := func(k int) string { return "c" + strconv.Itoa(i) + "l" + strconv.Itoa(k) }
		rels = append(rels, rel(fmt.Sprintf("document:d%d#viewer@group:%s#member", i, g(0))))
		for k := 0; k+1 < depth; k++ {
			rels = append(rels, rel(fmt.Sprintf("group:%s#member@group:%s#member", g(k), g(k+1))))
		}
		rels = append(rels, rel(fmt.Sprintf("group:%s#member@user:u%d", g(depth-1), i)))
		reqs = append(reqs, check(fmt.Sprintf("document:d%d", i), "view", fmt.Sprintf("user:u%d", i)))
	}
	return rels, reqs
}

// BenchmarkCheckNested: a check through 4 and 16 levels of nested groups.
func BenchmarkCheckNested(b *testing.B) {
	for _, depth := range []int{4, 16} {
		rels, reqs := chains(200, depth)
		s, bes := loadBackends(b, benchSchema, rels)
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) { runChecks(b, s, bes, reqs, &allowed) })
	}
}

// BenchmarkCheckWideGroup: a document viewable by one group of 10k members;
// members (allowed) and non-members (denied).
func BenchmarkCheckWideGroup(b *testing.B) {
	const n = 10_000
	rels := []tuple.Relationship{rel("document:d#viewer@group:big#member")}
	var members, others []engine.CheckRequest
	for i := range n {
		rels = append(rels, rel(fmt.Sprintf("group:big#member@user:u%d", i)))
		if i%10 == 0 {
			members = append(members, check("document:d", "view", fmt.Sprintf("user:u%d", i)))
			others = append(others, check("document:d", "view", fmt.Sprintf("user:x%d", i)))
		}
	}
	s, bes := loadBackends(b, benchSchema, rels)
	b.Run("member", func(b *testing.B) { runChecks(b, s, bes, members, &allowed) })
	b.Run("nonmember", func(b *testing.B) { runChecks(b, s, bes, others, &denied) })
}

// BenchmarkCheckArrowFanout: a document with 1000 parent folders; the viewer
// is on the last folder only (allowed), or on none (denied: every parent is
// examined).
func BenchmarkCheckArrowFanout(b *testing.B) {
	const n = 1000
	var rels []tuple.Relationship
	for i := range n {
		rels = append(rels, rel(fmt.Sprintf("document:d#parent@folder:f%04d", i)))
	}
	rels = append(rels, rel(fmt.Sprintf("folder:f%04d#viewer@user:alice", n-1)))
	s, bes := loadBackends(b, benchSchema, rels)
	b.Run("allowed", func(b *testing.B) {
		runChecks(b, s, bes, []engine.CheckRequest{check("document:d", "view", "user:alice")}, &allowed)
	})
	b.Run("denied", func(b *testing.B) {
		runChecks(b, s, bes, []engine.CheckRequest{check("document:d", "view", "user:bob")}, &denied)
	})
}

// BenchmarkLookupResources: alice views folder:hot; `hot` documents sit in
// it, the rest of `total` in 100 folders she cannot see.
func BenchmarkLookupResources(b *testing.B) {
	for _, c := range []struct{ hot, total int }{{10_000, 100_000}, {100_000, 100_000}} {
		rels := []tuple.Relationship{rel("folder:hot#viewer@user:alice")}
		for i := range 100 {
			rels = append(rels, rel(fmt.Sprintf("folder:cold%d#viewer@user:bob", i)))
		}
		for i := range c.total {
			f := "hot"
			if i >= c.hot {
				f = "cold" + strconv.Itoa(i%100)
			}
			rels = append(rels, rel(fmt.Sprintf("document:d%06d#parent@folder:%s", i, f)))
		}
		s, bes := loadBackends(b, benchSchema, rels)
		alice := tuple.SubjectRef{Type: "user", ID: "alice"}
		b.Run(fmt.Sprintf("results=%d/of=%d", c.hot, c.total), func(b *testing.B) {
			for _, be := range bes {
				for _, mode := range []string{"cold", "cached"} {
					b.Run(be.name+"/"+mode, func(b *testing.B) {
						v := newEngine(b, mode).View(s, be.reader, be.at)
						ctx := context.Background()
						lookup := func() int {
							n := 0
							for _, err := range v.LookupResources(ctx, engine.LookupResourcesRequest{ResourceType: "document", Permission: "view", Subject: alice}) {
								if err != nil {
									b.Fatal(err)
								}
								n++
							}
							return n
						}
						if mode == "cached" {
							lookup()
						}
						cpu, n := cputime.Process(), 0
						for b.Loop() {
							if got := lookup(); got != c.hot {
								b.Fatalf("%d results, want %d", got, c.hot)
							}
							n++
						}
						reportCPU(b, cpu, float64(n))
						b.ReportMetric(float64(c.hot), "results/op")
					})
				}
			}
		})
	}
}

// BenchmarkCheckCollab: random checks of the collab workload (small: 47k
// relationships; about half allowed by construction).
func BenchmarkCheckCollab(b *testing.B) {
	w := workload.MustNew("collab", workload.Small, 1)
	s, bes := loadBackends(b, w.Schema(), w.Slice())
	q := w.Queries(1)
	reqs := make([]engine.CheckRequest, 4096)
	for i := range reqs {
		c := q.Check()
		reqs[i] = engine.CheckRequest{Resource: c.Resource, Permission: c.Permission, Subject: c.Subject, Context: c.Context}
	}
	runChecks(b, s, bes, reqs, nil)
}

// BenchmarkCheckCollabParallel: the collab checks from GOMAXPROCS goroutines
// over the badger store (ns/op is wall time per check across all of them).
func BenchmarkCheckCollabParallel(b *testing.B) {
	w := workload.MustNew("collab", workload.Small, 1)
	s, bes := loadBackends(b, w.Schema(), w.Slice())
	be := bes[len(bes)-1]
	q := w.Queries(1)
	reqs := make([]engine.CheckRequest, 4096)
	for i := range reqs {
		c := q.Check()
		reqs[i] = engine.CheckRequest{Resource: c.Resource, Permission: c.Permission, Subject: c.Subject, Context: c.Context}
	}
	for _, mode := range modes {
		b.Run(be.name+"/"+mode, func(b *testing.B) {
			v := newEngine(b, mode).View(s, be.reader, be.at)
			ctx := context.Background()
			for range 3 {
				for _, r := range reqs {
					if _, err := v.Check(ctx, r); err != nil {
						b.Fatal(err)
					}
				}
			}
			var next atomic.Int64
			b.ResetTimer()
			cpu := cputime.Process()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.Check(ctx, reqs[int(next.Add(1))%len(reqs)]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportCPU(b, cpu, float64(b.N))
		})
	}
}

// BenchmarkCheckBulkManyTypes: one CheckBulk of 1000 checks, each on another
// type of a 2000-type schema, on a fresh engine (so every schema table the
// checks consult is built during the run). Issue 16: a reachability memo
// copied in full on every new key made this quadratic in the types.
func BenchmarkCheckBulkManyTypes(b *testing.B) {
	var src strings.Builder
	src.WriteString("definition user {}\n")
	for i := range 2000 {
		fmt.Fprintf(&src, "definition type%d {\n\trelation viewer: user | type%d#viewer\n\tpermission view = viewer\n}\n", i, (i+1)%2000)
	}
	s, err := schema.Compile("many.zed", src.String())
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]engine.CheckRequest, 1000)
	for i := range reqs {
		reqs[i] = check(fmt.Sprintf("type%d:x", i), "view", "user:u")
	}
	reader := memindex.New([]tuple.Relationship{rel("type5:x#viewer@user:u")})
	start := cputime.Process()
	for b.Loop() {
		eng, err := engine.New(engine.Config{})
		if err != nil {
			b.Fatal(err)
		}
		res, err := eng.View(s, reader, reader.Snapshot(1)).CheckBulk(context.Background(), reqs)
		if err != nil || res[5].Result.Permissionship != engine.HasPermission || res[6].Result.Permissionship != engine.NoPermission {
			b.Fatalf("%v %+v %+v", err, res[5], res[6])
		}
	}
	reportCPU(b, start, float64(b.N))
}

// BenchmarkCheckLatticeBackEdge: one check (no grant) over a lattice of 17
// levels of two objects, each pointing to both of the next, with one edge
// from the last level back to the first (hostile_test.go), without the
// result cache. Issue 16: results of cut cycles were not reused, so the
// check dispatched once per path (2^levels).
func BenchmarkCheckLatticeBackEdge(b *testing.B) {
	const levels = 16
	s, err := schema.Compile("lattice.zed", latticeSchema)
	if err != nil {
		b.Fatal(err)
	}
	var rels []tuple.Relationship
	for _, l := range strings.Split(strings.TrimSpace(lattice(levels, "")), "\n") {
		rels = append(rels, rel(l))
	}
	x := memindex.New(rels)
	eng, err := engine.New(engine.Config{CacheMaxCost: -1, MaxDepth: 200, MaxDispatches: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	req := check("lat_a:i0", "view", "user:ana")
	start := cputime.Process()
	var dispatches int
	for b.Loop() {
		res, err := eng.View(s, x, x.Snapshot(1)).Check(context.Background(), req)
		if err != nil || res.Permissionship != engine.NoPermission {
			b.Fatal(res, err)
		}
		dispatches = res.Stats.Dispatches
	}
	b.ReportMetric(float64(dispatches), "dispatches")
	reportCPU(b, start, float64(b.N))
}
