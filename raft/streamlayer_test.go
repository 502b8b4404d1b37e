package raft

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ambit-authz/ambit/store"
)

// eventually polls cond until it holds or 20s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func raftStat(t *testing.T, n *Node, name string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(n.raft.Stats()[name], 10, 64)
	if err != nil {
		t.Fatalf("raft stat %s: %v", name, err)
	}
	return v
}

// A client speaking hashicorp/raft's own transport (what an attacker on
// the network has) cannot append entries to, or ask for votes from, a node
// keyed by a cluster secret; nor can raw garbage. Nothing is applied, the
// term does not move, the refusals are counted and the node keeps working.
func TestRaftPortRefusesUnauthenticatedPeers(t *testing.T) {
	c := newTestCluster(t, 1, fakeStores(), nil)
	tn := c.nodes[c.waitLeader()]
	n := tn.n
	ctx := context.Background()
	if _, err := writeOne(ctx, n, "before"); err != nil {
		t.Fatal(err)
	}
	term, last, lastTerm := raftStat(t, n, "term"), raftStat(t, n, "last_log_index"), raftStat(t, n, "last_log_term")
	evil, err := Encode(WriteCommand([]store.Update{touch("evil")}, nil))
	if err != nil {
		t.Fatal(err)
	}

	atk, err := hraft.NewTCPTransport("127.0.0.1:0", nil, 2, 3*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer atk.Close()
	target := hraft.ServerAddress(n.RaftAddr())
	header := hraft.RPCHeader{ProtocolVersion: hraft.ProtocolVersionMax, ID: []byte("mallory"), Addr: []byte(atk.LocalAddr())}
	var aresp hraft.AppendEntriesResponse
	aerr := atk.AppendEntries(hraft.ServerID(tn.cfg.NodeID), target, &hraft.AppendEntriesRequest{
		RPCHeader: header, Term: term + 100, PrevLogEntry: last, PrevLogTerm: lastTerm,
		Entries:           []*hraft.Log{{Index: last + 1, Term: term + 100, Type: hraft.LogCommand, Data: evil}},
		LeaderCommitIndex: last + 1,
	}, &aresp)
	if aerr == nil {
		t.Errorf("AppendEntries from a peer without the cluster secret succeeded (success=%v)", aresp.Success)
	}
	var vresp hraft.RequestVoteResponse
	verr := atk.RequestVote(hraft.ServerID(tn.cfg.NodeID), target, &hraft.RequestVoteRequest{
		RPCHeader: header, Term: term + 200, LastLogIndex: last + 10, LastLogTerm: term + 100,
	}, &vresp)
	if verr == nil {
		t.Errorf("RequestVote from a peer without the cluster secret succeeded (granted=%v)", vresp.Granted)
	}
	raw, err := net.Dial("tcp", n.RaftAddr())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = raw.Write([]byte("\x00\x05garbage that is not TLS\x00\x00\x00\x00\x00\x00\x00\x00"))
	_ = raw.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(raw); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Errorf("raw garbage: the node did not close the connection: %v", err)
	}
	raw.Close()

	eventually(t, "three refused peers counted", func() bool { return n.RejectedPeers() >= 3 })
	if got := raftStat(t, n, "term"); got != term {
		t.Errorf("term moved from %d to %d", term, got)
	}
	if _, err := writeOne(ctx, n, "after"); err != nil {
		t.Fatalf("write after the attack: %v", err)
	}
	if !n.IsLeader() {
		t.Error("the node lost its leadership to the attacker")
	}
	got := contents(tn.st)
	if contains(got, keyOf("evil").String()) || !contains(got, keyOf("after").String()) {
		t.Fatalf("store after the attack = %v; want %s and not %s", got, keyOf("after"), keyOf("evil"))
	}
}

// The handshake: the right secret connects; a wrong secret is refused on
// both sides; a man in the middle who completes TLS with each side and
// relays the bytes is refused, because each proof is bound to its TLS
// session (channel binding).
func TestStreamHandshake(t *testing.T) {
	acc, err := newSecureStream("127.0.0.1:0", nil, []byte(testSecret), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	go func() {
		for {
			c, err := acc.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }() // echo
		}
	}()
	client := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
	dial := func(addr, secret string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return dialSecure(ctx, addr, clusterKey([]byte(secret), "raft"), client)
	}

	good, err := dial(acc.Addr().String(), testSecret)
	if err != nil {
		t.Fatalf("dial with the cluster secret: %v", err)
	}
	if _, err := good.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(good, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo over the authenticated stream = %q, %v", buf, err)
	}
	good.Close()

	if c, err := dial(acc.Addr().String(), testSecret+"-other"); err == nil {
		c.Close()
		t.Fatal("dial with another secret succeeded")
	} else if !errors.Is(err, ErrPeerRejected) {
		t.Fatalf("dial with another secret: %v, want ErrPeerRejected", err)
	}
	eventually(t, "the wrong secret counted", func() bool { return acc.rejected.Load() == 1 })

	// The man in the middle: TLS with the dialer on one side, TLS with the
	// acceptor on the other, bytes relayed in between.
	cert, err := ephemeralCert()
	if err != nil {
		t.Fatal(err)
	}
	mitm, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mitm.Close()
	go func() {
		for {
			c, err := mitm.Accept()
			if err != nil {
				return
			}
			go func() {
				down := tls.Server(c, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}})
				up, err := tls.Dial("tcp", acc.Addr().String(), client)
				if err != nil {
					c.Close()
					return
				}
				go func() { _, _ = io.Copy(up, down); up.Close() }()
				_, _ = io.Copy(down, up)
				down.Close()
			}()
		}
	}()
	if c, err := dial(mitm.Addr().String(), testSecret); err == nil {
		c.Close()
		t.Fatal("dial through a man in the middle succeeded")
	}
	eventually(t, "the relayed proof counted", func() bool { return acc.rejected.Load() == 2 })
}

// FuzzHandshakeProof: the acceptor's check of a dialer's proof message
// never panics and accepts only the exact proof for the session.
func FuzzHandshakeProof(f *testing.F) {
	key := clusterKey([]byte(testSecret), "raft")
	exporter := make([]byte, 32)
	f.Add(handshakeProof(key, exporter, roleDialer))
	f.Add(handshakeProof(key, exporter, roleAcceptor))
	f.Add([]byte{proofVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		err := checkProof(key, exporter, roleDialer, msg)
		want := string(msg) == string(handshakeProof(key, exporter, roleDialer))
		if (err == nil) != want {
			t.Fatalf("checkProof(%x) = %v, exact proof: %v", msg, err, want)
		}
	})
}

// FuzzStreamAccept: whatever bytes a peer sends, the acceptor's handshake
// ends with ErrPeerRejected (never a panic, never an accepted connection).
func FuzzStreamAccept(f *testing.F) {
	s := &secureStream{key: clusterKey([]byte(testSecret), "raft"), ctx: context.Background()}
	cert, err := ephemeralCert()
	if err != nil {
		f.Fatal(err)
	}
	s.server = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}}
	f.Add([]byte("\x00\x05garbage"))
	f.Add([]byte("\x16\x03\x01\x00\x05hello"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		srv, cli := net.Pipe()
		go func() { _, _ = cli.Write(data); cli.Close() }()
		go func() { _, _ = io.Copy(io.Discard, cli) }()
		c, err := s.acceptHandshake(srv)
		srv.Close()
		if err == nil {
			c.Close()
			t.Fatalf("handshake of %x accepted", data)
		}
		if !errors.Is(err, ErrPeerRejected) {
			t.Fatalf("handshake of %x: %v, want ErrPeerRejected", data, err)
		}
	})
}

// FuzzClusterDecode: what the cluster service decodes from a request (the
// BytesValue message, the command it carries) and what its client decodes
// from an answer (a result, a member list) never panics, and what decodes
// encodes back to the same thing.
func FuzzClusterDecode(f *testing.F) {
	for _, c := range sampleCommands() {
		data, err := Encode(c)
		if err != nil {
			f.Fatal(err)
		}
		msg, _ := proto.Marshal(wrapperspb.Bytes(data))
		f.Add(msg)
		f.Add(data)
	}
	f.Add(encodeResult(Result{Revision: 7, Deleted: 2}, ErrNotLeader))
	f.Add(encodeMemberList([]Member{{ID: "n1", RaftAddr: "a", GRPCAddr: "b", Role: "leader", Voter: true}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := new(wrapperspb.BytesValue)
		if proto.Unmarshal(data, in) == nil {
			if cmd, err := Decode(in.GetValue()); err == nil {
				_ = checkProposable(cmd)
			}
		}
		if cmd, err := Decode(data); err == nil {
			again, err := Encode(cmd)
			if err != nil {
				t.Fatalf("a decoded command does not encode: %v", err)
			}
			if _, err := Decode(again); err != nil {
				t.Fatalf("a re-encoded command does not decode: %v", err)
			}
		}
		if res, rerr, err := decodeResult(data); err == nil {
			res2, rerr2, err := decodeResult(encodeResult(res, rerr))
			if err != nil || res2.Revision != res.Revision || res2.Deleted != res.Deleted || (rerr == nil) != (rerr2 == nil) {
				t.Fatalf("result round trip: %+v %v -> %+v %v %v", res, rerr, res2, rerr2, err)
			}
		}
		if ms, err := decodeMemberList(data); err == nil {
			if _, err := decodeMemberList(encodeMemberList(ms)); err != nil {
				t.Fatalf("member list round trip: %v", err)
			}
		}
	})
}

// A three-node cluster on the authenticated transport elects a leader,
// replicates writes made through a follower, and survives losing its
// leader.
func TestAuthenticatedClusterSurvivesLeaderChange(t *testing.T) {
	c := newTestCluster(t, 3, fakeStores(), nil)
	for _, tn := range c.nodes {
		if tn.n.stream == nil {
			t.Fatalf("%s runs raft without the authenticated stream layer", tn.cfg.NodeID)
		}
	}
	ctx := context.Background()
	leader := c.waitLeader()
	if _, err := writeOne(ctx, c.nodes[c.follower(leader)].n, "one"); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.nodes {
		if r := tn.n.RejectedPeers(); r != 0 {
			t.Errorf("%s refused %d peers of its own cluster", tn.cfg.NodeID, r)
		}
	}
	c.stop(leader)
	next := c.waitLeader()
	if next == leader {
		t.Fatal("the stopped node still leads")
	}
	if _, err := writeOne(ctx, c.nodes[c.follower(leader, next)].n, "two"); err != nil {
		t.Fatal(err)
	}
	for _, tn := range c.running() {
		eventually(t, tn.cfg.NodeID+" has both writes", func() bool {
			got := contents(tn.st)
			return contains(got, keyOf("one").String()) && contains(got, keyOf("two").String())
		})
	}
}

// One host holding many silent connections open (a slowloris on the raft
// port) uses up its own handshake slots, not the members': a member still
// connects at once.
func TestSilentPeersDoNotCrowdOutMembers(t *testing.T) {
	acc, err := newSecureStream("127.0.0.1:0", nil, []byte(testSecret), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	go func() {
		for {
			c, err := acc.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	attacker := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	const silent = 100
	for range silent {
		c, err := attacker.Dial("tcp", acc.Addr().String())
		if err != nil {
			t.Skipf("cannot dial from 127.0.0.2 on this machine: %v", err)
		}
		defer c.Close()
	}
	eventually(t, "the connections over the per-host limit refused", func() bool {
		return acc.rejected.Load() >= silent-maxPendingPerHost
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialSecure(ctx, acc.Addr().String(), clusterKey([]byte(testSecret), "raft"),
		&tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("a member could not connect while another host held %d silent connections: %v", silent, err)
	}
	c.Close()
}
