package schema

import (
	"errors"
	"fmt"
	"iter"

	"github.com/ambit-authz/ambit/tuple"
)

// The kinds of ChangeError; test with errors.Is.
var (
	// ErrRemovedInUse: the new schema removes a definition or relation, or
	// turns a relation into a permission, that stored relationships still
	// use. Deleting them first is the way forward (SpiceDB answers
	// FailedPrecondition).
	ErrRemovedInUse = errors.New("the new schema removes a definition or relation in use")
	// ErrOrphaned: the new schema no longer allows a subject type
	// (wildcard, subject set, caveat, expiration) that stored relationships
	// use; the schema itself is the problem (SpiceDB answers
	// InvalidArgument).
	ErrOrphaned = errors.New("the new schema would orphan stored relationships")
)

// ChangeError is CheckChange's refusal: a message naming the change and a
// relationship that stops it; Unwrap gives the kind (ErrRemovedInUse or
// ErrOrphaned).
type ChangeError struct {
	Kind error
	Msg  string
}

func (e *ChangeError) Error() string { return e.Msg }
func (e *ChangeError) Unwrap() error { return e.Kind }

// CheckChange decides whether replacing prev by next leaves every stored
// relationship valid: none uses a definition or relation next removes (or
// turns into a permission), and every one of a subject type a relation no
// longer allows is still valid under next (ValidateRelationship: another
// allowed type may cover it). stored yields the stored relationships a
// filter matches. Both schemas may come from Declarations. It walks
// Removals in their fixed order and stops at the first refusal, a
// *ChangeError, so every caller (every raft replica) words it alike; an
// error of stored is returned as it is.
func CheckChange(prev, next *Schema, stored func(tuple.Filter) iter.Seq2[tuple.Relationship, error]) error {
	for _, rm := range Removals(prev, next) {
		f := tuple.Filter{ResourceType: rm.Definition, Relation: rm.Relation}
		if rm.Kind != RemovedTypes {
			for rel, err := range stored(f) {
				if err != nil {
					return err
				}
				return &ChangeError{Kind: ErrRemovedInUse, Msg: fmt.Sprintf("the new schema %s, but relationships still use it (e.g. %s); delete them first", rm.What(), rel.Key())}
			}
			continue
		}
		for _, at := range rm.Types {
			sf := &tuple.SubjectFilter{Type: at.Type}
			if at.Wildcard {
				sf.IDs = []string{tuple.Wildcard}
			} else {
				rel := at.Relation
				sf.Relation = &rel
			}
			f.Subject = sf
			for rel, err := range stored(f) {
				if err != nil {
					return err
				}
				if next.ValidateRelationship(rel) != nil {
					return &ChangeError{Kind: ErrOrphaned, Msg: fmt.Sprintf("the new schema no longer allows %s on relation %s#%s, but relationship %s uses it; delete or rewrite such relationships first", at, rm.Definition, rm.Relation, rel)}
				}
			}
		}
	}
	return nil
}
