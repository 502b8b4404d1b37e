package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A node started with --join and no --cluster-id learns the cluster id from
// the member it joins and keeps it in its data dir, so a ZedToken from one
// node is good on the other; a node given another id is refused before it
// joins.
func TestJoinLearnsTheClusterID(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d1, d2, d3 := t.TempDir(), t.TempDir(), t.TempDir()
	a1, _ := startServe(t, serveConfig{keys: []string{"k"}, dataDir: d1})
	cli := func(addr string, args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := run(ctx, append(args, "--endpoint", addr, "--token", "k"), &out, &errOut)
		return strings.TrimSpace(out.String()), err
	}
	schemaFile := filepath.Join(t.TempDir(), "s.zed")
	if err := os.WriteFile(schemaFile, []byte("definition user {}\ndefinition doc {\n\trelation viewer: user\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cli(a1.grpc, "schema", "write", schemaFile); err != nil {
		t.Fatalf("schema write: %v", err)
	}
	token, err := cli(a1.grpc, "rel", "create", "doc:d1#viewer@user:ana")
	if err != nil || token == "" {
		t.Fatalf("rel create: %q %v", token, err)
	}

	a2, _ := startServe(t, serveConfig{keys: []string{"k"}, dataDir: d2, nodeID: "n2", join: []string{a1.grpc}})
	id1, err1 := os.ReadFile(filepath.Join(d1, "cluster-id"))
	id2, err2 := os.ReadFile(filepath.Join(d2, "cluster-id"))
	if err1 != nil || err2 != nil || len(bytes.TrimSpace(id1)) == 0 || !bytes.Equal(id1, id2) {
		t.Fatalf("cluster ids: n1 %q (%v), n2 %q (%v); want the same, not empty", id1, err1, id2, err2)
	}
	if got, err := cli(a2.grpc, "check", "doc:d1", "viewer", "user:ana", "--consistency", "fresh:"+token); err != nil || got != "true" {
		t.Fatalf("check on n2 at least as fresh as n1's token = %q, %v; want true", got, err)
	}

	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	defer ccancel()
	err = serve(cctx, serveConfig{keys: []string{"k"}, dataDir: d3, nodeID: "n3", join: []string{a1.grpc}, clusterID: "another",
		grpcAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", raftAddr: "127.0.0.1:0", raftSegmentMiB: 1,
		logLevel: "warn", logFormat: "text", shutdownTimeout: time.Second}, &bytes.Buffer{}, nil)
	if err == nil || !strings.Contains(err.Error(), "another") {
		t.Fatalf("joining with --cluster-id another = %v, want a refusal naming it", err)
	}
	status, err := cli(a1.grpc, "cluster", "status")
	if err != nil || strings.Contains(status, "n3") || !strings.Contains(status, "n2") {
		t.Fatalf("cluster status after the refused join: %q, %v; want n1 and n2 only", status, err)
	}
}
