package engine

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/ambit-authz/ambit/tuple"
)

// ErrUnreachable: the request asks about subjects of a type that the schema
// gives no route to any of the permissions asked about. The API maps it to
// FailedPrecondition: the answer would be empty whatever the data.
var ErrUnreachable = errors.New("subject type cannot reach the permission")

// ResourceAccessRequest asks, for every subject of SubjectType, for the
// highest of Ranks (highest first) it holds on Resource.
type ResourceAccessRequest struct {
	Resource    tuple.ObjectRef
	Ranks       []string
	SubjectType string
	Context     map[string]any
	// After resumes a listing: "" starts it, "*" resumes after the
	// wildcard, any other value after that subject id. (Every id character
	// sorts after '*'.)
	After string
	// Limit bounds the subjects returned; 0 means no limit.
	Limit int
}

// Access is one subject of a ResourceAccess listing: the highest ranked
// permission it holds (HasPermission or ConditionalPermission, with the
// missing context), the ids a wildcard subject excludes, and one proof path
// (see Explanation.Proof).
type Access struct {
	Subject        tuple.SubjectRef
	Permission     string
	Permissionship Permissionship
	Missing        []string
	Excluded       []string
	Proof          []tuple.Relationship
}

// validateAccess checks a ResourceAccess request; errors name the request
// field at fault.
func (v *View) validateAccess(req ResourceAccessRequest) error {
	if err := tuple.ValidateID(req.Resource.ID); err != nil {
		return fmt.Errorf("%w: resource: %v", ErrInvalidRequest, err)
	}
	if err := v.validate("resource", req.Resource.Type, ""); err != nil {
		return err
	}
	if len(req.Ranks) == 0 {
		return fmt.Errorf("%w: ranked_permissions is empty: list the permissions from highest to lowest, e.g. [edit, read]", ErrInvalidRequest)
	}
	for i, p := range req.Ranks {
		if err := v.validate(fmt.Sprintf("ranked_permissions[%d]: resource", i), req.Resource.Type, p); err != nil {
			return err
		}
		if j := slices.Index(req.Ranks[:i], p); j >= 0 {
			return fmt.Errorf("%w: ranked_permissions[%d]: %q is listed twice (also at %d)", ErrInvalidRequest, i, p, j)
		}
	}
	if err := v.validate("subject_object_type: subject", req.SubjectType, ""); err != nil {
		return err
	}
	for _, p := range req.Ranks {
		if v.plan.canReach(req.Resource.Type, p, req.SubjectType, "") {
			return nil
		}
	}
	return fmt.Errorf("%w: subject_object_type: the schema gives a %s no route to any of %v on %s", ErrUnreachable, req.SubjectType, req.Ranks, req.Resource.Type)
}

// ResourceAccess streams every subject of req.SubjectType holding any of
// req.Ranks on req.Resource, with the highest it holds, in ascending id
// order after a wildcard subject (`user:*`, first, with the ids that do not
// hold its permission). A subject holding the wildcard's role, the same way,
// is covered by the wildcard's entry and not listed apart. Candidates come
// from a walk like LookupSubjects'; each is checked rank by rank with
// CheckBulk's evaluation, so the answers are Check's; the proof path is then
// found by a walk that stops at the first grant.
func (v *View) ResourceAccess(ctx context.Context, req ResourceAccessRequest) iter.Seq2[Access, error] {
	return func(yield func(Access, error) bool) {
		if err := v.validateAccess(req); err != nil {
			yield(Access{}, err)
			return
		}
		ids, wildcard, err := v.accessCandidates(ctx, req, false)
		if err == nil && wildcard {
			// The subjects a wildcard excludes are found on the
			// subtracted sides too.
			ids, wildcard, err = v.accessCandidates(ctx, req, true)
		}
		if err != nil {
			yield(Access{}, err)
			return
		}
		n := 0
		emit := func(a Access) bool {
			if !yield(a, nil) {
				return false
			}
			n++
			return req.Limit <= 0 || n < req.Limit
		}
		var wild *Access
		if wildcard {
			a, ok, err := v.wildcardAccess(ctx, req, ids)
			if err != nil {
				yield(Access{}, err)
				return
			}
			if ok {
				wild = &a
				if req.After == "" && !emit(a) {
					return
				}
			}
		}
		i := sort.SearchStrings(ids, req.After)
		if i < len(ids) && ids[i] == req.After {
			i++
		}
		for chunk := range slices.Chunk(ids[i:], 4*v.engine.cfg.Concurrency) {
			best, err := v.rankAll(ctx, req, chunk)
			if err != nil {
				yield(Access{}, err)
				return
			}
			for j := range chunk {
				a := best[j]
				if a.Permission == "" || wild != nil && sameRole(a, *wild) {
					continue
				}
				if a.Proof, err = v.proofOf(ctx, CheckRequest{Resource: req.Resource, Permission: a.Permission, Subject: a.Subject, Context: req.Context}); err != nil {
					yield(Access{}, err)
					return
				}
				if !emit(a) {
					return
				}
			}
		}
	}
}

// sameRole reports whether two entries hold the same permission the same
// way: a subject with the wildcard's role is not listed apart from it.
func sameRole(a, b Access) bool {
	return a.Permission == b.Permission && a.Permissionship == b.Permissionship && slices.Equal(a.Missing, b.Missing)
}

// accessCandidates walks down from the resource through the relations that
// can prove any rank (with subtracted, also those that can take it away;
// see walkRelations and walkDown), collecting the ids of subjects of the
// wanted type, sorted; wildcard reports a `type:*` subject. Without a
// wildcard, a subject named only on a subtracted side holds nothing, so the
// first walk leaves those sides (an organization's deactivated list, say)
// unread.
func (v *View) accessCandidates(ctx context.Context, req ResourceAccessRequest, subtracted bool) ([]string, bool, error) {
	found := map[string]bool{}
	wildcard := false
	w := downWalk{rels: v.walkRelations(req.Resource.Type, req.Ranks, subtracted, req.SubjectType), what: "ResourceAccess"}
	err := v.walkDown(ctx, req.Resource, &w, func(sub tuple.SubjectRef) {
		if sub.Type != req.SubjectType {
			return
		}
		if sub.ID == tuple.Wildcard {
			wildcard = true
		} else if sub.Relation == "" {
			found[sub.ID] = true
		}
	})
	if err != nil {
		return nil, false, err
	}
	return sortedKeys(found), wildcard, nil
}

// rankAll finds, for each subject id, the first rank it holds: every
// subject is checked for the first rank at once, those denied for the next,
// and so on. An entry with no Permission holds none.
func (v *View) rankAll(ctx context.Context, req ResourceAccessRequest, ids []string) ([]Access, error) {
	out := make([]Access, len(ids))
	pending := make([]int, len(ids))
	for i, id := range ids {
		out[i].Subject = tuple.SubjectRef{Type: req.SubjectType, ID: id}
		pending[i] = i
	}
	for _, p := range req.Ranks {
		if len(pending) == 0 {
			break
		}
		reqs := make([]CheckRequest, len(pending))
		for j, i := range pending {
			reqs[j] = CheckRequest{Resource: req.Resource, Permission: p, Subject: out[i].Subject, Context: req.Context}
		}
		next := pending[:0:0]
		for j, r := range v.checkAll(ctx, reqs) {
			if r.Err != nil {
				return nil, r.Err
			}
			i := pending[j]
			if r.Result.Permissionship == NoPermission {
				next = append(next, i)
				continue
			}
			out[i].Permission, out[i].Permissionship, out[i].Missing = p, r.Result.Permissionship, r.Result.Missing
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pending = next
	}
	return out, nil
}

// wildcardAccess answers for `type:*`: its first rank, and the candidate
// ids denied that rank.
func (v *View) wildcardAccess(ctx context.Context, req ResourceAccessRequest, ids []string) (Access, bool, error) {
	wild := tuple.SubjectRef{Type: req.SubjectType, ID: tuple.Wildcard}
	for _, p := range req.Ranks {
		r, err := v.Check(ctx, CheckRequest{Resource: req.Resource, Permission: p, Subject: wild, Context: req.Context})
		if err != nil {
			return Access{}, false, err
		}
		if r.Permissionship == NoPermission {
			continue
		}
		a := Access{Subject: wild, Permission: p, Permissionship: r.Permissionship, Missing: r.Missing}
		for chunk := range slices.Chunk(ids, v.engine.cfg.MaxBulkChecks) {
			reqs := make([]CheckRequest, len(chunk))
			for i, id := range chunk {
				reqs[i] = CheckRequest{Resource: req.Resource, Permission: p, Subject: tuple.SubjectRef{Type: req.SubjectType, ID: id}, Context: req.Context}
			}
			for i, br := range v.checkAll(ctx, reqs) {
				if br.Err != nil {
					return Access{}, false, br.Err
				}
				if br.Result.Permissionship == NoPermission {
					a.Excluded = append(a.Excluded, chunk[i])
				}
			}
		}
		if a.Proof, err = v.proofOf(ctx, CheckRequest{Resource: req.Resource, Permission: p, Subject: wild, Context: req.Context}); err != nil {
			return Access{}, false, err
		}
		return a, true, nil
	}
	return Access{}, false, nil
}

// PermissionResult is one answer of SubjectPermissions.
type PermissionResult struct {
	Permission     string
	Permissionship Permissionship
	Missing        []string
}

// SubjectPermissions checks subject against each of perms on resource (every
// relation and permission of the resource's type, in schema order, when
// perms is empty) at one snapshot, with Check's answers. The checks run one
// after the other in one evaluation, so a sub-problem two permissions share
// (the resource's editors under both edit and view) is evaluated once; an
// answer in the result cache is taken from there. Without a result cache
// the evaluation is the proof walk's (explain.go), whose memo does the
// sharing.
//
// With a result cache the whole answer is also kept as one entry (see
// permsOutcome), so asking again at the same revision costs one lookup, as a
// cached Check does, not one per permission.
func (v *View) SubjectPermissions(ctx context.Context, resource tuple.ObjectRef, subject tuple.SubjectRef, perms []string, cctx map[string]any) ([]PermissionResult, error) {
	if err := v.validate("resource", resource.Type, ""); err != nil {
		return nil, err
	}
	all := len(perms) == 0
	if all {
		perms = v.schema.Definitions[resource.Type].Order
	}
	if len(perms) > v.engine.cfg.MaxBulkChecks {
		return nil, fmt.Errorf("%w: permissions: %d in one request, the limit is %d", ErrTooMany, len(perms), v.engine.cfg.MaxBulkChecks)
	}
	rels := v.schema.Definitions[resource.Type].Relations
	for i, p := range perms {
		if rels[p] == nil {
			return nil, v.validate(fmt.Sprintf("permissions[%d]: resource", i), resource.Type, p)
		}
	}
	if len(perms) == 0 {
		return []PermissionResult{}, nil
	}
	if err := v.validateCheck(CheckRequest{Resource: resource, Permission: perms[0], Subject: subject}); err != nil {
		return nil, err
	}
	ck, err := contextKey(cctx)
	if err != nil {
		return nil, err
	}
	var whole string
	if v.engine.perms != nil {
		whole = v.permsKey(resource, subject, perms, all, ck)
		if o, ok := v.engine.perms.Get(whole); ok && o.validAt(v.now) {
			return slices.Clone(o.results), nil
		}
	}
	out := make([]PermissionResult, len(perms))
	// With the result cache, one checker: its request memo shares
	// sub-problems, and its answers fill the cache. Without it the
	// checker memoises nothing, and the proof walker's memo (which has no
	// cache to fill) does the sharing.
	c := &checker{v: v, subject: subject, context: cctx, ctxKey: ck, stats: &Stats{}}
	e := &explainer{v: v, subject: subject, context: cctx, ctxKey: ck}
	var until int64 // the earliest expiration among the answers
	for i, p := range perms {
		var t tri
		switch {
		case v.engine.cache != nil:
			key := v.cacheKey(resource.Type, resource.ID, p, subject, ck)
			o, cached := v.lookupCache(key)
			if !cached {
				c.rootKey, c.expires = key, 0
				o.t, err = c.checkAny(ctx, resource.Type, []string{resource.ID}, p, 0, nil)
				o.until = c.expires
			}
			t, until = o.t, earliest(until, o.until)
		default:
			var st step
			st, err = e.eval(ctx, resource.Type, resource.ID, p, 0, nil)
			t = st.t
		}
		if err != nil {
			return nil, fmt.Errorf("permissions[%d] (%s): %w", i, p, err)
		}
		r := toResult(t, Stats{})
		out[i] = PermissionResult{Permission: p, Permissionship: r.Permissionship, Missing: r.Missing}
	}
	if whole != "" {
		o := permsOutcome{results: out, until: until}
		v.engine.perms.Set(whole, o, o.cost(whole))
		out = slices.Clone(out)
	}
	return out, nil
}

// permsOutcome is a SubjectPermissions answer kept whole: the answers in
// request order, valid until the earliest expiration among the
// relationships any of them read (0: none). Its key carries the view's
// prefix (schema, source, revision) like every result, so a write makes it
// unreachable; the per-permission results it was made from stay in the
// result cache too.
type permsOutcome struct {
	results []PermissionResult
	until   int64
}

// permsCacheShare: SubjectPermissions' whole answers get 1/permsCacheShare
// of Config.CacheMaxCost, the result cache the rest.
const permsCacheShare = 16

func (o permsOutcome) validAt(now int64) bool { return o.until == 0 || now < o.until }

func (o permsOutcome) cost(key string) int64 {
	n := int64(len(key)) + resultSlotBytes + int64(cap(o.results))*int64(unsafe.Sizeof(PermissionResult{}))
	for _, r := range o.results {
		n += 16 * int64(len(r.Missing))
	}
	return n
}

// permsKey is the cache key of a SubjectPermissions answer: the view's
// prefix, the resource, "#*" and the permission list ("#*" alone for every
// permission of the type: the list the schema gives), the subject and the
// caveat context. "*" and "," occur in no relation name, so no such key is a
// Check's key and no two lists share one.
func (v *View) permsKey(resource tuple.ObjectRef, subject tuple.SubjectRef, perms []string, all bool, ctxKey string) string {
	var b strings.Builder
	b.WriteString(v.prefix)
	b.WriteString(resource.Type)
	b.WriteByte(':')
	b.WriteString(resource.ID)
	b.WriteString("#*")
	if !all {
		for i, p := range perms {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(p)
		}
	}
	b.WriteByte('@')
	b.WriteString(subject.String())
	b.WriteByte('|')
	b.WriteString(ctxKey)
	return b.String()
}
