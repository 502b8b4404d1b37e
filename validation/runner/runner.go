// Package runner executes SpiceDB-format validation files against ambit's
// engine: it loads a file's schema and relationships into a backend (the
// badger store in a temporary directory for `ambit validate`, or memory),
// checks every assertion, and cross-checks the APIs against each other (the
// oracle): for every resource, permission and subject the file mentions,
// Check agrees with CheckBulk, LookupResources, LookupSubjects and Expand.
package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
	"github.com/ambit-authz/ambit/validation"
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
}

// Run executes one document of a validation file.
func Run(ctx context.Context, eng *engine.Engine, b Backend, f *validation.File, opts Options) (*Report, error) {
	rep := &Report{File: f.Name, Doc: f.Doc}
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
	v := eng.View(s, reader, at)
	run := func(list []validation.Assertion, want engine.Permissionship) {
		for _, a := range list {
			rep.Assertions++
			res, err := v.Check(ctx, engine.CheckRequest{Resource: a.Rel.Resource, Permission: a.Rel.Relation, Subject: a.Rel.Subject, Context: a.Context})
			got := res.Permissionship.String()
			if err != nil {
				got = "error: " + err.Error()
			}
			if err != nil || res.Permissionship != want {
				rep.Failures = append(rep.Failures, Failure{File: f.Name, Line: a.Line, What: a.Text, Want: want.String(), Got: got})
			}
		}
	}
	run(f.Assertions.True, engine.HasPermission)
	run(f.Assertions.False, engine.NoPermission)
	run(f.Assertions.Caveated, engine.ConditionalPermission)
	if err := validateExpected(ctx, v, f, rep); err != nil {
		return nil, err
	}
	if opts.Oracle {
		if err := oracle(ctx, v, f, rep, opts); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// validateExpected compares the `validation:` map with LookupSubjects-derived
// membership: every listed subject must have the permission (caveated ones
// conditionally).
func validateExpected(ctx context.Context, v *engine.View, f *validation.File, rep *Report) error {
	for _, e := range f.Validation {
		for _, es := range e.Subjects {
			rep.Assertions++
			res, err := v.Check(ctx, engine.CheckRequest{Resource: e.Resource, Permission: e.Permission, Subject: es.Subject})
			want := engine.HasPermission
			if es.Caveated {
				want = engine.ConditionalPermission
			}
			got := res.Permissionship.String()
			if err != nil {
				got = "error: " + err.Error()
			}
			if err != nil || res.Permissionship != want {
				rep.Failures = append(rep.Failures, Failure{File: f.Name, Line: es.Line, What: fmt.Sprintf("validation %s#%s: %s", e.Resource, e.Permission, es.Text), Want: want.String(), Got: got})
			}
		}
		// The list is complete: every plain subject (or wildcard) holding
		// the permission must be on it.
		listed := map[tuple.SubjectRef]bool{}
		for _, es := range e.Subjects {
			listed[es.Subject] = true
		}
		for _, typ := range v.Schema().PlainSubjectTypes() {
			rep.Assertions++
			for r, err := range v.LookupSubjects(ctx, engine.LookupSubjectsRequest{Resource: e.Resource, Permission: e.Permission, SubjectType: typ}) {
				if err != nil {
					return err
				}
				if s := (tuple.SubjectRef{Type: typ, ID: r.ID}); !listed[s] {
					rep.Failures = append(rep.Failures, Failure{File: f.Name, Line: e.Line, What: fmt.Sprintf("validation %s#%s: %s is not listed", e.Resource, e.Permission, s),
						Want: "only the listed subjects", Got: fmt.Sprintf("%s also has %s", s, r.Permissionship)})
				}
			}
		}
	}
	return nil
}

type checkKey struct {
	res  tuple.ObjectRef
	perm string
	subj tuple.SubjectRef
}

// oracle cross-checks the APIs on everything the file mentions.
func oracle(ctx context.Context, v *engine.View, f *validation.File, rep *Report, opts Options) error {
	s := v.Schema()
	resList, subjList := f.Mentioned()
	resources := make(map[tuple.ObjectRef]bool, len(resList))
	for _, r := range resList {
		resources[r] = true
	}

	// 1. Check every combination; remember the answers.
	answers := map[checkKey]engine.CheckResult{}
	var reqs []engine.CheckRequest
	var keys []checkKey
	for _, res := range resList {
		d := s.Definitions[res.Type]
		if d == nil {
			continue
		}
		for _, perm := range d.Order {
			for _, subj := range subjList {
				if s.Definitions[subj.Type] == nil || (subj.Relation != "" && s.Relation(subj.Type, subj.Relation) == nil) {
					continue
				}
				req := engine.CheckRequest{Resource: res, Permission: perm, Subject: subj}
				r, err := v.Check(ctx, req)
				if err != nil {
					if errors.Is(err, engine.ErrMaxDepth) {
						continue
					}
					return fmt.Errorf("oracle check %s#%s@%s: %w", res, perm, subj, err)
				}
				k := checkKey{res, perm, subj}
				answers[k] = r
				reqs = append(reqs, req)
				keys = append(keys, k)
			}
		}
	}
	fail := func(what, want, got string) {
		rep.Failures = append(rep.Failures, Failure{File: f.Name, What: "oracle: " + what, Want: want, Got: got})
	}
	// 2. CheckBulk agrees.
	for start := 0; start < len(reqs); start += 500 {
		end := min(start+500, len(reqs))
		out, err := v.CheckBulk(ctx, reqs[start:end])
		if err != nil {
			return err
		}
		for i, o := range out {
			k := keys[start+i]
			rep.Oracle++
			if o.Err != nil || o.Result.Permissionship != answers[k].Permissionship {
				fail(fmt.Sprintf("CheckBulk %s#%s@%s", k.res, k.perm, k.subj), answers[k].Permissionship.String(), fmt.Sprint(o.Result.Permissionship, o.Err))
			}
		}
	}
	// 3. LookupResources agrees, over several page sizes.
	pageSizes := opts.PageSizes
	if len(pageSizes) == 0 {
		pageSizes = []int{1, 3, 0}
	}
	for typ, d := range s.Definitions {
		for _, perm := range d.Order {
			for _, subj := range subjList {
				if s.Definitions[subj.Type] == nil || (subj.Relation != "" && s.Relation(subj.Type, subj.Relation) == nil) {
					continue
				}
				var want []string
				for _, res := range resList {
					if res.Type != typ {
						continue
					}
					if a, ok := answers[checkKey{res, perm, subj}]; ok && a.Permissionship != engine.NoPermission {
						want = append(want, res.ID+"="+a.Permissionship.String())
					}
				}
				for _, ps := range pageSizes {
					got, err := lookupAll(ctx, v, engine.LookupResourcesRequest{ResourceType: typ, Permission: perm, Subject: subj}, ps)
					if err != nil {
						if errors.Is(err, engine.ErrMaxDepth) {
							continue
						}
						return err
					}
					// Only resources the file mentions are compared: others
					// (none, in practice) cannot be checked against answers.
					got = slices.DeleteFunc(got, func(r string) bool {
						// ids may contain '='; the permissionship after the last one does not
						id := r[:strings.LastIndexByte(r, '=')]
						return !resources[tuple.ObjectRef{Type: typ, ID: id}]
					})
					rep.Oracle++
					if !slices.Equal(want, got) {
						fail(fmt.Sprintf("LookupResources(%s#%s@%s, page %d)", typ, perm, subj, ps), fmt.Sprint(want), fmt.Sprint(got))
					}
				}
			}
		}
	}
	// 4. LookupSubjects agrees.
	kinds := map[tuple.SubjectRef]bool{}
	for _, subj := range subjList {
		kinds[tuple.SubjectRef{Type: subj.Type, Relation: subj.Relation}] = true
	}
	for _, res := range resList {
		d := s.Definitions[res.Type]
		if d == nil {
			continue
		}
		for _, perm := range d.Order {
			for kind := range kinds {
				if s.Definitions[kind.Type] == nil || (kind.Relation != "" && s.Relation(kind.Type, kind.Relation) == nil) {
					continue
				}
				found := map[string]engine.LookupResult{}
				var wildcard *engine.LookupResult
				for r, err := range v.LookupSubjects(ctx, engine.LookupSubjectsRequest{Resource: res, Permission: perm, SubjectType: kind.Type, SubjectRelation: kind.Relation}) {
					if err != nil {
						if errors.Is(err, engine.ErrMaxDepth) {
							break
						}
						return err
					}
					if r.ID == tuple.Wildcard {
						w := r
						wildcard = &w
						continue
					}
					found[r.ID] = r
				}
				for _, subj := range subjList {
					if subj.Type != kind.Type || subj.Relation != kind.Relation {
						continue
					}
					a, ok := answers[checkKey{res, perm, subj}]
					if !ok {
						continue
					}
					got := engine.NoPermission
					if r, ok := found[subj.ID]; ok {
						got = r.Permissionship
					} else if wildcard != nil && !slices.Contains(wildcard.Excluded, subj.ID) {
						got = wildcard.Permissionship
					}
					rep.Oracle++
					if got != a.Permissionship {
						fail(fmt.Sprintf("LookupSubjects(%s#%s, %s) for %s", res, perm, kind, subj), a.Permissionship.String(), got.String())
					}
				}
			}
		}
	}
	// 5. Expand agrees where no caveat or expiration is involved.
	if len(s.Caveats) == 0 && !s.UsesExpiration {
		for k, a := range answers {
			tree, err := v.Expand(ctx, k.res, k.perm)
			if err != nil {
				if errors.Is(err, engine.ErrMaxDepth) {
					continue
				}
				return err
			}
			got, err := member(ctx, v, tree, k.subj)
			if err != nil {
				return err
			}
			rep.Oracle++
			if got != (a.Permissionship == engine.HasPermission) {
				fail(fmt.Sprintf("Expand(%s#%s) membership of %s", k.res, k.perm, k.subj), a.Permissionship.String(), fmt.Sprint(got))
			}
		}
	}
	return nil
}

// lookupAll pages through LookupResources with the given page size (0: one
// call) and returns "id=PERMISSIONSHIP" strings in order.
func lookupAll(ctx context.Context, v *engine.View, req engine.LookupResourcesRequest, page int) ([]string, error) {
	var out []string
	req.Limit = page
	for {
		n := 0
		for r, err := range v.LookupResources(ctx, req) {
			if err != nil {
				return nil, err
			}
			out = append(out, r.ID+"="+r.Permissionship.String())
			req.After = r.ID
			n++
		}
		if page == 0 || n < page {
			return out, nil
		}
	}
}

// member decides whether subj is in an expanded tree, resolving subject-set
// leaves with Check.
func member(ctx context.Context, v *engine.View, n *engine.ExpandNode, subj tuple.SubjectRef) (bool, error) {
	if subj.Relation != "" && n.Object.Type == subj.Type && n.Object.ID == subj.ID && n.Relation == subj.Relation {
		return true, nil // a subject set is a member of itself
	}
	switch n.Kind {
	case engine.ExpandLeaf:
		for _, es := range n.Subjects {
			s := es.Subject
			if s == subj || (s.ID == tuple.Wildcard && s.Type == subj.Type && subj.Relation == "") {
				return true, nil
			}
			if s.Relation != "" {
				r, err := v.Check(ctx, engine.CheckRequest{Resource: s.Object(), Permission: s.Relation, Subject: subj})
				if err != nil {
					return false, err
				}
				if r.Permissionship == engine.HasPermission {
					return true, nil
				}
			}
		}
		return false, nil
	case engine.ExpandUnion:
		for _, c := range n.Children {
			if ok, err := member(ctx, v, c, subj); err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case engine.ExpandIntersection:
		if len(n.Children) == 0 {
			return false, nil
		}
		for _, c := range n.Children {
			if ok, err := member(ctx, v, c, subj); err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case engine.ExpandExclusion:
		base, err := member(ctx, v, n.Children[0], subj)
		if err != nil || !base {
			return false, err
		}
		sub, err := member(ctx, v, n.Children[1], subj)
		return !sub, err
	}
	return false, fmt.Errorf("unknown expand node kind %v", n.Kind)
}
