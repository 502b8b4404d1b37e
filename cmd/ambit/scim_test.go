package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestSCIMFlags(t *testing.T) {
	dir := t.TempDir()
	file := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := `users:
  relationships: ["organization:{org}#account@user:{id}"]
groups:
  member: "group:{id}#direct_member@{member}"
  user_member: "user:{id}"
  group_member: "group:{id}#member"
`
	tests := []struct {
		name    string
		c       scimConfig
		on      bool
		org     string
		wantErr string
	}{
		{name: "off", c: scimConfig{}},
		{name: "org: the default mapping", c: scimConfig{org: "lab"}, on: true, org: "lab"},
		{name: "bad org", c: scimConfig{org: "a b"}, wantErr: "organization"},
		{name: "file with the org from the flag", c: scimConfig{mapping: file("m.yaml", good), org: "acme"}, on: true, org: "acme"},
		{name: "file without an org", c: scimConfig{mapping: file("m2.yaml", good)}, wantErr: "organization"},
		{name: "missing file", c: scimConfig{mapping: filepath.Join(dir, "nope.yaml")}, wantErr: "--scim-mapping"},
		{name: "unknown key", c: scimConfig{mapping: file("m3.yaml", good+"extra: 1\n"), org: "lab"}, wantErr: "extra"},
		{name: "empty key", c: scimConfig{keys: []string{"k", " "}}, wantErr: "--scim-key"},
		{name: "negative budget", c: scimConfig{timeout: -1}, wantErr: "--scim-timeout"},
		{name: "negative members", c: scimConfig{members: -1}, wantErr: "--scim-max-members"},
		{name: "template that is no relationship", c: scimConfig{mapping: file("m4.yaml", strings.Replace(good, "#account@", "#@", 1)), org: "lab"}, wantErr: "scim mapping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.check()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("check = %v, want an error naming %q", err, tc.wantErr)
				}
				return
			}
			m, on, err := tc.c.scimMapping()
			if err != nil || on != tc.on || (on && m.Organization != tc.org) {
				t.Fatalf("scimMapping = %+v %v %v", m, on, err)
			}
		})
	}
}

// TestServeSCIM: `ambit serve --scim-org lab --scim-key sk` serves SCIM on
// the HTTP listener; a user it creates is an active account of the
// organization at once.
func TestServeSCIM(t *testing.T) {
	a, _ := startServe(t, serveConfig{keys: []string{"k"}, scim: scimConfig{org: "lab", keys: []string{"sk"}, maxBody: 1 << 20, timeout: 10 * time.Second}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer k")
	conn := dial(t, a.grpc)
	text, err := os.ReadFile("../../schema/examples/collab.zed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v1.NewSchemaServiceClient(conn).WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: string(text)}); err != nil {
		t.Fatal(err)
	}
	post := func(auth string) (int, map[string]any) { return postUser(t, a.http, auth, "ana@example.com") }
	if code, out := post(""); code != 401 || out["scimType"] != nil || out["status"] != "401" {
		t.Fatalf("without a key: %d %v", code, out)
	}
	code, out := post("Bearer sk")
	if code != 201 {
		t.Fatalf("POST /scim/v2/Users = %d %v", code, out)
	}
	if code, out := post("Bearer k"); code != 409 || out["scimType"] != "uniqueness" {
		t.Fatalf("duplicate with the preshared key = %d %v", code, out)
	}
	r, err := v1.NewPermissionsServiceClient(conn).CheckPermission(ctx, &v1.CheckPermissionRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		Resource:    &v1.ObjectReference{ObjectType: "organization", ObjectId: "lab"}, Permission: "active",
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: out["id"].(string)}},
	})
	if err != nil || r.GetPermissionship() != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Fatalf("the SCIM user is not an active account: %v %v", r, err)
	}

	// Managed tokens: the scim scope provisions, another scope is refused
	// with a SCIM 403 naming the scope, and the scim scope opens nothing of
	// the gRPC API.
	token := func(name, scope string) string {
		out, errOut, err := cliAt(t, a.grpc, "k", "token", "create", "--name", name, "--scope", scope)
		if err != nil {
			t.Fatalf("token create %s: %v %s", name, err, errOut)
		}
		return strings.TrimSpace(out)
	}
	idp, checker := token("okta", "scim"), token("app", "check")
	if code, out := postUser(t, a.http, "Bearer "+idp, "raj@example.com"); code != 201 {
		t.Fatalf("POST with a scim token = %d %v", code, out)
	}
	if code, out := postUser(t, a.http, "Bearer "+checker, "li@example.com"); code != 403 || out["status"] != "403" || !strings.Contains(fmt.Sprint(out["detail"]), "scim") {
		t.Fatalf("POST with a check token = %d %v; want a SCIM 403 naming the scim scope", code, out)
	}
	idpCtx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+idp)
	idpCtx, cancel2 := context.WithTimeout(idpCtx, 10*time.Second)
	defer cancel2()
	_, err = v1.NewPermissionsServiceClient(conn).CheckPermission(idpCtx, &v1.CheckPermissionRequest{
		Resource: &v1.ObjectReference{ObjectType: "organization", ObjectId: "lab"}, Permission: "active",
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "x"}},
	})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("CheckPermission with a scim token: %v, want PermissionDenied", err)
	}
}

// postUser POSTs a SCIM user with the given Authorization header (none if
// auth is empty).
func postUser(t *testing.T, httpAddr, auth, userName string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+httpAddr+"/scim/v2/Users", strings.NewReader(`{"userName":"`+userName+`"}`))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestServeRefusesBadSCIMFlags(t *testing.T) {
	c := serveConfig{dataDir: t.TempDir(), grpcAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", raftAddr: "127.0.0.1:0", logLevel: "warn", logFormat: "text", raftSegmentMiB: 1,
		scim: scimConfig{org: "lab", keys: []string{""}, maxBody: 1, timeout: time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := serve(ctx, c, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "--scim-key") {
		t.Fatalf("serve with an empty --scim-key = %v", err)
	}
}

// TestSCIMTwoNodes: SCIM on a follower forwards its writes to the leader
// and reads linearizably: a user created through one node is there at once
// through the other, and a version read on one is current on the other.
func TestSCIMTwoNodes(t *testing.T) {
	sc := scimConfig{org: "lab", keys: []string{"sk"}, maxBody: 1 << 20, timeout: 20 * time.Second}
	a1, _ := startServe(t, serveConfig{keys: []string{"k"}, scim: sc})
	a2, _ := startServe(t, serveConfig{keys: []string{"k"}, nodeID: "n2", join: []string{a1.grpc}, scim: sc})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer k")
	text, err := os.ReadFile("../../schema/examples/collab.zed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v1.NewSchemaServiceClient(dial(t, a1.grpc)).WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: string(text)}); err != nil {
		t.Fatal(err)
	}
	do := func(node serveAddrs, method, path, body string, header ...string) (int, map[string]any, http.Header) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+node.http+"/scim/v2"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer sk")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out, resp.Header
	}
	nodes := []serveAddrs{a1, a2}
	for i := range 20 {
		from, to := nodes[i%2], nodes[(i+1)%2]
		code, out, h := do(from, "POST", "/Users", `{"userName":"user`+strings.Repeat("x", i)+`"}`)
		if code != 201 {
			t.Fatalf("round %d: POST = %d %v", i, code, out)
		}
		id := out["id"].(string)
		if code, got, _ := do(to, "GET", "/Users/"+id, ""); code != 200 || got["userName"] != out["userName"] {
			t.Fatalf("round %d: GET on the other node right after the create = %d %v", i, code, got)
		}
		code, _, _ = do(to, "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`, "If-Match", h.Get("ETag"))
		if code != 200 {
			t.Fatalf("round %d: PATCH on the other node with the creating node's ETag = %d", i, code)
		}
		if code, got, _ := do(from, "GET", "/Users/"+id, ""); code != 200 || got["active"] != false {
			t.Fatalf("round %d: GET back on the first node = %d %v", i, code, got)
		}
	}
}
