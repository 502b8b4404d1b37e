package chaos

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestCampaignShort is the short version of `make chaos`: it builds the
// ambit binary and runs one round of every fault kind against a 3-node
// cluster, failing on any violation.
func TestCampaignShort(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short: builds the ambit binary and runs a 3-node fault campaign (about a minute)")
	}
	bin := filepath.Join(t.TempDir(), "ambit")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ambit-authz/ambit/cmd/ambit").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{Bin: bin, Work: t.TempDir(), Rounds: len(Kinds), Seed: 17, Hold: time.Second, Log: &log})
	if err != nil {
		t.Fatalf("campaign: %v\n%s", err, log.String())
	}
	var out bytes.Buffer
	rep.Print(&out)
	t.Log("\n" + out.String())
	if !rep.OK() {
		t.Fatalf("%d violations (progress log below)\n%s", len(rep.Violations), log.String())
	}
	// The campaign must have done what it claims.
	for _, k := range Kinds {
		if rep.Faults[k] != 1 {
			t.Errorf("fault %s injected %d times, want 1", k, rep.Faults[k])
		}
	}
	if rep.Counts.TouchAcked == 0 || rep.Counts.DeleteAcked == 0 || rep.Reads == 0 {
		t.Errorf("workload did nothing: %+v, %d reads", rep.Counts, rep.Reads)
	}
	if len(rep.Failover()) == 0 {
		t.Error("no failover measured")
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want outcome
	}{
		{nil, acked},
		{status.Error(codes.InvalidArgument, "bad"), refused},
		{status.Error(codes.FailedPrecondition, "no schema has been written yet"), refused},
		{status.Error(codes.Unavailable, "no raft leader"), notProposed},
		{status.Error(codes.Unavailable, "connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused\""), notProposed},
		{status.Error(codes.Unavailable, "raft leadership lost while committing; outcome unknown"), unknown},
		{status.Error(codes.Unavailable, "forwarding to the leader failed"), unknown},
		{status.Error(codes.DeadlineExceeded, "context deadline exceeded"), unknown},
		{status.Error(codes.Canceled, "context canceled"), unknown},
		{status.Error(codes.Internal, "internal error"), unknown},
		{errors.New("not a status"), unknown},
		// a reason overrides the message
		{withReason(codes.Unavailable, "no raft leader", "OUTCOME_UNKNOWN"), unknown},
		{withReason(codes.Unavailable, "forwarding to the leader failed", "NOT_PROPOSED"), notProposed},
	} {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

func withReason(code codes.Code, msg, reason string) error {
	st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "ambit.authz"})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func TestSecretFlags(t *testing.T) {
	help := `Flags:
      --cluster-secret string        secret every member shares
      --cluster-secret-file string   file holding the cluster secret; see --cluster-secret
      --cluster-tls-ca string        PEM file
      --raft-advertise string        raft address peers dial`
	if got, want := secretFlags(help), []string{"--cluster-secret", "--cluster-secret-file"}; !slices.Equal(got, want) {
		t.Errorf("secretFlags = %v, want %v", got, want)
	}
	if got := secretFlags("      --raft-addr string   raft listen address"); len(got) != 0 {
		t.Errorf("secretFlags without one = %v", got)
	}
}

func TestParseReadyz(t *testing.T) {
	for _, c := range []struct {
		in   string
		want nodeStatus
	}{
		{"ready: leader, leader n1, applied revision 42\n", nodeStatus{ready: true, role: "leader", leader: "n1", applied: 42}},
		{"ready: follower, leader n3, applied revision 7", nodeStatus{ready: true, role: "follower", leader: "n3", applied: 7}},
		{"not ready", nodeStatus{}},
	} {
		if got := parseReadyz(c.in); got != c.want {
			t.Errorf("parseReadyz(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

// TestCheckFinal runs the end-of-campaign comparison on made-up histories.
func TestCheckFinal(t *testing.T) {
	ok := func(node int) attempt { return attempt{node: node, out: acked} }
	unk := attempt{out: unknown}
	np := attempt{out: notProposed}
	type key struct {
		id       string
		touches  []attempt
		deletes  []attempt
		deleting bool
	}
	for _, c := range []struct {
		name                      string
		keys                      []key
		present                   []string
		lost, resurrected, phanto int
		kinds                     []string
	}{
		{name: "acked touch present", keys: []key{{id: "a", touches: []attempt{ok(0)}}}, present: []string{"a"}},
		{name: "acked touch lost", keys: []key{{id: "a", touches: []attempt{ok(0)}}}, lost: 1, kinds: []string{"lost"}},
		{name: "unknown then acked touch lost", keys: []key{{id: "a", touches: []attempt{unk, ok(1)}}}, lost: 1, kinds: []string{"lost"}},
		{name: "acked delete absent", keys: []key{{id: "a", touches: []attempt{ok(0)}, deletes: []attempt{ok(1)}, deleting: true}}},
		{name: "acked delete resurrected", keys: []key{{id: "a", touches: []attempt{ok(0)}, deletes: []attempt{unk, ok(1)}, deleting: true}},
			present: []string{"a"}, resurrected: 1, kinds: []string{"resurrected"}},
		{name: "delete of unknown outcome either way", keys: []key{{id: "a", touches: []attempt{ok(0)}, deletes: []attempt{unk}, deleting: true},
			{id: "b", touches: []attempt{ok(0)}, deletes: []attempt{unk}, deleting: true}}, present: []string{"a"}},
		{name: "unknown touch either way", keys: []key{{id: "a", touches: []attempt{unk}}, {id: "b", touches: []attempt{unk, np}}}, present: []string{"b"}},
		{name: "not proposed touch applied", keys: []key{{id: "a", touches: []attempt{np, np}}}, present: []string{"a"}, phanto: 1, kinds: []string{"not-proposed-applied"}},
		{name: "never written", present: []string{"zz"}, phanto: 1, kinds: []string{"phantom"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHistory()
			for _, k := range c.keys {
				r := h.newKey(k.id, "u", false)
				r.touches, r.deletes, r.deleting = k.touches, k.deletes, k.deleting
			}
			set := map[string]bool{}
			for _, id := range c.present {
				set[(&keyRec{id: id, user: "u"}).rel()] = true
			}
			l, r, p := h.checkFinal("n1", set)
			if l != c.lost || r != c.resurrected || p != c.phanto {
				t.Errorf("lost, resurrected, phantom = %d, %d, %d; want %d, %d, %d", l, r, p, c.lost, c.resurrected, c.phanto)
			}
			var kinds []string
			for _, v := range h.viol {
				kinds = append(kinds, v.Kind)
			}
			if !slices.Equal(kinds, c.kinds) {
				t.Errorf("violations %v, want %v", kinds, c.kinds)
			}
		})
	}
}

// TestCheckWindows: an acknowledgement of a write invoked while no quorum
// was up is a violation; one invoked before is not.
func TestCheckWindows(t *testing.T) {
	t0 := time.Now()
	h := newHistory()
	before := h.newKey("before", "u", false)
	before.touches = []attempt{{out: acked, start: t0.Add(-time.Second), end: t0.Add(time.Second)}}
	during := h.newKey("during", "u", false)
	during.touches = []attempt{{node: 2, out: acked, start: t0.Add(time.Second), end: t0.Add(2 * time.Second)}}
	other := h.newKey("other-node", "u", false)
	other.touches = []attempt{{node: 1, out: acked, start: t0.Add(time.Second), end: t0.Add(2 * time.Second)}}
	h.addWindow(window{node: 2, from: t0, to: t0.Add(3 * time.Second), why: "test"})
	h.checkWindows()
	if len(h.viol) != 1 || !strings.Contains(h.viol[0].Detail, "doc:during#") {
		t.Fatalf("violations %+v, want one for doc:during", h.viol)
	}
}

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, msg string, wait time.Duration) (string, error) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

// TestNet checks the proxy: it identifies the dialing process, forwards,
// drops one direction, delays, and on Heal closes a connection that lost
// bytes. This process plays node 1 dialing node 0's proxy.
func TestNet(t *testing.T) {
	target := echoServer(t)
	n := NewNet(2, func() map[int]int { return map[int]int{os.Getpid(): 1} })
	p, err := n.Listen(0, target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(t, c, "ping", 10*time.Second); err != nil || got != "ping" {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}

	n.Delay(1, 0, 300*time.Millisecond)
	start := time.Now()
	if got, err := roundTrip(t, c, "slow", 10*time.Second); err != nil || got != "slow" {
		t.Fatalf("delayed: %q, %v", got, err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("a 300ms delay took %s", d)
	}
	n.Heal()

	n.Drop(0, 1) // the echo's answer is lost; the request arrives
	if got, err := roundTrip(t, c, "lost", 500*time.Millisecond); err == nil {
		t.Fatalf("read %q through a dropped link", got)
	}
	n.Heal()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 8)); err == nil {
		t.Fatal("a connection that lost bytes stayed open after Heal")
	}

	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := roundTrip(t, c2, "back", 10*time.Second); err != nil || got != "back" {
		t.Fatalf("after Heal: %q, %v", got, err)
	}
	if n.Unidentified() != 0 {
		t.Errorf("%d connections not identified", n.Unidentified())
	}
}

// TestNetUnknownDialer: a connection from a process that is no node is
// refused, so the campaign never forwards traffic it cannot attribute.
func TestNetUnknownDialer(t *testing.T) {
	n := NewNet(2, func() map[int]int { return map[int]int{} })
	p, err := n.Listen(0, echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(t, c, "x", 10*time.Second); err == nil {
		t.Fatalf("unidentified dialer got %q", got)
	}
	if n.Unidentified() != 1 {
		t.Errorf("Unidentified() = %d, want 1", n.Unidentified())
	}
}

// TestServeArgs: the one command line builder passes the optional flags the
// binary has, and joins every node but the first.
func TestServeArgs(t *testing.T) {
	n := NewNet(3, func() map[int]int { return nil })
	c := &cluster{key: "k", clusterID: "cid", secretFile: "/s", net: n,
		feat: features{secretFlag: "--cluster-secret-file", grpcAdvertiseFlag: "--grpc-advertise"}}
	for i := range 3 {
		nd := &node{idx: i, id: "n", dir: "/d", grpcAddr: "127.0.0.1:1", httpAddr: "127.0.0.1:2", raftAt: "127.0.0.1:3"}
		var err error
		if nd.raftProxy, err = n.Listen(i, nd.raftAt); err != nil {
			t.Fatal(err)
		}
		defer nd.raftProxy.Close()
		if nd.grpcProxy, err = n.Listen(i, nd.grpcAddr); err != nil {
			t.Fatal(err)
		}
		defer nd.grpcProxy.Close()
		c.nodes = append(c.nodes, nd)
	}
	first := strings.Join(c.serveArgs(c.nodes[0]), " ")
	second := strings.Join(c.serveArgs(c.nodes[1]), " ")
	for _, want := range []string{"--cluster-secret-file /s", "--grpc-advertise " + c.nodes[0].grpcProxy.Addr(), "--raft-advertise " + c.nodes[0].raftProxy.Addr(), "--bootstrap"} {
		if !strings.Contains(first, want) {
			t.Errorf("%q lacks %q", first, want)
		}
	}
	if !strings.Contains(second, "--join 127.0.0.1:1 --cluster-id cid") || strings.Contains(second, "--bootstrap") {
		t.Errorf("second node: %q", second)
	}
	c.feat = features{}
	if a := strings.Join(c.serveArgs(c.nodes[0]), " "); strings.Contains(a, "secret") || strings.Contains(a, "grpc-advertise") {
		t.Errorf("without the features: %q", a)
	}
}

// TestCampaignReadReplicas runs the faults that move or remove the leader
// against 3 voters with 2 read replicas (issue 27): the replicas take writes
// (forwarded) and answer at_least_as_fresh and fully_consistent reads that
// the checker verifies against the history, and end with the voters' data.
func TestCampaignReadReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short: builds the ambit binary and runs a 5-node fault campaign")
	}
	bin := filepath.Join(t.TempDir(), "ambit")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ambit-authz/ambit/cmd/ambit").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	kinds := []string{KillLeader, KillTwo, IsolateLeader, PartitionNode, KillAll}
	rep, err := Run(ctx, Config{Bin: bin, Work: t.TempDir(), Rounds: 2 * len(kinds), Kinds: kinds, Seed: 27, Hold: time.Second, Replicas: 2, Log: &log})
	if err != nil {
		t.Fatalf("campaign: %v\n%s", err, log.String())
	}
	var out bytes.Buffer
	rep.Print(&out)
	t.Log("\n" + out.String())
	if !rep.OK() {
		t.Fatalf("%d violations (progress log below)\n%s", len(rep.Violations), log.String())
	}
	if rep.ReplicaReads == 0 || rep.Reads == 0 {
		t.Errorf("the replicas answered %d of %d checked reads, want some", rep.ReplicaReads, rep.Reads)
	}
}
