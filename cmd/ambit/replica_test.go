package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Three voters and two read replicas (issue 27): the replicas join as
// non-voters, `cluster status` lists them with their lag, a Watch on a
// replica sees the leader's writes, an at_least_as_fresh read on a replica
// right after a write is never stale (before and after the leader stops),
// promote and demote work from the CLI, and when two voters are down the
// cluster has no quorum (the replicas do not vote) while the replicas go on
// answering minimize_latency reads, marked ambit-stale, and refuse
// fully_consistent ones.
func TestReadReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	key := serveConfig{keys: []string{"k"}}
	n1, stop1 := startServe(t, key)
	join := func(id string, replica bool) (serveAddrs, func() error) {
		c := key
		c.nodeID, c.join, c.replica.readReplica, c.replica.maxLag = id, []string{n1.grpc}, replica, 1000
		return startServe(t, c)
	}
	n2, stop2 := join("n2", false)
	join("n3", false)
	r1, _ := join("r1", true)
	r2, _ := join("r2", true)
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
	if _, err := cli(n1.grpc, "schema", "write", schemaFile); err != nil {
		t.Fatalf("schema write: %v", err)
	}

	st, err := cli(r1.grpc, "cluster", "status")
	if err != nil {
		t.Fatalf("cluster status: %v", err)
	}
	for _, want := range []string{"n1\tleader", "voter=true", "r1\treplica", "r2\treplica", "voter=false", "lag="} {
		if !strings.Contains(st, want) {
			t.Fatalf("cluster status lacks %q:\n%s", want, st)
		}
	}

	auth := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer k")
	// A Watch on a replica sees writes made on the leader.
	watch, err := v1.NewWatchServiceClient(dial(t, r1.grpc)).Watch(auth, &v1.WatchRequest{OptionalObjectTypes: []string{"doc"}})
	if err != nil {
		t.Fatal(err)
	}
	// at_least_as_fresh after a write (through via, forwarded to whoever
	// leads): never stale, on either replica and through a balanced
	// --endpoint list of both.
	fresh := func(via string, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			token, err := cli(via, "rel", "create", fmt.Sprintf("doc:d%d#viewer@user:ana", i))
			if err != nil {
				t.Fatalf("rel create %d: %v", i, err)
			}
			for _, ep := range []string{r1.grpc, r2.grpc, r1.grpc + "," + r2.grpc} {
				if got, err := cli(ep, "check", fmt.Sprintf("doc:d%d", i), "viewer", "user:ana", "--consistency", "fresh:"+token); err != nil || got != "true" {
					t.Fatalf("write %d: check on %s at least as fresh as the write's token = %q, %v; want true", i, ep, got, err)
				}
			}
		}
	}
	fresh(n1.grpc, 0, 20)
	for seen := false; !seen; {
		resp, err := watch.Recv()
		if err != nil {
			t.Fatalf("Watch on a replica: %v", err)
		}
		for _, u := range resp.GetUpdates() {
			seen = seen || u.GetRelationship().GetResource().GetObjectId() == "d0"
		}
	}
	if got, err := cli(r2.grpc, "check", "doc:d0", "viewer", "user:ana", "--consistency", "full"); err != nil || got != "true" {
		t.Fatalf("fully_consistent check on a replica = %q, %v", got, err)
	}
	// Writes through a replica are forwarded.
	if _, err := cli(r1.grpc, "rel", "create", "doc:via-replica#viewer@user:ana"); err != nil {
		t.Fatalf("write through a replica: %v", err)
	}

	// Promote r2 (asking r1), then demote it again.
	if out, err := cli(r1.grpc, "cluster", "promote", "r2"); err != nil || out != "promoted r2" {
		t.Fatalf("promote: %q, %v", out, err)
	}
	if st, _ := cli(n1.grpc, "cluster", "status"); !strings.Contains(st, "r2\tfollower") {
		t.Fatalf("r2 is not a voting follower after promotion:\n%s", st)
	}
	if out, err := cli(r2.grpc, "cluster", "demote", "r2"); err != nil || out != "demoted r2" {
		t.Fatalf("demote: %q, %v", out, err)
	}
	if st, _ := cli(n1.grpc, "cluster", "status"); !strings.Contains(st, "r2\treplica") {
		t.Fatalf("r2 is not a replica after demotion:\n%s", st)
	}

	// The leader stops: the replicas follow the new leader, and fresh reads
	// on them after writes through n2 are still never stale.
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	fresh(n2.grpc, 20, 40)

	// Two of three voters are down: no quorum, the replicas do not make one.
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	check := func(addr string, c *v1.Consistency) (*v1.CheckPermissionResponse, metadata.MD, error) {
		var hdr metadata.MD
		cctx, cancel := context.WithTimeout(auth, 5*time.Second)
		defer cancel()
		resp, err := v1.NewPermissionsServiceClient(dial(t, addr)).CheckPermission(cctx, &v1.CheckPermissionRequest{
			Consistency: c,
			Resource:    &v1.ObjectReference{ObjectType: "doc", ObjectId: "d39"}, Permission: "viewer",
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ana"}},
		}, grpc.Header(&hdr))
		return resp, hdr, err
	}
	latency := &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}
	for _, r := range []serveAddrs{r1, r2} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, hdr, err := check(r.grpc, latency)
			if err != nil || resp.GetPermissionship() != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
				t.Fatalf("minimize_latency check on a replica without quorum: %v, %v", resp, err)
			}
			if s := hdr.Get(staleHeader); len(s) == 1 && strings.Contains(s[0], "no raft leader") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica answers without quorum are not marked %s (header %v)", staleHeader, hdr)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_, _, err := check(r.grpc, &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}})
		if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
			t.Fatalf("fully_consistent check on a replica without quorum = %v, want Unavailable or DeadlineExceeded", err)
		}
		// Still ready: it serves reads, which is what a replica is for.
		resp, err := http.Get("http://" + r.http + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("replica /readyz without quorum = %d, want 200", resp.StatusCode)
		}
	}
	// The voter left alone leads nothing: a write through a replica fails.
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	var out, errOut bytes.Buffer
	if err := run(wctx, []string{"rel", "create", "doc:lost#viewer@user:ana", "--endpoint", r1.grpc, "--token", "k"}, &out, &errOut); err == nil {
		t.Fatal("a write committed with 1 of 3 voters alive (the replicas voted)")
	}
}

func TestSelfJoin(t *testing.T) {
	for _, tc := range []struct {
		join      []string
		advertise string
		want      []string
	}{
		{[]string{"a:1"}, "", []string{"a:1"}},
		{[]string{"a:1", "b:1"}, "a:1", nil},                           // first: bootstrap
		{[]string{"a:1", "b:1", "c:1"}, "b:1", []string{"a:1", "c:1"}}, // later: skipped
		{[]string{"a:1"}, "b:1", []string{"a:1"}},
		{nil, "a:1", nil},
	} {
		if got := selfJoin(tc.join, tc.advertise); strings.Join(got, ",") != strings.Join(tc.want, ",") || (got == nil) != (tc.want == nil) {
			t.Errorf("selfJoin(%q, %q) = %q, want %q", tc.join, tc.advertise, got, tc.want)
		}
	}
}

func TestReplicaReady(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		contact  time.Time
		lag, max uint64
		want     string // "" ready
	}{
		{now, 0, 1000, ""},
		{now, 1000, 1000, ""},
		{now, 1001, 1000, "1001 revisions behind the commit index (--max-replica-lag 1000)"},
		{now, 1, 0, "1 revisions behind"},
		{time.Time{}, 0, 1000, "not heard from a leader"},
		{now.Add(-time.Hour), 0, 1000, ""}, // no leader for long: still serves reads, marked stale
	} {
		err := replicaReady(tc.contact, tc.lag, tc.max)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("replicaReady(%v, lag %d, max %d) = %v, want %q", tc.contact, tc.lag, tc.max, err, tc.want)
		}
	}
}
