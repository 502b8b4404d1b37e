package api

import (
	"context"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/api/apitoken"
)

// The cost of authenticating a call: a preshared key, and a managed token
// (cached record, salted SHA-256, last-used stamp).
func BenchmarkAuthenticate(b *testing.B) {
	recs := NewMemTokens()
	a := NewAuthenticator([]string{"a-preshared-key-of-some-length"})
	a.SetTokens(recs, nil)
	tok, _ := apitoken.New()
	if _, err := recs.PutToken(context.Background(), apitoken.Record{ID: tok.ID, Name: "bench", Scopes: []apitoken.Scope{apitoken.Check},
		Salt: tok.Salt, Hash: tok.Hash, Created: time.Now()}, nil); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, cred string }{{"key", "a-preshared-key-of-some-length"}, {"token", tok.Text}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			h := "Bearer " + c.cred
			for b.Loop() {
				if _, err := a.authorize(h, apitoken.Check, "/authzed.api.v1.PermissionsService/CheckPermission"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A preshared key that happens to look like a token is still a key.
func TestPresharedKeyOfTokenShape(t *testing.T) {
	tok, _ := apitoken.New()
	a := NewAuthenticator([]string{tok.Text})
	a.SetTokens(NewMemTokens(), nil)
	c, err := a.Authenticate("Bearer " + tok.Text)
	if err != nil || c.TokenID != "" || !c.Allows(apitoken.Admin) {
		t.Fatalf("Authenticate = %+v, %v", c, err)
	}
}
