package api_test

import (
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/raft"
)

// haltable is a raft node whose Halted the test sets.
type haltable struct {
	*raft.Node
	halted atomic.Bool
}

func (h *haltable) Halted() error {
	if h.halted.Load() {
		return raft.ErrHalted
	}
	return h.Node.Halted()
}

// A node whose state machine halted serves no read at any consistency: its
// data stopped following the log, so even minimize_latency could answer
// from a state the cluster never had for long.
func TestHaltedNodeServesNoReads(t *testing.T) {
	var h *haltable
	e := newEnv(t, func(o *envOptions) {
		o.node = func(n *raft.Node) api.Node { h = &haltable{Node: n}; return h }
	})
	tok := e.writeSchema(testSchema)
	e.write(create, "document:d1#viewer@user:ana")
	if got := e.check(fresh(tok), "document:d1", "view", "user:ana"); got != has {
		t.Fatalf("before the halt: %v", got)
	}
	h.halted.Store(true)
	for name, c := range map[string]*v1.Consistency{
		"minimize_latency":  {Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}},
		"at_least_as_fresh": fresh(tok),
		"fully_consistent":  full(),
	} {
		_, err := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: c, Resource: obj("document:d1"), Permission: "view", Subject: subj("user:ana")})
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "stopped applying") {
			t.Fatalf("%s on a halted node: %v, want Unavailable saying it stopped applying", name, err)
		}
	}
}
