package engine_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

const subjectCacheSchema = `
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

// subjectCacheData: a chain of ten nested groups with one member each, docs
// and folders shared with them, and a popular group shared with more docs
// than a cached subject set holds (8 × the read cache's 64). At revision 4
// one doc gains a group and another loses its viewer.
func subjectCacheData(rev int) *enginetest.Memory {
	var lines []string
	for i := range 10 {
		lines = append(lines, fmt.Sprintf("group:g%d#member@user:u%d", i, i))
		if i > 0 {
			lines = append(lines, fmt.Sprintf("group:g%d#member@group:g%d#member", i, i-1))
		}
		lines = append(lines, fmt.Sprintf("folder:f%d#viewer@group:g%d#member", i, i))
	}
	for j := range 40 {
		if rev == 4 && j == 3 {
			continue
		}
		lines = append(lines, fmt.Sprintf("doc:d%02d#viewer@group:g%d#member", j, j%10))
		lines = append(lines, fmt.Sprintf("doc:d%02d#parent@folder:f%d", j, (j+3)%10))
	}
	for j := range 600 {
		lines = append(lines, fmt.Sprintf("doc:p%03d#viewer@group:popular#member", j))
	}
	lines = append(lines, "group:popular#member@user:alice", "group:popular#member@group:g2#member")
	if rev == 4 {
		lines = append(lines, "doc:new#viewer@group:g5#member")
	}
	return enginetest.MustParse(lines...)
}

// The LookupResources walk reads the relationships naming each object it
// reaches through the read cache: a second round of lookups reads less from
// the store, answers stay those of an engine without the cache at every
// revision, and a set over the size limit is read from the store each time.
func TestSubjectCacheKeepsLookupsExact(t *testing.T) {
	s, err := schema.Compile("subjectcache.zed", subjectCacheSchema)
	if err != nil {
		t.Fatal(err)
	}
	cached, err := engine.New(engine.Config{CacheMaxCost: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer cached.Close()
	plain, err := engine.New(engine.Config{CacheMaxCost: -1, ReadCacheMaxCost: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	subjects := []string{"user:alice", "user:nobody", "group:g4#member"}
	for i := range 10 {
		subjects = append(subjects, fmt.Sprintf("user:u%d", i))
	}
	lookup := func(e *engine.Engine, r engine.Reader, at engine.Snapshot, subj string) []string {
		t.Helper()
		var ids []string
		sr, err := tuple.ParseSubject(subj)
		if err != nil {
			t.Fatal(err)
		}
		req := engine.LookupResourcesRequest{ResourceType: "doc", Permission: "view", Subject: sr}
		for res, err := range e.View(s, r, at).LookupResources(context.Background(), req) {
			if err != nil {
				t.Fatalf("%s: %v", subj, err)
			}
			ids = append(ids, res.ID)
		}
		slices.Sort(ids)
		return ids
	}
	v3 := subjectCacheData(3)
	// Revision 4 of the same data set: another reader, the same source.
	v4 := subjectCacheData(4)
	for pass, tc := range []struct {
		rev tuple.Revision
		m   *enginetest.Memory
	}{{3, v3}, {4, v4}, {3, v3}} {
		at := engine.Snapshot{Source: v3.Source(), Revision: tc.rev, Time: v3.Time()}
		r := &countingReader{Reader: tc.m}
		var reads [2]int64
		for round := range 2 {
			before := r.queries.Load()
			for _, subj := range subjects {
				got := lookup(cached, r, at, subj)
				want := lookup(plain, tc.m, at, subj)
				if !slices.Equal(got, want) {
					t.Errorf("revision %d, round %d, %s: %v, want %v", tc.rev, round, subj, got, want)
				}
			}
			reads[round] = r.queries.Load() - before
		}
		if pass == 2 {
			// Revision 3 again: its sets are still cached, apart from the
			// large one, which every round reads.
			if reads[0] != reads[1] || reads[0] == 0 {
				t.Errorf("revision 3 again: %d then %d queries reached the reader; want the same, not none", reads[0], reads[1])
			}
			continue
		}
		if reads[1] >= reads[0] || reads[1] == 0 {
			t.Errorf("revision %d: %d queries reached the reader in the first round, %d in the second; want fewer, not none (the popular group is too large to cache)", tc.rev, reads[0], reads[1])
		}
	}
}
