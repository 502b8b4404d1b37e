package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ambit-authz/ambit/tuple"
)

// Snapshot is a read view of the store at one revision, safe for
// concurrent use. It needs no Close: its queries share one read-only badger
// transaction at the revision, and in managed mode such a transaction holds
// nothing that must be released (Discard only marks it discarded).
type Snapshot struct {
	s   *Store
	rev tuple.Revision
	now time.Time   // expiration visibility: relationships expired at now are hidden
	txn *badger.Txn // read-only at rev; Get and NewIterator are safe concurrently
}

// Snapshot returns a read view at rev: ErrRevisionCompacted if rev is older
// than the GC horizon, ErrFutureRevision if it is newer than the applied revision.
func (s *Store) Snapshot(rev tuple.Revision) (*Snapshot, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if err := s.checkReadable(rev); err != nil {
		return nil, err
	}
	return &Snapshot{s: s, rev: rev, now: s.opts.Clock(), txn: s.db.NewTransactionAt(uint64(rev), false)}, nil
}

func (s *Store) checkReadable(rev tuple.Revision) error {
	if a := s.applied.Load(); uint64(rev) > a {
		return fmt.Errorf("%w: revision %d, applied revision %d", ErrFutureRevision, rev, a)
	}
	if h := s.horizon.Load(); uint64(rev) < h {
		return fmt.Errorf("%w: revision %d, oldest readable revision %d", ErrRevisionCompacted, rev, h)
	}
	return nil
}

// Revision is the snapshot's revision.
func (sn *Snapshot) Revision() tuple.Revision { return sn.rev }

// Source identifies the store the snapshot reads (random per Open), so an
// engine shared by several stores keeps their cached reads apart.
func (sn *Snapshot) Source() uint64 { return sn.s.id }

// Time is when the snapshot was taken: relationships expired at that time
// are hidden from its queries.
func (sn *Snapshot) Time() time.Time { return sn.now }

// At returns the snapshot judging expirations at t instead of when it was
// taken: what the state machine reads, at a command's leader time, so that
// every replica sees the same relationships whatever its clock.
func (sn *Snapshot) At(t time.Time) *Snapshot {
	c := *sn
	c.now = t
	return &c
}

// WithExpired returns the snapshot with expired relationships visible too
// (those garbage collection has not removed yet), for explanations that
// report them. Its Time is the zero time: compare expirations with the
// original snapshot's Time.
func (sn *Snapshot) WithExpired() *Snapshot {
	c := *sn
	c.now = time.Time{}
	return &c
}

// Query yields every relationship matching f visible at the snapshot, in
// index key order; relationships expired when the snapshot was taken are
// never yielded. The iteration stops at the first error.
//
// Index choice: resource-major when f has ResourceType and ResourceIDs or
// ResourceIDPrefix (one seek per sorted id); subject-major when f.Subject has
// Type and IDs and f has no ResourceIDs (one seek per sorted subject id);
// otherwise a scan of the resource index, by ResourceType when given.
func (sn *Snapshot) Query(ctx context.Context, f tuple.Filter) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		s := sn.s
		if err := s.enter(); err != nil {
			yield(tuple.Relationship{}, err)
			return
		}
		defer s.leave()
		if err := s.checkReadable(sn.rev); err != nil {
			yield(tuple.Relationship{}, err)
			return
		}
		stopped := false
		err := scan(ctx, sn.txn, f, sn.now, func(r tuple.Relationship) bool {
			stopped = !yield(r, nil)
			return !stopped
		})
		if stopped {
			return
		}
		if err == nil {
			// GC may have moved past the revision while we read.
			if h := s.horizon.Load(); uint64(sn.rev) < h {
				err = fmt.Errorf("%w: revision %d was garbage-collected during the read", ErrRevisionCompacted, sn.rev)
			}
		}
		if err != nil {
			yield(tuple.Relationship{}, err)
		}
	}
}

// validateFilter rejects filters no index can answer correctly.
func validateFilter(f tuple.Filter) error {
	if len(f.ResourceIDs) > 0 && f.ResourceIDPrefix != "" {
		return fmt.Errorf("%w: filter sets both resource ids and a resource id prefix", ErrInvalid)
	}
	return nil
}

func isEmptyFilter(f tuple.Filter) bool {
	return f.ResourceType == "" && len(f.ResourceIDs) == 0 && f.ResourceIDPrefix == "" && f.Relation == "" &&
		(f.Subject == nil || (f.Subject.Type == "" && len(f.Subject.IDs) == 0 && f.Subject.Relation == nil))
}

// describeFilter prints a filter for error messages.
func describeFilter(f tuple.Filter) string {
	var b strings.Builder
	b.WriteString("{")
	add := func(k, v string) {
		if b.Len() > 1 {
			b.WriteString(" ")
		}
		b.WriteString(k + "=" + v)
	}
	if f.ResourceType != "" {
		add("resource_type", f.ResourceType)
	}
	if len(f.ResourceIDs) > 0 {
		add("resource_ids", strings.Join(clipList(f.ResourceIDs), ","))
	}
	if f.ResourceIDPrefix != "" {
		add("resource_id_prefix", f.ResourceIDPrefix)
	}
	if f.Relation != "" {
		add("relation", f.Relation)
	}
	if sf := f.Subject; sf != nil {
		if sf.Type != "" {
			add("subject_type", sf.Type)
		}
		if len(sf.IDs) > 0 {
			add("subject_ids", strings.Join(clipList(sf.IDs), ","))
		}
		if sf.Relation != nil {
			add("subject_relation", fmt.Sprintf("%q", *sf.Relation))
		}
	}
	b.WriteString("}")
	return b.String()
}

func clipList(l []string) []string {
	if len(l) > 5 {
		return append(slices.Clone(l[:5]), fmt.Sprintf("…(%d more)", len(l)-5))
	}
	return l
}

// plan is how a filter is answered: which index, which seek prefixes, and the
// residual filter checked on every key found.
type plan struct {
	subject  bool     // subject-major index
	exact    bool     // every prefix is a whole key: point lookups, no iterator
	common   []byte   // prefix shared by all seeks (narrows badger's table choice)
	prefixes [][]byte // one seek per prefix, in key order
	residual tuple.Filter
}

func planQuery(f tuple.Filter) plan {
	p := plan{residual: f}
	sf := f.Subject
	switch {
	case f.ResourceType != "" && f.ResourceIDPrefix != "":
		pre := resourceIDPrefixKey(f.ResourceType, f.ResourceIDPrefix)
		p.common, p.prefixes = pre, [][]byte{pre}
	case f.ResourceType != "" && len(f.ResourceIDs) > 0:
		p.common = componentsPrefix(spaceResource, f.ResourceType)
		ids := sortedUnique(f.ResourceIDs)
		p.prefixes = make([][]byte, len(ids))
		p.exact = f.Relation != "" && sf != nil && sf.Type != "" && len(sf.IDs) == 1 && sf.Relation != nil
		for i, id := range ids {
			// The resource-major order, as far as each component is fixed.
			comps := []string{f.ResourceType, id}
			if f.Relation != "" {
				comps = append(comps, f.Relation)
				if sf != nil && sf.Type != "" {
					comps = append(comps, sf.Type)
					if len(sf.IDs) == 1 {
						comps = append(comps, sf.IDs[0])
						if sf.Relation != nil {
							comps = append(comps, *sf.Relation)
						}
					}
				}
			}
			p.prefixes[i] = componentsPrefix(spaceResource, comps...)
		}
		if len(ids) == 1 {
			p.common = p.prefixes[0]
		}
		p.residual.ResourceIDs = nil // guaranteed by the seeks
	case sf != nil && sf.Type != "" && len(sf.IDs) > 0 && len(f.ResourceIDs) == 0:
		p.subject = true
		p.common = componentsPrefix(spaceSubject, sf.Type)
		ids := sortedUnique(sf.IDs)
		p.prefixes = make([][]byte, len(ids))
		for i, id := range ids {
			// The subject-major order, as far as each component is fixed.
			comps := []string{sf.Type, id}
			if sf.Relation != nil {
				comps = append(comps, *sf.Relation)
				if f.ResourceType != "" {
					comps = append(comps, f.ResourceType)
					if f.Relation != "" {
						comps = append(comps, f.Relation)
					}
				}
			}
			p.prefixes[i] = componentsPrefix(spaceSubject, comps...)
		}
		if len(ids) == 1 {
			p.common = p.prefixes[0]
		}
		rsf := *sf
		rsf.IDs = nil // guaranteed by the seeks
		p.residual.Subject = &rsf
	default:
		pre := spacePrefix(spaceResource)
		if f.ResourceType != "" {
			pre = componentsPrefix(spaceResource, f.ResourceType)
		}
		p.common, p.prefixes = pre, [][]byte{pre}
	}
	return p
}

func sortedUnique(ids []string) []string {
	if len(ids) == 1 {
		return ids
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// scan calls fn for every relationship in txn that matches f and is visible
// at now, until fn returns false.
func scan(ctx context.Context, txn *badger.Txn, f tuple.Filter, now time.Time, fn func(tuple.Relationship) bool) error {
	if err := validateFilter(f); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := planQuery(f)
	if p.exact {
		return lookupExact(txn, p, now, fn)
	}
	// Values are inline in the LSM tree (FORMAT.md), so prefetching them on
	// background goroutines would only add overhead: PrefetchValues stays
	// off, and AllVersions stays off so each seek lands on the newest
	// version at the snapshot's revision.
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p.common})
	defer it.Close()
	var dec keyDecoder
	n := 0
	for _, pre := range p.prefixes {
		for it.Seek(pre); it.ValidForPrefix(pre); it.Next() {
			if n++; n&255 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item := it.Item()
			var k tuple.Key
			var err error
			if p.subject {
				k, err = dec.subject(item.Key())
			} else {
				k, err = dec.resource(item.Key())
			}
			if err != nil {
				return fmt.Errorf("store: corrupt index key %q: %w", item.Key(), err)
			}
			r := tuple.Relationship{Resource: k.Resource, Relation: k.Relation, Subject: k.Subject}
			if !p.residual.Matches(r) {
				continue
			}
			if err := item.Value(func(v []byte) error { return decodeValue(v, &r) }); err != nil {
				return fmt.Errorf("store: corrupt value of %s: %w", k, err)
			}
			if r.ExpiredAt(now) {
				continue
			}
			if !fn(r) {
				return nil
			}
		}
	}
	return nil
}

// lookupExact answers a plan whose prefixes are whole resource keys with
// point reads (badger's bloom filters skip most tables).
func lookupExact(txn *badger.Txn, p plan, now time.Time, fn func(tuple.Relationship) bool) error {
	var dec keyDecoder
	for _, key := range p.prefixes {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("store: read %q: %w", key, err)
		}
		k, err := dec.resource(key)
		if err != nil {
			return err
		}
		r := tuple.Relationship{Resource: k.Resource, Relation: k.Relation, Subject: k.Subject}
		if !p.residual.Matches(r) {
			continue
		}
		if err := item.Value(func(v []byte) error { return decodeValue(v, &r) }); err != nil {
			return fmt.Errorf("store: corrupt value of %s: %w", k, err)
		}
		if r.ExpiredAt(now) {
			continue
		}
		if !fn(r) {
			return nil
		}
	}
	return nil
}
