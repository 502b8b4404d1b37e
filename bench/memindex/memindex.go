// Package memindex is an indexed, immutable, in-memory engine.Reader: the
// relationships sorted twice (resource-major and subject-major), each query
// answered by binary search, like the badger store's two indexes but with no
// encoding, no transactions and no I/O. Benchmarks use it as the baseline
// that shows what the store costs; enginetest.Memory, which scans every
// relationship on every query, is only fit for small fixtures.
package memindex

import (
	"cmp"
	"context"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/tuple"
)

// Index is safe for concurrent queries.
type Index struct {
	src    engine.Source
	byRes  []tuple.Relationship
	bySubj []int32 // positions in byRes, in subject-major order
}

// New indexes rels (the slice is copied; relationships are not).
func New(rels []tuple.Relationship) *Index {
	x := &Index{src: engine.NewSource(), byRes: slices.Clone(rels)}
	slices.SortFunc(x.byRes, compareRes)
	x.bySubj = make([]int32, len(x.byRes))
	for i := range x.bySubj {
		x.bySubj[i] = int32(i)
	}
	slices.SortFunc(x.bySubj, func(a, b int32) int { return compareSubj(&x.byRes[a], &x.byRes[b]) })
	return x
}

// Snapshot names x at revision rev, judged now, for Engine.View: every
// Index is its own data set.
func (x *Index) Snapshot(rev tuple.Revision) engine.Snapshot {
	return engine.Snapshot{Source: x.src, Revision: rev, Time: time.Now()}
}

// Collect indexes every relationship of seq.
func Collect(seq iter.Seq[tuple.Relationship]) *Index { return New(slices.Collect(seq)) }

// Len is the number of relationships.
func (x *Index) Len() int { return len(x.byRes) }

func compareRes(a, b tuple.Relationship) int {
	return cmp.Or(strings.Compare(a.Resource.Type, b.Resource.Type), strings.Compare(a.Resource.ID, b.Resource.ID),
		strings.Compare(a.Relation, b.Relation), strings.Compare(a.Subject.Type, b.Subject.Type),
		strings.Compare(a.Subject.ID, b.Subject.ID), strings.Compare(a.Subject.Relation, b.Subject.Relation))
}

// comparePrefix compares r's resource-major key fields with the first
// len(key) fields of key.
func comparePrefix(r tuple.Relationship, key []string) int {
	fields := [...]string{r.Resource.Type, r.Resource.ID, r.Relation, r.Subject.Type, r.Subject.ID, r.Subject.Relation}
	for i, k := range key {
		if c := strings.Compare(fields[i], k); c != 0 {
			return c
		}
	}
	return 0
}

func compareSubj(a, b *tuple.Relationship) int {
	return cmp.Or(strings.Compare(a.Subject.Type, b.Subject.Type), strings.Compare(a.Subject.ID, b.Subject.ID),
		strings.Compare(a.Subject.Relation, b.Subject.Relation), strings.Compare(a.Resource.Type, b.Resource.Type),
		strings.Compare(a.Relation, b.Relation), strings.Compare(a.Resource.ID, b.Resource.ID))
}

// Query implements engine.Reader.
func (x *Index) Query(ctx context.Context, f tuple.Filter) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(tuple.Relationship{}, err)
			return
		}
		now := time.Now()
		emit := func(r *tuple.Relationship) bool {
			if r.ExpiredAt(now) || !f.Matches(*r) {
				return true
			}
			return yield(*r, nil)
		}
		sf := f.Subject
		switch {
		case f.ResourceType != "" && len(f.ResourceIDs) > 0:
			// The leading key fields the filter fixes, as the store's seeks do.
			key := []string{f.ResourceType, ""}
			if f.Relation != "" {
				key = append(key, f.Relation)
				if sf != nil && sf.Type != "" {
					key = append(key, sf.Type)
					if len(sf.IDs) == 1 {
						key = append(key, sf.IDs[0])
						if sf.Relation != nil {
							key = append(key, *sf.Relation)
						}
					}
				}
			}
			for _, id := range sortedUnique(f.ResourceIDs) {
				key[1] = id
				i, _ := slices.BinarySearchFunc(x.byRes, key, comparePrefix)
				for ; i < len(x.byRes) && comparePrefix(x.byRes[i], key) == 0; i++ {
					if !emit(&x.byRes[i]) {
						return
					}
				}
			}
		case sf != nil && sf.Type != "" && len(sf.IDs) > 0:
			for _, id := range sortedUnique(sf.IDs) {
				i, _ := slices.BinarySearchFunc(x.bySubj, id, func(p int32, id string) int {
					r := &x.byRes[p]
					return cmp.Or(strings.Compare(r.Subject.Type, sf.Type), strings.Compare(r.Subject.ID, id))
				})
				for ; i < len(x.bySubj); i++ {
					r := &x.byRes[x.bySubj[i]]
					if r.Subject.Type != sf.Type || r.Subject.ID != id {
						break
					}
					if !emit(r) {
						return
					}
				}
			}
		default:
			i := 0
			if f.ResourceType != "" {
				i, _ = slices.BinarySearchFunc(x.byRes, f.ResourceType, func(r tuple.Relationship, t string) int {
					return strings.Compare(r.Resource.Type, t)
				})
			}
			for ; i < len(x.byRes); i++ {
				if f.ResourceType != "" && x.byRes[i].Resource.Type != f.ResourceType {
					return
				}
				if !emit(&x.byRes[i]) {
					return
				}
			}
		}
	}
}

// sortedUnique returns ids sorted without duplicates, as the store's
// indexes visit them.
func sortedUnique(ids []string) []string {
	if len(ids) == 1 {
		return ids
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}
