package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// syncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveLogged is startServe with the server's log (at debug level) kept.
func serveLogged(t *testing.T, c serveConfig, logs *syncBuffer) (serveAddrs, func() error) {
	t.Helper()
	c.grpcAddr, c.httpAddr, c.raftAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	c.logLevel, c.logFormat, c.shutdownTimeout, c.nodeID, c.raftSegmentMiB = "debug", "json", 5*time.Second, "n1", 1
	c.cluster.secretText = testClusterSecret
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan serveAddrs, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, logs, func(a serveAddrs) { addrs <- a }) }()
	select {
	case a := <-addrs:
		var once sync.Once
		var err error
		stop := func() error { once.Do(func() { cancel(); err = <-done }); return err }
		t.Cleanup(func() { _ = stop() })
		return a, stop
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve did not become ready")
	}
	return serveAddrs{}, nil
}

func cliAt(t *testing.T, addr, cred string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, append(args, "--endpoint", addr, "--token", cred), &out, &errOut)
	return out.String(), errOut.String(), err
}

// The token commands end to end on `ambit serve`: create prints the secret
// once, a token is held to its scopes, list shows it, revoke ends it; the
// audit log names the token behind each change and `ambit audit tail`
// resumes from a revision; the decision log records checks. The secret
// never appears in the server log, the metrics, the audit or decision log
// or any file of the data dir.
func TestTokenCommandsEndToEnd(t *testing.T) {
	const key = "e2e-admin-key"
	dir := t.TempDir()
	auditPath, decisionPath := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "decisions.jsonl")
	var logs syncBuffer
	c := serveConfig{keys: []string{key}, dataDir: filepath.Join(dir, "data"),
		logs: logsConfig{auditLog: auditPath, auditMaxMiB: 100, auditKeep: 3, decisionLog: decisionPath, decisionSample: 1, decisionQueue: 1024, decisionMaxMiB: 10}}
	a, stop := serveLogged(t, c, &logs)

	// An admin writes the schema and a relationship with the preshared key.
	if _, errOut, err := cliAt(t, a.grpc, key, "token", "create", "--name", "ops", "--scope", "check,writes"); err == nil || !strings.Contains(err.Error(), `"writes"`) {
		t.Fatalf("unknown scope: %v %s", err, errOut)
	}
	ciOut, ciErr, err := cliAt(t, a.grpc, key, "token", "create", "--name", "ci", "--scope", "check,read", "--expires", "90d")
	if err != nil {
		t.Fatalf("create: %v %s", err, ciErr)
	}
	ci := strings.TrimSpace(ciOut)
	if !strings.HasPrefix(ci, "ambit_") || strings.Count(ciOut, "\n") != 1 || !strings.Contains(ciErr, `"ci"`) || !strings.Contains(ciErr, "shown once") {
		t.Fatalf("create printed %q / %q", ciOut, ciErr)
	}
	ciID := strings.Split(ci, "_")[1]
	wOut, _, err := cliAt(t, a.grpc, key, "token", "create", "--name", "writer-app", "--scope", "write,schema")
	if err != nil {
		t.Fatal(err)
	}
	writer := strings.TrimSpace(wOut)
	writerID := strings.Split(writer, "_")[1]

	conn := dial(t, a.grpc)
	perms, schemaC := v1.NewPermissionsServiceClient(conn), v1.NewSchemaServiceClient(conn)
	as := func(cred string) context.Context {
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+cred), 20*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	if _, err := schemaC.WriteSchema(as(writer), &v1.WriteSchemaRequest{Schema: "definition user {}\ndefinition doc {\n relation viewer: user\n permission view = viewer\n}"}); err != nil {
		t.Fatal(err)
	}
	w, err := perms.WriteRelationships(as(writer), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{Operation: v1.RelationshipUpdate_OPERATION_TOUCH,
		Relationship: &v1.Relationship{Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: "a"}, Relation: "viewer",
			Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ana"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	checkReq := &v1.CheckPermissionRequest{Consistency: &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: w.GetWrittenAt()}},
		Resource: &v1.ObjectReference{ObjectType: "doc", ObjectId: "a"}, Permission: "view",
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ana"}}}
	if r, err := perms.CheckPermission(as(ci), checkReq); err != nil || r.GetPermissionship() != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Fatalf("check with the ci token: %v %v", r, err)
	}
	// The ci token may not write, nor use the token service.
	_, err = perms.WriteRelationships(as(ci), &v1.WriteRelationshipsRequest{})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `"write"`) {
		t.Fatalf("write with the ci token: %v", err)
	}
	if _, _, err := cliAt(t, a.grpc, ci, "token", "list"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("list with the ci token: %v", err)
	}
	list, _, err := cliAt(t, a.grpc, key, "token", "list")
	if err != nil || !strings.Contains(list, ciID) || !strings.Contains(list, "check,read") || !strings.Contains(list, "writer-app") {
		t.Fatalf("list: %v\n%s", err, list)
	}
	if out, _, err := cliAt(t, a.grpc, key, "token", "revoke", ciID); err != nil || !strings.Contains(out, "revoked "+ciID) {
		t.Fatalf("revoke: %v %s", err, out)
	}
	_, err = perms.CheckPermission(as(ci), checkReq)
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("check with the revoked token: %v", err)
	}
	_, metrics := httpGet(t, "http://"+a.http+"/metrics")
	if !strings.Contains(metrics, `ambit_requests_by_token_total{token="ci"} 1`) || !strings.Contains(metrics, `ambit_auth_failures_total{reason="revoked"} 1`) {
		t.Errorf("metrics lack the token series:\n%s", grepLines(metrics, "token"))
	}

	// The audit log, through `ambit audit tail`: wait for the revocation.
	var entries []map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _, err := cliAt(t, a.grpc, key, "audit", "tail")
		if err != nil {
			t.Fatal(err)
		}
		entries = parseJSONLines(t, out)
		if len(entries) > 0 && entries[len(entries)-1]["op"] == "token.revoke" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var ops []string
	for _, e := range entries {
		if strings.HasPrefix(e["op"].(string), "cluster.") {
			continue
		}
		ops = append(ops, e["op"].(string)+" "+str(e["token_name"]))
	}
	want := []string{"token.create ", "token.create ", "schema writer-app", "write writer-app", "token.revoke "}
	if strings.Join(ops, "|") != strings.Join(want, "|") {
		t.Fatalf("audit ops = %q, want %q", ops, want)
	}
	last := entries[len(entries)-1]
	if tok := last["summary"].(map[string]any)["token"].(map[string]any); tok["id"] != ciID || tok["name"] != "ci" {
		t.Fatalf("revocation entry %v", last)
	}
	for _, e := range entries {
		if e["op"] == "write" && (e["token_id"] != writerID || e["relationships"].([]any)[0] != "~doc:a#viewer@user:ana") {
			t.Fatalf("write entry %v", e)
		}
	}
	// Resuming after the next-to-last revision gives the last entry only.
	resume := uint64(entries[len(entries)-2]["revision"].(float64))
	out, _, err := cliAt(t, a.grpc, key, "audit", "tail", "--after", jsonNum(resume))
	if err != nil {
		t.Fatal(err)
	}
	if got := parseJSONLines(t, out); len(got) != 1 || got[0]["op"] != "token.revoke" {
		t.Fatalf("tail --after %d = %v", resume, got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	decisions, err := os.ReadFile(decisionPath)
	if err != nil {
		t.Fatal(err)
	}
	if d := parseJSONLines(t, string(decisions)); len(d) != 1 || d[0]["token_id"] != ciID || d[0]["result"] != "HAS_PERMISSION" {
		t.Fatalf("decision log: %s", decisions)
	}

	// The secrets are nowhere.
	secrets := map[string]string{"ci": strings.SplitN(ci, "_", 3)[2], "writer": strings.SplitN(writer, "_", 3)[2]} // a secret may hold "_"
	places := map[string][]byte{"the server log": []byte(logs.String()), "the metrics": []byte(metrics)}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		places[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(places) < 6 || !bytes.Contains(places[auditPath], []byte(ciID)) {
		t.Fatalf("only %d places searched, or the audit log lacks the token id", len(places))
	}
	for where, b := range places {
		for name, secret := range secrets {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("the %s token's secret is in %s", name, where)
			}
		}
	}
}

func parseJSONLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func jsonNum(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
