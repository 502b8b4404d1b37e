package api

import (
	"context"
	"errors"
	"fmt"
	"io"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// checkFilter refuses a filter that names a type or relation the schema does
// not define (FailedPrecondition, as SpiceDB does).
func checkFilter(sch *schema.Schema, f tuple.Filter, field string) error {
	if f.ResourceType != "" {
		d := sch.Definitions[f.ResourceType]
		if d == nil {
			return preconditionf("%s.resource_type: type %q is not defined in the schema", field, f.ResourceType)
		}
		if f.Relation != "" && d.Relations[f.Relation] == nil {
			return preconditionf("%s.optional_relation: type %q has no relation %q", field, f.ResourceType, f.Relation)
		}
	}
	if sf := f.Subject; sf != nil && sf.Type != "" && sch.Definitions[sf.Type] == nil {
		return preconditionf("%s.optional_subject_filter.subject_type: type %q is not defined in the schema", field, sf.Type)
	}
	return nil
}

// ReadRelationships implements v1.PermissionsServiceServer. Every response
// carries a cursor that resumes after it, at the same revision.
func (s *Server) ReadRelationships(req *v1.ReadRelationshipsRequest, stream grpc.ServerStreamingServer[v1.ReadRelationshipsResponse]) error {
	ctx := stream.Context()
	f, err := filterFromPB(req.GetRelationshipFilter(), "relationship_filter", true)
	if err != nil {
		return err
	}
	if err := s.checkReadLimit(req.GetOptionalLimit()); err != nil {
		return err
	}
	fp := fingerprint(req.GetRelationshipFilter())
	rev, skip, err := s.pageStart(ctx, req.GetConsistency(), req.GetOptionalCursor(), cursorRead, fp)
	if err != nil {
		return err
	}
	sch, snap, err := s.snapshotAt(rev)
	if err != nil {
		return err
	}
	if err := checkFilter(sch, f, "relationship_filter"); err != nil {
		return err
	}
	limit := uint64(req.GetOptionalLimit())
	at := s.tokens.zedToken(rev)
	var i, sent uint64
	for r, err := range snap.Query(ctx, f) {
		if err != nil {
			return err
		}
		if i++; i <= skip {
			continue
		}
		if limit > 0 && sent >= limit {
			return nil
		}
		sent++
		pb, err := relationshipToPB(r)
		if err != nil {
			return err
		}
		resp := &v1.ReadRelationshipsResponse{
			ReadAt:            at,
			Relationship:      pb,
			AfterResultCursor: s.tokens.encodeCursor(cursor{kind: cursorRead, rev: rev, request: fp, offset: i}),
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

// checkReadLimit refuses an optional_limit above Limits.MaxReadLimit with
// InvalidArgument, as SpiceDB does for reads, deletes and exports (its
// --max-read-relationships-limit and friends), rather than clamping it: a
// client that asked for more than it will get should hear so.
func (s *Server) checkReadLimit(limit uint32) error {
	if int64(limit) > int64(s.limits.MaxReadLimit) {
		return &limitError{field: "optional_limit", limit: int64(limit), max: s.limits.MaxReadLimit, flag: "--max-read-limit"}
	}
	return nil
}

// pageStart returns the revision and the number of results to skip for a
// paginated read: from the cursor when given, else from the consistency.
func (s *Server) pageStart(ctx context.Context, c *v1.Consistency, pb *v1.Cursor, kind cursorKind, fp [8]byte) (tuple.Revision, uint64, error) {
	if pb == nil {
		rev, err := s.readAt(ctx, c)
		return rev, 0, err
	}
	cur, err := s.tokens.decodeCursor(pb, kind, fp)
	if err != nil {
		return 0, 0, err
	}
	return cur.rev, cur.offset, nil
}

// WriteRelationships implements v1.PermissionsServiceServer: every update is
// validated against the current schema before one atomic raft write.
func (s *Server) WriteRelationships(ctx context.Context, req *v1.WriteRelationshipsRequest) (*v1.WriteRelationshipsResponse, error) {
	ups := req.GetUpdates()
	if len(ups) > s.limits.MaxUpdatesPerWrite {
		return nil, tooMany(v1.ErrorReason_ERROR_REASON_TOO_MANY_UPDATES_IN_REQUEST, "update_count", len(ups), "maximum_updates_allowed", s.limits.MaxUpdatesPerWrite,
			"updates: %d updates in one write, more than the limit of %d; split the write", len(ups), s.limits.MaxUpdatesPerWrite)
	}
	preconds, err := preconditionsFromPB(req.GetOptionalPreconditions(), s.limits.MaxPreconditions)
	if err != nil {
		return nil, err
	}
	updates := make([]store.Update, 0, len(ups))
	for i, u := range ups {
		field := fmt.Sprintf("updates[%d]", i)
		rel, err := relationshipFromPB(u.GetRelationship(), field+".relationship")
		if err != nil {
			return nil, err
		}
		var op store.Op
		switch u.GetOperation() {
		case v1.RelationshipUpdate_OPERATION_CREATE:
			op = store.OpCreate
		case v1.RelationshipUpdate_OPERATION_TOUCH:
			op = store.OpTouch
		case v1.RelationshipUpdate_OPERATION_DELETE:
			op = store.OpDelete
		default:
			return nil, invalidf("%s.operation must be OPERATION_CREATE, OPERATION_TOUCH or OPERATION_DELETE", field)
		}
		updates = append(updates, store.Update{Op: op, Rel: rel})
	}
	cmd := raft.WriteCommand(updates, preconds)
	if err := s.validateForWrite(&cmd); err != nil {
		return nil, err
	}
	res, err := s.applyValidated(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return &v1.WriteRelationshipsResponse{WrittenAt: s.tokens.zedToken(res.Revision)}, nil
}

// checkStoredContext refuses, before anything is proposed, a relationship
// whose caveat context is larger than MaxCaveatContextLen, measured as the
// store measures it (its JSON). The limit is this node's to configure; the
// store applies only its format constant, which bounds the configurable one,
// so a write accepted here is never refused by the state machine for size.
func (s *Server) checkStoredContext(rel tuple.Relationship, field string) error {
	if rel.Caveat == nil || len(rel.Caveat.Context) == 0 {
		return nil
	}
	n, err := store.CaveatContextSize(rel.Caveat)
	if err != nil {
		return invalidf("%s.optional_caveat.context: %v", field, err)
	}
	if limit := min(s.limits.MaxCaveatContextLen, store.MaxCaveatContextBytes); n > limit {
		return invalidf("%s.optional_caveat.context is %d bytes of JSON, more than the limit of %d", field, n, limit)
	}
	return nil
}

// DeleteRelationships implements v1.PermissionsServiceServer.
func (s *Server) DeleteRelationships(ctx context.Context, req *v1.DeleteRelationshipsRequest) (*v1.DeleteRelationshipsResponse, error) {
	f, err := filterFromPB(req.GetRelationshipFilter(), "relationship_filter", true)
	if err != nil {
		return nil, err
	}
	if f.ResourceType == "" && len(f.ResourceIDs) == 0 && f.ResourceIDPrefix == "" && f.Relation == "" && f.Subject == nil {
		return nil, invalidf("relationship_filter: set at least one field; an empty filter would delete every relationship")
	}
	if err := s.checkReadLimit(req.GetOptionalLimit()); err != nil {
		return nil, err
	}
	preconds, err := s.preconditionsChecked(req.GetOptionalPreconditions())
	if err != nil {
		return nil, err
	}
	limit := int(req.GetOptionalLimit())
	cmd := raft.DeleteCommand(f, limit, req.GetOptionalAllowPartialDeletions(), preconds)
	if err := s.validateForWrite(&cmd); err != nil {
		return nil, err
	}
	cmd.SchemaHash = raft.SchemaHash{} // a delete carries no schema hash (see validateForwarded)
	res, err := s.node.Apply(ctx, cmd)
	if errors.Is(err, store.ErrTooLarge) && limit > 0 {
		return nil, invalidf("%v; nothing was deleted: raise optional_limit or set optional_allow_partial_deletions to delete in batches", err)
	}
	if err != nil {
		return nil, err
	}
	progress := v1.DeleteRelationshipsResponse_DELETION_PROGRESS_COMPLETE
	if res.Partial {
		progress = v1.DeleteRelationshipsResponse_DELETION_PROGRESS_PARTIAL
	}
	return &v1.DeleteRelationshipsResponse{
		DeletedAt:                 s.tokens.zedToken(res.Revision),
		DeletionProgress:          progress,
		RelationshipsDeletedCount: uint64(res.Deleted),
	}, nil
}

func (s *Server) preconditionsChecked(ps []*v1.Precondition) ([]store.Precondition, error) {
	return preconditionsFromPB(ps, s.limits.MaxPreconditions)
}

// ImportBulkRelationships implements v1.PermissionsServiceServer. The
// stream is validated and committed in chunks of Limits.ImportChunk, each
// one raft import command with CREATE semantics. A failure ends the stream
// with an error that says how many relationships were already committed.
func (s *Server) ImportBulkRelationships(stream grpc.ClientStreamingServer[v1.ImportBulkRelationshipsRequest, v1.ImportBulkRelationshipsResponse]) error {
	ctx := stream.Context()
	// A follower may lag the leader's schema: what its own schema refuses
	// (or all of it, before it has one) goes to the leader unvalidated, where
	// validateForwarded decides against the newest schema.
	sch, schemaHash, err := s.schemaForWrite()
	leaderDecides := false
	if err != nil {
		if s.node.State() == raft.RoleLeader {
			return err
		}
		sch, leaderDecides = nil, true
	}
	var loaded uint64
	var seen uint64
	chunk := make([]tuple.Relationship, 0, s.limits.ImportChunk)
	fail := func(err error) error {
		if loaded == 0 {
			return err
		}
		return fmt.Errorf("%w (%d relationships from earlier chunks were committed; resume after them)", err, loaded)
	}
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		cmd := raft.ImportCommand(chunk)
		if !leaderDecides {
			cmd.SchemaHash = schemaHash
		}
		if _, err := s.applyValidated(ctx, cmd); err != nil {
			return fail(fmt.Errorf("import chunk starting at relationship %d: %w", loaded, err))
		}
		loaded += uint64(len(chunk))
		chunk = chunk[:0:0]
		chunk = make([]tuple.Relationship, 0, s.limits.ImportChunk)
		return nil
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(err)
		}
		for _, pb := range msg.GetRelationships() {
			field := fmt.Sprintf("relationships[%d]", seen)
			seen++
			rel, err := relationshipFromPB(pb, field)
			if err != nil {
				return fail(err)
			}
			if sch != nil {
				if err := engine.ValidateRelationship(sch, rel); err != nil {
					if s.node.State() == raft.RoleLeader {
						return fail(fmt.Errorf("%s: %w", field, err))
					}
					sch, leaderDecides = nil, true
				}
			}
			if err := s.checkStoredContext(rel, field); err != nil {
				return fail(err)
			}
			chunk = append(chunk, rel)
			if len(chunk) >= s.limits.ImportChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return stream.SendAndClose(&v1.ImportBulkRelationshipsResponse{NumLoaded: loaded})
}

// ExportBulkRelationships implements v1.PermissionsServiceServer: every
// relationship at one revision, in pages of optional_limit relationships
// (default 1000, at most Limits.MaxReadLimit) and at most
// Limits.MaxResponseBytes, each with a cursor that resumes after it.
func (s *Server) ExportBulkRelationships(req *v1.ExportBulkRelationshipsRequest, stream grpc.ServerStreamingServer[v1.ExportBulkRelationshipsResponse]) error {
	ctx := stream.Context()
	f, err := filterFromPB(req.GetOptionalRelationshipFilter(), "optional_relationship_filter", false)
	if err != nil {
		return err
	}
	if err := s.checkReadLimit(req.GetOptionalLimit()); err != nil {
		return err
	}
	var fpMsg proto.Message = req.GetOptionalRelationshipFilter()
	if fpMsg == nil {
		fpMsg = &v1.RelationshipFilter{}
	}
	fp := fingerprint(fpMsg)
	rev, skip, err := s.pageStart(ctx, req.GetConsistency(), req.GetOptionalCursor(), cursorExport, fp)
	if err != nil {
		return err
	}
	sch, snap, err := s.snapshotAt(rev)
	if err != nil {
		return err
	}
	if err := checkFilter(sch, f, "optional_relationship_filter"); err != nil {
		return err
	}
	batch := int(req.GetOptionalLimit())
	if batch == 0 {
		batch = min(1000, s.limits.MaxReadLimit)
	}
	// Room for the cursor and the framing of the page.
	maxBytes := s.limits.MaxResponseBytes - 256
	var i uint64
	size := 0
	out := &v1.ExportBulkRelationshipsResponse{}
	send := func() error {
		if len(out.Relationships) == 0 {
			return nil
		}
		out.AfterResultCursor = s.tokens.encodeCursor(cursor{kind: cursorExport, rev: rev, request: fp, offset: i})
		err := stream.Send(out)
		out, size = &v1.ExportBulkRelationshipsResponse{}, 0
		return err
	}
	for r, err := range snap.Query(ctx, f) {
		if err != nil {
			return err
		}
		if i++; i <= skip {
			continue
		}
		pb, err := relationshipToPB(r)
		if err != nil {
			return err
		}
		n := protowire.SizeBytes(proto.Size(pb)) + 1
		if len(out.Relationships) > 0 && size+n > maxBytes {
			i-- // the cursor resumes before r
			if err := send(); err != nil {
				return err
			}
			i++
		}
		out.Relationships = append(out.Relationships, pb)
		size += n
		if len(out.Relationships) >= batch {
			if err := send(); err != nil {
				return err
			}
		}
	}
	return send()
}
