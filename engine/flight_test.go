package engine_test

import (
	"context"
	"fmt"
	"iter"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// gateReader blocks queries on one relation until released, and counts them.
type gateReader struct {
	engine.Reader
	relation string
	release  chan struct{}
	blocked  atomic.Int32
}

func (g *gateReader) Query(ctx context.Context, f tuple.Filter) iter.Seq2[tuple.Relationship, error] {
	if f.Relation == g.relation {
		g.blocked.Add(1)
		<-g.release
	}
	return g.Reader.Query(ctx, f)
}

// TestSubproblemDeduplication: two different checks that share an acyclic
// sub-problem (workflow:w1#read@user:ana, under two datasets) evaluate it
// once when they run at the same time; the second waits for the first.
func TestSubproblemDeduplication(t *testing.T) {
	s, err := schema.Compile("test.zed", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	mem := enginetest.MustParse("dataset:d1#workflow@workflow:w1", "dataset:d2#workflow@workflow:w1", "workflow:w1#reader@user:ana")
	gate := &gateReader{Reader: mem, relation: "reader", release: make(chan struct{})}
	v := eng.View(s, gate, mem.Snapshot(1))
	ctx := context.Background()
	ana := tuple.SubjectRef{Type: "user", ID: "ana"}
	results := make(chan engine.CheckResult, 2)
	for _, ds := range []string{"d1", "d2"} {
		go func() {
			r, err := v.Check(ctx, engine.CheckRequest{Resource: tuple.ObjectRef{Type: "dataset", ID: ds}, Permission: "read", Subject: ana})
			if err != nil {
				t.Error(err)
			}
			results <- r
		}()
	}
	// One check reads workflow:w1#reader (and blocks there); the other
	// must be waiting for it, not reading it too.
	deadline := time.Now().Add(10 * time.Second)
	for gate.blocked.Load() < 1 || engine.FlightWaiting(eng) < 1 {
		if time.Now().After(deadline) {
			close(gate.release)
			t.Fatalf("after 10 s: %d reads of the shared sub-problem, %d callers waiting; want 1 and 1", gate.blocked.Load(), engine.FlightWaiting(eng))
		}
		runtime.Gosched()
	}
	if n := gate.blocked.Load(); n != 1 {
		t.Fatalf("%d reads of the shared sub-problem, want 1", n)
	}
	close(gate.release)
	dedup := 0
	for range 2 {
		r := <-results
		if r.Permissionship != engine.HasPermission {
			t.Errorf("read = %v, want HAS_PERMISSION", r.Permissionship)
		}
		dedup += r.Stats.Deduplicated
	}
	if dedup != 1 || gate.blocked.Load() != 1 {
		t.Fatalf("deduplicated %d sub-problems with %d reads, want 1 and 1", dedup, gate.blocked.Load())
	}
}

// TestConcurrentChecksAgree: on random graphs with cyclic subject sets,
// checks from many goroutines at once (sharing the cache, the in-flight table
// and the per-request memo) answer exactly what one goroutine alone answers,
// and never deadlock.
func TestConcurrentChecksAgree(t *testing.T) {
	s, err := schema.Compile("random.zed", randomSchema)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var reqs []engine.CheckRequest
	for _, typ := range []string{"group", "folder", "doc"} {
		for perm := range s.Definitions[typ].Relations {
			for i := range 4 {
				for u := range 5 {
					reqs = append(reqs, engine.CheckRequest{Resource: tuple.ObjectRef{Type: typ, ID: fmt.Sprintf("%c%d", typ[0], i)}, Permission: perm,
						Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprint("u", u)}})
				}
			}
		}
	}
	for seed := range 10 {
		rels := randomRels(rand.New(rand.NewPCG(uint64(seed), 7)))
		want := make([]engine.Permissionship, len(reqs))
		alone, err := engine.New(engine.Config{CacheMaxCost: -1})
		if err != nil {
			t.Fatal(err)
		}
		ma := enginetest.NewMemory(rels...)
		va := alone.View(s, ma, ma.Snapshot(1))
		for i, r := range reqs {
			res, err := va.Check(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			want[i] = res.Permissionship
		}
		alone.Close()
		shared, err := engine.New(engine.Config{})
		if err != nil {
			t.Fatal(err)
		}
		m := enginetest.NewMemory(rels...)
		v := shared.View(s, m, m.Snapshot(1))
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				order := rand.New(rand.NewPCG(uint64(seed), uint64(g))).Perm(len(reqs))
				for _, i := range order {
					res, err := v.Check(ctx, reqs[i])
					if err != nil {
						t.Error(err)
						return
					}
					if res.Permissionship != want[i] {
						t.Errorf("seed %d: %s#%s@%s = %v concurrently, %v alone", seed, reqs[i].Resource, reqs[i].Permission, reqs[i].Subject, res.Permissionship, want[i])
					}
				}
			})
		}
		wg.Wait()
		shared.Close()
	}
}
