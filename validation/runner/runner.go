// Package runner executes SpiceDB-format validation files against ambit's
// engine: it loads a file's schema and relationships into a backend (the
// badger store in a temporary directory for `ambit validate`, or memory)
// and checks every assertion, and optionally the cross-API oracle, through
// validation/oracle with View, the oracle's in-process adapter.
package runner

import (
	"context"
	"errors"
	"fmt"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
	"github.com/ambit-authz/ambit/validation"
	"github.com/ambit-authz/ambit/validation/oracle"
)

// Backend loads a file's relationships and returns a reader at a revision.
type Backend interface {
	// Load stores rels under s and returns a reader over them with the
	// snapshot that names them (a Source of their own).
	Load(ctx context.Context, s *schema.Schema, rels []tuple.Relationship) (engine.Reader, engine.Snapshot, error)
	Close() error
}

// Memory is a Backend over engine/enginetest's in-memory reader.
type Memory struct{}

// Load implements Backend.
func (Memory) Load(_ context.Context, _ *schema.Schema, rels []tuple.Relationship) (engine.Reader, engine.Snapshot, error) {
	m := enginetest.NewMemory(rels...)
	return m, m.Snapshot(1), nil
}

// Close implements Backend.
func (Memory) Close() error { return nil }

// Failure and Report are validation's, shared by both runners.
type (
	Failure = validation.Failure
	Report  = validation.Report
)

// Options select what Run does beyond the assertions.
type Options struct {
	Oracle bool
	// PageSizes for LookupResources pagination in the oracle; default {1, 3, 0}.
	PageSizes []int
	// SubjectPages, when set, makes every LookupSubjects of the oracle
	// also page through its answer at each size (see View.SubjectPages).
	SubjectPages []int
}

// Run executes one document of a validation file: it loads the document
// into b and checks it through the engine with validation/oracle.
func Run(ctx context.Context, eng *engine.Engine, b Backend, f *validation.File, opts Options) (*Report, error) {
	s, err := schema.Compile(f.Name, f.Schema)
	if err != nil {
		return nil, fmt.Errorf("%s: schema: %w", f.Name, err)
	}
	rels := make([]tuple.Relationship, 0, len(f.Relationships))
	for _, r := range f.Relationships {
		if err := engine.ValidateRelationship(s, r.Relationship); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", f.Name, r.Line, err)
		}
		rels = append(rels, r.Relationship)
	}
	reader, at, err := b.Load(ctx, s, rels)
	if err != nil {
		return nil, fmt.Errorf("%s: loading relationships: %w", f.Name, err)
	}
	return oracle.Run(ctx, View{V: eng.View(s, reader, at), SubjectPages: opts.SubjectPages}, f, s, oracle.Options{Oracle: opts.Oracle, PageSizes: opts.PageSizes})
}

// View is the oracle's in-process adapter: it answers through an engine
// view.
type View struct {
	V *engine.View
	// SubjectPages: every LookupSubjects also pages through its answer at
	// each of these sizes, and fails when the pages put together differ
	// from the one answer. Each page asks the engine with a limit of the
	// ids already sent plus one page and skips those ids; the wildcard
	// comes with the first page only, as in the gRPC API (which instead
	// reads the whole answer and skips the ids up to its cursor).
	SubjectPages []int
}

var _ oracle.API = View{}

// Check implements oracle.API.
func (v View) Check(ctx context.Context, q oracle.Query) oracle.Answer {
	r, err := v.V.Check(ctx, checkRequest(q))
	return oracle.Answer{Permissionship: r.Permissionship, Missing: r.Missing, Err: err}
}

func checkRequest(q oracle.Query) engine.CheckRequest {
	return engine.CheckRequest{Resource: q.Resource, Permission: q.Permission, Subject: q.Subject, Context: q.Context}
}

// CheckBulk implements oracle.API.
func (v View) CheckBulk(ctx context.Context, qs []oracle.Query) ([]oracle.Answer, error) {
	reqs := make([]engine.CheckRequest, len(qs))
	for i, q := range qs {
		reqs[i] = checkRequest(q)
	}
	res, err := v.V.CheckBulk(ctx, reqs)
	if err != nil {
		return nil, err
	}
	out := make([]oracle.Answer, len(res))
	for i, r := range res {
		out[i] = oracle.Answer{Permissionship: r.Result.Permissionship, Missing: r.Result.Missing, Err: r.Err}
	}
	return out, nil
}

// LookupResources implements oracle.API, paging with After.
func (v View) LookupResources(ctx context.Context, typ, perm string, subj tuple.SubjectRef, page int) ([]engine.LookupResult, error) {
	req := engine.LookupResourcesRequest{ResourceType: typ, Permission: perm, Subject: subj, Limit: page}
	var out []engine.LookupResult
	for {
		n := 0
		for r, err := range v.V.LookupResources(ctx, req) {
			if err != nil {
				return nil, err
			}
			out = append(out, r)
			req.After = r.ID
			n++
		}
		if page == 0 || n < page {
			return out, nil
		}
	}
}

// LookupSubjects implements oracle.API.
func (v View) LookupSubjects(ctx context.Context, res tuple.ObjectRef, perm string, kind tuple.SubjectRef) ([]engine.LookupResult, error) {
	req := engine.LookupSubjectsRequest{Resource: res, Permission: perm, SubjectType: kind.Type, SubjectRelation: kind.Relation}
	out, err := v.lookupSubjects(ctx, req, 0)
	if err != nil {
		return nil, err
	}
	want := fmt.Sprint(out)
	for _, page := range v.SubjectPages {
		if page <= 0 {
			continue
		}
		paged, err := v.lookupSubjects(ctx, req, page)
		if err != nil {
			return nil, fmt.Errorf("paged by %d: %w", page, err)
		}
		if got := fmt.Sprint(paged); got != want {
			return nil, fmt.Errorf("paged by %d: %s, unpaged: %s", page, got, want)
		}
	}
	return out, nil
}

// lookupSubjects returns the answer to req, in pages of page concrete
// subjects (0: one call); a wildcard comes with the first page only.
func (v View) lookupSubjects(ctx context.Context, req engine.LookupSubjectsRequest, page int) ([]engine.LookupResult, error) {
	var out []engine.LookupResult
	concrete := 0
	for {
		if page > 0 {
			req.Limit = concrete + page
		}
		n := 0
		skip := concrete
		for r, err := range v.V.LookupSubjects(ctx, req) {
			if err != nil {
				return nil, err
			}
			switch {
			case r.ID == tuple.Wildcard && concrete > 0:
			case r.ID != tuple.Wildcard && skip > 0:
				skip--
			default:
				out = append(out, r)
				if r.ID != tuple.Wildcard {
					n++
				}
			}
		}
		if page > 0 && n > page {
			return nil, fmt.Errorf("a limit of %d returned %d subjects after the %d already sent, more than a page", req.Limit, n, concrete)
		}
		concrete += n
		if page == 0 || n < page {
			return out, nil
		}
	}
}

// Expand implements oracle.API.
func (v View) Expand(ctx context.Context, res tuple.ObjectRef, perm string) (*engine.ExpandNode, error) {
	return v.V.Expand(ctx, res, perm)
}

// SubjectPermissions implements oracle.API with the engine's
// SubjectPermissions over every relation and permission of res's type.
func (v View) SubjectPermissions(ctx context.Context, res tuple.ObjectRef, subj tuple.SubjectRef) ([]engine.PermissionResult, error) {
	all, err := v.V.SubjectPermissions(ctx, res, subj, nil, nil)
	if err != nil {
		return nil, err
	}
	held := all[:0]
	for _, r := range all {
		if r.Permissionship != engine.NoPermission {
			held = append(held, r)
		}
	}
	return held, nil
}

// ResourceAccess implements oracle.API with the engine's ResourceAccess;
// engine.ErrUnreachable (the subject type reaches none of ranks) is an
// empty listing.
func (v View) ResourceAccess(ctx context.Context, res tuple.ObjectRef, ranks []string, subjType string) ([]engine.Access, error) {
	var out []engine.Access
	for a, err := range v.V.ResourceAccess(ctx, engine.ResourceAccessRequest{Resource: res, Ranks: ranks, SubjectType: subjType}) {
		if errors.Is(err, engine.ErrUnreachable) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// GaveUp implements oracle.API: the engine's depth and result limits.
func (View) GaveUp(err error) bool {
	return errors.Is(err, engine.ErrMaxDepth) || errors.Is(err, engine.ErrTooMany)
}
