package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

const expirySchema = `
use expiration

definition user {}

definition org {
	relation deactivated: user with expiration
}

definition group {
	relation member: user | user with expiration | group#member
}

definition doc {
	relation org: org
	relation viewer: user with expiration | group#member
	permission view = viewer - org->deactivated
}
`

// A result computed from a relationship that later expires must not be
// served from the cache after the expiry, even at the same revision: with no
// writes the revision never moves, and a join code valid for 48 hours must
// stop working after 48 hours.
func TestCachedResultsHonourExpiration(t *testing.T) {
	s, err := schema.Compile("expiry.zed", expirySchema)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	soon := t0.Add(time.Hour).Format(time.RFC3339)
	later := t0.Add(3 * time.Hour).Format(time.RFC3339)
	tests := []struct {
		name          string
		rels          []string
		check         string // doc:id#perm@user:id
		before, after engine.Permissionship
	}{
		{"direct grant expires",
			[]string{"doc:d#viewer@user:ana[expiration:" + soon + "]"},
			"doc:d#view@user:ana", engine.HasPermission, engine.NoPermission},
		{"membership in a nested group expires",
			[]string{"doc:d#viewer@group:outer#member", "group:outer#member@group:inner#member",
				"group:inner#member@user:ana[expiration:" + soon + "]"},
			"doc:d#view@user:ana", engine.HasPermission, engine.NoPermission},
		{"one of two routes expires",
			[]string{"doc:d#viewer@group:g#member", "group:g#member@user:ana[expiration:" + soon + "]",
				"doc:d#viewer@user:ana[expiration:" + later + "]"},
			"doc:d#view@user:ana", engine.HasPermission, engine.HasPermission},
		{"a subtracted deactivation expires",
			[]string{"doc:d#viewer@group:g#member", "group:g#member@user:ana", "doc:d#org@org:o",
				"org:o#deactivated@user:ana[expiration:" + soon + "]"},
			"doc:d#view@user:ana", engine.NoPermission, engine.HasPermission},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			r := enginetest.MustParse(tc.rels...)
			r.Now = func() time.Time { return now }
			e, err := engine.New(engine.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			q := tuple.MustParse(tc.check)
			req := engine.CheckRequest{Resource: q.Resource, Permission: q.Relation, Subject: q.Subject}
			check := func(at time.Time) engine.Permissionship {
				t.Helper()
				now = at
				// The same revision throughout: nothing was written.
				res, err := e.View(s, r, r.Snapshot(7)).Check(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				return res.Permissionship
			}
			for range 3 { // repeated so the cache is filled and consulted
				if got := check(t0); got != tc.before {
					t.Fatalf("before expiry: %v, want %v", got, tc.before)
				}
			}
			if got := check(t0.Add(2 * time.Hour)); got != tc.after {
				t.Fatalf("after expiry, same revision: %v, want %v", got, tc.after)
			}
		})
	}
}

// SubjectPermissions keeps its whole answer in the cache: the entry must
// expire with the earliest relationship any of its answers read, and a
// caller changing the slice it got must not change what the next caller
// gets.
func TestSubjectPermissionsCacheHonoursExpiration(t *testing.T) {
	s, err := schema.Compile("expiry.zed", expirySchema)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	soon := t0.Add(time.Hour).Format(time.RFC3339)
	now := t0
	r := enginetest.MustParse("doc:d#viewer@group:g#member", "group:g#member@user:ana[expiration:"+soon+"]", "doc:d#org@org:o")
	r.Now = func() time.Time { return now }
	var e *engine.Engine
	d := tuple.ObjectRef{Type: "doc", ID: "d"}
	ana := tuple.SubjectRef{Type: "user", ID: "ana"}
	perms := func(at time.Time, list []string) []engine.PermissionResult {
		t.Helper()
		now = at
		res, err := e.View(s, r, r.Snapshot(7)).SubjectPermissions(context.Background(), d, ana, list, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	has := func(res []engine.PermissionResult, p string) engine.Permissionship {
		for _, x := range res {
			if x.Permission == p {
				return x.Permissionship
			}
		}
		t.Fatalf("%s not in %v", p, res)
		return 0
	}
	for _, list := range [][]string{nil, {"view", "org"}} {
		// A fresh engine each: time goes forward only.
		if e, err = engine.New(engine.Config{}); err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		for range 3 {
			res := perms(t0, list)
			if got := has(res, "view"); got != engine.HasPermission {
				t.Fatalf("%v before expiry: view %v, want HAS", list, got)
			}
			res[0].Permissionship = engine.ConditionalPermission // must not reach the cache
			res[len(res)-1].Permissionship = engine.ConditionalPermission
		}
		if got := perms(t0, list); got[0].Permissionship == engine.ConditionalPermission || got[len(got)-1].Permissionship == engine.ConditionalPermission {
			t.Fatalf("%v: a caller's change to its answer reached the cache: %v", list, got)
		}
		if got := has(perms(t0.Add(2*time.Hour), list), "view"); got != engine.NoPermission {
			t.Fatalf("%v after expiry, same revision: view %v, want NO", list, got)
		}
	}
}
