package api_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestConsistencyModes(t *testing.T) {
	e := newEnv(t)
	e.writeSchema(testSchema)
	t1 := e.write(opTouch, "document:a#viewer@user:ana")
	t2 := e.write(opDelete, "document:a#viewer@user:ana")

	// at_exact_snapshot reads the past; at_least_as_fresh and the others the present.
	if got := e.check(exact(t1), "document:a", "view", "user:ana"); got != has {
		t.Errorf("at_exact_snapshot(before delete) = %v, want HAS", got)
	}
	for name, c := range map[string]*v1.Consistency{"exact t2": exact(t2), "fresh t1": fresh(t1), "fresh t2": fresh(t2), "full": full(), "latency": latency()} {
		if got := e.check(c, "document:a", "view", "user:ana"); got != no {
			t.Errorf("%s = %v, want NO", name, got)
		}
	}
	// The revision answered from is at least the token's.
	r, err := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: fresh(t2), Resource: obj("document:a"), Permission: "view", Subject: subj("user:ana")})
	if err != nil {
		t.Fatal(err)
	}
	if revOf(t, r.GetCheckedAt()) < revOf(t, t2) {
		t.Errorf("checked_at %d is older than at_least_as_fresh %d", revOf(t, r.GetCheckedAt()), revOf(t, t2))
	}
	if r, _ := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: exact(t1), Resource: obj("document:a"), Permission: "view", Subject: subj("user:ana")}); revOf(t, r.GetCheckedAt()) != revOf(t, t1) {
		t.Errorf("at_exact_snapshot answered at %d, want %d", revOf(t, r.GetCheckedAt()), revOf(t, t1))
	}

	// A token from the future: at_exact_snapshot fails fast, at_least_as_fresh
	// waits up to the deadline.
	future := tokenAt(t, t2, 1_000_000)
	_, err = e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: exact(future), Resource: obj("document:a"), Permission: "view", Subject: subj("user:ana")})
	wantCode(t, err, codes.FailedPrecondition, "newer than")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = e.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{Consistency: fresh(future), Resource: obj("document:a"), Permission: "view", Subject: subj("user:ana")})
	if status.Code(err) != codes.DeadlineExceeded || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("at_least_as_fresh(future) = %v after %v, want DeadlineExceeded after the deadline", err, time.Since(start))
	}
	// A write that lands while at_least_as_fresh waits releases it.
	next := tokenAt(t, t2, 0)
	done := make(chan error, 1)
	go func() {
		_, err := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: fresh(next), Resource: obj("document:a"), Permission: "view", Subject: subj("user:bob")})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	e.write(opTouch, "document:a#viewer@user:bob")
	if err := <-done; err != nil {
		t.Fatalf("at_least_as_fresh(next revision) = %v", err)
	}

	// Malformed and foreign tokens are refused with InvalidArgument.
	other := newEnv(t, func(o *envOptions) { o.clusterID = "another-cluster" })
	other.writeSchema(testSchema)
	foreign := other.write(opTouch, "document:a#viewer@user:ana")
	for name, c := range map[string]struct {
		tok  *v1.ZedToken
		frag string
	}{
		"foreign":   {foreign, "different cluster"},
		"not b64":   {&v1.ZedToken{Token: "!!!"}, "base64"},
		"version":   {&v1.ZedToken{Token: base64.RawURLEncoding.EncodeToString([]byte{9, 1, 2, 3, 4, 5, 6, 7, 8, 1})}, "version 9"},
		"truncated": {&v1.ZedToken{Token: base64.RawURLEncoding.EncodeToString([]byte{1, 2, 3})}, "truncated"},
	} {
		for _, cons := range []*v1.Consistency{fresh(c.tok), exact(c.tok)} {
			_, err := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: cons, Resource: obj("document:a"), Permission: "view", Subject: subj("user:ana")})
			t.Run(name, func(t *testing.T) { wantCode(t, err, codes.InvalidArgument, c.frag) })
		}
	}
	// The same tokens are refused by every read RPC and by Watch.
	s, _ := e.perms.ReadRelationships(e.ctx(), &v1.ReadRelationshipsRequest{Consistency: exact(foreign), RelationshipFilter: docs()})
	_, err = drain(t, s.Recv)
	wantCode(t, err, codes.InvalidArgument, "different cluster")
	w, _ := e.watch.Watch(e.ctx(), &v1.WatchRequest{OptionalStartCursor: foreign})
	_, err = w.Recv()
	wantCode(t, err, codes.InvalidArgument, "different cluster")
}

// tokenAt forges a token of the same cluster as tok at tok's revision + delta.
func tokenAt(t *testing.T, tok *v1.ZedToken, delta uint64) *v1.ZedToken {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(tok.GetToken())
	if err != nil || len(b) < 10 {
		t.Fatalf("token %q: %v", tok.GetToken(), err)
	}
	rev := revOf(t, tok) + delta + 1
	out := append([]byte{}, b[:9]...)
	for rev >= 0x80 {
		out = append(out, byte(rev)|0x80)
		rev >>= 7
	}
	out = append(out, byte(rev))
	return &v1.ZedToken{Token: base64.RawURLEncoding.EncodeToString(out)}
}

func TestSchemaGuard(t *testing.T) {
	e := newEnv(t)
	e.writeSchema(testSchema)
	e.write(opTouch, "document:a#banned@user:eve", "document:a#viewer@user:*", "document:b#viewer@group:eng#member")

	withoutBanned := strings.Replace(strings.Replace(testSchema, "relation banned: user\n", "", 1), " - banned", "", 1)
	_, err := e.schema.WriteSchema(e.ctx(), &v1.WriteSchemaRequest{Schema: withoutBanned})
	wantCode(t, err, codes.FailedPrecondition, "document#banned", "document:a#banned@user:eve")

	noWildcard := strings.Replace(testSchema, "user | user:* | group#member", "user | group#member", 1)
	_, err = e.schema.WriteSchema(e.ctx(), &v1.WriteSchemaRequest{Schema: noWildcard})
	wantCode(t, err, codes.InvalidArgument, "user:*")

	noGroups := strings.Replace(testSchema, "user | user:* | group#member", "user | user:*", 1)
	_, err = e.schema.WriteSchema(e.ctx(), &v1.WriteSchemaRequest{Schema: noGroups})
	wantCode(t, err, codes.InvalidArgument, "group#member")

	// Nothing changed.
	r, err := e.schema.ReadSchema(e.ctx(), &v1.ReadSchemaRequest{})
	if err != nil || r.GetSchemaText() != testSchema {
		t.Fatalf("schema changed by a refused write: %v", err)
	}
	// Once the relationships are gone the change is accepted, and adding a
	// type is always accepted.
	e.write(opDelete, "document:a#banned@user:eve")
	e.writeSchema(withoutBanned)
	e.writeSchema(withoutBanned + "\ndefinition folder {\n\trelation viewer: user\n}\n")
	if got := e.check(full(), "document:a", "view", "user:eve"); got != has {
		t.Fatalf("after schema change, view = %v", got)
	}
}

// revOf decodes the revision of a ZedToken (version 1: 0x01, 8 cluster
// bytes, uvarint revision).
func revOf(t *testing.T, tok *v1.ZedToken) uint64 {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(tok.GetToken())
	if err != nil || len(b) < 10 || b[0] != 1 {
		t.Fatalf("token %q: %v", tok.GetToken(), err)
	}
	var rev uint64
	var shift uint
	for _, c := range b[9:] {
		rev |= uint64(c&0x7f) << shift
		shift += 7
	}
	return rev
}
