package api

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/api/apitoken"
	"github.com/ambit-authz/ambit/tuple"
)

// TokenRecords is where managed API tokens are kept: the replicated record
// keyspace (Server.Tokens, over the store and the raft node), or a map in
// tests (MemTokens). Reads are at a revision, so that a check of a token and a listing
// see one state.
type TokenRecords interface {
	// Revision is the latest revision applied on this node: a read at it
	// sees every revocation this node has applied.
	Revision() tuple.Revision
	// Token reads one record at rev; ok is false if there is none.
	Token(rev tuple.Revision, id string) (rec apitoken.Record, ok bool, err error)
	// Tokens lists every record at rev, in id order.
	Tokens(ctx context.Context, rev tuple.Revision) ([]apitoken.Record, error)
	// PutToken replicates rec if the stored record with its id is still
	// prev (nil: none), and returns the revision that wrote it. A record
	// changed in between is ErrTokenConflict.
	PutToken(ctx context.Context, rec apitoken.Record, prev *apitoken.Record) (tuple.Revision, error)
}

// ErrTokenConflict: a token record changed between reading and writing it.
var ErrTokenConflict = errors.New("the token record changed concurrently; retry")

// tokenCacheTTL bounds how long a cached token record is trusted once the
// applied revision has moved past the revision it was read at: a
// revocation applied on this node takes effect within it. While the revision
// does not move, an entry stays valid (nothing can have changed).
const tokenCacheTTL = 250 * time.Millisecond

// Reasons a credential is refused, the label of
// ambit_auth_failures_total (a fixed set: no token id or secret).
const (
	failMissing   = "missing"
	failMalformed = "malformed"
	failKey       = "wrong_key"
	failUnknown   = "unknown_token"
	failSecret    = "wrong_secret"
	failExpired   = "expired"
	failRevoked   = "revoked"
	failScope     = "missing_scope"
	failInternal  = "internal"
)

// maxTokenLabels bounds the distinct token names ambit_requests_by_token_total
// carries; later names count under "other".
const maxTokenLabels = 64

// AuthMetrics are the authentication metrics: failed authentications by
// reason, and requests by token name (bounded cardinality).
type AuthMetrics struct {
	failures *prometheus.CounterVec
	byToken  *prometheus.CounterVec
	names    sync.Map // name -> prometheus.Counter
	mu       sync.Mutex
	labels   int // distinct names given their own label
}

// NewAuthMetrics registers the authentication metrics on reg.
func NewAuthMetrics(reg prometheus.Registerer) (*AuthMetrics, error) {
	m := &AuthMetrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ambit_auth_failures_total",
			Help: "Requests refused by authentication or scope, by reason (missing, malformed, wrong_key, unknown_token, wrong_secret, expired, revoked, missing_scope, internal)."}, []string{"reason"}),
		byToken: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ambit_requests_by_token_total",
			Help: `Authenticated requests by token name ("preshared" for a preshared key, "anonymous" without authentication; after 64 names, "other").`}, []string{"token"}),
	}
	for _, c := range []prometheus.Collector{m.failures, m.byToken} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *AuthMetrics) fail(reason string) {
	if m != nil {
		m.failures.WithLabelValues(reason).Inc()
	}
}

// request counts one authenticated request of c.
func (m *AuthMetrics) request(c Caller) {
	if m == nil {
		return
	}
	name := c.Name
	switch {
	case c.Anonymous:
		name = "anonymous"
	case c.TokenID == "":
		name = "preshared"
	}
	if ctr, ok := m.names.Load(name); ok {
		ctr.(prometheus.Counter).Inc()
		return
	}
	m.mu.Lock()
	ctr, ok := m.names.Load(name)
	if !ok {
		label := name
		if m.labels >= maxTokenLabels {
			label = "other"
		} else {
			m.labels++
		}
		ctr = m.byToken.WithLabelValues(label)
		m.names.Store(name, ctr)
	}
	m.mu.Unlock()
	ctr.(prometheus.Counter).Inc()
}

// tokenAuth is the Authenticator's managed-token path: a cache of records by
// id, each valid for the revision it was read at (or tokenCacheTTL past
// it), and when each token was last used on this node (not replicated).
type tokenAuth struct {
	src      TokenRecords
	now      func() time.Time
	cache    sync.Map // id -> *cachedToken
	lastUsed sync.Map // id -> *atomic.Int64 (Unix ns)
}

type cachedToken struct {
	rec  apitoken.Record
	ok   bool
	rev  tuple.Revision
	read time.Time
}

// SetTokens makes the Authenticator accept the managed tokens in src
// besides the preshared keys, and count failures and requests in m (nil:
// none). Call it before serving.
func (a *Authenticator) SetTokens(src TokenRecords, m *AuthMetrics) {
	a.tokens = &tokenAuth{src: src, now: time.Now}
	a.metrics = m
}

// LastUsed returns when this node last accepted token id (zero: never since
// it started).
func (a *Authenticator) LastUsed(id string) time.Time {
	if a.tokens == nil {
		return time.Time{}
	}
	if v, ok := a.tokens.lastUsed.Load(id); ok {
		return time.Unix(0, v.(*atomic.Int64).Load()).UTC()
	}
	return time.Time{}
}

// forget drops id from the cache, so that this node sees a change to it
// (a revocation it wrote) at once rather than within tokenCacheTTL.
func (a *Authenticator) forget(id string) {
	if a != nil && a.tokens != nil {
		a.tokens.cache.Delete(id)
	}
}

// record returns the record of id as of the latest applied revision, from
// the cache when that is still current.
func (t *tokenAuth) record(id string, now time.Time) (apitoken.Record, bool, error) {
	rev := t.src.Revision()
	if v, ok := t.cache.Load(id); ok {
		c := v.(*cachedToken)
		if c.rev == rev || (c.rev < rev && now.Sub(c.read) < tokenCacheTTL) {
			return c.rec, c.ok, nil
		}
	}
	rec, ok, err := t.src.Token(rev, id)
	if err != nil {
		return apitoken.Record{}, false, err
	}
	t.cache.Store(id, &cachedToken{rec: rec, ok: ok, rev: rev, read: now})
	return rec, ok, nil
}

// authenticate checks a managed token's text.
func (t *tokenAuth) authenticate(text string) (Caller, string, error) {
	id, secret, err := apitoken.Parse(text)
	if err != nil {
		return Caller{}, failMalformed, status.Errorf(codes.Unauthenticated, "malformed API token: %v", strings.TrimPrefix(err.Error(), "apitoken: "))
	}
	now := t.now()
	rec, ok, err := t.record(id, now)
	if err != nil {
		return Caller{}, failInternal, status.Errorf(codes.Unavailable, "API token %s could not be read: %v", id, err)
	}
	if !ok {
		return Caller{}, failUnknown, status.Errorf(codes.Unauthenticated, "API token %s is not known to this cluster (issued by another cluster, or never issued)", id)
	}
	if err := rec.Check(secret, now); err != nil {
		reason := failSecret
		switch {
		case errors.Is(err, apitoken.ErrExpired):
			reason = failExpired
		case errors.Is(err, apitoken.ErrRevoked):
			reason = failRevoked
		}
		return Caller{}, reason, status.Errorf(codes.Unauthenticated, "API token refused: %v", strings.TrimPrefix(err.Error(), "apitoken: "))
	}
	v, ok := t.lastUsed.Load(id)
	if !ok {
		v, _ = t.lastUsed.LoadOrStore(id, new(atomic.Int64))
	}
	v.(*atomic.Int64).Store(now.UnixNano())
	return Caller{TokenID: rec.ID, Name: rec.Name, Scopes: rec.Scopes}, "", nil
}

// MemTokens is a TokenRecords in memory, each put a new revision: for
// tests and tools.
type MemTokens struct {
	mu   sync.Mutex
	rev  tuple.Revision
	hist map[string][]memVersion
}

type memVersion struct {
	rev tuple.Revision
	rec apitoken.Record
}

var _ TokenRecords = (*MemTokens)(nil)

// NewMemTokens returns an empty MemTokens.
func NewMemTokens() *MemTokens { return &MemTokens{hist: map[string][]memVersion{}} }

// Revision implements TokenRecords.
func (m *MemTokens) Revision() tuple.Revision {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rev
}

// Token implements TokenRecords.
func (m *MemTokens) Token(rev tuple.Revision, id string) (apitoken.Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.hist[id]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].rev <= rev {
			return vs[i].rec, true, nil
		}
	}
	return apitoken.Record{}, false, nil
}

// Tokens implements TokenRecords.
func (m *MemTokens) Tokens(_ context.Context, rev tuple.Revision) ([]apitoken.Record, error) {
	m.mu.Lock()
	ids := make([]string, 0, len(m.hist))
	for id := range m.hist {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	slices.Sort(ids)
	var out []apitoken.Record
	for _, id := range ids {
		if r, ok, _ := m.Token(rev, id); ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// PutToken implements TokenRecords.
func (m *MemTokens) PutToken(_ context.Context, rec apitoken.Record, prev *apitoken.Record) (tuple.Revision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.hist[rec.ID]
	switch {
	case prev == nil && len(vs) > 0,
		prev != nil && (len(vs) == 0 || string(vs[len(vs)-1].rec.Encode()) != string(prev.Encode())):
		return 0, ErrTokenConflict
	}
	m.rev++
	m.hist[rec.ID] = append(vs, memVersion{rev: m.rev, rec: rec})
	return m.rev, nil
}
