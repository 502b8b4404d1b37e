package schema_test

import (
	"reflect"
	"testing"

	"github.com/ambit-authz/ambit/schema"
)

func TestAllowedTypeString(t *testing.T) {
	for _, tc := range []struct {
		a    schema.AllowedType
		want string
	}{
		{schema.AllowedType{Type: "user"}, "user"},
		{schema.AllowedType{Type: "group", Relation: "member"}, "group#member"},
		{schema.AllowedType{Type: "user", Wildcard: true}, "user:*"},
		{schema.AllowedType{Type: "user", Caveat: "ip"}, "user with ip"},
		{schema.AllowedType{Type: "user", Expiration: true}, "user with expiration"},
		{schema.AllowedType{Type: "user", Caveat: "ip", Expiration: true}, "user with ip and expiration"},
	} {
		if got := tc.a.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.a, got, tc.want)
		}
	}
}

// TestRemovals: what a schema change takes from relations, in definition-name
// then declaration order whatever the map order, permissions ignored.
func TestRemovals(t *testing.T) {
	prev := mustDecl(t, `
definition user {}
definition group {
	relation member: user | group#member
}
definition zdoc {
	relation viewer: user | user:* | group#member
	relation editor: user
	relation owner: user
	permission view = viewer + editor
}
definition adoc {
	relation viewer: user
}
`)
	next := mustDecl(t, `
definition user {}
definition group {
	relation member: user | group#member
}
definition zdoc {
	relation viewer: user
	permission editor = owner
	permission view = viewer + editor
}
`)
	want := []schema.Removal{
		{Kind: schema.RemovedDefinition, Definition: "adoc", Relation: "viewer"},
		{Kind: schema.RemovedTypes, Definition: "zdoc", Relation: "viewer", Types: []schema.AllowedType{{Type: "user", Wildcard: true}, {Type: "group", Relation: "member"}}},
		{Kind: schema.BecamePermission, Definition: "zdoc", Relation: "editor"},
		{Kind: schema.RemovedRelation, Definition: "zdoc", Relation: "owner"},
	}
	for range 20 { // map order varies between runs of the loop
		if got := schema.Removals(prev, next); !reflect.DeepEqual(got, want) {
			t.Fatalf("Removals =\n%+v\nwant\n%+v", got, want)
		}
	}
	whats := []string{"removes definition adoc", "no longer allows user:*, group#member on zdoc#viewer",
		"turns relation zdoc#editor into a permission", "removes relation zdoc#owner"}
	for i, rm := range want {
		if got := rm.What(); got != whats[i] {
			t.Errorf("What() = %q, want %q", got, whats[i])
		}
	}
	if got := schema.Removals(next, next); len(got) != 0 {
		t.Errorf("an unchanged schema removes %+v", got)
	}
}

func mustDecl(t *testing.T, src string) *schema.Schema {
	t.Helper()
	s, err := schema.Declarations("test", src)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
