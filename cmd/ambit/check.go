package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"

	"github.com/ambit-authz/ambit/internal/v1pb"
)

// `ambit check` (with --explain) and `ambit expand`.

func newCheckCmd() *cobra.Command {
	var c clientFlags
	var ctxJSON string
	var explain, all bool
	cmd := &cobra.Command{Use: "check RESOURCE PERMISSION SUBJECT", Short: "Check a permission, e.g. check document:1 view user:ana", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all && !explain {
				return errors.New("--all needs --explain")
			}
			q, err := parseQuery(args, 0, 2, ctxJSON)
			if err != nil {
				return err
			}
			return c.connect(cmd, func(s *session) error {
				r, err := s.perms.CheckPermission(s.ctx, &v1.CheckPermissionRequest{Consistency: s.cons, Resource: q.res, Permission: args[1],
					Subject: q.sub, Context: q.cctx, WithTracing: explain})
				if err != nil {
					return err
				}
				text := checkText(r)
				if explain && !s.asJSON {
					if text, err = explainText(r, all, dimOutput(s.out)); err != nil {
						return err
					}
				}
				return s.print(r, text)
			})
		}}
	addContextFlag(cmd, &ctxJSON)
	cmd.Flags().BoolVar(&explain, "explain", false, "print the access path: the server's trace of the check as a tree")
	cmd.Flags().BoolVar(&all, "all", false, "with --explain, unfold the branches that found no permission")
	c.add(cmd, true)
	return cmd
}

// checkText is a check's answer as text: true, false or caveated.
func checkText(r *v1.CheckPermissionResponse) string {
	switch r.GetPermissionship() {
	case v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION:
		return "true"
	case v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		return "caveated (missing context: " + strings.Join(r.GetPartialCaveatInfo().GetMissingRequiredContext(), ", ") + ")"
	}
	return "false"
}

func newExpandCmd() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{Use: "expand RESOURCE PERMISSION", Short: "Print the userset tree of a permission", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := v1pb.ParseObject(args[0])
			if err != nil {
				return err
			}
			return c.connect(cmd, func(s *session) error {
				return call(s, func(ctx context.Context) (*v1.ExpandPermissionTreeResponse, error) {
					return s.perms.ExpandPermissionTree(ctx, &v1.ExpandPermissionTreeRequest{Consistency: s.cons, Resource: res, Permission: args[1]})
				}, func(r *v1.ExpandPermissionTreeResponse) string {
					var b strings.Builder
					printTree(&b, r.GetTreeRoot(), "")
					return strings.TrimRight(b.String(), "\n")
				})
			})
		}}
	c.add(cmd, true)
	return cmd
}

func printTree(b *strings.Builder, t *v1.PermissionRelationshipTree, indent string) {
	head := fmt.Sprintf("%s%s:%s#%s", indent, t.GetExpandedObject().GetObjectType(), t.GetExpandedObject().GetObjectId(), t.GetExpandedRelation())
	if leaf := t.GetLeaf(); leaf != nil {
		var subs []string
		for _, s := range leaf.GetSubjects() {
			x := s.GetObject().GetObjectType() + ":" + s.GetObject().GetObjectId()
			if s.GetOptionalRelation() != "" {
				x += "#" + s.GetOptionalRelation()
			}
			subs = append(subs, x)
		}
		fmt.Fprintf(b, "%s: %s\n", head, strings.Join(subs, ", "))
		return
	}
	in := t.GetIntermediate()
	fmt.Fprintf(b, "%s %s\n", head, strings.ToLower(strings.TrimPrefix(in.GetOperation().String(), "OPERATION_")))
	for _, ch := range in.GetChildren() {
		printTree(b, ch, indent+"  ")
	}
}
