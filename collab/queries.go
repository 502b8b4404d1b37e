package collab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
)

func isRaced(err error) bool { return errors.Is(err, ErrRaced) }

// ranks are the roles of a resource type, greatest first, with the
// permission that holds each.
func ranks(res Ref) ([]Role, []string, error) {
	switch res.Type {
	case "dataset", "workflow":
		return []Role{Editor, Reader}, []string{"edit", "read"}, nil
	case "study":
		return []Role{Editor, Reader}, []string{"edit_metadata", "browse"}, nil
	case "group":
		return []Role{Admin, Member}, []string{"active_admin", "member"}, nil
	}
	return nil, nil, fmt.Errorf("%w: %s has no roles", ErrNotAllowed, res)
}

// MyRole is user's greatest role on res (a dataset, workflow, study or
// group), None if they have none: one CheckBulkPermissions over the roles
// (omiq-collaboration.txt: the greatest role among several routes wins).
// at may be nil (fully consistent) or a write's token.
func (k *Kit) MyRole(ctx context.Context, user string, res Ref, at *v1.ZedToken) (Role, error) {
	roles, perms, err := ranks(res)
	if err != nil {
		return None, err
	}
	req := &v1.CheckBulkPermissionsRequest{Consistency: Fresh(at)}
	for _, p := range perms {
		req.Items = append(req.Items, &v1.CheckBulkPermissionsRequestItem{Resource: res.object(), Permission: p, Subject: plain(User(user))})
	}
	resp, err := k.perms.CheckBulkPermissions(ctx, req)
	if err != nil {
		return None, fmt.Errorf("collab: role of %s on %s: %w", user, res, err)
	}
	for i, pair := range resp.GetPairs() {
		if e := pair.GetError(); e != nil {
			return None, fmt.Errorf("collab: role of %s on %s: %s", user, res, e.GetMessage())
		}
		if pair.GetItem().GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
			return roles[i], nil
		}
	}
	return None, nil
}

// Access is one subject's greatest role on a resource, and how they hold
// it.
type Access struct {
	Subject Ref
	Role    Role
	// Via is one proof of the role, relationship by relationship from the
	// resource to the subject (`dataset:d#reader@group:g#member`,
	// `group:g#direct_member@user:bob`), every operand's chain where a
	// permission is an intersection (the model's `& org->active` adds
	// `dataset:d#org@organization:o`, `organization:o#account@user:*`);
	// empty where the server has no ambit.v1 AccessService.
	Via []string
}

// WhoHasAccess lists the users and external users with a role on res, each
// with their greatest role and one proof of it, sorted by subject (the
// Collaborators tab). It asks ambit's AccessService.ResourceAccess once per
// subject type, at one revision; against a server without that service
// (SpiceDB) it asks LookupSubjects once per subject type and role instead,
// without proofs.
func (k *Kit) WhoHasAccess(ctx context.Context, res Ref, at *v1.ZedToken) ([]Access, error) {
	roles, perms, err := ranks(res)
	if err != nil {
		return nil, err
	}
	out, err := k.resourceAccess(ctx, res, roles, perms, at)
	if status.Code(err) == codes.Unimplemented {
		out, err = k.lookupAccess(ctx, res, roles, perms, at)
	}
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Access) int {
		if a.Subject.Type != b.Subject.Type {
			return compare(a.Subject.Type, b.Subject.Type)
		}
		return compare(a.Subject.ID, b.Subject.ID)
	})
	return out, nil
}

func (k *Kit) resourceAccess(ctx context.Context, res Ref, roles []Role, perms []string, at *v1.ZedToken) ([]Access, error) {
	role := map[string]Role{}
	for i, p := range perms {
		role[p] = roles[i]
	}
	cons := &ambitv1.Consistency{Requirement: &ambitv1.Consistency_FullyConsistent{FullyConsistent: true}}
	if at != nil {
		cons = &ambitv1.Consistency{Requirement: &ambitv1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &ambitv1.ZedToken{Token: at.GetToken()}}}
	}
	var out []Access
	for _, typ := range []string{"user", "external_user"} {
		s, err := k.access.ResourceAccess(ctx, &ambitv1.ResourceAccessRequest{Consistency: cons,
			Resource: &ambitv1.ObjectReference{ObjectType: res.Type, ObjectId: res.ID}, RankedPermissions: perms, SubjectObjectType: typ})
		if err != nil {
			return nil, fmt.Errorf("collab: who has access to %s: %w", res, err)
		}
		for {
			r, err := s.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("collab: who has access to %s: %w", res, err)
			}
			if r.GetPermissionship() != ambitv1.Permissionship_PERMISSIONSHIP_HAS_PERMISSION || r.GetSubject().GetObject().GetObjectId() == "*" {
				continue
			}
			a := Access{Subject: Ref{typ, r.GetSubject().GetObject().GetObjectId()}, Role: role[r.GetPermission()]}
			for _, p := range r.GetProof() {
				a.Via = append(a.Via, proofText(p))
			}
			out = append(out, a)
			// Later calls read at the first one's revision.
			if tok := r.GetReadAt(); tok != nil {
				cons = &ambitv1.Consistency{Requirement: &ambitv1.Consistency_AtExactSnapshot{AtExactSnapshot: tok}}
			}
		}
	}
	return out, nil
}

func proofText(r *ambitv1.Relationship) string {
	s := r.GetResource().GetObjectType() + ":" + r.GetResource().GetObjectId() + "#" + r.GetRelation() + "@" +
		r.GetSubject().GetObject().GetObjectType() + ":" + r.GetSubject().GetObject().GetObjectId()
	if rel := r.GetSubject().GetOptionalRelation(); rel != "" {
		s += "#" + rel
	}
	return s
}

func (k *Kit) lookupAccess(ctx context.Context, res Ref, roles []Role, perms []string, at *v1.ZedToken) ([]Access, error) {
	cons := Fresh(at)
	best := map[Ref]Role{}
	for _, typ := range []string{"user", "external_user"} {
		for i, p := range perms {
			s, err := k.perms.LookupSubjects(ctx, &v1.LookupSubjectsRequest{Consistency: cons, Resource: res.object(), Permission: p, SubjectObjectType: typ})
			if err != nil {
				return nil, fmt.Errorf("collab: who has %s on %s: %w", p, res, err)
			}
			for {
				r, err := s.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					return nil, fmt.Errorf("collab: who has %s on %s: %w", p, res, err)
				}
				if r.GetSubject().GetPermissionship() != v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION || r.GetSubject().GetSubjectObjectId() == "*" {
					continue
				}
				ref := Ref{typ, r.GetSubject().GetSubjectObjectId()}
				if _, ok := best[ref]; !ok {
					best[ref] = roles[i]
				}
				if tok := r.GetLookedUpAt(); tok != nil && at == nil {
					cons = &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: tok}}
				}
			}
		}
	}
	out := make([]Access, 0, len(best))
	for s, r := range best {
		out = append(out, Access{Subject: s, Role: r})
	}
	return out, nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// VisibleGroups lists the groups user sees, sorted: their own (nested ones
// included), or every group with Manage groups (odm-groups.txt).
func (k *Kit) VisibleGroups(ctx context.Context, user string, at *v1.ZedToken) ([]string, error) {
	s, err := k.perms.LookupResources(ctx, &v1.LookupResourcesRequest{Consistency: Fresh(at), ResourceObjectType: "group", Permission: "view", Subject: plain(User(user))})
	if err != nil {
		return nil, fmt.Errorf("collab: groups of %s: %w", user, err)
	}
	var out []string
	for {
		r, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("collab: groups of %s: %w", user, err)
		}
		if r.GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION {
			out = append(out, r.GetResourceObjectId())
		}
	}
	slices.Sort(out)
	return out, nil
}

// UserPermissions is a row of the Users and permissions page.
type UserPermissions struct {
	User        string
	Permissions []OrgPermission
	Deactivated bool
}

// UsersAndPermissions lists every user who holds an organization permission
// or is deactivated, with their permissions (odm-users-and-permissions.txt:
// the list of all users and their permissions); only Manage organization
// sees it. Users with neither are every other account: with `user:*` as the
// organization's accounts they are not listed one by one.
func (k *Kit) UsersAndPermissions(ctx context.Context, actor string) ([]UserPermissions, error) {
	if err := k.require(ctx, User(actor), "view_users", k.orgRef()); err != nil {
		return nil, err
	}
	rows := map[string]*UserPermissions{}
	row := func(id string) *UserPermissions {
		if rows[id] == nil {
			rows[id] = &UserPermissions{User: id}
		}
		return rows[id]
	}
	rels, err := k.read(ctx, &v1.RelationshipFilter{ResourceType: "organization", OptionalResourceId: k.org, OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: "user"}})
	if err != nil {
		return nil, err
	}
	for _, r := range rels {
		id := r.Subject.Object.ObjectId
		if id == "*" {
			continue
		}
		switch {
		case r.Relation == "deactivated":
			row(id).Deactivated = true
		case slices.Contains(OrgPermissions, OrgPermission(r.Relation)):
			row(id).Permissions = append(row(id).Permissions, OrgPermission(r.Relation))
		}
	}
	out := make([]UserPermissions, 0, len(rows))
	for _, r := range rows {
		slices.Sort(r.Permissions)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b UserPermissions) int { return compare(a.User, b.User) })
	return out, nil
}
