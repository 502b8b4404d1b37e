package main

import (
	"context"
	"errors"
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
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// testClusterSecret keys the clusters of this package's tests (startServe).
const testClusterSecret = "cmd-test-cluster-secret-0123456789abcdefXYZ"

// serveRefusal runs serve with c (loopback ports unless set) and returns its
// error; a serve that starts instead is stopped after a while and reports
// nil.
func serveRefusal(t *testing.T, c serveConfig) error {
	t.Helper()
	if c.dataDir == "" {
		c.dataDir = t.TempDir()
	}
	if c.grpcAddr == "" {
		c.grpcAddr = "127.0.0.1:0"
	}
	if c.raftAddr == "" {
		c.raftAddr = "127.0.0.1:0"
	}
	c.logLevel, c.logFormat, c.raftSegmentMiB, c.nodeID = "error", "text", 1, "n1"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return serve(ctx, c, io.Discard, func(serveAddrs) { cancel() })
}

func TestServeRefusesInsecureClusterSetups(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    serveConfig
		want string
	}{
		{"empty preshared key", serveConfig{keys: []string{""}}, "key 1 of 1 is empty"},
		{"an empty key among others", serveConfig{keys: []string{"real", ""}}, "key 2 of 2 is empty"},
		{"non-loopback raft without a secret", serveConfig{raftAddr: "0.0.0.0:0", raftAdvertise: "127.0.0.1:1"}, "--cluster-secret"},
		{"non-loopback raft advertise without a secret", serveConfig{raftAdvertise: "10.1.2.3:7001"}, "--cluster-secret"},
		{"short secret", serveConfig{cluster: clusterAuth{secretText: "short"}}, "at least 32"},
		{"uniform secret", serveConfig{cluster: clusterAuth{secretText: strings.Repeat("ab", 20)}}, "too uniform"},
		{"short secret file", serveConfig{cluster: clusterAuth{secretFile: secretFile}}, "at least 32"},
		{"both secret flags", serveConfig{cluster: clusterAuth{secretText: testClusterSecret, secretFile: secretFile}}, "exclusive"},
		{"pprof on a public port without keys", serveConfig{pprof: true, httpAddr: "0.0.0.0:0"}, "--pprof"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := serveRefusal(t, tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve = %v, want a refusal containing %q", err, tc.want)
			}
		})
	}
	// The explicit opt-out starts.
	if err := serveRefusal(t, serveConfig{raftAddr: "0.0.0.0:0", raftAdvertise: "127.0.0.1:1", cluster: clusterAuth{insecure: true}, httpAddr: ""}); err != nil {
		t.Fatalf("--insecure-cluster: %v", err)
	}
}

// AMBIT_PRESHARED_KEY=",real" holds an empty key: refused at startup.
func TestServeRefusesEmptyKeyFromEnv(t *testing.T) {
	t.Setenv("AMBIT_PRESHARED_KEY", ",real")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Through the root command, as a user runs it: that is where AMBIT_*
	// variables are read.
	err := run(ctx, []string{"serve", "--data-dir", t.TempDir(), "--grpc-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--http-addr", "",
		"--raft-log-segment-mib", "1", "--log-level", "error"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("serve with AMBIT_PRESHARED_KEY=\",real\" = %v, want a refusal of the empty key", err)
	}
}

// The cluster service takes no call without a key, and the leader
// validates a forwarded command as it validates a client's write.
func TestClusterForwardIsAuthenticatedAndValidated(t *testing.T) {
	a, _ := startServe(t, serveConfig{keys: []string{"k"}})
	conn := dial(t, a.grpc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer k")
	if _, err := v1.NewSchemaServiceClient(conn).WriteSchema(authed, &v1.WriteSchemaRequest{
		Schema: "definition user {}\ndefinition doc {\n  relation viewer: user\n}"}); err != nil {
		t.Fatal(err)
	}
	valid := raft.WriteCommand([]store.Update{{Op: store.OpTouch, Rel: mustRel(t, "doc:d#viewer@user:ana")}}, nil)
	data, err := raft.Encode(valid)
	if err != nil {
		t.Fatal(err)
	}
	out := new(wrapperspb.BytesValue)
	if err := conn.Invoke(ctx, "/ambit.cluster.v1.Cluster/Forward", wrapperspb.Bytes(data), out); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Forward without a key = %v, want Unauthenticated", err)
	}
	wrong := raft.NewClient("nope")
	defer wrong.Close()
	if _, err := wrong.Forward(ctx, a.grpc, valid); !errors.Is(err, raft.ErrUnauthenticated) {
		t.Fatalf("Forward with a wrong key = %v, want ErrUnauthenticated", err)
	}

	cl := raft.NewClient("k")
	defer cl.Close()
	for _, tc := range []struct {
		name string
		cmd  raft.Command
		want string
	}{
		{"unknown type", raft.WriteCommand([]store.Update{{Op: store.OpTouch, Rel: mustRel(t, "nosuchtype:x#nosuchrel@user:y")}}, nil), "nosuchtype"},
		{"unknown relation", raft.WriteCommand([]store.Update{{Op: store.OpCreate, Rel: mustRel(t, "doc:x#owner@user:y")}}, nil), "owner"},
		{"subject type not allowed", raft.ImportCommand([]tuple.Relationship{mustRel(t, "doc:x#viewer@doc:y")}), "relationships[0]"},
		{"delete filter on an unknown type", raft.DeleteCommand(tuple.Filter{ResourceType: "nosuchtype"}, 0, false, nil), "nosuchtype"},
		{"schema that does not compile", raft.SchemaCommand("definition {"), "compile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cl.Forward(ctx, a.grpc, tc.cmd)
			if !errors.Is(err, raft.ErrInvalidCommand) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Forward(%s) = %v, want ErrInvalidCommand naming %q", tc.name, err, tc.want)
			}
		})
	}
	if _, err := cl.Forward(ctx, a.grpc, valid); err != nil {
		t.Fatalf("valid forwarded write: %v", err)
	}
	stream, err := v1.NewPermissionsServiceClient(conn).ExportBulkRelationships(authed, &v1.ExportBulkRelationshipsRequest{
		Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		r, err := stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		for _, rel := range r.GetRelationships() {
			got = append(got, fmt.Sprintf("%s:%s#%s@%s:%s", rel.GetResource().GetObjectType(), rel.GetResource().GetObjectId(),
				rel.GetRelation(), rel.GetSubject().GetObject().GetObjectType(), rel.GetSubject().GetObject().GetObjectId()))
		}
	}
	if strings.Join(got, " ") != "doc:d#viewer@user:ana" {
		t.Fatalf("stored relationships = %v, want only the valid forwarded one", got)
	}
}

func mustRel(t *testing.T, s string) tuple.Relationship {
	t.Helper()
	r, err := tuple.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// With --pprof, the profiler asks for the API's key (or an admin token), and the command line
// (which can hold keys) is not served at all.
func TestPprofBehindKeys(t *testing.T) {
	const key = "pprof-test-key-7f3a9c"
	a, _ := startServe(t, serveConfig{keys: []string{key}, pprof: true})
	get := func(path, auth string) (int, string) {
		req, err := http.NewRequest("GET", "http://"+a.http+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path, auth string
		code       int
	}{
		{"/debug/pprof/cmdline", "", http.StatusUnauthorized},
		{"/debug/pprof/cmdline", "Bearer wrong", http.StatusForbidden}, // a wrong key, as on every port
		{"/debug/pprof/cmdline", "Bearer " + key, http.StatusNotFound},
		{"/debug/pprof/", "", http.StatusUnauthorized},
		{"/debug/pprof/goroutine?debug=1", "", http.StatusUnauthorized},
		{"/debug/pprof/", "Bearer " + key, http.StatusOK},
		{"/debug/pprof/goroutine?debug=1", "Bearer " + key, http.StatusOK},
	} {
		code, body := get(tc.path, tc.auth)
		if code != tc.code {
			t.Errorf("GET %s (%q) = %d, want %d", tc.path, tc.auth, code, tc.code)
		}
		if strings.Contains(tc.path, "cmdline") && (strings.Contains(body, key) || strings.Contains(body, os.Args[0])) {
			t.Errorf("GET %s (%q) shows the command line: %q", tc.path, tc.auth, body)
		}
	}
	if code, _ := get("/metrics", ""); code != http.StatusOK {
		t.Errorf("/metrics = %d; it stays open", code)
	}
	// Managed tokens: the profiler is an admin's.
	token := func(name, scope string) string {
		out, errOut, err := cliAt(t, a.grpc, key, "token", "create", "--name", name, "--scope", scope)
		if err != nil {
			t.Fatalf("token create %s: %v %s", name, err, errOut)
		}
		return strings.TrimSpace(out)
	}
	if code, _ := get("/debug/pprof/", "Bearer "+token("ops", "admin")); code != http.StatusOK {
		t.Errorf("/debug/pprof/ with an admin token = %d, want 200", code)
	}
	if code, body := get("/debug/pprof/", "Bearer "+token("app", "check,read")); code != http.StatusForbidden || !strings.Contains(body, "admin") {
		t.Errorf("/debug/pprof/ with a check,read token = %d %q, want 403 naming the admin scope", code, body)
	}
}
