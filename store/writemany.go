package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
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
// order, a storage error); then the applied revision readers see is
// unchanged, though a prefix of the requests may be on disk (a reopened
// store resumes after it). The batch becomes visible at once when all of it
// has been written; a crash before that leaves a prefix of the requests,
// each whole, and the applied revision of the last of them.
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
	applied := s.applied.Load()
	base := s.db.NewTransactionAt(applied, false)
	defer base.Discard()
	v := newOverlayView(base)
	// A request with few entries (or a refused one) joins a group: a badger
	// WriteBatch holding several requests' entries and revision times, each at
	// its own revision, but not the applied revision. A larger one commits in a
	// transaction of its own holding what Write's would (its entries, the
	// revision's time and the applied revision), or, when badger's transaction
	// limit is too small for it, in pieces as Write commits it; those commits
	// are asynchronous: badger's write goroutine puts request i into the
	// memtable while this one checks request i+1 against the overlay. Writes
	// reach badger in revision order (an open group is flushed before a request
	// commits on its own), so after a crash the store holds the applied
	// revision it recorded last and everything up to it; readers here stay at
	// the applied revision until all of it has landed.
	var pending sync.WaitGroup
	var commitMu sync.Mutex
	var commitErr error
	defer pending.Wait()
	var group *badger.WriteBatch
	defer func() {
		if group != nil {
			group.Cancel()
		}
	}()
	flushGroup := func() error {
		if group == nil {
			return nil
		}
		err := group.Flush()
		group = nil
		return err
	}
	results = make([]error, len(reqs))
	var staged stagingSink
	for i := range reqs {
		r := &reqs[i]
		staged.reset()
		derr := s.stageWrite(v, &staged, r)
		if derr != nil && !IsRefusal(derr) {
			return nil, derr
		}
		if derr != nil || s.fitsGroup(staged.entries) {
			if group == nil {
				group = s.db.NewManagedWriteBatch()
			}
			if err := s.addToGroup(group, r, staged.entries, derr == nil); err != nil {
				return nil, fmt.Errorf("store: write many at revision %d: %w", r.Rev, err)
			}
		} else {
			if err := flushGroup(); err != nil {
				return nil, fmt.Errorf("store: write many before revision %d: %w", r.Rev, err)
			}
			txn := s.db.NewTransactionAt(applied, true)
			err := setStaged(txn, staged.entries)
			if err == nil {
				err = s.setMeta(txn, r.Rev, r.Now)
			}
			if errors.Is(err, badger.ErrTxnTooBig) {
				// Too large for one transaction here (the limit follows
				// this node's memtable size): the entries go through a
				// WriteBatch at the request's revision, after everything
				// before them has landed, and the meta keys follow, as
				// Write does (commitStaged). Same state, no refusal.
				txn.Discard()
				pending.Wait()
				if commitErr != nil {
					return nil, commitErr
				}
				if err := s.writeBatchAt(r.Rev, staged.entries); err != nil {
					return nil, err
				}
				txn = s.db.NewTransactionAt(applied, true)
				err = s.setMeta(txn, r.Rev, r.Now)
			}
			if err != nil {
				txn.Discard()
				return nil, fmt.Errorf("store: write many at revision %d: %w", r.Rev, err)
			}
			pending.Add(1)
			_ = txn.CommitAt(uint64(r.Rev), func(err error) {
				if err != nil {
					commitMu.Lock()
					commitErr = cmp.Or(commitErr, fmt.Errorf("store: write many at revision %d: %w", r.Rev, err))
					commitMu.Unlock()
				}
				pending.Done()
			})
		}
		if derr != nil {
			results[i] = derr
			continue
		}
		for _, e := range staged.entries {
			if !isResourceKey(e.k) {
				continue
			}
			var val []byte // nil: deleted
			if !e.del {
				val = valueOrEmpty(e.v)
			}
			v.set(e.k, val)
		}
	}
	if err := flushGroup(); err != nil {
		return nil, fmt.Errorf("store: write many: %w", err)
	}
	pending.Wait()
	if commitErr != nil {
		s.ioFailure(commitErr)
		return nil, commitErr
	}
	last := reqs[len(reqs)-1].Rev
	txn := s.db.NewTransactionAt(applied, true)
	defer txn.Discard()
	if err := txn.Set(keyApplied, u64(uint64(last))); err != nil {
		return nil, err
	}
	if err := s.commit(txn, last); err != nil {
		return nil, err
	}
	return results, nil
}

// groupEntries is the most entries a WriteMany request may stage to join a
// group rather than commit on its own: a transaction per request costs
// more than the group for a handful of entries (single updates: 0.66x,
// BenchmarkFSMApplyBatch) and less for a hundred (1.2x).
const groupEntries = 32

// fitsGroup reports whether a request's staged entries may join a group:
// few, and certainly within what one badger transaction takes together
// with Write's bookkeeping entries. It decides only how the entries reach
// badger, never what is written.
func (s *Store) fitsGroup(entries []stagedEntry) bool {
	if len(entries) > groupEntries {
		return false
	}
	// badger counts an entry as its key, its value (or a 12-byte pointer),
	// 2 bytes of metadata and 10 of version: at most key + value + 24.
	size := int64(4 * 64) // the bookkeeping entries, generously
	for _, e := range entries {
		size += int64(len(e.k) + len(e.v) + 24)
	}
	return int64(len(entries)+4) < s.db.MaxBatchCount() && size < s.db.MaxBatchSize()
}

// addToGroup adds a request's entries (if ok; a refused request writes
// none) and the revision's time to a group at the request's revision.
func (s *Store) addToGroup(group *badger.WriteBatch, r *WriteRequest, entries []stagedEntry, ok bool) error {
	ts := uint64(r.Rev)
	if ok {
		for _, e := range entries {
			var err error
			if e.del {
				err = group.DeleteAt(e.k, ts)
			} else {
				err = group.SetEntryAt(badger.NewEntry(e.k, e.v), ts)
			}
			if err != nil {
				return err
			}
		}
	}
	if r.Now.IsZero() {
		return nil
	}
	return group.SetEntryAt(badger.NewEntry(revKey(spaceTime, r.Rev), u64(uint64(r.Now.UnixNano()))), ts)
}

// valueOrEmpty marks "present with an empty value" distinctly from nil
// (deleted) in the overlay.
func valueOrEmpty(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// setStaged writes a request's staged entries into txn.
func setStaged(txn *badger.Txn, entries []stagedEntry) error {
	for _, e := range entries {
		var err error
		if e.del {
			err = txn.Delete(e.k)
		} else {
			err = txn.Set(e.k, e.v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// stageWrite runs one request's checks against v and stages its entries
// (without versions) in out.
func (s *Store) stageWrite(v *overlayView, out *stagingSink, r *WriteRequest) error {
	preps, err := s.prepareUpdates(r.Now, r.Updates)
	if err != nil {
		return err
	}
	for i, p := range r.Preconds {
		if err := validateFilter(p.Filter); err != nil {
			return fmt.Errorf("precondition %d: %w", i, err)
		}
		found, err := v.exists(p.Filter, r.Now)
		if err != nil {
			return fmt.Errorf("precondition %d: %w", i, err)
		}
		if p.MustMatch && !found {
			return fmt.Errorf("%w: precondition %d: MUST_MATCH filter %s matched nothing", ErrPreconditionFailed, i, describeFilter(p.Filter))
		}
		if !p.MustMatch && found {
			return fmt.Errorf("%w: precondition %d: MUST_NOT_MATCH filter %s matched a relationship", ErrPreconditionFailed, i, describeFilter(p.Filter))
		}
	}
	b := &batch{out: out, rev: r.Rev}
	if err := b.stage(r.Updates, preps, r.Now, func(rkey []byte) (bool, bool, error) { return v.lookup(rkey, r.Now) }); err != nil {
		return err
	}
	return b.flushChunk()
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
// writes on top (nil value = deleted). For preconditions the overlay's keys
// are indexed by resource object and by resource type, so that each looks
// only at the entries its filter can match (a run of thousands of
// conditional writes would otherwise decode the whole overlay for each).
// The index is brought up to date when a precondition needs it, so runs
// without preconditions do not pay for it.
type overlayView struct {
	base     *badger.Txn
	over     map[string][]byte
	all      []overlayKey // every key of over, in the order first written
	indexed  int          // all[:indexed] are decoded and in the indexes
	byObject map[tuple.ObjectRef][]overlayKey
	byType   map[string][]overlayKey
	dec      keyDecoder
}

// overlayKey is an overlay key and its decoded relationship key.
type overlayKey struct {
	k   string
	key tuple.Key
}

func newOverlayView(base *badger.Txn) *overlayView {
	return &overlayView{base: base, over: map[string][]byte{},
		byObject: map[tuple.ObjectRef][]overlayKey{}, byType: map[string][]overlayKey{}}
}

// set records the value of resource key rkey after a request (nil: deleted).
func (v *overlayView) set(rkey, val []byte) {
	k := string(rkey)
	if _, seen := v.over[k]; !seen {
		v.all = append(v.all, overlayKey{k: k})
	}
	v.over[k] = val
}

// candidates returns the overlay keys that f can match (a superset).
func (v *overlayView) candidates(f tuple.Filter) ([]overlayKey, error) {
	for ; v.indexed < len(v.all); v.indexed++ {
		ok := &v.all[v.indexed]
		key, err := v.dec.resource([]byte(ok.k))
		if err != nil {
			return nil, err
		}
		ok.key = key
		v.byObject[key.Resource] = append(v.byObject[key.Resource], *ok)
		v.byType[key.Resource.Type] = append(v.byType[key.Resource.Type], *ok)
	}
	switch {
	case f.ResourceType != "" && len(f.ResourceIDs) == 1:
		return v.byObject[tuple.ObjectRef{Type: f.ResourceType, ID: f.ResourceIDs[0]}], nil
	case f.ResourceType != "" && len(f.ResourceIDs) > 1:
		var out []overlayKey
		for _, id := range f.ResourceIDs {
			out = append(out, v.byObject[tuple.ObjectRef{Type: f.ResourceType, ID: id}]...)
		}
		return out, nil
	case f.ResourceType != "":
		return v.byType[f.ResourceType], nil
	}
	return v.all, nil
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
	cands, err := v.candidates(f)
	if err != nil {
		return false, err
	}
	for _, c := range cands {
		val := v.over[c.k]
		if val == nil {
			continue
		}
		r := tuple.Relationship{Resource: c.key.Resource, Relation: c.key.Relation, Subject: c.key.Subject}
		if err := decodeValue(val, &r); err != nil {
			return false, err
		}
		if f.Matches(r) && !r.ExpiredAt(now) {
			return true, nil
		}
	}
	return false, nil
}
