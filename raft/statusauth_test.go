package raft

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// Config.StatusAuth opens the cluster member list, and nothing else, to a
// credential it finds an admin's (the server's managed API tokens): a
// non-admin one is PermissionDenied, a refused one unauthenticated with
// the reason; the cluster credential and preshared keys work as before
// without asking it, and every other cluster call refuses what only the
// hook accepts.
func TestStatusAuth(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	hook := func(authorization string) (bool, error) {
		mu.Lock()
		asked = append(asked, authorization)
		mu.Unlock()
		switch authorization {
		case "Bearer admin-token":
			return true, nil
		case "Bearer reader-token":
			return false, nil
		}
		return false, status.Error(codes.Unauthenticated, "API token refused: token 42 was revoked")
	}
	slow := func(cfg *Config) { // a loaded machine must not lose the only leader
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 2*time.Second, 2*time.Second, time.Second
		cfg.ApplyTimeout = 30 * time.Second
	}
	c := newTestCluster(t, 1, fakeStores(), func(cfg *Config) { slow(cfg); cfg.StatusAuth = hook })
	plain := newTestCluster(t, 1, fakeStores(), slow) // no hook
	addr, plainAddr := c.nodes[c.waitLeader()].cfg.GRPCAddr, plain.nodes[plain.waitLeader()].cfg.GRPCAddr
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for _, tc := range []struct {
		name, cred, addr string
		check            func(error) bool
		want             string
	}{
		{"preshared key", testKey, addr, func(err error) bool { return err == nil }, "members"},
		{"admin token", "admin-token", addr, func(err error) bool { return err == nil }, "members"},
		{"token without admin", "reader-token", addr, func(err error) bool {
			return err != nil && !errors.Is(err, ErrUnauthenticated) && strings.Contains(err.Error(), `lacks the "admin" scope`)
		}, "refused for the missing admin scope"},
		{"refused token", "revoked-token", addr, func(err error) bool {
			return errors.Is(err, ErrUnauthenticated) && strings.Contains(err.Error(), "revoked")
		}, "ErrUnauthenticated naming the revocation"},
		{"no credential", "", addr, func(err error) bool { return errors.Is(err, ErrUnauthenticated) }, "ErrUnauthenticated"},
		{"admin token, no hook", "admin-token", plainAddr, func(err error) bool { return errors.Is(err, ErrUnauthenticated) }, "ErrUnauthenticated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := NewClient(tc.cred)
			defer cl.Close()
			ms, err := cl.Status(ctx, tc.addr)
			if !tc.check(err) {
				t.Fatalf("Status with %q = %v, %v; want %s", tc.cred, ms, err, tc.want)
			}
			if err == nil && (len(ms) != 1 || ms[0].Role != "leader") {
				t.Fatalf("Status with %q = %+v, want the one leader", tc.cred, ms)
			}
		})
	}

	// Remove (a membership change) takes the admin token: it passes
	// authentication and fails on the unknown member; a reader token lacks
	// the scope.
	if err := admin0(ctx, addr, "admin-token"); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("Remove of an unknown member with an admin token = %v, want ErrUnknownNode (authenticated)", err)
	}
	if err := admin0(ctx, addr, "reader-token"); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Errorf("Remove with a reader token = %v, want a refusal naming the admin scope", err)
	}
	reader := NewClient("reader-token")
	defer reader.Close()
	if err := reader.Promote(ctx, addr, "nobody"); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Errorf("Promote with a reader token = %v, want a refusal naming the admin scope", err)
	}

	// Every node-to-node call refuses the admin token: the hook opens the
	// member list and membership changes only.
	admin := NewClient("admin-token")
	defer admin.Close()
	long := strings.Repeat("x", 200)
	big := make([]tuple.Relationship, 6000) // encodes to more than forwardChunk: ForwardChunks
	for i := range big {
		big[i] = rel("doc", fmt.Sprintf("%s-%d", long, i), "viewer", "user", "ana")
	}
	if data, err := Encode(ImportCommand(big)); err != nil || len(data) <= forwardChunk {
		t.Fatalf("the import encodes to %d bytes (%v), want more than %d", len(data), err, forwardChunk)
	}
	for name, call := range map[string]func() error{
		"Forward": func() error {
			_, err := admin.Forward(ctx, addr, WriteCommand([]store.Update{touch("by-token")}, nil))
			return err
		},
		"ForwardChunks": func() error { _, err := admin.Forward(ctx, addr, ImportCommand(big)); return err },
		"ReadIndex":     func() error { _, err := admin.readIndex(ctx, addr); return err },
		"Join": func() error {
			return admin.Join(ctx, addr, MemberInfo{ID: "intruder", RaftAddr: "127.0.0.1:1", GRPCAddr: "127.0.0.1:2"})
		},
		"ClusterID": func() error { _, err := admin.clusterID(ctx, addr); return err },
	} {
		if err := call(); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s with a credential only StatusAuth accepts = %v, want ErrUnauthenticated", name, err)
		}
	}
	if got := contents(c.nodes[0].st); len(got) != 0 {
		t.Errorf("the store holds %d relationships after the refused forwards", len(got))
	}
	if ms, _ := c.nodes[0].n.Status(); len(ms) != 1 {
		t.Errorf("members after the refused join: %+v", ms)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"Bearer admin-token", "Bearer reader-token", "Bearer revoked-token", "Bearer admin-token", "Bearer reader-token", "Bearer reader-token"}
	if !slices.Equal(asked, want) {
		t.Errorf("StatusAuth was asked about %q, want %q (operator calls whose credential the node does not know, only)", asked, want)
	}
}

// admin0 removes member "nobody" through addr with credential cred.
func admin0(ctx context.Context, addr, cred string) error {
	cl := NewClient(cred)
	defer cl.Close()
	return cl.Remove(ctx, addr, "nobody")
}
