// Package v1pb translates between the authzed v1 API's messages and ambit's
// typed vocabulary (packages tuple and engine): object and subject
// references, relationships, caveat context, relationship filters,
// permissionships, expanded trees, and the consistency requirement a client
// names in text.
//
// It is the one place that translation is written. The gRPC server (api),
// the CLI (cmd/ambit), the remote validation runner (validation/remote) and
// the load generator (bench/harness) all use it, so a value is read and
// written the same way at every edge.
//
// One behaviour for bad input: a value that does not translate is an
// *Error naming the field by its path in the request (as
// `relationship.subject.object.object_id`), never a silent drop or a
// best-effort guess. Translations from ambit to v1 fail only where the v1
// message cannot hold the value (a caveat context that is not JSON).
//
// Cursors are not here: ambit's cursors are sealed with the server's key
// (api/token.go), so a client passes v1.Cursor through untouched.
package v1pb

import (
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/tuple"
)

// ErrInvalid is wrapped by every *Error: the value does not translate.
var ErrInvalid = errors.New("invalid value")

// Error is a value that does not translate. Field is the value's path in the
// request (empty where the caller named none); the message says what is
// wrong with it. It wraps ErrInvalid and, where there is one, the cause
// (tuple.ErrInvalidID, ...).
type Error struct {
	Field string
	msg   string
	cause error
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns ErrInvalid and the cause.
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrInvalid}
	}
	return []error{ErrInvalid, e.cause}
}

// fieldErr is a *Error about field: "field: cause".
func fieldErr(field string, cause error) *Error {
	return &Error{Field: field, msg: field + ": " + cause.Error(), cause: cause}
}

// fieldMsg is a *Error about field with a whole message of its own.
func fieldMsg(field, format string, args ...any) *Error {
	return &Error{Field: field, msg: fmt.Sprintf(format, args...)}
}

// ObjectFromV1 reads an object reference; field names it in errors.
func ObjectFromV1(o *v1.ObjectReference, field string) (tuple.ObjectRef, error) {
	if o == nil {
		return tuple.ObjectRef{}, fieldMsg(field, "%s is required", field)
	}
	if err := tuple.ValidateType(o.GetObjectType()); err != nil {
		return tuple.ObjectRef{}, fieldErr(field+".object_type", err)
	}
	if err := tuple.ValidateID(o.GetObjectId()); err != nil {
		return tuple.ObjectRef{}, fieldErr(field+".object_id", err)
	}
	return tuple.ObjectRef{Type: o.GetObjectType(), ID: o.GetObjectId()}, nil
}

// SubjectFromV1 reads a subject reference: an object, a subject set or a
// wildcard. SpiceDB's `...` relation means none.
func SubjectFromV1(s *v1.SubjectReference, field string) (tuple.SubjectRef, error) {
	if s == nil || s.GetObject() == nil {
		return tuple.SubjectRef{}, fieldMsg(field+".object", "%s.object is required", field)
	}
	o := s.GetObject()
	if err := tuple.ValidateType(o.GetObjectType()); err != nil {
		return tuple.SubjectRef{}, fieldErr(field+".object.object_type", err)
	}
	if err := tuple.ValidateSubjectID(o.GetObjectId()); err != nil {
		return tuple.SubjectRef{}, fieldErr(field+".object.object_id", err)
	}
	sub := tuple.SubjectRef{Type: o.GetObjectType(), ID: o.GetObjectId()}
	if r := s.GetOptionalRelation(); r != "" && r != tuple.Ellipsis {
		if err := tuple.ValidateRelation(r); err != nil {
			return tuple.SubjectRef{}, fieldErr(field+".optional_relation", err)
		}
		if sub.IsWildcard() {
			return tuple.SubjectRef{}, fieldMsg(field, "%s: a wildcard subject (%s:*) cannot have a relation", field, sub.Type)
		}
		sub.Relation = r
	}
	return sub, nil
}

// ObjectToV1 writes an object reference.
func ObjectToV1(o tuple.ObjectRef) *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: o.Type, ObjectId: o.ID}
}

// SubjectToV1 writes a subject reference.
func SubjectToV1(s tuple.SubjectRef) *v1.SubjectReference {
	return &v1.SubjectReference{Object: ObjectToV1(s.Object()), OptionalRelation: s.Relation}
}

// ContextFromV1 reads a caveat context as JSON values (numbers are float64).
// An absent or empty context is nil.
func ContextFromV1(s *structpb.Struct) map[string]any {
	if s == nil || len(s.GetFields()) == 0 {
		return nil
	}
	return s.AsMap()
}

// ContextToV1 writes a caveat context; an empty one is nil. A value that is
// not JSON (a channel, a string that is not valid UTF-8, ...) is an error
// naming field. Integers become doubles, rounded where a double cannot hold
// them exactly.
func ContextToV1(m map[string]any, field string) (*structpb.Struct, error) {
	if len(m) == 0 {
		return nil, nil
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil, fieldErr(field, err)
	}
	return s, nil
}

// RelationshipFromV1 reads a relationship with its optional caveat and
// expiration, validating every part.
func RelationshipFromV1(r *v1.Relationship, field string) (tuple.Relationship, error) {
	if r == nil {
		return tuple.Relationship{}, fieldMsg(field, "%s is required", field)
	}
	res, err := ObjectFromV1(r.GetResource(), field+".resource")
	if err != nil {
		return tuple.Relationship{}, err
	}
	if err := tuple.ValidateRelation(r.GetRelation()); err != nil {
		return tuple.Relationship{}, fieldErr(field+".relation", err)
	}
	sub, err := SubjectFromV1(r.GetSubject(), field+".subject")
	if err != nil {
		return tuple.Relationship{}, err
	}
	rel := tuple.Relationship{Resource: res, Relation: r.GetRelation(), Subject: sub}
	if c := r.GetOptionalCaveat(); c != nil {
		if err := tuple.ValidateRelation(c.GetCaveatName()); err != nil {
			f := field + ".optional_caveat.caveat_name"
			return tuple.Relationship{}, &Error{Field: f, cause: tuple.ErrCaveat,
				msg: fmt.Sprintf("%s %q: must match [a-z][a-z0-9_]{1,62}[a-z0-9]", f, c.GetCaveatName())}
		}
		rel.Caveat = &tuple.Caveat{Name: c.GetCaveatName(), Context: ContextFromV1(c.GetContext())}
	}
	if e := r.GetOptionalExpiresAt(); e != nil {
		if err := e.CheckValid(); err != nil {
			return tuple.Relationship{}, fieldErr(field+".optional_expires_at", err)
		}
		rel.Expiration = e.AsTime()
	}
	return rel, nil
}

// RelationshipToV1 writes a relationship. The only error is a caveat
// context that a v1 message cannot hold.
func RelationshipToV1(r tuple.Relationship) (*v1.Relationship, error) {
	out := &v1.Relationship{Resource: ObjectToV1(r.Resource), Relation: r.Relation, Subject: SubjectToV1(r.Subject)}
	if r.Caveat != nil {
		ctx, err := ContextToV1(r.Caveat.Context, "caveat context of "+r.Key().String())
		if err != nil {
			return nil, err
		}
		out.OptionalCaveat = &v1.ContextualizedCaveat{CaveatName: r.Caveat.Name, Context: ctx}
	}
	if !r.Expiration.IsZero() {
		out.OptionalExpiresAt = timestamppb.New(r.Expiration.UTC())
	}
	return out, nil
}

// FilterFromV1 reads a RelationshipFilter. A nil filter is an error when
// required; otherwise it is the empty filter, which matches everything.
func FilterFromV1(f *v1.RelationshipFilter, field string, required bool) (tuple.Filter, error) {
	if f == nil {
		if required {
			return tuple.Filter{}, fieldMsg(field, "%s is required", field)
		}
		return tuple.Filter{}, nil
	}
	var out tuple.Filter
	if t := f.GetResourceType(); t != "" {
		if err := tuple.ValidateType(t); err != nil {
			return tuple.Filter{}, fieldErr(field+".resource_type", err)
		}
		out.ResourceType = t
	}
	if id := f.GetOptionalResourceId(); id != "" {
		if err := tuple.ValidateID(id); err != nil {
			return tuple.Filter{}, fieldErr(field+".optional_resource_id", err)
		}
		out.ResourceIDs = []string{id}
	}
	if p := f.GetOptionalResourceIdPrefix(); p != "" {
		if out.ResourceIDs != nil {
			return tuple.Filter{}, fieldMsg(field, "%s: optional_resource_id and optional_resource_id_prefix cannot both be set", field)
		}
		out.ResourceIDPrefix = p
	}
	if r := f.GetOptionalRelation(); r != "" {
		if err := tuple.ValidateRelation(r); err != nil {
			return tuple.Filter{}, fieldErr(field+".optional_relation", err)
		}
		out.Relation = r
	}
	if sf := f.GetOptionalSubjectFilter(); sf != nil {
		s, err := subjectFilterFromV1(sf, field+".optional_subject_filter")
		if err != nil {
			return tuple.Filter{}, err
		}
		out.Subject = s
	}
	return out, nil
}

func subjectFilterFromV1(sf *v1.SubjectFilter, field string) (*tuple.SubjectFilter, error) {
	if err := tuple.ValidateType(sf.GetSubjectType()); err != nil {
		return nil, fieldErr(field+".subject_type", err)
	}
	s := &tuple.SubjectFilter{Type: sf.GetSubjectType()}
	if id := sf.GetOptionalSubjectId(); id != "" {
		if err := tuple.ValidateSubjectID(id); err != nil {
			return nil, fieldErr(field+".optional_subject_id", err)
		}
		s.IDs = []string{id}
	}
	if rf := sf.GetOptionalRelation(); rf != nil {
		// A relation filter that is present matches that relation; present
		// and empty (or `...`) matches only subjects without one.
		r := rf.GetRelation()
		if r == tuple.Ellipsis {
			r = ""
		}
		if r != "" {
			if err := tuple.ValidateRelation(r); err != nil {
				return nil, fieldErr(field+".optional_relation", err)
			}
		}
		s.Relation = &r
	}
	return s, nil
}

// FilterToV1 writes a filter. A filter with more than one resource or
// subject id has no v1 form and is an error.
func FilterToV1(f tuple.Filter) (*v1.RelationshipFilter, error) {
	out := &v1.RelationshipFilter{ResourceType: f.ResourceType, OptionalResourceIdPrefix: f.ResourceIDPrefix, OptionalRelation: f.Relation}
	switch len(f.ResourceIDs) {
	case 0:
	case 1:
		out.OptionalResourceId = f.ResourceIDs[0]
	default:
		return nil, fieldMsg("resource ids", "a v1 filter names at most one resource id, not %d", len(f.ResourceIDs))
	}
	if s := f.Subject; s != nil {
		sf := &v1.SubjectFilter{SubjectType: s.Type}
		switch len(s.IDs) {
		case 0:
		case 1:
			sf.OptionalSubjectId = s.IDs[0]
		default:
			return nil, fieldMsg("subject ids", "a v1 filter names at most one subject id, not %d", len(s.IDs))
		}
		if s.Relation != nil {
			sf.OptionalRelation = &v1.SubjectFilter_RelationFilter{Relation: *s.Relation}
		}
		out.OptionalSubjectFilter = sf
	}
	return out, nil
}

// Consistency modes as a client names them in text (ParseConsistency).
const (
	MinimizeLatency = "latency"
	FullyConsistent = "full"
	AtLeastAsFresh  = "fresh"
	AtExactSnapshot = "exact"
)

// ParseConsistency reads a consistency requirement from text: "latency"
// (or "minimize_latency", or empty), "full", "fresh:ZEDTOKEN" or
// "exact:ZEDTOKEN".
func ParseConsistency(s string) (*v1.Consistency, error) {
	mode, tok, hasTok := strings.Cut(s, ":")
	needTok := mode == AtLeastAsFresh || mode == AtExactSnapshot
	if hasTok != needTok || (needTok && tok == "") {
		return nil, fieldMsg("consistency", "consistency %q: want latency, full, fresh:ZEDTOKEN or exact:ZEDTOKEN", s)
	}
	switch mode {
	case "", MinimizeLatency, "minimize_latency":
		return &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}, nil
	case FullyConsistent:
		return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}, nil
	case AtLeastAsFresh:
		return Fresh(&v1.ZedToken{Token: tok}), nil
	case AtExactSnapshot:
		return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: tok}}}, nil
	}
	return nil, fieldMsg("consistency", "consistency %q: want latency, full, fresh:ZEDTOKEN or exact:ZEDTOKEN", s)
}

// Fresh is the consistency at_least_as_fresh with tok.
func Fresh(tok *v1.ZedToken) *v1.Consistency {
	return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: tok}}
}

// ParseObject reads an object reference from text (`document:readme`).
// Text that does not parse is tuple's parse error, not an *Error.
func ParseObject(s string) (*v1.ObjectReference, error) {
	o, err := tuple.ParseObject(s)
	if err != nil {
		return nil, err
	}
	return ObjectToV1(o), nil
}

// ParseSubject reads a subject reference from text (`user:ana`,
// `group:eng#member`, `user:*`). Text that does not parse is tuple's parse
// error, not an *Error.
func ParseSubject(s string) (*v1.SubjectReference, error) {
	sub, err := tuple.ParseSubject(s)
	if err != nil {
		return nil, err
	}
	return SubjectToV1(sub), nil
}

// ParseContext reads a caveat context from JSON text; empty text is nil.
// field names it in errors.
func ParseContext(s, field string) (*structpb.Struct, error) {
	if s == "" {
		return nil, nil
	}
	m, err := tuple.ParseContext([]byte(s))
	if err != nil {
		return nil, fieldErr(field, err)
	}
	return ContextToV1(m, field)
}

// PermissionshipToV1 writes a check's answer.
func PermissionshipToV1(p engine.Permissionship) v1.CheckPermissionResponse_Permissionship {
	switch p {
	case engine.HasPermission:
		return v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION
	case engine.ConditionalPermission:
		return v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION
	}
	return v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION
}

// PermissionshipFromV1 reads a check's answer; UNSPECIFIED or an unknown
// value is an error.
func PermissionshipFromV1(p v1.CheckPermissionResponse_Permissionship) (engine.Permissionship, error) {
	switch p {
	case v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION:
		return engine.HasPermission, nil
	case v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION:
		return engine.NoPermission, nil
	case v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		return engine.ConditionalPermission, nil
	}
	return engine.NoPermission, fieldMsg("permissionship", "permissionship: %s is not an answer", p)
}

// LookupPermissionshipToV1 writes a lookup result's permissionship (a
// lookup returns only subjects or resources that have it, perhaps
// conditionally).
func LookupPermissionshipToV1(p engine.Permissionship) v1.LookupPermissionship {
	if p == engine.ConditionalPermission {
		return v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION
	}
	return v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION
}

// LookupPermissionshipFromV1 reads a lookup result's permissionship;
// UNSPECIFIED or an unknown value is an error.
func LookupPermissionshipFromV1(p v1.LookupPermissionship) (engine.Permissionship, error) {
	switch p {
	case v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION:
		return engine.HasPermission, nil
	case v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		return engine.ConditionalPermission, nil
	}
	return engine.NoPermission, fieldMsg("permissionship", "permissionship: %s is not a lookup result", p)
}

// ExpandToV1 writes an expanded tree.
func ExpandToV1(n *engine.ExpandNode) *v1.PermissionRelationshipTree {
	t := &v1.PermissionRelationshipTree{ExpandedObject: ObjectToV1(n.Object), ExpandedRelation: n.Relation}
	if n.Kind == engine.ExpandLeaf {
		leaf := &v1.DirectSubjectSet{}
		for _, s := range n.Subjects {
			leaf.Subjects = append(leaf.Subjects, SubjectToV1(s.Subject))
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
		set.Children = append(set.Children, ExpandToV1(c))
	}
	t.TreeType = &v1.PermissionRelationshipTree_Intermediate{Intermediate: set}
	return t
}

// RecvAll reads a server stream of the v1 API to its end, calling fn with
// each message; the first error (of the stream or of fn) ends it.
func RecvAll[T any](recv func() (T, error), fn func(T) error) error {
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
}
