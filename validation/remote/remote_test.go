package remote

import (
	"context"
	"io"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/validation"
)

// fakeServer answers the calls a run makes before any check; every other
// method is left nil and would panic if called.
type fakeServer struct {
	v1.SchemaServiceClient
	v1.PermissionsServiceClient

	schema    string // "" = no schema (NotFound)
	partial   map[string]int
	deletes   []string // resource types, one per call
	writes    int
	importErr error
	imported  int
}

func (f *fakeServer) ReadSchema(context.Context, *v1.ReadSchemaRequest, ...grpc.CallOption) (*v1.ReadSchemaResponse, error) {
	if f.schema == "" {
		return nil, status.Error(codes.NotFound, "no schema")
	}
	return &v1.ReadSchemaResponse{SchemaText: f.schema}, nil
}

func (f *fakeServer) DeleteRelationships(_ context.Context, req *v1.DeleteRelationshipsRequest, _ ...grpc.CallOption) (*v1.DeleteRelationshipsResponse, error) {
	typ := req.GetRelationshipFilter().GetResourceType()
	f.deletes = append(f.deletes, typ)
	resp := &v1.DeleteRelationshipsResponse{DeletedAt: &v1.ZedToken{Token: "d"}, DeletionProgress: v1.DeleteRelationshipsResponse_DELETION_PROGRESS_COMPLETE}
	if f.partial[typ] != 0 {
		resp.DeletionProgress = v1.DeleteRelationshipsResponse_DELETION_PROGRESS_PARTIAL
		if f.partial[typ] > 0 {
			f.partial[typ]--
			resp.RelationshipsDeletedCount = 1000
		}
	}
	return resp, nil
}

func (f *fakeServer) WriteSchema(context.Context, *v1.WriteSchemaRequest, ...grpc.CallOption) (*v1.WriteSchemaResponse, error) {
	f.writes++
	return &v1.WriteSchemaResponse{WrittenAt: &v1.ZedToken{Token: "w"}}, nil
}

func (f *fakeServer) ImportBulkRelationships(context.Context, ...grpc.CallOption) (grpc.ClientStreamingClient[v1.ImportBulkRelationshipsRequest, v1.ImportBulkRelationshipsResponse], error) {
	return &fakeImport{f: f}, nil
}

type fakeImport struct {
	grpc.ClientStream
	f *fakeServer
}

func (s *fakeImport) Send(m *v1.ImportBulkRelationshipsRequest) error {
	if s.f.importErr != nil {
		return io.EOF
	}
	s.f.imported += len(m.GetRelationships())
	return nil
}

func (s *fakeImport) CloseAndRecv() (*v1.ImportBulkRelationshipsResponse, error) {
	if s.f.importErr != nil {
		return nil, s.f.importErr
	}
	return &v1.ImportBulkRelationshipsResponse{NumLoaded: uint64(s.f.imported)}, nil
}

func parseOne(t *testing.T, text string) *validation.File {
	t.Helper()
	docs, err := validation.Parse("f.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return docs[0]
}

const smallFile = `schema: |-
  definition user {}
  definition doc {
    relation viewer: user
  }
relationships: |-
  doc:1#viewer@user:ana
  doc:2#viewer@user:bob
`

// Reset deletes every type of the server's schema in batches until the
// deletion is complete; the schema is written before and after the import
// (the second write's token covers the import).
func TestResetAndLoad(t *testing.T) {
	srv := &fakeServer{schema: "definition org {}\ndefinition team {\n\trelation member: org\n}", partial: map[string]int{"team": 2}}
	x := &run{Runner: New(srv, Options{}), f: parseOne(t, smallFile)}
	if err := x.reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(srv.deletes, " "); got != "org team team team" {
		t.Fatalf("deletions by type: %s, want org, then team until complete", got)
	}
	if err := x.load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if srv.writes != 2 || srv.imported != 2 || x.token.GetToken() != "w" {
		t.Fatalf("schema writes %d, imported %d, token %q", srv.writes, srv.imported, x.token.GetToken())
	}

	none := &fakeServer{}
	if err := (&run{Runner: New(none, Options{})}).reset(context.Background()); err != nil || len(none.deletes) != 0 {
		t.Fatalf("reset without a schema: %v, deletes %v", err, none.deletes)
	}
}

func TestResetRefusesEndlessPartialDeletion(t *testing.T) {
	srv := &fakeServer{schema: "definition org {}", partial: map[string]int{"org": -1}}
	err := (&run{Runner: New(srv, Options{})}).reset(context.Background())
	if err == nil || !strings.Contains(err.Error(), "deleted nothing") {
		t.Fatalf("reset = %v, want an error about a partial deletion that deleted nothing", err)
	}
}

// An import error naming relationships[i] is reported at the file line of
// that relationship.
func TestImportErrorNamesLine(t *testing.T) {
	srv := &fakeServer{importErr: status.Error(codes.InvalidArgument, "relationships[1]: subject type user is not allowed")}
	_, err := New(srv, Options{}).Run(context.Background(), parseOne(t, smallFile))
	if err == nil || !strings.HasPrefix(err.Error(), "f.yaml:8: importing doc:2#viewer@user:bob") || status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Run = %v, want the error placed at f.yaml:8", err)
	}
}
