package api

import (
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// Conversions between the authzed v1 messages and ambit's typed vocabulary.
// Strings are validated here, once; errors name the request field.

func objectFromPB(o *v1.ObjectReference, field string) (tuple.ObjectRef, error) {
	if o == nil {
		return tuple.ObjectRef{}, invalidf("%s is required", field)
	}
	if err := tuple.ValidateType(o.GetObjectType()); err != nil {
		return tuple.ObjectRef{}, invalidf("%s.object_type: %v", field, err)
	}
	if err := tuple.ValidateID(o.GetObjectId()); err != nil {
		return tuple.ObjectRef{}, invalidf("%s.object_id: %v", field, err)
	}
	return tuple.ObjectRef{Type: o.GetObjectType(), ID: o.GetObjectId()}, nil
}

func subjectFromPB(s *v1.SubjectReference, field string) (tuple.SubjectRef, error) {
	if s == nil || s.GetObject() == nil {
		return tuple.SubjectRef{}, invalidf("%s.object is required", field)
	}
	o := s.GetObject()
	if err := tuple.ValidateType(o.GetObjectType()); err != nil {
		return tuple.SubjectRef{}, invalidf("%s.object.object_type: %v", field, err)
	}
	if err := tuple.ValidateSubjectID(o.GetObjectId()); err != nil {
		return tuple.SubjectRef{}, invalidf("%s.object.object_id: %v", field, err)
	}
	sub := tuple.SubjectRef{Type: o.GetObjectType(), ID: o.GetObjectId()}
	if r := s.GetOptionalRelation(); r != "" && r != tuple.Ellipsis {
		if err := tuple.ValidateRelation(r); err != nil {
			return tuple.SubjectRef{}, invalidf("%s.optional_relation: %v", field, err)
		}
		if sub.IsWildcard() {
			return tuple.SubjectRef{}, invalidf("%s: a wildcard subject (%s:*) cannot have a relation", field, sub.Type)
		}
		sub.Relation = r
	}
	return sub, nil
}

func objectToPB(o tuple.ObjectRef) *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: o.Type, ObjectId: o.ID}
}

func subjectToPB(s tuple.SubjectRef) *v1.SubjectReference {
	return &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: s.Type, ObjectId: s.ID}, OptionalRelation: s.Relation}
}

// contextFromPB converts caveat context to JSON values (numbers are float64).
func contextFromPB(s *structpb.Struct) map[string]any {
	if s == nil || len(s.GetFields()) == 0 {
		return nil
	}
	return s.AsMap()
}

func relationshipFromPB(r *v1.Relationship, field string) (tuple.Relationship, error) {
	if r == nil {
		return tuple.Relationship{}, invalidf("%s is required", field)
	}
	res, err := objectFromPB(r.GetResource(), field+".resource")
	if err != nil {
		return tuple.Relationship{}, err
	}
	if err := tuple.ValidateRelation(r.GetRelation()); err != nil {
		return tuple.Relationship{}, invalidf("%s.relation: %v", field, err)
	}
	sub, err := subjectFromPB(r.GetSubject(), field+".subject")
	if err != nil {
		return tuple.Relationship{}, err
	}
	rel := tuple.Relationship{Resource: res, Relation: r.GetRelation(), Subject: sub}
	if c := r.GetOptionalCaveat(); c != nil {
		if err := tuple.ValidateRelation(c.GetCaveatName()); err != nil {
			return tuple.Relationship{}, invalidf("%s.optional_caveat.caveat_name %q: must match [a-z][a-z0-9_]{1,62}[a-z0-9]", field, c.GetCaveatName())
		}
		rel.Caveat = &tuple.Caveat{Name: c.GetCaveatName(), Context: contextFromPB(c.GetContext())}
	}
	if e := r.GetOptionalExpiresAt(); e != nil {
		if err := e.CheckValid(); err != nil {
			return tuple.Relationship{}, invalidf("%s.optional_expires_at: %v", field, err)
		}
		rel.Expiration = e.AsTime()
	}
	return rel, nil
}

func relationshipToPB(r tuple.Relationship) *v1.Relationship {
	out := &v1.Relationship{Resource: objectToPB(r.Resource), Relation: r.Relation, Subject: subjectToPB(r.Subject)}
	if r.Caveat != nil {
		c := &v1.ContextualizedCaveat{CaveatName: r.Caveat.Name}
		if len(r.Caveat.Context) > 0 {
			if s, err := structpb.NewStruct(r.Caveat.Context); err == nil {
				c.Context = s
			}
		}
		out.OptionalCaveat = c
	}
	if !r.Expiration.IsZero() {
		out.OptionalExpiresAt = timestamppb.New(r.Expiration.UTC())
	}
	return out
}

// filterFromPB converts a RelationshipFilter. A nil filter is an error when
// required; the empty filter matches everything.
func filterFromPB(f *v1.RelationshipFilter, field string, required bool) (tuple.Filter, error) {
	if f == nil {
		if required {
			return tuple.Filter{}, invalidf("%s is required", field)
		}
		return tuple.Filter{}, nil
	}
	var out tuple.Filter
	if t := f.GetResourceType(); t != "" {
		if err := tuple.ValidateType(t); err != nil {
			return out, invalidf("%s.resource_type: %v", field, err)
		}
		out.ResourceType = t
	}
	if id := f.GetOptionalResourceId(); id != "" {
		if err := tuple.ValidateID(id); err != nil {
			return out, invalidf("%s.optional_resource_id: %v", field, err)
		}
		out.ResourceIDs = []string{id}
	}
	if p := f.GetOptionalResourceIdPrefix(); p != "" {
		if out.ResourceIDs != nil {
			return out, invalidf("%s: optional_resource_id and optional_resource_id_prefix cannot both be set", field)
		}
		out.ResourceIDPrefix = p
	}
	if r := f.GetOptionalRelation(); r != "" {
		if err := tuple.ValidateRelation(r); err != nil {
			return out, invalidf("%s.optional_relation: %v", field, err)
		}
		out.Relation = r
	}
	if sf := f.GetOptionalSubjectFilter(); sf != nil {
		s := &tuple.SubjectFilter{}
		if err := tuple.ValidateType(sf.GetSubjectType()); err != nil {
			return out, invalidf("%s.optional_subject_filter.subject_type: %v", field, err)
		}
		s.Type = sf.GetSubjectType()
		if id := sf.GetOptionalSubjectId(); id != "" {
			if err := tuple.ValidateSubjectID(id); err != nil {
				return out, invalidf("%s.optional_subject_filter.optional_subject_id: %v", field, err)
			}
			s.IDs = []string{id}
		}
		if rf := sf.GetOptionalRelation(); rf != nil {
			r := rf.GetRelation()
			if r == tuple.Ellipsis {
				r = ""
			}
			if r != "" {
				if err := tuple.ValidateRelation(r); err != nil {
					return out, invalidf("%s.optional_subject_filter.optional_relation: %v", field, err)
				}
			}
			s.Relation = &r
		}
		out.Subject = s
	}
	return out, nil
}

func preconditionsFromPB(ps []*v1.Precondition, limit int) ([]store.Precondition, error) {
	if limit > 0 && len(ps) > limit {
		return nil, invalidf("optional_preconditions: %d preconditions, more than the limit of %d", len(ps), limit)
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
	switch p {
	case engine.HasPermission:
		return v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
	case engine.ConditionalPermission:
		return v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION
	}
	return v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION
}

func lookupPermissionshipToPB(p engine.Permissionship) v1.LookupPermissionship {
	if p == engine.ConditionalPermission {
		return v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION
	}
	return v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION
}

func partialInfo(missing []string) *v1.PartialCaveatInfo {
	if len(missing) == 0 {
		return nil
	}
	return &v1.PartialCaveatInfo{MissingRequiredContext: missing}
}

func expandToPB(n *engine.ExpandNode) *v1.PermissionRelationshipTree {
	t := &v1.PermissionRelationshipTree{ExpandedObject: objectToPB(n.Object), ExpandedRelation: n.Relation}
	if n.Kind == engine.ExpandLeaf {
		leaf := &v1.DirectSubjectSet{}
		for _, s := range n.Subjects {
			leaf.Subjects = append(leaf.Subjects, subjectToPB(s.Subject))
		}
		t.TreeType = &v1.PermissionRelationshipTree_Leaf{Leaf: leaf}
		return t
	}
	op := v1.AlgebraicSubjectSet_OPERATION_UNION
	switch n.Kind {
	case engine.ExpandIntersection:
		op = v1.AlgebraicSubjectSet_OPERATION_INTERSECTION
	case engine.ExpandExclusion:
		op = v1.AlgebraicSubjectSet_OPERATION_EXCLUSION
	}
	set := &v1.AlgebraicSubjectSet{Operation: op}
	for _, c := range n.Children {
		set.Children = append(set.Children, expandToPB(c))
	}
	t.TreeType = &v1.PermissionRelationshipTree_Intermediate{Intermediate: set}
	return t
}

// RelationshipToV1 is r as an authzed v1 Relationship, for front ends that
// call the public API (the web console).
func RelationshipToV1(r tuple.Relationship) *v1.Relationship { return relationshipToPB(r) }

// RelationshipFromV1 is the relationship an authzed v1 Relationship names;
// the error names what is wrong with it.
func RelationshipFromV1(r *v1.Relationship) (tuple.Relationship, error) {
	return relationshipFromPB(r, "relationship")
}
