package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/tuple"
)

func TestResourceAccessCollab(t *testing.T) {
	v, _ := whyView(t)
	got, err := collectAccess(context.Background(), v, engine.ResourceAccessRequest{
		Resource: tuple.ObjectRef{Type: "dataset", ID: "d1"}, Ranks: []string{"edit", "read"}, SubjectType: "user"})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, a := range got {
		var via []string
		for _, r := range a.Proof {
			via = append(via, r.Key().String())
		}
		lines = append(lines, fmt.Sprintf("%s %s %s", a.Subject, a.Permission, strings.Join(via, " → ")))
	}
	// Each proof shows both sides of read's and edit's intersection with
	// org->active; the organization's account step, shared, is listed once.
	want := []string{
		"user:ana edit dataset:d1#owner@user:ana → dataset:d1#org@organization:acme → organization:acme#account@user:*",
		"user:kim read dataset:d1#reader@group:imaging#member → group:imaging#direct_member@user:kim → group:imaging#org@organization:acme → organization:acme#account@user:* → dataset:d1#org@organization:acme",
		"user:raj read dataset:d1#reader@group:lab#member → group:lab#direct_member@user:raj → group:lab#org@organization:acme → organization:acme#account@user:* → dataset:d1#org@organization:acme",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant (mal is deactivated)\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestResourceAccessBadInput(t *testing.T) {
	v, _ := whyView(t)
	d1 := tuple.ObjectRef{Type: "dataset", ID: "d1"}
	cases := []struct {
		name  string
		req   engine.ResourceAccessRequest
		is    error
		field string
	}{
		{"empty ranks", engine.ResourceAccessRequest{Resource: d1, SubjectType: "user"}, engine.ErrInvalidRequest, "ranked_permissions"},
		{"unknown permission", engine.ResourceAccessRequest{Resource: d1, Ranks: []string{"edit", "publish"}, SubjectType: "user"}, engine.ErrUnknownRelation, "ranked_permissions[1]"},
		{"listed twice", engine.ResourceAccessRequest{Resource: d1, Ranks: []string{"read", "edit", "read"}, SubjectType: "user"}, engine.ErrInvalidRequest, "ranked_permissions[2]"},
		{"unknown subject type", engine.ResourceAccessRequest{Resource: d1, Ranks: []string{"read"}, SubjectType: "robot"}, engine.ErrUnknownType, "subject_object_type"},
		{"unreachable subject type", engine.ResourceAccessRequest{Resource: d1, Ranks: []string{"edit", "read"}, SubjectType: "server"}, engine.ErrUnreachable, "subject_object_type"},
		{"unknown resource type", engine.ResourceAccessRequest{Resource: tuple.ObjectRef{Type: "folder", ID: "f"}, Ranks: []string{"read"}, SubjectType: "user"}, engine.ErrUnknownType, "resource"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := collectAccess(context.Background(), v, tc.req)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("got %v (%d results), want %v naming %s", err, len(got), tc.is, tc.field)
			}
		})
	}
}

func TestSubjectPermissionsBadInput(t *testing.T) {
	v, _ := whyView(t)
	_, err := v.SubjectPermissions(context.Background(), tuple.ObjectRef{Type: "dataset", ID: "d1"}, tuple.SubjectRef{Type: "user", ID: "raj"}, []string{"read", "fly"}, nil)
	if !errors.Is(err, engine.ErrUnknownRelation) || !strings.Contains(err.Error(), "permissions[1]") {
		t.Fatalf("got %v, want ErrUnknownRelation naming permissions[1]", err)
	}
}
