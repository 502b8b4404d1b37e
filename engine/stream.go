package engine

import (
	"container/heap"
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/ambit-authz/ambit/tuple"
)

// LookupResources streams its results as they are proven where the target
// type never leads further up (no relevant relation takes a target object as
// subject: documents, datasets; not folders in folders). The reverse walk
// then runs to its end below the target type only (groups, folders, the
// subject's wildcard: what it holds is bounded by MaxLookupCandidates), and
// the relationships into the target type are read as sorted streams, one per
// object below and relation (the subject index keeps each in resource id
// order), merged by id: each target object is decided from the
// relationships naming it as soon as the merge has passed it, sent, and
// forgotten. A consumer that stops reading stops the merge where it is, so a
// lookup holds its streams' positions, never the results it has not sent.
// A walk that meets at most Config.LookupStreamAfter relationships into the
// target type reads them itself and sorts what they reach (a small answer:
// one scan per object costs less than the streams' seeks). Targets that lead
// up walk to the end and sort what they found; lookups that would need more
// than maxLookupStreams streams read them in batches, then sort.

// maxLookupStreams bounds the sorted streams one lookup reads at once (each
// holds a store iterator).
const maxLookupStreams = 256

// candidates yields the target ids reached after req.After, in ascending
// order, each proven or to verify, until yield returns false.
func (v *View) candidates(ctx context.Context, req LookupResourcesRequest, yield func(candidate) bool) error {
	if !v.plan.lookupTarget(req.ResourceType, req.Permission).leads[req.ResourceType] {
		streamed, err := v.streamCandidates(ctx, req, yield)
		if streamed || err != nil {
			return err
		}
	}
	cands, err := v.reverseWalk(ctx, req.Subject, req.Context, req.ResourceType, req.Permission, req.After, req.Limit)
	if err != nil {
		return err
	}
	for _, c := range cands {
		if !yield(c) {
			return nil
		}
	}
	return nil
}

// rstream is the relationships into the target type naming one object
// below it as subject, with one relation, in resource id order.
type rstream struct {
	src  *rnode
	next func() (tuple.Relationship, error, bool)
	stop func()
	head tuple.Relationship
}

type streamHeap []*rstream

func (h streamHeap) Len() int           { return len(h) }
func (h streamHeap) Less(i, j int) bool { return h[i].head.Resource.ID < h[j].head.Resource.ID }
func (h streamHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *streamHeap) Push(x any)        { *h = append(*h, x.(*rstream)) }
func (h *streamHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}

// advance moves s to its next relationship; false when s has ended.
func (s *rstream) advance() (bool, error) {
	prev := s.head.Resource.ID
	rel, err, ok := s.next()
	switch {
	case !ok:
		return false, nil
	case err != nil:
		return false, err
	case rel.Resource.ID < prev:
		return false, fmt.Errorf("%w: the reader returned %s after %s in a query by subject, resource type and relation; lookups need resource id order", ErrInternal, rel.Resource.ID, prev)
	}
	s.head = rel
	return true, nil
}

// streamCandidates is candidates for a target that leads nowhere: by sorted
// streams, in batches where the lookup needs more than maxLookupStreams
// streams, or, where the walk met at most Config.LookupStreamAfter
// relationships into the target and so never started streaming, by sorting
// what it found. streamed is always true: every such lookup is answered
// here.
func (v *View) streamCandidates(ctx context.Context, req LookupResourcesRequest, yield func(candidate) bool) (streamed bool, err error) {
	ck, err := contextKey(req.Context)
	if err != nil {
		return true, err
	}
	target := req.ResourceType
	w, err := v.walk(ctx, req.Subject, req.Context, ck, target, req.Permission, &walkShared{subs: map[relKey]map[string]bool{}}, 0, true)
	if err != nil {
		return true, err
	}
	if !w.streaming {
		return true, yieldSorted(w.found, req.After, yield)
	}
	filters := v.streamFilters(w)
	if len(filters) > maxLookupStreams {
		return true, v.batchCandidates(ctx, w, filters, req, yield)
	}
	var h streamHeap
	defer func() {
		for _, s := range h {
			s.stop()
		}
	}()
	for _, sf := range filters {
		next, stop := iter.Pull2(v.reader.Query(ctx, sf.f))
		s := &rstream{src: sf.n, next: next, stop: stop}
		ok, err := s.advance()
		if err != nil || !ok {
			stop()
			if err != nil {
				return true, err
			}
			continue
		}
		h = append(h, s)
	}
	heap.Init(&h)
	// Target ids the walk below found by itself (the subject is a target
	// object), merged in.
	var pre []string
	for id := range w.found {
		pre = append(pre, id)
	}
	slices.Sort(pre)
	for len(h) > 0 || len(pre) > 0 {
		var id string
		switch {
		case len(h) == 0:
			id = pre[0]
		case len(pre) == 0:
			id = h[0].head.Resource.ID
		default:
			id = min(pre[0], h[0].head.Resource.ID)
		}
		if len(pre) > 0 && pre[0] == id {
			pre = pre[1:]
		}
		o := objKey{target, id}
		for len(h) > 0 && h[0].head.Resource.ID == id {
			s := h[0]
			rel := s.head
			e := edge{resource: o, relation: rel.Relation, subjRel: rel.Subject.Relation, caveated: rel.Caveat != nil}
			if s.src.maybe {
				w.markMaybe(o)
			}
			for _, r := range s.src.rels {
				w.followEdge(s.src, r, e)
			}
			ok, err := s.advance()
			if err != nil {
				return true, err
			}
			if ok {
				heap.Fix(&h, 0)
			} else {
				heap.Pop(&h)
				s.stop()
			}
		}
		if w.err != nil {
			return true, w.err
		}
		proven, ok := w.found[id]
		delete(w.found, id)
		delete(w.nodes, o)
		if ok && id > req.After && !yield(candidate{id: id, proven: proven}) {
			return true, nil
		}
	}
	return true, nil
}

// streamFilter is the query of one stream and the object below the target
// that it reads the relationships of.
type streamFilter struct {
	n *rnode
	f tuple.Filter
}

// streamFilters lists the streams a finished walk below the target needs:
// for every object it reached and every relation of the target type that
// allows that object (as itself, a subject set or a wildcard) and through
// which what the subject holds there can lead to the target permission.
func (v *View) streamFilters(w *reverseWalk) []streamFilter {
	target := w.target
	d := v.schema.Definitions[target]
	if d == nil {
		return []streamFilter{}
	}
	nodes := make([]*rnode, 0, len(w.nodes))
	for _, n := range w.nodes {
		if n.obj.typ != target && (n.maybe || len(n.rels) > 0) {
			nodes = append(nodes, n)
		}
	}
	slices.SortFunc(nodes, func(a, b *rnode) int {
		if c := strings.Compare(a.obj.typ, b.obj.typ); c != 0 {
			return c
		}
		return strings.Compare(a.obj.id, b.obj.id)
	})
	out := []streamFilter{}
	for _, n := range nodes {
		wildcard := n.obj.id == tuple.Wildcard
		var seen [][2]string
		for _, name := range d.Order {
			r := d.Relations[name]
			if r.IsPermission || !w.lt.relevant[relKey{target, name}] {
				continue
			}
			for _, at := range r.AllowedTypes {
				k := [2]string{at.Relation, name}
				if at.Type != n.obj.typ || at.Wildcard != wildcard || slices.Contains(seen, k) || !w.leadsUp(n, target, name, at.Relation) {
					continue
				}
				seen = append(seen, k)
				srel := at.Relation
				out = append(out, streamFilter{n: n, f: tuple.Filter{ResourceType: target, Relation: name,
					Subject: &tuple.SubjectFilter{Type: n.obj.typ, IDs: []string{n.obj.id}, Relation: &srel}}})
			}
		}
	}
	return out
}

// batchCandidates ends a lookup that needs more than maxLookupStreams
// streams as the walk to the end does: it reads the relationships of all the
// streams in batches of subject ids, then sorts the targets they reach.
func (v *View) batchCandidates(ctx context.Context, w *reverseWalk, filters []streamFilter, req LookupResourcesRequest, yield func(candidate) bool) error {
	type group struct {
		f     tuple.Filter
		nodes []*rnode
	}
	var groups []*group
	byKey := map[[4]string]*group{}
	for _, sf := range filters {
		k := [4]string{sf.n.obj.typ, *sf.f.Subject.Relation, sf.f.ResourceType, sf.f.Relation}
		g := byKey[k]
		if g == nil {
			g = &group{f: sf.f}
			byKey[k] = g
			groups = append(groups, g)
		}
		g.nodes = append(g.nodes, sf.n)
	}
	for _, g := range groups {
		for chunk := range slices.Chunk(g.nodes, 500) {
			f := g.f
			sub := *f.Subject
			sub.IDs = make([]string, len(chunk))
			for i, n := range chunk {
				sub.IDs[i] = n.obj.id
			}
			f.Subject = &sub
			for rel, err := range v.reader.Query(ctx, f) {
				if err != nil {
					return err
				}
				n := w.nodes[objKey{sub.Type, rel.Subject.ID}]
				if n == nil {
					continue
				}
				o := objKey{w.target, rel.Resource.ID}
				if n.maybe {
					w.markMaybe(o)
				}
				for _, r := range n.rels {
					w.followEdge(n, r, edge{resource: o, relation: rel.Relation, subjRel: rel.Subject.Relation, caveated: rel.Caveat != nil})
				}
				if w.err != nil {
					return w.err
				}
				if len(w.nodes) > v.engine.cfg.MaxLookupCandidates {
					return fmt.Errorf("%w: lookup examined more than %d candidate objects", ErrTooMany, v.engine.cfg.MaxLookupCandidates)
				}
			}
		}
	}
	found := w.found
	w.nodes, w.found = nil, nil // only found is needed from here on
	return yieldSorted(found, req.After, yield)
}

// yieldSorted yields the ids of found after after, in ascending order.
func yieldSorted(found map[string]bool, after string, yield func(candidate) bool) error {
	out := make([]candidate, 0, len(found))
	for id, proven := range found {
		if id > after {
			out = append(out, candidate{id: id, proven: proven})
		}
	}
	clear(found) // only out is needed from here on
	slices.SortFunc(out, func(a, b candidate) int { return strings.Compare(a.id, b.id) })
	for _, c := range out {
		if !yield(c) {
			return nil
		}
	}
	return nil
}

// leadsUp reports whether a relationship typ:?#rel@n.obj#srel can do
// anything for the walk: n is to verify, the subject holds srel on n (a
// subject set, or n itself for ""), or rel is an arrow's tupleset from
// something the subject holds on n.
func (w *reverseWalk) leadsUp(n *rnode, typ, rel, srel string) bool {
	if n.maybe || slices.Contains(n.rels, srel) {
		return true
	}
	for _, x := range n.rels {
		if x == "" {
			continue
		}
		ak := arrowKey{typ, rel, x}
		if w.mono.partialArrow[ak] || len(w.mono.arrows[ak]) > 0 {
			return true
		}
	}
	return false
}
