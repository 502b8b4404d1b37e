package console

import (
	"context"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/api/apitoken"
	"github.com/ambit-authz/ambit/validation"
)

// importChunk is how many relationships one WriteRelationships of an
// import carries (the server's default --max-updates-per-write is 1000).
const importChunk = 500

type importRequest struct {
	// File is a validation file (YAML): its first document's schema and
	// relationships are imported.
	File string `json:"file"`
	// WriteSchema also writes the file's schema first (needs the schema
	// scope).
	WriteSchema bool `json:"write_schema"`
}

type importResponse struct {
	SchemaWritten bool   `json:"schema_written"`
	Relationships int    `json:"relationships"`
	WrittenAt     string `json:"written_at,omitempty"`
}

// importFile imports a validation file: the schema if asked, then the
// relationships, touched (so a re-import is harmless) in chunks. A failed
// chunk stops the import; the answer says how far it got.
func (h *Handler) importFile(ctx context.Context, c call) (any, error) {
	var req importRequest
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	docs, err := validation.ParseUploaded("import.yaml", []byte(req.File))
	if err != nil {
		return nil, invalidf("%v", err)
	}
	if len(docs) == 0 {
		return nil, invalidf("the file has no document")
	}
	f := docs[0]
	var out importResponse
	if req.WriteSchema && f.Schema != "" {
		if !c.caller.Allows(apitoken.Schema) {
			return nil, status.Errorf(codes.PermissionDenied, "the credential lacks the %q scope needed to write the schema", apitoken.Schema)
		}
		resp, err := h.schemas().WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: f.Schema})
		if err != nil {
			return nil, err
		}
		out.SchemaWritten, out.WrittenAt = true, resp.GetWrittenAt().GetToken()
	}
	for i := 0; i < len(f.Relationships); i += importChunk {
		chunk := f.Relationships[i:min(i+importChunk, len(f.Relationships))]
		ups := make([]*v1.RelationshipUpdate, len(chunk))
		for j, r := range chunk {
			pb, err := api.RelationshipToV1(r.Relationship)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "line %d: %s", r.Line, status.Convert(err).Message())
			}
			ups[j] = &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: pb}
		}
		resp, err := h.permissions().WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: ups})
		if err != nil {
			st := status.Convert(err)
			return nil, status.Errorf(st.Code(), "imported %d of %d relationships; the chunk from line %d failed: %s", out.Relationships, len(f.Relationships), chunk[0].Line, st.Message())
		}
		out.Relationships += len(chunk)
		out.WrittenAt = resp.GetWrittenAt().GetToken()
	}
	return out, nil
}

// clusterResponse is the live page's view of the cluster and this node.
type clusterResponse struct {
	Members []Member           `json:"members"`
	Error   string             `json:"error,omitempty"`
	Metrics map[string]float64 `json:"metrics"`
}

func (h *Handler) cluster(ctx context.Context, c call) (any, error) {
	out := clusterResponse{Members: []Member{}, Metrics: map[string]float64{}}
	if h.cfg.Cluster != nil {
		ms, err := h.cfg.Cluster(ctx, c.auth)
		if err != nil {
			out.Error = fmt.Sprintf("cluster status: %s", status.Convert(err).Message())
		} else {
			out.Members = ms
		}
	}
	if h.cfg.Metrics != nil {
		out.Metrics = keyMetrics(h.cfg.Metrics)
	}
	return out, nil
}
