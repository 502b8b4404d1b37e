package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ex exitError
	if errors.As(err, &ex) {
		return ex.code
	}
	return -1
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSchemaCheck(t *testing.T) {
	good := writeFile(t, "good.zed", "definition user {}\n\ndefinition doc {\n\trelation viewer: user\n\tpermission view = viewer\n}\n")
	bad := writeFile(t, "bad.zed", "definition user {}\n\ndefinition doc {\n\trelation viewer: usr\n}\n")
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"valid zed", []string{"schema", "check", good}, 0, "good.zed: ok", ""},
		{"invalid zed", []string{"schema", "check", bad}, 1, "", "bad.zed:4:"},
		{"validation yaml", []string{"schema", "check", "../../schema/examples/collab.yaml"}, 0, "collab.yaml: ok", ""},
		{"missing file", []string{"schema", "check", "nope.zed"}, 1, "", "nope.zed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, err := runCLI(t, tt.args...)
			if got := exitCode(err); got != tt.code {
				t.Fatalf("exit code %d (err %v), want %d; stderr:\n%s", got, err, tt.code, errOut)
			}
			if !strings.Contains(out, tt.out) || !strings.Contains(errOut, tt.err) {
				t.Fatalf("stdout %q, stderr %q; want them to contain %q and %q", out, errOut, tt.out, tt.err)
			}
		})
	}
}

func TestSchemaFmt(t *testing.T) {
	messy := "definition user {}\ndefinition doc {\n  relation viewer: user\n    permission view = viewer+viewer\n}\n"
	p := writeFile(t, "messy.zed", messy)
	out, _, err := runCLI(t, "schema", "fmt", p)
	if err != nil {
		t.Fatal(err)
	}
	again := writeFile(t, "again.zed", out)
	out2, _, err := runCLI(t, "schema", "fmt", again)
	if err != nil || out2 != out {
		t.Fatalf("fmt is not idempotent: %v\n%s\n---\n%s", err, out, out2)
	}
	if _, _, err := runCLI(t, "schema", "fmt", "-w", p); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != out {
		t.Fatalf("-w wrote %q, want %q", b, out)
	}
}

func TestValidate(t *testing.T) {
	failing := writeFile(t, "failing.yaml", `schema: |-
  definition user {}
  definition doc {
    relation viewer: user
    permission view = viewer
  }
relationships: |-
  doc:1#viewer@user:ana
assertions:
  assertTrue:
    - doc:1#view@user:ana
    - doc:1#view@user:bob
  assertFalse:
    - doc:1#view@user:carl
`)
	t.Run("collab model passes on the embedded store", func(t *testing.T) {
		out, errOut, err := runCLI(t, "validate", "../../schema/examples/collab.yaml")
		if err != nil {
			t.Fatalf("validate failed: %v\n%s%s", err, out, errOut)
		}
		if !strings.HasPrefix(out, "ok:") {
			t.Fatalf("stdout = %q", out)
		}
	})
	t.Run("failure names the assertion and exits 1", func(t *testing.T) {
		out, errOut, err := runCLI(t, "validate", failing)
		if exitCode(err) != 1 {
			t.Fatalf("exit code %d, want 1", exitCode(err))
		}
		if !strings.Contains(errOut, "failing.yaml:12: doc:1#view@user:bob: want HAS_PERMISSION, got NO_PERMISSION") {
			t.Fatalf("stderr does not name the failed assertion:\n%s", errOut)
		}
		if !strings.HasPrefix(out, "FAILED: 1 files, 1 documents, 3 assertions") {
			t.Fatalf("stdout = %q", out)
		}
	})
	t.Run("json summary", func(t *testing.T) {
		out, _, err := runCLI(t, "validate", "--json", "--backend", "memory", failing)
		if exitCode(err) != 1 {
			t.Fatalf("exit code %d, want 1", exitCode(err))
		}
		var sum validateSummary
		if err := json.Unmarshal([]byte(out), &sum); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if sum.OK || sum.Assertions != 3 || len(sum.Failures) != 1 || sum.Failures[0].Line != 12 {
			t.Fatalf("summary = %+v", sum)
		}
	})
}
