package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/tuple"
)

// renderTrace prints a trace as indented lines without durations:
// "resource#relation RESULT" per node, "= relationship RESULT" per relied-on
// relationship.
func renderTrace(n *engine.Trace) string {
	var b strings.Builder
	var walk func(n *engine.Trace, indent string)
	walk = func(n *engine.Trace, indent string) {
		fmt.Fprintf(&b, "%s%s#%s %s%v\n", indent, n.Resource, n.Relation, n.Result, n.Missing)
		for _, r := range n.Relationships {
			fmt.Fprintf(&b, "%s  = %s %s%v\n", indent, r.Relationship, r.Result, r.Missing)
		}
		for _, c := range n.Children {
			walk(c, indent+"  ")
		}
	}
	walk(n, "")
	return b.String()
}

func TestCheckWithTrace(t *testing.T) {
	v := newView(t, testSchema, testRels, engine.Config{})
	tests := []struct {
		check, context, want string
	}{
		{"group:lab#member@user:sam", "", `
group:lab#member HAS_PERMISSION[]
  group:sub#member HAS_PERMISSION[]
    = group:sub#member@user:sam HAS_PERMISSION[]
`},
		{"dataset:d1#read@user:sam", "", `
dataset:d1#read HAS_PERMISSION[]
  dataset:d1#owner NO_PERMISSION[]
  workflow:w1#read HAS_PERMISSION[]
    workflow:w1#edit HAS_PERMISSION[]
      workflow:w1#owner NO_PERMISSION[]
      workflow:w1#editor HAS_PERMISSION[]
        group:lab#member HAS_PERMISSION[]
          group:sub#member HAS_PERMISSION[]
            = group:sub#member@user:sam HAS_PERMISSION[]
      org:acme#deactivated NO_PERMISSION[]
    org:acme#deactivated NO_PERMISSION[]
`},
		{"dataset:d4#gate@user:lvl", "", `
dataset:d4#gate CONDITIONAL_PERMISSION[level]
  dataset:d4#gated CONDITIONAL_PERMISSION[level]
    = dataset:d4#gated@user:lvl[min_level:{"required":3}] CONDITIONAL_PERMISSION[level]
`},
		{"dataset:d4#gate@user:lvl", `{"level":2}`, `
dataset:d4#gate NO_PERMISSION[]
  dataset:d4#gated NO_PERMISSION[]
    = dataset:d4#gated@user:lvl[min_level:{"required":3}] NO_PERMISSION[]
`},
	}
	for _, tt := range tests {
		t.Run(tt.check+tt.context, func(t *testing.T) {
			req := parseCheck(t, tt.check, tt.context)
			_, tr, err := v.CheckWithTrace(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			got := renderTrace(tr)
			// The root line carries the missing fields too.
			want := strings.TrimPrefix(tt.want, "\n")
			if got != want {
				t.Errorf("trace:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestCheckWithTraceAgreesWithCheck: on every resource, permission and
// subject the test data mentions, the traced answer and the trace's root
// equal Check's answer, and every HAS_PERMISSION trace ends in a relationship
// or a subject-set match that proves it.
func TestCheckWithTraceAgreesWithCheck(t *testing.T) {
	v := newView(t, testSchema, testRels, engine.Config{})
	ctx := context.Background()
	var objects []tuple.ObjectRef
	var subjects []tuple.SubjectRef
	for _, line := range strings.Split(testRels, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		r := tuple.MustParse(line)
		if !slices.Contains(objects, r.Resource) {
			objects = append(objects, r.Resource)
		}
		if s := r.Subject; s.ID != tuple.Wildcard && !slices.Contains(subjects, s) {
			subjects = append(subjects, s)
		}
	}
	n := 0
	for _, o := range objects {
		for rel := range v.Schema().Definitions[o.Type].Relations {
			for _, s := range subjects {
				req := engine.CheckRequest{Resource: o, Permission: rel, Subject: s}
				want, err := v.Check(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				got, tr, err := v.CheckWithTrace(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				if got.Permissionship != want.Permissionship || tr.Result != want.Permissionship {
					t.Errorf("%s#%s@%s: traced %v (root %v), Check %v", o, rel, s, got.Permissionship, tr.Result, want.Permissionship)
				}
				if want.Permissionship == engine.HasPermission && !proves(tr, s) {
					t.Errorf("%s#%s@%s: trace has no proving leaf:\n%s", o, rel, s, renderTrace(tr))
				}
				n++
			}
		}
	}
	if n < 500 {
		t.Fatalf("only %d checks compared", n)
	}
}

// proves reports whether a HAS_PERMISSION node has a HAS_PERMISSION
// relationship or child, recursively down to a relationship or the subject
// set itself.
func proves(n *engine.Trace, s tuple.SubjectRef) bool {
	if n.Result != engine.HasPermission {
		return false
	}
	if s.Relation != "" && n.Resource.Type == s.Type && n.Resource.ID == s.ID && n.Relation == s.Relation {
		return true
	}
	for _, r := range n.Relationships {
		if r.Result == engine.HasPermission {
			return true
		}
	}
	for _, c := range n.Children {
		if proves(c, s) {
			return true
		}
	}
	return false
}

func parseCheck(t *testing.T, check, context string) engine.CheckRequest {
	t.Helper()
	r := tuple.MustParse(check)
	var ctx map[string]any
	if context != "" {
		var err error
		if ctx, err = tuple.ParseContext([]byte(context)); err != nil {
			t.Fatal(err)
		}
	}
	return engine.CheckRequest{Resource: r.Resource, Permission: r.Relation, Subject: r.Subject, Context: ctx}
}
