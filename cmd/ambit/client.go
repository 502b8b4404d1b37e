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
	_ = registerCommand(newCheckCmd)
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

// dialEndpoint opens a client connection to endpoint: TLS with the system
// roots when secure, else plaintext; a non-empty token is sent as a bearer
// token with every call. Nothing is sent until the first call.
func dialEndpoint(endpoint, token string, secure bool) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if secure {
		opts[0] = grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerCreds{token: token, secure: secure}))
	}
	return grpc.NewClient(endpoint, opts...)
}

// clusterClient calls the cluster service of --endpoint with the token,
// over TLS with the system roots when --tls.
func (c *clientFlags) clusterClient() *raft.Client {
	if c.tls {
		return raft.NewTLSClient(c.token, &tls.Config{MinVersion: tls.VersionTLS12})
	}
	return raft.NewClient(c.token)
}

func (c *clientFlags) dial() (*grpc.ClientConn, error) {
	return dialEndpoint(c.endpoint, c.token, c.tls)
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

// session is one client command's open connection.
type session struct {
	*clientFlags
	ctx    context.Context
	out    io.Writer
	errOut io.Writer
	conn   *grpc.ClientConn
	perms  v1.PermissionsServiceClient
	cons   *v1.Consistency // from --consistency; minimize_latency for writes
}

// connect resolves --consistency, dials the endpoint, runs fn with the open
// session and closes the connection.
func (c *clientFlags) connect(cmd *cobra.Command, fn func(s *session) error) error {
	cons, err := c.consistencyPB()
	if err != nil {
		return err
	}
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(&session{clientFlags: c, ctx: cmd.Context(), out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(),
		conn: conn, perms: v1.NewPermissionsServiceClient(conn), cons: cons})
}

// print prints m as JSON (with --json) or as text.
func (s *session) print(m proto.Message, text string) error { return s.emit(s.out, m, text) }

// printLines prints m as JSON (with --json) or each of lines as text.
func (s *session) printLines(m proto.Message, lines []string) error {
	if s.asJSON {
		return s.print(m, "")
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(s.out, l); err != nil {
			return err
		}
	}
	return nil
}

// call makes one unary call and prints its answer with text.
func call[R proto.Message](s *session, rpc func(context.Context) (R, error), text func(R) string) error {
	r, err := rpc(s.ctx)
	if err != nil {
		return err
	}
	return s.print(r, text(r))
}

// printStream prints every message of a server stream, as lines(m) in text.
func printStream[T any, M interface {
	*T
	proto.Message
}](s *session, open func(context.Context) (grpc.ServerStreamingClient[T], error), lines func(M) []string) error {
	stream, err := open(s.ctx)
	if err != nil {
		return err
	}
	return recvAll(stream.Recv, func(m *T) error { return s.printLines(M(m), lines(M(m))) })
}

// one is lines for a message printed as a single line.
func one[R any](text func(R) string) func(R) []string {
	return func(m R) []string { return []string{text(m)} }
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
			return c.connect(cmd, func(s *session) error {
				return call(s, func(ctx context.Context) (*v1.ReadSchemaResponse, error) {
					return v1.NewSchemaServiceClient(s.conn).ReadSchema(ctx, &v1.ReadSchemaRequest{})
				}, func(r *v1.ReadSchemaResponse) string { return strings.TrimRight(r.GetSchemaText(), "\n") })
			})
		}}
	c.add(cmd, false)
	return cmd
}

func newSchemaWriteCmd() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{Use: "write FILE", Short: "Write a schema (.zed, or the schema of a validation .yaml; - for stdin)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := readSchemaArg(cmd, args[0])
			if err != nil {
				return err
			}
			return c.connect(cmd, func(s *session) error {
				return call(s, func(ctx context.Context) (*v1.WriteSchemaResponse, error) {
					return v1.NewSchemaServiceClient(s.conn).WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: text})
				}, func(r *v1.WriteSchemaResponse) string { return r.GetWrittenAt().GetToken() })
			})
		}}
	c.add(cmd, false)
	return cmd
}

// readSchemaArg reads the schema text of a file argument; "-" is stdin.
func readSchemaArg(cmd *cobra.Command, path string) (string, error) {
	if path != "-" {
		return readSchemaFile(path)
	}
	b, err := io.ReadAll(cmd.InOrStdin())
	return string(b), err
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
				}, one(func(r *v1.ReadRelationshipsResponse) string { return relText(r.GetRelationship()) }))
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

// addContextFlag adds --context, the caveat context of a read.
func addContextFlag(cmd *cobra.Command, ctxJSON *string) {
	cmd.Flags().StringVar(ctxJSON, "context", "", "caveat context as a JSON object")
}

func newCheckCmd() *cobra.Command {
	var c clientFlags
	var ctxJSON string
	var explain, all bool
	cmd := &cobra.Command{Use: "check RESOURCE PERMISSION SUBJECT", Short: "Check a permission, e.g. check document:1 view user:ana", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all && !explain {
				return errors.New("--all needs --explain")
			}
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
			return c.connect(cmd, func(s *session) error {
				r, err := s.perms.CheckPermission(s.ctx, &v1.CheckPermissionRequest{Consistency: s.cons, Resource: res, Permission: args[1],
					Subject: sub, Context: cctx, WithTracing: explain})
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
			res, err := objectPB(args[0])
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
			return c.connect(cmd, func(s *session) error {
				return printStream(s, func(ctx context.Context) (grpc.ServerStreamingClient[v1.LookupResourcesResponse], error) {
					return s.perms.LookupResources(ctx, &v1.LookupResourcesRequest{Consistency: s.cons, ResourceObjectType: args[0],
						Permission: args[1], Subject: sub, Context: cctx, OptionalLimit: limit})
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
			res, err := objectPB(args[0])
			if err != nil {
				return err
			}
			typ, rel, _ := strings.Cut(args[2], "#")
			cctx, err := contextPB(ctxJSON)
			if err != nil {
				return err
			}
			return c.connect(cmd, func(s *session) error {
				return printStream(s, func(ctx context.Context) (grpc.ServerStreamingClient[v1.LookupSubjectsResponse], error) {
					return s.perms.LookupSubjects(ctx, &v1.LookupSubjectsRequest{Consistency: s.cons, Resource: res,
						Permission: args[1], SubjectObjectType: typ, OptionalSubjectRelation: rel, Context: cctx})
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

func newImportCmd() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{Use: "import FILE", Short: "Bulk-load relationships: a validation .yaml (its relationships) or one relationship per line", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rels, err := readRelationshipsFile(args[0])
			if err != nil {
				return err
			}
			return c.connect(cmd, func(s *session) error {
				return importRelationships(s, rels, stderrProgress(s.errOut, "import", int64(len(rels))))
			})
		}}
	c.add(cmd, false)
	return cmd
}

// importRelationships streams rels to ImportBulkRelationships, 1000 to a
// message, reporting progress as they are sent.
func importRelationships(s *session, rels []tuple.Relationship, p *progress) error {
	stream, err := s.perms.ImportBulkRelationships(s.ctx)
	if err != nil {
		return err
	}
	for i := 0; i < len(rels); i += 1000 {
		msg := &v1.ImportBulkRelationshipsRequest{}
		for _, r := range rels[i:min(i+1000, len(rels))] {
			msg.Relationships = append(msg.Relationships, relToPB(r))
		}
		if err := stream.Send(msg); err != nil {
			break // the server's error comes with CloseAndRecv
		}
		p.add(len(msg.Relationships))
	}
	r, err := stream.CloseAndRecv()
	if err != nil {
		p.clear()
		return err
	}
	p.finish()
	return s.print(r, fmt.Sprintf("imported %d relationships", r.GetNumLoaded()))
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
			return c.connect(cmd, func(s *session) error {
				p := stderrProgress(s.errOut, "export", 0)
				// Relationships printed to the same terminal would land on
				// the progress line.
				p.live = p.live && !writerIsTerminal(s.out)
				err := printStream(s, func(ctx context.Context) (grpc.ServerStreamingClient[v1.ExportBulkRelationshipsResponse], error) {
					return s.perms.ExportBulkRelationships(ctx, &v1.ExportBulkRelationshipsRequest{Consistency: s.cons})
				}, func(r *v1.ExportBulkRelationshipsResponse) []string {
					lines := make([]string, len(r.GetRelationships()))
					for i, rel := range r.GetRelationships() {
						lines[i] = relText(rel)
					}
					p.add(len(lines))
					return lines
				})
				if err != nil {
					p.clear()
					return err
				}
				p.finish()
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
			return c.connect(cmd, func(s *session) error {
				req := &v1.WatchRequest{OptionalObjectTypes: types}
				if from != "" {
					req.OptionalStartCursor = &v1.ZedToken{Token: from}
				}
				err := printStream(s, func(ctx context.Context) (grpc.ServerStreamingClient[v1.WatchResponse], error) {
					return v1.NewWatchServiceClient(s.conn).Watch(ctx, req)
				}, func(r *v1.WatchResponse) []string {
					var lines []string
					for _, u := range r.GetUpdates() {
						op := strings.TrimPrefix(u.GetOperation().String(), "OPERATION_")
						lines = append(lines, fmt.Sprintf("%s %s %s", r.GetChangesThrough().GetToken(), op, relText(u.GetRelationship())))
					}
					return lines
				})
				if s.ctx.Err() != nil {
					return nil
				}
				return err
			})
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
			cl := c.clusterClient()
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
			cl := rc.clusterClient()
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
