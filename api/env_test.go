package api_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/internal/testserver"
	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// env is one single-node ambit server (in-memory badger store, raft on
// loopback) serving the API on a loopback gRPC listener, and clients.
type env struct {
	t      testing.TB
	store  *store.Store
	node   *raft.Node
	srv    *api.Server
	reg    *prometheus.Registry
	addr   string
	conn   *grpc.ClientConn
	perms  v1.PermissionsServiceClient
	schema v1.SchemaServiceClient
	watch  v1.WatchServiceClient
}

type envOptions struct {
	keys      []string
	limits    api.Limits
	clusterID string
	// applyTimeout, when set, is the node's raft ApplyTimeout (tests that
	// write megabytes give it room on a loaded machine).
	applyTimeout time.Duration
	// node, when set, wraps the raft node the API sees.
	node func(*raft.Node) api.Node
}

func newEnv(t testing.TB, opts ...func(*envOptions)) *env {
	t.Helper()
	o := envOptions{clusterID: "test-cluster", limits: api.Limits{ExactSnapshotWait: 50 * time.Millisecond, MaxFreshnessWait: 2 * time.Second}}
	for _, f := range opts {
		f(&o)
	}
	ts := testserver.Start(t, testserver.Options{Keys: o.keys, Limits: o.limits, ClusterID: o.clusterID, ApplyTimeout: o.applyTimeout, WrapNode: o.node})
	return &env{t: t, store: ts.Store, node: ts.Node, srv: ts.API, reg: ts.Registry, addr: ts.Addr, conn: ts.Conn,
		perms: v1.NewPermissionsServiceClient(ts.Conn), schema: v1.NewSchemaServiceClient(ts.Conn), watch: v1.NewWatchServiceClient(ts.Conn)}
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

const testSchema = `
caveat weekday(day string) {
	day != "saturday"
}

definition user {}

definition group {
	relation member: user | group#member
}

definition document {
	relation owner: user
	relation viewer: user | user:* | group#member | user with weekday
	relation banned: user
	permission view = (viewer + owner) - banned
	permission edit = owner
}
`

func (e *env) writeSchema(text string) *v1.ZedToken {
	e.t.Helper()
	r, err := e.schema.WriteSchema(e.ctx(), &v1.WriteSchemaRequest{Schema: text})
	if err != nil {
		e.t.Fatalf("WriteSchema: %v", err)
	}
	return r.GetWrittenAt()
}

func rel(s string) *v1.Relationship {
	r := tuple.MustParse(s)
	out := &v1.Relationship{
		Resource: &v1.ObjectReference{ObjectType: r.Resource.Type, ObjectId: r.Resource.ID},
		Relation: r.Relation,
		Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: r.Subject.Type, ObjectId: r.Subject.ID}, OptionalRelation: r.Subject.Relation},
	}
	if r.Caveat != nil {
		out.OptionalCaveat = &v1.ContextualizedCaveat{CaveatName: r.Caveat.Name}
	}
	return out
}

func update(op v1.RelationshipUpdate_Operation, s string) *v1.RelationshipUpdate {
	return &v1.RelationshipUpdate{Operation: op, Relationship: rel(s)}
}

func (e *env) write(op v1.RelationshipUpdate_Operation, rels ...string) *v1.ZedToken {
	e.t.Helper()
	req := &v1.WriteRelationshipsRequest{}
	for _, r := range rels {
		req.Updates = append(req.Updates, update(op, r))
	}
	resp, err := e.perms.WriteRelationships(e.ctx(), req)
	if err != nil {
		e.t.Fatalf("WriteRelationships %v: %v", rels, err)
	}
	return resp.GetWrittenAt()
}

func obj(s string) *v1.ObjectReference {
	o, err := tuple.ParseObject(s)
	if err != nil {
		panic(err)
	}
	return &v1.ObjectReference{ObjectType: o.Type, ObjectId: o.ID}
}

func subj(s string) *v1.SubjectReference {
	sub, err := tuple.ParseSubject(s)
	if err != nil {
		panic(err)
	}
	return &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: sub.Type, ObjectId: sub.ID}, OptionalRelation: sub.Relation}
}

func full() *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
}

func fresh(z *v1.ZedToken) *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: z}}
}

func exact(z *v1.ZedToken) *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: z}}
}

func latency() *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}
}

func (e *env) check(c *v1.Consistency, res, perm, sub string) v1.CheckPermissionResponse_Permissionship {
	e.t.Helper()
	r, err := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: c, Resource: obj(res), Permission: perm, Subject: subj(sub)})
	if err != nil {
		e.t.Fatalf("CheckPermission %s#%s@%s: %v", res, perm, sub, err)
	}
	return r.GetPermissionship()
}

// wantCode fails unless err is a status with code c whose message contains
// every fragment.
func wantCode(t *testing.T, err error, c codes.Code, fragments ...string) {
	t.Helper()
	st, _ := status.FromError(err)
	if err == nil || st.Code() != c {
		t.Fatalf("got %v, want code %v", err, c)
	}
	for _, f := range fragments {
		if !strings.Contains(st.Message(), f) {
			t.Fatalf("message %q does not mention %q", st.Message(), f)
		}
	}
}

// drain reads a server stream to the end.
func drain[T any](t testing.TB, recv func() (T, error)) ([]T, error) {
	t.Helper()
	var out []T
	for {
		m, err := recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

func withKey(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}
