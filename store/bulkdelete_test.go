package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/tuple"
)

// TestLargeDeleteInBoundedPieces: a delete without a limit of more than
// bulkThreshold relationships streams into the store (the matching keys are
// never all held at once) and its change feed comes out of ChangePieces in
// pieces of at most chunkUpdates updates, More set on all but the last,
// together equal to what Changes yields for the revision.
func TestLargeDeleteInBoundedPieces(t *testing.T) {
	for _, inMemory := range []bool{true, false} {
		t.Run(fmt.Sprintf("inMemory=%v", inMemory), func(t *testing.T) {
			s, err := Open(Options{Dir: t.TempDir(), InMemory: inMemory, GCInterval: -1, Logger: quiet, MemTableSize: 4 << 20, BlockCacheSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			const n = bulkThreshold + 2345
			rels := make([]tuple.Relationship, n)
			for i := range rels {
				rels[i] = tuple.MustParse(fmt.Sprintf("doc:d%06d#viewer@user:u%d", i, i%13))
			}
			if err := s.Import(1, now, rels); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(2, now, []Update{{Op: OpTouch, Rel: tuple.MustParse("folder:f#viewer@user:ana")}}, nil); err != nil {
				t.Fatal(err)
			}
			deleted, partial, err := s.DeleteByFilter(3, now, tuple.Filter{ResourceType: "doc"}, 0, false, nil)
			if err != nil || deleted != n || partial {
				t.Fatalf("DeleteByFilter = %d, %v, %v; want %d, false, nil", deleted, partial, err, n)
			}
			if got, before := countAt(t, s, 3), countAt(t, s, 2); got != 1 || before != n+1 {
				t.Fatalf("relationships at 2: %d, at 3: %d; want %d and 1", before, got, n+1)
			}
			var merged int
			for c, err := range s.Changes(context.Background(), 2) {
				if err != nil {
					t.Fatal(err)
				}
				merged += len(c.Updates)
			}
			pieces, total := 0, 0
			var last Change
			for c, err := range s.ChangePieces(context.Background(), 2) {
				if err != nil {
					t.Fatal(err)
				}
				if c.Revision != 3 || len(c.Updates) == 0 || len(c.Updates) > chunkUpdates {
					t.Fatalf("piece %d: revision %d with %d updates", pieces, c.Revision, len(c.Updates))
				}
				if pieces > 0 && !last.More {
					t.Fatalf("piece %d follows a piece without More", pieces)
				}
				for _, u := range c.Updates {
					if u.Op != OpDelete {
						t.Fatalf("piece %d holds a %s", pieces, u.Op)
					}
				}
				pieces++
				total += len(c.Updates)
				last = c
			}
			if last.More || total != n || merged != n || pieces < n/chunkUpdates {
				t.Fatalf("%d pieces with %d updates (last More=%v), Changes has %d; want %d in at least %d pieces ending without More",
					pieces, total, last.More, merged, n, n/chunkUpdates)
			}
			// Pieces of several revisions: More is per revision.
			revs := map[tuple.Revision]int{}
			for c, err := range s.ChangePieces(context.Background(), 0) {
				if err != nil {
					t.Fatal(err)
				}
				if !c.More {
					revs[c.Revision]++
				}
			}
			if len(revs) != 3 || revs[1] != 1 || revs[2] != 1 || revs[3] != 1 {
				t.Fatalf("revisions ended: %v; want 1, 2 and 3 once each", revs)
			}
		})
	}
}
