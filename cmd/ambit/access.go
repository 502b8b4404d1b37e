package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/engine"
	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
	"github.com/ambit-authz/ambit/tuple"
)

// The effective-access commands talk to ambit.v1's AccessService:
//
//	ambit access dataset:cytometry --ranks edit,read
//	SUBJECT    ROLE  VIA
//	user:ana   edit  owner
//	user:bob   read  reader → group:imaging#member → direct_member
//
//	ambit why dataset:cytometry edit user:raj
//
// Both are listed in newRoot (main.go).

// ambitObject is an authzed v1 object reference as ambit.v1's.
func ambitObject(o *v1.ObjectReference) *ambitv1.ObjectReference {
	return &ambitv1.ObjectReference{ObjectType: o.GetObjectType(), ObjectId: o.GetObjectId()}
}

func newAccessCmd() *cobra.Command {
	var c clientFlags
	var ctxJSON, ranks, subjType string
	cmd := &cobra.Command{Use: "access RESOURCE --ranks edit,read", Short: "List who holds which role on RESOURCE, and through what", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(ranks) == "" {
				return errors.New("--ranks is required: the permissions from highest to lowest, e.g. --ranks edit,read")
			}
			q, err := parseQuery(args, 0, -1, ctxJSON)
			if err != nil {
				return err
			}
			req := &ambitv1.ResourceAccessRequest{Resource: ambitObject(q.res),
				RankedPermissions: strings.Split(ranks, ","), SubjectObjectType: subjType, Context: q.cctx}
			return c.connect(cmd, func(s *session) error {
				req.Consistency = accessConsistency(s.cons)
				stream, err := ambitv1.NewAccessServiceClient(s.conn).ResourceAccess(s.ctx, req)
				if err != nil {
					return err
				}
				return printAccess(s, stream)
			})
		}}
	cmd.Flags().StringVar(&ranks, "ranks", "", "permissions from highest to lowest, comma-separated (e.g. edit,read)")
	cmd.Flags().StringVar(&subjType, "subject-type", "user", "the subject type to resolve to")
	addContextFlag(cmd, &ctxJSON)
	c.add(cmd, true)
	return cmd
}

// printAccess prints a ResourceAccess stream: protobuf JSON lines with
// --json, else a table of subject, role and the route of its proof.
func printAccess(s *session, stream grpc.ServerStreamingClient[ambitv1.ResourceAccessResponse]) error {
	if s.asJSON {
		return recvAll(stream.Recv, func(m *ambitv1.ResourceAccessResponse) error { return s.print(m, "") })
	}
	var rows []*ambitv1.ResourceAccessResponse
	if err := recvAll(stream.Recv, func(m *ambitv1.ResourceAccessResponse) error { rows = append(rows, m); return nil }); err != nil {
		return err
	}
	return accessTable(s.out, rows)
}

func accessTable(w io.Writer, rows []*ambitv1.ResourceAccessResponse) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBJECT\tROLE\tVIA")
	for _, r := range rows {
		o := r.GetSubject().GetObject()
		subject := o.GetObjectType() + ":" + o.GetObjectId()
		if ex := r.GetExcludedSubjectIds(); len(ex) > 0 {
			subject += " except " + o.GetObjectType() + ":" + strings.Join(ex, ", "+o.GetObjectType()+":")
		}
		role := r.GetPermission()
		if r.GetPermissionship() == ambitv1.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION {
			role += " (if " + strings.Join(r.GetMissingContext(), ", ") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", subject, role, viaText(r.GetProof()))
	}
	return tw.Flush()
}

// viaText is a proof as a route: the relation of each step and the object
// it leads to, e.g. `reader → group:imaging#member → direct_member`. A proof
// forks where the route crosses an intersection (every operand must grant):
// each branch after the first is joined with " & " and starts with the
// object it leaves from when that is not the resource; a branch that ends
// where another one already went on names that object.
func viaText(proof []*ambitv1.Relationship) string {
	rels := make([]tuple.Relationship, len(proof))
	from := map[tuple.ObjectRef]bool{}
	for i, p := range proof {
		rels[i] = api.RelationshipFromPB(p)
		from[rels[i].Resource] = true
	}
	var b strings.Builder
	for i, r := range rels {
		switch {
		case i == 0:
		case r.Resource == rels[i-1].Subject.Object():
			b.WriteString(" → " + rels[i-1].Subject.String() + " → ")
		default:
			if from[rels[i-1].Subject.Object()] {
				b.WriteString(" → " + rels[i-1].Subject.Object().String())
			}
			b.WriteString(" & ")
			if r.Resource != rels[0].Resource {
				b.WriteString(r.Resource.String() + ": ")
			}
		}
		b.WriteString(r.Relation)
		if r.Caveat != nil {
			b.WriteString("[" + r.Caveat.Name + "]")
		}
	}
	if n := len(rels); n > 0 && from[rels[n-1].Subject.Object()] {
		b.WriteString(" → " + rels[n-1].Subject.Object().String())
	}
	return b.String()
}

func newWhyCmd() *cobra.Command {
	var c clientFlags
	var ctxJSON string
	cmd := &cobra.Command{Use: "why RESOURCE PERMISSION SUBJECT", Short: "Explain why SUBJECT has PERMISSION on RESOURCE, or why not", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := parseQuery(args, 0, 2, ctxJSON)
			if err != nil {
				return err
			}
			req := &ambitv1.ExplainRequest{Resource: ambitObject(q.res), Permission: args[1],
				Subject: &ambitv1.SubjectReference{Object: ambitObject(q.sub.GetObject()), OptionalRelation: q.sub.GetOptionalRelation()}, Context: q.cctx}
			return c.connect(cmd, func(s *session) error {
				req.Consistency = accessConsistency(s.cons)
				return call(s, func(ctx context.Context) (*ambitv1.ExplainResponse, error) {
					return ambitv1.NewAccessServiceClient(s.conn).Explain(ctx, req)
				}, func(r *ambitv1.ExplainResponse) string { return whyText(args, r) })
			})
		}}
	addContextFlag(cmd, &ctxJSON)
	c.add(cmd, true)
	return cmd
}

// whyText is an explanation as text: the answer, the proof of a grant, and
// the tree (engine.Why.Text).
func whyText(args []string, r *ambitv1.ExplainResponse) string {
	var b strings.Builder
	b.WriteString(args[0] + "#" + args[1] + "@" + args[2] + ": " + engine.ResultText(api.PermissionshipFromPB(r.GetPermissionship()), r.GetMissingContext()) + "\n")
	for _, p := range r.GetProof() {
		b.WriteString("proof: " + api.RelationshipFromPB(p).String() + "\n")
	}
	b.WriteString(api.WhyFromPB(r.GetRoot()).Text())
	if r.GetTruncated() {
		b.WriteString("… (the explanation was cut at the server's node limit)\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// accessConsistency is --consistency for ambit.v1 requests.
func accessConsistency(c *v1.Consistency) *ambitv1.Consistency {
	switch r := c.GetRequirement().(type) {
	case *v1.Consistency_FullyConsistent:
		return &ambitv1.Consistency{Requirement: &ambitv1.Consistency_FullyConsistent{FullyConsistent: true}}
	case *v1.Consistency_AtLeastAsFresh:
		return &ambitv1.Consistency{Requirement: &ambitv1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &ambitv1.ZedToken{Token: r.AtLeastAsFresh.GetToken()}}}
	case *v1.Consistency_AtExactSnapshot:
		return &ambitv1.Consistency{Requirement: &ambitv1.Consistency_AtExactSnapshot{AtExactSnapshot: &ambitv1.ZedToken{Token: r.AtExactSnapshot.GetToken()}}}
	}
	return &ambitv1.Consistency{Requirement: &ambitv1.Consistency_MinimizeLatency{MinimizeLatency: true}}
}
