package api_test

import (
	"fmt"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
)

// Requests that would exhaust the node (issue 16) end with ResourceExhausted
// naming the budget, at the default budgets, and the server keeps
// answering.
func TestRequestBudgetsOverTheAPI(t *testing.T) {
	e := newEnv(t)
	var list strings.Builder
	for i := range 1000 {
		if i > 0 {
			list.WriteByte(',')
		}
		fmt.Fprint(&list, i)
	}
	l := "[" + list.String() + "]"
	e.writeSchema(`caveat heavy(n int) { ` + l + `.all(x, ` + l + `.all(y, x + y >= n)) }
definition user {}
definition node {
	relation next: node
	relation viewer: user | user with heavy
	permission view = viewer + next->view
}`)
	var rels []string
	for i := range 20 {
		for _, x := range []string{"a", "b"} {
			rels = append(rels, fmt.Sprintf("node:%s%d#next@node:a%d", x, i, i+1), fmt.Sprintf("node:%s%d#next@node:b%d", x, i, i+1))
		}
	}
	rels = append(rels, "node:a0#viewer@user:ana", "node:c#viewer@user:bo[heavy]")
	e.write(v1.RelationshipUpdate_OPERATION_TOUCH, rels...)

	_, err := e.perms.ExpandPermissionTree(e.ctx(), &v1.ExpandPermissionTreeRequest{Consistency: full(), Resource: obj("node:a0"), Permission: "view"})
	wantCode(t, err, codes.ResourceExhausted, "expand nodes", "100000")

	ctx, err := structpb.NewStruct(map[string]any{"n": 0})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: full(), Resource: obj("node:c"), Permission: "view", Subject: subj("user:bo"), Context: ctx})
	wantCode(t, err, codes.ResourceExhausted, "caveat cost", `"heavy"`)

	if got := e.check(full(), "node:a0", "view", "user:ana"); got != has {
		t.Fatalf("a normal check after the refusals: %v", got)
	}
}
