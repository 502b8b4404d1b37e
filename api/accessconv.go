package api

import (
	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/internal/v1pb"
	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
	"github.com/ambit-authz/ambit/tuple"
)

// Conversions between the ambit.v1 access messages and the engine's
// values. References and consistency become their authzed v1 twins (same
// fields), so that one set of validations (convert.go) and one consistency
// resolution (server.go) serve both APIs. The From functions are exported
// for the CLI, which prints what the server sent.

func objectV1(o *ambitv1.ObjectReference) *v1.ObjectReference {
	if o == nil {
		return nil
	}
	return &v1.ObjectReference{ObjectType: o.GetObjectType(), ObjectId: o.GetObjectId()}
}

func subjectV1(s *ambitv1.SubjectReference) *v1.SubjectReference {
	if s == nil {
		return nil
	}
	return &v1.SubjectReference{Object: objectV1(s.GetObject()), OptionalRelation: s.GetOptionalRelation()}
}

func consistencyV1(c *ambitv1.Consistency) *v1.Consistency {
	switch r := c.GetRequirement().(type) {
	case *ambitv1.Consistency_FullyConsistent:
		return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: r.FullyConsistent}}
	case *ambitv1.Consistency_AtLeastAsFresh:
		return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &v1.ZedToken{Token: r.AtLeastAsFresh.GetToken()}}}
	case *ambitv1.Consistency_AtExactSnapshot:
		return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: r.AtExactSnapshot.GetToken()}}}
	}
	return nil // minimize_latency
}

func zedTokenPB(z *v1.ZedToken) *ambitv1.ZedToken { return &ambitv1.ZedToken{Token: z.GetToken()} }

func objectPB(o tuple.ObjectRef) *ambitv1.ObjectReference {
	return &ambitv1.ObjectReference{ObjectType: o.Type, ObjectId: o.ID}
}

func subjectPB(s tuple.SubjectRef) *ambitv1.SubjectReference {
	return &ambitv1.SubjectReference{Object: objectPB(s.Object()), OptionalRelation: s.Relation}
}

func permissionshipPB(p engine.Permissionship) ambitv1.Permissionship {
	switch p {
	case engine.HasPermission:
		return ambitv1.Permissionship_PERMISSIONSHIP_HAS_PERMISSION
	case engine.ConditionalPermission:
		return ambitv1.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION
	}
	return ambitv1.Permissionship_PERMISSIONSHIP_NO_PERMISSION
}

// PermissionshipFromPB is the engine's value of an ambit.v1 Permissionship.
func PermissionshipFromPB(p ambitv1.Permissionship) engine.Permissionship {
	switch p {
	case ambitv1.Permissionship_PERMISSIONSHIP_HAS_PERMISSION:
		return engine.HasPermission
	case ambitv1.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		return engine.ConditionalPermission
	}
	return engine.NoPermission
}

// relationshipPB converts a relationship of a proof or an explanation. A
// caveat context a protobuf Struct cannot hold is an error naming the
// relationship, never a silent drop (as in internal/v1pb).
func relationshipPB(r tuple.Relationship) (*ambitv1.Relationship, error) {
	out := &ambitv1.Relationship{Resource: objectPB(r.Resource), Relation: r.Relation, Subject: subjectPB(r.Subject)}
	if r.Caveat != nil {
		out.OptionalCaveatName = r.Caveat.Name
		st, err := v1pb.ContextToV1(r.Caveat.Context, "caveat context of "+r.Key().String())
		if err != nil {
			return nil, err
		}
		out.OptionalCaveatContext = st
	}
	if !r.Expiration.IsZero() {
		out.OptionalExpiresAt = timestamppb.New(r.Expiration)
	}
	return out, nil
}

// RelationshipFromPB is the relationship an ambit.v1 Relationship names
// (unvalidated: for printing what a server sent).
func RelationshipFromPB(r *ambitv1.Relationship) tuple.Relationship {
	s := r.GetSubject()
	out := tuple.Relationship{
		Resource: tuple.ObjectRef{Type: r.GetResource().GetObjectType(), ID: r.GetResource().GetObjectId()},
		Relation: r.GetRelation(),
		Subject:  tuple.SubjectRef{Type: s.GetObject().GetObjectType(), ID: s.GetObject().GetObjectId(), Relation: s.GetOptionalRelation()},
	}
	if n := r.GetOptionalCaveatName(); n != "" {
		out.Caveat = &tuple.Caveat{Name: n, Context: contextFromPB(r.GetOptionalCaveatContext())}
	}
	if e := r.GetOptionalExpiresAt(); e != nil {
		out.Expiration = e.AsTime().UTC()
	}
	return out
}

func proofPB(p []tuple.Relationship) ([]*ambitv1.Relationship, error) {
	out := make([]*ambitv1.Relationship, len(p))
	for i, r := range p {
		var err error
		if out[i], err = relationshipPB(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

var whyKinds = map[engine.WhyKind]ambitv1.ExplainNode_Kind{
	engine.WhyCheck:        ambitv1.ExplainNode_KIND_CHECK,
	engine.WhyUnion:        ambitv1.ExplainNode_KIND_UNION,
	engine.WhyIntersection: ambitv1.ExplainNode_KIND_INTERSECTION,
	engine.WhyExclusion:    ambitv1.ExplainNode_KIND_EXCLUSION,
	engine.WhyArrow:        ambitv1.ExplainNode_KIND_ARROW,
	engine.WhyRelationship: ambitv1.ExplainNode_KIND_RELATIONSHIP,
	engine.WhyMissing:      ambitv1.ExplainNode_KIND_MISSING,
	engine.WhyExpired:      ambitv1.ExplainNode_KIND_EXPIRED,
	engine.WhyNoParent:     ambitv1.ExplainNode_KIND_NO_PARENT,
}

func whyToPB(w *engine.Why) (*ambitv1.ExplainNode, error) {
	if w == nil {
		return nil, nil
	}
	n := &ambitv1.ExplainNode{Kind: whyKinds[w.Kind], Resource: objectPB(w.Resource), Relation: w.Relation,
		Permissionship: permissionshipPB(w.Result), MissingContext: w.Missing, Note: w.Note}
	if w.Relationship != nil {
		var err error
		if n.Relationship, err = relationshipPB(*w.Relationship); err != nil {
			return nil, err
		}
	}
	for _, c := range w.Children {
		cn, err := whyToPB(c)
		if err != nil {
			return nil, err
		}
		n.Children = append(n.Children, cn)
	}
	return n, nil
}

// WhyFromPB is the explanation tree an ExplainNode carries, for printing
// with engine.Why.Text.
func WhyFromPB(n *ambitv1.ExplainNode) *engine.Why {
	if n == nil {
		return nil
	}
	w := &engine.Why{Resource: tuple.ObjectRef{Type: n.GetResource().GetObjectType(), ID: n.GetResource().GetObjectId()},
		Relation: n.GetRelation(), Result: PermissionshipFromPB(n.GetPermissionship()), Missing: n.GetMissingContext(), Note: n.GetNote()}
	for k, pk := range whyKinds {
		if pk == n.GetKind() {
			w.Kind = k
		}
	}
	if n.GetRelationship() != nil {
		r := RelationshipFromPB(n.GetRelationship())
		w.Relationship = &r
	}
	for _, c := range n.GetChildren() {
		w.Children = append(w.Children, WhyFromPB(c))
	}
	return w
}
