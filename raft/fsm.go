package raft

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// Backend is the part of the store the FSM writes through. *store.Store
// implements it; the FSM's unit tests use a fake.
type Backend interface {
	// AppliedRevision is the revision of the last applied write.
	AppliedRevision() tuple.Revision
	Write(rev tuple.Revision, now time.Time, updates []store.Update, preconds []store.Precondition) error
	DeleteByFilter(rev tuple.Revision, now time.Time, f tuple.Filter, limit int, allowPartial bool, preconds []store.Precondition) (deleted int, partial bool, err error)
	WriteSchema(rev tuple.Revision, now time.Time, text string) error
	// ReadSchema returns the schema text in force at rev ("" if none).
	ReadSchema(rev tuple.Revision) (text string, at tuple.Revision, err error)
	Import(rev tuple.Revision, now time.Time, rels []tuple.Relationship) error
	// WriteMany applies several Writes at increasing revisions in one storage
	// write; results[i] is what Write would have returned for reqs[i] (nil or
	// a domain failure). A non-nil err means nothing was applied.
	WriteMany(reqs []store.WriteRequest) (results []error, err error)
	WriteSnapshot(w io.Writer) (tuple.Revision, error)
	RestoreSnapshot(r io.Reader) error
	// Sync makes the applied writes durable. A snapshot calls it before raft
	// may compact the log entries the store holds.
	Sync() error
	// Members returns the member table stored at the applied revision (nil
	// if none); WriteMembers stores one at rev, in the same transaction as
	// rev becomes applied; ImportMembers stores one at the applied revision
	// (moving a table kept outside the store by earlier builds). Snapshots
	// carry the table.
	Members() ([]byte, error)
	WriteMembers(rev tuple.Revision, now time.Time, table []byte) error
	ImportMembers(table []byte) error
	// WriteRecords is Write with record ops and conditions (KindRecords):
	// records and updates apply together or not at all.
	WriteRecords(rev tuple.Revision, now time.Time, updates []store.Update, preconds []store.Precondition, ops []store.RecordOp, conds []store.RecordCond) error
}

// AppliedEntry is one log entry the state machine has applied, as an
// OnApplied hook sees it.
type AppliedEntry struct {
	Index uint64
	// Data is the entry's encoded command (nil for raft's own entries); it is
	// only valid during the call: Command decodes a copy.
	Data []byte
	// Err is the command's refusal (a domain failure), nil if it applied.
	Err error
}

// Command decodes the entry's command.
func (e AppliedEntry) Command() (Command, error) { return Decode(e.Data) }

// OnApplied is called on every node after each applied batch, once per
// command entry in log order, on the applying goroutine: it must return
// quickly (queue, never wait on I/O). The audit log uses it.
type OnApplied func(AppliedEntry)

// SchemaGuard is called inside Apply, before a schema write, with the revision
// the schema would be written at, the command's leader time and the new
// text. A non-nil error refuses the write (a domain failure wrapped in
// ErrSchemaRefused): because it runs in the state machine, the check and the
// write see the same data on every replica. It must be deterministic: no
// clock (expirations are judged at now, the time every replica applies the
// command with), no randomness, no I/O outside the store.
type SchemaGuard func(rev tuple.Revision, now time.Time, newText string) error

// Result is what applying one command produced. A domain failure (a failed
// precondition, an existing relationship, a refused schema) is in Err; the
// revision still advanced to Revision.
type Result struct {
	Revision tuple.Revision
	Deleted  int  // KindDelete: relationships deleted
	Partial  bool // KindDelete: more matched than the limit
	Err      error
}

// FSM applies committed raft log entries to a Backend. It implements
// hashicorp/raft's FSM and BatchingFSM.
//
// Revision = log index. Every entry the FSM receives advances the store to
// its index: a command writes at it (a domain failure still advances, as the
// store guarantees; member commands write the member table), and a
// configuration-change entry writes an empty batch at it. Raft's own no-op and barrier entries
// never reach an FSM; the leader follows each election with a KindNoop command
// so that waiting for the commit index always ends (see Node). The FSM also
// keeps the last index it has seen in memory, so WaitApplied never depends on
// the store alone.
//
// Entries at or below the store's applied revision are skipped: the store is
// durable, so replay after a restart is idempotent and needs no snapshot
// restore.
type FSM struct {
	backend Backend
	logger  *slog.Logger
	guard   atomic.Pointer[SchemaGuard]

	// The hash of the stored schema, for commands that carry the hash they
	// were validated against. Only the applying goroutine (Apply, ApplyBatch,
	// Restore) touches it; unknown until first needed, then kept current.
	schemaHash  SchemaHash
	schemaKnown bool

	mu           sync.Mutex
	applied      tuple.Revision
	changed      chan struct{} // closed when applied advances or the FSM halts
	halted       error
	onHalt       func(error)
	members      map[string]MemberInfo // as the store holds it
	membersIndex uint64                // log index of the last member change

	onApplied atomic.Pointer[OnApplied]
}

// SetOnApplied installs (or, with nil, removes) the applied-entry hook.
func (f *FSM) SetOnApplied(fn OnApplied) {
	if fn == nil {
		f.onApplied.Store(nil)
		return
	}
	f.onApplied.Store(&fn)
}

// notifyApplied calls the applied-entry hook for the command entries of a
// batch that were applied (not those after a halt).
func (f *FSM) notifyApplied(logs []*hraft.Log, out []any, upTo tuple.Revision) {
	hook := f.onApplied.Load()
	if hook == nil {
		return
	}
	for i, l := range logs {
		if tuple.Revision(l.Index) > upTo {
			return
		}
		if l.Type != hraft.LogCommand {
			continue
		}
		e := AppliedEntry{Index: l.Index, Data: l.Data}
		if r, ok := out[i].(*Result); ok && r != nil {
			e.Err = r.Err
		}
		(*hook)(e)
	}
}

var (
	_ hraft.FSM         = (*FSM)(nil)
	_ hraft.BatchingFSM = (*FSM)(nil)
)

// NewFSM returns an FSM over b, with the member table b holds.
// legacyMembers names the file where builds before the table moved into the
// store kept it ("" for none): if present it is moved into the store (when
// the store holds no table yet) and removed.
func NewFSM(b Backend, legacyMembers string, logger *slog.Logger) (*FSM, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &FSM{
		backend: b,
		logger:  logger,
		applied: b.AppliedRevision(),
		changed: make(chan struct{}),
		members: map[string]MemberInfo{},
	}
	if legacyMembers != "" {
		if err := migrateMembers(b, legacyMembers, logger); err != nil {
			return nil, err
		}
	}
	if err := f.loadMembers(); err != nil {
		return nil, err
	}
	return f, nil
}

// migrateMembers moves a member table file into the store, once. The file
// and the store were written apart, so they may disagree about the index;
// the log replays every member change after the store's revision, which
// ends in the same table either way. A store that has applied nothing gets
// its table from the snapshot or the log instead.
func migrateMembers(b Backend, path string, logger *slog.Logger) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raft: reading member table %s: %w", path, err)
	}
	if _, _, err := decodeMembers(data); err != nil {
		return fmt.Errorf("raft: member table %s: %w", path, err)
	}
	have, err := b.Members()
	if err != nil {
		return err
	}
	if have == nil && b.AppliedRevision() > 0 {
		if err := b.ImportMembers(data); err != nil {
			return err
		}
		if err := b.Sync(); err != nil {
			return fmt.Errorf("raft: syncing the store after moving the member table in: %w", err)
		}
		logger.Info("raft: moved the member table into the store", "file", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("raft: removing the old member table %s: %w", path, err)
	}
	return nil
}

// loadMembers reads the member table from the store.
func (f *FSM) loadMembers() error {
	data, err := f.backend.Members()
	if err != nil {
		return fmt.Errorf("raft: reading the member table: %w", err)
	}
	members, idx := map[string]MemberInfo{}, uint64(0)
	if data != nil {
		if idx, members, err = decodeMembers(data); err != nil {
			return fmt.Errorf("raft: the stored member table: %w", err)
		}
	}
	f.mu.Lock()
	f.members, f.membersIndex = members, idx
	f.mu.Unlock()
	return nil
}

// SetSchemaGuard installs (or, with nil, removes) the schema guard.
func (f *FSM) SetSchemaGuard(g SchemaGuard) {
	if g == nil {
		f.guard.Store(nil)
		return
	}
	f.guard.Store(&g)
}

// Applied returns the highest log index applied (or skipped as already
// applied): at least the store's applied revision.
func (f *FSM) Applied() tuple.Revision {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// WaitApplied blocks until the applied index is at least rev or ctx is done.
func (f *FSM) WaitApplied(ctx context.Context, rev tuple.Revision) error {
	for {
		f.mu.Lock()
		applied, ch, halted := f.applied, f.changed, f.halted
		f.mu.Unlock()
		if applied >= rev {
			return nil
		}
		if halted != nil {
			return fmt.Errorf("%w: %w", ErrHalted, halted)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for revision %d (applied %d): %w", ErrTimeout, rev, applied, ctx.Err())
		}
	}
}

// Members returns a copy of the replicated member table.
func (f *FSM) Members() map[string]MemberInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.members)
}

// Member returns one member's metadata.
func (f *FSM) Member(id string) (MemberInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.members[id]
	return m, ok
}

// advance records that every entry up to idx has been applied.
func (f *FSM) advance(idx tuple.Revision) {
	f.mu.Lock()
	if idx > f.applied {
		f.applied = idx
		close(f.changed)
		f.changed = make(chan struct{})
	}
	f.mu.Unlock()
}

// halt stops the state machine at entry idx: no later entry is applied, the
// node refuses writes and linearizable reads (Halted), and waiters get
// ErrHalted. The in-memory state stays halted until a restart replays from
// the store (an I/O failure may not recur) or a snapshot is restored; an
// entry that does not decode halts the node again at the same index, which
// leaves it running and its data directory intact.
func (f *FSM) halt(idx uint64, err error) {
	f.mu.Lock()
	first := f.halted == nil
	if first {
		f.halted = fmt.Errorf("applying log index %d: %w", idx, err)
		close(f.changed)
		f.changed = make(chan struct{})
	}
	onHalt := f.onHalt
	f.mu.Unlock()
	if !first {
		return
	}
	f.logger.Error("raft: state machine halted; this node applies no further entries and refuses writes and linearizable reads", "index", idx, "err", err)
	if onHalt != nil {
		onHalt(fmt.Errorf("applying log index %d: %w", idx, err))
	}
}

// Halted returns nil while the state machine applies entries, and once it
// has halted, the reason (wrapping the cause, with the log index and the
// recovery path in its message).
func (f *FSM) Halted() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.halted == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrHalted, f.halted)
}

// setOnHalt installs a function called once, outside the FSM's lock, when the
// state machine halts.
func (f *FSM) setOnHalt(fn func(error)) {
	f.mu.Lock()
	f.onHalt = fn
	f.mu.Unlock()
}

func (f *FSM) haltedErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.halted
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *hraft.Log) any {
	return f.ApplyBatch([]*hraft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM. Each response is a *Result (nil for
// configuration entries).
//
// Runs of consecutive entries that are relationship writes, no-ops or
// configuration changes go to the store in one WriteMany (one storage write
// for the run); every other entry is applied alone. Either way each entry
// gets its own result at its own revision, exactly as applying the entries
// one at a time would give.
func (f *FSM) ApplyBatch(logs []*hraft.Log) []any {
	out := make([]any, len(logs))
	storeRev := f.backend.AppliedRevision()
	var run writeRun
	var last uint64
	for i, l := range logs {
		last = l.Index
		var cmd *Command // decoded by batchable, if it got that far
		if f.haltedErr() == nil {
			var req store.WriteRequest
			var refused error
			var ok bool
			if req, cmd, refused, ok = f.batchable(l, storeRev); ok {
				if run.updates > 0 && run.updates+len(req.Updates) > maxRunUpdates {
					f.flush(&run, out, &storeRev)
				}
				run.add(i, l.Type == hraft.LogConfiguration, req, refused)
				continue
			}
			f.flush(&run, out, &storeRev)
		}
		out[i] = f.applyOne(l, cmd, &storeRev)
	}
	f.flush(&run, out, &storeRev)
	if f.haltedErr() == nil {
		f.advance(tuple.Revision(last))
		f.notifyApplied(logs, out, tuple.Revision(last))
	} else {
		f.advance(storeRev) // what was applied before the halt
		f.notifyApplied(logs, out, storeRev)
	}
	return out
}

// writeRun is a run of consecutive entries bound for one WriteMany.
type writeRun struct {
	reqs    []store.WriteRequest
	pos     []int   // index of each request's entry in the batch
	config  []bool  // the entry is a configuration change (its response is nil)
	refused []error // the FSM's own refusal of the entry, if any
	updates int     // relationship updates in reqs
}

func (r *writeRun) add(pos int, config bool, req store.WriteRequest, refused error) {
	r.reqs = append(r.reqs, req)
	r.pos = append(r.pos, pos)
	r.config = append(r.config, config)
	r.refused = append(r.refused, refused)
	r.updates += len(req.Updates)
}

func (r *writeRun) reset() {
	clear(r.reqs) // drop references to the decoded commands
	clear(r.refused)
	r.reqs, r.pos, r.config, r.refused = r.reqs[:0], r.pos[:0], r.config[:0], r.refused[:0]
	r.updates = 0
}

// maxRunUpdates bounds the relationship updates of one WriteMany run: the
// store keeps the run's writes in memory to check each request against the
// ones before it. A run ends before an entry that would take it past the
// bound (an entry larger than the bound makes a run of its own).
const maxRunUpdates = 8192

// batchable returns the store request for an entry that can join a
// WriteMany run: a write, a no-op or a configuration change the store has
// not applied yet. refused is set for a write the FSM refuses itself (its
// schema changed); its request writes nothing. cmd is the decoded command
// when batchable decoded it, so applyOne need not decode it again.
func (f *FSM) batchable(l *hraft.Log, storeRev tuple.Revision) (req store.WriteRequest, cmd *Command, refused error, ok bool) {
	idx := tuple.Revision(l.Index)
	if idx <= storeRev {
		return store.WriteRequest{}, nil, nil, false
	}
	switch {
	case l.Type == hraft.LogConfiguration:
		return store.WriteRequest{Rev: idx, Now: entryTime(l)}, nil, nil, true
	case l.Type != hraft.LogCommand || len(l.Data) == 0:
		return store.WriteRequest{}, nil, nil, false
	}
	switch Kind(l.Data[0]) {
	case KindWrite, KindNoop:
	default:
		return store.WriteRequest{}, nil, nil, false
	}
	c, err := decodeEntry(l)
	if err != nil {
		return store.WriteRequest{}, nil, nil, false // applyOne decodes it again and halts
	}
	now := c.Now
	if now.IsZero() {
		now = entryTime(l)
	}
	if c.SchemaHash != (SchemaHash{}) {
		// The schema cannot change within a run (a schema write ends it).
		switch err := f.checkSchema(c.SchemaHash); {
		case errors.Is(err, ErrSchemaChanged):
			// Refused: the request only consumes the revision.
			return store.WriteRequest{Rev: idx, Now: now}, nil, err, true
		case err != nil:
			return store.WriteRequest{}, &c, nil, false // applyOne meets it again and halts
		}
	}
	return store.WriteRequest{Rev: idx, Now: now, Updates: c.Updates, Preconds: c.Preconditions}, nil, nil, true
}

// flush applies the pending run with one WriteMany and fills in its
// entries' responses. A failure of the call itself halts the FSM: nothing of
// the run was applied.
func (f *FSM) flush(run *writeRun, out []any, storeRev *tuple.Revision) {
	if len(run.reqs) == 0 {
		return
	}
	defer run.reset()
	results, err := f.backend.WriteMany(run.reqs)
	if err != nil {
		f.halt(uint64(run.reqs[0].Rev), err)
		for j, pos := range run.pos {
			if !run.config[j] {
				out[pos] = &Result{Revision: run.reqs[j].Rev, Err: fmt.Errorf("%w: %w", ErrHalted, err)}
			}
		}
		return
	}
	*storeRev = run.reqs[len(run.reqs)-1].Rev
	for j, pos := range run.pos {
		if run.config[j] {
			continue
		}
		res := &Result{Revision: run.reqs[j].Rev, Err: results[j]}
		if run.refused[j] != nil {
			res.Err = run.refused[j]
		}
		out[pos] = res
	}
}

// checkSchema returns nil if the stored schema has hash want, an
// ErrSchemaChanged domain failure if it has another, or the store's error.
func (f *FSM) checkSchema(want SchemaHash) error {
	if !f.schemaKnown {
		text, _, err := f.backend.ReadSchema(f.backend.AppliedRevision())
		if err != nil {
			return fmt.Errorf("raft: reading the stored schema: %w", err)
		}
		f.schemaHash, f.schemaKnown = schema.DigestOf(text), true
	}
	if f.schemaHash != want {
		return fmt.Errorf("%w: it was validated against schema %s, but schema %s is stored now; nothing was written, validate and retry the write",
			ErrSchemaChanged, want.String()[:12], f.schemaHash.String()[:12])
	}
	return nil
}

// applyOne applies one entry; cmd is its decoded command, or nil.
func (f *FSM) applyOne(l *hraft.Log, cmd *Command, storeRev *tuple.Revision) any {
	idx := tuple.Revision(l.Index)
	if h := f.haltedErr(); h != nil {
		return &Result{Revision: idx, Err: fmt.Errorf("%w: %w", ErrHalted, h)}
	}
	switch l.Type {
	case hraft.LogConfiguration:
		if idx > *storeRev {
			f.advanceStore(l.Index, entryTime(l), storeRev)
		}
		return nil
	case hraft.LogCommand:
	default:
		return nil
	}
	// Skip what the store already holds (the member table included).
	if idx <= *storeRev {
		return &Result{Revision: idx}
	}
	if cmd == nil {
		c, err := decodeEntry(l)
		if err != nil {
			f.halt(l.Index, err)
			return &Result{Revision: idx, Err: fmt.Errorf("%w: %w", ErrHalted, err)}
		}
		cmd = &c
	}
	now := cmd.Now
	if now.IsZero() {
		now = entryTime(l)
	}
	res := &Result{Revision: idx}
	var err error
	if cmd.SchemaHash != (SchemaHash{}) {
		err = f.checkSchema(cmd.SchemaHash)
	}
	switch {
	case err != nil:
	case cmd.Kind == KindWrite:
		err = f.backend.Write(idx, now, cmd.Updates, cmd.Preconditions)
	case cmd.Kind == KindDelete:
		res.Deleted, res.Partial, err = f.backend.DeleteByFilter(idx, now, cmd.Filter, cmd.Limit, cmd.AllowPartial, cmd.Preconditions)
	case cmd.Kind == KindSchema:
		if g := f.guard.Load(); g != nil {
			if gerr := (*g)(idx, now, cmd.Schema); gerr != nil {
				err = fmt.Errorf("%w: %w", ErrSchemaRefused, gerr)
				break
			}
		}
		if err = f.backend.WriteSchema(idx, now, cmd.Schema); err == nil {
			f.schemaHash, f.schemaKnown = schema.DigestOf(cmd.Schema), true
		} else if !store.IsRefusal(err) {
			f.schemaKnown = false
		}
	case cmd.Kind == KindImport:
		err = f.backend.Import(idx, now, cmd.Relationships)
	case cmd.Kind == KindRecords:
		err = f.backend.WriteRecords(idx, now, cmd.Updates, cmd.Preconditions, cmd.Records, cmd.RecordConds)
	case cmd.Kind == KindNoop:
		err = f.backend.Write(idx, now, nil, nil)
	case cmd.Kind == KindSetMember, cmd.Kind == KindForgetMember:
		err = f.applyMember(idx, now, *cmd)
	}
	switch {
	case err == nil:
		*storeRev = idx
	case store.IsRefusal(err):
		res.Err = err
		*storeRev = idx
		// The store advances on a domain failure; a refusal decided here (the
		// schema guard) or a store that did not must still move the revision.
		if f.backend.AppliedRevision() < idx {
			f.advanceStore(l.Index, now, storeRev)
		}
	default:
		f.halt(l.Index, err)
		res.Err = fmt.Errorf("%w: %w", ErrHalted, err)
	}
	return res
}

// unstampedTime is the time given to the store for an entry that carries no
// leader time: the bootstrap configuration entry is the only one raft leaves
// unstamped. It is a constant so every replica applies the same value.
var unstampedTime = time.Unix(0, 0).UTC()

// entryTime is the leader's append time of l (deterministic: it is part of
// the replicated entry), or unstampedTime.
func entryTime(l *hraft.Log) time.Time {
	if l.AppendedAt.IsZero() {
		return unstampedTime
	}
	return l.AppendedAt
}

// advanceStore writes an empty batch at idx so the store's revision follows
// the log through entries that change no data.
func (f *FSM) advanceStore(idx uint64, now time.Time, storeRev *tuple.Revision) {
	if err := f.backend.Write(tuple.Revision(idx), now, nil, nil); err != nil && f.backend.AppliedRevision() < tuple.Revision(idx) {
		f.halt(idx, err)
		return
	}
	*storeRev = tuple.Revision(idx)
}

// decodeEntry decodes a log entry's command. An entry that does not decode
// cannot be applied the way the other replicas applied it (a newer leader
// wrote a command version or kind this binary does not know, or the entry is
// corrupt): applying anything else would let the replicas diverge, so the FSM
// halts on it, with this error naming the index and the way out. It never
// panics: a panic would kill the node on every restart at the same entry.
func decodeEntry(l *hraft.Log) (Command, error) {
	cmd, err := Decode(l.Data)
	if err == nil {
		return cmd, nil
	}
	if len(l.Data) >= 2 && l.Data[1] > maxCommandVersion && Kind(l.Data[0]) >= KindWrite && Kind(l.Data[0]) <= lastKind {
		return Command{}, fmt.Errorf("%w: log entry %d is a command of version %d, and this binary reads versions up to %d: "+
			"upgrade this node to an ambit version that knows command version %d and restart it (upgrade followers first, the leader last)",
			ErrUndecodableEntry, l.Index, l.Data[1], maxCommandVersion, l.Data[1])
	}
	return Command{}, fmt.Errorf("%w: log entry %d: %w; if the other members applied it, upgrade this node to the ambit version they run and restart it; "+
		"otherwise the entry is corrupt: stop this node, remove its data directory and join it again to catch up from a snapshot",
		ErrUndecodableEntry, l.Index, err)
}

// applyMember writes the member table with cmd's change at idx, in the
// store's transaction for idx, then publishes it.
func (f *FSM) applyMember(idx tuple.Revision, now time.Time, cmd Command) error {
	f.mu.Lock()
	next := maps.Clone(f.members)
	f.mu.Unlock()
	if cmd.Kind == KindSetMember {
		next[cmd.Member.ID] = cmd.Member
	} else {
		delete(next, cmd.Member.ID)
	}
	if err := f.backend.WriteMembers(idx, now, encodeMembers(uint64(idx), next)); err != nil {
		return err
	}
	f.mu.Lock()
	f.members, f.membersIndex = next, uint64(idx)
	f.mu.Unlock()
	return nil
}

// Snapshot implements raft.FSM. It captures the member table for the
// stream's header (read only when the store's stream lacks one, as in
// snapshots of earlier builds); Persist syncs the store, then streams it. The store snapshot may be newer than raft's
// snapshot index: that is safe because entries at or below the store's
// revision are skipped.
//
// Raft compacts the log up to the snapshot index only after Persist returns,
// and the store has applied at least that index when Snapshot is called, so
// syncing in Persist makes every entry raft may then drop durable in the
// store: a store that lost unsynced writes in an OS crash is still at or
// above the newest snapshot and catches up by replaying the log.
func (f *FSM) Snapshot() (hraft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.halted != nil {
		return nil, fmt.Errorf("%w: %w", ErrHalted, f.halted)
	}
	return &fsmSnapshot{backend: f.backend, members: encodeMembers(f.membersIndex, f.members)}, nil
}

// Snapshot stream layout: magic "AMBS", header length (4 bytes big-endian),
// the member table (encodeMembers), then the store's own snapshot stream.
const snapshotMagic = "AMBS"

type fsmSnapshot struct {
	backend Backend
	members []byte
}

func (s *fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	err := s.backend.Sync()
	if err != nil {
		err = fmt.Errorf("raft: syncing the store before a snapshot: %w", err)
	} else {
		err = s.write(sink)
	}
	if err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	hdr := make([]byte, 0, 8+len(s.members))
	hdr = append(hdr, snapshotMagic...)
	hdr = append(hdr, byte(len(s.members)>>24), byte(len(s.members)>>16), byte(len(s.members)>>8), byte(len(s.members)))
	hdr = append(hdr, s.members...)
	if _, err := bw.Write(hdr); err != nil {
		return fmt.Errorf("raft: writing snapshot header: %w", err)
	}
	if _, err := s.backend.WriteSnapshot(bw); err != nil {
		return fmt.Errorf("raft: writing store snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("raft: writing snapshot: %w", err)
	}
	return nil
}

func (s *fsmSnapshot) Release() {}

// Restore implements raft.FSM: it replaces the store and the member table
// with the snapshot's.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 256<<10)
	var hdr [8]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return fmt.Errorf("raft: reading snapshot header: %w", err)
	}
	if string(hdr[:4]) != snapshotMagic {
		return fmt.Errorf("raft: snapshot does not start with %q", snapshotMagic)
	}
	n := int(hdr[4])<<24 | int(hdr[5])<<16 | int(hdr[6])<<8 | int(hdr[7])
	if n > 64<<20 {
		return fmt.Errorf("raft: snapshot member table of %d bytes is too large", n)
	}
	meta := make([]byte, n)
	if _, err := io.ReadFull(br, meta); err != nil {
		return fmt.Errorf("raft: reading snapshot member table: %w", err)
	}
	if _, _, err := decodeMembers(meta); err != nil {
		return fmt.Errorf("raft: snapshot member table: %w", err)
	}
	if err := f.backend.RestoreSnapshot(br); err != nil {
		return fmt.Errorf("raft: restoring store snapshot: %w", err)
	}
	// Raft drops the log up to the snapshot once Restore returns.
	if err := f.backend.Sync(); err != nil {
		return fmt.Errorf("raft: syncing the restored store: %w", err)
	}
	// The store's stream carries the member table at its own revision. A
	// snapshot from a build that kept the table beside the store has it in
	// the header only.
	if have, err := f.backend.Members(); err != nil {
		return err
	} else if have == nil && len(meta) > 0 {
		if err := f.backend.ImportMembers(meta); err != nil {
			return fmt.Errorf("raft: storing the snapshot's member table: %w", err)
		}
		if err := f.backend.Sync(); err != nil {
			return fmt.Errorf("raft: syncing the restored store: %w", err)
		}
	}
	if err := f.loadMembers(); err != nil {
		return err
	}
	f.schemaKnown = false
	rev := f.backend.AppliedRevision()
	f.mu.Lock()
	members := len(f.members)
	f.halted = nil
	f.applied = rev
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	f.logger.Info("raft: restored state machine from snapshot", "revision", uint64(rev), "members", members)
	return nil
}

// Member table encoding: version:byte(1) index:uvarint n:uvarint
// (id:string raftAddr:string grpcAddr:string)*n, ids strictly increasing.
func encodeMembers(idx uint64, members map[string]MemberInfo) []byte {
	e := encoder{}
	e.buf = append(e.buf, 1)
	e.uvarint(idx)
	ids := make([]string, 0, len(members))
	for id := range members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	e.uvarint(uint64(len(ids)))
	for _, id := range ids {
		m := members[id]
		e.string(m.ID)
		e.string(m.RaftAddr)
		e.string(m.GRPCAddr)
	}
	return e.buf
}

func decodeMembers(data []byte) (uint64, map[string]MemberInfo, error) {
	d := decoder{data: data}
	if v := d.byte("member table version"); d.err == nil && v != 1 {
		d.fail("unsupported member table version %d", v)
	}
	idx := d.uvarint("member table index")
	n := d.count("member")
	members := make(map[string]MemberInfo, n)
	prev := ""
	for i := 0; i < n && d.err == nil; i++ {
		m := MemberInfo{ID: d.string("member id"), RaftAddr: d.string("member raft address"), GRPCAddr: d.string("member gRPC address")}
		if i > 0 && d.err == nil && m.ID <= prev {
			d.fail("member ids not strictly increasing (%q after %q)", m.ID, prev)
		}
		prev = m.ID
		members[m.ID] = m
	}
	if d.err == nil && d.remaining() > 0 {
		d.fail("%d trailing bytes after the member table", d.remaining())
	}
	if d.err != nil {
		return 0, nil, d.err
	}
	return idx, members, nil
}

// writeFileAtomic replaces path with data: a temporary file, fsynced, then
// renamed over it.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("raft: writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("raft: writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("raft: syncing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("raft: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("raft: renaming %s: %w", path, err)
	}
	return nil
}
