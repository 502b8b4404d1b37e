package engine

import (
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
