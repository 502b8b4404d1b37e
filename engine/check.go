package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unsafe"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/schema/caveats"
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
	// hits records the ids cut because they were already being evaluated
	// higher up the path (see evalNode): a result computed under a cut of a
	// node above it depends on the path, the others do not.
	hits []hit
	// neg counts the subtracted sides of exclusions open on the path: a
	// result that depends on a cut through one is not monotone in it.
	neg int
	// caveatCost is the CEL cost of the caveats evaluated so far.
	caveatCost uint64
	stats      *Stats
	// tracing records every sub-problem in a Trace tree and bypasses the
	// result cache so the tree shows the whole path; cur is the node being
	// evaluated, root the top-level one.
	tracing   bool
	cur, root *Trace
	// memo holds this request's results by cache key, those that depend on
	// the path included (see memoEntry). Without it a result computed under
	// a cut would be computed again on every path that reaches it: a lattice
	// two objects wide with one back-edge has 2^levels paths.
	memo map[string]memoEntry
	// expires is the earliest expiration (unix µs, 0 = none) among the
	// relationships read for the sub-problem being evaluated: its result
	// must not be reused from that time on.
	expires int64
	scratch filterScratch
	// pooled: the memo may come from, and goes back to, Engine.memos (View.Check
	// owns its checker; a lookup's checkers share one memo).
	pooled bool
}

// filterScratch holds the subject filter of the query direct is making, so
// building it allocates nothing (a filter handed to the reader escapes). One
// per checker is enough: a query completes before the evaluation it leads
// to starts the next one.
type filterScratch struct {
	ids [2]string
	rel string
	sf  tuple.SubjectFilter
}

// subject returns the scratch subject filter set to typ, ids and relation.
// It is valid until the next call.
func (s *filterScratch) subject(typ string, ids []string, relation string) *tuple.SubjectFilter {
	s.rel = relation
	s.sf = tuple.SubjectFilter{Type: typ, IDs: ids, Relation: &s.rel}
	return &s.sf
}

// frame is one level of the current evaluation path, for cycle detection.
type frame struct {
	typ, rel string
	ids      []string
	level    int // 0 for the top-level check
	parent   *frame
}

// find returns the frame on the path that evaluates typ:id#rel, or nil.
func (f *frame) find(n node) *frame {
	for ; f != nil; f = f.parent {
		if f.typ == n.typ && f.rel == n.rel && slices.Contains(f.ids, n.id) {
			return f
		}
	}
	return nil
}

// node is one sub-problem: is the subject in typ:id#rel?
type node struct{ typ, rel, id string }

// hit is a cut: node was dropped because the frame at level evaluates it
// (least fixed point: a cycle adds no members). neg is checker.neg at the
// cut.
type hit struct {
	node
	level, neg int
}

// memoEntry is a result of this request. deps lists the nodes above it on
// the path it was computed on whose cuts it depends on; nil means the result
// does not depend on the path.
//
// Reuse is sound when the result is monotone in those cuts (no exclusion's
// subtracted side between it and them; see evalNode). A cut assumes the node
// false, so a result computed under cuts is at most the true value: a grant
// is a grant wherever it is reused. A "no" or a conditional result is
// reused only where every node in deps is still on the path: the evaluation
// there would cut at least those nodes, so it would give at most the memoised
// value, and the top-level answer cannot change (it lies between what the
// evaluation without memo gives and the true value, which are equal).
type memoEntry struct {
	outcome
	deps []node
}

// maxMemoDeps bounds the path dependencies a memoised result may have; a
// result with more is computed again where it recurs.
const maxMemoDeps = 8

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
		// ids is kept as it is (no copy) until an id turns out to be cut.
		var kept []string
		for i, id := range ids {
			n := node{typ, rel, id}
			if f := path.find(n); f != nil {
				c.hits = append(c.hits, hit{node: n, level: f.level, neg: c.neg})
				if kept == nil {
					kept = append(make([]string, 0, len(ids)-1), ids[:i]...)
				}
			} else if kept != nil {
				kept = append(kept, id)
			}
		}
		if kept != nil {
			if len(kept) == 0 {
				return triNo, nil
			}
			ids = kept
		}
	}
	if depth > c.v.engine.cfg.MaxDepth {
		return triNo, fmt.Errorf("%w: checking %s:%s#%s for %s went deeper than %d levels", ErrMaxDepth, typ, ids[0], rel, s, c.v.engine.cfg.MaxDepth)
	}
	var key string
	share := true // whether the result goes to the shared cache (see cacheUse)
	if len(ids) == 1 && (path == nil || !leaf(r)) {
		if path == nil {
			key = c.rootKey // the caller (View.Check, SubjectPermissions) looked it up already
		} else {
			key = c.v.cacheKey(typ, ids[0], rel, s, c.ctxKey)
			if c.v.engine.cache != nil && !c.tracing {
				u := c.v.plan.uses[r]
				if share = u.enabled(); share {
					if o, ok := c.v.lookupCache(key); ok {
						u.hit()
						c.stats.CacheHits++
						return c.reuse(o), nil
					}
				}
			}
			if m, ok := c.memo[key]; ok && !c.tracing && c.memoUsable(m, path) {
				c.stats.CacheHits++
				return c.reuse(m.outcome), nil
			}
		}
		c.stats.CacheMisses++
	}
	// The top-level check, and sub-problems that cannot recurse into
	// themselves, are shared with identical ones in flight.
	if key != "" && c.v.engine.cache != nil && !c.tracing && (path == nil || !c.v.plan.cyclic(typ, rel)) {
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
			o, err := c.evalNode(ctx, typ, ids, r, key, share, depth, path)
			fl.finish(key, call, o, err)
			return o.t, err
		}
	}
	o, err := c.evalNode(ctx, typ, ids, r, key, share, depth, path)
	return o.t, err
}

// reuse returns a cached or shared outcome's result, noting its expiration
// as a dependency of the sub-problem being evaluated.
func (c *checker) reuse(o outcome) tri {
	c.expires = earliest(c.expires, o.until)
	return o.t
}

// memoUsable reports whether a memoised result may be reused on path (see
// memoEntry) and, when it may, records its dependencies as cuts of the
// frames that hold them now.
func (c *checker) memoUsable(m memoEntry, path *frame) bool {
	if len(m.deps) == 0 || m.t.yes() {
		return true
	}
	var levels [maxMemoDeps]int
	for i, n := range m.deps {
		f := path.find(n)
		if f == nil {
			return false
		}
		levels[i] = f.level
	}
	for i, n := range m.deps {
		c.hits = append(c.hits, hit{node: n, level: levels[i], neg: c.neg})
	}
	return true
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

// evalNode evaluates typ#rel for ids and, when key is set, keeps the result
// under it: in the shared cache and the request's memo when it does not
// depend on the path, in the memo alone when it does (see memoEntry); not
// in the shared cache without share (see cacheUse). The outcome is valid
// until the earliest expiration among the relationships read under it.
func (c *checker) evalNode(ctx context.Context, typ string, ids []string, r *schema.Relation, key string, share bool, depth int, path *frame) (outcome, error) {
	if err := c.spend(typ, ids[0], r.Name); err != nil {
		return outcome{}, err
	}
	hitsBefore, negStart := len(c.hits), c.neg
	outer := c.expires
	c.expires = 0
	next := &frame{typ: typ, rel: r.Name, ids: ids, parent: path}
	if path != nil {
		next.level = path.level + 1
	}
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
	// Cuts of this node and below it are part of its own evaluation, the
	// same on every path; cuts of nodes above it make it path-dependent.
	deps, monotone := c.popHits(hitsBefore, next.level, negStart)
	if err != nil || key == "" {
		return o, err
	}
	switch {
	case len(deps) == 0:
		if c.v.engine.cache != nil && share {
			c.v.engine.cache.Set(key, o, resultCost(key, o))
		}
		c.remember(key, memoEntry{outcome: o})
	case monotone && deps[0].typ != "":
		nodes := make([]node, len(deps))
		for i, h := range deps {
			nodes[i] = h.node
		}
		c.remember(key, memoEntry{outcome: o, deps: nodes})
	}
	return o, nil
}

func (c *checker) remember(key string, m memoEntry) {
	if c.memo == nil {
		if c.pooled {
			c.memo, _ = c.v.engine.memos.Get().(map[string]memoEntry)
		}
		if c.memo == nil {
			c.memo = map[string]memoEntry{}
		}
	}
	c.memo[key] = m
}

// maxPooledMemo is the largest memo returned to Engine.memos (clear keeps a
// map's size; a check that memoised thousands of results would pin them).
const maxPooledMemo = 64

// release returns the checker's memo to Engine.memos when it came from there
// (pooled) and is small. The checker must not be used afterwards.
func (c *checker) release() {
	if c.pooled && c.memo != nil && len(c.memo) <= maxPooledMemo {
		clear(c.memo)
		c.v.engine.memos.Put(c.memo)
	}
	c.memo = nil
}

// popHits drops, from the cuts recorded since mark, those of frames at level
// or deeper and duplicates, leaving the rest for the frames above. It returns
// what is left and whether the result depends on it monotonically: no cut
// was made through a subtracted side opened below neg. More than maxMemoDeps
// distinct cuts collapse into one that names no node (see mergeHit).
func (c *checker) popHits(mark, level, neg int) (deps []hit, monotone bool) {
	monotone = true
	kept := c.hits[mark:mark]
	for _, h := range c.hits[mark:] {
		if h.level >= level {
			continue
		}
		if h.neg > neg {
			monotone = false
		}
		kept = mergeHit(kept, h)
	}
	c.hits = c.hits[:mark+len(kept)]
	return kept, monotone
}

// mergeHit adds h to the distinct cuts in hs. Past maxMemoDeps, hs becomes
// one cut of no node (typ "") at the shallowest level and deepest negation
// among them: enough for the frames above to know that they depend on the
// path, too much to memoise.
func mergeHit(hs []hit, h hit) []hit {
	if len(hs) == 1 && hs[0].typ == "" {
		hs[0].level, hs[0].neg = min(hs[0].level, h.level), max(hs[0].neg, h.neg)
		return hs
	}
	for i := range hs {
		if hs[i].node == h.node {
			hs[i].neg = max(hs[i].neg, h.neg)
			return hs
		}
	}
	if len(hs) < maxMemoDeps {
		return append(hs, h)
	}
	all := hit{level: h.level, neg: h.neg}
	for _, x := range hs {
		all.level, all.neg = min(all.level, x.level), max(all.neg, x.neg)
	}
	hs[0] = all
	return hs[:1]
}

// spend counts one dispatch and fails once the request has used up its
// dispatch or read budget.
func (c *checker) spend(typ, id, rel string) error {
	cfg := &c.v.engine.cfg
	c.stats.Dispatches++
	switch {
	case c.stats.Dispatches > cfg.MaxDispatches:
		return &BudgetError{Budget: BudgetDispatches, Limit: int64(cfg.MaxDispatches), At: typ + ":" + id + "#" + rel}
	case c.stats.Reads > cfg.MaxReads:
		return &BudgetError{Budget: BudgetReads, Limit: int64(cfg.MaxReads), At: typ + ":" + id + "#" + rel}
	}
	return nil
}

// anyOf folds a disjunction in which a definite answer wins: a grant from
// one branch is the answer even when another failed (it hit the depth
// limit, a caveat could not be evaluated); an error is the answer only when
// no branch granted.
type anyOf struct {
	t   tri
	err error
}

// add folds in one branch and reports whether the answer is decided.
func (a *anyOf) add(t tri, err error) bool {
	if err != nil {
		if a.err == nil {
			a.err = err
		}
		return false
	}
	a.t = a.t.or(t)
	return a.t.yes()
}

func (a *anyOf) result() (tri, error) {
	if a.err != nil && !a.t.yes() {
		return triNo, a.err
	}
	return a.t, nil
}

// allOf folds a conjunction: a definite "no" from one branch is the answer
// even when another failed; an error is the answer only when no branch
// said no.
type allOf struct {
	t   tri
	err error
}

func newAllOf() allOf { return allOf{t: triYes} }

// add folds in one branch and reports whether the answer is decided.
func (a *allOf) add(t tri, err error) bool {
	if err != nil {
		if a.err == nil {
			a.err = err
		}
		return false
	}
	a.t = a.t.and(t)
	return a.t.no()
}

func (a *allOf) result() (tri, error) {
	if a.err != nil && !a.t.no() {
		return triNo, a.err
	}
	return a.t, nil
}

// direct evaluates a relation (not a permission) over ids: relationships that
// name the subject exactly or by wildcard, then subject sets, recursively.
// Every relationship is a branch of one union.
func (c *checker) direct(ctx context.Context, typ string, ids []string, r *schema.Relation, depth int, path *frame) (tri, error) {
	s := c.subject
	var result anyOf
	// The nested-group index stands in for typ#rel's plain self edges
	// (typ:a#rel@typ:b#rel): ids grow to every object nested under them,
	// evaluated as one node, and only the caveated or expiring self edges
	// are read below. A cycle adds no members (least fixed point), so the
	// closure is what the walk would find level by level.
	var cl closure
	indexed := false
	if !c.tracing {
		if cl, indexed = c.v.nested(typ, r, ids); indexed {
			if s.Type == typ && s.Relation == r.Name && cl.has(s.ID) {
				return triYes, nil
			}
			ids = cl.ids
			path = &frame{typ: typ, rel: r.Name, ids: ids, level: path.level, parent: path.parent}
		}
	}
	exact, wildcard := allowsDirect(r, s.Type, s.Relation)
	if exact || wildcard {
		subjIDs := c.scratch.ids[:0]
		if exact {
			subjIDs = append(subjIDs, s.ID)
		}
		if wildcard && s.ID != tuple.Wildcard {
			subjIDs = append(subjIDs, tuple.Wildcard)
		}
		// Over a large closure, the subject's own relationships (by the
		// subject index, one seek, or the read cache) are fewer than the
		// closure's objects.
		bySubject := indexed && len(ids) > closureByResource
		var (
			rels []tuple.Relationship
			err  error
		)
		if bySubject {
			rels, err = c.v.collectBySubject(ctx, typ, r.Name, s.Type, subjIDs, s.Relation, nil)
		} else {
			f := tuple.Filter{ResourceType: typ, ResourceIDs: ids, Relation: r.Name,
				Subject: c.scratch.subject(s.Type, subjIDs, s.Relation)}
			rels, err = c.v.collect(ctx, f, nil)
		}
		result.add(triNo, err)
		for _, rel := range rels {
			if bySubject && !cl.has(rel.Resource.ID) {
				continue
			}
			c.read(rel)
			t, err := c.caveat(ctx, rel)
			if err == nil {
				c.traceRelationship(rel, t)
			}
			if result.add(t, err) {
				return result.result()
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
		// With the index, typ#rel's own subject sets are read only from
		// the objects that have caveated or expiring ones.
		self := indexed && at.Type == typ && at.Relation == r.Name
		from := ids
		if self {
			if len(cl.special) == 0 {
				continue
			}
			from = cl.special
		}
		f := tuple.Filter{ResourceType: typ, ResourceIDs: from, Relation: r.Name,
			Subject: c.scratch.subject(at.Type, nil, at.Relation)}
		var batch idSet
		var caveated []tuple.Relationship
		rels, err := c.v.collect(ctx, f, nil)
		if err != nil {
			result.add(triNo, err)
			continue
		}
		for _, rel := range rels {
			if self && cl.has(rel.Subject.ID) {
				continue // its members are in the closure already
			}
			c.read(rel)
			if rel.Caveat != nil {
				caveated = append(caveated, rel)
			} else {
				batch.add(rel.Subject.ID)
			}
		}
		if len(batch.ids) > 0 {
			if result.add(c.checkAny(ctx, at.Type, batch.ids, at.Relation, depth+1, path)) {
				return result.result()
			}
		}
		for _, rel := range caveated {
			if result.add(c.guarded(ctx, rel, at.Relation, depth, path)) {
				return result.result()
			}
		}
	}
	return result.result()
}

// closureByResource is the closure size up to which a check reads the
// subject's direct relationships by the closure's objects (one point read
// each); over a larger closure it reads them by the subject.
const closureByResource = 8

// guarded evaluates "rel's caveat and the subject is in rel.Subject#relation".
func (c *checker) guarded(ctx context.Context, rel tuple.Relationship, relation string, depth int, path *frame) (tri, error) {
	ct, err := c.caveat(ctx, rel)
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

// evalExpr evaluates a permission expression for "any of ids". A definite
// answer from one branch wins over an error in another (see anyOf, allOf).
func (c *checker) evalExpr(ctx context.Context, typ string, ids []string, e schema.Expr, depth int, path *frame) (tri, error) {
	switch e := e.(type) {
	case *schema.Nil:
		return triNo, nil
	case *schema.RelationRef:
		return c.checkAny(ctx, typ, ids, e.Name, depth+1, path)
	case *schema.Union:
		var result anyOf
		for _, child := range e.Children {
			if result.add(c.evalExpr(ctx, typ, ids, child, depth, path)) {
				break
			}
		}
		return result.result()
	case *schema.Arrow:
		if e.Func == schema.ArrowAny {
			return c.arrowAny(ctx, typ, ids, e, depth, path)
		}
	}
	// Intersection, exclusion and .all() do not distribute over "any id":
	// evaluate per id.
	if len(ids) > 1 {
		var result anyOf
		for _, id := range ids {
			if result.add(c.evalExpr(ctx, typ, []string{id}, e, depth, path)) {
				break
			}
		}
		return result.result()
	}
	switch e := e.(type) {
	case *schema.Intersection:
		result := newAllOf()
		for _, child := range e.Children {
			if result.add(c.evalExpr(ctx, typ, ids, child, depth, path)) {
				break
			}
		}
		return result.result()
	case *schema.Exclusion:
		// base and not subtracted: a "no" from either side decides.
		base, err := c.evalExpr(ctx, typ, ids, e.Base, depth, path)
		if err == nil && base.no() {
			return triNo, nil
		}
		c.neg++
		sub, subErr := c.evalExpr(ctx, typ, ids, e.Subtracted, depth, path)
		c.neg--
		result := newAllOf()
		result.add(base, err)
		result.add(sub.not(), subErr)
		return result.result()
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
	var result anyOf
	for _, st := range order {
		if result.add(c.checkAny(ctx, st, batches[st].ids, a.Computed, depth+1, path)) {
			return result.result()
		}
	}
	for _, rel := range caveated {
		if result.add(c.guarded(ctx, rel, a.Computed, depth, path)) {
			return result.result()
		}
	}
	return result.result()
}

// arrowAll evaluates tupleset.all(computed) for one id: every subject of the
// tupleset must have computed; no subjects means no.
func (c *checker) arrowAll(ctx context.Context, typ, id string, a *schema.Arrow, depth int, path *frame) (tri, error) {
	result := newAllOf()
	rels, err := c.v.collect(ctx, tuple.Filter{ResourceType: typ, ResourceIDs: []string{id}, Relation: a.Tupleset}, nil)
	if err != nil {
		return triNo, err
	}
	if len(rels) == 0 {
		return triNo, nil
	}
	for _, rel := range rels {
		c.read(rel)
		if c.v.schema.Relation(rel.Subject.Type, a.Computed) == nil {
			return triNo, nil
		}
		if result.add(c.guarded(ctx, rel, a.Computed, depth, path)) {
			break
		}
	}
	return result.result()
}

// caveat evaluates a relationship's caveat with the request context, the
// relationship's own context taking precedence. Its CEL cost counts against
// the check's caveat budget.
func (c *checker) caveat(ctx context.Context, rel tuple.Relationship) (tri, error) {
	if rel.Caveat == nil {
		return triYes, nil
	}
	cv := c.v.schema.Caveats[rel.Caveat.Name]
	if cv == nil {
		return triNo, fmt.Errorf("%w: relationship %s names caveat %q, which the schema does not define", ErrInvalidRequest, rel, rel.Caveat.Name)
	}
	c.stats.CaveatEvals++
	// The relationship's own context wins over the request's.
	res, err := cv.EvaluateContext(ctx, rel.Caveat.Context, c.context)
	var ce *caveats.CostError
	switch {
	case errors.As(err, &ce):
		return triNo, &BudgetError{Budget: BudgetCaveatCost, Limit: int64(ce.Limit), At: "caveat " + strconv.Quote(ce.Caveat) + " on " + rel.Key().String()}
	case err != nil && ctx.Err() != nil:
		return triNo, ctx.Err()
	case err != nil:
		return triNo, fmt.Errorf("%w: caveat %q on %s: %w", ErrCaveatContext, rel.Caveat.Name, rel.Key(), err)
	}
	c.caveatCost += res.Cost
	if limit := c.v.engine.cfg.MaxCaveatCost; c.caveatCost > uint64(limit) {
		return triNo, &BudgetError{Budget: BudgetCaveatCost, Limit: limit, At: "caveat " + strconv.Quote(rel.Caveat.Name) + " on " + rel.Key().String()}
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
