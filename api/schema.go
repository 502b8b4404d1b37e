package api

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/schema"
)

// ReadSchema implements v1.SchemaServiceServer: the schema text as written,
// at the latest applied revision.
func (s *Server) ReadSchema(ctx context.Context, _ *v1.ReadSchemaRequest) (*v1.ReadSchemaResponse, error) {
	rev := s.store.AppliedRevision()
	text, at, err := s.store.ReadSchema(rev)
	if err != nil {
		return nil, err
	}
	if text == "" && at == 0 {
		return nil, status.Error(codes.NotFound, "no schema has been defined; write one with WriteSchema")
	}
	return &v1.ReadSchemaResponse{SchemaText: text, ReadAt: s.tokens.zedToken(rev)}, nil
}

// WriteSchema implements v1.SchemaServiceServer. The text must compile; a
// change that would orphan stored relationships is refused inside the raft
// apply (raft.OrphanGuard), so it cannot race a concurrent write.
func (s *Server) WriteSchema(ctx context.Context, req *v1.WriteSchemaRequest) (*v1.WriteSchemaResponse, error) {
	if _, err := schema.Compile("schema", req.GetSchema()); err != nil {
		// toStatus: InvalidArgument with SpiceDB's parse-error reason.
		return nil, fmt.Errorf("schema does not compile:\n%w", err)
	}
	res, err := s.node.Apply(ctx, raft.SchemaCommand(req.GetSchema()))
	if err != nil {
		return nil, err
	}
	return &v1.WriteSchemaResponse{WrittenAt: s.tokens.zedToken(res.Revision)}, nil
}

// schemaForWrite returns the schema that relationship writes are validated
// against (the one at the latest applied revision) and the hash of its text.
// The write command carries the hash, and the state machine refuses the
// write if another schema is stored by the time it applies: a schema change
// committed between validation and apply cannot let in relationships it no
// longer allows.
func (s *Server) schemaForWrite() (*schema.Schema, raft.SchemaHash, error) {
	cs, _, err := s.schemas.entry(s.store.AppliedRevision())
	if errors.Is(err, errNoSchema) {
		return nil, raft.SchemaHash{}, preconditionf("no schema has been written yet; write one with SchemaService.WriteSchema before writing relationships")
	}
	if err != nil {
		return nil, raft.SchemaHash{}, err
	}
	return cs.s, cs.hash, nil
}

// validateForWrite validates a relationship command against this node's
// newest schema and stamps that schema's hash on it. A follower may not have
// applied a schema the leader already acknowledged (a client wrote it through
// another node a moment ago): when the follower's schema refuses the command,
// or it has none yet, the command goes to the leader unstamped, and the
// leader's validateForwarded decides against the newest schema. So only the
// leader refuses a write definitively; a follower that cannot reach it
// answers Unavailable (not proposed), which a client retries.
func (s *Server) validateForWrite(cmd *raft.Command) error {
	sch, hash, err := s.schemaForWrite()
	if err == nil {
		if err = s.validateCommand(sch, *cmd); err == nil {
			cmd.SchemaHash = hash
			return nil
		}
	}
	if s.node.State() == raft.RoleLeader {
		return err
	}
	cmd.SchemaHash = raft.SchemaHash{}
	return nil
}

// applyValidated proposes a command validated against the schema whose hash
// it carries. A refusal because the schema changed in the meantime is a
// failed precondition the client can retry.
func (s *Server) applyValidated(ctx context.Context, cmd raft.Command) (raft.Result, error) {
	res, err := s.node.Apply(ctx, cmd)
	if errors.Is(err, raft.ErrSchemaChanged) {
		return res, preconditionf("%v", err)
	}
	return res, err
}
