package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ambit-authz/ambit/tuple"
)

const (
	// Change-feed chunks are cut at whichever limit comes first.
	chunkUpdates = 1000
	chunkBytes   = 256 << 10
	// bulkThreshold: deletes of more relationships than this go through a
	// badger WriteBatch (several internal commits at the same revision,
	// invisible until the applied revision is written) instead of one txn.
	bulkThreshold = 10000
	// maxSchemaBytes bounds a schema text.
	maxSchemaBytes = 4 << 20
)

// MaxCaveatContextBytes bounds the JSON encoding of a stored relationship's
// caveat context. It is a limit of the log format, the same on every node
// (FORMAT.md, "Limits"): the state machine refuses a write beyond it on
// every replica alike. The API's configurable limit, checked before a write
// is proposed, may not exceed it.
const MaxCaveatContextBytes = 64 << 10

// CaveatContextSize is the size a caveat's context takes in the store (its
// JSON encoding), the measure MaxCaveatContextBytes bounds.
func CaveatContextSize(c *tuple.Caveat) (int, error) {
	b, err := marshalContext(c)
	return len(b), err
}

// sink is where a batch's entries go: a badger transaction, or a badger
// WriteBatch for bulk operations. Both *badger.Txn and *badger.WriteBatch are sinks.
type sink interface {
	Set(k, v []byte) error
	Delete(k []byte) error
}

// batch writes relationship changes and their change-feed records at one revision.
type batch struct {
	out   sink
	rev   tuple.Revision
	chunk changeChunk
	seq   uint32
}

// put writes a relationship to both indexes (and the expiry index).
func (b *batch) put(rkey, val []byte, exp time.Time) error {
	skey, err := subjectKeyFromBody(rkey[1:])
	if err != nil {
		return err
	}
	if err := b.out.Set(rkey, val); err != nil {
		return err
	}
	if err := b.out.Set(skey, val); err != nil {
		return err
	}
	if !exp.IsZero() {
		if err := b.out.Set(expiryKey(exp, rkey[1:]), nil); err != nil {
			return err
		}
	}
	return b.record(OpTouch, rkey[1:], val)
}

// del removes a relationship from both indexes; record says whether the
// change feed shows it (an already-expired relationship's removal is not shown).
func (b *batch) del(rkey []byte, record bool) error {
	skey, err := subjectKeyFromBody(rkey[1:])
	if err != nil {
		return err
	}
	if err := b.out.Delete(rkey); err != nil {
		return err
	}
	if err := b.out.Delete(skey); err != nil {
		return err
	}
	if !record {
		return nil
	}
	return b.record(OpDelete, rkey[1:], nil)
}

func (b *batch) record(op Op, body, val []byte) error {
	b.chunk.add(op, body, val)
	if b.chunk.n >= chunkUpdates || len(b.chunk.buf) >= chunkBytes {
		return b.flushChunk()
	}
	return nil
}

func (b *batch) flushChunk() error {
	if b.chunk.n == 0 {
		return nil
	}
	err := b.out.Set(changeKey(b.rev, b.seq), b.chunk.encode())
	b.seq++
	b.chunk.reset()
	return err
}

// stage writes a request's validated updates. A TOUCH reads nothing: it
// writes the relationship whether or not one is stored. CREATE looks up
// whether a visible relationship is in the way, DELETE whether there is one
// to remove; look answers (present, visible at the write's time).
func (b *batch) stage(updates []Update, preps []prepared, now time.Time, look func(rkey []byte) (present, visible bool, err error)) error {
	for i := range updates {
		u, p := &updates[i], &preps[i]
		if u.Op == OpTouch {
			if err := b.put(p.rkey, p.val, p.exp); err != nil {
				return err
			}
			continue
		}
		present, visible, err := look(p.rkey)
		if err != nil {
			return err
		}
		switch u.Op {
		case OpCreate:
			if visible {
				return fmt.Errorf("%w: update %d (CREATE): %s", ErrAlreadyExists, i, u.Rel.Key())
			}
			err = b.put(p.rkey, p.val, p.exp)
		case OpDelete:
			if present {
				err = b.del(p.rkey, visible)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// commitStaged commits a revision's staged entries and its meta keys at
// rev, then publishes rev (running then first, see commitThen). They go in
// one transaction when badger takes them in one. A larger write (badger's
// transaction limit follows this node's memtable size, so another node may
// take it whole) goes in two steps: the entries through a WriteBatch at rev,
// which badger may split into several commits, all at version rev and so
// invisible to readers, then the meta keys in a transaction of their own.
// Either way the store ends in the same state, so no node refuses a write
// that another applied. A crash between the steps leaves the entries above
// the applied revision; replay writes the same keys at the same version.
func (s *Store) commitStaged(applied uint64, rev tuple.Revision, now time.Time, entries []stagedEntry, then func()) error {
	txn := s.db.NewTransactionAt(applied, true)
	defer txn.Discard()
	err := setStaged(txn, entries)
	if err == nil {
		err = s.setMeta(txn, rev, now)
	}
	if err == nil {
		return s.commitThen(txn, rev, then)
	}
	if !errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("store: write at revision %d: %w", rev, err)
	}
	txn.Discard()
	if err := s.writeBatchAt(rev, entries); err != nil {
		return err
	}
	meta := s.db.NewTransactionAt(applied, true)
	defer meta.Discard()
	if err := s.setMeta(meta, rev, now); err != nil {
		return fmt.Errorf("store: write at revision %d: %w", rev, err)
	}
	return s.commitThen(meta, rev, then)
}

// writeBatchAt writes entries at version rev through a badger WriteBatch,
// without the meta keys: nothing of it is visible until rev is applied.
func (s *Store) writeBatchAt(rev tuple.Revision, entries []stagedEntry) error {
	wb := s.db.NewWriteBatchAt(uint64(rev))
	defer wb.Cancel()
	for _, e := range entries {
		var err error
		if e.del {
			err = wb.Delete(e.k)
		} else {
			err = wb.Set(e.k, e.v)
		}
		if err != nil {
			return fmt.Errorf("store: write at revision %d: %w", rev, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: write at revision %d: %w", rev, err)
	}
	return nil
}

// beginWrite enters the store, takes the writer lock and checks rev. The
// returned func undoes both.
func (s *Store) beginWrite(rev tuple.Revision) (func(), error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.broken != nil {
		err := s.broken
		s.mu.Unlock()
		s.leave()
		return nil, err
	}
	if a := s.applied.Load(); uint64(rev) <= a {
		s.mu.Unlock()
		s.leave()
		return nil, fmt.Errorf("%w: revision %d, applied revision %d", ErrStaleWrite, rev, a)
	}
	return func() { s.mu.Unlock(); s.leave() }, nil
}

// finish handles the outcome of a write attempt made under the writer lock:
// on a domain failure it consumes the revision with an empty commit.
func (s *Store) finish(rev tuple.Revision, now time.Time, err error) error {
	if err == nil || !IsRefusal(err) {
		return err
	}
	txn := s.db.NewTransactionAt(s.applied.Load(), true)
	defer txn.Discard()
	if merr := s.setMeta(txn, rev, now); merr != nil {
		return errors.Join(err, merr)
	}
	if cerr := s.commit(txn, rev); cerr != nil {
		return errors.Join(err, cerr)
	}
	return err
}

// setMeta writes the applied revision and its leader time.
func (s *Store) setMeta(out sink, rev tuple.Revision, now time.Time) error {
	if err := out.Set(keyApplied, u64(uint64(rev))); err != nil {
		return err
	}
	if now.IsZero() {
		return nil
	}
	return out.Set(revKey(spaceTime, rev), u64(uint64(now.UnixNano())))
}

// commit commits txn at rev and publishes rev as applied.
func (s *Store) commit(txn *badger.Txn, rev tuple.Revision) error {
	return s.commitThen(txn, rev, nil)
}

// commitThen is commit that runs then (when not nil) after the commit and
// before rev is published, for in-memory state readers of rev must see.
func (s *Store) commitThen(txn *badger.Txn, rev tuple.Revision, then func()) error {
	if err := txn.CommitAt(uint64(rev), nil); err != nil {
		s.ioFailure(err)
		return fmt.Errorf("store: commit revision %d: %w", rev, err)
	}
	if then != nil {
		then()
	}
	s.applied.Store(uint64(rev))
	s.notify()
	return nil
}

// prepared is one validated, encoded update.
type prepared struct {
	rkey []byte
	val  []byte
	exp  time.Time
}

// prepare validates a relationship and encodes its key and value.
func (s *Store) prepare(r *tuple.Relationship, withValue bool) (prepared, error) {
	if err := r.Validate(); err != nil {
		return prepared{}, fmt.Errorf("%w: %s: %w", ErrInvalid, r.Key(), err)
	}
	p := prepared{rkey: resourceKey(r.Key()), exp: r.Expiration}
	if !withValue {
		return p, nil
	}
	if !r.Expiration.IsZero() && (r.Expiration.Before(minExpiration) || r.Expiration.After(maxExpiration)) {
		return prepared{}, fmt.Errorf("%w: %s: expiration %s is out of range", ErrInvalid, r.Key(), r.Expiration)
	}
	ctx, err := marshalContext(r.Caveat)
	if err != nil {
		return prepared{}, fmt.Errorf("%w: %s: caveat context: %v", ErrInvalid, r.Key(), err)
	}
	if len(ctx) > MaxCaveatContextBytes {
		return prepared{}, fmt.Errorf("%w: %s: caveat context is %d bytes of JSON, more than the format's limit of %d",
			ErrTooLarge, r.Key(), len(ctx), MaxCaveatContextBytes)
	}
	p.val = encodeValue(r, ctx)
	return p, nil
}

// Write applies updates atomically at rev if every precondition holds against
// the state just before rev. On a refusal (ErrRefused: ErrAlreadyExists,
// ErrPreconditionFailed, ErrInvalid, ErrTooLarge) nothing of the batch is
// written but the applied revision still advances to rev. now is the
// leader-stamped time of the write. The number of updates is not limited
// here (a node's configured limit is the API's, checked before proposing);
// a write too large for one badger transaction is committed in pieces (see
// commitStaged).
func (s *Store) Write(rev tuple.Revision, now time.Time, updates []Update, preconds []Precondition) error {
	done, err := s.beginWrite(rev)
	if err != nil {
		return err
	}
	defer done()
	return s.finish(rev, now, s.write(rev, now, updates, preconds))
}

// prepareUpdates validates a Write batch and encodes its updates.
func (s *Store) prepareUpdates(now time.Time, updates []Update) ([]prepared, error) {
	if now.IsZero() {
		return nil, fmt.Errorf("%w: the write has no timestamp", ErrInvalid)
	}
	preps := make([]prepared, len(updates))
	seen := make(map[tuple.Key]int, len(updates))
	for i := range updates {
		u := &updates[i]
		if u.Op != OpCreate && u.Op != OpTouch && u.Op != OpDelete {
			return nil, fmt.Errorf("%w: update %d: unknown operation %d", ErrInvalid, i, u.Op)
		}
		p, err := s.prepare(&u.Rel, u.Op != OpDelete)
		if err != nil {
			return nil, fmt.Errorf("update %d (%s): %w", i, u.Op, err)
		}
		k := u.Rel.Key()
		if j, dup := seen[k]; dup {
			return nil, fmt.Errorf("%w: updates %d and %d both name %s", ErrInvalid, j, i, k)
		}
		seen[k] = i
		preps[i] = p
	}
	return preps, nil
}

func (s *Store) write(rev tuple.Revision, now time.Time, updates []Update, preconds []Precondition) error {
	preps, err := s.prepareUpdates(now, updates)
	if err != nil {
		return err
	}
	applied := s.applied.Load()
	txn := s.db.NewTransactionAt(applied, false)
	defer txn.Discard()
	if err := checkPreconditions(txn, now, preconds); err != nil {
		return err
	}
	// Every check runs before anything is written: the entries may go to
	// badger in several commits (commitStaged).
	var staged stagingSink
	b := &batch{out: &staged, rev: rev}
	if err := b.stage(updates, preps, now, func(rkey []byte) (bool, bool, error) { return lookup(txn, rkey, now) }); err != nil {
		return err
	}
	if err := b.flushChunk(); err != nil {
		return err
	}
	return s.commitStaged(applied, rev, now, staged.entries, nil)
}

// lookup reports whether the relationship at rkey exists in txn, and whether
// it is visible (not expired) at now.
func lookup(txn *badger.Txn, rkey []byte, now time.Time) (present, visible bool, err error) {
	item, err := txn.Get(rkey)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("store: read %q: %w", rkey, err)
	}
	var exp time.Time
	if err := item.Value(func(v []byte) error {
		var err error
		exp, err = valueExpiration(v)
		return err
	}); err != nil {
		return false, false, fmt.Errorf("store: read %q: %w", rkey, err)
	}
	return true, exp.IsZero() || now.Before(exp), nil
}

func checkPreconditions(txn *badger.Txn, now time.Time, preconds []Precondition) error {
	for i, p := range preconds {
		if err := validateFilter(p.Filter); err != nil {
			return fmt.Errorf("precondition %d: %w", i, err)
		}
		found := false
		err := scan(context.Background(), txn, p.Filter, now, func(tuple.Relationship) bool {
			found = true
			return false
		})
		if err != nil {
			return fmt.Errorf("precondition %d: %w", i, err)
		}
		if p.MustMatch && !found {
			return fmt.Errorf("%w: precondition %d: MUST_MATCH filter %s matched nothing", ErrPreconditionFailed, i, describeFilter(p.Filter))
		}
		if !p.MustMatch && found {
			return fmt.Errorf("%w: precondition %d: MUST_NOT_MATCH filter %s matched a relationship", ErrPreconditionFailed, i, describeFilter(p.Filter))
		}
	}
	return nil
}

// DeleteByFilter deletes the relationships matching f at rev. limit 0 means
// no limit. If more than limit match: with allowPartial it deletes limit of
// them (in index order) and reports partial; otherwise it deletes nothing and
// fails with ErrTooLarge. Domain failures consume the revision as Write does.
func (s *Store) DeleteByFilter(rev tuple.Revision, now time.Time, f tuple.Filter, limit int, allowPartial bool, preconds []Precondition) (deleted int, partial bool, err error) {
	done, err := s.beginWrite(rev)
	if err != nil {
		return 0, false, err
	}
	defer done()
	deleted, partial, err = s.deleteByFilter(rev, now, f, limit, allowPartial, preconds)
	if err != nil {
		deleted, partial = 0, false
	}
	return deleted, partial, s.finish(rev, now, err)
}

func (s *Store) deleteByFilter(rev tuple.Revision, now time.Time, f tuple.Filter, limit int, allowPartial bool, preconds []Precondition) (int, bool, error) {
	if now.IsZero() {
		return 0, false, fmt.Errorf("%w: the delete has no timestamp", ErrInvalid)
	}
	if err := validateFilter(f); err != nil {
		return 0, false, err
	}
	if isEmptyFilter(f) {
		return 0, false, fmt.Errorf("%w: a delete filter must set at least one field", ErrInvalid)
	}
	if limit < 0 {
		return 0, false, fmt.Errorf("%w: negative delete limit %d", ErrInvalid, limit)
	}
	applied := s.applied.Load()
	txn := s.db.NewTransactionAt(applied, true)
	defer txn.Discard()
	if err := checkPreconditions(txn, now, preconds); err != nil {
		return 0, false, err
	}
	// Without a limit, a delete of more than bulkThreshold relationships
	// streams: each matching key goes straight into a WriteBatch at rev
	// (flushed in pieces, invisible until rev is applied), so memory stays
	// bounded however many match. With a limit, at most limit+1 keys are
	// collected first, since going over it may refuse the delete.
	var keys [][]byte
	var (
		bulk    *batch
		wb      *badger.WriteBatch
		werr    error
		deleted int
	)
	defer func() {
		if wb != nil {
			wb.Cancel()
		}
	}()
	err := scan(context.Background(), txn, f, now, func(r tuple.Relationship) bool {
		k := resourceKey(r.Key())
		if bulk != nil {
			if werr = bulk.del(k, true); werr != nil {
				return false
			}
			deleted++
			return true
		}
		keys = append(keys, k)
		if limit == 0 && len(keys) > bulkThreshold {
			wb = s.db.NewWriteBatchAt(uint64(rev))
			bulk = &batch{rev: rev, out: wb}
			for _, k := range keys {
				if werr = bulk.del(k, true); werr != nil {
					return false
				}
			}
			deleted, keys = len(keys), nil
		}
		return limit == 0 || len(keys) <= limit
	})
	if err == nil && werr != nil {
		err = fmt.Errorf("store: bulk delete at revision %d: %w", rev, werr)
	}
	if err != nil {
		return 0, false, err
	}
	if bulk != nil {
		if err := bulk.flushChunk(); err != nil {
			return 0, false, fmt.Errorf("store: bulk delete at revision %d: %w", rev, err)
		}
		if err := wb.Flush(); err != nil {
			return 0, false, fmt.Errorf("store: bulk delete at revision %d: %w", rev, err)
		}
		if err := s.setMeta(txn, rev, now); err != nil {
			return 0, false, err
		}
		return deleted, false, s.commit(txn, rev)
	}
	partial := false
	if limit > 0 && len(keys) > limit {
		if !allowPartial {
			return 0, false, fmt.Errorf("%w: filter %s matches more than the limit of %d relationships", ErrTooLarge, describeFilter(f), limit)
		}
		keys, partial = keys[:limit], true
	}
	if len(keys) <= bulkThreshold {
		var staged stagingSink
		b := &batch{rev: rev, out: &staged}
		for _, k := range keys {
			if err := b.del(k, true); err != nil {
				return 0, false, err
			}
		}
		if err := b.flushChunk(); err != nil {
			return 0, false, err
		}
		return len(keys), partial, s.commitStaged(applied, rev, now, staged.entries, nil)
	}
	wb = s.db.NewWriteBatchAt(uint64(rev)) // a limited delete of many
	b := &batch{rev: rev, out: wb}
	for _, k := range keys {
		if err := b.del(k, true); err != nil {
			return 0, false, fmt.Errorf("store: bulk delete at revision %d: %w", rev, err)
		}
	}
	if err := b.flushChunk(); err != nil {
		return 0, false, fmt.Errorf("store: bulk delete at revision %d: %w", rev, err)
	}
	if err := wb.Flush(); err != nil {
		return 0, false, fmt.Errorf("store: bulk delete at revision %d: %w", rev, err)
	}
	if err := s.setMeta(txn, rev, now); err != nil {
		return 0, false, err
	}
	return len(keys), partial, s.commit(txn, rev)
}

// WriteSchema stores the schema text at rev.
func (s *Store) WriteSchema(rev tuple.Revision, now time.Time, text string) error {
	done, err := s.beginWrite(rev)
	if err != nil {
		return err
	}
	defer done()
	return s.finish(rev, now, s.writeSchema(rev, now, text))
}

func (s *Store) writeSchema(rev tuple.Revision, now time.Time, text string) error {
	if now.IsZero() {
		return fmt.Errorf("%w: the schema write has no timestamp", ErrInvalid)
	}
	if len(text) > maxSchemaBytes {
		return fmt.Errorf("%w: schema is %d bytes, more than the limit of %d", ErrTooLarge, len(text), maxSchemaBytes)
	}
	entries := []stagedEntry{{k: keySchema, v: []byte(text)}, {k: changeKey(rev, 0), v: encodeSchemaChange(text)}}
	return s.commitStaged(s.applied.Load(), rev, now, entries, func() { s.schema.Store(&schemaVersion{text: text, at: rev}) })
}

// schemaVersion is a schema text and the revision that wrote it.
type schemaVersion struct {
	text string
	at   tuple.Revision
}

// readSchemaAt reads the newest schema at or below rev from badger (nil: none).
func readSchemaAt(db *badger.DB, rev uint64) (*schemaVersion, error) {
	txn := db.NewTransactionAt(rev, false)
	defer txn.Discard()
	item, err := txn.Get(keySchema)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read schema: %w", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("store: read schema: %w", err)
	}
	return &schemaVersion{text: string(v), at: tuple.Revision(item.Version())}, nil
}

// ReadSchema returns the latest schema written at or before rev ("" and 0 if none).
// At a revision no older than the newest schema it reads nothing from badger.
func (s *Store) ReadSchema(rev tuple.Revision) (text string, at tuple.Revision, err error) {
	if err := s.enter(); err != nil {
		return "", 0, err
	}
	defer s.leave()
	if err := s.checkReadable(rev); err != nil {
		return "", 0, err
	}
	if v := s.schema.Load(); v == nil || v.at <= rev {
		// checkReadable saw rev applied, so the newest schema (stored
		// before its revision was published) is the one in force at rev.
		if v == nil {
			return "", 0, nil
		}
		return v.text, v.at, nil
	}
	v, err := readSchemaAt(s.db, uint64(rev))
	if err != nil {
		return "", 0, err
	}
	if h := s.horizon.Load(); uint64(rev) < h {
		return "", 0, fmt.Errorf("%w: revision %d was garbage-collected during the read", ErrRevisionCompacted, rev)
	}
	if v == nil {
		return "", 0, nil
	}
	return v.text, v.at, nil
}

// Import bulk-loads relationships at rev with CREATE semantics: a duplicate,
// within rels or against the store, fails the whole import with
// ErrAlreadyExists. The store does not limit the number of relationships.
// The data goes through a badger WriteBatch, or, for a large import into an
// on-disk store without relationships, straight into tables
// (streamimport.go), and becomes visible when the applied revision commits
// after it; see FORMAT.md on interrupted imports.
func (s *Store) Import(rev tuple.Revision, now time.Time, rels []tuple.Relationship) error {
	done, err := s.beginWrite(rev)
	if err != nil {
		return err
	}
	defer done()
	return s.finish(rev, now, s.importRels(rev, now, rels))
}

func (s *Store) importRels(rev tuple.Revision, now time.Time, rels []tuple.Relationship) error {
	if now.IsZero() {
		return fmt.Errorf("%w: the import has no timestamp", ErrInvalid)
	}
	type entry struct {
		prepared
		idx int
	}
	entries := make([]entry, len(rels))
	// Validate and encode in parallel for large imports; the error reported
	// is the one with the lowest index, as a serial pass would find it.
	parts := 1
	if len(rels) >= 16384 {
		parts = runtime.GOMAXPROCS(0)
	}
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for part := range parts {
		lo, hi := part*len(rels)/parts, (part+1)*len(rels)/parts
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				p, err := s.prepare(&rels[i], true)
				if err != nil {
					errs[part] = fmt.Errorf("relationship %d: %w", i, err)
					return
				}
				entries[i] = entry{p, i}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return bytes.Compare(a.rkey, b.rkey) })
	for i := 1; i < len(entries); i++ {
		if bytes.Equal(entries[i-1].rkey, entries[i].rkey) {
			a, b := entries[i-1].idx, entries[i].idx
			return fmt.Errorf("%w: relationships %d and %d are both %s", ErrAlreadyExists, min(a, b), max(a, b), rels[a].Key())
		}
	}
	applied := s.applied.Load()
	txn := s.db.NewTransactionAt(applied, true)
	defer txn.Discard()
	empty := s.relsEmpty(txn)
	if !empty {
		for i := range entries {
			_, visible, err := lookup(txn, entries[i].rkey, now)
			if err != nil {
				return err
			}
			if visible {
				return fmt.Errorf("%w: relationship %d: %s", ErrAlreadyExists, entries[i].idx, rels[entries[i].idx].Key())
			}
		}
	}
	// Large imports into a store without relationships (a first load) build
	// tables directly (streamimport.go); the rest go through badger's
	// memtables.
	if !s.opts.InMemory && len(entries) >= s.opts.streamImportMin && empty {
		bodies := make([][2][]byte, len(entries))
		for i := range entries {
			bodies[i] = [2][]byte{entries[i].rkey, entries[i].val}
		}
		if err := s.streamImport(rev, bodies); err != nil {
			return fmt.Errorf("store: import at revision %d: %w", rev, err)
		}
		if err := s.setMeta(txn, rev, now); err != nil {
			return err
		}
		return s.commit(txn, rev)
	}
	wb := s.db.NewWriteBatchAt(uint64(rev))
	defer wb.Cancel()
	b := &batch{out: wb, rev: rev}
	// Badger inserts into its skiplist in the order given: write each
	// keyspace in key order (the resource keys are sorted already), which
	// keeps the inserts cache-friendly.
	skeys := make([][2][]byte, len(entries))
	for i := range entries {
		e := &entries[i]
		if err := wb.Set(e.rkey, e.val); err != nil {
			return fmt.Errorf("store: import at revision %d: %w", rev, err)
		}
		sk, err := subjectKeyFromBody(e.rkey[1:])
		if err != nil {
			return fmt.Errorf("store: import at revision %d: %w", rev, err)
		}
		skeys[i] = [2][]byte{sk, e.val}
	}
	slices.SortFunc(skeys, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
	for _, kv := range skeys {
		if err := wb.Set(kv[0], kv[1]); err != nil {
			return fmt.Errorf("store: import at revision %d: %w", rev, err)
		}
	}
	for i := range entries {
		e := &entries[i]
		if !e.exp.IsZero() {
			if err := wb.Set(expiryKey(e.exp, e.rkey[1:]), nil); err != nil {
				return fmt.Errorf("store: import at revision %d: %w", rev, err)
			}
		}
		if err := b.record(OpTouch, e.rkey[1:], e.val); err != nil {
			return fmt.Errorf("store: import at revision %d: %w", rev, err)
		}
	}
	if err := b.flushChunk(); err != nil {
		return fmt.Errorf("store: import at revision %d: %w", rev, err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: import at revision %d: %w", rev, err)
	}
	if err := s.setMeta(txn, rev, now); err != nil {
		return err
	}
	return s.commit(txn, rev)
}

// relsEmpty reports whether the resource index has no key at all in txn.
func (s *Store) relsEmpty(txn *badger.Txn) bool {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: spacePrefix(spaceResource)})
	defer it.Close()
	it.Rewind()
	return !it.Valid()
}

// Members returns the replicated member table at the applied revision, as
// WriteMembers stored it (nil if none). The store does not interpret it.
func (s *Store) Members() ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	txn := s.db.NewTransactionAt(s.applied.Load(), false)
	defer txn.Discard()
	item, err := txn.Get(keyMembers)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read member table: %w", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("store: read member table: %w", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// WriteMembers stores the member table at rev, in the transaction that
// records rev as applied: a crash keeps both or neither.
func (s *Store) WriteMembers(rev tuple.Revision, now time.Time, table []byte) error {
	done, err := s.beginWrite(rev)
	if err != nil {
		return err
	}
	defer done()
	if now.IsZero() {
		return s.finish(rev, now, fmt.Errorf("%w: the member table write has no timestamp", ErrInvalid))
	}
	entries := []stagedEntry{{k: keyMembers, v: append([]byte{}, table...)}}
	return s.commitStaged(s.applied.Load(), rev, now, entries, nil)
}

// ImportMembers stores table as the member table at the applied revision,
// without advancing it: the one-time move of a member table kept outside
// the store by earlier builds. The store must have applied a revision.
func (s *Store) ImportMembers(table []byte) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.mu.Lock()
	defer s.mu.Unlock()
	rev := s.applied.Load()
	if rev == 0 {
		return errors.New("store: importing a member table into a store that has applied nothing")
	}
	txn := s.db.NewTransactionAt(rev, true)
	defer txn.Discard()
	if err := txn.Set(keyMembers, append([]byte{}, table...)); err != nil {
		return fmt.Errorf("store: import member table: %w", err)
	}
	if err := txn.CommitAt(rev, nil); err != nil {
		return fmt.Errorf("store: import member table: %w", err)
	}
	return nil
}
