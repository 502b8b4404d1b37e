package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/tuple"
)

// TestWriteManyEqualsWrites applies the same random requests (creates,
// touches, deletes, expirations, preconditions, some failing) to one store
// with Write and to another with WriteMany in random chunks, and compares
// every result, the state at every revision through both indexes, and the
// change feed.
func TestWriteManyEqualsWrites(t *testing.T) {
	for _, inMemory := range []bool{true, false} {
		t.Run(fmt.Sprintf("inMemory=%v", inMemory), func(t *testing.T) {
			clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
			open := func() *Store {
				s, err := Open(Options{Dir: t.TempDir(), InMemory: inMemory, GCInterval: -1, Clock: clock.now, Logger: quiet,
					MemTableSize: 4 << 20, BlockCacheSize: 1 << 20})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			one, many := open(), open()
			rng := rand.New(rand.NewPCG(5, 6))
			relOf := func() tuple.Relationship {
				return tuple.Relationship{Resource: tuple.ObjectRef{Type: []string{"doc", "folder"}[rng.IntN(2)], ID: fmt.Sprintf("d%d", rng.IntN(8))}, Relation: "viewer",
					Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%d", rng.IntN(4))}}
			}
			var reqs []WriteRequest
			for rev := tuple.Revision(1); rev <= 300; rev++ {
				now := clock.t.Add(time.Duration(rev) * time.Second)
				r := WriteRequest{Rev: rev, Now: now}
				n, distinct := 1+rng.IntN(4), map[tuple.Key]bool{}
				if rng.IntN(5) == 0 {
					// Large enough to commit in a transaction of its own
					// (more than groupEntries staged entries).
					n = groupEntries/2 + 1 + rng.IntN(4)
				}
				for range n {
					u := Update{Op: Op(1 + rng.IntN(3)), Rel: relOf()}
					for n > 4 && distinct[u.Rel.Key()] {
						u.Rel = relOf()
					}
					distinct[u.Rel.Key()] = true
					if n > 4 && u.Op == OpCreate {
						u.Op = OpTouch // so that most large requests succeed
					}
					if u.Op != OpDelete && rng.IntN(4) == 0 {
						u.Rel.Expiration = now.Add(time.Duration(rng.IntN(6)-1) * time.Second)
					}
					r.Updates = append(r.Updates, u) // duplicates make ErrInvalid requests too
				}
				if rng.IntN(4) == 0 {
					// Every shape the overlay's precondition index tells apart:
					// one object, several, a type (with an id prefix), no type.
					id := func() string { return fmt.Sprintf("d%d", rng.IntN(8)) }
					subject := &tuple.SubjectFilter{Type: "user", IDs: []string{fmt.Sprintf("u%d", rng.IntN(4))}}
					f := []tuple.Filter{
						{ResourceType: "doc", ResourceIDs: []string{id()}, Subject: subject},
						{ResourceType: "folder", ResourceIDs: []string{id(), id()}, Relation: "viewer"},
						{ResourceType: "doc", Subject: subject},
						{ResourceType: "folder", ResourceIDPrefix: id()},
						{Subject: subject},
					}[rng.IntN(5)]
					r.Preconds = []Precondition{{MustMatch: rng.IntN(2) == 0, Filter: f}}
				}
				reqs = append(reqs, r)
			}
			var want []error
			for _, r := range reqs {
				want = append(want, one.Write(r.Rev, r.Now, r.Updates, r.Preconds))
			}
			var got []error
			for rest := reqs; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(40))
				res, err := many.WriteMany(rest[:n])
				if err != nil {
					t.Fatalf("WriteMany at %d: %v", rest[0].Rev, err)
				}
				got = append(got, res...)
				rest = rest[n:]
			}
			domains := []error{ErrAlreadyExists, ErrPreconditionFailed, ErrInvalid, ErrTooLarge}
			class := func(err error) string {
				for _, d := range domains {
					if errors.Is(err, d) {
						return d.Error()
					}
				}
				if err != nil {
					return "other: " + err.Error()
				}
				return "ok"
			}
			failed := 0
			for i := range reqs {
				if class(got[i]) != class(want[i]) {
					t.Fatalf("revision %d: WriteMany %v, Write %v", reqs[i].Rev, got[i], want[i])
				}
				if want[i] != nil {
					failed++
				}
			}
			if failed == 0 || failed == len(reqs) {
				t.Fatalf("%d of %d requests failed: the test needs both kinds", failed, len(reqs))
			}
			largeOK := 0
			for i, r := range reqs {
				if len(r.Updates) > 4 && want[i] == nil {
					largeOK++
				}
			}
			if largeOK < 10 {
				t.Fatalf("%d large requests succeeded: the test needs writes committed on their own", largeOK)
			}
			if one.AppliedRevision() != many.AppliedRevision() {
				t.Fatalf("stats differ: %+v vs %+v", one.Stats(), many.Stats())
			}
			read := func(s *Store, rev tuple.Revision, f tuple.Filter) []string {
				sn, err := s.Snapshot(rev)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for r, err := range sn.Query(context.Background(), f) {
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, r.String())
				}
				slices.Sort(out)
				return out
			}
			for rev := tuple.Revision(0); rev <= 300; rev++ {
				for _, f := range []tuple.Filter{{}, {Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{"u0", "u1", "u2", "u3"}}}} {
					if a, b := read(one, rev, f), read(many, rev, f); !slices.Equal(a, b) {
						t.Fatalf("state at %d differs:\nWrite     %q\nWriteMany %q", rev, a, b)
					}
				}
			}
			changes := func(s *Store) string {
				var out []string
				for ch, err := range s.Changes(context.Background(), 0) {
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, fmt.Sprint(ch.Revision))
					for _, u := range ch.Updates {
						out = append(out, u.Op.String()+" "+u.Rel.String())
					}
				}
				return fmt.Sprint(out)
			}
			if a, b := changes(one), changes(many); a != b {
				t.Fatalf("change feeds differ:\nWrite     %s\nWriteMany %s", a, b)
			}
		})
	}
}

// A precondition in a WriteMany run sees the request just before it, for
// every filter shape (the overlay's index is brought up to date first).
func TestWriteManyPreconditionSeesThePreviousRequest(t *testing.T) {
	s, err := Open(Options{InMemory: true, GCInterval: -1, Logger: quiet, MemTableSize: 4 << 20, BlockCacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	subject := &tuple.SubjectFilter{Type: "user", IDs: []string{"ana"}}
	filters := []tuple.Filter{
		{ResourceType: "doc", ResourceIDs: []string{"a"}},
		{ResourceType: "doc", ResourceIDs: []string{"zz", "a"}},
		{ResourceType: "doc", Subject: subject},
		{ResourceType: "doc", ResourceIDPrefix: "a"},
		{Subject: subject},
	}
	var reqs []WriteRequest
	rev := tuple.Revision(0)
	for i, f := range filters {
		// Write doc:a, then require it (found only in the overlay); delete
		// it, then require its absence.
		rel := tuple.MustParse("doc:a#viewer@user:ana")
		other := tuple.MustParse(fmt.Sprintf("folder:f%d#viewer@user:bob", i))
		for _, step := range []struct {
			op   Op
			must bool
		}{{OpTouch, true}, {OpDelete, false}} {
			rev++
			reqs = append(reqs, WriteRequest{Rev: rev, Now: now, Updates: []Update{{Op: step.op, Rel: rel}}})
			rev++
			reqs = append(reqs, WriteRequest{Rev: rev, Now: now, Updates: []Update{{Op: OpTouch, Rel: other}},
				Preconds: []Precondition{{MustMatch: step.must, Filter: f}}})
		}
	}
	res, err := s.WriteMany(reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range res {
		if e != nil {
			t.Errorf("request %d (%+v): %v", i, reqs[i].Preconds, e)
		}
	}
}

func TestWriteManyRejectsBadRevisions(t *testing.T) {
	s, err := Open(Options{InMemory: true, GCInterval: -1, Logger: quiet, MemTableSize: 4 << 20, BlockCacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	u := []Update{{Op: OpTouch, Rel: tuple.MustParse("doc:a#viewer@user:ana")}}
	if _, err := s.WriteMany([]WriteRequest{{Rev: 2, Now: now, Updates: u}, {Rev: 2, Now: now, Updates: u}}); !errors.Is(err, ErrStaleWrite) {
		t.Fatalf("repeated revision: %v", err)
	}
	if _, err := s.WriteMany([]WriteRequest{{Rev: 0, Now: now, Updates: u}}); !errors.Is(err, ErrStaleWrite) {
		t.Fatalf("revision 0: %v", err)
	}
	if s.AppliedRevision() != 0 {
		t.Fatalf("applied %d after rejected batches", s.AppliedRevision())
	}
	s.Close()
	if _, err := s.WriteMany([]WriteRequest{{Rev: 1, Now: now, Updates: u}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// A write too large for one storage transaction on this node (badger's
// limit follows the memtable size, a per-node setting) is applied all the
// same, by Write and by WriteMany, and leaves the store in the state a node
// with large memtables reaches: what a write does never depends on node
// configuration, so replicas cannot diverge.
func TestWriteTooLargeForATransactionIsApplied(t *testing.T) {
	open := func(memtable int64) *Store {
		s, err := Open(Options{Dir: t.TempDir(), GCInterval: -1, Logger: quiet, MemTableSize: memtable, BlockCacheSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// 1000 updates with a 4 KiB caveat context each: the API's default
	// limits, both at their maximum.
	ctx := map[string]any{"k": strings.Repeat("x", 4096-len(`{"k":""}`))}
	touches := func(prefix string, n int, caveat bool) []Update {
		ups := make([]Update, n)
		for i := range ups {
			ups[i] = Update{Op: OpTouch, Rel: tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("%s%d", prefix, i)},
				Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "u"}}}
			if caveat {
				ups[i].Rel.Caveat = &tuple.Caveat{Name: "cav", Context: ctx}
			}
		}
		return ups
	}
	if n, err := CaveatContextSize(&tuple.Caveat{Name: "cav", Context: ctx}); err != nil || n != 4096 {
		t.Fatalf("caveat context is %d bytes (%v), want 4096", n, err)
	}
	reqs := []WriteRequest{
		{Rev: 1, Now: now, Updates: touches("a", 10, false)},
		{Rev: 2, Now: now, Updates: touches("big", 1000, true)},
		{Rev: 3, Now: now, Updates: touches("c", 10, false)},
		{Rev: 4, Now: now, Updates: touches("many", 5000, false)},
		{Rev: 5, Now: now, Updates: touches("d", 10, false)},
	}
	small := open(4 << 20)
	var staged stagingSink
	b := &batch{out: &staged, rev: 2}
	for _, u := range reqs[1].Updates {
		p, err := small.prepare(&u.Rel, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.put(p.rkey, p.val, p.exp); err != nil {
			t.Fatal(err)
		}
	}
	if small.fitsGroup(staged.entries) || int64(len(staged.entries)) < small.db.MaxBatchCount() && int64(1000*2*4096) < small.db.MaxBatchSize() {
		t.Fatalf("the test needs a write too large for one transaction (limits: %d entries, %d bytes)", small.db.MaxBatchCount(), small.db.MaxBatchSize())
	}

	large := open(64 << 20)
	for _, r := range reqs {
		if err := large.Write(r.Rev, r.Now, r.Updates, nil); err != nil {
			t.Fatalf("large memtables: Write at %d: %v", r.Rev, err)
		}
	}
	for _, r := range reqs {
		if err := small.Write(r.Rev, r.Now, r.Updates, nil); err != nil {
			t.Fatalf("small memtables: Write at %d: %v", r.Rev, err)
		}
	}
	many := open(4 << 20)
	res, err := many.WriteMany(reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range res {
		if err != nil {
			t.Fatalf("small memtables: WriteMany request %d: %v", i, err)
		}
	}
	want := snapshotBytes(t, large)
	for name, s := range map[string]*Store{"Write": small, "WriteMany": many} {
		if s.AppliedRevision() != 5 || countAt(t, s, 5) != 6030 {
			t.Fatalf("%s: applied revision %d with %d relationships, want 5 and 6030", name, s.AppliedRevision(), countAt(t, s, 5))
		}
		if got := snapshotBytes(t, s); !bytes.Equal(got, want) {
			t.Fatalf("%s on small memtables: snapshot differs from the large-memtable store's (%d vs %d bytes)", name, len(got), len(want))
		}
		var changes int
		for c, err := range s.Changes(context.Background(), 0) {
			if err != nil {
				t.Fatal(err)
			}
			changes += len(c.Updates)
		}
		if changes != 6030 {
			t.Fatalf("%s: change feed has %d updates, want 6030", name, changes)
		}
	}
}

// snapshotBytes is the store's snapshot stream, everything a replica holds.
func snapshotBytes(t *testing.T, s *Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPiecewiseWriteReplay: a write committed in pieces (commitStaged's
// WriteBatch, then the meta keys) that stops after the data, as a crash
// would leave it, is invisible at the applied revision, and replaying the
// same write at the same revision ends in the state of a store that never
// stopped: the leftovers sit at the version the replay writes again.
func TestPiecewiseWriteReplay(t *testing.T) {
	dir := t.TempDir()
	open := func(d string) *Store {
		s, err := Open(Options{Dir: d, GCInterval: -1, Logger: quiet, MemTableSize: 4 << 20, BlockCacheSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	base := []Update{{Op: OpTouch, Rel: tuple.MustParse("doc:keep#viewer@user:a")}, {Op: OpTouch, Rel: tuple.MustParse("doc:gone#viewer@user:a")}}
	big := []Update{{Op: OpDelete, Rel: tuple.MustParse("doc:gone#viewer@user:a")}}
	ctx := map[string]any{"k": strings.Repeat("x", 4000)}
	for i := range 1500 {
		r := tuple.MustParse(fmt.Sprintf("doc:b%d#viewer@user:a", i))
		r.Caveat = &tuple.Caveat{Name: "cav", Context: ctx}
		big = append(big, Update{Op: OpCreate, Rel: r})
	}
	s := open(dir)
	if err := s.Write(1, now, base, nil); err != nil {
		t.Fatal(err)
	}
	// The first step of commitStaged for revision 2, and then the "crash".
	preps, err := s.prepareUpdates(now, big)
	if err != nil {
		t.Fatal(err)
	}
	var staged stagingSink
	b := &batch{out: &staged, rev: 2}
	txn := s.db.NewTransactionAt(1, false)
	if err := b.stage(big, preps, now, func(rkey []byte) (bool, bool, error) { return lookup(txn, rkey, now) }); err != nil {
		t.Fatal(err)
	}
	txn.Discard()
	if err := b.flushChunk(); err != nil {
		t.Fatal(err)
	}
	if err := s.writeBatchAt(2, staged.entries); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(dir)
	defer s.Close()
	if s.AppliedRevision() != 1 || countAt(t, s, 1) != 2 {
		t.Fatalf("after the crash: applied %d with %d relationships; want 1 and 2 (the leftovers invisible)", s.AppliedRevision(), countAt(t, s, 1))
	}
	// Replay: the CREATEs do not see the leftovers, the write is applied.
	if err := s.Write(2, now, big, nil); err != nil {
		t.Fatalf("replayed write: %v", err)
	}
	clean := open(t.TempDir())
	defer clean.Close()
	if err := clean.Write(1, now, base, nil); err != nil {
		t.Fatal(err)
	}
	if err := clean.Write(2, now, big, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := snapshotBytes(t, s), snapshotBytes(t, clean); !bytes.Equal(got, want) {
		t.Fatalf("replayed store differs from one that never crashed (%d vs %d bytes)", len(got), len(want))
	}
	var n int
	for c, err := range s.Changes(context.Background(), 1) {
		if err != nil {
			t.Fatal(err)
		}
		n += len(c.Updates)
	}
	if n != 1501 {
		t.Fatalf("change feed of the replayed revision holds %d updates, want 1501", n)
	}
}
