package schema

import (
	"errors"
	"fmt"

	"github.com/ambit-authz/ambit/tuple"
)

// The kinds of RelationshipError; test with errors.Is.
var (
	// ErrUnknownType: the relationship names a resource or subject type the
	// schema does not define.
	ErrUnknownType = errors.New("unknown object type")
	// ErrUnknownRelation: the resource type has no such relation or
	// permission.
	ErrUnknownRelation = errors.New("unknown relation or permission")
	// ErrNotAllowed: the relationship is malformed or its relation does not
	// allow it (a permission, a subject kind, caveat or expiration the
	// relation's allowed types do not list).
	ErrNotAllowed = errors.New("relationship not allowed by the schema")
)

// RelationshipError says why a relationship is not valid under a schema.
// Its message names the relationship and what is wrong, without the kind's
// text; Unwrap gives the kind (ErrUnknownType, ErrUnknownRelation or
// ErrNotAllowed).
type RelationshipError struct {
	Kind error
	Msg  string
}

func (e *RelationshipError) Error() string { return e.Msg }
func (e *RelationshipError) Unwrap() error { return e.Kind }

func relErr(kind error, format string, args ...any) error {
	return &RelationshipError{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// ValidateRelationship reports whether r may be stored under s: it is well
// formed, its resource type and relation exist (a relation, not a
// permission), its subject's kind is one the relation allows, and its
// caveat and expiration match that allowed type's `with` clause (as in
// SpiceDB, `with expiration` is required like a caveat is). The error is a
// *RelationshipError. It needs only the declarations, so it works on a
// schema from Declarations too.
func (s *Schema) ValidateRelationship(r tuple.Relationship) error {
	if err := r.Validate(); err != nil {
		return relErr(ErrNotAllowed, "%v", err)
	}
	d := s.Definitions[r.Resource.Type]
	if d == nil {
		return relErr(ErrUnknownType, "%s: resource type %q is not defined in the schema", r.Key(), r.Resource.Type)
	}
	rel := d.Relations[r.Relation]
	if rel == nil {
		return relErr(ErrUnknownRelation, "%s: type %q has no relation %q", r.Key(), r.Resource.Type, r.Relation)
	}
	if rel.IsPermission {
		return relErr(ErrNotAllowed, "%s: %q is a permission on %q; relationships can only be written to relations", r.Key(), r.Relation, r.Resource.Type)
	}
	if s.Definitions[r.Subject.Type] == nil {
		return relErr(ErrUnknownType, "%s: subject type %q is not defined in the schema", r.Key(), r.Subject.Type)
	}
	caveat := ""
	if r.Caveat != nil {
		caveat = r.Caveat.Name
		if s.Caveats[caveat] == nil {
			return relErr(ErrNotAllowed, "%s: caveat %q is not defined in the schema", r.Key(), caveat)
		}
	}
	wild := r.Subject.ID == tuple.Wildcard
	var kindOK bool
	for _, at := range rel.AllowedTypes {
		if at.Type != r.Subject.Type || at.Wildcard != wild || (!wild && at.Relation != r.Subject.Relation) {
			continue
		}
		kindOK = true
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
		return relErr(ErrNotAllowed, "%s: relation %s#%s does not allow subjects of type %s", r.Key(), r.Resource.Type, r.Relation, subject)
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
	return relErr(ErrNotAllowed, "%s: relation %s#%s does not allow %s %s; check the `with` clauses of its allowed types", r.Key(), r.Resource.Type, r.Relation, subject, with)
}
