package scim

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// The record spaces of the replicated store that SCIM writes. A resource is
// one record keyed by its id (a group's without its members); each member of
// a group is a record of its own keyed by the group's id, a NUL byte and the
// member's id (ids hold no NUL, so a group's members are exactly the keys
// that begin with its id and a NUL). The userName index maps a lower-cased
// userName to the id of the user holding it; the other indexes hold a key
// per resource, the indexed value, a NUL and the resource's id, so that one
// value may name several resources.
const (
	SpaceUsers     = "scim.users"
	SpaceGroups    = "scim.groups"
	SpaceMembers   = "scim.members"
	SpaceUserNames = "scim.usernames"
	// The indexes of externalId (case-exact) and, for groups, of displayName
	// (lower-cased, as filters compare it).
	SpaceUserExternalIDs  = "scim.users.externalid"
	SpaceGroupExternalIDs = "scim.groups.externalid"
	SpaceGroupNames       = "scim.groups.displayname"
)

// The replicated store's format limits on a record and on one write
// (store/FORMAT.md): a request that would exceed them is refused before
// anything is proposed.
const (
	MaxRecordKey   = store.MaxRecordKey
	MaxRecordValue = store.MaxRecordValue
	MaxRecordOps   = store.MaxRecordOps
)

// MaxIndexedValue bounds the values the externalId and displayName indexes
// hold: a longer value is stored but not indexed, and a filter for one
// scans.
const MaxIndexedValue = 512

// MaxMemberChanges is the most member records one commit may write or
// delete: the format's MaxRecordOps less room for the group's own record,
// its condition and its index records.
const MaxMemberChanges = MaxRecordOps - 24

// RecordOp and RecordCond are the store's.
type (
	RecordOp   = store.RecordOp
	RecordCond = store.RecordCond
)

// ErrCondFailed is what Records.Write returns when a RecordCond did not
// hold: nothing was written.
var ErrCondFailed = errors.New("scim: a record condition did not hold")

// Records is what RecordStore needs of the replicated store: reads of the
// record keyspace and one atomic write of relationships and records.
type Records interface {
	// Record reads one record, at a revision no older than any write this
	// Records made.
	Record(ctx context.Context, space, key string) (value []byte, ok bool, err error)
	// Lookup reads the records of space with these keys, all at one
	// revision (no older than any write this Records made): values[i] is
	// nil when keys[i] has none.
	Lookup(ctx context.Context, space string, keys []string) (values [][]byte, err error)
	// Scan calls fn for each record of space whose key begins with prefix
	// ("": every record) in key order, all at one revision (no older than
	// any write this Records made).
	Scan(ctx context.Context, space, prefix string, fn func(key string, value []byte) error) error
	// Write applies, as one raft command, the relationship touches and
	// deletes and the record ops if every cond holds (ErrCondFailed, nothing
	// written, otherwise).
	Write(ctx context.Context, touch, del []tuple.Relationship, ops []RecordOp, conds []RecordCond) error
}

// RecordStore is the Store over the replicated record keyspace. Each Commit
// is one Records.Write: the resource's record, the member records that
// changed, its index records and the relationships the mapping implies
// apply together or not at all. A resource's version is a counter kept in
// its record, and every change of a group's members rewrites the group's
// record; Commit conditions the write on the record's current bytes, so a
// concurrent change makes it fail (ErrConflict, 412) instead of being
// overwritten, and a change of members changes the group's ETag.
type RecordStore struct {
	R Records
}

var _ Store = (*RecordStore)(nil)

func space(kind Kind) string {
	if kind == Users {
		return SpaceUsers
	}
	return SpaceGroups
}

// memberKey is the key of a group's member record; memberPrefix the prefix
// of all of them.
func memberKey(group, member string) string { return group + "\x00" + member }
func memberPrefix(group string) string      { return group + "\x00" }

// index is one non-unique index of a resource attribute.
type index struct {
	space string
	attr  string
	fold  bool // lower-cased, as filters compare a case-insensitive attribute
}

var indexes = map[Kind][]index{
	Users:  {{SpaceUserExternalIDs, "externalId", false}},
	Groups: {{SpaceGroupExternalIDs, "externalId", false}, {SpaceGroupNames, "displayName", true}},
}

// value returns the key part v has in ix, and whether it is indexed.
func (ix index) value(v string) (string, bool) {
	if ix.fold {
		v = strings.ToLower(v)
	}
	if v == "" || len(v) > MaxIndexedValue || strings.IndexByte(v, 0) >= 0 {
		return "", false
	}
	return v, true
}

// indexKeys returns the index records a resource holds: space -> key.
func indexKeys(kind Kind, id string, r Resource) map[string]string {
	out := map[string]string{}
	for _, ix := range indexes[kind] {
		s, _ := r[keyOf(r, ix.attr)].(string)
		if v, ok := ix.value(s); ok {
			out[ix.space] = v + "\x00" + id
		}
	}
	return out
}

// recordFormat is the first byte of a resource record: the version of its
// layout, then the resource's version as a uvarint, then its JSON.
const recordFormat = 1

func encodeRecord(version uint64, r Resource) ([]byte, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 0, 1+binary.MaxVarintLen64+len(js))
	buf = append(buf, recordFormat)
	buf = binary.AppendUvarint(buf, version)
	return append(buf, js...), nil
}

// recordVersion reads a resource record's version without its JSON, and
// where the JSON starts.
func recordVersion(b []byte) (uint64, int, error) {
	if len(b) < 2 || b[0] != recordFormat {
		return 0, 0, fmt.Errorf("scim: a resource record of unknown format")
	}
	v, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return 0, 0, fmt.Errorf("scim: a resource record with a bad version")
	}
	return v, 1 + n, nil
}

func decodeRecord(b []byte) (Resource, uint64, error) {
	v, n, err := recordVersion(b)
	if err != nil {
		return nil, 0, err
	}
	var r Resource
	if err := json.Unmarshal(b[n:], &r); err != nil {
		return nil, 0, fmt.Errorf("scim: a resource record's JSON: %w", err)
	}
	return r, v, nil
}

func (s *RecordStore) read(ctx context.Context, kind Kind, id string) ([]byte, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	b, ok, err := s.R.Record(ctx, space(kind), id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	return b, nil
}

func validID(id string) bool {
	return id != "" && len(id) <= MaxIndexedValue && strings.IndexByte(id, 0) < 0
}

// Get implements Store.
func (s *RecordStore) Get(ctx context.Context, kind Kind, id string) (Resource, uint64, error) {
	b, err := s.read(ctx, kind, id)
	if err != nil {
		return nil, 0, err
	}
	return decodeRecord(b)
}

// List implements Store: every resource of the kind, by id.
func (s *RecordStore) List(ctx context.Context, kind Kind) ([]Versioned, error) {
	var out []Versioned
	err := s.R.Scan(ctx, space(kind), "", func(_ string, b []byte) error {
		r, v, err := decodeRecord(b)
		if err != nil {
			return err
		}
		out = append(out, Versioned{r, v})
		return ctx.Err()
	})
	return out, err
}

// Members implements Store: the member records under the group's prefix,
// then the group's record again, whose version must still be version (a
// change of members rewrites it).
func (s *RecordStore) Members(ctx context.Context, group string, version uint64) ([]any, error) {
	if !validID(group) {
		return nil, ErrNotFound
	}
	var out []any
	err := s.R.Scan(ctx, SpaceMembers, memberPrefix(group), func(_ string, b []byte) error {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("scim: a member record's JSON: %w", err)
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	b, err := s.read(ctx, Groups, group)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrConflict
	}
	if err != nil {
		return nil, err
	}
	if v, _, err := recordVersion(b); err != nil || v != version {
		if err != nil {
			return nil, err
		}
		return nil, ErrConflict
	}
	return out, nil
}

// MembersIn implements Store: one read of the member records of ids.
func (s *RecordStore) MembersIn(ctx context.Context, group string, ids []string) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	if !validID(group) || len(ids) == 0 {
		return out, nil
	}
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		if k := memberKey(group, id); len(k) <= MaxRecordKey && strings.IndexByte(id, 0) < 0 && id != "" {
			keys = append(keys, k)
		}
	}
	vals, err := s.R.Lookup(ctx, SpaceMembers, keys)
	if err != nil {
		return nil, err
	}
	for i, b := range vals {
		if b == nil {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("scim: a member record's JSON: %w", err)
		}
		out[keys[i][len(group)+1:]] = m
	}
	return out, nil
}

// WithMember implements Store: one read of the member records of member
// in each group.
func (s *RecordStore) WithMember(ctx context.Context, groups []string, member string) ([]string, error) {
	if member == "" || strings.IndexByte(member, 0) >= 0 {
		return nil, nil
	}
	var keys, of []string
	for _, g := range groups {
		if k := memberKey(g, member); validID(g) && len(k) <= MaxRecordKey {
			keys, of = append(keys, k), append(of, g)
		}
	}
	vals, err := s.R.Lookup(ctx, SpaceMembers, keys)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, b := range vals {
		if b != nil {
			out = append(out, of[i])
		}
	}
	return out, nil
}

// Exist implements Store: one read of the records of ids.
func (s *RecordStore) Exist(ctx context.Context, kind Kind, ids []string) (map[string]bool, error) {
	var keys []string
	for _, id := range ids {
		if validID(id) {
			keys = append(keys, id)
		}
	}
	vals, err := s.R.Lookup(ctx, space(kind), keys)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(keys))
	for i, b := range vals {
		if b != nil {
			out[keys[i]] = true
		}
	}
	return out, nil
}

// Find implements Store: the ids an index holds for value.
func (s *RecordStore) Find(ctx context.Context, kind Kind, attr, value string) ([]string, bool, error) {
	for _, ix := range indexes[kind] {
		if !strings.EqualFold(ix.attr, attr) {
			continue
		}
		v, ok := ix.value(value)
		if !ok {
			return nil, false, nil
		}
		var ids []string
		err := s.R.Scan(ctx, ix.space, v+"\x00", func(k string, _ []byte) error {
			ids = append(ids, k[len(v)+1:])
			return nil
		})
		return ids, err == nil, err
	}
	return nil, false, nil
}

// Unique implements Store: the user holding a userName, by the index.
func (s *RecordStore) Unique(ctx context.Context, kind Kind, value string) (string, bool, error) {
	if kind != Users || checkUnique(value) != nil {
		return "", false, nil
	}
	b, ok, err := s.R.Record(ctx, SpaceUserNames, value)
	return string(b), ok, err
}

func checkUnique(u string) error {
	if len(u) > MaxRecordKey || strings.IndexByte(u, 0) >= 0 {
		return errorf(http.StatusBadRequest, "invalidValue", "userName is %d bytes or holds a NUL byte; at most %d bytes without NUL", len(u), MaxRecordKey)
	}
	return nil
}

// Commit implements Store.
func (s *RecordStore) Commit(ctx context.Context, c Commit) (uint64, error) {
	sp := space(c.Kind)
	if !validID(c.ID) {
		return 0, errorf(http.StatusBadRequest, "invalidValue", "an id is 1 to %d bytes without NUL", MaxIndexedValue)
	}
	if err := checkUnique(c.Unique); err != nil {
		return 0, err
	}
	if c.Kind != Groups && len(c.SetMembers)+len(c.RemoveMembers) > 0 {
		return 0, errorf(http.StatusBadRequest, "invalidValue", "only a group has members")
	}
	var cur []byte
	var old Resource
	oldUnique := ""
	if c.Expect != 0 {
		b, err := s.read(ctx, c.Kind, c.ID)
		if errors.Is(err, ErrNotFound) {
			return 0, ErrConflict
		}
		if err != nil {
			return 0, err
		}
		r, v, err := decodeRecord(b)
		if err != nil {
			return 0, err
		}
		if v != c.Expect {
			return 0, ErrConflict
		}
		cur, old = b, r
		if c.Kind == Users { // the userName index entry it holds
			name, _ := r["userName"].(string)
			oldUnique = strings.ToLower(name)
		}
	}
	if c.Unique != "" && c.Unique != oldUnique {
		if holder, ok, err := s.Unique(ctx, c.Kind, c.Unique); err != nil {
			return 0, err
		} else if ok && holder != c.ID {
			return 0, ErrUniqueness
		}
	}
	// The resource's record, conditioned on its current bytes (absent for a
	// create).
	conds := []RecordCond{{Space: sp, Key: c.ID, Value: cur}}
	var ops []RecordOp
	var version uint64
	if c.Resource == nil {
		ops = append(ops, RecordOp{Space: sp, Key: c.ID})
	} else {
		version = c.Expect + 1
		b, err := encodeRecord(version, c.Resource)
		if err != nil {
			return 0, err
		}
		if len(b) > MaxRecordValue {
			return 0, errorf(http.StatusRequestEntityTooLarge, "", "the %s is %d bytes stored, more than the %d bytes a resource may hold", resourceType(c.Kind), len(b), MaxRecordValue)
		}
		ops = append(ops, RecordOp{Space: sp, Key: c.ID, Value: b})
	}
	// The userName index follows the resource.
	newUnique := c.Unique
	if c.Resource == nil {
		newUnique = ""
	}
	if newUnique != oldUnique {
		if oldUnique != "" {
			ops = append(ops, RecordOp{Space: SpaceUserNames, Key: oldUnique})
			conds = append(conds, RecordCond{Space: SpaceUserNames, Key: oldUnique, Value: []byte(c.ID)})
		}
		if newUnique != "" {
			ops = append(ops, RecordOp{Space: SpaceUserNames, Key: newUnique, Value: []byte(c.ID)})
			conds = append(conds, RecordCond{Space: SpaceUserNames, Key: newUnique})
		}
	}
	// So do the other indexes (the resource's own condition covers them).
	was, is := indexKeys(c.Kind, c.ID, old), indexKeys(c.Kind, c.ID, c.Resource)
	for _, ix := range indexes[c.Kind] {
		if was[ix.space] == is[ix.space] {
			continue
		}
		if k := was[ix.space]; k != "" {
			ops = append(ops, RecordOp{Space: ix.space, Key: k})
		}
		if k := is[ix.space]; k != "" {
			ops = append(ops, RecordOp{Space: ix.space, Key: k, Value: []byte(c.ID)})
		}
	}
	// The members that changed.
	if n := len(c.SetMembers) + len(c.RemoveMembers); n > MaxMemberChanges {
		return 0, errorf(http.StatusRequestEntityTooLarge, "", "the change adds, changes or removes %d members, more than the %d one write can hold (the replicated store's limit of %d records per write); change fewer members per request", n, MaxMemberChanges, MaxRecordOps)
	}
	for _, m := range c.SetMembers {
		v, _ := m["value"].(string)
		k := memberKey(c.ID, v)
		if v == "" || strings.IndexByte(v, 0) >= 0 || len(k) > MaxRecordKey {
			return 0, errorf(http.StatusBadRequest, "invalidValue", "a member's value (its id) is 1 to %d bytes without NUL", MaxRecordKey-len(c.ID)-1)
		}
		b, err := json.Marshal(m)
		if err != nil {
			return 0, errorf(http.StatusBadRequest, "invalidValue", "member %s does not encode: %v", v, err)
		}
		if len(b) > MaxRecordValue {
			return 0, errorf(http.StatusRequestEntityTooLarge, "", "member %s is %d bytes stored, more than the %d bytes a record may hold", v, len(b), MaxRecordValue)
		}
		ops = append(ops, RecordOp{Space: SpaceMembers, Key: k, Value: b})
	}
	for _, v := range c.RemoveMembers {
		if k := memberKey(c.ID, v); v != "" && len(k) <= MaxRecordKey {
			ops = append(ops, RecordOp{Space: SpaceMembers, Key: k})
		}
	}
	if n := len(ops) + len(conds); n > MaxRecordOps {
		return 0, errorf(http.StatusRequestEntityTooLarge, "", "the change writes %d records and conditions, more than the replicated store's limit of %d in one write", n, MaxRecordOps)
	}
	err := s.R.Write(ctx, c.Touch, c.Delete, ops, conds)
	if errors.Is(err, ErrCondFailed) {
		// Which condition failed: another user took the userName, or the
		// resource changed.
		if newUnique != "" && newUnique != oldUnique {
			if holder, ok, err := s.Unique(ctx, c.Kind, newUnique); err == nil && ok && holder != c.ID {
				return 0, ErrUniqueness
			}
		}
		return 0, ErrConflict
	}
	if err != nil {
		return 0, err
	}
	return version, nil
}
