package api

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// validateCommand checks a relationship command against the schema and this
// server's limits: every relationship written or imported must fit the
// schema and the caveat context limit, every filter must name types and
// relations it defines, a write may name each relationship once and hold at
// most Limits.MaxUpdatesPerWrite updates. It is the one validation of what a
// client writes, run by the handlers before proposing (validateForWrite;
// ImportBulkRelationships makes the same per-relationship checks inline, as
// the stream arrives) and by the leader on a command another node forwarded
// (validateForwarded). Field names are the request's (updates[i],
// relationships[i], ...).
func (s *Server) validateCommand(sch *schema.Schema, cmd raft.Command) error {
	for i, p := range cmd.Preconditions {
		if err := checkFilter(sch, p.Filter, fmt.Sprintf("optional_preconditions[%d].filter", i)); err != nil {
			return err
		}
	}
	switch cmd.Kind {
	case raft.KindWrite, raft.KindRecords:
		if len(cmd.Updates) > s.limits.MaxUpdatesPerWrite {
			return tooMany(v1.ErrorReason_ERROR_REASON_TOO_MANY_UPDATES_IN_REQUEST, "update_count", len(cmd.Updates), "maximum_updates_allowed", s.limits.MaxUpdatesPerWrite,
				"updates: %d updates in one write, more than the limit of %d; split the write", len(cmd.Updates), s.limits.MaxUpdatesPerWrite)
		}
		seen := make(map[tuple.Key]int, len(cmd.Updates))
		for i, u := range cmd.Updates {
			field := fmt.Sprintf("updates[%d]", i)
			if j, dup := seen[u.Rel.Key()]; dup {
				return withSpiceDBReason(status.Newf(codes.InvalidArgument, "%s: relationship %s also appears in updates[%d]; a write may name each relationship once", field, u.Rel.Key(), j),
					v1.ErrorReason_ERROR_REASON_UPDATES_ON_SAME_RELATIONSHIP, map[string]string{"definition_name": u.Rel.Resource.Type, "relationship": u.Rel.Key().String()})
			}
			seen[u.Rel.Key()] = i
			if u.Op != store.OpDelete {
				if err := engine.ValidateRelationship(sch, u.Rel); err != nil {
					return fmt.Errorf("%s: %w", field, err)
				}
				if err := s.checkStoredContext(u.Rel, field+".relationship"); err != nil {
					return err
				}
			}
		}
	case raft.KindDelete:
		return checkFilter(sch, cmd.Filter, "relationship_filter")
	case raft.KindImport:
		for i, rel := range cmd.Relationships {
			field := fmt.Sprintf("relationships[%d]", i)
			if err := engine.ValidateRelationship(sch, rel); err != nil {
				return fmt.Errorf("%s: %w", field, err)
			}
			if err := s.checkStoredContext(rel, field); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateForwarded is the raft.ForwardValidator: the leader checks a
// command another node forwarded as it checks the same request from a
// client, against its newest schema, and proposes it carrying that schema's
// hash (a delete carries none). A command the forwarder validated against
// another schema and that this one refuses is ErrSchemaChanged (the client
// may retry).
func (s *Server) validateForwarded(_ context.Context, cmd raft.Command) (raft.Command, error) {
	switch cmd.Kind {
	case raft.KindSchema:
		if _, err := schema.Compile("schema", cmd.Schema); err != nil {
			return cmd, fmt.Errorf("schema does not compile:\n%v", err)
		}
		return cmd, nil
	case raft.KindRecords:
		if len(cmd.Updates) == 0 && len(cmd.Preconditions) == 0 {
			return cmd, nil // records alone (a token) need no schema
		}
	case raft.KindWrite, raft.KindDelete, raft.KindImport:
	default:
		return cmd, nil
	}
	sch, hash, err := s.schemaForWrite()
	if err == nil {
		err = s.validateCommand(sch, cmd)
	}
	if err != nil {
		if st, ok := status.FromError(err); ok {
			err = errors.New(st.Message())
		}
		if cmd.SchemaHash != (raft.SchemaHash{}) && cmd.SchemaHash != hash {
			return cmd, fmt.Errorf("%w: the forwarding node validated the write against schema %s, the leader's is %s and refuses it: %v",
				raft.ErrSchemaChanged, cmd.SchemaHash, hash, err)
		}
		return cmd, err
	}
	if cmd.Kind != raft.KindDelete {
		cmd.SchemaHash = hash
	}
	return cmd, nil
}
