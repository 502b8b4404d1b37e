package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

const testSchema = `
use expiration

caveat on_network(ip ipaddress, cidr string) { ip.in_cidr(cidr) }
caveat min_level(level int, required int) { level >= required }

definition user {}

definition group {
	relation admin: user
	relation member: user | group#member
	permission manage = admin
	permission view = member + admin
}

definition org {
	relation admin: user
	relation access_all: user
	relation deactivated: user
	relation banned: user | user:*
}

definition workflow {
	relation org: org
	relation owner: user
	relation editor: user | group#member
	relation reader: user | user:* | group#member | user with on_network
	permission edit = (owner + editor) - org->deactivated
	permission read = (edit + reader + org->access_all) - org->deactivated
}

definition dataset {
	relation workflow: workflow
	relation owner: user
	relation curator_group: group
	relation shared: group
	relation approver: workflow
	relation gated: user with min_level | user with expiration
	permission read = owner + workflow->read
	permission curate = shared->member & curator_group->member
	permission all_approve = approver.all(edit)
	permission any_approve = approver.any(edit)
	permission nothing = nil
	permission gate = gated
}
`

const testRels = `
group:lab#admin@user:gail
group:lab#member@user:ana
group:lab#member@group:sub#member
group:sub#member@user:sam
group:curators#member@user:ana
group:curators#member@user:cat
org:acme#access_all@user:aud
org:acme#deactivated@user:dee
workflow:w1#org@org:acme
workflow:w1#owner@user:olga
workflow:w1#editor@group:lab#member
workflow:w1#reader@user:rita
workflow:w1#reader@user:dee
workflow:w1#editor@user:dee
workflow:w2#org@org:acme
workflow:w2#reader@user:*
workflow:w2#owner@user:olga
workflow:w3#reader@user:net[on_network:{"cidr":"10.0.0.0/8"}]
dataset:d1#workflow@workflow:w1
dataset:d1#owner@user:dana
dataset:d2#shared@group:lab
dataset:d2#curator_group@group:curators
dataset:d3#approver@workflow:w1
dataset:d3#approver@workflow:w2
dataset:d4#gated@user:lvl[min_level:{"required":3}]
dataset:d4#gated@user:old[expiration:2023-01-01T00:00:00Z]
dataset:d4#gated@user:new[expiration:2300-01-01T00:00:00Z]
`

func newView(t testing.TB, schemaSrc, rels string, cfg engine.Config) *engine.View {
	t.Helper()
	s, err := schema.Compile("test.zed", schemaSrc)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	m := enginetest.MustParse(strings.Split(rels, "\n")...)
	return eng.View(s, m, m.Snapshot(1))
}

func TestCheck(t *testing.T) {
	v := newView(t, testSchema, testRels, engine.Config{})
	const (
		no  = engine.NoPermission
		yes = engine.HasPermission
		cnd = engine.ConditionalPermission
	)
	tests := []struct {
		check   string // resource#permission@subject
		context string
		want    engine.Permissionship
		missing []string
	}{
		// direct relations and computed permissions
		{"group:lab#member@user:ana", "", yes, nil},
		{"group:lab#view@user:gail", "", yes, nil},
		{"group:lab#manage@user:ana", "", no, nil},
		// nested subject sets
		{"group:lab#member@user:sam", "", yes, nil},
		{"workflow:w1#edit@user:sam", "", yes, nil},
		{"workflow:w1#edit@user:rita", "", no, nil},
		// greatest role: union of routes
		{"workflow:w1#read@user:ana", "", yes, nil},
		{"workflow:w1#read@user:rita", "", yes, nil},
		// arrows: workflow -> dataset
		{"dataset:d1#read@user:sam", "", yes, nil},
		{"dataset:d1#read@user:dana", "", yes, nil},
		{"dataset:d1#read@user:nobody", "", no, nil},
		// org-wide arrow
		{"workflow:w1#read@user:aud", "", yes, nil},
		{"dataset:d1#read@user:aud", "", yes, nil},
		// exclusion: deactivated loses everything
		{"workflow:w1#edit@user:dee", "", no, nil},
		{"workflow:w1#read@user:dee", "", no, nil},
		// wildcard, minus deactivated
		{"workflow:w2#read@user:anyone", "", yes, nil},
		{"workflow:w2#read@user:dee", "", no, nil},
		{"workflow:w2#read@user:*", "", yes, nil},
		// intersection
		{"dataset:d2#curate@user:ana", "", yes, nil},
		{"dataset:d2#curate@user:cat", "", no, nil},
		{"dataset:d2#curate@user:sam", "", no, nil},
		// .all() and .any()
		{"dataset:d3#any_approve@user:olga", "", yes, nil},
		{"dataset:d3#all_approve@user:olga", "", yes, nil},
		{"dataset:d3#any_approve@user:ana", "", yes, nil},
		{"dataset:d3#all_approve@user:ana", "", no, nil},
		{"dataset:d1#all_approve@user:olga", "", no, nil},
		// nil
		{"dataset:d1#nothing@user:dana", "", no, nil},
		// caveats: missing, satisfied, unsatisfied; relationship context wins
		{"workflow:w3#read@user:net", "", cnd, []string{"ip"}},
		{"workflow:w3#read@user:net", `{"ip":"10.1.2.3"}`, yes, nil},
		{"workflow:w3#read@user:net", `{"ip":"192.168.0.1"}`, no, nil},
		{"workflow:w3#read@user:net", `{"ip":"192.168.0.1","cidr":"192.168.0.0/16"}`, no, nil},
		{"dataset:d4#gate@user:lvl", "", cnd, []string{"level"}},
		{"dataset:d4#gate@user:lvl", `{"level":3}`, yes, nil},
		{"dataset:d4#gate@user:lvl", `{"level":2,"required":1}`, no, nil},
		// expiration
		{"dataset:d4#gate@user:old", "", no, nil},
		{"dataset:d4#gate@user:new", "", yes, nil},
		// a subject set is a member of itself
		{"group:lab#member@group:lab#member", "", yes, nil},
		{"group:lab#member@group:sub#member", "", yes, nil},
		{"group:sub#member@group:lab#member", "", no, nil},
	}
	for _, tt := range tests {
		name := tt.check
		if tt.context != "" {
			name += " with " + tt.context
		}
		t.Run(name, func(t *testing.T) {
			r := tuple.MustParse(tt.check)
			var ctx map[string]any
			if tt.context != "" {
				var err error
				if ctx, err = tuple.ParseContext([]byte(tt.context)); err != nil {
					t.Fatal(err)
				}
			}
			got, err := v.Check(context.Background(), engine.CheckRequest{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject, Context: ctx})
			if err != nil {
				t.Fatal(err)
			}
			if got.Permissionship != tt.want || !slices.Equal(got.Missing, tt.missing) {
				t.Fatalf("got %v missing %v, want %v missing %v", got.Permissionship, got.Missing, tt.want, tt.missing)
			}
		})
	}
}

func TestCheckErrors(t *testing.T) {
	v := newView(t, testSchema, testRels, engine.Config{})
	tests := []struct {
		check   string
		context string
		want    error
		msg     string
	}{
		{"nope:x#read@user:ana", "", engine.ErrUnknownType, `resource type "nope"`},
		{"workflow:w1#nope@user:ana", "", engine.ErrUnknownRelation, `no relation or permission "nope"`},
		{"workflow:w1#read@ghost:ana", "", engine.ErrUnknownType, `subject type "ghost"`},
		{"workflow:w1#read@group:lab#nope", "", engine.ErrUnknownRelation, `"nope"`},
		{"workflow:w3#read@user:net", `{"ip":42}`, engine.ErrCaveatContext, "ip"},
	}
	for _, tt := range tests {
		t.Run(tt.check, func(t *testing.T) {
			r, err := tuple.Parse(tt.check)
			if err != nil {
				t.Fatal(err)
			}
			var ctx map[string]any
			if tt.context != "" {
				ctx, _ = tuple.ParseContext([]byte(tt.context))
			}
			_, err = v.Check(context.Background(), engine.CheckRequest{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject, Context: ctx})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
}

// A chain of nested groups deeper than MaxDepth fails with ErrMaxDepth
// instead of recursing without bound; a cycle terminates with an answer.
func TestDepthAndCycles(t *testing.T) {
	const s = `definition user {}
definition group {
	relation member: user | group#member
}`
	var b strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&b, "group:g%d#member@group:g%d#member\n", i, i+1)
	}
	b.WriteString("group:g60#member@user:deep\n")
	b.WriteString("group:c1#member@group:c2#member\ngroup:c2#member@group:c1#member\ngroup:c2#member@user:inside\n")

	ctx := context.Background()
	check := func(v *engine.View, res, subj string) (engine.CheckResult, error) {
		return v.Check(ctx, engine.CheckRequest{Resource: tuple.ObjectRef{Type: "group", ID: res}, Permission: "member", Subject: tuple.SubjectRef{Type: "user", ID: subj}})
	}
	v := newView(t, s, b.String(), engine.Config{MaxDepth: 20})
	if _, err := check(v, "g0", "deep"); !errors.Is(err, engine.ErrMaxDepth) {
		t.Fatalf("60-level chain with MaxDepth 20: err = %v, want ErrMaxDepth", err)
	}
	v = newView(t, s, b.String(), engine.Config{MaxDepth: 100})
	if r, err := check(v, "g0", "deep"); err != nil || r.Permissionship != engine.HasPermission {
		t.Fatalf("60-level chain with MaxDepth 100: %v %v", r.Permissionship, err)
	}
	for _, tc := range []struct {
		subj string
		want engine.Permissionship
	}{{"inside", engine.HasPermission}, {"outside", engine.NoPermission}} {
		if r, err := check(v, "c1", tc.subj); err != nil || r.Permissionship != tc.want {
			t.Fatalf("cycle, %s: %v %v, want %v", tc.subj, r.Permissionship, err, tc.want)
		}
	}
}

func TestCheckHonoursCancellation(t *testing.T) {
	v := newView(t, testSchema, testRels, engine.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := v.Check(ctx, engine.CheckRequest{Resource: tuple.ObjectRef{Type: "dataset", ID: "d1"}, Permission: "read", Subject: tuple.SubjectRef{Type: "user", ID: "sam"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestLookups(t *testing.T) {
	v := newView(t, testSchema, testRels, engine.Config{})
	ctx := context.Background()
	var got []string
	for r, err := range v.LookupResources(ctx, engine.LookupResourcesRequest{ResourceType: "workflow", Permission: "read", Subject: tuple.SubjectRef{Type: "user", ID: "sam"}}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.ID)
	}
	if want := []string{"w1", "w2"}; !slices.Equal(got, want) {
		t.Fatalf("LookupResources(workflow#read@user:sam) = %v, want %v", got, want)
	}
	got = nil
	for r, err := range v.LookupResources(ctx, engine.LookupResourcesRequest{ResourceType: "workflow", Permission: "read", Subject: tuple.SubjectRef{Type: "user", ID: "net"}}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.ID+":"+r.Permissionship.String())
	}
	if want := []string{"w2:HAS_PERMISSION", "w3:CONDITIONAL_PERMISSION"}; !slices.Equal(got, want) {
		t.Fatalf("LookupResources(workflow#read@user:net) = %v, want %v", got, want)
	}
	got = nil
	var wildcard []string
	for r, err := range v.LookupSubjects(ctx, engine.LookupSubjectsRequest{Resource: tuple.ObjectRef{Type: "workflow", ID: "w2"}, Permission: "read", SubjectType: "user"}) {
		if err != nil {
			t.Fatal(err)
		}
		if r.ID == tuple.Wildcard {
			wildcard = r.Excluded
			continue
		}
		got = append(got, r.ID)
	}
	if want := []string{"aud", "olga"}; !slices.Equal(got, want) {
		t.Fatalf("LookupSubjects(workflow:w2#read) = %v, want %v", got, want)
	}
	if want := []string{"dee"}; !slices.Equal(wildcard, want) {
		t.Fatalf("LookupSubjects(workflow:w2#read) wildcard excludes %v, want %v", wildcard, want)
	}
}

func TestExpand(t *testing.T) {
	v := newView(t, testSchema, testRels, engine.Config{})
	n, err := v.Expand(context.Background(), tuple.ObjectRef{Type: "workflow", ID: "w1"}, "edit")
	if err != nil {
		t.Fatal(err)
	}
	if n.Kind != engine.ExpandExclusion || len(n.Children) != 2 || n.Children[0].Kind != engine.ExpandUnion {
		t.Fatalf("Expand(workflow:w1#edit) root = %v with %d children, want exclusion of a union", n.Kind, len(n.Children))
	}
	owners := n.Children[0].Children[0]
	if owners.Kind != engine.ExpandLeaf || len(owners.Subjects) != 1 || owners.Subjects[0].Subject.ID != "olga" {
		t.Fatalf("owner leaf = %+v", owners)
	}
}

func TestValidateRelationship(t *testing.T) {
	s, err := schema.Compile("test.zed", testSchema)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rel string
		msg string // "" = valid
	}{
		{"group:lab#member@user:ana", ""},
		{"group:lab#member@group:sub#member", ""},
		{"workflow:w1#reader@user:*", ""},
		{"workflow:w1#reader@user:x[on_network]", ""},
		{"dataset:d4#gated@user:x[expiration:2300-01-01T00:00:00Z]", ""},
		{"nope:x#member@user:ana", `resource type "nope"`},
		{"group:lab#view@user:ana", "is a permission"},
		{"group:lab#member@org:acme", "does not allow subjects of type org"},
		{"group:lab#member@user:*", "does not allow subjects of type user:*"},
		{"group:lab#member@user:ana[on_network]", `with caveat "on_network" and without expiration`},
		{"group:lab#member@user:ana[expiration:2300-01-01T00:00:00Z]", "without a caveat and with expiration"},
		{"dataset:d4#gated@user:x", "without a caveat and without expiration"},
		{"group:lab#member@user:ana[nosuch]", `caveat "nosuch" is not defined`},
	}
	for _, tt := range tests {
		err := engine.ValidateRelationship(s, tuple.MustParse(tt.rel))
		switch {
		case tt.msg == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tt.rel, err)
		case tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)):
			t.Errorf("%s: err = %v, want containing %q", tt.rel, err, tt.msg)
		}
	}
}
