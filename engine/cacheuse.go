package engine

import (
	"sync/atomic"

	"github.com/ambit-authz/ambit/schema"
)

// Whether the result cache pays for a relation's sub-problems depends on
// the traffic: a sub-problem's key names the subject, so on checks of fresh
// (resource, subject) pairs a dataset's editors for this user are almost
// never asked again, and the lookup (two generations probed), the insertion
// (map growth included) and the memory they take cost about a sixth of the
// server's CPU on collab small for nothing. cacheUse watches, per relation,
// how often the cache answers its sub-problems; a relation whose hit rate
// falls below 1 in 64 over a window of lookups stops using the shared cache
// (no lookup, no insertion) for a longer window, then tries again. The
// top-level check always uses it, and the request's own memo and the
// in-flight table are unaffected: the cache is an optimisation, and
// skipping it changes no answer.
type cacheUse struct {
	lookups atomic.Uint32 // in the current window: lookups while on, skips while off
	hits    atomic.Uint32
	off     atomic.Bool
}

const (
	cacheUseWindow  = 4096  // lookups judged at a time
	cacheUseMinHits = 64    // a window needs lookups/cacheUseMinHits hits to stay on
	cacheUseOffFor  = 65536 // sub-problems evaluated without the cache before trying again
)

// enabled reports whether the relation's sub-problems should use the shared
// cache now, counting the call toward the current window. A nil cacheUse
// (a relation the plan does not know) always uses it.
func (u *cacheUse) enabled() bool {
	if u == nil {
		return true
	}
	n := u.lookups.Add(1)
	if !u.off.Load() {
		if n >= cacheUseWindow && u.lookups.CompareAndSwap(n, 0) {
			if u.hits.Swap(0)*cacheUseMinHits < n {
				u.off.Store(true)
			}
		}
		return true
	}
	if n >= cacheUseOffFor && u.lookups.CompareAndSwap(n, 0) {
		u.hits.Store(0)
		u.off.Store(false)
	}
	return false
}

// hit records that the shared cache answered one of the relation's
// sub-problems.
func (u *cacheUse) hit() {
	if u != nil {
		u.hits.Add(1)
	}
}

// cacheUses returns a cacheUse for every relation and permission of s.
func cacheUses(s *schema.Schema) map[*schema.Relation]*cacheUse {
	m := map[*schema.Relation]*cacheUse{}
	for _, d := range s.Definitions {
		for _, r := range d.Relations {
			m[r] = &cacheUse{}
		}
	}
	return m
}
