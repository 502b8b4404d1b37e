package engine_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

var update = flag.Bool("update", false, "rewrite testdata/why/*.golden from the current output")

// whyData is the collaboration model with one denial of each kind.
var whyData = []string{
	"organization:acme#account@user:*",
	"organization:acme#all_users@group:everyone",
	"group:everyone#org@organization:acme",
	"group:everyone#direct_member@user:*",
	"organization:acme#curators@group:curators",
	"group:curators#org@organization:acme",
	"group:curators#direct_member@user:kim",
	"group:lab#org@organization:acme",
	"group:lab#admin@user:ana",
	"group:lab#direct_member@user:raj",
	"group:imaging#org@organization:acme",
	"group:imaging#direct_member@user:kim",
	"dataset:d1#org@organization:acme",
	"dataset:d1#owner@user:ana",
	"dataset:d1#reader@group:lab#member",
	"dataset:d1#reader@group:imaging#member",
	"dataset:d1#reader@user:mal",
	"organization:acme#deactivated@user:mal",
	"dataset:d3#org@organization:acme",
	"dataset:d3#reader@user:bob[expiration:2023-01-01T00:00:00Z]",
	"study:s1#org@organization:acme",
	"study:s1#shared_with@user:raj",
	"join_code:c1#group@group:lab[expiration:2300-01-01T00:00:00Z]",
	`join_code:c1#bearer@user:*[before_deadline:{"deadline":"2026-01-03T09:00:00Z"}]`,
	`join_code:c3#bearer@user:*[before_deadline:{"deadline":"2300-01-01T00:00:00Z"}]`,
}

func collabSchema(t testing.TB) *schema.Schema {
	t.Helper()
	src, err := os.ReadFile("../schema/examples/collab.zed")
	if err != nil {
		t.Fatal(err)
	}
	s, err := schema.Compile("collab.zed", string(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// whyView returns a view over whyData and a reader of the same data that
// also shows expired relationships.
func whyView(t testing.TB) (*engine.View, engine.Reader) {
	t.Helper()
	eng, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	mem := enginetest.MustParse(whyData...)
	all := enginetest.MustParse(whyData...)
	all.Now = func() time.Time { return time.Time{} }
	return eng.View(collabSchema(t), mem, mem.Snapshot(1)), all
}

// findWhy reports whether the tree has a node of kind whose relationship
// (when rel is set) or note (when note is set) matches.
func findWhy(w *engine.Why, kind engine.WhyKind, rel, note string) bool {
	if w == nil {
		return false
	}
	if w.Kind == kind && (rel == "" || w.Relationship != nil && w.Relationship.Key().String() == rel) &&
		(note == "" || strings.Contains(w.Note, note)) {
		return true
	}
	for _, c := range w.Children {
		if findWhy(c, kind, rel, note) {
			return true
		}
	}
	return false
}

func TestExplainWhyNot(t *testing.T) {
	now := map[string]any{"now": "2026-01-03T10:00:00Z"}
	cases := []struct {
		name, resource, perm, subject string
		context                       map[string]any
		want                          engine.Permissionship
		kind                          engine.WhyKind
		rel, note                     string // a node the explanation must hold
	}{
		{"missing_direct", "dataset:d1", "edit", "user:bob", nil, engine.NoPermission,
			engine.WhyMissing, "dataset:d1#editor@user:bob", ""},
		{"missing_group_membership", "dataset:d1", "read", "user:bob", nil, engine.NoPermission,
			engine.WhyMissing, "group:lab#direct_member@user:bob", ""},
		{"exclusion", "dataset:d1", "read", "user:mal", nil, engine.NoPermission,
			engine.WhyExclusion, "", "excluded by organization:acme#deactivated@user:mal"},
		{"intersection_one_side", "study:s1", "edit_metadata", "user:raj", nil, engine.NoPermission,
			engine.WhyIntersection, "", "missing: study:s1 org->curator"},
		{"failed_caveat", "join_code:c1", "redeem", "user:raj", now, engine.NoPermission,
			engine.WhyRelationship, "join_code:c1#bearer@user:*", `now="2026-01-03T10:00:00Z"`},
		{"missing_caveat_context", "join_code:c1", "redeem", "user:raj", nil, engine.ConditionalPermission,
			engine.WhyRelationship, "join_code:c1#bearer@user:*", "missing now"},
		{"expired_relationship", "dataset:d3", "read", "user:bob", nil, engine.NoPermission,
			engine.WhyExpired, "dataset:d3#reader@user:bob", "expired at 2023-01-01T00:00:00Z"},
		{"arrow_no_parent", "join_code:c3", "redeem", "user:raj", now, engine.NoPermission,
			engine.WhyNoParent, "", "no join_code:c3#group relationship"},
	}
	v, expired := whyView(t)
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tuple.ParseObject(tc.resource)
			if err != nil {
				t.Fatal(err)
			}
			sub, err := tuple.ParseSubject(tc.subject)
			if err != nil {
				t.Fatal(err)
			}
			req := engine.CheckRequest{Resource: res, Permission: tc.perm, Subject: sub, Context: tc.context}
			ex, err := v.Explain(ctx, req, expired)
			if err != nil {
				t.Fatal(err)
			}
			check, err := v.Check(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if ex.Result != tc.want || check.Permissionship != tc.want {
				t.Fatalf("Explain says %v, Check says %v, want %v", ex.Result, check.Permissionship, tc.want)
			}
			if !findWhy(ex.Root, tc.kind, tc.rel, tc.note) {
				t.Errorf("no %v node with relationship %q and note %q in\n%s", tc.kind, tc.rel, tc.note, ex.Root.Text())
			}
			got := whyGolden(tc.resource, tc.perm, tc.subject, tc.context, ex)
			path := filepath.Join("testdata", "why", tc.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("explanation differs from %s (-update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
			}
		})
	}
}

func whyGolden(res, perm, sub string, cctx map[string]any, ex engine.Explanation) string {
	var b strings.Builder
	b.WriteString("why " + res + " " + perm + " " + sub)
	if cctx != nil {
		b.WriteString(" with now=" + cctx["now"].(string))
	}
	b.WriteString("\nresult: " + engine.ResultText(ex.Result, ex.Missing) + "\n")
	for _, r := range ex.Proof {
		b.WriteString("proof: " + r.String() + "\n")
	}
	for _, r := range ex.Root.Reasons() {
		b.WriteString("reason: " + r + "\n")
	}
	b.WriteString(ex.Root.Text())
	return b.String()
}

// A grant's proof is the shortest: ana owns d1 directly and is also a
// member of group:lab, which reads it; read also needs the organization to
// hold ana as an active account (the intersection's other side).
func TestExplainGrantShortestProof(t *testing.T) {
	v, expired := whyView(t)
	ex, err := v.Explain(context.Background(), engine.CheckRequest{Resource: tuple.ObjectRef{Type: "dataset", ID: "d1"},
		Permission: "read", Subject: tuple.SubjectRef{Type: "user", ID: "ana"}}, expired)
	if err != nil {
		t.Fatal(err)
	}
	want := "dataset:d1#owner@user:ana dataset:d1#org@organization:acme organization:acme#account@user:*"
	if got := proofString(ex.Proof); ex.Result != engine.HasPermission || got != want {
		t.Fatalf("got %v with proof %s, want HAS with proof %s", ex.Result, got, want)
	}
}

func proofString(p []tuple.Relationship) string {
	var s []string
	for _, r := range p {
		s = append(s, r.Key().String())
	}
	return strings.Join(s, " ")
}

// A proof through an intersection shows every operand, and one through an
// all() arrow every parent, in depth-first order; ResourceAccess's proofs
// are the same. (Before, both followed the first operand only.)
func TestProofShowsEveryOperand(t *testing.T) {
	s, err := schema.Compile("and.zed", `
definition user {}
definition team {
	relation member: user
}
definition doc {
	relation parent: team
	relation viewer: user
	relation approved: user | team#member
	permission view = viewer & approved
	permission every_team = parent.all(member)
	permission both = view & every_team
}`)
	if err != nil {
		t.Fatal(err)
	}
	mem := enginetest.MustParse("doc:d#viewer@user:ana", "doc:d#approved@team:a#member", "doc:d#parent@team:a", "doc:d#parent@team:b",
		"team:a#member@user:ana", "team:b#member@user:ana")
	eng, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	v := eng.View(s, mem, mem.Snapshot(1))
	ana := tuple.SubjectRef{Type: "user", ID: "ana"}
	d := tuple.ObjectRef{Type: "doc", ID: "d"}
	for _, tc := range []struct{ perm, want string }{
		{"view", "doc:d#viewer@user:ana doc:d#approved@team:a#member team:a#member@user:ana"},
		{"every_team", "doc:d#parent@team:a team:a#member@user:ana doc:d#parent@team:b team:b#member@user:ana"},
		{"both", "doc:d#viewer@user:ana doc:d#approved@team:a#member team:a#member@user:ana doc:d#parent@team:a doc:d#parent@team:b team:b#member@user:ana"},
	} {
		ex, err := v.Explain(context.Background(), engine.CheckRequest{Resource: d, Permission: tc.perm, Subject: ana}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := proofString(ex.Proof); ex.Result != engine.HasPermission || got != tc.want {
			t.Errorf("Explain %s: %v with proof\n%s\nwant\n%s", tc.perm, ex.Result, got, tc.want)
		}
		got, err := collectAccess(context.Background(), v, engine.ResourceAccessRequest{Resource: d, Ranks: []string{tc.perm}, SubjectType: "user"})
		if err != nil || len(got) != 1 || proofString(got[0].Proof) != tc.want {
			t.Errorf("ResourceAccess %s: %v %v, want ana with proof %s", tc.perm, got, err, tc.want)
		}
	}
}

// A denial with more routes than MaxWhyNodes: the tree is cut and says so;
// the answer is still Check's.
func TestExplainTruncated(t *testing.T) {
	lines := []string{"dataset:big#org@organization:acme"}
	for i := range engine.MaxWhyNodes {
		lines = append(lines, fmt.Sprintf("dataset:big#reader@group:g%d#member", i))
	}
	eng, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	big := enginetest.MustParse(lines...)
	v := eng.View(collabSchema(t), big, big.Snapshot(1))
	req := engine.CheckRequest{Resource: tuple.ObjectRef{Type: "dataset", ID: "big"}, Permission: "read", Subject: tuple.SubjectRef{Type: "user", ID: "bob"}}
	ex, err := v.Explain(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var count func(w *engine.Why)
	count = func(w *engine.Why) {
		n++
		for _, c := range w.Children {
			count(c)
		}
	}
	count(ex.Root)
	if !ex.Truncated || n > engine.MaxWhyNodes || ex.Result != engine.NoPermission {
		t.Fatalf("truncated %v, %d nodes, result %v; want a cut tree of at most %d nodes and NO", ex.Truncated, n, ex.Result, engine.MaxWhyNodes)
	}
}
