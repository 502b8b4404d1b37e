package raft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/store"
)

// fakeBoot makes bootID report *id until the test ends.
func fakeBoot(t *testing.T, id *string) {
	t.Helper()
	orig := bootID
	bootID = func() (string, error) {
		if *id == "" {
			return "", fmt.Errorf("%w: test", ErrNoBootID)
		}
		return *id, nil
	}
	t.Cleanup(func() { bootID = orig })
}

func TestStoreGuard(t *testing.T) {
	boot := "boot-1"
	fakeBoot(t, &boot)
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	if err := os.MkdirAll(storeDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(storeDir, "data"), []byte("v1"), 0o640); err != nil {
		t.Fatal(err)
	}
	kept := func() bool {
		_, err := os.Stat(filepath.Join(storeDir, "data"))
		return err == nil
	}
	open := func() *StoreGuard {
		t.Helper()
		g, err := GuardStore(dir, storeDir, nil)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}

	open() // first start: nothing to judge
	if !kept() {
		t.Fatal("first start discarded the store")
	}
	open() // a process crash (no Closed), same boot: the page cache kept every write
	if !kept() {
		t.Fatal("a restart in the same boot discarded the store")
	}
	g := open()
	if err := g.Closed(); err != nil {
		t.Fatal(err)
	}
	boot = "boot-2"
	g = open() // a clean close, then a reboot
	if !kept() {
		t.Fatal("a reboot after a clean close discarded the store")
	}

	boot = "boot-3" // a reboot while the store was open
	open()
	if kept() {
		t.Fatal("a reboot while the store was open kept it")
	}
	if data, err := os.ReadFile(filepath.Join(storeDir+".discarded", "data")); err != nil || string(data) != "v1" {
		t.Fatalf("discarded store not moved aside: %q %v", data, err)
	}
	open() // the rebuilt store belongs to this boot now
	if _, err := os.Stat(storeDir + ".discarded"); err != nil {
		t.Fatalf("the discarded store went away on a plain restart: %v", err)
	}

	boot = ""
	if _, err := GuardStore(dir, storeDir, nil); !errors.Is(err, ErrNoBootID) {
		t.Fatalf("GuardStore without a boot id = %v, want ErrNoBootID", err)
	}
}

// TestRebootRebuildsUnsyncedStore runs nodes whose badger stores do not
// fsync, behind a StoreGuard. A follower goes down uncleanly and the machine
// reboots: the guard discards its store, and NewNode rebuilds it from the
// newest snapshot (the leader's log is compacted past it) and the log, with
// every acknowledged write.
func TestRebootRebuildsUnsyncedStore(t *testing.T) {
	boot := "boot-1"
	fakeBoot(t, &boot)
	clean := map[int]bool{} // node i's next close is clean
	newStore := func(i int, dir string) (Backend, func()) {
		storeDir := filepath.Join(dir, "store")
		g, err := GuardStore(dir, storeDir, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(store.Options{Dir: storeDir, GCInterval: -1, MemTableSize: 8 << 20, BlockCacheSize: 8 << 20,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return st, func() {
			if err := st.Close(); err != nil {
				t.Errorf("closing store: %v", err)
			}
			if clean[i] {
				if err := g.Closed(); err != nil {
					t.Error(err)
				}
			}
		}
	}
	c := newTestCluster(t, 3, newStore, func(cfg *Config) { cfg.TrailingLogs = 4 })
	leader := c.waitLeader()
	f := c.follower(leader)
	ctx := context.Background()
	var acked []string
	write := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			id := fmt.Sprintf("%s%d", prefix, i)
			if _, err := writeOne(ctx, c.nodes[leader].n, id); err != nil {
				t.Fatal(err)
			}
			acked = append(acked, id)
		}
	}
	write("a", 30)
	c.stop(f) // unclean: the guard's marker stays
	write("b", 30)
	if err := c.nodes[leader].n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	write("c", 10)
	boot = "boot-2"
	tn := c.restart(f)
	if _, err := os.Stat(filepath.Join(tn.cfg.Dir, "store.discarded")); err != nil {
		t.Fatalf("the follower's store was not discarded after the reboot: %v", err)
	}
	if _, err := tn.n.LinearizableRevision(ctx); err != nil {
		t.Fatal(err)
	}
	got, want := contents(tn.st), contents(c.nodes[leader].st)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rebuilt follower has %d relationships, leader %d", len(got), len(want))
	}
	for _, id := range acked {
		if !contains(got, keyOf(id).String()) {
			t.Fatalf("rebuilt follower lacks acknowledged write %s", id)
		}
	}

	// A clean stop then a reboot keeps the store.
	clean[f] = true
	c.stop(f)
	boot = "boot-3"
	if err := os.RemoveAll(filepath.Join(tn.cfg.Dir, "store.discarded")); err != nil {
		t.Fatal(err)
	}
	tn = c.restart(f)
	if _, err := os.Stat(filepath.Join(tn.cfg.Dir, "store.discarded")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a store closed cleanly was discarded after a reboot: %v", err)
	}
	if tn.st.AppliedRevision() == 0 {
		t.Fatal("the cleanly closed store came back empty")
	}
}
