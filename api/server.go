package api

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// Store is what the API reads: snapshots, the schema, the change feed.
// *store.Store implements it.
type Store interface {
	AppliedRevision() tuple.Revision
	Snapshot(rev tuple.Revision) (*store.Snapshot, error)
	ReadSchema(rev tuple.Revision) (text string, at tuple.Revision, err error)
	// ChangePieces is the change feed after a revision in bounded pieces.
	ChangePieces(ctx context.Context, after tuple.Revision) iter.Seq2[store.Change, error]
	Changed() <-chan struct{}
}

// Node is what the API needs of the raft node: replicate a command, wait for
// a revision, find a linearizable one. *raft.Node implements it.
type Node interface {
	Apply(ctx context.Context, cmd raft.Command) (raft.Result, error)
	WaitApplied(ctx context.Context, rev tuple.Revision) error
	LinearizableRevision(ctx context.Context) (tuple.Revision, error)
	SetForwardValidator(v raft.ForwardValidator)
	State() raft.Role
	// Halted is non-nil once the node's state machine stopped applying
	// (raft.ErrHalted): its data can no longer be trusted to be current.
	Halted() error
}

// Limits bound request sizes. Zero values take the defaults.
type Limits struct {
	MaxUpdatesPerWrite  int // updates in one WriteRelationships; default 1000
	MaxPreconditions    int // preconditions per write or delete; default 1000
	MaxChecksPerBulk    int // items in one CheckBulkPermissions; default 1000
	MaxLookupResults    int // results of one lookup stream without a limit; default 100,000
	MaxReadLimit        int // optional_limit of reads, exports and deletes; default 100,000 (0 in a request: no limit; an export pages by 1000)
	ImportChunk         int // relationships per raft import command; default 5000
	MaxFreshnessWait    time.Duration
	ExactSnapshotWait   time.Duration
	MaxCaveatContextLen int // bytes of a caveat context (a request's as protobuf, a written relationship's as JSON); default 4096
	// RevisionQuantum is how long minimize_latency keeps reading at the
	// same revision while writes advance it, so that identical checks share
	// cache entries; a read is then at most this much staler than the latest
	// applied write. Default 100 ms; negative reads the latest revision
	// every time.
	RevisionQuantum time.Duration

	// Request limits (limits.go). RequestTimeout is the deadline of a call
	// whose client set none or a later one (Watch and imports excepted);
	// default 30 s, negative disables. MaxConcurrentHeavy bounds heavy calls
	// (lookups, exports, expands, AccessService's ResourceAccess and Explain,
	// CheckBulkPermissions of more than HeavyBulkChecks items, SCIM lists
	// that scan) running at once; more wait until shortly before their
	// deadline, then get ResourceExhausted. Default 4 × GOMAXPROCS.
	// MemoryHighWater refuses new heavy calls while the Go heap holds more
	// than this many bytes; 0 disables. MaxResponseBytes bounds one export
	// page and one Watch response; default 1 MiB. MaxWatches bounds the
	// Watch streams open at once (the console's long polls are Watch
	// streams too); more are refused as busy. Default 1024.
	RequestTimeout     time.Duration
	MaxConcurrentHeavy int
	HeavyBulkChecks    int // default 100
	MemoryHighWater    int64
	MaxResponseBytes   int
	MaxWatches         int
}

// Defaults for Limits.
const (
	DefaultMaxUpdatesPerWrite = 1000
	DefaultMaxPreconditions   = 1000
	DefaultMaxChecksPerBulk   = 1000
	DefaultMaxLookupResults   = 100_000
	DefaultMaxReadLimit       = 100_000
	DefaultImportChunk        = 5000
	// DefaultMaxFreshnessWait bounds how long at_least_as_fresh waits for a
	// revision when the request has no earlier deadline.
	DefaultMaxFreshnessWait = 10 * time.Second
	// DefaultExactSnapshotWait is how long at_exact_snapshot waits for a
	// revision this node has not applied yet (a follower a little behind)
	// before answering FailedPrecondition.
	DefaultExactSnapshotWait = time.Second
	// DefaultRevisionQuantum: see Limits.RevisionQuantum.
	DefaultRevisionQuantum = 100 * time.Millisecond
	// DefaultRequestTimeout: see Limits.RequestTimeout.
	DefaultRequestTimeout   = 30 * time.Second
	DefaultHeavyBulkChecks  = 100
	DefaultMaxResponseBytes = 1 << 20
	DefaultMaxWatches       = 1024
)

// DefaultMaxConcurrentHeavy is Limits.MaxConcurrentHeavy's default.
func DefaultMaxConcurrentHeavy() int { return 4 * runtime.GOMAXPROCS(0) }

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxUpdatesPerWrite, DefaultMaxUpdatesPerWrite)
	def(&l.MaxPreconditions, DefaultMaxPreconditions)
	def(&l.MaxChecksPerBulk, DefaultMaxChecksPerBulk)
	def(&l.MaxLookupResults, DefaultMaxLookupResults)
	def(&l.MaxReadLimit, DefaultMaxReadLimit)
	def(&l.ImportChunk, DefaultImportChunk)
	def(&l.MaxCaveatContextLen, tuple.MaxCaveatContextSize)
	def(&l.MaxConcurrentHeavy, DefaultMaxConcurrentHeavy())
	def(&l.HeavyBulkChecks, DefaultHeavyBulkChecks)
	def(&l.MaxResponseBytes, DefaultMaxResponseBytes)
	def(&l.MaxWatches, DefaultMaxWatches)
	if l.RequestTimeout == 0 {
		l.RequestTimeout = DefaultRequestTimeout
	}
	if l.MaxFreshnessWait <= 0 {
		l.MaxFreshnessWait = DefaultMaxFreshnessWait
	}
	if l.ExactSnapshotWait <= 0 {
		l.ExactSnapshotWait = DefaultExactSnapshotWait
	}
	if l.RevisionQuantum == 0 {
		l.RevisionQuantum = DefaultRevisionQuantum
	}
	return l
}

// Config wires a Server.
type Config struct {
	Store  Store
	Node   Node
	Engine *engine.Engine
	// ClusterID identifies the cluster in ZedTokens and cursors; tokens from
	// another cluster are refused. Every member must use the same id.
	ClusterID string
	Limits    Limits
	Logger    *slog.Logger
	// Metrics receives per-request engine statistics; nil disables them.
	Metrics *Metrics
	// DecisionLog, when set, records a sample of check and lookup
	// decisions (decisionlog.go).
	DecisionLog *DecisionLog
}

// Server implements the authzed v1 PermissionsService, SchemaService and
// WatchService over the engine, the store and the raft node.
type Server struct {
	v1.UnimplementedPermissionsServiceServer
	v1.UnimplementedSchemaServiceServer
	v1.UnimplementedWatchServiceServer

	store   Store
	node    Node
	engine  *engine.Engine
	source  engine.Source   // names the store's data for the engine's caches
	leopard *engine.Leopard // the engine's nested-group index of the store's data, or nil
	tokens  tokens
	limits  Limits
	log     *slog.Logger
	metrics *Metrics
	schemas *schemaCache
	// leopardLag: from the follower waking at a commit to the index
	// through it (api/leopard.go).
	leopardLag followLag

	// decisions is the decision log, or nil.
	decisions *DecisionLog
	quantum   atomic.Pointer[quantum]
	gate      *gate
	watching  atomic.Int64 // Watch streams open (Limits.MaxWatches)

	stopOnce sync.Once
	stopping chan struct{} // closed by Stop
}

// New returns a Server. The node's schema guard is not installed here but
// in raft.Config.SchemaGuard (raft.OrphanGuard), once, before the log
// replays; the API only maps its refusals (errors.go).
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Node == nil || cfg.Engine == nil {
		return nil, errors.New("api: Store, Node and Engine are required")
	}
	if cfg.ClusterID == "" {
		return nil, errors.New("api: ClusterID is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		store:     cfg.Store,
		node:      actorNode{cfg.Node},
		engine:    cfg.Engine,
		source:    engine.NewSource(),
		tokens:    newTokens(cfg.ClusterID),
		limits:    cfg.Limits.withDefaults(),
		log:       cfg.Logger,
		metrics:   cfg.Metrics,
		decisions: cfg.DecisionLog,
		schemas:   newSchemaCache(cfg.Store),
		stopping:  make(chan struct{}),
	}
	s.gate = newGate(s.limits)
	cfg.Node.SetForwardValidator(s.validateForwarded)
	if s.leopard = cfg.Engine.Leopard(s.source); s.leopard != nil {
		s.leopardLag = newLeopardLag()
		go s.followLeopard(s.leopard)
	}
	return s, nil
}

// Stop ends the long-lived streams (Watch) with Unavailable so that a
// graceful gRPC stop can finish; clients resume from their last
// changes_through. Call it before grpc.Server.GracefulStop.
func (s *Server) Stop() { s.stopOnce.Do(func() { close(s.stopping) }) }

// schemaCache holds compiled schemas (and their text's hash) by the revision
// they were written at, so each is compiled and hashed once.
type schemaCache struct {
	st Store
	mu sync.Mutex
	m  map[tuple.Revision]*compiledSchema
	// last is the newest lookup: its schema is the one in force at every
	// revision in [at, through], so reads there skip the store.
	last atomic.Pointer[schemaSpan]
}

// compiledSchema is a stored schema compiled, with the digest of its text
// that write commands carry (raft.SchemaHash).
type compiledSchema struct {
	s    *schema.Schema
	hash raft.SchemaHash
}

type schemaSpan struct {
	c           *compiledSchema
	at, through tuple.Revision
}

func newSchemaCache(st Store) *schemaCache {
	return &schemaCache{st: st, m: map[tuple.Revision]*compiledSchema{}}
}

// errNoSchema: nothing has been written with WriteSchema yet.
var errNoSchema = errors.New("no schema has been written")

// at returns the schema in force at rev (errNoSchema if none).
func (c *schemaCache) at(rev tuple.Revision) (*schema.Schema, tuple.Revision, error) {
	cs, at, err := c.entry(rev)
	if err != nil {
		return nil, 0, err
	}
	return cs.s, at, nil
}

// entry returns the compiled schema in force at rev and the revision that
// wrote it (errNoSchema if none).
func (c *schemaCache) entry(rev tuple.Revision) (*compiledSchema, tuple.Revision, error) {
	if l := c.last.Load(); l != nil && l.at <= rev && rev <= l.through {
		return l.c, l.at, nil
	}
	cs, at, err := c.read(rev)
	if err == nil {
		if l := c.last.Load(); l == nil || rev > l.through {
			c.last.Store(&schemaSpan{c: cs, at: at, through: rev})
		}
	}
	return cs, at, err
}

func (c *schemaCache) read(rev tuple.Revision) (*compiledSchema, tuple.Revision, error) {
	text, at, err := c.st.ReadSchema(rev)
	if err != nil {
		return nil, 0, err
	}
	if text == "" && at == 0 {
		return nil, 0, errNoSchema
	}
	c.mu.Lock()
	cs := c.m[at]
	c.mu.Unlock()
	if cs != nil {
		return cs, at, nil
	}
	s, err := schema.Compile("schema", text)
	if err != nil {
		return nil, 0, fmt.Errorf("api: stored schema at revision %d does not compile: %w", at, err)
	}
	cs = &compiledSchema{s: s, hash: schema.DigestOf(text)}
	c.mu.Lock()
	if len(c.m) >= 16 {
		clear(c.m) // schemas change rarely; a small map suffices
	}
	c.m[at] = cs
	c.mu.Unlock()
	return cs, at, nil
}

// readAt resolves a Consistency to a revision that is applied on this node
// and readable.
func (s *Server) readAt(ctx context.Context, c *v1.Consistency) (tuple.Revision, error) {
	// A halted node stopped applying the log: no read it answers, however
	// stale the client allows, can be known to be a state the cluster had.
	if err := s.node.Halted(); err != nil {
		return 0, status.Errorf(codes.Unavailable, "this node stopped applying the replicated log and serves no reads; use another node: %v", err)
	}
	switch r := c.GetRequirement().(type) {
	case nil, *v1.Consistency_MinimizeLatency:
		return s.quantized(), nil
	case *v1.Consistency_FullyConsistent:
		rev, err := s.node.LinearizableRevision(ctx)
		if err != nil {
			return 0, err
		}
		return max(rev, s.store.AppliedRevision()), nil
	case *v1.Consistency_AtLeastAsFresh:
		want, err := s.tokens.revision(r.AtLeastAsFresh, "consistency.at_least_as_fresh")
		if err != nil {
			return 0, err
		}
		if err := s.waitFor(ctx, want, s.limits.MaxFreshnessWait, "at_least_as_fresh"); err != nil {
			return 0, err
		}
		return s.store.AppliedRevision(), nil
	case *v1.Consistency_AtExactSnapshot:
		want, err := s.tokens.revision(r.AtExactSnapshot, "consistency.at_exact_snapshot")
		if err != nil {
			return 0, err
		}
		if s.store.AppliedRevision() < want {
			if err := s.waitFor(ctx, want, s.limits.ExactSnapshotWait, "at_exact_snapshot"); err != nil {
				if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
					return 0, preconditionf("consistency.at_exact_snapshot: revision %d is newer than this node's applied revision %d; use at_least_as_fresh to wait for it", want, s.store.AppliedRevision())
				}
				return 0, err
			}
		}
		return want, nil
	}
	return 0, invalidf("consistency: unknown requirement %T", c.GetRequirement())
}

// quantum is the revision minimize_latency reads at until a deadline.
type quantum struct {
	rev   tuple.Revision
	until time.Time
}

// quantized returns the revision minimize_latency reads at: the applied
// revision as of the start of the current quantum (Limits.RevisionQuantum).
func (s *Server) quantized() tuple.Revision {
	applied := s.store.AppliedRevision()
	if s.limits.RevisionQuantum < 0 {
		return applied
	}
	now := time.Now()
	q := s.quantum.Load()
	if q != nil && q.rev <= applied && now.Before(q.until) {
		return q.rev
	}
	s.quantum.CompareAndSwap(q, &quantum{rev: applied, until: now.Add(s.limits.RevisionQuantum)})
	return applied
}

// waitFor blocks until rev is applied, up to the request deadline or bound.
func (s *Server) waitFor(ctx context.Context, rev tuple.Revision, bound time.Duration, mode string) error {
	if s.store.AppliedRevision() >= rev {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	err := s.node.WaitApplied(wctx, rev)
	if err == nil && s.store.AppliedRevision() < rev {
		err = fmt.Errorf("%w: the raft log applied revision %d but the store did not", raft.ErrHalted, rev)
	}
	if err == nil {
		return nil
	}
	applied := s.store.AppliedRevision()
	lag := rev - min(rev, applied)
	if ctx.Err() != nil {
		return status.Errorf(codes.DeadlineExceeded, "consistency.%s: revision %d was not applied on this node before the request deadline (applied %d, %d revisions behind)", mode, rev, applied, lag)
	}
	if wctx.Err() != nil {
		return status.Errorf(codes.Unavailable, "consistency.%s: revision %d was not applied on this node within %v (applied %d, %d revisions behind); the node (a lagging read replica?) may be partitioned, or the ZedToken is not from this cluster's history", mode, rev, bound, applied, lag)
	}
	return err
}

// snapshotAt opens the schema and a snapshot at rev.
func (s *Server) snapshotAt(rev tuple.Revision) (*schema.Schema, *store.Snapshot, error) {
	snap, err := s.store.Snapshot(rev)
	if err != nil {
		return nil, nil, err
	}
	sch, _, err := s.schemas.at(rev)
	if errors.Is(err, errNoSchema) {
		return nil, nil, preconditionf("no schema has been written yet (revision %d); write one with SchemaService.WriteSchema first", rev)
	}
	if err != nil {
		return nil, nil, err
	}
	return sch, snap, nil
}

// view resolves the consistency and returns an engine view over it.
func (s *Server) view(ctx context.Context, c *v1.Consistency) (*engine.View, error) {
	rev, err := s.readAt(ctx, c)
	if err != nil {
		return nil, err
	}
	return s.viewAt(rev)
}

func (s *Server) viewAt(rev tuple.Revision) (*engine.View, error) {
	sch, snap, err := s.snapshotAt(rev)
	if err != nil {
		return nil, err
	}
	return s.engine.View(sch, snap, engine.Snapshot{Source: s.source, Revision: rev, Time: snap.Time()}), nil
}

// currentSchema is the schema at the latest applied revision.
func (s *Server) currentSchema() (*schema.Schema, error) {
	sch, _, err := s.schemas.at(s.store.AppliedRevision())
	if errors.Is(err, errNoSchema) {
		return nil, preconditionf("no schema has been written yet; write one with SchemaService.WriteSchema before writing relationships")
	}
	return sch, err
}
