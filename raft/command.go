package raft

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// Kind is the type of a Command; it is the first byte of its encoding.
type Kind uint8

// Command kinds. The numbers are part of the log format: never reuse one.
const (
	// KindWrite writes relationships: Updates, guarded by Preconditions.
	KindWrite Kind = 1
	// KindDelete deletes by Filter, at most Limit (0: no limit) unless
	// AllowPartial, guarded by Preconditions.
	KindDelete Kind = 2
	// KindSchema writes the schema text Schema.
	KindSchema Kind = 3
	// KindImport imports one chunk of Relationships (bulk import).
	KindImport Kind = 4
	// KindNoop changes nothing but advances the applied revision.
	KindNoop Kind = 5
	// KindSetMember records a member's metadata (Member) in the replicated
	// member table, so every node can forward to the leader's gRPC address.
	KindSetMember Kind = 6
	// KindForgetMember removes Member.ID from the member table.
	KindForgetMember Kind = 7
	// KindRecords writes records (store.RecordOp) and relationship Updates
	// together, guarded by Preconditions and RecordConds: both apply or
	// neither (API tokens, SCIM resources with the relationships they imply).
	KindRecords Kind = 8
)

// lastKind is the highest kind this build knows.
const lastKind = KindRecords

func (k Kind) String() string {
	switch k {
	case KindWrite:
		return "write"
	case KindDelete:
		return "delete"
	case KindSchema:
		return "schema"
	case KindImport:
		return "import"
	case KindNoop:
		return "noop"
	case KindSetMember:
		return "set-member"
	case KindForgetMember:
		return "forget-member"
	case KindRecords:
		return "records"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Command format versions, the second byte of every encoded command. Decode
// refuses versions it does not know, so an old binary never misreads a new
// entry. Version 2 adds the schema hash; a command without one is still
// written as version 1, so entries that do not use it stay readable by
// binaries that predate it. Version 3 adds the actor (who proposed the
// command, for the audit log), with a flags byte saying which of the schema
// hash and the actor follow; it is written only for commands with an actor.
const (
	commandVersion           = 1
	commandVersionSchemaHash = 2
	commandVersionFlags      = 3
	// maxCommandVersion is the newest version this build reads; an entry
	// of a higher one halts the state machine (see decodeEntry).
	maxCommandVersion = commandVersionFlags

	flagSchemaHash = 1 << 0
	flagActor      = 1 << 1
	knownFlags     = flagSchemaHash | flagActor

	// MaxActor bounds Command.Actor's length.
	MaxActor = 256
)

// SchemaHash identifies the schema text a command was validated against:
// schema.DigestOf the text as the store holds it. The zero value means
// "none".
type SchemaHash = schema.Digest

// maxValueDepth bounds the nesting of caveat context values, so a hostile
// entry cannot exhaust the decoder's stack.
const maxValueDepth = 32

// MemberInfo is a cluster member's metadata as replicated through the log.
type MemberInfo struct {
	ID       string
	RaftAddr string
	GRPCAddr string
}

// Command is one replicated change. Which fields matter depends on Kind; use
// the constructors. Now is the leader-stamped time of the change: the FSM
// passes it to the store instead of reading a clock, so every replica applies
// the same entry identically.
type Command struct {
	Kind Kind
	Now  time.Time

	// SchemaHash, when set, is the hash of the schema text the command was
	// validated against: the FSM applies the command only if the stored
	// schema still has it, and otherwise refuses it with ErrSchemaChanged
	// (a schema write committed between validation and apply). Any kind may
	// carry it; the API sets it on relationship writes and imports.
	SchemaHash SchemaHash

	Updates       []store.Update       // KindWrite
	Preconditions []store.Precondition // KindWrite, KindDelete

	Filter       tuple.Filter // KindDelete
	Limit        int          // KindDelete; 0 means no limit
	AllowPartial bool         // KindDelete

	Schema string // KindSchema

	Relationships []tuple.Relationship // KindImport

	Member MemberInfo // KindSetMember, KindForgetMember (ID only)

	Records     []store.RecordOp   // KindRecords
	RecordConds []store.RecordCond // KindRecords

	// Actor names who proposed the command (an API token's id; "" for a
	// preshared key or no authentication), for the audit log: every node
	// sees it in the applied entry. Any kind may carry it; apply ignores it.
	Actor string
}

// WriteCommand returns a command that writes updates if preconds hold.
func WriteCommand(updates []store.Update, preconds []store.Precondition) Command {
	return Command{Kind: KindWrite, Updates: updates, Preconditions: preconds}
}

// DeleteCommand returns a command that deletes relationships matching f.
func DeleteCommand(f tuple.Filter, limit int, allowPartial bool, preconds []store.Precondition) Command {
	return Command{Kind: KindDelete, Filter: f, Limit: limit, AllowPartial: allowPartial, Preconditions: preconds}
}

// SchemaCommand returns a command that writes the schema text.
func SchemaCommand(text string) Command { return Command{Kind: KindSchema, Schema: text} }

// ImportCommand returns a command that imports one chunk of relationships.
func ImportCommand(rels []tuple.Relationship) Command {
	return Command{Kind: KindImport, Relationships: rels}
}

// RecordsCommand returns a command that applies record ops and relationship
// updates together if preconds and conds hold.
func RecordsCommand(updates []store.Update, preconds []store.Precondition, ops []store.RecordOp, conds []store.RecordCond) Command {
	return Command{Kind: KindRecords, Updates: updates, Preconditions: preconds, Records: ops, RecordConds: conds}
}

// NoopCommand returns a command that only advances the applied revision.
func NoopCommand() Command { return Command{Kind: KindNoop} }

// Encoding (all integers are unsigned LEB128 varints unless noted):
//
//	command   = kind:byte 0x01 now:time payload
//	          | kind:byte 0x02 now:time schemaHash:16 bytes payload   (schemaHash not all zero)
//	          | kind:byte 0x03 now:time flags:byte [schemaHash:16 bytes] [actor:string] payload
//	            (flags bit 0: a schema hash follows, bit 1: an actor; version 3
//	            is written only with an actor, 1 to 255 bytes)
//	time      = 0x00 (zero time) | 0x01 seconds:zigzag-varint nanos:uvarint
//	string    = len:uvarint bytes
//	bool      = 0x00 | 0x01
//	payload   = write:   n:uvarint update*n  m:uvarint precond*m
//	          | delete:  filter limit:uvarint allowPartial:bool m:uvarint precond*m
//	          | schema:  text:string
//	          | import:  n:uvarint rel*n
//	          | noop:    (nothing)
//	          | set-member:    id:string raftAddr:string grpcAddr:string
//	          | forget-member: id:string
//	          | records: n:uvarint update*n m:uvarint precond*m
//	                     k:uvarint recop*k j:uvarint reccond*j
//	recop     = space:string key:string (0x00 delete | 0x01 value:string)
//	reccond   = space:string key:string (0x00 absent | 0x01 value:string)
//	update    = op:byte rel
//	precond   = mustMatch:bool filter
//	rel       = resType:string resID:string relation:string
//	            subjType:string subjID:string subjRel:string
//	            (0x00 | 0x01 caveatName:string context:map) expiration:time
//	filter    = resType:string n:uvarint resID:string*n idPrefix:string relation:string
//	            (0x00 | 0x01 subjType:string n:uvarint subjID:string*n
//	                         (0x00 | 0x01 subjRel:string))
//	value     = 0x00 null | 0x01 false | 0x02 true | 0x03 float64:8 bytes big-endian
//	          | 0x04 string | 0x05 n:uvarint value*n | 0x06 map
//	map       = n:uvarint (key:string value)*n   keys strictly increasing
//
// Nothing may follow the payload.

// Encode returns the binary encoding of c. It fails, naming the field, on a
// command that could not be decoded back (an unknown kind or op, a negative
// limit, a caveat context value that is not a JSON value).
func Encode(c Command) ([]byte, error) {
	e := encoder{buf: make([]byte, 0, c.sizeHint())}
	return e.command(c)
}

// AppendEncode appends the encoding of c to buf.
func AppendEncode(buf []byte, c Command) ([]byte, error) {
	e := encoder{buf: buf}
	return e.command(c)
}

func (c *Command) sizeHint() int {
	n := 16 + len(c.Schema)
	n += len(c.Updates) * 64
	n += len(c.Relationships) * 64
	return n
}

type encoder struct {
	buf []byte
	err error
}

func (e *encoder) fail(format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf("%w: %s", ErrBadCommand, fmt.Sprintf(format, args...))
	}
}

func (e *encoder) command(c Command) ([]byte, error) {
	hashed := c.SchemaHash != (SchemaHash{})
	switch {
	case c.Actor != "":
		if len(c.Actor) > MaxActor {
			e.fail("actor is %d bytes, more than %d", len(c.Actor), MaxActor)
		}
		e.buf = append(e.buf, byte(c.Kind), commandVersionFlags)
		e.time(c.Now)
		flags := byte(flagActor)
		if hashed {
			flags |= flagSchemaHash
		}
		e.buf = append(e.buf, flags)
		if hashed {
			e.buf = append(e.buf, c.SchemaHash[:]...)
		}
		e.string(c.Actor)
	case hashed:
		e.buf = append(e.buf, byte(c.Kind), commandVersionSchemaHash)
		e.time(c.Now)
		e.buf = append(e.buf, c.SchemaHash[:]...)
	default:
		e.buf = append(e.buf, byte(c.Kind), commandVersion)
		e.time(c.Now)
	}
	switch c.Kind {
	case KindWrite:
		e.updates(c.Updates)
		e.preconds(c.Preconditions)
	case KindRecords:
		e.updates(c.Updates)
		e.preconds(c.Preconditions)
		e.uvarint(uint64(len(c.Records)))
		for _, op := range c.Records {
			e.record(op.Space, op.Key, op.Value)
		}
		e.uvarint(uint64(len(c.RecordConds)))
		for _, rc := range c.RecordConds {
			e.record(rc.Space, rc.Key, rc.Value)
		}
	case KindDelete:
		e.filter(c.Filter)
		if c.Limit < 0 || c.Limit > math.MaxInt32 {
			e.fail("delete limit %d is out of range [0, %d]", c.Limit, math.MaxInt32)
		}
		e.uvarint(uint64(c.Limit))
		e.bool(c.AllowPartial)
		e.preconds(c.Preconditions)
	case KindSchema:
		e.string(c.Schema)
	case KindImport:
		e.uvarint(uint64(len(c.Relationships)))
		for _, r := range c.Relationships {
			e.rel(r)
		}
	case KindNoop:
	case KindSetMember:
		e.string(c.Member.ID)
		e.string(c.Member.RaftAddr)
		e.string(c.Member.GRPCAddr)
	case KindForgetMember:
		e.string(c.Member.ID)
	default:
		e.fail("unknown command kind %d", uint8(c.Kind))
	}
	if e.err != nil {
		return nil, e.err
	}
	return e.buf, nil
}

func (e *encoder) updates(us []store.Update) {
	e.uvarint(uint64(len(us)))
	for i, u := range us {
		if u.Op < store.OpCreate || u.Op > store.OpDelete {
			e.fail("update %d: unknown op %d", i, u.Op)
		}
		e.buf = append(e.buf, byte(u.Op))
		e.rel(u.Rel)
	}
}

// record encodes a record op or condition: a nil value is a delete (an
// absence), any other (empty included) a value.
func (e *encoder) record(space, key string, value []byte) {
	e.string(space)
	e.string(key)
	if value == nil {
		e.buf = append(e.buf, 0)
		return
	}
	e.buf = append(e.buf, 1)
	e.uvarint(uint64(len(value)))
	e.buf = append(e.buf, value...)
}

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }

func (e *encoder) string(s string) {
	e.uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *encoder) bool(b bool) {
	if b {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.buf = append(e.buf, 0)
		return
	}
	e.buf = append(e.buf, 1)
	e.buf = binary.AppendVarint(e.buf, t.Unix())
	e.uvarint(uint64(t.Nanosecond()))
}

func (e *encoder) rel(r tuple.Relationship) {
	e.string(r.Resource.Type)
	e.string(r.Resource.ID)
	e.string(r.Relation)
	e.string(r.Subject.Type)
	e.string(r.Subject.ID)
	e.string(r.Subject.Relation)
	if r.Caveat == nil {
		e.buf = append(e.buf, 0)
	} else {
		e.buf = append(e.buf, 1)
		e.string(r.Caveat.Name)
		e.valueMap(r.Caveat.Context, 1)
	}
	e.time(r.Expiration)
}

func (e *encoder) filter(f tuple.Filter) {
	e.string(f.ResourceType)
	e.strings(f.ResourceIDs)
	e.string(f.ResourceIDPrefix)
	e.string(f.Relation)
	if f.Subject == nil {
		e.buf = append(e.buf, 0)
		return
	}
	e.buf = append(e.buf, 1)
	e.string(f.Subject.Type)
	e.strings(f.Subject.IDs)
	if f.Subject.Relation == nil {
		e.buf = append(e.buf, 0)
	} else {
		e.buf = append(e.buf, 1)
		e.string(*f.Subject.Relation)
	}
}

func (e *encoder) strings(ss []string) {
	e.uvarint(uint64(len(ss)))
	for _, s := range ss {
		e.string(s)
	}
}

func (e *encoder) preconds(ps []store.Precondition) {
	e.uvarint(uint64(len(ps)))
	for _, p := range ps {
		e.bool(p.MustMatch)
		e.filter(p.Filter)
	}
}

func (e *encoder) valueMap(m map[string]any, depth int) {
	e.uvarint(uint64(len(m)))
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		e.string(k)
		e.value(m[k], depth)
	}
}

func (e *encoder) value(v any, depth int) {
	if depth > maxValueDepth {
		e.fail("caveat context nested deeper than %d levels", maxValueDepth)
		return
	}
	switch v := v.(type) {
	case nil:
		e.buf = append(e.buf, 0)
	case bool:
		if v {
			e.buf = append(e.buf, 2)
		} else {
			e.buf = append(e.buf, 1)
		}
	case float64:
		e.buf = append(e.buf, 3)
		e.buf = binary.BigEndian.AppendUint64(e.buf, math.Float64bits(v))
	case string:
		e.buf = append(e.buf, 4)
		e.string(v)
	case []any:
		e.buf = append(e.buf, 5)
		e.uvarint(uint64(len(v)))
		for _, x := range v {
			e.value(x, depth+1)
		}
	case map[string]any:
		e.buf = append(e.buf, 6)
		e.valueMap(v, depth+1)
	default:
		e.fail("caveat context value of type %T is not a JSON value (want nil, bool, float64, string, []any or map[string]any)", v)
	}
}

// Decode parses an encoded command. It never panics; on malformed input it
// returns an error wrapping ErrBadCommand that names what is wrong and where.
func Decode(data []byte) (Command, error) {
	// One copy of the input backs every decoded string (no allocation per
	// field); the command keeps it alive, which is what a command costs anyway.
	d := decoder{data: data, str: string(data)}
	c := d.command()
	if d.err != nil {
		return Command{}, d.err
	}
	return c, nil
}

type decoder struct {
	data []byte
	str  string // when set, the same bytes as data; strings are sliced from it
	off  int
	err  error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at byte %d: %s", ErrBadCommand, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) remaining() int { return len(d.data) - d.off }

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.data) {
		d.fail("truncated: missing %s", what)
		return 0
	}
	b := d.data[d.off]
	d.off++
	return b
}

func (d *decoder) uvarint(what string) uint64 { return d.uvarintOf(what, "") }

// uvarintOf names the field what+suffix in an error; the two parts are only
// joined on failure, keeping the hot path free of allocations.
func (d *decoder) uvarintOf(what, suffix string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.data[d.off:])
	if n <= 0 {
		d.fail("bad varint for %s%s", what, suffix)
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.data[d.off:])
	if n <= 0 {
		d.fail("bad varint for %s", what)
		return 0
	}
	d.off += n
	return v
}

// count reads a list length and checks it against the bytes left (every
// element takes at least one byte), so a corrupt length never allocates.
func (d *decoder) count(what string) int {
	n := d.uvarintOf(what, " count")
	if d.err != nil {
		return 0
	}
	if n > uint64(d.remaining()) {
		d.fail("%s count %d exceeds the %d bytes left", what, n, d.remaining())
		return 0
	}
	return int(n)
}

func (d *decoder) string(what string) string {
	n := d.uvarintOf(what, " length")
	if d.err != nil {
		return ""
	}
	if n > uint64(d.remaining()) {
		d.fail("%s length %d exceeds the %d bytes left", what, n, d.remaining())
		return ""
	}
	var s string
	if d.str != "" {
		s = d.str[d.off : d.off+int(n)]
	} else {
		s = string(d.data[d.off : d.off+int(n)])
	}
	d.off += int(n)
	return s
}

func (d *decoder) bool(what string) bool {
	switch b := d.byte(what); b {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("%s: bad boolean byte 0x%02x", what, b)
		return false
	}
}

func (d *decoder) time(what string) time.Time {
	switch b := d.byte(what); b {
	case 0:
		return time.Time{}
	case 1:
		sec := d.varint(what)
		nsec := d.uvarintOf(what, " nanoseconds")
		if nsec >= 1e9 {
			d.fail("%s: nanoseconds %d out of range", what, nsec)
		}
		if d.err != nil {
			return time.Time{}
		}
		t := time.Unix(sec, int64(nsec)).UTC()
		if t.IsZero() {
			d.fail("%s: zero time must be encoded as 0x00", what)
		}
		return t
	default:
		if d.err == nil {
			d.fail("%s: bad time tag 0x%02x", what, b)
		}
		return time.Time{}
	}
}

func (d *decoder) command() Command {
	var c Command
	c.Kind = Kind(d.byte("command kind"))
	v := d.byte("command version")
	if d.err == nil && (v < commandVersion || v > maxCommandVersion) {
		d.fail("unsupported command version %d (this build reads versions %d to %d)", v, commandVersion, maxCommandVersion)
	}
	c.Now = d.time("command time")
	hashed, actor := v == commandVersionSchemaHash, false
	if d.err == nil && v == commandVersionFlags {
		flags := d.byte("command flags")
		if d.err == nil && flags&^knownFlags != 0 {
			d.fail("unknown command flags 0x%02x", flags)
		}
		hashed, actor = flags&flagSchemaHash != 0, flags&flagActor != 0
		if d.err == nil && !actor {
			d.fail("a version %d command without an actor must be encoded as version %d or %d", v, commandVersion, commandVersionSchemaHash)
		}
	}
	if d.err == nil && hashed {
		if d.remaining() < len(c.SchemaHash) {
			d.fail("truncated schema hash")
		} else {
			d.off += copy(c.SchemaHash[:], d.data[d.off:])
			if c.SchemaHash == (SchemaHash{}) {
				d.fail("a zero schema hash must be encoded without one")
			}
		}
	}
	if d.err == nil && actor {
		c.Actor = d.string("actor")
		if d.err == nil && (c.Actor == "" || len(c.Actor) > MaxActor) {
			d.fail("actor of %d bytes is outside 1..%d", len(c.Actor), MaxActor)
		}
	}
	if d.err != nil {
		return c
	}
	switch c.Kind {
	case KindWrite:
		c.Updates = d.updates()
		c.Preconditions = d.preconds()
	case KindRecords:
		c.Updates = d.updates()
		c.Preconditions = d.preconds()
		n := d.count("record op")
		for i := 0; i < n && d.err == nil; i++ {
			sp, k, v := d.record("record op")
			c.Records = append(c.Records, store.RecordOp{Space: sp, Key: k, Value: v})
		}
		n = d.count("record condition")
		for i := 0; i < n && d.err == nil; i++ {
			sp, k, v := d.record("record condition")
			c.RecordConds = append(c.RecordConds, store.RecordCond{Space: sp, Key: k, Value: v})
		}
	case KindDelete:
		c.Filter = d.filter()
		limit := d.uvarint("delete limit")
		if limit > math.MaxInt32 {
			d.fail("delete limit %d too large", limit)
		}
		c.Limit = int(limit)
		c.AllowPartial = d.bool("allow partial")
		c.Preconditions = d.preconds()
	case KindSchema:
		c.Schema = d.string("schema text")
	case KindImport:
		n := d.count("relationship")
		if n > 0 {
			c.Relationships = make([]tuple.Relationship, 0, n)
		}
		for i := 0; i < n && d.err == nil; i++ {
			c.Relationships = append(c.Relationships, d.rel())
		}
	case KindNoop:
	case KindSetMember:
		c.Member.ID = d.string("member id")
		c.Member.RaftAddr = d.string("member raft address")
		c.Member.GRPCAddr = d.string("member gRPC address")
	case KindForgetMember:
		c.Member.ID = d.string("member id")
	default:
		d.fail("unknown command kind %d", uint8(c.Kind))
	}
	if d.err == nil && d.remaining() > 0 {
		d.fail("%d trailing bytes after the %s command", d.remaining(), c.Kind)
	}
	return c
}

func (d *decoder) updates() []store.Update {
	n := d.count("update")
	if n == 0 {
		return nil
	}
	us := make([]store.Update, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		op := store.Op(d.byte("update op"))
		if d.err == nil && (op < store.OpCreate || op > store.OpDelete) {
			d.fail("update %d: unknown op %d", i, op)
		}
		us = append(us, store.Update{Op: op, Rel: d.rel()})
	}
	return us
}

// record decodes a record op or condition; the value is a fresh copy (nil:
// a delete or an absence).
func (d *decoder) record(what string) (space, key string, value []byte) {
	space = d.string(what + " space")
	key = d.string(what + " key")
	if !d.bool(what + " value flag") {
		return space, key, nil
	}
	n := d.uvarintOf(what, " value length")
	if d.err == nil && n > uint64(d.remaining()) {
		d.fail("%s value length %d exceeds the %d bytes left", what, n, d.remaining())
	}
	if d.err != nil {
		return "", "", nil
	}
	value = make([]byte, n)
	d.off += copy(value, d.data[d.off:])
	return space, key, value
}

func (d *decoder) rel() tuple.Relationship {
	var r tuple.Relationship
	r.Resource.Type = d.string("resource type")
	r.Resource.ID = d.string("resource id")
	r.Relation = d.string("relation")
	r.Subject.Type = d.string("subject type")
	r.Subject.ID = d.string("subject id")
	r.Subject.Relation = d.string("subject relation")
	if d.bool("caveat flag") {
		r.Caveat = &tuple.Caveat{Name: d.string("caveat name")}
		r.Caveat.Context = d.valueMap(1)
	}
	r.Expiration = d.time("expiration")
	return r
}

func (d *decoder) strings(what string) []string {
	n := d.count(what)
	if n == 0 {
		return nil
	}
	ss := make([]string, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		ss = append(ss, d.string(what))
	}
	return ss
}

func (d *decoder) filter() tuple.Filter {
	var f tuple.Filter
	f.ResourceType = d.string("filter resource type")
	f.ResourceIDs = d.strings("filter resource id")
	f.ResourceIDPrefix = d.string("filter resource id prefix")
	f.Relation = d.string("filter relation")
	if d.bool("filter subject flag") {
		sf := &tuple.SubjectFilter{}
		sf.Type = d.string("filter subject type")
		sf.IDs = d.strings("filter subject id")
		if d.bool("filter subject relation flag") {
			rel := d.string("filter subject relation")
			sf.Relation = &rel
		}
		f.Subject = sf
	}
	return f
}

func (d *decoder) preconds() []store.Precondition {
	n := d.count("precondition")
	if n == 0 {
		return nil
	}
	ps := make([]store.Precondition, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		mm := d.bool("precondition kind")
		ps = append(ps, store.Precondition{MustMatch: mm, Filter: d.filter()})
	}
	return ps
}

func (d *decoder) valueMap(depth int) map[string]any {
	n := d.count("caveat context entry")
	if n == 0 || d.err != nil {
		return nil
	}
	m := make(map[string]any, n)
	prev := ""
	for i := 0; i < n && d.err == nil; i++ {
		k := d.string("caveat context key")
		if i > 0 && d.err == nil && k <= prev {
			d.fail("caveat context keys not strictly increasing (%q after %q)", k, prev)
		}
		prev = k
		m[k] = d.value(depth)
	}
	return m
}

func (d *decoder) value(depth int) any {
	if depth > maxValueDepth {
		d.fail("caveat context nested deeper than %d levels", maxValueDepth)
		return nil
	}
	switch tag := d.byte("caveat context value"); tag {
	case 0:
		return nil
	case 1:
		return false
	case 2:
		return true
	case 3:
		if d.remaining() < 8 {
			d.fail("truncated float")
			return nil
		}
		v := math.Float64frombits(binary.BigEndian.Uint64(d.data[d.off:]))
		d.off += 8
		return v
	case 4:
		return d.string("caveat context string")
	case 5:
		n := d.count("caveat context list element")
		list := make([]any, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			list = append(list, d.value(depth+1))
		}
		return list
	case 6:
		m := d.valueMap(depth + 1)
		if m == nil {
			m = map[string]any{}
		}
		return m
	default:
		if d.err == nil {
			d.fail("bad caveat context value tag 0x%02x", tag)
		}
		return nil
	}
}
