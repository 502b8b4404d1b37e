package engine

import (
	"context"
	"time"

	"github.com/ambit-authz/ambit/tuple"
)

// Trace is one sub-problem of a traced check: is Subject in
// Resource#Relation? Children are the sub-problems it dispatched, in
// evaluation order; Relationships are the stored relationships it read that
// name the subject (or its wildcard) directly, or whose caveat it evaluated.
// Evaluation short-circuits, so a Trace shows the path that decided the
// answer, not every route that exists.
type Trace struct {
	Resource      tuple.ObjectRef
	Relation      string
	IsPermission  bool
	Subject       tuple.SubjectRef
	Result        Permissionship
	Missing       []string
	Duration      time.Duration
	Children      []*Trace
	Relationships []TracedRelationship
}

// TracedRelationship is a relationship a traced sub-problem relied on, with
// the outcome of its caveat (HasPermission when it has none).
type TracedRelationship struct {
	Relationship tuple.Relationship
	Result       Permissionship
	Missing      []string
}

// CheckWithTrace answers a check like Check and also returns the tree of
// sub-problems it evaluated. It bypasses the result cache and in-flight
// de-duplication (the tree must be complete), so it costs a cold check; use
// it for debugging (`with_tracing`, `ambit check --explain`), not on the hot
// path.
func (v *View) CheckWithTrace(ctx context.Context, req CheckRequest) (CheckResult, *Trace, error) {
	if err := v.validateCheck(req); err != nil {
		return CheckResult{}, nil, err
	}
	ck, err := contextKey(req.Context)
	if err != nil {
		return CheckResult{}, nil, err
	}
	key := v.cacheKey(req.Resource.Type, req.Resource.ID, req.Permission, req.Subject, ck)
	c := &checker{v: v, subject: req.Subject, context: req.Context, ctxKey: ck, rootKey: key, stats: &Stats{}, tracing: true}
	t, err := c.checkAny(ctx, req.Resource.Type, []string{req.Resource.ID}, req.Permission, 0, nil)
	if err != nil {
		return CheckResult{Stats: *c.stats}, c.root, err
	}
	return toResult(t, *c.stats), c.root, nil
}

// checkTraced evaluates checkAny one id at a time, recording a Trace node per
// id under the current node. Branches the schema prunes get no node, except
// the root.
func (c *checker) checkTraced(ctx context.Context, typ string, ids []string, rel string, depth int, path *frame) (tri, error) {
	r := c.v.schema.Relation(typ, rel)
	s := c.subject
	self := s.Relation != "" && typ == s.Type && rel == s.Relation
	if c.cur != nil && !self && (r == nil || !c.v.plan.canReach(typ, rel, s.Type, s.Relation)) {
		return triNo, nil
	}
	result := triNo
	for _, id := range ids {
		n := &Trace{Resource: tuple.ObjectRef{Type: typ, ID: id}, Relation: rel, IsPermission: r != nil && r.IsPermission, Subject: s}
		parent := c.cur
		if parent == nil {
			c.root = n
		} else {
			parent.Children = append(parent.Children, n)
		}
		c.cur = n
		start := time.Now()
		t, err := c.eval(ctx, typ, []string{id}, rel, depth, path)
		n.Duration = time.Since(start)
		c.cur = parent
		res := toResult(t, Stats{})
		n.Result, n.Missing = res.Permissionship, res.Missing
		if err != nil {
			return triNo, err
		}
		if result = result.or(t); result.yes() {
			return result, nil
		}
	}
	return result, nil
}

// traceRelationship records rel, with its caveat outcome t, on the node being
// evaluated.
func (c *checker) traceRelationship(rel tuple.Relationship, t tri) {
	if c.cur == nil {
		return
	}
	res := toResult(t, Stats{})
	c.cur.Relationships = append(c.cur.Relationships, TracedRelationship{Relationship: rel, Result: res.Permissionship, Missing: res.Missing})
}
