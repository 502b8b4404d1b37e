package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// traceText prints a debug trace one node per line, indented by depth,
// without durations: "res#perm kind RESULT" for a sub-problem, "= rel RESULT"
// for a relationship leaf (a node resolved without sub-problems), then the
// caveat evaluation info when present.
func traceText(t *testing.T, d *v1.CheckDebugTrace) string {
	t.Helper()
	var b strings.Builder
	var walk func(n *v1.CheckDebugTrace, indent string)
	walk = func(n *v1.CheckDebugTrace, indent string) {
		res := fmt.Sprintf("%s:%s#%s", n.GetResource().GetObjectType(), n.GetResource().GetObjectId(), n.GetPermission())
		result := strings.TrimPrefix(n.GetResult().String(), "PERMISSIONSHIP_")
		if n.GetSubProblems() == nil {
			s := n.GetSubject()
			sub := s.GetObject().GetObjectType() + ":" + s.GetObject().GetObjectId()
			if s.GetOptionalRelation() != "" {
				sub += "#" + s.GetOptionalRelation()
			}
			if n.GetPermissionType() != v1.CheckDebugTrace_PERMISSION_TYPE_RELATION || n.GetWasCachedResult() {
				t.Errorf("relationship leaf %s@%s: type %v, cached %v", res, sub, n.GetPermissionType(), n.GetWasCachedResult())
			}
			fmt.Fprintf(&b, "%s= %s@%s %s", indent, res, sub, result)
		} else {
			kind := strings.ToLower(strings.TrimPrefix(n.GetPermissionType().String(), "PERMISSION_TYPE_"))
			fmt.Fprintf(&b, "%s%s %s %s", indent, res, kind, result)
			if n.GetDuration() == nil {
				t.Errorf("%s: no duration", res)
			}
		}
		if c := n.GetCaveatEvaluationInfo(); c != nil {
			fmt.Fprintf(&b, " caveat[%s %q %s missing=%v", c.GetCaveatName(), c.GetExpression(),
				strings.TrimPrefix(c.GetResult().String(), "RESULT_"), c.GetPartialCaveatInfo().GetMissingRequiredContext())
			if c.GetContext() != nil {
				j, _ := json.Marshal(c.GetContext().AsMap())
				fmt.Fprintf(&b, " context=%s", j)
			}
			b.WriteString("]")
		}
		if e := n.GetOptionalExpiresAt(); e != nil {
			fmt.Fprintf(&b, " expires=%s", e.AsTime().Format(time.RFC3339))
		}
		b.WriteString("\n")
		for _, c := range n.GetSubProblems().GetTraces() {
			walk(c, indent+"  ")
		}
	}
	walk(d, "")
	return b.String()
}

// checkSubjects fails unless every sub-problem of d names subject s.
func checkSubjects(t *testing.T, d *v1.CheckDebugTrace, s string) {
	t.Helper()
	if d.GetSubProblems() == nil {
		return
	}
	want := subj(s)
	got := d.GetSubject()
	if got.GetObject().GetObjectType() != want.GetObject().GetObjectType() || got.GetObject().GetObjectId() != want.GetObject().GetObjectId() ||
		got.GetOptionalRelation() != want.GetOptionalRelation() {
		t.Errorf("%s#%s: subject %v, want %s", d.GetResource().GetObjectId(), d.GetPermission(), got, s)
	}
	for _, c := range d.GetSubProblems().GetTraces() {
		checkSubjects(t, c, s)
	}
}

func TestCheckWithTracing(t *testing.T) {
	e := newEnv(t)
	e.writeSchema(testSchema)
	e.write(v1.RelationshipUpdate_OPERATION_CREATE,
		"document:d1#owner@user:ana",
		"document:d1#viewer@group:eng#member",
		"group:eng#member@group:lab#member",
		"group:lab#member@user:bob",
		"document:d2#viewer@user:*",
		"document:d2#banned@user:mal",
		"document:d3#viewer@user:cat[weekday]",
	)
	tests := []struct {
		name, res, perm, sub, context string
		want                          v1.CheckPermissionResponse_Permissionship
		trace                         string
	}{
		{"nested groups", "document:d1", "view", "user:bob", "", has, `
document:d1#view permission HAS_PERMISSION
  document:d1#viewer relation HAS_PERMISSION
    group:eng#member relation HAS_PERMISSION
      group:lab#member relation HAS_PERMISSION
        = group:lab#member@user:bob HAS_PERMISSION
  document:d1#banned relation NO_PERMISSION
`},
		{"direct, after a miss", "document:d1", "view", "user:ana", "", has, `
document:d1#view permission HAS_PERMISSION
  document:d1#viewer relation NO_PERMISSION
    group:eng#member relation NO_PERMISSION
      group:lab#member relation NO_PERMISSION
  document:d1#owner relation HAS_PERMISSION
    = document:d1#owner@user:ana HAS_PERMISSION
  document:d1#banned relation NO_PERMISSION
`},
		{"no permission", "document:d1", "edit", "user:bob", "", no, `
document:d1#edit permission NO_PERMISSION
  document:d1#owner relation NO_PERMISSION
`},
		{"wildcard", "document:d2", "view", "user:zed", "", has, `
document:d2#view permission HAS_PERMISSION
  document:d2#viewer relation HAS_PERMISSION
    = document:d2#viewer@user:* HAS_PERMISSION
  document:d2#banned relation NO_PERMISSION
`},
		{"excluded", "document:d2", "view", "user:mal", "", no, `
document:d2#view permission NO_PERMISSION
  document:d2#viewer relation HAS_PERMISSION
    = document:d2#viewer@user:* HAS_PERMISSION
  document:d2#banned relation HAS_PERMISSION
    = document:d2#banned@user:mal HAS_PERMISSION
`},
		{"subject set", "document:d1", "view", "group:lab#member", "", has, `
document:d1#view permission HAS_PERMISSION
  document:d1#viewer relation HAS_PERMISSION
    group:eng#member relation HAS_PERMISSION
      = group:eng#member@group:lab#member HAS_PERMISSION
`},
		{"subject set as itself", "group:lab", "member", "group:lab#member", "", has, `
group:lab#member relation HAS_PERMISSION
`},
		{"caveat missing context", "document:d3", "view", "user:cat", "", cond, `
document:d3#view permission CONDITIONAL_PERMISSION caveat[ "" MISSING_SOME_CONTEXT missing=[day]]
  document:d3#viewer relation CONDITIONAL_PERMISSION caveat[ "" MISSING_SOME_CONTEXT missing=[day]]
    = document:d3#viewer@user:cat CONDITIONAL_PERMISSION caveat[weekday "day != \"saturday\"" MISSING_SOME_CONTEXT missing=[day]]
  document:d3#owner relation NO_PERMISSION
  document:d3#banned relation NO_PERMISSION
`},
		{"caveat false", "document:d3", "view", "user:cat", `{"day": "saturday"}`, no, `
document:d3#view permission NO_PERMISSION
  document:d3#viewer relation NO_PERMISSION
    = document:d3#viewer@user:cat NO_PERMISSION caveat[weekday "day != \"saturday\"" FALSE missing=[] context={"day":"saturday"}]
  document:d3#owner relation NO_PERMISSION
`},
		{"caveat true", "document:d3", "view", "user:cat", `{"day": "monday", "unused": 1}`, has, `
document:d3#view permission HAS_PERMISSION
  document:d3#viewer relation HAS_PERMISSION
    = document:d3#viewer@user:cat HAS_PERMISSION caveat[weekday "day != \"saturday\"" TRUE missing=[] context={"day":"monday"}]
  document:d3#banned relation NO_PERMISSION
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &v1.CheckPermissionRequest{Consistency: full(), Resource: obj(tt.res), Permission: tt.perm, Subject: subj(tt.sub), WithTracing: true}
			if tt.context != "" {
				var m map[string]any
				if err := json.Unmarshal([]byte(tt.context), &m); err != nil {
					t.Fatal(err)
				}
				req.Context, _ = structpb.NewStruct(m)
			}
			r, err := e.perms.CheckPermission(e.ctx(), req)
			if err != nil {
				t.Fatal(err)
			}
			if r.GetPermissionship() != tt.want {
				t.Fatalf("permissionship %v, want %v", r.GetPermissionship(), tt.want)
			}
			d := r.GetDebugTrace()
			if !strings.Contains(d.GetSchemaUsed(), "definition document") || !strings.Contains(d.GetSchemaUsed(), "caveat weekday") {
				t.Errorf("schema_used = %q", d.GetSchemaUsed())
			}
			if got, want := traceText(t, d.GetCheck()), strings.TrimPrefix(tt.trace, "\n"); got != want {
				t.Errorf("trace:\n%s\nwant:\n%s", got, want)
			}
			checkSubjects(t, d.GetCheck(), tt.sub)
		})
	}

	// Without with_tracing: no trace.
	r, err := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: full(), Resource: obj("document:d1"), Permission: "view", Subject: subj("user:bob")})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetPermissionship() != has || r.GetDebugTrace() != nil {
		t.Fatalf("untraced check = %v with trace %v", r.GetPermissionship(), r.GetDebugTrace())
	}

	// A traced check of an unknown permission fails like an untraced one.
	_, err = e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Resource: obj("document:d1"), Permission: "destroy", Subject: subj("user:ana"), WithTracing: true})
	wantCode(t, err, codes.FailedPrecondition, "destroy")
}

func TestCheckBulkWithTracing(t *testing.T) {
	e := newEnv(t)
	e.writeSchema(testSchema)
	e.write(v1.RelationshipUpdate_OPERATION_CREATE, "document:d1#viewer@group:eng#member", "group:eng#member@user:bob")
	items := []*v1.CheckBulkPermissionsRequestItem{
		{Resource: obj("document:d1"), Permission: "view", Subject: subj("user:bob")},
		{Resource: obj("document:d1"), Permission: "nope", Subject: subj("user:bob")},
		{Resource: obj("document:d1"), Permission: "edit", Subject: subj("user:bob")},
	}
	for _, tracing := range []bool{false, true} {
		r, err := e.perms.CheckBulkPermissions(e.ctx(), &v1.CheckBulkPermissionsRequest{Consistency: full(), Items: items, WithTracing: tracing})
		if err != nil {
			t.Fatal(err)
		}
		p := r.GetPairs()
		if len(p) != 3 || p[0].GetItem().GetPermissionship() != has || codes.Code(p[1].GetError().GetCode()) != codes.FailedPrecondition ||
			p[2].GetItem().GetPermissionship() != no {
			t.Fatalf("tracing=%v: pairs = %v", tracing, p)
		}
		if !tracing {
			if p[0].GetItem().GetDebugTrace() != nil || p[2].GetItem().GetDebugTrace() != nil {
				t.Fatalf("untraced bulk check has a trace: %v", p)
			}
			continue
		}
		want := `document:d1#view permission HAS_PERMISSION
  document:d1#viewer relation HAS_PERMISSION
    group:eng#member relation HAS_PERMISSION
      = group:eng#member@user:bob HAS_PERMISSION
  document:d1#banned relation NO_PERMISSION
`
		if got := traceText(t, p[0].GetItem().GetDebugTrace().GetCheck()); got != want {
			t.Errorf("item 0 trace:\n%s\nwant:\n%s", got, want)
		}
		want = `document:d1#edit permission NO_PERMISSION
  document:d1#owner relation NO_PERMISSION
`
		if got := traceText(t, p[2].GetItem().GetDebugTrace().GetCheck()); got != want {
			t.Errorf("item 2 trace:\n%s\nwant:\n%s", got, want)
		}
	}
}

// TestTraceExpiration: a relationship leaf carries its expiration, and the
// sub-problems that relied on it carry the earliest one beneath them.
func TestTraceExpiration(t *testing.T) {
	e := newEnv(t)
	e.writeSchema(`use expiration

definition user {}

definition group {
	relation member: user with expiration
}

definition document {
	relation viewer: user with expiration | group#member
	permission view = viewer
}
`)
	soon := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	later := soon.Add(24 * time.Hour)
	expiring := func(s string, at time.Time) *v1.RelationshipUpdate {
		u := update(v1.RelationshipUpdate_OPERATION_CREATE, s)
		u.Relationship.OptionalExpiresAt = timestamppb.New(at)
		return u
	}
	_, err := e.perms.WriteRelationships(e.ctx(), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
		expiring("group:eng#member@user:bob", later),
		update(v1.RelationshipUpdate_OPERATION_CREATE, "document:d1#viewer@group:eng#member"),
		expiring("document:d2#viewer@user:bob", soon),
	}})
	if err != nil {
		t.Fatal(err)
	}
	for doc, want := range map[string]string{
		"document:d1": fmt.Sprintf(`document:d1#view permission HAS_PERMISSION expires=%[1]s
  document:d1#viewer relation HAS_PERMISSION expires=%[1]s
    group:eng#member relation HAS_PERMISSION expires=%[1]s
      = group:eng#member@user:bob HAS_PERMISSION expires=%[1]s
`, later.Format(time.RFC3339)),
		"document:d2": fmt.Sprintf(`document:d2#view permission HAS_PERMISSION expires=%[1]s
  document:d2#viewer relation HAS_PERMISSION expires=%[1]s
    = document:d2#viewer@user:bob HAS_PERMISSION expires=%[1]s
`, soon.Format(time.RFC3339)),
	} {
		r, err := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: full(), Resource: obj(doc), Permission: "view", Subject: subj("user:bob"), WithTracing: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := traceText(t, r.GetDebugTrace().GetCheck()); got != want {
			t.Errorf("%s trace:\n%s\nwant:\n%s", doc, got, want)
		}
	}
}
