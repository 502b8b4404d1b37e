package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// Leopard is the nested-group index (after Zanzibar's Leopard, §3.2.4): for
// every relation T#r that holds subject sets of itself (group#member
// containing group#member), the graph of those self edges, so that a check
// finds every group nested under a group in memory instead of reading the
// store level by level.
//
// What it holds. An edge T:a#r@T:b#r says that b's members are a's members.
// A plain edge (no caveat, no expiration) is followed by the index; an edge
// with a caveat or an expiration is only noted on its parent, and the check
// reads and evaluates such edges through the view's reader as the walk does
// (the reader decides expiration; the check evaluates the caveat). The index
// tracks every stored relationship of the shape T:a#r@T:b#r whatever the
// schema says: a schema only lets such a relationship be stored when T#r
// allows T#r, so the data decides and a schema change needs no rebuild.
//
// Which revisions it answers. The index reflects the data at Through, the
// last revision whose changes were all applied. For each relation it keeps
// since, the last revision that changed one of the relation's self edges
// (the graph is the same at every revision in [since, Through]), and a log
// of its latest edge changes (at most leopardLogMax), each with the edge's
// state before it: a view at an older revision, down to the oldest the log
// can undo back to (floor), takes its closures from the graph with the
// later changes undone. So a stream of nesting writes leaves the reads of a
// slightly older revision (minimize_latency's quantum) on the index. A view
// at any other revision (older than floor, or newer than the index has
// followed) evaluates by the walk, which is always correct; so is a view
// over another data set (another Source).
//
// Memory is bounded by Config.LeopardMaxEdges: past it the index empties
// itself and every check walks, until the next Build fits.
//
// Build and Apply are called from one goroutine (the follower of the change
// feed); checks read concurrently.
type Leopard struct {
	src      uint64
	maxEdges int

	mu      sync.RWMutex
	ready   bool // built, and within the limit since
	built   tuple.Revision
	through tuple.Revision
	graphs  map[relKey]*lpGraph
	edges   int // plain and special, all relations
	special int

	builds     atomic.Uint64
	buildNanos atomic.Int64 // the last build's duration
	overLimit  atomic.Bool
	served     atomic.Uint64
	fallbacks  atomic.Uint64
}

// lpGraph is one relation's self edges.
type lpGraph struct {
	since tuple.Revision
	nodes map[string]*lpNode
	// log holds the latest changes of the graph's edges, oldest first;
	// floor is the oldest revision whose graph undoing them gives (the
	// last revision of an entry dropped from the log, or the build's).
	log   []lpChange
	floor tuple.Revision

	// memo holds large closures of the current graph, by object id (see
	// closure); guarded by memoMu under l.mu's read lock, changed under
	// its write lock. A change of an edge drops the closures holding its
	// parent.
	memoMu  sync.Mutex
	memo    map[string]*closure
	memoIDs int
}

// lpState is what the index holds of one edge.
type lpState uint8

const (
	lpNone lpState = iota
	lpPlain
	lpSpecial // caveated or expiring
)

// lpChange is one change of an edge, from before to what the graph holds.
type lpChange struct {
	rev           tuple.Revision
	parent, child string
	before        lpState
}

// leopardLogMax bounds the changes a relation's graph keeps to answer
// older revisions; past it the older half is dropped. A variable for
// tests.
var leopardLogMax = 4096

// memoMin is the smallest closure the index keeps once computed: below it,
// computing one costs about as much as finding it. A variable for tests.
var memoMin = 64

// lpNode is one object's outgoing self edges: the children whose members are
// its members.
type lpNode struct {
	plain []string
	// pos indexes plain once it is long (removal and lookup by id).
	pos map[string]int
	// special holds the children reached by a caveated or expiring edge;
	// nil when none.
	special map[string]struct{}
}

// posThreshold is the number of plain children past which a node keeps an
// index of their positions.
const posThreshold = 32

func (n *lpNode) find(id string) int {
	if n.pos != nil {
		if i, ok := n.pos[id]; ok {
			return i
		}
		return -1
	}
	return slices.Index(n.plain, id)
}

func (n *lpNode) addPlain(id string) {
	n.plain = append(n.plain, id)
	if n.pos != nil {
		n.pos[id] = len(n.plain) - 1
	} else if len(n.plain) > posThreshold {
		n.pos = make(map[string]int, 2*len(n.plain))
		for i, x := range n.plain {
			n.pos[x] = i
		}
	}
}

func (n *lpNode) removePlain(i int) {
	last := len(n.plain) - 1
	id := n.plain[i]
	n.plain[i] = n.plain[last]
	n.plain[last] = ""
	n.plain = n.plain[:last]
	if n.pos != nil {
		delete(n.pos, id)
		if i < last {
			n.pos[n.plain[i]] = i
		}
	}
}

func (n *lpNode) empty() bool { return len(n.plain) == 0 && len(n.special) == 0 }

// IndexChange is one applied change to relationships, as the change feed
// reports it: a write (create or touch, replacing any caveat or expiration)
// or a delete (only the relationship's key matters).
type IndexChange struct {
	Delete bool
	Rel    tuple.Relationship
}

// LeopardStats describes the index for metrics.
type LeopardStats struct {
	// Ready is set when the index answers (built and within its limit).
	Ready bool
	// Through is the last revision whose changes the index applied.
	Through tuple.Revision
	// Relations, Nodes and Edges count what it holds; SpecialEdges are the
	// caveated or expiring edges among Edges, left to the walk.
	Relations, Nodes, Edges, SpecialEdges int
	// OverLimit is set while the index is empty because the data exceeded
	// Config.LeopardMaxEdges.
	OverLimit bool
	// Builds counts builds; BuildTime is the last one's duration.
	Builds    uint64
	BuildTime time.Duration
	// Served counts evaluations the index answered the nesting of;
	// Fallbacks those it could not (revision not covered, not ready), which
	// walked.
	Served, Fallbacks uint64
}

// Leopard returns the nested-group index of the data set src names,
// creating it, empty and not ready, on the first call. Nil when
// Config.LeopardMaxEdges is negative or src is the zero Source (which names
// no data set). Views over src use it once it has been built (see Build) at
// a revision they read.
func (e *Engine) Leopard(src Source) *Leopard {
	if e.cfg.LeopardMaxEdges < 0 || src == (Source{}) {
		return nil
	}
	if l, ok := e.leopards.Load(src.id); ok {
		return l.(*Leopard)
	}
	l, _ := e.leopards.LoadOrStore(src.id, &Leopard{src: src.id, maxEdges: e.cfg.LeopardMaxEdges})
	return l.(*Leopard)
}

// leopardFor returns the index of src if one was created.
func (e *Engine) leopardFor(src uint64) *Leopard {
	if l, ok := e.leopards.Load(src); ok {
		return l.(*Leopard)
	}
	return nil
}

// Through returns the last revision whose changes the index applied, and
// whether the index is ready (built and within its limit). A follower
// builds when it is not ready and applies changes after Through otherwise.
func (l *Leopard) Through() (tuple.Revision, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.through, l.ready
}

// Stats returns the index's figures.
func (l *Leopard) Stats() LeopardStats {
	l.mu.RLock()
	st := LeopardStats{Ready: l.ready, Through: l.through, Relations: len(l.graphs), Edges: l.edges, SpecialEdges: l.special}
	for _, g := range l.graphs {
		st.Nodes += len(g.nodes)
	}
	l.mu.RUnlock()
	st.OverLimit = l.overLimit.Load()
	st.Builds = l.builds.Load()
	st.BuildTime = time.Duration(l.buildNanos.Load())
	st.Served, st.Fallbacks = l.served.Load(), l.fallbacks.Load()
	return st
}

// selfRelations returns the relations of s that allow subject sets of
// themselves.
func selfRelations(s *schema.Schema) []relKey {
	var out []relKey
	for _, d := range s.Definitions {
		for _, r := range d.Relations {
			if !r.IsPermission && allowsSelf(r, d.Name) {
				out = append(out, relKey{d.Name, r.Name})
			}
		}
	}
	return out
}

// allowsSelf reports whether relation r of type typ allows typ#r subjects
// (with or without a caveat or expiration).
func allowsSelf(r *schema.Relation, typ string) bool {
	for _, at := range r.AllowedTypes {
		if at.Type == typ && at.Relation == r.Name {
			return true
		}
	}
	return false
}

// isSelfEdge reports whether rel is T:a#r@T:b#r.
func isSelfEdge(rel *tuple.Relationship) bool {
	return rel.Subject.Relation != "" && rel.Subject.Relation == rel.Relation && rel.Subject.Type == rel.Resource.Type
}

func isSpecial(rel *tuple.Relationship) bool {
	return rel.Caveat != nil || !rel.Expiration.IsZero()
}

// Build replaces the index with the self edges r holds at rev, for the
// relations of s (the schema in force at rev) that allow them. r should show
// expired relationships too (store.Snapshot.WithExpired): expiring edges are
// only noted, and a view's own reader decides whether they count. It fails
// with ErrTooMany, leaving the index empty, when the edges exceed
// Config.LeopardMaxEdges.
func (l *Leopard) Build(ctx context.Context, r Reader, s *schema.Schema, rev tuple.Revision) error {
	start := time.Now()
	l.mu.Lock()
	l.ready, l.graphs, l.edges, l.special = false, nil, 0, 0
	l.mu.Unlock()
	b := &Leopard{maxEdges: l.maxEdges, graphs: map[relKey]*lpGraph{}}
	if s != nil {
		for _, k := range selfRelations(s) {
			rel := k.rel
			f := tuple.Filter{ResourceType: k.typ, Relation: k.rel, Subject: &tuple.SubjectFilter{Type: k.typ, Relation: &rel}}
			for x, err := range r.Query(ctx, f) {
				if err != nil {
					return fmt.Errorf("leopard: build at revision %d: %w", rev, err)
				}
				b.put(&x, rev)
				if b.edges > b.maxEdges {
					l.overLimit.Store(true)
					return fmt.Errorf("%w: the nested-group index would hold more than %d edges (--leopard-max-edges)", ErrTooMany, l.maxEdges)
				}
			}
		}
	}
	for _, g := range b.graphs {
		g.since, g.floor = rev, rev
	}
	l.mu.Lock()
	l.graphs, l.edges, l.special = b.graphs, b.edges, b.special
	l.built, l.through, l.ready = rev, rev, true
	l.mu.Unlock()
	l.overLimit.Store(false)
	l.builds.Add(1)
	l.buildNanos.Store(int64(time.Since(start)))
	return nil
}

// Apply applies the changes of revision rev, in commit order. A revision may
// come in pieces: more is set on every piece but its last, and the index
// answers at rev only once the last has been applied. Changes at or before
// Through are ignored (a piece delivered twice). It fails with ErrTooMany,
// leaving the index empty and not ready, when the edges exceed
// Config.LeopardMaxEdges; a Build is then needed.
func (l *Leopard) Apply(rev tuple.Revision, changes []IndexChange, more bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.ready || rev <= l.through {
		return nil
	}
	for i := range changes {
		ch := &changes[i]
		if !isSelfEdge(&ch.Rel) {
			continue
		}
		if ch.Delete {
			l.remove(&ch.Rel, rev)
		} else {
			l.put(&ch.Rel, rev)
		}
	}
	if l.edges > l.maxEdges {
		l.ready, l.graphs, l.edges, l.special = false, nil, 0, 0
		l.overLimit.Store(true)
		return fmt.Errorf("%w: the nested-group index would hold more than %d edges (--leopard-max-edges)", ErrTooMany, l.maxEdges)
	}
	if !more {
		l.through = rev
	}
	return nil
}

// Advance records that the revisions after Through up to rev changed no
// relationship (the change feed holds nothing for them: refused writes,
// cluster membership), so the index answers there too. The caller must have
// applied every change up to rev first.
func (l *Leopard) Advance(rev tuple.Revision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ready && rev > l.through {
		l.through = rev
	}
}

func (l *Leopard) graph(rel *tuple.Relationship, create bool) *lpGraph {
	k := relKey{rel.Resource.Type, rel.Relation}
	g := l.graphs[k]
	if g == nil && create {
		// Empty until now: at every revision since the build.
		g = &lpGraph{nodes: map[string]*lpNode{}, since: l.built, floor: l.built}
		l.graphs[k] = g
	}
	return g
}

// changed records that the edge parent→child went from before to what the
// graph now holds, at rev (l.mu held, or l private): the log keeps it, the
// graph's since moves, and the kept closures holding parent are dropped.
func (l *Leopard) changed(g *lpGraph, rev tuple.Revision, parent, child string, before lpState) {
	g.since = rev
	if l.ready { // a build's own changes need no undoing
		g.log = append(g.log, lpChange{rev: rev, parent: strings.Clone(parent), child: strings.Clone(child), before: before})
		if len(g.log) > leopardLogMax {
			drop := len(g.log) / 2
			g.floor = g.log[drop-1].rev
			g.log = append(g.log[:0:0], g.log[drop:]...)
		}
	}
	for id, m := range g.memo {
		if m.has(parent) {
			delete(g.memo, id)
			g.memoIDs -= len(m.ids)
		}
	}
}

// put adds or replaces the edge rel (l.mu held, or l private).
func (l *Leopard) put(rel *tuple.Relationship, rev tuple.Revision) {
	g := l.graph(rel, true)
	a, b := rel.Resource.ID, rel.Subject.ID
	n := g.nodes[a]
	if n == nil {
		n = &lpNode{}
		// The index keeps ids for as long as the edges last: copies, so
		// that they do not pin the buffers a reader decoded them into.
		a = strings.Clone(a)
		g.nodes[a] = n
	}
	i := n.find(b)
	if i < 0 {
		b = strings.Clone(b)
	}
	_, wasSpecial := n.special[b]
	before := lpNone
	switch {
	case i >= 0:
		before = lpPlain
	case wasSpecial:
		before = lpSpecial
	}
	if isSpecial(rel) {
		if wasSpecial {
			return // a new caveat or expiration: still read by the check
		}
		if i >= 0 {
			n.removePlain(i)
		} else {
			l.edges++
		}
		if n.special == nil {
			n.special = map[string]struct{}{}
		}
		n.special[b] = struct{}{}
		l.special++
		l.changed(g, rev, a, b, before)
		return
	}
	if i >= 0 {
		return // plain already
	}
	if wasSpecial {
		delete(n.special, b)
		l.special--
	} else {
		l.edges++
	}
	n.addPlain(b)
	l.changed(g, rev, a, b, before)
}

// remove deletes the edge rel if the index holds it.
func (l *Leopard) remove(rel *tuple.Relationship, rev tuple.Revision) {
	g := l.graph(rel, false)
	if g == nil {
		return
	}
	a, b := rel.Resource.ID, rel.Subject.ID
	n := g.nodes[a]
	if n == nil {
		return
	}
	before := lpNone
	if i := n.find(b); i >= 0 {
		b = n.plain[i]
		n.removePlain(i)
		l.edges--
		before = lpPlain
	} else if _, ok := n.special[b]; ok {
		delete(n.special, b)
		l.edges--
		l.special--
		before = lpSpecial
	}
	if n.empty() {
		delete(g.nodes, a)
	}
	if before != lpNone {
		l.changed(g, rev, a, b, before)
	}
}

// closure is ids and every object they reach through plain self edges of
// one relation: the objects whose members, by relationships other than
// those edges, are the members of ids.
type closure struct {
	ids []string
	set map[string]struct{} // once ids is long
	// special lists the objects in ids with caveated or expiring self edges,
	// which the check reads and evaluates itself.
	special []string
	// from is, for a kept closure, the graph's since when it was computed:
	// it holds at every revision from there on until dropped.
	from tuple.Revision
}

// smallClosure is the size up to which a closure tests membership by a
// linear scan.
const smallClosure = 16

func (cl *closure) has(id string) bool {
	if cl.set != nil {
		_, ok := cl.set[id]
		return ok
	}
	return slices.Contains(cl.ids, id)
}

func (cl *closure) add(id string) {
	if cl.has(id) {
		return
	}
	cl.ids = append(cl.ids, id)
	if cl.set != nil {
		cl.set[id] = struct{}{}
	} else if len(cl.ids) > smallClosure {
		cl.set = make(map[string]struct{}, 2*len(cl.ids))
		for _, x := range cl.ids {
			cl.set[x] = struct{}{}
		}
	}
}

// closure returns the closure of ids in typ#rel at rev; ok is false when the
// index cannot answer at rev (the caller walks).
func (l *Leopard) closure(typ, rel string, ids []string, rev tuple.Revision) (cl closure, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if !l.ready || rev > l.through {
		return closure{}, false
	}
	g := l.graphs[relKey{typ, rel}]
	if g == nil {
		if rev < l.built {
			return closure{}, false
		}
		cl.ids = make([]string, 0, len(ids))
		for _, id := range ids {
			cl.add(id)
		}
		return cl, true
	}
	if rev < g.floor {
		return closure{}, false
	}
	if len(ids) == 1 {
		g.memoMu.Lock()
		m := g.memo[ids[0]]
		g.memoMu.Unlock()
		if m != nil && rev >= m.from {
			return *m, true
		}
	}
	// The edges at rev: the graph's, with the changes after rev undone.
	var undo map[string]map[string]lpState
	if rev < g.since {
		undo = map[string]map[string]lpState{}
		for i := len(g.log) - 1; i >= 0 && g.log[i].rev > rev; i-- {
			c := &g.log[i]
			m := undo[c.parent]
			if m == nil {
				m = map[string]lpState{}
				undo[c.parent] = m
			}
			m[c.child] = c.before // the earliest change after rev is undone last
		}
	}
	cl.ids = make([]string, 0, max(len(ids), 4))
	for _, id := range ids {
		cl.add(id)
	}
	for i := 0; i < len(cl.ids); i++ {
		id := cl.ids[i]
		n := g.nodes[id]
		u := undo[id]
		if u == nil {
			if n == nil {
				continue
			}
			if len(n.special) > 0 {
				cl.special = append(cl.special, id)
			}
			for _, c := range n.plain {
				cl.add(c)
			}
			continue
		}
		// A node whose edges changed after rev: its edges now, except
		// those u gives the state of at rev.
		special := false
		if n != nil {
			for _, c := range n.plain {
				if st, ok := u[c]; !ok || st == lpPlain {
					cl.add(c)
				} else if st == lpSpecial {
					special = true
				}
			}
			for c := range n.special {
				if st, ok := u[c]; !ok || st == lpSpecial {
					special = true
				} else if st == lpPlain {
					cl.add(c)
				}
			}
		}
		for c, st := range u {
			if n != nil && (n.find(c) >= 0 || hasKey(n.special, c)) {
				continue // done above
			}
			switch st {
			case lpPlain:
				cl.add(c)
			case lpSpecial:
				special = true
			}
		}
		if special {
			cl.special = append(cl.special, id)
		}
	}
	if len(ids) == 1 && len(cl.ids) >= memoMin && undo == nil {
		// Kept until a change of an edge from one of its objects, within
		// the index's own bound: at most as many ids as edges.
		g.memoMu.Lock()
		if g.memoIDs+len(cl.ids) > l.maxEdges {
			g.memo, g.memoIDs = nil, 0
		}
		if g.memo == nil {
			g.memo = map[string]*closure{}
		}
		if g.memo[ids[0]] == nil {
			m := cl
			m.from = g.since
			g.memo[ids[0]] = &m
			g.memoIDs += len(cl.ids)
		}
		g.memoMu.Unlock()
	}
	return cl, true
}

func hasKey(m map[string]struct{}, k string) bool {
	_, ok := m[k]
	return ok
}

// nested returns, for the view's index, the closure of ids in typ#rel at the
// view's revision, counting the answer as served or fallen back. ok is false
// when there is no index, it cannot answer at this revision, or typ#rel does
// not hold subject sets of itself.
func (v *View) nested(typ string, r *schema.Relation, ids []string) (closure, bool) {
	l := v.index
	if l == nil || r.IsPermission || !allowsSelf(r, typ) {
		return closure{}, false
	}
	cl, ok := l.closure(typ, r.Name, ids, v.rev)
	if ok {
		l.served.Add(1)
	} else {
		l.fallbacks.Add(1)
	}
	return cl, ok
}

// NestedMembers returns ids and every object whose typ#rel members are
// members of theirs through nested subject sets (typ:a#rel@typ:b#rel, plain
// ones: no caveat, no expiration), at the view's revision, from the
// nested-group index; special lists those among them with caveated or
// expiring such edges, which the caller must read and follow itself. ok is
// false when the index cannot answer (the caller walks). For lookups.
func (v *View) NestedMembers(typ, rel string, ids []string) (all, special []string, ok bool) {
	r := v.schema.Relation(typ, rel)
	if r == nil {
		return nil, nil, false
	}
	cl, ok := v.nested(typ, r, ids)
	return cl.ids, cl.special, ok
}
