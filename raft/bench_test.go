package raft

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// benchStores opens durable badger stores with the sizes `ambit serve`
// uses (the store's defaults: 64 MiB memtables, 256 MiB block cache).
// syncStore sets the store's SyncWrites; the raft log always fsyncs.
func benchStores(b *testing.B, syncStore bool) func(int, string) (Backend, func()) {
	return func(i int, dir string) (Backend, func()) {
		st, err := store.Open(store.Options{Dir: filepath.Join(dir, "store"), GCInterval: -1, SyncWrites: syncStore})
		if err != nil {
			b.Fatal(err)
		}
		return st, func() { st.Close() }
	}
}

// benchTransports are the raft transports the replicated benchmarks run
// over: loopback TCP, plain and through the authenticated stream layer (what
// the server uses with a cluster secret), and raft's in-memory transport.
var benchTransports = []struct {
	name  string
	tweak func(n int) func(*Config)
}{
	{"tcp", func(int) func(*Config) { return func(cfg *Config) { cfg.ClusterSecret = nil } }},
	// TCP through the authenticated stream layer (TLS 1.3 and the cluster
	// secret's proof), as `ambit serve` runs with a cluster secret.
	{"tcp-auth", func(int) func(*Config) { return nil }},
	{"inmem", inmemTransports},
}

// inmemTransports returns a Config tweak giving each of n nodes (ids n0..)
// an in-memory raft transport connected to all the others, without
// pipelining, as the TCP transport is configured.
func inmemTransports(n int) func(*Config) {
	trans := map[string]*hraft.InmemTransport{}
	for i := range n {
		id := fmt.Sprintf("n%d", i)
		_, trans[id] = hraft.NewInmemTransport(hraft.ServerAddress("inmem-" + id))
	}
	for _, a := range trans {
		for _, b := range trans {
			if a != b {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
	return func(cfg *Config) { cfg.transport = unpipelined{trans[cfg.NodeID]} }
}

// unpipelined is an in-memory transport that refuses pipelined replication.
type unpipelined struct{ *hraft.InmemTransport }

func (unpipelined) AppendEntriesPipeline(hraft.ServerID, hraft.ServerAddress) (hraft.AppendPipeline, error) {
	return nil, hraft.ErrPipelineReplicationNotSupported
}

// benchmarkWrites proposes batches of size relationships through the
// leader of a 3-node cluster from parallel proposers and reports throughput
// and commit latency.
func benchmarkWrites(b *testing.B, batch, parallelism int, stores func(int, string) (Backend, func()), tweak func(*Config)) {
	benchmarkWritesKeys(b, batch, parallelism, false, stores, tweak)
}

// benchmarkWritesKeys is benchmarkWrites with a choice of keys: sequential
// (each batch's relationships next to each other in key order, so badger's
// memtable inserts find their path cached) or random (resources and users
// drawn from a million and ten thousand, as real sharing writes).
func benchmarkWritesKeys(b *testing.B, batch, parallelism int, random bool, stores func(int, string) (Backend, func()), tweak func(*Config)) {
	c := newTestCluster(b, 3, stores, tweak)
	leader := c.nodes[c.waitLeader()].n
	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(parallelism)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		ups := make([]store.Update, batch)
		r := rand.New(rand.NewPCG(uint64(seq.Add(1)), 7))
		for pb.Next() {
			base := seq.Add(1)
			var seen map[tuple.Key]bool // random keys only: a batch may not name a relationship twice
			if random {
				seen = map[tuple.Key]bool{}
			}
			for j := range ups {
				res, sub := fmt.Sprintf("d%d-%d", base, j), "u"
				if random {
					res, sub = fmt.Sprintf("d%07d", r.IntN(1_000_000)), fmt.Sprintf("u%05d", r.IntN(10_000))
				}
				ups[j] = store.Update{Op: store.OpTouch, Rel: tuple.Relationship{
					Resource: tuple.ObjectRef{Type: "doc", ID: res},
					Relation: "viewer",
					Subject:  tuple.SubjectRef{Type: "user", ID: sub},
				}}
				if random {
					if seen[ups[j].Rel.Key()] {
						ups[j].Rel.Subject.ID += fmt.Sprintf("-%d", j)
					}
					seen[ups[j].Rel.Key()] = true
				}
			}
			t0 := time.Now()
			if _, err := leader.Propose(context.Background(), WriteCommand(ups, nil)); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "writes/s")
	b.ReportMetric(float64(len(lat)*batch)/elapsed.Seconds(), "rels/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// benchLogStores are the raft log stores the write benchmarks compare. Each
// benchmark runs them one right after the other (the innermost level of
// its name), so both see the same load on a shared machine.
var benchLogStores = []string{LogStoreWAL, LogStoreBolt}

// withLogStore is tweak with the log store set to kind.
func withLogStore(kind string, tweak func(*Config)) func(*Config) {
	return func(cfg *Config) {
		cfg.LogStore = kind
		if tweak != nil {
			tweak(cfg)
		}
	}
}

// runLogStores runs bench as name/log=KIND for every log store.
func runLogStores(b *testing.B, name string, bench func(b *testing.B, logStore string)) {
	for _, kind := range benchLogStores {
		b.Run(name+"/log="+kind, func(b *testing.B) { bench(b, kind) })
	}
}

// benchmarkWriteMatrix runs benchmarkWrites over both transports, three
// stores (badger with and without SyncWrites, and the tests' in-memory fake:
// raft, transport and log fsync cost only) and both log stores. The raft log
// always fsyncs.
func benchmarkWriteMatrix(b *testing.B, batch, parallelism int) {
	for _, tr := range benchTransports {
		runLogStores(b, tr.name+"/store-sync", func(b *testing.B, log string) {
			benchmarkWrites(b, batch, parallelism, benchStores(b, true), withLogStore(log, tr.tweak(3)))
		})
		runLogStores(b, tr.name+"/store-nosync", func(b *testing.B, log string) {
			benchmarkWrites(b, batch, parallelism, benchStores(b, false), withLogStore(log, tr.tweak(3)))
		})
		runLogStores(b, tr.name+"/fake-store", func(b *testing.B, log string) {
			benchmarkWrites(b, batch, parallelism, fakeStores(), withLogStore(log, tr.tweak(3)))
		})
	}
}

// Single-relationship writes from many concurrent proposers
// (GOMAXPROCS*64 goroutines).
func BenchmarkReplicatedWrite1(b *testing.B) { benchmarkWriteMatrix(b, 1, 64) }

// Batches of 100 relationships from GOMAXPROCS*2 concurrent proposers.
func BenchmarkReplicatedWrite100(b *testing.B) { benchmarkWriteMatrix(b, 100, 2) }

// Batches of 100 relationships from GOMAXPROCS*8 concurrent proposers: the
// throughput a busier client population gets from the same cluster.
func BenchmarkReplicatedWrite100Wide(b *testing.B) {
	for _, tr := range benchTransports {
		runLogStores(b, tr.name+"/store-nosync", func(b *testing.B, log string) {
			benchmarkWrites(b, 100, 8, benchStores(b, false), withLogStore(log, tr.tweak(3)))
		})
	}
}

// Batches of 100 relationships over TCP from GOMAXPROCS times 1 to 64
// concurrent proposers: how many it takes to reach a throughput, with the
// badger store (unsynced, as the server runs it) and with the in-memory
// fake (raft and the log alone).
func BenchmarkReplicatedWrite100Proposers(b *testing.B) {
	for _, p := range []int{1, 2, 8, 32, 64} {
		runLogStores(b, fmt.Sprintf("tcp/store-nosync/proposers=%dxprocs", p), func(b *testing.B, log string) {
			benchmarkWrites(b, 100, p, benchStores(b, false), withLogStore(log, nil))
		})
		runLogStores(b, fmt.Sprintf("tcp/fake-store/proposers=%dxprocs", p), func(b *testing.B, log string) {
			benchmarkWrites(b, 100, p, fakeStores(), withLogStore(log, nil))
		})
	}
}

// Batches of 100 relationships with random keys (see benchmarkWritesKeys)
// over TCP, badger unsynced, from GOMAXPROCS times 1 and 8 proposers.
func BenchmarkReplicatedWrite100RandomKeys(b *testing.B) {
	for _, p := range []int{1, 8} {
		runLogStores(b, fmt.Sprintf("tcp/store-nosync/proposers=%dxprocs", p), func(b *testing.B, log string) {
			benchmarkWritesKeys(b, 100, p, true, benchStores(b, false), withLogStore(log, nil))
		})
	}
}

// Single-relationship writes over TCP from GOMAXPROCS times 1 to 64
// concurrent proposers, badger unsynced (the server's configuration): where
// commit latency (p99) crosses a bound as the load grows.
func BenchmarkReplicatedWrite1Proposers(b *testing.B) {
	for _, p := range []int{1, 4, 16, 64} {
		runLogStores(b, fmt.Sprintf("tcp/store-nosync/proposers=%dxprocs", p), func(b *testing.B, log string) {
			benchmarkWrites(b, 1, p, benchStores(b, false), withLogStore(log, nil))
		})
	}
}

// Commit latency of one writer at a time (no batching help).
func BenchmarkReplicatedWriteSerial(b *testing.B) {
	for _, tr := range benchTransports {
		for _, sync := range []bool{true, false} {
			name := tr.name + "/store-sync"
			if !sync {
				name = tr.name + "/store-nosync"
			}
			runLogStores(b, name, func(b *testing.B, log string) {
				benchmarkSerial(b, benchStores(b, sync), withLogStore(log, tr.tweak(3)))
			})
		}
	}
}

func benchmarkSerial(b *testing.B, stores func(int, string) (Backend, func()), tweak func(*Config)) {
	c := newTestCluster(b, 3, stores, tweak)
	leader := c.nodes[c.waitLeader()].n
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := writeOne(context.Background(), leader, fmt.Sprintf("s%d", i)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)-1)*99/100].Microseconds())/1000, "p99-ms")
}

func BenchmarkEncodeDecode(b *testing.B) {
	ups := make([]store.Update, 100)
	for j := range ups {
		ups[j] = touch(fmt.Sprintf("d%d", j))
	}
	cmd := WriteCommand(ups, nil)
	cmd.Now = time.Now()
	b.ReportAllocs()
	for b.Loop() {
		data, err := Encode(cmd)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// The FSM's ceiling on one node: batches of 64 write entries of rels
// updates through ApplyBatch ("many": one store.WriteMany per batch for
// entries of up to maxBatchedUpdates, one store.Write each above), against
// the same entries applied with one store.Write each ("one", the FSM before
// WriteMany). Encoding the entries is outside the timer.
func BenchmarkFSMApplyBatch(b *testing.B) {
	for _, rels := range []int{1, 10, 30, 100} {
		b.Run(fmt.Sprintf("rels=%d/many", rels), func(b *testing.B) { benchmarkFSMApply(b, rels, false) })
		b.Run(fmt.Sprintf("rels=%d/one", rels), func(b *testing.B) { benchmarkFSMApply(b, rels, true) })
	}
}

// writeByWrite turns WriteMany back into one Write per request.
type writeByWrite struct{ *store.Store }

func (w writeByWrite) WriteMany(reqs []store.WriteRequest) ([]error, error) {
	results := make([]error, len(reqs))
	for i, r := range reqs {
		err := w.Write(r.Rev, r.Now, r.Updates, r.Preconds)
		if err != nil && !store.IsRefusal(err) {
			return nil, err
		}
		results[i] = err
	}
	return results, nil
}

func benchmarkFSMApply(b *testing.B, rels int, oneByOne bool) {
	st, err := store.Open(store.Options{Dir: b.TempDir(), GCInterval: -1, MemTableSize: 32 << 20, BlockCacheSize: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var backend Backend = st
	if oneByOne {
		backend = writeByWrite{st}
	}
	f, err := NewFSM(backend, "", nil)
	if err != nil {
		b.Fatal(err)
	}
	const batch = 64
	logs := make([]*hraft.Log, batch)
	idx := uint64(0)
	ups := make([]store.Update, rels)
	now := time.Unix(1700000000, 0)
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		b.StopTimer()
		for j := range logs {
			idx++
			for k := range ups {
				ups[k] = touch(fmt.Sprintf("d%d-%d", idx, k))
			}
			c := WriteCommand(ups, nil)
			c.Now = now
			data, _ := Encode(c)
			logs[j] = &hraft.Log{Index: idx, Type: hraft.LogCommand, Data: data}
		}
		b.StartTimer()
		for _, r := range f.ApplyBatch(logs) {
			if r.(*Result).Err != nil {
				b.Fatal(r.(*Result).Err)
			}
		}
	}
	b.ReportMetric(float64(idx)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(idx)*float64(rels)/b.Elapsed().Seconds(), "rels/s")
}

// Appends to a raft-boltdb log whose compactions left free pages behind
// (five rounds of 20k entries, each compacted down to 10k, as TrailingLogs
// does), with and without bolt's freelist written on every commit. Reports
// the bytes bolt allocates per append of 10 entries.
func BenchmarkLogStoreAppend(b *testing.B) {
	for _, noFreelistSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("NoFreelistSync=%v", noFreelistSync), func(b *testing.B) {
			bs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(b.TempDir(), "raft.db"),
				BoltOptions: &bbolt.Options{NoFreelistSync: noFreelistSync, FreelistType: bbolt.FreelistMapType}})
			if err != nil {
				b.Fatal(err)
			}
			defer bs.Close()
			data := make([]byte, 200)
			idx := uint64(0)
			appendLogs := func(n int) {
				logs := make([]*hraft.Log, n)
				for i := range logs {
					idx++
					logs[i] = &hraft.Log{Index: idx, Term: 1, Type: hraft.LogCommand, Data: data}
				}
				if err := bs.StoreLogs(logs); err != nil {
					b.Fatal(err)
				}
			}
			for range 5 {
				for range 200 {
					appendLogs(100)
				}
				first, _ := bs.FirstIndex()
				if err := bs.DeleteRange(first, idx-10000); err != nil {
					b.Fatal(err)
				}
			}
			before := bs.Stats().TxStats
			b.ResetTimer()
			for b.Loop() {
				appendLogs(10)
			}
			after := bs.Stats()
			b.ReportMetric(float64(after.TxStats.PageAlloc-before.PageAlloc)/float64(b.N), "bytes-alloc/append")
			b.ReportMetric(float64(after.FreePageN), "free-pages")
		})
	}
}

// One append after another to each log store with fsync on, no raft: what
// a node's disk costs a replicated write (the leader's append, then a
// follower's). An entry of 4 KiB is about a command of 100 relationships;
// ns/op is the time of one append (of entries entries).
func BenchmarkLogStoreSyncedAppend(b *testing.B) {
	for _, entries := range []int{1, 16} {
		for _, kind := range benchLogStores {
			b.Run(fmt.Sprintf("entries=%d/log=%s", entries, kind), func(b *testing.B) {
				s, err := openLogStore(kind, b.TempDir(), DefaultLogSegmentSize, false, hclog.NewNullLogger())
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				data := make([]byte, 4<<10)
				logs := make([]*hraft.Log, entries)
				idx := uint64(0)
				b.SetBytes(int64(entries * len(data)))
				for b.Loop() {
					for i := range logs {
						idx++
						logs[i] = &hraft.Log{Index: idx, Term: 1, Type: hraft.LogCommand, Data: data}
					}
					if err := s.StoreLogs(logs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
