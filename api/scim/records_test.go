package scim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ambit-authz/ambit/tuple"
)

// fakeRecords is Records in memory with the replicated store's semantics:
// every cond holds or nothing is written.
type fakeRecords struct {
	mu     sync.Mutex
	recs   map[string]map[string][]byte
	rels   map[string]bool
	writes int
	// scans counts the reads of a whole space, read the reads of keys of
	// each space (by Lookup, Scan or Record), lastOps the record ops of the
	// last write.
	scans   map[string]int
	read    map[string]int
	lastOps []RecordOp
	// before, when set, runs inside Write before the conditions are
	// checked (a concurrent writer).
	before func()
}

func newFakeRecords() *fakeRecords {
	return &fakeRecords{recs: map[string]map[string][]byte{}, rels: map[string]bool{}, scans: map[string]int{}, read: map[string]int{}}
}

func (f *fakeRecords) Record(_ context.Context, space, key string) ([]byte, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.read[space]++
	v, ok := f.recs[space][key]
	return bytes.Clone(v), ok, nil
}

func (f *fakeRecords) Lookup(_ context.Context, space string, keys []string) ([][]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = bytes.Clone(f.recs[space][k])
	}
	f.read[space] += len(keys)
	return out, nil
}

func (f *fakeRecords) Scan(_ context.Context, space, prefix string, fn func(string, []byte) error) error {
	f.mu.Lock()
	if prefix == "" {
		f.scans[space]++
	}
	keys := make([]string, 0, len(f.recs[space]))
	for k := range f.recs[space] {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	f.read[space] += len(keys)
	slices.Sort(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = bytes.Clone(f.recs[space][k])
	}
	f.mu.Unlock()
	for i, k := range keys {
		if err := fn(k, vals[i]); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeRecords) Write(_ context.Context, touch, del []tuple.Relationship, ops []RecordOp, conds []RecordCond) error {
	if f.before != nil {
		b := f.before
		f.before = nil
		b()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range conds {
		v, ok := f.recs[c.Space][c.Key]
		if (c.Value == nil && ok) || (c.Value != nil && (!ok || !bytes.Equal(v, c.Value))) {
			return ErrCondFailed
		}
	}
	f.writes++
	f.lastOps = ops
	for _, r := range del {
		delete(f.rels, r.String())
	}
	for _, r := range touch {
		f.rels[r.String()] = true
	}
	for _, o := range ops {
		if f.recs[o.Space] == nil {
			f.recs[o.Space] = map[string][]byte{}
		}
		if o.Value == nil {
			delete(f.recs[o.Space], o.Key)
		} else {
			f.recs[o.Space][o.Key] = bytes.Clone(o.Value)
		}
	}
	return nil
}

type fakeRecordStore struct {
	RecordStore
	f *fakeRecords
}

func newFakeRecordStore() *fakeRecordStore {
	f := newFakeRecords()
	return &fakeRecordStore{RecordStore: RecordStore{R: f}, f: f}
}

func (s *fakeRecordStore) has(rel string) bool {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.f.rels[tuple.MustParse(rel).String()]
}

func TestRecordStoreCommit(t *testing.T) {
	ctx := context.Background()
	rel := tuple.MustParse("organization:lab#account@user:u1")
	user := func(name string) Resource { return Resource{"id": "u1", "userName": name} }
	tests := []struct {
		name    string
		setup   func(s *fakeRecordStore) // before the commit under test
		commit  Commit
		want    error
		version uint64
		index   map[string]string // the userName index afterwards
	}{
		{name: "create", commit: Commit{Kind: Users, ID: "u1", Resource: user("Ana"), Unique: "ana", Touch: []tuple.Relationship{rel}},
			version: 1, index: map[string]string{"ana": "u1"}},
		{name: "create over an existing id", setup: func(s *fakeRecordStore) {
			s.Commit(ctx, Commit{Kind: Users, ID: "u1", Resource: user("x"), Unique: "x"})
		}, commit: Commit{Kind: Users, ID: "u1", Resource: user("Ana"), Unique: "ana"}, want: ErrConflict, index: map[string]string{"x": "u1"}},
		{name: "duplicate userName", setup: func(s *fakeRecordStore) {
			s.Commit(ctx, Commit{Kind: Users, ID: "u0", Resource: Resource{"userName": "ANA"}, Unique: "ana"})
		}, commit: Commit{Kind: Users, ID: "u1", Resource: user("ana"), Unique: "ana", Touch: []tuple.Relationship{rel}}, want: ErrUniqueness,
			index: map[string]string{"ana": "u0"}},
		{name: "rename moves the index", setup: func(s *fakeRecordStore) {
			s.Commit(ctx, Commit{Kind: Users, ID: "u1", Resource: user("Ana"), Unique: "ana"})
		}, commit: Commit{Kind: Users, ID: "u1", Expect: 1, Resource: user("Anna"), Unique: "anna", Touch: []tuple.Relationship{rel}}, version: 2, index: map[string]string{"anna": "u1"}},
		{name: "stale version", setup: func(s *fakeRecordStore) {
			s.Commit(ctx, Commit{Kind: Users, ID: "u1", Resource: user("Ana"), Unique: "ana"})
			s.Commit(ctx, Commit{Kind: Users, ID: "u1", Expect: 1, Resource: user("Ana"), Unique: "ana"})
		}, commit: Commit{Kind: Users, ID: "u1", Expect: 1, Resource: user("Bo"), Unique: "bo", Touch: []tuple.Relationship{rel}}, want: ErrConflict,
			index: map[string]string{"ana": "u1"}},
		{name: "changed between read and write", setup: func(s *fakeRecordStore) {
			s.Commit(ctx, Commit{Kind: Users, ID: "u1", Resource: user("Ana"), Unique: "ana"})
			s.f.before = func() { s.Commit(ctx, Commit{Kind: Users, ID: "u1", Expect: 1, Resource: user("Cy"), Unique: "cy"}) }
		}, commit: Commit{Kind: Users, ID: "u1", Expect: 1, Resource: user("Bo"), Unique: "bo", Touch: []tuple.Relationship{rel}}, want: ErrConflict,
			index: map[string]string{"cy": "u1"}},
		{name: "userName taken between read and write", setup: func(s *fakeRecordStore) {
			s.f.before = func() {
				s.Commit(ctx, Commit{Kind: Users, ID: "u2", Resource: Resource{"userName": "ana"}, Unique: "ana"})
			}
		}, commit: Commit{Kind: Users, ID: "u1", Resource: user("Ana"), Unique: "ana", Touch: []tuple.Relationship{rel}}, want: ErrUniqueness,
			index: map[string]string{"ana": "u2"}},
		{name: "remove frees the userName", setup: func(s *fakeRecordStore) {
			s.Commit(ctx, Commit{Kind: Users, ID: "u1", Resource: user("Ana"), Unique: "ana"})
		}, commit: Commit{Kind: Users, ID: "u1", Expect: 1, Unique: "ana", Touch: []tuple.Relationship{rel}}, index: map[string]string{}},
		{name: "update of a removed resource", commit: Commit{Kind: Users, ID: "u1", Expect: 3, Resource: user("Ana"), Unique: "ana"}, want: ErrConflict,
			index: map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeRecordStore()
			if tc.setup != nil {
				tc.setup(s)
			}
			v, err := s.Commit(ctx, tc.commit)
			if !errors.Is(err, tc.want) || (err == nil && v != tc.version) {
				t.Fatalf("Commit = %d, %v; want %d, %v", v, err, tc.version, tc.want)
			}
			if got := s.has(rel.String()); got != (err == nil) {
				t.Errorf("relationship written = %v, commit error %v: not atomic", got, err)
			}
			index := map[string]string{}
			for k, v := range s.f.recs[SpaceUserNames] {
				index[k] = string(v)
			}
			if len(index) != len(tc.index) {
				t.Errorf("index = %v, want %v", index, tc.index)
			}
			for k, v := range tc.index {
				if index[k] != v {
					t.Errorf("index = %v, want %v", index, tc.index)
				}
			}
			if err == nil && tc.commit.Resource != nil {
				r, got, err := s.Get(ctx, Users, "u1")
				if err != nil || got != tc.version || r["userName"] != tc.commit.Resource["userName"] {
					t.Errorf("Get = %v %d %v", r, got, err)
				}
			}
		})
	}
}

func TestRecordStoreLimits(t *testing.T) {
	ctx := context.Background()
	s := newFakeRecordStore()
	members := func(n int) []map[string]any {
		out := make([]map[string]any, n)
		for i := range out {
			out[i] = map[string]any{"value": fmt.Sprintf("user-%d", i), "type": "User"}
		}
		return out
	}
	// A group's members are records of their own: as many as one write
	// holds go in one commit, one more is refused naming the limit.
	if _, err := s.Commit(ctx, Commit{Kind: Groups, ID: "g", Resource: Resource{"displayName": "big"}, SetMembers: members(MaxMemberChanges)}); err != nil {
		t.Fatalf("a group of %d members = %v", MaxMemberChanges, err)
	}
	if got := len(s.f.recs[SpaceMembers]); got != MaxMemberChanges {
		t.Fatalf("%d member records, want %d", got, MaxMemberChanges)
	}
	_, err := s.Commit(ctx, Commit{Kind: Groups, ID: "h", Resource: Resource{"displayName": "bigger"}, SetMembers: members(MaxMemberChanges + 1)})
	if e := AsError(err); e.Status != 413 || !strings.Contains(e.Detail, "limit") {
		t.Errorf("a change of %d members = %v", MaxMemberChanges+1, err)
	}
	long := string(bytes.Repeat([]byte("a"), MaxRecordKey+1))
	if _, err := s.Commit(ctx, Commit{Kind: Users, ID: "u", Resource: Resource{"userName": long}, Unique: long}); AsError(err).Status != 400 {
		t.Errorf("a userName longer than a record key = %v", err)
	}
	if _, err := s.Commit(ctx, Commit{Kind: Groups, ID: "i", Resource: Resource{"displayName": "x"}, SetMembers: []map[string]any{{"value": long}}}); AsError(err).Status != 400 {
		t.Errorf("a member id longer than a record key = %v", err)
	}
	if s.f.writes != 1 {
		t.Errorf("%d writes, want the 1 accepted", s.f.writes)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := Resource{"id": "x", "userName": "ana", "emails": []any{map[string]any{"value": "a@b", "primary": true}}}
	b, err := encodeRecord(7, r)
	if err != nil {
		t.Fatal(err)
	}
	got, v, err := decodeRecord(b)
	if err != nil || v != 7 || got["userName"] != "ana" || len(got["emails"].([]any)) != 1 {
		t.Fatalf("decode = %v %d %v", got, v, err)
	}
	for _, bad := range [][]byte{nil, {2, 1, '{', '}'}, {1}, {1, 0x80}, {1, 1, '['}} {
		if _, _, err := decodeRecord(bad); err == nil {
			t.Errorf("decodeRecord(%v) = nil error", bad)
		}
	}
}

// TestConcurrentChange: a change made while another is in flight is applied
// again to the new state when the client sent no If-Match, and is 412 when
// it did.
func TestConcurrentChange(t *testing.T) {
	st := newFakeRecordStore()
	c := newClientWith(t, st)
	a := c.want(201, "POST", "/Users", `{"userName":"a"}`)["id"].(string)
	b := c.want(201, "POST", "/Users", `{"userName":"b"}`)["id"].(string)
	g := c.want(201, "POST", "/Groups", `{"displayName":"g"}`)
	id := g["id"].(string)
	add := func(u string) string {
		return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"` + u + `"}]}]}`
	}
	st.f.before = func() { c.want(204, "PATCH", "/Groups/"+id, add(b)) }
	c.want(204, "PATCH", "/Groups/"+id, add(a))
	got := c.want(200, "GET", "/Groups/"+id, "")
	if len(got["members"].([]any)) != 2 || !c.st.has("group:"+id+"#direct_member@user:"+a) || !c.st.has("group:"+id+"#direct_member@user:"+b) {
		t.Fatalf("concurrent adds = %v", got)
	}
	version := got["meta"].(map[string]any)["version"].(string)
	st.f.before = func() {
		c.want(204, "PATCH", "/Groups/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"h"}]}`)
	}
	c.wantError(412, "", "PATCH", "/Groups/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members"}]}`, "If-Match", version)
	if !c.st.has("group:" + id + "#direct_member@user:" + a) {
		t.Fatal("a refused change removed members")
	}
}

// FuzzDecodeRecord: a stored record of any bytes decodes or errs, never
// panics, and what decodes re-encodes to a record with the same version.
func FuzzDecodeRecord(f *testing.F) {
	good, _ := encodeRecord(3, Resource{"userName": "ana", "members": []any{map[string]any{"value": "x"}}})
	for _, seed := range [][]byte{good, nil, {1}, {1, 0x80}, {1, 1, '{', '}'}, {2, 1, '{', '}'}, {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 'n', 'u', 'l', 'l'}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, v, err := decodeRecord(b)
		if err != nil {
			return
		}
		again, err := encodeRecord(v, r)
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v", err)
		}
		if _, v2, err := decodeRecord(again); err != nil || v2 != v {
			t.Fatalf("round trip: version %d -> %d, %v", v, v2, err)
		}
	})
}
