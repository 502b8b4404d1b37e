package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/tuple"
	"github.com/ambit-authz/ambit/validation"
)

// The client commands talk to a server over the authzed v1 gRPC API.
var (
	_ = registerCommand(newRelCmd)
	_ = registerCommand(withExplain(newCheckCmd)) // --explain: explain.go
	_ = registerCommand(newExpandCmd)
	_ = registerCommand(newLookupResourcesCmd)
	_ = registerCommand(newLookupSubjectsCmd)
	_ = registerCommand(newImportCmd)
	_ = registerCommand(newExportCmd)
	_ = registerCommand(newWatchCmd)
	_ = registerCommand(newClusterCmd)
)

// clientFlags are the connection flags every client command has.
type clientFlags struct {
	endpoint    string
	token       string
	tls         bool
	asJSON      bool
	consistency string
}

func (c *clientFlags) add(cmd *cobra.Command, reads bool) {
	f := cmd.Flags()
	f.StringVar(&c.endpoint, "endpoint", "127.0.0.1:50051", "server gRPC address (AMBIT_ENDPOINT)")
	f.StringVar(&c.token, "token", "", "preshared key sent as a bearer token (AMBIT_TOKEN)")
	f.BoolVar(&c.tls, "tls", false, "use TLS with the system roots")
	f.BoolVar(&c.asJSON, "json", false, "print protobuf JSON, one message per line")
	if reads {
		f.StringVar(&c.consistency, "consistency", "latency", "latency, full, fresh:ZEDTOKEN or exact:ZEDTOKEN")
	}
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if !cmd.Flags().Changed("endpoint") {
			if v := os.Getenv("AMBIT_ENDPOINT"); v != "" {
				c.endpoint = v
			}
		}
		if !cmd.Flags().Changed("token") {
			c.token = os.Getenv("AMBIT_TOKEN")
		}
		return nil
	}
}

type bearerCreds struct {
	token  string
	secure bool
}

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearerCreds) RequireTransportSecurity() bool { return b.secure }

func (c *clientFlags) dial() (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if c.tls {
		opts[0] = grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	if c.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerCreds{token: c.token, secure: c.tls}))
	}
	return grpc.NewClient(c.endpoint, opts...)
}

func (c *clientFlags) consistencyPB() (*v1.Consistency, error) {
	mode, tok, _ := strings.Cut(c.consistency, ":")
	switch mode {
	case "", "latency":
		return &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}, nil
	case "full":
		return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}, nil
	case "fresh":
		return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &v1.ZedToken{Token: tok}}}, nil
	case "exact":
		return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: tok}}}, nil
	}
	return nil, fmt.Errorf("--consistency %q: want latency, full, fresh:ZEDTOKEN or exact:ZEDTOKEN", c.consistency)
}

// emit prints m as JSON (with --json) or as text.
func (c *clientFlags) emit(w io.Writer, m proto.Message, text string) error {
	if c.asJSON {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	_, err := fmt.Fprintln(w, text)
	return err
}

func relToPB(r tuple.Relationship) *v1.Relationship {
	out := &v1.Relationship{
		Resource: &v1.ObjectReference{ObjectType: r.Resource.Type, ObjectId: r.Resource.ID},
		Relation: r.Relation,
		Subject:  &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: r.Subject.Type, ObjectId: r.Subject.ID}, OptionalRelation: r.Subject.Relation},
	}
	if r.Caveat != nil {
		out.OptionalCaveat = &v1.ContextualizedCaveat{CaveatName: r.Caveat.Name}
		if len(r.Caveat.Context) > 0 {
			s, err := structpb.NewStruct(r.Caveat.Context)
			if err == nil {
				out.OptionalCaveat.Context = s
			}
		}
	}
	if !r.Expiration.IsZero() {
		out.OptionalExpiresAt = timestamppb.New(r.Expiration)
	}
	return out
}

func relText(r *v1.Relationship) string {
	t := tuple.Relationship{
		Resource: tuple.ObjectRef{Type: r.GetResource().GetObjectType(), ID: r.GetResource().GetObjectId()},
		Relation: r.GetRelation(),
		Subject: tuple.SubjectRef{Type: r.GetSubject().GetObject().GetObjectType(), ID: r.GetSubject().GetObject().GetObjectId(),
			Relation: r.GetSubject().GetOptionalRelation()},
	}
	if c := r.GetOptionalCaveat(); c != nil {
		t.Caveat = &tuple.Caveat{Name: c.GetCaveatName(), Context: c.GetContext().AsMap()}
	}
	if e := r.GetOptionalExpiresAt(); e != nil {
		t.Expiration = e.AsTime()
	}
	return t.String()
}

func objectPB(s string) (*v1.ObjectReference, error) {
	o, err := tuple.ParseObject(s)
	if err != nil {
		return nil, err
	}
	return &v1.ObjectReference{ObjectType: o.Type, ObjectId: o.ID}, nil
}

func subjectPB(s string) (*v1.SubjectReference, error) {
	sub, err := tuple.ParseSubject(s)
	if err != nil {
		return nil, err
	}
	return &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: sub.Type, ObjectId: sub.ID}, OptionalRelation: sub.Relation}, nil
}

func contextPB(s string) (*structpb.Struct, error) {
	if s == "" {
		return nil, nil
	}
	m, err := tuple.ParseContext([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("--context: %w", err)
	}
	return structpb.NewStruct(m)
}

// newSchemaReadCmd and newSchemaWriteCmd are `schema read` and `schema
// write`; they are meant to be added to the schema command.
func newSchemaReadCmd() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{Use: "read", Short: "Print the server's schema", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := c.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			r, err := v1.NewSchemaServiceClient(conn).ReadSchema(cmd.Context(), &v1.ReadSchemaRequest{})
			if err != nil {
				return err
			}
			return c.emit(cmd.OutOrStdout(), r, strings.TrimRight(r.GetSchemaText(), "\n"))
		}}
	c.add(cmd, false)
	return cmd
}

func newSchemaWriteCmd() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{Use: "write FILE", Short: "Write a schema (.zed, or the schema of a validation .yaml; - for stdin)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var text string
			if args[0] == "-" {
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return err
				}
				text = string(b)
			} else {
				t, err := readSchemaFile(args[0])
				if err != nil {
					return err
				}
				text = t
			}
			conn, err := c.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			r, err := v1.NewSchemaServiceClient(conn).WriteSchema(cmd.Context(), &v1.WriteSchemaRequest{Schema: text})
			if err != nil {
				return err
			}
			return c.emit(cmd.OutOrStdout(), r, r.GetWrittenAt().GetToken())
		}}
	c.add(cmd, false)
	return cmd
}

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
					req.Updates = append(req.Updates, &v1.RelationshipUpdate{Operation: op.op, Relationship: relToPB(r)})
				}
				conn, err := c.dial()
				if err != nil {
					return err
				}
				defer conn.Close()
				r, err := v1.NewPermissionsServiceClient(conn).WriteRelationships(cmd.Context(), req)
				if err != nil {
					return err
				}
				return c.emit(cmd.OutOrStdout(), r, r.GetWrittenAt().GetToken())
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
			cons, err := c.consistencyPB()
			if err != nil {
				return err
			}
			conn, err := c.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			s, err := v1.NewPermissionsServiceClient(conn).ReadRelationships(cmd.Context(), &v1.ReadRelationshipsRequest{Consistency: cons, RelationshipFilter: f})
			if err != nil {
				return err
			}
			return recvAll(s.Recv, func(r *v1.ReadRelationshipsResponse) error {
				return c.emit(cmd.OutOrStdout(), r, relText(r.GetRelationship()))
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

func recvAll[T any](recv func() (T, error), fn func(T) error) error {
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
}

func newCheckCmd() *cobra.Command {
	var c clientFlags
	var ctxJSON string
	cmd := &cobra.Command{Use: "check RESOURCE PERMISSION SUBJECT", Short: "Check a permission, e.g. check document:1 view user:ana", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := objectPB(args[0])
			if err != nil {
				return err
			}
			sub, err := subjectPB(args[2])
			if err != nil {
				return err
			}
			cctx, err := contextPB(ctxJSON)
			if err != nil {
				return err
			}
			cons, err := c.consistencyPB()
			if err != nil {
				return err
			}
			conn, err := c.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			r, err := v1.NewPermissionsServiceClient(conn).CheckPermission(cmd.Context(), &v1.CheckPermissionRequest{Consistency: cons, Resource: res, Permission: args[1], Subject: sub, Context: cctx})
			if err != nil {
				return err
			}
			text := "false"
			switch r.GetPermissionship() {
			case v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION:
				text = "true"
			case v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
				text = "caveated (missing context: " + strings.Join(r.GetPartialCaveatInfo().GetMissingRequiredContext(), ", ") + ")"
			}
			return c.emit(cmd.OutOrStdout(), r, text)
		}}
	cmd.Flags().StringVar(&ctxJSON, "context", "", "caveat context as a JSON object")
	c.add(cmd, true)
	return cmd
}

func newExpandCmd() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{Use: "expand RESOURCE PERMISSION", Short: "Print the userset tree of a permission", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := objectPB(args[0])
			if err != nil {
				return err
			}
			cons, err := c.consistencyPB()
			if err != nil {
				return err
			}
			conn, err := c.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			r, err := v1.NewPermissionsServiceClient(conn).ExpandPermissionTree(cmd.Context(), &v1.ExpandPermissionTreeRequest{Consistency: cons, Resource: res, Permission: args[1]})
			if err != nil {
				return err
			}
			var b strings.Builder
			printTree(&b, r.GetTreeRoot(), "")
			return c.emit(cmd.OutOrStdout(), r, strings.TrimRight(b.String(), "\n"))
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

func newLookupResourcesCmd() *cobra.Command {
	var c clientFlags
	var ctxJSON string
	var limit uint32
	cmd := &cobra.Command{Use: "lookup-resources TYPE PERMISSION SUBJECT", Short: "List the resources of TYPE on which SUBJECT has PERMISSION", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			sub, err := subjectPB(args[2])
			if err != nil {
				return err
			}
			cctx, err := contextPB(ctxJSON)
			if err != nil {
				return err
			}
			cons, err := c.consistencyPB()
			if err != nil {
				return err
			}
			conn, err := c.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			s, err := v1.NewPermissionsServiceClient(conn).LookupResources(cmd.Context(), &v1.LookupResourcesRequest{Consistency: cons, ResourceObjectType: args[0],
				Permission: args[1], Subject: sub, Context: cctx, OptionalLimit: limit})
			if err != nil {
				return err
			}
			return recvAll(s.Recv, func(r *v1.LookupResourcesResponse) error {
				text := args[0] + ":" + r.GetResourceObjectId()
				if r.GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION {
					text += " (caveated)"
				}
				return c.emit(cmd.OutOrStdout(), r, text)
			})
		}}
	cmd.Flags().StringVar(&ctxJSON, "context", "", "caveat context as a JSON object")
	cmd.Flags().Uint32Var(&limit, "limit", 0, "most results (0: all)")
	c.add(cmd, true)
	return cmd
}

func newLookupSubjectsCmd() *cobra.Command {
	var c clientFlags
	var ctxJSON string
	cmd := &cobra.Command{Use: "lookup-subjects RESOURCE PERMISSION SUBJECT_TYPE[#RELATION]", Short: "List the subjects that have PERMISSION on RESOURCE", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := objectPB(args[0])
			if err != nil {
				return err
			}
			typ, rel, _ := strings.Cut(args[2], "#")
			cctx, err := contextPB(ctxJSON)
			if err != nil {
				return err
			}
			cons, err := c.consistencyPB()
			if err != nil {
				return err
			}
			conn, err := c.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			s, err := v1.NewPermissionsServiceClient(conn).LookupSubjects(cmd.Context(), &v1.LookupSubjectsRequest{Consistency: cons, Resource: res,
				Permission: args[1], SubjectObjectType: typ, OptionalSubjectRelation: rel, Context: cctx})
			if err != nil {
				return err
			}
			return recvAll(s.Recv, func(r *v1.LookupSubjectsResponse) error {
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
				return c.emit(cmd.OutOrStdout(), r, text)
			})
		}}
	cmd.Flags().StringVar(&ctxJSON, "context", "", "caveat context as a JSON object")
	c.add(cmd, true)
	return cmd
}

func newImportCmd() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{Use: "import FILE", Short: "Bulk-load relationships: a validation .yaml (its relationships) or one relationship per line", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rels, err := readRelationshipsFile(args[0])
			if err != nil {
				return err
			}
			conn, err := c.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			s, err := v1.NewPermissionsServiceClient(conn).ImportBulkRelationships(cmd.Context())
			if err != nil {
				return err
			}
			for i := 0; i < len(rels); i += 1000 {
				msg := &v1.ImportBulkRelationshipsRequest{}
				for _, r := range rels[i:min(i+1000, len(rels))] {
					msg.Relationships = append(msg.Relationships, relToPB(r))
				}
				if err := s.Send(msg); err != nil {
					break // the server's error comes with CloseAndRecv
				}
			}
			r, err := s.CloseAndRecv()
			if err != nil {
				return err
			}
			return c.emit(cmd.OutOrStdout(), r, fmt.Sprintf("imported %d relationships", r.GetNumLoaded()))
		}}
	c.add(cmd, false)
	return cmd
}

func readRelationshipsFile(path string) ([]tuple.Relationship, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml") {
		docs, err := validation.Parse(path, data)
		if err != nil {
			return nil, err
		}
		var out []tuple.Relationship
		for _, d := range docs {
			for _, r := range d.Relationships {
				out = append(out, r.Relationship)
			}
		}
		return out, nil
	}
	var out []tuple.Relationship
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "//") || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := tuple.Parse(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func newExportCmd() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{Use: "export", Short: "Print every relationship, one per line (importable with `ambit import`)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cons, err := c.consistencyPB()
			if err != nil {
				return err
			}
			conn, err := c.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			s, err := v1.NewPermissionsServiceClient(conn).ExportBulkRelationships(cmd.Context(), &v1.ExportBulkRelationshipsRequest{Consistency: cons})
			if err != nil {
				return err
			}
			return recvAll(s.Recv, func(r *v1.ExportBulkRelationshipsResponse) error {
				if c.asJSON {
					return c.emit(cmd.OutOrStdout(), r, "")
				}
				for _, rel := range r.GetRelationships() {
					if _, err := fmt.Fprintln(cmd.OutOrStdout(), relText(rel)); err != nil {
						return err
					}
				}
				return nil
			})
		}}
	c.add(cmd, true)
	return cmd
}

func newWatchCmd() *cobra.Command {
	var c clientFlags
	var from string
	var types []string
	cmd := &cobra.Command{Use: "watch", Short: "Stream relationship changes (Ctrl-C to stop)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := c.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			req := &v1.WatchRequest{OptionalObjectTypes: types}
			if from != "" {
				req.OptionalStartCursor = &v1.ZedToken{Token: from}
			}
			s, err := v1.NewWatchServiceClient(conn).Watch(cmd.Context(), req)
			if err != nil {
				return err
			}
			err = recvAll(s.Recv, func(r *v1.WatchResponse) error {
				if c.asJSON {
					return c.emit(cmd.OutOrStdout(), r, "")
				}
				for _, u := range r.GetUpdates() {
					op := strings.TrimPrefix(u.GetOperation().String(), "OPERATION_")
					if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", r.GetChangesThrough().GetToken(), op, relText(u.GetRelationship())); err != nil {
						return err
					}
				}
				return nil
			})
			if cmd.Context().Err() != nil {
				return nil
			}
			return err
		}}
	cmd.Flags().StringVar(&from, "from", "", "ZedToken to resume after")
	cmd.Flags().StringArrayVar(&types, "type", nil, "only changes to resources of this type (repeatable)")
	c.add(cmd, false)
	return cmd
}

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Inspect and change raft cluster membership"}
	var c clientFlags
	status := &cobra.Command{Use: "status", Short: "List the members as the endpoint sees them", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl := raft.NewClient(c.token)
			defer cl.Close()
			ms, err := cl.Status(cmd.Context(), c.endpoint)
			if err != nil {
				return err
			}
			if c.asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				return enc.Encode(ms)
			}
			for _, m := range ms {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\traft=%s\tgrpc=%s\tvoter=%v\n", m.ID, m.Role, m.RaftAddr, m.GRPCAddr, m.Voter)
			}
			return nil
		}}
	c.add(status, false)
	var rc clientFlags
	remove := &cobra.Command{Use: "remove NODE_ID", Short: "Remove a member from the cluster", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl := raft.NewClient(rc.token)
			defer cl.Close()
			if err := cl.Remove(cmd.Context(), rc.endpoint, args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "removed", args[0])
			return err
		}}
	rc.add(remove, false)
	cmd.AddCommand(status, remove)
	return cmd
}
