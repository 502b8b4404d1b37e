package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ambit-authz/ambit/schema"
)

func TestPlanCyclic(t *testing.T) {
	s, err := schema.Compile("cyclic.zed", `
definition user {}
definition group {
	relation member: user | group#member
	relation banned: user
	permission active = member - banned
}
definition folder {
	relation parent: folder
	relation owner: user
	permission view = owner + parent->view
	permission own = owner
}
definition doc {
	relation folder: folder
	relation viewer: user | group#active
	permission view = viewer + folder->view
	permission hidden = viewer - folder->view
}
`)
	if err != nil {
		t.Fatal(err)
	}
	p := newPlan(s)
	for _, tt := range []struct {
		typ, rel string
		want     bool
	}{
		{"group", "member", true},   // group#member through group#member
		{"group", "banned", false},  // plain relation
		{"group", "active", false},  // refers to a cycle, is not on one
		{"folder", "view", true},    // parent->view
		{"folder", "own", false},    // owner only
		{"doc", "view", false},      // reaches folder#view's cycle, not itself
		{"doc", "hidden", false},    // the subtracted side counts, and is acyclic here
		{"doc", "viewer", false},    // group#active is not on a cycle through doc#viewer
		{"folder", "parent", false}, // a tupleset relation holds plain objects
	} {
		if got := p.cyclic(tt.typ, tt.rel); got != tt.want {
			t.Errorf("cyclic(%s#%s) = %v, want %v", tt.typ, tt.rel, got, tt.want)
		}
	}
}

// forwardReach is the per-query breadth-first walk canReach replaced, kept
// as the oracle: from typ#rel, is the subject kind reachable?
func forwardReach(p *plan, from, subj relKey) bool {
	seen := map[relKey]bool{from: true}
	queue := []relKey{from}
	push := func(n relKey) {
		if !seen[n] {
			seen[n] = true
			queue = append(queue, n)
		}
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if n == subj {
			return true
		}
		r := p.s.Relation(n.typ, n.rel)
		if r == nil {
			continue
		}
		if !r.IsPermission {
			for _, at := range r.AllowedTypes {
				if at.Type == subj.typ && at.Relation == subj.rel {
					return true
				}
				if at.Relation != "" {
					push(relKey{at.Type, at.Relation})
				}
			}
			continue
		}
		p.walkExpr(n.typ, r.Expr, false, push, nil)
	}
	return false
}

// walksBack is the per-node walk cyclic replaced, kept as the oracle.
func walksBack(p *plan, k relKey) bool {
	seen := map[relKey]bool{}
	queue := []relKey{k}
	found := false
	for len(queue) > 0 && !found {
		n := queue[0]
		queue = queue[1:]
		p.deps(n, true, func(d relKey) {
			if d == k {
				found = true
			}
			if !seen[d] {
				seen[d] = true
				queue = append(queue, d)
			}
		}, nil)
	}
	return found
}

// TestCanReachAgreesWithForwardWalk compares the backward reachability
// tables with a forward walk for every node and subject kind of the schema
// files under schema/testdata/valid and schema/examples, and the cycle
// table with a walk from each node.
func TestCanReachAgreesWithForwardWalk(t *testing.T) {
	files, _ := filepath.Glob("../schema/testdata/valid/*.zed")
	more, _ := filepath.Glob("../schema/examples/*.zed")
	files = append(files, more...)
	if len(files) < 5 {
		t.Fatalf("found %d schema files", len(files))
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := schema.Compile(f, string(src))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		p := newPlan(s)
		var nodes, kinds []relKey
		for _, d := range s.Definitions {
			kinds = append(kinds, relKey{d.Name, ""})
			for _, r := range d.Relations {
				nodes = append(nodes, relKey{d.Name, r.Name})
				kinds = append(kinds, relKey{d.Name, r.Name})
			}
		}
		for _, n := range nodes {
			if got, want := p.cyclic(n.typ, n.rel), walksBack(p, n); got != want {
				t.Errorf("%s: cyclic(%s#%s) = %v, want %v", f, n.typ, n.rel, got, want)
			}
			for _, k := range kinds {
				if got, want := p.canReach(n.typ, n.rel, k.typ, k.rel), forwardReach(p, n, k); got != want {
					t.Errorf("%s: canReach(%s#%s, %s#%s) = %v, want %v", f, n.typ, n.rel, k.typ, k.rel, got, want)
				}
			}
		}
	}
}
