package collab_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/ambit-authz/ambit/collab"
	"github.com/ambit-authz/ambit/internal/testserver"
)

// world is a live server holding model v2 and one organization, "lab": every
// local user is an account, olga holds Manage organization.
type world struct {
	t     *testing.T
	perms v1.PermissionsServiceClient
	kit   *collab.Kit
	clock *clock
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time)         { c.mu.Lock(); c.now = t; c.mu.Unlock() }
func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

func newWorld(t *testing.T) *world {
	t.Helper()
	srv := testserver.Start(t, testserver.Options{})
	schema, err := os.ReadFile("../schema/examples/collab.zed")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v1.NewSchemaServiceClient(srv.Conn).WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: string(schema)}); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, perms: v1.NewPermissionsServiceClient(srv.Conn), clock: &clock{now: time.Now().UTC()}}
	w.kit = collab.New(srv.Conn, "lab", collab.WithClock(w.clock.Now))
	w.writeRaw(
		"organization:lab#account@user:*",
		"organization:lab#all_users@group:all_users",
		"organization:lab#curators@group:curators",
		"organization:lab#org_manager@user:olga",
		"group:all_users#org@organization:lab",
		"group:all_users#direct_member@user:*",
		"group:curators#org@organization:lab",
		"group:curators#admin@user:cora",
	)
	return w
}

// writeRaw writes relationships in the text form res:id#rel@sub:id[#rel],
// as an administrator setting up the organization would.
func (w *world) writeRaw(rels ...string) {
	w.t.Helper()
	req := &v1.WriteRelationshipsRequest{}
	for _, r := range rels {
		var rt, rid, rel, st, sid, srel string
		if _, err := fmt.Sscanf(replaceSeps(r), "%s %s %s %s %s %s", &rt, &rid, &rel, &st, &sid, &srel); err != nil {
			if _, err := fmt.Sscanf(replaceSeps(r), "%s %s %s %s %s", &rt, &rid, &rel, &st, &sid); err != nil {
				w.t.Fatalf("bad relationship %q: %v", r, err)
			}
		}
		req.Updates = append(req.Updates, &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: rt, ObjectId: rid}, Relation: rel,
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: st, ObjectId: sid}, OptionalRelation: srel}}})
	}
	if _, err := w.perms.WriteRelationships(context.Background(), req); err != nil {
		w.t.Fatal(err)
	}
}

func replaceSeps(s string) string {
	out := []byte(s)
	for i, c := range out {
		if c == ':' || c == '#' || c == '@' {
			out[i] = ' '
		}
	}
	return string(out)
}

func (w *world) ok(tok *v1.ZedToken, err error) *v1.ZedToken {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
	return tok
}

func (w *world) role(user string, res collab.Ref, at *v1.ZedToken) collab.Role {
	w.t.Helper()
	r, err := w.kit.MyRole(context.Background(), user, res, at)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

// activeAdmins counts group's admins that are active, fully consistent.
func (w *world) activeAdmins(group string, candidates ...string) int {
	w.t.Helper()
	n := 0
	for _, u := range candidates {
		if w.role(u, collab.Group(group), nil) == collab.Admin {
			n++
		}
	}
	return n
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

// connect makes a and b connected (a asks, b accepts).
func (w *world) connect(a, b string) {
	w.t.Helper()
	ctx := context.Background()
	w.ok(w.kit.Connect(ctx, a, b))
	w.ok(w.kit.Accept(ctx, b, a))
}

func TestGroupsAndConnections(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()

	tok := w.ok(w.kit.CreateGroup(ctx, "ana", "imaging"))
	if got := w.role("ana", collab.Group("imaging"), tok); got != collab.Admin {
		t.Fatalf("creator's role = %q, want admin", got)
	}

	// Adding needs an accepted connection between the admin and the user.
	_, err := w.kit.AddMember(ctx, "ana", "imaging", collab.User("bob"))
	wantErr(t, err, collab.ErrNotConnected)
	w.ok(w.kit.Connect(ctx, "ana", "bob"))
	_, err = w.kit.AddMember(ctx, "ana", "imaging", collab.User("bob"))
	wantErr(t, err, collab.ErrNotConnected)
	_, err = w.kit.Accept(ctx, "ana", "bob") // only the recipient accepts
	wantErr(t, err, collab.ErrNotAllowed)
	w.ok(w.kit.Accept(ctx, "bob", "ana"))
	tok = w.ok(w.kit.AddMember(ctx, "ana", "imaging", collab.User("bob")))
	if got := w.role("bob", collab.Group("imaging"), tok); got != collab.Member {
		t.Fatalf("bob's role = %q, want member", got)
	}

	// A member is no admin: bob cannot add anyone.
	w.connect("bob", "carl")
	_, err = w.kit.AddMember(ctx, "bob", "imaging", collab.User("carl"))
	wantErr(t, err, collab.ErrNotAllowed)

	// An Enterprise administrator adds without a connection, once granted.
	w.ok(w.kit.CreateGroup(ctx, "erin", "core"))
	_, err = w.kit.AddMember(ctx, "erin", "core", collab.User("zed"))
	wantErr(t, err, collab.ErrNotConnected)
	_, err = w.kit.GrantOrgPermission(ctx, "ana", "erin", collab.EnterpriseAdmin)
	wantErr(t, err, collab.ErrNotAllowed)
	w.ok(w.kit.GrantOrgPermission(ctx, "olga", "erin", collab.EnterpriseAdmin))
	tok = w.ok(w.kit.AddMember(ctx, "erin", "core", collab.User("zed")))
	if got := w.role("zed", collab.Group("core"), tok); got != collab.Member {
		t.Fatalf("zed's role = %q, want member", got)
	}

	// External users join through an External Connection.
	_, err = w.kit.AddMember(ctx, "ana", "imaging", collab.ExternalUser("xavier"))
	wantErr(t, err, collab.ErrNotConnected)
	w.ok(w.kit.ConnectExternal(ctx, "ana", "xavier"))
	w.ok(w.kit.AddMember(ctx, "ana", "imaging", collab.ExternalUser("xavier")))

	// Nested groups: core's members belong to imaging once core is added.
	w.ok(w.kit.AddMember(ctx, "erin", "core", collab.User("ana"))) // erin is an Enterprise admin
	tok = w.ok(w.kit.AddMember(ctx, "ana", "imaging", collab.Group("core")))
	if got := w.role("zed", collab.Group("imaging"), tok); got != collab.Member {
		t.Fatalf("zed through core: role = %q, want member", got)
	}
	groups, err := w.kit.VisibleGroups(ctx, "zed", tok)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"all_users", "core", "imaging"}; !slices.Equal(groups, want) {
		t.Fatalf("zed sees %v, want %v", groups, want)
	}

	// Removing revokes at once.
	tok = w.ok(w.kit.RemoveMember(ctx, "ana", "imaging", collab.User("bob")))
	if got := w.role("bob", collab.Group("imaging"), tok); got != collab.None {
		t.Fatalf("removed bob's role = %q", got)
	}

	// Default groups are never deleted; other groups by their admin.
	_, err = w.kit.DeleteGroup(ctx, "olga", "all_users")
	wantErr(t, err, collab.ErrDefaultGroup)
	_, err = w.kit.DeleteGroup(ctx, "zed", "imaging")
	wantErr(t, err, collab.ErrNotAllowed)
	tok = w.ok(w.kit.DeleteGroup(ctx, "ana", "imaging"))
	if got := w.role("zed", collab.Group("imaging"), tok); got != collab.None {
		t.Fatalf("member of a deleted group: role = %q", got)
	}
}

func TestSharing(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.ok(w.kit.CreateGroup(ctx, "ana", "imaging"))
	w.connect("ana", "bob")
	w.connect("ana", "fay")
	w.ok(w.kit.AddMember(ctx, "ana", "imaging", collab.User("fay")))
	w.ok(w.kit.CreateDataset(ctx, "ana", "cyto"))
	d := collab.Dataset("cyto")

	_, err := w.kit.Share(ctx, "ana", d, collab.User("carl"), collab.Reader)
	wantErr(t, err, collab.ErrNotConnected)
	_, err = w.kit.Share(ctx, "bob", d, collab.User("ana"), collab.Reader)
	wantErr(t, err, collab.ErrNotAllowed)
	_, err = w.kit.Share(ctx, "ana", d, collab.User("bob"), collab.Role("owner"))
	wantErr(t, err, collab.ErrNotAllowed)

	w.ok(w.kit.Share(ctx, "ana", d, collab.Group("imaging"), collab.Reader))
	w.ok(w.kit.Share(ctx, "ana", d, collab.User("fay"), collab.Editor))
	tok := w.ok(w.kit.Share(ctx, "ana", d, collab.User("bob"), collab.Reader))

	// The greatest role wins; the Collaborators tab lists each once.
	who, err := w.kit.WhoHasAccess(ctx, d, tok)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		who  collab.Ref
		role collab.Role
		via  string
	}
	var got []row
	for _, a := range who {
		got = append(got, row{a.Subject, a.Role, strings.Join(a.Via, " ")})
	}
	// Each proof shows both sides of the model's `... & org->active`.
	active := " dataset:cyto#org@organization:lab organization:lab#account@user:*"
	want := []row{
		{collab.User("ana"), collab.Editor, "dataset:cyto#owner@user:ana" + active},
		{collab.User("bob"), collab.Reader, "dataset:cyto#reader@user:bob" + active},
		{collab.User("fay"), collab.Editor, "dataset:cyto#editor@user:fay" + active},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("who has access = %v, want %v", got, want)
	}

	// A workflow's participants read its dataset, never edit it.
	w.ok(w.kit.CreateWorkflow(ctx, "ana", "gating", "cyto"))
	w.connect("ana", "raj")
	tok = w.ok(w.kit.Share(ctx, "ana", collab.Workflow("gating"), collab.User("raj"), collab.Editor))
	if got := w.role("raj", d, tok); got != collab.Reader {
		t.Fatalf("workflow editor's role on its dataset = %q, want reader", got)
	}
	if got := w.role("raj", collab.Workflow("gating"), tok); got != collab.Editor {
		t.Fatalf("raj's role on the workflow = %q, want editor", got)
	}

	// Unsharing bob leaves him nothing; fay keeps edit.
	tok = w.ok(w.kit.Unshare(ctx, "ana", d, collab.User("bob")))
	if got := w.role("bob", d, tok); got != collab.None {
		t.Fatalf("bob after unshare = %q", got)
	}

	// Deactivation removes every role and keeps every relationship.
	tok = w.ok(w.kit.Deactivate(ctx, "olga", "fay"))
	if got := w.role("fay", d, tok); got != collab.None {
		t.Fatalf("deactivated fay's role = %q", got)
	}
	tok = w.ok(w.kit.Reactivate(ctx, "olga", "fay"))
	if got := w.role("fay", d, tok); got != collab.Editor {
		t.Fatalf("reactivated fay's role = %q, want editor", got)
	}

	rows, err := w.kit.UsersAndPermissions(ctx, "olga")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].User != "olga" || !slices.Equal(rows[0].Permissions, []collab.OrgPermission{collab.ManageOrganization}) {
		t.Fatalf("users and permissions = %+v", rows)
	}
	_, err = w.kit.UsersAndPermissions(ctx, "ana")
	wantErr(t, err, collab.ErrNotAllowed)
}

func TestLastActiveAdmin(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.ok(w.kit.CreateGroup(ctx, "ana", "g"))
	_, err := w.kit.RemoveAdmin(ctx, "ana", "g", "ana")
	wantErr(t, err, collab.ErrLastAdmin)
	_, err = w.kit.Deactivate(ctx, "olga", "ana")
	wantErr(t, err, collab.ErrLastAdmin)

	// A deactivated admin is not one who stays.
	w.ok(w.kit.SetRole(ctx, "ana", "g", "dean", collab.Admin))
	w.ok(w.kit.Deactivate(ctx, "olga", "dean"))
	_, err = w.kit.RemoveAdmin(ctx, "ana", "g", "ana")
	wantErr(t, err, collab.ErrLastAdmin)

	w.ok(w.kit.SetRole(ctx, "ana", "g", "pia", collab.Admin))
	tok := w.ok(w.kit.SetRole(ctx, "pia", "g", "ana", collab.Member))
	if got := w.role("ana", collab.Group("g"), tok); got != collab.Member {
		t.Fatalf("ana after stepping down = %q, want member", got)
	}
	if got := w.activeAdmins("g", "ana", "dean", "pia"); got != 1 {
		t.Fatalf("%d active admins, want 1 (pia)", got)
	}
}

// race runs a and b at the same time and returns their errors.
func race(a, b func() error) (error, error) {
	var ea, eb error
	var wg sync.WaitGroup
	start := make(chan struct{})
	wg.Add(2)
	go func() { defer wg.Done(); <-start; ea = a() }()
	go func() { defer wg.Done(); <-start; eb = b() }()
	close(start)
	wg.Wait()
	return ea, eb
}

const raceRounds = 15

// Two admins remove each other at the same time: one wins, the group keeps
// an active admin.
func TestRaceAdminsRemoveEachOther(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for i := range raceRounds {
		g := fmt.Sprintf("g%d", i)
		w.ok(w.kit.CreateGroup(ctx, "ana", g))
		w.ok(w.kit.SetRole(ctx, "ana", g, "bob", collab.Admin))
		ea, eb := race(
			func() error { _, err := w.kit.RemoveAdmin(ctx, "ana", g, "bob"); return err },
			func() error { _, err := w.kit.RemoveAdmin(ctx, "bob", g, "ana"); return err },
		)
		if n := w.activeAdmins(g, "ana", "bob"); n < 1 {
			t.Fatalf("round %d: no active admin left (errors %v, %v)", i, ea, eb)
		}
		if ea == nil && eb == nil {
			t.Fatalf("round %d: both removals succeeded", i)
		}
		for _, err := range []error{ea, eb} {
			if err != nil && !errors.Is(err, collab.ErrRaced) && !errors.Is(err, collab.ErrLastAdmin) && !errors.Is(err, collab.ErrNotAllowed) {
				t.Fatalf("round %d: unexpected error %v", i, err)
			}
		}
	}
}

// An admin is deactivated while the other admin is removed: the group keeps
// an active admin.
func TestRaceDeactivateWhileRemoving(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for i := range raceRounds {
		g := fmt.Sprintf("g%d", i)
		a, b := fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)
		w.ok(w.kit.CreateGroup(ctx, a, g))
		w.ok(w.kit.SetRole(ctx, a, g, b, collab.Admin))
		ea, eb := race(
			func() error { _, err := w.kit.Deactivate(ctx, "olga", a); return err },
			func() error { _, err := w.kit.RemoveAdmin(ctx, a, g, b); return err },
		)
		if n := w.activeAdmins(g, a, b); n < 1 {
			t.Fatalf("round %d: no active admin left (errors %v, %v)", i, ea, eb)
		}
	}
}

// A join code admits at 47 h 59 min and refuses at 48 h 1 min.
func TestJoinCodeWindow(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.ok(w.kit.CreateGroup(ctx, "ana", "g"))
	_, _, err := w.kit.CreateJoinCode(ctx, "bob", "g")
	wantErr(t, err, collab.ErrNotAllowed)
	code, _, err := w.kit.CreateJoinCode(ctx, "ana", "g")
	if err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(47*time.Hour + 59*time.Minute)
	tok := w.ok(w.kit.RedeemJoinCode(ctx, "early", code))
	if got := w.role("early", collab.Group("g"), tok); got != collab.Member {
		t.Fatalf("redeemed at 47h59m: role = %q, want member", got)
	}
	w.clock.Advance(2 * time.Minute)
	_, err = w.kit.RedeemJoinCode(ctx, "late", code)
	wantErr(t, err, collab.ErrCodeInvalid)
	if got := w.role("late", collab.Group("g"), nil); got != collab.None {
		t.Fatalf("refused redeemer's role = %q", got)
	}
	_, err = w.kit.RedeemJoinCode(ctx, "anyone", "no-such-code")
	wantErr(t, err, collab.ErrCodeInvalid)
}

// A connection is revoked while a member is being added: a member who was
// added was connected at the revision of the add.
func TestRaceDisconnectWhileAdding(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.ok(w.kit.CreateGroup(ctx, "ana", "g"))
	for i := range raceRounds {
		u := fmt.Sprintf("u%d", i)
		w.connect("ana", u)
		var added *v1.ZedToken
		ea, eb := race(
			func() error {
				tok, err := w.kit.AddMember(ctx, "ana", "g", collab.User(u))
				added = tok
				return err
			},
			func() error { _, err := w.kit.Disconnect(ctx, "ana", u); return err },
		)
		if eb != nil {
			t.Fatalf("round %d: disconnect: %v", i, eb)
		}
		if ea != nil {
			if !errors.Is(ea, collab.ErrNotConnected) && !errors.Is(ea, collab.ErrRaced) {
				t.Fatalf("round %d: add: %v", i, ea)
			}
			if got := w.role(u, collab.Group("g"), nil); got != collab.None {
				t.Fatalf("round %d: refused add left %s a %s", i, u, got)
			}
			continue
		}
		// Added: the connection held at the add's revision.
		resp, err := w.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{
			Consistency: &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: added}},
			Resource:    &v1.ObjectReference{ObjectType: "connection", ObjectId: "ana--" + u}, Permission: "connected",
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: u}}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetPermissionship() != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
			t.Fatalf("round %d: %s was added at a revision where the connection did not hold", i, u)
		}
	}
}

// Studies: curators import them; whoever sees one shares it with a group
// they are a member of (odm-groups.txt), not with one they are not in; a
// curator among those it is shared with edits it; revoking Manage
// organization takes the user list away.
func TestStudiesAndOrgPermissions(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.writeRaw("group:curators#direct_member@user:cora", "group:curators#direct_member@user:kim")
	_, err := w.kit.ImportStudy(ctx, "bob", "atlas")
	wantErr(t, err, collab.ErrNotAllowed)
	w.ok(w.kit.ImportStudy(ctx, "cora", "atlas"))
	w.ok(w.kit.CreateGroup(ctx, "cora", "lab"))
	w.ok(w.kit.CreateGroup(ctx, "zed", "elsewhere"))
	_, err = w.kit.Share(ctx, "cora", collab.Study("atlas"), collab.Group("elsewhere"), collab.Reader)
	wantErr(t, err, collab.ErrNotAllowed) // cora is no member of elsewhere
	w.connect("cora", "kim")
	w.ok(w.kit.AddMember(ctx, "cora", "lab", collab.User("kim")))
	w.connect("cora", "bob")
	w.ok(w.kit.AddMember(ctx, "cora", "lab", collab.User("bob")))
	tok := w.ok(w.kit.Share(ctx, "cora", collab.Study("atlas"), collab.Group("lab"), collab.Reader))
	if got := w.role("bob", collab.Study("atlas"), tok); got != collab.Reader {
		t.Fatalf("bob (a researcher in lab) on the study: %q, want reader", got)
	}
	if got := w.role("kim", collab.Study("atlas"), tok); got != collab.Editor {
		t.Fatalf("kim (a curator in lab) on the study: %q, want editor", got)
	}
	tok = w.ok(w.kit.Unshare(ctx, "cora", collab.Study("atlas"), collab.Group("lab")))
	if got := w.role("bob", collab.Study("atlas"), tok); got != collab.None {
		t.Fatalf("bob after unshare: %q", got)
	}

	w.ok(w.kit.GrantOrgPermission(ctx, "olga", "pat", collab.ManageOrganization))
	if _, err := w.kit.UsersAndPermissions(ctx, "pat"); err != nil {
		t.Fatalf("pat with Manage organization: %v", err)
	}
	w.ok(w.kit.RevokeOrgPermission(ctx, "olga", "pat", collab.ManageOrganization))
	_, err = w.kit.UsersAndPermissions(ctx, "pat")
	wantErr(t, err, collab.ErrNotAllowed)
}
