package engine

import (
	"fmt"
)

// Budgets a request can exhaust. Each is a Config field and a flag of
// `ambit serve`; a request that exceeds one fails with a *BudgetError, which
// the API reports as ResourceExhausted.
const (
	// BudgetDispatches: sub-problems one check evaluates (Config.MaxDispatches).
	BudgetDispatches = "dispatches"
	// BudgetReads: relationships one check reads (Config.MaxReads).
	BudgetReads = "relationship reads"
	// BudgetExpandNodes: nodes of one Expand tree (Config.MaxExpandNodes).
	BudgetExpandNodes = "expand nodes"
	// BudgetExpandBytes: approximate bytes of one Expand tree
	// (Config.MaxExpandBytes).
	BudgetExpandBytes = "expand bytes"
	// BudgetCaveatCost: CEL cost of the caveats one check evaluates
	// (Config.MaxCaveatCost), and of each evaluation (caveats.MaxEvalCost,
	// fixed).
	BudgetCaveatCost = "caveat cost"
)

// BudgetError reports a request that used up one of its budgets. Retrying
// the same request fails again; a larger budget or a smaller request (a
// shallower schema, fewer relationships on the path) may succeed.
type BudgetError struct {
	Budget string // one of the Budget constants
	Limit  int64
	At     string // the sub-problem being evaluated when it ran out
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("request exceeds its %s budget of %d (at %s)", e.Budget, e.Limit, e.At)
}
