package engine

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"sort"
	"unsafe"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// LookupSubjects works in two steps: a graph walk over relationships collects
// every subject that could possibly be an answer (a superset, pruned by the
// schema's type graph), then each candidate is verified with Check, which
// makes it agree with Check by construction, caveats and exclusions included.
// LookupResources proves most results during its walk (see reverse.go) and
// verifies only the rest.

// LookupResourcesRequest asks for every resource of ResourceType on which
// Subject has Permission.
type LookupResourcesRequest struct {
	ResourceType string
	Permission   string
	Subject      tuple.SubjectRef
	Context      map[string]any
	// After is a cursor: only resource ids greater than it are returned.
	After string
	// Limit bounds the number of results; 0 means no limit.
	Limit int
}

// LookupResult is one resource (or subject) found by a lookup.
type LookupResult struct {
	ID             string
	Permissionship Permissionship // HasPermission or ConditionalPermission
	Missing        []string
	// Excluded lists subject ids excluded from a wildcard result
	// (LookupSubjects only).
	Excluded []string
}

// LookupResources streams matching resource ids in ascending order.
func (v *View) LookupResources(ctx context.Context, req LookupResourcesRequest) iter.Seq2[LookupResult, error] {
	return func(yield func(LookupResult, error) bool) {
		if err := v.validate("resource", req.ResourceType, req.Permission); err != nil {
			yield(LookupResult{}, err)
			return
		}
		if err := v.validate("subject", req.Subject.Type, req.Subject.Relation); err != nil {
			yield(LookupResult{}, err)
			return
		}
		// Results go out in order as they are known: a proven id at once,
		// a run of ids to verify after one concurrent batch of at most
		// lookupBatch × Concurrency checks. A consumer that stops reading
		// stops the lookup where it is (see stream.go), holding at most one
		// batch.
		n := 0
		batch := lookupBatch * v.engine.cfg.Concurrency
		var pending []candidate // pending[0] is to verify
		unproven := 0
		done := false
		emit := func(r LookupResult, err error) bool {
			if done {
				return false
			}
			if !yield(r, err) || err != nil {
				done = true
				return false
			}
			if n++; req.Limit > 0 && n >= req.Limit {
				done = true
			}
			return !done
		}
		flush := func() bool {
			reqs := make([]CheckRequest, 0, unproven)
			for _, c := range pending {
				if !c.proven {
					reqs = append(reqs, CheckRequest{Resource: tuple.ObjectRef{Type: req.ResourceType, ID: c.id},
						Permission: req.Permission, Subject: req.Subject, Context: req.Context})
				}
			}
			verified := v.checkAll(ctx, reqs)
			for _, c := range pending {
				res := LookupResult{ID: c.id, Permissionship: HasPermission}
				if !c.proven {
					r := verified[0]
					verified = verified[1:]
					if r.Err != nil {
						return emit(LookupResult{}, r.Err)
					}
					if r.Result.Permissionship == NoPermission {
						continue
					}
					res.Permissionship, res.Missing = r.Result.Permissionship, r.Result.Missing
				}
				if !emit(res, nil) {
					return false
				}
			}
			pending, unproven = pending[:0], 0
			return true
		}
		err := v.candidates(ctx, req, func(c candidate) bool {
			if len(pending) == 0 && c.proven {
				return emit(LookupResult{ID: c.id, Permissionship: HasPermission}, nil)
			}
			pending = append(pending, c)
			if !c.proven {
				unproven++
			}
			return (unproven < batch && len(pending) < maxPending) || flush()
		})
		if err != nil {
			if !done {
				yield(LookupResult{}, err)
			}
			return
		}
		if len(pending) > 0 {
			flush()
		}
	}
}

// maxPending bounds the results a lookup holds while a run of them waits
// for its verification.
const maxPending = 1024

// lookupBatch times Config.Concurrency is how many candidates a lookup
// verifies at once.
const lookupBatch = 4

type objKey struct{ typ, id string }

// LookupSubjectsRequest asks for every subject of SubjectType (with
// SubjectRelation, usually empty) that has Permission on Resource.
type LookupSubjectsRequest struct {
	Resource        tuple.ObjectRef
	Permission      string
	SubjectType     string
	SubjectRelation string
	Context         map[string]any
	// Limit bounds concrete results; 0 means no limit.
	Limit int
}

// LookupSubjects streams matching subjects in ascending id order; a wildcard
// result ("*") comes first, with the ids it excludes.
func (v *View) LookupSubjects(ctx context.Context, req LookupSubjectsRequest) iter.Seq2[LookupResult, error] {
	return func(yield func(LookupResult, error) bool) {
		if err := v.validate("resource", req.Resource.Type, req.Permission); err != nil {
			yield(LookupResult{}, err)
			return
		}
		if err := v.validate("subject", req.SubjectType, req.SubjectRelation); err != nil {
			yield(LookupResult{}, err)
			return
		}
		ids, wildcard, err := v.forwardCandidates(ctx, req.Resource, req.Permission, req.SubjectType, req.SubjectRelation)
		if err != nil {
			yield(LookupResult{}, err)
			return
		}
		check := func(id string) (CheckResult, error) {
			return v.Check(ctx, CheckRequest{Resource: req.Resource, Permission: req.Permission,
				Subject: tuple.SubjectRef{Type: req.SubjectType, ID: id, Relation: req.SubjectRelation}, Context: req.Context})
		}
		reqFor := func(id string) CheckRequest {
			return CheckRequest{Resource: req.Resource, Permission: req.Permission,
				Subject: tuple.SubjectRef{Type: req.SubjectType, ID: id, Relation: req.SubjectRelation}, Context: req.Context}
		}
		if !wildcard {
			// Without a wildcard nothing has to wait for the denied ids:
			// verify in batches and send each as it is known.
			n := 0
			for batch := range slices.Chunk(ids, lookupBatch*v.engine.cfg.Concurrency) {
				reqs := make([]CheckRequest, len(batch))
				for i, id := range batch {
					reqs[i] = reqFor(id)
				}
				for i, r := range v.checkAll(ctx, reqs) {
					if r.Err != nil {
						yield(LookupResult{}, r.Err)
						return
					}
					if r.Result.Permissionship == NoPermission {
						continue
					}
					if req.Limit > 0 && n >= req.Limit {
						return
					}
					n++
					if !yield(LookupResult{ID: batch[i], Permissionship: r.Result.Permissionship, Missing: r.Result.Missing}, nil) {
						return
					}
				}
			}
			return
		}
		var results []LookupResult
		var denied []string
		reqs := make([]CheckRequest, len(ids))
		for i, id := range ids {
			reqs[i] = reqFor(id)
		}
		for i, r := range v.checkAll(ctx, reqs) {
			if r.Err != nil {
				yield(LookupResult{}, r.Err)
				return
			}
			if r.Result.Permissionship == NoPermission {
				denied = append(denied, ids[i])
				continue
			}
			results = append(results, LookupResult{ID: ids[i], Permissionship: r.Result.Permissionship, Missing: r.Result.Missing})
		}
		if wildcard {
			res, err := check(tuple.Wildcard)
			if err != nil {
				yield(LookupResult{}, err)
				return
			}
			if res.Permissionship != NoPermission {
				if !yield(LookupResult{ID: tuple.Wildcard, Permissionship: res.Permissionship, Missing: res.Missing, Excluded: denied}, nil) {
					return
				}
			}
		}
		for i, r := range results {
			if req.Limit > 0 && i >= req.Limit {
				return
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}

// forwardCandidates collects the candidates of LookupSubjects: every
// subject of subjType (any relation) met walking down from the resource
// through the relationships that can prove res#perm or take it away;
// wildcard reports whether a `subjType:*` subject was seen (only when
// subjRel is empty: a wildcard is no subject set).
//
// A permission that is an intersection at its top (`(owner + editor) &
// org->active`) holds only subjects every operand holds, so the candidates
// of one operand suffice, provided that operand met no wildcard (a subject
// it holds through `user:*` is no candidate of its own). The operands are
// walked in order until one without a wildcard; only when every operand
// met one are the candidates all of theirs, with the wildcard. Without
// this, `& org->active` made every account of the organization a
// candidate, each verified by a Check.
func (v *View) forwardCandidates(ctx context.Context, res tuple.ObjectRef, perm, subjType, subjRel string) ([]string, bool, error) {
	if r := v.schema.Relation(res.Type, perm); r != nil && r.IsPermission {
		if in, ok := r.Expr.(*schema.Intersection); ok && len(in.Children) > 1 {
			union := map[string]bool{}
			for _, c := range in.Children {
				ids, wildcard, err := v.candidatesBy(ctx, res, v.exprRelations(res.Type, c, subjType), subjType, subjRel)
				if err != nil {
					return nil, false, err
				}
				if !wildcard {
					return ids, false, nil
				}
				for _, id := range ids {
					union[id] = true
				}
			}
			return sortedKeys(union), true, nil
		}
	}
	return v.candidatesBy(ctx, res, v.walkRelations(res.Type, []string{perm}, true, subjType), subjType, subjRel)
}

// candidatesBy walks down from res through rels and returns the subjects of
// subjType met (see forwardCandidates).
func (v *View) candidatesBy(ctx context.Context, res tuple.ObjectRef, rels map[string]typeRelations, subjType, subjRel string) ([]string, bool, error) {
	found := map[string]bool{}
	wildcard := false
	if res.Type == subjType && subjRel != "" {
		found[res.ID] = true // a subject set contains itself
	}
	w := downWalk{rels: rels, what: "lookup"}
	err := v.walkDown(ctx, res, &w, func(sub tuple.SubjectRef) {
		if sub.Type != subjType {
			return
		}
		if sub.ID != tuple.Wildcard {
			found[sub.ID] = true
		} else if subjRel == "" {
			wildcard = true
		}
	})
	if err != nil {
		return nil, false, err
	}
	return sortedKeys(found), wildcard, nil
}

// downWalk is what walkDown reads: per type, the relations to read and
// whether they are all of the type's relations that hold relationships.
type downWalk struct {
	rels map[string]typeRelations
	what string // the request, for the limit's error
}

type typeRelations struct {
	names []string // sorted
	all   bool
}

// walkRelations returns, per type that can lead down to subjType, its
// relations (not permissions) that can take part in proving any of perms
// on typ (with subtracted, also in taking it away).
func (v *View) walkRelations(typ string, perms []string, subtracted bool, subjType string) map[string]typeRelations {
	keys := map[relKey]bool{}
	for _, p := range perms {
		for k := range v.plan.relevant(typ, p, subtracted) {
			keys[k] = true
		}
	}
	return v.relationsOf(typ, keys, subjType)
}

// exprRelations is walkRelations for one operand e of a permission on typ
// (subtracted sides included): the relations e refers to, the tuplesets
// of its arrows, and everything those depend on.
func (v *View) exprRelations(typ string, e schema.Expr, subjType string) map[string]typeRelations {
	keys := map[relKey]bool{}
	v.plan.walkExpr(typ, e, true, func(k relKey) {
		for kk := range v.plan.relevant(k.typ, k.rel, true) {
			keys[kk] = true
		}
	}, func(ts relKey) { keys[ts] = true })
	return v.relationsOf(typ, keys, subjType)
}

// relationsOf keeps, of keys, the relations (not permissions) of types that
// can lead down to subjType, grouped by type; none unless typ itself can.
func (v *View) relationsOf(typ string, keys map[relKey]bool, subjType string) map[string]typeRelations {
	leads := v.plan.typeGraph().above(subjType)
	out := map[string]typeRelations{}
	if !leads[typ] {
		return out
	}
	for k := range keys {
		tr := out[k.typ]
		if r := v.schema.Relation(k.typ, k.rel); r != nil && !r.IsPermission && leads[k.typ] && !slices.Contains(tr.names, k.rel) {
			tr.names = append(tr.names, k.rel)
			out[k.typ] = tr
		}
	}
	for t, tr := range out {
		slices.Sort(tr.names)
		n := 0
		for _, r := range v.schema.Definitions[t].Relations {
			if !r.IsPermission {
				n++
			}
		}
		tr.all = len(tr.names) == n
		out[t] = tr
	}
	return out
}

// walkDown is the downward candidate walk of LookupSubjects and
// ResourceAccess: from res, level by level, it reads the relationships of
// w's relations of every object reached and calls visit with each
// relationship's subject; subjects of types w reads are reached in turn
// (each object once). A type whose relations w reads all is read whole,
// one seek per object; another, one seek per object and relation.
//
// Where one of those relations holds subject sets of itself (group#member
// in group#member) and the view's nested-group index answers, the objects
// of a level grow at once to every object nested under them, so a deep
// nesting is read in one level instead of one per depth. Their
// relationships are still read (members, and the caveated or expiring
// nesting edges the index leaves to the reader), so visit sees what the
// level-by-level walk sees.
func (v *View) walkDown(ctx context.Context, res tuple.ObjectRef, w *downWalk, visit func(tuple.SubjectRef)) error {
	if _, ok := w.rels[res.Type]; !ok {
		return nil
	}
	seen := map[objKey]bool{{res.Type, res.ID}: true}
	limit := v.engine.cfg.MaxLookupCandidates
	frontier := map[string][]string{res.Type: {res.ID}}
	for len(frontier) > 0 {
		cur := frontier
		frontier = map[string][]string{}
		types := make([]string, 0, len(cur))
		for t := range cur {
			types = append(types, t)
		}
		sort.Strings(types)
		for _, t := range types {
			tr := w.rels[t]
			ids := cur[t]
			for _, name := range tr.names {
				cl, ok := v.nested(t, v.schema.Relation(t, name), ids)
				if !ok || len(cl.ids) == len(ids) {
					continue
				}
				for _, id := range cl.ids {
					if k := (objKey{t, id}); !seen[k] {
						seen[k] = true
						ids = append(ids, id)
					}
				}
				if len(seen) > limit {
					return fmt.Errorf("%w: %s examined more than %d candidate objects", ErrTooMany, w.what, limit)
				}
			}
			filters := []tuple.Filter{{ResourceType: t}}
			if !tr.all {
				filters = filters[:0]
				for _, name := range tr.names {
					filters = append(filters, tuple.Filter{ResourceType: t, Relation: name})
				}
			}
			for _, f := range filters {
				for chunk := range slices.Chunk(ids, 500) {
					f.ResourceIDs = chunk
					for rel, err := range v.reader.Query(ctx, f) {
						if err != nil {
							return err
						}
						sub := rel.Subject
						visit(sub)
						k := objKey{sub.Type, sub.ID}
						if sub.ID == tuple.Wildcard || seen[k] {
							continue
						}
						if _, ok := w.rels[sub.Type]; !ok {
							continue
						}
						seen[k] = true
						frontier[sub.Type] = append(frontier[sub.Type], sub.ID)
						if len(seen) > limit {
							return fmt.Errorf("%w: %s examined more than %d candidate objects", ErrTooMany, w.what, limit)
						}
					}
				}
			}
		}
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// ExpandKind says what an expand node is.
type ExpandKind int

const (
	ExpandLeaf ExpandKind = iota
	ExpandUnion
	ExpandIntersection
	ExpandExclusion
)

func (k ExpandKind) String() string {
	return [...]string{"leaf", "union", "intersection", "exclusion"}[k]
}

// ExpandNode is one node of the userset tree of Object#Relation. Leaves list
// the direct subjects of a relation (subject sets are not expanded further,
// as in SpiceDB); operation nodes combine their children.
type ExpandNode struct {
	Kind     ExpandKind
	Object   tuple.ObjectRef
	Relation string
	Subjects []ExpandSubject
	Children []*ExpandNode
}

// ExpandSubject is a direct subject in a leaf, with its caveat if any.
type ExpandSubject struct {
	Subject tuple.SubjectRef
	Caveat  *tuple.Caveat
}

// Expand returns the userset tree of obj#rel. A subtree reached more than
// once (a lattice of arrows) is built once and shared: the result is a DAG in
// memory. Its size as a tree, as a client receives it, is bounded by
// Config.MaxExpandNodes and Config.MaxExpandBytes; a larger one fails with a
// *BudgetError.
func (v *View) Expand(ctx context.Context, obj tuple.ObjectRef, rel string) (*ExpandNode, error) {
	if err := v.validate("resource", obj.Type, rel); err != nil {
		return nil, err
	}
	if err := tuple.ValidateID(obj.ID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	x := &expander{v: v, done: map[expandKey]expanded{}}
	n, _, err := x.expand(ctx, obj, rel, 0)
	return n, err
}

// expander builds one Expand tree within its budgets.
type expander struct {
	v *View
	// nodes and bytes count the tree built so far as a tree: a shared
	// subtree counts each time it is used.
	nodes, bytes int64
	done         map[expandKey]expanded
}

type expandKey struct {
	obj tuple.ObjectRef
	rel string
}

// expanded is a finished subtree and its size as a tree.
type expanded struct {
	n            *ExpandNode
	nodes, bytes int64
}

// spend counts a subtree of the given size and fails past a budget.
func (x *expander) spend(at string, nodes, bytes int64) error {
	x.nodes += nodes
	x.bytes += bytes
	cfg := &x.v.engine.cfg
	if x.nodes > int64(cfg.MaxExpandNodes) {
		return &BudgetError{Budget: BudgetExpandNodes, Limit: int64(cfg.MaxExpandNodes), At: at}
	}
	if x.bytes > cfg.MaxExpandBytes {
		return &BudgetError{Budget: BudgetExpandBytes, Limit: cfg.MaxExpandBytes, At: at}
	}
	return nil
}

// nodeBytes estimates what one node holds, its subjects included.
func nodeBytes(n *ExpandNode) int64 {
	b := int64(unsafe.Sizeof(*n)) + int64(len(n.Object.Type)+len(n.Object.ID)+len(n.Relation)) + 8*int64(cap(n.Children))
	for _, s := range n.Subjects {
		b += int64(unsafe.Sizeof(s)) + int64(len(s.Subject.Type)+len(s.Subject.ID)+len(s.Subject.Relation))
		if s.Caveat != nil {
			b += 64 + int64(len(s.Caveat.Name)) + 64*int64(len(s.Caveat.Context))
		}
	}
	return b
}

// node counts a new node and returns its size as a tree so far.
func (x *expander) node(n *ExpandNode) (expanded, error) {
	b := nodeBytes(n)
	return expanded{n: n, nodes: 1, bytes: b}, x.spend(n.Object.String()+"#"+n.Relation, 1, b)
}

func (x *expander) expand(ctx context.Context, obj tuple.ObjectRef, rel string, depth int) (*ExpandNode, expanded, error) {
	if err := ctx.Err(); err != nil {
		return nil, expanded{}, err
	}
	k := expandKey{obj, rel}
	if d, ok := x.done[k]; ok {
		return d.n, d, x.spend(obj.String()+"#"+rel, d.nodes, d.bytes)
	}
	if depth > x.v.engine.cfg.MaxDepth {
		return nil, expanded{}, fmt.Errorf("%w: expanding %s#%s", ErrMaxDepth, obj, rel)
	}
	r := x.v.schema.Relation(obj.Type, rel)
	var (
		d   expanded
		err error
	)
	switch {
	case r == nil:
		d, err = x.node(&ExpandNode{Kind: ExpandLeaf, Object: obj, Relation: rel})
	case !r.IsPermission:
		n := &ExpandNode{Kind: ExpandLeaf, Object: obj, Relation: rel}
		for t, qerr := range x.v.reader.Query(ctx, tuple.Filter{ResourceType: obj.Type, ResourceIDs: []string{obj.ID}, Relation: rel}) {
			if qerr != nil {
				return nil, expanded{}, qerr
			}
			n.Subjects = append(n.Subjects, ExpandSubject{Subject: t.Subject, Caveat: t.Caveat})
			if len(n.Subjects)%1024 == 0 { // a huge leaf: count it while it grows
				if err := x.spend(obj.String()+"#"+rel, 0, 1024*int64(unsafe.Sizeof(ExpandSubject{}))); err != nil {
					return nil, expanded{}, err
				}
			}
		}
		x.bytes -= int64(len(n.Subjects)/1024) * 1024 * int64(unsafe.Sizeof(ExpandSubject{}))
		d, err = x.node(n)
	default:
		d, err = x.expandExpr(ctx, obj, rel, r.Expr, depth)
	}
	if err != nil {
		return nil, expanded{}, err
	}
	x.done[k] = d
	return d.n, d, nil
}

func (x *expander) expandExpr(ctx context.Context, obj tuple.ObjectRef, rel string, e schema.Expr, depth int) (expanded, error) {
	// op builds an operation node from its children's subtrees.
	op := func(k ExpandKind, children func(add func(expanded)) error) (expanded, error) {
		n := &ExpandNode{Kind: k, Object: obj, Relation: rel}
		d, err := x.node(n)
		if err != nil {
			return d, err
		}
		err = children(func(c expanded) {
			n.Children = append(n.Children, c.n)
			d.nodes += c.nodes
			d.bytes += c.bytes + 8
		})
		return d, err
	}
	exprs := func(k ExpandKind, list []schema.Expr) (expanded, error) {
		return op(k, func(add func(expanded)) error {
			for _, c := range list {
				cd, err := x.expandExpr(ctx, obj, rel, c, depth)
				if err != nil {
					return err
				}
				add(cd)
			}
			return nil
		})
	}
	switch e := e.(type) {
	case *schema.Union:
		return exprs(ExpandUnion, e.Children)
	case *schema.Intersection:
		return exprs(ExpandIntersection, e.Children)
	case *schema.Exclusion:
		return exprs(ExpandExclusion, []schema.Expr{e.Base, e.Subtracted})
	case *schema.RelationRef:
		_, d, err := x.expand(ctx, obj, e.Name, depth+1)
		return d, err
	case *schema.Nil:
		return x.node(&ExpandNode{Kind: ExpandLeaf, Object: obj, Relation: rel})
	case *schema.Arrow:
		kind := ExpandUnion
		if e.Func == schema.ArrowAll {
			kind = ExpandIntersection
		}
		var subjects []tuple.ObjectRef
		for t, err := range x.v.reader.Query(ctx, tuple.Filter{ResourceType: obj.Type, ResourceIDs: []string{obj.ID}, Relation: e.Tupleset}) {
			if err != nil {
				return expanded{}, err
			}
			if x.v.schema.Relation(t.Subject.Type, e.Computed) != nil {
				subjects = append(subjects, t.Subject.Object())
			}
		}
		return op(kind, func(add func(expanded)) error {
			for _, s := range subjects {
				_, cd, err := x.expand(ctx, s, e.Computed, depth+1)
				if err != nil {
					return err
				}
				add(cd)
			}
			return nil
		})
	}
	return expanded{}, fmt.Errorf("%w: unknown expression node %T", ErrInternal, e)
}
