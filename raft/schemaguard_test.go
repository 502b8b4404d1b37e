package raft

import (
	"errors"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// OrphanGuard judges expirations at the command's leader time, never at the
// node's clock: a relationship that expires at noon blocks removing its
// relation for a command stamped before noon and not for one stamped after,
// whatever time the replica applies the log at (here its clock is a year
// ahead, as for a replica rebuilt from the log long after).
func TestOrphanGuardJudgesExpirationAtCommandTime(t *testing.T) {
	noon := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	st, err := store.Open(store.Options{InMemory: true, GCInterval: -1, Clock: func() time.Time { return noon.AddDate(1, 0, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const before = "definition user {}\ndefinition doc {\n\trelation viewer: user with expiration\n\trelation owner: user\n}\n"
	const after = "definition user {}\ndefinition doc {\n\trelation owner: user\n}\n"
	const withExpiration = "use expiration\n" + before
	if err := st.WriteSchema(1, noon.Add(-2*time.Hour), withExpiration); err != nil {
		t.Fatal(err)
	}
	r := tuple.MustParse("doc:d#viewer@user:ana")
	r.Expiration = noon
	if err := st.Write(2, noon.Add(-time.Hour), []store.Update{{Op: store.OpTouch, Rel: r}}, nil); err != nil {
		t.Fatal(err)
	}
	guard := OrphanGuard(st)
	next := "use expiration\n" + after
	if err := guard(3, noon.Add(-time.Minute), next); !errors.Is(err, schema.ErrRemovedInUse) {
		t.Errorf("before the relationship expires: %v, want a refusal wrapping schema.ErrRemovedInUse", err)
	}
	if err := guard(3, noon.Add(time.Minute), next); err != nil {
		t.Errorf("after it expired: %v, want the change allowed", err)
	}
}
