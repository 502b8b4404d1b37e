package api_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/api"
	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/emptypb"
)

func TestAuth(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.keys = []string{"alpha-key", "beta-key"} })
	_, err := e.schema.ReadSchema(e.ctx(), &v1.ReadSchemaRequest{})
	wantCode(t, err, codes.Unauthenticated, "authorization")
	_, err = e.schema.ReadSchema(withKey(e.ctx(), "gamma-key"), &v1.ReadSchemaRequest{})
	wantCode(t, err, codes.PermissionDenied)
	_, err = e.schema.ReadSchema(withKey(e.ctx(), "alpha"), &v1.ReadSchemaRequest{})
	wantCode(t, err, codes.PermissionDenied)
	for _, k := range []string{"alpha-key", "beta-key"} {
		_, err = e.schema.WriteSchema(withKey(e.ctx(), k), &v1.WriteSchemaRequest{Schema: testSchema})
		if err != nil {
			t.Fatalf("key %s: %v", k, err)
		}
	}
	// Streams are authenticated too.
	w, _ := e.watch.Watch(e.ctx(), &v1.WatchRequest{})
	_, err = w.Recv()
	wantCode(t, err, codes.Unauthenticated)
	// Health needs no key.
	h, err := healthpb.NewHealthClient(e.conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "authzed.api.v1.PermissionsService"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", h, err)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.writeSchema(testSchema)
	e.write(opTouch, "document:a#viewer@user:ana")
	e.check(full(), "document:a", "view", "user:ana")
	_, _ = e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Resource: obj("folder:a"), Permission: "view", Subject: subj("user:ana")})

	got := gather(t, e)
	for series, want := range map[string]float64{
		`ambit_grpc_requests_total{code="FailedPrecondition",method="/authzed.api.v1.PermissionsService/CheckPermission"}`: 1,
		`ambit_grpc_requests_total{code="OK",method="/authzed.api.v1.PermissionsService/CheckPermission"}`:                 1,
		`ambit_grpc_requests_total{code="OK",method="/authzed.api.v1.PermissionsService/WriteRelationships"}`:              1,
		`ambit_grpc_request_duration_seconds{method="/authzed.api.v1.PermissionsService/CheckPermission"}`:                 2, // sample count
		`ambit_raft_state{}`:       3,
		`ambit_applied_revision{}`: float64(e.store.AppliedRevision()),
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
	if got["ambit_check_dispatches_total{}"] < 1 {
		t.Errorf("ambit_check_dispatches_total = %v, want > 0", got["ambit_check_dispatches_total{}"])
	}
}

// gather flattens the registry: "name{l1="v1",...}" -> value (sample count
// for histograms).
func gather(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// A handler that panics answers Internal and the server keeps serving.
func TestRecoverFromPanic(t *testing.T) {
	e := newEnv(t)
	g := grpc.NewServer(e.srv.ServerOptions(api.ServeOptions{})...)
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: "test.Panic",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Boom", Handler: func(_ any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			req := new(emptypb.Empty)
			if err := dec(req); err != nil {
				return nil, err
			}
			return in(ctx, req, &grpc.UnaryServerInfo{FullMethod: "/test.Panic/Boom"}, func(context.Context, any) (any, error) { panic("boom") })
		}}},
	}, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 2 {
		err = conn.Invoke(e.ctx(), "/test.Panic/Boom", new(emptypb.Empty), new(emptypb.Empty))
		wantCode(t, err, codes.Internal, "panic")
	}
}
