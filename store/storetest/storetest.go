// Package storetest is a conformance suite for tuple stores: it is written
// against the behaviour of package store's method set, so every store
// implementation (the badger store today, any other tomorrow) runs the same
// tests. Call RunAll from the implementation's tests.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"iter"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// Snapshot is the read view a store returns.
type Snapshot interface {
	Revision() tuple.Revision
	Query(ctx context.Context, f tuple.Filter) iter.Seq2[tuple.Relationship, error]
}

// Store is the method set under test; *store.Store implements it with S = *store.Snapshot.
type Store[S Snapshot] interface {
	Close() error
	AppliedRevision() tuple.Revision
	Write(rev tuple.Revision, now time.Time, updates []store.Update, preconds []store.Precondition) error
	// WriteMany and Sync are what a raft state machine applying a batch of
	// log entries uses (raft.Backend).
	WriteMany(reqs []store.WriteRequest) ([]error, error)
	Sync() error
	DeleteByFilter(rev tuple.Revision, now time.Time, f tuple.Filter, limit int, allowPartial bool, preconds []store.Precondition) (int, bool, error)
	WriteSchema(rev tuple.Revision, now time.Time, text string) error
	ReadSchema(rev tuple.Revision) (string, tuple.Revision, error)
	Import(rev tuple.Revision, now time.Time, rels []tuple.Relationship) error
	Snapshot(rev tuple.Revision) (S, error)
	Changes(ctx context.Context, after tuple.Revision) iter.Seq2[store.Change, error]
	Changed() <-chan struct{}
	WriteSnapshot(w io.Writer) (tuple.Revision, error)
	RestoreSnapshot(r io.Reader) error
	RunGC() error
}

// Config is what a test asks of the store it opens. Zero fields mean the
// store's defaults.
type Config struct {
	// Dir is a directory owned by the test. Opening the same Dir again after
	// Close must show the same data (persistent stores only).
	Dir      string
	Clock    func() time.Time
	GCWindow time.Duration
}

// Harness tells the suite how to open a store.
type Harness[S Snapshot, T Store[S]] struct {
	// Open opens a store; the suite closes it (a second Close may return ErrClosed).
	Open func(t *testing.T, c Config) T
	// Persistent: reopening Config.Dir shows the data (restart tests run).
	Persistent bool
}

// RunAll runs every conformance test as a subtest.
func RunAll[S Snapshot, T Store[S]](t *testing.T, h Harness[S, T]) {
	s := suite[S, T]{h: h}
	t.Run("CreateTouchDelete", s.testCreateTouchDelete)
	t.Run("BatchValidation", s.testBatchValidation)
	t.Run("StaleWrite", s.testStaleWrite)
	t.Run("SnapshotIsolation", s.testSnapshotIsolation)
	t.Run("Preconditions", s.testPreconditions)
	t.Run("DeleteByFilter", s.testDeleteByFilter)
	t.Run("LargeDelete", s.testLargeDelete)
	t.Run("QueryFilters", s.testQueryFilters)
	t.Run("QueryModel", s.testQueryModel)
	t.Run("ConcurrentQueries", s.testConcurrentQueries)
	t.Run("CaveatsAndExpiration", s.testCaveatsAndExpiration)
	t.Run("Schema", s.testSchema)
	t.Run("Import", s.testImport)
	t.Run("Changes", s.testChanges)
	t.Run("Changed", s.testChanged)
	t.Run("GCBoundaries", s.testGC)
	t.Run("SnapshotRoundTrip", s.testSnapshotRoundTrip)
	t.Run("Closed", s.testClosed)
	t.Run("WriteMany", s.testWriteMany)
	t.Run("WriteManyRefusesBadRevisions", s.testWriteManyBadRevisions)
	t.Run("Sync", s.testSync)
	if h.Persistent {
		t.Run("Restart", s.testRestart)
	}
}

type suite[S Snapshot, T Store[S]] struct{ h Harness[S, T] }

// Clock is a settable test clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func (s suite[S, T]) open(t *testing.T, c Config) T {
	t.Helper()
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	st := s.h.Open(t, c)
	t.Cleanup(func() {
		if err := st.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return st
}

// Helpers.

func rel(s string) tuple.Relationship { return tuple.MustParse(s) }

func ups(op store.Op, rels ...string) []store.Update {
	out := make([]store.Update, len(rels))
	for i, r := range rels {
		out[i] = store.Update{Op: op, Rel: rel(r)}
	}
	return out
}

func mustWrite[S Snapshot, T Store[S]](t *testing.T, st T, rev tuple.Revision, now time.Time, u []store.Update) {
	t.Helper()
	if err := st.Write(rev, now, u, nil); err != nil {
		t.Fatalf("write at %d: %v", rev, err)
	}
}

func collect(t *testing.T, seq iter.Seq2[tuple.Relationship, error]) ([]string, error) {
	t.Helper()
	var out []string
	for r, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, r.String())
	}
	return out, nil
}

func queryAt[S Snapshot, T Store[S]](t *testing.T, st T, rev tuple.Revision, f tuple.Filter) []string {
	t.Helper()
	sn, err := st.Snapshot(rev)
	if err != nil {
		t.Fatalf("snapshot at %d: %v", rev, err)
	}
	got, err := collect(t, sn.Query(context.Background(), f))
	if err != nil {
		t.Fatalf("query at %d %+v: %v", rev, f, err)
	}
	return got
}

func all[S Snapshot, T Store[S]](t *testing.T, st T, rev tuple.Revision) []string {
	t.Helper()
	got := queryAt[S](t, st, rev, tuple.Filter{})
	slices.Sort(got)
	return got
}

func sorted(s ...string) []string {
	out := make([]string, len(s))
	for i, r := range s {
		out[i] = rel(r).String()
	}
	slices.Sort(out)
	return out
}

func equal(a, b []string) bool { return slices.Equal(a, b) }

func ptr(s string) *string { return &s }

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func (s suite[S, T]) testCreateTouchDelete(t *testing.T) {
	st := s.open(t, Config{})
	mustWrite[S](t, st, 1, t0, ups(store.OpCreate, "doc:a#viewer@user:ana", "doc:a#viewer@user:bob"))
	if got, want := st.AppliedRevision(), tuple.Revision(1); got != want {
		t.Fatalf("applied = %d, want %d", got, want)
	}

	tests := []struct {
		name    string
		updates []store.Update
		wantErr error
		want    []string // full state after
	}{
		{"create existing fails", ups(store.OpCreate, "doc:a#viewer@user:ana"), store.ErrAlreadyExists,
			sorted("doc:a#viewer@user:ana", "doc:a#viewer@user:bob")},
		{"failed batch writes nothing", append(ups(store.OpCreate, "doc:b#viewer@user:cat"), ups(store.OpCreate, "doc:a#viewer@user:bob")...),
			store.ErrAlreadyExists, sorted("doc:a#viewer@user:ana", "doc:a#viewer@user:bob")},
		{"touch inserts", ups(store.OpTouch, "doc:c#viewer@user:dan"), nil,
			sorted("doc:a#viewer@user:ana", "doc:a#viewer@user:bob", "doc:c#viewer@user:dan")},
		{"touch replaces attributes", ups(store.OpTouch, `doc:c#viewer@user:dan[weekday:{"d":1}]`), nil,
			sorted("doc:a#viewer@user:ana", "doc:a#viewer@user:bob", `doc:c#viewer@user:dan[weekday:{"d":1}]`)},
		{"delete absent is a no-op", ups(store.OpDelete, "doc:zzz#viewer@user:ana"), nil,
			sorted("doc:a#viewer@user:ana", "doc:a#viewer@user:bob", `doc:c#viewer@user:dan[weekday:{"d":1}]`)},
		{"delete removes", ups(store.OpDelete, "doc:a#viewer@user:bob"), nil,
			sorted("doc:a#viewer@user:ana", `doc:c#viewer@user:dan[weekday:{"d":1}]`)},
		{"create after delete", ups(store.OpCreate, "doc:a#viewer@user:bob"), nil,
			sorted("doc:a#viewer@user:ana", "doc:a#viewer@user:bob", `doc:c#viewer@user:dan[weekday:{"d":1}]`)},
		{"mixed ops in one batch", append(ups(store.OpDelete, "doc:a#viewer@user:ana"), ups(store.OpCreate, "doc:e#owner@group:g#member")...), nil,
			sorted("doc:a#viewer@user:bob", `doc:c#viewer@user:dan[weekday:{"d":1}]`, "doc:e#owner@group:g#member")},
	}
	rev := tuple.Revision(1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rev++
			err := st.Write(rev, t0, tc.updates, nil)
			if !errors.Is(err, tc.wantErr) || (err != nil && tc.wantErr == nil) {
				t.Fatalf("write: err = %v, want %v", err, tc.wantErr)
			}
			if got := st.AppliedRevision(); got != rev {
				t.Fatalf("applied = %d, want %d (a domain failure still consumes the revision)", got, rev)
			}
			if got := all[S](t, st, rev); !equal(got, tc.want) {
				t.Fatalf("state at %d:\n got %q\nwant %q", rev, got, tc.want)
			}
		})
	}
}

func (s suite[S, T]) testBatchValidation(t *testing.T) {
	st := s.open(t, Config{})
	mustWrite[S](t, st, 1, t0, ups(store.OpCreate, "doc:a#viewer@user:ana"))
	big := map[string]any{"k": string(bytes.Repeat([]byte("x"), store.MaxCaveatContextBytes))}
	tests := []struct {
		name    string
		updates []store.Update
		wantErr error
	}{
		{"same relationship twice", append(ups(store.OpTouch, "doc:b#viewer@user:ana"), ups(store.OpDelete, "doc:b#viewer@user:ana")...), store.ErrInvalid},
		{"same key different caveat", ups(store.OpTouch, "doc:b#viewer@user:ana", "doc:b#viewer@user:ana[cav]"), store.ErrInvalid},
		{"caveat context too large", []store.Update{{Op: store.OpTouch, Rel: tuple.Relationship{
			Resource: tuple.ObjectRef{Type: "doc", ID: "b"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "ana"},
			Caveat: &tuple.Caveat{Name: "cav", Context: big}}}}, store.ErrTooLarge},
		{"invalid resource id", []store.Update{{Op: store.OpTouch, Rel: tuple.Relationship{
			Resource: tuple.ObjectRef{Type: "doc", ID: "a b"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "ana"}}}}, store.ErrInvalid},
		{"invalid relation", []store.Update{{Op: store.OpTouch, Rel: tuple.Relationship{
			Resource: tuple.ObjectRef{Type: "doc", ID: "b"}, Relation: "V", Subject: tuple.SubjectRef{Type: "user", ID: "ana"}}}}, store.ErrInvalid},
		{"invalid delete key", []store.Update{{Op: store.OpDelete, Rel: tuple.Relationship{
			Resource: tuple.ObjectRef{Type: "", ID: "b"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "ana"}}}}, store.ErrInvalid},
		{"unknown op", []store.Update{{Op: 99, Rel: rel("doc:b#viewer@user:ana")}}, store.ErrInvalid},
		{"valid batch", ups(store.OpTouch, "doc:b#viewer@user:a1", "doc:b#viewer@user:a2", "doc:b#viewer@user:a3", "doc:b#viewer@user:a4"), nil},
	}
	rev := tuple.Revision(1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rev++
			before := all[S](t, st, rev-1)
			err := st.Write(rev, t0, tc.updates, nil)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("write: %v", err)
				}
				if got := all[S](t, st, rev); len(got) != len(before)+len(tc.updates) {
					t.Fatalf("state %q after adding %d to %q", got, len(tc.updates), before)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err.Error() == tc.wantErr.Error() {
				t.Errorf("error %q carries no detail", err)
			}
			if got := st.AppliedRevision(); got != rev {
				t.Fatalf("applied = %d, want %d", got, rev)
			}
			if got := all[S](t, st, rev); !equal(got, before) {
				t.Fatalf("failed write changed state: %q → %q", before, got)
			}
		})
	}
}

func (s suite[S, T]) testStaleWrite(t *testing.T) {
	st := s.open(t, Config{})
	if err := st.Write(0, t0, ups(store.OpCreate, "doc:a#viewer@user:ana"), nil); !errors.Is(err, store.ErrStaleWrite) {
		t.Fatalf("write at 0: err = %v, want ErrStaleWrite", err)
	}
	mustWrite[S](t, st, 5, t0, ups(store.OpCreate, "doc:a#viewer@user:ana"))
	for _, rev := range []tuple.Revision{5, 4, 1} {
		if err := st.Write(rev, t0, ups(store.OpCreate, "doc:b#viewer@user:ana"), nil); !errors.Is(err, store.ErrStaleWrite) {
			t.Errorf("write at %d: err = %v, want ErrStaleWrite", rev, err)
		}
		if _, _, err := st.DeleteByFilter(rev, t0, tuple.Filter{ResourceType: "doc"}, 0, false, nil); !errors.Is(err, store.ErrStaleWrite) {
			t.Errorf("delete at %d: err = %v, want ErrStaleWrite", rev, err)
		}
		if err := st.WriteSchema(rev, t0, "definition user {}"); !errors.Is(err, store.ErrStaleWrite) {
			t.Errorf("schema at %d: err = %v, want ErrStaleWrite", rev, err)
		}
		if err := st.Import(rev, t0, []tuple.Relationship{rel("doc:c#viewer@user:ana")}); !errors.Is(err, store.ErrStaleWrite) {
			t.Errorf("import at %d: err = %v, want ErrStaleWrite", rev, err)
		}
	}
	if got := st.AppliedRevision(); got != 5 {
		t.Fatalf("applied = %d after stale writes, want 5", got)
	}
	if got, want := all[S](t, st, 5), sorted("doc:a#viewer@user:ana"); !equal(got, want) {
		t.Fatalf("state %q, want %q", got, want)
	}
	mustWrite[S](t, st, 100, t0, ups(store.OpCreate, "doc:b#viewer@user:ana")) // gaps are fine
}

func (s suite[S, T]) testSnapshotIsolation(t *testing.T) {
	st := s.open(t, Config{})
	mustWrite[S](t, st, 1, t0, ups(store.OpCreate, "doc:a#viewer@user:ana", "doc:a#viewer@user:bob"))
	sn1, err := st.Snapshot(1)
	if err != nil {
		t.Fatal(err)
	}
	if sn1.Revision() != 1 {
		t.Fatalf("snapshot revision = %d, want 1", sn1.Revision())
	}
	if _, err := st.Snapshot(2); !errors.Is(err, store.ErrFutureRevision) {
		t.Fatalf("snapshot at 2: err = %v, want ErrFutureRevision", err)
	}
	// A query open on revision 1 while revision 2 commits keeps seeing revision 1.
	next, stop := iter.Pull2(sn1.Query(context.Background(), tuple.Filter{ResourceType: "doc"}))
	defer stop()
	first, err, ok := next()
	if !ok || err != nil {
		t.Fatalf("first result: %v %v", ok, err)
	}
	mustWrite[S](t, st, 2, t0, append(ups(store.OpDelete, "doc:a#viewer@user:bob"), ups(store.OpCreate, "doc:a#viewer@user:cat")...))
	got := []string{first.String()}
	for {
		r, err, ok := next()
		if !ok {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.String())
	}
	if want := sorted("doc:a#viewer@user:ana", "doc:a#viewer@user:bob"); !equal(got, want) {
		t.Fatalf("in-flight query at 1 saw %q, want %q", got, want)
	}
	if got, want := all[S](t, st, 1), sorted("doc:a#viewer@user:ana", "doc:a#viewer@user:bob"); !equal(got, want) {
		t.Fatalf("at 1: %q, want %q", got, want)
	}
	if got, want := all[S](t, st, 2), sorted("doc:a#viewer@user:ana", "doc:a#viewer@user:cat"); !equal(got, want) {
		t.Fatalf("at 2: %q, want %q", got, want)
	}
	if got := all[S](t, st, 0); len(got) != 0 {
		t.Fatalf("at 0: %q, want nothing", got)
	}
}

func (s suite[S, T]) testPreconditions(t *testing.T) {
	st := s.open(t, Config{})
	mustWrite[S](t, st, 1, t0, ups(store.OpCreate, "doc:a#viewer@user:ana", "doc:b#owner@user:bob"))
	match := func(f tuple.Filter) store.Precondition { return store.Precondition{MustMatch: true, Filter: f} }
	notMatch := func(f tuple.Filter) store.Precondition { return store.Precondition{Filter: f} }
	anaViewer := tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"a"}, Relation: "viewer", Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{"ana"}}}
	tests := []struct {
		name     string
		preconds []store.Precondition
		updates  []store.Update
		wantErr  error
	}{
		{"must match, matches", []store.Precondition{match(anaViewer)}, ups(store.OpTouch, "doc:c#viewer@user:x1"), nil},
		{"must match, nothing", []store.Precondition{match(tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"zz"}})}, ups(store.OpTouch, "doc:c#viewer@user:x2"), store.ErrPreconditionFailed},
		{"must not match, nothing", []store.Precondition{notMatch(tuple.Filter{ResourceType: "folder"})}, ups(store.OpTouch, "doc:c#viewer@user:x3"), nil},
		{"must not match, matches", []store.Precondition{notMatch(tuple.Filter{Relation: "owner"})}, ups(store.OpTouch, "doc:c#viewer@user:x4"), store.ErrPreconditionFailed},
		{"all must hold", []store.Precondition{match(anaViewer), notMatch(anaViewer)}, ups(store.OpTouch, "doc:c#viewer@user:x5"), store.ErrPreconditionFailed},
		// Preconditions see the state before the batch: deleting what a
		// MUST_MATCH names in the same batch is fine.
		{"evaluated before the batch (match)", []store.Precondition{match(tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"b"}})}, ups(store.OpDelete, "doc:b#owner@user:bob"), nil},
		// ...and creating what a MUST_NOT_MATCH names is fine too.
		{"evaluated before the batch (not match)", []store.Precondition{notMatch(tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"d"}})}, ups(store.OpCreate, "doc:d#viewer@user:ana"), nil},
		{"invalid precondition filter", []store.Precondition{match(tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"a"}, ResourceIDPrefix: "a"})}, ups(store.OpTouch, "doc:c#viewer@user:x6"), store.ErrInvalid},
	}
	rev := tuple.Revision(1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rev++
			before := all[S](t, st, rev-1)
			err := st.Write(rev, t0, tc.updates, tc.preconds)
			if tc.wantErr == nil && err != nil || !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			after := all[S](t, st, rev)
			if (tc.wantErr != nil) != equal(before, after) {
				t.Fatalf("state %q → %q with err %v", before, after, err)
			}
		})
	}
	// DeleteByFilter honours preconditions too.
	rev++
	n, _, err := st.DeleteByFilter(rev, t0, tuple.Filter{ResourceType: "doc"}, 0, false, []store.Precondition{match(tuple.Filter{ResourceType: "nothing"})})
	if !errors.Is(err, store.ErrPreconditionFailed) || n != 0 {
		t.Fatalf("delete with failing precondition: n=%d err=%v", n, err)
	}
	if len(all[S](t, st, rev)) == 0 {
		t.Fatal("delete with a failing precondition deleted")
	}
}

func (s suite[S, T]) testDeleteByFilter(t *testing.T) {
	st := s.open(t, Config{})
	var rels []string
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		rels = append(rels, "doc:"+id+"#viewer@user:ana", "doc:"+id+"#owner@user:bob")
	}
	rels = append(rels, "folder:f#viewer@user:ana")
	mustWrite[S](t, st, 1, t0, ups(store.OpCreate, rels...))
	viewers := tuple.Filter{ResourceType: "doc", Relation: "viewer"}
	tests := []struct {
		name        string
		f           tuple.Filter
		limit       int
		partial     bool
		wantN       int
		wantPartial bool
		wantErr     error
		wantLeft    int // relationships left in the store
	}{
		{"over limit, not partial", viewers, 3, false, 0, false, store.ErrTooLarge, 11},
		{"over limit, partial", viewers, 3, true, 3, true, nil, 8},
		{"exactly the limit", viewers, 2, false, 2, false, nil, 6},
		{"no match", tuple.Filter{ResourceType: "nothing"}, 0, false, 0, false, nil, 6},
		{"empty filter rejected", tuple.Filter{}, 0, false, 0, false, store.ErrInvalid, 6},
		{"negative limit rejected", viewers, -1, false, 0, false, store.ErrInvalid, 6},
		{"by subject, no limit", tuple.Filter{Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{"ana"}}}, 0, false, 1, false, nil, 5},
		{"everything of a type", tuple.Filter{ResourceType: "doc"}, 0, false, 5, false, nil, 0},
	}
	rev := tuple.Revision(1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rev++
			n, partial, err := st.DeleteByFilter(rev, t0, tc.f, tc.limit, tc.partial, nil)
			if tc.wantErr == nil && err != nil || !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if n != tc.wantN || partial != tc.wantPartial {
				t.Fatalf("deleted %d partial %v, want %d %v", n, partial, tc.wantN, tc.wantPartial)
			}
			if st.AppliedRevision() != rev {
				t.Fatalf("applied = %d, want %d", st.AppliedRevision(), rev)
			}
			left := all[S](t, st, rev)
			if len(left) != tc.wantLeft {
				t.Fatalf("%d left (%q), want %d", len(left), left, tc.wantLeft)
			}
			for _, r := range left {
				if tc.wantErr == nil && !tc.wantPartial && tc.f.Matches(rel(r)) {
					t.Fatalf("%s matches the filter but was not deleted", r)
				}
			}
		})
	}
}

// queryData has neighbours that a careless key encoding would confuse:
// doc:a, doc:a/x, doc:ab; subjects with and without relations; wildcards.
var queryData = []string{
	"doc:a#viewer@user:ana",
	"doc:a#viewer@user:bob",
	"doc:a#viewer@group:eng#member",
	"doc:a#viewer@user:*",
	"doc:a#editor@user:ana",
	"doc:a/x#viewer@user:ana",
	"doc:ab#viewer@user:cat",
	"doc:b#viewer@group:eng#admin",
	"doc:b#viewer@group:eng",
	"folder:a#viewer@user:ana",
	"group:eng#member@user:ana",
	"group:eng#member@user:anabel",
}

func (s suite[S, T]) testQueryFilters(t *testing.T) {
	st := s.open(t, Config{})
	mustWrite[S](t, st, 1, t0, ups(store.OpCreate, queryData...))
	sf := func(typ string, ids []string, rel *string) *tuple.SubjectFilter {
		return &tuple.SubjectFilter{Type: typ, IDs: ids, Relation: rel}
	}
	tests := []struct {
		name string
		f    tuple.Filter
		want []string // in index order
	}{
		{"one object", tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"a"}},
			[]string{"doc:a#editor@user:ana", "doc:a#viewer@group:eng#member", "doc:a#viewer@user:*", "doc:a#viewer@user:ana", "doc:a#viewer@user:bob"}},
		{"one object relation", tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"a"}, Relation: "editor"},
			[]string{"doc:a#editor@user:ana"}},
		{"several ids, sorted, deduplicated", tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"ab", "a/x", "ab", "zz"}, Relation: "viewer"},
			[]string{"doc:a/x#viewer@user:ana", "doc:ab#viewer@user:cat"}},
		{"id prefix", tuple.Filter{ResourceType: "doc", ResourceIDPrefix: "a"},
			[]string{"doc:a#editor@user:ana", "doc:a#viewer@group:eng#member", "doc:a#viewer@user:*", "doc:a#viewer@user:ana", "doc:a#viewer@user:bob", "doc:a/x#viewer@user:ana", "doc:ab#viewer@user:cat"}},
		{"id prefix a/", tuple.Filter{ResourceType: "doc", ResourceIDPrefix: "a/"},
			[]string{"doc:a/x#viewer@user:ana"}},
		{"id prefix without type", tuple.Filter{ResourceIDPrefix: "a/"},
			[]string{"doc:a/x#viewer@user:ana"}},
		{"exact tuple", tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"a"}, Relation: "viewer", Subject: sf("user", []string{"ana"}, ptr(""))},
			[]string{"doc:a#viewer@user:ana"}},
		{"subject relation nil matches any", tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"b"}, Subject: sf("group", []string{"eng"}, nil)},
			[]string{"doc:b#viewer@group:eng", "doc:b#viewer@group:eng#admin"}},
		{"subject relation empty matches none", tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"b"}, Subject: sf("group", []string{"eng"}, ptr(""))},
			[]string{"doc:b#viewer@group:eng"}},
		{"subject relation set", tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"b"}, Subject: sf("group", []string{"eng"}, ptr("admin"))},
			[]string{"doc:b#viewer@group:eng#admin"}},
		{"by subject (reverse index)", tuple.Filter{Subject: sf("user", []string{"ana"}, nil)},
			// subject index order: resource type, relation, resource id
			[]string{"doc:a#editor@user:ana", "doc:a#viewer@user:ana", "doc:a/x#viewer@user:ana", "folder:a#viewer@user:ana", "group:eng#member@user:ana"}},
		{"by subject, not a prefix of anabel", tuple.Filter{ResourceType: "group", Subject: sf("user", []string{"ana"}, ptr(""))},
			[]string{"group:eng#member@user:ana"}},
		{"by subject and relation", tuple.Filter{ResourceType: "doc", Relation: "viewer", Subject: sf("user", []string{"ana"}, ptr(""))},
			[]string{"doc:a#viewer@user:ana", "doc:a/x#viewer@user:ana"}},
		{"by subject with resource prefix", tuple.Filter{ResourceType: "doc", ResourceIDPrefix: "a/", Subject: sf("user", []string{"ana"}, nil)},
			[]string{"doc:a/x#viewer@user:ana"}},
		{"several subjects", tuple.Filter{ResourceType: "doc", Subject: sf("user", []string{"cat", "bob"}, nil)},
			[]string{"doc:a#viewer@user:bob", "doc:ab#viewer@user:cat"}},
		{"subject set by relation", tuple.Filter{Subject: sf("group", []string{"eng"}, ptr("member"))},
			[]string{"doc:a#viewer@group:eng#member"}},
		{"wildcard subject", tuple.Filter{ResourceType: "doc", Subject: sf("user", []string{"*"}, nil)},
			[]string{"doc:a#viewer@user:*"}},
		{"subject type only", tuple.Filter{ResourceType: "doc", Subject: sf("group", nil, nil)},
			[]string{"doc:a#viewer@group:eng#member", "doc:b#viewer@group:eng", "doc:b#viewer@group:eng#admin"}},
		{"resource type scan", tuple.Filter{ResourceType: "folder"},
			[]string{"folder:a#viewer@user:ana"}},
		{"relation only", tuple.Filter{Relation: "member"},
			[]string{"group:eng#member@user:ana", "group:eng#member@user:anabel"}},
		{"unknown type", tuple.Filter{ResourceType: "nope"}, nil},
		{"ids of another type", tuple.Filter{ResourceType: "folder", ResourceIDs: []string{"a/x"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := queryAt[S](t, st, 1, tc.f)
			want := make([]string, len(tc.want))
			for i, w := range tc.want {
				want[i] = rel(w).String()
			}
			if !equal(got, want) {
				t.Fatalf("query %+v:\n got %q\nwant %q", tc.f, got, want)
			}
		})
	}
	sn, err := st.Snapshot(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := collect(t, sn.Query(context.Background(), tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"a"}, ResourceIDPrefix: "a"})); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("ids and prefix together: err = %v, want ErrInvalid", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := collect(t, sn.Query(ctx, tuple.Filter{})); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled query: err = %v, want context.Canceled", err)
	}
	// Breaking out of a query early is fine.
	for range sn.Query(context.Background(), tuple.Filter{}) {
		break
	}
}

func (s suite[S, T]) testClosed(t *testing.T) {
	st := s.open(t, Config{})
	mustWrite[S](t, st, 1, t0, ups(store.OpCreate, "doc:a#viewer@user:ana"))
	sn, err := st.Snapshot(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	checks := map[string]error{
		"write":  st.Write(2, t0, ups(store.OpCreate, "doc:b#viewer@user:ana"), nil),
		"schema": st.WriteSchema(2, t0, "x"),
		"import": st.Import(2, t0, nil),
		"gc":     st.RunGC(),
	}
	_, _, checks["delete"] = st.DeleteByFilter(2, t0, tuple.Filter{ResourceType: "doc"}, 0, false, nil)
	_, _, checks["read schema"] = st.ReadSchema(1)
	_, checks["snapshot"] = st.Snapshot(1)
	_, checks["query"] = collect(t, sn.Query(context.Background(), tuple.Filter{}))
	for _, err := range st.Changes(context.Background(), 0) {
		checks["changes"] = err
		break
	}
	_, checks["write snapshot"] = st.WriteSnapshot(&bytes.Buffer{})
	checks["restore"] = st.RestoreSnapshot(&bytes.Buffer{})
	for name, err := range checks {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}
