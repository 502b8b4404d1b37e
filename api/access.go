package api

import (
	"context"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/ambit-authz/ambit/engine"
	ambitv1 "github.com/ambit-authz/ambit/proto/ambit/v1"
	"github.com/ambit-authz/ambit/tuple"
)

// accessService implements ambit.v1.AccessService (proto/ambit/v1) over the
// same views, consistency, ZedTokens and cursors as the authzed v1
// PermissionsService; Register installs it behind the same interceptors.
type accessService struct {
	ambitv1.UnimplementedAccessServiceServer
	s *Server
}

// ResourceAccess implements ambitv1.AccessServiceServer: a wildcard subject
// first (on the first page), then subjects in ascending id order, each with
// a cursor resuming after it at the first page's revision.
func (a accessService) ResourceAccess(req *ambitv1.ResourceAccessRequest, stream grpc.ServerStreamingServer[ambitv1.ResourceAccessResponse]) error {
	s := a.s
	ctx := stream.Context()
	res, err := objectFromPB(objectV1(req.GetResource()), "resource")
	if err != nil {
		return err
	}
	ranks := req.GetRankedPermissions()
	if len(ranks) == 0 {
		return invalidf(`ranked_permissions is empty: list the permissions from highest to lowest, e.g. ["edit", "read"]`)
	}
	for i, p := range ranks {
		if err := tuple.ValidateRelation(p); err != nil {
			return invalidf("ranked_permissions[%d]: %v", i, err)
		}
	}
	if err := tuple.ValidateType(req.GetSubjectObjectType()); err != nil {
		return invalidf("subject_object_type: %v", err)
	}
	cctx, err := s.checkContext(req.GetContext(), "context")
	if err != nil {
		return err
	}
	key := proto.Clone(req).(*ambitv1.ResourceAccessRequest)
	key.Consistency, key.OptionalCursor, key.OptionalLimit = nil, nil, 0
	fp := fingerprint(key)
	var pbCursor *v1.Cursor
	if c := req.GetOptionalCursor(); c != nil {
		pbCursor = &v1.Cursor{Token: c.GetToken()}
	}
	cons := consistencyV1(req.GetConsistency())
	v, cur, err := s.pagedView(ctx, cons, pbCursor, cursorResourceAccess, fp)
	if err != nil {
		return err
	}
	if exact := cons.GetAtExactSnapshot(); cur != nil && exact != nil {
		rev, err := s.tokens.revision(exact, "consistency.at_exact_snapshot")
		if err != nil {
			return err
		}
		if rev != cur.rev {
			return cursorError{fmt.Errorf("optional_cursor: the cursor was issued at revision %d and resumes there, but consistency.at_exact_snapshot asks for revision %d; drop one of them", cur.rev, rev)}
		}
	}
	limit := int(req.GetOptionalLimit())
	capped := limit == 0
	if capped {
		limit = s.limits.MaxLookupResults + 1
	}
	ereq := engine.ResourceAccessRequest{Resource: res, Ranks: ranks, SubjectType: req.GetSubjectObjectType(), Context: cctx, Limit: limit}
	if cur != nil {
		ereq.After = cur.after
	}
	at := zedTokenPB(s.tokens.zedToken(v.Revision()))
	n := 0
	for acc, err := range v.ResourceAccess(ctx, ereq) {
		if err != nil {
			return err
		}
		if n++; capped && n > s.limits.MaxLookupResults {
			return resourceExhaustedf("ResourceAccess found more than %d subjects; page with optional_limit and optional_cursor", s.limits.MaxLookupResults)
		}
		c := s.tokens.encodeCursor(cursor{kind: cursorResourceAccess, rev: v.Revision(), request: fp, after: acc.Subject.ID})
		proof, err := proofPB(acc.Proof)
		if err != nil {
			return err
		}
		resp := &ambitv1.ResourceAccessResponse{
			ReadAt:             at,
			Subject:            subjectPB(acc.Subject),
			Permission:         acc.Permission,
			Permissionship:     permissionshipPB(acc.Permissionship),
			MissingContext:     acc.Missing,
			ExcludedSubjectIds: acc.Excluded,
			Proof:              proof,
			AfterResultCursor:  &ambitv1.Cursor{Token: c.GetToken()},
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

// SubjectPermissions implements ambitv1.AccessServiceServer.
func (a accessService) SubjectPermissions(ctx context.Context, req *ambitv1.SubjectPermissionsRequest) (*ambitv1.SubjectPermissionsResponse, error) {
	s := a.s
	res, err := objectFromPB(objectV1(req.GetResource()), "resource")
	if err != nil {
		return nil, err
	}
	subj, err := subjectFromPB(subjectV1(req.GetSubject()), "subject")
	if err != nil {
		return nil, err
	}
	perms := req.GetPermissions()
	if len(perms) > s.limits.MaxChecksPerBulk {
		return nil, invalidf("permissions: %d permissions in one request, more than the limit of %d", len(perms), s.limits.MaxChecksPerBulk)
	}
	for i, p := range perms {
		if err := tuple.ValidateRelation(p); err != nil {
			return nil, invalidf("permissions[%d]: %v", i, err)
		}
	}
	cctx, err := s.checkContext(req.GetContext(), "context")
	if err != nil {
		return nil, err
	}
	v, err := s.view(ctx, consistencyV1(req.GetConsistency()))
	if err != nil {
		return nil, err
	}
	results, err := v.SubjectPermissions(ctx, res, subj, perms, cctx)
	if err != nil {
		return nil, err
	}
	out := &ambitv1.SubjectPermissionsResponse{ReadAt: zedTokenPB(s.tokens.zedToken(v.Revision()))}
	for _, r := range results {
		out.Results = append(out.Results, &ambitv1.PermissionResult{Permission: r.Permission,
			Permissionship: permissionshipPB(r.Permissionship), MissingContext: r.Missing})
	}
	return out, nil
}

// Explain implements ambitv1.AccessServiceServer. It reads the requested
// revision without the result cache, and with expired relationships visible
// so that it can name the ones that no longer count.
func (a accessService) Explain(ctx context.Context, req *ambitv1.ExplainRequest) (*ambitv1.ExplainResponse, error) {
	s := a.s
	creq, err := s.checkRequest(objectV1(req.GetResource()), req.GetPermission(), subjectV1(req.GetSubject()), req.GetContext(), "")
	if err != nil {
		return nil, err
	}
	rev, err := s.readAt(ctx, consistencyV1(req.GetConsistency()))
	if err != nil {
		return nil, err
	}
	ex, err := s.explainAt(ctx, creq, rev)
	if err != nil {
		return nil, err
	}
	proof, err := proofPB(ex.Proof)
	if err != nil {
		return nil, err
	}
	root, err := whyToPB(ex.Root)
	if err != nil {
		return nil, err
	}
	return &ambitv1.ExplainResponse{
		ReadAt:         zedTokenPB(s.tokens.zedToken(rev)),
		Permissionship: permissionshipPB(ex.Result),
		MissingContext: ex.Missing,
		Proof:          proof,
		Root:           root,
		Truncated:      ex.Truncated,
	}, nil
}

// explainAt explains creq at revision rev: without the result cache, and
// with expired relationships visible so that it can name the ones that no
// longer count. Explain and AuthZEN's context.explain use it.
func (s *Server) explainAt(ctx context.Context, creq engine.CheckRequest, rev tuple.Revision) (engine.Explanation, error) {
	sch, snap, err := s.snapshotAt(rev)
	if err != nil {
		return engine.Explanation{}, err
	}
	return s.engine.View(sch, snap, engine.Snapshot{Source: s.source, Revision: rev, Time: snap.Time()}).Explain(ctx, creq, snap.WithExpired())
}
