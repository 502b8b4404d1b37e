package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// Every client flag has an AMBIT_ twin, through the same mechanism as
// serve's flags; a flag on the command line wins over its twin.
func TestClientFlagsFromEnvironment(t *testing.T) {
	a, _ := startServe(t, serveConfig{keys: []string{"sekret"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := run(ctx, args, &out, &errOut)
		return strings.TrimSpace(out.String()), err
	}
	t.Setenv("AMBIT_ENDPOINT", a.grpc)
	t.Setenv("AMBIT_TOKEN", "sekret")
	if _, err := cli("schema", "write", "../../schema/examples/collab.zed"); err != nil {
		t.Fatalf("schema write with AMBIT_ENDPOINT and AMBIT_TOKEN: %v", err)
	}
	if _, err := cli("rel", "create", "organization:lab#account@user:*", "dataset:d#org@organization:lab", "dataset:d#owner@user:ana"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AMBIT_CONSISTENCY", "full")
	if got, err := cli("check", "dataset:d", "read", "user:ana"); err != nil || got != "true" {
		t.Fatalf("check with AMBIT_CONSISTENCY=full = %q, %v; want true", got, err)
	}
	t.Setenv("AMBIT_JSON", "true")
	if got, err := cli("check", "dataset:d", "read", "user:ana"); err != nil || !strings.Contains(got, `"permissionship"`) {
		t.Fatalf("check with AMBIT_JSON=true = %q, %v; want JSON", got, err)
	}
	t.Setenv("AMBIT_JSON", "")
	t.Setenv("AMBIT_CONSISTENCY", "sometimes")
	if _, err := cli("check", "dataset:d", "read", "user:ana"); err == nil || !strings.Contains(err.Error(), `"sometimes"`) {
		t.Fatalf("a bad AMBIT_CONSISTENCY: %v, want an error naming the value", err)
	}
	if got, err := cli("check", "dataset:d", "read", "user:ana", "--consistency", "full"); err != nil || got != "true" {
		t.Fatalf("--consistency over a bad AMBIT_CONSISTENCY = %q, %v", got, err)
	}
	t.Setenv("AMBIT_TOKEN", "wrong")
	if _, err := cli("check", "dataset:d", "read", "user:ana", "--consistency", "full"); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Fatalf("a wrong AMBIT_TOKEN: %v, want PermissionDenied", err)
	}
}
