package main

import (
	"context"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

// `ambit lookup-resources` and `ambit lookup-subjects`.

func newLookupResourcesCmd() *cobra.Command {
	var c clientFlags
	var ctxJSON string
	var limit uint32
	cmd := &cobra.Command{Use: "lookup-resources TYPE PERMISSION SUBJECT", Short: "List the resources of TYPE on which SUBJECT has PERMISSION", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := parseQuery(args, -1, 2, ctxJSON)
			if err != nil {
				return err
			}
			return c.connect(cmd, func(s *session) error {
				return printStream(s, func(ctx context.Context) (grpc.ServerStreamingClient[v1.LookupResourcesResponse], error) {
					return s.perms.LookupResources(ctx, &v1.LookupResourcesRequest{Consistency: s.cons, ResourceObjectType: args[0],
						Permission: args[1], Subject: q.sub, Context: q.cctx, OptionalLimit: limit})
				}, one(func(r *v1.LookupResourcesResponse) string {
					text := args[0] + ":" + r.GetResourceObjectId()
					if r.GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION {
						text += " (caveated)"
					}
					return text
				}))
			})
		}}
	addContextFlag(cmd, &ctxJSON)
	cmd.Flags().Uint32Var(&limit, "limit", 0, "most results (0: all)")
	c.add(cmd, true)
	return cmd
}

func newLookupSubjectsCmd() *cobra.Command {
	var c clientFlags
	var ctxJSON string
	cmd := &cobra.Command{Use: "lookup-subjects RESOURCE PERMISSION SUBJECT_TYPE[#RELATION]", Short: "List the subjects that have PERMISSION on RESOURCE", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := parseQuery(args, 0, -1, ctxJSON)
			if err != nil {
				return err
			}
			typ, rel, _ := strings.Cut(args[2], "#")
			return c.connect(cmd, func(s *session) error {
				return printStream(s, func(ctx context.Context) (grpc.ServerStreamingClient[v1.LookupSubjectsResponse], error) {
					return s.perms.LookupSubjects(ctx, &v1.LookupSubjectsRequest{Consistency: s.cons, Resource: q.res,
						Permission: args[1], SubjectObjectType: typ, OptionalSubjectRelation: rel, Context: q.cctx})
				}, one(func(r *v1.LookupSubjectsResponse) string { return lookupSubjectText(typ, r) }))
			})
		}}
	addContextFlag(cmd, &ctxJSON)
	c.add(cmd, true)
	return cmd
}

// lookupSubjectText is one LookupSubjects result as text, e.g.
// `user:* - {user:mal} (caveated)`.
func lookupSubjectText(typ string, r *v1.LookupSubjectsResponse) string {
	text := typ + ":" + r.GetSubject().GetSubjectObjectId()
	var ex []string
	for _, e := range r.GetExcludedSubjects() {
		ex = append(ex, typ+":"+e.GetSubjectObjectId())
	}
	if len(ex) > 0 {
		text += " - {" + strings.Join(ex, ", ") + "}"
	}
	if r.GetSubject().GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION {
		text += " (caveated)"
	}
	return text
}
