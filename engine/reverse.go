package engine

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// LookupResources walks up from the subject through the relationships that
// name it, relation by relation. Where every step of a route is a union (a
// relation, a subject set, a permission made of `+` and `->`) and no
// relationship on it carries a caveat, reaching the resource proves the
// permission and no Check is needed. A permission whose whole expression is
// an exclusion, B - S, is proven where the walk proves B and S is decided
// false there (see monotone). Anything else on a route (an intersection, any
// other exclusion, `.all()`, a caveat) marks the objects above it as
// candidates, and candidates are verified with Check. The walk computes the
// least fixed point, as Check does, so cycles add nothing.

// monotone is what the reverse walk needs from the schema, derived once per
// schema: which permissions a relation implies through unions alone, which an
// arrow implies, and where a relation or arrow occurs in any other position.
//
// A permission whose whole expression is an exclusion, P = B - S, gets a
// pseudo-relation named baseOf(P) standing for B: the relations and arrows
// B holds through unions imply it. Where the walk proves B on an object, it
// evaluates S there alone (a forward check of the subtracted side, usually a
// read or two) and so proves P, drops it, or leaves it to verify: the
// verifying Check of the whole permission, which walks every branch of B
// again, is needed only where S is conditional.
type monotone struct {
	implied      map[relKey][]string   // (T, X) -> permissions P of T with X ⊆ P through unions
	arrows       map[arrowKey][]string // (T, tupleset, computed) -> permissions P of T
	partial      map[relKey]bool       // (T, X) occurs under & or as the base of -
	partialArrow map[arrowKey]bool     // (T, tupleset, computed) occurs under &, the base of -, or as .all()
	excl         map[relKey]exclusion  // (T, baseOf(P)) -> P = B - S
}

// exclusion is a permission P = B - S of the walk's exclusion rule.
type exclusion struct {
	perm string
	sub  schema.Expr
}

// baseOf names the pseudo-relation standing for the base of exclusion
// permission p; no relation name contains a NUL byte.
func baseOf(p string) string { return p + "\x00base" }

type arrowKey struct{ typ, tupleset, computed string }

func newMonotone(s *schema.Schema) *monotone {
	m := &monotone{implied: map[relKey][]string{}, arrows: map[arrowKey][]string{},
		partial: map[relKey]bool{}, partialArrow: map[arrowKey]bool{}, excl: map[relKey]exclusion{}}
	for _, d := range s.Definitions {
		// The relations and arrows each permission (and each exclusion's
		// base) holds through unions alone, one level deep.
		refs := map[string][]string{}
		arrows := map[string][]arrowKey{}
		var perms []string
		for _, r := range d.Relations {
			if !r.IsPermission {
				continue
			}
			name, expr := r.Name, r.Expr
			perms = append(perms, name)
			if x, ok := expr.(*schema.Exclusion); ok {
				name, expr = baseOf(r.Name), x.Base // the subtracted side never grants
				m.excl[relKey{d.Name, name}] = exclusion{perm: r.Name, sub: x.Subtracted}
				perms = append(perms, name)
			}
			var walk func(e schema.Expr, union bool)
			walk = func(e schema.Expr, union bool) {
				switch e := e.(type) {
				case *schema.Union:
					for _, c := range e.Children {
						walk(c, union)
					}
				case *schema.Intersection:
					for _, c := range e.Children {
						walk(c, false)
					}
				case *schema.Exclusion:
					walk(e.Base, false) // the subtracted side never grants
				case *schema.RelationRef:
					if union {
						refs[name] = append(refs[name], e.Name)
					} else {
						m.partial[relKey{d.Name, e.Name}] = true
					}
				case *schema.Arrow:
					k := arrowKey{d.Name, e.Tupleset, e.Computed}
					if union && e.Func == schema.ArrowAny {
						arrows[name] = append(arrows[name], k)
					} else {
						m.partialArrow[k] = true
					}
				}
			}
			walk(expr, true)
		}
		// Close transitively: P implies everything its union members imply.
		for _, p := range perms {
			seen := map[string]bool{p: true}
			for queue := []string{p}; len(queue) > 0; queue = queue[1:] {
				q := queue[0]
				for _, a := range arrows[q] {
					m.arrows[a] = append(m.arrows[a], p)
				}
				for _, x := range refs[q] {
					if !seen[x] {
						seen[x] = true
						m.implied[relKey{d.Name, x}] = append(m.implied[relKey{d.Name, x}], p)
						queue = append(queue, x)
					}
				}
			}
		}
	}
	return m
}

// lookupTarget is what a lookup of target#perm needs, derived once per plan.
type lookupTarget struct {
	relevant map[relKey]bool // relations whose relationships can prove target#perm
	leads    map[string]bool // types some relevant relation allows as subject
}

func (p *plan) monotone() *monotone {
	p.monoOnce.Do(func() { p.mono = newMonotone(p.s) })
	return p.mono
}

func (p *plan) lookupTarget(typ, perm string) *lookupTarget {
	k := relKey{typ, perm}
	if v, ok := p.targetMemo.Load(k); ok {
		return v.(*lookupTarget)
	}
	t := &lookupTarget{relevant: p.relevant(typ, perm, false), leads: map[string]bool{}}
	for rk := range t.relevant {
		if r := p.s.Relation(rk.typ, rk.rel); r != nil && !r.IsPermission {
			for _, at := range r.AllowedTypes {
				t.leads[at.Type] = true
			}
		}
	}
	p.targetMemo.Store(k, t)
	return t
}

// walkShared is what the walks of one lookup share: the check memo of the
// subtracted sides evaluated, and the sub-walks' answers.
type walkShared struct {
	memo map[string]memoEntry
	subs map[relKey]map[string]bool // (T, R) -> the ids a sub-walk found (true: proven)
}

// maxSubWalkDepth bounds how deep sub-walks nest (an exclusion whose
// subtracted side has an exclusion, ...); deeper ones evaluate the
// subtracted side per object.
const maxSubWalkDepth = 2

// walk runs the reverse walk from s to target#perm to its end.
func (v *View) walk(ctx context.Context, s tuple.SubjectRef, cctx map[string]any, ck, target, perm string, sh *walkShared, depth int, streamable bool) (*reverseWalk, error) {
	w := &reverseWalk{v: v, target: target, perm: perm, lt: v.plan.lookupTarget(target, perm), mono: v.plan.monotone(),
		nodes: map[objKey]*rnode{}, fetch: map[string][]*rnode{}, found: map[string]bool{},
		ctx: ctx, subject: s, cctx: cctx, ctxKey: ck, shared: sh, depth: depth, streamable: streamable}
	switch {
	case s.ID == tuple.Wildcard:
		// Check treats a wildcard subject specially; verify everything.
		w.markMaybe(objKey{s.Type, s.ID})
	case s.Relation != "":
		w.reach(objKey{s.Type, s.ID}, s.Relation)
	default:
		w.reach(objKey{s.Type, s.ID}, "")
		w.reach(objKey{s.Type, tuple.Wildcard}, "")
	}
	maxNodes := v.engine.cfg.MaxLookupCandidates
	for {
		for len(w.work) > 0 {
			t := w.work[len(w.work)-1]
			w.work = w.work[:len(w.work)-1]
			if t.maybe {
				for _, e := range t.n.edges {
					w.markMaybe(e.resource)
				}
			} else {
				w.follow(t.n, t.rel)
			}
			if w.err != nil {
				return nil, w.err
			}
			if len(w.nodes) > maxNodes {
				return nil, fmt.Errorf("%w: lookup examined more than %d candidate objects", ErrTooMany, maxNodes)
			}
		}
		if w.err != nil {
			return nil, w.err
		}
		if len(w.fetch) == 0 {
			break
		}
		if err := w.fetchEdges(ctx); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// rnode is one object the reverse walk reached.
type rnode struct {
	obj     objKey
	rels    []string // what the subject definitely holds here; "" = the object is the subject
	maybe   bool     // reached through a route that needs verification
	fetched bool
	edges   []edge   // relevant relationships naming this object as subject
	pending []string // relations reached before edges were fetched
	pendMay bool
}

// edge is the part of a relationship naming an object as subject that the
// walk needs.
type edge struct {
	resource objKey
	relation string
	subjRel  string
	caveated bool
}

type rtask struct {
	n     *rnode
	rel   string
	maybe bool
}

// reverseWalk finds the target objects on which the subject may hold perm.
type reverseWalk struct {
	v      *View
	target string
	perm   string
	lt     *lookupTarget
	mono   *monotone
	nodes  map[objKey]*rnode
	work   []rtask
	fetch  map[string][]*rnode
	found  map[string]bool // target ids: true if proven, false if a candidate to verify
	// What the subtracted sides of exclusions are evaluated with (see
	// monotone): the request's subject and caveat context, one memo for
	// the whole walk, and the first error met.
	ctx     context.Context
	subject tuple.SubjectRef
	cctx    map[string]any
	ctxKey  string
	shared  *walkShared
	depth   int // of sub-walks: 0 for the lookup's own walk
	err     error
	// streamable: the relationships into the target type may be left to the
	// sorted streams of LookupResources (see stream.go). The walk reads them
	// with the rest until it has read Config.LookupStreamAfter of them; then it
	// forgets what they reached, reads no more of them (streaming), and
	// the streams read them all again in id order.
	streamable, streaming bool
	targetEdges           int
	filters               map[string][]tuple.Filter // edgeFilters by subject type
}

// candidate is a target id the reverse walk reached; proven ones need no
// Check.
type candidate struct {
	id     string
	proven bool
}

// reverseWalk returns the target ids reached that sort after after, in
// ascending order, each marked proven or to verify. With limit > 0 the list
// ends at the limit-th proven id: no later id can be among the first limit
// results. The walk's graph is garbage once it returns, so a lookup whose
// client reads slowly holds only this list.
func (v *View) reverseWalk(ctx context.Context, s tuple.SubjectRef, cctx map[string]any, target, perm, after string, limit int) ([]candidate, error) {
	ck, err := contextKey(cctx)
	if err != nil {
		return nil, err
	}
	w, err := v.walk(ctx, s, cctx, ck, target, perm, &walkShared{subs: map[relKey]map[string]bool{}}, 0, false)
	if err != nil {
		return nil, err
	}
	n := 0
	for id := range w.found {
		if id > after {
			n++
		}
	}
	out := make([]candidate, 0, n)
	for id, proven := range w.found {
		if id > after {
			out = append(out, candidate{id: id, proven: proven})
		}
	}
	slices.SortFunc(out, func(a, b candidate) int { return strings.Compare(a.id, b.id) })
	if limit > 0 {
		n = 0
		for i, c := range out {
			if c.proven {
				if n++; n == limit {
					out = slices.Clone(out[:i+1]) // a copy: the rest becomes garbage
					break
				}
			}
		}
	}
	return out, nil
}

func (w *reverseWalk) node(o objKey) *rnode {
	n := w.nodes[o]
	if n == nil {
		n = &rnode{obj: o}
		w.nodes[o] = n
	}
	return n
}

// reach records that the subject holds rel on o for certain, with every
// permission rel implies through unions.
func (w *reverseWalk) reach(o objKey, rel string) {
	n := w.node(o)
	if slices.Contains(n.rels, rel) {
		return
	}
	n.rels = append(n.rels, rel)
	if x, ok := w.mono.excl[relKey{o.typ, rel}]; ok {
		if w.lt.relevant[relKey{o.typ, x.perm}] {
			w.exclude(o, x)
		}
		return
	}
	if o.typ == w.target && rel == w.perm && o.id != tuple.Wildcard {
		w.found[o.id] = true
	}
	if w.mono.partial[relKey{o.typ, rel}] {
		w.markMaybe(o)
	}
	if w.lt.leads[o.typ] {
		w.schedule(n, rtask{n: n, rel: rel})
	}
	for _, p := range w.mono.implied[relKey{o.typ, rel}] {
		w.reach(o, p)
	}
}

// exclude decides x.perm = B - S on o, where the subject holds B for
// certain, from S alone: P holds where S does not, and o needs verification
// where S is conditional or could not be decided here.
func (w *reverseWalk) exclude(o objKey, x exclusion) {
	if w.err != nil {
		return
	}
	t, ok := w.subtractedBySets(o, x)
	if !ok {
		c := &checker{v: w.v, subject: w.subject, context: w.cctx, ctxKey: w.ctxKey, stats: &Stats{}, memo: w.shared.memo}
		path := &frame{typ: o.typ, rel: x.perm, ids: []string{o.id}}
		c.neg++ // as evalExpr does for a subtracted side
		var err error
		t, err = c.evalExpr(w.ctx, o.typ, path.ids, x.sub, 0, path)
		w.shared.memo = c.memo
		if err != nil || len(c.hits) > 0 {
			// S could not be decided here (a budget, the depth limit: B
			// may still be decided without it), or depends on P itself (a
			// cut through P's own node on o): the verifying Check decides.
			t = maybe(nil)
		}
	}
	switch {
	case w.ctx.Err() != nil:
		w.err = w.ctx.Err()
	case t.maybe():
		w.markMaybe(o) // conditional, or undecided: the verifying Check decides
	case t.no():
		w.reach(o, x.perm)
	}
}

// subtractedBySets decides S on o where S is a relation or permission of o
// (R) or an arrow (ts->R), from the objects on which a sub-walk found that
// the subject may hold R: a set usually empty or small (the organizations
// that deactivated the subject, the documents that ban them), found once per
// lookup, so that most objects need no read at all. ok is false where S has
// another shape or the sub-walk could not run.
func (w *reverseWalk) subtractedBySets(o objKey, x exclusion) (t tri, ok bool) {
	in := func(found map[string]bool, id string) tri {
		proven, hit := found[id]
		switch {
		case !hit:
			return triNo
		case proven:
			return triYes
		}
		return maybe(nil)
	}
	s := w.v.schema
	switch e := x.sub.(type) {
	case *schema.RelationRef:
		found, ok := w.sub(o.typ, e.Name)
		if !ok {
			return triNo, false
		}
		return in(found, o.id), true
	case *schema.Arrow:
		ts := s.Relation(o.typ, e.Tupleset)
		if e.Func != schema.ArrowAny || ts == nil || ts.IsPermission {
			return triNo, false
		}
		sets := map[string]map[string]bool{}
		any := false
		for _, at := range ts.AllowedTypes {
			if _, done := sets[at.Type]; done || s.Relation(at.Type, e.Computed) == nil {
				continue
			}
			found, ok := w.sub(at.Type, e.Computed)
			if !ok {
				return triNo, false
			}
			sets[at.Type] = found
			any = any || len(found) > 0
		}
		if !any {
			return triNo, true // nowhere: no need to read o's tupleset
		}
		rels, err := w.v.collect(w.ctx, tuple.Filter{ResourceType: o.typ, ResourceIDs: []string{o.id}, Relation: e.Tupleset}, nil)
		if err != nil {
			return triNo, false
		}
		result := triNo
		for _, rel := range rels {
			found := sets[rel.Subject.Type]
			if found == nil {
				continue
			}
			r := in(found, rel.Subject.ID)
			if rel.Caveat != nil && !r.no() {
				r = maybe(nil)
			}
			result = result.or(r)
		}
		return result, true
	}
	return triNo, false
}

// sub returns what a sub-walk from the same subject to typ#rel found, run
// once per lookup; ok is false when sub-walks nest too deep or it failed.
func (w *reverseWalk) sub(typ, rel string) (map[string]bool, bool) {
	k := relKey{typ, rel}
	if found, ok := w.shared.subs[k]; ok {
		return found, found != nil
	}
	if w.depth >= maxSubWalkDepth {
		return nil, false
	}
	w.shared.subs[k] = nil // while it runs: a sub-walk that needs itself evaluates per object
	sw, err := w.v.walk(w.ctx, w.subject, w.cctx, w.ctxKey, typ, rel, w.shared, w.depth+1, false)
	if err != nil {
		return nil, false
	}
	w.shared.subs[k] = sw.found
	return sw.found, true
}

// markMaybe records that o may take part in a route that needs verification;
// everything relevant above it becomes a candidate too.
func (w *reverseWalk) markMaybe(o objKey) {
	n := w.node(o)
	if n.maybe {
		return
	}
	n.maybe = true
	if o.typ == w.target && o.id != tuple.Wildcard {
		if _, ok := w.found[o.id]; !ok {
			w.found[o.id] = false
		}
	}
	if w.lt.leads[o.typ] {
		w.schedule(n, rtask{n: n, maybe: true})
	}
}

func (w *reverseWalk) schedule(n *rnode, t rtask) {
	if n.fetched {
		w.work = append(w.work, t)
		return
	}
	if len(n.pending) == 0 && !n.pendMay {
		w.fetch[n.obj.typ] = append(w.fetch[n.obj.typ], n)
	}
	if t.maybe {
		n.pendMay = true
	} else {
		n.pending = append(n.pending, t.rel)
	}
}

// follow takes the relationships naming n's object as subject one step up,
// given that the subject holds rel on it.
func (w *reverseWalk) follow(n *rnode, rel string) {
	for _, e := range n.edges {
		w.followEdge(n, rel, e)
	}
}

// followEdge takes one relationship naming n's object as subject one step
// up, given that the subject holds rel on n's object.
func (w *reverseWalk) followEdge(n *rnode, rel string, e edge) {
	res := e.resource
	rd := w.v.schema.Relation(res.typ, e.relation)
	if rd == nil || rd.IsPermission {
		return
	}
	// A subject set (or the object itself, rel == "") the relation allows.
	if e.subjRel == rel && allowsSubject(rd, n.obj.typ, rel, n.obj.id == tuple.Wildcard) {
		if e.caveated {
			w.markMaybe(res)
		} else {
			w.reach(res, e.relation)
		}
	}
	// An arrow e.relation->rel on the resource's type.
	if rel == "" {
		return
	}
	ak := arrowKey{res.typ, e.relation, rel}
	if w.mono.partialArrow[ak] {
		w.markMaybe(res)
	}
	if ps := w.mono.arrows[ak]; len(ps) > 0 {
		if e.caveated {
			w.markMaybe(res)
			return
		}
		for _, p := range ps {
			w.reach(res, p)
		}
	}
}

// startStreaming switches a streamable walk to leave the relationships into
// the target type to the streams: it drops those read so far, and the
// targets they reached (nothing else depends on a target object, which
// leads nowhere), except the subject itself.
func (w *reverseWalk) startStreaming() {
	w.streaming = true
	subject := objKey{w.subject.Type, w.subject.ID}
	for o, n := range w.nodes {
		switch {
		case o.typ != w.target:
			n.edges = slices.DeleteFunc(n.edges, func(e edge) bool { return e.resource.typ == w.target })
		case o != subject:
			delete(w.nodes, o)
			delete(w.found, o.id)
		}
	}
}

// edgeFilters returns the queries (subject ids left out) that read the
// relevant relationships naming objects of type t as subject: one scan of
// the subject index, or, where the walk leaves the relationships into the
// target type to the streams of LookupResources (streaming), one per
// relation of another type that allows t as subject.
func (w *reverseWalk) edgeFilters(t string) []tuple.Filter {
	if !w.streaming {
		return []tuple.Filter{{Subject: &tuple.SubjectFilter{Type: t}}}
	}
	if fs, ok := w.filters[t]; ok {
		return fs
	}
	var fs []tuple.Filter
	seen := map[[3]string]bool{}
	for _, rk := range sortedRelKeys(w.lt.relevant) {
		r := w.v.schema.Relation(rk.typ, rk.rel)
		if rk.typ == w.target || r == nil || r.IsPermission {
			continue
		}
		for _, at := range r.AllowedTypes {
			k := [3]string{at.Relation, rk.typ, rk.rel}
			if at.Type != t || seen[k] {
				continue
			}
			seen[k] = true
			srel := at.Relation
			fs = append(fs, tuple.Filter{ResourceType: rk.typ, Relation: rk.rel, Subject: &tuple.SubjectFilter{Type: t, Relation: &srel}})
		}
	}
	if w.filters == nil {
		w.filters = map[string][]tuple.Filter{}
	}
	w.filters[t] = fs
	return fs
}

func sortedRelKeys(m map[relKey]bool) []relKey {
	out := make([]relKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b relKey) int {
		if c := strings.Compare(a.typ, b.typ); c != 0 {
			return c
		}
		return strings.Compare(a.rel, b.rel)
	})
	return out
}

// readEdges appends to the nodes of chunk (of type t, ids) their relevant
// relationships. A walk that starts streaming on the way stops its scan
// there and reads the chunk again without the target type.
func (w *reverseWalk) readEdges(ctx context.Context, t string, ids []string, chunk []*rnode) error {
	streaming := w.streaming
	for _, f := range w.edgeFilters(t) {
		f.Subject.IDs = ids
		for rel, err := range w.v.subjectQuery(ctx, f) {
			if err != nil {
				return err
			}
			if !w.lt.relevant[relKey{rel.Resource.Type, rel.Relation}] {
				continue // this relation cannot lead to target#perm
			}
			if w.streamable && !streaming && rel.Resource.Type == w.target {
				if w.targetEdges++; w.targetEdges > w.v.engine.cfg.LookupStreamAfter {
					w.startStreaming()
					for _, n := range chunk {
						n.edges = nil
					}
					return w.readEdges(ctx, t, ids, chunk)
				}
			}
			if n := w.nodes[objKey{t, rel.Subject.ID}]; n != nil && !n.fetched {
				n.edges = append(n.edges, edge{resource: objKey{rel.Resource.Type, rel.Resource.ID},
					relation: rel.Relation, subjRel: rel.Subject.Relation, caveated: rel.Caveat != nil})
			}
		}
	}
	return nil
}

// allowsSubject reports whether relation r allows subjects of type typ with
// relation rel ("" for plain objects), as a wildcard when wildcard is set.
func allowsSubject(r *schema.Relation, typ, rel string, wildcard bool) bool {
	for _, at := range r.AllowedTypes {
		if at.Type == typ && at.Relation == rel && at.Wildcard == wildcard {
			return true
		}
	}
	return false
}

// fetchEdges reads, for every object waiting on them, the relevant
// relationships naming it as subject, in batches per type, then queues the
// work that waited.
func (w *reverseWalk) fetchEdges(ctx context.Context) error {
	batch := w.fetch
	w.fetch = map[string][]*rnode{}
	types := make([]string, 0, len(batch))
	for t := range batch {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		for chunk := range slices.Chunk(batch[t], 500) {
			ids := make([]string, len(chunk))
			for i, n := range chunk {
				ids[i] = n.obj.id
			}
			if err := w.readEdges(ctx, t, ids, chunk); err != nil {
				return err
			}
			for _, n := range chunk {
				n.fetched = true
				if n.pendMay {
					w.work = append(w.work, rtask{n: n, maybe: true})
				}
				for _, r := range n.pending {
					w.work = append(w.work, rtask{n: n, rel: r})
				}
				n.pending, n.pendMay = nil, false
			}
		}
	}
	return nil
}
