package raft

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitHalted polls until n's state machine has halted.
func waitHalted(t *testing.T, n *Node) error {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if err := n.Halted(); err != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("node %s did not halt within 20s", n.ID())
	return nil
}

// TestNodeHaltsOnUndecodableEntry: five bytes of garbage committed to the
// log (as a client of the raft port could once append) halt every node with
// an error naming the entry; the nodes refuse writes and linearizable reads,
// and a restarted node comes back up halted at the same entry instead of
// panicking on every start.
func TestNodeHaltsOnUndecodableEntry(t *testing.T) {
	c := newTestCluster(t, 3, realStores(t), nil)
	leader := c.waitLeader()
	ctx := context.Background()
	rev, err := writeOne(ctx, c.nodes[leader].n, "before")
	if err != nil {
		t.Fatal(err)
	}
	// Straight into raft: Apply would refuse the bytes.
	f := c.nodes[leader].n.raft.Apply([]byte{0xde, 0xad, 0xbe, 0xef, 0x01}, 10*time.Second)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	bad := f.Index()
	if bad <= uint64(rev) {
		t.Fatalf("garbage at index %d, not after the write at %d", bad, rev)
	}
	for i, tn := range c.nodes {
		herr := waitHalted(t, tn.n)
		if !errors.Is(herr, ErrUndecodableEntry) || !strings.Contains(herr.Error(), "log entry "+strconv.FormatUint(bad, 10)) {
			t.Fatalf("node %d: Halted() = %v, want ErrUndecodableEntry naming entry %d", i, herr, bad)
		}
		if got := tn.st.AppliedRevision(); uint64(got) != bad-1 {
			t.Fatalf("node %d: store at %d, want %d (everything before the bad entry)", i, got, bad-1)
		}
		if _, err := writeOne(ctx, tn.n, "after"); !errors.Is(err, ErrHalted) {
			t.Fatalf("node %d: write on a halted node = %v, want ErrHalted", i, err)
		}
		if _, err := tn.n.LinearizableRevision(ctx); !errors.Is(err, ErrHalted) {
			t.Fatalf("node %d: LinearizableRevision on a halted node = %v, want ErrHalted", i, err)
		}
	}
	// Restart a node: NewNode succeeds, replay halts at the same entry again.
	i := c.follower(leader)
	c.stop(i)
	tn := c.restart(i)
	herr := waitHalted(t, tn.n)
	if !strings.Contains(herr.Error(), "log entry "+strconv.FormatUint(bad, 10)) {
		t.Fatalf("restarted node: Halted() = %v, want it to name entry %d", herr, bad)
	}
	if got := realContents(tn.st); len(got) != 1 || got[0] != keyOf("before").String() {
		t.Fatalf("restarted node's store holds %v", got)
	}
}
