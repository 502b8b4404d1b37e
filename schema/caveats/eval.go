package caveats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// Evaluate runs the caveat against ctx, a JSON-decoded context (float64,
// string, bool, nil, []any, map[string]any; nil means empty) in which the
// relationship's stored context has already been merged over the request's
// (EvaluateLayered does the merge without building a map).
//
// Each context key that names a parameter is converted to the parameter's
// type (see the package documentation); a value that does not convert is a
// *ParamTypeError.
// Other keys are ignored. A key present with a null value is not missing: it
// converts to CEL null under any and is a type error otherwise, as in SpiceDB.
//
// When parameters the expression references are absent, they are marked
// unknown and the expression is partially evaluated: if it is decided anyway
// (`a || true`, or `x == 1 && b` with x != 1) the Result has that Value and no
// Missing; otherwise Missing lists, sorted, the absent parameters the
// undecided result depends on.
//
// A run-time failure (no such key in a map, an invalid CIDR string,
// overflow, division by zero) is an *EvalError, as it is an evaluation error
// in SpiceDB; CEL's commutative && and || absorb an error when the other
// operand decides the result (`false && m.nokey` is false).
func (c *Caveat) Evaluate(ctx map[string]any) (Result, error) {
	return c.evaluate(context.Background(), ctx, nil)
}

// EvaluateLayered is Evaluate over the union of two contexts in which a key
// of stored (the relationship's context) wins over the same key of request
// (the request's context), without building the merged map.
func (c *Caveat) EvaluateLayered(stored, request map[string]any) (Result, error) {
	return c.evaluate(context.Background(), stored, request)
}

// EvaluateContext is EvaluateLayered that stops when ctx ends: CEL checks
// it every interruptEvery comprehension iterations, and the error then wraps
// ctx's. Every evaluation also stops once its cost passes MaxEvalCost, with
// a *CostError.
func (c *Caveat) EvaluateContext(ctx context.Context, stored, request map[string]any) (Result, error) {
	return c.evaluate(ctx, stored, request)
}

// interruptEvery is how many comprehension iterations CEL runs between two
// looks at the request's context.
const interruptEvery = 100

// evaluate implements Evaluate; a parameter is looked up in vars, then in
// fallback.
func (c *Caveat) evaluate(ctx context.Context, vars, fallback map[string]any) (Result, error) {
	if c.full == nil {
		return Result{}, &EvalError{Caveat: c.Name, Msg: "caveat was not built by Compile"}
	}
	act := getActivation(c)
	defer putActivation(act)
	for i := range c.Params {
		v, ok := vars[c.Params[i].Name]
		if !ok {
			if v, ok = fallback[c.Params[i].Name]; !ok {
				continue
			}
		}
		cv, err := convert(c.types[i], v, 1)
		if err != nil {
			return Result{}, &ParamTypeError{
				Caveat: c.Name,
				Param:  c.Params[i].Name,
				Type:   c.Params[i].Type,
				Path:   err.path,
				Msg:    err.msg,
			}
		}
		act.vals[i] = cv
	}
	for _, i := range c.refs {
		if act.vals[i] == nil {
			return c.evalPartial(ctx, act)
		}
	}
	out, det, err := c.full.ContextEval(ctx, act)
	if err != nil && slices.Contains(act.vals, nil) && !stopped(err) {
		// refs comes from the checker's reference map; should it ever miss
		// a parameter, the absent parameter fails the evaluation instead of
		// making it conditional. Retrying with every absent parameter
		// unknown costs only on this error path.
		return c.evalPartial(ctx, act)
	}
	return c.result(ctx, out, det, err)
}

// stopped reports whether err is CEL stopping an evaluation for its cost or
// its context rather than the expression failing.
func stopped(err error) bool {
	var ce interpreter.EvalCancelledError
	return errors.As(err, &ce) || errors.Is(err, interpreter.InterruptError{})
}

// evalPartial evaluates with the absent parameters unknown.
func (c *Caveat) evalPartial(ctx context.Context, act *activation) (Result, error) {
	var absent []int
	var patterns []*cel.AttributePatternType
	for i := range c.Params {
		if act.vals[i] == nil {
			absent = append(absent, i)
			patterns = append(patterns, c.unknown[i])
		}
	}
	vars, err := cel.PartialVars(act, patterns...)
	if err != nil {
		return Result{}, &EvalError{Caveat: c.Name, Msg: err.Error()}
	}
	out, det, err := c.partial.ContextEval(ctx, vars)
	u, ok := out.(*types.Unknown)
	if !ok || err != nil {
		return c.result(ctx, out, det, err)
	}
	var missing []string
	for _, id := range u.IDs() {
		trails, _ := u.GetAttributeTrails(id)
		for _, t := range trails {
			if name := t.Variable(); !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
		}
	}
	if len(missing) == 0 {
		// The unknown carries no attribute trail (it cannot, with only
		// attribute patterns marking unknowns); report every absent
		// parameter rather than claim a decided result.
		for _, i := range absent {
			missing = append(missing, c.Params[i].Name)
		}
	}
	slices.Sort(missing)
	return Result{Missing: missing, Cost: cost(det)}, nil
}

// result converts a complete evaluation's outcome.
func (c *Caveat) result(ctx context.Context, out ref.Val, det *cel.EvalDetails, err error) (Result, error) {
	var ce interpreter.EvalCancelledError
	switch {
	case err == nil:
	case errors.As(err, &ce) && ce.Cause == interpreter.CostLimitExceeded:
		return Result{}, &CostError{Caveat: c.Name, Limit: MaxEvalCost}
	case stopped(err) && ctx.Err() != nil:
		return Result{}, fmt.Errorf("caveat %q: evaluation stopped: %w", c.Name, context.Cause(ctx))
	default:
		return Result{}, &EvalError{Caveat: c.Name, Msg: err.Error()}
	}
	b, ok := out.(types.Bool)
	if !ok {
		got := "no value"
		if out != nil {
			got = out.Type().TypeName()
		}
		return Result{}, &EvalError{Caveat: c.Name, Msg: "expression produced " + got + ", not bool"}
	}
	return Result{Value: bool(b), Cost: cost(det)}, nil
}

// cost returns the CEL cost an evaluation tracked.
func cost(det *cel.EvalDetails) uint64 {
	if det == nil {
		return 0
	}
	if c := det.ActualCost(); c != nil {
		return *c
	}
	return 0
}

// ParamNames returns the parameter names in declaration order. The slice is
// the caller's.
func (c *Caveat) ParamNames() []string {
	names := make([]string, len(c.Params))
	for i, p := range c.Params {
		names[i] = p.Name
	}
	return names
}

// CheckContext validates a context to be stored with a relationship, as
// SpiceDB does on WriteRelationships: every key must name a parameter (else
// an error wrapping ErrUnknownParam, naming the first such key in sorted
// order) and every value must convert to its parameter's type (else a
// *ParamTypeError). Evaluate, by contrast, ignores unknown keys.
func (c *Caveat) CheckContext(ctx map[string]any) error {
	var unknown []string
	for k := range ctx {
		if c.lookup(k) < 0 {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("%w: caveat %q has no parameter %q", ErrUnknownParam, c.Name, truncate(slices.Min(unknown)))
	}
	for i, p := range c.Params {
		v, ok := ctx[p.Name]
		if !ok {
			continue
		}
		if _, err := convert(c.types[i], v, 1); err != nil {
			return &ParamTypeError{Caveat: c.Name, Param: p.Name, Type: p.Type, Path: err.path, Msg: err.msg}
		}
	}
	return nil
}

// ReferencedParams returns, sorted, the names of the parameters the
// expression refers to, as the CEL checker resolved them. A comprehension
// variable that shadows a parameter counts as a reference to it, as in
// SpiceDB's check for unused caveat parameters. The slice is the caller's.
func (c *Caveat) ReferencedParams() []string {
	names := make([]string, len(c.refs))
	for k, i := range c.refs {
		names[k] = c.Params[i].Name
	}
	slices.Sort(names)
	return names
}

// activation resolves parameter names to converted context values for one
// evaluation. A nil entry is an absent parameter.
type activation struct {
	c    *Caveat
	vals []ref.Val
}

// activations recycles activations: an Evaluate without allocations is the
// common case on the check path. CEL keeps no reference to the activation
// once Eval returns.
var activations = sync.Pool{New: func() any { return new(activation) }}

// getActivation returns an empty activation sized for c's parameters.
func getActivation(c *Caveat) *activation {
	a := activations.Get().(*activation)
	a.c = c
	if cap(a.vals) < len(c.Params) {
		a.vals = make([]ref.Val, len(c.Params))
	}
	a.vals = a.vals[:len(c.Params)]
	return a
}

// putActivation clears a, so that it retains no context values, and
// recycles it.
func putActivation(a *activation) {
	clear(a.vals)
	a.c = nil
	activations.Put(a)
}

var _ interpreter.Activation = (*activation)(nil)

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	i := a.c.lookup(name)
	if i < 0 || a.vals[i] == nil {
		return nil, false
	}
	return a.vals[i], true
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }
