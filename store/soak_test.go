package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/ambit-authz/ambit/tuple"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// soakDuration is 3s unless AMBIT_SOAK says otherwise (e.g. AMBIT_SOAK=2m).
func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("AMBIT_SOAK")
	if v == "" {
		if testing.Short() {
			return 500 * time.Millisecond
		}
		return 3 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("AMBIT_SOAK=%q: %v", v, err)
	}
	return d
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// TestSoakDeleteNeverReappears drives random creates, touches and deletes
// (some expiring, some by filter) through a small-table badger so that
// flushes, compactions (db.Flatten) and GC run all the time, and checks
// against a model that every deleted relationship stays deleted at every
// later revision, through both indexes.
func TestSoakDeleteNeverReappears(t *testing.T) {
	dur := soakDuration(t)
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, err := Open(Options{
		Dir:            t.TempDir(),
		GCWindow:       20 * time.Second, // 20 revisions
		GCInterval:     -1,
		Clock:          clock.now,
		Logger:         quiet,
		MemTableSize:   1 << 20,
		BlockCacheSize: 4 << 20,
		tune: func(o *badger.Options) {
			o.BaseTableSize = 64 << 10
			o.BaseLevelSize = 256 << 10
			o.NumLevelZeroTables = 2
			o.NumLevelZeroTablesStall = 4
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const nObjects, nSubjects = 200, 20
	relOf := func(o, u int) tuple.Relationship {
		return tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: fmt.Sprintf("d%d", o)}, Relation: "viewer",
			Subject: tuple.SubjectRef{Type: "user", ID: fmt.Sprintf("u%d", u)}}
	}
	model := map[tuple.Key]tuple.Relationship{}
	history := map[tuple.Revision]map[tuple.Key]tuple.Relationship{} // sampled past states
	visible := func(m map[tuple.Key]tuple.Relationship, now time.Time) []string {
		var out []string
		for _, r := range m {
			if !r.ExpiredAt(now) {
				out = append(out, r.Key().String())
			}
		}
		slices.Sort(out)
		return out
	}
	read := func(rev tuple.Revision, f tuple.Filter) []string {
		t.Helper()
		sn, err := s.Snapshot(rev)
		if err != nil {
			t.Fatalf("snapshot %d: %v", rev, err)
		}
		var out []string
		for r, err := range sn.Query(context.Background(), f) {
			if err != nil {
				t.Fatalf("query at %d: %v", rev, err)
			}
			out = append(out, r.Key().String())
		}
		slices.Sort(out)
		return out
	}
	verify := func(rev tuple.Revision, m map[tuple.Key]tuple.Relationship, what string) {
		t.Helper()
		want := visible(m, clock.now())
		if got := read(rev, tuple.Filter{}); !slices.Equal(got, want) {
			t.Fatalf("%s: state at %d differs from the model:\n%s", what, rev, diff(got, want))
		}
		// The reverse index agrees, subject by subject.
		var bySubject []string
		for u := range nSubjects {
			bySubject = append(bySubject, read(rev, tuple.Filter{Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{fmt.Sprintf("u%d", u)}}})...)
		}
		slices.Sort(bySubject)
		if !slices.Equal(bySubject, want) {
			t.Fatalf("%s: subject index at %d differs from the model:\n%s", what, rev, diff(bySubject, want))
		}
	}

	deadline := time.Now().Add(dur)
	rev := tuple.Revision(0)
	flattens, gcs := 0, 0
	for time.Now().Before(deadline) {
		rev++
		clock.t = clock.t.Add(time.Second)
		if rng.IntN(10) == 0 {
			// Delete one object's relationships by filter.
			id := fmt.Sprintf("d%d", rng.IntN(nObjects))
			f := tuple.Filter{ResourceType: "doc", ResourceIDs: []string{id}}
			if _, _, err := s.DeleteByFilter(rev, clock.now(), f, 0, false, nil); err != nil {
				t.Fatalf("delete by filter at %d: %v", rev, err)
			}
			for k, r := range model {
				if f.Matches(r) && !r.ExpiredAt(clock.now()) {
					delete(model, k)
				}
			}
		} else {
			n := 1 + rng.IntN(100)
			seen := map[tuple.Key]bool{}
			var updates []Update
			next := maps.Clone(model)
			for range n {
				r := relOf(rng.IntN(nObjects), rng.IntN(nSubjects))
				if seen[r.Key()] {
					continue
				}
				seen[r.Key()] = true
				switch rng.IntN(3) {
				case 0:
					updates = append(updates, Update{Op: OpDelete, Rel: r})
					delete(next, r.Key())
				default:
					if rng.IntN(5) == 0 {
						r.Expiration = clock.now().Add(time.Duration(rng.IntN(30)-5) * time.Second)
					}
					updates = append(updates, Update{Op: OpTouch, Rel: r})
					next[r.Key()] = r
				}
			}
			if err := s.Write(rev, clock.now(), updates, nil); err != nil {
				t.Fatalf("write at %d: %v", rev, err)
			}
			model = next
		}
		if rev%7 == 0 {
			history[rev] = maps.Clone(model)
		}
		if rev%25 == 0 {
			if err := s.RunGC(); err != nil {
				t.Fatalf("GC at %d: %v", rev, err)
			}
			gcs++
		}
		if rev%40 == 0 {
			if err := s.db.Flatten(1); err != nil {
				t.Fatalf("flatten at %d: %v", rev, err)
			}
			flattens++
			verify(rev, model, "after flatten")
			// Past states inside the window read back unchanged.
			horizon := tuple.Revision(s.horizon.Load())
			for hr, m := range history {
				if hr < horizon {
					delete(history, hr)
					continue
				}
				verify(hr, m, "history")
			}
		}
	}
	verify(rev, model, "final")
	t.Logf("%d revisions, %d flattens, %d GC passes, %d relationships live", rev, flattens, gcs, len(model))
}

func diff(got, want []string) string {
	g, w := map[string]bool{}, map[string]bool{}
	for _, x := range got {
		g[x] = true
	}
	for _, x := range want {
		w[x] = true
	}
	var out string
	for _, x := range got {
		if !w[x] {
			out += "  unexpected (reappeared?) " + x + "\n"
		}
	}
	for _, x := range want {
		if !g[x] {
			out += "  missing " + x + "\n"
		}
	}
	return out
}
