package store

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ambit-authz/ambit/tuple"
)

func (s *Store) gcLoop() {
	defer close(s.gcDone)
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopGC:
			return
		case <-t.C:
			if err := s.RunGC(); err != nil && !errors.Is(err, ErrClosed) {
				s.log.Warn("store: garbage collection failed", "err", err)
			}
		}
	}
}

// RunGC runs one garbage-collection pass now:
//
//  1. The new horizon H is the largest revision whose leader time is older
//     than Clock() - GCWindow. Reads below H fail with ErrRevisionCompacted
//     from then on, and badger's discard timestamp is set to H so compactions
//     drop versions no readable revision can see.
//  2. In one transaction committed at timestamp H (below the applied revision,
//     which badger's managed mode allows), it writes tombstones for the change
//     feed and revision-time entries below H and for relationships whose
//     expiration is at or before H's leader time. Such relationships are
//     invisible to every readable snapshot, so removing them changes no
//     answer and needs no new revision; compaction then drops them for good.
//  3. On disk, it runs badger's value-log GC until there is nothing to rewrite.
func (s *Store) RunGC() error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.collect(); err != nil {
		return err
	}
	if s.opts.InMemory {
		return nil
	}
	for {
		err := s.db.RunValueLogGC(0.5)
		switch {
		case err == nil:
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return nil
		default:
			return fmt.Errorf("store: value-log GC: %w", err)
		}
	}
}

func (s *Store) collect() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return s.broken
	}
	cutoff := s.opts.Clock().Add(-s.opts.GCWindow)
	applied, old := s.applied.Load(), s.horizon.Load()
	txn := s.db.NewTransactionAt(applied, true)
	defer txn.Discard()

	h, hTime, err := findHorizon(txn, tuple.Revision(old), cutoff)
	if err != nil {
		return err
	}
	if uint64(h) <= old {
		return nil
	}
	var tombstones [][]byte
	// Revision-time entries and change-feed chunks below H.
	for _, space := range []byte{spaceTime, spaceChange} {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: spacePrefix(space)})
		for it.Seek(revKey(space, tuple.Revision(old))); it.Valid(); it.Next() {
			if rev, ok := revOfKey(it.Item().Key()); !ok || rev >= h {
				break
			}
			tombstones = append(tombstones, it.Item().KeyCopy(nil))
		}
		it.Close()
	}
	// Relationships expired at or before H's leader time.
	removed := int64(0)
	end := expiryPrefixUpTo(hTime)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: spacePrefix(spaceExpiry)})
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if bytes.Compare(item.Key()[:min(len(end), len(item.Key()))], end) > 0 {
			break
		}
		if item.Version() >= uint64(h) {
			continue // written at or after H: next pass
		}
		xkey := item.KeyCopy(nil)
		exp, body, err := decodeExpiryKey(xkey)
		if err != nil {
			it.Close()
			return fmt.Errorf("store: corrupt expiry index: %w", err)
		}
		tombstones = append(tombstones, xkey)
		rkey := resourceKeyFromBody(body)
		dead, err := expiredVersion(txn, rkey, exp, uint64(h))
		if err != nil {
			it.Close()
			return err
		}
		if !dead {
			continue // deleted, re-written or given a new expiration since
		}
		skey, err := subjectKeyFromBody(body)
		if err != nil {
			it.Close()
			return fmt.Errorf("store: corrupt expiry index: %w", err)
		}
		tombstones = append(tombstones, rkey, skey)
		removed++
	}
	it.Close()

	// Raise the horizon before any tombstone becomes visible, so a reader
	// that could observe one also observes the new horizon in its post-check.
	s.horizon.Store(uint64(h))
	s.db.SetDiscardTs(uint64(h))
	for _, k := range tombstones {
		if err := txn.Delete(k); err != nil {
			return fmt.Errorf("store: GC tombstones: %w", err)
		}
	}
	if err := txn.Set(keyHorizon, u64(uint64(h))); err != nil {
		return fmt.Errorf("store: GC: %w", err)
	}
	if err := txn.CommitAt(uint64(h), nil); err != nil {
		s.ioFailure(err)
		return fmt.Errorf("store: GC commit at %d: %w", h, err)
	}
	s.log.Debug("store: GC", "horizon", h, "tombstones", len(tombstones), "expired_removed", removed)
	return nil
}

// findHorizon returns the largest revision at or after from whose leader
// time is before cutoff, and that time.
func findHorizon(txn *badger.Txn, from tuple.Revision, cutoff time.Time) (tuple.Revision, time.Time, error) {
	var h tuple.Revision
	var ht time.Time
	it := txn.NewIterator(badger.IteratorOptions{Prefix: spacePrefix(spaceTime)})
	defer it.Close()
	for it.Seek(revKey(spaceTime, from)); it.Valid(); it.Next() {
		item := it.Item()
		rev, err := decodeRevKey(spaceTime, item.Key())
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("store: corrupt revision-time index: %w", err)
		}
		var at time.Time
		if err := item.Value(func(v []byte) error {
			n, err := readU64(v)
			at = time.Unix(0, int64(n))
			return err
		}); err != nil {
			return 0, time.Time{}, fmt.Errorf("store: corrupt revision-time index at %d: %w", rev, err)
		}
		if !at.Before(cutoff) {
			break
		}
		h, ht = rev, at
	}
	return h, ht, nil
}

// expiredVersion reports whether rkey's current version in txn expires at
// exactly exp and was written before version h.
func expiredVersion(txn *badger.Txn, rkey []byte, exp time.Time, h uint64) (bool, error) {
	item, err := txn.Get(rkey)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: GC read: %w", err)
	}
	if item.Version() >= h {
		return false, nil
	}
	var cur time.Time
	if err := item.Value(func(v []byte) error {
		var err error
		cur, err = valueExpiration(v)
		return err
	}); err != nil {
		return false, fmt.Errorf("store: GC read %q: %w", rkey, err)
	}
	return !cur.IsZero() && cur.Equal(exp), nil
}
