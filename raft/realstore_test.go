package raft

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// The badger store is the Backend the server uses.
var _ Backend = (*store.Store)(nil)

func openRealStore(t testing.TB, dir string, inMemory bool) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{
		Dir:            dir,
		InMemory:       inMemory,
		GCInterval:     -1,
		SyncWrites:     true,
		MemTableSize:   8 << 20,
		BlockCacheSize: 8 << 20,
	})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	return st
}

// realStores opens a durable badger store per node under its data dir.
func realStores(t testing.TB) func(int, string) (Backend, func()) {
	return func(i int, dir string) (Backend, func()) {
		st := openRealStore(t, filepath.Join(dir, "store"), false)
		return st, func() {
			if err := st.Close(); err != nil {
				t.Logf("closing store: %v", err)
			}
		}
	}
}

func realContents(b Backend) []string {
	st := b.(*store.Store)
	snap, err := st.Snapshot(st.AppliedRevision())
	if err != nil {
		panic(err)
	}
	var out []string
	for r, err := range snap.Query(context.Background(), tuple.Filter{ResourceType: "doc"}) {
		if err != nil {
			panic(err)
		}
		out = append(out, r.Key().String())
	}
	slices.Sort(out)
	return out
}
