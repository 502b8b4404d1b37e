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
	// relation's allowed types do not list). The three kinds below are
	// ErrNotAllowed too.
	ErrNotAllowed = errors.New("relationship not allowed by the schema")
	// ErrWriteToPermission: the relation is a permission.
	ErrWriteToPermission = errors.New("relationship on a permission")
	// ErrSubjectType: the relation allows no subject of this kind, or not
	// with this caveat and expiration.
	ErrSubjectType = errors.New("subject type not allowed")
	// ErrUnknownCaveat: the schema defines no caveat of that name.
	ErrUnknownCaveat = errors.New("unknown caveat")
)

// RelationshipError says why a relationship is not valid under a schema.
// Its message names the relationship and what is wrong, without the kind's
// text; Unwrap gives the kind (ErrUnknownType, ErrUnknownRelation,
// ErrNotAllowed or one of its three finer kinds, with ErrNotAllowed). The
// other fields name what is at fault where the kind has it, for error
// details: the type (ErrUnknownType: the undefined one), the relation, the
// subject kind as an allowed type writes it (`user:*`, `group#member`,
// `user with cav`) and the caveat.
type RelationshipError struct {
	Kind       error
	Msg        string
	Definition string
	Relation   string
	Subject    string
	Caveat     string
}

func (e *RelationshipError) Error() string { return e.Msg }

func (e *RelationshipError) Unwrap() []error {
	switch e.Kind {
	case ErrWriteToPermission, ErrSubjectType, ErrUnknownCaveat:
		return []error{e.Kind, ErrNotAllowed}
	}
	return []error{e.Kind}
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
		return &RelationshipError{Kind: ErrNotAllowed, Msg: err.Error()}
	}
	fail := func(kind error, format string, args ...any) *RelationshipError {
		return &RelationshipError{Kind: kind, Msg: fmt.Sprintf(format, args...), Definition: r.Resource.Type, Relation: r.Relation}
	}
	d := s.Definitions[r.Resource.Type]
	if d == nil {
		return fail(ErrUnknownType, "%s: resource type %q is not defined in the schema", r.Key(), r.Resource.Type)
	}
	rel := d.Relations[r.Relation]
	if rel == nil {
		return fail(ErrUnknownRelation, "%s: type %q has no relation %q", r.Key(), r.Resource.Type, r.Relation)
	}
	if rel.IsPermission {
		return fail(ErrWriteToPermission, "%s: %q is a permission on %q; relationships can only be written to relations", r.Key(), r.Relation, r.Resource.Type)
	}
	if s.Definitions[r.Subject.Type] == nil {
		e := fail(ErrUnknownType, "%s: subject type %q is not defined in the schema", r.Key(), r.Subject.Type)
		e.Definition = r.Subject.Type
		return e
	}
	caveat := ""
	if r.Caveat != nil {
		caveat = r.Caveat.Name
		if s.Caveats[caveat] == nil {
			e := fail(ErrUnknownCaveat, "%s: caveat %q is not defined in the schema", r.Key(), caveat)
			e.Caveat = caveat
			return e
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
	used := AllowedType{Type: r.Subject.Type, Wildcard: wild, Relation: r.Subject.Relation, Caveat: caveat, Expiration: !r.Expiration.IsZero()}
	if wild {
		used.Relation = ""
	}
	kind := AllowedType{Type: used.Type, Wildcard: used.Wildcard, Relation: used.Relation}.String()
	if !kindOK {
		e := fail(ErrSubjectType, "%s: relation %s#%s does not allow subjects of type %s", r.Key(), r.Resource.Type, r.Relation, kind)
		e.Subject, e.Caveat = used.String(), caveat
		return e
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
	e := fail(ErrSubjectType, "%s: relation %s#%s does not allow %s %s; check the `with` clauses of its allowed types", r.Key(), r.Resource.Type, r.Relation, kind, with)
	e.Subject, e.Caveat = used.String(), caveat
	return e
}
