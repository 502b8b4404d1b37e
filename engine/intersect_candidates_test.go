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

const intersectSchema = `
definition user {}

definition org {
	relation member: user | user:*
}

definition doc {
	relation org: org
	relation viewer: user | user:*
	permission view = viewer & org->member
}
`

// LookupSubjects of a permission that is an intersection at its top takes
// its candidates from the first operand that met no wildcard: a document
// shared with two users of a 500-member organization verifies two
// candidates, not 500; a document shared with user:* takes the
// organization's members; when every operand has a wildcard the answer is
// the wildcard. Each answer is what Check says of every user involved.
func TestLookupSubjectsIntersectionCandidates(t *testing.T) {
	s, err := schema.Compile("intersect.zed", intersectSchema)
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{
		"doc:shared#org@org:big", "doc:shared#viewer@user:m001", "doc:shared#viewer@user:outsider",
		"doc:public#org@org:big", "doc:public#viewer@user:*",
		"doc:open#org@org:everyone", "doc:open#viewer@user:*",
		"org:everyone#member@user:*", "org:everyone#member@user:m002",
	}
	for i := range 500 {
		lines = append(lines, fmt.Sprintf("org:big#member@user:m%03d", i))
	}
	m := enginetest.MustParse(lines...)
	e, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	v := e.View(s, m, m.Snapshot(2))
	ctx := context.Background()
	for _, tc := range []struct {
		doc        string
		candidates int
		wildcard   bool
		want       []string
	}{
		{"shared", 2, false, []string{"m001"}},
		{"public", 500, false, nil}, // every member of org:big
		{"open", 1, true, []string{"*", "m002"}},
	} {
		req := engine.LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "doc", ID: tc.doc}, Permission: "view", SubjectType: "user"}
		ids, wildcard, err := engine.LookupSubjectsCandidates(ctx, v, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != tc.candidates || wildcard != tc.wildcard {
			t.Errorf("doc:%s: %d candidates (wildcard %v), want %d (%v)", tc.doc, len(ids), wildcard, tc.candidates, tc.wildcard)
		}
		var got []string
		for r, err := range v.LookupSubjects(ctx, req) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, r.ID)
		}
		want := tc.want
		if want == nil {
			for i := range 500 {
				want = append(want, fmt.Sprintf("m%03d", i))
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("doc:%s: LookupSubjects = %d subjects %.5v, want %d %.5v", tc.doc, len(got), got, len(want), want)
		}
		// Check agrees on every user named anywhere.
		for _, u := range []string{"m000", "m001", "m002", "m499", "outsider"} {
			res, err := v.Check(ctx, engine.CheckRequest{Resource: req.Resource, Permission: "view", Subject: tuple.SubjectRef{Type: "user", ID: u}})
			if err != nil {
				t.Fatal(err)
			}
			listed := slices.Contains(got, u) || slices.Contains(got, "*")
			if (res.Permissionship == engine.HasPermission) != listed {
				t.Errorf("doc:%s: Check(user:%s) = %v, but LookupSubjects lists it: %v", tc.doc, u, res.Permissionship, listed)
			}
		}
	}
}
