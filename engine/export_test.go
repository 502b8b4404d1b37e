package engine

// FlightWaiting exposes how many callers wait on evaluations in flight.
func FlightWaiting(e *Engine) int { return e.flight.waiting() }
