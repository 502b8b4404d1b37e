package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// lockedBuffer collects a child process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestCrashRestart builds the ambit binary, serves on a temporary data dir,
// SIGKILLs it right after an acknowledged write, restarts it on the same
// data dir and checks that every acknowledged change survived.
func TestCrashRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "ambit")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir := filepath.Join(tmp, "data")
	grpcAddr, httpAddr, raftAddr := freePort(t), freePort(t), freePort(t)

	start := func() (*exec.Cmd, *lockedBuffer) {
		t.Helper()
		var logs lockedBuffer
		cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--grpc-addr", grpcAddr, "--http-addr", httpAddr,
			"--raft-addr", raftAddr, "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get("http://" + httpAddr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return cmd, &logs
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("server not ready in 30s; log:\n%s", logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	cmd, _ := start()
	conn := dial(t, grpcAddr)
	perms, schemas := v1.NewPermissionsServiceClient(conn), v1.NewSchemaServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	schemaText := "definition user {}\n\ndefinition document {\n\trelation viewer: user\n\tpermission view = viewer\n}\n"
	if _, err := schemas.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: schemaText}); err != nil {
		t.Fatal(err)
	}
	write := func(op v1.RelationshipUpdate_Operation, doc, user string) *v1.ZedToken {
		t.Helper()
		r, err := perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{Operation: op, Relationship: &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: "document", ObjectId: doc}, Relation: "viewer",
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: user}}}}}})
		if err != nil {
			t.Fatalf("write %s %s %s: %v", op, doc, user, err)
		}
		return r.GetWrittenAt()
	}
	before := write(v1.RelationshipUpdate_OPERATION_CREATE, "d1", "ana")
	write(v1.RelationshipUpdate_OPERATION_CREATE, "d2", "bob")
	write(v1.RelationshipUpdate_OPERATION_DELETE, "d1", "ana")
	last := write(v1.RelationshipUpdate_OPERATION_TOUCH, "d3", "cat")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	conn.Close()

	_, logs := start()
	conn = dial(t, grpcAddr)
	perms, schemas = v1.NewPermissionsServiceClient(conn), v1.NewSchemaServiceClient(conn)
	check := func(c *v1.Consistency, doc, user string) v1.CheckPermissionResponse_Permissionship {
		t.Helper()
		r, err := perms.CheckPermission(ctx, &v1.CheckPermissionRequest{Consistency: c, Resource: &v1.ObjectReference{ObjectType: "document", ObjectId: doc},
			Permission: "view", Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: user}}})
		if err != nil {
			t.Fatalf("check %s@%s after restart: %v\nlog:\n%s", doc, user, err, logs.String())
		}
		return r.GetPermissionship()
	}
	const has, no = v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION, v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION
	fresh := &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: last}}
	for _, c := range []struct {
		cons      *v1.Consistency
		doc, user string
		want      v1.CheckPermissionResponse_Permissionship
	}{
		{fresh, "d3", "cat", has}, // the last acknowledged write, with a pre-restart token
		{fresh, "d2", "bob", has},
		{fresh, "d1", "ana", no}, // deleted stays deleted
		{&v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}, "d3", "cat", has},
		{&v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: before}}, "d1", "ana", has}, // the past, by a pre-restart token
	} {
		if got := check(c.cons, c.doc, c.user); got != c.want {
			t.Errorf("after restart, %s@%s (%v) = %v, want %v", c.doc, c.user, c.cons, got, c.want)
		}
	}
	r, err := schemas.ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if err != nil || r.GetSchemaText() != schemaText {
		t.Fatalf("schema after restart: %q, %v", r.GetSchemaText(), err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "cluster-id")); err != nil {
		t.Fatalf("cluster id not kept: %v", err)
	}
}
