package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// Errors. The API maps them to gRPC codes; test with errors.Is.
var (
	// ErrUnknownType: the request names a type the schema does not define.
	ErrUnknownType = errors.New("unknown object type")
	// ErrUnknownRelation: the request names a relation or permission the type does not define.
	ErrUnknownRelation = errors.New("unknown relation or permission")
	// ErrInvalidRequest: the request is malformed (bad id, wrong subject kind, ...).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrCaveatContext: a caveat could not be evaluated with the context it
	// was given (a value of the wrong type, caveats.ErrParamType, or a
	// run-time failure, caveats.ErrEvaluation), or the request's context
	// cannot be encoded.
	ErrCaveatContext = errors.New("invalid caveat context")
	// ErrMaxDepth: evaluation went deeper than Config.MaxDepth.
	ErrMaxDepth = errors.New("maximum evaluation depth exceeded")
	// ErrTooMany: a request exceeds a configured limit.
	ErrTooMany = errors.New("request exceeds a limit")
	// ErrInternal: a bug; never expected.
	ErrInternal = errors.New("internal error")
)

// Config holds the engine's limits and cache size. Zero values take defaults.
type Config struct {
	// MaxDepth bounds recursion (nested groups, arrows, permissions); default 50.
	MaxDepth int
	// CacheMaxCost bounds the result cache in bytes (approximate); default
	// 64 MiB; negative disables the cache, and with it the sharing of
	// evaluations in flight (see View.Check). A sixteenth of it holds
	// SubjectPermissions' whole answers (access.go).
	CacheMaxCost int64
	// ReadCacheMaxCost bounds the read cache in bytes (approximate): the
	// relationships of one resource's relation, and those naming one subject
	// (subjectcache.go), per data set and revision, shared by every check and
	// lookup that reads them; default 64 MiB; negative disables it.
	ReadCacheMaxCost int64
	// ReadCacheMaxSet is the largest set of one resource's relation the read
	// cache holds (a subject's set may hold subjectSetMax times as many);
	// larger ones (big groups) are read from the store with the subject in
	// the query; default 64.
	ReadCacheMaxSet int
	// MaxBulkChecks bounds the checks of one CheckBulk and the permissions
	// of one SubjectPermissions; default 1000.
	MaxBulkChecks int
	// MaxLookupCandidates bounds how many objects a lookup holds at once
	// before failing with ErrTooMany: everything its walk reaches, or, where
	// LookupResources streams (see stream.go), the objects below the target
	// type, the targets being sent and forgotten; default 1,000,000.
	MaxLookupCandidates int
	// LookupStreamAfter is how many relationships into the target type a
	// LookupResources walk reads itself before it leaves them to sorted
	// streams (see stream.go): a smaller answer is cheaper to sort than to
	// stream; default 4096; negative streams from the first.
	LookupStreamAfter int
	// Concurrency bounds how many checks one bulk call or lookup runs at
	// once; default 2 × GOMAXPROCS.
	Concurrency int
	// MaxDispatches bounds the sub-problems one check evaluates (each item
	// of a bulk check and each candidate a lookup verifies is one check);
	// default 100,000. Results from caches do not count.
	MaxDispatches int
	// MaxReads bounds the relationships one check reads; default 1,000,000.
	MaxReads int
	// MaxCaveatCost bounds the CEL cost of the caveats one check evaluates,
	// summed; default 1,000,000 (ten evaluations at caveats.MaxEvalCost,
	// which bounds each one).
	MaxCaveatCost int64
	// MaxExpandNodes bounds the nodes of one Expand tree, counted as the
	// client receives it (a subtree reached twice counts twice); default
	// 100,000.
	MaxExpandNodes int
	// MaxExpandBytes bounds the approximate size of one Expand tree, counted
	// the same way; default 64 MiB.
	MaxExpandBytes int64
	// LeopardMaxEdges bounds the nested-group index of each data set (see
	// Leopard): past it the index empties itself and checks walk the
	// nesting; default 1,000,000 edges; negative disables the index.
	LeopardMaxEdges int
}

func (c Config) withDefaults() Config {
	if c.MaxDepth <= 0 {
		c.MaxDepth = 50
	}
	if c.CacheMaxCost == 0 {
		c.CacheMaxCost = 64 << 20
	}
	if c.ReadCacheMaxCost == 0 {
		c.ReadCacheMaxCost = 64 << 20
	}
	if c.ReadCacheMaxSet <= 0 {
		c.ReadCacheMaxSet = 64
	}
	if c.MaxBulkChecks <= 0 {
		c.MaxBulkChecks = 1000
	}
	if c.MaxLookupCandidates <= 0 {
		c.MaxLookupCandidates = 1_000_000
	}
	switch {
	case c.LookupStreamAfter == 0:
		c.LookupStreamAfter = 4096
	case c.LookupStreamAfter < 0:
		c.LookupStreamAfter = 0
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 2 * runtime.GOMAXPROCS(0)
	}
	if c.MaxDispatches <= 0 {
		c.MaxDispatches = 100_000
	}
	if c.MaxReads <= 0 {
		c.MaxReads = 1_000_000
	}
	if c.MaxCaveatCost <= 0 {
		c.MaxCaveatCost = 1_000_000
	}
	if c.MaxExpandNodes <= 0 {
		c.MaxExpandNodes = 100_000
	}
	if c.MaxExpandBytes <= 0 {
		c.MaxExpandBytes = 64 << 20
	}
	if c.LeopardMaxEdges == 0 {
		c.LeopardMaxEdges = 1_000_000
	}
	return c
}

// Engine evaluates checks and lookups. It is safe for concurrent use and
// holds state shared across requests: per-schema plans, the result and read
// caches, the in-flight table and each data set's nested-group index.
type Engine struct {
	cfg   Config
	cache *genCache[string, outcome]
	reads *genCache[setKey, relSet]       // see readcache.go
	perms *genCache[string, permsOutcome] // SubjectPermissions' answers, see access.go

	mu     sync.Mutex
	plans  map[string]*plan // by schema hash
	flight *flight
	// lastPlan and lastPrefix spare View the plans' lock and the key
	// prefix's formatting while requests keep coming for one schema and
	// revision.
	lastPlan   atomic.Pointer[plan]
	lastPrefix atomic.Pointer[viewPrefix]
	// memos holds emptied memos (map[string]memoEntry) of finished checks:
	// a memo's map is a few hundred bytes made for every check, a tenth of
	// what a fresh check allocates (see checker.release).
	memos sync.Pool

	leopards sync.Map // Source id -> *Leopard
}

// New returns an engine.
func New(cfg Config) (*Engine, error) {
	cfg = cfg.withDefaults()
	e := &Engine{cfg: cfg, plans: map[string]*plan{}, flight: newFlight()}
	if cfg.CacheMaxCost > 0 {
		seed := maphash.MakeSeed()
		e.cache = newGenCache[string, outcome](cfg.CacheMaxCost-cfg.CacheMaxCost/permsCacheShare, func(k string) uint64 { return maphash.String(seed, k) })
		e.perms = newGenCache[string, permsOutcome](cfg.CacheMaxCost/permsCacheShare, func(k string) uint64 { return maphash.String(seed, k) })
	}
	if cfg.ReadCacheMaxCost > 0 {
		e.reads = newReadCache(cfg.ReadCacheMaxCost)
	}
	return e, nil
}

// Close releases the engine. The caches hold only memory, which the garbage
// collector reclaims, so it does nothing today; views in use stay valid.
func (e *Engine) Close() {}

// Config returns the effective configuration.
func (e *Engine) Config() Config { return e.cfg }

func (e *Engine) planFor(s *schema.Schema) *plan {
	if p := e.lastPlan.Load(); p != nil && p.s == s {
		return p
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.plans[s.Hash]
	if p == nil || p.s != s {
		p = newPlan(s)
		if len(e.plans) > 64 { // schemas change rarely; keep the map small
			clear(e.plans)
		}
		e.plans[s.Hash] = p
	}
	e.lastPlan.Store(p)
	return p
}

// viewPrefix is the cache key prefix of views of one schema, data set and
// revision.
type viewPrefix struct {
	s      *schema.Schema
	src    uint64
	rev    tuple.Revision
	prefix string
}

// prefixFor returns the prefix of every cache key of views of s, src and
// rev: the schema's hash, the source and the revision.
func (e *Engine) prefixFor(s *schema.Schema, src uint64, rev tuple.Revision) string {
	if p := e.lastPrefix.Load(); p != nil && p.s == s && p.src == src && p.rev == rev {
		return p.prefix
	}
	prefix := s.Hash[:min(16, len(s.Hash))] + "@" + strconv.FormatUint(src, 36) + "." + strconv.FormatUint(uint64(rev), 10) + "|"
	e.lastPrefix.Store(&viewPrefix{s: s, src: src, rev: rev, prefix: prefix})
	return prefix
}

// View is the engine bound to one schema and one snapshot. Cheap to create;
// create one per request.
type View struct {
	engine *Engine
	schema *schema.Schema
	plan   *plan
	reader Reader
	index  *Leopard // the data set's nested-group index, or nil
	rev    tuple.Revision
	src    uint64    // the snapshot's Source
	at     time.Time // the time expirations are judged at
	now    int64     // at in unix µs (nanoseconds overflow in 2262)
	prefix string
}

// Source names one data set for the engine's caches. The engine keys every
// cached result and relationship set by source and revision, so whoever
// holds a data set (a store, an in-memory index) takes one Source from
// NewSource and passes it with every snapshot of that data set. Two data
// sets never share one: NewSource never returns the same value twice in a
// process. The zero Source names no data set (see Snapshot).
type Source struct{ id uint64 }

var sources atomic.Uint64

// NewSource returns a Source no other caller has.
func NewSource() Source { return Source{id: sources.Add(1)} }

// Snapshot says what a View reads: which data set, at which revision, and the
// time relationships' expirations are judged at.
type Snapshot struct {
	// Source names the data set. With the zero Source the view gets a Source
	// of its own: it shares no cache entry with any other view (correct, and
	// as slow as an engine without caches).
	Source Source
	// Revision is the snapshot's revision. Within one Source, two readers at
	// one revision must hold the same relationships.
	Revision tuple.Revision
	// Time is when expirations are judged: the time the reader hides
	// expired relationships at (store.Snapshot.Time), or the time the view
	// is made for a reader that judges by the clock. A cached result is served
	// only before the earliest expiration among the relationships it was
	// computed from. The zero Time means now.
	Time time.Time
}

// View binds the engine to a schema and to reader, which reads the data set,
// revision and time at names.
func (e *Engine) View(s *schema.Schema, r Reader, at Snapshot) *View {
	now := at.Time
	if now.IsZero() {
		now = time.Now()
	}
	if at.Source == (Source{}) {
		at.Source = NewSource()
	}
	src, rev := at.Source.id, at.Revision
	return &View{engine: e, schema: s, plan: e.planFor(s), reader: r, index: e.leopardFor(src), rev: rev, src: src, at: now, now: now.UnixMicro(),
		prefix: e.prefixFor(s, src, rev)}
}

// outcome is a sub-problem's answer as the cache, the request memo and the
// in-flight table hold it: the result and when it stops being valid at its
// revision, the earliest expiration (unix µs, rounded down) among the relationships it was
// computed from; 0 when none of them expires.
type outcome struct {
	t     tri
	until int64
}

// validAt reports whether the outcome may be reused at time now (unix µs).
func (o outcome) validAt(now int64) bool { return o.until == 0 || now < o.until }

// lookupCache returns the cached outcome for key if it is still valid.
func (v *View) lookupCache(key string) (outcome, bool) {
	if v.engine.cache == nil {
		return outcome{}, false
	}
	o, ok := v.engine.cache.Get(key)
	return o, ok && o.validAt(v.now)
}

// earliest returns the earlier of two expirations, 0 meaning none.
func earliest(a, b int64) int64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// Schema returns the view's schema.
func (v *View) Schema() *schema.Schema { return v.schema }

// Revision returns the view's revision.
func (v *View) Revision() tuple.Revision { return v.rev }

// cacheKey names the sub-problem typ:id#rel for subject s under the caveat
// context ctxKey at the view's schema, data set and revision:
// PREFIX typ:id#rel@SUBJECT|ctxKey, SUBJECT as tuple.SubjectRef.String
// writes it. Built in one exactly sized allocation (it is made for most
// sub-problems of every check).
func (v *View) cacheKey(typ, id, rel string, s tuple.SubjectRef, ctxKey string) string {
	n := len(v.prefix) + len(typ) + 1 + len(id) + 1 + len(rel) + 1 + len(s.Type) + 1 + len(s.ID) + 1 + len(ctxKey)
	if s.Relation != "" {
		n += 1 + len(s.Relation)
	}
	b := make([]byte, 0, n)
	b = append(b, v.prefix...)
	b = append(b, typ...)
	b = append(b, ':')
	b = append(b, id...)
	b = append(b, '#')
	b = append(b, rel...)
	b = append(b, '@')
	b = append(b, s.Type...)
	b = append(b, ':')
	b = append(b, s.ID...)
	if s.Relation != "" {
		b = append(b, '#')
		b = append(b, s.Relation...)
	}
	b = append(b, '|')
	b = append(b, ctxKey...)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Permissionship is the answer to a check.
type Permissionship int

const (
	NoPermission Permissionship = iota
	HasPermission
	ConditionalPermission
)

func (p Permissionship) String() string {
	switch p {
	case HasPermission:
		return "HAS_PERMISSION"
	case ConditionalPermission:
		return "CONDITIONAL_PERMISSION"
	}
	return "NO_PERMISSION"
}

// CheckRequest asks whether Subject has Permission on Resource.
type CheckRequest struct {
	Resource   tuple.ObjectRef
	Permission string
	Subject    tuple.SubjectRef
	// Context is caveat context supplied with the request (JSON values).
	Context map[string]any
}

// CheckResult is the answer; Missing names the caveat parameters whose
// absence made it conditional.
type CheckResult struct {
	Permissionship Permissionship
	Missing        []string
	Stats          Stats
}

// Stats counts the work one request did.
type Stats struct {
	Dispatches  int
	Reads       int
	CacheHits   int
	CacheMisses int
	CaveatEvals int
	// Deduplicated counts sub-problems answered by an identical evaluation
	// in flight for another request.
	Deduplicated int
}

func (s *Stats) add(o Stats) {
	s.Dispatches += o.Dispatches
	s.Reads += o.Reads
	s.CacheHits += o.CacheHits
	s.CacheMisses += o.CacheMisses
	s.CaveatEvals += o.CaveatEvals
	s.Deduplicated += o.Deduplicated
}

// validate checks that typ exists and, when rel is not empty, that it
// names a relation or permission of typ.
func (v *View) validate(what string, typ, rel string) error {
	d := v.schema.Definitions[typ]
	if d == nil {
		return fmt.Errorf("%w: %s type %q is not defined in the schema", ErrUnknownType, what, typ)
	}
	if rel != "" && d.Relations[rel] == nil {
		return fmt.Errorf("%w: %s type %q has no relation or permission %q", ErrUnknownRelation, what, typ, rel)
	}
	return nil
}

func (v *View) validateCheck(req CheckRequest) error {
	if err := tuple.ValidateID(req.Resource.ID); err != nil {
		return fmt.Errorf("%w: resource: %v", ErrInvalidRequest, err)
	}
	if err := tuple.ValidateSubjectID(req.Subject.ID); err != nil {
		return fmt.Errorf("%w: subject: %v", ErrInvalidRequest, err)
	}
	if err := v.validate("resource", req.Resource.Type, req.Permission); err != nil {
		return err
	}
	if err := v.validate("subject", req.Subject.Type, req.Subject.Relation); err != nil {
		return err
	}
	return nil
}

func contextKey(ctx map[string]any) (string, error) {
	if len(ctx) == 0 {
		return "", nil
	}
	b, err := json.Marshal(ctx) // map keys are sorted: a stable encoding
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrCaveatContext, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12]), nil
}

// Check answers one check. With the result cache on, identical checks, and
// identical sub-problems on relations that cannot recurse into themselves,
// in flight at the same time on the same data set and revision share one
// evaluation.
func (v *View) Check(ctx context.Context, req CheckRequest) (CheckResult, error) {
	if err := v.validateCheck(req); err != nil {
		return CheckResult{}, err
	}
	ck, err := contextKey(req.Context)
	if err != nil {
		return CheckResult{}, err
	}
	key := v.cacheKey(req.Resource.Type, req.Resource.ID, req.Permission, req.Subject, ck)
	e := v.engine
	if e.cache != nil {
		if o, ok := v.lookupCache(key); ok {
			return toResult(o.t, Stats{CacheHits: 1}), nil
		}
	}
	c := &checker{v: v, subject: req.Subject, context: req.Context, ctxKey: ck, rootKey: key, stats: &Stats{}, pooled: true}
	t, err := c.checkAny(ctx, req.Resource.Type, []string{req.Resource.ID}, req.Permission, 0, nil)
	c.release()
	if err != nil {
		return CheckResult{Stats: *c.stats}, err
	}
	return toResult(t, *c.stats), nil
}

func toResult(t tri, st Stats) CheckResult {
	switch t.state {
	case stYes:
		return CheckResult{Permissionship: HasPermission, Stats: st}
	case stMaybe:
		return CheckResult{Permissionship: ConditionalPermission, Missing: t.missing, Stats: st}
	}
	return CheckResult{Permissionship: NoPermission, Stats: st}
}

// BulkResult is one answer of CheckBulk: a result or an error.
type BulkResult struct {
	Result CheckResult
	Err    error
}

// CheckBulk answers many checks at one snapshot. Results come back in request
// order; a bad item gets its own error without failing the others. Items run
// concurrently (at most Config.Concurrency at once) and share work through the
// result cache and request de-duplication.
func (v *View) CheckBulk(ctx context.Context, reqs []CheckRequest) ([]BulkResult, error) {
	if len(reqs) > v.engine.cfg.MaxBulkChecks {
		return nil, fmt.Errorf("%w: %d checks in one bulk request, the limit is %d", ErrTooMany, len(reqs), v.engine.cfg.MaxBulkChecks)
	}
	out := v.checkAll(ctx, reqs)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// checkAll runs reqs with bounded concurrency, results in request order.
func (v *View) checkAll(ctx context.Context, reqs []CheckRequest) []BulkResult {
	out := make([]BulkResult, len(reqs))
	workers := min(v.engine.cfg.Concurrency, len(reqs))
	if workers <= 1 {
		for i, r := range reqs {
			res, err := v.Check(ctx, r)
			out[i] = BulkResult{Result: res, Err: err}
		}
		return out
	}
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				next.Lock()
				j := i
				i++
				next.Unlock()
				if j >= len(reqs) {
					return
				}
				res, err := v.Check(ctx, reqs[j])
				out[j] = BulkResult{Result: res, Err: err}
			}
		})
	}
	wg.Wait()
	return out
}
