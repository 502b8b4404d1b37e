package raft

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/ambit-authz/ambit/tuple"
)

// TestLeaderHandsOverOnClose: a leader that stops transfers its leadership
// first. The followers here would wait a minute before electing on their
// own, so a new leader within waitLeader's 15 s can only come from the
// hand-off.
func TestLeaderHandsOverOnClose(t *testing.T) {
	c := newTestCluster(t, 3, fakeStores(), nil)
	leader := c.waitLeader()
	for i, tn := range c.nodes {
		if i == leader {
			continue
		}
		rc := tn.n.raft.ReloadableConfig()
		rc.HeartbeatTimeout, rc.ElectionTimeout = time.Minute, time.Minute
		if err := tn.n.raft.ReloadConfig(rc); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := writeOne(context.Background(), c.nodes[leader].n, "before"); err != nil {
		t.Fatal(err)
	}
	c.stop(leader)
	next := c.waitLeader()
	rev, err := writeOne(context.Background(), c.nodes[c.follower(leader, next)].n, "after")
	if err != nil {
		t.Fatalf("write through the remaining follower after the hand-off: %v", err)
	}
	if err := c.nodes[next].n.WaitApplied(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	if !c.nodes[next].st.(*fakeStore).has(keyOf("before")) {
		t.Fatal("the new leader lacks the write acknowledged before the hand-off")
	}
}

// TestForwardLargeImport: a follower forwards an import of more than 4 MiB
// (gRPC's default message limit, which the test servers keep) to the leader.
func TestForwardLargeImport(t *testing.T) {
	// A raft entry of megabytes is slow under the race detector.
	// Nodes decoding and logging megabytes under the race detector on a
	// loaded box can miss heartbeats, and a leader out of touch with a quorum
	// for LeaderLeaseTimeout steps down mid-commit; this test is about
	// forwarding, not elections, so every timeout is generous.
	c := newTestCluster(t, 3, fakeStores(), func(cfg *Config) {
		cfg.ApplyTimeout = 60 * time.Second
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 3*time.Second, 3*time.Second, 3*time.Second
	})
	leader := c.waitLeader()
	f := c.follower(leader)
	long := strings.Repeat("x", 200)
	rels := make([]tuple.Relationship, 19000)
	for i := range rels {
		rels[i] = rel("doc", fmt.Sprintf("%s-%d", long, i), "viewer", "user", "ana")
	}
	cmd := ImportCommand(rels)
	data, err := Encode(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) <= 4<<20 {
		t.Fatalf("the import encodes to only %d bytes", len(data))
	}
	ctx := context.Background()
	rev, err := c.nodes[f].n.Propose(ctx, cmd)
	if err != nil {
		t.Fatalf("forwarded import of %d bytes: %v", len(data), err)
	}
	if err := c.nodes[f].n.WaitApplied(ctx, rev); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{leader, f} {
		st := c.nodes[i].st.(*fakeStore)
		if !st.has(rels[0].Key()) || !st.has(rels[len(rels)-1].Key()) || len(st.keys()) != len(rels) {
			t.Fatalf("%s holds %d relationships after the import, want %d", c.nodes[i].cfg.NodeID, len(st.keys()), len(rels))
		}
	}

	// The pieces are not read without the key.
	bad := NewClient("wrong")
	defer bad.Close()
	if _, err := bad.forward(ctx, c.nodes[leader].cfg.GRPCAddr, cmd); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("large forward with a wrong key = %v, want ErrUnauthenticated", err)
	}
}

// TestReplicationIsNotPipelined: the TCP transport refuses pipelined
// replication (see NewNode: raft's pipeline can wedge replication to a
// follower for good, and then Shutdown hangs).
func TestReplicationIsNotPipelined(t *testing.T) {
	c := newTestCluster(t, 2, fakeStores(), nil)
	leader := c.waitLeader()
	other := c.nodes[1-leader]
	_, err := c.nodes[leader].n.trans.AppendEntriesPipeline(hraft.ServerID(other.cfg.NodeID), hraft.ServerAddress(other.n.RaftAddr()))
	if !errors.Is(err, hraft.ErrPipelineReplicationNotSupported) {
		t.Fatalf("AppendEntriesPipeline = %v, want ErrPipelineReplicationNotSupported", err)
	}
}
