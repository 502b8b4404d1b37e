package store

import (
	"bytes"
	"fmt"
	"slices"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/ristretto/v2/z"

	"github.com/ambit-authz/ambit/tuple"
)

// streamImport writes a large import straight into SSTables with badger's
// incremental StreamWriter, bypassing the memtables (whose skiplist inserts
// dominate the cost of a bulk load). rels are (resource key, value) pairs
// sorted by key and free of duplicates. Every key is written at version rev,
// above the applied revision, so readers see nothing until the caller
// commits the applied revision; the caller holds the writer lock.
//
// PrepareIncremental blocks badger writes (PrepareIncremental itself needs
// empty memtables: see flushMemtables) and stops compactions; the new tables
// go to the level above the highest non-empty one (badger flattens the tree
// first when L0 has tables). Badger builds tables on several goroutines and
// sorts that level only in Flush, so concurrent readers may briefly see it
// out of order; every key in it has version rev, which no reader can see,
// and badger's iterator drops such keys before they touch its
// version-deduplication state, so their answers are unaffected.
func (s *Store) streamImport(rev tuple.Revision, rels [][2][]byte) error {
	if err := s.flushMemtables(rev); err != nil {
		return err
	}
	return s.streamWrite(func(add func(k, v []byte, version uint64) error) error {
		// Keys must arrive in global order: 'c' < 'r' < 's' < 'x'.
		var chunk changeChunk
		seq := uint32(0)
		for i, kv := range rels {
			chunk.add(OpTouch, kv[0][1:], kv[1])
			if chunk.n >= chunkUpdates || len(chunk.buf) >= chunkBytes || i == len(rels)-1 {
				if err := add(changeKey(rev, seq), chunk.encode(), uint64(rev)); err != nil {
					return err
				}
				seq++
				chunk.reset()
			}
		}
		return addRelationships(add, rels, uint64(rev))
	})
}

// addRelationships streams both indexes and the expiry index of rels
// (sorted resource keys with their values) at version, in key order.
func addRelationships(add func(k, v []byte, version uint64) error, rels [][2][]byte, version uint64) error {
	// Build and sort the subject-major keys on another goroutine while the
	// resource keys stream out.
	type derived struct {
		subj     [][2][]byte
		expiring [][]byte
		err      error
	}
	done := make(chan derived, 1)
	go func() {
		var d derived
		d.subj = make([][2][]byte, len(rels))
		for i, kv := range rels {
			sk, err := subjectKeyFromBody(kv[0][1:])
			if err != nil {
				d.err = err
				break
			}
			d.subj[i] = [2][]byte{sk, kv[1]}
			if exp, err := valueExpiration(kv[1]); err == nil && !exp.IsZero() {
				d.expiring = append(d.expiring, expiryKey(exp, kv[0][1:]))
			}
		}
		if d.err == nil {
			slices.SortFunc(d.subj, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
			slices.SortFunc(d.expiring, bytes.Compare)
		}
		done <- d
	}()
	var err error
	for _, kv := range rels {
		if err = add(kv[0], kv[1], version); err != nil {
			break
		}
	}
	d := <-done
	if err != nil {
		return err
	}
	if d.err != nil {
		return d.err
	}
	for _, kv := range d.subj {
		if err := add(kv[0], kv[1], version); err != nil {
			return err
		}
	}
	for _, k := range d.expiring {
		if err := add(k, nil, version); err != nil {
			return err
		}
	}
	return nil
}

// streamWrite runs gen, which must add keys in strictly increasing order,
// through one incremental StreamWriter stream. Badger's memtables must be
// empty (flushMemtables, or a DropAll just before).
func (s *Store) streamWrite(gen func(add func(k, v []byte, version uint64) error) error) error {
	sw := s.db.NewStreamWriter()
	defer sw.Cancel()
	if err := sw.PrepareIncremental(); err != nil {
		return fmt.Errorf("prepare stream writer: %w", err)
	}
	// Two-stage pipeline: this goroutine encodes keys into buffers, a
	// second one hands full buffers to badger (which decodes them again and
	// feeds its table builders), so both cores work on a bulk load. Buffers
	// are recycled: badger copies what it keeps.
	const nbufs, bufFull = 3, 4 << 20
	free := make(chan *z.Buffer, nbufs)
	for range nbufs {
		free <- z.NewBuffer(bufFull+bufFull/2, "store.streamWrite")
	}
	full := make(chan *z.Buffer, nbufs)
	written := make(chan error, 1)
	go func() {
		var err error
		for buf := range full {
			if err == nil {
				err = sw.Write(buf)
			}
			buf.Reset()
			free <- buf
		}
		written <- err
	}()
	defer func() {
		for range nbufs {
			(<-free).Release()
		}
	}()
	buf := <-free
	kv := &pb.KV{StreamId: 1}
	add := func(k, v []byte, version uint64) error {
		kv.Key, kv.Value, kv.Version = k, v, version
		badger.KVToBuffer(kv, buf)
		if buf.LenNoPadding() >= bufFull {
			full <- buf
			buf = <-free
		}
		return nil
	}
	genErr := gen(add)
	if genErr == nil && buf.LenNoPadding() > 0 {
		full <- buf
	} else {
		free <- buf
	}
	close(full)
	if err := <-written; err != nil {
		return err
	}
	if genErr != nil {
		return genErr
	}
	if err := sw.Flush(); err != nil {
		return fmt.Errorf("flush stream writer: %w", err)
	}
	return nil
}

// flushMemtables makes badger flush its memtables and compact L0, which the
// incremental StreamWriter requires. Badger's only public way to do that is
// DropPrefix of a prefix that has data: write a throwaway key in the 0xFF
// keyspace at version rev (above the applied revision, so invisible) and
// drop that keyspace.
func (s *Store) flushMemtables(rev tuple.Revision) error {
	txn := s.db.NewTransactionAt(s.applied.Load(), true)
	defer txn.Discard()
	if err := txn.Set(flushKey(), nil); err != nil {
		return fmt.Errorf("flush memtables: %w", err)
	}
	if err := txn.CommitAt(uint64(rev), nil); err != nil {
		return fmt.Errorf("flush memtables: %w", err)
	}
	if err := s.db.DropPrefix(spacePrefix(spaceFlush)); err != nil {
		return fmt.Errorf("flush memtables: %w", err)
	}
	return nil
}
