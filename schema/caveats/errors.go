package caveats

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Limits on what Compile and Evaluate accept.
const (
	// MaxExpressionBytes bounds the length of a caveat expression (SpiceDB's
	// limit is 100,000 characters).
	MaxExpressionBytes = 100_000
	// MaxExpressionCalls bounds the operators, function calls and macro
	// expansions in an expression. CEL's type checker is quadratic in them;
	// at the limit it takes tens of milliseconds.
	MaxExpressionCalls = 500
	// MaxParams bounds the number of parameters of one caveat.
	MaxParams = 128
	// MaxTypeBytes bounds the length of one parameter type string.
	MaxTypeBytes = 1024
	// MaxTypeDepth bounds type nesting: "list<map<int>>" has depth 3.
	MaxTypeDepth = 16
	// MaxValueDepth bounds the nesting of context values (lists and objects
	// inside each other), like protobuf's recursion limit for the Struct in
	// which SpiceDB receives context.
	MaxValueDepth = 100
	// MaxEvalCost bounds the work of one evaluation in CEL's cost units
	// (about one per operation, comprehension step and list element
	// visited): a few milliseconds of CPU. An evaluation that passes it
	// stops with a *CostError. Three nested .all() over 1000-element lists
	// cost 10^9 and stop here instead of running for minutes.
	MaxEvalCost = 100_000
	// MaxExpressionNodes bounds the nodes of a parsed expression (literals,
	// identifiers, calls, list elements...): a long list literal is cheap to
	// write and costs on every evaluation.
	MaxExpressionNodes = 10_000
)

// Sentinel errors of Evaluate and CheckContext. Their errors wrap one of
// them, except an evaluation stopped by its context's end, which wraps the
// context's error. ErrParamType, ErrEvaluation and ErrUnknownParam describe
// bad input, which the API reports as InvalidArgument; ErrCostLimit it
// reports as ResourceExhausted.
var (
	// ErrParamType: a context value does not have, and cannot be converted to,
	// the type its parameter declares.
	ErrParamType = errors.New("caveat parameter type error")
	// ErrEvaluation: the expression failed at run time, e.g. a map has no
	// such key, a CIDR string is invalid or arithmetic overflowed.
	ErrEvaluation = errors.New("caveat evaluation error")
	// ErrUnknownParam: a context to be stored with a relationship has a key
	// that is not a parameter of the relationship's caveat (see
	// Caveat.CheckContext).
	ErrUnknownParam = errors.New("unknown caveat parameter")
	// ErrCostLimit: an evaluation passed MaxEvalCost (see CostError). Not
	// bad input as such: the expression is too expensive for this context.
	ErrCostLimit = errors.New("caveat cost limit exceeded")
)

// CostError reports an evaluation stopped at the cost limit. It wraps
// ErrCostLimit.
type CostError struct {
	Caveat string
	Limit  uint64
}

func (e *CostError) Error() string {
	return fmt.Sprintf("caveat %q: evaluation exceeds the cost limit of %d (caveats.MaxEvalCost)", e.Caveat, e.Limit)
}

// Unwrap returns ErrCostLimit.
func (e *CostError) Unwrap() error { return ErrCostLimit }

// ParamTypeError reports a context value that cannot be converted to the type
// of its parameter. It wraps ErrParamType.
type ParamTypeError struct {
	Caveat string // caveat name
	Param  string // parameter name
	Type   string // declared type of the parameter, e.g. "list<int>"
	// Path locates the offending element inside the value, e.g. `[2]` or
	// `["foo"]`; empty when the value itself is wrong.
	Path string
	// Msg says what was expected and what was given.
	Msg string
}

func (e *ParamTypeError) Error() string {
	where := ""
	if e.Path != "" {
		where = " at " + e.Path
	}
	return fmt.Sprintf("caveat %q: parameter %q (%s)%s: %s", e.Caveat, e.Param, e.Type, where, e.Msg)
}

// Unwrap returns ErrParamType.
func (e *ParamTypeError) Unwrap() error { return ErrParamType }

// EvalError reports a run-time failure of a caveat expression. It wraps
// ErrEvaluation.
type EvalError struct {
	Caveat string // caveat name
	Msg    string // CEL's description of the failure
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("caveat %q: evaluation failed: %s", e.Caveat, e.Msg)
}

// Unwrap returns ErrEvaluation.
func (e *EvalError) Unwrap() error { return ErrEvaluation }

// conversionError is the internal form of a ParamTypeError before the
// caveat and parameter are known.
type conversionError struct {
	path string
	msg  string
}

func (e *conversionError) Error() string { return e.path + ": " + e.msg }

// errWant builds the conversion error for value v where want was expected.
func errWant(want string, v any) *conversionError {
	return &conversionError{msg: "expected " + want + ", got " + describe(v)}
}

// maxQuoted bounds how much of a user-supplied string is echoed in errors.
const maxQuoted = 64

// truncate shortens s to maxQuoted bytes for use in error messages.
func truncate(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	return s[:maxQuoted] + "..."
}

// describe names the JSON kind and value of v for error messages.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool " + strconv.FormatBool(v)
	case float64:
		return "number " + strconv.FormatFloat(v, 'g', -1, 64)
	case json.Number:
		return "number " + truncate(string(v))
	case string:
		return "string " + strconv.Quote(truncate(v))
	case []any:
		return fmt.Sprintf("list of %d elements", len(v))
	case map[string]any:
		return fmt.Sprintf("object with %d keys", len(v))
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32:
		return fmt.Sprintf("number %v", v)
	default:
		return fmt.Sprintf("unsupported Go value of type %T", v)
	}
}
