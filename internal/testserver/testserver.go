// Package testserver starts a one-node ambit server (in-memory store, raft on
// loopback, the API on a loopback gRPC listener) for tests: api's own, and
// those of packages that, like an application, only speak the public API.
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

// Options configure a server; the zero value is a plain test server.
type Options struct {
	Keys      []string   // preshared keys; none disables authentication
	Limits    api.Limits // zero fields take api's defaults
	ClusterID string     // default "test-cluster"
	// ApplyTimeout, when set, is raft's ApplyTimeout (tests that write
	// megabytes give it room on a loaded machine).
	ApplyTimeout time.Duration
	// WrapNode, when set, wraps the raft node the API sees.
	WrapNode func(*raft.Node) api.Node
	// Tokens, when set, are the managed API tokens the server accepts
	// besides Keys; ambit.v1.TokenService serves them.
	Tokens api.TokenRecords
	// RecordTokens, when set and Tokens is not, keeps the managed tokens in
	// the replicated record keyspace (api.Server.Tokens), as `ambit serve`
	// does.
	RecordTokens bool
	// DecisionLog, when set, records the server's decisions.
	DecisionLog *api.DecisionLog
}

// Server is a running server, its parts, and a client connection to it.
type Server struct {
	Addr     string
	Conn     *grpc.ClientConn
	Store    *store.Store
	Node     *raft.Node
	API      *api.Server
	Registry *prometheus.Registry
	GRPC     *grpc.Server
	Auth     *api.Authenticator
}

// Start starts a server that stops when t ends. It fails t if the server
// does not elect itself leader within a minute.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.ClusterID == "" {
		o.ClusterID = "test-cluster"
	}
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
		LeaderLeaseTimeout: 50 * time.Millisecond, SchemaGuard: raft.OrphanGuard(st), Logger: log, ApplyTimeout: o.ApplyTimeout,
	}, st)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{CacheMaxCost: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := api.NewMetrics(reg, func() float64 { return float64(st.AppliedRevision()) }, func() float64 { return float64(node.State()) })
	if err != nil {
		t.Fatal(err)
	}
	var apiNode api.Node = node
	if o.WrapNode != nil {
		apiNode = o.WrapNode(node)
	}
	srv, err := api.New(api.Config{Store: st, Node: apiNode, Engine: eng, ClusterID: o.ClusterID, Limits: o.Limits, Logger: log, Metrics: m, DecisionLog: o.DecisionLog})
	if err != nil {
		t.Fatal(err)
	}
	if lm := srv.LeopardMetrics(); lm != nil {
		reg.MustRegister(lm)
	}
	if o.Tokens == nil && o.RecordTokens {
		o.Tokens = srv.Tokens()
	}
	auth := api.NewAuthenticator(o.Keys)
	if o.Tokens != nil {
		am, err := api.NewAuthMetrics(reg)
		if err != nil {
			t.Fatal(err)
		}
		auth.SetTokens(o.Tokens, am)
	}
	g := grpc.NewServer(srv.ServerOptions(api.ServeOptions{Authenticator: auth})...)
	srv.Register(g)
	if o.Tokens != nil {
		srv.RegisterTokens(g, o.Tokens, auth)
		srv.RegisterAudit(g, nil) // no audit log: its calls are FailedPrecondition, after the scope check
	}
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
	return &Server{Addr: lis.Addr().String(), Conn: conn, Store: st, Node: node, API: srv, Registry: reg, GRPC: g, Auth: auth}
}
