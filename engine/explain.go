package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// Explain answers a check and says why: for a grant, the shortest proof
// path; for a denial, every route the schema offers to the permission and
// what is missing on it (the relationship that would grant, the group
// memberships that would, the exclusion that removed the subject, the caveat
// that failed with the values it saw, the relationship that expired, the
// arrow with no parent).
//
// It walks the schema expression itself, one object at a time, without the
// result cache or in-flight sharing, and evaluates every operand (no
// short-circuit, except that an exclusion whose base denies skips its
// subtracted side), so it costs more than a cold Check. Its result equals
// Check's: the same three-valued logic, the same cycle rule (an object
// already being evaluated for the same relation higher up adds nothing).

// WhyKind says what an explanation node is.
type WhyKind uint8

const (
	// WhyCheck: resource#relation evaluated for the subject.
	WhyCheck WhyKind = iota + 1
	// WhyUnion, WhyIntersection, WhyExclusion: an operator of a permission.
	WhyUnion
	WhyIntersection
	WhyExclusion
	// WhyArrow: tupleset->computed or tupleset.all(computed) (Relation holds
	// that text).
	WhyArrow
	// WhyRelationship: a stored relationship the evaluation relied on.
	WhyRelationship
	// WhyMissing: a relationship that would grant and is not stored.
	WhyMissing
	// WhyExpired: a relationship that would grant and has expired.
	WhyExpired
	// WhyNoParent: an arrow whose tupleset holds no relationship.
	WhyNoParent
)

func (k WhyKind) String() string {
	switch k {
	case WhyCheck:
		return "check"
	case WhyUnion:
		return "union"
	case WhyIntersection:
		return "intersection"
	case WhyExclusion:
		return "exclusion"
	case WhyArrow:
		return "arrow"
	case WhyRelationship:
		return "relationship"
	case WhyMissing:
		return "missing"
	case WhyExpired:
		return "expired"
	case WhyNoParent:
		return "no parent"
	}
	return fmt.Sprintf("WhyKind(%d)", k)
}

// Why is one node of an explanation. Relationship is set for relationship
// and expired nodes, and for a missing node that stands for a direct
// relationship (the one that would grant; a missing subject-set membership
// has only a Note); Note says what a reader needs to know in words.
type Why struct {
	Kind         WhyKind
	Resource     tuple.ObjectRef
	Relation     string
	Result       Permissionship
	Missing      []string
	Relationship *tuple.Relationship
	Note         string
	Children     []*Why
}

// Explanation is Explain's answer. Proof is the shortest set of stored
// relationships that grants the permission (empty for a denial, and for a
// subject set asked about itself): a chain from the resource down to the
// subject, which forks where the route crosses an intersection or an
// all() arrow, since every operand (every parent) must grant. It is listed
// depth first: the first relationship starts at the resource, each other
// one at the resource or at an object an earlier one leads to (its subject
// object), every operand's chain in full before the next; every branch ends
// at the subject (or its wildcard). Those relationships alone grant the
// permission (the subtracted side of an exclusion shows in Root, not here).
// Truncated reports that the tree was cut at MaxWhyNodes nodes (the result
// and proof are complete).
type Explanation struct {
	Result    Permissionship
	Missing   []string
	Proof     []tuple.Relationship
	Root      *Why
	Truncated bool
}

// MaxWhyNodes bounds the nodes of one explanation tree.
const MaxWhyNodes = 2000

// Explain explains one check at the view's revision. expired, when not nil,
// reads the same snapshot with expired relationships visible (a store
// snapshot's WithExpired); relationships it yields that have expired at the
// view's time are reported where they would have counted.
func (v *View) Explain(ctx context.Context, req CheckRequest, expired Reader) (Explanation, error) {
	if err := v.validateCheck(req); err != nil {
		return Explanation{}, err
	}
	if _, err := contextKey(req.Context); err != nil {
		return Explanation{}, err
	}
	e := &explainer{v: v, subject: req.Subject, context: req.Context, expired: expired, full: true}
	st, err := e.eval(ctx, req.Resource.Type, req.Resource.ID, req.Permission, 0, nil)
	if err != nil {
		return Explanation{}, err
	}
	res := toResult(st.t, Stats{})
	out := Explanation{Result: res.Permissionship, Missing: res.Missing, Root: st.node, Truncated: e.truncated}
	if !st.t.no() {
		out.Proof = st.proof
	}
	return out, nil
}

// proofOf returns one proof path of req (nil when it is denied), walking
// only until the first grant and skipping branches the result cache holds
// as denied; ResourceAccess uses it after its checks have given the answer.
func (v *View) proofOf(ctx context.Context, req CheckRequest) ([]tuple.Relationship, error) {
	ck, err := contextKey(req.Context)
	if err != nil {
		return nil, err
	}
	e := &explainer{v: v, subject: req.Subject, context: req.Context, ctxKey: ck}
	st, err := e.eval(ctx, req.Resource.Type, req.Resource.ID, req.Permission, 0, nil)
	if err != nil || st.t.no() {
		return nil, err
	}
	return st.proof, nil
}

// explainer evaluates one (subject, context) for Explain (full: every
// operand, with a tree) or for a proof (not full: no tree, stop at a grant);
// SubjectPermissions evaluates with a proof walker when there is no result
// cache.
type explainer struct {
	v         *View
	subject   tuple.SubjectRef
	context   map[string]any
	expired   Reader
	full      bool
	ctxKey    string // for proofs: denials in the result cache prune the walk
	nodes     int
	truncated bool
	memo      map[relKeyID]step
	cycles    int // branches cut by the cycle rule; results under a cut are not memoised
}

type relKeyID struct{ typ, id, rel string }

// memoNote marks a node evaluated earlier in the same explanation; its
// children are under that first node.
const memoNote = "as evaluated above"

// step is a sub-problem's result, its best proof and its node (nil when not
// building a tree, or past MaxWhyNodes).
type step struct {
	t     tri
	proof []tuple.Relationship
	node  *Why
}

func strength(t tri) int {
	switch t.state {
	case stYes:
		return 2
	case stMaybe:
		return 1
	}
	return 0
}

// or combines two alternatives: the result is their disjunction, the proof
// the strongest one's, the shorter on a tie.
func (a step) or(b step) step {
	out := step{t: a.t.or(b.t), proof: a.proof}
	sa, sb := strength(a.t), strength(b.t)
	if sb > sa || (sb == sa && sb > 0 && len(b.proof) < len(a.proof)) {
		out.proof = b.proof
	}
	return out
}

// node returns a new tree node, or nil when not building a tree or past the
// bound.
func (e *explainer) node(kind WhyKind, obj tuple.ObjectRef, rel string) *Why {
	if !e.full {
		return nil
	}
	if e.nodes >= MaxWhyNodes {
		e.truncated = true
		return nil
	}
	e.nodes++
	return &Why{Kind: kind, Resource: obj, Relation: rel}
}

func (w *Why) add(c *Why) {
	if w != nil && c != nil {
		w.Children = append(w.Children, c)
	}
}

func (w *Why) set(t tri, note string) {
	if w == nil {
		return
	}
	r := toResult(t, Stats{})
	w.Result, w.Missing = r.Permissionship, r.Missing
	if note != "" {
		w.Note = note
	}
}

// eval explains whether the subject is in typ:id#rel.
func (e *explainer) eval(ctx context.Context, typ, id, rel string, depth int, path *frame) (step, error) {
	if err := ctx.Err(); err != nil {
		return step{}, err
	}
	obj := tuple.ObjectRef{Type: typ, ID: id}
	n := e.node(WhyCheck, obj, rel)
	s := e.subject
	finish := func(st step, note string) (step, error) {
		n.set(st.t, note)
		st.node = n
		return st, nil
	}
	if s.Relation != "" && typ == s.Type && rel == s.Relation && id == s.ID {
		return finish(step{t: triYes}, "the subject itself")
	}
	r := e.v.schema.Relation(typ, rel)
	if r == nil {
		return finish(step{t: triNo}, fmt.Sprintf("type %s has no relation or permission %q", typ, rel))
	}
	if !e.v.plan.canReach(typ, rel, s.Type, s.Relation) {
		return finish(step{t: triNo}, fmt.Sprintf("the schema gives %s no route to %s#%s", subjectKind(s), typ, rel))
	}
	if path.find(node{typ, rel, id}) != nil {
		e.cycles++
		return finish(step{t: triNo}, "a cycle: already being evaluated above")
	}
	if depth > e.v.engine.cfg.MaxDepth {
		return step{}, fmt.Errorf("%w: explaining %s#%s for %s went deeper than %d levels", ErrMaxDepth, obj, rel, s, e.v.engine.cfg.MaxDepth)
	}
	if !e.full && e.v.engine.cache != nil {
		// A proof walk follows the checks just answered: a branch the
		// result cache knows to be denied holds no proof.
		if o, ok := e.v.lookupCache(e.v.cacheKey(typ, id, rel, s, e.ctxKey)); ok && o.t.no() {
			return finish(step{t: triNo}, "")
		}
	}
	k := relKeyID{typ, id, rel}
	if st, ok := e.memo[k]; ok {
		return finish(step{t: st.t, proof: st.proof}, memoNote)
	}
	before := e.cycles
	next := &frame{typ: typ, rel: rel, ids: []string{id}, parent: path}
	var (
		st  step
		err error
	)
	if r.IsPermission {
		st, err = e.expr(ctx, typ, id, r.Expr, depth, next)
		n.add(st.node)
	} else {
		st, err = e.direct(ctx, typ, id, r, depth, next, n)
	}
	if err != nil {
		return step{}, err
	}
	if e.cycles == before {
		if e.memo == nil {
			e.memo = map[relKeyID]step{}
		}
		e.memo[k] = step{t: st.t, proof: st.proof}
	}
	return finish(st, "")
}

func subjectKind(s tuple.SubjectRef) string {
	if s.Relation != "" {
		return "a " + s.Type + "#" + s.Relation
	}
	return "a " + s.Type
}

// direct explains a relation: relationships naming the subject (or its
// wildcard), then subject sets, each explained in turn.
func (e *explainer) direct(ctx context.Context, typ, id string, r *schema.Relation, depth int, path *frame, n *Why) (step, error) {
	s := e.subject
	obj := tuple.ObjectRef{Type: typ, ID: id}
	best := step{t: triNo}
	exact, wildcard := allowsDirect(r, s.Type, s.Relation)
	if exact || wildcard {
		var subjIDs []string
		if exact {
			subjIDs = append(subjIDs, s.ID)
		}
		if wildcard && s.ID != tuple.Wildcard {
			subjIDs = append(subjIDs, tuple.Wildcard)
		}
		srel := s.Relation
		f := tuple.Filter{ResourceType: typ, ResourceIDs: []string{id}, Relation: r.Name,
			Subject: &tuple.SubjectFilter{Type: s.Type, IDs: subjIDs, Relation: &srel}}
		rels, err := e.v.collect(ctx, f, nil)
		if err != nil {
			return step{}, err
		}
		for _, rel := range rels {
			t, note, err := e.caveat(rel)
			if err != nil {
				return step{}, err
			}
			c := e.node(WhyRelationship, obj, r.Name)
			if c != nil {
				c.Relationship = &rel
			}
			c.set(t, note)
			n.add(c)
			if best = best.or(step{t: t, proof: []tuple.Relationship{rel}}); !e.full && best.t.yes() {
				return best, nil
			}
		}
		if len(rels) == 0 && e.full {
			want := s
			if !exact {
				want = tuple.SubjectRef{Type: s.Type, ID: tuple.Wildcard}
			}
			if c := e.node(WhyMissing, obj, r.Name); c != nil {
				c.Relationship = &tuple.Relationship{Resource: obj, Relation: r.Name, Subject: want}
				c.set(triNo, "needs "+c.Relationship.Key().String())
				n.add(c)
			}
		}
		if err := e.reportExpired(ctx, f, n); err != nil {
			return step{}, err
		}
	}
	var seen []relKey
	for _, at := range r.AllowedTypes {
		k := relKey{at.Type, at.Relation}
		if at.Relation == "" || slices.Contains(seen, k) {
			continue
		}
		seen = append(seen, k)
		if !e.v.plan.canReach(at.Type, at.Relation, s.Type, s.Relation) {
			continue
		}
		atRel := at.Relation
		f := tuple.Filter{ResourceType: typ, ResourceIDs: []string{id}, Relation: r.Name,
			Subject: &tuple.SubjectFilter{Type: at.Type, Relation: &atRel}}
		rels, err := e.v.collect(ctx, f, nil)
		if err != nil {
			return step{}, err
		}
		for _, rel := range rels {
			st, err := e.guarded(ctx, rel, at.Relation, depth, path)
			if err != nil {
				return step{}, err
			}
			n.add(st.node)
			if best = best.or(st); !e.full && best.t.yes() {
				return best, nil
			}
		}
		if len(rels) == 0 && e.full {
			if c := e.node(WhyMissing, obj, r.Name); c != nil {
				c.set(triNo, fmt.Sprintf("or membership of a %s#%s that holds %s#%s: there is none", at.Type, at.Relation, obj, r.Name))
				n.add(c)
			}
		} else if e.full && best.t.no() && n != nil {
			var names []string
			for _, rel := range rels {
				names = append(names, rel.Subject.Object().String())
			}
			n.Note = fmt.Sprintf("needs membership of a %s that holds %s#%s: %s", at.Type, obj, r.Name, strings.Join(names, ", "))
		}
		if err := e.reportExpired(ctx, f, n); err != nil {
			return step{}, err
		}
	}
	return best, nil
}

// guarded explains "rel's caveat holds and the subject is in
// rel.Subject#relation": a relationship node over the subject set's node.
func (e *explainer) guarded(ctx context.Context, rel tuple.Relationship, relation string, depth int, path *frame) (step, error) {
	ct, note, err := e.caveat(rel)
	if err != nil {
		return step{}, err
	}
	c := e.node(WhyRelationship, rel.Resource, rel.Relation)
	if c != nil {
		c.Relationship = &rel
	}
	if ct.no() {
		c.set(triNo, note)
		return step{t: triNo, node: c}, nil
	}
	sub, err := e.eval(ctx, rel.Subject.Type, rel.Subject.ID, relation, depth+1, path)
	if err != nil {
		return step{}, err
	}
	c.add(sub.node)
	t := ct.and(sub.t)
	c.set(t, note)
	return step{t: t, proof: append([]tuple.Relationship{rel}, sub.proof...), node: c}, nil
}

// expr explains a permission expression for one object.
func (e *explainer) expr(ctx context.Context, typ, id string, x schema.Expr, depth int, path *frame) (step, error) {
	obj := tuple.ObjectRef{Type: typ, ID: id}
	switch x := x.(type) {
	case *schema.Nil:
		n := e.node(WhyCheck, obj, "nil")
		n.set(triNo, "nil: the empty set")
		return step{t: triNo, node: n}, nil
	case *schema.RelationRef:
		return e.eval(ctx, typ, id, x.Name, depth+1, path)
	case *schema.Union:
		n := e.node(WhyUnion, obj, "")
		best := step{t: triNo}
		for _, c := range x.Children {
			st, err := e.expr(ctx, typ, id, c, depth, path)
			if err != nil {
				return step{}, err
			}
			n.add(st.node)
			if best = best.or(st); !e.full && best.t.yes() {
				break
			}
		}
		n.set(best.t, "")
		best.node = n
		return best, nil
	case *schema.Intersection:
		n := e.node(WhyIntersection, obj, "")
		out := step{t: triYes}
		var missing []string
		for _, c := range x.Children {
			st, err := e.expr(ctx, typ, id, c, depth, path)
			if err != nil {
				return step{}, err
			}
			n.add(st.node)
			out.proof = joinProofs(out.proof, st.proof)
			if st.t.no() && st.node != nil {
				missing = append(missing, whatOf(st.node))
			}
			if out.t = out.t.and(st.t); !e.full && out.t.no() {
				break
			}
		}
		note := ""
		if len(missing) > 0 {
			note = "every operand is needed; missing: " + strings.Join(missing, ", ")
		}
		n.set(out.t, note)
		out.node = n
		if out.t.no() {
			out.proof = nil
		}
		return out, nil
	case *schema.Exclusion:
		n := e.node(WhyExclusion, obj, "")
		base, err := e.expr(ctx, typ, id, x.Base, depth, path)
		if err != nil {
			return step{}, err
		}
		n.add(base.node)
		if base.t.no() {
			n.set(triNo, "")
			return step{t: triNo, node: n}, nil
		}
		sub, err := e.expr(ctx, typ, id, x.Subtracted, depth, path)
		if err != nil {
			return step{}, err
		}
		n.add(sub.node)
		t := base.t.and(sub.t.not())
		note := ""
		switch {
		case sub.t.yes():
			note = "excluded by " + proofText(sub.proof)
		case sub.t.maybe():
			note = "excluded if the missing context grants " + proofText(sub.proof)
		}
		n.set(t, note)
		out := step{t: t, node: n}
		if !t.no() {
			out.proof = base.proof
		}
		return out, nil
	case *schema.Arrow:
		return e.arrow(ctx, typ, id, x, depth, path)
	}
	return step{}, fmt.Errorf("%w: unknown expression node %T", ErrInternal, x)
}

// joinProofs returns the proof of "a and b": a's relationships, then those
// of b that a does not hold. Both start at the object the conjunction is
// evaluated on, so the result is a tree in depth-first order (see
// Explanation.Proof). It never changes a or b (steps share them).
func joinProofs(a, b []tuple.Relationship) []tuple.Relationship {
	if len(a) == 0 {
		return b
	}
	out := slices.Clip(a)
	for _, r := range b {
		if !slices.ContainsFunc(out, r.Equal) {
			out = append(out, r)
		}
	}
	return out
}

// whatOf names what a node stands for, for notes.
func whatOf(w *Why) string {
	switch w.Kind {
	case WhyCheck:
		return w.Resource.String() + "#" + w.Relation
	case WhyArrow:
		return w.Resource.String() + " " + w.Relation
	case WhyUnion:
		// "owner or editor" says more than "union".
		parts := make([]string, 0, len(w.Children))
		for _, c := range w.Children {
			parts = append(parts, whatOf(c))
		}
		if len(parts) > 0 {
			return "one of (" + strings.Join(parts, " or ") + ")"
		}
	case WhyExclusion:
		if len(w.Children) > 0 {
			return whatOf(w.Children[0])
		}
	}
	return w.Kind.String()
}

// proofText prints a proof path: its last relationship, and the route to it.
func proofText(p []tuple.Relationship) string {
	if len(p) == 0 {
		return "(no relationship)"
	}
	out := p[len(p)-1].Key().String()
	if len(p) > 1 {
		var via []string
		for _, r := range p[:len(p)-1] {
			via = append(via, r.Key().String())
		}
		out += " (via " + strings.Join(via, " → ") + ")"
	}
	return out
}

// arrow explains tupleset->computed (any) and tupleset.all(computed).
func (e *explainer) arrow(ctx context.Context, typ, id string, a *schema.Arrow, depth int, path *frame) (step, error) {
	obj := tuple.ObjectRef{Type: typ, ID: id}
	label := a.Tupleset + "->" + a.Computed
	if a.Func == schema.ArrowAll {
		label = a.Tupleset + ".all(" + a.Computed + ")"
	}
	n := e.node(WhyArrow, obj, label)
	f := tuple.Filter{ResourceType: typ, ResourceIDs: []string{id}, Relation: a.Tupleset}
	rels, err := e.v.collect(ctx, f, nil)
	if err != nil {
		return step{}, err
	}
	s := e.subject
	var out step
	if a.Func == schema.ArrowAll {
		out = step{t: triYes}
		for _, rel := range rels {
			var st step
			if e.v.schema.Relation(rel.Subject.Type, a.Computed) != nil {
				if st, err = e.guarded(ctx, rel, a.Computed, depth, path); err != nil {
					return step{}, err
				}
			} else {
				st = step{t: triNo}
			}
			n.add(st.node)
			out.proof = joinProofs(out.proof, st.proof)
			if out.t = out.t.and(st.t); !e.full && out.t.no() {
				break
			}
		}
		if len(rels) == 0 {
			out.t = triNo
		}
		if out.t.no() {
			out.proof = nil
		}
	} else {
		out = step{t: triNo}
		for _, rel := range rels {
			st := rel.Subject.Type
			if e.v.schema.Relation(st, a.Computed) == nil || !e.v.plan.canReach(st, a.Computed, s.Type, s.Relation) {
				continue
			}
			sub, err := e.guarded(ctx, rel, a.Computed, depth, path)
			if err != nil {
				return step{}, err
			}
			n.add(sub.node)
			if out = out.or(sub); !e.full && out.t.yes() {
				break
			}
		}
	}
	if len(rels) == 0 && e.full {
		if c := e.node(WhyNoParent, obj, a.Tupleset); c != nil {
			c.set(triNo, fmt.Sprintf("no %s#%s relationship: %s reaches nothing", obj, a.Tupleset, label))
			n.add(c)
		}
	}
	if err := e.reportExpired(ctx, f, n); err != nil {
		return step{}, err
	}
	n.set(out.t, "")
	out.node = n
	return out, nil
}

// reportExpired adds a node under n for every relationship matching f that
// is stored but expired at the view's time.
func (e *explainer) reportExpired(ctx context.Context, f tuple.Filter, n *Why) error {
	if e.expired == nil || n == nil {
		return nil
	}
	for rel, err := range e.expired.Query(ctx, f) {
		if err != nil {
			return err
		}
		if !rel.ExpiredAt(e.v.at) {
			continue
		}
		c := e.node(WhyExpired, rel.Resource, rel.Relation)
		if c == nil {
			return nil
		}
		c.Relationship = &rel
		c.set(triNo, "expired at "+rel.Expiration.UTC().Format(time.RFC3339))
		n.add(c)
	}
	return nil
}

// caveat evaluates a relationship's caveat as Check does (the relationship's
// context wins) and describes the evaluation with the values it saw. Unlike
// Check's, the evaluation does not stop when ctx ends and its cost does not
// count against Config.MaxCaveatCost: caveats.MaxEvalCost bounds each one.
func (e *explainer) caveat(rel tuple.Relationship) (tri, string, error) {
	if rel.Caveat == nil {
		return triYes, "", nil
	}
	cv := e.v.schema.Caveats[rel.Caveat.Name]
	if cv == nil {
		return triNo, "", fmt.Errorf("%w: relationship %s names caveat %q, which the schema does not define", ErrInvalidRequest, rel, rel.Caveat.Name)
	}
	res, err := cv.EvaluateLayered(rel.Caveat.Context, e.context)
	if err != nil {
		return triNo, "", fmt.Errorf("%w: caveat %q on %s: %w", ErrCaveatContext, rel.Caveat.Name, rel.Key(), err)
	}
	if !e.full {
		if len(res.Missing) > 0 {
			return maybe(res.Missing), "", nil
		}
		if res.Value {
			return triYes, "", nil
		}
		return triNo, "", nil
	}
	var vals []string
	for _, p := range cv.Params {
		v, ok := rel.Caveat.Context[p.Name]
		if !ok {
			v, ok = e.context[p.Name]
		}
		if !ok {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte(fmt.Sprint(v))
		}
		vals = append(vals, p.Name+"="+string(b))
	}
	note := "caveat " + cv.Name + " {" + strings.Join(strings.Fields(cv.Expr), " ") + "}"
	if len(vals) > 0 {
		note += " with " + strings.Join(vals, ", ")
	}
	switch {
	case len(res.Missing) > 0:
		return maybe(res.Missing), note + " = unknown: missing " + strings.Join(res.Missing, ", "), nil
	case res.Value:
		return triYes, note + " = true", nil
	}
	return triNo, note + " = false", nil
}
