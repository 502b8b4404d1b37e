package raft

import (
	"sync"

	hraft "github.com/hashicorp/raft"
)

// DefaultLogCacheBytes is the default budget of the raft log cache.
const DefaultLogCacheBytes = 16 << 20

// logCache keeps the most recently stored raft log entries in memory, so
// that replication to followers and the FSM read them without the disk. It
// is bounded by the bytes of the entries' data, not by their number: one
// import chunk is hundreds of kilobytes, and a cache of the last 1024
// entries (hashicorp/raft's LogCache, sized by count) held hundreds of
// megabytes during a bulk load. The newest entries are kept; an entry larger
// than the whole budget is not cached.
type logCache struct {
	store  hraft.LogStore
	budget int

	mu      sync.Mutex
	entries map[uint64]*hraft.Log
	order   []*hraft.Log // entries in the order stored, oldest first (from head)
	head    int
	bytes   int
}

func newLogCache(store hraft.LogStore, budget int) *logCache {
	if budget <= 0 {
		budget = DefaultLogCacheBytes
	}
	return &logCache{store: store, budget: budget, entries: map[uint64]*hraft.Log{}}
}

func entrySize(l *hraft.Log) int { return len(l.Data) + len(l.Extensions) + 64 }

func (c *logCache) GetLog(idx uint64, out *hraft.Log) error {
	c.mu.Lock()
	l, ok := c.entries[idx]
	c.mu.Unlock()
	if ok {
		*out = *l
		return nil
	}
	return c.store.GetLog(idx, out)
}

func (c *logCache) StoreLog(l *hraft.Log) error { return c.StoreLogs([]*hraft.Log{l}) }

func (c *logCache) StoreLogs(logs []*hraft.Log) error {
	err := c.store.StoreLogs(logs)
	// Cache even after a failed write (as hashicorp/raft's cache does): raft
	// reads the entries it believes stored, and a failed write ends this
	// node's term anyway. Without a cached copy a read would go to the
	// failing disk.
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		n := entrySize(l)
		if n > c.budget {
			c.drop(l.Index)
			continue
		}
		c.drop(l.Index)
		c.entries[l.Index] = l
		c.order = append(c.order, l)
		c.bytes += n
	}
	for c.bytes > c.budget && c.head < len(c.order) {
		c.evictOldest()
	}
	if c.head > len(c.order)/2 && c.head > 1024 { // compact the queue
		c.order = append(c.order[:0], c.order[c.head:]...)
		c.head = 0
	}
	return err
}

// drop forgets the cached entry at idx, if any (its queue slot no longer
// matches the map when it comes up, and is skipped).
func (c *logCache) drop(idx uint64) {
	if l, ok := c.entries[idx]; ok {
		c.bytes -= entrySize(l)
		delete(c.entries, idx)
	}
}

func (c *logCache) evictOldest() {
	l := c.order[c.head]
	c.order[c.head] = nil
	c.head++
	if c.entries[l.Index] == l { // not since rewritten at the same index
		c.drop(l.Index)
	}
}

func (c *logCache) DeleteRange(lo, hi uint64) error {
	c.mu.Lock()
	clear(c.entries)
	c.order, c.head, c.bytes = c.order[:0], 0, 0
	c.mu.Unlock()
	return c.store.DeleteRange(lo, hi)
}

func (c *logCache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }
func (c *logCache) LastIndex() (uint64, error)  { return c.store.LastIndex() }

// IsMonotonic passes the store's answer on (hraft.MonotonicLogStore).
func (c *logCache) IsMonotonic() bool {
	m, ok := c.store.(hraft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// cachedBytes is the data the cache holds (tests, metrics).
func (c *logCache) cachedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
