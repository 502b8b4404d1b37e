package raft

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// SchemaStore is what OrphanGuard reads: the node's store at its applied
// revision.
type SchemaStore interface {
	AppliedRevision() tuple.Revision
	ReadSchema(rev tuple.Revision) (text string, at tuple.Revision, err error)
	Snapshot(rev tuple.Revision) (*store.Snapshot, error)
}

// OrphanGuard is the SchemaGuard of every ambit node (Config.SchemaGuard):
// schema.CheckChange between the stored schema and the new text, over the
// relationships st holds at its applied revision that have not expired at
// the command's leader time (not the node's clock: a replica replaying the
// log a day later must decide as the leader did), so every replica decides
// the same. Its refusals wrap schema.ErrRemovedInUse (ErrSchemaInUse) or
// schema.ErrOrphaned (ErrSchemaOrphans).
//
// It never compiles: the schema was compiled before it was proposed (by
// the API, or by the leader for a forwarded write), so inside the state
// machine it reads only both schemas' declarations (schema.Declarations,
// one linear pass) and queries the store.
func OrphanGuard(st SchemaStore) SchemaGuard {
	return func(_ tuple.Revision, now time.Time, text string) error {
		next, err := schema.Declarations("schema", text)
		if err != nil {
			return fmt.Errorf("schema does not compile: %v", err)
		}
		applied := st.AppliedRevision()
		prevText, at, err := st.ReadSchema(applied)
		if err != nil {
			return err
		}
		if prevText == "" && at == 0 {
			return nil // the first schema
		}
		prev, err := schema.Declarations("schema", prevText)
		if err != nil {
			return fmt.Errorf("raft: stored schema at revision %d does not parse: %w", at, err)
		}
		snap, err := st.Snapshot(applied)
		if err != nil {
			return err
		}
		snap = snap.At(now)
		return schema.CheckChange(prev, next, func(f tuple.Filter) iter.Seq2[tuple.Relationship, error] {
			return snap.Query(context.Background(), f)
		})
	}
}
