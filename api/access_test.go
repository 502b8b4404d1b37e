package api_test

import (
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ambit-authz/ambit/api"
	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
)

func aobj(typ, id string) *ambitv1.ObjectReference {
	return &ambitv1.ObjectReference{ObjectType: typ, ObjectId: id}
}

func asubj(typ, id string) *ambitv1.SubjectReference {
	return &ambitv1.SubjectReference{Object: aobj(typ, id)}
}

func accessLine(r *ambitv1.ResourceAccessResponse) string {
	var via []string
	for _, p := range r.GetProof() {
		via = append(via, api.RelationshipFromPB(p).Key().String())
	}
	s := r.GetSubject().GetObject()
	return s.GetObjectType() + ":" + s.GetObjectId() + " " + r.GetPermission() + " " + strings.Join(via, " → ")
}

// The share dialog of dataset:cytometry (collab.yaml): each user once, with
// the highest role and a proof path; dan (deactivated) is absent.
func TestResourceAccessOverGRPC(t *testing.T) {
	e := loadCollab(t)
	c := ambitv1.NewAccessServiceClient(e.conn)
	req := &ambitv1.ResourceAccessRequest{Resource: aobj("dataset", "cytometry"), RankedPermissions: []string{"edit", "read"}, SubjectObjectType: "user",
		Consistency: &ambitv1.Consistency{Requirement: &ambitv1.Consistency_FullyConsistent{FullyConsistent: true}}}
	stream, err := c.ResourceAccess(e.ctx(), req)
	if err != nil {
		t.Fatal(err)
	}
	all, err := drain(t, stream.Recv)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range all {
		got = append(got, accessLine(r))
	}
	// Each proof shows both sides of `... & org->active`.
	want := []string{
		"user:ana edit dataset:cytometry#owner@user:ana → dataset:cytometry#org@organization:lab → organization:lab#account@user:*",
		"user:bob read dataset:cytometry#reader@group:imaging#member → group:imaging#direct_member@user:bob → group:imaging#org@organization:lab → organization:lab#account@user:* → dataset:cytometry#org@organization:lab",
		"user:ed edit dataset:cytometry#editor@group:proteomics#member → group:proteomics#direct_member@user:ed → group:proteomics#org@organization:lab → organization:lab#account@user:* → dataset:cytometry#org@organization:lab",
		"user:fay edit dataset:cytometry#editor@user:fay → dataset:cytometry#org@organization:lab → organization:lab#account@user:*",
		"user:pia edit dataset:cytometry#editor@group:proteomics#member → group:proteomics#admin@user:pia → group:proteomics#org@organization:lab → organization:lab#account@user:* → dataset:cytometry#org@organization:lab",
		"user:raj read dataset:cytometry#workflow@workflow:gating → workflow:gating#reader@user:raj → dataset:cytometry#org@organization:lab → organization:lab#account@user:*",
		"user:wendy read dataset:cytometry#workflow@workflow:gating → workflow:gating#editor@user:wendy → dataset:cytometry#org@organization:lab → organization:lab#account@user:*",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Every response is at one revision; resuming after the third from its
	// cursor gives the rest at that revision, even after a write.
	for _, r := range all {
		if r.GetReadAt().GetToken() != all[0].GetReadAt().GetToken() {
			t.Fatalf("responses at different revisions: %v and %v", r.GetReadAt(), all[0].GetReadAt())
		}
	}
	e.write(v1.RelationshipUpdate_OPERATION_CREATE, "dataset:cytometry#reader@user:zoe")
	req.Consistency, req.OptionalCursor = nil, all[2].GetAfterResultCursor()
	stream, err = c.ResourceAccess(e.ctx(), req)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := drain(t, stream.Recv)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != len(all)-3 || accessLine(rest[0]) != got[3] {
		t.Fatalf("resumed after %s: %d results starting %v, want %d starting %s", got[2], len(rest), rest, len(all)-3, got[3])
	}
	// A cursor for another request is refused, naming the field.
	req.RankedPermissions = []string{"read"}
	stream, err = c.ResourceAccess(e.ctx(), req)
	if err == nil {
		_, err = drain(t, stream.Recv)
	}
	wantCode(t, err, codes.InvalidArgument, "optional_cursor", "different request")
}

func TestResourceAccessBadInputOverGRPC(t *testing.T) {
	e := loadCollab(t)
	c := ambitv1.NewAccessServiceClient(e.conn)
	cases := []struct {
		name      string
		ranks     []string
		subjType  string
		code      codes.Code
		fragments []string
	}{
		{"empty ranks", nil, "user", codes.InvalidArgument, []string{"ranked_permissions"}},
		{"unknown permission", []string{"edit", "publish"}, "user", codes.FailedPrecondition, []string{"ranked_permissions[1]", "publish"}},
		{"malformed permission", []string{"Edit"}, "user", codes.InvalidArgument, []string{"ranked_permissions[0]"}},
		{"unreachable subject type", []string{"edit", "read"}, "server", codes.FailedPrecondition, []string{"subject_object_type", "server"}},
		{"unknown subject type", []string{"read"}, "robot", codes.FailedPrecondition, []string{"subject_object_type", "robot"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := c.ResourceAccess(e.ctx(), &ambitv1.ResourceAccessRequest{Resource: aobj("dataset", "cytometry"),
				RankedPermissions: tc.ranks, SubjectObjectType: tc.subjType})
			if err == nil {
				_, err = drain(t, stream.Recv)
			}
			wantCode(t, err, tc.code, tc.fragments...)
		})
	}
	// A cursor from a revision other than the one at_exact_snapshot names.
	stream, err := c.ResourceAccess(e.ctx(), &ambitv1.ResourceAccessRequest{Resource: aobj("dataset", "cytometry"),
		RankedPermissions: []string{"edit"}, SubjectObjectType: "user", OptionalLimit: 1})
	if err != nil {
		t.Fatal(err)
	}
	first, err := drain(t, stream.Recv)
	if err != nil || len(first) != 1 {
		t.Fatalf("first page: %v, %v", first, err)
	}
	tok := e.write(v1.RelationshipUpdate_OPERATION_CREATE, "dataset:cytometry#reader@user:zoe")
	stream, err = c.ResourceAccess(e.ctx(), &ambitv1.ResourceAccessRequest{Resource: aobj("dataset", "cytometry"),
		RankedPermissions: []string{"edit"}, SubjectObjectType: "user", OptionalCursor: first[0].GetAfterResultCursor(),
		Consistency: &ambitv1.Consistency{Requirement: &ambitv1.Consistency_AtExactSnapshot{AtExactSnapshot: &ambitv1.ZedToken{Token: tok.GetToken()}}}})
	if err == nil {
		_, err = drain(t, stream.Recv)
	}
	wantCode(t, err, codes.InvalidArgument, "optional_cursor", "revision")
}

func TestSubjectPermissionsOverGRPC(t *testing.T) {
	e := loadCollab(t)
	c := ambitv1.NewAccessServiceClient(e.conn)
	r, err := c.SubjectPermissions(e.ctx(), &ambitv1.SubjectPermissionsRequest{Resource: aobj("dataset", "cytometry"), Subject: asubj("user", "raj"),
		Permissions: []string{"edit", "read", "download", "share"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range r.GetResults() {
		got = append(got, p.GetPermission()+"="+p.GetPermissionship().String())
		res := e.check(nil, "dataset:cytometry", p.GetPermission(), "user:raj")
		if (res == has) != (p.GetPermissionship() == ambitv1.Permissionship_PERMISSIONSHIP_HAS_PERMISSION) {
			t.Errorf("%s: SubjectPermissions says %v, CheckPermission %v", p.GetPermission(), p.GetPermissionship(), res)
		}
	}
	want := "edit=PERMISSIONSHIP_NO_PERMISSION read=PERMISSIONSHIP_HAS_PERMISSION download=PERMISSIONSHIP_HAS_PERMISSION share=PERMISSIONSHIP_NO_PERMISSION"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %s, want %s", strings.Join(got, " "), want)
	}
	// Without a list: every relation and permission of dataset.
	r, err = c.SubjectPermissions(e.ctx(), &ambitv1.SubjectPermissionsRequest{Resource: aobj("dataset", "cytometry"), Subject: asubj("user", "raj")})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetResults()) < 10 || r.GetResults()[0].GetPermission() != "org" {
		t.Fatalf("default list: %v", r.GetResults())
	}
	_, err = c.SubjectPermissions(e.ctx(), &ambitv1.SubjectPermissionsRequest{Resource: aobj("dataset", "cytometry"), Subject: asubj("user", "raj"),
		Permissions: []string{"read", "publish"}})
	wantCode(t, err, codes.FailedPrecondition, "permissions[1]", "publish")
}

// Why raj cannot edit dataset:cytometry: he reads it through the workflow
// gating, and editors are the owner and the dataset's editors.
func TestExplainOverGRPC(t *testing.T) {
	e := loadCollab(t)
	c := ambitv1.NewAccessServiceClient(e.conn)
	r, err := c.Explain(e.ctx(), &ambitv1.ExplainRequest{Resource: aobj("dataset", "cytometry"), Permission: "edit", Subject: asubj("user", "raj")})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetPermissionship() != ambitv1.Permissionship_PERMISSIONSHIP_NO_PERMISSION || len(r.GetProof()) != 0 {
		t.Fatalf("got %v with proof %v, want a denial", r.GetPermissionship(), r.GetProof())
	}
	text := api.WhyFromPB(r.GetRoot()).Text()
	for _, want := range []string{"missing dataset:cytometry#editor@user:raj", "missing dataset:cytometry#owner@user:raj", "group:proteomics#member  NO"} {
		if !strings.Contains(text, want) {
			t.Errorf("explanation lacks %q:\n%s", want, text)
		}
	}
	// An expired join code: the relationship is named with its expiry.
	ctx, _ := structpb.NewStruct(map[string]any{"now": "2022-12-31T00:00:00Z"})
	r, err = c.Explain(e.ctx(), &ambitv1.ExplainRequest{Resource: aobj("join_code", "img_old"), Permission: "redeem", Subject: asubj("user", "raj"), Context: ctx})
	if err != nil {
		t.Fatal(err)
	}
	if text := api.WhyFromPB(r.GetRoot()).Text(); !strings.Contains(text, "expired join_code:img_old#group@group:imaging  (expired at 2023-01-01T00:00:00Z)") {
		t.Errorf("the expired join code's group is not named:\n%s", text)
	}
	// A grant: the shortest proof (the workflow route and the organization's
	// account: read is `(...) & org->active`).
	r, err = c.Explain(e.ctx(), &ambitv1.ExplainRequest{Resource: aobj("dataset", "cytometry"), Permission: "read", Subject: asubj("user", "raj")})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetPermissionship() != ambitv1.Permissionship_PERMISSIONSHIP_HAS_PERMISSION || len(r.GetProof()) != 4 {
		t.Fatalf("got %v with proof %v", r.GetPermissionship(), r.GetProof())
	}
	_, err = c.Explain(e.ctx(), &ambitv1.ExplainRequest{Resource: aobj("dataset", "cytometry"), Permission: "fly", Subject: asubj("user", "raj")})
	wantCode(t, err, codes.FailedPrecondition, "fly")
}
