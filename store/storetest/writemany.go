package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// writeManyRequests is a history in which some requests fail (a CREATE of
// an existing relationship, preconditions either way) and later ones depend
// on what earlier ones in the same batch wrote.
func writeManyRequests() []store.WriteRequest {
	now := func(rev tuple.Revision) time.Time { return t0.Add(time.Duration(rev) * time.Second) }
	docA := tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"a"}}
	reqs := []store.WriteRequest{
		{Updates: ups(store.OpCreate, "doc:a#viewer@user:ana", "doc:b#viewer@group:eng#member")},
		{Updates: ups(store.OpCreate, "doc:a#viewer@user:ana")}, // exists: refused
		{Updates: ups(store.OpTouch, "doc:c#viewer@user:bob"), Preconds: []store.Precondition{{MustMatch: true, Filter: docA}}},
		{Updates: ups(store.OpDelete, "doc:a#viewer@user:ana")},
		{Updates: ups(store.OpTouch, "doc:d#viewer@user:bob"), Preconds: []store.Precondition{{MustMatch: true, Filter: docA}}}, // doc:a is gone: refused
		{Updates: ups(store.OpTouch, "doc:e#viewer@user:cyd"), Preconds: []store.Precondition{{MustMatch: false, Filter: docA}}},
		{Updates: []store.Update{{Op: store.OpTouch, Rel: rel(`doc:f#viewer@user:dee[cav:{"n":1}][expiration:2030-01-01T01:00:00Z]`)}}},
		{}, // no updates: the revision still advances
		{Updates: ups(store.OpTouch, "doc:a#viewer@user:ana", "doc:c#viewer@user:bob")},
	}
	for i := range reqs {
		reqs[i].Rev = tuple.Revision(10 + 2*i) // gaps, as raft's configuration entries leave
		reqs[i].Now = now(reqs[i].Rev)
	}
	return reqs
}

// testWriteMany: WriteMany leaves the same results, state at every
// revision and change feed as the same requests applied one by one with
// Write, whether given in one batch or several.
func (s suite[S, T]) testWriteMany(t *testing.T) {
	reqs := writeManyRequests()
	one := s.open(t, Config{})
	var want []error
	for _, r := range reqs {
		err := one.Write(r.Rev, r.Now, r.Updates, r.Preconds)
		if err != nil && !store.IsRefusal(err) {
			t.Fatalf("Write at %d: %v", r.Rev, err)
		}
		want = append(want, err)
	}
	if want[1] == nil || want[4] == nil || want[0] != nil || want[5] != nil {
		t.Fatalf("the history does not refuse what it should: %v", want)
	}
	wantChanges, err := readChanges[S](t, one, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, split := range []int{len(reqs), 1, 4} {
		t.Run(fmt.Sprintf("batches of %d", split), func(t *testing.T) {
			many := s.open(t, Config{})
			var got []error
			for i := 0; i < len(reqs); i += split {
				res, err := many.WriteMany(reqs[i:min(i+split, len(reqs))])
				if err != nil {
					t.Fatalf("WriteMany from %d: %v", reqs[i].Rev, err)
				}
				got = append(got, res...)
			}
			if len(got) != len(want) {
				t.Fatalf("%d results for %d requests", len(got), len(want))
			}
			for i := range want {
				if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
					t.Errorf("request %d (rev %d): WriteMany %v, Write %v", i, reqs[i].Rev, got[i], want[i])
				}
			}
			if a, b := many.AppliedRevision(), one.AppliedRevision(); a != b {
				t.Fatalf("applied %d, want %d", a, b)
			}
			for rev := reqs[0].Rev; rev <= reqs[len(reqs)-1].Rev; rev++ {
				if a, b := all[S](t, many, rev), all[S](t, one, rev); !equal(a, b) {
					t.Errorf("at %d: WriteMany %v, Write %v", rev, a, b)
				}
			}
			gotChanges, err := readChanges[S](t, many, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gotChanges, wantChanges) {
				t.Errorf("change feed:\nWriteMany %v\nWrite     %v", gotChanges, wantChanges)
			}
		})
	}
}

// testWriteManyBadRevisions: a batch whose revisions do not rise above the
// applied revision is refused whole, and a closed store refuses any.
func (s suite[S, T]) testWriteManyBadRevisions(t *testing.T) {
	st := s.open(t, Config{})
	mustWrite[S](t, st, 5, t0, ups(store.OpTouch, "doc:a#viewer@user:ana"))
	u := ups(store.OpTouch, "doc:b#viewer@user:bob")
	for _, revs := range [][]tuple.Revision{{5}, {3}, {6, 6}, {7, 6}, {0}} {
		var reqs []store.WriteRequest
		for _, r := range revs {
			reqs = append(reqs, store.WriteRequest{Rev: r, Now: t0, Updates: u})
		}
		if _, err := st.WriteMany(reqs); !errors.Is(err, store.ErrStaleWrite) {
			t.Errorf("revisions %v after 5: %v, want ErrStaleWrite", revs, err)
		}
		if got := st.AppliedRevision(); got != 5 {
			t.Fatalf("revisions %v: applied %d, want 5", revs, got)
		}
	}
	if got := all[S](t, st, 5); !equal(got, sorted("doc:a#viewer@user:ana")) {
		t.Fatalf("after refused batches: %v", got)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.WriteMany([]store.WriteRequest{{Rev: 6, Now: t0, Updates: u}}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("WriteMany after Close: %v, want ErrClosed", err)
	}
}

// testSync: Sync succeeds on an open store and keeps what it holds (and,
// for a persistent store, what WriteMany wrote is there after a reopen);
// a closed store refuses it.
func (s suite[S, T]) testSync(t *testing.T) {
	cfg := Config{Dir: t.TempDir()}
	st := s.h.Open(t, cfg)
	if err := st.Sync(); err != nil {
		t.Fatalf("Sync of an empty store: %v", err)
	}
	res, err := st.WriteMany(writeManyRequests()[:1])
	if err != nil || res[0] != nil {
		t.Fatalf("WriteMany: %v, %v", res, err)
	}
	if err := st.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	want := sorted("doc:a#viewer@user:ana", "doc:b#viewer@group:eng#member")
	if got := all[S](t, st, 10); !equal(got, want) {
		t.Fatalf("after Sync: %v", got)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Sync(); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Sync after Close: %v, want ErrClosed", err)
	}
	if !s.h.Persistent {
		return
	}
	st = s.open(t, cfg)
	if got := st.AppliedRevision(); got != 10 {
		t.Fatalf("applied after reopen: %d, want 10", got)
	}
	if got := all[S](t, st, 10); !equal(got, want) {
		t.Fatalf("after reopen: %v", got)
	}
}
