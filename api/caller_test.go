package api

import (
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/api/apitoken"
)

func TestAuthenticatorHTTP(t *testing.T) {
	a := NewAuthenticator([]string{"k1-secret-value"})
	cases := []struct {
		name   string
		header string
		code   codes.Code
		http   int
	}{
		{"missing", "", codes.Unauthenticated, 401},
		{"malformed", "Basic abc", codes.Unauthenticated, 401},
		{"wrong key", "Bearer nope", codes.PermissionDenied, 403},
		{"right key", "Bearer k1-secret-value", codes.OK, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/x", nil)
			if c.header != "" {
				r.Header.Set("Authorization", c.header)
			}
			caller, err := a.AuthorizeHTTP(r, apitoken.Write)
			if got := status.Code(err); got != c.code {
				t.Fatalf("code %v, want %v (%v)", got, c.code, err)
			}
			if err != nil {
				if got := HTTPStatus(err); got != c.http {
					t.Fatalf("HTTP status %d, want %d", got, c.http)
				}
				return
			}
			if !caller.Allows(apitoken.Schema) || caller.TokenID != "" {
				t.Fatalf("a preshared key is an admin without a token id, got %+v", caller)
			}
		})
	}
	if c, err := NewAuthenticator(nil).AuthorizeHTTP(httptest.NewRequest("GET", "/", nil), apitoken.Admin); err != nil || !c.Anonymous {
		t.Fatalf("no keys: anonymous caller, got %+v, %v", c, err)
	}
}
