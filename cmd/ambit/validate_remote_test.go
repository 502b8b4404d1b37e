package main

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"

	"github.com/ambit-authz/ambit/internal/conformance"
	"github.com/ambit-authz/ambit/internal/v1pb"
	"github.com/ambit-authz/ambit/tuple"
	"github.com/ambit-authz/ambit/validation"
	"github.com/ambit-authz/ambit/validation/remote"
)

// TestRemoteConformance runs every conformance file against a live server
// over the authzed v1 API: every assertion must hold and the oracle agree.
func TestRemoteConformance(t *testing.T) {
	files := conformance.Files(t)
	a, _ := startServe(t, serveConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := remote.New(remote.NewClient(dial(t, a.grpc)), remote.Options{Oracle: true, PageSizes: []int{1, 7, 100, 0}})
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			docs, err := validation.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range docs {
				rep, err := r.Run(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, fl := range rep.Failures {
					t.Error(fl)
				}
				if rep.Oracle == 0 {
					t.Errorf("no oracle comparisons were made")
				}
				t.Logf("%d assertions, %d oracle comparisons", rep.Assertions, rep.Oracle)
			}
		})
	}
}

// remoteFile has caveats with context, expirations, a wildcard with an
// exclusion, the validation map and one false assertion (line 31).
const remoteFile = `schema: |-
  use expiration
  definition user {}
  caveat on_weekday(day int) {
    day < 6
  }
  definition doc {
    relation viewer: user | user with on_weekday | user with expiration | user:*
    relation banned: user
    permission view = viewer - banned
  }
relationships: |-
  doc:1#viewer@user:ana
  doc:1#viewer@user:bob[on_weekday]
  doc:1#viewer@user:cy[on_weekday:{"day":2}]
  doc:1#viewer@user:old[expiration:2020-01-01T00:00:00Z]
  doc:1#viewer@user:new[expiration:2300-01-01T00:00:00Z]
  doc:2#viewer@user:*
  doc:2#banned@user:mal
assertions:
  assertTrue:
    - doc:1#view@user:ana
    - doc:1#view@user:cy
    - doc:1#view@user:new
    - 'doc:1#view@user:bob with {"day": 3}'
    - doc:2#view@user:ana
  assertFalse:
    - doc:1#view@user:old
    - doc:2#view@user:mal
    - 'doc:1#view@user:bob with {"day": 7}'
    - doc:2#view@user:zed
  assertCaveated:
    - doc:1#view@user:bob
validation:
  doc:1#view:
    - "[user:ana] is <doc:1#viewer>"
    - "[user:bob[...]] is <doc:1#viewer>"
    - "[user:cy] is <doc:1#viewer>"
    - "[user:new] is <doc:1#viewer>"
`

// TestValidateRemote runs a small file through `ambit validate --endpoint`:
// the one false assertion is reported exactly as in-process, the exit code
// is 1, and the server is reset before each run.
func TestValidateRemote(t *testing.T) {
	a, _ := startServe(t, serveConfig{keys: []string{"sekret"}})
	file := writeFile(t, "remote.yaml", remoteFile)
	remoteArgs := func(extra ...string) []string {
		return append([]string{"validate", "--endpoint", a.grpc, "--insecure", "--token", "sekret"}, extra...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Data of another schema, which the run must delete.
	conn := dialToken(t, a.grpc, "sekret")
	if _, err := v1.NewSchemaServiceClient(conn).WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: "definition user {}\ndefinition folder {\n\trelation owner: user\n}"}); err != nil {
		t.Fatal(err)
	}
	perms := v1.NewPermissionsServiceClient(conn)
	if _, err := perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{{Operation: v1.RelationshipUpdate_OPERATION_CREATE,
		Relationship: mustPB(t, "folder:f#owner@user:ana")}}}); err != nil {
		t.Fatal(err)
	}

	_, localErr, err := runCLI(t, "validate", "--oracle", file)
	if exitCode(err) != 1 {
		t.Fatalf("in-process: exit code %d (%v), want 1", exitCode(err), err)
	}
	wantFail := "FAIL " + file + ":31: doc:2#view@user:zed: want NO_PERMISSION, got HAS_PERMISSION\n"
	if localErr != wantFail {
		t.Fatalf("in-process stderr = %q, want %q", localErr, wantFail)
	}
	// Twice: the second run must find the first run's data gone (the import
	// creates, so leftovers would fail it).
	for i := range 2 {
		out, errOut, err := runCLI(t, remoteArgs("--oracle", file)...)
		if exitCode(err) != 1 {
			t.Fatalf("run %d: exit code %d (%v), want 1; stderr:\n%s", i, exitCode(err), err, errOut)
		}
		if errOut != localErr {
			t.Fatalf("run %d: stderr = %q, want what the in-process run printed, %q", i, errOut, localErr)
		}
		if !strings.HasPrefix(out, "FAILED: 1 files, 1 documents, 15 assertions, ") || !strings.Contains(out, " 1 failures, 0 errors") {
			t.Fatalf("run %d: stdout = %q", i, out)
		}
	}
	s, err := perms.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: "doc"}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := s.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 6 {
		t.Fatalf("the server holds %d doc relationships after the runs, want the file's 7 less the expired one", n)
	}
	sch, err := v1.NewSchemaServiceClient(conn).ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if err != nil || strings.Contains(sch.GetSchemaText(), "folder") {
		t.Fatalf("schema after the run: %q, %v; want the file's (the folder relationship deleted first)", sch.GetSchemaText(), err)
	}

	t.Run("json summary", func(t *testing.T) {
		out, _, err := runCLI(t, remoteArgs("--json", file)...)
		if exitCode(err) != 1 {
			t.Fatalf("exit code %d (%v), want 1", exitCode(err), err)
		}
		var sum validateSummary
		if err := json.Unmarshal([]byte(out), &sum); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if sum.OK || sum.Assertions != 15 || sum.Oracle != 0 || len(sum.Failures) != 1 || sum.Failures[0].Line != 31 || sum.Failures[0].Got != "HAS_PERMISSION" {
			t.Fatalf("summary = %+v", sum)
		}
	})
	t.Run("passing file", func(t *testing.T) {
		ok := writeFile(t, "ok.yaml", strings.Replace(remoteFile, "    - doc:2#view@user:zed\n", "", 1))
		out, errOut, err := runCLI(t, remoteArgs("--oracle", ok)...)
		if err != nil || !strings.HasPrefix(out, "ok: 1 files, 1 documents, 14 assertions") || errOut != "" {
			t.Fatalf("validate = %v\nstdout %q\nstderr %q", err, out, errOut)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"validate", "--token", "k", file}, "--token needs --endpoint"},
			{[]string{"validate", "--insecure", file}, "--insecure needs --endpoint"},
			{remoteArgs("--backend", "memory", file), "--backend"},
		} {
			_, _, err := runCLI(t, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v: %v, want an error containing %q", c.args, err, c.want)
			}
		}
		// A wrong key is an error of the document, reported and exit 1.
		_, errOut, err := runCLI(t, "validate", "--endpoint", a.grpc, "--insecure", "--token", "nope", file)
		if exitCode(err) != 1 || !strings.Contains(errOut, "PermissionDenied") {
			t.Errorf("wrong key: exit %d, stderr %q", exitCode(err), errOut)
		}
		// A schema that does not compile is reported against the file.
		bad := writeFile(t, "bad.yaml", "schema: |-\n  definition doc {\n    relation viewer: usr\n  }\n")
		_, errOut, err = runCLI(t, remoteArgs(bad)...)
		if exitCode(err) != 1 || !strings.Contains(errOut, "bad.yaml") || !strings.Contains(errOut, "usr") {
			t.Errorf("bad schema: exit %d, stderr %q", exitCode(err), errOut)
		}
	})
}

func dialToken(t *testing.T, addr, token string) *grpc.ClientConn {
	t.Helper()
	conn, err := dialEndpoint(addr, token, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// mustPB is the v1 message of the relationship s.
func mustPB(t *testing.T, s string) *v1.Relationship {
	t.Helper()
	r, err := tuple.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := v1pb.RelationshipToV1(r)
	if err != nil {
		t.Fatal(err)
	}
	return pb
}
