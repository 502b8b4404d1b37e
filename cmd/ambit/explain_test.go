package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ambit-authz/ambit/internal/v1pb"
)

var update = flag.Bool("update", false, "rewrite testdata/explain_*.golden from the current output")

const (
	traceHas  = v1.CheckDebugTrace_PERMISSIONSHIP_HAS_PERMISSION
	traceNo   = v1.CheckDebugTrace_PERMISSIONSHIP_NO_PERMISSION
	traceCond = v1.CheckDebugTrace_PERMISSIONSHIP_CONDITIONAL_PERMISSION
)

// problem builds a sub-problem node "type:id#perm" for subject sub.
func problem(res, sub string, result v1.CheckDebugTrace_Permissionship, subs ...*v1.CheckDebugTrace) *v1.CheckDebugTrace {
	obj, perm, _ := strings.Cut(res, "#")
	typ, id, _ := strings.Cut(obj, ":")
	s, err := v1pb.ParseSubject(sub)
	if err != nil {
		panic(err)
	}
	return &v1.CheckDebugTrace{
		Resource: &v1.ObjectReference{ObjectType: typ, ObjectId: id}, Permission: perm,
		PermissionType: v1.CheckDebugTrace_PERMISSION_TYPE_RELATION, Subject: s, Result: result,
		Duration:   durationpb.New(time.Millisecond),
		Resolution: &v1.CheckDebugTrace_SubProblems_{SubProblems: &v1.CheckDebugTrace_SubProblems{Traces: subs}},
	}
}

// relLeaf builds a relationship leaf "type:id#rel@subject".
func relLeaf(rel string, result v1.CheckDebugTrace_Permissionship, caveat *v1.CaveatEvalInfo) *v1.CheckDebugTrace {
	res, sub, _ := strings.Cut(rel, "@")
	n := problem(res, sub, result)
	n.Duration = nil
	n.Resolution = &v1.CheckDebugTrace_WasCachedResult{WasCachedResult: false}
	n.CaveatEvaluationInfo = caveat
	return n
}

// conditional gives a sub-problem the caveat info summary ambit's server
// puts on a conditional node: the missing fields.
func conditional(n *v1.CheckDebugTrace, fields ...string) *v1.CheckDebugTrace {
	n.CaveatEvaluationInfo = &v1.CaveatEvalInfo{Result: v1.CaveatEvalInfo_RESULT_MISSING_SOME_CONTEXT, PartialCaveatInfo: &v1.PartialCaveatInfo{MissingRequiredContext: fields}}
	return n
}

func weekday(result v1.CaveatEvalInfo_Result, context map[string]any, missingFields ...string) *v1.CaveatEvalInfo {
	c := &v1.CaveatEvalInfo{CaveatName: "weekday", Expression: "day != \"saturday\" &&\n\tday != \"sunday\"", Result: result}
	if len(missingFields) > 0 {
		c.PartialCaveatInfo = &v1.PartialCaveatInfo{MissingRequiredContext: missingFields}
	}
	if context != nil {
		s, err := structpb.NewStruct(context)
		if err != nil {
			panic(err)
		}
		c.Context = s
	}
	return c
}

func TestRenderExplain(t *testing.T) {
	const ana = "user:ana"
	nested := func() *v1.CheckDebugTrace {
		root := problem("document:d1#view", ana, traceHas,
			problem("document:d1#editor", ana, traceNo,
				problem("group:ops#member", ana, traceNo)),
			problem("document:d1#viewer", ana, traceHas,
				problem("group:eng#member", ana, traceHas,
					problem("group:lab#member", ana, traceHas,
						relLeaf("group:lab#member@user:ana", traceHas, nil)))),
			problem("document:d1#banned", ana, traceNo))
		root.PermissionType = v1.CheckDebugTrace_PERMISSION_TYPE_PERMISSION
		return root
	}
	expires := problem("document:d2#view", ana, traceHas,
		problem("document:d2#viewer", ana, traceHas,
			relLeaf("document:d2#viewer@user:*", traceHas, nil)))
	expires.OptionalExpiresAt = timestamppb.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	leaf := expires.GetSubProblems().GetTraces()[0].GetSubProblems().GetTraces()[0]
	leaf.OptionalExpiresAt = expires.OptionalExpiresAt

	tests := []struct {
		name  string
		trace *v1.CheckDebugTrace
		style explainStyle
	}{
		{"nested", nested(), explainStyle{}},
		{"nested_all", nested(), explainStyle{all: true}},
		{"nested_dim", nested(), explainStyle{dim: true}},
		{"caveat_missing", conditional(problem("document:d3#view", ana, traceCond,
			conditional(problem("document:d3#viewer", ana, traceCond,
				relLeaf("document:d3#viewer@user:ana", traceCond, weekday(v1.CaveatEvalInfo_RESULT_MISSING_SOME_CONTEXT, nil, "day"))), "day"),
			problem("document:d3#owner", ana, traceNo),
			problem("document:d3#banned", ana, traceNo)), "day"), explainStyle{}},
		{"denied", problem("document:d3#view", ana, traceNo,
			problem("document:d3#viewer", ana, traceNo,
				relLeaf("document:d3#viewer@user:ana", traceNo, weekday(v1.CaveatEvalInfo_RESULT_FALSE, map[string]any{"day": "sunday"})),
				problem("group:eng#member", ana, traceNo)),
			problem("document:d3#owner", ana, traceNo)), explainStyle{}},
		{"caveat_true_subject_set", problem("document:d4#view", "group:eng#member", traceHas,
			problem("document:d4#viewer", "group:eng#member", traceHas,
				relLeaf("document:d4#viewer@group:eng#member", traceHas, weekday(v1.CaveatEvalInfo_RESULT_TRUE, map[string]any{"day": "monday"})),
				problem("group:eng#member", "group:eng#member", traceHas))), explainStyle{}},
		{"wildcard_expires", expires, explainStyle{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := renderExplain(tt.trace, tt.style)
			path := filepath.Join("testdata", "explain_"+tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant (%s):\n%s", got, path, want)
			}
		})
	}

	// A conditional node whose caveat info is only a summary still says
	// what is missing.
	if got := renderExplain(problem("document:d3#view", ana, traceCond), explainStyle{}); !strings.HasPrefix(got, "document:d3#view  CONDITIONAL_PERMISSION") {
		t.Errorf("conditional without caveat info: %q", got)
	}
	root := conditional(problem("document:d3#view", ana, traceCond), "day", "hour")
	if got, want := renderExplain(root, explainStyle{}), "document:d3#view  CONDITIONAL_PERMISSION  missing context: day, hour\n"; got != want {
		t.Errorf("conditional = %q, want %q", got, want)
	}
	// SpiceDB marks results it took from its cache; they have no sub-problems
	// but are not relationships.
	cached := problem("document:d1#view", ana, traceHas)
	cached.Resolution = &v1.CheckDebugTrace_WasCachedResult{WasCachedResult: true}
	if got, want := renderExplain(cached, explainStyle{}), "document:d1#view  HAS_PERMISSION  (cached)\n"; got != want {
		t.Errorf("cached = %q, want %q", got, want)
	}
}

// TestCheckExplain runs `check --explain` against an in-process server.
func TestCheckExplain(t *testing.T) {
	a, _ := startServe(t, serveConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := run(ctx, append(args, "--endpoint", a.grpc), &out, &errOut)
		return out.String(), err
	}
	schemaFile := filepath.Join(t.TempDir(), "s.zed")
	err := os.WriteFile(schemaFile, []byte(`caveat weekday(day string) {
	day != "saturday"
}

definition user {}

definition group {
	relation member: user | group#member
}

definition document {
	relation viewer: user | group#member | user with weekday
	relation banned: user
	permission view = viewer - banned
}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w := newSchemaWriteCmd()
	w.SetOut(&bytes.Buffer{})
	w.SetArgs([]string{schemaFile, "--endpoint", a.grpc})
	if err := w.ExecuteContext(ctx); err != nil {
		t.Fatalf("schema write: %v", err)
	}
	if _, err := cli("rel", "create", "document:d1#viewer@group:eng#member", "group:eng#member@group:lab#member", "group:lab#member@user:ana",
		"document:d2#viewer@user:cat[weekday]"); err != nil {
		t.Fatalf("rel create: %v", err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "document:d1", "view", "user:ana", "--explain", "--consistency", "full"}, `document:d1#view  HAS_PERMISSION
├── document:d1#viewer  HAS_PERMISSION
│   └── group:eng#member  HAS_PERMISSION
│       └── group:lab#member  HAS_PERMISSION
│           └── group:lab#member@user:ana  (relationship)
└── document:d1#banned  NO_PERMISSION
`},
		{[]string{"check", "document:d1", "view", "user:bob", "--explain", "--consistency", "full"}, `document:d1#view  NO_PERMISSION
└── document:d1#viewer  NO_PERMISSION
    └── group:eng#member  NO_PERMISSION
        └── group:lab#member  NO_PERMISSION
`},
		{[]string{"check", "document:d2", "view", "user:cat", "--explain", "--consistency", "full"}, `document:d2#view  CONDITIONAL_PERMISSION  missing context: day
├── document:d2#viewer  CONDITIONAL_PERMISSION  missing context: day
│   └── document:d2#viewer@user:cat[weekday]  (relationship)  caveat weekday {day != "saturday"} = missing day
└── document:d2#banned  NO_PERMISSION
`},
		{[]string{"check", "document:d2", "view", "user:cat", "--explain", "--context", `{"day":"saturday"}`, "--consistency", "full"}, `document:d2#view  NO_PERMISSION
└── document:d2#viewer  NO_PERMISSION
    └── document:d2#viewer@user:cat[weekday]  (relationship)  caveat weekday {day != "saturday"} with {"day":"saturday"} = false
`},
		// Without --explain the answer is as before.
		{[]string{"check", "document:d1", "view", "user:ana", "--consistency", "full"}, "true\n"},
	} {
		got, err := cli(c.args...)
		if err != nil || got != c.want {
			t.Errorf("%v:\n%s(err %v)\nwant:\n%s", c.args, got, err, c.want)
		}
	}

	// --json prints the response with its debug trace.
	got, err := cli("check", "document:d1", "view", "user:ana", "--explain", "--json", "--consistency", "full")
	if err != nil {
		t.Fatal(err)
	}
	var r v1.CheckPermissionResponse
	if err := protojson.Unmarshal([]byte(got), &r); err != nil {
		t.Fatalf("--json output %q: %v", got, err)
	}
	if r.GetPermissionship() != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION || r.GetDebugTrace().GetCheck().GetPermission() != "view" ||
		!strings.Contains(r.GetDebugTrace().GetSchemaUsed(), "definition document") {
		t.Fatalf("--json response = %v", &r)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(got), &raw); err != nil || raw["debug_trace"] == nil {
		t.Fatalf("--json output has no debug_trace field: %s", got)
	}
	if _, err := cli("check", "document:d1", "view", "user:ana", "--all"); err == nil || !strings.Contains(err.Error(), "--explain") {
		t.Fatalf("--all without --explain: %v", err)
	}
}
