package store

// This file alone encodes and decodes the store's keys and values. FORMAT.md
// documents every byte; keep the two in step.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/ambit-authz/ambit/tuple"
)

// Keyspaces: the first byte of every key.
const (
	spaceResource byte = 'r' // resource-major relationship index
	spaceSubject  byte = 's' // subject-major reverse index
	spaceChange   byte = 'c' // change feed, one or more chunks per revision
	spaceTime     byte = 't' // revision → leader time
	spaceExpiry   byte = 'x' // expiration time → relationship, for GC
	spaceMeta     byte = 'm' // single meta keys
	spaceRecord   byte = 'k' // replicated records: state that is not a relationship
	// spaceFlush holds only a throwaway key written and dropped at once to
	// make badger flush its memtables (see streamimport.go).
	spaceFlush byte = 0xFF
)

// Meta keys. Each is written at the revision it describes, so its badger
// version history is its history.
var (
	keyApplied = []byte("mapplied") // applied revision, uint64 BE
	keySchema  = []byte("mschema")  // schema text
	keyHorizon = []byte("mhorizon") // GC horizon, uint64 BE
	keyMembers = []byte("mmembers") // replicated member table, opaque (raft's encoding)
)

// Component escaping. A component is a string of any bytes; it is written
// with every 0x00 replaced by 0x00 0xFF and followed by the terminator
// 0x00 0x01. The encoding preserves order (the terminator sorts before any
// continuation) and no encoded component is a prefix of another.
const (
	escByte  = 0x00
	escNull  = 0xFF
	escTerm  = 0x01
	termSize = 2
)

var errKey = errors.New("malformed key")

// appendEscaped appends the body of a component, without its terminator: the
// prefix of every component that starts with s.
func appendEscaped(dst []byte, s string) []byte {
	for {
		i := indexNull(s)
		if i < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:i]...)
		dst = append(dst, escByte, escNull)
		s = s[i+1:]
	}
}

func indexNull(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

func appendComponent(dst []byte, s string) []byte {
	return append(appendEscaped(dst, s), escByte, escTerm)
}

// readComponent splits the first component off b. The returned bytes alias b
// when the component holds no escaped byte (the common case), else they are
// freshly allocated.
func readComponent(b []byte) (comp, rest []byte, err error) {
	i := bytes.IndexByte(b, escByte)
	if i < 0 || i+1 >= len(b) {
		return nil, nil, fmt.Errorf("%w: unterminated component", errKey)
	}
	if b[i+1] == escTerm {
		return b[:i:i], b[i+2:], nil
	}
	// Slow path: the component contains escaped zero bytes.
	var out []byte
	for {
		if i+1 >= len(b) {
			return nil, nil, fmt.Errorf("%w: unterminated component", errKey)
		}
		switch b[i+1] {
		case escTerm:
			out = append(out, b[:i]...)
			return out, b[i+2:], nil
		case escNull:
			out = append(out, b[:i]...)
			out = append(out, 0)
			b = b[i+2:]
		default:
			return nil, nil, fmt.Errorf("%w: invalid escape 0x00 0x%02x", errKey, b[i+1])
		}
		i = bytes.IndexByte(b, escByte)
		if i < 0 {
			return nil, nil, fmt.Errorf("%w: unterminated component", errKey)
		}
	}
}

// appendRelBody appends the six components of the resource-major order,
// without the keyspace byte. The body identifies a relationship; it is also
// what the change feed, the expiry index and snapshots carry.
func appendRelBody(dst []byte, k tuple.Key) []byte {
	dst = appendComponent(dst, k.Resource.Type)
	dst = appendComponent(dst, k.Resource.ID)
	dst = appendComponent(dst, k.Relation)
	dst = appendComponent(dst, k.Subject.Type)
	dst = appendComponent(dst, k.Subject.ID)
	return appendComponent(dst, k.Subject.Relation)
}

func resourceKey(k tuple.Key) []byte {
	b := make([]byte, 0, 1+keyBodySize(k))
	return appendRelBody(append(b, spaceResource), k)
}

func subjectKey(k tuple.Key) []byte {
	b := make([]byte, 0, 1+keyBodySize(k))
	b = append(b, spaceSubject)
	b = appendComponent(b, k.Subject.Type)
	b = appendComponent(b, k.Subject.ID)
	b = appendComponent(b, k.Subject.Relation)
	b = appendComponent(b, k.Resource.Type)
	b = appendComponent(b, k.Relation)
	return appendComponent(b, k.Resource.ID)
}

func keyBodySize(k tuple.Key) int {
	return len(k.Resource.Type) + len(k.Resource.ID) + len(k.Relation) +
		len(k.Subject.Type) + len(k.Subject.ID) + len(k.Subject.Relation) + 6*termSize
}

// subjectKeyFromBody converts a resource-major body (no keyspace byte) into
// the subject-major key of the same relationship.
func subjectKeyFromBody(body []byte) ([]byte, error) {
	var c [6][]byte
	rest := body
	for i := range c {
		var err error
		if c[i], rest, err = readRawComponent(rest); err != nil {
			return nil, err
		}
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errKey, len(rest))
	}
	out := make([]byte, 0, 1+len(body))
	out = append(out, spaceSubject)
	for _, i := range [6]int{3, 4, 5, 0, 2, 1} {
		out = append(out, c[i]...)
	}
	return out, nil
}

// readRawComponent splits off the first component with its escapes and
// terminator intact.
func readRawComponent(b []byte) (raw, rest []byte, err error) {
	for i := 0; i+1 < len(b); i++ {
		if b[i] != escByte {
			continue
		}
		switch b[i+1] {
		case escTerm:
			return b[:i+2], b[i+2:], nil
		case escNull:
			i++
		default:
			return nil, nil, fmt.Errorf("%w: invalid escape 0x00 0x%02x", errKey, b[i+1])
		}
	}
	return nil, nil, fmt.Errorf("%w: unterminated component", errKey)
}

// keyDecoder turns keys back into tuple.Keys. It remembers the last string of
// each component position and reuses it when the bytes repeat, so a scan of
// one object's subjects only makes new strings for the subject ids; those
// are carved out of a shared arena instead of one allocation each.
type keyDecoder struct {
	last  [6]string
	arena []byte // append-only; bytes below len are referenced by strings and never written again
}

const (
	arenaMin      = 256
	arenaMax      = 4096
	arenaMaxSlice = 128 // longer components get their own allocation
)

func (d *keyDecoder) str(i int, b []byte) string {
	if string(b) == d.last[i] { // no allocation: the compiler compares in place
		return d.last[i]
	}
	var s string
	switch {
	case len(b) == 0:
	case len(b) > arenaMaxSlice:
		s = string(b)
	default:
		if cap(d.arena)-len(d.arena) < len(b) {
			// A new chunk, twice the last one up to arenaMax; the old chunk
			// stays alive only through the strings that point into it.
			d.arena = make([]byte, 0, min(max(2*cap(d.arena), arenaMin), arenaMax))
		}
		start := len(d.arena)
		d.arena = append(d.arena, b...)
		s = unsafe.String(&d.arena[start], len(b))
	}
	d.last[i] = s
	return s
}

// components splits exactly six components off b into out.
func (d *keyDecoder) components(b []byte, out *[6]string) error {
	for i := range out {
		c, rest, err := readComponent(b)
		if err != nil {
			return err
		}
		out[i] = d.str(i, c)
		b = rest
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errKey, len(b))
	}
	return nil
}

// resource decodes a resource-major key (keyspace byte included).
func (d *keyDecoder) resource(b []byte) (tuple.Key, error) {
	if len(b) == 0 || b[0] != spaceResource {
		return tuple.Key{}, fmt.Errorf("%w: not a resource-index key", errKey)
	}
	return d.body(b[1:])
}

// body decodes a resource-major body (no keyspace byte).
func (d *keyDecoder) body(b []byte) (tuple.Key, error) {
	var c [6]string
	if err := d.components(b, &c); err != nil {
		return tuple.Key{}, err
	}
	return tuple.Key{
		Resource: tuple.ObjectRef{Type: c[0], ID: c[1]},
		Relation: c[2],
		Subject:  tuple.SubjectRef{Type: c[3], ID: c[4], Relation: c[5]},
	}, nil
}

// subject decodes a subject-major key (keyspace byte included).
func (d *keyDecoder) subject(b []byte) (tuple.Key, error) {
	if len(b) == 0 || b[0] != spaceSubject {
		return tuple.Key{}, fmt.Errorf("%w: not a subject-index key", errKey)
	}
	var c [6]string
	if err := d.components(b[1:], &c); err != nil {
		return tuple.Key{}, err
	}
	return tuple.Key{
		Subject:  tuple.SubjectRef{Type: c[0], ID: c[1], Relation: c[2]},
		Resource: tuple.ObjectRef{Type: c[3], ID: c[5]},
		Relation: c[4],
	}, nil
}

// DecodeKey decodes a key of either relationship index. It is exported for
// tools and fuzzing; it never panics.
func DecodeKey(b []byte) (tuple.Key, error) {
	var d keyDecoder
	if len(b) > 0 && b[0] == spaceSubject {
		return d.subject(b)
	}
	return d.resource(b)
}

// Revision-keyed spaces: keyspace byte, then the revision as 8 bytes big
// endian, so keys sort by revision.

func revKey(space byte, rev tuple.Revision) []byte {
	b := make([]byte, 9)
	b[0] = space
	binary.BigEndian.PutUint64(b[1:], uint64(rev))
	return b
}

// revOfKey is the revision of a key of a revision-keyed space (revKey,
// changeKey); ok is false for a key too short to hold one.
func revOfKey(k []byte) (rev tuple.Revision, ok bool) {
	if len(k) < 9 {
		return 0, false
	}
	return tuple.Revision(binary.BigEndian.Uint64(k[1:9])), true
}

// changeKey is 'c', revision (8 BE), chunk sequence (4 BE).
func changeKey(rev tuple.Revision, seq uint32) []byte {
	b := make([]byte, 13)
	b[0] = spaceChange
	binary.BigEndian.PutUint64(b[1:], uint64(rev))
	binary.BigEndian.PutUint32(b[9:], seq)
	return b
}

func decodeChangeKey(b []byte) (tuple.Revision, uint32, error) {
	if len(b) != 13 || b[0] != spaceChange {
		return 0, 0, fmt.Errorf("%w: not a change-feed key", errKey)
	}
	return tuple.Revision(binary.BigEndian.Uint64(b[1:])), binary.BigEndian.Uint32(b[9:]), nil
}

func decodeRevKey(space byte, b []byte) (tuple.Revision, error) {
	if len(b) != 9 || b[0] != space {
		return 0, fmt.Errorf("%w: not a %q key", errKey, space)
	}
	return tuple.Revision(binary.BigEndian.Uint64(b[1:])), nil
}

// Times (expirations) are encoded in 12 order-preserving bytes: int64 Unix
// seconds with the sign bit flipped, then uint32 nanoseconds, both
// big-endian. Unlike int64 nanoseconds (which end in 2262) this spans every
// year RFC 3339 can write; validation files use dates like 2300-01-01.
const timeLen = 12

func appendTime(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

func readTime(b []byte) time.Time {
	sec := int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
	return time.Unix(sec, int64(binary.BigEndian.Uint32(b[8:]))).UTC()
}

// expiryKey is 'x', the expiration (12 order-preserving bytes, see
// appendTime), then the relationship body.
func expiryKey(exp time.Time, body []byte) []byte {
	b := make([]byte, 1, 1+timeLen+len(body))
	b[0] = spaceExpiry
	b = appendTime(b, exp)
	return append(b, body...)
}

func expiryPrefixUpTo(t time.Time) []byte {
	return appendTime([]byte{spaceExpiry}, t)
}

func decodeExpiryKey(b []byte) (time.Time, []byte, error) {
	if len(b) < 1+timeLen || b[0] != spaceExpiry {
		return time.Time{}, nil, fmt.Errorf("%w: not an expiry key", errKey)
	}
	return readTime(b[1:]), b[1+timeLen:], nil
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func readU64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: want 8 bytes, have %d", errValue, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// Values of both relationship indexes. An empty value is a relationship with
// neither caveat nor expiration (the common case costs no bytes). Otherwise:
//
//	version (1) | flags (1) | [expiration: 12 bytes, see appendTime] | [caveat: uvarint len, name, uvarint len, context JSON]
const (
	valueVersion   = 1
	flagExpiration = 1 << 0
	flagCaveat     = 1 << 1
	knownFlags     = flagExpiration | flagCaveat
)

var errValue = errors.New("malformed value")

// Expirations must be writable in RFC 3339: years 1 to 9999.
var (
	minExpiration = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxExpiration = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// encodeValue encodes a relationship's attributes. ctxJSON is the caveat's
// context already marshalled (nil for none), so callers can check its size
// first.
func encodeValue(r *tuple.Relationship, ctxJSON []byte) []byte {
	if r.Caveat == nil && r.Expiration.IsZero() {
		return nil
	}
	n := 2
	var flags byte
	if !r.Expiration.IsZero() {
		flags |= flagExpiration
		n += timeLen
	}
	if r.Caveat != nil {
		flags |= flagCaveat
		n += 2*binary.MaxVarintLen64 + len(r.Caveat.Name) + len(ctxJSON)
	}
	b := make([]byte, 2, n)
	b[0], b[1] = valueVersion, flags
	if flags&flagExpiration != 0 {
		b = appendTime(b, r.Expiration)
	}
	if flags&flagCaveat != 0 {
		b = binary.AppendUvarint(b, uint64(len(r.Caveat.Name)))
		b = append(b, r.Caveat.Name...)
		b = binary.AppendUvarint(b, uint64(len(ctxJSON)))
		b = append(b, ctxJSON...)
	}
	return b
}

// marshalContext returns the caveat context as JSON (nil for no context).
func marshalContext(c *tuple.Caveat) ([]byte, error) {
	if c == nil || len(c.Context) == 0 {
		return nil, nil
	}
	return json.Marshal(c.Context)
}

// valueExpiration reads only the expiration of an encoded value.
func valueExpiration(v []byte) (time.Time, error) {
	if len(v) == 0 {
		return time.Time{}, nil
	}
	if len(v) < 2 || v[0] != valueVersion {
		return time.Time{}, fmt.Errorf("%w: unknown version", errValue)
	}
	if v[1]&flagExpiration == 0 {
		return time.Time{}, nil
	}
	if len(v) < 2+timeLen {
		return time.Time{}, fmt.Errorf("%w: truncated expiration", errValue)
	}
	return readTime(v[2:]), nil
}

// decodeValue sets r's caveat and expiration from v. It copies what it keeps.
func decodeValue(v []byte, r *tuple.Relationship) error {
	r.Caveat, r.Expiration = nil, time.Time{}
	if len(v) == 0 {
		return nil
	}
	if len(v) < 2 {
		return fmt.Errorf("%w: %d bytes", errValue, len(v))
	}
	if v[0] != valueVersion {
		return fmt.Errorf("%w: unknown version %d", errValue, v[0])
	}
	flags := v[1]
	if flags&^knownFlags != 0 {
		return fmt.Errorf("%w: unknown flags 0x%02x", errValue, flags)
	}
	v = v[2:]
	if flags&flagExpiration != 0 {
		if len(v) < timeLen {
			return fmt.Errorf("%w: truncated expiration", errValue)
		}
		r.Expiration = readTime(v)
		v = v[timeLen:]
	}
	if flags&flagCaveat != 0 {
		name, rest, err := readBytes(v)
		if err != nil {
			return fmt.Errorf("%w: caveat name: %v", errValue, err)
		}
		ctx, rest, err := readBytes(rest)
		if err != nil {
			return fmt.Errorf("%w: caveat context: %v", errValue, err)
		}
		c := &tuple.Caveat{Name: string(name)}
		if len(ctx) > 0 {
			if err := json.Unmarshal(ctx, &c.Context); err != nil {
				return fmt.Errorf("%w: caveat context: %v", errValue, err)
			}
			if len(c.Context) == 0 {
				c.Context = nil
			}
		}
		r.Caveat = c
		v = rest
	}
	if len(v) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errValue, len(v))
	}
	return nil
}

func readBytes(b []byte) (field, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, nil, errors.New("bad length")
	}
	b = b[k:]
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("length %d exceeds the %d bytes left", n, len(b))
	}
	return b[:n], b[n:], nil
}

// Change-feed chunk values:
//
//	version (1) | kind (1) | payload
//
// kind 1 (updates): uvarint count, then per update: op (1), uvarint body
// length, body, uvarint value length, value.
// kind 2 (schema): the schema text.
const (
	changeVersion = 1
	kindUpdates   = 1
	kindSchema    = 2
)

// changeChunk accumulates the updates of one chunk.
type changeChunk struct {
	buf []byte
	n   int
}

func (c *changeChunk) add(op Op, body, value []byte) {
	c.buf = append(c.buf, byte(op))
	c.buf = binary.AppendUvarint(c.buf, uint64(len(body)))
	c.buf = append(c.buf, body...)
	c.buf = binary.AppendUvarint(c.buf, uint64(len(value)))
	c.buf = append(c.buf, value...)
	c.n++
}

func (c *changeChunk) encode() []byte {
	out := make([]byte, 0, 2+binary.MaxVarintLen64+len(c.buf))
	out = append(out, changeVersion, kindUpdates)
	out = binary.AppendUvarint(out, uint64(c.n))
	return append(out, c.buf...)
}

func (c *changeChunk) reset() { c.buf, c.n = c.buf[:0], 0 }

func encodeSchemaChange(text string) []byte {
	out := make([]byte, 0, 2+len(text))
	out = append(out, changeVersion, kindSchema)
	return append(out, text...)
}

// decodeChangeChunk appends the chunk's content to ch.
func decodeChangeChunk(v []byte, ch *Change) error {
	if len(v) < 2 || v[0] != changeVersion {
		return fmt.Errorf("%w: change chunk: unknown version", errValue)
	}
	switch v[1] {
	case kindSchema:
		text := string(v[2:])
		ch.Schema = &text
		return nil
	case kindUpdates:
	default:
		return fmt.Errorf("%w: change chunk: unknown kind %d", errValue, v[1])
	}
	n, k := binary.Uvarint(v[2:])
	if k <= 0 {
		return fmt.Errorf("%w: change chunk: bad count", errValue)
	}
	v = v[2+k:]
	// Each update takes at least 3 bytes: bound the allocation by the input.
	if n > uint64(len(v))/3 {
		return fmt.Errorf("%w: change chunk: count %d exceeds its %d bytes", errValue, n, len(v))
	}
	ch.Updates = growUpdates(ch.Updates, int(n))
	var d keyDecoder
	for i := uint64(0); i < n; i++ {
		if len(v) == 0 {
			return fmt.Errorf("%w: change chunk: truncated at update %d", errValue, i)
		}
		op := Op(v[0])
		if op != OpTouch && op != OpDelete && op != OpCreate {
			return fmt.Errorf("%w: change chunk: unknown op %d", errValue, v[0])
		}
		body, rest, err := readBytes(v[1:])
		if err != nil {
			return fmt.Errorf("%w: change chunk: update %d key: %v", errValue, i, err)
		}
		val, rest, err := readBytes(rest)
		if err != nil {
			return fmt.Errorf("%w: change chunk: update %d value: %v", errValue, i, err)
		}
		k, err := d.body(body)
		if err != nil {
			return fmt.Errorf("change chunk: update %d: %w", i, err)
		}
		u := Update{Op: op, Rel: tuple.Relationship{Resource: k.Resource, Relation: k.Relation, Subject: k.Subject}}
		if err := decodeValue(val, &u.Rel); err != nil {
			return fmt.Errorf("change chunk: update %d: %w", i, err)
		}
		ch.Updates = append(ch.Updates, u)
		v = rest
	}
	if len(v) != 0 {
		return fmt.Errorf("%w: change chunk: %d trailing bytes", errValue, len(v))
	}
	return nil
}

func growUpdates(s []Update, n int) []Update {
	if cap(s)-len(s) >= n {
		return s
	}
	out := make([]Update, len(s), len(s)+n)
	copy(out, s)
	return out
}

// Records (records.go): 'k', then the record's space and key as two
// components. A space's records are one key range, in key order.

func recordKey(space, key string) []byte {
	b := make([]byte, 0, 1+len(space)+len(key)+2*termSize)
	b = appendComponent(append(b, spaceRecord), space)
	return appendComponent(b, key)
}

// recordKeyAfter is the first key that sorts after every record key of
// space up to and including key's own (key's record key plus one byte):
// where a listing that resumes after key seeks.
func recordKeyAfter(space, key string) []byte {
	return append(recordKey(space, key), 0)
}

// isResourceKey reports whether k is a key of the resource-major index.
func isResourceKey(k []byte) bool { return len(k) > 0 && k[0] == spaceResource }

// recordSpacePrefix is the prefix of every record key of space.
func recordSpacePrefix(space string) []byte {
	return componentsPrefix(spaceRecord, space)
}

// decodeRecordKey splits a record key into its space and key.
func decodeRecordKey(b []byte) (space, key string, err error) {
	if len(b) == 0 || b[0] != spaceRecord {
		return "", "", fmt.Errorf("%w: not a record key", errKey)
	}
	sp, rest, err := readComponent(b[1:])
	if err != nil {
		return "", "", err
	}
	k, rest, err := readComponent(rest)
	if err != nil {
		return "", "", err
	}
	if len(rest) != 0 {
		return "", "", fmt.Errorf("%w: %d trailing bytes", errKey, len(rest))
	}
	return string(sp), string(k), nil
}

// Key prefixes and keys built from parts, for the query planner, GC, the
// snapshot reader and the import's flush (FORMAT.md, "Query plans" and
// "Keyspaces"). Every key the store reads or writes is built in this file.

// spacePrefix is the prefix of every key in a keyspace.
func spacePrefix(space byte) []byte { return []byte{space} }

// componentsPrefix is the prefix of the keys of space whose leading
// components are comps, each terminated: a seek for `doc:a` matches no key of
// `doc:a/x`.
func componentsPrefix(space byte, comps ...string) []byte {
	n := 1
	for _, c := range comps {
		n += len(c) + termSize
	}
	b := make([]byte, 1, n)
	b[0] = space
	for _, c := range comps {
		b = appendComponent(b, c)
	}
	return b
}

// resourceIDPrefixKey is the prefix of the resource-major keys of type typ
// whose resource id starts with p (p escaped, unterminated).
func resourceIDPrefixKey(typ, p string) []byte {
	return appendEscaped(componentsPrefix(spaceResource, typ), p)
}

// resourceKeyFromBody is the resource-major key of a relationship body (the
// form the expiry index and snapshot records carry).
func resourceKeyFromBody(body []byte) []byte {
	b := make([]byte, 0, 1+len(body))
	return append(append(b, spaceResource), body...)
}

// flushKey is the throwaway key written in keyspace 0xFF and dropped at once
// to make badger flush its memtables (streamimport.go).
func flushKey() []byte { return []byte{spaceFlush, 'f', 'l', 'u', 's', 'h'} }
