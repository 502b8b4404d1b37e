package scim_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/metadata"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/api/scim"
	"github.com/ambit-authz/ambit/internal/testserver"
	"github.com/ambit-authz/ambit/tuple"
)

// The live tests run the SCIM endpoints of a real server (a one-node raft
// cluster on loopback, collab.zed as its schema) over HTTP on loopback, as
// an identity provider's connector would, and check what they wrote with
// the authzed API.

const (
	adminKey = "admin-key" // a preshared key: every scope
	scimKey  = "scim-key"  // --scim-key: SCIM only
	org      = "lab"
	maxBody  = 64 << 10
)

type live struct {
	t     *testing.T
	ts    *testserver.Server
	base  string
	auth  string
	http  *http.Client
	perms v1.PermissionsServiceClient
}

func startLive(t *testing.T, limits ...api.Limits) *live {
	t.Helper()
	o := testserver.Options{Keys: []string{adminKey}, ApplyTimeout: 30 * time.Second}
	for _, l := range limits {
		o.Limits = l
	}
	ts := testserver.Start(t, o)
	l := &live{t: t, ts: ts, auth: "Bearer " + scimKey, http: &http.Client{Timeout: 30 * time.Second}, perms: v1.NewPermissionsServiceClient(ts.Conn)}
	text, err := os.ReadFile("../../schema/examples/collab.zed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v1.NewSchemaServiceClient(ts.Conn).WriteSchema(l.ctx(), &v1.WriteSchemaRequest{Schema: string(text)}); err != nil {
		t.Fatal(err)
	}
	// What the organization has before any SCIM call: its All users group,
	// and data shared with it.
	l.write(v1.RelationshipUpdate_OPERATION_TOUCH, "organization:lab#all_users@group:all_users", "group:all_users#org@organization:lab",
		"dataset:everyone#org@organization:lab", "dataset:everyone#reader@group:all_users#member")
	h, err := ts.API.SCIMHandler(api.SCIMOptions{Mapping: scim.DefaultMapping(org), Auth: api.NewAuthenticator([]string{adminKey}),
		Keys: []string{scimKey}, MaxBodyBytes: maxBody})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(api.SCIMPrefix+"/", h)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(lis) }()
	t.Cleanup(func() { hs.Close() })
	l.base = "http://" + lis.Addr().String() + api.SCIMPrefix
	return l
}

func (l *live) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	l.t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+adminKey)
}

func (l *live) write(op v1.RelationshipUpdate_Operation, rels ...string) {
	l.t.Helper()
	var ups []*v1.RelationshipUpdate
	for _, s := range rels {
		ups = append(ups, &v1.RelationshipUpdate{Operation: op, Relationship: pbRel(s)})
	}
	if _, err := l.perms.WriteRelationships(l.ctx(), &v1.WriteRelationshipsRequest{Updates: ups}); err != nil {
		l.t.Fatalf("write %v: %v", rels, err)
	}
}

func pbRel(s string) *v1.Relationship {
	r := tuple.MustParse(s)
	return &v1.Relationship{
		Resource: &v1.ObjectReference{ObjectType: r.Resource.Type, ObjectId: r.Resource.ID},
		Relation: r.Relation,
		Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: r.Subject.Type, ObjectId: r.Subject.ID}, OptionalRelation: r.Subject.Relation},
	}
}

// check asks whether subject (type:id) has perm on resource (type:id), at
// the latest revision.
func (l *live) check(resource, perm, subject string) bool {
	l.t.Helper()
	rt, rid, _ := strings.Cut(resource, ":")
	st, sid, _ := strings.Cut(subject, ":")
	resp, err := l.perms.CheckPermission(l.ctx(), &v1.CheckPermissionRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		Resource:    &v1.ObjectReference{ObjectType: rt, ObjectId: rid}, Permission: perm,
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: st, ObjectId: sid}},
	})
	if err != nil {
		l.t.Fatalf("check %s#%s@%s: %v", resource, perm, subject, err)
	}
	return resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
}

// wantAccess checks each (resource, perm) for subject and fails on a
// mismatch.
func (l *live) wantAccess(subject string, want bool, pairs ...string) {
	l.t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if got := l.check(pairs[i], pairs[i+1], subject); got != want {
			l.t.Errorf("%s#%s@%s = %v, want %v", pairs[i], pairs[i+1], subject, got, want)
		}
	}
}

// has reports whether a relationship is stored.
func (l *live) has(rel string) bool {
	l.t.Helper()
	r := tuple.MustParse(rel)
	stream, err := l.perms.ReadRelationships(l.ctx(), &v1.ReadRelationshipsRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: r.Resource.Type, OptionalResourceId: r.Resource.ID, OptionalRelation: r.Relation,
			OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: r.Subject.Type, OptionalSubjectId: r.Subject.ID}},
	})
	if err != nil {
		l.t.Fatal(err)
	}
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return false
		}
		if err != nil {
			l.t.Fatal(err)
		}
		if m.GetRelationship().GetSubject().GetOptionalRelation() == r.Subject.Relation {
			return true
		}
	}
}

// reply is an HTTP response: status, headers and the JSON body.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (l *live) do(method, path, body string, header ...string) reply {
	l.t.Helper()
	req, err := http.NewRequest(method, l.base+path, strings.NewReader(body))
	if err != nil {
		l.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/scim+json")
	if l.auth != "" {
		req.Header.Set("Authorization", l.auth)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := l.http.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(data)}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &r.body); err != nil {
			l.t.Fatalf("%s %s: the answer is not JSON: %s", method, path, data)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/scim+json" {
			l.t.Errorf("%s %s: Content-Type %q, want application/scim+json", method, path, ct)
		}
	}
	return r
}

func (l *live) want(status int, method, path, body string, header ...string) reply {
	l.t.Helper()
	r := l.do(method, path, body, header...)
	if r.status != status {
		l.t.Fatalf("%s %s = %d %s, want %d", method, path, r.status, r.raw, status)
	}
	return r
}

// wantError asserts a SCIM error body (RFC 7644 §3.12): the Error schema,
// status as a string, scimType when one is expected, a detail.
func (l *live) wantError(status int, scimType, method, path, body string, header ...string) reply {
	l.t.Helper()
	r := l.do(method, path, body, header...)
	b := r.body
	schemas, _ := b["schemas"].([]any)
	if r.status != status || len(schemas) != 1 || schemas[0] != scim.ErrorSchema || b["status"] != strconv.Itoa(status) ||
		(scimType != "" && b["scimType"] != scimType) || (scimType == "" && b["scimType"] != nil) || b["detail"] == "" {
		l.t.Fatalf("%s %s = %d %s, want a SCIM error %d %q", method, path, r.status, r.raw, status, scimType)
	}
	return r
}

// revision is the store's applied revision: unchanged means nothing was
// proposed.
func (l *live) revision() tuple.Revision { return l.ts.Store.AppliedRevision() }

func str(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		mm, _ := v.(map[string]any)
		v = mm[p]
	}
	s, _ := v.(string)
	return s
}

func patch(ops string) string {
	return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":` + ops + `}`
}
