package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// randomSchema mixes every construct the reverse walk treats differently:
// union chains, arrows, nested and cyclic subject sets, wildcards, caveats on
// subject sets and on arrows' tuplesets, intersection, exclusion and .all().
const randomSchema = `
caveat big(x int) { x > 1 }

definition user {}

definition group {
	relation member: user | group#member | user with big | group#member with big
	relation banned: user
	permission active = member - banned
}

definition folder {
	relation parent: folder | folder with big
	relation viewer: user | group#member | group#active
	relation owner: user
	relation blocked: user | group#member | group#active
	permission view = viewer + owner + parent->view
	permission strict = view & parent->view
}

definition doc {
	relation folder: folder | folder with big
	relation viewer: user | group#member | user:*
	relation editor: user | group#active
	relation reviewer: folder
	permission edit = editor + folder->view
	permission view = viewer + edit
	permission vetted = view - folder->strict
	permission all_review = reviewer.all(view)
	permission both = viewer & editor
	permission shown = view + folder->strict
	permission open = view - folder->blocked
	permission not_edited = viewer - editor
	permission open_unvetted = open - vetted
	permission either_open = open + not_edited
}
`

func randomRels(r *rand.Rand) []tuple.Relationship {
	pick := func(prefix string, n int) string { return fmt.Sprintf("%s%d", prefix, r.IntN(n)) }
	user := func() string {
		if r.IntN(12) == 0 {
			return "user:*"
		}
		return "user:" + pick("u", 5)
	}
	caveat := func() string {
		if r.IntN(5) == 0 {
			return `[big:{"x":` + fmt.Sprint(r.IntN(3)) + `}]`
		}
		if r.IntN(8) == 0 {
			return "[big]"
		}
		return ""
	}
	templates := []func() string{
		func() string { return "group:" + pick("g", 4) + "#member@user:" + pick("u", 5) + caveat() },
		func() string { return "group:" + pick("g", 4) + "#member@group:" + pick("g", 4) + "#member" + caveat() },
		func() string { return "group:" + pick("g", 4) + "#banned@user:" + pick("u", 5) },
		func() string { return "folder:" + pick("f", 4) + "#parent@folder:" + pick("f", 4) + caveat() },
		func() string { return "folder:" + pick("f", 4) + "#viewer@user:" + pick("u", 5) },
		func() string { return "folder:" + pick("f", 4) + "#viewer@group:" + pick("g", 4) + "#member" },
		func() string { return "folder:" + pick("f", 4) + "#viewer@group:" + pick("g", 4) + "#active" },
		func() string { return "folder:" + pick("f", 4) + "#owner@user:" + pick("u", 5) },
		func() string { return "folder:" + pick("f", 4) + "#blocked@user:" + pick("u", 5) },
		func() string { return "folder:" + pick("f", 4) + "#blocked@group:" + pick("g", 4) + "#active" },
		func() string { return "doc:" + pick("d", 6) + "#folder@folder:" + pick("f", 4) + caveat() },
		func() string { return "doc:" + pick("d", 6) + "#viewer@" + user() },
		func() string { return "doc:" + pick("d", 6) + "#viewer@group:" + pick("g", 4) + "#member" },
		func() string { return "doc:" + pick("d", 6) + "#editor@user:" + pick("u", 5) },
		func() string { return "doc:" + pick("d", 6) + "#editor@group:" + pick("g", 4) + "#active" },
		func() string { return "doc:" + pick("d", 6) + "#reviewer@folder:" + pick("f", 4) },
	}
	var out []tuple.Relationship
	seen := map[string]bool{}
	for range 10 + r.IntN(40) {
		line := templates[r.IntN(len(templates))]()
		if seen[line] {
			continue
		}
		seen[line] = true
		out = append(out, tuple.MustParse(line))
	}
	return out
}

// TestLookupResourcesAgreesWithCheckRandom: on random graphs, the set
// LookupResources returns (with each result's permissionship) equals the set
// of objects on which Check says yes or conditional, for every type,
// permission and subject, with and without caveat context.
func TestLookupResourcesAgreesWithCheckRandom(t *testing.T) {
	s, err := schema.Compile("random.zed", randomSchema)
	if err != nil {
		t.Fatal(err)
	}
	seeds := 40 // about 15 s under -race; AMBIT_RANDOM_SEEDS=2000 for a long run
	if n, err := strconv.Atoi(os.Getenv("AMBIT_RANDOM_SEEDS")); err == nil && n > 0 {
		seeds = n
	}
	ctx := context.Background()
	subjects := []tuple.SubjectRef{{Type: "user", ID: "*"}}
	for i := range 6 {
		subjects = append(subjects, tuple.SubjectRef{Type: "user", ID: fmt.Sprint("u", i)})
	}
	for i := range 4 {
		subjects = append(subjects, tuple.SubjectRef{Type: "group", ID: fmt.Sprint("g", i), Relation: "member"})
	}
	objects := map[string][]string{"group": {"g0", "g1", "g2", "g3"}, "folder": {"f0", "f1", "f2", "f3"}, "doc": {"d0", "d1", "d2", "d3", "d4", "d5"}}
	compared := 0
	for seed := range seeds {
		rels := randomRels(rand.New(rand.NewPCG(uint64(seed), 7)))
		// Odd seeds stream every lookup whose target leads nowhere (see
		// engine/stream.go), even ones sort small answers.
		eng, err := engine.New(engine.Config{LookupStreamAfter: -(seed % 2)})
		if err != nil {
			t.Fatal(err)
		}
		m := enginetest.NewMemory(rels...)
		v := eng.View(s, m, m.Snapshot(1))
		for _, typ := range []string{"group", "folder", "doc"} {
			for perm := range s.Definitions[typ].Relations {
				for _, subj := range subjects {
					for _, cctx := range []map[string]any{nil, {"x": 5}} {
						want := map[string]string{}
						for _, id := range objects[typ] {
							res, err := v.Check(ctx, engine.CheckRequest{Resource: tuple.ObjectRef{Type: typ, ID: id}, Permission: perm, Subject: subj, Context: cctx})
							if err != nil {
								t.Fatal(err)
							}
							if res.Permissionship != engine.NoPermission {
								want[id] = res.Permissionship.String()
							}
						}
						got := map[string]string{}
						var order []string
						lreq := engine.LookupResourcesRequest{ResourceType: typ, Permission: perm, Subject: subj, Context: cctx}
						for r, err := range v.LookupResources(ctx, lreq) {
							if err != nil {
								t.Fatal(err)
							}
							got[r.ID] = r.Permissionship.String()
							order = append(order, r.ID)
						}
						if fmt.Sprint(got) != fmt.Sprint(want) {
							t.Fatalf("seed %d: LookupResources(%s#%s@%s, %v) = %v, Check says %v\nrelationships:\n%v", seed, typ, perm, subj, cctx, got, want, rels)
						}
						if !slices.IsSorted(order) {
							t.Fatalf("seed %d: LookupResources(%s#%s@%s, %v) out of order: %v", seed, typ, perm, subj, cctx, order)
						}
						// Pages of two, each resuming after the last id, give
						// the same list.
						var paged []string
						for {
							lreq.Limit = 2
							n := 0
							for r, err := range v.LookupResources(ctx, lreq) {
								if err != nil {
									t.Fatal(err)
								}
								paged = append(paged, r.ID)
								lreq.After = r.ID
								n++
							}
							if n > 2 {
								t.Fatalf("seed %d: a page of limit 2 had %d results", seed, n)
							}
							if n < 2 {
								break
							}
						}
						if !slices.Equal(paged, order) {
							t.Fatalf("seed %d: LookupResources(%s#%s@%s, %v) in pages of 2 = %v, in one = %v\nrelationships:\n%v", seed, typ, perm, subj, cctx, paged, order, rels)
						}
						compared++
					}
				}
			}
		}
		eng.Close()
	}
	t.Logf("%d lookups compared with Check", compared)
}

// TestLookupSubjectsAgreesWithCheckRandom: on random graphs, every concrete
// subject LookupSubjects returns has Check's answer; every user Check allows
// is returned, or covered by a returned wildcard that does not exclude them;
// every excluded user is denied by Check.
func TestLookupSubjectsAgreesWithCheckRandom(t *testing.T) {
	s, err := schema.Compile("random.zed", randomSchema)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	objects := map[string][]string{"group": {"g0", "g1", "g2", "g3"}, "folder": {"f0", "f1", "f2", "f3"}, "doc": {"d0", "d1", "d2", "d3", "d4", "d5"}}
	for seed := range 40 {
		rels := randomRels(rand.New(rand.NewPCG(uint64(seed), 11)))
		eng, err := engine.New(engine.Config{})
		if err != nil {
			t.Fatal(err)
		}
		m := enginetest.NewMemory(rels...)
		v := eng.View(s, m, m.Snapshot(1))
		for typ, ids := range objects {
			for perm := range s.Definitions[typ].Relations {
				for _, id := range ids {
					res := tuple.ObjectRef{Type: typ, ID: id}
					got := map[string]engine.LookupResult{}
					for r, err := range v.LookupSubjects(ctx, engine.LookupSubjectsRequest{Resource: res, Permission: perm, SubjectType: "user"}) {
						if err != nil {
							t.Fatal(err)
						}
						got[r.ID] = r
					}
					for u := range 6 {
						uid := fmt.Sprint("u", u)
						c, err := v.Check(ctx, engine.CheckRequest{Resource: res, Permission: perm, Subject: tuple.SubjectRef{Type: "user", ID: uid}})
						if err != nil {
							t.Fatal(err)
						}
						r, listed := got[uid]
						w, wild := got[tuple.Wildcard]
						excluded := wild && slices.Contains(w.Excluded, uid)
						switch {
						case listed && r.Permissionship != c.Permissionship:
							t.Fatalf("seed %d: %s#%s: LookupSubjects says %s %v, Check %v\n%v", seed, res, perm, uid, r.Permissionship, c.Permissionship, rels)
						case excluded && c.Permissionship == engine.HasPermission:
							t.Fatalf("seed %d: %s#%s: wildcard excludes %s, Check allows\n%v", seed, res, perm, uid, rels)
						case c.Permissionship != engine.NoPermission && !listed && (!wild || excluded):
							t.Fatalf("seed %d: %s#%s: Check gives %s %v, LookupSubjects misses it: %v\n%v", seed, res, perm, uid, c.Permissionship, got, rels)
						}
					}
				}
			}
		}
		eng.Close()
	}
}

// TestLookupSubjectsFollowsOnlyRelevantRelations: subjects reachable from
// the resource only through relations that cannot grant the permission are
// no answers, even when a wildcard grants it to everybody (SpiceDB returns
// the wildcard alone).
func TestLookupSubjectsFollowsOnlyRelevantRelations(t *testing.T) {
	v := newView(t, `
definition user {}
definition group {
	relation member: user
}
definition code {
	relation group: group
	relation bearer: user:*
	permission redeem = bearer
}`, `
code:c1#group@group:lab
group:lab#member@user:ana
code:c1#bearer@user:*
`, engine.Config{})
	var got []string
	for r, err := range v.LookupSubjects(context.Background(), engine.LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "code", ID: "c1"}, Permission: "redeem", SubjectType: "user"}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.ID)
	}
	if !slices.Equal(got, []string{"*"}) {
		t.Fatalf("LookupSubjects(code:c1#redeem) = %v, want [*]", got)
	}
}
