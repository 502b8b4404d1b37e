package engine

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// flight de-duplicates identical evaluations in progress at the same time:
// the first caller of a key leads and computes, later callers wait for its
// result. Sharded so that concurrent checks rarely share a lock.
type flight struct {
	seed   maphash.Seed
	shards [64]flightShard
}

type flightShard struct {
	mu sync.Mutex
	m  map[string]*call
}

type call struct {
	// done is made by the first waiter (under the shard's lock): most calls
	// have none, and a channel is an allocation per call.
	done    chan struct{}
	res     outcome
	err     error
	waiters atomic.Int32 // for tests: how many callers wait
}

func newFlight() *flight {
	f := &flight{seed: maphash.MakeSeed()}
	for i := range f.shards {
		f.shards[i].m = map[string]*call{}
	}
	return f
}

func (f *flight) shard(key string) *flightShard {
	return &f.shards[maphash.String(f.seed, key)%uint64(len(f.shards))]
}

// join returns the call for key and whether the caller leads it. A leader
// must call finish.
func (f *flight) join(key string) (*call, bool) {
	sh := f.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if c, ok := sh.m[key]; ok {
		if c.done == nil {
			c.done = make(chan struct{})
		}
		return c, false
	}
	c := &call{}
	sh.m[key] = c
	return c, true
}

// finish publishes the leader's result and releases the waiters.
func (f *flight) finish(key string, c *call, res outcome, err error) {
	c.res, c.err = res, err
	sh := f.shard(key)
	sh.mu.Lock()
	delete(sh.m, key)
	done := c.done // no waiter can join once the key is gone
	sh.mu.Unlock()
	if done != nil {
		close(done)
	}
}

// wait waits for a call led elsewhere. ok is false when the caller should
// compute the answer itself: the leader failed (its error may be its own
// cancellation or depth, not this caller's).
func (c *call) wait(ctx context.Context) (res outcome, ok bool, err error) {
	c.waiters.Add(1)
	select {
	case <-c.done:
		return c.res, c.err == nil, nil
	case <-ctx.Done():
		return outcome{}, false, ctx.Err()
	}
}

// waiting returns how many callers wait on calls in flight.
func (f *flight) waiting() int {
	n := 0
	for i := range f.shards {
		sh := &f.shards[i]
		sh.mu.Lock()
		for _, c := range sh.m {
			n += int(c.waiters.Load())
		}
		sh.mu.Unlock()
	}
	return n
}
