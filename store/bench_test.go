package store

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/tuple"
)

var benchNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func openBench(b *testing.B, dir string) *Store {
	b.Helper()
	s, err := Open(Options{Dir: dir, GCInterval: -1, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// benchRels makes objects × subjects relationships doc:o<i>#viewer@user:u<j>.
func benchRels(objects, subjects int) []tuple.Relationship {
	rels := make([]tuple.Relationship, 0, objects*subjects)
	for o := range objects {
		for u := range subjects {
			rels = append(rels, tuple.Relationship{
				Resource: tuple.ObjectRef{Type: "document", ID: fmt.Sprintf("doc%07d", o)}, Relation: "viewer",
				Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("user%07d", u)}})
		}
	}
	return rels
}

// loaded is a store with 100 objects × 1000 subjects (100k relationships),
// flushed to disk tables, shared by the read benchmarks.
func loaded(b *testing.B) (*Store, *Snapshot) {
	b.Helper()
	s := openBench(b, b.TempDir())
	b.Cleanup(func() { s.Close() })
	if err := s.Import(1, benchNow, benchRels(100, 1000)); err != nil {
		b.Fatal(err)
	}
	if err := s.db.Flatten(1); err != nil {
		b.Fatal(err)
	}
	sn, err := s.Snapshot(1)
	if err != nil {
		b.Fatal(err)
	}
	return s, sn
}

func BenchmarkQueryPointLookup(b *testing.B) {
	_, sn := loaded(b)
	rel := ptrString("")
	filters := make([]tuple.Filter, 1000)
	for i := range filters {
		filters[i] = tuple.Filter{ResourceType: "document", ResourceIDs: []string{fmt.Sprintf("doc%07d", i%100)}, Relation: "viewer",
			Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{fmt.Sprintf("user%07d", (i*37)%1000)}, Relation: rel}}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, processCPU())
	for i := 0; b.Loop(); i++ {
		n := 0
		for _, err := range sn.Query(ctx, filters[i%len(filters)]) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1 {
			b.Fatalf("found %d", n)
		}
	}
}

func BenchmarkQuerySubjects1k(b *testing.B) {
	_, sn := loaded(b)
	ctx := context.Background()
	f := tuple.Filter{ResourceType: "document", ResourceIDs: []string{"doc0000042"}, Relation: "viewer"}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		n := 0
		for _, err := range sn.Query(ctx, f) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1000 {
			b.Fatalf("found %d", n)
		}
	}
}

func BenchmarkQueryBySubject(b *testing.B) {
	_, sn := loaded(b)
	ctx := context.Background()
	f := tuple.Filter{ResourceType: "document", Relation: "viewer", Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{"user0000420"}}}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		n := 0
		for _, err := range sn.Query(ctx, f) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 100 {
			b.Fatalf("found %d", n)
		}
	}
}

func BenchmarkWriteBatch1k(b *testing.B) {
	s := openBench(b, b.TempDir())
	defer s.Close()
	rev := tuple.Revision(0)
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		rev++
		updates := make([]Update, 1000)
		for i := range updates {
			updates[i] = Update{Op: OpTouch, Rel: tuple.Relationship{
				Resource: tuple.ObjectRef{Type: "document", ID: fmt.Sprintf("doc%07d", rev)}, Relation: "viewer",
				Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("user%07d", i)}}}
		}
		if err := s.Write(rev, benchNow, updates, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "rels/s")
}

// BenchmarkImport bulk-loads 100k relationships into a fresh on-disk store;
// AMBIT_BENCH_LARGE=1 makes it 1M. It reports throughput and the size of
// the directory after Close.
func BenchmarkImport(b *testing.B) {
	objects := 100
	if os.Getenv("AMBIT_BENCH_LARGE") != "" {
		objects = 1000
	}
	rels := benchRels(objects, 1000)
	b.ReportAllocs()
	var size int64
	var cpu time.Duration
	b.ResetTimer()
	for b.Loop() {
		dir := b.TempDir()
		s := openBench(b, dir)
		c0 := processCPU()
		if err := s.Import(1, benchNow, rels); err != nil {
			b.Fatal(err)
		}
		cpu += processCPU() - c0
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		size = dirSize(b, dir)
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*len(rels))/b.Elapsed().Seconds(), "rels/s")
	b.ReportMetric(float64(size)/(1<<20), "MiB-on-disk")
	// On a shared machine wall time depends on the neighbours; CPU time
	// (all threads of this process) does not.
	b.ReportMetric(float64(b.N*len(rels))/cpu.Seconds(), "rels/cpu-s")
}

// reportCPU reports process CPU time per operation since start: on a
// shared machine it varies much less than wall time.
func reportCPU(b *testing.B, start time.Duration) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

// processCPU is the user+system time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func ptrString(s string) *string { return &s }

// BenchmarkWrite1 is one single-relationship Write per revision, the
// shape of most raft log entries.
func BenchmarkWrite1(b *testing.B) {
	s := openBench(b, b.TempDir())
	defer s.Close()
	rev := tuple.Revision(0)
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		rev++
		u := []Update{{Op: OpTouch, Rel: tuple.Relationship{
			Resource: tuple.ObjectRef{Type: "document", ID: fmt.Sprintf("doc%07d", rev)}, Relation: "viewer",
			Subject: tuple.SubjectRef{Type: "user", ID: "user0000001"}}}}
		if err := s.Write(rev, benchNow, u, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteMany100x1 applies 100 single-relationship requests per
// WriteMany call (a raft batch); compare per request with BenchmarkWrite1.
func BenchmarkWriteMany100x1(b *testing.B) {
	s := openBench(b, b.TempDir())
	defer s.Close()
	rev := tuple.Revision(0)
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		reqs := make([]WriteRequest, 100)
		for i := range reqs {
			rev++
			reqs[i] = WriteRequest{Rev: rev, Now: benchNow, Updates: []Update{{Op: OpTouch, Rel: tuple.Relationship{
				Resource: tuple.ObjectRef{Type: "document", ID: fmt.Sprintf("doc%07d", rev)}, Relation: "viewer",
				Subject: tuple.SubjectRef{Type: "user", ID: "user0000001"}}}}}
		}
		mustWriteMany(b, s, reqs)
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "requests/s")
}

// BenchmarkWriteMany16x100 applies 16 requests of 100 relationships per
// WriteMany call (a raft batch under load). keys=sequential writes each
// request's relationships next to each other in key order, as the raft
// benchmarks' proposers do; keys=random spreads them over a million
// resources and ten thousand users, as real sharing does, so that badger's
// memtable skiplist is searched from cold memory for every key.
func BenchmarkWriteMany16x100(b *testing.B) {
	for _, random := range []bool{false, true} {
		name := "keys=sequential"
		if random {
			name = "keys=random"
		}
		b.Run(name, func(b *testing.B) {
			s := openBench(b, b.TempDir())
			defer s.Close()
			r := rand.New(rand.NewPCG(1, 2))
			rev, seq := tuple.Revision(0), 0
			defer reportCPU(b, processCPU())
			for b.Loop() {
				reqs := make([]WriteRequest, 16)
				for i := range reqs {
					rev++
					ups := make([]Update, 100)
					for j := range ups {
						seq++
						res, sub := fmt.Sprintf("doc%09d", seq), "user0000001"
						if random {
							res, sub = fmt.Sprintf("doc%07d", r.IntN(1_000_000)), fmt.Sprintf("user%05d", r.IntN(10_000))
						}
						ups[j] = Update{Op: OpTouch, Rel: tuple.Relationship{
							Resource: tuple.ObjectRef{Type: "document", ID: res}, Relation: "viewer",
							Subject: tuple.SubjectRef{Type: "user", ID: sub}}}
					}
					reqs[i] = WriteRequest{Rev: rev, Now: benchNow, Updates: ups}
				}
				mustWriteMany(b, s, reqs)
			}
			b.ReportMetric(float64(b.N*1600)/b.Elapsed().Seconds(), "rels/s")
		})
	}
}

// mustWriteMany applies reqs and fails the benchmark if any of them fails.
func mustWriteMany(b *testing.B, s *Store, reqs []WriteRequest) {
	res, err := s.WriteMany(reqs)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range res {
		if e != nil {
			b.Fatal(e)
		}
	}
}

// BenchmarkWriteManyPreconditions applies runs of n single-relationship
// requests that each carry a MUST_NOT_MATCH precondition on their own
// object (conditional creates arriving together, as a raft batch).
func BenchmarkWriteManyPreconditions(b *testing.B) {
	for _, n := range []int{1024, 8192} {
		b.Run(fmt.Sprintf("requests=%d", n), func(b *testing.B) {
			s := openBench(b, b.TempDir())
			defer s.Close()
			rev := tuple.Revision(0)
			for b.Loop() {
				reqs := make([]WriteRequest, n)
				for i := range reqs {
					rev++
					r := tuple.Relationship{Resource: tuple.ObjectRef{Type: "document", ID: fmt.Sprintf("doc%09d", rev)}, Relation: "viewer",
						Subject: tuple.SubjectRef{Type: "user", ID: "user0000001"}}
					reqs[i] = WriteRequest{Rev: rev, Now: benchNow, Updates: []Update{{Op: OpTouch, Rel: r}},
						Preconds: []Precondition{{Filter: tuple.Filter{ResourceType: "document", ResourceIDs: []string{r.Resource.ID}}}}}
				}
				mustWriteMany(b, s, reqs)
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}
