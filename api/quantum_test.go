package api_test

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// TestMinimizeLatencyQuantum: minimize_latency keeps answering at the
// revision it first read within Limits.RevisionQuantum (so checks share cache
// entries), at_least_as_fresh sees the write at once, and a negative quantum
// always reads the latest revision.
func TestMinimizeLatencyQuantum(t *testing.T) {
	for _, tt := range []struct {
		name    string
		quantum time.Duration
		stale   bool
	}{
		{"hour", time.Hour, true},
		{"off", -1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(o *envOptions) { o.limits.RevisionQuantum = tt.quantum })
			schemaTok := e.writeSchema(testSchema)
			r, err := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: latency(), Resource: obj("document:a"), Permission: "view", Subject: subj("user:ana")})
			if err != nil {
				t.Fatal(err)
			}
			before := revOf(t, r.GetCheckedAt())
			if before < revOf(t, schemaTok) {
				t.Fatalf("first minimize_latency read at %d, before the schema write at %d", before, revOf(t, schemaTok))
			}
			tok := e.write(opTouch, "document:a#viewer@user:ana")
			if got := e.check(fresh(tok), "document:a", "view", "user:ana"); got != has {
				t.Fatalf("at_least_as_fresh after the write = %v, want HAS", got)
			}
			r, err = e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: latency(), Resource: obj("document:a"), Permission: "view", Subject: subj("user:ana")})
			if err != nil {
				t.Fatal(err)
			}
			if tt.stale {
				if got := revOf(t, r.GetCheckedAt()); got != before || r.GetPermissionship() != no {
					t.Fatalf("minimize_latency inside the quantum answered %v at %d, want NO at %d", r.GetPermissionship(), got, before)
				}
			} else if got := revOf(t, r.GetCheckedAt()); got < revOf(t, tok) || r.GetPermissionship() != has {
				t.Fatalf("minimize_latency without a quantum answered %v at %d, want HAS at >= %d", r.GetPermissionship(), got, revOf(t, tok))
			}
		})
	}
}

// TestSchemaChangeSeenAtOnce: the schema cache never serves a schema at a
// revision after a newer schema write.
func TestSchemaChangeSeenAtOnce(t *testing.T) {
	e := newEnv(t, func(o *envOptions) { o.limits.RevisionQuantum = -1 })
	e.writeSchema(testSchema)
	tok := e.write(opTouch, "document:a#viewer@user:ana")
	if got := e.check(fresh(tok), "document:a", "view", "user:ana"); got != has {
		t.Fatalf("view = %v, want HAS", got)
	}
	extended := strings.Replace(testSchema, "definition document {", "definition document {\n\tpermission peek = viewer", 1)
	if extended == testSchema {
		t.Fatal("test schema has no document definition to extend")
	}
	tok = e.writeSchema(extended)
	for _, c := range []*v1.Consistency{fresh(tok), latency(), full()} {
		if got := e.check(c, "document:a", "peek", "user:ana"); got != has {
			t.Fatalf("peek after the schema write = %v, want HAS", got)
		}
	}
}
