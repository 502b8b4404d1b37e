package engine_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// leopardSchema nests groups in groups plainly, under a caveat and with an
// expiration, through teams (a cycle of two relations the index does not
// hold), with wildcards (which the schema language keeps out of nested
// groups), exclusion, intersection and arrows above them.
const leopardSchema = `
use expiration

caveat big(x int) { x > 1 }

definition user {}

definition team {
	relation member: user | group#member
}

definition group {
	relation member: user | user with big | group#member | group#member with big | group#member with expiration | team#member
	relation banned: user
	permission active = member - banned
}

definition folder {
	relation parent: folder
	relation viewer: user | group#member | group#active
	permission view = viewer + parent->view
}

definition doc {
	relation folder: folder
	relation viewer: user | user:* | group#member | group#active
	relation editor: group#member
	permission view = viewer + folder->view
	permission strict = viewer & editor
}
`

// leopardT0 is the time the oracle's views judge expiration at; leopardLater
// is a second time at which the relationships live at leopardT0 have expired.
var (
	leopardT0    = time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	leopardLater = leopardT0.Add(2 * time.Hour)
)

// leopardHistory is a random sequence of revisions over a small nested
// graph: revision 1 holds an initial set of relationships, each later one
// writes and deletes a few. Some revisions change only memberships of
// users, so the index's graph stays valid across them; others change the
// nesting.
type leopardHistory struct {
	states  []map[tuple.Key]tuple.Relationship // by revision (index 0 unused)
	changes [][]engine.IndexChange             // by revision
}

func randomNesting(r *rand.Rand, groups int) func(nesting bool) tuple.Relationship {
	g := func() string { return "g" + strconv.Itoa(r.IntN(groups)) }
	u := func() string { return "user:u" + strconv.Itoa(r.IntN(4)) }
	exp := func() string {
		if r.IntN(2) == 0 {
			return "[expiration:" + leopardT0.Add(-time.Hour).Format(time.RFC3339) + "]" // expired
		}
		return "[expiration:" + leopardT0.Add(time.Hour).Format(time.RFC3339) + "]" // live until leopardLater
	}
	cav := func() string { return `[big:{"x":` + strconv.Itoa(r.IntN(3)) + `}]` }
	nest := []func() string{
		func() string { return "group:" + g() + "#member@group:" + g() + "#member" },
		func() string { return "group:" + g() + "#member@group:" + g() + "#member" },
		func() string { return "group:" + g() + "#member@group:" + g() + "#member" },
		func() string { return "group:" + g() + "#member@group:" + g() + "#member" + cav() },
		func() string { return "group:" + g() + "#member@group:" + g() + "#member[big]" },
		func() string { return "group:" + g() + "#member@group:" + g() + "#member" + exp() },
		func() string { return "group:" + g() + "#member@team:t" + strconv.Itoa(r.IntN(3)) + "#member" },
		func() string { return "team:t" + strconv.Itoa(r.IntN(3)) + "#member@group:" + g() + "#member" },
	}
	other := []func() string{
		func() string { return "group:" + g() + "#member@" + u() },
		func() string { return "group:" + g() + "#member@" + u() },
		func() string { return "group:" + g() + "#member@" + u() + cav() },
		func() string { return "doc:d" + strconv.Itoa(r.IntN(4)) + "#viewer@user:*" },
		func() string { return "group:" + g() + "#banned@" + u() },
		func() string { return "team:t" + strconv.Itoa(r.IntN(3)) + "#member@" + u() },
		func() string { return "folder:f" + strconv.Itoa(r.IntN(3)) + "#viewer@group:" + g() + "#member" },
		func() string { return "folder:f" + strconv.Itoa(r.IntN(3)) + "#viewer@group:" + g() + "#active" },
		func() string {
			return "folder:f" + strconv.Itoa(r.IntN(3)) + "#parent@folder:f" + strconv.Itoa(r.IntN(3))
		},
		func() string { return "doc:d" + strconv.Itoa(r.IntN(4)) + "#folder@folder:f" + strconv.Itoa(r.IntN(3)) },
		func() string { return "doc:d" + strconv.Itoa(r.IntN(4)) + "#viewer@group:" + g() + "#member" },
		func() string { return "doc:d" + strconv.Itoa(r.IntN(4)) + "#viewer@group:" + g() + "#active" },
		func() string { return "doc:d" + strconv.Itoa(r.IntN(4)) + "#editor@group:" + g() + "#member" },
		func() string { return "doc:d" + strconv.Itoa(r.IntN(4)) + "#viewer@" + u() },
	}
	return func(nesting bool) tuple.Relationship {
		if nesting {
			return tuple.MustParse(nest[r.IntN(len(nest))]())
		}
		return tuple.MustParse(other[r.IntN(len(other))]())
	}
}

func newLeopardHistory(r *rand.Rand, groups, revisions int) *leopardHistory {
	gen := randomNesting(r, groups)
	h := &leopardHistory{states: []map[tuple.Key]tuple.Relationship{nil, {}}, changes: [][]engine.IndexChange{nil, nil}}
	for range 15 + r.IntN(30) {
		rel := gen(r.IntN(2) == 0)
		h.states[1][rel.Key()] = rel
	}
	for range revisions - 1 {
		state := maps.Clone(h.states[len(h.states)-1])
		nesting := r.IntN(3) > 0 // a third of the revisions leave the nesting alone
		var changes []engine.IndexChange
		for range 1 + r.IntN(4) {
			if r.IntN(3) == 0 && len(state) > 0 {
				// Delete an existing relationship of the revision's kind
				// (an absent one now and then).
				keys := slices.SortedFunc(maps.Keys(state), func(a, b tuple.Key) int { return strings.Compare(a.String(), b.String()) })
				victim := state[keys[r.IntN(len(keys))]]
				if isNesting(victim) != nesting && r.IntN(4) > 0 {
					continue
				}
				delete(state, victim.Key())
				changes = append(changes, engine.IndexChange{Delete: true, Rel: victim})
				continue
			}
			rel := gen(nesting)
			state[rel.Key()] = rel
			changes = append(changes, engine.IndexChange{Rel: rel})
		}
		h.states = append(h.states, state)
		h.changes = append(h.changes, changes)
	}
	return h
}

func isNesting(rel tuple.Relationship) bool {
	return rel.Resource.Type == rel.Subject.Type && rel.Relation == rel.Subject.Relation
}

// reader returns the data at rev, judging expiration at now.
func (h *leopardHistory) reader(rev int, now time.Time) *enginetest.Memory {
	m := enginetest.NewMemory(slices.Collect(maps.Values(h.states[rev]))...)
	m.Now = func() time.Time { return now }
	return m
}

// TestLeopardAgreesWithWalk is the index's oracle: on random nested graphs
// with cycles, wildcards, caveated and expiring nesting edges, revision
// after revision, every Check, LookupResources, LookupSubjects (its
// candidates too) and ResourceAccess of an
// engine with the index answers as an engine without it (which walks the
// nesting level by level), at the revision just applied and at earlier
// ones (which the index must not answer when its graph differs), at
// two times (before and after the expiring edges expire).
func TestLeopardAgreesWithWalk(t *testing.T) {
	s, err := schema.Compile("leopard.zed", leopardSchema)
	if err != nil {
		t.Fatal(err)
	}
	// Keep every closure of two objects or more, so that the small graphs
	// exercise the closures the index keeps as well as those it computes.
	defer engine.SetLeopardMemoMin(2)()
	seeds := 2 // about 30 s under -race; AMBIT_RANDOM_SEEDS=500 for a long run
	if n, err := strconv.Atoi(os.Getenv("AMBIT_RANDOM_SEEDS")); err == nil && n > 0 {
		seeds = n
	}
	const groups, revisions = 6, 7
	ctx := context.Background()
	var subjects []tuple.SubjectRef
	for i := range 4 {
		subjects = append(subjects, tuple.SubjectRef{Type: "user", ID: "u" + strconv.Itoa(i)})
	}
	subjects = append(subjects, tuple.SubjectRef{Type: "user", ID: "*"})
	for i := range groups {
		subjects = append(subjects, tuple.SubjectRef{Type: "group", ID: "g" + strconv.Itoa(i), Relation: "member"})
	}
	subjects = append(subjects, tuple.SubjectRef{Type: "team", ID: "t0", Relation: "member"})
	objects := map[string][]string{"group": nil, "folder": {"f0", "f1", "f2"}, "doc": {"d0", "d1", "d2", "d3"}, "team": {"t0", "t1", "t2"}}
	for i := range groups {
		objects["group"] = append(objects["group"], "g"+strconv.Itoa(i))
	}
	var served, compared uint64
	for seed := range seeds {
		h := newLeopardHistory(rand.New(rand.NewPCG(uint64(seed), 26)), groups, revisions)
		// Odd seeds keep a short change log, so that older revisions are
		// answered from the log (undoing later changes) near its floor and
		// walked below it.
		restore := func() {}
		if seed%2 == 1 {
			restore = engine.SetLeopardLogMax(3)
		}
		// One data set per time: an engine's caches assume that the views
		// of one revision judge expiration at times that do not go back.
		for _, now := range []time.Time{leopardT0, leopardLater} {
			served += leopardRun(t, ctx, fmt.Sprintf("seed %d at %s", seed, now.Format(time.Kitchen)), s, h, now, objects, subjects, &compared)
		}
		restore()
	}
	if served == 0 {
		t.Fatal("the index answered no check: the oracle compared the walk with itself")
	}
	t.Logf("%d answers compared; the index answered %d nestings", compared, served)
}

// leopardRun follows h with an index, comparing at every revision applied
// the views at it and at earlier revisions with those of an engine
// without the index. It returns how many nestings the index answered.
func leopardRun(t *testing.T, ctx context.Context, what string, s *schema.Schema, h *leopardHistory, now time.Time, objects map[string][]string, subjects []tuple.SubjectRef, compared *uint64) uint64 {
	t.Helper()
	src := engine.NewSource()
	// Two engines with the index: one with the result cache, read at the
	// revision just applied; one without, read at earlier revisions (the
	// cache would answer those from the time they were current).
	var engines [2]*engine.Engine
	var idxs [2]*engine.Leopard
	for i, cfg := range []engine.Config{{}, {CacheMaxCost: -1}} {
		e, err := engine.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		engines[i], idxs[i] = e, e.Leopard(src)
		// Built from revision 1 with expired relationships shown (as
		// store.Snapshot.WithExpired does).
		if err := idxs[i].Build(ctx, h.reader(1, time.Time{}), s, 1); err != nil {
			t.Fatal(err)
		}
	}
	for rev := 1; rev < len(h.states); rev++ {
		for _, idx := range idxs {
			if rev == 1 {
				break
			}
			// One revision in two pieces, as the change feed may deliver
			// it: the index answers at rev only after both.
			ch := h.changes[rev]
			if err := idx.Apply(tuple.Revision(rev), ch[:len(ch)/2], true); err != nil {
				t.Fatal(err)
			}
			if got, _ := idx.Through(); got != tuple.Revision(rev-1) {
				t.Fatalf("%s: after the first piece of revision %d the index is through %d", what, rev, got)
			}
			if err := idx.Apply(tuple.Revision(rev), ch[len(ch)/2:], false); err != nil {
				t.Fatal(err)
			}
		}
		// A fresh walking engine per revision: its caches cannot hide a
		// difference.
		walk, err := engine.New(engine.Config{LeopardMaxEdges: -1})
		if err != nil {
			t.Fatal(err)
		}
		// The revision applied, the one before (which the index answers
		// only when rev left the nesting alone) and the first.
		for _, at := range slices.Compact([]int{1, max(1, rev-1), rev}) {
			m := h.reader(at, now)
			snap := engine.Snapshot{Source: src, Revision: tuple.Revision(at), Time: now}
			indexed := engines[0]
			if at < rev {
				indexed = engines[1]
			}
			vi, vw := indexed.View(s, m, snap), walk.View(s, m, snap)
			*compared += compareViews(t, ctx, fmt.Sprintf("%s, index through %d, read at %d", what, rev, at), s, vi, vw, objects, subjects, h.states[at])
		}
	}
	return idxs[0].Stats().Served + idxs[1].Stats().Served
}

// compareViews compares every check and lookup of vi (with the index) and vw
// (without) on the given objects and subjects and returns how many it
// compared.
func compareViews(t *testing.T, ctx context.Context, what string, s *schema.Schema, vi, vw *engine.View, objects map[string][]string, subjects []tuple.SubjectRef, state map[tuple.Key]tuple.Relationship) uint64 {
	t.Helper()
	dump := func() string {
		var lines []string
		for _, r := range state {
			lines = append(lines, r.String())
		}
		slices.Sort(lines)
		return strings.Join(lines, "\n")
	}
	var n uint64
	for _, typ := range slices.Sorted(maps.Keys(objects)) {
		for _, perm := range slices.Sorted(maps.Keys(s.Definitions[typ].Relations)) {
			for _, cctx := range []map[string]any{nil, {"x": 5}} {
				for _, subj := range subjects {
					for _, id := range objects[typ] {
						req := engine.CheckRequest{Resource: tuple.ObjectRef{Type: typ, ID: id}, Permission: perm, Subject: subj, Context: cctx}
						gi, ei := vi.Check(ctx, req)
						gw, ew := vw.Check(ctx, req)
						if (ei == nil) != (ew == nil) {
							t.Fatalf("%s: Check(%s#%s@%s, %v): error %v with the index, %v without\n%s", what, req.Resource, perm, subj, cctx, ei, ew, dump())
						}
						if gi.Permissionship != gw.Permissionship || !slices.Equal(gi.Missing, gw.Missing) {
							t.Fatalf("%s: Check(%s#%s@%s, %v) = %s %v with the index, %s %v without\n%s", what, req.Resource, perm, subj, cctx, gi.Permissionship, gi.Missing, gw.Permissionship, gw.Missing, dump())
						}
						n++
					}
					lr := engine.LookupResourcesRequest{ResourceType: typ, Permission: perm, Subject: subj, Context: cctx}
					li, lw := lookupAll(vi.LookupResources(ctx, lr)), lookupAll(vw.LookupResources(ctx, lr))
					if li != lw {
						t.Fatalf("%s: LookupResources(%s#%s@%s, %v) = %s with the index, %s without\n%s", what, typ, perm, subj, cctx, li, lw, dump())
					}
					n++
				}
				for _, id := range objects[typ] {
					for _, st := range []string{"user", "group"} {
						req := engine.LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: typ, ID: id}, Permission: perm, SubjectType: st, Context: cctx}
						if st == "group" {
							req.SubjectRelation = "member"
						}
						li, lw := lookupAll(vi.LookupSubjects(ctx, req)), lookupAll(vw.LookupSubjects(ctx, req))
						if li != lw {
							t.Fatalf("%s: LookupSubjects(%s:%s#%s, %s, %v) = %s with the index, %s without\n%s", what, typ, id, perm, st, cctx, li, lw, dump())
						}
						// The candidates themselves, not only the
						// answers Check makes of them: the index must
						// not lose one to a wrong closure.
						ci, wi, ei := engine.LookupSubjectsCandidates(ctx, vi, req)
						cw, ww, ew := engine.LookupSubjectsCandidates(ctx, vw, req)
						if !slices.Equal(ci, cw) || wi != ww || fmt.Sprint(ei) != fmt.Sprint(ew) {
							t.Fatalf("%s: LookupSubjects(%s:%s#%s, %s) candidates %v %v %v with the index, %v %v %v without\n%s", what, typ, id, perm, st, ci, wi, ei, cw, ww, ew, dump())
						}
						n++
					}
				}
				if cctx != nil {
					continue
				}
				// Effective access: every relation and permission ranked
				// in schema order, with the candidates of both walks.
				for _, id := range objects[typ] {
					req := engine.ResourceAccessRequest{Resource: tuple.ObjectRef{Type: typ, ID: id}, Ranks: s.Definitions[typ].Order, SubjectType: "user", Context: cctx}
					ai, aw := accessAll(vi.ResourceAccess(ctx, req)), accessAll(vw.ResourceAccess(ctx, req))
					if ai != aw {
						t.Fatalf("%s: ResourceAccess(%s:%s) = %s with the index, %s without\n%s", what, typ, id, ai, aw, dump())
					}
					for _, sub := range []bool{false, true} {
						ci, wi, ei := engine.ResourceAccessCandidates(ctx, vi, req, sub)
						cw, ww, ew := engine.ResourceAccessCandidates(ctx, vw, req, sub)
						if !slices.Equal(ci, cw) || wi != ww || fmt.Sprint(ei) != fmt.Sprint(ew) {
							t.Fatalf("%s: ResourceAccess(%s:%s) candidates (subtracted %v) %v %v %v with the index, %v %v %v without\n%s", what, typ, id, sub, ci, wi, ei, cw, ww, ew, dump())
						}
					}
					n++
				}
			}
		}
	}
	return n
}

func accessAll(seq func(func(engine.Access, error) bool)) string {
	var b strings.Builder
	for a, err := range seq {
		if err != nil {
			fmt.Fprintf(&b, "error: %v", err)
			break
		}
		fmt.Fprintf(&b, "%s:%s:%s%v%v%v ", a.Subject, a.Permission, a.Permissionship, a.Missing, a.Excluded, a.Proof)
	}
	return b.String()
}

func lookupAll(seq func(func(engine.LookupResult, error) bool)) string {
	var b strings.Builder
	for r, err := range seq {
		if err != nil {
			fmt.Fprintf(&b, "error: %v", err)
			break
		}
		fmt.Fprintf(&b, "%s:%s%v%v ", r.ID, r.Permissionship, r.Missing, r.Excluded)
	}
	return b.String()
}

// Past Config.LeopardMaxEdges the index refuses to build, or empties itself
// when an applied revision takes it over, and checks walk with the same
// answers.
func TestLeopardEdgeLimit(t *testing.T) {
	s, err := schema.Compile("bench.zed", benchSchema)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	chain := []string{"document:d#viewer@group:g0#member", "group:g0#member@group:g1#member", "group:g1#member@group:g2#member", "group:g2#member@user:ana"}
	third := "group:g2#member@group:g3#member"
	tests := []struct {
		name  string
		build []string // at revision 1
		apply []string // touched at revision 2
	}{
		{"over the limit at build", append(slices.Clone(chain), third), nil},
		{"over the limit at apply", chain, []string{third}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := engine.New(engine.Config{LeopardMaxEdges: 2, CacheMaxCost: -1})
			if err != nil {
				t.Fatal(err)
			}
			src := engine.NewSource()
			idx := e.Leopard(src)
			rels := enginetest.MustParse(append(slices.Clone(tc.build), tc.apply...)...)
			rev := tuple.Revision(1)
			err = idx.Build(ctx, enginetest.MustParse(tc.build...), s, 1)
			if len(tc.apply) > 0 {
				if err != nil {
					t.Fatalf("Build within the limit: %v", err)
				}
				var ch []engine.IndexChange
				for _, r := range tc.apply {
					ch = append(ch, engine.IndexChange{Rel: tuple.MustParse(r)})
				}
				rev = 2
				err = idx.Apply(rev, ch, false)
			}
			if !errors.Is(err, engine.ErrTooMany) {
				t.Fatalf("over the limit: error %v, want ErrTooMany", err)
			}
			st := idx.Stats()
			if st.Ready || !st.OverLimit || st.Edges != 0 {
				t.Fatalf("over the limit: stats %+v, want not ready, over the limit, empty", st)
			}
			v := e.View(s, rels, engine.Snapshot{Source: src, Revision: rev, Time: time.Now()})
			res, err := v.Check(ctx, check("document:d", "view", "user:ana"))
			if err != nil || res.Permissionship != engine.HasPermission {
				t.Fatalf("check over the limit: %v %v, want HAS_PERMISSION", res.Permissionship, err)
			}
			if st := idx.Stats(); st.Served != 0 || st.Fallbacks == 0 {
				t.Fatalf("over the limit the index answered (served %d, fallbacks %d)", st.Served, st.Fallbacks)
			}
		})
	}
}

// Older revisions are answered from the index's change log: each edge
// change (none, plain, caveated, expiring, and back) undone at the
// revision before it, with the answers of the walk.
func TestLeopardUndoesChanges(t *testing.T) {
	s, err := schema.Compile("leopard.zed", leopardSchema)
	if err != nil {
		t.Fatal(err)
	}
	edge := "group:g0#member@group:g1#member"
	states := map[string]string{
		"none":     "",
		"plain":    edge,
		"caveated": edge + "[big]",
		"expiring": edge + "[expiration:" + leopardT0.Add(time.Hour).Format(time.RFC3339) + "]",
		"expired":  edge + "[expiration:" + leopardT0.Add(-time.Hour).Format(time.RFC3339) + "]",
	}
	base := []string{"doc:d0#viewer@group:g0#member", "group:g1#member@group:g2#member", "group:g2#member@user:u0", "group:g1#member@user:u1"}
	ctx := context.Background()
	objects := map[string][]string{"group": {"g0", "g1", "g2"}, "doc": {"d0"}}
	subjects := []tuple.SubjectRef{{Type: "user", ID: "u0"}, {Type: "user", ID: "u1"}, {Type: "group", ID: "g2", Relation: "member"}}
	order := []string{"none", "plain", "caveated", "expiring", "expired"}
	var served, compared uint64
	for _, from := range order {
		for _, to := range order {
			if from == to {
				continue
			}
			// Revision 1 holds the edge as from, 2 as to, 3 as from again.
			h := &leopardHistory{states: []map[tuple.Key]tuple.Relationship{nil}, changes: [][]engine.IndexChange{nil}}
			for i, st := range []string{from, to, from} {
				state := map[tuple.Key]tuple.Relationship{}
				for _, r := range base {
					rel := tuple.MustParse(r)
					state[rel.Key()] = rel
				}
				var changes []engine.IndexChange
				if states[st] != "" {
					rel := tuple.MustParse(states[st])
					state[rel.Key()] = rel
					changes = append(changes, engine.IndexChange{Rel: rel})
				} else {
					changes = append(changes, engine.IndexChange{Delete: true, Rel: tuple.MustParse(edge)})
				}
				h.states = append(h.states, state)
				if i == 0 {
					changes = nil
				}
				h.changes = append(h.changes, changes)
			}
			for _, now := range []time.Time{leopardT0, leopardLater} {
				served += leopardRun(t, ctx, fmt.Sprintf("%s to %s at %s", from, to, now.Format(time.Kitchen)), s, h, now, objects, subjects, &compared)
			}
		}
	}
	if served == 0 {
		t.Fatal("the index answered nothing")
	}
}
