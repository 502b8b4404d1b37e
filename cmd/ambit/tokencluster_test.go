package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
)

// A three-node cluster on loopback, each node with its own audit log. A
// token's writes go through a follower while the leader is stopped (its
// leadership passes to another node); afterwards the audit log of each
// surviving node lists every acknowledged write exactly once, in revision
// order, with the token that made it. A token revoked through one node is
// refused by a follower within a second.
func TestTokenClusterAuditAndRevocation(t *testing.T) {
	const key = "cluster-admin-key"
	dir := t.TempDir()
	audit := func(n string) string { return filepath.Join(dir, n+".audit.jsonl") }
	cfg := func(n string, join ...string) serveConfig {
		return serveConfig{keys: []string{key}, nodeID: n, join: join, dataDir: filepath.Join(dir, n),
			logs: logsConfig{auditLog: audit(n), auditMaxMiB: 100, auditKeep: 3}}
	}
	a1, stop1 := startServe(t, cfg("n1"))
	a2, _ := startServe(t, cfg("n2", a1.grpc))
	a3, _ := startServe(t, cfg("n3", a1.grpc))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	created, err := ambitv1.NewTokenServiceClient(dial(t, a2.grpc)).CreateToken(admin, &ambitv1.CreateTokenRequest{Name: "loader", Scopes: []string{"write", "schema", "check"}})
	if err != nil {
		t.Fatal(err)
	}
	tokenID := created.GetInfo().GetId()
	as := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+created.GetToken())
	if _, err := v1.NewSchemaServiceClient(dial(t, a2.grpc)).WriteSchema(as, &v1.WriteSchemaRequest{Schema: "definition user {}\ndefinition doc {\n relation viewer: user\n}"}); err != nil {
		t.Fatal(err)
	}
	write := func(addr string, i int) error {
		wctx, wcancel := context.WithTimeout(as, 5*time.Second)
		defer wcancel()
		_, err := v1.NewPermissionsServiceClient(dial(t, addr)).WriteRelationships(wctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{
			Operation: v1.RelationshipUpdate_OPERATION_CREATE,
			Relationship: &v1.Relationship{Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: fmt.Sprintf("w%d", i)}, Relation: "viewer",
				Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ana"}}}}}})
		return err
	}
	acked := map[string]bool{}
	i := 0
	for ; i < 20; i++ {
		if err := write(a2.grpc, i); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		acked[fmt.Sprintf("doc:w%d#viewer@user:ana", i)] = true
	}
	if err := stop1(); err != nil { // the leader goes; n2 or n3 takes over
		t.Fatalf("stopping n1: %v", err)
	}
	for deadline := time.Now().Add(time.Minute); len(acked) < 40; i++ {
		addr := []string{a2.grpc, a3.grpc}[i%2]
		if err := write(addr, i); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("no write acknowledged for a minute after the failover: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
			continue // not acknowledged: it may or may not be in the log, once at most
		}
		acked[fmt.Sprintf("doc:w%d#viewer@user:ana", i)] = true
	}

	// Revocation through n2, refused by n3 within a second.
	check := func() error {
		cctx, ccancel := context.WithTimeout(as, 5*time.Second)
		defer ccancel()
		_, err := v1.NewPermissionsServiceClient(dial(t, a3.grpc)).CheckPermission(cctx, &v1.CheckPermissionRequest{
			Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: "w0"}, Permission: "viewer",
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ana"}}})
		return err
	}
	if err := check(); err != nil {
		t.Fatalf("check on n3 before the revocation: %v", err)
	}
	if _, err := ambitv1.NewTokenServiceClient(dial(t, a2.grpc)).RevokeToken(admin, &ambitv1.RevokeTokenRequest{Id: tokenID}); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for {
		err := check()
		if status.Code(err) == codes.Unauthenticated && strings.Contains(err.Error(), "revoked") {
			break
		}
		if time.Since(revoked) > time.Second {
			t.Fatalf("n3 still answers the revoked token %v after the revocation: %v", time.Since(revoked), err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Every surviving node's audit log: each acknowledged write once, in
	// revision order, by the token; the old leader's: a prefix of the same.
	var lastRev float64
	for _, n := range []string{"n2", "n3", "n1"} {
		var entries []map[string]any
		for deadline := time.Now().Add(30 * time.Second); ; {
			b, err := os.ReadFile(audit(n))
			if err != nil {
				t.Fatal(err)
			}
			entries = parseJSONLines(t, string(b))
			if n == "n1" || len(entries) > 0 && entries[len(entries)-1]["op"] == "token.revoke" || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		seen := map[string]int{}
		prev := 0.0
		for _, e := range entries {
			rev := e["revision"].(float64)
			if rev <= prev {
				t.Fatalf("%s: revision %v after %v", n, rev, prev)
			}
			prev = rev
			if e["op"] != "write" {
				continue
			}
			if e["token_id"] != tokenID || e["token_name"] != "loader" {
				t.Errorf("%s: write at %v by %v (%v), want the loader token %s", n, rev, e["token_id"], e["token_name"], tokenID)
			}
			for _, r := range e["relationships"].([]any) {
				seen[strings.TrimPrefix(r.(string), "+")]++
			}
		}
		for r, c := range seen {
			if c != 1 {
				t.Errorf("%s: %s is in the audit log %d times", n, r, c)
			}
		}
		if n == "n1" {
			for j := range 20 {
				if r := fmt.Sprintf("doc:w%d#viewer@user:ana", j); seen[r] != 1 {
					t.Errorf("n1: %s, acknowledged while it led, is not in its audit log", r)
				}
			}
			continue
		}
		for r := range acked {
			if seen[r] != 1 {
				t.Errorf("%s: acknowledged %s is in the audit log %d times", n, r, seen[r])
			}
		}
		if n == "n3" && prev != lastRev {
			t.Errorf("n2's audit log ends at revision %v, n3's at %v", lastRev, prev)
		}
		lastRev = prev
	}
}
