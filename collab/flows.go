package collab

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Connect records from's connection request to to (omiq-collaboration.txt:
// "Form Connections"). It grants no access.
func (k *Kit) Connect(ctx context.Context, from, to string) (*v1.ZedToken, error) {
	if from == to {
		return nil, fmt.Errorf("%w: a user cannot connect with themselves", ErrNotAllowed)
	}
	if err := k.require(ctx, User(from), "active", k.orgRef()); err != nil {
		return nil, err
	}
	c := Ref{"connection", pairID(from, to)}
	return k.write(ctx, nil,
		create(rel(c, "requester", plain(User(from)))),
		create(rel(c, "recipient", plain(User(to)))))
}

// Accept accepts from's pending request to recipient.
func (k *Kit) Accept(ctx context.Context, recipient, from string) (*v1.ZedToken, error) {
	c := Ref{"connection", pairID(from, recipient)}
	if err := k.require(ctx, User(recipient), "accept", c); err != nil {
		return nil, err
	}
	return k.write(ctx, []*v1.Precondition{mustMatch(rel(c, "requester", plain(User(from)))), mustMatch(rel(c, "recipient", plain(User(recipient))))},
		touch(rel(c, "accepted", wildcard("user"))))
}

// Disconnect removes the connection between a and b, pending or accepted.
// Memberships it allowed stay; it only stops new ones.
func (k *Kit) Disconnect(ctx context.Context, a, b string) (*v1.ZedToken, error) {
	c := Ref{"connection", pairID(a, b)}
	rels, err := k.read(ctx, &v1.RelationshipFilter{ResourceType: c.Type, OptionalResourceId: c.ID})
	if err != nil {
		return nil, err
	}
	if !parties(rels, "requester", "recipient", User(a), User(b)) {
		return nil, fmt.Errorf("%w: no connection between %s and %s", ErrNotConnected, a, b)
	}
	ups := make([]*v1.RelationshipUpdate, len(rels))
	for i, r := range rels {
		ups[i] = remove(r)
	}
	return k.write(ctx, nil, ups...)
}

// ConnectExternal records an accepted External Connection between local
// user and an external user of another server (omiq-collaboration.txt: the
// other server's side is agreed out of band) and admits the external user as
// an account of the organization.
func (k *Kit) ConnectExternal(ctx context.Context, local, external string) (*v1.ZedToken, error) {
	if err := k.require(ctx, User(local), "active", k.orgRef()); err != nil {
		return nil, err
	}
	c := Ref{"external_connection", pairID(local, external)}
	return k.write(ctx, nil,
		touch(rel(c, "local", plain(User(local)))),
		touch(rel(c, "remote", plain(ExternalUser(external)))),
		touch(rel(c, "accepted", wildcard("user"))),
		touch(rel(c, "accepted", wildcard("external_user"))),
		touch(rel(k.orgRef(), "account", plain(ExternalUser(external)))))
}

// parties reports whether rels (one connection's relationships) join a and
// b, one as relA and the other as relB, in either order.
func parties(rels []*v1.Relationship, relA, relB string, a, b Ref) bool {
	has := func(relation string, r Ref) bool {
		for _, x := range rels {
			if x.Relation == relation && x.Subject.Object.ObjectType == r.Type && x.Subject.Object.ObjectId == r.ID {
				return true
			}
		}
		return false
	}
	return (has(relA, a) && has(relB, b)) || (has(relA, b) && has(relB, a))
}

// connectionGuard returns the preconditions that hold "actor and user are
// connected" at the moment of the write: the connection's two parties and
// its acceptance. ErrNotConnected when they are not connected now.
func (k *Kit) connectionGuard(ctx context.Context, actor string, user Ref) ([]*v1.Precondition, error) {
	typ, relA, relB, accept := "connection", "requester", "recipient", []string{"user"}
	if user.Type == "external_user" {
		typ, relA, relB, accept = "external_connection", "local", "remote", []string{"user", "external_user"}
	}
	c := Ref{typ, pairID(actor, user.ID)}
	rels, err := k.read(ctx, &v1.RelationshipFilter{ResourceType: c.Type, OptionalResourceId: c.ID})
	if err != nil {
		return nil, err
	}
	var pre []*v1.Precondition
	for _, r := range rels {
		if r.Relation == relA || r.Relation == relB {
			pre = append(pre, mustMatch(r))
		}
	}
	accepted := 0
	for _, w := range accept {
		for _, r := range rels {
			if r.Relation == "accepted" && r.Subject.Object.ObjectType == w && r.Subject.Object.ObjectId == "*" {
				accepted++
				pre = append(pre, mustMatch(r))
			}
		}
	}
	ok := accepted == len(accept)
	if typ == "connection" {
		ok = ok && parties(rels, relA, relB, User(actor), user)
	} else {
		ok = ok && parties(rels, relA, relB, User(actor), user) && len(pre) >= 2
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s and %s", ErrNotConnected, actor, user)
	}
	return pre, nil
}

// CreateGroup creates group id with creator as its admin, in one write
// (odm-groups.txt: any user creates groups; the creator is the Group Admin).
func (k *Kit) CreateGroup(ctx context.Context, creator, id string) (*v1.ZedToken, error) {
	if err := k.require(ctx, User(creator), "create_group", k.orgRef()); err != nil {
		return nil, err
	}
	g := Group(id)
	return k.write(ctx, nil,
		create(rel(g, "org", plain(k.orgRef()))),
		create(rel(g, "admin", plain(User(creator)))),
		create(rel(g, "self_managed", wildcard("user"))),
		create(rel(g, "deletable", wildcard("user"))))
}

// AddMember adds member (a user, an external user, or another group, whose
// members then belong too) to group. A user must be connected with actor
// unless actor is an Enterprise administrator; an external user needs an
// External Connection with actor (omiq-collaboration.txt).
func (k *Kit) AddMember(ctx context.Context, actor string, group string, member Ref) (*v1.ZedToken, error) {
	g := Group(group)
	if err := k.require(ctx, User(actor), "add_member", g); err != nil {
		return nil, err
	}
	var pre []*v1.Precondition
	switch member.Type {
	case "user":
		enterprise, err := k.check(ctx, k.orgRef(), "add_without_connection", User(actor), nil)
		if err != nil {
			return nil, err
		}
		if !enterprise {
			if pre, err = k.connectionGuard(ctx, actor, member); err != nil {
				return nil, err
			}
		}
	case "external_user":
		var err error
		if pre, err = k.connectionGuard(ctx, actor, member); err != nil {
			return nil, err
		}
	case "group":
		if member.ID == group {
			return nil, fmt.Errorf("%w: a group cannot contain itself", ErrNotAllowed)
		}
		if err := k.require(ctx, User(actor), "view", member); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: %s cannot be a group member", ErrNotAllowed, member)
	}
	return k.write(ctx, pre, touch(rel(g, "direct_member", member.subject())))
}

// RemoveMember removes member (a user, an external user or a group) from
// group. A user who is also an admin loses that role too, which is refused
// with ErrLastAdmin unless another active admin stays.
func (k *Kit) RemoveMember(ctx context.Context, actor, group string, member Ref) (*v1.ZedToken, error) {
	g := Group(group)
	if err := k.require(ctx, User(actor), "remove_member", g); err != nil {
		return nil, err
	}
	ups := []*v1.RelationshipUpdate{remove(rel(g, "direct_member", member.subject()))}
	var pre []*v1.Precondition
	if member.Type == "user" {
		isAdmin, err := k.read(ctx, exactly(rel(g, "admin", plain(member))))
		if err != nil {
			return nil, err
		}
		if len(isAdmin) > 0 {
			if pre, err = k.otherActiveAdmin(ctx, group, member.ID); err != nil {
				return nil, err
			}
			ups = append(ups, remove(rel(g, "admin", plain(member))))
		}
	}
	return k.write(ctx, pre, ups...)
}

// SetRole makes user an Admin or a plain Member of group
// (odm-users-and-permissions.txt: admins change members to administrators or
// vice versa; each group must have at least one administrator).
func (k *Kit) SetRole(ctx context.Context, actor, group, user string, role Role) (*v1.ZedToken, error) {
	g := Group(group)
	if err := k.require(ctx, User(actor), "change_role", g); err != nil {
		return nil, err
	}
	switch role {
	case Admin:
		return k.write(ctx, nil, touch(rel(g, "admin", plain(User(user)))))
	case Member:
		pre, err := k.otherActiveAdmin(ctx, group, user)
		if err != nil {
			return nil, err
		}
		return k.write(ctx, pre, touch(rel(g, "direct_member", plain(User(user)))), remove(rel(g, "admin", plain(User(user)))))
	}
	return nil, fmt.Errorf("%w: %q is not a group role (admin or member)", ErrNotAllowed, role)
}

// RemoveAdmin takes admin rights from user, who stays a member only if also
// written as one. Refused with ErrLastAdmin when no other active admin stays.
func (k *Kit) RemoveAdmin(ctx context.Context, actor, group, user string) (*v1.ZedToken, error) {
	g := Group(group)
	if err := k.require(ctx, User(actor), "change_role", g); err != nil {
		return nil, err
	}
	pre, err := k.otherActiveAdmin(ctx, group, user)
	if err != nil {
		return nil, err
	}
	return k.write(ctx, pre, remove(rel(g, "admin", plain(User(user)))))
}

// otherActiveAdmin returns preconditions that hold "an admin of group other
// than user exists and is not deactivated" at the moment of the write, or
// ErrLastAdmin.
func (k *Kit) otherActiveAdmin(ctx context.Context, group, user string) ([]*v1.Precondition, error) {
	g := Group(group)
	admins, err := k.read(ctx, &v1.RelationshipFilter{ResourceType: "group", OptionalResourceId: group, OptionalRelation: "admin"})
	if err != nil {
		return nil, err
	}
	for _, a := range admins {
		id := a.Subject.Object.ObjectId
		if id == user {
			continue
		}
		active, err := k.check(ctx, g, "active_admin", User(id), nil)
		if err != nil {
			return nil, err
		}
		if active {
			return []*v1.Precondition{mustMatch(a), mustNotMatch(rel(k.orgRef(), "deactivated", plain(User(id))))}, nil
		}
	}
	return nil, fmt.Errorf("%w: %s would leave %s without one", ErrLastAdmin, user, g)
}

// Deactivate deactivates user (users are never deleted:
// odm-users-and-permissions.txt). Every relationship stays; access ends at
// once. Refused with ErrLastAdmin when a group would keep no active admin.
func (k *Kit) Deactivate(ctx context.Context, actor, user string) (*v1.ZedToken, error) {
	if err := k.require(ctx, User(actor), "deactivate_user", k.orgRef()); err != nil {
		return nil, err
	}
	adminOf, err := k.read(ctx, &v1.RelationshipFilter{ResourceType: "group", OptionalRelation: "admin", OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "user", OptionalSubjectId: user}})
	if err != nil {
		return nil, err
	}
	var pre []*v1.Precondition
	for _, a := range adminOf {
		p, err := k.otherActiveAdmin(ctx, a.Resource.ObjectId, user)
		if err != nil {
			return nil, err
		}
		pre = append(pre, p...)
	}
	return k.write(ctx, pre, touch(rel(k.orgRef(), "deactivated", plain(User(user)))))
}

// Reactivate gives user back every access they had.
func (k *Kit) Reactivate(ctx context.Context, actor, user string) (*v1.ZedToken, error) {
	if err := k.require(ctx, User(actor), "deactivate_user", k.orgRef()); err != nil {
		return nil, err
	}
	return k.write(ctx, nil, remove(rel(k.orgRef(), "deactivated", plain(User(user)))))
}

// CreateJoinCode creates a join code for group, valid for JoinCodeValidity
// from now (omiq-collaboration.txt: 48 hours). It returns the code.
func (k *Kit) CreateJoinCode(ctx context.Context, actor, group string) (string, *v1.ZedToken, error) {
	if err := k.require(ctx, User(actor), "create_join_code", Group(group)); err != nil {
		return "", nil, err
	}
	code, err := newCode()
	if err != nil {
		return "", nil, err
	}
	deadline := k.now().Add(JoinCodeValidity).UTC()
	c := Ref{"join_code", code}
	g := rel(c, "group", plain(Group(group)))
	g.OptionalExpiresAt = timestamppb.New(deadline)
	bearer := rel(c, "bearer", wildcard("user"))
	ctxs, err := structpb.NewStruct(map[string]any{"deadline": deadline.Format(time.RFC3339Nano)})
	if err != nil {
		return "", nil, err
	}
	bearer.OptionalCaveat = &v1.ContextualizedCaveat{CaveatName: "before_deadline", Context: ctxs}
	tok, err := k.write(ctx, nil, create(g), create(bearer))
	return code, tok, err
}

// RedeemJoinCode adds user to the code's group if the code is valid now, in
// one write whose precondition is the code's group relationship (an expired
// or deleted code admits nobody, even if it expires between check and write).
func (k *Kit) RedeemJoinCode(ctx context.Context, user, code string) (*v1.ZedToken, error) {
	c := Ref{"join_code", code}
	rels, err := k.read(ctx, &v1.RelationshipFilter{ResourceType: c.Type, OptionalResourceId: c.ID, OptionalRelation: "group"})
	if err != nil {
		return nil, err
	}
	if len(rels) != 1 {
		return nil, fmt.Errorf("%w: %s", ErrCodeInvalid, code)
	}
	ok, err := k.check(ctx, c, "redeem", User(user), map[string]any{"now": k.now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s for %s", ErrCodeInvalid, code, user)
	}
	g := Ref{"group", rels[0].Subject.Object.ObjectId}
	guard := rel(c, "group", plain(g))
	tok, err := k.write(ctx, []*v1.Precondition{mustMatch(guard)}, touch(rel(g, "direct_member", plain(User(user)))))
	if err != nil && isRaced(err) {
		return nil, fmt.Errorf("%w: %s expired or was deleted while redeeming", ErrCodeInvalid, code)
	}
	return tok, err
}

// DeleteGroup deletes group: Manage groups, or an admin of the group
// (odm-users-and-permissions.txt); never a default group (odm-groups.txt).
// The group's own relationships go in one write, which revokes everything
// shared with it at once (the model fails closed without the group's
// organization link); the grants that named the group are then removed.
func (k *Kit) DeleteGroup(ctx context.Context, actor, group string) (*v1.ZedToken, error) {
	g := Group(group)
	ok, err := k.check(ctx, g, "delete", User(actor), nil)
	if err != nil {
		return nil, err
	}
	if !ok {
		for _, d := range []string{"all_users", "curators"} {
			def, err := k.read(ctx, exactly(rel(k.orgRef(), d, plain(g))))
			if err != nil {
				return nil, err
			}
			if len(def) > 0 {
				return nil, fmt.Errorf("%w: %s", ErrDefaultGroup, g)
			}
		}
		return nil, fmt.Errorf("%w: %s lacks delete on %s", ErrNotAllowed, User(actor), g)
	}
	own, err := k.read(ctx, &v1.RelationshipFilter{ResourceType: "group", OptionalResourceId: group})
	if err != nil {
		return nil, err
	}
	ups := make([]*v1.RelationshipUpdate, len(own))
	for i, r := range own {
		ups[i] = remove(r)
	}
	tok, err := k.write(ctx, []*v1.Precondition{mustMatch(rel(g, "deletable", wildcard("user")))}, ups...)
	if err != nil {
		return nil, err
	}
	resp, err := k.perms.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{
		OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "group", OptionalSubjectId: group, OptionalRelation: &v1.SubjectFilter_RelationFilter{Relation: "member"}}}})
	if err != nil {
		return tok, fmt.Errorf("collab: %s is deleted, but removing the grants that named it failed (they grant nothing): %w", g, err)
	}
	return resp.GetDeletedAt(), nil
}

// CreateDataset records a new dataset owned by owner.
func (k *Kit) CreateDataset(ctx context.Context, owner, id string) (*v1.ZedToken, error) {
	if err := k.require(ctx, User(owner), "active", k.orgRef()); err != nil {
		return nil, err
	}
	d := Dataset(id)
	return k.write(ctx, nil, create(rel(d, "org", plain(k.orgRef()))), create(rel(d, "owner", plain(User(owner)))))
}

// CreateWorkflow records a new workflow on dataset, owned by owner, who must
// be able to edit the dataset. Its participants read the dataset.
func (k *Kit) CreateWorkflow(ctx context.Context, owner, id, dataset string) (*v1.ZedToken, error) {
	if err := k.require(ctx, User(owner), "edit", Dataset(dataset)); err != nil {
		return nil, err
	}
	w, d := Workflow(id), Dataset(dataset)
	return k.write(ctx, nil,
		create(rel(w, "org", plain(k.orgRef()))),
		create(rel(w, "owner", plain(User(owner)))),
		create(rel(w, "dataset", plain(d))),
		create(rel(d, "workflow", plain(w))))
}

// ImportStudy records a new study imported by curator (odm-groups.txt:
// curators import studies).
func (k *Kit) ImportStudy(ctx context.Context, curator, id string) (*v1.ZedToken, error) {
	if err := k.require(ctx, User(curator), "import_studies", k.orgRef()); err != nil {
		return nil, err
	}
	s := Study(id)
	return k.write(ctx, nil, create(rel(s, "org", plain(k.orgRef()))), create(rel(s, "owner", plain(User(curator)))))
}

// Share shares a dataset or workflow with a user or group as Reader or
// Editor, or a study with a user or group (role ignored: everyone a study is
// shared with is a researcher). With a user, actor must be connected with
// them; with a group, actor must be a member (odm-groups.txt: members share
// data with the group).
func (k *Kit) Share(ctx context.Context, actor string, res, with Ref, role Role) (*v1.ZedToken, error) {
	relation, err := shareRelation(res, role)
	if err != nil {
		return nil, err
	}
	if err := k.require(ctx, User(actor), "share", res); err != nil {
		return nil, err
	}
	var pre []*v1.Precondition
	switch with.Type {
	case "group":
		if err := k.require(ctx, User(actor), "share_with", with); err != nil {
			return nil, err
		}
	case "user", "external_user":
		if with.ID != actor {
			if pre, err = k.connectionGuard(ctx, actor, with); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("%w: cannot share with %s", ErrNotAllowed, with)
	}
	return k.write(ctx, pre, touch(rel(res, relation, with.subject())))
}

// Unshare removes every role res gives with (a user or group) directly.
func (k *Kit) Unshare(ctx context.Context, actor string, res, with Ref) (*v1.ZedToken, error) {
	if err := k.require(ctx, User(actor), "share", res); err != nil {
		return nil, err
	}
	relations := []string{"reader", "editor"}
	if res.Type == "study" {
		relations = []string{"shared_with"}
	}
	var ups []*v1.RelationshipUpdate
	for _, r := range relations {
		ups = append(ups, remove(rel(res, r, with.subject())))
	}
	return k.write(ctx, nil, ups...)
}

func shareRelation(res Ref, role Role) (string, error) {
	switch res.Type {
	case "dataset", "workflow":
		if role == Reader || role == Editor {
			return string(role), nil
		}
		return "", fmt.Errorf("%w: %q is not a role on a %s (reader or editor)", ErrNotAllowed, role, res.Type)
	case "study":
		return "shared_with", nil
	}
	return "", fmt.Errorf("%w: %s cannot be shared", ErrNotAllowed, res)
}

// GrantOrgPermission gives user an organization permission; only holders of
// Manage organization grant (odm-users-and-permissions.txt).
func (k *Kit) GrantOrgPermission(ctx context.Context, actor, user string, p OrgPermission) (*v1.ZedToken, error) {
	if err := k.require(ctx, User(actor), "grant_permissions", k.orgRef()); err != nil {
		return nil, err
	}
	return k.write(ctx, nil, touch(rel(k.orgRef(), string(p), plain(User(user)))))
}

// RevokeOrgPermission takes an organization permission from user.
func (k *Kit) RevokeOrgPermission(ctx context.Context, actor, user string, p OrgPermission) (*v1.ZedToken, error) {
	if err := k.require(ctx, User(actor), "grant_permissions", k.orgRef()); err != nil {
		return nil, err
	}
	return k.write(ctx, nil, remove(rel(k.orgRef(), string(p), plain(User(user)))))
}
