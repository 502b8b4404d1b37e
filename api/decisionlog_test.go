package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/metadata"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/api/apitoken"
	"github.com/ambit-authz/ambit/internal/testserver"
)

// Every check, bulk item and lookup is recorded at 100 % sampling, with the
// caller's token id, the request id, the revision and the schema hash.
func TestDecisionLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	dl, err := api.OpenDecisionLog(api.DecisionLogOptions{Path: path, Sample: 1})
	if err != nil {
		t.Fatal(err)
	}
	ts := testserver.Start(t, testserver.Options{Keys: []string{adminKey}, Tokens: api.NewMemTokens(), DecisionLog: dl})
	e := &env{t: t, store: ts.Store, conn: ts.Conn, perms: v1.NewPermissionsServiceClient(ts.Conn), schema: v1.NewSchemaServiceClient(ts.Conn)}
	admin := withKey(context.Background(), adminKey)
	ctx, cancel := context.WithTimeout(admin, 10*time.Second)
	defer cancel()
	if _, err := e.schema.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: testSchema}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{Operation: v1.RelationshipUpdate_OPERATION_TOUCH,
		Relationship: &v1.Relationship{Resource: obj("document:a"), Relation: "viewer", Subject: subj("user:ana")}}}}); err != nil {
		t.Fatal(err)
	}
	tok := createToken(t, ts, "app", apitoken.Check)
	cctx, ccancel := context.WithTimeout(metadata.AppendToOutgoingContext(withKey(context.Background(), tok.GetToken()), "x-request-id", "req-42"), 10*time.Second)
	defer ccancel()
	if _, err := e.perms.CheckPermission(cctx, &v1.CheckPermissionRequest{Consistency: full(), Resource: obj("document:a"), Permission: "view", Subject: subj("user:ana")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.perms.CheckBulkPermissions(cctx, &v1.CheckBulkPermissionsRequest{Consistency: full(), Items: []*v1.CheckBulkPermissionsRequestItem{
		{Resource: obj("document:a"), Permission: "view", Subject: subj("user:bob")},
		{Resource: obj("document:a"), Permission: "view", Subject: subj("user:ana")}}}); err != nil {
		t.Fatal(err)
	}
	lr, err := e.perms.LookupResources(cctx, &v1.LookupResourcesRequest{Consistency: full(), ResourceObjectType: "document", Permission: "view", Subject: subj("user:ana")})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := lr.Recv(); err != nil {
			break
		}
	}
	// An AuthZEN evaluation carries its request id in the X-Request-ID header.
	hs := httptest.NewServer(ts.API.AuthZENHandler(api.AuthZENOptions{Auth: ts.Auth}))
	defer hs.Close()
	hreq, err := http.NewRequest(http.MethodPost, hs.URL+api.AuthZENEvaluation,
		strings.NewReader(`{"subject":{"type":"user","id":"ana"},"action":{"name":"view"},"resource":{"type":"document","id":"a"}}`))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Authorization", "Bearer "+tok.GetToken())
	hreq.Header.Set("X-Request-ID", "req-42")
	hresp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		t.Fatalf("AuthZEN evaluation: %s", hresp.Status)
	}
	// The lookup's entry is written when its handler returns, which may be
	// just after the client saw the end of the stream.
	deadline := time.Now().Add(10 * time.Second)
	for len(readLines(t, path, dl, false)) < 5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	ts.GRPC.Stop()
	lines := readLines(t, path, dl, true)
	want := []struct{ method, subject, result string }{
		{"CheckPermission", "user:ana", "HAS_PERMISSION"},
		{"CheckBulkPermissions", "user:bob", "NO_PERMISSION"},
		{"CheckBulkPermissions", "user:ana", "HAS_PERMISSION"},
		{"LookupResources", "user:ana", ""},
		{"CheckPermission", "user:ana", "HAS_PERMISSION"}, // through AuthZEN
	}
	if len(lines) != len(want) {
		t.Fatalf("%d entries, want %d: %v", len(lines), len(want), lines)
	}
	for i, w := range want {
		l := lines[i]
		if l["method"] != w.method || l["subject"] != w.subject || (w.result != "" && l["result"] != w.result) {
			t.Errorf("entry %d = %v, want %+v", i, l, w)
		}
		if l["token_id"] != tok.GetInfo().GetId() || l["request_id"] != "req-42" || l["schema_hash"] == "" || l["revision"].(float64) < 2 {
			t.Errorf("entry %d lacks the caller, request, schema or revision: %v", i, l)
		}
	}
	if lines[3]["results"].(float64) != 1 || lines[3]["resource"] != "document" {
		t.Errorf("lookup entry %v", lines[3])
	}
}

func readLines(t *testing.T, path string, dl *api.DecisionLog, closeFirst bool) []map[string]any {
	t.Helper()
	if closeFirst {
		if err := dl.Close(); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			if !closeFirst {
				break // a line being written
			}
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}
