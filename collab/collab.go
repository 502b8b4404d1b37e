// Package collab is a typed kit for the application flows of the
// collaboration model in schema/examples/collab.zed (model v2): connections,
// groups with admins and join codes, sharing datasets, workflows and studies
// as Reader or Editor, organization permissions and deactivation.
//
// It talks to any server of the authzed v1 API (ambit, or SpiceDB) through a
// gRPC connection and imports nothing of ambit's but its public API (the
// ambit.v1 AccessService, where the server has it): it is what an
// application would write. Each flow checks what the acting user may do,
// then writes in one request whose preconditions hold the rule the schema
// cannot hold alone (the group keeps an active admin, the two users are
// still connected, the join code still exists), so a concurrent change makes
// the write fail with ErrRaced (ErrCodeInvalid for a join code) instead of
// breaking the rule. DeleteGroup alone writes twice: the group's own
// relationships, then the grants that named it.
//
// Every call that writes returns the ZedToken of its write. Access is
// immediate (omiq-collaboration.txt, odm-groups.txt): pass the token as
// at_least_as_fresh consistency (Fresh) to read the write's effect at
// once on any node; the kit's own reads use fully consistent reads unless
// given a token.
package collab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
)

// Errors a flow returns. They wrap the server's error where there is one.
var (
	// ErrNotAllowed: the acting user lacks the permission the flow needs.
	// Nothing was written.
	ErrNotAllowed = errors.New("collab: not allowed")
	// ErrNotConnected: adding a user to a group, or sharing with a user,
	// needs an accepted connection between the two. Nothing was written.
	ErrNotConnected = errors.New("collab: the users are not connected")
	// ErrLastAdmin: the change would leave a group with no active admin.
	// Nothing was written.
	ErrLastAdmin = errors.New("collab: a group must keep at least one active admin")
	// ErrDefaultGroup: the default groups (All users, Curator) are never
	// deleted. Nothing was written.
	ErrDefaultGroup = errors.New("collab: default groups cannot be deleted")
	// ErrCodeInvalid: the join code does not exist, has expired, or the user
	// may not redeem it. Nothing was written.
	ErrCodeInvalid = errors.New("collab: the join code is not valid")
	// ErrRaced: a concurrent change broke a precondition of the write (an
	// admin who was to stay was removed, a connection was revoked). Nothing
	// was written; call the flow again. A join code that expires or is
	// deleted while being redeemed is ErrCodeInvalid instead.
	ErrRaced = errors.New("collab: a concurrent change broke the flow's precondition; nothing was written, retry")
)

// JoinCodeValidity is how long a join code admits users after its creation
// (omiq-collaboration.txt: 48 hours).
const JoinCodeValidity = 48 * time.Hour

// Role is a role on a dataset or workflow, or in a group.
type Role string

// Roles on resources (omiq-collaboration.txt) and in groups (odm-groups.txt).
const (
	Reader Role = "reader"
	Editor Role = "editor"
	Member Role = "member"
	Admin  Role = "admin"
	None   Role = ""
)

// OrgPermission is one of the five organization permissions
// (odm-users-and-permissions.txt), or the OMIQ Enterprise administrator role.
type OrgPermission string

// The organization permissions, named by the relation that holds them.
const (
	ManageOrganization OrgPermission = "org_manager"
	ManageGroups       OrgPermission = "group_manager"
	SetUpTemplates     OrgPermission = "template_manager"
	AccessAllData      OrgPermission = "data_steward"
	ConfigureFacets    OrgPermission = "facet_manager"
	EnterpriseAdmin    OrgPermission = "enterprise_admin"
)

// OrgPermissions lists every OrgPermission.
var OrgPermissions = []OrgPermission{ManageOrganization, ManageGroups, SetUpTemplates, AccessAllData, ConfigureFacets, EnterpriseAdmin}

// Ref names an object of the model: a user, an external user, a group, a
// dataset, a workflow or a study.
type Ref struct{ Type, ID string }

// Constructors for Refs.
func User(id string) Ref         { return Ref{"user", id} }
func ExternalUser(id string) Ref { return Ref{"external_user", id} }
func Group(id string) Ref        { return Ref{"group", id} }
func Dataset(id string) Ref      { return Ref{"dataset", id} }
func Workflow(id string) Ref     { return Ref{"workflow", id} }
func Study(id string) Ref        { return Ref{"study", id} }

func (r Ref) String() string { return r.Type + ":" + r.ID }

func (r Ref) object() *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: r.Type, ObjectId: r.ID}
}

// subject is r as a subject: a group stands for its members.
func (r Ref) subject() *v1.SubjectReference {
	s := &v1.SubjectReference{Object: r.object()}
	if r.Type == "group" {
		s.OptionalRelation = "member"
	}
	return s
}

// Kit performs the flows for one organization.
type Kit struct {
	perms  v1.PermissionsServiceClient
	access ambitv1.AccessServiceClient
	org    string
	now    func() time.Time
}

// Option configures a Kit.
type Option func(*Kit)

// WithClock sets the clock the kit stamps join codes with and passes as
// `now` when a code is redeemed (tests use it to cross the 48-hour line).
func WithClock(now func() time.Time) Option { return func(k *Kit) { k.now = now } }

// New returns a kit for organization org over conn, a connection to a server
// of the authzed v1 API (with the caller's credentials).
func New(conn grpc.ClientConnInterface, org string, opts ...Option) *Kit {
	k := &Kit{perms: v1.NewPermissionsServiceClient(conn), access: ambitv1.NewAccessServiceClient(conn), org: org, now: time.Now}
	for _, o := range opts {
		o(k)
	}
	return k
}

func (k *Kit) orgRef() Ref { return Ref{"organization", k.org} }

// Fresh is the consistency that reads a write's effect: at least as fresh
// as tok (fully consistent without a token).
func Fresh(tok *v1.ZedToken) *v1.Consistency {
	if tok == nil {
		return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
	}
	return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: tok}}
}

// check reports whether subject has permission on resource (HAS only: a
// conditional answer is a no).
func (k *Kit) check(ctx context.Context, res Ref, perm string, sub Ref, caveat map[string]any) (bool, error) {
	req := &v1.CheckPermissionRequest{Consistency: Fresh(nil), Resource: res.object(), Permission: perm, Subject: &v1.SubjectReference{Object: sub.object()}}
	if caveat != nil {
		c, err := structpb.NewStruct(caveat)
		if err != nil {
			return false, fmt.Errorf("collab: caveat context: %w", err)
		}
		req.Context = c
	}
	resp, err := k.perms.CheckPermission(ctx, req)
	if err != nil {
		return false, fmt.Errorf("collab: check %s#%s@%s: %w", res, perm, sub, err)
	}
	return resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION, nil
}

// require returns ErrNotAllowed unless actor has perm on res.
func (k *Kit) require(ctx context.Context, actor Ref, perm string, res Ref) error {
	ok, err := k.check(ctx, res, perm, actor, nil)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s lacks %s on %s", ErrNotAllowed, actor, perm, res)
	}
	return nil
}

// rel builds a relationship res#relation@sub (sub with an optional relation).
func rel(res Ref, relation string, sub *v1.SubjectReference) *v1.Relationship {
	return &v1.Relationship{Resource: res.object(), Relation: relation, Subject: sub}
}

func plain(r Ref) *v1.SubjectReference { return &v1.SubjectReference{Object: r.object()} }

func wildcard(typ string) *v1.SubjectReference {
	return &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: typ, ObjectId: "*"}}
}

func touch(r *v1.Relationship) *v1.RelationshipUpdate {
	return &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: r}
}

func create(r *v1.Relationship) *v1.RelationshipUpdate {
	return &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_CREATE, Relationship: r}
}

func remove(r *v1.Relationship) *v1.RelationshipUpdate {
	return &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_DELETE, Relationship: r}
}

// exactly is a filter matching the one relationship r.
func exactly(r *v1.Relationship) *v1.RelationshipFilter {
	f := &v1.RelationshipFilter{ResourceType: r.Resource.ObjectType, OptionalResourceId: r.Resource.ObjectId, OptionalRelation: r.Relation,
		OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: r.Subject.Object.ObjectType, OptionalSubjectId: r.Subject.Object.ObjectId}}
	if r.Subject.OptionalRelation != "" {
		f.OptionalSubjectFilter.OptionalRelation = &v1.SubjectFilter_RelationFilter{Relation: r.Subject.OptionalRelation}
	}
	return f
}

func mustMatch(r *v1.Relationship) *v1.Precondition {
	return &v1.Precondition{Operation: v1.Precondition_OPERATION_MUST_MATCH, Filter: exactly(r)}
}

func mustNotMatch(r *v1.Relationship) *v1.Precondition {
	return &v1.Precondition{Operation: v1.Precondition_OPERATION_MUST_NOT_MATCH, Filter: exactly(r)}
}

// write sends one WriteRelationships; a failed precondition is ErrRaced.
func (k *Kit) write(ctx context.Context, pre []*v1.Precondition, ups ...*v1.RelationshipUpdate) (*v1.ZedToken, error) {
	resp, err := k.perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: ups, OptionalPreconditions: pre})
	if err != nil {
		if status.Code(err) == codes.FailedPrecondition && len(pre) > 0 {
			return nil, fmt.Errorf("%w: %v", ErrRaced, err)
		}
		return nil, fmt.Errorf("collab: write: %w", err)
	}
	return resp.GetWrittenAt(), nil
}

// read returns the relationships matching f, fully consistent.
func (k *Kit) read(ctx context.Context, f *v1.RelationshipFilter) ([]*v1.Relationship, error) {
	s, err := k.perms.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{Consistency: Fresh(nil), RelationshipFilter: f})
	if err != nil {
		return nil, fmt.Errorf("collab: read: %w", err)
	}
	var out []*v1.Relationship
	for {
		r, err := s.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("collab: read: %w", err)
		}
		out = append(out, r.GetRelationship())
	}
}

// newCode returns a random join code id (128 bits, hex).
func newCode() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// pairID names the connection between users a and b: their ids sorted and
// joined by "--". Distinct pairs could share a name only when ids contain
// "--"; the kit never relies on the name alone, it checks the connection's
// two parties.
func pairID(a, b string) string {
	ids := []string{a, b}
	slices.Sort(ids)
	return strings.Join(ids, "--")
}
