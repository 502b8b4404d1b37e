package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
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
					MemTableSize: 4 << 20, BlockCacheSize: 1 << 20, MaxUpdatesPerWrite: 20})
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

// A request too large for one storage transaction fails alone with
// ErrTooLarge, as Write fails it; the requests around it in the same call
// are applied.
func TestWriteManyTooLargeForATransaction(t *testing.T) {
	open := func() *Store {
		s, err := Open(Options{Dir: t.TempDir(), GCInterval: -1, Logger: quiet, MemTableSize: 1 << 20,
			BlockCacheSize: 1 << 20, MaxUpdatesPerWrite: 5000})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	touches := func(prefix string, n int) []Update {
		ups := make([]Update, n)
		for i := range ups {
			ups[i] = Update{Op: OpTouch, Rel: tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("%s%d", prefix, i)},
				Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "u"}}}
		}
		return ups
	}
	reqs := []WriteRequest{
		{Rev: 1, Now: now, Updates: touches("a", 10)},
		{Rev: 2, Now: now, Updates: touches("big", 5000)},
		{Rev: 3, Now: now, Updates: touches("c", 10)},
	}
	one := open()
	if err := one.Write(2, now, reqs[1].Updates, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Write of 5000 updates into 1 MiB memtables = %v, want ErrTooLarge (the test needs a transaction that is too big)", err)
	}
	many := open()
	res, err := many.WriteMany(reqs)
	if err != nil {
		t.Fatal(err)
	}
	if res[0] != nil || !errors.Is(res[1], ErrTooLarge) || res[2] != nil {
		t.Fatalf("WriteMany results %v, want [nil ErrTooLarge nil]", res)
	}
	if rev, n := many.AppliedRevision(), countAt(t, many, 3); rev != 3 || n != 20 {
		t.Fatalf("applied revision %d with %d relationships readable, want 3 and 20", rev, n)
	}
}
