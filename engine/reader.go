package engine

import (
	"context"
	"iter"
	"time"

	"github.com/ambit-authz/ambit/tuple"
)

// Reader is what the engine reads relationships through: one consistent
// snapshot (one revision). store.Snapshot implements it for the badger store;
// the engine's tests use an in-memory implementation.
//
// Query yields every relationship matching f that is visible at the snapshot
// (expired relationships are never yielded). Implementations choose the index:
// by resource when f names resource ids, by subject when f names subject ids
// but no resource ids. The iteration stops at the first error.
type Reader interface {
	Query(ctx context.Context, f tuple.Filter) iter.Seq2[tuple.Relationship, error]
}

// Sourced is implemented by readers that name the data set they read. The
// engine's caches key entries by source and revision, so two readers with the
// same source and revision must hold the same relationships (a store's
// snapshots at one revision do). A reader without it counts as source 0: a
// caller giving one engine readers of different data sets at the same
// revision (a validation run loads every file at revision 2) would then get
// answers computed from another data set.
type Sourced interface {
	Source() uint64
}

// Timed is implemented by readers that judge expiration at a fixed time
// (store.Snapshot hides what had expired when it was taken). A View takes its
// time from such a reader, and from the clock otherwise, and serves a cached
// result only before the earliest expiration among the relationships that
// result was computed from: at one revision, results still change as
// relationships expire.
type Timed interface {
	Time() time.Time
}
