package raft

import (
	"testing"

	hraft "github.com/hashicorp/raft"
)

// countingStore counts reads that reach the store behind the cache.
type countingStore struct {
	*hraft.InmemStore
	gets int
}

func (s *countingStore) GetLog(idx uint64, l *hraft.Log) error {
	s.gets++
	return s.InmemStore.GetLog(idx, l)
}

func TestLogCacheBoundedByBytes(t *testing.T) {
	under := &countingStore{InmemStore: hraft.NewInmemStore()}
	const budget = 10_000
	c := newLogCache(under, budget)
	entry := func(i uint64, size int) *hraft.Log {
		return &hraft.Log{Index: i, Term: 1, Type: hraft.LogCommand, Data: make([]byte, size)}
	}
	// 40 entries of ~1 KB: only the newest that fit the budget stay cached.
	for i := uint64(1); i <= 40; i++ {
		if err := c.StoreLog(entry(i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if b := c.cachedBytes(); b > budget || b < budget-entrySize(entry(0, 1000)) {
		t.Fatalf("cache holds %d bytes, want at most %d and close to it", b, budget)
	}
	var l hraft.Log
	if err := c.GetLog(40, &l); err != nil || l.Index != 40 || under.gets != 0 {
		t.Fatalf("newest entry: %v, index %d, store reads %d (want a cache hit)", err, l.Index, under.gets)
	}
	if err := c.GetLog(1, &l); err != nil || l.Index != 1 || under.gets != 1 {
		t.Fatalf("oldest entry: %v, index %d, store reads %d (want a read through to the store)", err, l.Index, under.gets)
	}
	// An entry larger than the budget is stored but not cached, and pushes
	// nothing out.
	before := c.cachedBytes()
	if err := c.StoreLogs([]*hraft.Log{entry(41, 2*budget)}); err != nil {
		t.Fatal(err)
	}
	if c.cachedBytes() != before {
		t.Fatalf("an oversized entry changed the cache: %d bytes, was %d", c.cachedBytes(), before)
	}
	if err := c.GetLog(41, &l); err != nil || len(l.Data) != 2*budget || under.gets != 2 {
		t.Fatalf("oversized entry: %v, %d bytes, store reads %d", err, len(l.Data), under.gets)
	}
	// Rewriting an index replaces the cached entry.
	if err := c.StoreLog(&hraft.Log{Index: 40, Term: 2, Data: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	if err := c.GetLog(40, &l); err != nil || l.Term != 2 {
		t.Fatalf("rewritten entry: %v, term %d", err, l.Term)
	}
	// DeleteRange empties the cache and reaches the store.
	if err := c.DeleteRange(1, 41); err != nil {
		t.Fatal(err)
	}
	if c.cachedBytes() != 0 {
		t.Fatalf("after DeleteRange the cache holds %d bytes", c.cachedBytes())
	}
	if err := c.GetLog(40, &l); err == nil {
		t.Fatal("a deleted entry is still readable")
	}
	// Many more entries than fit: the queue of indexes stays bounded too.
	for i := uint64(100); i < 20_000; i++ {
		if err := c.StoreLog(entry(i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.order) - c.head; n > budget/entrySize(entry(0, 10))+1 || len(c.order) > 4*budget {
		t.Fatalf("index queue: %d live of %d slots", n, len(c.order))
	}
}

// TestLogCacheRewriteOutlivesOldSlot: an index stored again keeps its new
// entry when the eviction queue reaches the slot of the old one.
func TestLogCacheRewriteOutlivesOldSlot(t *testing.T) {
	under := &countingStore{InmemStore: hraft.NewInmemStore()}
	c := newLogCache(under, 10_000)
	for i := uint64(1); i <= 9; i++ { // 9 entries of ~1 KB fill the budget
		if err := c.StoreLog(&hraft.Log{Index: i, Term: 1, Data: make([]byte, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.StoreLog(&hraft.Log{Index: 3, Term: 2, Data: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	for i := uint64(10); i <= 13; i++ { // evicts 1, 2, the old 3's slot and 4
		if err := c.StoreLog(&hraft.Log{Index: i, Term: 2, Data: make([]byte, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	var l hraft.Log
	if err := c.GetLog(3, &l); err != nil || l.Term != 2 || under.gets != 0 {
		t.Fatalf("rewritten entry: %v, term %d, store reads %d (want a cache hit)", err, l.Term, under.gets)
	}
	if err := c.GetLog(4, &l); err != nil || under.gets != 1 {
		t.Fatalf("entry 4: %v, store reads %d (want it evicted, read from the store)", err, under.gets)
	}
}
