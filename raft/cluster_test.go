package raft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

const testKey = "s3cret-cluster-key"

// testSecret keys the test clusters: their raft traffic runs over the
// authenticated stream layer, as `ambit serve` with a secret does.
const testSecret = "test-cluster-secret-0123456789abcdefghijklmnop"

// testNode is a Node with a real gRPC server on loopback.
type testNode struct {
	n       *Node
	st      Backend
	closeSt func()
	cfg     Config
	srv     *grpc.Server
}

type testCluster struct {
	t     testing.TB
	nodes []*testNode
	// newStore opens the store of node i under dir; called again on
	// restart (a durable store keeps its data). The func closes it.
	newStore func(i int, dir string) (Backend, func())
	base     string
	mu       sync.Mutex // guards nodes against concurrent writers
}

func fakeStores() func(int, string) (Backend, func()) {
	var mu sync.Mutex
	stores := map[int]*fakeStore{}
	return func(i int, _ string) (Backend, func()) {
		mu.Lock()
		defer mu.Unlock()
		if stores[i] == nil {
			stores[i] = newFakeStore()
		}
		return stores[i], func() {}
	}
}

// testLogSegmentSize keeps the raft-wal segments of test nodes small: the
// default 64 MiB, allocated with fsync per node, dominated the package's
// test time.
const testLogSegmentSize = 1 << 20

// testSchemaGuard refuses every schema text that says "orphan".
func testSchemaGuard(rev tuple.Revision, _ time.Time, text string) error {
	if strings.Contains(text, "orphan") {
		return fmt.Errorf("schema at revision %d would orphan doc#viewer", rev)
	}
	return nil
}

func (c *testCluster) config(id string) Config {
	dir, err := os.MkdirTemp(c.base, id+"-")
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := Config{
		NodeID:        id,
		RaftAddr:      "127.0.0.1:0",
		Dir:           dir,
		PresharedKeys: []string{testKey},
		ClusterSecret: []byte(testSecret),
		ClusterID:     "test-cluster",
		ApplyTimeout:  5 * time.Second,
		// raft-wal writes each segment's whole size when it creates it.
		LogSegmentSize: testLogSegmentSize,
		SchemaGuard:    testSchemaGuard,
	}
	if os.Getenv("AMBIT_RAFT_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

// start opens a node from cfg; cfg.GRPCAddr empty picks a free port.
func (c *testCluster) start(i int, cfg Config) *testNode {
	c.t.Helper()
	addr := cfg.GRPCAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lis net.Listener
	var err error
	for try := 0; try < 50; try++ { // a restarted node reuses its port
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	cfg.GRPCAddr = lis.Addr().String()
	st, closeSt := c.newStore(i, cfg.Dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := NewNode(ctx, cfg, st)
	if err != nil {
		lis.Close()
		closeSt()
		c.t.Fatalf("NewNode %s: %v", cfg.NodeID, err)
	}
	cfg.RaftAddr = n.RaftAddr() // restart on the same address
	srv := grpc.NewServer()
	RegisterService(srv, n)
	go srv.Serve(lis)
	tn := &testNode{n: n, st: st, closeSt: closeSt, cfg: cfg, srv: srv}
	c.mu.Lock()
	for len(c.nodes) <= i {
		c.nodes = append(c.nodes, nil)
	}
	c.nodes[i] = tn
	c.mu.Unlock()
	return tn
}

func (c *testCluster) stop(i int) {
	tn := c.nodes[i]
	if tn == nil {
		return
	}
	tn.srv.Stop()
	if err := tn.n.Close(); err != nil {
		c.t.Logf("close %s: %v", tn.cfg.NodeID, err)
	}
	tn.closeSt()
}

func (c *testCluster) restart(i int) *testNode {
	cfg := c.nodes[i].cfg
	return c.start(i, cfg)
}

func (c *testCluster) close() {
	for i, tn := range c.nodes {
		if tn != nil && tn.n.ctx.Err() == nil {
			c.stop(i)
		}
	}
	os.RemoveAll(c.base)
}

// emptyCluster makes a cluster with no nodes; its directories are removed
// after every node and store is closed.
func emptyCluster(t testing.TB, newStore func(int, string) (Backend, func())) *testCluster {
	base, err := os.MkdirTemp("", "ambit-raft-test-")
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, newStore: newStore, base: base}
	t.Cleanup(c.close)
	return c
}

func newTestCluster(t testing.TB, size int, newStore func(int, string) (Backend, func()), tweak func(*Config)) *testCluster {
	t.Helper()
	c := emptyCluster(t, newStore)
	for i := range size {
		cfg := c.config(fmt.Sprintf("n%d", i))
		if i > 0 {
			cfg.Join = []string{c.nodes[0].cfg.GRPCAddr}
		}
		if tweak != nil {
			tweak(&cfg)
		}
		c.start(i, cfg)
		if i == 0 {
			c.waitLeader()
		}
	}
	return c
}

func (c *testCluster) running() []*testNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*testNode
	for _, tn := range c.nodes {
		if tn != nil && tn.n.ctx.Err() == nil {
			out = append(out, tn)
		}
	}
	return out
}

// waitLeader waits until a running node leads and knows its own gRPC
// address (tests may poll; the package never does).
func (c *testCluster) waitLeader() int {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for i, tn := range c.nodes {
			if tn != nil && tn.n.ctx.Err() == nil && tn.n.IsLeader() {
				if _, addr := tn.n.Leader(); addr != "" {
					return i
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("no leader within 15s")
	return -1
}

func (c *testCluster) follower(not ...int) int {
	for i, tn := range c.nodes {
		if tn != nil && tn.n.ctx.Err() == nil && !tn.n.IsLeader() && !containsInt(not, i) {
			return i
		}
	}
	c.t.Fatal("no follower")
	return -1
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func keyOf(id string) tuple.Key { return rel("doc", id, "viewer", "user", "ana").Key() }

func writeOne(ctx context.Context, n *Node, id string) (tuple.Revision, error) {
	return n.Propose(ctx, WriteCommand([]store.Update{touch(id)}, nil))
}

// contents lists the relationship keys a store holds.
func contents(b Backend) []string {
	switch s := b.(type) {
	case *fakeStore:
		return s.keys()
	}
	return realContents(b)
}

func TestClusterWritesThroughFollower(t *testing.T) {
	c := newTestCluster(t, 3, realStores(t), nil)
	leader := c.waitLeader()
	f1 := c.follower(leader)
	f2 := c.follower(leader, f1)
	ctx := context.Background()

	rev, err := writeOne(ctx, c.nodes[f1].n, "via-follower")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[f2].n.WaitApplied(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if got := contents(c.nodes[f2].st); !contains(got, keyOf("via-follower").String()) {
		t.Fatalf("other follower after WaitApplied(%d): %v", rev, got)
	}

	// A domain failure crosses the wire with its sentinel.
	_, err = c.nodes[f1].n.Propose(ctx, WriteCommand([]store.Update{create("via-follower")}, nil))
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("duplicate create via follower = %v, want ErrAlreadyExists", err)
	}
	res, err := c.nodes[f2].n.Apply(ctx, DeleteCommand(tuple.Filter{ResourceType: "doc"}, 0, false,
		[]store.Precondition{{MustMatch: true, Filter: tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"via-follower"}}}}))
	if err != nil || res.Deleted != 1 {
		t.Fatalf("delete via follower: %+v %v", res, err)
	}
	_, err = c.nodes[f2].n.Propose(ctx, DeleteCommand(tuple.Filter{ResourceType: "doc"}, 0, false,
		[]store.Precondition{{MustMatch: true, Filter: tuple.Filter{ResourceType: "doc"}}}))
	if !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("failed precondition via follower = %v", err)
	}

	// Member-table commands are not for clients.
	if _, err := c.nodes[f1].n.Propose(ctx, Command{Kind: KindSetMember, Member: MemberInfo{ID: "evil", RaftAddr: "x", GRPCAddr: "y"}}); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("proposing a member command = %v, want ErrBadCommand", err)
	}
	if _, err := c.nodes[f1].n.Propose(ctx, DeleteCommand(tuple.Filter{}, -5, false, nil)); !errors.Is(err, ErrBadCommand) || !strings.Contains(err.Error(), "delete limit -5") {
		t.Fatalf("proposing a negative limit = %v, want ErrBadCommand naming the limit", err)
	}

	// The schema guard runs inside Apply on every replica; its refusal
	// reaches a follower's caller as ErrSchemaRefused.
	if _, err := c.nodes[f1].n.Propose(ctx, SchemaCommand("orphan")); !errors.Is(err, ErrSchemaRefused) || !strings.Contains(err.Error(), "would orphan") {
		t.Fatalf("refused schema via follower = %v", err)
	}
	if _, err := c.nodes[f1].n.Propose(ctx, SchemaCommand("definition doc {}")); err != nil {
		t.Fatalf("accepted schema via follower = %v", err)
	}

	// Read-your-writes on any node through LinearizableRevision.
	rev, err = writeOne(ctx, c.nodes[leader].n, "lin")
	if err != nil {
		t.Fatal(err)
	}
	lr, err := c.nodes[f2].n.LinearizableRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lr < rev || c.nodes[f2].n.LatestRevision() < rev {
		t.Fatalf("LinearizableRevision = %d (latest %d), want >= %d", lr, c.nodes[f2].n.LatestRevision(), rev)
	}
	if !contains(contents(c.nodes[f2].st), keyOf("lin").String()) {
		t.Fatal("linearizable revision reached without the write")
	}

	// Status agrees on every node.
	for _, tn := range c.nodes {
		ms, err := tn.n.Status()
		if err != nil {
			t.Fatal(err)
		}
		leaders := 0
		for _, m := range ms {
			if m.GRPCAddr == "" || !m.Voter {
				t.Fatalf("%s sees incomplete member %+v", tn.cfg.NodeID, m)
			}
			if m.Role == "leader" {
				leaders++
				if m.ID != c.nodes[leader].cfg.NodeID {
					t.Fatalf("%s reports leader %s", tn.cfg.NodeID, m.ID)
				}
			}
		}
		if len(ms) != 3 || leaders != 1 {
			t.Fatalf("%s status: %+v", tn.cfg.NodeID, ms)
		}
	}
	id, addr := c.nodes[f1].n.Leader()
	if id != c.nodes[leader].cfg.NodeID || addr != c.nodes[leader].cfg.GRPCAddr {
		t.Fatalf("Leader() = %s %s", id, addr)
	}
	if c.nodes[leader].n.State() != RoleLeader || c.nodes[f1].n.State() != RoleFollower {
		t.Fatal("State() disagrees with IsLeader")
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestClusterMembership(t *testing.T) {
	c := newTestCluster(t, 3, realStores(t), nil)
	leader := c.waitLeader()
	f := c.follower(leader)
	ctx := context.Background()
	other := c.nodes[c.follower(leader, f)].cfg

	// An identical re-join (through a follower) is fine.
	if err := c.nodes[f].n.Join(ctx, other.NodeID, other.RaftAddr, other.GRPCAddr); err != nil {
		t.Fatalf("identical re-join: %v", err)
	}
	for _, tc := range []struct{ id, raft, grpc, want string }{
		{other.NodeID, "127.0.0.1:1", "127.0.0.1:2", "already a member"},
		{"new", other.RaftAddr, "127.0.0.1:2", "raft address"},
		{"new", "127.0.0.1:1", other.GRPCAddr, "gRPC address"},
	} {
		err := c.nodes[f].n.Join(ctx, tc.id, tc.raft, tc.grpc)
		if !errors.Is(err, ErrNodeExists) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("Join(%s, %s, %s) = %v, want ErrNodeExists naming %q", tc.id, tc.raft, tc.grpc, err, tc.want)
		}
	}
	// A client with the wrong key is refused; the right key works.
	bad := NewClient("wrong")
	defer bad.Close()
	if _, err := bad.Status(ctx, other.GRPCAddr); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Status with wrong key = %v", err)
	}
	good := NewClient(testKey)
	defer good.Close()
	ms, err := good.Status(ctx, other.GRPCAddr)
	if err != nil || len(ms) != 3 {
		t.Fatalf("Status = %v, %v", ms, err)
	}
	if err := good.Remove(ctx, other.GRPCAddr, "nobody"); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("Remove(nobody) = %v", err)
	}
	// Remove a follower through another follower; writes still commit.
	if err := good.Remove(ctx, c.nodes[f].cfg.GRPCAddr, other.NodeID); err != nil {
		t.Fatal(err)
	}
	ms, _ = c.nodes[leader].n.Status()
	if len(ms) != 2 {
		t.Fatalf("after remove: %+v", ms)
	}
	if _, err := writeOne(ctx, c.nodes[f].n, "after-remove"); err != nil {
		t.Fatal(err)
	}
}

func TestSingleNodeBootstrapAndRestart(t *testing.T) {
	c := emptyCluster(t, realStores(t))
	cfg := c.config("solo")
	c.start(0, cfg)
	c.waitLeader()
	ctx := context.Background()
	for i := range 5 {
		if _, err := writeOne(ctx, c.nodes[0].n, fmt.Sprintf("w%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	before := c.nodes[0].n.LatestRevision()
	closed := c.nodes[0].n
	waitErr := make(chan error, 1)
	go func() { waitErr <- closed.WaitApplied(context.Background(), before+1000) }()
	c.stop(0)
	select {
	case err := <-waitErr:
		if err == nil {
			t.Fatal("WaitApplied past the end returned nil when the node closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitApplied did not return when the node closed")
	}
	if _, err := writeOne(ctx, closed, "closed"); !errors.Is(err, ErrClosed) {
		t.Fatalf("write on a closed node = %v, want ErrClosed", err)
	}
	// Restart with Join set: ignored because the dir has raft state.
	c.nodes[0].cfg.Join = []string{"127.0.0.1:1"}
	c.restart(0)
	c.waitLeader()
	rev, err := writeOne(ctx, c.nodes[0].n, "after")
	if err != nil {
		t.Fatal(err)
	}
	if rev <= before {
		t.Fatalf("revision after restart %d <= %d", rev, before)
	}
	if got := len(contents(c.nodes[0].st)); got != 6 {
		t.Fatalf("%d relationships after restart, want 6", got)
	}

	// A fresh (empty, e.g. in-memory) store on the same raft dir is rebuilt
	// from the log.
	c.stop(0)
	c.newStore = func(int, string) (Backend, func()) {
		st := openRealStore(t, "", true)
		return st, func() { st.Close() }
	}
	c.restart(0)
	c.waitLeader()
	if err := c.nodes[0].n.WaitApplied(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if got := len(contents(c.nodes[0].st)); got != 6 {
		t.Fatalf("%d relationships after rebuilding from the log, want 6", got)
	}
}

func TestFollowerCatchesUpFromLogAndSnapshot(t *testing.T) {
	c := newTestCluster(t, 3, realStores(t), func(cfg *Config) {
		cfg.SnapshotThreshold = 32
		cfg.TrailingLogs = 8
		cfg.SnapshotInterval = 50 * time.Millisecond
	})
	leader := c.waitLeader()
	f := c.follower(leader)
	ctx := context.Background()

	// From the log: stop, write a few, restart.
	c.stop(f)
	for i := range 5 {
		if _, err := writeOne(ctx, c.nodes[leader].n, fmt.Sprintf("log%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	tn := c.restart(f)
	lr, err := tn.n.LinearizableRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lr < c.nodes[leader].n.LatestRevision()-1 {
		t.Fatalf("restarted follower at %d", lr)
	}
	if got := contents(tn.st); !contains(got, keyOf("log4").String()) {
		t.Fatalf("restarted follower missing log4: %v", got)
	}

	// From a snapshot: stop, write past the trailing logs, compact, restart.
	c.stop(f)
	for i := range 100 {
		if _, err := writeOne(ctx, c.nodes[leader].n, fmt.Sprintf("snap%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.nodes[leader].n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, _ := c.nodes[leader].n.logs.FirstIndex()
	if first <= uint64(tn.n.LatestRevision())+1 {
		t.Fatalf("log not compacted past the follower: first index %d, follower at %d", first, tn.n.LatestRevision())
	}
	tn = c.restart(f)
	if _, err := tn.n.LinearizableRevision(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := contents(tn.st), contents(c.nodes[leader].st); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("follower after snapshot install has %d relationships, leader %d", len(got), len(want))
	}
	// The member table came with the snapshot: the follower can forward.
	if _, err := writeOne(ctx, tn.n, "forwarded-after-snapshot"); err != nil {
		t.Fatal(err)
	}
	// And it restarts again on top of the installed snapshot (whose store
	// state may be newer than raft's snapshot index).
	c.stop(f)
	tn = c.restart(f)
	if _, err := writeOne(ctx, tn.n, "after-second-restart"); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.n.LinearizableRevision(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := contents(tn.st), contents(c.nodes[leader].st); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after a second restart the follower has %d relationships, leader %d", len(got), len(want))
	}
}

func TestQuorumLossFailsFast(t *testing.T) {
	for _, survivor := range []string{"leader", "follower"} {
		t.Run(survivor, func(t *testing.T) {
			c := newTestCluster(t, 3, realStores(t), func(cfg *Config) { cfg.ApplyTimeout = 2 * time.Second })
			leader := c.waitLeader()
			f := c.follower(leader)
			keep := leader
			c.stop(c.follower(leader, f))
			if survivor == "leader" {
				c.stop(f)
			} else {
				c.stop(leader)
				keep = f
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			start := time.Now()
			_, err := writeOne(ctx, c.nodes[keep].n, "lost")
			if err == nil {
				t.Fatal("write without quorum reported success")
			}
			if !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrForward) && !errors.Is(err, ErrLeadershipLost) {
				t.Fatalf("write without quorum: %v", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v, want within the 2s apply timeout", d)
			}
			t.Logf("without quorum after %v: %v", time.Since(start).Round(time.Millisecond), err)
			if _, err := c.nodes[keep].n.LinearizableRevision(ctx); err == nil {
				t.Fatal("linearizable read without quorum succeeded")
			}
			if contains(contents(c.nodes[keep].st), keyOf("lost").String()) && survivor == "follower" {
				t.Fatal("follower applied a write without quorum")
			}
		})
	}
}

// writeLog records what writers were told.
type writeLog struct {
	mu      sync.Mutex
	acked   map[string]bool
	unknown map[string]bool
}

func newWriteLog() *writeLog {
	return &writeLog{acked: map[string]bool{}, unknown: map[string]bool{}}
}

// record classifies an outcome: nil is acknowledged; ErrNoLeader and
// ErrNotLeader mean nothing was proposed; anything else is unknown.
func (w *writeLog) record(id string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		w.acked[id] = true
	case errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrTimeout):
	default:
		w.unknown[id] = true
	}
}

// check: every running node holds every acknowledged write, nothing that was
// never proposed, and the same set as every other node.
func (w *writeLog) check(t *testing.T, c *testCluster) {
	t.Helper()
	leader := c.waitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A final write through the leader fences every earlier entry.
	rev, err := writeOne(ctx, c.nodes[leader].n, "fence")
	if err != nil {
		t.Fatal(err)
	}
	var ref []string
	for _, tn := range c.running() {
		if err := tn.n.WaitApplied(ctx, rev); err != nil {
			t.Fatalf("%s: %v", tn.cfg.NodeID, err)
		}
		got := contents(tn.st)
		if ref == nil {
			ref = got
		} else if strings.Join(ref, "\n") != strings.Join(got, "\n") {
			t.Fatalf("replicas differ: %s has %d relationships, another %d", tn.cfg.NodeID, len(got), len(ref))
		}
	}
	have := map[string]bool{}
	for _, k := range ref {
		have[k] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.acked {
		if !have[keyOf(id).String()] {
			t.Fatalf("acknowledged write %s lost", id)
		}
	}
	present := 0
	for k := range have {
		id := strings.TrimSuffix(strings.TrimPrefix(k, "doc:"), "#viewer@user:ana")
		if id == "fence" {
			continue
		}
		if !w.acked[id] && !w.unknown[id] {
			t.Fatalf("write %s present but never proposed", id)
		}
		if w.unknown[id] {
			present++
		}
	}
	t.Logf("acked %d, unknown %d (of which %d committed)", len(w.acked), len(w.unknown), present)
}

// runWriters writes unique ids through random nodes until stop is closed.
func runWriters(c *testCluster, w *writeLog, writers int, stop <-chan struct{}, nodes func() []*testNode) *sync.WaitGroup {
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ns := nodes()
				if len(ns) == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				tn := ns[(g+i)%len(ns)]
				id := fmt.Sprintf("g%d-%d", g, i)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				_, err := writeOne(ctx, tn.n, id)
				cancel()
				if errors.Is(err, ErrClosed) {
					err = fmt.Errorf("%w: node closed under the writer", ErrTimeout)
				}
				w.record(id, err)
				if err != nil {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	return &wg
}

func TestLeaderKilledMidStream(t *testing.T) {
	c := newTestCluster(t, 3, realStores(t), nil)
	w := newWriteLog()
	stop := make(chan struct{})
	wg := runWriters(c, w, 8, stop, c.running)
	time.Sleep(300 * time.Millisecond)
	leader := c.waitLeader()
	c.stop(leader)
	start := time.Now()
	newLeader := c.waitLeader()
	t.Logf("new leader %s after %v", c.nodes[newLeader].cfg.NodeID, time.Since(start).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	w.check(t, c)
	if len(w.acked) < 10 {
		t.Fatalf("only %d acknowledged writes", len(w.acked))
	}
	// The old leader restarts from its data dir and converges.
	c.restart(leader)
	w.check(t, c)
}

// TestFaultInjection kills and restarts random nodes (the leader more
// often) while writers run, then checks that every node holds exactly the
// acknowledged writes plus, for writes whose outcome was unknown, the same
// choice everywhere. Short by default; AMBIT_RAFT_FAULTS=N runs N faults and
// AMBIT_RAFT_SEED=S picks the seed.
func TestFaultInjection(t *testing.T) {
	faults, seed := 3, int64(1)
	if v := os.Getenv("AMBIT_RAFT_FAULTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("AMBIT_RAFT_FAULTS=%q: %v", v, err)
		}
		faults = n
	}
	if v := os.Getenv("AMBIT_RAFT_SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("AMBIT_RAFT_SEED=%q: %v", v, err)
		}
		seed = n
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d, %d faults", seed, faults)
	c := newTestCluster(t, 3, realStores(t), nil)
	w := newWriteLog()
	stop := make(chan struct{})
	wg := runWriters(c, w, 6, stop, c.running)
	for f := range faults {
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		victim := c.waitLeader()
		if rng.IntN(3) == 0 { // a follower, picked at random
			victim = (victim + 1 + rng.IntN(2)) % 3
		}
		t.Logf("fault %d: stopping %s (leader: %v)", f, c.nodes[victim].cfg.NodeID, c.nodes[victim].n.IsLeader())
		c.stop(victim)
		time.Sleep(time.Duration(rng.IntN(800)) * time.Millisecond)
		c.restart(victim)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	w.check(t, c)
	if len(w.acked) == 0 {
		t.Fatal("no write was acknowledged")
	}
}

func TestRestartWithNewGRPCAddressUpdatesMemberTable(t *testing.T) {
	c := newTestCluster(t, 3, fakeStores(), nil)
	leader := c.waitLeader()
	f := c.follower(leader)
	c.stop(f)
	c.nodes[f].cfg.GRPCAddr = "" // a new port
	tn := c.restart(f)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m, ok := c.nodes[leader].n.fsm.Member(tn.cfg.NodeID); ok && m.GRPCAddr == tn.cfg.GRPCAddr {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader's member table never learned %s's new gRPC address %s", tn.cfg.NodeID, tn.cfg.GRPCAddr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNewNodeRefusesBadSetups(t *testing.T) {
	c := emptyCluster(t, fakeStores())
	ahead := newFakeStore()
	ahead.rev = 42
	cfg := c.config("x")
	cfg.GRPCAddr = "127.0.0.1:1"
	_, err := NewNode(context.Background(), cfg, ahead)
	if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "revision 42") {
		t.Fatalf("NewNode over a store with data and no raft state = %v", err)
	}
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.NodeID = "" }, "NodeID"},
		{func(c *Config) { c.GRPCAddr = "" }, "GRPCAddr"},
		// The schema guard is installed once, here, and cannot be left out.
		{func(c *Config) { c.SchemaGuard = nil }, "SchemaGuard"},
		{func(c *Config) { c.Bootstrap, c.Join = true, []string{"x"} }, "exclusive"},
		{func(c *Config) { c.MaxAppendEntries = 5000 }, "MaxAppendEntries"},
		{func(c *Config) { c.LogStore = "rocks" }, "LogStore"},
		{func(c *Config) { c.LogSegmentSize = 4 << 10 }, "LogSegmentSize"},
		{func(c *Config) { c.LogSegmentSize = 2 << 30 }, "LogSegmentSize"},
	} {
		cfg := c.config("y")
		cfg.GRPCAddr = "127.0.0.1:1"
		tc.edit(&cfg)
		if _, err := NewNode(context.Background(), cfg, newFakeStore()); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("NewNode = %v, want ErrBadConfig naming %q", err, tc.want)
		}
	}
}
