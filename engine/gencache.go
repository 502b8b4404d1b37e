package engine

import (
	"sync"
	"sync/atomic"
)

// genCache is a concurrent map bounded by cost, kept in two generations: new
// entries go to the current one; once that holds half the budget it becomes
// the previous one, the older previous is dropped whole, and an empty current
// begins. A hit in the previous generation is copied forward, so what is in
// use survives turns and what is not ages out within two.
//
// It replaces ristretto for the engine's caches. All of them (results,
// SubjectPermissions' whole answers, relationship sets) key entries by data
// set and revision, so entries of a superseded revision are garbage the
// moment a write lands, and dropping a generation whole costs nothing. On
// checks of fresh queries (collab small, c=64) ristretto's admission policy,
// sampled eviction, buffers and maps took 33% of the server's CPU, about
// 26 µs per check; this takes 19%, 13 µs (bench/HISTORY.md, "engine: read
// cache"). There is no admission policy, no background goroutine and no
// write buffer: a Set is visible to the next Get.
type genCache[K comparable, V any] struct {
	hash func(K) uint64
	half int64 // the cost at which the current generation turns
	gens atomic.Pointer[generations[K, V]]
}

type generations[K comparable, V any] struct {
	cur, prev *generation[K, V]
}

type generation[K comparable, V any] struct {
	cost   atomic.Int64
	turned atomic.Bool // set by the one caller that replaces it
	shards [genShards]genShard[K, V]
}

const genShards = 64

type genShard[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]genEntry[V]
}

type genEntry[V any] struct {
	v    V
	cost int64
}

func newGenCache[K comparable, V any](maxCost int64, hash func(K) uint64) *genCache[K, V] {
	c := &genCache[K, V]{hash: hash, half: max(maxCost/2, 1)}
	c.gens.Store(&generations[K, V]{cur: newGeneration[K, V]()})
	return c
}

// newGeneration makes an empty generation. Its maps grow as entries arrive
// (growth rehashes, ~2.5% of the server's CPU on fresh checks); maps presized
// like the last generation's made each turn allocate tens of megabytes at
// once, which showed as latency spikes.
func newGeneration[K comparable, V any]() *generation[K, V] {
	g := &generation[K, V]{}
	for i := range g.shards {
		g.shards[i].m = map[K]genEntry[V]{}
	}
	return g
}

func (g *generation[K, V]) get(h uint64, k K) (genEntry[V], bool) {
	sh := &g.shards[h%genShards]
	sh.mu.RLock()
	e, ok := sh.m[k]
	sh.mu.RUnlock()
	return e, ok
}

// put stores e under k and reports whether it was new.
func (g *generation[K, V]) put(h uint64, k K, e genEntry[V]) bool {
	sh := &g.shards[h%genShards]
	sh.mu.Lock()
	_, had := sh.m[k]
	sh.m[k] = e
	sh.mu.Unlock()
	return !had
}

// Get returns the value stored under k.
func (c *genCache[K, V]) Get(k K) (V, bool) {
	h := c.hash(k)
	gs := c.gens.Load()
	if e, ok := gs.cur.get(h, k); ok {
		return e.v, true
	}
	if gs.prev != nil {
		if e, ok := gs.prev.get(h, k); ok {
			c.add(gs, h, k, e)
			return e.v, true
		}
	}
	var zero V
	return zero, false
}

// Set stores v under k; cost is its approximate size in bytes.
func (c *genCache[K, V]) Set(k K, v V, cost int64) {
	c.add(c.gens.Load(), c.hash(k), k, genEntry[V]{v: v, cost: cost})
}

func (c *genCache[K, V]) add(gs *generations[K, V], h uint64, k K, e genEntry[V]) {
	if !gs.cur.put(h, k, e) {
		return
	}
	if gs.cur.cost.Add(e.cost) >= c.half && gs.cur.turned.CompareAndSwap(false, true) {
		// Only one caller builds the next generation; entries others add
		// meanwhile stay in what is now the previous generation.
		c.gens.Store(&generations[K, V]{cur: newGeneration[K, V](), prev: gs.cur})
	}
}

// Cost returns the approximate bytes held (both generations).
func (c *genCache[K, V]) Cost() int64 {
	gs := c.gens.Load()
	n := gs.cur.cost.Load()
	if gs.prev != nil {
		n += gs.prev.cost.Load()
	}
	return n
}
