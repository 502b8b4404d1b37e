package api_test

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/api/apitoken"
	"github.com/ambit-authz/ambit/internal/testserver"
	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
)

const adminKey = "the-admin-preshared-key"

func tokenServer(t *testing.T) (*testserver.Server, *api.MemTokens) {
	recs := api.NewMemTokens()
	return testserver.Start(t, testserver.Options{Keys: []string{adminKey}, Tokens: recs}), recs
}

func createToken(t *testing.T, ts *testserver.Server, name string, scopes ...apitoken.Scope) *ambitv1.CreateTokenResponse {
	t.Helper()
	req := &ambitv1.CreateTokenRequest{Name: name}
	for _, s := range scopes {
		req.Scopes = append(req.Scopes, string(s))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := ambitv1.NewTokenServiceClient(ts.Conn).CreateToken(withKey(ctx, adminKey), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// exempt are the services the API's interceptors do not authenticate:
// health, reflection, and raft's cluster service (which checks the
// preshared keys and the cluster secret itself).
func exempt(service string) bool {
	return service == "grpc.health.v1.Health" || strings.HasPrefix(service, "grpc.reflection.") || service == "ambit.cluster.v1.Cluster"
}

// callCode calls method with an empty request as a token holder and returns
// the status code of the first answer.
func callCode(t *testing.T, conn *grpc.ClientConn, method string, clientStream, serverStream bool, token string) codes.Code {
	ctx, cancel := context.WithTimeout(withKey(context.Background(), token), 2*time.Second)
	defer cancel()
	if !clientStream && !serverStream {
		return status.Code(conn.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{}))
	}
	desc := &grpc.StreamDesc{ClientStreams: clientStream, ServerStreams: serverStream}
	cs, err := conn.NewStream(ctx, desc, method)
	if err != nil {
		return status.Code(err)
	}
	if err := cs.SendMsg(&emptypb.Empty{}); err != nil && err != io.EOF {
		return status.Code(err)
	}
	_ = cs.CloseSend()
	err = cs.RecvMsg(&emptypb.Empty{})
	if err == io.EOF {
		return codes.OK
	}
	return status.Code(err)
}

// Every RPC of every registered service, called with a token of each scope:
// a scope allows exactly the RPCs apitoken.MethodScope gives it (admin
// allows all), and the rest are PermissionDenied.
func TestScopeTable(t *testing.T) {
	ts, _ := tokenServer(t)
	tokens := map[apitoken.Scope]string{}
	for _, s := range apitoken.Scopes {
		tokens[s] = createToken(t, ts, "scope-"+string(s), s).GetToken()
	}
	services := ts.GRPC.GetServiceInfo()
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range services {
			if !yield(n) {
				return
			}
		}
	})
	calls := 0
	for _, svc := range names {
		if exempt(svc) {
			continue
		}
		for _, m := range services[svc].Methods {
			full := "/" + svc + "/" + m.Name
			need := apitoken.MethodScope(full)
			for _, s := range apitoken.Scopes {
				got := callCode(t, ts.Conn, full, m.IsClientStream, m.IsServerStream, tokens[s])
				calls++
				allowed := s == need || s == apitoken.Admin
				switch {
				case allowed && (got == codes.PermissionDenied || got == codes.Unauthenticated):
					t.Errorf("%s with a %q token: %v, want it allowed (it needs %q)", full, s, got, need)
				case !allowed && got != codes.PermissionDenied:
					t.Errorf("%s with a %q token: %v, want PermissionDenied (it needs %q)", full, s, got, need)
				}
			}
		}
	}
	// The services this test must have seen, so that it cannot pass by
	// seeing none.
	for _, want := range []string{"authzed.api.v1.PermissionsService", "authzed.api.v1.SchemaService", "authzed.api.v1.WatchService",
		"ambit.v1.AccessService", "ambit.v1.TokenService", "ambit.v1.AuditService"} {
		if _, ok := services[want]; !ok {
			t.Errorf("service %s is not registered", want)
		}
	}
	if calls < 20*len(apitoken.Scopes) {
		t.Fatalf("only %d calls", calls)
	}
}

// The refusal names the missing scope, the token and the method.
func TestScopeRefusalMessage(t *testing.T) {
	ts, _ := tokenServer(t)
	tok := createToken(t, ts, "ci", apitoken.Check, apitoken.Read)
	ctx, cancel := context.WithTimeout(withKey(context.Background(), tok.GetToken()), 10*time.Second)
	defer cancel()
	_, err := ambitv1.NewTokenServiceClient(ts.Conn).ListTokens(ctx, &ambitv1.ListTokensRequest{})
	wantCode(t, err, codes.PermissionDenied, `"admin"`, tok.GetInfo().GetId(), `"ci"`, "check,read", "/ambit.v1.TokenService/ListTokens")
}

func TestTokenRefusals(t *testing.T) {
	ts, recs := tokenServer(t)
	good := createToken(t, ts, "app", apitoken.Check)
	revoked := createToken(t, ts, "gone", apitoken.Check)
	admin := ambitv1.NewTokenServiceClient(ts.Conn)
	ctx, cancel := context.WithTimeout(withKey(context.Background(), adminKey), 10*time.Second)
	defer cancel()
	if _, err := admin.RevokeToken(ctx, &ambitv1.RevokeTokenRequest{Id: revoked.GetInfo().GetId()}); err != nil {
		t.Fatal(err)
	}
	// An expired record, put directly (the service refuses a past expiry).
	exp, _ := apitoken.New()
	if _, err := recs.PutToken(ctx, apitoken.Record{ID: exp.ID, Name: "old", Scopes: []apitoken.Scope{apitoken.Check}, Salt: exp.Salt, Hash: exp.Hash,
		Created: time.Now().Add(-2 * time.Hour), Expires: time.Now().Add(-time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	other, _ := apitoken.New() // issued by another cluster: its id is unknown here
	goodID, goodSecret, _ := apitoken.Parse(good.GetToken())
	_, wrongSecret, _ := apitoken.Parse(other.Text)
	cases := []struct {
		name, cred string
		code       codes.Code
		fragments  []string
		reason     string
	}{
		{"malformed", "ambit_zz_top", codes.Unauthenticated, []string{"malformed API token"}, "malformed"},
		{"other cluster", other.Text, codes.Unauthenticated, []string{other.ID, "not known to this cluster"}, "unknown_token"},
		{"wrong secret", "ambit_" + goodID + "_" + wrongSecret, codes.Unauthenticated, []string{goodID, "does not match"}, "wrong_secret"},
		{"expired", exp.Text, codes.Unauthenticated, []string{exp.ID, "expired at"}, "expired"},
		{"revoked", revoked.GetToken(), codes.Unauthenticated, []string{revoked.GetInfo().GetId(), "revoked at"}, "revoked"},
		{"revoked, retried", revoked.GetToken(), codes.Unauthenticated, []string{"revoked at"}, "revoked"},
		{"wrong preshared key", "not-the-key", codes.PermissionDenied, []string{"preshared key"}, "wrong_key"},
		{"no scheme", "", codes.Unauthenticated, []string{"authorization"}, "missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := gatherTS(t, ts)[`ambit_auth_failures_total{reason="`+c.reason+`"}`]
			cctx := context.Background()
			if c.cred != "" {
				cctx = withKey(cctx, c.cred)
			}
			cctx, cancel := context.WithTimeout(cctx, 10*time.Second)
			defer cancel()
			_, err := ambitv1.NewAccessServiceClient(ts.Conn).SubjectPermissions(cctx, &ambitv1.SubjectPermissionsRequest{})
			wantCode(t, err, c.code, c.fragments...)
			if strings.Contains(status.Convert(err).Message(), goodSecret) {
				t.Fatal("the error carries a secret")
			}
			if after := gatherTS(t, ts)[`ambit_auth_failures_total{reason="`+c.reason+`"}`]; after != before+1 {
				t.Fatalf("ambit_auth_failures_total{reason=%q} went from %v to %v", c.reason, before, after)
			}
		})
	}
	// The good token works, and shows as used on this node.
	gctx, gcancel := context.WithTimeout(withKey(context.Background(), good.GetToken()), 10*time.Second)
	defer gcancel()
	_, err := ambitv1.NewAccessServiceClient(ts.Conn).SubjectPermissions(gctx, &ambitv1.SubjectPermissionsRequest{})
	if c := status.Code(err); c == codes.Unauthenticated || c == codes.PermissionDenied {
		t.Fatalf("good token: %v", err)
	}
	list, err := admin.ListTokens(ctx, &ambitv1.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, info := range list.GetTokens() {
		switch info.GetId() {
		case goodID:
			seen++
			if info.GetLastUsedAt() == nil || info.GetRevokedAt() != nil {
				t.Errorf("good token listed as %v", info)
			}
		case revoked.GetInfo().GetId():
			seen++
			if info.GetRevokedAt() == nil {
				t.Errorf("revoked token listed as %v", info)
			}
		}
	}
	if seen != 2 || len(list.GetTokens()) != 3 {
		t.Fatalf("list = %v", list)
	}
	if got := gatherTS(t, ts)[`ambit_requests_by_token_total{token="app"}`]; got != 1 {
		t.Errorf(`ambit_requests_by_token_total{token="app"} = %v, want 1`, got)
	}
}

func TestCreateTokenBadInput(t *testing.T) {
	ts, _ := tokenServer(t)
	ctx, cancel := context.WithTimeout(withKey(context.Background(), adminKey), 10*time.Second)
	defer cancel()
	c := ambitv1.NewTokenServiceClient(ts.Conn)
	for _, tc := range []struct {
		req      *ambitv1.CreateTokenRequest
		fragment string
	}{
		{&ambitv1.CreateTokenRequest{Name: "x", Scopes: []string{"check", "root"}}, `unknown scope: "root"`},
		{&ambitv1.CreateTokenRequest{Name: "x"}, "no scope given"},
		{&ambitv1.CreateTokenRequest{Scopes: []string{"check"}}, "name"},
		{&ambitv1.CreateTokenRequest{Name: "x", Scopes: []string{"check"}, OptionalExpiresAt: timestamppb.New(time.Now().Add(-time.Minute))}, "not in the future"},
	} {
		_, err := c.CreateToken(ctx, tc.req)
		wantCode(t, err, codes.InvalidArgument, tc.fragment)
	}
	_, err := c.RevokeToken(ctx, &ambitv1.RevokeTokenRequest{Id: "0123456789abcdef"})
	wantCode(t, err, codes.NotFound, "0123456789abcdef")
}

// A revocation applied on a node is refused there within a second, however
// recently the token was accepted (the cache is bounded by the revision and
// a short TTL).
func TestRevocationTakesEffect(t *testing.T) {
	recs := api.NewMemTokens()
	auth := api.NewAuthenticator([]string{adminKey})
	auth.SetTokens(recs, nil)
	tok, _ := apitoken.New()
	rec := apitoken.Record{ID: tok.ID, Name: "app", Scopes: []apitoken.Scope{apitoken.Check}, Salt: tok.Salt, Hash: tok.Hash, Created: time.Now()}
	ctx := context.Background()
	if _, err := recs.PutToken(ctx, rec, nil); err != nil {
		t.Fatal(err)
	}
	if c, err := auth.Authenticate("Bearer " + tok.Text); err != nil || c.TokenID != tok.ID || c.Name != "app" {
		t.Fatalf("Authenticate = %+v, %v", c, err)
	}
	revoked := rec
	revoked.Revoked = time.Now()
	if _, err := recs.PutToken(ctx, revoked, &rec); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		_, err := auth.Authenticate("Bearer " + tok.Text)
		if status.Code(err) == codes.Unauthenticated {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("still accepted %v after the revocation was applied (%v)", time.Since(start), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func gatherTS(t *testing.T, ts *testserver.Server) map[string]float64 {
	return gather(t, &env{reg: ts.Registry})
}

// A server without preshared keys lets every caller in, token or not: it
// refuses to make tokens rather than hand out ones that restrict nothing.
func TestCreateTokenNeedsAuthentication(t *testing.T) {
	ts := testserver.Start(t, testserver.Options{Tokens: api.NewMemTokens()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := ambitv1.NewTokenServiceClient(ts.Conn).CreateToken(ctx, &ambitv1.CreateTokenRequest{Name: "ci", Scopes: []string{"check"}})
	wantCode(t, err, codes.FailedPrecondition, "without authentication", "--preshared-key")
}
