package engine

import (
	"context"
	"fmt"
	"slices"
	"unsafe"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// checker evaluates one check (one subject, one caveat context) against one
// view. It is not safe for concurrent use; each request gets its own.
type checker struct {
	v       *View
	subject tuple.SubjectRef
	context map[string]any
	ctxKey  string
	rootKey string // the cache key of the top-level check, computed once
	// cycles counts branches cut because they revisited a node on their own
	// path. A result computed under a cut is exact for this path but not in
	// general, so it is not cached.
	cycles int
	stats  *Stats
	// tracing records every sub-problem in a Trace tree and bypasses the
	// result cache so the tree shows the whole path; cur is the node being
	// evaluated, root the top-level one.
	tracing   bool
	cur, root *Trace
	// memo holds this request's results by cache key: the shared cache
	// applies writes asynchronously, so a repeated sub-problem (org->banned
	// under two permissions) could miss it.
	memo map[string]outcome
	// expires is the earliest expiration (unix µs, 0 = none) among the
	// relationships read for the sub-problem being evaluated: its result
	// must not be reused from that time on.
	expires int64
}

// frame is one level of the current evaluation path, for cycle detection.
type frame struct {
	typ, rel string
	ids      []string
	parent   *frame
}

func (f *frame) contains(typ, rel, id string) bool {
	for ; f != nil; f = f.parent {
		if f.typ == typ && f.rel == rel && slices.Contains(f.ids, id) {
			return true
		}
	}
	return false
}

// checkAny reports whether the subject is a member of typ:id#rel for any id
// in ids.
func (c *checker) checkAny(ctx context.Context, typ string, ids []string, rel string, depth int, path *frame) (tri, error) {
	if c.tracing {
		return c.checkTraced(ctx, typ, ids, rel, depth, path)
	}
	return c.eval(ctx, typ, ids, rel, depth, path)
}

// eval is checkAny without tracing.
func (c *checker) eval(ctx context.Context, typ string, ids []string, rel string, depth int, path *frame) (tri, error) {
	if err := ctx.Err(); err != nil {
		return triNo, err
	}
	s := c.subject
	if s.Relation != "" && typ == s.Type && rel == s.Relation && slices.Contains(ids, s.ID) {
		return triYes, nil
	}
	r := c.v.schema.Relation(typ, rel)
	if r == nil || !c.v.plan.canReach(typ, rel, s.Type, s.Relation) {
		return triNo, nil
	}
	// Drop ids already being evaluated for the same relation higher up: a
	// cycle cannot add members (least fixed point).
	if path != nil {
		kept := ids[:0:0]
		for _, id := range ids {
			if !path.contains(typ, rel, id) {
				kept = append(kept, id)
			}
		}
		if len(kept) < len(ids) {
			c.cycles++
		}
		if len(kept) == 0 {
			return triNo, nil
		}
		ids = kept
	}
	if depth > c.v.engine.cfg.MaxDepth {
		return triNo, fmt.Errorf("%w: checking %s:%s#%s for %s went deeper than %d levels", ErrMaxDepth, typ, ids[0], rel, s, c.v.engine.cfg.MaxDepth)
	}
	var key string
	if len(ids) == 1 && c.v.engine.cache != nil && (path == nil || !leaf(r)) {
		if path == nil {
			key = c.rootKey // View.Check looked it up already
		} else {
			key = c.v.cacheKey(typ, ids[0], rel, s, c.ctxKey)
			if o, ok := c.v.lookupCache(key); ok && !c.tracing {
				c.stats.CacheHits++
				return c.reuse(o), nil
			}
			if o, ok := c.memo[key]; ok && !c.tracing {
				c.stats.CacheHits++
				return c.reuse(o), nil
			}
		}
		c.stats.CacheMisses++
	}
	// The top-level check, and sub-problems that cannot recurse into
	// themselves, are shared with identical ones in flight.
	if key != "" && !c.tracing && (path == nil || !c.v.plan.cyclic(typ, rel)) {
		fl := c.v.engine.flight
		call, lead := fl.join(key)
		if !lead {
			o, ok, err := call.wait(ctx)
			if err != nil {
				return triNo, err
			}
			if ok && o.validAt(c.v.now) {
				c.stats.Deduplicated++
				return c.reuse(o), nil
			}
			// The leader failed (its error may be its own), or judged
			// expiration earlier than this request does. Evaluate here.
		} else {
			o, err := c.evalNode(ctx, typ, ids, r, key, depth, path)
			fl.finish(key, call, o, err)
			return o.t, err
		}
	}
	o, err := c.evalNode(ctx, typ, ids, r, key, depth, path)
	return o.t, err
}

// reuse returns a cached or shared outcome's result, noting its expiration
// as a dependency of the sub-problem being evaluated.
func (c *checker) reuse(o outcome) tri {
	c.expires = earliest(c.expires, o.until)
	return o.t
}

// read counts a relationship read and notes its expiration as a dependency
// of the sub-problem being evaluated.
func (c *checker) read(rel tuple.Relationship) {
	c.stats.Reads++
	if !rel.Expiration.IsZero() {
		c.expires = earliest(c.expires, rel.Expiration.UnixMicro())
	}
}

// leaf reports whether r is a relation without subject sets: one read
// answers it, which costs less than a cache lookup and insertion.
func leaf(r *schema.Relation) bool {
	if r.IsPermission {
		return false
	}
	for _, at := range r.AllowedTypes {
		if at.Relation != "" {
			return false
		}
	}
	return true
}

// evalNode evaluates typ#rel for ids, and caches the result under key when
// key is set and no cycle was cut below. The outcome is valid until the
// earliest expiration among the relationships read under it.
func (c *checker) evalNode(ctx context.Context, typ string, ids []string, r *schema.Relation, key string, depth int, path *frame) (outcome, error) {
	cyclesBefore := c.cycles
	outer := c.expires
	c.expires = 0
	c.stats.Dispatches++
	next := &frame{typ: typ, rel: r.Name, ids: ids, parent: path}
	var (
		t   tri
		err error
	)
	if r.IsPermission {
		t, err = c.evalExpr(ctx, typ, ids, r.Expr, depth, next)
	} else {
		t, err = c.direct(ctx, typ, ids, r, depth, next)
	}
	o := outcome{t: t, until: c.expires}
	c.expires = earliest(outer, o.until)
	if err == nil && key != "" && c.cycles == cyclesBefore {
		c.v.engine.cache.Set(key, o, resultCost(key, o))
		if c.memo == nil {
			c.memo = map[string]outcome{}
		}
		c.memo[key] = o
	}
	return o, err
}

// direct evaluates a relation (not a permission) over ids: relationships that
// name the subject exactly or by wildcard, then subject sets, recursively.
func (c *checker) direct(ctx context.Context, typ string, ids []string, r *schema.Relation, depth int, path *frame) (tri, error) {
	s := c.subject
	result := triNo
	exact, wildcard := allowsDirect(r, s.Type, s.Relation)
	if exact || wildcard {
		subjIDs := make([]string, 0, 2)
		if exact {
			subjIDs = append(subjIDs, s.ID)
		}
		if wildcard && s.ID != tuple.Wildcard {
			subjIDs = append(subjIDs, tuple.Wildcard)
		}
		srel := s.Relation
		f := tuple.Filter{ResourceType: typ, ResourceIDs: ids, Relation: r.Name,
			Subject: &tuple.SubjectFilter{Type: s.Type, IDs: subjIDs, Relation: &srel}}
		rels, err := c.v.collect(ctx, f, nil)
		if err != nil {
			return triNo, err
		}
		for _, rel := range rels {
			c.read(rel)
			t, err := c.caveat(rel)
			if err != nil {
				return triNo, err
			}
			c.traceRelationship(rel, t)
			if result = result.or(t); result.yes() {
				return result, nil
			}
		}
	}
	// Subject sets: group#member and the like, batched per (type, relation).
	var seen []relKey // few allowed types: a slice beats a map
	for _, at := range r.AllowedTypes {
		k := relKey{at.Type, at.Relation}
		if at.Relation == "" || slices.Contains(seen, k) {
			continue
		}
		seen = append(seen, k)
		if !c.v.plan.canReach(at.Type, at.Relation, s.Type, s.Relation) {
			continue
		}
		atRel := at.Relation
		f := tuple.Filter{ResourceType: typ, ResourceIDs: ids, Relation: r.Name,
			Subject: &tuple.SubjectFilter{Type: at.Type, Relation: &atRel}}
		var batch idSet
		var caveated []tuple.Relationship
		rels, err := c.v.collect(ctx, f, nil)
		if err != nil {
			return triNo, err
		}
		for _, rel := range rels {
			c.read(rel)
			if rel.Caveat != nil {
				caveated = append(caveated, rel)
			} else {
				batch.add(rel.Subject.ID)
			}
		}
		if len(batch.ids) > 0 {
			t, err := c.checkAny(ctx, at.Type, batch.ids, at.Relation, depth+1, path)
			if err != nil {
				return triNo, err
			}
			if result = result.or(t); result.yes() {
				return result, nil
			}
		}
		for _, rel := range caveated {
			t, err := c.guarded(ctx, rel, at.Relation, depth, path)
			if err != nil {
				return triNo, err
			}
			if result = result.or(t); result.yes() {
				return result, nil
			}
		}
	}
	return result, nil
}

// guarded evaluates "rel's caveat and the subject is in rel.Subject#relation".
func (c *checker) guarded(ctx context.Context, rel tuple.Relationship, relation string, depth int, path *frame) (tri, error) {
	ct, err := c.caveat(rel)
	if err != nil {
		return triNo, err
	}
	c.traceRelationship(rel, ct)
	if ct.no() {
		return triNo, nil
	}
	t, err := c.checkAny(ctx, rel.Subject.Type, []string{rel.Subject.ID}, relation, depth+1, path)
	if err != nil {
		return triNo, err
	}
	return ct.and(t), nil
}

// evalExpr evaluates a permission expression for "any of ids".
func (c *checker) evalExpr(ctx context.Context, typ string, ids []string, e schema.Expr, depth int, path *frame) (tri, error) {
	switch e := e.(type) {
	case *schema.Nil:
		return triNo, nil
	case *schema.RelationRef:
		return c.checkAny(ctx, typ, ids, e.Name, depth+1, path)
	case *schema.Union:
		result := triNo
		for _, child := range e.Children {
			t, err := c.evalExpr(ctx, typ, ids, child, depth, path)
			if err != nil {
				return triNo, err
			}
			if result = result.or(t); result.yes() {
				return result, nil
			}
		}
		return result, nil
	case *schema.Arrow:
		if e.Func == schema.ArrowAny {
			return c.arrowAny(ctx, typ, ids, e, depth, path)
		}
	}
	// Intersection, exclusion and .all() do not distribute over "any id":
	// evaluate per id.
	if len(ids) > 1 {
		result := triNo
		for _, id := range ids {
			t, err := c.evalExpr(ctx, typ, []string{id}, e, depth, path)
			if err != nil {
				return triNo, err
			}
			if result = result.or(t); result.yes() {
				return result, nil
			}
		}
		return result, nil
	}
	switch e := e.(type) {
	case *schema.Intersection:
		result := triYes
		for _, child := range e.Children {
			t, err := c.evalExpr(ctx, typ, ids, child, depth, path)
			if err != nil {
				return triNo, err
			}
			if result = result.and(t); result.no() {
				return result, nil
			}
		}
		return result, nil
	case *schema.Exclusion:
		base, err := c.evalExpr(ctx, typ, ids, e.Base, depth, path)
		if err != nil || base.no() {
			return triNo, err
		}
		sub, err := c.evalExpr(ctx, typ, ids, e.Subtracted, depth, path)
		if err != nil {
			return triNo, err
		}
		return base.and(sub.not()), nil
	case *schema.Arrow:
		return c.arrowAll(ctx, typ, ids[0], e, depth, path)
	}
	return triNo, fmt.Errorf("%w: unknown expression node %T", ErrInternal, e)
}

// arrowAny evaluates tupleset->computed for any of ids, batching the
// tupleset's subjects per type.
func (c *checker) arrowAny(ctx context.Context, typ string, ids []string, a *schema.Arrow, depth int, path *frame) (tri, error) {
	s := c.subject
	batches := map[string]*idSet{}
	var order []string
	var caveated []tuple.Relationship
	rels, err := c.v.collect(ctx, tuple.Filter{ResourceType: typ, ResourceIDs: ids, Relation: a.Tupleset}, nil)
	if err != nil {
		return triNo, err
	}
	for _, rel := range rels {
		c.read(rel)
		st := rel.Subject.Type
		if c.v.schema.Relation(st, a.Computed) == nil || !c.v.plan.canReach(st, a.Computed, s.Type, s.Relation) {
			continue
		}
		if rel.Caveat != nil {
			caveated = append(caveated, rel)
			continue
		}
		b := batches[st]
		if b == nil {
			b = &idSet{}
			batches[st] = b
			order = append(order, st)
		}
		b.add(rel.Subject.ID)
	}
	result := triNo
	for _, st := range order {
		t, err := c.checkAny(ctx, st, batches[st].ids, a.Computed, depth+1, path)
		if err != nil {
			return triNo, err
		}
		if result = result.or(t); result.yes() {
			return result, nil
		}
	}
	for _, rel := range caveated {
		t, err := c.guarded(ctx, rel, a.Computed, depth, path)
		if err != nil {
			return triNo, err
		}
		if result = result.or(t); result.yes() {
			return result, nil
		}
	}
	return result, nil
}

// arrowAll evaluates tupleset.all(computed) for one id: every subject of the
// tupleset must have computed; no subjects means no.
func (c *checker) arrowAll(ctx context.Context, typ, id string, a *schema.Arrow, depth int, path *frame) (tri, error) {
	result := triYes
	found := false
	rels, err := c.v.collect(ctx, tuple.Filter{ResourceType: typ, ResourceIDs: []string{id}, Relation: a.Tupleset}, nil)
	if err != nil {
		return triNo, err
	}
	for _, rel := range rels {
		c.read(rel)
		found = true
		var t tri
		if c.v.schema.Relation(rel.Subject.Type, a.Computed) != nil {
			t, err = c.guarded(ctx, rel, a.Computed, depth, path)
			if err != nil {
				return triNo, err
			}
		}
		if result = result.and(t); result.no() {
			return result, nil
		}
	}
	if !found {
		return triNo, nil
	}
	return result, nil
}

// caveat evaluates a relationship's caveat with the request context, the
// relationship's own context taking precedence.
func (c *checker) caveat(rel tuple.Relationship) (tri, error) {
	if rel.Caveat == nil {
		return triYes, nil
	}
	cv := c.v.schema.Caveats[rel.Caveat.Name]
	if cv == nil {
		return triNo, fmt.Errorf("%w: relationship %s names caveat %q, which the schema does not define", ErrInvalidRequest, rel, rel.Caveat.Name)
	}
	c.stats.CaveatEvals++
	// The relationship's own context wins over the request's.
	res, err := cv.EvaluateLayered(rel.Caveat.Context, c.context)
	if err != nil {
		return triNo, fmt.Errorf("%w: caveat %q on %s: %w", ErrCaveatContext, rel.Caveat.Name, rel.Key(), err)
	}
	if len(res.Missing) > 0 {
		return maybe(res.Missing), nil
	}
	if res.Value {
		return triYes, nil
	}
	return triNo, nil
}

// idSet collects distinct ids in arrival order: a linear scan while small, a
// map once large (fan-outs over thousands of parents).
type idSet struct {
	ids  []string
	seen map[string]struct{}
}

func (s *idSet) add(id string) {
	if s.seen == nil {
		if len(s.ids) < 16 {
			if !slices.Contains(s.ids, id) {
				s.ids = append(s.ids, id)
			}
			return
		}
		s.seen = make(map[string]struct{}, 2*len(s.ids))
		for _, x := range s.ids {
			s.seen[x] = struct{}{}
		}
	}
	if _, ok := s.seen[id]; !ok {
		s.seen[id] = struct{}{}
		s.ids = append(s.ids, id)
	}
}

// resultCost is what a cached result holds in bytes: its key (rounded up to
// the allocator's size class, 8 bytes on average), its map slot at the
// map's load factor and the missing-context names' slice.
func resultCost(key string, o outcome) int64 {
	return int64(len(key)) + 8 + resultSlotBytes + 16*int64(len(o.t.missing))
}

const resultSlotBytes = int64(unsafe.Sizeof("")+unsafe.Sizeof(genEntry[outcome]{})) * 8 / 7
