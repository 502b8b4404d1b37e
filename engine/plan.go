package engine

import (
	"sync"

	"github.com/ambit-authz/ambit/schema"
)

// plan holds what the engine derives once per compiled schema: which
// (type, relation) nodes can ever lead to a subject of a given kind (a branch
// that cannot reach the subject is pruned before any read); computed on
// first use, the type graph, the relations a lookup reads (relevant,
// lookupTarget), the nodes on cycles and what the reverse walk needs
// (monotone); and, per relation, whether the result cache pays (cacheUses).
type plan struct {
	s *schema.Schema

	// reach holds, per subject kind, every node that can reach it: one
	// backward walk over the schema graph per kind, computed on first use.
	// Read on every step of every check; the map only grows (one entry per
	// subject kind), so a read takes a shared lock and a write adds one key.
	reachMu  sync.RWMutex
	reach    map[relKey]map[relKey]bool
	backOnce sync.Once
	back     *backGraph

	typesOnce sync.Once
	types     *types

	relevantMemo sync.Map // relevantKey -> map[relKey]bool
	targetMemo   sync.Map // relKey -> *lookupTarget
	cyclesOnce   sync.Once
	cycles       map[relKey]bool // see findCycles

	monoOnce sync.Once
	mono     *monotone

	uses map[*schema.Relation]*cacheUse // see cacheuse.go; read-only after newPlan
}

type relKey struct{ typ, rel string }

func newPlan(s *schema.Schema) *plan {
	return &plan{s: s, reach: map[relKey]map[relKey]bool{}, uses: cacheUses(s)}
}

// canReach reports whether some relationship data could make a subject of
// kind (subjType, subjRel) a member of typ#rel under the schema.
func (p *plan) canReach(typ, rel, subjType, subjRel string) bool {
	subj := relKey{subjType, subjRel}
	p.reachMu.RLock()
	set, ok := p.reach[subj]
	p.reachMu.RUnlock()
	if !ok {
		set = p.reachers(subj)
		p.reachMu.Lock()
		if prev, ok := p.reach[subj]; ok {
			set = prev
		} else {
			p.reach[subj] = set
		}
		p.reachMu.Unlock()
	}
	return set[relKey{typ, rel}]
}

// backGraph is the schema's dispatch graph reversed: for each node, the
// nodes whose evaluation dispatches to it (the subtracted side of an
// exclusion excluded: it never grants), and for each subject kind, the
// relations that allow it directly.
type backGraph struct {
	up     map[relKey][]relKey
	direct map[relKey][]relKey
}

func (p *plan) backGraph() *backGraph {
	p.backOnce.Do(func() {
		g := &backGraph{up: map[relKey][]relKey{}, direct: map[relKey][]relKey{}}
		for _, d := range p.s.Definitions {
			for _, r := range d.Relations {
				n := relKey{d.Name, r.Name}
				if r.IsPermission {
					p.walkExpr(d.Name, r.Expr, false, func(dep relKey) { g.up[dep] = append(g.up[dep], n) }, nil)
					continue
				}
				for _, at := range r.AllowedTypes {
					k := relKey{at.Type, at.Relation}
					g.direct[k] = append(g.direct[k], n)
					if at.Relation != "" {
						g.up[k] = append(g.up[k], n)
					}
				}
			}
		}
		p.back = g
	})
	return p.back
}

// reachers walks the graph backwards from a subject kind: the subject set
// itself, the relations that allow the kind directly (a wildcard of a plain
// type included), and everything that dispatches to those. Linear in the
// schema's size.
func (p *plan) reachers(subj relKey) map[relKey]bool {
	g := p.backGraph()
	out := map[relKey]bool{}
	var queue []relKey
	push := func(n relKey) {
		if !out[n] {
			out[n] = true
			queue = append(queue, n)
		}
	}
	push(subj) // a subject set is trivially a member of itself
	for _, n := range g.direct[subj] {
		push(n)
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, m := range g.up[n] {
			push(m)
		}
	}
	return out
}

// walkExpr calls visit for every (type, relation) expression e dispatches
// to: relation and permission references, and each arrow's computed relation
// on every type its tupleset allows that defines it. The subtracted side of
// an exclusion is included only when subtracted is set; tupleset, when not
// nil, is called with each arrow's tupleset relation.
func (p *plan) walkExpr(typ string, e schema.Expr, subtracted bool, visit, tupleset func(relKey)) {
	switch e := e.(type) {
	case *schema.Union:
		for _, c := range e.Children {
			p.walkExpr(typ, c, subtracted, visit, tupleset)
		}
	case *schema.Intersection:
		for _, c := range e.Children {
			p.walkExpr(typ, c, subtracted, visit, tupleset)
		}
	case *schema.Exclusion:
		p.walkExpr(typ, e.Base, subtracted, visit, tupleset)
		if subtracted {
			p.walkExpr(typ, e.Subtracted, subtracted, visit, tupleset)
		}
	case *schema.RelationRef:
		visit(relKey{typ, e.Name})
	case *schema.Arrow:
		ts := p.s.Relation(typ, e.Tupleset)
		if ts == nil {
			return
		}
		if tupleset != nil {
			tupleset(relKey{typ, e.Tupleset})
		}
		for _, at := range ts.AllowedTypes {
			if p.s.Relation(at.Type, e.Computed) != nil {
				visit(relKey{at.Type, e.Computed})
			}
		}
	}
}

// deps calls visit for every (type, relation) evaluating n dispatches to:
// subject sets of a relation, everything a permission's expression refers to
// (the subtracted side of an exclusion only when subtracted is set), as
// walkExpr does, tupleset included.
func (p *plan) deps(n relKey, subtracted bool, visit, tupleset func(relKey)) {
	r := p.s.Relation(n.typ, n.rel)
	if r == nil {
		return
	}
	if r.IsPermission {
		p.walkExpr(n.typ, r.Expr, subtracted, visit, tupleset)
		return
	}
	for _, at := range r.AllowedTypes {
		if at.Relation != "" {
			visit(relKey{at.Type, at.Relation})
		}
	}
}

// cyclic reports whether evaluating typ#rel can come back to typ#rel. Results
// of acyclic nodes never depend on the path that reached them, and waiting
// for one in flight elsewhere cannot deadlock: a cycle of waits would be a
// cycle in the schema through it.
func (p *plan) cyclic(typ, rel string) bool {
	p.cyclesOnce.Do(func() { p.cycles = p.findCycles() })
	return p.cycles[relKey{typ, rel}]
}

// findCycles returns the nodes on a cycle of the dispatch graph (the
// subtracted side of exclusions included): one pass of Tarjan's strongly
// connected components algorithm, linear in the schema's size. A node is on
// a cycle when its component has another node or it depends on itself.
func (p *plan) findCycles() map[relKey]bool {
	type state struct {
		index, low int
		onStack    bool
	}
	states := map[relKey]*state{}
	var stack []relKey
	out := map[relKey]bool{}
	next := 0
	var visit func(n relKey)
	visit = func(n relKey) {
		st := &state{index: next, low: next, onStack: true}
		next++
		states[n] = st
		stack = append(stack, n)
		self := false
		p.deps(n, true, func(d relKey) {
			if d == n {
				self = true
			}
			if ds, ok := states[d]; !ok {
				visit(d)
				st.low = min(st.low, states[d].low)
			} else if ds.onStack {
				st.low = min(st.low, ds.index)
			}
		}, nil)
		if st.low != st.index {
			return
		}
		i := len(stack) - 1
		for stack[i] != n {
			i--
		}
		comp := stack[i:]
		for _, m := range comp {
			states[m].onStack = false
			if len(comp) > 1 || self {
				out[m] = true
			}
		}
		stack = stack[:i]
	}
	for _, d := range p.s.Definitions {
		for _, r := range d.Relations {
			if n := (relKey{d.Name, r.Name}); states[n] == nil {
				visit(n)
			}
		}
	}
	return out
}

// allowsDirect reports whether relation r can hold the subject kind directly
// (exactly, or through a wildcard for plain objects).
func allowsDirect(r *schema.Relation, subjType, subjRel string) (exact, wildcard bool) {
	for _, at := range r.AllowedTypes {
		if at.Type != subjType {
			continue
		}
		if at.Wildcard {
			if subjRel == "" {
				wildcard = true
			}
			continue
		}
		if at.Relation == subjRel {
			exact = true
		}
	}
	return exact, wildcard
}

// types is the schema's type graph: an edge runs from a subject type up to
// every resource type with a relation that allows it.
type types struct {
	up   map[string][]string
	memo sync.Map // "a:"+t -> map[string]bool
}

func (p *plan) typeGraph() *types {
	p.typesOnce.Do(func() {
		g := &types{up: map[string][]string{}}
		for _, d := range p.s.Definitions {
			for _, r := range d.Relations {
				for _, at := range r.AllowedTypes {
					g.up[at.Type] = append(g.up[at.Type], d.Name)
				}
			}
		}
		p.types = g
	})
	return p.types
}

// above returns t and every type whose objects can have an object of type t
// somewhere below them.
func (g *types) above(t string) map[string]bool { return g.closure("a:", t, g.up) }

func (g *types) closure(tag, t string, edges map[string][]string) map[string]bool {
	if v, ok := g.memo.Load(tag + t); ok {
		return v.(map[string]bool)
	}
	out := map[string]bool{t: true}
	queue := []string{t}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, m := range edges[n] {
			if !out[m] {
				out[m] = true
				queue = append(queue, m)
			}
		}
	}
	g.memo.Store(tag+t, out)
	return out
}

// relevant returns the (type, relation) pairs whose relationships can take
// part in proving typ#rel for some subject: the relations the permission
// refers to, arrows' tuplesets and computed relations, and subject sets, all
// transitively. The subtracted side of an exclusion only takes away: it is
// included only when subtracted is set (to find the subjects a wildcard
// excludes). Lookups walk only relationships of relevant relations.
func (p *plan) relevant(typ, rel string, subtracted bool) map[relKey]bool {
	k := relevantKey{relKey{typ, rel}, subtracted}
	if v, ok := p.relevantMemo.Load(k); ok {
		return v.(map[relKey]bool)
	}
	out := map[relKey]bool{}
	var visit func(n relKey)
	visit = func(n relKey) {
		if out[n] || p.s.Relation(n.typ, n.rel) == nil {
			return
		}
		out[n] = true
		p.deps(n, subtracted, visit, func(ts relKey) { out[ts] = true })
	}
	visit(k.relKey)
	p.relevantMemo.Store(k, out)
	return out
}

type relevantKey struct {
	relKey
	subtracted bool
}
