package engine

import (
	"context"
	"iter"
	"slices"
	"unsafe"

	"github.com/ambit-authz/ambit/tuple"
)

// The read cache also holds the other side of a relationship: for one
// subject object (workflow:w1), every relationship naming it as subject, in
// the subject index's order. The LookupResources walk reads these, upward
// from the subject, in batches of ids (fetchEdges), and the objects it
// passes on the way recur from lookup to lookup: the users of one
// organization reach the same groups, the same workflows and, through them,
// the same datasets. Reading each such object's relationships from the
// store costs a seek and a decode per relationship, about half of a
// collab-medium lookup's CPU; from memory, a filter.
//
// A subject set shares the read cache's budget, its generations and its
// revision keying; its key has the subject's type and id and subjectSide as
// relation (no relation name holds a NUL byte). Sets larger than
// subjectSetMax × Config.ReadCacheMaxSet are recorded as large and read from
// the store each time.

const subjectSide = "\x00subject"

// subjectSetMax is the size limit of a cached subject set, as a multiple of
// Config.ReadCacheMaxSet: an object is the subject of more relationships
// (a group shared with hundreds of datasets) than it has subjects on one
// relation, and the walk reads all of them.
const subjectSetMax = 8

// subjectQuery yields what v.reader.Query(ctx, f) yields (in another
// order, which Query does not promise for several ids) through the read
// cache when f asks for every relationship naming objects of one type and
// listed ids as subjects and nothing else (the walk's query). Ids already
// cached are answered from memory; the others are read in one store query,
// and their sets are added to the cache once it has been read to its end.
func (v *View) subjectQuery(ctx context.Context, f tuple.Filter) iter.Seq2[tuple.Relationship, error] {
	rc := v.engine.reads
	sf := f.Subject
	if rc == nil || sf == nil || sf.Type == "" || len(sf.IDs) == 0 || sf.Relation != nil ||
		f.ResourceType != "" || len(f.ResourceIDs) > 0 || f.ResourceIDPrefix != "" || f.Relation != "" {
		return v.reader.Query(ctx, f)
	}
	return func(yield func(tuple.Relationship, error) bool) {
		ids := sortedUnique(sf.IDs)
		var rest []string
		for _, id := range ids {
			set, ok := rc.Get(v.readKey(sf.Type, id, subjectSide))
			if !ok || set.large {
				rest = append(rest, id)
				continue
			}
			for j := range set.rels {
				if r := &set.rels[j]; !r.ExpiredAt(v.at) && !yield(*r, nil) {
					return
				}
			}
		}
		if len(rest) == 0 {
			return
		}
		g := f
		sub := *sf
		sub.IDs = rest
		g.Subject = &sub
		// The sets being filled, by id; large: more than limit
		// relationships (nil in fills). Past maxSubjectFill relationships
		// in all, the query fills nothing: what it read is yielded, not
		// kept (the walk may be one that leaves most of them to streams).
		limit := subjectSetMax * v.engine.cfg.ReadCacheMaxSet
		fills := make(map[string][]tuple.Relationship, len(rest))
		large := map[string]bool{}
		kept, overflow := 0, false
		for r, err := range v.reader.Query(ctx, g) {
			if err != nil {
				yield(tuple.Relationship{}, err)
				return
			}
			if !overflow && !large[r.Subject.ID] {
				switch fill := fills[r.Subject.ID]; {
				case len(fill) == limit:
					large[r.Subject.ID] = true
					kept -= len(fill)
					delete(fills, r.Subject.ID)
				case kept == maxSubjectFill:
					overflow = true
					fills = nil
				default:
					fills[r.Subject.ID] = append(fill, r)
					kept++
				}
			}
			if !yield(r, nil) {
				return
			}
		}
		if overflow {
			return
		}
		for _, id := range rest {
			key := v.readKey(sf.Type, id, subjectSide)
			if large[id] {
				rc.Set(key, relSet{large: true}, setSlotBytes+int64(len(key.typ)+len(key.id)))
				continue
			}
			key, rels := compactSubjectSet(key, fills[id])
			set := relSet{rels: rels}
			rc.Set(key, set, set.subjectCost(key))
		}
	}
}

// maxSubjectFill bounds the relationships one subjectQuery keeps to fill
// the cache with.
const maxSubjectFill = 8192

// sortedUnique returns ids sorted without repeats (ids itself when it
// already is).
func sortedUnique(ids []string) []string {
	if slices.IsSorted(ids) {
		unique := true
		for i := 1; i < len(ids); i++ {
			if ids[i] == ids[i-1] {
				unique = false
				break
			}
		}
		if unique {
			return ids
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(ids)))
}

// subjectCost is what a cached subject set holds in bytes: as cost, with
// every relationship's resource and relation strings (compactSubjectSet
// stores runs of equal ones once; counted here each time, an upper bound).
func (s relSet) subjectCost(k setKey) int64 {
	c := int64(len(k.typ)+len(k.id)) + setSlotBytes + relSize*int64(len(s.rels))
	for i := range s.rels {
		r := &s.rels[i]
		c += int64(len(r.Resource.Type) + len(r.Resource.ID) + len(r.Relation) + len(r.Subject.Relation))
		if r.Caveat != nil {
			c += int64(64 + 64*len(r.Caveat.Context))
		}
	}
	return c
}

// compactSubjectSet copies a subject set read from the store into one
// exactly sized slice whose strings live in one buffer (see compactSet):
// the subject's type and id once, runs of equal resource types, relations
// and subject relations once, each resource id.
func compactSubjectSet(k setKey, rels []tuple.Relationship) (setKey, []tuple.Relationship) {
	n := len(k.typ) + len(k.id)
	for i := range rels {
		r := &rels[i]
		n += len(r.Resource.ID)
		if i == 0 || r.Resource.Type != rels[i-1].Resource.Type {
			n += len(r.Resource.Type)
		}
		if i == 0 || r.Relation != rels[i-1].Relation {
			n += len(r.Relation)
		}
		if i == 0 || r.Subject.Relation != rels[i-1].Subject.Relation {
			n += len(r.Subject.Relation)
		}
	}
	buf := make([]byte, 0, n)
	put := func(s string) string {
		if s == "" {
			return ""
		}
		start := len(buf)
		buf = append(buf, s...) // within capacity: buf never moves
		return unsafe.String(&buf[start], len(s))
	}
	k.typ, k.id = put(k.typ), put(k.id)
	out := make([]tuple.Relationship, len(rels))
	var typ, rel, srel string // compact copies of the previous relationship's
	for i, r := range rels {
		if i == 0 || r.Resource.Type != rels[i-1].Resource.Type {
			typ = put(r.Resource.Type)
		}
		if i == 0 || r.Relation != rels[i-1].Relation {
			rel = put(r.Relation)
		}
		if i == 0 || r.Subject.Relation != rels[i-1].Subject.Relation {
			srel = put(r.Subject.Relation)
		}
		r.Resource.Type, r.Resource.ID, r.Relation = typ, put(r.Resource.ID), rel
		if r.Subject.Type == k.typ && r.Subject.ID == k.id {
			r.Subject.Type, r.Subject.ID = k.typ, k.id
		}
		r.Subject.Relation = srel
		out[i] = r
	}
	return k, out
}
