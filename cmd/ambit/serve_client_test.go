package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The CLI client commands against an in-process server.
func TestClientCommands(t *testing.T) {
	a, _ := startServe(t, serveConfig{keys: []string{"sekret"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := []string{"--endpoint", a.grpc, "--token", "sekret"}
	cli := func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := run(ctx, append(args, conn...), &out, &errOut)
		return strings.TrimSpace(out.String()), err
	}
	dir := t.TempDir()
	schemaFile := filepath.Join(dir, "s.zed")
	os.WriteFile(schemaFile, []byte("definition user {}\ndefinition document {\n\trelation viewer: user | user:*\n\trelation banned: user\n\tpermission view = viewer - banned\n}\n"), 0o644)

	// schema write/read are constructors for the schema command.
	w := newSchemaWriteCmd()
	var out bytes.Buffer
	w.SetOut(&out)
	w.SetArgs(append([]string{schemaFile}, conn...))
	if err := w.ExecuteContext(ctx); err != nil || out.Len() == 0 {
		t.Fatalf("schema write: %q %v", out.String(), err)
	}
	r := newSchemaReadCmd()
	out.Reset()
	r.SetOut(&out)
	r.SetArgs(conn)
	if err := r.ExecuteContext(ctx); err != nil || !strings.Contains(out.String(), "permission view") {
		t.Fatalf("schema read: %q %v", out.String(), err)
	}

	if tok, err := cli("rel", "create", "document:d1#viewer@user:ana", "document:d2#viewer@user:*", "document:d2#banned@user:mal"); err != nil || tok == "" {
		t.Fatalf("rel create: %q %v", tok, err)
	}
	if _, err := cli("rel", "create", "document:d1#viewer@user:ana"); err == nil || !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatalf("duplicate create: %v", err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "document:d1", "view", "user:ana"}, "true"},
		{[]string{"check", "document:d1", "view", "user:bob", "--consistency", "full"}, "false"},
		{[]string{"check", "document:d2", "view", "user:mal"}, "false"},
		{[]string{"lookup-resources", "document", "view", "user:ana"}, "document:d1\ndocument:d2"},
		{[]string{"lookup-subjects", "document:d2", "view", "user"}, "user:* - {user:mal}"},
		{[]string{"rel", "read", "document:d2", "--consistency", "full"}, "document:d2#banned@user:mal\ndocument:d2#viewer@user:*"},
		{[]string{"expand", "document:d1", "view"}, "document:d1#view exclusion\n  document:d1#viewer: user:ana\n  document:d1#banned:"},
		{[]string{"export"}, "document:d1#viewer@user:ana\ndocument:d2#banned@user:mal\ndocument:d2#viewer@user:*"},
	} {
		got, err := cli(c.args...)
		if err != nil || got != c.want {
			t.Errorf("%v = %q, %v; want %q", c.args, got, err, c.want)
		}
	}
	relFile := filepath.Join(dir, "rels.txt")
	os.WriteFile(relFile, []byte("document:d3#viewer@user:cat\n// comment\ndocument:d4#viewer@user:cat\n"), 0o644)
	if got, err := cli("import", relFile); err != nil || got != "imported 2 relationships" {
		t.Fatalf("import: %q %v", got, err)
	}
	if got, err := cli("rel", "delete", "document:d3#viewer@user:cat"); err != nil || got == "" {
		t.Fatalf("rel delete: %q %v", got, err)
	}
	if got, err := cli("lookup-resources", "document", "view", "user:cat", "--consistency", "full", "--json"); err != nil || !strings.Contains(got, `"resource_object_id":"d4"`) || strings.Contains(got, `"resource_object_id":"d3"`) {
		t.Fatalf("lookup-resources --json: %q %v", got, err)
	}
	if got, err := cli("cluster", "status"); err != nil || !strings.Contains(got, "n1\tleader") {
		t.Fatalf("cluster status: %q %v", got, err)
	}
	if err := run(ctx, []string{"check", "document:d1", "view", "user:ana", "--endpoint", a.grpc}, &out, &out); err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Fatalf("check without token: %v", err)
	}
}
