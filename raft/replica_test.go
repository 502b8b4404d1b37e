package raft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// addReplica starts node i as a read replica joining via node 0.
func (c *testCluster) addReplica(i int, tweak func(*Config)) *testNode {
	c.t.Helper()
	cfg := c.config(fmt.Sprintf("r%d", i))
	cfg.Join = []string{c.nodes[0].cfg.GRPCAddr}
	cfg.ReadReplica = true
	if tweak != nil {
		tweak(&cfg)
	}
	return c.start(i, cfg)
}

// pollUntil polls cond until it holds or 20s pass.
func pollUntil(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still not true after 20s: %v", what, err)
}

func sameContents(a, b Backend) error {
	got, want := contents(a), contents(b)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		return fmt.Errorf("%d relationships, want %d", len(got), len(want))
	}
	return nil
}

func memberByID(ms []Member, id string) (Member, bool) {
	for _, m := range ms {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// A read replica joins as a non-voter, catches up from a snapshot when the
// log it needs has been compacted, leaves when it closes and, restarted on
// its data, joins again and catches up from a snapshot once more.
func TestReadReplicaCatchesUpFromSnapshot(t *testing.T) {
	snapTweak := func(cfg *Config) {
		cfg.SnapshotThreshold = 32
		cfg.TrailingLogs = 8
		cfg.SnapshotInterval = 50 * time.Millisecond
	}
	c := newTestCluster(t, 3, realStores(t), snapTweak)
	leader := c.waitLeader()
	ctx := context.Background()
	ln := c.nodes[leader].n
	for i := range 100 {
		if _, err := writeOne(ctx, ln, fmt.Sprintf("before%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ln.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if first, _ := ln.logs.FirstIndex(); first <= 2 {
		t.Fatalf("log not compacted: first index %d", first)
	}
	r := c.addReplica(3, snapTweak)
	if r.n.IsVoter() {
		t.Fatal("the read replica joined as a voter")
	}
	ms, err := ln.Status()
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := memberByID(ms, r.cfg.NodeID); !ok || m.Voter || m.Role != RoleReplica {
		t.Fatalf("leader's status of the replica: %+v (found %v), want a non-voter with role %q", m, ok, RoleReplica)
	}
	pollUntil(t, "replica holds the leader's relationships", func() error { return sameContents(r.st, c.nodes[leader].st) })

	// It leaves when it closes...
	c.stop(3)
	pollUntil(t, "replica left the configuration", func() error {
		ms, err := ln.Status()
		if _, ok := memberByID(ms, r.cfg.NodeID); ok || err != nil {
			return fmt.Errorf("still a member (%v)", err)
		}
		return nil
	})
	for i := range 100 {
		if _, err := writeOne(ctx, ln, fmt.Sprintf("after%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ln.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if first, _ := ln.logs.FirstIndex(); first <= uint64(r.n.LatestRevision())+1 {
		t.Fatalf("log not compacted past the replica: first index %d, replica at %d", first, r.n.LatestRevision())
	}
	// ...and joins again, still as a non-voter, on restart.
	r = c.restart(3)
	if r.n.IsVoter() {
		t.Fatal("the restarted read replica is a voter")
	}
	pollUntil(t, "restarted replica holds the leader's relationships", func() error { return sameContents(r.st, c.nodes[leader].st) })
	// Writes through the replica are forwarded to the leader.
	wrev, err := writeOne(ctx, r.n, "through-replica")
	if err != nil {
		t.Fatal(err)
	}
	// (the first leader may have lost its leadership under load meanwhile)
	if err := c.nodes[leader].n.WaitApplied(ctx, wrev); err != nil {
		t.Fatal(err)
	}
	if !contains(contents(c.nodes[leader].st), keyOf("through-replica").String()) {
		t.Fatal("a write through the replica did not reach the leader")
	}
}

// Replicas never vote: 3 voters and 2 replicas lose quorum when 2 voters
// stop (5 members are alive-or-not, but only voters count), and the
// replicas neither elect a leader nor become candidates; they keep their
// data for reads.
func TestReadReplicasNeverVote(t *testing.T) {
	c := newTestCluster(t, 3, realStores(t), func(cfg *Config) { cfg.ApplyTimeout = 2 * time.Second })
	leader := c.waitLeader()
	ctx := context.Background()
	r1, r2 := c.addReplica(3, nil), c.addReplica(4, nil)
	rev, err := writeOne(ctx, c.nodes[leader].n, "before")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*testNode{r1, r2} {
		if err := r.n.WaitApplied(ctx, rev); err != nil {
			t.Fatal(err)
		}
	}
	f := c.follower(leader, 3, 4)
	c.stop(leader)
	c.stop(f)
	// A voter that took over while the others stopped steps down once its
	// lease lapses; from then on, for several election timeouts, nobody may
	// lead and the replicas stay followers.
	pollUntil(t, "no leader", func() error {
		for _, tn := range c.running() {
			if tn.n.IsLeader() {
				return fmt.Errorf("%s leads", tn.cfg.NodeID)
			}
		}
		return nil
	})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, tn := range c.running() {
			if st := tn.n.State(); st == RoleLeader || (st == RoleCandidate && !tn.n.IsVoter()) {
				t.Fatalf("%s is %s with 1 of 3 voters alive", tn.cfg.NodeID, st)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := writeOne(wctx, r1.n, "lost"); err == nil {
		t.Fatal("a write committed with 1 of 3 voters alive (the replicas voted)")
	}
	if _, err := r2.n.LinearizableRevision(wctx); err == nil {
		t.Fatal("a linearizable read succeeded without quorum")
	}
	for _, r := range []*testNode{r1, r2} {
		if !contains(contents(r.st), keyOf("before").String()) || r.n.LatestRevision() < rev {
			t.Fatalf("replica %s lost its data", r.cfg.NodeID)
		}
		if id, _ := r.n.Leader(); id != "" {
			t.Fatalf("replica %s still names leader %s", r.cfg.NodeID, id)
		}
	}
}

// Promote and demote change suffrage through any member, refuse to demote
// the last voter, and a leader demoting itself hands over first.
func TestPromoteDemote(t *testing.T) {
	c := newTestCluster(t, 1, realStores(t), nil)
	c.waitLeader()
	r := c.addReplica(1, nil)
	ctx := context.Background()
	cl := NewClient(testKey)
	defer cl.Close()

	if err := cl.Promote(ctx, r.cfg.GRPCAddr, "nobody"); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("Promote(nobody) = %v, want ErrUnknownNode", err)
	}
	if err := NewClient("wrong").Promote(ctx, r.cfg.GRPCAddr, r.cfg.NodeID); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Promote with a wrong key = %v, want ErrUnauthenticated", err)
	}
	// Promote the replica, asking the replica itself (forwarded).
	if err := cl.Promote(ctx, r.cfg.GRPCAddr, r.cfg.NodeID); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "promoted replica votes", func() error {
		if !r.n.IsVoter() {
			return errors.New("not a voter")
		}
		return nil
	})
	if err := cl.Promote(ctx, r.cfg.GRPCAddr, r.cfg.NodeID); err != nil {
		t.Fatalf("promoting a voter again: %v", err)
	}
	// A promoted replica restarting (still configured as a replica) stays
	// a voter: it neither leaves when it stops nor is demoted by its join.
	c.stop(1)
	r = c.restart(1)
	if !r.n.IsVoter() {
		t.Fatal("the promoted replica is not a voter after a restart")
	}
	// Demote the leader: it hands over, the other demotes it.
	n0 := c.nodes[0]
	if err := cl.Demote(ctx, r.cfg.GRPCAddr, n0.cfg.NodeID); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "demoted leader is a non-voter and the other leads", func() error {
		if n0.n.IsVoter() || !r.n.IsLeader() {
			return fmt.Errorf("n0 voter %v, r1 leader %v", n0.n.IsVoter(), r.n.IsLeader())
		}
		return nil
	})
	// The only voter left cannot be demoted.
	err := cl.Demote(ctx, n0.cfg.GRPCAddr, r.cfg.NodeID)
	if !errors.Is(err, ErrMembershipRefused) || !strings.Contains(err.Error(), "only voter") {
		t.Fatalf("demoting the only voter = %v, want ErrMembershipRefused", err)
	}
	// Writes go on through the demoted node.
	if _, err := writeOne(ctx, n0.n, "after-demote"); err != nil {
		t.Fatal(err)
	}
	ps, err := cl.Replication(ctx, n0.cfg.GRPCAddr)
	if err != nil || len(ps) != 2 {
		t.Fatalf("Replication = %+v, %v", ps, err)
	}
	for _, p := range ps {
		if p.Err != "" || p.Applied == 0 {
			t.Fatalf("progress of %s: %+v", p.ID, p)
		}
		if want := p.ID == r.cfg.NodeID; p.Voter != want {
			t.Fatalf("%s voter = %v, want %v", p.ID, p.Voter, want)
		}
	}
}

// A replica keeps applying (and serving) while the leader changes: writes
// through whichever node leads reach it, before and after.
func TestReadReplicaFollowsLeaderChange(t *testing.T) {
	c := newTestCluster(t, 3, realStores(t), nil)
	leader := c.waitLeader()
	r := c.addReplica(3, nil)
	ctx := context.Background()

	var acked sync.Map
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // writes through the replica, forwarded to whoever leads
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			id := fmt.Sprintf("w%d", i)
			if rev, err := writeOne(wctx, r.n, id); err == nil {
				acked.Store(id, rev)
			}
			cancel()
		}
	}()
	waitAcked := func(n int) {
		pollUntil(t, fmt.Sprintf("%d writes acknowledged", n), func() error {
			cnt := 0
			acked.Range(func(any, any) bool { cnt++; return true })
			if cnt < n {
				return fmt.Errorf("%d acknowledged", cnt)
			}
			return nil
		})
	}
	waitAcked(20)
	c.stop(leader)
	nl := c.waitLeader()
	if nl == leader {
		t.Fatal("the stopped node still leads")
	}
	before := r.n.LatestRevision()
	waitAcked(80)
	stop.Store(true)
	wg.Wait()
	if r.n.LatestRevision() <= before {
		t.Fatalf("replica did not apply after the leader change (still at %d)", before)
	}
	if _, err := r.n.LinearizableRevision(ctx); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, k := range contents(r.st) {
		have[k] = true
	}
	acked.Range(func(k, _ any) bool {
		if !have[keyOf(k.(string)).String()] {
			t.Errorf("acknowledged write %s missing on the replica", k)
		}
		return true
	})
	pollUntil(t, "replica matches the new leader", func() error { return sameContents(r.st, c.nodes[nl].st) })
}

// A raft address advertised by host name stays a name in the cluster's
// configuration (peers resolve it at every dial), so a member whose IP
// changes across restarts, as a Kubernetes pod's does, keeps its address.
func TestAdvertisedHostNameKept(t *testing.T) {
	c := newTestCluster(t, 1, realStores(t), nil)
	c.waitLeader()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := c.config("named")
	cfg.Join = []string{c.nodes[0].cfg.GRPCAddr}
	cfg.RaftAddr = fmt.Sprintf("127.0.0.1:%d", port)
	cfg.AdvertiseAddr = fmt.Sprintf("localhost:%d", port)
	tn := c.start(1, cfg)
	if got := tn.n.RaftAddr(); got != cfg.AdvertiseAddr {
		t.Fatalf("RaftAddr() = %q, want the name %q", got, cfg.AdvertiseAddr)
	}
	ms, err := c.nodes[0].n.Status()
	if m, ok := memberByID(ms, "named"); err != nil || !ok || m.RaftAddr != cfg.AdvertiseAddr {
		t.Fatalf("leader's configuration has %+v (%v), want raft address %q", m, err, cfg.AdvertiseAddr)
	}
	// The leader reaches it by name: a write through it commits and applies.
	rev, err := writeOne(context.Background(), tn.n, "by-name")
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.n.WaitApplied(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	// Without a cluster secret (raft's TCP transport needs an IP) and for
	// malformed addresses, the rules are as before.
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{AdvertiseAddr: "localhost:7000"}, "an IP"},
		{Config{AdvertiseAddr: "localhost:7000", ClusterSecret: []byte(testSecret)}, "localhost:7000"},
		{Config{AdvertiseAddr: "10.0.0.1:7000", ClusterSecret: []byte(testSecret)}, "10.0.0.1:7000"},
		{Config{AdvertiseAddr: "localhost", ClusterSecret: []byte(testSecret)}, "error"},
		{Config{AdvertiseAddr: "localhost:0", ClusterSecret: []byte(testSecret)}, "error"},
	} {
		a, err := advertiseAddr(tc.cfg)
		got := "error"
		if err == nil {
			got = a.String()
			if host, _, _ := net.SplitHostPort(got); tc.want == "an IP" && net.ParseIP(host) != nil {
				got = "an IP"
			}
		}
		if got != tc.want {
			t.Errorf("advertiseAddr(%q, secret %v) = %q (%v), want %q", tc.cfg.AdvertiseAddr, tc.cfg.ClusterSecret != nil, got, err, tc.want)
		}
	}
}
