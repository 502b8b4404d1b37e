package main

import (
	"context"
	"strings"

	"github.com/ambit-authz/ambit/internal/v1pb"
	"github.com/ambit-authz/ambit/tuple"
	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

// `ambit rel`: create, touch, delete and read relationships on a server.

func newRelCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rel", Short: "Create, touch, delete and read relationships on a server"}
	for _, op := range []struct {
		name string
		op   v1.RelationshipUpdate_Operation
	}{{"create", v1.RelationshipUpdate_OPERATION_CREATE}, {"touch", v1.RelationshipUpdate_OPERATION_TOUCH}, {"delete", v1.RelationshipUpdate_OPERATION_DELETE}} {
		var c clientFlags
		sub := &cobra.Command{Use: op.name + " REL...", Short: strings.ToUpper(op.name[:1]) + op.name[1:] + " relationships atomically (text form doc:1#viewer@user:ana); prints the ZedToken",
			Args: cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				req := &v1.WriteRelationshipsRequest{}
				for _, a := range args {
					r, err := tuple.Parse(a)
					if err != nil {
						return err
					}
					pb, err := v1pb.RelationshipToV1(r)
					if err != nil {
						return err
					}
					req.Updates = append(req.Updates, &v1.RelationshipUpdate{Operation: op.op, Relationship: pb})
				}
				return c.connect(cmd, func(s *session) error {
					return call(s, func(ctx context.Context) (*v1.WriteRelationshipsResponse, error) {
						return s.perms.WriteRelationships(ctx, req)
					}, func(r *v1.WriteRelationshipsResponse) string { return r.GetWrittenAt().GetToken() })
				})
			}}
		c.add(sub, false)
		cmd.AddCommand(sub)
	}
	var c clientFlags
	var subjectFilter string
	read := &cobra.Command{Use: "read TYPE[:ID][#RELATION]", Short: "Print the relationships matching a filter", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseFilter(args[0], subjectFilter)
			if err != nil {
				return err
			}
			return c.connect(cmd, func(s *session) error {
				return printStream(s, func(ctx context.Context) (grpc.ServerStreamingClient[v1.ReadRelationshipsResponse], error) {
					return s.perms.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{Consistency: s.cons, RelationshipFilter: f})
				}, func(r *v1.ReadRelationshipsResponse) ([]string, error) {
					t, err := relText(r.GetRelationship())
					return []string{t}, err
				})
			})
		}}
	read.Flags().StringVar(&subjectFilter, "subject", "", "only relationships with this subject: TYPE[:ID][#RELATION]")
	c.add(read, true)
	cmd.AddCommand(read)
	return cmd
}

// parseFilter reads TYPE[:ID][#RELATION] and an optional subject filter.
func parseFilter(res, subject string) (*v1.RelationshipFilter, error) {
	f := &v1.RelationshipFilter{}
	rest, rel, _ := strings.Cut(res, "#")
	typ, id, _ := strings.Cut(rest, ":")
	f.ResourceType, f.OptionalResourceId, f.OptionalRelation = typ, id, rel
	if subject != "" {
		rest, rel, hasRel := strings.Cut(subject, "#")
		typ, id, _ := strings.Cut(rest, ":")
		f.OptionalSubjectFilter = &v1.SubjectFilter{SubjectType: typ, OptionalSubjectId: id}
		if hasRel {
			if rel == tuple.Ellipsis {
				rel = ""
			}
			f.OptionalSubjectFilter.OptionalRelation = &v1.SubjectFilter_RelationFilter{Relation: rel}
		}
	}
	return f, nil
}
