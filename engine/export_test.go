package engine

import "context"

// FlightWaiting exposes how many callers wait on evaluations in flight.
func FlightWaiting(e *Engine) int { return e.flight.waiting() }

// SetLeopardMemoMin sets the smallest closure the nested-group index keeps
// and returns a function restoring the previous value.
func SetLeopardMemoMin(n int) func() {
	old := memoMin
	memoMin = n
	return func() { memoMin = old }
}

// LookupSubjectsCandidates returns the candidates LookupSubjects verifies.
func LookupSubjectsCandidates(ctx context.Context, v *View, req LookupSubjectsRequest) ([]string, bool, error) {
	return v.forwardCandidates(ctx, req.Resource, req.Permission, req.SubjectType, req.SubjectRelation)
}

// ResourceAccessCandidates returns the candidates ResourceAccess verifies.
func ResourceAccessCandidates(ctx context.Context, v *View, req ResourceAccessRequest, subtracted bool) ([]string, bool, error) {
	return v.accessCandidates(ctx, req, subtracted)
}

// SetLeopardLogMax sets how many edge changes a relation's graph keeps to
// answer older revisions, and returns a function restoring the previous
// value.
func SetLeopardLogMax(n int) func() {
	old := leopardLogMax
	leopardLogMax = n
	return func() { leopardLogMax = old }
}
