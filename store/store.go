package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ambit-authz/ambit/tuple"
)

// Options configure a Store. The zero value of every field but Dir/InMemory
// selects its default.
type Options struct {
	Dir      string // data directory; ignored when InMemory
	InMemory bool   // badger in-memory mode (tests)

	// GCWindow is how long old revisions stay readable; default 24h.
	GCWindow time.Duration
	// GCInterval is the background GC period; default 1m; < 0 disables the loop.
	GCInterval time.Duration
	// No option changes what a write does: a replicated state machine
	// applies writes through the store, and every replica must decide
	// alike. Request limits are the API's, checked before proposing; the
	// store enforces only the format's constants (FORMAT.md, "Limits").
	// SyncWrites fsyncs every commit. Default false (an OS crash may lose the
	// last acknowledged commits, a process crash does not). The server turns
	// it on only when it cannot detect a reboot; otherwise it runs without,
	// and raft.GuardStore discards a store left open across a reboot so that
	// raft rebuilds it.
	SyncWrites bool
	// Clock is used for expiration visibility of snapshots and for GC;
	// default time.Now. Writes use the leader-stamped time they are given.
	Clock func() time.Time
	// Logger receives warnings and errors, badger's included; default slog.Default().
	Logger *slog.Logger
	// OnFault, when set, is called once, with the store's first disk fault
	// (see Fault), from whichever goroutine met it. It must not block.
	OnFault func(error)

	// MemTableSize is badger's memtable size in bytes; default 64 MiB. Tests
	// lower it to keep memory modest.
	MemTableSize int64
	// BlockCacheSize is badger's block cache in bytes; default 256 MiB.
	BlockCacheSize int64
	// MemTables is how many memtables badger keeps (the active one and
	// those waiting to be flushed) before it stalls writes; default 5
	// (badger's). Memtables take up to MemTables × MemTableSize of memory.
	MemTables int

	// streamImportMin is the import size from which Import builds tables
	// directly (badger's StreamWriter) instead of going through memtables;
	// default DefaultStreamImportMin. Package tests lower it.
	streamImportMin int

	// tune adjusts badger's options last (package tests shrink tables to
	// force compactions).
	tune func(*badger.Options)
}

// Defaults.
const (
	DefaultGCWindow       = 24 * time.Hour
	DefaultGCInterval     = time.Minute
	DefaultMemTableSize   = 64 << 20
	DefaultBlockCacheSize = 256 << 20
	DefaultMemTables      = 5
	// DefaultStreamImportMin: imports of at least this many relationships
	// into an on-disk store build SSTables directly.
	DefaultStreamImportMin = 20000
)

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.GCWindow < 0:
		return o, fmt.Errorf("store: GCWindow %v is negative", o.GCWindow)
	case o.MemTableSize < 0:
		return o, fmt.Errorf("store: MemTableSize %d is negative", o.MemTableSize)
	case o.BlockCacheSize < 0:
		return o, fmt.Errorf("store: BlockCacheSize %d is negative", o.BlockCacheSize)
	case o.MemTables < 0 || o.MemTables == 1:
		return o, fmt.Errorf("store: MemTables %d: want 0 (the default) or at least 2", o.MemTables)
	case !o.InMemory && o.Dir == "":
		return o, errors.New("store: Dir is required unless InMemory is set")
	}
	if o.GCWindow == 0 {
		o.GCWindow = DefaultGCWindow
	}
	if o.GCInterval == 0 {
		o.GCInterval = DefaultGCInterval
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.BlockCacheSize == 0 {
		o.BlockCacheSize = DefaultBlockCacheSize
	}
	if o.MemTables == 0 {
		o.MemTables = DefaultMemTables
	}
	if o.streamImportMin == 0 {
		o.streamImportMin = DefaultStreamImportMin
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// Store is the tuple store. All methods are safe for concurrent use; writes
// are serialised.
type Store struct {
	id     uint64 // random per Open: its snapshots' Source
	db     *badger.DB
	opts   Options
	log    *slog.Logger
	faults *faults // disk faults (fault.go)

	// inflight counts running operations; Close sets closed, then waits for
	// inflight to drain. Lock-free, so nested queries cannot deadlock.
	inflight atomic.Int64
	closed   atomic.Bool

	// mu serialises writers (and GC's tombstones).
	mu sync.Mutex
	// broken, under mu, is set when a restore failed after dropping the old
	// contents: writes and GC refuse to run until a restore succeeds.
	broken error
	// restoreHook, when set (package tests), runs after the old contents are
	// dropped; an error fails the restore there.
	restoreHook func() error

	applied atomic.Uint64
	horizon atomic.Uint64
	// schema is the newest schema written at or below the applied revision
	// (nil: none). Writers store it before they publish the revision, so a
	// reader at a revision it has seen applied finds the schema of that
	// revision here when the schema is not newer than it.
	schema atomic.Pointer[schemaVersion]

	changedMu sync.Mutex
	changed   chan struct{}

	stopGC chan struct{}
	gcDone chan struct{}
	once   sync.Once
}

// Open opens (or creates) a store.
func Open(opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	bo := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(opts.SyncWrites).
		WithDetectConflicts(false). // one writer at a time, under s.mu
		WithNumVersionsToKeep(1).   // versions above the discard ts are always kept
		WithMemTableSize(opts.MemTableSize).
		WithNumMemtables(opts.MemTables).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithNumCompactors(2).
		WithValueLogFileSize(256 << 20).
		// Values inline in the LSM tree up to 1 MiB, or up to half a batch
		// when that is less (badger requires the threshold to fit in a
		// batch, 15% of a memtable): at the default memtable size only a
		// schema text of 1 MiB or more goes to the value log.
		WithValueThreshold(min(1<<20, opts.MemTableSize*15/100/2))
	fs := &faults{onFault: opts.OnFault}
	bo = bo.WithLogger(badgerLogger{opts.Logger, fs})
	// Every level's tables are BaseTableSize (2 MiB), not twice the size of
	// the level above's: a compaction runs a dozen table builders at once,
	// each holding its whole table, uncompressed and compressed, until it is
	// written, and at the default multiplier of 2 the compactions of a
	// 5M-relationship store held over 500 MB of heap (bench/RESULTS.md,
	// "memory after a bulk load").
	bo.TableSizeMultiplier = 1
	if opts.InMemory {
		bo = bo.WithDir("").WithValueDir("")
	}
	if opts.tune != nil {
		opts.tune(&bo)
	}
	db, err := badger.OpenManaged(bo)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	s := &Store{
		id:      rand.Uint64() | 1, // never 0, which means "no source"
		db:      db,
		opts:    opts,
		log:     opts.Logger,
		faults:  fs,
		changed: make(chan struct{}),
		stopGC:  make(chan struct{}),
		gcDone:  make(chan struct{}),
	}
	if err := s.loadMeta(); err != nil {
		db.Close()
		return nil, err
	}
	if opts.GCInterval > 0 {
		go s.gcLoop()
	} else {
		close(s.gcDone)
	}
	return s, nil
}

func (s *Store) loadMeta() error {
	txn := s.db.NewTransactionAt(math.MaxUint64, false)
	defer txn.Discard()
	read := func(key []byte) (uint64, error) {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		var v uint64
		err = item.Value(func(b []byte) error {
			var err error
			v, err = readU64(b)
			return err
		})
		return v, err
	}
	applied, err := read(keyApplied)
	if err != nil {
		return fmt.Errorf("store: read applied revision: %w", err)
	}
	horizon, err := read(keyHorizon)
	if err != nil {
		return fmt.Errorf("store: read GC horizon: %w", err)
	}
	sch, err := readSchemaAt(s.db, applied)
	if err != nil {
		return err
	}
	s.schema.Store(sch)
	s.applied.Store(applied)
	s.horizon.Store(horizon)
	if horizon > 0 {
		s.db.SetDiscardTs(horizon)
	}
	if mv := s.db.MaxVersion(); mv > applied {
		// A bulk write (Import, a large delete, a restore) was interrupted
		// after some of its data reached badger but before its applied
		// revision did. Readers never see it (they read at or below the
		// applied revision); replaying the same command rewrites it.
		s.log.Warn("store: found data of an interrupted bulk write above the applied revision",
			"applied", applied, "max_version", mv)
	}
	return nil
}

// Close stops the GC loop, waits for in-flight operations (including
// iterations of Query and Changes still being consumed: finish or stop them
// first) and closes badger. Every later call returns ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return ErrClosed
	}
	s.once.Do(func() { close(s.stopGC) })
	<-s.gcDone
	for s.inflight.Load() > 0 {
		time.Sleep(time.Millisecond)
	}
	s.notify()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Sync fsyncs badger's active write-ahead log and its value log, for a store
// opened without SyncWrites; a no-op in memory. A memtable badger has rotated
// out but not yet flushed to a table is not covered (badger flushes it to an
// fsynced table in the background): after an OS crash its lost tail can sit
// below writes that survived, so Sync is a checkpoint, not a substitute for
// SyncWrites.
func (s *Store) Sync() error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.db.Sync(); err != nil {
		s.ioFailure(err)
		return fmt.Errorf("store: sync: %w", err)
	}
	return nil
}

// AppliedRevision is the revision of the last applied write (0 for none).
func (s *Store) AppliedRevision() tuple.Revision { return tuple.Revision(s.applied.Load()) }

// Changed returns a channel closed at the next commit (or at Close).
func (s *Store) Changed() <-chan struct{} {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	return s.changed
}

func (s *Store) notify() {
	s.changedMu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.changedMu.Unlock()
}

// enter registers a running operation; every successful enter must be
// paired with leave.
func (s *Store) enter() error {
	s.inflight.Add(1)
	if s.closed.Load() {
		s.inflight.Add(-1)
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.inflight.Add(-1) }

// Stats describes the store.
type Stats struct {
	LSMBytes        int64          // badger LSM size
	VLogBytes       int64          // badger value-log size
	AppliedRevision tuple.Revision // last applied revision
	GCHorizon       tuple.Revision // oldest readable revision
}

// Stats returns current figures. Sizes are refreshed by badger periodically.
func (s *Store) Stats() Stats {
	st := Stats{
		AppliedRevision: s.AppliedRevision(),
		GCHorizon:       tuple.Revision(s.horizon.Load()),
	}
	if s.enter() == nil {
		st.LSMBytes, st.VLogBytes = s.db.Size()
		s.leave()
	}
	return st
}

// badgerLogger routes badger's logs to slog; badger's info chatter
// (compactions, flushes) goes to debug. Errors and warnings that say a
// write to disk failed are recorded as disk faults (fault.go).
type badgerLogger struct {
	l      *slog.Logger
	faults *faults
}

func (b badgerLogger) Errorf(f string, a ...any)   { b.fault(f, a); b.log(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.fault(f, a); b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a) }

// log formats only when the level is enabled: badger logs at debug level on
// every write request.
func (b badgerLogger) log(level slog.Level, f string, a []any) {
	if !b.l.Enabled(context.Background(), level) {
		return
	}
	b.l.Log(context.Background(), level, "badger: "+trimNL(fmt.Sprintf(f, a...)))
}

func (b badgerLogger) fault(f string, a []any) {
	if b.faults == nil || !badgerFault(f) {
		return
	}
	b.faults.record(fmt.Errorf("badger: %s", trimNL(fmt.Sprintf(f, a...))))
}

func trimNL(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}

var _ io.Closer = (*Store)(nil)
