package engine

// FlightWaiting exposes how many callers wait on evaluations in flight.
func FlightWaiting(e *Engine) int { return e.flight.waiting() }

// SetLeopardMemoMin sets the smallest closure the nested-group index keeps
// and returns a function restoring the previous value.
func SetLeopardMemoMin(n int) func() {
	old := memoMin
	memoMin = n
	return func() { memoMin = old }
}
