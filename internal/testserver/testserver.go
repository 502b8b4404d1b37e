// Package testserver starts a one-node ambit server (in-memory store, raft on
// loopback, the authzed v1 API on a loopback gRPC listener) for tests of
// packages that, like an application, only speak the public API.
package testserver

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/store"
)

// Server is a running server and a client connection to it.
type Server struct {
	Addr string
	Conn *grpc.ClientConn
}

// Start starts a server that stops when t ends. It fails t if the server
// does not elect itself leader within a minute.
func Start(t testing.TB) *Server {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(store.Options{InMemory: true, GCInterval: -1, MemTableSize: 16 << 20, BlockCacheSize: 1 << 20, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node, err := raft.NewNode(ctx, raft.Config{
		NodeID: "n1", RaftAddr: "127.0.0.1:0", GRPCAddr: lis.Addr().String(), Dir: t.TempDir(), Bootstrap: true,
		NoSync: true, LogSegmentSize: 1 << 20, HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond, SchemaGuard: api.SchemaGuard(st), Logger: log,
	}, st)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{CacheMaxCost: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	m, err := api.NewMetrics(prometheus.NewRegistry(), func() float64 { return float64(st.AppliedRevision()) }, func() float64 { return float64(node.State()) })
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Store: st, Node: node, Engine: eng, ClusterID: "test-cluster",
		Limits: api.Limits{ExactSnapshotWait: 50 * time.Millisecond, MaxFreshnessWait: 5 * time.Second}, Logger: log, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(srv.ServerOptions(api.ServeOptions{})...)
	srv.Register(g)
	raft.RegisterService(g, node)
	go func() { _ = g.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.LinearizableRevision(ctx); err != nil {
		t.Fatalf("testserver: no leader: %v", err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
		node.Close()
		eng.Close()
		st.Close()
	})
	return &Server{Addr: lis.Addr().String(), Conn: conn}
}
