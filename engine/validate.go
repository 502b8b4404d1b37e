package engine

import (
	"errors"
	"fmt"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// ValidateRelationship checks a relationship against the schema before it is
// written, with schema.(*Schema).ValidateRelationship (which owns the rule),
// and gives the refusal the engine's kind: ErrUnknownType,
// ErrUnknownRelation or ErrInvalidRequest.
func ValidateRelationship(s *schema.Schema, r tuple.Relationship) error {
	err := s.ValidateRelationship(r)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, schema.ErrUnknownType):
		return fmt.Errorf("%w: %w", ErrUnknownType, err)
	case errors.Is(err, schema.ErrUnknownRelation):
		return fmt.Errorf("%w: %w", ErrUnknownRelation, err)
	}
	return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
}
