package api_test

import (
	"os"
	"slices"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ambit-authz/ambit/tuple"
	"github.com/ambit-authz/ambit/validation"
)

// The application flows of the collaboration model (schema/examples) that a
// schema alone cannot hold, driven end to end through the gRPC API the way an
// application would: preconditions, check-then-write, caveat context at
// request time, deactivation, lookups, CheckBulk for "my role", Expand for
// "why".

// v1Rel converts a relationship with its caveat context and expiration.
func v1Rel(t *testing.T, r tuple.Relationship) *v1.Relationship {
	t.Helper()
	out := &v1.Relationship{
		Resource: &v1.ObjectReference{ObjectType: r.Resource.Type, ObjectId: r.Resource.ID},
		Relation: r.Relation,
		Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: r.Subject.Type, ObjectId: r.Subject.ID}, OptionalRelation: r.Subject.Relation},
	}
	if r.Caveat != nil {
		out.OptionalCaveat = &v1.ContextualizedCaveat{CaveatName: r.Caveat.Name}
		if len(r.Caveat.Context) > 0 {
			ctx, err := structpb.NewStruct(r.Caveat.Context)
			if err != nil {
				t.Fatal(err)
			}
			out.OptionalCaveat.Context = ctx
		}
	}
	if !r.Expiration.IsZero() {
		out.OptionalExpiresAt = timestamppb.New(r.Expiration)
	}
	return out
}

func loadCollab(t *testing.T) *env {
	t.Helper()
	data, err := os.ReadFile("../schema/examples/collab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := validation.Parse("collab.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.writeSchema(docs[0].Schema)
	req := &v1.WriteRelationshipsRequest{}
	for _, r := range docs[0].Relationships {
		req.Updates = append(req.Updates, &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_CREATE, Relationship: v1Rel(t, r.Relationship)})
	}
	if _, err := e.perms.WriteRelationships(e.ctx(), req); err != nil {
		t.Fatalf("loading collab.yaml's relationships: %v", err)
	}
	return e
}

func mustMatch(resType, id, rel string, subj *v1.SubjectFilter) *v1.Precondition {
	return &v1.Precondition{Operation: v1.Precondition_OPERATION_MUST_MATCH,
		Filter: &v1.RelationshipFilter{ResourceType: resType, OptionalResourceId: id, OptionalRelation: rel, OptionalSubjectFilter: subj}}
}

func (e *env) writeWith(pre []*v1.Precondition, op v1.RelationshipUpdate_Operation, rels ...string) (*v1.ZedToken, error) {
	req := &v1.WriteRelationshipsRequest{OptionalPreconditions: pre}
	for _, r := range rels {
		req.Updates = append(req.Updates, update(op, r))
	}
	resp, err := e.perms.WriteRelationships(e.ctx(), req)
	return resp.GetWrittenAt(), err
}

func (e *env) checkCtx(res, perm, sub string, ctx map[string]any) v1.CheckPermissionResponse_Permissionship {
	e.t.Helper()
	c, err := structpb.NewStruct(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: full(), Resource: obj(res), Permission: perm, Subject: subj(sub), Context: c})
	if err != nil {
		e.t.Fatalf("CheckPermission %s#%s@%s: %v", res, perm, sub, err)
	}
	return r.GetPermissionship()
}

const (
	create = v1.RelationshipUpdate_OPERATION_CREATE
	del    = v1.RelationshipUpdate_OPERATION_DELETE
)

// Rule: admins add only users they are connected with; a connection is a
// request, then an acceptance; adding a member gives immediate access,
// removing revokes it.
func TestFlowConnectThenAdd(t *testing.T) {
	e := loadCollab(t)
	e.write(create, "connection:ana_zoe#requester@user:ana", "connection:ana_zoe#recipient@user:zoe")
	accepted := []*v1.Precondition{mustMatch("connection", "ana_zoe", "accepted", nil)}

	// Not accepted yet: the precondition fails and nothing is written.
	_, err := e.writeWith(accepted, create, "group:imaging#direct_member@user:zoe")
	wantCode(t, err, codes.FailedPrecondition)
	if got := e.check(full(), "group:imaging", "member", "user:zoe"); got != no {
		t.Fatalf("zoe is a member after a refused write: %v", got)
	}
	if got := e.check(full(), "connection:ana_zoe", "connected", "user:zoe"); got != no {
		t.Fatalf("a connection request alone connects: %v", got)
	}

	// zoe accepts; the same write now succeeds and grants access at once.
	e.write(create, "connection:ana_zoe#accepted@user:*")
	if got := e.check(full(), "connection:ana_zoe", "connected", "user:zoe"); got != has {
		t.Fatalf("accepted connection: %v", got)
	}
	tok, err := e.writeWith(accepted, create, "group:imaging#direct_member@user:zoe")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.check(fresh(tok), "dataset:cytometry", "read", "user:zoe"); got != has {
		t.Fatalf("new member cannot read what is shared with the group: %v", got)
	}
	if got := e.check(fresh(tok), "dataset:cytometry", "edit", "user:zoe"); got != no {
		t.Fatalf("reader share grants edit: %v", got)
	}
	tok = e.write(del, "group:imaging#direct_member@user:zoe")
	if got := e.check(fresh(tok), "dataset:cytometry", "read", "user:zoe"); got != no {
		t.Fatalf("removal did not revoke access: %v", got)
	}
}

// Rule: each group keeps at least one active admin. The application removes
// an admin only with a MUST_MATCH precondition naming an admin who stays, so a
// concurrent removal of that admin makes the delete fail.
func TestFlowKeepOneAdmin(t *testing.T) {
	e := loadCollab(t)
	admins := e.read(&v1.RelationshipFilter{ResourceType: "group", OptionalResourceId: "proteomics", OptionalRelation: "admin"})
	if !slices.Equal(admins, []string{"group:proteomics#admin@user:dean", "group:proteomics#admin@user:pia"}) {
		t.Fatalf("admins = %v", admins)
	}
	// dean is deactivated, so he is no admin who stays.
	if got := e.check(full(), "group:proteomics", "active_admin", "user:dean"); got != no {
		t.Fatalf("deactivated dean is an active admin: %v", got)
	}
	// pia is the only active admin: there is no other admin to name, so the
	// app refuses. With ed promoted, pia may step down, guarded by ed.
	e.write(create, "group:proteomics#admin@user:ed")
	stays := func(id string) []*v1.Precondition {
		return []*v1.Precondition{mustMatch("group", "proteomics", "admin", &v1.SubjectFilter{SubjectType: "user", OptionalSubjectId: id})}
	}
	// A race: ed is removed first (by another admin); pia's removal guarded
	// by ed must now fail, leaving pia in place.
	e.write(del, "group:proteomics#admin@user:ed")
	_, err := e.writeWith(stays("ed"), del, "group:proteomics#admin@user:pia")
	wantCode(t, err, codes.FailedPrecondition)
	if got := e.check(full(), "group:proteomics", "manage", "user:pia"); got != has {
		t.Fatalf("last admin was removed: %v", got)
	}
	// Without the race it goes through and ed manages the group.
	e.write(create, "group:proteomics#admin@user:ed")
	if _, err := e.writeWith(stays("ed"), del, "group:proteomics#admin@user:pia"); err != nil {
		t.Fatal(err)
	}
	if got := e.check(full(), "group:proteomics", "manage", "user:ed"); got != has {
		t.Fatalf("remaining admin cannot manage: %v", got)
	}
	if got := e.check(full(), "group:proteomics", "manage", "user:pia"); got != no {
		t.Fatalf("removed admin still manages: %v", got)
	}
}

// Rule: join codes let users add themselves for 48 hours: an expiring
// relationship plus a caveat checked with the request's time.
func TestFlowRedeemJoinCode(t *testing.T) {
	e := loadCollab(t)
	if got := e.check(full(), "join_code:img_fresh", "redeem", "user:newbie"); got != cond {
		t.Fatalf("redeem without `now` = %v, want conditional", got)
	}
	if got := e.checkCtx("join_code:img_fresh", "redeem", "user:newbie", map[string]any{"now": "2299-12-31T00:00:00Z"}); got != has {
		t.Fatalf("redeem before the deadline = %v", got)
	}
	if got := e.checkCtx("join_code:img_fresh", "redeem", "user:newbie", map[string]any{"now": "2300-01-02T00:00:00Z"}); got != no {
		t.Fatalf("redeem after the deadline = %v", got)
	}
	if got := e.checkCtx("join_code:img_old", "redeem", "user:newbie", map[string]any{"now": "2022-12-31T00:00:00Z"}); got != no {
		t.Fatalf("redeem of an expired code = %v (its group relationship has expired)", got)
	}
	tok := e.write(create, "group:imaging#direct_member@user:newbie")
	if got := e.check(fresh(tok), "group:imaging", "member", "user:newbie"); got != has {
		t.Fatalf("redeemed member = %v", got)
	}
}

// Rule: deactivated users lose all access; their data and memberships stay
// for reactivation.
func TestFlowDeactivateReactivate(t *testing.T) {
	e := loadCollab(t)
	memberships := func() []string {
		return e.read(&v1.RelationshipFilter{ResourceType: "group", OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "user", OptionalSubjectId: "dan"}})
	}
	before := memberships()
	if len(before) == 0 {
		t.Fatal("dan has no memberships in collab.yaml")
	}
	for _, c := range []struct{ res, perm string }{{"dataset:dan_runs", "read"}, {"group:imaging", "member"}, {"dataset:cytometry", "edit"}} {
		if got := e.check(full(), c.res, c.perm, "user:dan"); got != no {
			t.Fatalf("deactivated dan: %s#%s = %v", c.res, c.perm, got)
		}
	}
	tok := e.write(del, "organization:lab#deactivated@user:dan")
	for _, c := range []struct{ res, perm string }{{"dataset:dan_runs", "read"}, {"group:imaging", "member"}, {"dataset:cytometry", "edit"}} {
		if got := e.check(fresh(tok), c.res, c.perm, "user:dan"); got != has {
			t.Fatalf("reactivated dan: %s#%s = %v", c.res, c.perm, got)
		}
	}
	tok = e.write(create, "organization:lab#deactivated@user:dan")
	if got := e.check(fresh(tok), "dataset:dan_runs", "read", "user:dan"); got != no {
		t.Fatalf("deactivated again: %v", got)
	}
	if after := memberships(); !slices.Equal(before, after) {
		t.Fatalf("memberships changed across deactivation: %v -> %v", before, after)
	}
}

// "Which groups can I see": without Manage groups, only one's own groups
// (nested ones included: bob is in imaging, which dept_bio and site_east hold).
func TestFlowVisibleGroups(t *testing.T) {
	e := loadCollab(t)
	groups := func(user string) []string {
		s, err := e.perms.LookupResources(e.ctx(), &v1.LookupResourcesRequest{Consistency: full(), ResourceObjectType: "group", Permission: "view", Subject: subj(user)})
		if err != nil {
			t.Fatal(err)
		}
		rs, err := drain(t, s.Recv)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.GetResourceObjectId())
		}
		slices.Sort(out)
		return out
	}
	if got, want := groups("user:bob"), []string{"all_users", "dept_bio", "imaging", "site_east"}; !slices.Equal(got, want) {
		t.Fatalf("bob sees %v, want %v", got, want)
	}
	all := groups("user:gus") // holds Manage groups
	if !slices.Contains(all, "proteomics") || !slices.Contains(all, "curators") || len(all) <= 2 {
		t.Fatalf("group manager sees %v, want every group", all)
	}
}

// "What is my role on this dataset" in one call: CheckBulk over the ordered
// roles; the first that holds is the greatest.
func TestFlowMyRole(t *testing.T) {
	e := loadCollab(t)
	roles := []string{"edit", "read"}
	role := func(user string) string {
		req := &v1.CheckBulkPermissionsRequest{Consistency: full()}
		for _, r := range roles {
			req.Items = append(req.Items, &v1.CheckBulkPermissionsRequestItem{Resource: obj("dataset:cytometry"), Permission: r, Subject: subj(user)})
		}
		resp, err := e.perms.CheckBulkPermissions(e.ctx(), req)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range resp.GetPairs() {
			if p.GetItem().GetPermissionship() == has {
				return roles[i]
			}
		}
		return "none"
	}
	for user, want := range map[string]string{"user:ed": "edit", "user:raj": "read", "user:ana": "edit", "user:nobody": "none", "user:dan": "none"} {
		if got := role(user); got != want {
			t.Errorf("role of %s on cytometry = %s, want %s", user, got, want)
		}
	}
}

// "Why can ed edit cytometry": the expanded tree shows the group route.
func TestFlowExplain(t *testing.T) {
	e := loadCollab(t)
	resp, err := e.perms.ExpandPermissionTree(e.ctx(), &v1.ExpandPermissionTreeRequest{Consistency: full(), Resource: obj("dataset:cytometry"), Permission: "edit"})
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	var walk func(n *v1.PermissionRelationshipTree)
	walk = func(n *v1.PermissionRelationshipTree) {
		for _, s := range n.GetLeaf().GetSubjects() {
			o := s.GetObject()
			subjects = append(subjects, o.GetObjectType()+":"+o.GetObjectId()+"#"+s.GetOptionalRelation())
		}
		for _, c := range n.GetIntermediate().GetChildren() {
			walk(c)
		}
	}
	walk(resp.GetTreeRoot())
	if !slices.Contains(subjects, "group:proteomics#member") {
		t.Fatalf("expand(dataset:cytometry#edit) leaves %v do not show the proteomics group route", subjects)
	}
	if e.check(full(), "group:proteomics", "member", "user:ed") != has {
		t.Fatal("ed is not a proteomics member")
	}
}
