// Package oracle checks a loaded validation document through one front end:
// every assertion, the `validation:` map (each listed subject holds the
// permission, and no unlisted one does) and, optionally, the cross-API
// oracle of SpiceDB's consistency tests: for every resource, permission and
// subject the document mentions, Check agrees with CheckBulk, with
// LookupResources over several page sizes, with LookupSubjects and, where
// the front end has them, with SubjectPermissions, with ResourceAccess and
// (no caveat or expiration involved) with Expand.
//
// The front end is an API. validation/runner adapts ambit's engine to it
// (in-process, effective access included), validation/remote the authzed v1
// gRPC API of a live server, and api's tests the AuthZEN endpoints (compared
// with the v1 API's Check through Options.Reference); all run the same
// comparisons, written once here.
package oracle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
	"github.com/ambit-authz/ambit/validation"
)

// Query asks whether Subject has Permission on Resource.
type Query struct {
	Resource   tuple.ObjectRef
	Permission string
	Subject    tuple.SubjectRef
	Context    map[string]any
}

// key is a Query without its context, as a map key.
type key struct {
	res  tuple.ObjectRef
	perm string
	subj tuple.SubjectRef
}

func (q Query) key() key { return key{q.Resource, q.Permission, q.Subject} }

func (q Query) String() string { return fmt.Sprintf("%s#%s@%s", q.Resource, q.Permission, q.Subject) }

// Answer is the outcome of one query: a conditional one names the caveat
// parameters the context lacked in Missing (sorted); Err is set when the
// call (or the item of a bulk call) failed.
type Answer struct {
	Permissionship engine.Permissionship
	Missing        []string
	Err            error
}

func (a Answer) String() string {
	if a.Err != nil {
		return "error: " + a.Err.Error()
	}
	if len(a.Missing) > 0 {
		return fmt.Sprintf("%s missing %v", a.Permissionship, a.Missing)
	}
	return a.Permissionship.String()
}

// API is a front end over the relationships of one loaded document. Its
// methods are called concurrently (Options.Parallel).
type API interface {
	// Check answers one query.
	Check(ctx context.Context, q Query) Answer
	// CheckBulk answers the queries in one call, an Answer per query in
	// order. An error is the whole call failing.
	CheckBulk(ctx context.Context, qs []Query) ([]Answer, error)
	// LookupResources returns the resources of type typ on which subj has
	// perm, paging page results at a time, each page resuming after the
	// previous page's last result (0: everything in one call).
	LookupResources(ctx context.Context, typ, perm string, subj tuple.SubjectRef, page int) ([]engine.LookupResult, error)
	// LookupSubjects returns the subjects of kind's type (and relation)
	// with perm on res; a wildcard result has ID `*` and its Excluded ids.
	LookupSubjects(ctx context.Context, res tuple.ObjectRef, perm string, kind tuple.SubjectRef) ([]engine.LookupResult, error)
	// Expand returns the tree of res#perm, or an error wrapping
	// errors.ErrUnsupported where the front end does not offer one.
	Expand(ctx context.Context, res tuple.ObjectRef, perm string) (*engine.ExpandNode, error)
	// SubjectPermissions returns the relations and permissions of res's
	// type that subj holds on res (leaving out those it does not), in the
	// schema's order; or an error wrapping errors.ErrUnsupported.
	SubjectPermissions(ctx context.Context, res tuple.ObjectRef, subj tuple.SubjectRef) ([]engine.PermissionResult, error)
	// ResourceAccess lists the subjects of type subjType holding any of
	// ranks (highest first) on res, each with the highest it holds, as
	// engine.View.ResourceAccess does: a wildcard subject covers every
	// subject of the type it does not exclude, with its rank; a subject
	// listed apart holds the rank listed. A subject type that can reach
	// none of ranks holds nothing (no error). Or an error wrapping
	// errors.ErrUnsupported.
	ResourceAccess(ctx context.Context, res tuple.ObjectRef, ranks []string, subjType string) ([]engine.Access, error)
	// GaveUp reports whether err means the front end declined to finish
	// (its maximum depth or result count): the oracle skips that
	// comparison, as the answer is not wrong, only absent.
	GaveUp(err error) bool
}

// Options select what Run does beyond the assertions.
type Options struct {
	// Oracle cross-checks the APIs against each other.
	Oracle bool
	// PageSizes for LookupResources in the oracle (0: one call); default
	// {1, 3, 0}.
	PageSizes []int
	// Parallel is how many calls are in flight at once; default 8.
	Parallel int
	// BulkBatch is the number of queries in one CheckBulk; default 100,
	// within the defaults of both ambit and SpiceDB.
	BulkBatch int
	// Reference, when set, is the front end whose Check answers the oracle
	// compares the API's other calls with; the API's own Check is then one
	// more comparison. (AuthZEN is checked against the authzed v1 API.)
	Reference API
	// Definite says the API's listings (LookupResources, LookupSubjects,
	// SubjectPermissions, ResourceAccess) leave conditional answers out,
	// as AuthZEN's searches do: they are compared with Check's definite
	// answers only.
	Definite bool
}

func (o Options) withDefaults() Options {
	if len(o.PageSizes) == 0 {
		o.PageSizes = []int{1, 3, 0}
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.BulkBatch <= 0 {
		o.BulkBatch = 100
	}
	return o
}

// Run checks document f, whose schema is s, through api. Wrong answers are
// Failures in the Report; an error means the document could not be checked
// (a call failed where no answer can be compared). Assertion errors are
// prefixed with the document's name and line; oracle errors with "oracle".
func Run(ctx context.Context, api API, f *validation.File, s *schema.Schema, opts Options) (*validation.Report, error) {
	x := &run{api: api, f: f, s: s, opts: opts.withDefaults(), rep: &validation.Report{File: f.Name, Doc: f.Doc}}
	if err := x.assertions(ctx); err != nil {
		return nil, err
	}
	if err := x.unlisted(ctx); err != nil {
		return nil, err
	}
	if x.opts.Oracle {
		if err := x.oracle(ctx); err != nil {
			return nil, fmt.Errorf("%s: oracle: %w", f.Name, err)
		}
	}
	return x.rep, nil
}

type run struct {
	api  API
	f    *validation.File
	s    *schema.Schema
	opts Options
	rep  *validation.Report
}

// comparison is one comparison; it fails when want != got.
type comparison struct {
	fail     validation.Failure // File, Line and What
	want     string
	got      string
	oracular bool // counted in Report.Oracle, not Report.Assertions
}

// record counts the comparisons and reports those that failed.
func (x *run) record(cs []comparison) {
	for _, c := range cs {
		if c.oracular {
			x.rep.Oracle++
		} else {
			x.rep.Assertions++
		}
		if c.want != c.got {
			fl := c.fail
			fl.File, fl.Want, fl.Got = x.f.Name, c.want, c.got
			x.rep.Failures = append(x.rep.Failures, fl)
		}
	}
}

func (x *run) oracleComparison(what, want, got string) comparison {
	return comparison{fail: validation.Failure{What: "oracle: " + what}, want: want, got: got, oracular: true}
}

// assertions checks assertTrue, assertFalse, assertCaveated and that every
// subject the `validation:` map lists holds the permission (a caveated one
// conditionally).
func (x *run) assertions(ctx context.Context) error {
	type pending struct {
		q    Query
		want engine.Permissionship
		fail validation.Failure
	}
	var todo []pending
	for _, l := range []struct {
		list []validation.Assertion
		want engine.Permissionship
	}{
		{x.f.Assertions.True, engine.HasPermission},
		{x.f.Assertions.False, engine.NoPermission},
		{x.f.Assertions.Caveated, engine.ConditionalPermission},
	} {
		for _, a := range l.list {
			todo = append(todo, pending{Query{a.Rel.Resource, a.Rel.Relation, a.Rel.Subject, a.Context}, l.want, validation.Failure{Line: a.Line, What: a.Text}})
		}
	}
	for _, e := range x.f.Validation {
		for _, es := range e.Subjects {
			want := engine.HasPermission
			if es.Caveated {
				want = engine.ConditionalPermission
			}
			todo = append(todo, pending{Query{Resource: e.Resource, Permission: e.Permission, Subject: es.Subject}, want,
				validation.Failure{Line: es.Line, What: fmt.Sprintf("validation %s#%s: %s", e.Resource, e.Permission, es.Text)}})
		}
	}
	cs, err := jobs(ctx, x.opts.Parallel, len(todo), func(ctx context.Context, i int) ([]comparison, error) {
		p := todo[i]
		got := x.api.Check(ctx, p.q)
		got.Missing = nil // a document names no missing parameters
		return []comparison{{fail: p.fail, want: p.want.String(), got: got.String()}}, nil
	})
	x.record(cs)
	return err
}

// unlisted checks that each validation list is complete: every plain
// subject (or wildcard) that LookupSubjects finds is on it.
func (x *run) unlisted(ctx context.Context) error {
	for _, e := range x.f.Validation {
		listed := map[tuple.SubjectRef]bool{}
		for _, es := range e.Subjects {
			listed[es.Subject] = true
		}
		for _, typ := range x.s.PlainSubjectTypes() {
			found, err := x.api.LookupSubjects(ctx, e.Resource, e.Permission, tuple.SubjectRef{Type: typ})
			if err != nil {
				return fmt.Errorf("%s:%d: LookupSubjects(%s#%s, %s): %w", x.f.Name, e.Line, e.Resource, e.Permission, typ, err)
			}
			x.rep.Assertions++
			slices.SortFunc(found, func(a, b engine.LookupResult) int { return cmp.Compare(a.ID, b.ID) })
			for _, r := range found {
				if s := (tuple.SubjectRef{Type: typ, ID: r.ID}); !listed[s] {
					x.rep.Failures = append(x.rep.Failures, validation.Failure{File: x.f.Name, Line: e.Line,
						What: fmt.Sprintf("validation %s#%s: %s is not listed", e.Resource, e.Permission, s),
						Want: "only the listed subjects", Got: fmt.Sprintf("%s also has %s", s, r.Permissionship)})
				}
			}
		}
	}
	return nil
}

// valid reports whether the schema defines subj's type and relation.
func (x *run) valid(subj tuple.SubjectRef) bool {
	return x.s.Definitions[subj.Type] != nil && (subj.Relation == "" || x.s.Relation(subj.Type, subj.Relation) != nil)
}

// permissionsOf yields every relation and permission of every resource in
// resList whose type the schema defines, in the schema's order.
func (x *run) permissionsOf(resList []tuple.ObjectRef) iter.Seq2[tuple.ObjectRef, string] {
	return func(yield func(tuple.ObjectRef, string) bool) {
		for _, res := range resList {
			d := x.s.Definitions[res.Type]
			if d == nil {
				continue
			}
			for _, perm := range d.Order {
				if !yield(res, perm) {
					return
				}
			}
		}
	}
}

// oracle cross-checks the APIs on everything the document mentions.
func (x *run) oracle(ctx context.Context) error {
	resList, subjList := x.f.Mentioned()

	// 1. Check every combination; remember the answers.
	var qs []Query
	for res, perm := range x.permissionsOf(resList) {
		for _, subj := range subjList {
			if x.valid(subj) {
				qs = append(qs, Query{Resource: res, Permission: perm, Subject: subj})
			}
		}
	}
	ref := x.opts.Reference
	if ref == nil {
		ref = x.api
	}
	answers := make([]Answer, len(qs))
	if err := each(ctx, x.opts.Parallel, len(qs), func(ctx context.Context, i int) error {
		answers[i] = ref.Check(ctx, qs[i])
		return nil
	}); err != nil {
		return err
	}
	known := map[key]Answer{}
	var checked []Query
	for i, a := range answers {
		if a.Err != nil {
			if ref.GaveUp(a.Err) {
				continue
			}
			return fmt.Errorf("check %s: %w", qs[i], a.Err)
		}
		known[qs[i].key()] = a
		checked = append(checked, qs[i])
	}
	for _, step := range []func(context.Context, []tuple.ObjectRef, []tuple.SubjectRef, []Query, map[key]Answer) ([]comparison, error){
		x.check, x.checkBulk, x.lookupResources, x.lookupSubjects, x.subjectPermissions, x.resourceAccess, x.expand,
	} {
		cs, err := step(ctx, resList, subjList, checked, known)
		if err != nil {
			return err
		}
		x.record(cs)
	}
	return nil
}

// check: with a Reference, the API's Check agrees with the reference's.
func (x *run) check(ctx context.Context, _ []tuple.ObjectRef, _ []tuple.SubjectRef, checked []Query, known map[key]Answer) ([]comparison, error) {
	if x.opts.Reference == nil {
		return nil, nil
	}
	return jobs(ctx, x.opts.Parallel, len(checked), func(ctx context.Context, i int) ([]comparison, error) {
		q := checked[i]
		got := x.api.Check(ctx, q)
		if got.Err != nil && x.api.GaveUp(got.Err) {
			return nil, nil
		}
		return []comparison{x.oracleComparison("Check "+q.String(), known[q.key()].String(), got.String())}, nil
	})
}

// listed is what a listing of the API shows for a Check answer: nothing
// (NoPermission) for a conditional one when the listings are Definite.
func (x *run) listed(a Answer) Answer {
	if x.opts.Definite && a.Permissionship == engine.ConditionalPermission {
		return Answer{Permissionship: engine.NoPermission}
	}
	return Answer{Permissionship: a.Permissionship, Missing: a.Missing}
}

// checkBulk: CheckBulk agrees with Check.
func (x *run) checkBulk(ctx context.Context, _ []tuple.ObjectRef, _ []tuple.SubjectRef, checked []Query, known map[key]Answer) ([]comparison, error) {
	n := x.opts.BulkBatch
	return jobs(ctx, x.opts.Parallel, (len(checked)+n-1)/n, func(ctx context.Context, b int) ([]comparison, error) {
		batch := checked[b*n : min((b+1)*n, len(checked))]
		got, err := x.api.CheckBulk(ctx, batch)
		if err != nil {
			return nil, fmt.Errorf("CheckBulk: %w", err)
		}
		if len(got) != len(batch) {
			return nil, fmt.Errorf("CheckBulk answered %d of %d items", len(got), len(batch))
		}
		out := make([]comparison, len(batch))
		for i, q := range batch {
			out[i] = x.oracleComparison("CheckBulk "+q.String(), known[q.key()].String(), got[i].String())
		}
		return out, nil
	})
}

// lookupResources: LookupResources agrees with Check, over every page size,
// on the resources the document mentions.
func (x *run) lookupResources(ctx context.Context, resList []tuple.ObjectRef, subjList []tuple.SubjectRef, _ []Query, known map[key]Answer) ([]comparison, error) {
	mentioned := make(map[tuple.ObjectRef]bool, len(resList))
	for _, r := range resList {
		mentioned[r] = true
	}
	type job struct {
		typ, perm string
		subj      tuple.SubjectRef
		page      int
	}
	var todo []job
	for _, typ := range slices.Sorted(maps.Keys(x.s.Definitions)) {
		for _, perm := range x.s.Definitions[typ].Order {
			for _, subj := range subjList {
				if !x.valid(subj) {
					continue
				}
				for _, ps := range x.opts.PageSizes {
					todo = append(todo, job{typ, perm, subj, ps})
				}
			}
		}
	}
	return jobs(ctx, x.opts.Parallel, len(todo), func(ctx context.Context, i int) ([]comparison, error) {
		j := todo[i]
		var want []string
		for _, res := range resList {
			if a, ok := known[key{res, j.perm, j.subj}]; ok && res.Type == j.typ {
				if p := x.listed(a).Permissionship; p != engine.NoPermission {
					want = append(want, res.ID+"="+p.String())
				}
			}
		}
		found, err := x.api.LookupResources(ctx, j.typ, j.perm, j.subj, j.page)
		if err != nil {
			if x.api.GaveUp(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("LookupResources(%s#%s@%s, page %d): %w", j.typ, j.perm, j.subj, j.page, err)
		}
		// Only resources the document mentions are compared: others (none,
		// in practice) cannot be checked against the answers.
		var got []string
		for _, r := range found {
			if mentioned[tuple.ObjectRef{Type: j.typ, ID: r.ID}] {
				got = append(got, r.ID+"="+r.Permissionship.String())
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		return []comparison{x.oracleComparison(fmt.Sprintf("LookupResources(%s#%s@%s, page %d)", j.typ, j.perm, j.subj, j.page),
			"["+strings.Join(want, " ")+"]", "["+strings.Join(got, " ")+"]")}, nil
	})
}

// lookupSubjects: LookupSubjects agrees with Check for every subject the
// document mentions, directly or through a wildcard that does not exclude
// it.
func (x *run) lookupSubjects(ctx context.Context, resList []tuple.ObjectRef, subjList []tuple.SubjectRef, _ []Query, known map[key]Answer) ([]comparison, error) {
	kindSet := map[tuple.SubjectRef]bool{}
	for _, subj := range subjList {
		kindSet[tuple.SubjectRef{Type: subj.Type, Relation: subj.Relation}] = true
	}
	kinds := slices.SortedFunc(maps.Keys(kindSet), func(a, b tuple.SubjectRef) int { return cmp.Compare(a.String(), b.String()) })
	type job struct {
		res  tuple.ObjectRef
		perm string
		kind tuple.SubjectRef
	}
	var todo []job
	for res, perm := range x.permissionsOf(resList) {
		for _, kind := range kinds {
			if x.valid(kind) {
				todo = append(todo, job{res, perm, kind})
			}
		}
	}
	return jobs(ctx, x.opts.Parallel, len(todo), func(ctx context.Context, i int) ([]comparison, error) {
		j := todo[i]
		results, err := x.api.LookupSubjects(ctx, j.res, j.perm, j.kind)
		if err != nil {
			if x.api.GaveUp(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("LookupSubjects(%s#%s, %s): %w", j.res, j.perm, j.kind, err)
		}
		found := map[string]engine.LookupResult{}
		var wildcard *engine.LookupResult
		for _, r := range results {
			if r.ID == tuple.Wildcard {
				wildcard = &r
				continue
			}
			found[r.ID] = r
		}
		var out []comparison
		for _, subj := range subjList {
			if subj.Type != j.kind.Type || subj.Relation != j.kind.Relation {
				continue
			}
			want, ok := known[key{j.res, j.perm, subj}]
			if !ok {
				continue
			}
			got := engine.NoPermission
			if r, ok := found[subj.ID]; ok {
				got = r.Permissionship
			} else if wildcard != nil && !slices.Contains(wildcard.Excluded, subj.ID) {
				got = wildcard.Permissionship
			}
			out = append(out, x.oracleComparison(fmt.Sprintf("LookupSubjects(%s#%s, %s) for %s", j.res, j.perm, j.kind, subj), x.listed(want).Permissionship.String(), got.String()))
		}
		return out, nil
	})
}

// skipped reports whether err means a listing is not compared: the front
// end does not offer it, or gave up.
func (x *run) skipped(err error) bool {
	return errors.Is(err, errors.ErrUnsupported) || x.api.GaveUp(err)
}

// subjectPermissions: SubjectPermissions agrees with Check for every
// resource and subject the document mentions.
func (x *run) subjectPermissions(ctx context.Context, resList []tuple.ObjectRef, subjList []tuple.SubjectRef, _ []Query, known map[key]Answer) ([]comparison, error) {
	type job struct {
		res  tuple.ObjectRef
		subj tuple.SubjectRef
	}
	var todo []job
	for _, res := range resList {
		if d := x.s.Definitions[res.Type]; d == nil || len(d.Order) == 0 {
			continue
		}
		for _, subj := range subjList {
			if x.valid(subj) {
				todo = append(todo, job{res, subj})
			}
		}
	}
	return jobs(ctx, x.opts.Parallel, len(todo), func(ctx context.Context, i int) ([]comparison, error) {
		j := todo[i]
		var want []string
		for _, p := range x.s.Definitions[j.res.Type].Order {
			a, ok := known[key{j.res, p, j.subj}]
			if !ok {
				return nil, nil // a check gave up: nothing to compare with
			}
			if l := x.listed(a); l.Permissionship != engine.NoPermission {
				want = append(want, p+"="+l.String())
			}
		}
		held, err := x.api.SubjectPermissions(ctx, j.res, j.subj)
		if err != nil {
			if x.skipped(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("SubjectPermissions(%s, %s): %w", j.res, j.subj, err)
		}
		var got []string
		for _, h := range held {
			got = append(got, h.Permission+"="+Answer{Permissionship: h.Permissionship, Missing: h.Missing}.String())
		}
		return []comparison{x.oracleComparison(fmt.Sprintf("SubjectPermissions(%s, %s)", j.res, j.subj),
			"["+strings.Join(want, " ")+"]", "["+strings.Join(got, " ")+"]")}, nil
	})
}

// resourceAccess: ResourceAccess agrees with Check. For every resource the
// document mentions, its type's relations and permissions ranked in the
// schema's order and reversed, and every type of the plain subjects it
// mentions, each such subject holds, by the listing (its own entry, or the
// wildcard's when that does not exclude it), the first rank Check grants it.
func (x *run) resourceAccess(ctx context.Context, resList []tuple.ObjectRef, subjList []tuple.SubjectRef, _ []Query, known map[key]Answer) ([]comparison, error) {
	typeSet := map[string]bool{}
	for _, subj := range subjList {
		if subj.Relation == "" && x.valid(subj) {
			typeSet[subj.Type] = true
		}
	}
	types := slices.Sorted(maps.Keys(typeSet))
	type job struct {
		res   tuple.ObjectRef
		ranks []string
		typ   string
	}
	var todo []job
	for _, res := range resList {
		d := x.s.Definitions[res.Type]
		if d == nil || len(d.Order) == 0 {
			continue
		}
		reversed := slices.Clone(d.Order)
		slices.Reverse(reversed)
		for _, ranks := range [][]string{d.Order, reversed} {
			for _, typ := range types {
				todo = append(todo, job{res, ranks, typ})
			}
		}
	}
	return jobs(ctx, x.opts.Parallel, len(todo), func(ctx context.Context, i int) ([]comparison, error) {
		j := todo[i]
		listing, err := x.api.ResourceAccess(ctx, j.res, j.ranks, j.typ)
		if err != nil {
			if x.skipped(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("ResourceAccess(%s, %v, %s): %w", j.res, j.ranks, j.typ, err)
		}
		apart := map[string]engine.Access{}
		var wildcard *engine.Access
		for _, a := range listing {
			if a.Subject.ID == tuple.Wildcard {
				wildcard = &a
				continue
			}
			apart[a.Subject.ID] = a
		}
		role := func(a engine.Access) string {
			return a.Permission + " " + Answer{Permissionship: a.Permissionship, Missing: a.Missing}.String()
		}
		var out []comparison
	subjects:
		for _, subj := range subjList {
			if subj.Type != j.typ || subj.Relation != "" {
				continue
			}
			want := "none"
			for _, p := range j.ranks {
				a, ok := known[key{j.res, p, subj}]
				if !ok {
					continue subjects // a check gave up
				}
				if l := x.listed(a); l.Permissionship != engine.NoPermission {
					want = p + " " + l.String()
					break
				}
			}
			got := "none"
			if a, ok := apart[subj.ID]; ok {
				got = role(a)
			} else if wildcard != nil && (subj.ID == tuple.Wildcard || !slices.Contains(wildcard.Excluded, subj.ID)) {
				got = role(*wildcard)
			}
			out = append(out, x.oracleComparison(fmt.Sprintf("ResourceAccess(%s, %v, %s) for %s", j.res, j.ranks, j.typ, subj), want, got))
		}
		return out, nil
	})
}

// expand: membership in the Expand tree agrees with Check, where no caveat
// or expiration is involved (a tree does not carry them) and the front end
// has Expand.
func (x *run) expand(ctx context.Context, _ []tuple.ObjectRef, _ []tuple.SubjectRef, checked []Query, known map[key]Answer) ([]comparison, error) {
	if len(x.s.Caveats) > 0 || x.s.UsesExpiration {
		return nil, nil
	}
	return jobs(ctx, x.opts.Parallel, len(checked), func(ctx context.Context, i int) ([]comparison, error) {
		q := checked[i]
		tree, err := x.api.Expand(ctx, q.Resource, q.Permission)
		if err != nil {
			if x.api.GaveUp(err) || errors.Is(err, errors.ErrUnsupported) {
				return nil, nil
			}
			return nil, fmt.Errorf("Expand(%s#%s): %w", q.Resource, q.Permission, err)
		}
		got, err := x.member(ctx, tree, q.Subject)
		if err != nil {
			return nil, err
		}
		return []comparison{x.oracleComparison(fmt.Sprintf("Expand(%s#%s) membership of %s", q.Resource, q.Permission, q.Subject),
			fmt.Sprint(known[q.key()].Permissionship == engine.HasPermission), fmt.Sprint(got))}, nil
	})
}

// member decides whether subj is in an expanded tree, resolving subject-set
// leaves with Check.
func (x *run) member(ctx context.Context, n *engine.ExpandNode, subj tuple.SubjectRef) (bool, error) {
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
				a := x.api.Check(ctx, Query{Resource: s.Object(), Permission: s.Relation, Subject: subj})
				if a.Err != nil {
					return false, a.Err
				}
				if a.Permissionship == engine.HasPermission {
					return true, nil
				}
			}
		}
		return false, nil
	case engine.ExpandUnion:
		for _, c := range n.Children {
			if ok, err := x.member(ctx, c, subj); err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case engine.ExpandIntersection:
		if len(n.Children) == 0 {
			return false, nil
		}
		for _, c := range n.Children {
			if ok, err := x.member(ctx, c, subj); err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case engine.ExpandExclusion:
		base, err := x.member(ctx, n.Children[0], subj)
		if err != nil || !base {
			return false, err
		}
		sub, err := x.member(ctx, n.Children[1], subj)
		return !sub, err
	}
	return false, fmt.Errorf("unknown expand node kind %v", n.Kind)
}

// jobs runs n jobs, par at a time, and returns their comparisons in job
// order, however the jobs interleave.
func jobs(ctx context.Context, par, n int, job func(ctx context.Context, i int) ([]comparison, error)) ([]comparison, error) {
	out := make([][]comparison, n)
	err := each(ctx, par, n, func(ctx context.Context, i int) error {
		c, err := job(ctx, i)
		out[i] = c
		return err
	})
	if err != nil {
		return nil, err
	}
	return slices.Concat(out...), nil
}

// each calls fn(ctx, i) for every i in [0, n), at most par at a time. The
// first error cancels the calls still running and is returned.
func each(ctx context.Context, par, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next  atomic.Int64
		once  sync.Once
		first error
		wg    sync.WaitGroup
	)
	for range min(par, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
