package harness

import (
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ambit-authz/ambit/tuple"
)

func objectRef(o tuple.ObjectRef) *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: o.Type, ObjectId: o.ID}
}

func subjectRef(s tuple.SubjectRef) *v1.SubjectReference {
	return &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: s.Type, ObjectId: s.ID}, OptionalRelation: s.Relation}
}

func structOf(m map[string]any) (*structpb.Struct, error) {
	if len(m) == 0 {
		return nil, nil
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil, fmt.Errorf("harness: caveat context: %w", err)
	}
	return s, nil
}

func relationship(r tuple.Relationship) (*v1.Relationship, error) {
	out := &v1.Relationship{Resource: objectRef(r.Resource), Relation: r.Relation, Subject: subjectRef(r.Subject)}
	if r.Caveat != nil {
		ctx, err := structOf(r.Caveat.Context)
		if err != nil {
			return nil, err
		}
		out.OptionalCaveat = &v1.ContextualizedCaveat{CaveatName: r.Caveat.Name, Context: ctx}
	}
	if !r.Expiration.IsZero() {
		out.OptionalExpiresAt = timestamppb.New(r.Expiration)
	}
	return out, nil
}

// Consistency names a v1 consistency requirement.
type Consistency string

const (
	MinimizeLatency Consistency = "minimize_latency"
	FullyConsistent Consistency = "full"
)

func (c Consistency) proto() (*v1.Consistency, error) {
	switch c {
	case "", MinimizeLatency:
		return &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}, nil
	case FullyConsistent:
		return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}, nil
	}
	return nil, fmt.Errorf("harness: consistency %q (want %s or %s)", string(c), MinimizeLatency, FullyConsistent)
}
