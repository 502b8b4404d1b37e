package engine

import (
	"context"
	"hash/maphash"
	"slices"
	"unsafe"

	"github.com/ambit-authz/ambit/tuple"
)

// The read cache holds, per revision, the relationships of one resource's
// relation (doc:d1#viewer → its subjects), read once from the snapshot and
// then filtered in memory by every check that needs them. A check reads a
// handful of such sets (the resource's owner, editors, readers, its parent
// through an arrow, the parent's deactivated list) and the same sets recur
// across checks far more often than whole sub-problems do: every check on
// dataset d reads d's sets whoever the subject is. Large sets (a 10k-member
// group) are recorded as large and left to the store's indexed point reads.

// relSet is one cached set: the relationships of type:id#relation at a
// revision, in the store's order, or large when it has more than the limit.
type relSet struct {
	rels  []tuple.Relationship
	large bool
}

// cost is what a cached set holds in bytes: its key and map slot, its
// relationships and the one buffer their strings share (compactSet), and
// caveats.
func (s relSet) cost(k setKey) int64 {
	c := int64(len(k.typ)+len(k.id)+len(k.rel)) + setSlotBytes + relSize*int64(len(s.rels))
	for i := range s.rels {
		r := &s.rels[i]
		c += int64(len(r.Subject.Type) + len(r.Subject.ID) + len(r.Subject.Relation))
		if r.Caveat != nil {
			c += int64(64 + 64*len(r.Caveat.Context))
		}
	}
	return c
}

const (
	relSize = int64(unsafe.Sizeof(tuple.Relationship{}))
	// setSlotBytes is a set's share of the cache's map (key and value, at
	// the map's load factor) and its slice header.
	setSlotBytes = int64(unsafe.Sizeof(setKey{})+unsafe.Sizeof(genEntry[relSet]{}))*8/7 + 24
)

// compactSet copies a set read from the store into one exactly sized slice
// whose strings live in one exactly sized buffer, the resource's type, id
// and relation (the key's, shared by every relationship of the set) and
// runs of equal subject types and relations stored once. The store decodes
// strings into chunks shared with whatever else it decoded, and append
// leaves spare capacity: kept as read, a set pinned about twice what its
// cost said (heap profile of collab small).
func compactSet(k setKey, rels []tuple.Relationship) (setKey, []tuple.Relationship) {
	n := len(k.typ) + len(k.id) + len(k.rel)
	var prevType, prevRel string
	for i := range rels {
		sub := &rels[i].Subject
		if i == 0 || sub.Type != prevType {
			n += len(sub.Type)
		}
		if i == 0 || sub.Relation != prevRel {
			n += len(sub.Relation)
		}
		n += len(sub.ID)
		prevType, prevRel = sub.Type, sub.Relation
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
	k.typ, k.id, k.rel = put(k.typ), put(k.id), put(k.rel)
	out := make([]tuple.Relationship, len(rels))
	var typ, rel string // the compact copies of prevType, prevRel
	for i, r := range rels {
		// A set read by its own filter holds only its resource's
		// relationships; anything else would keep the store's strings.
		if r.Resource.Type == k.typ && r.Resource.ID == k.id && r.Relation == k.rel {
			r.Resource.Type, r.Resource.ID, r.Relation = k.typ, k.id, k.rel
		}
		if i == 0 || r.Subject.Type != prevType {
			prevType, typ = r.Subject.Type, put(r.Subject.Type)
		}
		if i == 0 || r.Subject.Relation != prevRel {
			prevRel, rel = r.Subject.Relation, put(r.Subject.Relation)
		}
		r.Subject.Type, r.Subject.Relation, r.Subject.ID = typ, rel, put(r.Subject.ID)
		out[i] = r
	}
	return k, out
}

// setKey names one cached set.
type setKey struct {
	src          uint64
	rev          tuple.Revision
	typ, id, rel string
}

func newReadCache(maxCost int64) *genCache[setKey, relSet] {
	seed := maphash.MakeSeed()
	return newGenCache[setKey, relSet](maxCost, func(k setKey) uint64 {
		return maphash.String(seed, k.id) ^ 31*maphash.String(seed, k.rel) ^ 961*maphash.String(seed, k.typ) ^ (uint64(k.rev)+k.src<<32)*0x9e3779b97f4a7c15
	})
}

// maxFillIDs bounds how many uncached resources one query reads set by set;
// in a query over more (an arrow fanning out to thousands of parents), the
// uncached ones past it go to the store as one filtered query.
const maxFillIDs = 8

// collect appends the relationships matching f to dst, as the view's reader
// would yield them, through the read cache when f names the resource type,
// ids and relation (every query a check makes). Expired relationships are
// left out. It returns a slice rather than an iterator: a check's loops over
// the result then capture nothing, which keeps their variables off the heap
// (about 60 fewer allocations per check on the collab workload).
func (v *View) collect(ctx context.Context, f tuple.Filter, dst []tuple.Relationship) ([]tuple.Relationship, error) {
	rc := v.engine.reads
	if rc == nil || f.ResourceType == "" || len(f.ResourceIDs) == 0 || f.Relation == "" || f.ResourceIDPrefix != "" {
		return v.collectStore(ctx, f, dst)
	}
	ids := f.ResourceIDs
	if len(ids) > 1 && !slices.IsSorted(ids) { // the store's order: one seek per sorted id
		ids = slices.Sorted(slices.Values(ids))
	}
	var rest []string // ids left to one filtered store query
	fills := 0
	for i, id := range ids {
		if i > 0 && id == ids[i-1] {
			continue
		}
		key := v.readKey(f.ResourceType, id, f.Relation)
		set, ok := rc.Get(key)
		if !ok && fills < maxFillIDs {
			fills++
			var err error
			if set, err = v.fill(ctx, key, f.ResourceType, id, f.Relation); err != nil {
				return dst, err
			}
			ok = true
		}
		if !ok || set.large {
			rest = append(rest, id)
			continue
		}
		// Every relationship of the set is typ:id#relation (compactSet):
		// only the subject is left to match.
		for j := range set.rels {
			if r := &set.rels[j]; subjectMatches(f.Subject, &r.Subject) && !r.ExpiredAt(v.at) {
				dst = append(dst, *r)
			}
		}
	}
	if len(rest) == 0 {
		return dst, nil
	}
	g := f
	g.ResourceIDs = rest
	return v.collectStore(ctx, g, dst)
}

// collectBySubject appends the relationships of typ#rel whose subject is
// type st, relation srel and one of ids, as the view's reader would yield
// them for that filter by subject (no resource ids; the order may differ).
// Each subject's relationships come from its subject set in the read cache
// (subjectcache.go: every relationship naming it, shared with lookups),
// filled on a miss; a subject with too many for a set is read from the
// store by this narrower filter. Expired relationships are left out.
func (v *View) collectBySubject(ctx context.Context, typ, rel, st string, ids []string, srel string, dst []tuple.Relationship) ([]tuple.Relationship, error) {
	rc := v.engine.reads
	for _, id := range ids {
		set, ok := relSet{}, false
		if rc != nil {
			set, ok = rc.Get(v.readKey(st, id, subjectSide))
		}
		match := func(r *tuple.Relationship) bool {
			return r.Resource.Type == typ && r.Relation == rel && r.Subject.Relation == srel && !r.ExpiredAt(v.at)
		}
		switch {
		case ok && !set.large:
			for j := range set.rels {
				if r := &set.rels[j]; match(r) {
					dst = append(dst, *r)
				}
			}
		case !ok && rc != nil:
			// Read the subject's set (subjectQuery keeps it for the next
			// check), taking what matches.
			for r, err := range v.subjectQuery(ctx, tuple.Filter{Subject: &tuple.SubjectFilter{Type: st, IDs: []string{id}}}) {
				if err != nil {
					return dst, err
				}
				if match(&r) {
					dst = append(dst, r)
				}
			}
		default:
			f := tuple.Filter{ResourceType: typ, Relation: rel, Subject: &tuple.SubjectFilter{Type: st, IDs: []string{id}, Relation: &srel}}
			var err error
			if dst, err = v.collectStore(ctx, f, dst); err != nil {
				return dst, err
			}
		}
	}
	return dst, nil
}

// subjectMatches is tuple.Filter.Matches for a relationship known to match
// the filter's resource and relation, its subject ids (the most selective
// part) compared first. A nil filter matches every subject.
func subjectMatches(sf *tuple.SubjectFilter, s *tuple.SubjectRef) bool {
	if sf == nil {
		return true
	}
	if len(sf.IDs) > 0 && !slices.Contains(sf.IDs, s.ID) {
		return false
	}
	if sf.Type != "" && s.Type != sf.Type {
		return false
	}
	return sf.Relation == nil || s.Relation == *sf.Relation
}

func (v *View) collectStore(ctx context.Context, f tuple.Filter, dst []tuple.Relationship) ([]tuple.Relationship, error) {
	for r, err := range v.reader.Query(ctx, f) {
		if err != nil {
			return dst, err
		}
		dst = append(dst, r)
	}
	return dst, nil
}

func (v *View) readKey(typ, id, rel string) setKey {
	return setKey{src: v.src, rev: v.rev, typ: typ, id: id, rel: rel}
}

// fill reads typ:id#rel from the snapshot into the cache: all of it, or only
// the fact that it is larger than Config.ReadCacheMaxSet.
func (v *View) fill(ctx context.Context, key setKey, typ, id, rel string) (relSet, error) {
	limit := v.engine.cfg.ReadCacheMaxSet
	var set relSet
	for r, err := range v.reader.Query(ctx, tuple.Filter{ResourceType: typ, ResourceIDs: []string{id}, Relation: rel}) {
		if err != nil {
			return relSet{}, err
		}
		if len(set.rels) == limit {
			set = relSet{large: true}
			break
		}
		set.rels = append(set.rels, r)
	}
	if !set.large {
		key, set.rels = compactSet(key, set.rels)
	}
	v.engine.reads.Set(key, set, set.cost(key))
	return set, nil
}
