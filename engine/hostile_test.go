package engine_test

// Requests built to exhaust the engine (issue 16: exponential checks over
// lattices with a back-edge, trees expanded from DAGs) and the rule that a
// definite answer wins over an error in another branch (issue 18).

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// latticeSchema has two types so that each step dispatches to one object of
// each (checks batch ids per type: one type would make the lattice linear).
const latticeSchema = `definition user {}
definition lat_a {
	relation next_a: lat_a
	relation next_b: lat_b
	relation viewer: user
	permission view = viewer + next_a->view + next_b->view
}
definition lat_b {
	relation next_a: lat_a
	relation next_b: lat_b
	relation viewer: user
	permission view = viewer + next_a->view + next_b->view
}`

// lattice returns levels+1 levels of two objects (lat_a:iN, lat_b:iN), each pointing
// to both objects of the next level, and an edge from the last level back to
// lat_a:i0: every path through it is cut there, so no result below the root
// is independent of the path that reached it.
func lattice(levels int, viewer string) string {
	var b strings.Builder
	for i := 0; i < levels; i++ {
		for _, t := range []string{"lat_a", "lat_b"} {
			fmt.Fprintf(&b, "%s:i%d#next_a@lat_a:i%d\n%s:i%d#next_b@lat_b:i%d\n", t, i, i+1, t, i, i+1)
		}
	}
	fmt.Fprintf(&b, "lat_a:i%d#next_a@lat_a:i0\n", levels)
	if viewer != "" {
		fmt.Fprintf(&b, "%s#viewer@user:ana\n", viewer)
	}
	return b.String()
}

func checkLattice(v *engine.View, ctx context.Context, res, subj string) (engine.CheckResult, error) {
	obj, err := tuple.ParseObject(res)
	if err != nil {
		return engine.CheckResult{}, err
	}
	return v.Check(ctx, engine.CheckRequest{Resource: obj, Permission: "view",
		Subject: tuple.SubjectRef{Type: "user", ID: subj}})
}

// TestLatticeWithBackEdgeIsLinear: results computed under a cut cycle are
// reused within the request, so a check over a 2-wide lattice dispatches a
// few times per object instead of once per path (2^levels).
func TestLatticeWithBackEdgeIsLinear(t *testing.T) {
	const levels = 16
	for _, tc := range []struct {
		name, viewer, subj string
		want               engine.Permissionship
	}{
		{"no", "", "ana", engine.NoPermission},
		{"deepest", fmt.Sprintf("lat_b:i%d", levels), "ana", engine.HasPermission},
		{"other subject", fmt.Sprintf("lat_b:i%d", levels), "bob", engine.NoPermission},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, cache := range []int64{0, -1} { // with and without the shared result cache
				v := newView(t, latticeSchema, lattice(levels, tc.viewer), engine.Config{MaxDepth: 200, CacheMaxCost: cache})
				r, err := checkLattice(v, context.Background(), "lat_a:i0", tc.subj)
				if err != nil {
					t.Fatal(err)
				}
				if r.Permissionship != tc.want {
					t.Fatalf("cache %d: %v, want %v", cache, r.Permissionship, tc.want)
				}
				if limit := 8 * (levels + 1); r.Stats.Dispatches > limit {
					t.Fatalf("cache %d: %d dispatches over %d objects, want at most %d", cache, r.Stats.Dispatches, 2*(levels+1), limit)
				}
			}
		})
	}
}

// TestCheckBudgets: a check that needs more sub-problems, relationship
// reads or caveat cost than its budget fails with a *BudgetError naming the
// budget and its limit (the API maps it to ResourceExhausted).
func TestCheckBudgets(t *testing.T) {
	const caveated = `caveat heavy(xs list<int>) { xs.all(x, xs.all(y, x + y >= 0)) }
definition user {}
definition group {
	relation member: user | user with heavy | group#member
}`
	var chain strings.Builder
	for i := range 30 {
		fmt.Fprintf(&chain, "group:g%d#member@group:g%d#member\n", i, i+1)
	}
	chain.WriteString("group:g30#member@user:ana\n")
	var heavy strings.Builder
	heavy.WriteString(`group:h#member@user:ana[heavy:{"xs":[`)
	for i := range 30 {
		if i > 0 {
			heavy.WriteByte(',')
		}
		fmt.Fprint(&heavy, i)
	}
	heavy.WriteString("]}]\n")
	for _, tc := range []struct {
		name, rels, res string
		cfg             engine.Config
		budget          string
		limit           int64
	}{
		{"dispatches", chain.String(), "g0", engine.Config{MaxDispatches: 10}, engine.BudgetDispatches, 10},
		{"reads", chain.String(), "g0", engine.Config{MaxReads: 5}, engine.BudgetReads, 5},
		{"caveat cost per check", heavy.String(), "h", engine.Config{MaxCaveatCost: 1000}, engine.BudgetCaveatCost, 1000},
		{"caveat cost per evaluation", strings.ReplaceAll(heavy.String(), "]}]", ","+strings.Repeat("1,", 700)+"1]}]"), "h", engine.Config{}, engine.BudgetCaveatCost, 100_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newView(t, caveated, tc.rels, tc.cfg)
			_, err := v.Check(context.Background(), engine.CheckRequest{Resource: tuple.ObjectRef{Type: "group", ID: tc.res}, Permission: "member", Subject: tuple.SubjectRef{Type: "user", ID: "ana"}})
			var be *engine.BudgetError
			if !errors.As(err, &be) {
				t.Fatalf("err = %v, want a *BudgetError", err)
			}
			if be.Budget != tc.budget || be.Limit != tc.limit || !strings.Contains(err.Error(), tc.budget) {
				t.Fatalf("err = %v (budget %q, limit %d), want budget %q, limit %d", err, be.Budget, be.Limit, tc.budget, tc.limit)
			}
		})
	}
	// Within its budgets the same check answers.
	v := newView(t, caveated, chain.String(), engine.Config{MaxDispatches: 100})
	if r, err := v.Check(context.Background(), engine.CheckRequest{Resource: tuple.ObjectRef{Type: "group", ID: "g0"}, Permission: "member", Subject: tuple.SubjectRef{Type: "user", ID: "ana"}}); err != nil || r.Permissionship != engine.HasPermission {
		t.Fatalf("within budget: %v, %v", r.Permissionship, err)
	}
}

// TestDefiniteAnswerWins: a branch that fails (here: deeper than MaxDepth)
// does not decide a union another branch grants, an intersection another
// branch denies, or an exclusion whose subtracted side grants. Lookups agree.
func TestDefiniteAnswerWins(t *testing.T) {
	const s = `definition user {}
definition group {
	relation member: user | group#member
}
definition doc {
	relation deep: group#member
	relation viewer: user
	relation banned: user
	permission either = deep + viewer
	permission viewer_first = viewer + deep
	permission both = deep & viewer
	permission deep_unless_banned = deep - banned
	permission viewer_unless_deep = viewer - deep
}`
	var b strings.Builder
	for i := range 20 {
		fmt.Fprintf(&b, "group:g%d#member@group:g%d#member\n", i, i+1)
	}
	b.WriteString("doc:d#deep@group:g0#member\ndoc:d#viewer@user:ana\ndoc:d#banned@user:ana\n")
	ctx := context.Background()
	for _, tc := range []struct {
		perm, subj string
		want       engine.Permissionship
		wantErr    bool
	}{
		{"either", "ana", engine.HasPermission, false},
		{"viewer_first", "ana", engine.HasPermission, false},
		{"either", "bob", 0, true}, // no branch grants: the error stands
		{"both", "bob", engine.NoPermission, false},
		{"both", "ana", 0, true},
		{"deep_unless_banned", "ana", engine.NoPermission, false},
		{"deep_unless_banned", "bob", 0, true},
		{"viewer_unless_deep", "bob", engine.NoPermission, false},
		{"viewer_unless_deep", "ana", 0, true},
	} {
		t.Run(tc.perm+"@"+tc.subj, func(t *testing.T) {
			v := newView(t, s, b.String(), engine.Config{MaxDepth: 8})
			r, err := v.Check(ctx, engine.CheckRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "d"}, Permission: tc.perm, Subject: tuple.SubjectRef{Type: "user", ID: tc.subj}})
			if tc.wantErr {
				if !errors.Is(err, engine.ErrMaxDepth) {
					t.Fatalf("= %v, %v; want ErrMaxDepth", r.Permissionship, err)
				}
				return
			}
			if err != nil || r.Permissionship != tc.want {
				t.Fatalf("= %v, %v; want %v", r.Permissionship, err, tc.want)
			}
		})
	}
	v := newView(t, s, b.String(), engine.Config{MaxDepth: 8})
	var subjects []string
	for r, err := range v.LookupSubjects(ctx, engine.LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: "d"}, Permission: "either", SubjectType: "user"}) {
		if err != nil {
			t.Fatalf("LookupSubjects(doc:d#either): %v", err)
		}
		subjects = append(subjects, r.ID)
	}
	if len(subjects) != 1 || subjects[0] != "ana" {
		t.Fatalf("LookupSubjects(doc:d#either) = %v, want [ana]", subjects)
	}
	var resources []string
	for r, err := range v.LookupResources(ctx, engine.LookupResourcesRequest{ResourceType: "doc", Permission: "viewer_first", Subject: tuple.SubjectRef{Type: "user", ID: "ana"}}) {
		if err != nil {
			t.Fatalf("LookupResources(doc#viewer_first@user:ana): %v", err)
		}
		resources = append(resources, r.ID)
	}
	if len(resources) != 1 || resources[0] != "d" {
		t.Fatalf("LookupResources(doc#viewer_first@user:ana) = %v, want [d]", resources)
	}
}

// TestExpandBudgets: Expand of an acyclic lattice (two objects per level,
// each pointing to both of the next) is a tree of 2^levels leaves. It
// shares the subtrees it reaches twice, and refuses, with a *BudgetError
// naming the budget, a tree larger than its budgets (issue 16: 81
// relationships took 3.5 GiB).
func TestExpandBudgets(t *testing.T) {
	const s = `definition user {}
definition node {
	relation next: node
	relation viewer: user
	permission view = viewer + next->view
}`
	lat := func(levels int) string {
		var b strings.Builder
		for i := range levels {
			for _, x := range []string{"a", "b"} {
				fmt.Fprintf(&b, "node:%s%d#next@node:a%d\nnode:%s%d#next@node:b%d\n", x, i, i+1, x, i, i+1)
			}
		}
		b.WriteString("node:a0#viewer@user:ana\n")
		return b.String()
	}
	ctx := context.Background()
	root := tuple.ObjectRef{Type: "node", ID: "a0"}
	for _, tc := range []struct {
		name   string
		cfg    engine.Config
		budget string
	}{
		{"nodes", engine.Config{MaxExpandNodes: 10_000}, engine.BudgetExpandNodes},
		{"bytes", engine.Config{MaxExpandBytes: 1 << 20}, engine.BudgetExpandBytes},
		{"defaults", engine.Config{}, engine.BudgetExpandNodes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newView(t, s, lat(20), tc.cfg) // 80 relationships, 2^20 paths
			_, err := v.Expand(ctx, root, "view")
			var be *engine.BudgetError
			if !errors.As(err, &be) || be.Budget != tc.budget {
				t.Fatalf("err = %v, want the %s budget", err, tc.budget)
			}
		})
	}
	// Within the budget, a subtree reached twice is one node in memory.
	v := newView(t, s, lat(6), engine.Config{})
	n, err := v.Expand(ctx, root, "view")
	if err != nil {
		t.Fatal(err)
	}
	arrow := func(n *engine.ExpandNode) []*engine.ExpandNode { return n.Children[1].Children }
	viaA, viaB := arrow(arrow(n)[0]), arrow(arrow(n)[1]) // a0 -> a1 -> {a2, b2}, a0 -> b1 -> {a2, b2}
	if len(viaA) != 2 || len(viaB) != 2 || viaA[0] != viaB[0] || viaA[1] != viaB[1] {
		t.Fatalf("the subtrees of a2 and b2 are not shared: %v %v", viaA, viaB)
	}
	if leaf := n.Children[0]; leaf.Kind != engine.ExpandLeaf || len(leaf.Subjects) != 1 || leaf.Subjects[0].Subject.ID != "ana" {
		t.Fatalf("viewer leaf = %+v", leaf)
	}
}

// cancellingReader cancels the request's context at its n-th query and
// counts the queries made after that.
type cancellingReader struct {
	engine.Reader
	n       int
	cancel  context.CancelFunc
	queries int
	after   int
}

func (r *cancellingReader) Query(ctx context.Context, f tuple.Filter) iter.Seq2[tuple.Relationship, error] {
	r.queries++
	if r.queries == r.n {
		r.cancel()
	} else if r.queries > r.n {
		r.after++
	}
	return r.Reader.Query(ctx, f)
}

// TestEvaluationStopsWhenContextEnds: a check and an expand whose context
// ends halfway stop within a few reads with the context's error, although
// the branches left would take thousands of reads.
func TestEvaluationStopsWhenContextEnds(t *testing.T) {
	m := enginetest.MustParse(strings.Split(strings.TrimSpace(lattice(12, "")), "\n")...)
	s, err := schema.Compile("lattice.zed", latticeSchema)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"check", "expand"} {
		t.Run(op, func(t *testing.T) {
			// No caches and no memo to speak of: every branch reads.
			eng, err := engine.New(engine.Config{CacheMaxCost: -1, ReadCacheMaxCost: -1, MaxDepth: 200, MaxExpandNodes: 1 << 30, MaxExpandBytes: 1 << 40})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := &cancellingReader{Reader: m, n: 10, cancel: cancel}
			v := eng.View(s, r, m.Snapshot(1))
			obj := tuple.ObjectRef{Type: "lat_a", ID: "i0"}
			if op == "check" {
				_, err = v.Check(ctx, engine.CheckRequest{Resource: obj, Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: "ana"}})
			} else {
				_, err = v.Expand(ctx, obj, "view")
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if r.after > 5 {
				t.Fatalf("%d queries after the context ended", r.after)
			}
		})
	}
}
