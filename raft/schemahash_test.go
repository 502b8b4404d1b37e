package raft

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// TestFSMRefusesWritesValidatedAgainstAReplacedSchema: a write validated
// against schema S1 but committed after a schema write S2 is refused at
// apply time with ErrSchemaChanged, and writes nothing; a write carrying S2's
// hash, and an old-format write without a hash, apply. The same entries give
// the same results batched and one by one, on the fake and on badger, and
// an FSM that starts over a store holding S2 (its hash not yet known) decides
// the same.
func TestFSMRefusesWritesValidatedAgainstAReplacedSchema(t *testing.T) {
	const s1, s2 = "definition doc { relation viewer: user }", "definition doc {}"
	h1, h2 := schema.DigestOf(s1), schema.DigestOf(s2)
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	at := func(c Command, h SchemaHash) Command { c.Now, c.SchemaHash = now, h; return c }
	write := func(id string, h SchemaHash) Command {
		return at(WriteCommand([]store.Update{touch(id)}, nil), h)
	}
	entries := []Command{
		at(SchemaCommand(s1), SchemaHash{}),
		write("w1", h1),
		at(SchemaCommand(s2), SchemaHash{}),
		write("w2", h1), // validated against S1, committed after S2
		write("w3", h2),
		write("w4", SchemaHash{}), // an old entry: no hash, no check
		at(ImportCommand([]tuple.Relationship{rel("doc", "i1", "viewer", "user", "ana")}), h1),
		at(DeleteCommand(tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"w1"}}, 0, false, nil), h1),
		write("w5", h2),
	}
	refused := map[int]bool{3: true, 6: true, 7: true}
	wantKeys := []string{keyOf("w1").String(), keyOf("w3").String(), keyOf("w4").String(), keyOf("w5").String()}

	backends := map[string]func(t *testing.T) Backend{
		"fake":   func(*testing.T) Backend { return newFakeStore() },
		"badger": func(t *testing.T) Backend { return batchTestStore(t).Store },
	}
	for name, open := range backends {
		for _, batched := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/batched=%v", name, batched), func(t *testing.T) {
				b := open(t)
				f, err := NewFSM(b, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				logs := make([]*hraft.Log, len(entries))
				for i, c := range entries {
					logs[i] = cmdLog(t, uint64(i+1), c)
				}
				var resps []any
				if batched {
					resps = f.ApplyBatch(logs)
				} else {
					for _, l := range logs {
						resps = append(resps, f.Apply(l))
					}
				}
				for i, r := range resps {
					res := r.(*Result)
					if res.Revision != tuple.Revision(i+1) {
						t.Fatalf("entry %d at revision %d", i, res.Revision)
					}
					switch {
					case refused[i] && !errors.Is(res.Err, ErrSchemaChanged):
						t.Fatalf("entry %d (%s validated against S1, after S2) = %v, want ErrSchemaChanged", i, entries[i].Kind, res.Err)
					case refused[i] && !strings.Contains(res.Err.Error(), "retry"):
						t.Fatalf("refusal does not say to retry: %v", res.Err)
					case !refused[i] && res.Err != nil:
						t.Fatalf("entry %d (%s) = %v, want applied", i, entries[i].Kind, res.Err)
					}
				}
				if got := contents(b); strings.Join(got, " ") != strings.Join(wantKeys, " ") {
					t.Fatalf("store holds %v, want %v", got, wantKeys)
				}
				if b.AppliedRevision() != tuple.Revision(len(entries)) {
					t.Fatalf("store at revision %d, want %d (refusals advance it)", b.AppliedRevision(), len(entries))
				}

				// A new FSM over the same store learns the stored schema's
				// hash from the store.
				g, err := NewFSM(b, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				next := uint64(len(entries) + 1)
				if res := g.Apply(cmdLog(t, next, write("late", h1))).(*Result); !errors.Is(res.Err, ErrSchemaChanged) {
					t.Fatalf("after a restart, a write validated against S1 = %v", res.Err)
				}
				if res := g.Apply(cmdLog(t, next+1, write("late", h2))).(*Result); res.Err != nil {
					t.Fatalf("after a restart, a write validated against S2 = %v", res.Err)
				}
			})
		}
	}
}

func TestSchemaChangedCrossesTheWire(t *testing.T) {
	_, err, derr := decodeResult(encodeResult(Result{Revision: 4}, fmt.Errorf("%w: validated against x", ErrSchemaChanged)))
	if derr != nil || !errors.Is(err, ErrSchemaChanged) {
		t.Fatalf("decoded %v (%v), want ErrSchemaChanged", err, derr)
	}
}
