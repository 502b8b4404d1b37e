package v1pb

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/tuple"
)

func TestRelationshipRoundTrip(t *testing.T) {
	for _, text := range []string{
		"document:readme#viewer@user:ana",
		"document:readme#viewer@group:eng#member",
		"document:readme#viewer@user:*",
		`document:readme#viewer@user:ana[only_on_tuesday]`,
		`document:readme#viewer@user:ana[ip_allowlist:{"cidrs":["10.0.0.0/8"],"n":3,"ok":true,"nested":{"x":null}}]`,
		"document:readme#viewer@user:ana[expiration:2030-01-02T03:04:05Z]",
		`document:a/b=c#viewer@user:ana|1[cav:{"k":"v"}][expiration:2030-01-02T03:04:05.5Z]`,
	} {
		t.Run(text, func(t *testing.T) {
			want := tuple.MustParse(text)
			pb, err := RelationshipToV1(want)
			if err != nil {
				t.Fatalf("RelationshipToV1: %v", err)
			}
			got, err := RelationshipFromV1(pb, "relationship")
			if err != nil {
				t.Fatalf("RelationshipFromV1: %v", err)
			}
			if !got.Equal(want) || !got.Expiration.Equal(want.Expiration) {
				t.Fatalf("round trip: got %s, want %s", got, want)
			}
			// And the other way: v1 -> tuple -> v1 is the same message.
			again, err := RelationshipToV1(got)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(pb, again) {
				t.Fatalf("v1 round trip: %v != %v", pb, again)
			}
		})
	}
}

func TestSubjectEllipsisIsNoRelation(t *testing.T) {
	s, err := SubjectFromV1(&v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ana"}, OptionalRelation: "..."}, "subject")
	if err != nil || s != (tuple.SubjectRef{Type: "user", ID: "ana"}) {
		t.Fatalf("got %v, %v", s, err)
	}
}

func obj(typ, id string) *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: typ, ObjectId: id}
}

func TestRelationshipFromV1Refuses(t *testing.T) {
	good := func() *v1.Relationship {
		return &v1.Relationship{Resource: obj("document", "readme"), Relation: "viewer", Subject: &v1.SubjectReference{Object: obj("user", "ana")}}
	}
	for _, c := range []struct {
		name  string
		edit  func(r *v1.Relationship) *v1.Relationship
		field string
		cause error
	}{
		{"nil", func(*v1.Relationship) *v1.Relationship { return nil }, "rel", nil},
		{"no resource", func(r *v1.Relationship) *v1.Relationship { r.Resource = nil; return r }, "rel.resource", nil},
		{"bad resource type", func(r *v1.Relationship) *v1.Relationship { r.Resource.ObjectType = "Doc"; return r }, "rel.resource.object_type", tuple.ErrInvalidTyp},
		{"bad resource id", func(r *v1.Relationship) *v1.Relationship { r.Resource.ObjectId = "a b"; return r }, "rel.resource.object_id", tuple.ErrInvalidID},
		{"wildcard resource", func(r *v1.Relationship) *v1.Relationship { r.Resource.ObjectId = "*"; return r }, "rel.resource.object_id", tuple.ErrInvalidID},
		{"bad relation", func(r *v1.Relationship) *v1.Relationship { r.Relation = "View"; return r }, "rel.relation", tuple.ErrInvalidRel},
		{"no subject", func(r *v1.Relationship) *v1.Relationship { r.Subject = nil; return r }, "rel.subject.object", nil},
		{"bad subject id", func(r *v1.Relationship) *v1.Relationship { r.Subject.Object.ObjectId = ""; return r }, "rel.subject.object.object_id", tuple.ErrInvalidID},
		{"bad subject relation", func(r *v1.Relationship) *v1.Relationship { r.Subject.OptionalRelation = "-x"; return r }, "rel.subject.optional_relation", tuple.ErrInvalidRel},
		{"wildcard with relation", func(r *v1.Relationship) *v1.Relationship {
			r.Subject.Object.ObjectId, r.Subject.OptionalRelation = "*", "member"
			return r
		}, "rel.subject", nil},
		{"bad caveat name", func(r *v1.Relationship) *v1.Relationship {
			r.OptionalCaveat = &v1.ContextualizedCaveat{CaveatName: "No"}
			return r
		}, "rel.optional_caveat.caveat_name", tuple.ErrCaveat},
		{"bad expiration", func(r *v1.Relationship) *v1.Relationship {
			r.OptionalExpiresAt = &timestamppb.Timestamp{Seconds: math.MaxInt64}
			return r
		}, "rel.optional_expires_at", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := RelationshipFromV1(c.edit(good()), "rel")
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want a *v1pb.Error", err)
			}
			if e.Field != c.field || !strings.HasPrefix(err.Error(), c.field) {
				t.Fatalf("field %q (message %q), want %q", e.Field, err, c.field)
			}
			if c.cause != nil && !errors.Is(err, c.cause) {
				t.Fatalf("%v does not wrap %v", err, c.cause)
			}
		})
	}
}

// A context a v1 message cannot hold is an error, not a relationship whose
// context went missing.
func TestRelationshipToV1RefusesBadContext(t *testing.T) {
	r := tuple.MustParse("document:readme#viewer@user:ana[cav]")
	r.Caveat.Context = map[string]any{"when": time.Now()}
	pb, err := RelationshipToV1(r)
	if err == nil || !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, %v; want an error", pb, err)
	}
	if !strings.Contains(err.Error(), "document:readme#viewer@user:ana") {
		t.Fatalf("error %q does not name the relationship", err)
	}
	if _, err := ContextToV1(map[string]any{"ch": make(chan int)}, "context"); err == nil {
		t.Fatal("ContextToV1 accepted a channel")
	}
}

func TestContext(t *testing.T) {
	if s, err := ContextToV1(nil, "c"); s != nil || err != nil {
		t.Fatalf("empty context: %v, %v", s, err)
	}
	if m := ContextFromV1(&structpb.Struct{}); m != nil {
		t.Fatalf("empty struct: %v", m)
	}
	s, err := ParseContext(`{"a":1,"b":[true,"x"]}`, "--context")
	if err != nil {
		t.Fatal(err)
	}
	if m := ContextFromV1(s); m["a"] != 1.0 || len(m["b"].([]any)) != 2 {
		t.Fatalf("parsed context: %v", m)
	}
	for _, bad := range []string{`[1]`, `{"a":`, `"x"`} {
		if _, err := ParseContext(bad, "--context"); err == nil || !strings.HasPrefix(err.Error(), "--context: ") {
			t.Errorf("ParseContext(%q): %v", bad, err)
		}
	}
}

func TestFilterRoundTrip(t *testing.T) {
	empty, none := "", "member"
	for _, f := range []tuple.Filter{
		{},
		{ResourceType: "document"},
		{ResourceType: "document", ResourceIDs: []string{"readme"}, Relation: "viewer"},
		{ResourceType: "document", ResourceIDPrefix: "re"},
		{ResourceType: "document", Subject: &tuple.SubjectFilter{Type: "user"}},
		{ResourceType: "document", Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{"ana"}, Relation: &empty}},
		{Subject: &tuple.SubjectFilter{Type: "group", Relation: &none}},
	} {
		pb, err := FilterToV1(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := FilterFromV1(pb, "filter", true)
		if err != nil {
			t.Fatalf("%v: %v", pb, err)
		}
		back, err := FilterToV1(got)
		if err != nil || !proto.Equal(pb, back) {
			t.Fatalf("round trip of %+v: %v then %v (%v)", f, pb, back, err)
		}
	}
}

func TestFilterFromV1(t *testing.T) {
	f, err := FilterFromV1(&v1.RelationshipFilter{ResourceType: "doc", OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "user",
		OptionalRelation: &v1.SubjectFilter_RelationFilter{Relation: "..."}}}, "filter", true)
	if err != nil || f.Subject.Relation == nil || *f.Subject.Relation != "" {
		t.Fatalf("ellipsis relation filter: %+v, %v", f, err)
	}
	if f, err := FilterFromV1(nil, "filter", false); err != nil || f.ResourceType != "" {
		t.Fatalf("optional nil filter: %+v, %v", f, err)
	}
	for _, c := range []struct {
		name  string
		f     *v1.RelationshipFilter
		field string
	}{
		{"required", nil, "filter"},
		{"bad type", &v1.RelationshipFilter{ResourceType: "A"}, "filter.resource_type"},
		{"bad id", &v1.RelationshipFilter{ResourceType: "doc", OptionalResourceId: "a b"}, "filter.optional_resource_id"},
		{"id and prefix", &v1.RelationshipFilter{ResourceType: "doc", OptionalResourceId: "a", OptionalResourceIdPrefix: "b"}, "filter"},
		{"bad relation", &v1.RelationshipFilter{OptionalRelation: "X"}, "filter.optional_relation"},
		{"bad subject type", &v1.RelationshipFilter{OptionalSubjectFilter: &v1.SubjectFilter{}}, "filter.optional_subject_filter.subject_type"},
		{"bad subject id", &v1.RelationshipFilter{OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "user", OptionalSubjectId: "a b"}},
			"filter.optional_subject_filter.optional_subject_id"},
		{"bad subject relation", &v1.RelationshipFilter{OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "user",
			OptionalRelation: &v1.SubjectFilter_RelationFilter{Relation: "X"}}}, "filter.optional_subject_filter.optional_relation"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := FilterFromV1(c.f, "filter", true)
			var e *Error
			if !errors.As(err, &e) || e.Field != c.field || !strings.HasPrefix(err.Error(), c.field) {
				t.Fatalf("got %v (field %+v), want an error about %s", err, e, c.field)
			}
		})
	}
	if _, err := FilterToV1(tuple.Filter{ResourceIDs: []string{"a", "b"}}); err == nil {
		t.Fatal("FilterToV1 dropped a resource id")
	}
	if _, err := FilterToV1(tuple.Filter{Subject: &tuple.SubjectFilter{Type: "user", IDs: []string{"a", "b"}}}); err == nil {
		t.Fatal("FilterToV1 dropped a subject id")
	}
}

func TestParseConsistency(t *testing.T) {
	for _, c := range []struct {
		in   string
		want *v1.Consistency
	}{
		{"", &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}},
		{"latency", &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}},
		{"minimize_latency", &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}},
		{"full", &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}},
		{"fresh:GhUKEzE3", &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &v1.ZedToken{Token: "GhUKEzE3"}}}},
		{"exact:abc", &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: "abc"}}}},
	} {
		got, err := ParseConsistency(c.in)
		if err != nil || !proto.Equal(got, c.want) {
			t.Errorf("ParseConsistency(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"fresh", "fresh:", "exact", "latency:tok", "full:x", "newest", "FULL"} {
		if got, err := ParseConsistency(bad); err == nil {
			t.Errorf("ParseConsistency(%q) = %v, want an error", bad, got)
		}
	}
}

func TestParseReferences(t *testing.T) {
	o, err := ParseObject("document:readme")
	if err != nil || !proto.Equal(o, obj("document", "readme")) {
		t.Fatalf("ParseObject: %v, %v", o, err)
	}
	s, err := ParseSubject("group:eng#member")
	if err != nil || !proto.Equal(s, &v1.SubjectReference{Object: obj("group", "eng"), OptionalRelation: "member"}) {
		t.Fatalf("ParseSubject: %v, %v", s, err)
	}
	for _, bad := range []string{"", "document", "document:", ":x", "Doc:x"} {
		if _, err := ParseObject(bad); err == nil {
			t.Errorf("ParseObject(%q) accepted", bad)
		}
		if _, err := ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) accepted", bad)
		}
	}
}

func TestPermissionship(t *testing.T) {
	for _, p := range []engine.Permissionship{engine.NoPermission, engine.HasPermission, engine.ConditionalPermission} {
		if got, err := PermissionshipFromV1(PermissionshipToV1(p)); err != nil || got != p {
			t.Errorf("check %v: round trip gives %v, %v", p, got, err)
		}
		if p == engine.NoPermission {
			continue // not a lookup result
		}
		if got, err := LookupPermissionshipFromV1(LookupPermissionshipToV1(p)); err != nil || got != p {
			t.Errorf("lookup %v: round trip gives %v, %v", p, got, err)
		}
	}
	if _, err := PermissionshipFromV1(v1.CheckPermissionResponse_PERMISSIONSHIP_UNSPECIFIED); err == nil {
		t.Error("an unspecified check answer was read as an answer")
	}
	if _, err := LookupPermissionshipFromV1(v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_UNSPECIFIED); err == nil {
		t.Error("an unspecified lookup permissionship was read as one")
	}
}
