package engine

import (
	"fmt"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// ValidateRelationship checks a relationship against the schema before it is
// written: the resource type and relation exist (a relation, not a
// permission), the subject kind is one the relation allows, and the caveat
// and expiration match the allowed type's `with` clause.
func ValidateRelationship(s *schema.Schema, r tuple.Relationship) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	d := s.Definitions[r.Resource.Type]
	if d == nil {
		return fmt.Errorf("%w: %s: resource type %q is not defined in the schema", ErrUnknownType, r.Key(), r.Resource.Type)
	}
	rel := d.Relations[r.Relation]
	if rel == nil {
		return fmt.Errorf("%w: %s: type %q has no relation %q", ErrUnknownRelation, r.Key(), r.Resource.Type, r.Relation)
	}
	if rel.IsPermission {
		return fmt.Errorf("%w: %s: %q is a permission on %q; relationships can only be written to relations", ErrInvalidRequest, r.Key(), r.Relation, r.Resource.Type)
	}
	if s.Definitions[r.Subject.Type] == nil {
		return fmt.Errorf("%w: %s: subject type %q is not defined in the schema", ErrUnknownType, r.Key(), r.Subject.Type)
	}
	caveat := ""
	if r.Caveat != nil {
		caveat = r.Caveat.Name
		if s.Caveats[caveat] == nil {
			return fmt.Errorf("%w: %s: caveat %q is not defined in the schema", ErrInvalidRequest, r.Key(), caveat)
		}
	}
	wild := r.Subject.ID == tuple.Wildcard
	var kindOK bool
	for _, at := range rel.AllowedTypes {
		if at.Type != r.Subject.Type || at.Wildcard != wild || (!wild && at.Relation != r.Subject.Relation) {
			continue
		}
		kindOK = true
		// As in SpiceDB, `with expiration` is required like a caveat is:
		// the allowed type matches only relationships that have one.
		if at.Caveat == caveat && at.Expiration == !r.Expiration.IsZero() {
			return nil
		}
	}
	subject := r.Subject.Type
	switch {
	case wild:
		subject += ":*"
	case r.Subject.Relation != "":
		subject += "#" + r.Subject.Relation
	}
	if !kindOK {
		return fmt.Errorf("%w: %s: relation %s#%s does not allow subjects of type %s", ErrInvalidRequest, r.Key(), r.Resource.Type, r.Relation, subject)
	}
	with := "without a caveat"
	if caveat != "" {
		with = fmt.Sprintf("with caveat %q", caveat)
	}
	if r.Expiration.IsZero() {
		with += " and without expiration"
	} else {
		with += " and with expiration"
	}
	return fmt.Errorf("%w: %s: relation %s#%s does not allow %s %s; check the `with` clauses of its allowed types", ErrInvalidRequest, r.Key(), r.Resource.Type, r.Relation, subject, with)
}
