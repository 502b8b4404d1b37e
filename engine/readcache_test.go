package engine_test

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/bench/memindex"
	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// countingReader counts the queries that reach the underlying reader.
type countingReader struct {
	engine.Reader
	queries   atomic.Int64
	bySubject atomic.Int64 // those that name subject ids and no resource ids
}

func (r *countingReader) Query(ctx context.Context, f tuple.Filter) iter.Seq2[tuple.Relationship, error] {
	r.queries.Add(1)
	if len(f.ResourceIDs) == 0 && f.Subject != nil && len(f.Subject.IDs) > 0 {
		r.bySubject.Add(1)
	}
	return r.Reader.Query(ctx, f)
}

const readCacheSchema = `
definition user {}

definition group {
	relation member: user | group#member
}

definition folder {
	relation viewer: user | group#member
}

definition doc {
	relation parent: folder
	relation viewer: user | group#member
	permission view = viewer + parent->viewer
}
`

// readCacheFixture: doc:d has 3 direct viewers, the group small (3 members)
// and the group big (100 members, over the read cache's 64); doc:wide has
// 20 parent folders, each with one viewer, more than one query fills.
func readCacheFixture() *enginetest.Memory {
	lines := []string{
		"doc:d#viewer@user:a", "doc:d#viewer@user:b", "doc:d#viewer@user:c",
		"doc:d#viewer@group:small#member", "doc:d#viewer@group:big#member",
		"group:small#member@user:s1", "group:small#member@user:s2", "group:small#member@user:s3",
	}
	for i := range 100 {
		lines = append(lines, fmt.Sprintf("group:big#member@user:b%d", i))
	}
	for i := range 20 {
		lines = append(lines, fmt.Sprintf("doc:wide#parent@folder:f%02d", i), fmt.Sprintf("folder:f%02d#viewer@user:v%d", i, i))
	}
	return enginetest.MustParse(lines...)
}

// The read cache answers repeated reads of the same sets without the store,
// gives the same answers as the store, and leaves large sets and wide fan-outs
// to the store.
func TestReadCache(t *testing.T) {
	s, err := schema.Compile("readcache.zed", readCacheSchema)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		rel  string
		want engine.Permissionship
	}{
		{"doc:d#view@user:a", engine.HasPermission},
		{"doc:d#view@user:c", engine.HasPermission},
		{"doc:d#view@user:s2", engine.HasPermission},
		{"doc:d#view@user:b0", engine.HasPermission},
		{"doc:d#view@user:b99", engine.HasPermission},
		{"doc:d#view@user:nobody", engine.NoPermission},
		{"doc:wide#view@user:v0", engine.HasPermission},
		{"doc:wide#view@user:v19", engine.HasPermission},
		{"doc:wide#view@user:v20", engine.NoPermission},
		{"folder:f07#viewer@user:v7", engine.HasPermission},
	}
	for _, readCache := range []int64{-1, 0} {
		t.Run(fmt.Sprintf("ReadCacheMaxCost=%d", readCache), func(t *testing.T) {
			m := readCacheFixture()
			r := &countingReader{Reader: m}
			// No result cache: every check walks the graph and reads.
			e, err := engine.New(engine.Config{CacheMaxCost: -1, ReadCacheMaxCost: readCache})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			round := func() int64 {
				before := r.queries.Load()
				for _, c := range checks {
					q := tuple.MustParse(c.rel)
					res, err := e.View(s, r, m.Snapshot(3)).Check(context.Background(),
						engine.CheckRequest{Resource: q.Resource, Permission: q.Relation, Subject: q.Subject})
					if err != nil {
						t.Fatal(err)
					}
					if res.Permissionship != c.want {
						t.Errorf("%s: %v, want %v", c.rel, res.Permissionship, c.want)
					}
				}
				return r.queries.Load() - before
			}
			first := round()
			second := round()
			if readCache < 0 {
				if second != first {
					t.Errorf("without a read cache the rounds read differently: %d then %d queries", first, second)
				}
				return
			}
			// Still read from the store in the second round: the big group's
			// members (too many to cache) and the folders of doc:wide past
			// the first few filled (too many for one query to fill).
			if second == 0 || second >= first {
				t.Errorf("queries reaching the store: %d in the first round, %d in the second; want fewer but not none", first, second)
			}
			// A third view at another revision shares nothing.
			before := r.queries.Load()
			q := tuple.MustParse("doc:d#view@user:a")
			if _, err := e.View(s, r, m.Snapshot(4)).Check(context.Background(),
				engine.CheckRequest{Resource: q.Resource, Permission: q.Relation, Subject: q.Subject}); err != nil {
				t.Fatal(err)
			}
			if r.queries.Load() == before {
				t.Error("a check at a new revision was answered from sets cached at the old one")
			}
		})
	}
}

// One engine over two data sets at the same revision (a validation run loads
// every file at revision 2): readers that name their source keep the caches
// apart.
func TestCachesKeepSourcesApart(t *testing.T) {
	s, err := schema.Compile("readcache.zed", readCacheSchema)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	a := enginetest.MustParse("doc:d#viewer@group:g#member", "group:g#member@user:ana")
	b := enginetest.MustParse("doc:d#viewer@group:g#member", "group:g#member@user:bo")
	for round := range 2 {
		for _, tc := range []struct {
			r    *enginetest.Memory
			subj string
			want engine.Permissionship
		}{
			{a, "user:ana", engine.HasPermission}, {a, "user:bo", engine.NoPermission},
			{b, "user:ana", engine.NoPermission}, {b, "user:bo", engine.HasPermission},
		} {
			q := tuple.MustParse("doc:d#view@" + tc.subj)
			res, err := e.View(s, tc.r, tc.r.Snapshot(2)).Check(context.Background(),
				engine.CheckRequest{Resource: q.Resource, Permission: q.Relation, Subject: q.Subject})
			if err != nil {
				t.Fatal(err)
			}
			if res.Permissionship != tc.want {
				t.Errorf("round %d, source %v, %s: %v, want %v", round, tc.r.Source(), q, res.Permissionship, tc.want)
			}
		}
	}
}

// plainReader is a reader and nothing else: whatever methods the reader
// under it has, the engine cannot find them.
type plainReader struct{ r engine.Reader }

func (p plainReader) Query(ctx context.Context, f tuple.Filter) iter.Seq2[tuple.Relationship, error] {
	return p.r.Query(ctx, f)
}

// Cache identity is what the caller states (issue 18): views over different
// data sets at one revision never share cache entries, whether the caller
// names no source (the view gets one of its own) or each data set's own,
// and whatever the readers are (two kinds of in-memory reader used to number
// their sources from 1 each).
func TestCacheIdentityIsExplicit(t *testing.T) {
	s, err := schema.Compile("readcache.zed", readCacheSchema)
	if err != nil {
		t.Fatal(err)
	}
	a := enginetest.MustParse("doc:d#viewer@group:g#member", "group:g#member@user:ana")
	bRels := []tuple.Relationship{tuple.MustParse("doc:d#viewer@group:g#member"), tuple.MustParse("group:g#member@user:bo")}
	b := memindex.New(bRels)
	for _, tc := range []struct {
		name   string
		ra, rb engine.Reader
		sa, sb engine.Snapshot
	}{
		{"no source", plainReader{a}, plainReader{b}, engine.Snapshot{Revision: 2}, engine.Snapshot{Revision: 2}},
		{"two kinds of reader", a, b, a.Snapshot(2), b.Snapshot(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := engine.New(engine.Config{})
			if err != nil {
				t.Fatal(err)
			}
			for round := range 2 {
				for _, c := range []struct {
					r    engine.Reader
					at   engine.Snapshot
					subj string
					want engine.Permissionship
				}{
					{tc.ra, tc.sa, "user:ana", engine.HasPermission}, {tc.ra, tc.sa, "user:bo", engine.NoPermission},
					{tc.rb, tc.sb, "user:ana", engine.NoPermission}, {tc.rb, tc.sb, "user:bo", engine.HasPermission},
				} {
					q := tuple.MustParse("doc:d#view@" + c.subj)
					res, err := e.View(s, c.r, c.at).Check(context.Background(),
						engine.CheckRequest{Resource: q.Resource, Permission: q.Relation, Subject: q.Subject})
					if err != nil {
						t.Fatal(err)
					}
					if res.Permissionship != c.want {
						t.Errorf("round %d, %s: %v, want %v", round, q, res.Permissionship, c.want)
					}
				}
			}
		})
	}
}

const bySubjectSchema = `
use expiration

definition user {}

definition group {
	relation member: user | user with expiration | group#member
}

definition club {
	relation member: user | user:* | club#member
}

definition doc {
	relation viewer: user | group#member
	permission view = viewer
}
`

// A check through a nested group whose closure is large reads the
// subject's own memberships (by subject); the read cache's subject sets
// (subjectcache.go) keep them per subject and revision. Its answers equal a walking engine's without
// caches, before and after a membership expires, for a subject with more
// memberships than a cached set holds, through a wildcard, and at a new
// revision; the second round reads less from the store than the first.
func TestReadCacheBySubject(t *testing.T) {
	s, err := schema.Compile("bysubject.zed", bySubjectSchema)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	var lines []string
	// Two chains of 12 groups (closures of 12, over closureByResource):
	// group g0 <- g1 <- ... <- g11 and club w0 <- ... <- w11, w9 holding
	// user:* (a wildcard cannot reach doc through a nesting).
	for i := range 11 {
		lines = append(lines, fmt.Sprintf("group:g%d#member@group:g%d#member", i, i+1), fmt.Sprintf("club:w%d#member@club:w%d#member", i, i+1))
	}
	lines = append(lines, "doc:a#viewer@group:g0#member", "club:w9#member@user:*", "club:w3#member@user:deep",
		"group:g11#member@user:deep",
		"group:g5#member@user:brief[expiration:"+t0.Add(time.Hour).Format(time.RFC3339)+"]",
		"group:g3#member@user:busy")
	for i := range 520 { // more than the 8 × 64 a cached subject set holds
		lines = append(lines, fmt.Sprintf("group:x%02d#member@user:busy", i))
	}
	now := t0
	m := enginetest.MustParse(lines...)
	m.Now = func() time.Time { return now }
	r := &countingReader{Reader: m}
	ctx := context.Background()
	e, err := engine.New(engine.Config{CacheMaxCost: -1}) // the read cache only
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	idx := e.Leopard(m.Source())
	if err := idx.Build(ctx, m, s, 3); err != nil {
		t.Fatal(err)
	}
	walk, err := engine.New(engine.Config{CacheMaxCost: -1, ReadCacheMaxCost: -1, LeopardMaxEdges: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer walk.Close()
	checks := []string{
		"doc:a#view@user:deep", "doc:a#view@user:brief", "doc:a#view@user:busy", "doc:a#view@user:nobody",
		"club:w0#member@user:deep", "club:w0#member@user:nobody", "club:w10#member@user:nobody",
		"group:g0#member@user:busy", "group:g2#member@user:brief",
	}
	round := func(rev tuple.Revision) (queries, bySubject int64, allowed int) {
		before, beforeBySubject := r.queries.Load(), r.bySubject.Load()
		for _, c := range checks {
			q := tuple.MustParse(c)
			req := engine.CheckRequest{Resource: q.Resource, Permission: q.Relation, Subject: q.Subject}
			got, err := e.View(s, r, m.Snapshot(rev)).Check(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			want, err := walk.View(s, m, engine.Snapshot{Revision: rev, Time: now}).Check(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if got.Permissionship != want.Permissionship {
				t.Errorf("%s at %s, revision %d: %v with the index and read cache, %v walking", c, now.Format(time.Kitchen), rev, got.Permissionship, want.Permissionship)
			}
			if got.Permissionship == engine.HasPermission {
				allowed++
			}
		}
		return r.queries.Load() - before, r.bySubject.Load() - beforeBySubject, allowed
	}
	first, firstBySubject, allowedBefore := round(3)
	second, secondBySubject, _ := round(3)
	if second >= first {
		t.Errorf("queries reaching the store: %d in the first round, %d in the second; want fewer", first, second)
	}
	// Only user:busy's memberships (two checks), too many to cache, are
	// read by subject again (by the narrow filter).
	if firstBySubject <= 2 || secondBySubject != 2 {
		t.Errorf("queries by subject: %d in the first round, %d in the second; want more than 2, then 2", firstBySubject, secondBySubject)
	}
	if served := idx.Stats().Served; served == 0 {
		t.Fatal("the index answered no nesting: the by-subject reads were not exercised")
	}
	now = t0.Add(2 * time.Hour) // user:brief's membership has expired
	_, _, allowedAfter := round(3)
	if allowedAfter != allowedBefore-2 {
		t.Errorf("%d checks allowed after user:brief's membership expired, %d before; want 2 fewer", allowedAfter, allowedBefore)
	}
	idx.Advance(4)
	before := r.queries.Load()
	round(4)
	if r.queries.Load() == before {
		t.Error("checks at a new revision were answered from sets cached at the old one")
	}
}
