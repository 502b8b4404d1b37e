package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/api/apitoken"
	"github.com/ambit-authz/ambit/api/scim"
	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// SCIMPrefix is where the SCIM endpoints are mounted on the HTTP listener.
const SCIMPrefix = "/scim/v2"

// Defaults of SCIMOptions.
const (
	DefaultSCIMMaxBody = scim.DefaultMaxBody
	DefaultSCIMTimeout = 30 * time.Second
)

// SCIMOptions configure the SCIM endpoints.
type SCIMOptions struct {
	// Mapping turns users and groups into relationships; it must be valid
	// (scim.Mapping.Validate).
	Mapping scim.Mapping
	// Auth authenticates callers (preshared keys, managed tokens): a caller
	// needs the scim scope.
	Auth *Authenticator
	// Keys may provision and do nothing else (--scim-key). With Keys set,
	// SCIM requires a credential even when Auth has none.
	Keys []string
	// MaxBodyBytes bounds a request body (413 above it).
	MaxBodyBytes int64
	// Timeout is each request's budget.
	Timeout time.Duration
	// MaxMembers bounds the members one request lists (scim.Handler's
	// MaxMembers; scim.DefaultMaxMembers if zero).
	MaxMembers int
	// MaxBulkOperations bounds the operations of one bulk request
	// (scim.DefaultMaxBulkOperations if zero).
	MaxBulkOperations int
}

// SCIMHandler returns the SCIM 2.0 service provider; mount it at SCIMPrefix
// and SCIMPrefix+"/". Each change is one raft command: the resource's
// attributes as records (spaces scim.users and scim.groups, a group's
// members in scim.members, and the indexes of userName, externalId and
// displayName; see scim/records.go) and the relationships the mapping
// implies.
func (s *Server) SCIMHandler(o SCIMOptions) (http.Handler, error) {
	if err := o.Mapping.Validate(); err != nil {
		return nil, err
	}
	if o.Auth == nil {
		o.Auth = NewAuthenticator(nil)
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultSCIMMaxBody
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultSCIMTimeout
	}
	keys := make([][]byte, 0, len(o.Keys))
	for _, k := range o.Keys {
		if k != "" {
			keys = append(keys, []byte(k))
		}
	}
	h := &scim.Handler{
		Store:   &scim.RecordStore{R: &scimRecords{s: s}},
		Mapping: o.Mapping,
		Prefix:  SCIMPrefix,
		MaxBody: o.MaxBodyBytes,
		// A group's DELETE removes members in writes the server accepts.
		MaxUpdates:        s.limits.MaxUpdatesPerWrite,
		MaxMembers:        o.MaxMembers,
		MaxBulkOperations: o.MaxBulkOperations,
		Admit:             s.admitSCIMScan,
	}
	return &scimHTTP{s: s, o: o, keys: keys, next: h}, nil
}

type scimHTTP struct {
	s    *Server
	o    SCIMOptions
	keys [][]byte
	next http.Handler
}

func (h *scimHTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			h.s.log.Error("scim: panic", "method", r.Method, "path", r.URL.Path, "panic", p)
			scim.WriteError(w, &scim.Error{Status: http.StatusInternalServerError, Detail: "internal error"})
		}
	}()
	c, err := h.authorize(r)
	if err != nil {
		code := HTTPStatus(err)
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ambit-scim"`)
		}
		scim.WriteError(w, &scim.Error{Status: code, Detail: status.Convert(err).Message()})
		return
	}
	ctx, cancel := context.WithTimeout(WithRequestID(WithCaller(r.Context(), c), r.Header.Get("X-Request-ID")), h.o.Timeout)
	defer cancel()
	h.next.ServeHTTP(w, r.WithContext(ctx))
}

// authorize returns the caller: a --scim-key holder (the scim scope only),
// or whoever the shared Authenticator says, if they hold the scim scope.
func (h *scimHTTP) authorize(r *http.Request) (Caller, error) {
	authz := r.Header.Get("Authorization")
	if len(h.keys) > 0 && authz != "" && checkBearer(h.keys, authz) == nil {
		return Caller{Name: "scim-key", Scopes: []apitoken.Scope{apitoken.SCIM}}, nil
	}
	if h.o.Auth.Enabled() || len(h.keys) == 0 {
		return h.o.Auth.AuthorizeHTTP(r, apitoken.SCIM)
	}
	if authz == "" {
		return Caller{}, status.Error(codes.Unauthenticated, `missing "Authorization: Bearer <SCIM key>"`)
	}
	if err := checkBearer(h.keys, authz); status.Code(err) == codes.Unauthenticated {
		return Caller{}, err
	}
	return Caller{}, status.Error(codes.PermissionDenied, "the credential is not a SCIM key of this server")
}

// admitSCIMScan admits a SCIM list that reads every user or group through
// the heavy-call gate (api/limits.go): refused, when the gate is full or
// the heap above its high-water mark, with a 503 and Retry-After.
func (s *Server) admitSCIMScan(ctx context.Context) (func(), error) {
	release, err := s.gate.enter(ctx, "SCIM list (a filter no index answers)")
	if err != nil {
		secs, _ := retryAfterSeconds(err) // the gate's refusals carry RetryInfo
		return nil, &scim.Error{Status: http.StatusServiceUnavailable, Detail: status.Convert(err).Message(), RetryAfter: secs}
	}
	return release, nil
}

// scimRecords is scim.Records over this server's store and raft node.
type scimRecords struct {
	s *Server
	// written is the highest revision a SCIM write through this node
	// applied at: reads wait for it, so a client reads its own writes.
	written atomic.Uint64
}

// snapshot opens the store at a revision no older than this node's SCIM
// writes; on a follower, at the leader's commit index (linearizable), so
// a resource created through another node is found.
func (r *scimRecords) snapshot(ctx context.Context) (*store.Snapshot, error) {
	rev := max(r.s.store.AppliedRevision(), tuple.Revision(r.written.Load()))
	if r.s.node.State() != raft.RoleLeader {
		lin, err := r.s.node.LinearizableRevision(ctx)
		if err != nil {
			return nil, scimError(r.s, err)
		}
		rev = max(rev, lin)
	}
	if err := r.s.node.WaitApplied(ctx, rev); err != nil {
		return nil, scimError(r.s, err)
	}
	snap, err := r.s.store.Snapshot(rev)
	if err != nil {
		return nil, scimError(r.s, err)
	}
	return snap, nil
}

func (r *scimRecords) Record(ctx context.Context, space, key string) ([]byte, bool, error) {
	snap, err := r.snapshot(ctx)
	if err != nil {
		return nil, false, err
	}
	v, ok, err := snap.Record(space, key)
	if err != nil {
		return nil, false, scimError(r.s, err)
	}
	return v, ok, nil
}

func (r *scimRecords) Lookup(ctx context.Context, space string, keys []string) ([][]byte, error) {
	snap, err := r.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		v, ok, err := snap.Record(space, k)
		if err != nil {
			return nil, scimError(r.s, err)
		}
		if ok {
			out[i] = v
		}
	}
	return out, nil
}

func (r *scimRecords) Scan(ctx context.Context, space, prefix string, fn func(string, []byte) error) error {
	snap, err := r.snapshot(ctx)
	if err != nil {
		return err
	}
	after := ""
	if prefix != "" {
		// Records reads the keys after a key: those after prefix less its
		// last byte hold every key with prefix (SCIM's prefixes end in a
		// NUL byte, so none sorts between), and any before them is skipped.
		after = prefix[:len(prefix)-1]
	}
	for e, err := range snap.Records(ctx, space, after) {
		if err != nil {
			return scimError(r.s, err)
		}
		if !strings.HasPrefix(e.Key, prefix) {
			if e.Key > prefix {
				return nil
			}
			continue
		}
		if err := fn(e.Key, e.Value); err != nil {
			return err
		}
	}
	return nil
}

func (r *scimRecords) Write(ctx context.Context, touch, del []tuple.Relationship, ops []scim.RecordOp, conds []scim.RecordCond) error {
	if n := len(touch) + len(del); n > r.s.limits.MaxUpdatesPerWrite {
		return &scim.Error{Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf(
			"the change implies %d relationship updates, more than the limit of %d in one write (--max-updates-per-write); change fewer members per request", n, r.s.limits.MaxUpdatesPerWrite)}
	}
	updates := make([]store.Update, 0, len(touch)+len(del))
	for _, rel := range touch {
		updates = append(updates, store.Update{Op: store.OpTouch, Rel: rel})
	}
	for _, rel := range del {
		updates = append(updates, store.Update{Op: store.OpDelete, Rel: rel})
	}
	cmd := raft.RecordsCommand(updates, nil, ops, conds)
	if c, ok := CallerFrom(ctx); ok {
		cmd.Actor = c.TokenID
	}
	if err := r.s.validateForWrite(&cmd); err != nil {
		return scimError(r.s, err)
	}
	res, err := r.s.applyValidated(ctx, cmd)
	if errors.Is(err, store.ErrPreconditionFailed) {
		return scim.ErrCondFailed
	}
	if err != nil {
		return scimError(r.s, err)
	}
	for {
		w := r.written.Load()
		if uint64(res.Revision) <= w || r.written.CompareAndSwap(w, uint64(res.Revision)) {
			return nil
		}
	}
}

// scimError turns an error of the store, raft or validation into the SCIM
// error a client gets, through the API's one mapping (toStatus): a
// relationship the schema refuses is a 400 naming it, unavailability 503.
func scimError(s *Server, err error) error {
	st := status.Convert(toStatus(s.log, "/scim", err))
	code, msg := http.StatusInternalServerError, "internal error"
	switch st.Code() {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange, codes.ResourceExhausted:
		code, msg = http.StatusBadRequest, "the change does not fit the schema (check --scim-mapping): "+st.Message()
	case codes.DeadlineExceeded:
		code, msg = http.StatusGatewayTimeout, st.Message()
	case codes.Unavailable, codes.Canceled:
		code, msg = http.StatusServiceUnavailable, st.Message()
	}
	if strings.TrimSpace(msg) == "" {
		msg = http.StatusText(code)
	}
	return &scim.Error{Status: code, ScimType: scimTypeFor(code), Detail: msg}
}

func scimTypeFor(code int) string {
	if code == http.StatusBadRequest {
		return "invalidValue"
	}
	return ""
}
