package raft

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/tuple"
)

// TestAcknowledgedWritesSurviveStoresLosingUnsyncedWrites: the raft log is
// the durability point. Every node takes a snapshot (which syncs its store
// before raft compacts the log), more writes are acknowledged, then the whole
// cluster suffers an OS crash in which every store loses what it applied
// since its last sync. After a restart every acknowledged write is back on
// every node, replayed from the raft logs alone: no store had fallen below
// its snapshot, so none needed a snapshot restore.
func TestAcknowledgedWritesSurviveStoresLosingUnsyncedWrites(t *testing.T) {
	c := newTestCluster(t, 3, fakeStores(), func(cfg *Config) { cfg.TrailingLogs = 4 })
	leader := c.waitLeader()
	ctx := context.Background()
	var acked []string
	write := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			id := fmt.Sprintf("%s%d", prefix, i)
			// Through every node in turn: followers forward.
			if _, err := writeOne(ctx, c.nodes[(leader+i)%3].n, id); err != nil {
				t.Fatal(err)
			}
			acked = append(acked, id)
		}
	}
	write("before", 20)
	rev, err := c.nodes[leader].n.LinearizableRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		if err := tn.n.WaitApplied(ctx, rev); err != nil {
			t.Fatal(err)
		}
		if err := tn.n.Snapshot(); err != nil {
			t.Fatalf("%s: %v", tn.cfg.NodeID, err)
		}
		snapIdx, err := strconv.ParseUint(tn.n.raft.Stats()["last_snapshot_index"], 10, 64)
		if err != nil || snapIdx == 0 {
			t.Fatalf("%s: last snapshot index %q: %v", tn.cfg.NodeID, tn.n.raft.Stats()["last_snapshot_index"], err)
		}
		if first, _ := tn.n.logs.FirstIndex(); first <= 1 {
			t.Fatalf("%s: log not compacted (first index %d) after a snapshot at %d", tn.cfg.NodeID, first, snapIdx)
		}
		if d := tn.st.(*fakeStore).durableRevision(); d < tuple.Revision(snapIdx) {
			t.Fatalf("%s: raft compacted its log up to a snapshot at %d but the store is durable only up to %d", tn.cfg.NodeID, snapIdx, d)
		}
	}
	write("after", 20)

	for i := range c.nodes {
		c.stop(i)
	}
	for _, tn := range c.nodes {
		if lost := tn.st.(*fakeStore).loseUnsynced(); lost == 0 {
			t.Fatalf("%s: the crash lost no store writes; the test would prove nothing", tn.cfg.NodeID)
		}
	}
	for i := range c.nodes {
		c.restart(i)
	}
	leader = c.waitLeader()
	fence, err := writeOne(ctx, c.nodes[leader].n, "fence")
	if err != nil {
		t.Fatal(err)
	}
	var ref []string
	for _, tn := range c.nodes {
		if err := tn.n.WaitApplied(ctx, fence); err != nil {
			t.Fatal(err)
		}
		fs := tn.st.(*fakeStore)
		got := contents(fs)
		for _, id := range acked {
			if !fs.has(keyOf(id)) {
				t.Fatalf("%s lost acknowledged write %s after the crash", tn.cfg.NodeID, id)
			}
		}
		if ref == nil {
			ref = got
		} else if strings.Join(got, "\n") != strings.Join(ref, "\n") {
			t.Fatalf("replicas differ after the crash: %s has %d relationships, another %d", tn.cfg.NodeID, len(got), len(ref))
		}
		if fs.restores != 0 {
			t.Fatalf("%s restored a snapshot: its store fell below the snapshot index", tn.cfg.NodeID)
		}
	}
	if len(ref) != len(acked)+1 {
		t.Fatalf("%d relationships, want the %d acknowledged ones and the fence", len(ref), len(acked))
	}
}
