package raft

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// TestClusterNodesWithDifferentStoreSettingsAgree: what a node may
// configure about its store (here the memtable size, which sets badger's
// transaction limit) never changes what applying the log does. Three nodes
// with different settings apply writes that one transaction holds on some
// of them and not on others, including 1000 updates with a 4 KiB caveat
// context each (the API's limits), and end with identical stores.
func TestClusterNodesWithDifferentStoreSettingsAgree(t *testing.T) {
	memtables := []int64{2 << 20, 8 << 20, 32 << 20}
	c := newTestCluster(t, 3, func(i int, dir string) (Backend, func()) {
		st, err := store.Open(store.Options{Dir: filepath.Join(dir, "store"), GCInterval: -1, SyncWrites: true,
			MemTableSize: memtables[i], BlockCacheSize: 1 << 20})
		if err != nil {
			t.Fatalf("store.Open: %v", err)
		}
		return st, func() { st.Close() }
	}, func(cfg *Config) { cfg.ApplyTimeout = 2 * time.Minute }) // megabytes under the race detector on a loaded machine
	leader := c.waitLeader()
	ctx := context.Background()
	caveated := func(prefix string, n, contextBytes int) []store.Update {
		ups := make([]store.Update, n)
		for i := range ups {
			r := rel("doc", fmt.Sprintf("%s%d", prefix, i), "viewer", "user", "ana")
			if contextBytes > 0 {
				r.Caveat = &tuple.Caveat{Name: "cav", Context: map[string]any{"k": strings.Repeat("x", contextBytes-len(`{"k":""}`))}}
			}
			ups[i] = store.Update{Op: store.OpTouch, Rel: r}
		}
		return ups
	}
	var last tuple.Revision
	for i, cmd := range []Command{
		WriteCommand(caveated("small", 10, 0), nil),
		WriteCommand(caveated("limits", 1000, 4096), nil),
		WriteCommand(caveated("many", 2500, 0), nil),
		DeleteCommand(tuple.Filter{ResourceType: "doc", ResourceIDPrefix: "many1"}, 0, false, nil),
		WriteCommand(caveated("small", 10, 0), nil),
	} {
		// Through a follower, too: the command is forwarded in pieces.
		via := c.nodes[leader].n
		if i%2 == 1 {
			via = c.nodes[c.follower(leader)].n
		}
		res, err := via.Apply(ctx, cmd)
		if err != nil {
			t.Fatalf("command %d (%s): %v", i, cmd.Kind, err)
		}
		last = res.Revision
	}
	var want []byte
	for i, tn := range c.nodes {
		if err := tn.n.WaitApplied(ctx, last); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if err := tn.n.Halted(); err != nil {
			t.Fatalf("node %d halted: %v", i, err)
		}
		snap, changes := storeState(t, tn.st.(*store.Store))
		n := 0
		for _, ch := range changes {
			n += len(ch.Updates)
		}
		if n != 10+1000+2500+1111+10 {
			t.Errorf("node %d (memtable %d MiB): change feed holds %d updates, want %d", i, memtables[i]>>20, n, 10+1000+2500+1111+10)
		}
		if i == 0 {
			want = snap
			continue
		}
		if !bytes.Equal(snap, want) {
			t.Errorf("node %d (memtable %d MiB): store export differs from node 0's (%d vs %d bytes)", i, memtables[i]>>20, len(snap), len(want))
		}
	}
	if got := realContents(c.nodes[0].st); len(got) != 10+1000+2500-1111 {
		t.Errorf("node 0 holds %d relationships, want %d", len(got), 10+1000+2500-1111)
	}
}
