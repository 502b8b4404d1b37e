package main

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
		memTable:     share(limit, 256, 8<<20, 32<<20),
		memTables:    3,
		blockCache:   share(limit, 32, 16<<20, 128<<20),
		resultCache:  share(limit, 64, 8<<20, 64<<20),
		readCache:    share(limit, 64, 8<<20, 64<<20),
		raftLogCache: int(share(limit, 256, 4<<20, 16<<20)),
	}
}

// total is the most the planned caches hold together.
func (p memoryPlan) total() int64 {
	return p.memTable*int64(p.memTables) + p.blockCache + p.resultCache + p.readCache + int64(p.raftLogCache)
}
