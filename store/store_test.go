package store_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/store/storetest"
)

// quietLogger drops badger's and the store's logs in tests.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

func testOptions(c storetest.Config, inMemory bool) store.Options {
	return store.Options{
		Dir:            c.Dir,
		InMemory:       inMemory,
		GCWindow:       c.GCWindow,
		GCInterval:     -1,
		Clock:          c.Clock,
		Logger:         quietLogger,
		MemTableSize:   8 << 20,
		BlockCacheSize: 8 << 20,
	}
}

func harness(inMemory bool, adjust ...func(*store.Options)) storetest.Harness[*store.Snapshot, *store.Store] {
	return storetest.Harness[*store.Snapshot, *store.Store]{
		Persistent: !inMemory,
		Open: func(t *testing.T, c storetest.Config) *store.Store {
			t.Helper()
			o := testOptions(c, inMemory)
			for _, f := range adjust {
				f(&o)
			}
			s, err := store.Open(o)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			return s
		},
	}
}

func TestConformanceInMemory(t *testing.T) { storetest.RunAll(t, harness(true)) }

func TestConformanceOnDisk(t *testing.T) { storetest.RunAll(t, harness(false)) }

// TestConformanceOnDiskStreamImport sends every import through the
// StreamWriter path (normally taken from 20 000 relationships up).
func TestConformanceOnDiskStreamImport(t *testing.T) {
	storetest.RunAll(t, harness(false, func(o *store.Options) { store.SetStreamImportMin(o, 1) }))
}

// The engine reads through its own interface; the store satisfies it without
// importing the engine.
var _ engine.Reader = (*store.Snapshot)(nil)
