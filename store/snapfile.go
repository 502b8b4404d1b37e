package store

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"slices"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ambit-authz/ambit/tuple"
)

// Snapshot stream format (FORMAT.md, "Snapshot stream"):
//
//	magic "AMBITSNP" | version (1) | records... | end record | CRC-32C (4, BE)
//
// A record is kind (1) | uvarint payload length | payload. The CRC covers
// every byte before it.
const (
	snapMagic = "AMBITSNP"
	// 2 adds the member table record, 3 the records (records.go); older
	// streams are still read.
	snapVersion = 3

	recMeta   = 'M' // applied revision (8) | reserved (8, zero; once a relationship count)
	recSchema = 'S' // revision (8) | text
	recTime   = 'T' // revision (8) | leader time unix nanos (8)
	recRel    = 'R' // uvarint body length | body | value
	recEnd    = 'E' // number of records before this one (8)
	recMember = 'P' // the member table (opaque, as WriteMembers stored it)
	recRecord = 'K' // uvarint key length | record key ('k' ...) | value

	maxRecord = maxSchemaBytes + 16
)

var errSnapshot = errors.New("invalid snapshot stream")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type snapWriter struct {
	w   *bufio.Writer
	crc hash.Hash32
	n   uint64
	hdr []byte
}

func (sw *snapWriter) write(b []byte) error {
	sw.crc.Write(b)
	_, err := sw.w.Write(b)
	return err
}

func (sw *snapWriter) record(kind byte, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	sw.hdr = binary.AppendUvarint(append(sw.hdr[:0], kind), uint64(n))
	if err := sw.write(sw.hdr); err != nil {
		return err
	}
	for _, p := range parts {
		if err := sw.write(p); err != nil {
			return err
		}
	}
	sw.n++
	return nil
}

// WriteSnapshot streams the store's full state at the applied revision:
// relationships, records, schema, member table, applied revision and the
// revision-time index. The change feed is not included (a restored store's history starts at the
// snapshot's revision).
func (s *Store) WriteSnapshot(w io.Writer) (tuple.Revision, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	s.mu.Lock()
	rev := s.applied.Load()
	s.mu.Unlock()

	txn := s.db.NewTransactionAt(rev, false)
	defer txn.Discard()
	sw := &snapWriter{w: bufio.NewWriterSize(w, 256<<10), crc: crc32.New(castagnoli)}
	fail := func(err error) (tuple.Revision, error) {
		return 0, fmt.Errorf("store: write snapshot at %d: %w", rev, err)
	}
	if err := sw.write(append([]byte(snapMagic), snapVersion)); err != nil {
		return fail(err)
	}
	if err := sw.record(recMeta, u64(rev), u64(0)); err != nil {
		return fail(err)
	}
	if item, err := txn.Get(keySchema); err == nil {
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fail(err)
		}
		if err := sw.record(recSchema, u64(item.Version()), v); err != nil {
			return fail(err)
		}
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return fail(err)
	}
	if item, err := txn.Get(keyMembers); err == nil {
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fail(err)
		}
		if err := sw.record(recMember, v); err != nil {
			return fail(err)
		}
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return fail(err)
	}
	if err := s.iterate(txn, spaceTime, func(item *badger.Item) error {
		rev, err := decodeRevKey(spaceTime, item.Key())
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return sw.record(recTime, u64(uint64(rev)), v) })
	}); err != nil {
		return fail(err)
	}
	var lenBuf []byte
	if err := s.iterate(txn, spaceRecord, func(item *badger.Item) error {
		k := item.Key()
		lenBuf = binary.AppendUvarint(lenBuf[:0], uint64(len(k)))
		return item.Value(func(v []byte) error { return sw.record(recRecord, lenBuf, k, v) })
	}); err != nil {
		return fail(err)
	}
	if err := s.iterate(txn, spaceResource, func(item *badger.Item) error {
		body := item.Key()[1:]
		lenBuf = binary.AppendUvarint(lenBuf[:0], uint64(len(body)))
		return item.Value(func(v []byte) error { return sw.record(recRel, lenBuf, body, v) })
	}); err != nil {
		return fail(err)
	}
	if h := s.horizon.Load(); rev < h {
		// GC passed the revision while we streamed: versions may be gone.
		return fail(fmt.Errorf("%w: revision %d was garbage-collected during the snapshot", ErrRevisionCompacted, rev))
	}
	if err := sw.record(recEnd, u64(sw.n)); err != nil {
		return fail(err)
	}
	if _, err := sw.w.Write(binary.BigEndian.AppendUint32(nil, sw.crc.Sum32())); err != nil {
		return fail(err)
	}
	if err := sw.w.Flush(); err != nil {
		return fail(err)
	}
	return tuple.Revision(rev), nil
}

func (s *Store) iterate(txn *badger.Txn, space byte, fn func(*badger.Item) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: spacePrefix(space)})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if err := fn(it.Item()); err != nil {
			return err
		}
	}
	return nil
}

// snapContent is a decoded, verified snapshot stream.
type snapContent struct {
	applied  uint64
	schema   []byte
	schemaAt uint64
	hasSch   bool
	members  []byte // nil: none
	times    [][2]uint64
	rels     [][2][]byte // resource key, value
	records  [][2][]byte // record key, value
}

// readSnapshot decodes and verifies a whole stream before anything is applied.
func readSnapshot(r io.Reader) (*snapContent, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	crc := crc32.New(castagnoli)
	tr := io.TeeReader(br, crc)
	hdr := make([]byte, len(snapMagic)+1)
	if _, err := io.ReadFull(tr, hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %v", errSnapshot, err)
	}
	if string(hdr[:len(snapMagic)]) != snapMagic {
		return nil, fmt.Errorf("%w: bad magic %q", errSnapshot, hdr[:len(snapMagic)])
	}
	if v := hdr[len(snapMagic)]; v < 1 || v > snapVersion {
		return nil, fmt.Errorf("%w: unsupported version %d (this build reads 1 to %d)", errSnapshot, v, snapVersion)
	}
	c := &snapContent{}
	var nrec uint64
	hasMeta := false
	kind := make([]byte, 1)
	var buf []byte
	for {
		if _, err := io.ReadFull(tr, kind); err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", errSnapshot, nrec, err)
		}
		n, err := binary.ReadUvarint(byteReader{tr})
		if err != nil {
			return nil, fmt.Errorf("%w: record %d length: %v", errSnapshot, nrec, err)
		}
		if n > maxRecord {
			return nil, fmt.Errorf("%w: record %d is %d bytes, more than %d", errSnapshot, nrec, n, maxRecord)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		p := buf[:n]
		if _, err := io.ReadFull(tr, p); err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", errSnapshot, nrec, err)
		}
		switch kind[0] {
		case recMeta:
			if len(p) != 16 || hasMeta {
				return nil, fmt.Errorf("%w: bad or repeated meta record", errSnapshot)
			}
			c.applied, hasMeta = binary.BigEndian.Uint64(p), true // p[8:] is reserved
		case recSchema:
			if len(p) < 8 || c.hasSch {
				return nil, fmt.Errorf("%w: bad or repeated schema record", errSnapshot)
			}
			c.schemaAt, c.schema, c.hasSch = binary.BigEndian.Uint64(p), append([]byte(nil), p[8:]...), true
		case recMember:
			if c.members != nil {
				return nil, fmt.Errorf("%w: repeated member table record", errSnapshot)
			}
			c.members = append([]byte{}, p...)
		case recTime:
			if len(p) != 16 {
				return nil, fmt.Errorf("%w: bad revision-time record", errSnapshot)
			}
			c.times = append(c.times, [2]uint64{binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:])})
		case recRel:
			body, val, err := readBytes(p)
			if err != nil {
				return nil, fmt.Errorf("%w: relationship record %d: %v", errSnapshot, nrec, err)
			}
			var d keyDecoder
			if _, err := d.body(body); err != nil {
				return nil, fmt.Errorf("%w: relationship record %d: %v", errSnapshot, nrec, err)
			}
			var rel tuple.Relationship
			if err := decodeValue(val, &rel); err != nil {
				return nil, fmt.Errorf("%w: relationship record %d: %v", errSnapshot, nrec, err)
			}
			rkey := resourceKeyFromBody(body)
			c.rels = append(c.rels, [2][]byte{rkey, append([]byte(nil), val...)})
		case recRecord:
			key, val, err := readBytes(p)
			if err != nil {
				return nil, fmt.Errorf("%w: record %d: %v", errSnapshot, nrec, err)
			}
			space, rk, err := decodeRecordKey(key)
			if err == nil {
				err = validRecordRef(space, rk)
			}
			if err == nil && len(val) > MaxRecordValue {
				err = fmt.Errorf("value of %d bytes", len(val))
			}
			if err != nil {
				return nil, fmt.Errorf("%w: record %d: %v", errSnapshot, nrec, err)
			}
			c.records = append(c.records, [2][]byte{append([]byte(nil), key...), append([]byte(nil), val...)})
		case recEnd:
			if len(p) != 8 || binary.BigEndian.Uint64(p) != nrec {
				return nil, fmt.Errorf("%w: end record does not match the %d records read", errSnapshot, nrec)
			}
			want := crc.Sum32()
			var sum [4]byte
			if _, err := io.ReadFull(br, sum[:]); err != nil {
				return nil, fmt.Errorf("%w: checksum: %v", errSnapshot, err)
			}
			if got := binary.BigEndian.Uint32(sum[:]); got != want {
				return nil, fmt.Errorf("%w: checksum mismatch (stream says %08x, content is %08x)", errSnapshot, got, want)
			}
			if !hasMeta {
				return nil, fmt.Errorf("%w: no meta record", errSnapshot)
			}
			if c.applied == 0 || c.applied == math.MaxUint64 {
				return nil, fmt.Errorf("%w: bad applied revision %d", errSnapshot, c.applied)
			}
			if c.hasSch && (c.schemaAt == 0 || c.schemaAt > c.applied) {
				return nil, fmt.Errorf("%w: schema revision %d outside 1..%d", errSnapshot, c.schemaAt, c.applied)
			}
			for _, t := range c.times {
				if t[0] == 0 || t[0] > c.applied {
					return nil, fmt.Errorf("%w: revision-time entry %d outside 1..%d", errSnapshot, t[0], c.applied)
				}
			}
			// Sorted and unique, as the restore writes them in key order.
			slices.SortFunc(c.times, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
			for i := 1; i < len(c.times); i++ {
				if c.times[i-1][0] == c.times[i][0] {
					return nil, fmt.Errorf("%w: revision-time entry %d appears twice", errSnapshot, c.times[i][0])
				}
			}
			for _, kv := range [][][2][]byte{c.rels, c.records} {
				slices.SortFunc(kv, func(a, b [2][]byte) int { return bytes.Compare(a[0], b[0]) })
				for i := 1; i < len(kv); i++ {
					if bytes.Equal(kv[i-1][0], kv[i][0]) {
						return nil, fmt.Errorf("%w: key %q appears twice", errSnapshot, kv[i][0])
					}
				}
			}
			return c, nil
		default:
			return nil, fmt.Errorf("%w: record %d has unknown kind 0x%02x", errSnapshot, nrec, kind[0])
		}
		nrec++
	}
}

type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var p [1]byte
	_, err := io.ReadFull(b.r, p[:])
	return p[0], err
}

// RestoreSnapshot replaces the store's entire contents with a stream written
// by WriteSnapshot. The stream is read and verified completely before
// anything is replaced; a bad stream leaves the store as it was. After the
// restore the oldest readable revision is the snapshot's revision.
func (s *Store) RestoreSnapshot(r io.Reader) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	c, err := readSnapshot(r)
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Every read fails with ErrRevisionCompacted while the contents change,
	// and if the restore fails from here on, the store refuses writes (its
	// old contents are gone) until a restore succeeds.
	s.horizon.Store(math.MaxUint64)
	s.broken = errors.New("store: a snapshot restore failed after dropping the old contents; restore a snapshot again")
	if err := s.db.DropAll(); err != nil {
		return fmt.Errorf("store: restore: drop old contents: %w", err)
	}
	if s.restoreHook != nil {
		if err := s.restoreHook(); err != nil {
			return fmt.Errorf("store: restore: %w", err)
		}
	}
	if err := s.restoreData(c); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	txn := s.db.NewTransactionAt(c.applied, true)
	defer txn.Discard()
	meta := [][2][]byte{
		{keyApplied, u64(c.applied)},
		{keyHorizon, u64(c.applied)},
	}
	if c.members != nil {
		meta = append(meta, [2][]byte{keyMembers, c.members})
	}
	for _, kv := range meta {
		if err := txn.Set(kv[0], kv[1]); err != nil {
			return fmt.Errorf("store: restore: %w", err)
		}
	}
	if err := txn.CommitAt(c.applied, nil); err != nil {
		return fmt.Errorf("store: restore: commit: %w", err)
	}
	s.broken = nil
	var sch *schemaVersion
	if c.hasSch {
		sch = &schemaVersion{text: string(c.schema), at: tuple.Revision(c.schemaAt)}
	}
	s.schema.Store(sch)
	s.applied.Store(c.applied)
	s.db.SetDiscardTs(c.applied)
	s.horizon.Store(c.applied)
	s.notify()
	s.log.Info("store: restored snapshot", "revision", c.applied, "relationships", len(c.rels))
	return nil
}

// restoreData writes a verified snapshot's data into the emptied store:
// records and relationships (both indexes, expiry index) at the snapshot's
// revision, the schema at its own revision, the revision-time entries at
// theirs. On disk it builds tables directly; in memory it uses a write batch.
func (s *Store) restoreData(c *snapContent) error {
	gen := func(add func(k, v []byte, version uint64) error) error {
		// Global key order: 'k' < 'm' < 'r' < 's' < 't' < 'x'.
		for _, kv := range c.records {
			if err := add(kv[0], kv[1], c.applied); err != nil {
				return err
			}
		}
		if c.hasSch {
			if err := add(keySchema, c.schema, c.schemaAt); err != nil {
				return err
			}
		}
		// Relationships ('r', 's') come before the time index ('t'), and the
		// expiry index ('x') after it: split addRelationships around it.
		var expiring [][2][]byte
		if err := addRelationships(func(k, v []byte, version uint64) error {
			if k[0] == spaceExpiry {
				expiring = append(expiring, [2][]byte{k, v})
				return nil
			}
			return add(k, v, version)
		}, c.rels, c.applied); err != nil {
			return err
		}
		for _, t := range c.times {
			if err := add(revKey(spaceTime, tuple.Revision(t[0])), u64(t[1]), t[0]); err != nil {
				return err
			}
		}
		for _, kv := range expiring {
			if err := add(kv[0], kv[1], c.applied); err != nil {
				return err
			}
		}
		return nil
	}
	if !s.opts.InMemory {
		return s.streamWrite(gen)
	}
	wb := s.db.NewManagedWriteBatch()
	defer wb.Cancel()
	if err := gen(func(k, v []byte, version uint64) error {
		return wb.SetEntryAt(badger.NewEntry(k, v), version)
	}); err != nil {
		return err
	}
	return wb.Flush()
}
