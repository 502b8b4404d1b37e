package store_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// A store whose directory disappears cannot flush its memtables; badger only
// logs that and retries for ever. The store records it as a disk fault,
// reports it once through OnFault and keeps it in Fault.
func TestDiskFaultFromBadgerFlush(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var reported []error
	s, err := store.Open(store.Options{Dir: dir, GCInterval: -1, Logger: quietLogger, MemTableSize: 1 << 20, BlockCacheSize: 1 << 20,
		OnFault: func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	// Not closed: badger's Close waits for the flush it retries for ever.
	if err := s.Fault(); err != nil {
		t.Fatalf("fault before anything failed: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	rev := s.AppliedRevision()
	for i := 0; s.Fault() == nil; i++ {
		if time.Now().After(deadline) {
			t.Fatal("no disk fault recorded within 60s of removing the store's directory")
		}
		ups := make([]store.Update, 0, 100)
		for j := range 100 {
			ups = append(ups, store.Update{Op: store.OpTouch, Rel: tuple.MustParse(fmt.Sprintf("doc:d%d_%d#viewer@user:u%d", i, j, j))})
		}
		rev++
		done := make(chan error, 1)
		go func() { done <- s.Write(rev, time.Unix(100, 0), ups, nil) }()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, store.ErrDiskFault) && s.Fault() == nil {
				t.Logf("write %d: %v", i, err)
			}
		case <-time.After(time.Second): // badger blocks writes once its memtables are full
		}
	}
	err = s.Fault()
	if !errors.Is(err, store.ErrDiskFault) || !strings.Contains(err.Error(), "no such file or directory") {
		t.Fatalf("Fault = %v, want ErrDiskFault naming the missing file", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 1 || reported[0].Error() != err.Error() {
		t.Fatalf("OnFault calls: %v, want exactly the fault", reported)
	}
}
