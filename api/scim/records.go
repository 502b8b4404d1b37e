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
// one record keyed by its id; the userName index maps a lower-cased userName
// to the id of the user holding it.
const (
	SpaceUsers     = "scim.users"
	SpaceGroups    = "scim.groups"
	SpaceUserNames = "scim.usernames"
)

// The replicated store's format limits on a record (store/FORMAT.md): a
// request that would exceed them is refused before anything is proposed.
const (
	MaxRecordKey   = store.MaxRecordKey
	MaxRecordValue = store.MaxRecordValue
)

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
	// Scan calls fn for each record of space in key order, all at one
	// revision (no older than any write this Records made).
	Scan(ctx context.Context, space string, fn func(key string, value []byte) error) error
	// Write applies, as one raft command, the relationship touches and
	// deletes and the record ops if every cond holds (ErrCondFailed, nothing
	// written, otherwise).
	Write(ctx context.Context, touch, del []tuple.Relationship, ops []RecordOp, conds []RecordCond) error
}

// RecordStore is the Store over the replicated record keyspace. Each Commit
// is one Records.Write: the resource's record, its userName index record
// and the relationships the mapping implies apply together or not at all.
// A resource's version is a counter kept in its record; Commit conditions
// the write on the record's current bytes, so a concurrent change makes it
// fail (ErrConflict, 412) instead of being overwritten.
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
	if id == "" || len(id) > MaxRecordKey || strings.IndexByte(id, 0) >= 0 {
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
	err := s.R.Scan(ctx, space(kind), func(_ string, b []byte) error {
		r, v, err := decodeRecord(b)
		if err != nil {
			return err
		}
		out = append(out, Versioned{r, v})
		return ctx.Err()
	})
	return out, err
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
	if len(c.ID) > MaxRecordKey {
		return 0, errorf(http.StatusBadRequest, "invalidValue", "an id is at most %d bytes", MaxRecordKey)
	}
	if err := checkUnique(c.Unique); err != nil {
		return 0, err
	}
	var cur []byte
	oldUnique := ""
	if c.Expect != 0 {
		b, err := s.read(ctx, c.Kind, c.ID)
		if errors.Is(err, ErrNotFound) {
			return 0, ErrConflict
		}
		if err != nil {
			return 0, err
		}
		v, _, err := recordVersion(b)
		if err != nil {
			return 0, err
		}
		if v != c.Expect {
			return 0, ErrConflict
		}
		cur = b
		if c.Kind == Users { // the userName index entry it holds
			r, _, err := decodeRecord(b)
			if err != nil {
				return 0, err
			}
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
