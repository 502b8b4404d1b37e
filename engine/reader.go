package engine

import (
	"context"
	"iter"

	"github.com/ambit-authz/ambit/tuple"
)

// Reader is what the engine reads relationships through: one consistent
// snapshot (one revision). store.Snapshot implements it for the badger store;
// the engine's tests use an in-memory implementation. Which data set,
// revision and time it reads is the Snapshot given with it to Engine.View,
// an argument the caller must state rather than a property the engine
// looks for on the reader.
//
// Query yields every relationship matching f that is visible at the snapshot
// (expired relationships are never yielded). Implementations choose the index:
// by resource when f names resource ids, by subject when f names subject ids
// but no resource ids. The iteration stops at the first error.
//
// A query by one subject id with the subject relation, the resource type and
// the relation all given yields ascending resource ids (the subject index's
// order): LookupResources merges such queries as sorted streams, and fails
// with ErrInternal on a reader that breaks the order.
type Reader interface {
	Query(ctx context.Context, f tuple.Filter) iter.Seq2[tuple.Relationship, error]
}
