package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/api/apitoken"
	"github.com/ambit-authz/ambit/api/console"
	"github.com/ambit-authz/ambit/internal/testserver"
)

// Credentials of the test servers.
const (
	adminKey  = "console-admin-key"
	readerKey = "console-reader-key" // holds only the read and check scopes
)

// scopedAuth is the real Authenticator with extra credentials of narrower
// scopes: the managed API tokens stand-in until they land (the gRPC side
// accepts them as preshared keys, so what refuses a reader's write here is
// the console's own scope check; with real tokens both refuse).
type scopedAuth struct {
	*api.Authenticator
	scoped map[string][]apitoken.Scope
}

func (a scopedAuth) Authenticate(authorization string) (api.Caller, error) {
	c, err := a.Authenticator.Authenticate(authorization)
	if err != nil {
		return c, err
	}
	for key, scopes := range a.scoped {
		if authorization == "Bearer "+key {
			return api.Caller{Name: "reader", TokenID: "0000000000000001", Scopes: scopes}, nil
		}
	}
	return c, nil
}

func (a scopedAuth) AuthorizeHTTP(r *http.Request, need apitoken.Scope) (api.Caller, error) {
	c, err := a.Authenticate(r.Header.Get("Authorization"))
	if err != nil {
		return c, err
	}
	if !c.Allows(need) {
		return api.Caller{}, permissionDenied(need)
	}
	return c, nil
}

// env is a one-node server (internal/testserver: raft, store, the gRPC API
// on loopback) with the console in front of it on a loopback HTTP server.
type env struct {
	srv *testserver.Server
	h   *console.Handler
	url string // the console's base URL, ending in /ui/
}

type envOptions struct {
	keys    []string
	maxBody int64
	auth    console.Authenticator // default: scopedAuth over keys
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.keys == nil {
		o.keys = []string{adminKey, readerKey}
	}
	srv := testserver.Start(t, testserver.Options{Keys: o.keys})
	if o.auth == nil {
		o.auth = scopedAuth{Authenticator: api.NewAuthenticator(o.keys),
			scoped: map[string][]apitoken.Scope{readerKey: {apitoken.Read, apitoken.Check}}}
	}
	// The console dials the node's gRPC listener itself, as serve does.
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h, err := console.New(console.Config{Auth: o.auth, Conn: conn, Metrics: srv.Registry, MaxBodyBytes: o.maxBody,
		Cluster: func(ctx context.Context, _ string) ([]console.Member, error) {
			ms, err := srv.Node.Status()
			if err != nil {
				return nil, err
			}
			out := make([]console.Member, len(ms))
			for i, m := range ms {
				out[i] = console.Member{ID: m.ID, Role: m.Role, GRPCAddr: m.GRPCAddr, RaftAddr: m.RaftAddr, Voter: m.Voter, Applied: int64(srv.Store.AppliedRevision())}
			}
			return out, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, h)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return &env{srv: srv, h: h, url: hs.URL + console.Prefix}
}
