package api

import (
	"fmt"
	"slices"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// Watch implements v1.WatchServiceServer. It streams every revision after
// optional_start_cursor (after the current revision when absent) as one
// WatchResponse whose changes_through is that revision's ZedToken, so a
// client resumes by passing the last changes_through it received. A
// revision whose updates do not fit in Limits.MaxResponseBytes is sent as
// several responses in commit order; all but the last carry a ZedToken
// from the middle of the revision (see partialToken), from which a watch
// resumes with the rest of it, and only the last carries the revision's own
// token. (SpiceDB sends one response per transaction and has no such split;
// a client written for it sees several responses for one revision and may
// resume from any of them.) Updates are filtered by optional_object_types
// and optional_relationship_filters (a revision with nothing left is not
// sent, unless it changed the schema and WATCH_KIND_INCLUDE_SCHEMA_UPDATES
// was asked for).
// With WATCH_KIND_INCLUDE_CHECKPOINTS a checkpoint is sent whenever the
// stream has caught up.
func (s *Server) Watch(req *v1.WatchRequest, stream grpc.ServerStreamingServer[v1.WatchResponse]) error {
	if n := s.watching.Add(1); n > int64(s.limits.MaxWatches) {
		s.watching.Add(-1)
		return overloadedf("Watch: the server has its limit of %d watch streams open (--max-watches); retry later", s.limits.MaxWatches)
	}
	defer s.watching.Add(-1)
	ctx := stream.Context()
	types := req.GetOptionalObjectTypes()
	for i, t := range types {
		if err := tuple.ValidateType(t); err != nil {
			return invalidf("optional_object_types[%d]: %v", i, err)
		}
	}
	var filters []tuple.Filter
	for i, pb := range req.GetOptionalRelationshipFilters() {
		f, err := filterFromPB(pb, fmt.Sprintf("optional_relationship_filters[%d]", i), true)
		if err != nil {
			return err
		}
		filters = append(filters, f)
	}
	if len(types) > 0 && len(filters) > 0 {
		return invalidf("optional_object_types and optional_relationship_filters cannot both be set")
	}
	kinds := req.GetOptionalUpdateKinds()
	checkpoints := slices.Contains(kinds, v1.WatchKind_WATCH_KIND_INCLUDE_CHECKPOINTS)
	wantRels := len(kinds) == 0 || slices.Contains(kinds, v1.WatchKind_WATCH_KIND_UNSPECIFIED) ||
		slices.Contains(kinds, v1.WatchKind_WATCH_KIND_INCLUDE_RELATIONSHIP_UPDATES)
	wantSchema := slices.Contains(kinds, v1.WatchKind_WATCH_KIND_INCLUDE_SCHEMA_UPDATES)

	match := func(r tuple.Relationship) bool {
		if len(types) > 0 {
			return slices.Contains(types, r.Resource.Type)
		}
		if len(filters) > 0 {
			for _, f := range filters {
				if f.Matches(r) {
					return true
				}
			}
			return false
		}
		return true
	}

	var after tuple.Revision
	// resumeIn and resumeAt: a start cursor from the middle of a revision
	// skips the first resumeAt updates of revision resumeIn.
	var resumeIn tuple.Revision
	resumeAt := 0
	if c := req.GetOptionalStartCursor(); c != nil {
		rev, delivered, err := s.tokens.position(c, "optional_start_cursor")
		if err != nil {
			return err
		}
		if applied := s.store.AppliedRevision(); rev > applied {
			if err := s.waitFor(ctx, rev, s.limits.ExactSnapshotWait, "optional_start_cursor"); err != nil {
				return preconditionf("optional_start_cursor: revision %d is newer than this node's applied revision %d", rev, s.store.AppliedRevision())
			}
		}
		after = rev
		if delivered > 0 {
			after, resumeIn, resumeAt = rev-1, rev, int(min(delivered, uint64(1<<31)))
		}
	} else {
		after = s.store.AppliedRevision()
	}

	for {
		changed := s.store.Changed() // before reading, so no revision is missed
		// The store yields each revision in bounded pieces (store.ChangePieces),
		// so a revision of a million updates is never in memory whole.
		var rs *revisionSender
		for piece, err := range s.store.ChangePieces(ctx, after) {
			if err != nil {
				return err
			}
			if rs == nil || rs.rev != piece.Revision {
				rs = &revisionSender{s: s, stream: stream, rev: piece.Revision, wantRels: wantRels, wantSchema: wantSchema, match: match}
				if piece.Revision == resumeIn {
					rs.skip = resumeAt
				}
				resumeIn = 0
			}
			if err := rs.add(piece); err != nil {
				return err
			}
			if !piece.More {
				if err := rs.finish(); err != nil {
					return err
				}
				after = piece.Revision
			}
		}
		if checkpoints {
			cp := max(after, s.store.AppliedRevision())
			if err := stream.Send(&v1.WatchResponse{ChangesThrough: s.tokens.zedToken(cp), IsCheckpoint: true}); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-s.stopping:
			return status.Errorf(codes.Unavailable, "the server is shutting down; resume the watch from the last changes_through (%s)", s.tokens.zedToken(after).GetToken())
		}
	}
}

// revisionSender sends one revision's updates that match, piece by piece as
// the store yields them, in responses of at most Limits.MaxResponseBytes
// (see Watch): every response but the revision's last carries a token of
// the position inside the revision, the last the revision's own.
type revisionSender struct {
	s                    *Server
	stream               grpc.ServerStreamingServer[v1.WatchResponse]
	rev                  tuple.Revision
	wantRels, wantSchema bool
	match                func(tuple.Relationship) bool
	skip                 int // updates of the revision already delivered (a resumed watch)
	seen                 int // updates of the revision read so far
	schema               bool
	resp                 *v1.WatchResponse
	size                 int
}

func (r *revisionSender) add(piece store.Change) error {
	r.schema = r.schema || piece.Schema != nil
	maxBytes := r.s.limits.MaxResponseBytes - 256 // room for the token and framing
	for _, u := range piece.Updates {
		i := r.seen
		r.seen++
		if !r.wantRels || i < r.skip || !r.match(u.Rel) {
			continue
		}
		pb, err := watchUpdate(u)
		if err != nil {
			return err
		}
		n := protowire.SizeBytes(proto.Size(pb)) + 1
		if r.resp != nil && len(r.resp.Updates) > 0 && r.size+n > maxBytes {
			r.resp.ChangesThrough = r.s.tokens.partialToken(r.rev, i)
			if err := r.stream.Send(r.resp); err != nil {
				return err
			}
			r.resp, r.size = nil, 0
		}
		if r.resp == nil {
			r.resp = &v1.WatchResponse{}
		}
		r.resp.Updates = append(r.resp.Updates, pb)
		r.size += n
	}
	return nil
}

func (r *revisionSender) finish() error {
	if r.resp == nil {
		r.resp = &v1.WatchResponse{}
	}
	r.resp.SchemaUpdated = r.wantSchema && r.schema
	if len(r.resp.Updates) == 0 && !r.resp.SchemaUpdated {
		return nil
	}
	r.resp.ChangesThrough = r.s.tokens.zedToken(r.rev)
	return r.stream.Send(r.resp)
}

func watchUpdate(u store.Update) (*v1.RelationshipUpdate, error) {
	op := v1.RelationshipUpdate_OPERATION_TOUCH
	if u.Op == store.OpDelete {
		op = v1.RelationshipUpdate_OPERATION_DELETE
	}
	rel, err := relationshipToPB(u.Rel)
	if err != nil {
		return nil, err
	}
	return &v1.RelationshipUpdate{Operation: op, Relationship: rel}, nil
}
