package store

import (
	"context"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ambit-authz/ambit/tuple"
)

// WriteRequest is one revision's Write, for WriteMany.
type WriteRequest struct {
	Rev      tuple.Revision
	Now      time.Time
	Updates  []Update
	Preconds []Precondition
}

// WriteMany applies several Write requests, at strictly increasing
// revisions above the applied revision, with one badger write for all of
// them instead of one per revision (for a raft FSM applying a batch of log
// entries). Each request behaves exactly as Write would at its revision:
// its preconditions and CREATE checks see the state after the requests
// before it, and results[i] is the error Write would have returned (nil, or
// a domain error that consumed the revision without writing).
//
// err reports a failure of the call itself (closed store, revisions out of
// order, a storage error); then nothing was applied and the applied revision
// is unchanged. The batch becomes visible at once when the last revision is
// committed; a crash before that leaves the applied revision where it was,
// and replaying the same requests rewrites the same data (FORMAT.md).
func (s *Store) WriteMany(reqs []WriteRequest) (results []error, err error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	done, err := s.beginWrite(reqs[0].Rev)
	if err != nil {
		return nil, err
	}
	defer done()
	for i := 1; i < len(reqs); i++ {
		if reqs[i].Rev <= reqs[i-1].Rev {
			return nil, fmt.Errorf("%w: request %d has revision %d, not after %d", ErrStaleWrite, i, reqs[i].Rev, reqs[i-1].Rev)
		}
	}
	base := s.db.NewTransactionAt(s.applied.Load(), false)
	defer base.Discard()
	v := &overlayView{base: base, over: map[string][]byte{}}
	wb := s.db.NewManagedWriteBatch()
	defer wb.Cancel()
	results = make([]error, len(reqs))
	count := s.count.Load()
	var staged stagingSink
	for i := range reqs {
		r := &reqs[i]
		staged.reset()
		delta, derr := s.stageWrite(v, &staged, r)
		switch {
		case derr == nil:
			for _, e := range staged.entries {
				if e.del {
					err = wb.DeleteAt(e.k, uint64(r.Rev))
				} else {
					err = wb.SetEntryAt(badger.NewEntry(e.k, e.v), uint64(r.Rev))
				}
				if err != nil {
					return nil, fmt.Errorf("store: write many at revision %d: %w", r.Rev, err)
				}
				if e.k[0] == spaceResource {
					if e.del {
						v.over[string(e.k)] = nil
					} else {
						v.over[string(e.k)] = valueOrEmpty(e.v)
					}
				}
			}
			count += delta
		case isDomain(derr):
			results[i] = derr
		default:
			return nil, derr
		}
		if !r.Now.IsZero() {
			if err := wb.SetEntryAt(badger.NewEntry(revKey(spaceTime, r.Rev), u64(uint64(r.Now.UnixNano()))), uint64(r.Rev)); err != nil {
				return nil, fmt.Errorf("store: write many at revision %d: %w", r.Rev, err)
			}
		}
	}
	if err := wb.Flush(); err != nil {
		return nil, fmt.Errorf("store: write many: %w", err)
	}
	last := reqs[len(reqs)-1].Rev
	txn := s.db.NewTransactionAt(s.applied.Load(), true)
	defer txn.Discard()
	if err := txn.Set(keyApplied, u64(uint64(last))); err != nil {
		return nil, err
	}
	if err := txn.Set(keyCount, u64(uint64(max(count, 0)))); err != nil {
		return nil, err
	}
	if err := s.commit(txn, last, count-s.count.Load()); err != nil {
		return nil, err
	}
	return results, nil
}

// valueOrEmpty marks "present with an empty value" distinctly from nil
// (deleted) in the overlay.
func valueOrEmpty(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// stageWrite runs one request's checks against v and stages its entries
// (without versions) in out. It returns the change in relationship count.
func (s *Store) stageWrite(v *overlayView, out *stagingSink, r *WriteRequest) (int64, error) {
	preps, err := s.prepareUpdates(r.Now, r.Updates)
	if err != nil {
		return 0, err
	}
	for i, p := range r.Preconds {
		if err := validateFilter(p.Filter); err != nil {
			return 0, fmt.Errorf("precondition %d: %w", i, err)
		}
		found, err := v.exists(p.Filter, r.Now)
		if err != nil {
			return 0, fmt.Errorf("precondition %d: %w", i, err)
		}
		if p.MustMatch && !found {
			return 0, fmt.Errorf("%w: precondition %d: MUST_MATCH filter %s matched nothing", ErrPreconditionFailed, i, describeFilter(p.Filter))
		}
		if !p.MustMatch && found {
			return 0, fmt.Errorf("%w: precondition %d: MUST_NOT_MATCH filter %s matched a relationship", ErrPreconditionFailed, i, describeFilter(p.Filter))
		}
	}
	b := &batch{out: out, rev: r.Rev}
	for i := range r.Updates {
		u, p := &r.Updates[i], &preps[i]
		present, visible, err := v.lookup(p.rkey, r.Now)
		if err != nil {
			return 0, err
		}
		switch u.Op {
		case OpCreate:
			if visible {
				return 0, fmt.Errorf("%w: update %d (CREATE): %s", ErrAlreadyExists, i, u.Rel.Key())
			}
			err = b.put(p.rkey, p.val, p.exp, !present)
		case OpTouch:
			err = b.put(p.rkey, p.val, p.exp, !present)
		case OpDelete:
			if present {
				err = b.del(p.rkey, visible)
			}
		}
		if err != nil {
			return 0, err
		}
	}
	if err := b.flushChunk(); err != nil {
		return 0, err
	}
	return b.delta, nil
}

// stagingSink collects a request's entries until its checks have passed.
type stagingSink struct {
	entries []stagedEntry
}

type stagedEntry struct {
	k, v []byte
	del  bool
}

func (s *stagingSink) reset() { s.entries = s.entries[:0] }
func (s *stagingSink) Set(k, v []byte) error {
	s.entries = append(s.entries, stagedEntry{k: k, v: v})
	return nil
}
func (s *stagingSink) Delete(k []byte) error {
	s.entries = append(s.entries, stagedEntry{k: k, del: true})
	return nil
}

// overlayView is the state after the earlier requests of a WriteMany: the
// base transaction (at the applied revision) with the batch's resource-key
// writes on top (nil value = deleted).
type overlayView struct {
	base *badger.Txn
	over map[string][]byte
}

func (v *overlayView) lookup(rkey []byte, now time.Time) (present, visible bool, err error) {
	if val, ok := v.over[string(rkey)]; ok {
		if val == nil {
			return false, false, nil
		}
		exp, err := valueExpiration(val)
		if err != nil {
			return false, false, err
		}
		return true, exp.IsZero() || now.Before(exp), nil
	}
	return lookup(v.base, rkey, now)
}

// exists reports whether any relationship visible at now matches f.
func (v *overlayView) exists(f tuple.Filter, now time.Time) (bool, error) {
	found := false
	err := scan(context.Background(), v.base, f, now, func(r tuple.Relationship) bool {
		if _, overridden := v.over[string(resourceKey(r.Key()))]; overridden {
			return true // the overlay decides below
		}
		found = true
		return false
	})
	if err != nil || found {
		return found, err
	}
	var d keyDecoder
	for k, val := range v.over {
		if val == nil {
			continue
		}
		key, err := d.resource([]byte(k))
		if err != nil {
			return false, err
		}
		r := tuple.Relationship{Resource: key.Resource, Relation: key.Relation, Subject: key.Subject}
		if err := decodeValue(val, &r); err != nil {
			return false, err
		}
		if f.Matches(r) && !r.ExpiredAt(now) {
			return true, nil
		}
	}
	return false, nil
}
