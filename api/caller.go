package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/api/apitoken"
	"github.com/ambit-authz/ambit/raft"
)

// Caller is who made a request, as authentication established it: a
// managed API token (TokenID and Name set) or a preshared key (both empty;
// a preshared key holds every scope). It is what scopes, the audit log and
// the decision log see; it never carries a secret.
type Caller struct {
	TokenID string
	Name    string
	Scopes  []apitoken.Scope
	// Anonymous is true when the server runs without authentication
	// (no keys configured): every scope is allowed.
	Anonymous bool
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying the client's request id (an HTTP front
// end's X-Request-ID), which the proposed command carries to the audit log.
func WithRequestID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, requestIDKey{}, id)
}

// requestIDFrom is the request id of ctx: one set by WithRequestID, else
// the gRPC call's x-request-id metadata; cut to raft.MaxRequestID bytes.
func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	if id == "" {
		if v := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(v) > 0 {
			id = v[0]
		}
	}
	if len(id) > raft.MaxRequestID {
		id = id[:raft.MaxRequestID]
	}
	return id
}

// Allows reports whether the caller holds scope need.
func (c Caller) Allows(need apitoken.Scope) bool {
	return c.Anonymous || apitoken.Allows(c.Scopes, need)
}

// PresharedCaller is the caller a preshared key stands for: an admin.
var PresharedCaller = Caller{Scopes: []apitoken.Scope{apitoken.Admin}}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller ctx carries, if any.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Authenticator establishes the Caller of a request from its
// authorization value ("Bearer CREDENTIAL", gRPC metadata or an HTTP
// header). Every front end uses the same one, so a credential means the same
// on every port. It knows the preshared keys (each an admin) and, after
// SetTokens, the managed API tokens (apitoken): a credential of a token's
// shape ("ambit_...") is checked as one.
type Authenticator struct {
	keys    [][]byte
	tokens  *tokenAuth
	metrics *AuthMetrics
}

// NewAuthenticator returns an Authenticator for the preshared keys. No keys:
// authentication is off and every caller is Anonymous.
func NewAuthenticator(keys []string) *Authenticator {
	a := &Authenticator{}
	for _, k := range keys {
		a.keys = append(a.keys, []byte(k))
	}
	return a
}

// Enabled reports whether credentials are required.
func (a *Authenticator) Enabled() bool { return len(a.keys) > 0 }

// Authenticate returns the caller an authorization value stands for. The
// error is a gRPC status: Unauthenticated for a missing or malformed value
// and for an unknown, expired or revoked token or a token's wrong secret;
// PermissionDenied for a wrong preshared key; Unavailable when a token's
// record cannot be read. Each failure is counted by reason in
// ambit_auth_failures_total.
func (a *Authenticator) Authenticate(authorization string) (Caller, error) {
	c, reason, err := a.authenticate(authorization)
	if err != nil {
		a.metrics.fail(reason)
	}
	return c, err
}

func (a *Authenticator) authenticate(authorization string) (Caller, string, error) {
	if !a.Enabled() {
		return Caller{Anonymous: true}, "", nil
	}
	if authorization == "" {
		return Caller{}, failMissing, status.Error(codes.Unauthenticated, `missing "authorization: Bearer <credential>" (metadata or HTTP header)`)
	}
	if a.tokens != nil {
		scheme, cred, ok := strings.Cut(authorization, " ")
		if cred = strings.TrimSpace(cred); ok && strings.EqualFold(scheme, "bearer") && apitoken.LooksLikeToken(cred) &&
			checkBearer(a.keys, authorization) != nil { // a preshared key of a token's shape stays a key
			return a.tokens.authenticate(cred)
		}
	}
	if err := checkBearer(a.keys, authorization); err != nil {
		if status.Code(err) == codes.Unauthenticated {
			return Caller{}, failMalformed, err
		}
		return Caller{}, failKey, err
	}
	return PresharedCaller, "", nil
}

// authorize authenticates and requires scope need: PermissionDenied names
// the missing scope and what needed it.
func (a *Authenticator) authorize(authorization string, need apitoken.Scope, what string) (Caller, error) {
	c, err := a.Authenticate(authorization)
	if err != nil {
		return Caller{}, err
	}
	if !c.Allows(need) {
		a.metrics.fail(failScope)
		who := "the preshared key"
		if c.TokenID != "" {
			who = fmt.Sprintf("API token %s (%q, scopes %s)", c.TokenID, c.Name, joinScopes(c.Scopes))
		}
		return Caller{}, status.Errorf(codes.PermissionDenied, "%s lacks the %q scope, which %s needs", who, need, what)
	}
	a.metrics.request(c)
	return c, nil
}

func joinScopes(s []apitoken.Scope) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = string(x)
	}
	return strings.Join(parts, ",")
}

// AuthorizeHTTP authenticates an HTTP request of a front end on the HTTP
// listener (AuthZEN, SCIM, the console) by its Authorization header and
// requires scope need: PermissionDenied names a missing scope. HTTPStatus
// maps the error to a status code.
func (a *Authenticator) AuthorizeHTTP(r *http.Request, need apitoken.Scope) (Caller, error) {
	return a.authorize(r.Header.Get("Authorization"), need, r.Method+" "+r.URL.Path)
}

// HTTPStatus is the HTTP status for an AuthorizeHTTP error.
func HTTPStatus(err error) int {
	switch status.Code(err) {
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}
