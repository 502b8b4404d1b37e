// Package caveats compiles and evaluates SpiceDB caveats: CEL expressions over
// typed parameters (int, uint, bool, string, double, bytes, duration,
// timestamp, ipaddress, list<T>, map<T>, any), with partial evaluation when
// context is missing.
//
// Compile builds a caveat once; Evaluate runs it against a JSON-decoded
// context on the check hot path. The semantics follow SpiceDB's
// pkg/caveats: parameter types and context conversions, the ipaddress type
// with its in_cidr method, timestamps in UTC, and partial evaluation that
// reports which missing parameters a result still depends on.
//
// # Context values
//
// Context values are converted to their parameter's type as SpiceDB does
// (pkg/caveats/types); SpiceDB receives context as a google.protobuf.Struct,
// so every number arrives as a double:
//
//   - int and uint accept integral numbers and numeric strings ("42", "4.2e1");
//     uint rejects negatives. Unlike SpiceDB, which silently saturates, a value
//     outside int64 is an error; uint values above MaxInt64 are refused too,
//     because uint parameters are CEL ints (as in SpiceDB: `u == 15` compiles,
//     `u == 15u` does not).
//   - double accepts numbers and numeric strings.
//   - bool and string accept only their own JSON kind.
//   - bytes accepts a standard base64 string.
//   - duration accepts a Go duration string ("1h30m", "-1.5s").
//   - timestamp accepts an RFC 3339 string (fractional seconds allowed);
//     timestamp accessors such as getHours() work in UTC.
//   - ipaddress accepts an IPv4 or IPv6 address string.
//   - list<T> accepts a JSON array, map<T> a JSON object; elements convert as T.
//   - any accepts every JSON value; numbers become doubles.
//
// JSON null converts only under any (to CEL null). Besides the JSON-decoded
// types, Go integers, float32 and json.Number are accepted as numbers.
//
// # ipaddress
//
// An ipaddress supports == and != and the method in_cidr(string) -> bool,
// which parses its argument with netip.ParsePrefix (host bits may be set:
// "10.1.2.3/8" means 10.0.0.0/8). An invalid CIDR is an evaluation error; an
// address is never in a prefix of the other family, so an IPv4-mapped IPv6
// address is not in an IPv4 prefix.
package caveats

import "github.com/google/cel-go/cel"

// Result is the outcome of evaluating a caveat against a context.
type Result struct {
	// Value is the boolean result; meaningful only when Missing is empty.
	Value bool
	// Missing lists parameter names whose absence made the result undecidable
	// (sorted). Non-empty means the result is conditional.
	Missing []string
	// Cost is the evaluation's CEL cost (at most MaxEvalCost), for callers
	// that budget many evaluations.
	Cost uint64
}

// Caveat is a compiled caveat definition. Immutable and safe for concurrent use.
type Caveat struct {
	Name string
	// Params are the declared parameters in source order.
	Params []Param
	// Expr is the CEL expression source as written.
	Expr string

	types []*paramType // parallel to Params
	// refs holds the indexes into Params of the parameters the expression
	// references; only their absence calls for partial evaluation.
	refs []int
	// index maps parameter names to indexes into Params; nil when there are
	// few parameters and a linear scan is faster.
	index map[string]int
	// full evaluates with every referenced parameter present; partial
	// evaluates with missing parameters marked unknown.
	full, partial cel.Program
	// unknown holds, parallel to Params, the attribute pattern that marks
	// each parameter unknown.
	unknown []*cel.AttributePatternType
}

// Param is a declared caveat parameter.
type Param struct {
	Name string
	Type string // as written, normalised: e.g. "int", "list<string>", "map<any>"
}

// Error is a compile error inside a caveat expression. Line and Column are
// 1-based and relative to the start of the expression source (Column counts
// bytes); 0 means unknown.
//
// Errors about a parameter declaration (bad name, unknown type) have no
// position and name the parameter in Param.
type Error struct {
	Line, Column int
	Msg          string
	Param        string
}

func (e *Error) Error() string { return e.Msg }
