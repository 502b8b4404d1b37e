package api

import (
	"context"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/schema"
)

// Tracing: with_tracing on CheckPermission and CheckBulkPermissions.
//
// A traced check is answered by engine.View.CheckWithTrace (a cold check: it
// bypasses the result cache), and its engine.Trace tree becomes the
// response's debug_trace the way SpiceDB fills it. Untraced checks never
// reach this file.
//
//   - debug_trace.schema_used is the canonical text of the schema the check
//     was evaluated against; debug_trace.check is the root sub-problem.
//   - Each engine.Trace node, a sub-problem "is the subject in
//     resource#relation?", becomes a CheckDebugTrace with its resource,
//     permission, permission_type (PERMISSION or RELATION), the check's
//     subject, result, duration and sub_problems. sub_problems is always set
//     on a sub-problem, possibly empty: an empty list with HAS_PERMISSION is
//     a subject set found as itself (group:eng#member checked for
//     group:eng#member), with NO_PERMISSION a branch that found nothing.
//   - Each relationship a node relied on (engine.TracedRelationship: one that
//     names the subject or its wildcard, a caveated subject set, a caveated
//     tupleset relationship of an arrow, any tupleset relationship of an
//     .all() arrow) becomes a leaf child of that node, listed before its
//     sub-problems. Its resource, permission (the
//     relationship's relation, permission_type RELATION) and subject are the
//     relationship's own, so the subject may be user:* or group:eng#member
//     rather than the check's subject; its result is the outcome of its
//     caveat (HAS_PERMISSION without one); its resolution is
//     was_cached_result=false instead of sub_problems, which is how a client
//     tells a relationship from a sub-problem (zed prints the subject under
//     it); optional_expires_at is its expiration.
//   - caveat_evaluation_info on a caveated relationship leaf: the caveat's
//     name and expression, the result (RESULT_TRUE, RESULT_FALSE, or
//     RESULT_MISSING_SOME_CONTEXT with the missing parameters in
//     partial_caveat_info) and the context it was evaluated with (the
//     relationship's context over the request's, declared parameters only).
//     A CONDITIONAL_PERMISSION sub-problem evaluated no caveat itself; it
//     carries a summary (RESULT_MISSING_SOME_CONTEXT and the missing
//     parameters, no name or expression), because SpiceDB clients such as zed
//     read the caveat info of every conditional node.
//   - optional_expires_at on a sub-problem that is not NO_PERMISSION is the
//     earliest expiration among the traced relationships it relied on.
//   - was_cached_result is never true, and trace_operation_id and source are
//     left empty.

// tracedCheck answers req with CheckWithTrace and converts its trace; the
// trace is nil when the check failed.
func tracedCheck(ctx context.Context, v *engine.View, req engine.CheckRequest) (engine.CheckResult, *v1.DebugInformation, error) {
	res, tr, err := v.CheckWithTrace(ctx, req)
	if err != nil {
		return res, nil, err
	}
	return res, debugInfoToPB(v.Schema(), req.Context, tr), nil
}

// tracedBulk is View.CheckBulk for traced items: one traced check after the
// other, each with its debug information.
func tracedBulk(ctx context.Context, v *engine.View, reqs []engine.CheckRequest) ([]engine.BulkResult, []*v1.DebugInformation, error) {
	out := make([]engine.BulkResult, len(reqs))
	debug := make([]*v1.DebugInformation, len(reqs))
	for i, r := range reqs {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		res, d, err := tracedCheck(ctx, v, r)
		out[i], debug[i] = engine.BulkResult{Result: res, Err: err}, d
	}
	return out, debug, nil
}

// debugInfoToPB converts a trace evaluated under s with the request's caveat
// context reqCtx.
func debugInfoToPB(s *schema.Schema, reqCtx map[string]any, t *engine.Trace) *v1.DebugInformation {
	if t == nil {
		return nil
	}
	c := traceConverter{schema: s, context: reqCtx}
	root, _ := c.node(t)
	return &v1.DebugInformation{Check: root, SchemaUsed: s.Source}
}

type traceConverter struct {
	schema  *schema.Schema
	context map[string]any
}

// node converts one sub-problem and returns it with the earliest expiration
// of the relationships it relied on (zero when none expires).
func (c traceConverter) node(t *engine.Trace) (*v1.CheckDebugTrace, time.Time) {
	kind := v1.CheckDebugTrace_PERMISSION_TYPE_RELATION
	if t.IsPermission {
		kind = v1.CheckDebugTrace_PERMISSION_TYPE_PERMISSION
	}
	subs := make([]*v1.CheckDebugTrace, 0, len(t.Relationships)+len(t.Children))
	var expires time.Time
	relied := func(p engine.Permissionship, at time.Time) {
		if p != engine.NoPermission && !at.IsZero() && (expires.IsZero() || at.Before(expires)) {
			expires = at
		}
	}
	for _, r := range t.Relationships {
		subs = append(subs, c.relationship(r))
		relied(r.Result, r.Relationship.Expiration)
	}
	for _, ch := range t.Children {
		n, at := c.node(ch)
		subs = append(subs, n)
		relied(ch.Result, at)
	}
	out := &v1.CheckDebugTrace{
		Resource:       objectToPB(t.Resource),
		Permission:     t.Relation,
		PermissionType: kind,
		Subject:        subjectToPB(t.Subject),
		Result:         traceResultToPB(t.Result),
		Duration:       durationpb.New(t.Duration),
		Resolution:     &v1.CheckDebugTrace_SubProblems_{SubProblems: &v1.CheckDebugTrace_SubProblems{Traces: subs}},
	}
	if t.Result == engine.ConditionalPermission {
		out.CaveatEvaluationInfo = &v1.CaveatEvalInfo{Result: v1.CaveatEvalInfo_RESULT_MISSING_SOME_CONTEXT, PartialCaveatInfo: partialInfo(t.Missing)}
	}
	if !expires.IsZero() && t.Result != engine.NoPermission {
		out.OptionalExpiresAt = timestamppb.New(expires.UTC())
	}
	return out, expires
}

// relationship converts a relationship a sub-problem relied on to a leaf.
func (c traceConverter) relationship(r engine.TracedRelationship) *v1.CheckDebugTrace {
	rel := r.Relationship
	out := &v1.CheckDebugTrace{
		Resource:       objectToPB(rel.Resource),
		Permission:     rel.Relation,
		PermissionType: v1.CheckDebugTrace_PERMISSION_TYPE_RELATION,
		Subject:        subjectToPB(rel.Subject),
		Result:         traceResultToPB(r.Result),
		Resolution:     &v1.CheckDebugTrace_WasCachedResult{WasCachedResult: false},
	}
	if !rel.Expiration.IsZero() {
		out.OptionalExpiresAt = timestamppb.New(rel.Expiration.UTC())
	}
	if rel.Caveat == nil {
		return out
	}
	info := &v1.CaveatEvalInfo{CaveatName: rel.Caveat.Name, PartialCaveatInfo: partialInfo(r.Missing)}
	switch r.Result {
	case engine.HasPermission:
		info.Result = v1.CaveatEvalInfo_RESULT_TRUE
	case engine.ConditionalPermission:
		info.Result = v1.CaveatEvalInfo_RESULT_MISSING_SOME_CONTEXT
	default:
		info.Result = v1.CaveatEvalInfo_RESULT_FALSE
	}
	if cv := c.schema.Caveats[rel.Caveat.Name]; cv != nil {
		info.Expression = cv.Expr
		used := map[string]any{}
		for _, p := range cv.Params {
			if v, ok := rel.Caveat.Context[p.Name]; ok {
				used[p.Name] = v
			} else if v, ok := c.context[p.Name]; ok {
				used[p.Name] = v
			}
		}
		if len(used) > 0 {
			// Context values came from JSON or a Struct, so this only fails
			// on values that could not have been evaluated either.
			if s, err := structpb.NewStruct(used); err == nil {
				info.Context = s
			}
		}
	}
	out.CaveatEvaluationInfo = info
	return out
}

func traceResultToPB(p engine.Permissionship) v1.CheckDebugTrace_Permissionship {
	switch p {
	case engine.HasPermission:
		return v1.CheckDebugTrace_PERMISSIONSHIP_HAS_PERMISSION
	case engine.ConditionalPermission:
		return v1.CheckDebugTrace_PERMISSIONSHIP_CONDITIONAL_PERMISSION
	}
	return v1.CheckDebugTrace_PERMISSIONSHIP_NO_PERMISSION
}
