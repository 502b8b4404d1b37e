// Package remote runs SpiceDB-format validation files against a live server
// over the authzed v1 gRPC API, with the checks validation/runner makes
// in-process (both through validation/oracle): every assertion, the
// `validation:` map and, optionally, the cross-API oracle (Check agrees with
// CheckBulkPermissions, paginated LookupResources and LookupSubjects for
// everything the file mentions; Expand is left out, see API.Expand).
//
// Running a document is destructive: it first deletes every relationship of
// every type the server's current schema defines, then writes the
// document's schema and imports its relationships. Point it at a scratch
// server, never at one holding data you want to keep.
//
// Every read is made at_least_as_fresh with the ZedToken of the runner's
// last write, so the answers are those of the data just loaded even when the
// endpoint is a follower or sits behind a load balancer.
package remote

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/internal/v1pb"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/validation"
	"github.com/ambit-authz/ambit/validation/oracle"
)

// Client is the part of the authzed v1 API the runner uses. authzed-go's
// *authzed.Client has these methods; NewClient builds one over a connection.
type Client interface {
	v1.SchemaServiceClient
	v1.PermissionsServiceClient
}

type client struct {
	v1.SchemaServiceClient
	v1.PermissionsServiceClient
}

// NewClient returns authzed-go's v1 schema and permissions clients over conn.
func NewClient(conn grpc.ClientConnInterface) Client {
	return client{v1.NewSchemaServiceClient(conn), v1.NewPermissionsServiceClient(conn)}
}

// Failure and Report are validation's, shared by both runners.
type (
	Failure = validation.Failure
	Report  = validation.Report
)

// Options select what Run does beyond the assertions.
type Options struct {
	// Oracle cross-checks the APIs against each other.
	Oracle bool
	// PageSizes for LookupResources in the oracle: a size above 0 pages with
	// optional_limit and the cursor of each page's last result; 0 asks for
	// everything in one call. Default {1, 3}.
	PageSizes []int
	// Parallel is how many requests are in flight at once; default 8.
	Parallel int
}

// Batch sizes, within the defaults of both ambit and SpiceDB.
const (
	importBatch = 1000 // relationships per ImportBulkRelationships message
	deleteBatch = 1000 // optional_limit of each DeleteRelationships
	// maxLookup bounds the results one paginated lookup may return: a
	// validation file is small, so more means the server's cursors loop.
	maxLookup = 100_000
)

// Runner runs validation documents on one server.
type Runner struct {
	c    Client
	opts Options
}

// New returns a Runner that talks to the server through c.
func New(c Client, opts Options) *Runner {
	if len(opts.PageSizes) == 0 {
		opts.PageSizes = []int{1, 3}
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	return &Runner{c: c, opts: opts}
}

// run is the state of one document's run.
type run struct {
	*Runner
	f *validation.File
	s *schema.Schema
	// token is the ZedToken of the last write; every read is at least as
	// fresh as it.
	token *v1.ZedToken
}

// Run resets the server, loads the document's schema and relationships and
// checks everything the document asserts through validation/oracle with
// API, the oracle's gRPC adapter. An error means the document could
// not be run (bad schema, server refusing the data, server unreachable);
// wrong answers are Failures in the Report.
func (r *Runner) Run(ctx context.Context, f *validation.File) (*Report, error) {
	s, err := schema.Compile(f.Name, f.Schema)
	if err != nil {
		return nil, fmt.Errorf("%s: schema: %w", f.Name, err)
	}
	x := &run{Runner: r, f: f, s: s}
	if err := x.reset(ctx); err != nil {
		return nil, fmt.Errorf("%s: resetting the server: %w", f.Name, err)
	}
	if err := x.load(ctx); err != nil {
		var le lineError
		if errors.As(err, &le) {
			return nil, fmt.Errorf("%s:%d: %w", f.Name, le.line, le.err)
		}
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return oracle.Run(ctx, API{C: r.c, Consistency: x.consistency()}, f, s,
		oracle.Options{Oracle: r.opts.Oracle, PageSizes: r.opts.PageSizes, Parallel: r.opts.Parallel})
}

// reset deletes every relationship of every type the server's current
// schema defines, in batches, so that the document's schema can replace it.
func (x *run) reset(ctx context.Context) error {
	rs, err := x.c.ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if status.Code(err) == codes.NotFound {
		return nil // no schema, so no relationships
	}
	if err != nil {
		return fmt.Errorf("reading the schema: %w", err)
	}
	current, err := schema.Compile("server schema", rs.GetSchemaText())
	if err != nil {
		return fmt.Errorf("the server's current schema does not compile here, so its types are unknown: %w", err)
	}
	types := make([]string, 0, len(current.Definitions))
	for name := range current.Definitions {
		types = append(types, name)
	}
	sort.Strings(types)
	for _, typ := range types {
		for {
			resp, err := x.c.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{
				RelationshipFilter:            &v1.RelationshipFilter{ResourceType: typ},
				OptionalLimit:                 deleteBatch,
				OptionalAllowPartialDeletions: true,
			})
			if err != nil {
				return fmt.Errorf("deleting the relationships of type %s: %w", typ, err)
			}
			x.token = resp.GetDeletedAt()
			if resp.GetDeletionProgress() != v1.DeleteRelationshipsResponse_DELETION_PROGRESS_PARTIAL {
				break
			}
			if resp.GetRelationshipsDeletedCount() == 0 {
				return fmt.Errorf("deleting the relationships of type %s: the server reports a partial deletion that deleted nothing", typ)
			}
		}
	}
	return nil
}

// load writes the schema and imports the relationships.
func (x *run) load(ctx context.Context) error {
	ws, err := x.c.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: x.f.Schema})
	if err != nil {
		return fmt.Errorf("writing the schema: %w", err)
	}
	x.token = ws.GetWrittenAt()
	if len(x.f.Relationships) == 0 {
		return nil
	}
	if err := x.importRelationships(ctx); err != nil {
		return err
	}
	// ImportBulkRelationships answers without a ZedToken. Writing the same
	// schema again is a write that changes nothing and is applied after the
	// import, so its token covers the imported relationships.
	ws, err = x.c.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: x.f.Schema})
	if err != nil {
		return fmt.Errorf("writing the schema again after the import (for a ZedToken): %w", err)
	}
	x.token = ws.GetWrittenAt()
	return nil
}

// lineError is an error about the relationship on a line of the file.
type lineError struct {
	line int
	err  error
}

func (e lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e lineError) Unwrap() error { return e.err }

// relIndex finds the index of the relationship a server error names, as in
// ambit's `relationships[12]: ...`.
var relIndex = regexp.MustCompile(`relationships\[(\d+)\]`)

func (x *run) importRelationships(ctx context.Context) error {
	rels := x.f.Relationships
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := x.c.ImportBulkRelationships(ctx)
	if err != nil {
		return fmt.Errorf("importing relationships: %w", err)
	}
	for i := 0; i < len(rels); i += importBatch {
		msg := &v1.ImportBulkRelationshipsRequest{}
		for _, r := range rels[i:min(i+importBatch, len(rels))] {
			pb, err := v1pb.RelationshipToV1(r.Relationship)
			if err != nil {
				return lineError{r.Line, err}
			}
			msg.Relationships = append(msg.Relationships, pb)
		}
		if err := stream.Send(msg); err != nil {
			break // the server's reason comes with CloseAndRecv
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		if m := relIndex.FindStringSubmatch(status.Convert(err).Message()); m != nil {
			if i, aerr := strconv.Atoi(m[1]); aerr == nil && i < len(rels) {
				return lineError{rels[i].Line, fmt.Errorf("importing %s: %w", rels[i].Relationship, err)}
			}
		}
		return fmt.Errorf("importing relationships: %w", err)
	}
	if n := resp.GetNumLoaded(); n != uint64(len(rels)) {
		return fmt.Errorf("importing relationships: the server loaded %d of %d", n, len(rels))
	}
	return nil
}

// consistency is at_least_as_fresh with the token of the last write.
func (x *run) consistency() *v1.Consistency {
	return v1pb.Fresh(x.token)
}

// recvAll reads a server stream to its end.
func recvAll[T any](recv func() (T, error), fn func(T) error) error { return v1pb.RecvAll(recv, fn) }
