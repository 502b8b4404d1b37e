package raft

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestJoinLearnsClusterID: a node joining without a cluster id takes the
// one of the member it joins, over loopback; one given another id is
// refused before it joins.
func TestJoinLearnsClusterID(t *testing.T) {
	c := emptyCluster(t, fakeStores())
	first := c.config("n0")
	first.ClusterID = "c0ffee"
	c.start(0, first)
	c.waitLeader()

	joiner := c.config("n1")
	joiner.ClusterID = ""
	joiner.Join = []string{c.nodes[0].cfg.GRPCAddr}
	tn := c.start(1, joiner)
	if got := tn.n.ClusterID(); got != "c0ffee" {
		t.Fatalf("joined node's cluster id = %q, want the member's %q", got, "c0ffee")
	}
	// It reports the id it learned to the next joiner.
	cl := NewClient(testKey)
	defer cl.Close()
	if got, err := cl.clusterID(context.Background(), tn.cfg.GRPCAddr); err != nil || got != "c0ffee" {
		t.Fatalf("the joined node reports cluster id %q, %v", got, err)
	}

	stranger := c.config("n2")
	stranger.ClusterID = "other"
	stranger.GRPCAddr = "127.0.0.1:1"
	stranger.Join = []string{tn.cfg.GRPCAddr}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := NewNode(ctx, stranger, newFakeStore())
	if err == nil {
		n.Close()
		t.Fatal("a node with another cluster id joined")
	}
	if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), `"other"`) || !strings.Contains(err.Error(), `"c0ffee"`) {
		t.Fatalf("joining with another cluster id = %v, want ErrBadConfig naming both ids", err)
	}
	ms, err := c.nodes[0].n.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("after the refused join the cluster has %d members: %+v", len(ms), ms)
	}

	// Restarted without an id (say it was lost before being kept), the
	// joined node asks again.
	c.stop(1)
	tn = c.restart(1)
	if got := tn.n.ClusterID(); got != "c0ffee" {
		t.Fatalf("restarted node's cluster id = %q", got)
	}
}
