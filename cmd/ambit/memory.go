package main

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/ambit-authz/ambit/raft"
)

// memoryPlan is how `ambit serve` divides --memory-limit among what grows
// with use: badger's memtables and block cache, the engine's result and
// read caches, and the raft log cache. The Go memory limit (GOMEMLIMIT) is
// the whole limit; the caches get fixed shares of it, each with a floor (so
// a small limit still works) and a cap (so a large machine does not fill
// its memory with caches that stop paying off: the caps are the sizes the
// benchmarks in bench/RESULTS.md were measured with). A cache flag given
// explicitly (--result-cache-mib, --read-cache-mib) wins over its share.
type memoryPlan struct {
	memTable     int64 // bytes of one badger memtable
	memTables    int   // memtables badger keeps before it stalls writes
	blockCache   int64 // badger's block cache
	resultCache  int64 // engine result cache
	readCache    int64 // engine read cache
	raftLogCache int   // recent raft log entries kept in memory
}

// share is limit/div clamped to [lo, hi]; with no limit (0), hi.
func share(limit, div, lo, hi int64) int64 {
	if limit <= 0 {
		return hi
	}
	return min(max(limit/div, lo), hi)
}

// planMemory divides limit (bytes; 0: none, every cache at its cap).
func planMemory(limit int64) memoryPlan {
	return memoryPlan{
		// Memtables are 8 MiB whatever the limit: during a bulk import
		// badger holds up to memTables of them plus the table builders
		// that flush and compact them (about three times a table's size
		// each), and that, not the caches, set the peak (bench/RESULTS.md,
		// "memory after a bulk load").
		memTable:     8 << 20,
		memTables:    3,
		blockCache:   share(limit, 32, 16<<20, 128<<20),
		resultCache:  share(limit, 64, 8<<20, 64<<20),
		readCache:    share(limit, 64, 8<<20, 64<<20),
		raftLogCache: int(share(limit, 256, 4<<20, 8<<20)), // entries held by capacity: about twice the bytes counted
	}
}

// total is the most the planned caches hold together.
func (p memoryPlan) total() int64 {
	return p.memTable*int64(p.memTables) + p.blockCache + p.resultCache + p.readCache + int64(p.raftLogCache)
}

// memoryReturner keeps the memory of bulk applies (a bulk import, a
// catch-up from the leader, the replay at start) from outliving them.
// Applying such a burst makes garbage as fast as the cores allow; at the
// runtime's default GOGC of 100 the collector lets the heap run to twice its
// live size (badger's memtables and compaction buffers are most of it), and
// keeps those pages after the burst, returning them slowly. So while
// entries arrive at a bulk rate (bulkBytes in one period) the collector
// runs at bulkGCPercent, and once applying has paused for quietPeriods
// periods after at least after bytes, debug.FreeOSMemory (one full
// collection, then every free page returned) gives the rest back (see
// tick), at most once per minInterval. Steady traffic below the bulk rate
// is left to the runtime.
type memoryReturner struct {
	after         int64         // bytes applied since the last return that make one due
	bulkBytes     int64         // bytes applied in one period that make a bulk rate
	bulkGCPercent int           // GOGC during a bulk rate; 0 leaves it alone
	period        time.Duration // between two ticks
	quietPeriods  int           // periods with nothing applied that end a burst
	minInterval   time.Duration // between two returns

	// The runtime's controls; tests record calls instead.
	free         func()        // debug.FreeOSMemory
	setGCPercent func(int) int // debug.SetGCPercent

	applied atomic.Int64 // bytes of entries applied since the last tick
}

func newMemoryReturner(afterBytes int64, bulkGCPercent int) *memoryReturner {
	return &memoryReturner{
		after: afterBytes, bulkBytes: 1 << 20, bulkGCPercent: bulkGCPercent,
		period: time.Second, quietPeriods: 2, minInterval: 5 * time.Second,
		free: debug.FreeOSMemory, setGCPercent: debug.SetGCPercent,
	}
}

// Applied is the raft OnApplied hook: it only counts.
func (r *memoryReturner) Applied(e raft.AppliedEntry) { r.applied.Add(int64(len(e.Data))) }

// run ticks every r.period until ctx ends, then restores GOGC.
func (r *memoryReturner) run(ctx context.Context) {
	t := time.NewTicker(r.period)
	defer t.Stop()
	var st returnerState
	defer st.endBulk(r)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			st.tick(r, now)
		}
	}
}

// returnerState is run's bookkeeping, apart so tests drive it with their
// own clock.
type returnerState struct {
	pending int64     // bytes applied since the last return
	quiet   int       // periods in a row with nothing applied
	last    time.Time // of the last return
	again   bool      // a second return is due r.minInterval after the last
	bulk    bool      // GOGC is r.bulkGCPercent
	saved   int       // GOGC before the bulk rate
}

// tick accounts one period. Entries applied: count them, and at a bulk rate
// lower GOGC. None for r.quietPeriods periods: if at least r.after bytes
// were applied since the last return and that was r.minInterval ago,
// return the free heap, and once more r.minInterval later if applying is
// still paused (badger goes on compacting what the burst wrote for a while
// after it, making garbage of its own); GOGC is restored after that second
// return, or at the pause when there is nothing to return. What a pause
// that came too soon left pending waits for the next pause: a load slow
// enough to pause mid-way still returns its memory at its end.
func (st *returnerState) tick(r *memoryReturner, now time.Time) {
	if n := r.applied.Swap(0); n > 0 {
		st.pending += n
		st.quiet = 0
		if n >= r.bulkBytes && !st.bulk && r.bulkGCPercent > 0 {
			prev := r.setGCPercent(r.bulkGCPercent)
			if prev < 0 || prev <= r.bulkGCPercent {
				r.setGCPercent(prev) // GOGC=off or already lower: the operator's choice stands
				return
			}
			st.bulk, st.saved = true, prev
		}
		return
	}
	if st.quiet++; st.quiet < r.quietPeriods {
		return
	}
	due := st.last.IsZero() || now.Sub(st.last) >= r.minInterval
	switch {
	case r.after > 0 && st.pending >= r.after && due:
		st.pending, st.last, st.again = 0, now, true
		r.free()
	case st.again && due:
		st.again = false
		r.free()
		st.endBulk(r)
	case !st.again:
		st.endBulk(r)
	}
}

func (st *returnerState) endBulk(r *memoryReturner) {
	if st.bulk {
		r.setGCPercent(st.saved)
		st.bulk = false
	}
}
