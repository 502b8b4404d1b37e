package raft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

// countingBackend counts how the FSM reaches the store.
type countingBackend struct {
	*store.Store
	writes, manys, manyReqs int
}

func (c *countingBackend) Write(rev tuple.Revision, now time.Time, ups []store.Update, pre []store.Precondition) error {
	c.writes++
	return c.Store.Write(rev, now, ups, pre)
}

func (c *countingBackend) WriteMany(reqs []store.WriteRequest) ([]error, error) {
	c.manys++
	c.manyReqs += len(reqs)
	return c.Store.WriteMany(reqs)
}

func batchTestStore(t *testing.T) *countingBackend {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), GCInterval: -1,
		MemTableSize: 4 << 20, BlockCacheSize: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &countingBackend{Store: st}
}

// mixedLog is a log with runs of writes that succeed and fail in every way
// a write can (duplicate create, failed precondition, invalid and oversized
// batches), broken up by a schema write, a delete, a member command, a
// configuration change and no-ops.
func mixedLog(t *testing.T) []*hraft.Log {
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	at := func(c Command, i int) Command { c.Now = base.Add(time.Duration(i) * time.Second); return c }
	must := func(ok bool, id string) store.Precondition {
		return store.Precondition{MustMatch: ok, Filter: tuple.Filter{ResourceType: "doc", ResourceIDs: []string{id}}}
	}
	bad := touch("x")
	bad.Rel.Subject.ID = "" // invalid: no subject id
	big := make([]store.Update, 9)
	for i := range big {
		big[i] = touch(fmt.Sprintf("big%d", i))
	}
	// Beyond the format's caveat context limit: refused on every replica.
	big[4].Rel.Caveat = &tuple.Caveat{Name: "cav", Context: map[string]any{"k": strings.Repeat("x", store.MaxCaveatContextBytes)}}
	huge := make([]store.Update, maxRunUpdates+1) // a run of its own
	for i := range huge {
		huge[i] = touch(fmt.Sprintf("huge%d", i))
	}
	expiring := touch("exp")
	expiring.Rel.Expiration = base.Add(120 * time.Second)
	cmds := []Command{
		WriteCommand([]store.Update{create("a"), create("b")}, nil),
		WriteCommand([]store.Update{create("a")}, nil),                                    // exists
		WriteCommand([]store.Update{touch("c")}, []store.Precondition{must(true, "zz")}),  // fails
		WriteCommand([]store.Update{touch("d")}, []store.Precondition{must(true, "c")}),   // c was never written
		WriteCommand([]store.Update{touch("d")}, []store.Precondition{must(true, "a")}),   // holds
		WriteCommand([]store.Update{bad}, nil),                                            // invalid
		WriteCommand(big, nil),                                                            // too large
		WriteCommand(huge, nil),                                                           // applied, in a run of its own
		WriteCommand([]store.Update{{Op: store.OpDelete, Rel: create("b").Rel}}, nil),     // delete
		WriteCommand([]store.Update{create("b")}, []store.Precondition{must(false, "b")}), // b is gone: holds
		WriteCommand([]store.Update{expiring}, nil),
		NoopCommand(),
		SchemaCommand("definition doc {}"),
		WriteCommand([]store.Update{create("e")}, nil),
		WriteCommand([]store.Update{create("e")}, nil), // exists, seen within the run
		DeleteCommand(tuple.Filter{ResourceType: "doc", ResourceIDs: []string{"a"}}, 0, false, nil),
		WriteCommand([]store.Update{create("a")}, nil), // deleted just before: fine again
		{Kind: KindSetMember, Member: MemberInfo{ID: "n9", RaftAddr: "r", GRPCAddr: "g"}},
		WriteCommand([]store.Update{create("exp")}, nil), // the expired relationship counts as absent
		ImportCommand([]tuple.Relationship{rel("doc", "imp", "viewer", "user", "ana")}),
		WriteCommand([]store.Update{touch("imp")}, []store.Precondition{must(true, "imp")}),
	}
	var logs []*hraft.Log
	idx := uint64(1)
	for i, c := range cmds {
		if i == 3 {
			logs = append(logs, &hraft.Log{Index: idx, Type: hraft.LogConfiguration, AppendedAt: base})
			idx++
		}
		if c.Kind == KindSetMember {
			data, err := Encode(c)
			if err != nil {
				t.Fatal(err)
			}
			logs = append(logs, &hraft.Log{Index: idx, Type: hraft.LogCommand, Data: data, AppendedAt: base})
		} else {
			logs = append(logs, cmdLog(t, idx, at(c, 10*i)))
		}
		idx++
	}
	// "exp" is written at 90s expiring at 120s, so the CREATE at 170s finds
	// it expired (absent).
	return logs
}

// resultString renders a response for comparison: revision, counts and the
// full error message.
func resultString(r any) string {
	res, ok := r.(*Result)
	if !ok || res == nil {
		return fmt.Sprintf("%v", r)
	}
	return fmt.Sprintf("rev=%d deleted=%d partial=%v err=%v", res.Revision, res.Deleted, res.Partial, res.Err)
}

// storeState is everything a store holds that a client can observe: its full
// snapshot stream (relationships, schema, revision times) and the change
// feed.
func storeState(t *testing.T, st *store.Store) (snap []byte, changes []store.Change) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := st.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	for c, err := range st.Changes(context.Background(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, c)
	}
	return buf.Bytes(), changes
}

func TestFSMBatchEqualsOneByOne(t *testing.T) {
	logs := mixedLog(t)

	oneSt := batchTestStore(t)
	one, err := NewFSM(oneSt, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	var wantRes []any
	for _, l := range logs {
		r := one.Apply(l)
		wantRes = append(wantRes, r)
		want = append(want, resultString(r))
	}

	batchSt := batchTestStore(t)
	batch, err := NewFSM(batchSt, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range batch.ApplyBatch(logs) {
		got = append(got, resultString(r))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d (index %d): batched %s, one by one %s", i, logs[i].Index, got[i], want[i])
		}
	}
	// The log holds failures of every kind (the test is not vacuous).
	for _, sentinel := range []error{store.ErrAlreadyExists, store.ErrPreconditionFailed, store.ErrInvalid, store.ErrTooLarge} {
		n := 0
		for _, r := range wantRes {
			if res, ok := r.(*Result); ok && errors.Is(res.Err, sentinel) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("the mixed log has no entry failing with %v", sentinel)
		}
	}

	if oneSt.AppliedRevision() != batchSt.AppliedRevision() || batch.Applied() != one.Applied() {
		t.Fatalf("revisions: batched store %d FSM %d, one by one store %d FSM %d",
			batchSt.AppliedRevision(), batch.Applied(), oneSt.AppliedRevision(), one.Applied())
	}
	wantSnap, wantChanges := storeState(t, oneSt.Store)
	gotSnap, gotChanges := storeState(t, batchSt.Store)
	if !bytes.Equal(gotSnap, wantSnap) {
		t.Errorf("store snapshots differ: batched %d bytes, one by one %d bytes", len(gotSnap), len(wantSnap))
	}
	if !reflect.DeepEqual(gotChanges, wantChanges) {
		t.Errorf("change feeds differ:\nbatched    %+v\none by one %+v", gotChanges, wantChanges)
	}
	if got, want := realContents(batchSt.Store), realContents(oneSt.Store); !reflect.DeepEqual(got, want) {
		t.Errorf("relationships: batched %v, one by one %v", got, want)
	}
	// The runs went through WriteMany: seven runs of writes, no-ops and the
	// configuration entry, broken by the schema, the delete, the member
	// command and the import, and one of them the write with more than
	// maxRunUpdates updates alone. The member command goes through
	// WriteMembers, nothing through Write.
	if batchSt.manys != 7 || batchSt.manyReqs != 18 || batchSt.writes != 0 {
		t.Errorf("batched store saw %d WriteMany calls (%d requests) and %d Writes; want 7 runs of 18 and no Write",
			batchSt.manys, batchSt.manyReqs, batchSt.writes)
	}
}
