package api_test

import (
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/ambit-authz/ambit/api"
)

func TestServerVersion(t *testing.T) {
	for _, tc := range []struct{ build, want string }{
		{"v0.2.0", "v0.2.0+ambit"},
		{"0.2.0", "v0.2.0+ambit"},
		{"v1.10.3-rc.1", "v1.10.3-rc.1+ambit"},
		{"v1.2.3+dirty", "v1.2.3+ambit"},
		{"dev", "v0.0.0-dev+ambit"},
		{"", "v0.0.0-dev+ambit"},
		{"e3f0905", "v0.0.0-e3f0905+ambit"},
		{"my build/7", "v0.0.0-my-build-7+ambit"},
		{"v1.2", "v0.0.0-v1.2+ambit"},
		{"v01.2.3", "v0.0.0-v01.2.3+ambit"},
	} {
		if got := api.ServerVersion(tc.build); got != tc.want {
			t.Errorf("ServerVersion(%q) = %q, want %q", tc.build, got, tc.want)
		}
	}
}

// TestServerVersionHeader: a SpiceDB client that asks for the server's
// version (zed does on every call) gets it in the response header, on unary
// and streaming calls; a client that does not ask gets no such header.
func TestServerVersionHeader(t *testing.T) {
	e := newEnv(t)
	const ask, answer = "io.spicedb.requestserverversion", "io.spicedb.respmeta.serverversion"
	want := api.ServerVersion("")

	var hdr metadata.MD
	ctx := metadata.AppendToOutgoingContext(e.ctx(), ask, "1")
	if _, err := e.schema.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: testSchema}, grpc.Header(&hdr)); err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get(answer); len(got) != 1 || got[0] != want {
		t.Errorf("unary: response header %s = %q, want [%q]", answer, got, want)
	}

	stream, err := e.perms.LookupResources(ctx, &v1.LookupResourcesRequest{
		ResourceObjectType: "document", Permission: "view",
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "ana"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	shdr, err := stream.Header()
	if err != nil {
		t.Fatal(err)
	}
	if got := shdr.Get(answer); len(got) != 1 || got[0] != want {
		t.Errorf("stream: response header %s = %q, want [%q]", answer, got, want)
	}

	hdr = nil
	if _, err := e.schema.ReadSchema(e.ctx(), &v1.ReadSchemaRequest{}, grpc.Header(&hdr)); err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get(answer); len(got) != 0 {
		t.Errorf("a client that did not ask got %s = %q", answer, got)
	}
}
