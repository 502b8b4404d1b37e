package remote

import (
	"context"
	"errors"
	"fmt"
	"slices"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/internal/v1pb"
	"github.com/ambit-authz/ambit/tuple"
	"github.com/ambit-authz/ambit/validation/oracle"
)

// API is the oracle's gRPC adapter: it asks a server through the authzed v1
// API, every read at Consistency.
type API struct {
	C           Client
	Consistency *v1.Consistency
}

var _ oracle.API = API{}

func (a API) checkRequest(q oracle.Query) (*v1.CheckPermissionRequest, error) {
	c, err := v1pb.ContextToV1(q.Context, "caveat context")
	if err != nil {
		return nil, err
	}
	return &v1.CheckPermissionRequest{Consistency: a.Consistency, Resource: v1pb.ObjectToV1(q.Resource), Permission: q.Permission,
		Subject: v1pb.SubjectToV1(q.Subject), Context: c}, nil
}

// Check implements oracle.API with CheckPermission.
func (a API) Check(ctx context.Context, q oracle.Query) oracle.Answer {
	req, err := a.checkRequest(q)
	if err != nil {
		return oracle.Answer{Err: err}
	}
	resp, err := a.C.CheckPermission(ctx, req)
	if err != nil {
		return oracle.Answer{Err: err}
	}
	p, err := v1pb.PermissionshipFromV1(resp.GetPermissionship())
	return oracle.Answer{Permissionship: p, Missing: missing(resp.GetPartialCaveatInfo()), Err: err}
}

// CheckBulk implements oracle.API with one CheckBulkPermissions.
func (a API) CheckBulk(ctx context.Context, qs []oracle.Query) ([]oracle.Answer, error) {
	req := &v1.CheckBulkPermissionsRequest{Consistency: a.Consistency}
	for _, q := range qs {
		c, err := v1pb.ContextToV1(q.Context, "caveat context")
		if err != nil {
			return nil, err
		}
		req.Items = append(req.Items, &v1.CheckBulkPermissionsRequestItem{Resource: v1pb.ObjectToV1(q.Resource), Permission: q.Permission,
			Subject: v1pb.SubjectToV1(q.Subject), Context: c})
	}
	resp, err := a.C.CheckBulkPermissions(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make([]oracle.Answer, len(resp.GetPairs()))
	for i, p := range resp.GetPairs() {
		if e := p.GetError(); e != nil {
			out[i] = oracle.Answer{Err: status.FromProto(e).Err()}
			continue
		}
		perm, err := v1pb.PermissionshipFromV1(p.GetItem().GetPermissionship())
		out[i] = oracle.Answer{Permissionship: perm, Missing: missing(p.GetItem().GetPartialCaveatInfo()), Err: err}
	}
	return out, nil
}

// missing is the sorted list of the caveat parameters a conditional answer
// lacked.
func missing(p *v1.PartialCaveatInfo) []string {
	m := slices.Clone(p.GetMissingRequiredContext())
	slices.Sort(m)
	return m
}

// LookupResources implements oracle.API: page results at a time (0: one
// call for everything), each page resuming at the cursor of the previous
// page's last result.
func (a API) LookupResources(ctx context.Context, typ, perm string, subj tuple.SubjectRef, page int) ([]engine.LookupResult, error) {
	var out []engine.LookupResult
	var cursor *v1.Cursor
	for {
		n := 0
		err := func() error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := a.C.LookupResources(ctx, &v1.LookupResourcesRequest{Consistency: a.Consistency, ResourceObjectType: typ,
				Permission: perm, Subject: v1pb.SubjectToV1(subj), OptionalLimit: uint32(page), OptionalCursor: cursor})
			if err != nil {
				return err
			}
			return recvAll(stream.Recv, func(r *v1.LookupResourcesResponse) error {
				p, err := v1pb.LookupPermissionshipFromV1(r.GetPermissionship())
				if err != nil {
					return err
				}
				out = append(out, engine.LookupResult{ID: r.GetResourceObjectId(), Permissionship: p})
				cursor = r.GetAfterResultCursor()
				n++
				return nil
			})
		}()
		switch {
		case err != nil:
			return nil, err
		case page > 0 && n > page:
			return nil, fmt.Errorf("a page of optional_limit %d had %d results", page, n)
		case page == 0 || n < page:
			return out, nil
		case cursor == nil:
			return nil, fmt.Errorf("a full page of %d results came without after_result_cursor", page)
		case len(out) > maxLookup:
			return nil, fmt.Errorf("more than %d results: do the cursors go round in a loop?", maxLookup)
		}
	}
}

// LookupSubjects implements oracle.API with LookupSubjects.
func (a API) LookupSubjects(ctx context.Context, res tuple.ObjectRef, perm string, kind tuple.SubjectRef) ([]engine.LookupResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.C.LookupSubjects(ctx, &v1.LookupSubjectsRequest{Consistency: a.Consistency, Resource: v1pb.ObjectToV1(res), Permission: perm,
		SubjectObjectType: kind.Type, OptionalSubjectRelation: kind.Relation})
	if err != nil {
		return nil, err
	}
	var out []engine.LookupResult
	err = recvAll(stream.Recv, func(r *v1.LookupSubjectsResponse) error {
		id, p := r.GetSubject().GetSubjectObjectId(), r.GetSubject().GetPermissionship()
		if r.GetSubject() == nil { // servers before the subject field
			id, p = r.GetSubjectObjectId(), r.GetPermissionship()
		}
		perm, err := v1pb.LookupPermissionshipFromV1(p)
		if err != nil {
			return err
		}
		lr := engine.LookupResult{ID: id, Permissionship: perm}
		if id == tuple.Wildcard {
			for _, e := range r.GetExcludedSubjects() {
				lr.Excluded = append(lr.Excluded, e.GetSubjectObjectId())
			}
			if len(r.GetExcludedSubjects()) == 0 {
				lr.Excluded = r.GetExcludedSubjectIds()
			}
		}
		out = append(out, lr)
		return nil
	})
	return out, err
}

// Expand implements oracle.API: not offered. Deciding membership in a v1
// tree needs more checks than the tree (subject sets, and SpiceDB's
// caveats are not in it), so the remote oracle leaves Expand out.
func (API) Expand(context.Context, tuple.ObjectRef, string) (*engine.ExpandNode, error) {
	return nil, fmt.Errorf("remote Expand: %w", errors.ErrUnsupported)
}

// SubjectPermissions implements oracle.API: not in the authzed v1 API.
func (API) SubjectPermissions(context.Context, tuple.ObjectRef, tuple.SubjectRef) ([]engine.PermissionResult, error) {
	return nil, fmt.Errorf("remote SubjectPermissions: %w", errors.ErrUnsupported)
}

// ResourceAccess implements oracle.API: not in the authzed v1 API.
func (API) ResourceAccess(context.Context, tuple.ObjectRef, []string, string) ([]engine.Access, error) {
	return nil, fmt.Errorf("remote ResourceAccess: %w", errors.ErrUnsupported)
}

// GaveUp implements oracle.API: the server's maximum depth or result count
// (ResourceExhausted), as in-process.
func (API) GaveUp(err error) bool { return status.Code(err) == codes.ResourceExhausted }
