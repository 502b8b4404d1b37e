package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// testQueryModel compares random filters against a model evaluated with
// tuple.Filter.Matches, so every index path agrees with the plain definition.
func (s suite[S, T]) testQueryModel(t *testing.T) {
	st := s.open(t, Config{})
	rng := rand.New(rand.NewPCG(1, 2))
	types := []string{"doc", "folder"}
	ids := []string{"a", "a/b", "ab", "b", "b_1", "c"}
	rels := []string{"viewer", "editor"}
	stypes := []string{"user", "group"}
	sids := []string{"ana", "anabel", "bob", "*"}
	srels := []string{"", "member", "admin"}
	pick := func(l []string) string { return l[rng.IntN(len(l))] }
	model := map[tuple.Key]tuple.Relationship{}
	var updates []store.Update
	for range 400 {
		r := tuple.Relationship{Resource: tuple.ObjectRef{Type: pick(types), ID: pick(ids)}, Relation: pick(rels),
			Subject: tuple.SubjectRef{Type: pick(stypes), ID: pick(sids), Relation: pick(srels)}}
		if r.Subject.ID == "*" {
			r.Subject.Relation = ""
		}
		if _, dup := model[r.Key()]; dup {
			continue
		}
		model[r.Key()] = r
		updates = append(updates, store.Update{Op: store.OpCreate, Rel: r})
	}
	mustWrite[S](t, st, 1, t0, updates)
	subset := func(l []string) []string {
		var out []string
		for _, v := range l {
			if rng.IntN(3) == 0 {
				out = append(out, v)
			}
		}
		return out
	}
	maybe := func(l []string) string {
		if rng.IntN(2) == 0 {
			return ""
		}
		return pick(l)
	}
	sn, err := st.Snapshot(1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		f := tuple.Filter{ResourceType: maybe(types), Relation: maybe(rels)}
		switch rng.IntN(3) {
		case 0:
			f.ResourceIDs = subset(ids)
		case 1:
			f.ResourceIDPrefix = maybe([]string{"a", "a/", "b_", "ab"})
		}
		if rng.IntN(3) > 0 {
			f.Subject = &tuple.SubjectFilter{Type: maybe(stypes), IDs: subset(sids)}
			if rng.IntN(2) == 0 {
				r := pick(srels)
				f.Subject.Relation = &r
			}
		}
		var want []string
		for _, r := range model {
			if f.Matches(r) {
				want = append(want, r.String())
			}
		}
		slices.Sort(want)
		got, err := collect(t, sn.Query(context.Background(), f))
		if err != nil {
			t.Fatalf("query %d %s: %v", i, describe(f), err)
		}
		seen := map[string]bool{}
		for _, g := range got {
			if seen[g] {
				t.Fatalf("query %d %s yielded %s twice", i, describe(f), g)
			}
			seen[g] = true
		}
		slices.Sort(got)
		if !equal(got, want) {
			t.Fatalf("query %d %s:\n got %q\nwant %q", i, describe(f), got, want)
		}
	}
}

func describe(f tuple.Filter) string {
	s := fmt.Sprintf("{type=%q ids=%q prefix=%q rel=%q", f.ResourceType, f.ResourceIDs, f.ResourceIDPrefix, f.Relation)
	if f.Subject != nil {
		s += fmt.Sprintf(" subject={type=%q ids=%q", f.Subject.Type, f.Subject.IDs)
		if f.Subject.Relation != nil {
			s += fmt.Sprintf(" rel=%q", *f.Subject.Relation)
		}
		s += "}"
	}
	return s + "}"
}

func (s suite[S, T]) testCaveatsAndExpiration(t *testing.T) {
	clock := NewClock()
	st := s.open(t, Config{Clock: clock.Now})
	now := clock.Now()
	exp := now.Add(time.Hour)
	caveated := tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: "a"}, Relation: "viewer",
		Subject: tuple.SubjectRef{Type: "user", ID: "ana"},
		Caveat:  &tuple.Caveat{Name: "on_weekday", Context: map[string]any{"day": 3.0, "tags": []any{"x", "y"}, "ok": true}}}
	expiring := tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: "a"}, Relation: "viewer",
		Subject: tuple.SubjectRef{Type: "user", ID: "bob"}, Expiration: exp}
	both := tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: "a"}, Relation: "viewer",
		Subject: tuple.SubjectRef{Type: "user", ID: "cat"}, Expiration: time.Date(2300, 1, 1, 0, 0, 0, 1, time.UTC), // past int64 nanoseconds
		Caveat: &tuple.Caveat{Name: "plain"}}
	if err := st.Write(1, now, []store.Update{{Op: store.OpCreate, Rel: caveated}, {Op: store.OpCreate, Rel: expiring}, {Op: store.OpCreate, Rel: both}}, nil); err != nil {
		t.Fatal(err)
	}
	read := func(rev tuple.Revision) []tuple.Relationship {
		t.Helper()
		sn, err := st.Snapshot(rev)
		if err != nil {
			t.Fatal(err)
		}
		var out []tuple.Relationship
		for r, err := range sn.Query(context.Background(), tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"a"}}) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	got := read(1)
	want := []tuple.Relationship{caveated, expiring, both}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Errorf("relationship %d: got %s, want %s (attributes must round-trip)", i, got[i], want[i])
		}
	}
	// The reverse index carries the attributes too.
	sn, _ := st.Snapshot(1)
	for r, err := range sn.Query(context.Background(), tuple.Filter{Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{"ana"}}}) {
		if err != nil {
			t.Fatal(err)
		}
		if !r.Equal(caveated) {
			t.Errorf("by subject: got %s, want %s", r, caveated)
		}
	}
	// A snapshot taken at or after the expiration no longer sees it; one
	// taken before keeps seeing it.
	before, _ := st.Snapshot(1)
	clock.Advance(time.Hour) // now == exp: expired (Expiration <= now)
	if got := read(1); len(got) != 2 || got[0].Subject.ID != "ana" || got[1].Subject.ID != "cat" {
		t.Fatalf("at expiration: %v, want ana and cat", got)
	}
	if got, err := collect(t, before.Query(context.Background(), tuple.Filter{ResourceType: "doc"})); err != nil || len(got) != 3 {
		t.Fatalf("snapshot taken before expiration: %q %v, want 3", got, err)
	}
	// An expired relationship does not block CREATE, and is not a MUST_MATCH.
	pre := []store.Precondition{{MustMatch: true, Filter: tuple.Filter{ResourceType: "doc", Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{"bob"}}}}}
	if err := st.Write(2, clock.Now(), ups(store.OpTouch, "doc:z#viewer@user:z"), pre); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("MUST_MATCH on an expired relationship: err = %v, want ErrPreconditionFailed", err)
	}
	if err := st.Write(3, clock.Now(), ups(store.OpCreate, "doc:a#viewer@user:bob"), nil); err != nil {
		t.Fatalf("CREATE over an expired relationship: %v", err)
	}
	if got := read(3); len(got) != 3 || !got[1].Expiration.IsZero() {
		t.Fatalf("after re-create: %v", got)
	}
}

func (s suite[S, T]) testSchema(t *testing.T) {
	st := s.open(t, Config{})
	if text, at, err := st.ReadSchema(0); err != nil || text != "" || at != 0 {
		t.Fatalf("empty store: %q %d %v", text, at, err)
	}
	mustWrite[S](t, st, 1, t0, ups(store.OpCreate, "doc:a#viewer@user:ana"))
	if err := st.WriteSchema(2, t0, "definition user {}"); err != nil {
		t.Fatal(err)
	}
	mustWrite[S](t, st, 3, t0, ups(store.OpCreate, "doc:b#viewer@user:ana"))
	if err := st.WriteSchema(4, t0, "definition user {}\ndefinition doc {}"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rev    tuple.Revision
		text   string
		at     tuple.Revision
		hasErr error
	}{
		{1, "", 0, nil},
		{2, "definition user {}", 2, nil},
		{3, "definition user {}", 2, nil},
		{4, "definition user {}\ndefinition doc {}", 4, nil},
		{5, "", 0, store.ErrFutureRevision},
	}
	for _, tc := range tests {
		text, at, err := st.ReadSchema(tc.rev)
		if !errors.Is(err, tc.hasErr) || text != tc.text || at != tc.at {
			t.Errorf("ReadSchema(%d) = %q, %d, %v; want %q, %d, %v", tc.rev, text, at, err, tc.text, tc.at, tc.hasErr)
		}
	}
	// A schema write does not touch relationships.
	if got := all[S](t, st, 4); len(got) != 2 {
		t.Fatalf("relationships after schema writes: %q", got)
	}
}

func (s suite[S, T]) testImport(t *testing.T) {
	st := s.open(t, Config{})
	mustWrite[S](t, st, 1, t0, ups(store.OpCreate, "doc:x#viewer@user:ana"))
	var rels []tuple.Relationship
	for i := range 2500 { // more than a change-feed chunk
		rels = append(rels, rel(fmt.Sprintf("doc:d%04d#viewer@user:u%d", i, i%7)))
	}
	tests := []struct {
		name    string
		rels    []tuple.Relationship
		wantErr error
		wantN   int // relationships after
	}{
		{"duplicate within the batch", []tuple.Relationship{rel("doc:y#viewer@user:ana"), rel("doc:z#viewer@user:ana"), rel("doc:y#viewer@user:ana")}, store.ErrAlreadyExists, 1},
		{"duplicate against the store", []tuple.Relationship{rel("doc:y#viewer@user:ana"), rel("doc:x#viewer@user:ana")}, store.ErrAlreadyExists, 1},
		{"invalid relationship", []tuple.Relationship{rel("doc:y#viewer@user:ana"), {Resource: tuple.ObjectRef{Type: "doc", ID: "??"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "a"}}}, store.ErrInvalid, 1},
		{"bulk", rels, nil, 2501},
		{"empty", nil, nil, 2501},
	}
	rev := tuple.Revision(1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rev++
			err := st.Import(rev, t0, tc.rels)
			if tc.wantErr == nil && err != nil || !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if st.AppliedRevision() != rev {
				t.Fatalf("applied = %d, want %d", st.AppliedRevision(), rev)
			}
			if got := all[S](t, st, rev); len(got) != tc.wantN {
				t.Fatalf("%d relationships after, want %d", len(got), tc.wantN)
			}
		})
	}
	// The import is one revision of the change feed, with every relationship.
	n := 0
	for ch, err := range st.Changes(context.Background(), 4) {
		if err != nil {
			t.Fatal(err)
		}
		if ch.Revision != 5 {
			t.Fatalf("change at %d, want 5", ch.Revision)
		}
		n += len(ch.Updates)
	}
	if n != len(rels) {
		t.Fatalf("change feed has %d updates for the import, want %d", n, len(rels))
	}
	got := queryAt[S](t, st, 5, tuple.Filter{Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{"u3"}}})
	if len(got) != 357 {
		t.Fatalf("imported relationships by subject: %d, want 357", len(got))
	}
}

type change struct {
	rev     tuple.Revision
	updates []string
	schema  string
}

func readChanges[S Snapshot, T Store[S]](t *testing.T, st T, after tuple.Revision) ([]change, error) {
	t.Helper()
	var out []change
	for ch, err := range st.Changes(context.Background(), after) {
		if err != nil {
			return out, err
		}
		c := change{rev: ch.Revision}
		for _, u := range ch.Updates {
			c.updates = append(c.updates, u.Op.String()+" "+u.Rel.String())
		}
		if ch.Schema != nil {
			c.schema = *ch.Schema
		}
		out = append(out, c)
	}
	return out, nil
}

func (s suite[S, T]) testChanges(t *testing.T) {
	st := s.open(t, Config{})
	mustWrite[S](t, st, 1, t0, ups(store.OpCreate, "doc:a#viewer@user:ana", `doc:b#viewer@user:bob[cav:{"x":1}]`))
	if err := st.Write(2, t0, ups(store.OpCreate, "doc:a#viewer@user:ana"), nil); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatal(err)
	}
	if err := st.WriteSchema(3, t0, "definition doc {}"); err != nil {
		t.Fatal(err)
	}
	mustWrite[S](t, st, 4, t0, append(ups(store.OpDelete, "doc:a#viewer@user:ana", "doc:zz#viewer@user:nobody"), ups(store.OpTouch, "doc:c#viewer@user:cat")...))
	if _, _, err := st.DeleteByFilter(5, t0, tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"b"}}, 0, false, nil); err != nil {
		t.Fatal(err)
	}
	full := []change{
		{rev: 1, updates: []string{"TOUCH doc:a#viewer@user:ana", `TOUCH doc:b#viewer@user:bob[cav:{"x":1}]`}},
		{rev: 3, schema: "definition doc {}"},
		{rev: 4, updates: []string{"DELETE doc:a#viewer@user:ana", "TOUCH doc:c#viewer@user:cat"}},
		{rev: 5, updates: []string{"DELETE doc:b#viewer@user:bob"}},
	}
	for after := tuple.Revision(0); after <= 6; after++ {
		got, err := readChanges[S](t, st, after)
		if err != nil {
			t.Fatalf("after %d: %v", after, err)
		}
		var want []change
		for _, c := range full {
			if c.rev > after {
				want = append(want, c)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("changes after %d:\n got %v\nwant %v", after, got, want)
		}
	}
	// Stopping early is fine.
	for range st.Changes(context.Background(), 0) {
		break
	}
}

func (s suite[S, T]) testChanged(t *testing.T) {
	st := s.open(t, Config{})
	ch := st.Changed()
	select {
	case <-ch:
		t.Fatal("Changed fired before any commit")
	default:
	}
	mustWrite[S](t, st, 1, t0, ups(store.OpCreate, "doc:a#viewer@user:ana"))
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed did not fire after a commit")
	}
	ch = st.Changed()
	if err := st.Write(2, t0, ups(store.OpCreate, "doc:a#viewer@user:ana"), nil); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatal(err)
	}
	select {
	case <-ch: // the applied revision moved, so waiters wake
	case <-time.After(5 * time.Second):
		t.Fatal("Changed did not fire after a failed (but applied) write")
	}
}

func (s suite[S, T]) testGC(t *testing.T) {
	clock := NewClock()
	st := s.open(t, Config{Clock: clock.Now, GCWindow: time.Hour})
	// Revisions 1..6, ten minutes apart; an expiring relationship at 2.
	start := clock.Now()
	for rev := tuple.Revision(1); rev <= 6; rev++ {
		r := fmt.Sprintf("doc:d%d#viewer@user:ana", rev)
		u := ups(store.OpCreate, r)
		if rev == 2 {
			u[0].Rel.Expiration = start.Add(25 * time.Minute)
		}
		if rev == 5 {
			u = append(u, ups(store.OpDelete, "doc:d1#viewer@user:ana")...)
		}
		mustWrite[S](t, st, rev, clock.Now(), u)
		clock.Advance(10 * time.Minute)
	}
	// now = start+60m; nothing is older than the window yet.
	if err := st.RunGC(); err != nil {
		t.Fatal(err)
	}
	for rev := tuple.Revision(0); rev <= 6; rev++ {
		if _, err := st.Snapshot(rev); err != nil {
			t.Fatalf("snapshot at %d inside the window: %v", rev, err)
		}
	}
	// now = start+95m: revisions 1..4 (times 0,10,20,30) are older than
	// now-window = start+35m; the horizon becomes 4.
	clock.Advance(35 * time.Minute)
	if err := st.RunGC(); err != nil {
		t.Fatal(err)
	}
	for rev := tuple.Revision(0); rev <= 7; rev++ {
		_, err := st.Snapshot(rev)
		switch {
		case rev < 4 && !errors.Is(err, store.ErrRevisionCompacted):
			t.Errorf("snapshot at %d below the horizon: err = %v, want ErrRevisionCompacted", rev, err)
		case rev >= 4 && rev <= 6 && err != nil:
			t.Errorf("snapshot at %d: %v", rev, err)
		case rev > 6 && !errors.Is(err, store.ErrFutureRevision):
			t.Errorf("snapshot at %d: err = %v, want ErrFutureRevision", rev, err)
		}
	}
	if _, _, err := st.ReadSchema(3); !errors.Is(err, store.ErrRevisionCompacted) {
		t.Errorf("ReadSchema below the horizon: err = %v, want ErrRevisionCompacted", err)
	}
	if _, err := readChanges[S](t, st, 3); !errors.Is(err, store.ErrRevisionCompacted) {
		t.Errorf("Changes after 3 (below the horizon): err = %v, want ErrRevisionCompacted", err)
	}
	got, err := readChanges[S](t, st, 4)
	if err != nil || len(got) != 2 || got[0].rev != 5 || got[1].rev != 6 {
		t.Errorf("Changes after the horizon: %v %v, want revisions 5 and 6", got, err)
	}
	// State at the horizon and after is intact (d1 is deleted at 5); the
	// expired d2 is gone.
	want := sorted("doc:d1#viewer@user:ana", "doc:d3#viewer@user:ana", "doc:d4#viewer@user:ana")
	if got := all[S](t, st, 4); !equal(got, want) {
		t.Errorf("at the horizon: %q, want %q", got, want)
	}
	want = sorted("doc:d3#viewer@user:ana", "doc:d4#viewer@user:ana", "doc:d5#viewer@user:ana", "doc:d6#viewer@user:ana")
	if got := all[S](t, st, 6); !equal(got, want) {
		t.Errorf("at 6: %q, want %q", got, want)
	}
	// GC is idempotent and writes continue.
	if err := st.RunGC(); err != nil {
		t.Fatal(err)
	}
	mustWrite[S](t, st, 7, clock.Now(), ups(store.OpCreate, "doc:d7#viewer@user:ana"))
	if got := all[S](t, st, 7); len(got) != 5 {
		t.Errorf("at 7: %q", got)
	}
}

func (s suite[S, T]) testSnapshotRoundTrip(t *testing.T) {
	clock := NewClock()
	src := s.open(t, Config{Clock: clock.Now})
	exp := clock.Now().Add(48 * time.Hour)
	mustWrite[S](t, src, 1, t0, ups(store.OpCreate, queryData...))
	if err := src.WriteSchema(2, t0, "definition doc {}"); err != nil {
		t.Fatal(err)
	}
	u := ups(store.OpTouch, `doc:c#viewer@user:ana[cav:{"a":[1,2]}]`, "doc:a#viewer@user:zed")
	u[1].Rel.Expiration = exp
	mustWrite[S](t, src, 3, t0, append(u, ups(store.OpDelete, "doc:b#viewer@group:eng")...))

	var buf bytes.Buffer
	rev, err := src.WriteSnapshot(&buf)
	if err != nil || rev != 3 {
		t.Fatalf("WriteSnapshot: %d %v", rev, err)
	}
	dst := s.open(t, Config{Clock: clock.Now})
	mustWrite[S](t, dst, 10, t0, ups(store.OpCreate, "other:x#viewer@user:gone"))
	if err := dst.WriteSchema(11, t0, "old"); err != nil {
		t.Fatal(err)
	}
	// Corrupt streams are rejected and leave the store untouched.
	data := buf.Bytes()
	corrupt := map[string][]byte{
		"empty":     nil,
		"truncated": data[:len(data)/2],
		"no crc":    data[:len(data)-4],
		"bit flip":  flip(data, len(data)/3),
		"bad magic": flip(data, 0),
	}
	for name, c := range corrupt {
		if err := dst.RestoreSnapshot(bytes.NewReader(c)); err == nil {
			t.Errorf("restore of %s stream succeeded", name)
		}
		if got := all[S](t, dst, 11); len(got) != 1 {
			t.Fatalf("after a rejected %s restore: %q", name, got)
		}
	}
	if err := dst.RestoreSnapshot(bytes.NewReader(data)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := dst.AppliedRevision(); got != 3 {
		t.Fatalf("applied after restore = %d, want 3", got)
	}
	want := all[S](t, src, 3)
	if got := all[S](t, dst, 3); !equal(got, want) {
		t.Fatalf("restored state:\n got %q\nwant %q", got, want)
	}
	// Attributes and the reverse index survive.
	f := tuple.Filter{Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{"ana", "zed"}}}
	if got, want := queryAt[S](t, dst, 3, f), queryAt[S](t, src, 3, f); !equal(got, want) {
		t.Fatalf("restored reverse index:\n got %q\nwant %q", got, want)
	}
	if text, at, err := dst.ReadSchema(3); err != nil || text != "definition doc {}" || at != 2 {
		t.Fatalf("restored schema: %q %d %v", text, at, err)
	}
	// History before the snapshot is not readable; writes continue after it.
	if _, err := dst.Snapshot(2); !errors.Is(err, store.ErrRevisionCompacted) {
		t.Fatalf("snapshot below the restored revision: err = %v, want ErrRevisionCompacted", err)
	}
	if err := dst.Write(3, t0, ups(store.OpCreate, "doc:new#viewer@user:ana"), nil); !errors.Is(err, store.ErrStaleWrite) {
		t.Fatalf("write at the restored revision: err = %v, want ErrStaleWrite", err)
	}
	mustWrite[S](t, dst, 4, t0, ups(store.OpCreate, "doc:new#viewer@user:ana"))
	got, err := readChanges[S](t, dst, 3)
	if err != nil || len(got) != 1 || got[0].rev != 4 {
		t.Fatalf("changes after restore: %v %v", got, err)
	}
	// Past the revision of the schema the store held before the restore
	// (11), the restored schema is still the one in force.
	mustWrite[S](t, dst, 12, t0, ups(store.OpCreate, "doc:later#viewer@user:ana"))
	if text, at, err := dst.ReadSchema(12); err != nil || text != "definition doc {}" || at != 2 {
		t.Fatalf("schema after restore and later writes: %q %d %v", text, at, err)
	}
	// A snapshot without a schema leaves none.
	empty := s.open(t, Config{Clock: clock.Now})
	mustWrite[S](t, empty, 1, t0, ups(store.OpCreate, "doc:a#viewer@user:ana"))
	buf.Reset()
	if _, err := empty.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	if err := dst.RestoreSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	mustWrite[S](t, dst, 20, t0, ups(store.OpCreate, "doc:b#viewer@user:ana"))
	if text, at, err := dst.ReadSchema(20); err != nil || text != "" || at != 0 {
		t.Fatalf("schema after restoring a snapshot without one: %q %d %v", text, at, err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}

func (s suite[S, T]) testRestart(t *testing.T) {
	dir := t.TempDir()
	clock := NewClock()
	cfg := Config{Dir: dir, Clock: clock.Now, GCWindow: time.Hour}
	st := s.h.Open(t, cfg)
	for rev := tuple.Revision(1); rev <= 4; rev++ {
		mustWrite[S](t, st, rev, clock.Now(), ups(store.OpCreate, fmt.Sprintf("doc:d%d#viewer@user:ana", rev)))
		clock.Advance(30 * time.Minute)
	}
	if err := st.WriteSchema(5, clock.Now(), "definition doc {}"); err != nil {
		t.Fatal(err)
	}
	if err := st.Write(6, clock.Now(), ups(store.OpCreate, "doc:d1#viewer@user:ana"), nil); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatal(err)
	}
	if err := st.RunGC(); err != nil { // horizon: revisions older than now-1h
		t.Fatal(err)
	}
	wantState := all[S](t, st, 6)
	wantChanges, err := readChanges[S](t, st, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = s.open(t, cfg)
	if got := st.AppliedRevision(); got != 6 {
		t.Fatalf("applied after reopen = %d, want 6", got)
	}
	if got := all[S](t, st, 6); !equal(got, wantState) {
		t.Fatalf("state after reopen: %q, want %q", got, wantState)
	}
	if got := all[S](t, st, 4); len(got) != 4 {
		t.Fatalf("history at 4 after reopen: %q", got)
	}
	if _, err := st.Snapshot(1); !errors.Is(err, store.ErrRevisionCompacted) {
		t.Fatalf("GC horizon lost on reopen: snapshot at 1: %v", err)
	}
	if text, at, err := st.ReadSchema(6); err != nil || text != "definition doc {}" || at != 5 {
		t.Fatalf("schema after reopen: %q %d %v", text, at, err)
	}
	if got, err := readChanges[S](t, st, 3); err != nil || fmt.Sprint(got) != fmt.Sprint(wantChanges) {
		t.Fatalf("changes after reopen: %v %v, want %v", got, err, wantChanges)
	}
	if err := st.Write(6, clock.Now(), ups(store.OpCreate, "doc:x#viewer@user:ana"), nil); !errors.Is(err, store.ErrStaleWrite) {
		t.Fatalf("replayed revision after reopen: err = %v, want ErrStaleWrite", err)
	}
	mustWrite[S](t, st, 7, clock.Now(), ups(store.OpCreate, "doc:x#viewer@user:ana"))
}

// testLargeDelete deletes more relationships than a write transaction holds
// comfortably (the badger store switches to a write batch above 10 000).
func (s suite[S, T]) testLargeDelete(t *testing.T) {
	st := s.open(t, Config{})
	var rels []tuple.Relationship
	for i := range 12000 {
		rels = append(rels, rel(fmt.Sprintf("doc:d%05d#viewer@user:u%d", i, i%3)))
	}
	rels = append(rels, rel("folder:f#viewer@user:u0"))
	if err := st.Import(1, t0, rels); err != nil {
		t.Fatal(err)
	}
	n, partial, err := st.DeleteByFilter(2, t0, tuple.Filter{ResourceType: "doc"}, 0, false, nil)
	if err != nil || n != 12000 || partial {
		t.Fatalf("delete: %d %v %v, want 12000 deleted", n, partial, err)
	}
	if got := all[S](t, st, 2); len(got) != 1 {
		t.Fatalf("%d left after the delete, want 1", len(got))
	}
	if got := all[S](t, st, 1); len(got) != 12001 {
		t.Fatalf("%d at revision 1 after the delete, want 12001", len(got))
	}
	if got := queryAt[S](t, st, 2, tuple.Filter{Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{"u0"}}}); len(got) != 1 {
		t.Fatalf("reverse index after the delete: %q", got)
	}
	deletes := 0
	for ch, err := range st.Changes(context.Background(), 1) {
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range ch.Updates {
			if u.Op != store.OpDelete {
				t.Fatalf("unexpected %s in the delete's change", u.Op)
			}
			deletes++
		}
	}
	if deletes != 12000 {
		t.Fatalf("change feed has %d deletes, want 12000", deletes)
	}
}

// testConcurrentQueries: one snapshot serves queries from several
// goroutines at once (the engine fans out sub-checks) with the same answers.
func (s suite[S, T]) testConcurrentQueries(t *testing.T) {
	st := s.open(t, Config{})
	mustWrite[S](t, st, 1, t0, ups(store.OpCreate, queryData...))
	sn, err := st.Snapshot(1)
	if err != nil {
		t.Fatal(err)
	}
	filters := []tuple.Filter{
		{ResourceType: "doc", ResourceIDs: []string{"a"}},
		{ResourceType: "doc", ResourceIDs: []string{"a"}, Relation: "viewer", Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{"ana"}, Relation: ptr("")}},
		{Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{"ana"}}},
		{ResourceType: "doc", ResourceIDPrefix: "a"},
	}
	want := make([][]string, len(filters))
	for i, f := range filters {
		if want[i], err = collect(t, sn.Query(context.Background(), f)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				k := (g + i) % len(filters)
				var got []string
				for r, err := range sn.Query(context.Background(), filters[k]) {
					if err != nil {
						errs <- err.Error()
						return
					}
					got = append(got, r.String())
				}
				if !equal(got, want[k]) {
					errs <- fmt.Sprintf("goroutine %d query %d: %q, want %q", g, k, got, want[k])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
