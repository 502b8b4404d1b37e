package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ambit-authz/ambit/tuple"
)

// Records are the replicated state that is not a relationship: API tokens,
// SCIM attributes. A record is a value under a key in a space; it is
// written through the log like every change, at a revision, atomically with
// relationship updates (WriteRecords), and read on a Snapshot. Records are
// not in the change feed. FORMAT.md has the key layout ("`k` records") and
// the limits below ("Limits"), which are the log format's: the same on every
// node.
const (
	// MaxRecordSpace bounds a space name's length; names use [a-z0-9._-].
	MaxRecordSpace = 64
	// MaxRecordKey bounds a record key's length (any bytes).
	MaxRecordKey = 1024
	// MaxRecordValue bounds a record's value.
	MaxRecordValue = 64 << 10
	// MaxRecordOps bounds the ops and conditions of one write together.
	MaxRecordOps = 1000
)

// RecordOp puts one record (Value non-nil) or deletes it (Value nil).
type RecordOp struct {
	Space, Key string
	Value      []byte
}

// RecordCond holds when the record is absent (Value nil) or present with
// exactly Value.
type RecordCond struct {
	Space, Key string
	Value      []byte
}

// RecordEntry is one record read back.
type RecordEntry struct {
	Key   string
	Value []byte
}

func validSpace(space string) error {
	if space == "" || len(space) > MaxRecordSpace {
		return fmt.Errorf("%w: record space %q must be 1 to %d bytes", ErrInvalid, space, MaxRecordSpace)
	}
	for i := 0; i < len(space); i++ {
		c := space[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: record space %q: byte %d (%q) is not one of [a-z0-9._-]", ErrInvalid, space, i, c)
		}
	}
	return nil
}

func validRecordRef(space, key string) error {
	if err := validSpace(space); err != nil {
		return err
	}
	if key == "" || len(key) > MaxRecordKey {
		return fmt.Errorf("%w: record key in space %q must be 1 to %d bytes, got %d", ErrInvalid, space, MaxRecordKey, len(key))
	}
	return nil
}

// validateRecords checks a write's record ops and conditions against the
// format's limits; an op names each record at most once.
func validateRecords(ops []RecordOp, conds []RecordCond) error {
	if n := len(ops) + len(conds); n > MaxRecordOps {
		return fmt.Errorf("%w: %d record ops and conditions, more than the format's limit of %d", ErrTooLarge, n, MaxRecordOps)
	}
	seen := make(map[string]int, len(ops))
	for i, op := range ops {
		if err := validRecordRef(op.Space, op.Key); err != nil {
			return fmt.Errorf("record op %d: %w", i, err)
		}
		if len(op.Value) > MaxRecordValue {
			return fmt.Errorf("%w: record op %d (%s/%q): value is %d bytes, more than the format's limit of %d",
				ErrTooLarge, i, op.Space, op.Key, len(op.Value), MaxRecordValue)
		}
		k := string(recordKey(op.Space, op.Key))
		if j, dup := seen[k]; dup {
			return fmt.Errorf("%w: record ops %d and %d both name %s/%q", ErrInvalid, j, i, op.Space, op.Key)
		}
		seen[k] = i
	}
	for i, c := range conds {
		if err := validRecordRef(c.Space, c.Key); err != nil {
			return fmt.Errorf("record condition %d: %w", i, err)
		}
		if len(c.Value) > MaxRecordValue {
			return fmt.Errorf("%w: record condition %d: value is %d bytes, more than the format's limit of %d", ErrTooLarge, i, len(c.Value), MaxRecordValue)
		}
	}
	return nil
}

// checkRecordConds evaluates conditions against txn.
func checkRecordConds(txn *badger.Txn, conds []RecordCond) error {
	for i, c := range conds {
		cur, ok, err := getRecord(txn, c.Space, c.Key)
		if err != nil {
			return err
		}
		switch {
		case c.Value == nil && ok:
			return fmt.Errorf("%w: record condition %d: %s/%q exists", ErrPreconditionFailed, i, c.Space, c.Key)
		case c.Value != nil && !ok:
			return fmt.Errorf("%w: record condition %d: %s/%q does not exist", ErrPreconditionFailed, i, c.Space, c.Key)
		case c.Value != nil && !bytes.Equal(cur, c.Value):
			return fmt.Errorf("%w: record condition %d: %s/%q has changed", ErrPreconditionFailed, i, c.Space, c.Key)
		}
	}
	return nil
}

func getRecord(txn *badger.Txn, space, key string) ([]byte, bool, error) {
	item, err := txn.Get(recordKey(space, key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: read record %s/%q: %w", space, key, err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, false, fmt.Errorf("store: read record %s/%q: %w", space, key, err)
	}
	return v, true, nil
}

// WriteRecords applies relationship updates and record ops atomically at rev
// if every relationship precondition and every record condition holds
// against the state just before rev. A failed condition is
// ErrPreconditionFailed; like every refusal (see Write) it writes nothing
// but consumes rev.
func (s *Store) WriteRecords(rev tuple.Revision, now time.Time, updates []Update, preconds []Precondition, ops []RecordOp, conds []RecordCond) error {
	done, err := s.beginWrite(rev)
	if err != nil {
		return err
	}
	defer done()
	return s.finish(rev, now, s.writeRecords(rev, now, updates, preconds, ops, conds))
}

func (s *Store) writeRecords(rev tuple.Revision, now time.Time, updates []Update, preconds []Precondition, ops []RecordOp, conds []RecordCond) error {
	if err := validateRecords(ops, conds); err != nil {
		return err
	}
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
	if err := checkRecordConds(txn, conds); err != nil {
		return err
	}
	var staged stagingSink
	b := &batch{out: &staged, rev: rev}
	if err := b.stage(updates, preps, now, func(rkey []byte) (bool, bool, error) { return lookup(txn, rkey, now) }); err != nil {
		return err
	}
	if err := b.flushChunk(); err != nil {
		return err
	}
	for _, op := range ops {
		e := stagedEntry{k: recordKey(op.Space, op.Key)}
		if op.Value == nil {
			e.del = true
		} else {
			e.v = bytes.Clone(op.Value)
		}
		staged.entries = append(staged.entries, e)
	}
	return s.commitStaged(applied, rev, now, staged.entries, nil)
}

// Record returns the record space/key at the snapshot's revision.
func (sn *Snapshot) Record(space, key string) (value []byte, ok bool, err error) {
	if err := validRecordRef(space, key); err != nil {
		return nil, false, err
	}
	return getRecord(sn.txn, space, key)
}

// Records iterates over space's records with keys after after (all of them
// when after is ""), in key order, at the snapshot's revision.
func (sn *Snapshot) Records(ctx context.Context, space, after string) iter.Seq2[RecordEntry, error] {
	return func(yield func(RecordEntry, error) bool) {
		if err := validSpace(space); err != nil {
			yield(RecordEntry{}, err)
			return
		}
		prefix := recordSpacePrefix(space)
		it := sn.txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		start := prefix
		if after != "" {
			start = recordKeyAfter(space, after)
		}
		for it.Seek(start); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				yield(RecordEntry{}, err)
				return
			}
			item := it.Item()
			_, key, err := decodeRecordKey(item.Key())
			if err != nil {
				yield(RecordEntry{}, err)
				return
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				yield(RecordEntry{}, fmt.Errorf("store: read record %s/%q: %w", space, key, err))
				return
			}
			if !yield(RecordEntry{Key: key, Value: v}, nil) {
				return
			}
		}
	}
}
