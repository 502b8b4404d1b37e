package api_test

import (
	"fmt"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
)

// A request that would exhaust the node (issue 16: Expand of a lattice) ends
// with ResourceExhausted naming the budget, at the default budgets, and the
// server keeps answering. (A caveat at its cost limit maps the same way; it
// is tested in the engine: under -race one evaluation at the limit takes
// seconds.)
func TestRequestBudgetsOverTheAPI(t *testing.T) {
	e := newEnv(t)
	e.writeSchema(`definition user {}
definition node {
	relation next: node
	relation viewer: user
	permission view = viewer + next->view
}`)
	var rels []string
	for i := range 20 {
		for _, x := range []string{"a", "b"} {
			rels = append(rels, fmt.Sprintf("node:%s%d#next@node:a%d", x, i, i+1), fmt.Sprintf("node:%s%d#next@node:b%d", x, i, i+1))
		}
	}
	rels = append(rels, "node:a0#viewer@user:ana")
	e.write(v1.RelationshipUpdate_OPERATION_TOUCH, rels...)

	_, err := e.perms.ExpandPermissionTree(e.ctx(), &v1.ExpandPermissionTreeRequest{Consistency: full(), Resource: obj("node:a0"), Permission: "view"})
	wantCode(t, err, codes.ResourceExhausted, "expand nodes", "100000")

	if got := e.check(full(), "node:a0", "view", "user:ana"); got != has {
		t.Fatalf("a normal check after the refusals: %v", got)
	}
}
