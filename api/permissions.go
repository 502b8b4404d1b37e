package api

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/tuple"
)

func (s *Server) checkContext(c *structpb.Struct, field string) (map[string]any, error) {
	if c == nil {
		return nil, nil
	}
	if n := proto.Size(c); n > s.limits.MaxCaveatContextLen {
		return nil, invalidf("%s is %d bytes, more than the limit of %d", field, n, s.limits.MaxCaveatContextLen)
	}
	return contextFromPB(c), nil
}

func (s *Server) checkRequest(res *v1.ObjectReference, perm string, sub *v1.SubjectReference, ctx *structpb.Struct, prefix string) (engine.CheckRequest, error) {
	r, err := objectFromPB(res, prefix+"resource")
	if err != nil {
		return engine.CheckRequest{}, err
	}
	if err := tuple.ValidateRelation(perm); err != nil {
		return engine.CheckRequest{}, invalidf("%spermission: %v", prefix, err)
	}
	subj, err := subjectFromPB(sub, prefix+"subject")
	if err != nil {
		return engine.CheckRequest{}, err
	}
	c, err := s.checkContext(ctx, prefix+"context")
	if err != nil {
		return engine.CheckRequest{}, err
	}
	return engine.CheckRequest{Resource: r, Permission: perm, Subject: subj, Context: c}, nil
}

// CheckPermission implements v1.PermissionsServiceServer. With
// with_tracing the check is evaluated cold and the response carries its
// debug_trace (see trace.go).
func (s *Server) CheckPermission(ctx context.Context, req *v1.CheckPermissionRequest) (*v1.CheckPermissionResponse, error) {
	start := time.Now()
	creq, err := s.checkRequest(req.GetResource(), req.GetPermission(), req.GetSubject(), req.GetContext(), "")
	if err != nil {
		return nil, err
	}
	v, err := s.view(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	var res engine.CheckResult
	var debug *v1.DebugInformation
	if req.GetWithTracing() {
		res, debug, err = tracedCheck(ctx, v, creq)
	} else {
		res, err = v.Check(ctx, creq)
	}
	s.metrics.observe(res.Stats)
	if err != nil {
		return nil, err
	}
	s.decide(ctx, decision{method: "CheckPermission", resource: creq.Resource, permission: creq.Permission, subject: creq.Subject,
		result: res.Permissionship.String(), rev: v.Revision()}, start)
	return &v1.CheckPermissionResponse{
		CheckedAt:         s.tokens.zedToken(v.Revision()),
		Permissionship:    permissionshipToPB(res.Permissionship),
		PartialCaveatInfo: partialInfo(res.Missing),
		DebugTrace:        debug,
	}, nil
}

// CheckBulkPermissions implements v1.PermissionsServiceServer. A bad item
// gets its own error status; the others are answered. With with_tracing the
// items are evaluated one after the other, cold, each with its debug_trace.
func (s *Server) CheckBulkPermissions(ctx context.Context, req *v1.CheckBulkPermissionsRequest) (*v1.CheckBulkPermissionsResponse, error) {
	start := time.Now()
	items := req.GetItems()
	if len(items) > s.limits.MaxChecksPerBulk {
		return nil, tooMany(v1.ErrorReason_ERROR_REASON_TOO_MANY_CHECKS_IN_REQUEST, "check_count", len(items), "maximum_checks_allowed", s.limits.MaxChecksPerBulk,
			"items: %d checks in one request, more than the limit of %d; split the request", len(items), s.limits.MaxChecksPerBulk)
	}
	v, err := s.view(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	out := &v1.CheckBulkPermissionsResponse{CheckedAt: s.tokens.zedToken(v.Revision()), Pairs: make([]*v1.CheckBulkPermissionsPair, len(items))}
	var reqs []engine.CheckRequest
	var idx []int
	for i, it := range items {
		creq, err := s.checkRequest(it.GetResource(), it.GetPermission(), it.GetSubject(), it.GetContext(), fmt.Sprintf("items[%d].", i))
		if err != nil {
			out.Pairs[i] = &v1.CheckBulkPermissionsPair{Request: it, Response: &v1.CheckBulkPermissionsPair_Error{Error: s.rpcStatus(err)}}
			continue
		}
		reqs = append(reqs, creq)
		idx = append(idx, i)
	}
	var results []engine.BulkResult
	var debug []*v1.DebugInformation
	if req.GetWithTracing() {
		results, debug, err = tracedBulk(ctx, v, reqs)
	} else {
		results, err = v.CheckBulk(ctx, reqs)
	}
	if err != nil {
		return nil, err
	}
	for j, r := range results {
		i := idx[j]
		s.metrics.observe(r.Result.Stats)
		if r.Err != nil {
			out.Pairs[i] = &v1.CheckBulkPermissionsPair{Request: items[i], Response: &v1.CheckBulkPermissionsPair_Error{Error: s.rpcStatus(r.Err)}}
			continue
		}
		s.decide(ctx, decision{method: "CheckBulkPermissions", resource: reqs[j].Resource, permission: reqs[j].Permission, subject: reqs[j].Subject,
			result: r.Result.Permissionship.String(), rev: v.Revision()}, start)
		item := &v1.CheckBulkPermissionsResponseItem{
			Permissionship:    permissionshipToPB(r.Result.Permissionship),
			PartialCaveatInfo: partialInfo(r.Result.Missing),
		}
		if debug != nil {
			item.DebugTrace = debug[j]
		}
		out.Pairs[i] = &v1.CheckBulkPermissionsPair{Request: items[i], Response: &v1.CheckBulkPermissionsPair_Item{Item: item}}
	}
	return out, nil
}

// ExpandPermissionTree implements v1.PermissionsServiceServer.
func (s *Server) ExpandPermissionTree(ctx context.Context, req *v1.ExpandPermissionTreeRequest) (*v1.ExpandPermissionTreeResponse, error) {
	obj, err := objectFromPB(req.GetResource(), "resource")
	if err != nil {
		return nil, err
	}
	if err := tuple.ValidateRelation(req.GetPermission()); err != nil {
		return nil, invalidf("permission: %v", err)
	}
	v, err := s.view(ctx, req.GetConsistency())
	if err != nil {
		return nil, err
	}
	tree, err := v.Expand(ctx, obj, req.GetPermission())
	if err != nil {
		return nil, err
	}
	return &v1.ExpandPermissionTreeResponse{ExpandedAt: s.tokens.zedToken(v.Revision()), TreeRoot: expandToPB(tree)}, nil
}

// pagedView returns the view for a paginated request and its decoded cursor
// (nil when not resuming): at the cursor's revision when resuming, else at
// the requested consistency. The cursor must have been issued for the same
// kind of request with the same fingerprint fp.
func (s *Server) pagedView(ctx context.Context, c *v1.Consistency, pb *v1.Cursor, kind cursorKind, fp [8]byte) (*engine.View, *cursor, error) {
	if pb == nil {
		v, err := s.view(ctx, c)
		return v, nil, err
	}
	cur, err := s.tokens.decodeCursor(pb, kind, fp)
	if err != nil {
		return nil, nil, err
	}
	v, err := s.viewAt(cur.rev)
	return v, &cur, err
}

// LookupResources implements v1.PermissionsServiceServer. Results are
// unique, in ascending id order; every response carries a cursor that
// resumes after it, at the same revision.
func (s *Server) LookupResources(req *v1.LookupResourcesRequest, stream grpc.ServerStreamingServer[v1.LookupResourcesResponse]) error {
	ctx := stream.Context()
	start := time.Now()
	if err := tuple.ValidateType(req.GetResourceObjectType()); err != nil {
		return invalidf("resource_object_type: %v", err)
	}
	if err := tuple.ValidateRelation(req.GetPermission()); err != nil {
		return invalidf("permission: %v", err)
	}
	subj, err := subjectFromPB(req.GetSubject(), "subject")
	if err != nil {
		return err
	}
	cctx, err := s.checkContext(req.GetContext(), "context")
	if err != nil {
		return err
	}
	key := proto.Clone(req).(*v1.LookupResourcesRequest)
	key.Consistency, key.OptionalCursor, key.OptionalLimit, key.WithDebug = nil, nil, 0, false
	fp := fingerprint(key)
	v, cur, err := s.pagedView(ctx, req.GetConsistency(), req.GetOptionalCursor(), cursorLookupResources, fp)
	if err != nil {
		return err
	}
	limit := int(req.GetOptionalLimit())
	if limit > s.limits.MaxLookupResults {
		return &limitError{field: "optional_limit", limit: int64(limit), max: s.limits.MaxLookupResults, flag: "--max-lookup-results"}
	}
	capped := limit == 0
	if capped {
		limit = s.limits.MaxLookupResults + 1
	}
	lreq := engine.LookupResourcesRequest{ResourceType: req.GetResourceObjectType(), Permission: req.GetPermission(),
		Subject: subj, Context: cctx, Limit: limit}
	if cur != nil {
		lreq.After = cur.after
	}
	at := s.tokens.zedToken(v.Revision())
	n := 0
	defer func() {
		s.decide(ctx, decision{method: "LookupResources", resType: lreq.ResourceType, permission: lreq.Permission, subject: lreq.Subject, results: n, rev: v.Revision()}, start)
	}()
	for r, err := range v.LookupResources(ctx, lreq) {
		if err != nil {
			return err
		}
		if n++; capped && n > s.limits.MaxLookupResults {
			return resourceExhaustedf("LookupResources found more than %d results; page with optional_limit and optional_cursor", s.limits.MaxLookupResults)
		}
		resp := &v1.LookupResourcesResponse{
			LookedUpAt:        at,
			ResourceObjectId:  r.ID,
			Permissionship:    lookupPermissionshipToPB(r.Permissionship),
			PartialCaveatInfo: partialInfo(r.Missing),
			AfterResultCursor: s.tokens.encodeCursor(cursor{kind: cursorLookupResources, rev: v.Revision(), request: fp, after: r.ID}),
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

// LookupSubjects implements v1.PermissionsServiceServer. A wildcard result
// comes first (on the first page) with the subjects it excludes; concrete
// subjects follow in ascending id order.
func (s *Server) LookupSubjects(req *v1.LookupSubjectsRequest, stream grpc.ServerStreamingServer[v1.LookupSubjectsResponse]) error {
	ctx := stream.Context()
	start := time.Now()
	res, err := objectFromPB(req.GetResource(), "resource")
	if err != nil {
		return err
	}
	if err := tuple.ValidateRelation(req.GetPermission()); err != nil {
		return invalidf("permission: %v", err)
	}
	if err := tuple.ValidateType(req.GetSubjectObjectType()); err != nil {
		return invalidf("subject_object_type: %v", err)
	}
	subjRel := req.GetOptionalSubjectRelation()
	if subjRel == tuple.Ellipsis {
		subjRel = ""
	}
	if subjRel != "" {
		if err := tuple.ValidateRelation(subjRel); err != nil {
			return invalidf("optional_subject_relation: %v", err)
		}
	}
	cctx, err := s.checkContext(req.GetContext(), "context")
	if err != nil {
		return err
	}
	key := proto.Clone(req).(*v1.LookupSubjectsRequest)
	key.Consistency, key.OptionalCursor, key.OptionalConcreteLimit = nil, nil, 0
	fp := fingerprint(key)
	v, cur, err := s.pagedView(ctx, req.GetConsistency(), req.GetOptionalCursor(), cursorLookupSubjects, fp)
	if err != nil {
		return err
	}
	limit := int(req.GetOptionalConcreteLimit())
	if limit > s.limits.MaxLookupResults {
		return &limitError{field: "optional_concrete_limit", limit: int64(limit), max: s.limits.MaxLookupResults, flag: "--max-lookup-results"}
	}
	capped := limit == 0
	after := ""
	if cur != nil {
		after = cur.after
	}
	wildcards := req.GetWildcardOption() != v1.LookupSubjectsRequest_WILDCARD_OPTION_EXCLUDE_WILDCARDS
	at := s.tokens.zedToken(v.Revision())
	n := 0
	lreq := engine.LookupSubjectsRequest{Resource: res, Permission: req.GetPermission(), SubjectType: req.GetSubjectObjectType(),
		SubjectRelation: subjRel, Context: cctx}
	defer func() {
		s.decide(ctx, decision{method: "LookupSubjects", resource: res, permission: lreq.Permission, subjType: lreq.SubjectType, results: n, rev: v.Revision()}, start)
	}()
	for r, err := range v.LookupSubjects(ctx, lreq) {
		if err != nil {
			return err
		}
		wild := r.ID == tuple.Wildcard
		switch {
		case wild && (!wildcards || after != ""):
			continue
		case !wild && r.ID <= after:
			continue
		}
		if !wild {
			n++
			if capped && n > s.limits.MaxLookupResults {
				return resourceExhaustedf("LookupSubjects found more than %d subjects; page with optional_concrete_limit and optional_cursor", s.limits.MaxLookupResults)
			}
			if !capped && n > limit {
				return nil
			}
		}
		resolved := &v1.ResolvedSubject{SubjectObjectId: r.ID, Permissionship: lookupPermissionshipToPB(r.Permissionship), PartialCaveatInfo: partialInfo(r.Missing)}
		resp := &v1.LookupSubjectsResponse{
			LookedUpAt:         at,
			SubjectObjectId:    r.ID,
			ExcludedSubjectIds: r.Excluded,
			Permissionship:     resolved.Permissionship,
			PartialCaveatInfo:  resolved.PartialCaveatInfo,
			Subject:            resolved,
		}
		for _, id := range r.Excluded {
			resp.ExcludedSubjects = append(resp.ExcludedSubjects, &v1.ResolvedSubject{SubjectObjectId: id, Permissionship: v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION})
		}
		if !wild {
			resp.AfterResultCursor = s.tokens.encodeCursor(cursor{kind: cursorLookupSubjects, rev: v.Revision(), request: fp, after: r.ID})
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}
