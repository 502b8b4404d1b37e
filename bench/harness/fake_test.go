package harness

import (
	"context"
	"errors"
	"io"
	"iter"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ambit-authz/ambit/bench/memindex"
	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// fake is a tiny authzed v1 server over the engine and an in-memory index
// that is rebuilt on every write: enough to drive the harness in tests.
type fake struct {
	v1.UnimplementedPermissionsServiceServer
	v1.UnimplementedSchemaServiceServer

	eng *engine.Engine

	mu   sync.RWMutex
	s    *schema.Schema
	rels map[tuple.Key]tuple.Relationship
	rev  tuple.Revision
	view *engine.View
	// base indexes the imported relationships; later writes go to written,
	// read through a small scanning reader on top.
	base    *memindex.Index
	written []tuple.Relationship
	// writeSizes holds the number of updates of each WriteRelationships.
	writeSizes []int
	// touched and deleted hold the relationships written and deleted by
	// WriteRelationships, in order.
	touched, deleted []tuple.Relationship

	// failEvery > 0 fails every failEvery-th check with Unavailable.
	failEvery int64
	checks    atomic.Int64
	// noImport answers ImportBulkRelationships with Unimplemented.
	noImport bool
	// invert answers every check wrongly.
	invert bool
	// sawToken records the last authorization header.
	sawToken atomic.Value
}

func startFake(t *testing.T, f *fake) *Client {
	t.Helper()
	eng, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	f.eng, f.rels = eng, map[tuple.Key]tuple.Relationship{}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if md, ok := metadataFrom(ctx); ok {
			f.sawToken.Store(md)
		}
		return h(ctx, req)
	}))
	v1.RegisterPermissionsServiceServer(srv, f)
	v1.RegisterSchemaServiceServer(srv, f)
	go srv.Serve(lis)
	c, err := Dial("passthrough:///fake", DialOptions{Insecure: true, Token: "sekret", Extra: []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}})
	if err != nil {
		t.Fatal(err)
	}
	c.Endpoint = "fake"
	t.Cleanup(func() { c.Close(); srv.Stop(); eng.Close() })
	return c
}

func (f *fake) current() (*engine.View, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.view == nil {
		return nil, status.Error(codes.FailedPrecondition, "no schema")
	}
	return f.view, nil
}

// rebuild makes a new view of f.rels, re-indexing everything when all is
// set and otherwise only the relationships written since; f.mu must be held
// for writing.
func (f *fake) rebuild(all bool) {
	if all || f.base == nil {
		rels := make([]tuple.Relationship, 0, len(f.rels))
		for _, r := range f.rels {
			rels = append(rels, r)
		}
		f.base, f.written = memindex.New(rels), nil
	}
	f.rev++
	// The zero Source: each view is its own data set to the engine's caches.
	f.view = f.eng.View(f.s, layered{f.base, enginetest.NewMemory(f.written...)}, engine.Snapshot{Revision: f.rev})
}

// layered reads from two readers (a relationship in both is yielded twice,
// which the engine tolerates).
type layered [2]engine.Reader

func (l layered) Query(ctx context.Context, flt tuple.Filter) iter.Seq2[tuple.Relationship, error] {
	return func(yield func(tuple.Relationship, error) bool) {
		for _, r := range l {
			for rel, err := range r.Query(ctx, flt) {
				if !yield(rel, err) || err != nil {
					return
				}
			}
		}
	}
}

func (f *fake) WriteSchema(_ context.Context, req *v1.WriteSchemaRequest) (*v1.WriteSchemaResponse, error) {
	s, err := schema.Compile("schema.zed", req.GetSchema())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s = s
	f.rebuild(true)
	return &v1.WriteSchemaResponse{}, nil
}

func fromObject(o *v1.ObjectReference) tuple.ObjectRef {
	return tuple.ObjectRef{Type: o.GetObjectType(), ID: o.GetObjectId()}
}

func fromSubject(s *v1.SubjectReference) tuple.SubjectRef {
	return tuple.SubjectRef{Type: s.GetObject().GetObjectType(), ID: s.GetObject().GetObjectId(), Relation: s.GetOptionalRelation()}
}

func fromRel(r *v1.Relationship) tuple.Relationship {
	out := tuple.Relationship{Resource: fromObject(r.GetResource()), Relation: r.GetRelation(), Subject: fromSubject(r.GetSubject())}
	if c := r.GetOptionalCaveat(); c != nil {
		out.Caveat = &tuple.Caveat{Name: c.GetCaveatName(), Context: c.GetContext().AsMap()}
	}
	return out
}

func ctxMap(s *structpb.Struct) map[string]any {
	if s == nil {
		return nil
	}
	return s.AsMap()
}

var toProto = map[engine.Permissionship]v1.CheckPermissionResponse_Permissionship{
	engine.NoPermission:          v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION,
	engine.HasPermission:         v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION,
	engine.ConditionalPermission: v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION,
}

func (f *fake) check(ctx context.Context, res *v1.ObjectReference, perm string, sub *v1.SubjectReference, c *structpb.Struct) (v1.CheckPermissionResponse_Permissionship, error) {
	if n := f.checks.Add(1); f.failEvery > 0 && n%f.failEvery == 0 {
		return 0, status.Error(codes.Unavailable, "injected failure")
	}
	v, err := f.current()
	if err != nil {
		return 0, err
	}
	r, err := v.Check(ctx, engine.CheckRequest{Resource: fromObject(res), Permission: perm, Subject: fromSubject(sub), Context: ctxMap(c)})
	if err != nil {
		return 0, status.Error(codes.InvalidArgument, err.Error())
	}
	p := r.Permissionship
	if f.invert {
		p = map[engine.Permissionship]engine.Permissionship{engine.NoPermission: engine.HasPermission}[p]
	}
	return toProto[p], nil
}

func (f *fake) CheckPermission(ctx context.Context, req *v1.CheckPermissionRequest) (*v1.CheckPermissionResponse, error) {
	p, err := f.check(ctx, req.GetResource(), req.GetPermission(), req.GetSubject(), req.GetContext())
	if err != nil {
		return nil, err
	}
	return &v1.CheckPermissionResponse{Permissionship: p}, nil
}

func (f *fake) CheckBulkPermissions(ctx context.Context, req *v1.CheckBulkPermissionsRequest) (*v1.CheckBulkPermissionsResponse, error) {
	out := &v1.CheckBulkPermissionsResponse{}
	for _, it := range req.GetItems() {
		p, err := f.check(ctx, it.GetResource(), it.GetPermission(), it.GetSubject(), it.GetContext())
		if err != nil {
			return nil, err
		}
		out.Pairs = append(out.Pairs, &v1.CheckBulkPermissionsPair{Request: it,
			Response: &v1.CheckBulkPermissionsPair_Item{Item: &v1.CheckBulkPermissionsResponseItem{Permissionship: p}}})
	}
	return out, nil
}

func (f *fake) LookupResources(req *v1.LookupResourcesRequest, stream grpc.ServerStreamingServer[v1.LookupResourcesResponse]) error {
	v, err := f.current()
	if err != nil {
		return err
	}
	for r, err := range v.LookupResources(stream.Context(), engine.LookupResourcesRequest{ResourceType: req.GetResourceObjectType(),
		Permission: req.GetPermission(), Subject: fromSubject(req.GetSubject()), Context: ctxMap(req.GetContext()), Limit: int(req.GetOptionalLimit())}) {
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if err := stream.Send(&v1.LookupResourcesResponse{ResourceObjectId: r.ID}); err != nil {
			return err
		}
	}
	return nil
}

func (f *fake) LookupSubjects(req *v1.LookupSubjectsRequest, stream grpc.ServerStreamingServer[v1.LookupSubjectsResponse]) error {
	v, err := f.current()
	if err != nil {
		return err
	}
	for r, err := range v.LookupSubjects(stream.Context(), engine.LookupSubjectsRequest{Resource: fromObject(req.GetResource()),
		Permission: req.GetPermission(), SubjectType: req.GetSubjectObjectType(), Context: ctxMap(req.GetContext())}) {
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if err := stream.Send(&v1.LookupSubjectsResponse{Subject: &v1.ResolvedSubject{SubjectObjectId: r.ID}}); err != nil {
			return err
		}
	}
	return nil
}

func (f *fake) WriteRelationships(_ context.Context, req *v1.WriteRelationshipsRequest) (*v1.WriteRelationshipsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.s == nil {
		return nil, status.Error(codes.FailedPrecondition, "no schema")
	}
	f.writeSizes = append(f.writeSizes, len(req.GetUpdates()))
	all := false
	for _, u := range req.GetUpdates() {
		r := fromRel(u.GetRelationship())
		if err := engine.ValidateRelationship(f.s, r); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		if u.GetOperation() == v1.RelationshipUpdate_OPERATION_DELETE {
			if _, ok := f.rels[r.Key()]; !ok {
				return nil, status.Errorf(codes.FailedPrecondition, "the fake deletes only what it holds: %s", r)
			}
			delete(f.rels, r.Key())
			f.deleted = append(f.deleted, r)
			all = true // the layers may hold it
			continue
		}
		f.rels[r.Key()] = r
		f.written = append(f.written, r)
		f.touched = append(f.touched, r)
	}
	f.rebuild(all)
	return &v1.WriteRelationshipsResponse{}, nil
}

func (f *fake) ImportBulkRelationships(stream grpc.ClientStreamingServer[v1.ImportBulkRelationshipsRequest, v1.ImportBulkRelationshipsResponse]) error {
	if f.noImport {
		return status.Error(codes.Unimplemented, "no import here")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := uint64(0)
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		for _, pr := range req.GetRelationships() {
			r := fromRel(pr)
			if err := engine.ValidateRelationship(f.s, r); err != nil {
				return status.Error(codes.InvalidArgument, err.Error())
			}
			if _, dup := f.rels[r.Key()]; dup {
				return status.Errorf(codes.AlreadyExists, "%s exists", r.Key())
			}
			f.rels[r.Key()] = r
			n++
		}
	}
	f.rebuild(true)
	return stream.SendAndClose(&v1.ImportBulkRelationshipsResponse{NumLoaded: n})
}

func metadataFrom(ctx context.Context) (string, bool) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok || len(md.Get("authorization")) == 0 {
		return "", false
	}
	return md.Get("authorization")[0], true
}

// syncBuffer is a bytes.Buffer safe for the progress goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
