package raft

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// logStoreKind names the log store a node runs on.
func logStoreKind(t testing.TB, n *Node) string {
	t.Helper()
	switch n.logs.(type) {
	case *wal.WAL:
		return LogStoreWAL
	case *raftboltdb.BoltStore:
		return LogStoreBolt
	}
	t.Fatalf("node %s: unknown log store %T", n.ID(), n.logs)
	return ""
}

// checkLogFiles checks that dir/raft holds the files of the log store kind
// and none of the other's.
func checkLogFiles(t testing.TB, dir, kind string) {
	t.Helper()
	boltFile := filepath.Join(dir, "raft", boltLogFile)
	walMeta := filepath.Join(dir, "raft", walDir, metadb.FileName)
	want, other := boltFile, walMeta
	if kind == LogStoreWAL {
		want, other = walMeta, boltFile
	}
	if _, err := os.Stat(want); err != nil {
		t.Fatalf("%s log store: %v", kind, err)
	}
	if _, err := os.Stat(other); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s log store, but %s exists (%v)", kind, other, err)
	}
}

// emptyStoreFor makes node i of c restart on a new, empty store, so it has
// to rebuild its state from its own raft log.
func emptyStoreFor(c *testCluster, i int) {
	prev := c.newStore
	c.newStore = func(j int, dir string) (Backend, func()) {
		if j == i {
			return newFakeStore(), func() {}
		}
		return prev(j, dir)
	}
}

// Every log store keeps a node's log across a restart: a follower stopped
// after some writes comes back on an empty store, replays its own log,
// catches up with what was written while it was down and serves the same
// relationships as the leader.
func TestLogStoresKeepTheLogAcrossRestarts(t *testing.T) {
	for _, kind := range []string{LogStoreWAL, LogStoreBolt} {
		t.Run(kind, func(t *testing.T) {
			c := newTestCluster(t, 3, fakeStores(), func(cfg *Config) { cfg.LogStore = kind })
			for _, tn := range c.nodes {
				if got := logStoreKind(t, tn.n); got != kind {
					t.Fatalf("%s runs on %s, want %s", tn.cfg.NodeID, got, kind)
				}
				checkLogFiles(t, tn.cfg.Dir, kind)
			}
			ctx := context.Background()
			leader := c.waitLeader()
			var ids []string
			write := func(prefix string, n int) {
				t.Helper()
				for i := range n {
					id := fmt.Sprintf("%s%d", prefix, i)
					if _, err := writeOne(ctx, c.nodes[leader].n, id); err != nil {
						t.Fatal(err)
					}
					ids = append(ids, id)
				}
			}
			write("before", 20)
			f := c.follower(leader)
			rev, err := c.nodes[leader].n.LinearizableRevision(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.nodes[f].n.WaitApplied(ctx, rev); err != nil {
				t.Fatal(err)
			}
			last, err := c.nodes[f].n.logs.LastIndex()
			if err != nil {
				t.Fatal(err)
			}
			c.stop(f)
			write("while-down", 10)

			emptyStoreFor(c, f)
			tn := c.restart(f)
			if got := logStoreKind(t, tn.n); got != kind {
				t.Fatalf("after the restart %s runs on %s, want %s", tn.cfg.NodeID, got, kind)
			}
			if first, _ := tn.n.logs.FirstIndex(); first != 1 {
				t.Fatalf("restarted log starts at %d, want 1", first)
			}
			if got, _ := tn.n.logs.LastIndex(); got < last {
				t.Fatalf("restarted log ends at %d, want at least %d (its end before the stop)", got, last)
			}
			fence, err := writeOne(ctx, c.nodes[leader].n, "fence")
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, "fence")
			if err := tn.n.WaitApplied(ctx, fence); err != nil {
				t.Fatalf("restarted follower did not catch up: %v", err)
			}
			var want []string
			for _, id := range ids {
				want = append(want, keyOf(id).String())
			}
			slices.Sort(want)
			for _, i := range []int{leader, f} {
				if got := contents(c.nodes[i].st); !slices.Equal(got, want) {
					t.Fatalf("%s holds %d relationships, want the %d written", c.nodes[i].cfg.NodeID, len(got), len(want))
				}
			}
			if ms, err := tn.n.Status(); err != nil || len(ms) != 3 {
				t.Fatalf("restarted follower's status: %+v, %v", ms, err)
			}
		})
	}
}

// A data dir keeps the log store it has whatever is configured: an existing
// cluster restarts cleanly after the default changes. One holding both is
// refused.
func TestDataDirKeepsItsLogStore(t *testing.T) {
	for _, tc := range []struct{ created, configured string }{
		{LogStoreBolt, LogStoreWAL},
		{LogStoreBolt, ""}, // the default
		{LogStoreWAL, LogStoreBolt},
	} {
		t.Run(tc.created+"-then-"+cmp.Or(tc.configured, "default"), func(t *testing.T) {
			c := emptyCluster(t, fakeStores())
			cfg := c.config("solo")
			cfg.LogStore = tc.created
			c.start(0, cfg)
			c.waitLeader()
			ctx := context.Background()
			for i := range 5 {
				if _, err := writeOne(ctx, c.nodes[0].n, fmt.Sprintf("w%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			c.stop(0)

			emptyStoreFor(c, 0)
			c.nodes[0].cfg.LogStore = tc.configured
			tn := c.restart(0)
			if got := logStoreKind(t, tn.n); got != tc.created {
				t.Fatalf("configured %q on a %s dir: runs on %s", tc.configured, tc.created, got)
			}
			checkLogFiles(t, tn.cfg.Dir, tc.created)
			c.waitLeader()
			rev, err := writeOne(ctx, tn.n, "after")
			if err != nil {
				t.Fatal(err)
			}
			if err := tn.n.WaitApplied(ctx, rev); err != nil {
				t.Fatal(err)
			}
			if got := len(contents(tn.st)); got != 6 {
				t.Fatalf("%d relationships after the restart, want 6", got)
			}
		})
	}

	t.Run("both", func(t *testing.T) {
		c := emptyCluster(t, fakeStores())
		cfg := c.config("solo")
		cfg.GRPCAddr = "127.0.0.1:1"
		raftDir := filepath.Join(cfg.Dir, "raft")
		if err := os.MkdirAll(raftDir, 0o750); err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{LogStoreWAL, LogStoreBolt} {
			s, err := openLogStore(kind, raftDir, testLogSegmentSize, true, hclog.NewNullLogger())
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
		}
		_, err := NewNode(context.Background(), cfg, newFakeStore())
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "both") {
			t.Fatalf("NewNode on a dir with both log stores = %v, want ErrBadConfig", err)
		}
	})
}

// Both log stores, with and without fsync, hand back what was appended and
// the stable values after a reopen; raft-wal's entries span several of the
// smallest segments.
func TestOpenLogStore(t *testing.T) {
	entry := func(i uint64) []byte { return fmt.Appendf(bytes.Repeat([]byte{'.'}, 2<<10), "%d", i) }
	for _, kind := range []string{LogStoreWAL, LogStoreBolt} {
		for _, noSync := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/noSync=%v", kind, noSync), func(t *testing.T) {
				dir := t.TempDir()
				s, err := openLogStore(kind, dir, MinLogSegmentSize, noSync, hclog.NewNullLogger())
				if err != nil {
					t.Fatal(err)
				}
				for i := range uint64(100) {
					if err := s.StoreLog(&hraft.Log{Index: i + 1, Term: 1, Type: hraft.LogCommand, Data: entry(i)}); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if s, err = openLogStore(kind, dir, MinLogSegmentSize, noSync, hclog.NewNullLogger()); err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				first, err := s.FirstIndex()
				if err != nil {
					t.Fatal(err)
				}
				last, err := s.LastIndex()
				if err != nil || first != 1 || last != 100 {
					t.Fatalf("reopened log holds [%d, %d] (%v), want [1, 100]", first, last, err)
				}
				var l hraft.Log
				if err := s.GetLog(42, &l); err != nil || !bytes.Equal(l.Data, entry(41)) {
					t.Fatalf("GetLog(42) = %q, %v", l.Data, err)
				}
				if kind == LogStoreWAL {
					// 100 appends of 2 KiB fill three 64 KiB segments.
					segs, err := filepath.Glob(filepath.Join(dir, walDir, "*.wal"))
					if err != nil || len(segs) < 3 {
						t.Fatalf("%d segment files (%v), want at least 3", len(segs), err)
					}
				}
				if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
					t.Fatalf("CurrentTerm = %d, %v", term, err)
				}
			})
		}
	}
	if _, err := openLogStore("rocks", t.TempDir(), testLogSegmentSize, false, hclog.NewNullLogger()); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("openLogStore(rocks) = %v, want ErrBadConfig", err)
	}
}
