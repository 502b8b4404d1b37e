package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// TestReverseWalkDecidesExclusions: where a permission is B - S and the walk
// proves B, it decides S by itself (from the sub-walk of what S names), so
// the results come out proven, with no Check to verify them (issue 26: the
// collab lookups verified every result with a whole Check); objects S takes
// away are no candidates at all, and a conditional S is left to verify.
func TestReverseWalkDecidesExclusions(t *testing.T) {
	const src = `caveat big(x int) { x > 1 }
definition user {}
definition organization {
	relation deactivated: user
}
definition group {
	relation member: user | group#member
}
definition dataset {
	relation org: organization | organization with big
	relation reader: user | group#member
	relation banned: user | user with big
	permission view = reader - org->deactivated
	permission visible = reader - banned
}`
	s, err := schema.Compile("excl.zed", src)
	if err != nil {
		t.Fatal(err)
	}
	var rels []tuple.Relationship
	for _, line := range strings.Fields(`
		dataset:d1#org@organization:acme dataset:d2#org@organization:acme dataset:d3#org@organization:acme
		dataset:d4#org@organization:other[big]
		dataset:d1#reader@user:ana dataset:d2#reader@group:g#member group:g#member@group:h#member group:h#member@user:ana
		dataset:d3#reader@user:ana dataset:d3#banned@user:ana
		dataset:d4#reader@user:ana dataset:d4#banned@user:ana[big]
		organization:acme#deactivated@user:bob organization:other#deactivated@user:bob dataset:d1#reader@user:bob dataset:d4#reader@user:bob`) {
		rels = append(rels, tuple.MustParse(line))
	}
	eng, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	v := eng.View(s, sliceReader(rels), Snapshot{Revision: 1})
	for _, tc := range []struct {
		subj, perm string
		want       string // id=proven|verify, in order
	}{
		{"ana", "view", "d1=proven d2=proven d3=proven d4=proven"},
		{"bob", "view", "d4=verify"}, // deactivated in acme; in other only under a caveat
		{"ana", "visible", "d1=proven d2=proven d4=verify"},
		{"bob", "visible", "d1=proven d4=proven"},
	} {
		c, err := v.reverseWalk(context.Background(), tuple.SubjectRef{Type: "user", ID: tc.subj}, nil, "dataset", tc.perm, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range c {
			st := "verify"
			if x.proven {
				st = "proven"
			}
			got = append(got, fmt.Sprintf("%s=%s", x.id, st))
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("dataset#%s@user:%s: candidates %q, want %q", tc.perm, tc.subj, g, tc.want)
		}
	}
}
