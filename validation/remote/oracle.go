package remote

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/internal/v1pb"
	"github.com/ambit-authz/ambit/tuple"
)

// The oracle: for every resource, permission and subject the document
// mentions, CheckPermission agrees with CheckBulkPermissions, with
// LookupResources over each page size and with LookupSubjects. It follows
// validation/runner's oracle, comparison for comparison, except Expand
// (whose tree needs further checks to decide membership).

type checkKey struct {
	res  tuple.ObjectRef
	perm string
	subj tuple.SubjectRef
}

// comparison is one oracle comparison; it fails when want != got.
type comparison struct {
	what, want, got string
}

func (x *run) oracle(ctx context.Context) error {
	s := x.s
	resList, subjList := x.f.Mentioned()
	resources := make(map[tuple.ObjectRef]bool, len(resList))
	for _, r := range resList {
		resources[r] = true
	}
	valid := func(subj tuple.SubjectRef) bool {
		return s.Definitions[subj.Type] != nil && (subj.Relation == "" || s.Relation(subj.Type, subj.Relation) != nil)
	}

	// 1. CheckPermission on every combination; remember the answers.
	var keys []checkKey
	var reqs []*v1.CheckPermissionRequest
	for _, res := range resList {
		d := s.Definitions[res.Type]
		if d == nil {
			continue
		}
		for _, perm := range d.Order {
			for _, subj := range subjList {
				if !valid(subj) {
					continue
				}
				req, _ := x.checkRequest(res, perm, subj, nil)
				keys = append(keys, checkKey{res, perm, subj})
				reqs = append(reqs, req)
			}
		}
	}
	results, err := x.checkAll(ctx, reqs)
	if err != nil {
		return err
	}
	answers := map[checkKey]string{}
	var checked []checkKey
	for i, a := range results {
		k := keys[i]
		if a.err != nil {
			if skipped(a.err) {
				continue
			}
			return fmt.Errorf("check %s#%s@%s: %w", k.res, k.perm, k.subj, a.err)
		}
		answers[k] = a.perm
		checked = append(checked, k)
	}

	// 2. CheckBulkPermissions agrees.
	batches := (len(checked) + bulkBatch - 1) / bulkBatch
	bulk, err := x.jobs(ctx, batches, func(ctx context.Context, b int) ([]comparison, error) {
		return x.checkBulk(ctx, checked[b*bulkBatch:min((b+1)*bulkBatch, len(checked))], answers)
	})
	if err != nil {
		return err
	}
	x.record(bulk)

	// 3. LookupResources agrees, over every page size.
	type lrJob struct {
		typ, perm string
		subj      tuple.SubjectRef
		page      int
	}
	var lrJobs []lrJob
	for _, typ := range sortedKeys(s.Definitions, func(t string) string { return t }) {
		for _, perm := range s.Definitions[typ].Order {
			for _, subj := range subjList {
				if !valid(subj) {
					continue
				}
				for _, ps := range x.opts.PageSizes {
					lrJobs = append(lrJobs, lrJob{typ, perm, subj, ps})
				}
			}
		}
	}
	lr, err := x.jobs(ctx, len(lrJobs), func(ctx context.Context, i int) ([]comparison, error) {
		j := lrJobs[i]
		var want []idPerm
		for _, res := range resList {
			if res.Type != j.typ {
				continue
			}
			if a, ok := answers[checkKey{res, j.perm, j.subj}]; ok && a != noPermission {
				want = append(want, idPerm{res.ID, a})
			}
		}
		got, err := x.lookupResources(ctx, j.typ, j.perm, j.subj, j.page)
		if err != nil {
			if skipped(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("LookupResources(%s#%s@%s, page %d): %w", j.typ, j.perm, j.subj, j.page, err)
		}
		// Only resources the document mentions are compared: others (none,
		// in practice) cannot be checked against the answers.
		got = slices.DeleteFunc(got, func(r idPerm) bool { return !resources[tuple.ObjectRef{Type: j.typ, ID: r.id}] })
		sortIDs(want)
		sortIDs(got)
		return []comparison{{fmt.Sprintf("LookupResources(%s#%s@%s, page %d)", j.typ, j.perm, j.subj, j.page), fmtIDs(want), fmtIDs(got)}}, nil
	})
	if err != nil {
		return err
	}
	x.record(lr)

	// 4. LookupSubjects agrees.
	kindSet := map[tuple.SubjectRef]bool{}
	for _, subj := range subjList {
		kindSet[tuple.SubjectRef{Type: subj.Type, Relation: subj.Relation}] = true
	}
	kinds := sortedKeys(kindSet, tuple.SubjectRef.String)
	type lsJob struct {
		res  tuple.ObjectRef
		perm string
		kind tuple.SubjectRef
	}
	var lsJobs []lsJob
	for _, res := range resList {
		d := s.Definitions[res.Type]
		if d == nil {
			continue
		}
		for _, perm := range d.Order {
			for _, kind := range kinds {
				if valid(kind) {
					lsJobs = append(lsJobs, lsJob{res, perm, kind})
				}
			}
		}
	}
	ls, err := x.jobs(ctx, len(lsJobs), func(ctx context.Context, i int) ([]comparison, error) {
		j := lsJobs[i]
		found, wildcard, err := x.lookupSubjects(ctx, j.res, j.perm, j.kind)
		if err != nil {
			if skipped(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("LookupSubjects(%s#%s, %s): %w", j.res, j.perm, j.kind, err)
		}
		var out []comparison
		for _, subj := range subjList {
			if subj.Type != j.kind.Type || subj.Relation != j.kind.Relation {
				continue
			}
			a, ok := answers[checkKey{j.res, j.perm, subj}]
			if !ok {
				continue
			}
			got := noPermission
			if p, ok := found[subj.ID]; ok {
				got = p
			} else if wildcard != nil && !slices.Contains(wildcard.excluded, subj.ID) {
				got = wildcard.perm
			}
			out = append(out, comparison{fmt.Sprintf("LookupSubjects(%s#%s, %s) for %s", j.res, j.perm, j.kind, subj), a, got})
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	x.record(ls)
	return nil
}

// jobs runs n jobs, opts.Parallel at a time, and returns their comparisons
// in job order.
func (x *run) jobs(ctx context.Context, n int, job func(ctx context.Context, i int) ([]comparison, error)) ([]comparison, error) {
	out := make([][]comparison, n)
	err := each(ctx, x.opts.Parallel, n, func(ctx context.Context, i int) error {
		c, err := job(ctx, i)
		out[i] = c
		return err
	})
	if err != nil {
		return nil, err
	}
	return slices.Concat(out...), nil
}

// record counts the comparisons and reports those that failed.
func (x *run) record(cs []comparison) {
	for _, c := range cs {
		x.rep.Oracle++
		if c.want != c.got {
			x.rep.Failures = append(x.rep.Failures, Failure{File: x.f.Name, What: "oracle: " + c.what, Want: c.want, Got: c.got})
		}
	}
}

// checkBulk asks CheckBulkPermissions about keys in one request.
func (x *run) checkBulk(ctx context.Context, keys []checkKey, answers map[checkKey]string) ([]comparison, error) {
	req := &v1.CheckBulkPermissionsRequest{Consistency: x.consistency()}
	for _, k := range keys {
		req.Items = append(req.Items, &v1.CheckBulkPermissionsRequestItem{Resource: v1pb.ObjectToV1(k.res), Permission: k.perm, Subject: v1pb.SubjectToV1(k.subj)})
	}
	resp, err := x.c.CheckBulkPermissions(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("CheckBulkPermissions: %w", err)
	}
	if len(resp.GetPairs()) != len(keys) {
		return nil, fmt.Errorf("CheckBulkPermissions answered %d of %d items", len(resp.GetPairs()), len(keys))
	}
	out := make([]comparison, len(keys))
	for i, p := range resp.GetPairs() {
		k := keys[i]
		got := checkName(p.GetItem().GetPermissionship())
		if e := p.GetError(); e != nil {
			got = "error: " + status.FromProto(e).Err().Error()
		}
		out[i] = comparison{fmt.Sprintf("CheckBulk %s#%s@%s", k.res, k.perm, k.subj), answers[k], got}
	}
	return out, nil
}

// idPerm is one LookupResources result.
type idPerm struct{ id, perm string }

func sortIDs(l []idPerm) { sort.Slice(l, func(i, j int) bool { return l[i].id < l[j].id }) }

func fmtIDs(l []idPerm) string {
	parts := make([]string, len(l))
	for i, r := range l {
		parts[i] = r.id + "=" + r.perm
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// lookupResources pages through LookupResources, page results at a time
// (0: one call for everything), each page resuming at the cursor of the
// previous page's last result.
func (x *run) lookupResources(ctx context.Context, typ, perm string, subj tuple.SubjectRef, page int) ([]idPerm, error) {
	var out []idPerm
	var cursor *v1.Cursor
	for {
		n := 0
		err := func() error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := x.c.LookupResources(ctx, &v1.LookupResourcesRequest{Consistency: x.consistency(), ResourceObjectType: typ,
				Permission: perm, Subject: v1pb.SubjectToV1(subj), OptionalLimit: uint32(page), OptionalCursor: cursor})
			if err != nil {
				return err
			}
			return recvAll(stream.Recv, func(r *v1.LookupResourcesResponse) error {
				out = append(out, idPerm{r.GetResourceObjectId(), lookupName(r.GetPermissionship())})
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

// wildcardResult is the `type:*` result of LookupSubjects.
type wildcardResult struct {
	perm     string
	excluded []string
}

// lookupSubjects returns the concrete subjects of kind found (id to
// permissionship) and the wildcard result, if any.
func (x *run) lookupSubjects(ctx context.Context, res tuple.ObjectRef, perm string, kind tuple.SubjectRef) (map[string]string, *wildcardResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := x.c.LookupSubjects(ctx, &v1.LookupSubjectsRequest{Consistency: x.consistency(), Resource: v1pb.ObjectToV1(res), Permission: perm,
		SubjectObjectType: kind.Type, OptionalSubjectRelation: kind.Relation})
	if err != nil {
		return nil, nil, err
	}
	found := map[string]string{}
	var wildcard *wildcardResult
	err = recvAll(stream.Recv, func(r *v1.LookupSubjectsResponse) error {
		id, p := r.GetSubject().GetSubjectObjectId(), r.GetSubject().GetPermissionship()
		if r.GetSubject() == nil { // servers before the subject field
			id, p = r.GetSubjectObjectId(), r.GetPermissionship()
		}
		if id != tuple.Wildcard {
			found[id] = lookupName(p)
			return nil
		}
		w := &wildcardResult{perm: lookupName(p)}
		for _, e := range r.GetExcludedSubjects() {
			w.excluded = append(w.excluded, e.GetSubjectObjectId())
		}
		if len(r.GetExcludedSubjects()) == 0 {
			w.excluded = r.GetExcludedSubjectIds()
		}
		wildcard = w
		return nil
	})
	return found, wildcard, err
}

func sortedKeys[K comparable, V any](m map[K]V, key func(K) string) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return key(out[i]) < key(out[j]) })
	return out
}
