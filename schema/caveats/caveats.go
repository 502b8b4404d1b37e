// Package caveats compiles and evaluates SpiceDB caveats: CEL expressions over
// typed parameters (int, uint, bool, string, double, bytes, duration,
// timestamp, ipaddress, list<T>, map<T>, any), with partial evaluation when
// context is missing.
package caveats

// Result is the outcome of evaluating a caveat against a context.
type Result struct {
	// Value is the boolean result; meaningful only when Missing is empty.
	Value bool
	// Missing lists parameter names whose absence made the result undecidable
	// (sorted). Non-empty means the result is conditional.
	Missing []string
}

// Caveat is a compiled caveat definition. Immutable and safe for concurrent use.
type Caveat struct {
	Name string
	// Params are the declared parameters in source order.
	Params []Param
	// Expr is the CEL expression source as written.
	Expr string
}

// Param is a declared caveat parameter.
type Param struct {
	Name string
	Type string // as written, normalised: e.g. "int", "list<string>", "map<any>"
}

// Error is a compile error inside a caveat expression. Line and Column are
// 1-based and relative to the start of the expression source (Column counts
// bytes); 0 means unknown.
type Error struct {
	Line, Column int
	Msg          string
}

func (e *Error) Error() string { return e.Msg }
