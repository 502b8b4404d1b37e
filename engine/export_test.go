package engine

// FlightWaiting exposes how many callers wait on evaluations in flight.
func FlightWaiting(e *Engine) int { return e.flight.waiting() }

// WaitCache waits until the result cache has applied every pending write.
func WaitCache(e *Engine) {
	if e.cache != nil {
		e.cache.Wait()
	}
}
