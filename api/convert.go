package api

import (
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/internal/v1pb"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// Conversions between the authzed v1 messages and ambit's typed vocabulary
// are internal/v1pb's; these wrappers turn its errors into InvalidArgument
// statuses whose message names the request field.

// invalid is err, a *v1pb.Error about the request, as InvalidArgument.
func invalid(err error) error {
	if err == nil {
		return nil
	}
	return status.Error(codes.InvalidArgument, err.Error())
}

func objectFromPB(o *v1.ObjectReference, field string) (tuple.ObjectRef, error) {
	r, err := v1pb.ObjectFromV1(o, field)
	return r, invalid(err)
}

func subjectFromPB(s *v1.SubjectReference, field string) (tuple.SubjectRef, error) {
	r, err := v1pb.SubjectFromV1(s, field)
	return r, invalid(err)
}

func objectToPB(o tuple.ObjectRef) *v1.ObjectReference { return v1pb.ObjectToV1(o) }

func subjectToPB(s tuple.SubjectRef) *v1.SubjectReference { return v1pb.SubjectToV1(s) }

// contextFromPB converts caveat context to JSON values (numbers are float64).
func contextFromPB(s *structpb.Struct) map[string]any { return v1pb.ContextFromV1(s) }

func relationshipFromPB(r *v1.Relationship, field string) (tuple.Relationship, error) {
	rel, err := v1pb.RelationshipFromV1(r, field)
	return rel, invalid(err)
}

// relationshipToPB converts a stored relationship. One whose caveat context
// a v1 message cannot hold is the server's fault (Internal), never sent
// without its context.
func relationshipToPB(r tuple.Relationship) (*v1.Relationship, error) {
	pb, err := v1pb.RelationshipToV1(r)
	if err != nil {
		return nil, fmt.Errorf("stored relationship: %v", err) // %v: not the client's invalid argument
	}
	return pb, nil
}

// filterFromPB converts a RelationshipFilter. A nil filter is an error when
// required; the empty filter matches everything.
func filterFromPB(f *v1.RelationshipFilter, field string, required bool) (tuple.Filter, error) {
	out, err := v1pb.FilterFromV1(f, field, required)
	return out, invalid(err)
}

func preconditionsFromPB(ps []*v1.Precondition, limit int) ([]store.Precondition, error) {
	if limit > 0 && len(ps) > limit {
		return nil, tooMany(v1.ErrorReason_ERROR_REASON_TOO_MANY_PRECONDITIONS_IN_REQUEST, "precondition_count", len(ps), "maximum_preconditions_allowed", limit,
			"optional_preconditions: %d preconditions, more than the limit of %d", len(ps), limit)
	}
	out := make([]store.Precondition, 0, len(ps))
	for i, p := range ps {
		field := fmt.Sprintf("optional_preconditions[%d]", i)
		var must bool
		switch p.GetOperation() {
		case v1.Precondition_OPERATION_MUST_MATCH:
			must = true
		case v1.Precondition_OPERATION_MUST_NOT_MATCH:
		default:
			return nil, invalidf("%s.operation must be OPERATION_MUST_MATCH or OPERATION_MUST_NOT_MATCH", field)
		}
		f, err := filterFromPB(p.GetFilter(), field+".filter", true)
		if err != nil {
			return nil, err
		}
		out = append(out, store.Precondition{MustMatch: must, Filter: f})
	}
	return out, nil
}

func permissionshipToPB(p engine.Permissionship) v1.CheckPermissionResponse_Permissionship {
	return v1pb.PermissionshipToV1(p)
}

func lookupPermissionshipToPB(p engine.Permissionship) v1.LookupPermissionship {
	return v1pb.LookupPermissionshipToV1(p)
}

func partialInfo(missing []string) *v1.PartialCaveatInfo {
	if len(missing) == 0 {
		return nil
	}
	return &v1.PartialCaveatInfo{MissingRequiredContext: missing}
}

func expandToPB(n *engine.ExpandNode) *v1.PermissionRelationshipTree { return v1pb.ExpandToV1(n) }

// RelationshipToV1 is r as an authzed v1 Relationship, for front ends that
// call the public API (the web console); a caveat context a v1 message
// cannot hold is an InvalidArgument error naming the relationship.
func RelationshipToV1(r tuple.Relationship) (*v1.Relationship, error) {
	pb, err := v1pb.RelationshipToV1(r)
	return pb, invalid(err)
}

// RelationshipFromV1 is the relationship an authzed v1 Relationship names;
// the error (InvalidArgument) names what is wrong with it.
func RelationshipFromV1(r *v1.Relationship) (tuple.Relationship, error) {
	return relationshipFromPB(r, "relationship")
}
