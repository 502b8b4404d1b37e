package store

import (
	"context"
	"fmt"
	"iter"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ambit-authz/ambit/tuple"
)

// Changes yields the committed revisions after after, in order, up to the
// applied revision at the call, each whole (ChangePieces merged). Revisions
// whose write failed a domain check carry no change and are not yielded.
// ErrRevisionCompacted if after is older than the GC horizon (or GC passes
// it during the iteration).
func (s *Store) Changes(ctx context.Context, after tuple.Revision) iter.Seq2[Change, error] {
	return func(yield func(Change, error) bool) {
		var cur Change
		for piece, err := range s.ChangePieces(ctx, after) {
			if err != nil {
				yield(Change{}, err)
				return
			}
			if cur.Revision != piece.Revision {
				cur = Change{Revision: piece.Revision}
			}
			cur.Updates = append(cur.Updates, piece.Updates...)
			if piece.Schema != nil {
				cur.Schema = piece.Schema
			}
			if !piece.More {
				if !yield(cur, nil) {
					return
				}
				cur = Change{}
			}
		}
	}
}

// ChangePieces is Changes in bounded pieces: one Change per stored chunk of
// the change feed (at most 1000 updates and about 256 KiB of them), so a
// revision that changed a million relationships arrives as a thousand
// pieces a consumer can send on as they come. Every piece of a revision but
// the last has More set; a revision's pieces come in commit order, and
// their updates together are what Changes yields for it.
func (s *Store) ChangePieces(ctx context.Context, after tuple.Revision) iter.Seq2[Change, error] {
	return func(yield func(Change, error) bool) {
		if err := s.enter(); err != nil {
			yield(Change{}, err)
			return
		}
		defer s.leave()
		upTo := s.applied.Load()
		if h := s.horizon.Load(); uint64(after) < h {
			yield(Change{}, fmt.Errorf("%w: changes after revision %d, oldest readable revision %d", ErrRevisionCompacted, after, h))
			return
		}
		if uint64(after) >= upTo {
			return
		}
		txn := s.db.NewTransactionAt(upTo, false)
		defer txn.Discard()
		it := txn.NewIterator(badger.IteratorOptions{Prefix: spacePrefix(spaceChange)})
		defer it.Close()
		// held is the piece read last, yielded once the next key shows
		// whether its revision goes on.
		var held Change
		emit := func(more bool) bool {
			if held.Revision == 0 {
				return true
			}
			if h := s.horizon.Load(); uint64(after) < h {
				yield(Change{}, fmt.Errorf("%w: revision %d was garbage-collected during the read", ErrRevisionCompacted, after))
				return false
			}
			held.More = more
			ok := yield(held, nil)
			held = Change{}
			return ok
		}
		for it.Seek(changeKey(after+1, 0)); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				yield(Change{}, err)
				return
			}
			item := it.Item()
			rev, _, err := decodeChangeKey(item.Key())
			if err != nil {
				yield(Change{}, fmt.Errorf("store: corrupt change feed: %w", err))
				return
			}
			if !emit(rev == held.Revision) {
				return
			}
			held.Revision = rev
			if err := item.Value(func(v []byte) error { return decodeChangeChunk(v, &held) }); err != nil {
				yield(Change{}, fmt.Errorf("store: corrupt change feed at revision %d: %w", rev, err))
				return
			}
		}
		emit(false)
	}
}
