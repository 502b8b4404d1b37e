package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// Badger is a Backend that loads each document into its own badger store
// in a temporary directory, as `ambit validate` does.
type Badger struct {
	dir    string
	stores []*store.Store
}

// NewBadger creates the temporary directory under parent ("" = os.TempDir()).
func NewBadger(parent string) (*Badger, error) {
	dir, err := os.MkdirTemp(parent, "ambit-validate-")
	if err != nil {
		return nil, err
	}
	return &Badger{dir: dir}, nil
}

var _ engine.Reader = (*store.Snapshot)(nil)

// Load implements Backend: schema at revision 1, relationships at revision 2.
func (b *Badger) Load(_ context.Context, s *schema.Schema, rels []tuple.Relationship) (engine.Reader, engine.Snapshot, error) {
	// Validation files are small: keep badger's memory and start-up cost small.
	st, err := store.Open(store.Options{Dir: filepath.Join(b.dir, fmt.Sprint(len(b.stores))), GCInterval: -1,
		MemTableSize: 4 << 20, BlockCacheSize: 4 << 20})
	if err != nil {
		return nil, engine.Snapshot{}, err
	}
	b.stores = append(b.stores, st)
	now := time.Now()
	if err := st.WriteSchema(1, now, s.Source); err != nil {
		return nil, engine.Snapshot{}, err
	}
	if err := st.Import(2, now, rels); err != nil {
		return nil, engine.Snapshot{}, err
	}
	snap, err := st.Snapshot(2)
	if err != nil {
		return nil, engine.Snapshot{}, err
	}
	return snap, engine.Snapshot{Source: engine.NewSource(), Revision: 2, Time: snap.Time()}, nil
}

// Close closes every store and removes the directory.
func (b *Badger) Close() error {
	var first error
	for _, st := range b.stores {
		if err := st.Close(); err != nil && first == nil {
			first = err
		}
	}
	if err := os.RemoveAll(b.dir); err != nil && first == nil {
		first = err
	}
	return first
}
