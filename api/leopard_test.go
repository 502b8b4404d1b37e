package api_test

import (
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// leopardMetric returns the value of one ambit_leopard_* metric (a
// histogram's sample count).
func (e *env) leopardMetric(name string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		if h := m.GetHistogram(); h != nil {
			return float64(h.GetSampleCount())
		}
		return m.GetCounter().GetValue()
	}
	e.t.Fatalf("no metric %s", name)
	return 0
}

// waitLeopard waits until the nested-group index has followed the store to
// its applied revision.
func (e *env) waitLeopard() {
	e.t.Helper()
	want := float64(e.store.AppliedRevision())
	deadline := time.Now().Add(30 * time.Second)
	for e.leopardMetric("ambit_leopard_ready") != 1 || e.leopardMetric("ambit_leopard_through_revision") < want {
		if time.Now().After(deadline) {
			e.t.Fatalf("the nested-group index did not reach revision %v within 30s (through %v, ready %v)", want,
				e.leopardMetric("ambit_leopard_through_revision"), e.leopardMetric("ambit_leopard_ready"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The server keeps the nested-group index current from the change feed: a
// check through nested groups is answered by it once it has followed the
// write, a deleted nesting edge is gone from its answers, and a read at an
// older revision, whose nesting differs, gets that revision's answer from
// the index (its change log undoes the delete).
func TestLeopardFollowsWrites(t *testing.T) {
	e := newEnv(t)
	e.writeSchema(testSchema)
	touch := v1.RelationshipUpdate_OPERATION_TOUCH
	before := e.write(touch, "document:doc#viewer@group:g0#member",
		"group:g0#member@group:g1#member", "group:g1#member@group:g2#member",
		"group:g2#member@group:g3#member", "group:g3#member@user:ana")
	e.waitLeopard()
	if got := e.leopardMetric("ambit_leopard_edges"); got != 3 {
		t.Fatalf("the index holds %v edges, want 3", got)
	}

	served := e.leopardMetric("ambit_leopard_served_total")
	if got := e.check(full(), "document:doc", "view", "user:ana"); got != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Fatalf("ana through three nested groups: %v", got)
	}
	if got := e.leopardMetric("ambit_leopard_served_total"); got <= served {
		t.Fatalf("the check did not use the index (served %v, before %v)", got, served)
	}

	after := e.write(v1.RelationshipUpdate_OPERATION_DELETE, "group:g1#member@group:g2#member")
	e.waitLeopard()
	if got := e.leopardMetric("ambit_leopard_edges"); got != 2 {
		t.Fatalf("after the delete the index holds %v edges, want 2", got)
	}
	// The delete came after the index was built: the follower woke for
	// it, and times the follow (the histogram's count) right after.
	for deadline := time.Now().Add(30 * time.Second); e.leopardMetric("ambit_leopard_follow_seconds") < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("ambit_leopard_follow_seconds counted no follow within 30s of a write the index followed")
		}
	}
	served, fallbacks := e.leopardMetric("ambit_leopard_served_total"), e.leopardMetric("ambit_leopard_fallbacks_total")
	if got := e.check(fresh(after), "document:doc", "view", "user:ana"); got != v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION {
		t.Fatalf("after the nesting edge was deleted: %v", got)
	}
	if got := e.leopardMetric("ambit_leopard_served_total"); got <= served {
		t.Fatalf("the check after the delete did not use the index (served %v, before %v)", got, served)
	}
	// (A check no earlier one computed: the result cache would answer it.)
	// The index answers the older revision too, with the delete undone
	// from its change log.
	served = e.leopardMetric("ambit_leopard_served_total")
	if got := e.check(exact(before), "group:g1", "member", "user:ana"); got != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Fatalf("at the revision before the delete: %v", got)
	}
	if got := e.leopardMetric("ambit_leopard_served_total"); got <= served {
		t.Fatalf("the read at an older nesting did not use the index (served %v, before %v)", got, served)
	}
	if got := e.leopardMetric("ambit_leopard_fallbacks_total"); got != fallbacks {
		t.Fatalf("the read at an older nesting walked (fallbacks %v, before %v)", got, fallbacks)
	}

	// A refused write consumes a revision and records no change: the index
	// follows the store to it all the same.
	applied := e.store.AppliedRevision()
	_, err := e.perms.WriteRelationships(e.ctx(), &v1.WriteRelationshipsRequest{
		Updates:               []*v1.RelationshipUpdate{update(touch, "group:g9#member@user:ana")},
		OptionalPreconditions: []*v1.Precondition{{Operation: v1.Precondition_OPERATION_MUST_MATCH, Filter: &v1.RelationshipFilter{ResourceType: "document", OptionalResourceId: "nothing"}}}})
	if err == nil {
		t.Fatal("a write with a MUST_MATCH precondition matching nothing succeeded")
	}
	if e.store.AppliedRevision() <= applied {
		t.Skip("the refused write consumed no revision: nothing more to test")
	}
	e.waitLeopard()
	served = e.leopardMetric("ambit_leopard_served_total")
	if got := e.check(full(), "group:g2", "member", "user:ana"); got != v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION {
		t.Fatalf("after the refused write: %v", got)
	}
	if got := e.leopardMetric("ambit_leopard_served_total"); got <= served {
		t.Fatalf("the check at the refused write's revision did not use the index (served %v, before %v)", got, served)
	}
}
