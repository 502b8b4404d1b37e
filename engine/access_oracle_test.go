package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/engine/enginetest"
	"github.com/ambit-authz/ambit/internal/conformance"
	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
	"github.com/ambit-authz/ambit/validation"
)

// TestAccessOracle checks what validation/oracle does not of ResourceAccess
// and Explain, on schema/examples/collab.yaml and every shared conformance
// file. The oracle (validation/runner's conformance test) compares
// ResourceAccess's and SubjectPermissions' answers with Check's; here:
//   - for every resource and ranked list (the type's relations and
//     permissions in schema order, and reversed) and every subject type,
//     ResourceAccess lists only subjects LookupSubjects finds for some rank
//     (or that a wildcard it lists covers), the wildcard first exactly when
//     LookupSubjects finds one, no subject apart with the wildcard's role,
//     and ErrUnreachable only where LookupSubjects finds nobody; paging one
//     subject at a time lists the same; every proof path is valid;
//   - Explain's result equals Check's for every resource, permission and
//     subject, and a grant's proof is valid.
func TestAccessOracle(t *testing.T) {
	files := []string{"../schema/examples/collab.yaml"}
	if os.Getenv(conformance.EnvVar) != "" {
		files = append(files, conformance.Files(t)...)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			docs, err := validation.Parse(path, data)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range docs {
				accessOracle(t, f)
			}
		})
	}
}

type oracleRun struct {
	t       *testing.T
	v       *engine.View
	s       *schema.Schema
	reader  engine.Reader
	expired engine.Reader
	ctx     context.Context
	now     time.Time
	// proofEngine checks proofs on their own relationships (no cache: each
	// proof is a data set of its own).
	proofEngine *engine.Engine
}

func accessOracle(t *testing.T, f *validation.File) {
	s, err := schema.Compile(f.Name, f.Schema)
	if err != nil {
		t.Fatal(err)
	}
	var rels []tuple.Relationship
	for _, r := range f.Relationships {
		rels = append(rels, r.Relationship)
	}
	eng, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mem := enginetest.NewMemory(rels...)
	mem.Now = func() time.Time { return now }
	all := enginetest.NewMemory(rels...)
	all.Now = func() time.Time { return time.Time{} }
	uncached, err := engine.New(engine.Config{CacheMaxCost: -1})
	if err != nil {
		t.Fatal(err)
	}
	o := &oracleRun{t: t, v: eng.View(s, mem, mem.Snapshot(1)), s: s, reader: mem, expired: all, ctx: context.Background(),
		now: now, proofEngine: uncached}
	resources, subjects := f.Mentioned()
	var types []string
	for name := range s.Definitions {
		types = append(types, name)
	}
	slices.Sort(types)
	n := 0
	for _, res := range resources {
		d := s.Definitions[res.Type]
		if d == nil || len(d.Order) == 0 {
			continue
		}
		reversed := slices.Clone(d.Order)
		slices.Reverse(reversed)
		for _, ranks := range [][]string{d.Order, reversed} {
			for _, st := range types {
				o.resourceAccess(res, ranks, st)
				n++
			}
		}
		for _, sub := range subjects {
			for _, p := range d.Order {
				o.explain(engine.CheckRequest{Resource: res, Permission: p, Subject: sub})
			}
		}
	}
	for _, list := range [][]validation.Assertion{f.Assertions.True, f.Assertions.False, f.Assertions.Caveated} {
		for _, a := range list {
			o.explain(engine.CheckRequest{Resource: a.Rel.Resource, Permission: a.Rel.Relation, Subject: a.Rel.Subject, Context: a.Context})
		}
	}
	t.Logf("%s: %d resources, %d subjects, %d ResourceAccess listings", f.Name, len(resources), len(subjects), n)
}

func (o *oracleRun) check(req engine.CheckRequest) engine.CheckResult {
	o.t.Helper()
	r, err := o.v.Check(o.ctx, req)
	if err != nil {
		o.t.Fatalf("Check(%v): %v", req, err)
	}
	return r
}

func (o *oracleRun) resourceAccess(res tuple.ObjectRef, ranks []string, subjType string) {
	t := o.t
	t.Helper()
	what := fmt.Sprintf("ResourceAccess(%s, %v, %s)", res, ranks, subjType)
	req := engine.ResourceAccessRequest{Resource: res, Ranks: ranks, SubjectType: subjType}
	got, err := collectAccess(o.ctx, o.v, req)
	// The candidates: every subject LookupSubjects finds for some rank, and
	// the ids a wildcard it finds excludes.
	candidates := map[string]bool{}
	wildcard := false
	for _, p := range ranks {
		for r, err := range o.v.LookupSubjects(o.ctx, engine.LookupSubjectsRequest{Resource: res, Permission: p, SubjectType: subjType}) {
			if err != nil {
				t.Fatalf("LookupSubjects(%s, %s, %s): %v", res, p, subjType, err)
			}
			if r.ID == tuple.Wildcard {
				wildcard = true
				for _, id := range r.Excluded {
					candidates[id] = true
				}
			} else {
				candidates[r.ID] = true
			}
		}
	}
	if errors.Is(err, engine.ErrUnreachable) {
		if len(candidates) > 0 || wildcard {
			t.Errorf("%s: %v, but LookupSubjects finds %v (wildcard %v)", what, err, candidates, wildcard)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var wildcardRole string
	for i, a := range got {
		if a.Subject.ID == tuple.Wildcard {
			if !wildcard {
				t.Errorf("%s: lists %s, which LookupSubjects does not", what, a.Subject)
			}
			if i != 0 {
				t.Errorf("%s: lists %s at %d, not first", what, a.Subject, i)
			}
			wildcardRole = fmt.Sprint(a.Permission, a.Permissionship, a.Missing)
		} else {
			// A subject LookupSubjects does not name must be covered by
			// the wildcard (it holds a rank through user:* alone, and is
			// listed with its own highest one).
			if !candidates[a.Subject.ID] && !wildcard {
				t.Errorf("%s: lists %s, which LookupSubjects does not find", what, a.Subject)
			}
			if r := fmt.Sprint(a.Permission, a.Permissionship, a.Missing); r == wildcardRole {
				t.Errorf("%s: lists %s apart from the wildcard with the same role %s", what, a.Subject, r)
			}
		}
		o.validProof(what+" for "+a.Subject.String(), engine.CheckRequest{Resource: res, Permission: a.Permission, Subject: a.Subject}, a.Permissionship, a.Proof)
	}
	if wildcard && (len(got) == 0 || got[0].Subject.ID != tuple.Wildcard) {
		t.Errorf("%s: LookupSubjects finds %s:*, ResourceAccess does not list it first", what, subjType)
	}
	// One subject a page, resuming after the last one, lists the same.
	var paged []engine.Access
	after := ""
	for {
		req.After, req.Limit = after, 1
		page, err := collectAccess(o.ctx, o.v, req)
		if err != nil {
			t.Fatalf("%s after %q: %v", what, after, err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[0].Subject.ID
		if len(paged) > len(got)+1 {
			break
		}
	}
	if len(paged) != len(got) {
		t.Errorf("%s: one a page lists %d subjects, at once %d", what, len(paged), len(got))
	}
	for i := range min(len(paged), len(got)) {
		if paged[i].Subject != got[i].Subject || paged[i].Permission != got[i].Permission {
			t.Errorf("%s: page %d is %s %s, at once %s %s", what, i, paged[i].Subject, paged[i].Permission, got[i].Subject, got[i].Permission)
		}
	}
}

func collectAccess(ctx context.Context, v *engine.View, req engine.ResourceAccessRequest) ([]engine.Access, error) {
	var out []engine.Access
	for a, err := range v.ResourceAccess(ctx, req) {
		if err != nil {
			return out, err
		}
		out = append(out, a)
	}
	return out, nil
}

// validProof checks a proof (see engine.Explanation.Proof): every
// relationship is stored and visible; the first starts at the resource and
// each other one at the resource or at an earlier one's subject object; one
// whose subject is not where the route ends is continued by one starting at
// its subject object (a later one, or an earlier one two operands share); the others end at the subject (or its
// type's wildcard). And the proof suffices: on those relationships alone,
// Check grants the permission (HAS when want is HAS), so a proof through an
// intersection must show every operand.
func (o *oracleRun) validProof(what string, req engine.CheckRequest, want engine.Permissionship, proof []tuple.Relationship) {
	t := o.t
	t.Helper()
	res, sub := req.Resource, req.Subject
	if len(proof) == 0 {
		if !(sub.Relation != "" && sub.Object() == res) {
			t.Errorf("%s: empty proof", what)
		}
		return
	}
	wild := tuple.SubjectRef{Type: sub.Type, ID: tuple.Wildcard}
	// A subject set is reached at its object: the route then computes the
	// set's relation there (`all_users->member` ends at group:all_users).
	ends := func(s tuple.SubjectRef) bool {
		return s == sub || (sub.Relation == "" && s == wild) || (sub.Relation != "" && s.Object() == sub.Object())
	}
	reached := map[tuple.ObjectRef]bool{res: true}
	for i, r := range proof {
		found := false
		for got, err := range o.reader.Query(o.ctx, tuple.Filter{ResourceType: r.Resource.Type, ResourceIDs: []string{r.Resource.ID}, Relation: r.Relation,
			Subject: &tuple.SubjectFilter{Type: r.Subject.Type, IDs: []string{r.Subject.ID}, Relation: &r.Subject.Relation}}) {
			if err != nil {
				t.Fatal(err)
			}
			found = found || got.Equal(r)
		}
		if !found {
			t.Errorf("%s: proof step %d %s is not stored", what, i, r)
		}
		if (i == 0 && r.Resource != res) || !reached[r.Resource] {
			t.Errorf("%s: proof step %d %s does not start at the resource or where an earlier step leads", what, i, r)
		}
		reached[r.Subject.Object()] = true
		if ends(r.Subject) {
			continue
		}
		continued := slices.ContainsFunc(proof, func(n tuple.Relationship) bool { return n.Resource == r.Subject.Object() })
		if !continued {
			t.Errorf("%s: proof step %d %s ends at %s, neither the subject nor continued", what, i, r, r.Subject)
		}
	}
	only := enginetest.NewMemory(proof...)
	only.Now = func() time.Time { return o.now }
	got, err := o.proofEngine.View(o.s, only, only.Snapshot(1)).Check(o.ctx, req)
	if err != nil {
		t.Fatalf("%s: Check on the proof alone: %v", what, err)
	}
	if got.Permissionship == engine.NoPermission || (want == engine.HasPermission && got.Permissionship != engine.HasPermission) {
		t.Errorf("%s: on the proof's relationships alone Check says %v, want %v; proof %v", what, got.Permissionship, want, proof)
	}
}

func (o *oracleRun) explain(req engine.CheckRequest) {
	t := o.t
	t.Helper()
	ex, err := o.v.Explain(o.ctx, req, o.expired)
	if err != nil {
		t.Fatalf("Explain(%v): %v", req, err)
	}
	want := o.check(req)
	if ex.Result != want.Permissionship || !slices.Equal(ex.Missing, want.Missing) {
		t.Errorf("Explain(%s#%s@%s %v) = %v %v, Check says %v %v", req.Resource, req.Permission, req.Subject, req.Context,
			ex.Result, ex.Missing, want.Permissionship, want.Missing)
		return
	}
	if ex.Result != engine.NoPermission {
		o.validProof(fmt.Sprintf("Explain(%s#%s@%s)", req.Resource, req.Permission, req.Subject), req, ex.Result, ex.Proof)
	}
}
