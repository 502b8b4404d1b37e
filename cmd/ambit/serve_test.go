package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/engine"
)

// startServe runs serve in-process on loopback ports and returns its
// addresses and a stop function that cancels it and returns its error.
func startServe(t *testing.T, c serveConfig) (serveAddrs, func() error) {
	t.Helper()
	if c.dataDir == "" {
		c.dataDir = t.TempDir()
	}
	c.grpcAddr, c.httpAddr, c.raftAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	if c.logLevel == "" {
		c.logLevel, c.logFormat = "warn", "text"
	}
	if c.shutdownTimeout == 0 {
		c.shutdownTimeout = 5 * time.Second
	}
	if c.nodeID == "" {
		c.nodeID = "n1"
	}
	if c.raftSegmentMiB == 0 {
		c.raftSegmentMiB = 1 // not raft-wal's 64 MiB, written out per node
	}
	if c.cluster == (clusterAuth{}) {
		c.cluster.secretText = testClusterSecret // raft over the authenticated stream layer, as deployed
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan serveAddrs, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, io.Discard, func(a serveAddrs) { addrs <- a }) }()
	select {
	case a := <-addrs:
		stopped := false
		stop := func() error {
			if stopped {
				return nil
			}
			stopped = true
			cancel()
			return <-done
		}
		t.Cleanup(func() { _ = stop() })
		return a, stop
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve did not become ready")
	}
	return serveAddrs{}, nil
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeAuthBootstrapFileMetrics(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "boot.yaml")
	if err := os.WriteFile(file, []byte(`schema: |
  definition user {}
  definition document {
    relation viewer: user
    permission view = viewer
  }
relationships: |
  document:readme#viewer@user:ana
  document:guide#viewer@user:bob
`), 0o644); err != nil {
		t.Fatal(err)
	}
	a, stop := startServe(t, serveConfig{keys: []string{"k1", "k2"}, bootstrapFile: file})
	conn := dial(t, a.grpc)
	perms := v1.NewPermissionsServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	req := &v1.CheckPermissionRequest{Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		Resource: &v1.ObjectReference{ObjectType: "document", ObjectId: "readme"}, Permission: "view",
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ana"}}}
	if _, err := perms.CheckPermission(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without a key: %v, want Unauthenticated", err)
	}
	if _, err := perms.CheckPermission(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer nope"), req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("wrong key: %v, want PermissionDenied", err)
	}
	r, err := perms.CheckPermission(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer k2"), req)
	if err != nil || r.GetPermissionship() != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Fatalf("bootstrapped check: %v, %v", r, err)
	}

	if code, body := httpGet(t, "http://"+a.http+"/readyz"); code != 200 || !strings.Contains(body, "leader") {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	if code, _ := httpGet(t, "http://"+a.http+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	code, body := httpGet(t, "http://"+a.http+"/metrics")
	for _, m := range []string{"ambit_grpc_requests_total", `code="Unauthenticated"`, "ambit_applied_revision", "ambit_raft_state 3", "ambit_check_dispatches_total"} {
		if code != 200 || !strings.Contains(body, m) {
			t.Fatalf("/metrics (%d) lacks %s", code, m)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// A Watch stream in flight does not keep the server from stopping, and a
// unary call in flight finishes.
func TestServeGracefulShutdown(t *testing.T) {
	a, stop := startServe(t, serveConfig{})
	conn := dial(t, a.grpc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := v1.NewSchemaServiceClient(conn).WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: "definition user {}"}); err != nil {
		t.Fatal(err)
	}
	w, err := v1.NewWatchServiceClient(conn).Watch(ctx, &v1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := w.Recv(); errc <- err }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %v; the open Watch should not hold it up", d)
	}
	if err := <-errc; status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("watch stream at shutdown: %v, want Unavailable telling the client to resume", err)
	}
}

func TestServeRefusesOpenNonLoopback(t *testing.T) {
	err := serve(context.Background(), serveConfig{dataDir: t.TempDir(), grpcAddr: "0.0.0.0:0", logLevel: "info", logFormat: "text"}, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "--insecure-no-auth") {
		t.Fatalf("serve on 0.0.0.0 without a key: %v", err)
	}
}

func TestServeRefusesBadSegmentSize(t *testing.T) {
	for _, mib := range []int{0, -1, 2048} {
		err := serve(context.Background(), serveConfig{dataDir: t.TempDir(), grpcAddr: "127.0.0.1:0", raftSegmentMiB: mib,
			logLevel: "info", logFormat: "text"}, io.Discard, nil)
		if err == nil || !strings.Contains(err.Error(), "--raft-log-segment-mib") {
			t.Errorf("serve with --raft-log-segment-mib %d: %v, want a refusal naming the flag", mib, err)
		}
	}
}

// The request budgets are flags with AMBIT_* twins, and none may be turned
// off (0 takes the default).
func TestServeBudgetFlags(t *testing.T) {
	t.Setenv("AMBIT_MAX_DISPATCHES", "77")
	t.Setenv("AMBIT_MAX_EXPAND_BYTES", "1024")
	cmd := newServeCmd()
	if err := cmd.Flags().Parse([]string{"--max-expand-nodes", "5"}); err != nil {
		t.Fatal(err)
	}
	if err := flagsFromEnv(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{"max-dispatches": "77", "max-expand-bytes": "1024", "max-expand-nodes": "5", "max-reads": "1000000", "max-caveat-cost": "1000000"} {
		if got := cmd.Flags().Lookup(flag).Value.String(); got != want {
			t.Errorf("--%s = %s, want %s", flag, got, want)
		}
	}
	for _, tc := range []struct {
		flag string
		set  func(*serveConfig)
	}{
		{"--max-dispatches", func(c *serveConfig) { c.budgets.MaxDispatches = -1 }},
		{"--max-expand-bytes", func(c *serveConfig) { c.budgets.MaxExpandBytes = -1 }},
	} {
		c := serveConfig{dataDir: t.TempDir(), grpcAddr: "127.0.0.1:0", raftSegmentMiB: 64, logLevel: "info", logFormat: "text",
			budgets: engine.Config{MaxDispatches: 1, MaxReads: 1, MaxCaveatCost: 1, MaxExpandNodes: 1, MaxExpandBytes: 1}}
		tc.set(&c)
		if err := serve(context.Background(), c, io.Discard, nil); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("serve with %s off: %v, want a refusal naming the flag", tc.flag, err)
		}
	}
}

func TestFlagsFromEnv(t *testing.T) {
	t.Setenv("AMBIT_PRESHARED_KEY", "a, b")
	t.Setenv("AMBIT_GRPC_ADDR", "127.0.0.1:1")
	cmd := newServeCmd()
	if err := cmd.Flags().Parse([]string{"--grpc-addr", "127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	if err := flagsFromEnv(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	keys, _ := cmd.Flags().GetStringArray("preshared-key")
	addr, _ := cmd.Flags().GetString("grpc-addr")
	if strings.Join(keys, "|") != "a|b" || addr != "127.0.0.1:2" {
		t.Fatalf("keys %q addr %q", keys, addr)
	}
}
