package schema

import "github.com/ambit-authz/ambit/schema/caveats"

// compileCaveat hands a caveat's parameters and CEL expression to the caveats
// package, which type-checks the expression. It is the one place the
// compiler calls into schema/caveats.
func compileCaveat(name string, params []caveats.Param, expr string) (*caveats.Caveat, error) {
	return caveats.Compile(name, params, expr)
}
