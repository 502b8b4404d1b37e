package engine_test

import (
	"context"
	"fmt"
	"iter"
	"sync/atomic"
	"testing"

	"github.com/ambit-authz/ambit/bench/memindex"
	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// countingReader counts the queries that reach the underlying reader.
type countingReader struct {
	engine.Reader
	queries atomic.Int64
}

func (r *countingReader) Query(ctx context.Context, f tuple.Filter) iter.Seq2[tuple.Relationship, error] {
	r.queries.Add(1)
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
