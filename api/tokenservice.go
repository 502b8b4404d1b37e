package api

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ambit-authz/ambit/api/apitoken"
	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
)

// tokenService implements ambit.v1.TokenService over TokenRecords. Its
// methods need the admin scope (apitoken.MethodScope lists none of them).
type tokenService struct {
	ambitv1.UnimplementedTokenServiceServer
	recs TokenRecords
	auth *Authenticator
	now  func() time.Time
}

// RegisterTokens registers ambit.v1.TokenService on g, over recs; auth
// reports when each token was last used on this node.
func (s *Server) RegisterTokens(g *grpc.Server, recs TokenRecords, auth *Authenticator) {
	ambitv1.RegisterTokenServiceServer(g, &tokenService{recs: recs, auth: auth, now: time.Now})
}

// conflictRetries bounds the retries of a token write that raced another
// (so it is attempted at most conflictRetries+1 times).
const conflictRetries = 3

// CreateToken implements ambitv1.TokenServiceServer.
func (t *tokenService) CreateToken(ctx context.Context, req *ambitv1.CreateTokenRequest) (*ambitv1.CreateTokenResponse, error) {
	if t.auth != nil && !t.auth.Enabled() {
		// Every caller is let in on such a server, with or without a
		// token: a token made here would restrict nothing.
		return nil, status.Error(codes.FailedPrecondition, "this server runs without authentication (no --preshared-key), so a token would not be checked: start every member with a preshared key to use managed tokens")
	}
	if err := apitoken.ValidateName(req.GetName()); err != nil {
		return nil, invalidf("name: %v", err)
	}
	scopes, err := apitoken.ParseScopes(strings.Join(req.GetScopes(), ","))
	if err != nil {
		return nil, invalidf("scopes: %v", strings.TrimPrefix(err.Error(), "apitoken: "))
	}
	now := t.now().UTC()
	var expires time.Time
	if e := req.GetOptionalExpiresAt(); e != nil {
		if err := e.CheckValid(); err != nil {
			return nil, invalidf("optional_expires_at: %v", err)
		}
		if expires = e.AsTime(); !expires.After(now) {
			return nil, invalidf("optional_expires_at %s is not in the future", expires.Format(time.RFC3339))
		}
	}
	for attempt := 0; ; attempt++ {
		tok, err := apitoken.New()
		if err != nil {
			return nil, err
		}
		rec := apitoken.Record{ID: tok.ID, Name: req.GetName(), Scopes: scopes, Salt: tok.Salt, Hash: tok.Hash, Created: now, Expires: expires}
		_, err = t.recs.PutToken(ctx, rec, nil)
		if errors.Is(err, ErrTokenConflict) && attempt < conflictRetries { // an id drawn twice
			continue
		}
		if err != nil {
			return nil, tokenWriteError(err)
		}
		return &ambitv1.CreateTokenResponse{Token: tok.Text, Info: t.info(rec)}, nil
	}
}

// ListTokens implements ambitv1.TokenServiceServer.
func (t *tokenService) ListTokens(ctx context.Context, _ *ambitv1.ListTokensRequest) (*ambitv1.ListTokensResponse, error) {
	recs, err := t.recs.Tokens(ctx, t.recs.Revision())
	if err != nil {
		return nil, err
	}
	out := &ambitv1.ListTokensResponse{}
	for _, r := range recs {
		out.Tokens = append(out.Tokens, t.info(r))
	}
	return out, nil
}

// RevokeToken implements ambitv1.TokenServiceServer.
func (t *tokenService) RevokeToken(ctx context.Context, req *ambitv1.RevokeTokenRequest) (*ambitv1.RevokeTokenResponse, error) {
	id := strings.TrimSpace(req.GetId())
	if id == "" {
		return nil, invalidf("id is empty: give the token's id (ambit token list shows it)")
	}
	if apitoken.LooksLikeToken(id) { // the whole token pasted: use its id only
		pid, _, err := apitoken.Parse(id)
		if err != nil {
			return nil, invalidf("id: %v", strings.TrimPrefix(err.Error(), "apitoken: "))
		}
		id = pid
	}
	for attempt := 0; ; attempt++ {
		prev, ok, err := t.recs.Token(t.recs.Revision(), id)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, status.Errorf(codes.NotFound, "no API token has id %q", id)
		}
		if !prev.Revoked.IsZero() {
			return &ambitv1.RevokeTokenResponse{Info: t.info(prev)}, nil
		}
		rec := prev
		rec.Revoked = t.now().UTC()
		_, err = t.recs.PutToken(ctx, rec, &prev)
		if errors.Is(err, ErrTokenConflict) && attempt < conflictRetries {
			continue
		}
		if err != nil {
			return nil, tokenWriteError(err)
		}
		t.auth.forget(id)
		return &ambitv1.RevokeTokenResponse{Info: t.info(rec)}, nil
	}
}

func tokenWriteError(err error) error {
	if errors.Is(err, ErrTokenConflict) {
		return status.Error(codes.Aborted, err.Error())
	}
	return err
}

func (t *tokenService) info(r apitoken.Record) *ambitv1.TokenInfo {
	ts := func(x time.Time) *timestamppb.Timestamp {
		if x.IsZero() {
			return nil
		}
		return timestamppb.New(x)
	}
	info := &ambitv1.TokenInfo{Id: r.ID, Name: r.Name, CreatedAt: ts(r.Created), ExpiresAt: ts(r.Expires), RevokedAt: ts(r.Revoked)}
	for _, s := range r.Scopes {
		info.Scopes = append(info.Scopes, string(s))
	}
	if t.auth != nil {
		info.LastUsedAt = ts(t.auth.LastUsed(r.ID))
	}
	return info
}
