package api

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/ambit-authz/ambit/api/apitoken"
	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
)

// ServeOptions configure the gRPC server around the API.
type ServeOptions struct {
	// PresharedKeys are accepted as "authorization: Bearer KEY". Empty
	// disables authentication.
	PresharedKeys []string
	// MaxRecvMsgSize bounds a request message in bytes; default 4 MiB + 64 KiB
	// (a maximal schema plus framing).
	MaxRecvMsgSize int
	// Version is the build's version, reported to SpiceDB clients that ask
	// (as ServerVersion formats it).
	Version string
	// Authenticator, when set, authenticates every call (preshared keys
	// and managed tokens) instead of one built from PresharedKeys; the same
	// one serves the HTTP front ends.
	Authenticator *Authenticator
}

// unauthenticated lists method prefixes served without a key: health checks,
// reflection, and the raft cluster service (which checks its own key).
var unauthenticated = []string{"/grpc.health.v1.Health/", "/grpc.reflection.", "/ambit.cluster.v1.Cluster/"}

// ServerOptions returns the gRPC server options for the API: interceptors
// for metrics and logging, panic recovery, authentication, request
// validation and error mapping, in that order from the outside in (request
// limits, limits.go, sit just inside validation).
func (s *Server) ServerOptions(o ServeOptions) []grpc.ServerOption {
	if o.MaxRecvMsgSize <= 0 {
		o.MaxRecvMsgSize = 4<<20 + 64<<10
	}
	auth := o.Authenticator
	if auth == nil {
		auth = NewAuthenticator(o.PresharedKeys)
	}
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(o.MaxRecvMsgSize),
		grpc.InTapHandle(s.tapTimeout), // the default deadline (limits.go)
		// A fixed pool of stream goroutines keeps their grown stacks: a
		// fresh goroutine per RPC spends a tenth of a check's CPU growing
		// its stack through the interceptors and the evaluator.
		grpc.NumStreamWorkers(uint32(128 * runtime.GOMAXPROCS(0))),
		grpc.ChainUnaryInterceptor(s.unaryChain(ServerVersion(o.Version), auth)),
		grpc.ChainStreamInterceptor(
			versionStream(ServerVersion(o.Version)),
			s.observeStream,
			s.recoverStream,
			auth.stream,
			validateStream,
			s.limitStream,
			s.mapErrorsStream,
		),
	}
}

// Register registers the authzed v1 services, ambit.v1's AccessService, gRPC health (serving) and
// reflection on g. It returns the health server so the caller can mark the
// server NOT_SERVING while it drains, or tie it to a Readiness (Publish).
func (s *Server) Register(g *grpc.Server) *health.Server {
	v1.RegisterPermissionsServiceServer(g, s)
	v1.RegisterSchemaServiceServer(g, s)
	v1.RegisterWatchServiceServer(g, s)
	ambitv1.RegisterAccessServiceServer(g, accessService{s: s})
	h := health.NewServer()
	for _, name := range healthServices {
		h.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(g, h)
	reflection.Register(g)
	return h
}

// unaryChain is the unary interceptors of ServerOptions in one: version,
// observe, recover, authenticate, validate, limit and map errors, in that
// order from the outside in (as the stream interceptors are chained). gRPC
// chains interceptors through a closure per level and call; one function
// calling the steps in turn does the same work without them.
func (s *Server) unaryChain(version string, auth *Authenticator) grpc.UnaryServerInterceptor {
	md := metadata.Pairs(responseVersionKey, version)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if asksVersion(ctx) {
			_ = grpc.SetHeader(ctx, md)
		}
		start := time.Now()
		resp, err := s.guardUnary(ctx, req, info, h, auth)
		s.observe(info.FullMethod, start, err)
		return resp, err
	}
}

// guardUnary recovers from a panic, authenticates, validates, then runs the
// handler under the limits (limitUnary), mapping its error.
func (s *Server) guardUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler, auth *Authenticator) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, s.panicked(info.FullMethod, r)
		}
	}()
	if ctx, err = auth.authorizeCall(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	if err := validate(req); err != nil {
		return nil, err
	}
	return s.limitUnary(ctx, req, info, h)
}

// observe records the latency and status code of every call and logs it.
func (s *Server) observe(method string, start time.Time, err error) {
	code := status.Code(err)
	d := time.Since(start)
	if s.metrics != nil {
		s.metrics.call(method, code, d)
	}
	level := slog.LevelDebug
	switch code {
	case codes.Internal, codes.Unknown, codes.DataLoss:
		level = slog.LevelError
	case codes.Unavailable:
		level = slog.LevelWarn
	}
	if s.log.Enabled(context.Background(), level) {
		attrs := []any{"method", method, "code", code.String(), "duration", d}
		if err != nil {
			attrs = append(attrs, "err", status.Convert(err).Message())
		}
		s.log.Log(context.Background(), level, "grpc request", attrs...)
	}
}

func (s *Server) observeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	err := h(srv, ss)
	s.observe(info.FullMethod, start, err)
	return err
}

func (s *Server) panicked(method string, r any) error {
	s.log.Error("panic in gRPC handler", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	return status.Error(codes.Internal, "internal error (the server recovered from a panic; its log has the details)")
}

func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = s.panicked(info.FullMethod, r)
		}
	}()
	return h(srv, ss)
}

// authorizeCall authenticates a gRPC call by its authorization metadata and
// requires the scope its method needs (apitoken.MethodScope); it returns ctx
// carrying the Caller. Methods in unauthenticated pass as they are.
func (a *Authenticator) authorizeCall(ctx context.Context, method string) (context.Context, error) {
	for _, p := range unauthenticated {
		if strings.HasPrefix(method, p) {
			return ctx, nil
		}
	}
	var authorization string
	// ValueFromIncomingContext copies one key's values, not the whole
	// metadata as FromIncomingContext does.
	if vals := metadata.ValueFromIncomingContext(ctx, "authorization"); len(vals) > 0 {
		authorization = vals[0]
	}
	c, err := a.authorize(authorization, apitoken.MethodScope(method), method)
	if err != nil {
		return nil, err
	}
	return WithCaller(ctx, c), nil
}

// checkBearer checks an authorization value against the keys: malformed is
// Unauthenticated, a wrong key PermissionDenied. Every key is compared in
// constant time; an empty key matches nothing.
func checkBearer(keys [][]byte, authorization string) error {
	scheme, tok, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(tok) == "" {
		return status.Error(codes.Unauthenticated, `malformed authorization metadata: expected "Bearer <preshared key or API token>"`)
	}
	given := []byte(strings.TrimSpace(tok))
	match := 0
	for _, k := range keys {
		if len(k) > 0 {
			match |= subtle.ConstantTimeCompare(given, k)
		}
	}
	if match != 1 {
		return status.Error(codes.PermissionDenied, "the preshared key is not valid for this server")
	}
	return nil
}

func (a *Authenticator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := a.authorizeCall(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, callerStream{ServerStream: ss, ctx: ctx})
}

// callerStream is a server stream whose context carries the Caller.
type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (c callerStream) Context() context.Context { return c.ctx }

// validate runs the protoc-gen-validate rules shipped with the authzed
// messages (and their hand-written additions), as SpiceDB does.
func validate(m any) error {
	if r, ok := m.(*v1.CheckPermissionRequest); ok && validCheck(r) {
		return nil // see quickvalid.go
	}
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return status.Errorf(codes.InvalidArgument, "invalid request: %v", err)
		}
	}
	if v, ok := m.(interface{ HandwrittenValidate() error }); ok {
		if err := v.HandwrittenValidate(); err != nil {
			return status.Errorf(codes.InvalidArgument, "invalid request: %v", err)
		}
	}
	return nil
}

type validatingStream struct{ grpc.ServerStream }

func (v validatingStream) RecvMsg(m any) error {
	if err := v.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return validate(m)
}

func validateStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, validatingStream{ss})
}

func (s *Server) mapErrorsStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return toStatus(s.log, info.FullMethod, h(srv, ss))
}

// rpcStatus converts an error to the google.rpc.Status carried in bulk
// responses.
func (s *Server) rpcStatus(err error) *spb.Status {
	return status.Convert(toStatus(s.log, "CheckBulkPermissions", err)).Proto()
}

func resourceExhaustedf(format string, args ...any) error {
	return status.Errorf(codes.ResourceExhausted, format, args...)
}
