package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/tuple"
)

func TestOpenRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no dir", Options{}, "Dir is required"},
		{"negative window", Options{InMemory: true, GCWindow: -time.Second}, "GCWindow"},
		{"negative memtable", Options{InMemory: true, MemTableSize: -1}, "MemTableSize"},
		{"negative cache", Options{InMemory: true, BlockCacheSize: -1}, "BlockCacheSize"},
	}
	for _, tc := range tests {
		s, err := Open(tc.opts)
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not name %q", tc.name, err, tc.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	o, err := Options{InMemory: true}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.GCWindow != 24*time.Hour || o.GCInterval != time.Minute ||
		o.SyncWrites || o.Clock == nil || o.Logger == nil {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestStats(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, err := Open(Options{InMemory: true, GCInterval: -1, GCWindow: time.Minute, Clock: clock.now, Logger: quiet, MemTableSize: 4 << 20, BlockCacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	exp := clock.t.Add(30 * time.Second)
	u := []Update{
		{Op: OpCreate, Rel: tuple.MustParse("doc:a#viewer@user:a")},
		{Op: OpCreate, Rel: tuple.MustParse("doc:a#viewer@user:b")},
		{Op: OpCreate, Rel: tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: "a"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "c"}, Expiration: exp}},
	}
	steps := []struct {
		do    func(rev tuple.Revision) error
		count int64
	}{
		{func(rev tuple.Revision) error { return s.Write(rev, clock.t, u, nil) }, 3},
		{func(rev tuple.Revision) error { return s.Write(rev, clock.t, u[:1], nil) }, 3}, // fails: exists
		{func(rev tuple.Revision) error {
			return s.Write(rev, clock.t, []Update{{Op: OpTouch, Rel: u[0].Rel}}, nil)
		}, 3},
		{func(rev tuple.Revision) error {
			return s.Write(rev, clock.t, []Update{{Op: OpDelete, Rel: u[1].Rel}}, nil)
		}, 2},
		{func(rev tuple.Revision) error {
			return s.Import(rev, clock.t, []tuple.Relationship{tuple.MustParse("doc:b#viewer@user:a"), tuple.MustParse("doc:c#viewer@user:a")})
		}, 4},
	}
	for i, st := range steps {
		rev := tuple.Revision(i + 1)
		if err := st.do(rev); err != nil && !errors.Is(err, ErrAlreadyExists) {
			t.Fatalf("step %d: %v", i, err)
		}
		if got, n := s.Stats(), countAt(t, s, rev); n != st.count || got.AppliedRevision != rev {
			t.Fatalf("step %d: %d relationships, stats %+v; want %d relationships at %d", i, n, got, st.count, rev)
		}
	}
	// GC removes the expired relationship once its expiration is at or
	// before the horizon's leader time, not before.
	for rev := tuple.Revision(6); rev <= 7; rev++ {
		clock.t = clock.t.Add(2 * time.Minute)
		if err := s.Write(rev, clock.t, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.RunGC(); err != nil {
			t.Fatal(err)
		}
		// First pass: horizon 5 (leader time t0, before the expiration):
		// kept. Second pass: horizon 6 (t0+2m, after it): removed.
		if got, want := stored(t, s, u[2].Rel), rev == 6; got != want {
			t.Fatalf("after GC at %d (stats %+v): expired relationship stored = %v, want %v", rev, s.Stats(), got, want)
		}
	}
	if got := s.Stats(); got.GCHorizon != 6 || countAt(t, s, 7) != 3 {
		t.Fatalf("after GC: %+v, %d relationships; want horizon 6 and 3", got, countAt(t, s, 7))
	}
}

// countAt counts the relationships readable at rev.
func countAt(t *testing.T, s *Store, rev tuple.Revision) int64 {
	t.Helper()
	sn, err := s.Snapshot(rev)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(0)
	for _, err := range sn.Query(context.Background(), tuple.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// stored reports whether r's resource key is in the store at its applied
// revision, expired or not.
func stored(t *testing.T, s *Store, r tuple.Relationship) bool {
	t.Helper()
	txn := s.db.NewTransactionAt(s.applied.Load(), false)
	defer txn.Discard()
	present, _, err := lookup(txn, resourceKey(r.Key()), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return present
}

// TestGCExpiryBoundary: GC removes exactly the relationships whose
// expiration is at or before the horizon's leader time, to the nanosecond.
func TestGCExpiryBoundary(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	s, err := Open(Options{InMemory: true, GCInterval: -1, GCWindow: time.Minute, Clock: clock.now, Logger: quiet, MemTableSize: 4 << 20, BlockCacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	exps := map[string]time.Duration{"before": -time.Nanosecond, "at": 0, "after": time.Nanosecond, "later": 500 * time.Millisecond}
	var u []Update
	for id, d := range exps {
		u = append(u, Update{Op: OpCreate, Rel: tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: id}, Relation: "viewer",
			Subject: tuple.SubjectRef{Type: "user", ID: "ana"}, Expiration: t0.Add(d)}})
	}
	if err := s.Write(1, t0, u, nil); err != nil {
		t.Fatal(err)
	}
	// GC only tombstones versions below the horizon, so the horizon must
	// pass revision 1 while keeping leader time t0.
	if err := s.Write(2, t0, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(3, t0.Add(2*time.Minute), nil, nil); err != nil {
		t.Fatal(err)
	}
	clock.t = t0.Add(3 * time.Minute) // cutoff t0+2m: horizon 2, leader time t0
	if err := s.RunGC(); err != nil {
		t.Fatal(err)
	}
	if h := s.Stats().GCHorizon; h != 2 {
		t.Fatalf("horizon %d, want 2", h)
	}
	txn := s.db.NewTransactionAt(uint64(s.AppliedRevision()), false)
	defer txn.Discard()
	for id, d := range exps {
		k := resourceKey(tuple.Key{Resource: tuple.ObjectRef{Type: "doc", ID: id}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "ana"}})
		_, err := txn.Get(k)
		present := err == nil
		if want := d > 0; present != want {
			t.Errorf("expiration t0%+v: present after GC = %v, want %v", d, present, want)
		}
	}
}

// TestImportReportsFirstInvalid: large imports validate in parallel but
// report the lowest-index failure, as a serial pass would.
func TestImportReportsFirstInvalid(t *testing.T) {
	s, err := Open(Options{InMemory: true, GCInterval: -1, Logger: quiet, MemTableSize: 16 << 20, BlockCacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rels := benchRels(20, 1000)
	for _, i := range []int{15000, 5000, 19999} {
		rels[i].Resource.ID = "bad id"
	}
	err = s.Import(1, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), rels)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "relationship 5000:") {
		t.Fatalf("err = %v, want ErrInvalid naming relationship 5000", err)
	}
	if s.AppliedRevision() != 1 || countAt(t, s, 1) != 0 {
		t.Fatalf("after a failed import: %+v, %d relationships", s.Stats(), countAt(t, s, 1))
	}
}

// TestBadgerTableSizes: every level's tables are BaseTableSize, so the
// table builders a compaction runs at once stay small whatever the level
// (at badger's default multiplier of 2 they grow with the store: bench/RESULTS.md).
func TestBadgerTableSizes(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), GCInterval: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := s.db.Opts()
	if o.TableSizeMultiplier != 1 || o.BaseTableSize > 2<<20 {
		t.Errorf("badger tables: base %d bytes, multiplier %d; want at most 2 MiB at every level (multiplier 1)", o.BaseTableSize, o.TableSizeMultiplier)
	}
}
