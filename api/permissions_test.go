package api_test

import (
	"slices"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	has  = v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
	no   = v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION
	cond = v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION
)

func TestSchemaReadWrite(t *testing.T) {
	e := newEnv(t)
	_, err := e.schema.ReadSchema(e.ctx(), &v1.ReadSchemaRequest{})
	wantCode(t, err, codes.NotFound, "no schema")

	_, err = e.schema.WriteSchema(e.ctx(), &v1.WriteSchemaRequest{Schema: "definition user {\n  relation x: nope\n}"})
	wantCode(t, err, codes.InvalidArgument, "nope")

	// Checks before any schema: a precise FailedPrecondition.
	_, err = e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Resource: obj("document:a"), Permission: "view", Subject: subj("user:ana")})
	wantCode(t, err, codes.FailedPrecondition, "no schema")

	tok := e.writeSchema(testSchema)
	if tok.GetToken() == "" {
		t.Fatal("WriteSchema returned no ZedToken")
	}
	r, err := e.schema.ReadSchema(e.ctx(), &v1.ReadSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetSchemaText() != testSchema || r.GetReadAt().GetToken() == "" {
		t.Fatalf("ReadSchema = %q at %v", r.GetSchemaText(), r.GetReadAt())
	}
}

func TestCheckAndFriends(t *testing.T) {
	e := newEnv(t)
	e.writeSchema(testSchema)
	e.write(v1.RelationshipUpdate_OPERATION_CREATE,
		"document:d1#owner@user:ana",
		"document:d1#viewer@group:eng#member",
		"group:eng#member@user:bob",
		"group:eng#member@user:eve",
		"document:d1#banned@user:eve",
		"document:d2#viewer@user:*",
		"document:d2#banned@user:mal",
		"document:d3#viewer@user:cat[weekday]",
	)
	for _, c := range []struct {
		res, perm, sub string
		want           v1.CheckPermissionResponse_Permissionship
	}{
		{"document:d1", "view", "user:ana", has},
		{"document:d1", "edit", "user:ana", has},
		{"document:d1", "view", "user:bob", has},
		{"document:d1", "edit", "user:bob", no},
		{"document:d1", "view", "user:eve", no},
		{"document:d2", "view", "user:zed", has},
		{"document:d2", "view", "user:mal", no},
		{"document:d1", "view", "group:eng#member", has},
	} {
		for _, cons := range []*v1.Consistency{nil, latency(), full()} {
			if got := e.check(cons, c.res, c.perm, c.sub); got != c.want {
				t.Errorf("check %s#%s@%s (%v) = %v, want %v", c.res, c.perm, c.sub, cons, got, c.want)
			}
		}
	}

	// Caveats: missing context is CONDITIONAL with the missing field named.
	r, err := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Resource: obj("document:d3"), Permission: "view", Subject: subj("user:cat")})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetPermissionship() != cond || !slices.Equal(r.GetPartialCaveatInfo().GetMissingRequiredContext(), []string{"day"}) {
		t.Fatalf("caveated check = %v %v, want CONDITIONAL missing [day]", r.GetPermissionship(), r.GetPartialCaveatInfo())
	}
	for day, want := range map[string]v1.CheckPermissionResponse_Permissionship{"monday": has, "saturday": no} {
		ctx, _ := structpb.NewStruct(map[string]any{"day": day})
		r, err := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Resource: obj("document:d3"), Permission: "view", Subject: subj("user:cat"), Context: ctx})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetPermissionship() != want {
			t.Errorf("day=%s: %v, want %v", day, r.GetPermissionship(), want)
		}
	}
	badCtx, _ := structpb.NewStruct(map[string]any{"day": 7.0})
	_, err = e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Resource: obj("document:d3"), Permission: "view", Subject: subj("user:cat"), Context: badCtx})
	wantCode(t, err, codes.InvalidArgument)

	// Unknown type and permission, malformed ids.
	_, err = e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Resource: obj("folder:x"), Permission: "view", Subject: subj("user:ana")})
	wantCode(t, err, codes.FailedPrecondition, "folder")
	_, err = e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Resource: obj("document:d1"), Permission: "destroy", Subject: subj("user:ana")})
	wantCode(t, err, codes.FailedPrecondition, "destroy")
	_, err = e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Resource: &v1.ObjectReference{ObjectType: "document", ObjectId: "bad id!"}, Permission: "view", Subject: subj("user:ana")})
	wantCode(t, err, codes.InvalidArgument, "ObjectId")
	_, err = e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Resource: obj("document:d1"), Permission: "view", Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "User", ObjectId: "ana"}}})
	wantCode(t, err, codes.InvalidArgument, "ObjectType")
	_, err = e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Resource: obj("document:d1"), Permission: "view"})
	wantCode(t, err, codes.InvalidArgument, "ubject")

	// CheckBulk: per-item errors do not fail the batch.
	bulk, err := e.perms.CheckBulkPermissions(e.ctx(), &v1.CheckBulkPermissionsRequest{Consistency: full(), Items: []*v1.CheckBulkPermissionsRequestItem{
		{Resource: obj("document:d1"), Permission: "view", Subject: subj("user:bob")},
		{Resource: obj("document:d1"), Permission: "nope", Subject: subj("user:bob")},
		{Resource: obj("document:d1"), Permission: "edit", Subject: subj("user:bob")},
		{Resource: obj("document:d3"), Permission: "view", Subject: subj("user:cat")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := bulk.GetPairs()
	if len(p) != 4 || p[0].GetItem().GetPermissionship() != has || codes.Code(p[1].GetError().GetCode()) != codes.FailedPrecondition ||
		p[2].GetItem().GetPermissionship() != no || p[3].GetItem().GetPermissionship() != cond || bulk.GetCheckedAt().GetToken() == "" {
		t.Fatalf("CheckBulk pairs = %v", p)
	}

	// Expand: view = (viewer + owner) - banned.
	ex, err := e.perms.ExpandPermissionTree(e.ctx(), &v1.ExpandPermissionTreeRequest{Consistency: full(), Resource: obj("document:d1"), Permission: "view"})
	if err != nil {
		t.Fatal(err)
	}
	root := ex.GetTreeRoot().GetIntermediate()
	if root.GetOperation() != v1.AlgebraicSubjectSet_OPERATION_EXCLUSION || len(root.GetChildren()) != 2 || ex.GetExpandedAt().GetToken() == "" {
		t.Fatalf("expand root = %v", ex.GetTreeRoot())
	}
	banned := root.GetChildren()[1].GetLeaf().GetSubjects()
	if len(banned) != 1 || banned[0].GetObject().GetObjectId() != "eve" {
		t.Fatalf("expand banned leaf = %v", banned)
	}
}

func TestLookups(t *testing.T) {
	e := newEnv(t)
	e.writeSchema(testSchema)
	e.write(v1.RelationshipUpdate_OPERATION_TOUCH,
		"document:a#viewer@user:ana",
		"document:b#owner@user:ana",
		"document:c#viewer@group:eng#member",
		"group:eng#member@user:ana",
		"document:d#viewer@user:ana[weekday]",
		"document:e#viewer@user:bob",
		"document:pub#viewer@user:*",
		"document:pub#banned@user:mal",
		"document:pub#viewer@user:zoe",
	)
	lr := func(limit uint32, cur *v1.Cursor) []*v1.LookupResourcesResponse {
		t.Helper()
		s, err := e.perms.LookupResources(e.ctx(), &v1.LookupResourcesRequest{Consistency: full(), ResourceObjectType: "document", Permission: "view",
			Subject: subj("user:ana"), OptionalLimit: limit, OptionalCursor: cur})
		if err != nil {
			t.Fatal(err)
		}
		out, err := drain(t, s.Recv)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var ids []string
	for _, r := range lr(0, nil) {
		ids = append(ids, r.GetResourceObjectId())
		if want := v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION; r.GetResourceObjectId() == "d" {
			want = v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION
			if r.GetPermissionship() != want {
				t.Errorf("d: %v, want conditional", r.GetPermissionship())
			}
		}
	}
	if want := []string{"a", "b", "c", "d", "pub"}; !slices.Equal(ids, want) {
		t.Fatalf("LookupResources = %v, want %v", ids, want)
	}
	// Pages of 2 with cursors give the same list.
	var paged []string
	var cur *v1.Cursor
	for range 10 {
		page := lr(2, cur)
		if len(page) == 0 {
			break
		}
		if len(page) > 2 {
			t.Fatalf("page of %d with limit 2", len(page))
		}
		for _, r := range page {
			paged = append(paged, r.GetResourceObjectId())
		}
		cur = page[len(page)-1].GetAfterResultCursor()
	}
	if !slices.Equal(paged, ids) {
		t.Fatalf("paged LookupResources = %v, want %v", paged, ids)
	}
	// A cursor from another request is refused.
	s, _ := e.perms.LookupResources(e.ctx(), &v1.LookupResourcesRequest{ResourceObjectType: "document", Permission: "edit", Subject: subj("user:ana"), OptionalCursor: lr(1, nil)[0].GetAfterResultCursor()})
	_, err := drain(t, s.Recv)
	wantCode(t, err, codes.InvalidArgument, "different request")

	// LookupSubjects: the wildcard comes first with its exclusions.
	ls, err := e.perms.LookupSubjects(e.ctx(), &v1.LookupSubjectsRequest{Consistency: full(), Resource: obj("document:pub"), Permission: "view", SubjectObjectType: "user"})
	if err != nil {
		t.Fatal(err)
	}
	subs, err := drain(t, ls.Recv)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 2 || subs[0].GetSubject().GetSubjectObjectId() != "*" || len(subs[0].GetExcludedSubjects()) != 1 ||
		subs[0].GetExcludedSubjects()[0].GetSubjectObjectId() != "mal" || subs[1].GetSubject().GetSubjectObjectId() != "zoe" {
		t.Fatalf("LookupSubjects = %v", subs)
	}
	ls, _ = e.perms.LookupSubjects(e.ctx(), &v1.LookupSubjectsRequest{Resource: obj("document:pub"), Permission: "view", SubjectObjectType: "user",
		WildcardOption: v1.LookupSubjectsRequest_WILDCARD_OPTION_EXCLUDE_WILDCARDS})
	subs, err = drain(t, ls.Recv)
	if err != nil || len(subs) != 1 || subs[0].GetSubjectObjectId() != "zoe" {
		t.Fatalf("LookupSubjects without wildcards = %v, %v", subs, err)
	}
	ls, _ = e.perms.LookupSubjects(e.ctx(), &v1.LookupSubjectsRequest{Resource: obj("document:c"), Permission: "view", SubjectObjectType: "user"})
	subs, err = drain(t, ls.Recv)
	if err != nil || len(subs) != 1 || subs[0].GetSubjectObjectId() != "ana" {
		t.Fatalf("LookupSubjects through a group = %v, %v", subs, err)
	}
	ls, _ = e.perms.LookupSubjects(e.ctx(), &v1.LookupSubjectsRequest{Resource: obj("document:c"), Permission: "view", SubjectObjectType: "robot"})
	_, err = drain(t, ls.Recv)
	wantCode(t, err, codes.FailedPrecondition, "robot")
}
