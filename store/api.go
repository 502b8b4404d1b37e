// Package store is ambit's tuple store: badger/v4 in managed mode, where every
// write batch commits at a caller-given revision (the raft log index) and
// readers open snapshots at any revision inside the GC window. Key encoding
// lives in keys.go alone and is documented byte by byte in FORMAT.md.
//
// The store is the only package that imports badger. The engine reads through
// its own Reader interface, which *Snapshot implements.
package store

import (
	"errors"

	"github.com/ambit-authz/ambit/tuple"
)

// ErrRefused is the one test for "the write itself was refused": every
// domain failure (ErrAlreadyExists, ErrPreconditionFailed, ErrTooLarge,
// ErrInvalid, and refusals other packages declare with NewRefusal) satisfies
// errors.Is(err, ErrRefused). A refused write consumed its revision and wrote
// nothing else; the store is healthy and a replicated state machine goes on
// applying. Any other error from a write is a failure of the store itself.
var ErrRefused = errors.New("write refused")

// refusal is a sentinel error that is a refusal (errors.Is(e, ErrRefused)).
type refusal struct{ msg string }

func (e *refusal) Error() string        { return e.msg }
func (e *refusal) Is(target error) bool { return target == ErrRefused }

// NewRefusal returns a new sentinel error that is a refusal: errors.Is(e,
// ErrRefused) holds for it and for every error wrapping it.
func NewRefusal(msg string) error { return &refusal{msg: msg} }

// IsRefusal reports whether err refuses a write (errors.Is(err, ErrRefused)).
func IsRefusal(err error) bool { return errors.Is(err, ErrRefused) }

// Errors. Domain failures are returned wrapped with detail; test with
// errors.Is. The first four are refusals (see ErrRefused).
var (
	// ErrAlreadyExists: a CREATE update named a relationship that exists.
	ErrAlreadyExists = NewRefusal("relationship already exists")
	// ErrPreconditionFailed: a MUST_MATCH filter matched nothing or a
	// MUST_NOT_MATCH filter matched something.
	ErrPreconditionFailed = NewRefusal("precondition failed")
	// ErrTooLarge: a request exceeds a limit of the log format (see
	// FORMAT.md, "Limits"), or a delete matched more than its own limit.
	ErrTooLarge = NewRefusal("request too large")
	// ErrInvalid: a relationship or filter is malformed.
	ErrInvalid = NewRefusal("invalid request")
	// ErrRevisionCompacted: the requested revision is older than the GC window.
	ErrRevisionCompacted = errors.New("revision has been garbage-collected")
	// ErrFutureRevision: the requested revision has not been applied yet.
	ErrFutureRevision = errors.New("revision is newer than the store's applied revision")
	// ErrStaleWrite: a write's revision is not greater than the applied revision.
	ErrStaleWrite = errors.New("write revision is not after the applied revision")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store is closed")
)

// Op is what an Update does.
type Op uint8

const (
	// OpCreate inserts; the batch fails with ErrAlreadyExists if it exists.
	OpCreate Op = iota + 1
	// OpTouch inserts or replaces (caveat and expiration are overwritten).
	OpTouch
	// OpDelete removes; a no-op if absent. Only the Key of Rel matters.
	OpDelete
)

func (o Op) String() string {
	switch o {
	case OpCreate:
		return "CREATE"
	case OpTouch:
		return "TOUCH"
	case OpDelete:
		return "DELETE"
	}
	return "UNKNOWN"
}

// Update is one change in a write batch.
type Update struct {
	Op  Op
	Rel tuple.Relationship
}

// Precondition must hold, against the same snapshot the batch applies to,
// for the batch to apply.
type Precondition struct {
	MustMatch bool // true: MUST_MATCH; false: MUST_NOT_MATCH
	Filter    tuple.Filter
}

// Change is one committed revision in the change feed (Watch).
type Change struct {
	Revision tuple.Revision
	// Updates are the relationship changes of the revision, OpTouch for a
	// write (create or touch) and OpDelete for a delete, in commit order.
	Updates []Update
	// Schema is the new schema text when the revision wrote one.
	Schema *string
	// More is set by ChangePieces on every piece of a revision but its last.
	More bool
}
