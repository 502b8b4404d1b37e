package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/internal/v1pb"
	"github.com/ambit-authz/ambit/raft"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/schema/caveats"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// invalidf, preconditionf ... build a gRPC status with a message the user can
// act on. Handlers use them for problems found at the edge; errors from the
// engine, store and raft go through toStatus.
func invalidf(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// tooMany is an InvalidArgument status for a request over one of its count
// limits, with SpiceDB's ErrorInfo reason and metadata (countKey: the
// count, maxKey: the limit).
func tooMany(reason v1.ErrorReason, countKey string, count int, maxKey string, limit int, format string, args ...any) error {
	return withSpiceDBReason(status.New(codes.InvalidArgument, fmt.Sprintf(format, args...)), reason,
		map[string]string{countKey: strconv.Itoa(count), maxKey: strconv.Itoa(limit)})
}

// withSpiceDBReason attaches SpiceDB's ErrorInfo to st.
func withSpiceDBReason(st *status.Status, reason v1.ErrorReason, meta map[string]string) error {
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason.String(), Domain: SpiceDBDomain, Metadata: meta}); err == nil {
		st = d
	}
	return st.Err()
}

// limitError is a request's limit above the server's maximum (SpiceDB's
// EXCEEDS_MAXIMUM_ALLOWABLE_LIMIT): InvalidArgument naming the field, the
// maximum and the flag that sets it.
type limitError struct {
	field string
	limit int64
	max   int
	flag  string
}

func (e *limitError) Error() string {
	return fmt.Sprintf("%s: %d is more than the maximum of %d (%s); page with a smaller limit and the cursor", e.field, e.limit, e.max, e.flag)
}

func preconditionf(format string, args ...any) error {
	return status.Errorf(codes.FailedPrecondition, format, args...)
}

// ErrorInfo reasons (domain ErrorDomain) that tell a client what to do
// after a write failed for availability (README, "Retrying writes"):
const (
	// ErrorDomain is the domain of ambit's google.rpc.ErrorInfo details.
	ErrorDomain = "ambit.authz"
	// ReasonNotProposed: nothing was proposed (no leader, the leader could
	// not be reached, the request never left this node). Retrying the same
	// request is safe.
	ReasonNotProposed = "NOT_PROPOSED"
	// ReasonOutcomeUnknown: the write was proposed or sent to the leader and
	// may or may not commit (a deadline passed, leadership moved, the
	// connection was cut). Retry only what is idempotent (TOUCH, DELETE,
	// WriteSchema) or read first; a CREATE retried may fail AlreadyExists
	// because the first attempt committed.
	ReasonOutcomeUnknown = "OUTCOME_UNKNOWN"
)

// toStatus maps an error from the engine, store, raft or this package to a
// gRPC status. It is the only place where domain errors meet gRPC codes.
// Unexpected errors become Internal with a generic message; the detail is
// logged, never sent.
func toStatus(log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	msg := err.Error()
	var list schema.ErrorList
	var budget *engine.BudgetError
	switch {
	// A request over one of its budgets; the message names the budget and
	// its limit. Checked first: the budget, not what was being evaluated
	// when it ran out, is the answer.
	case errors.As(err, &budget), errors.Is(err, caveats.ErrCostLimit):
		code = codes.ResourceExhausted

	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled

	// Request problems.
	case errors.Is(err, errToken), errors.Is(err, errCursor), errors.Is(err, v1pb.ErrInvalid):
		code = codes.InvalidArgument
	case errors.As(err, new(*limitError)):
		code = codes.InvalidArgument
	case errors.As(err, &list):
		code = codes.InvalidArgument
	case errors.Is(err, engine.ErrInvalidRequest), errors.Is(err, engine.ErrCaveatContext),
		errors.Is(err, store.ErrInvalid), errors.Is(err, raft.ErrBadCommand), errors.Is(err, raft.ErrInvalidCommand),
		errors.Is(err, tuple.ErrSyntax), errors.Is(err, tuple.ErrInvalidID), errors.Is(err, tuple.ErrInvalidTyp),
		errors.Is(err, tuple.ErrInvalidRel), errors.Is(err, tuple.ErrCaveat), errors.Is(err, tuple.ErrExpiration):
		code = codes.InvalidArgument
	case errors.Is(err, store.ErrTooLarge):
		code = codes.InvalidArgument

	// A schema that would orphan stored relationships is itself wrong, as
	// in SpiceDB; one removing what they use waits for their deletion.
	case errors.Is(err, raft.ErrSchemaOrphans):
		code = codes.InvalidArgument

	// Requests that are well formed but do not fit the schema or the data.
	case errors.Is(err, engine.ErrUnknownType), errors.Is(err, engine.ErrUnknownRelation), errors.Is(err, engine.ErrUnreachable):
		code = codes.FailedPrecondition
	case errors.Is(err, store.ErrPreconditionFailed), errors.Is(err, raft.ErrSchemaRefused), errors.Is(err, raft.ErrSchemaChanged):
		code = codes.FailedPrecondition
	case errors.Is(err, store.ErrRevisionCompacted):
		code = codes.FailedPrecondition
		msg += " (the snapshot is older than the garbage-collection window; retry with a newer ZedToken or another consistency mode)"
	case errors.Is(err, store.ErrFutureRevision):
		code = codes.FailedPrecondition
		msg += " (the ZedToken names a revision this node has not applied)"
	case errors.Is(err, store.ErrAlreadyExists):
		code = codes.AlreadyExists
	case errors.Is(err, engine.ErrMaxDepth), errors.Is(err, engine.ErrTooMany):
		code = codes.ResourceExhausted

	// Availability.
	case errors.Is(err, raft.ErrTimeout):
		code = codes.DeadlineExceeded
	case errors.Is(err, raft.ErrNoLeader), errors.Is(err, raft.ErrNotLeader),
		errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrForward),
		errors.Is(err, raft.ErrClosed), errors.Is(err, raft.ErrHalted), errors.Is(err, store.ErrClosed),
		errors.Is(err, raft.ErrDiskFault):
		code = codes.Unavailable
	}
	// What a client may do next (raft/errors.go documents each error's
	// retry meaning). Unknown wins: an error that wraps both is unknown.
	reason := ""
	switch {
	case errors.Is(err, raft.ErrTimeout), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrForward),
		errors.Is(err, raft.ErrClosed), errors.Is(err, raft.ErrHalted), errors.Is(err, store.ErrClosed):
		reason = ReasonOutcomeUnknown
	case errors.Is(err, raft.ErrNoLeader), errors.Is(err, raft.ErrNotLeader):
		reason = ReasonNotProposed
	}
	if code == codes.Internal {
		log.Error("internal error", "method", method, "err", err)
		msg = "internal error; the server log has the details"
	}
	st := status.New(code, msg)
	var details []protoadapt.MessageV1
	if reason != "" {
		details = append(details, &errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain})
	}
	if info := spiceDBReason(err); info != nil {
		details = append(details, info)
	}
	if len(details) > 0 {
		if d, derr := st.WithDetails(details...); derr == nil {
			st = d
		}
	}
	return st.Err()
}

// SpiceDBDomain is the domain of the google.rpc.ErrorInfo details that carry
// SpiceDB's reasons (authzed-go's v1.ErrorReason), which SpiceDB's clients
// branch on.
const SpiceDBDomain = "authzed.com"

// spiceDBReasons are SpiceDB's reasons for ambit's sentinel errors, first
// match wins (after the schema parse errors, the relationship refusals of
// schema.RelationshipError and limitError, which carry metadata). Kinds
// that send no SpiceDB reason, as SpiceDB has none that fits: budgets and
// caveat cost (ResourceExhausted), deadlines, malformed ZedTokens, tuple
// syntax, store.ErrInvalid and ErrTooLarge, raft's command errors, the
// schema guard's refusals, ErrSchemaChanged, compacted or future
// revisions, engine.ErrTooMany and ErrUnreachable, and availability (which
// carries ambit's own NOT_PROPOSED or OUTCOME_UNKNOWN).
var spiceDBReasons = []struct {
	err    error
	reason v1.ErrorReason
}{
	{engine.ErrUnknownType, v1.ErrorReason_ERROR_REASON_UNKNOWN_DEFINITION},
	{engine.ErrUnknownRelation, v1.ErrorReason_ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION},
	{store.ErrPreconditionFailed, v1.ErrorReason_ERROR_REASON_WRITE_OR_DELETE_PRECONDITION_FAILURE},
	{store.ErrAlreadyExists, v1.ErrorReason_ERROR_REASON_ATTEMPT_TO_RECREATE_RELATIONSHIP},
	{engine.ErrMaxDepth, v1.ErrorReason_ERROR_REASON_MAXIMUM_DEPTH_EXCEEDED},
	{engine.ErrCaveatContext, v1.ErrorReason_ERROR_REASON_CAVEAT_PARAMETER_TYPE_ERROR},
	{errCursor, v1.ErrorReason_ERROR_REASON_INVALID_CURSOR},
}

// spiceDBReason is the ErrorInfo SpiceDB would attach to err, or nil where
// SpiceDB has no reason for it.
func spiceDBReason(err error) *errdetails.ErrorInfo {
	info := func(r v1.ErrorReason, meta map[string]string) *errdetails.ErrorInfo {
		return &errdetails.ErrorInfo{Reason: r.String(), Domain: SpiceDBDomain, Metadata: meta}
	}
	if list := (schema.ErrorList)(nil); errors.As(err, &list) && len(list) > 0 {
		// SpiceDB's positions are 0-indexed; ours print 1-indexed.
		p := list[0].Pos
		meta := map[string]string{"start_line_number": strconv.Itoa(max(p.Line-1, 0)), "start_column_position": strconv.Itoa(max(p.Col-1, 0))}
		if src := list[0].Source; src != "" {
			meta["source_code"] = src
		}
		return info(v1.ErrorReason_ERROR_REASON_SCHEMA_PARSE_ERROR, meta)
	}
	if re := (*schema.RelationshipError)(nil); errors.As(err, &re) {
		switch {
		case errors.Is(re, schema.ErrUnknownType):
			return info(v1.ErrorReason_ERROR_REASON_UNKNOWN_DEFINITION, map[string]string{"definition_name": re.Definition})
		case errors.Is(re, schema.ErrUnknownRelation):
			return info(v1.ErrorReason_ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION,
				map[string]string{"definition_name": re.Definition, "relation_or_permission_name": re.Relation})
		case errors.Is(re, schema.ErrWriteToPermission):
			return info(v1.ErrorReason_ERROR_REASON_CANNOT_UPDATE_PERMISSION, map[string]string{"definition_name": re.Definition, "permission_name": re.Relation})
		case errors.Is(re, schema.ErrSubjectType):
			return info(v1.ErrorReason_ERROR_REASON_INVALID_SUBJECT_TYPE,
				map[string]string{"definition_name": re.Definition, "relation_name": re.Relation, "subject_type": re.Subject})
		case errors.Is(re, schema.ErrUnknownCaveat):
			return info(v1.ErrorReason_ERROR_REASON_UNKNOWN_CAVEAT, map[string]string{"caveat_name": re.Caveat})
		}
	}
	if le := (*limitError)(nil); errors.As(err, &le) {
		return info(v1.ErrorReason_ERROR_REASON_EXCEEDS_MAXIMUM_ALLOWABLE_LIMIT,
			map[string]string{"limit_provided": strconv.FormatInt(le.limit, 10), "maximum_limit_allowed": strconv.Itoa(le.max)})
	}
	for _, r := range spiceDBReasons {
		if errors.Is(err, r.err) {
			return info(r.reason, nil)
		}
	}
	return nil
}
