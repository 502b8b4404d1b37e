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
	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
)

// adminKey is the test servers' preshared key (an admin). The read-only
// credential is a managed API token each env mints (env.reader).
const adminKey = "console-admin-key"

// readerScopes are the scopes of env.reader.
var readerScopes = []string{"check", "read"}

// scopesUnchecked is the server's Authenticator with the console's own
// scope check taken out: AuthorizeHTTP only authenticates. What refuses a
// token's write behind it is the gRPC API's scope check on the credential
// the console forwards.
type scopesUnchecked struct{ *api.Authenticator }

func (a scopesUnchecked) AuthorizeHTTP(r *http.Request, _ apitoken.Scope) (api.Caller, error) {
	return a.Authenticate(r.Header.Get("Authorization"))
}

// env is a one-node server (internal/testserver: raft, store, the gRPC API
// on loopback) with the console in front of it on a loopback HTTP server.
type env struct {
	srv *testserver.Server
	h   *console.Handler
	url string // the console's base URL, ending in /ui/
	// reader is a managed API token with readerScopes, created through
	// ambit.v1.TokenService as `ambit token create` does (empty without
	// keys).
	reader string
}

type envOptions struct {
	keys    []string
	maxBody int64
	auth    console.Authenticator // default: the server's own Authenticator
	// wrapAuth, when set, wraps the server's Authenticator into the
	// console's (auth unset).
	wrapAuth func(*api.Authenticator) console.Authenticator
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.keys == nil {
		o.keys = []string{adminKey}
	}
	// Tokens live in the replicated record keyspace and the console
	// shares the gRPC server's Authenticator, as in `ambit serve`.
	srv := testserver.Start(t, testserver.Options{Keys: o.keys, RecordTokens: true})
	switch {
	case o.auth != nil:
	case o.wrapAuth != nil:
		o.auth = o.wrapAuth(srv.Auth)
	default:
		o.auth = srv.Auth
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
	e := &env{srv: srv, h: h, url: hs.URL + console.Prefix}
	if len(o.keys) > 0 {
		e.reader, _ = e.createToken(t, "console-reader", readerScopes...)
	}
	return e
}

// createToken issues a managed API token through ambit.v1.TokenService
// with the admin key (what `ambit token create` calls) and returns its
// text and id.
func (e *env) createToken(t *testing.T, name string, scopes ...string) (token, id string) {
	t.Helper()
	ctx, cancel := adminCtx()
	defer cancel()
	resp, err := ambitv1.NewTokenServiceClient(e.srv.Conn).CreateToken(ctx, &ambitv1.CreateTokenRequest{Name: name, Scopes: scopes})
	if err != nil {
		t.Fatalf("creating token %q: %v", name, err)
	}
	return resp.GetToken(), resp.GetInfo().GetId()
}

// revokeToken revokes token id through ambit.v1.TokenService (what `ambit
// token revoke` calls).
func (e *env) revokeToken(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := adminCtx()
	defer cancel()
	if _, err := ambitv1.NewTokenServiceClient(e.srv.Conn).RevokeToken(ctx, &ambitv1.RevokeTokenRequest{Id: id}); err != nil {
		t.Fatalf("revoking token %s: %v", id, err)
	}
}
