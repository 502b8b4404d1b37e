package raft

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// fakeStore is an in-memory Backend with the store's contract: writes at a
// revision greater than the applied one, domain failures advance the
// revision without writing.
type fakeStore struct {
	mu      sync.Mutex
	rev     tuple.Revision
	rels    map[tuple.Key]tuple.Relationship
	schema  string
	members []byte // the member table, as WriteMembers stored it
	records map[string][]byte
	failIO  error // when set, every write fails with it (an I/O error)
	// refuseNext, when set, is returned by the next write after it consumed
	// its revision, as the store does with a refusal; then it is cleared.
	refuseNext error
	nowSeen    []time.Time
	// manyCalls counts WriteMany calls.
	manyCalls int
	// durable is the state as of the last Sync (or restore): what an OS
	// crash leaves (loseUnsynced). restores counts snapshot restores.
	durable  fakeState
	restores int
}

// fakeState is a copy of a fake store's data.
type fakeState struct {
	rev     tuple.Revision
	rels    map[tuple.Key]tuple.Relationship
	schema  string
	members []byte
}

// Sync records the current state as durable.
func (s *fakeStore) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failIO != nil {
		return s.failIO
	}
	s.durable = fakeState{rev: s.rev, rels: maps.Clone(s.rels), schema: s.schema, members: s.members}
	return nil
}

// loseUnsynced is an OS crash under a store running without synchronous
// writes: everything applied since the last Sync is gone.
func (s *fakeStore) loseUnsynced() (lost int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lost = int(s.rev - s.durable.rev)
	s.rev, s.schema, s.members = s.durable.rev, s.durable.schema, s.durable.members
	s.rels = maps.Clone(s.durable.rels)
	if s.rels == nil {
		s.rels = map[tuple.Key]tuple.Relationship{}
	}
	return lost
}

// durableRevision is the revision an OS crash would leave.
func (s *fakeStore) durableRevision() tuple.Revision {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.durable.rev
}

func newFakeStore() *fakeStore { return &fakeStore{rels: map[tuple.Key]tuple.Relationship{}} }

func (s *fakeStore) AppliedRevision() tuple.Revision {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

func (s *fakeStore) begin(rev tuple.Revision, now time.Time) error {
	if s.failIO != nil {
		return s.failIO
	}
	if rev <= s.rev {
		return fmt.Errorf("%w: %d <= %d", store.ErrStaleWrite, rev, s.rev)
	}
	if err := s.refuseNext; err != nil {
		s.rev, s.refuseNext = rev, nil
		return err
	}
	if now.IsZero() { // like the store: refused, but the revision is consumed
		s.rev = rev
		return fmt.Errorf("%w: the write has no timestamp", store.ErrInvalid)
	}
	s.nowSeen = append(s.nowSeen, now)
	return nil
}

func (s *fakeStore) check(preconds []store.Precondition) error {
	for _, p := range preconds {
		found := false
		for _, r := range s.rels {
			if p.Filter.Matches(r) {
				found = true
				break
			}
		}
		if found != p.MustMatch {
			return fmt.Errorf("%w: %+v", store.ErrPreconditionFailed, p.Filter)
		}
	}
	return nil
}

func (s *fakeStore) Write(rev tuple.Revision, now time.Time, updates []store.Update, preconds []store.Precondition) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(rev, now); err != nil {
		return err
	}
	s.rev = rev
	if err := s.check(preconds); err != nil {
		return err
	}
	for _, u := range updates {
		if u.Rel.Resource.Type == "" {
			return fmt.Errorf("%w: empty resource type", store.ErrInvalid)
		}
		if _, ok := s.rels[u.Rel.Key()]; ok && u.Op == store.OpCreate {
			return fmt.Errorf("%w: %s", store.ErrAlreadyExists, u.Rel.Key())
		}
	}
	for _, u := range updates {
		if u.Op == store.OpDelete {
			delete(s.rels, u.Rel.Key())
		} else {
			s.rels[u.Rel.Key()] = u.Rel
		}
	}
	return nil
}

// WriteRecords is Write with record conditions checked first and record
// ops applied after the updates (the fake keeps no record history).
func (s *fakeStore) WriteRecords(rev tuple.Revision, now time.Time, updates []store.Update, preconds []store.Precondition, ops []store.RecordOp, conds []store.RecordCond) error {
	s.mu.Lock()
	for _, c := range conds {
		cur, ok := s.records[c.Space+"/"+c.Key]
		if ok != (c.Value != nil) || ok && string(cur) != string(c.Value) {
			defer s.mu.Unlock()
			if err := s.begin(rev, now); err != nil {
				return err
			}
			s.rev = rev // a refusal consumes the revision
			return fmt.Errorf("%w: record %s/%s", store.ErrPreconditionFailed, c.Space, c.Key)
		}
	}
	s.mu.Unlock()
	if err := s.Write(rev, now, updates, preconds); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.records == nil {
		s.records = map[string][]byte{}
	}
	for _, op := range ops {
		if op.Value == nil {
			delete(s.records, op.Space+"/"+op.Key)
		} else {
			s.records[op.Space+"/"+op.Key] = slices.Clone(op.Value)
		}
	}
	return nil
}

// WriteMany is Write in a loop; a failure that is not a domain failure
// fails the call (the fake's only such failure, failIO, writes nothing).
func (s *fakeStore) WriteMany(reqs []store.WriteRequest) ([]error, error) {
	s.mu.Lock()
	s.manyCalls++
	s.mu.Unlock()
	results := make([]error, len(reqs))
	for i, r := range reqs {
		err := s.Write(r.Rev, r.Now, r.Updates, r.Preconds)
		if err != nil && !store.IsRefusal(err) {
			return nil, err
		}
		results[i] = err
	}
	return results, nil
}

func (s *fakeStore) DeleteByFilter(rev tuple.Revision, now time.Time, f tuple.Filter, limit int, allowPartial bool, preconds []store.Precondition) (int, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(rev, now); err != nil {
		return 0, false, err
	}
	s.rev = rev
	if err := s.check(preconds); err != nil {
		return 0, false, err
	}
	var keys []tuple.Key
	for k, r := range s.rels {
		if f.Matches(r) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b tuple.Key) int {
		switch {
		case a.String() < b.String():
			return -1
		case a.String() > b.String():
			return 1
		}
		return 0
	})
	partial := false
	if limit > 0 && len(keys) > limit {
		if !allowPartial {
			return 0, false, fmt.Errorf("%w: %d relationships match, limit %d", store.ErrTooLarge, len(keys), limit)
		}
		keys, partial = keys[:limit], true
	}
	for _, k := range keys {
		delete(s.rels, k)
	}
	return len(keys), partial, nil
}

func (s *fakeStore) WriteSchema(rev tuple.Revision, now time.Time, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(rev, now); err != nil {
		return err
	}
	s.rev, s.schema = rev, text
	return nil
}

func (s *fakeStore) Members() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.members, nil
}

func (s *fakeStore) WriteMembers(rev tuple.Revision, now time.Time, table []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(rev, now); err != nil {
		return err
	}
	s.rev, s.members = rev, slices.Clone(table)
	return nil
}

func (s *fakeStore) ImportMembers(table []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rev == 0 {
		return errors.New("fake store: ImportMembers at revision 0")
	}
	s.members = slices.Clone(table)
	return nil
}

// ReadSchema returns the current schema; the fake keeps no history, so rev
// must be the applied revision.
func (s *fakeStore) ReadSchema(rev tuple.Revision) (string, tuple.Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev != s.rev {
		return "", 0, fmt.Errorf("fake store: ReadSchema(%d) at revision %d", rev, s.rev)
	}
	if s.failIO != nil {
		return "", 0, s.failIO
	}
	return s.schema, 0, nil
}

func (s *fakeStore) Import(rev tuple.Revision, now time.Time, rels []tuple.Relationship) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.begin(rev, now); err != nil {
		return err
	}
	s.rev = rev
	for _, r := range rels {
		if _, ok := s.rels[r.Key()]; ok {
			return fmt.Errorf("%w: %s", store.ErrAlreadyExists, r.Key())
		}
	}
	for _, r := range rels {
		s.rels[r.Key()] = r
	}
	return nil
}

// The fake's snapshot is a revision, a schema and an import command.
func (s *fakeStore) WriteSnapshot(w io.Writer) (tuple.Revision, error) {
	s.mu.Lock()
	rels := make([]tuple.Relationship, 0, len(s.rels))
	for _, r := range s.rels {
		rels = append(rels, r)
	}
	rev, schema, members := s.rev, s.schema, s.members
	s.mu.Unlock()
	e := encoder{}
	e.uvarint(uint64(rev))
	e.string(schema)
	e.bool(members != nil)
	e.string(string(members))
	body, err := Encode(ImportCommand(rels))
	if err != nil {
		return 0, err
	}
	e.buf = append(e.buf, body...)
	_, err = w.Write(e.buf)
	return rev, err
}

func (s *fakeStore) RestoreSnapshot(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	d := decoder{data: data}
	rev := d.uvarint("rev")
	schema := d.string("schema")
	hasMembers := d.bool("members flag")
	members := []byte(d.string("members"))
	if !hasMembers {
		members = nil
	}
	if d.err != nil {
		return d.err
	}
	cmd, err := Decode(data[d.off:])
	if err != nil {
		return err
	}
	if cmd.Kind != KindImport {
		return errors.New("fake snapshot: not an import")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restores++
	s.rev, s.schema, s.members = tuple.Revision(rev), schema, members
	s.rels = map[tuple.Key]tuple.Relationship{}
	for _, r := range cmd.Relationships {
		s.rels[r.Key()] = r
	}
	return nil
}

func (s *fakeStore) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.rels))
	for k := range s.rels {
		out = append(out, k.String())
	}
	slices.Sort(out)
	return out
}

func (s *fakeStore) has(k tuple.Key) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.rels[k]
	return ok
}
