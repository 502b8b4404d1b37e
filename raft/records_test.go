package raft

import (
	"errors"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/ambit-authz/ambit/store"
)

// TestFSMRecords: a records command applies its records and relationship
// updates together on a real store, a failed record condition refuses both
// (consuming the revision), and the applied-entry hook sees every command
// entry once, in log order, with its actor and its refusal, batched writes
// included.
func TestFSMRecords(t *testing.T) {
	st := openRealStore(t, t.TempDir(), true)
	defer st.Close()
	f, err := NewFSM(st, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen []AppliedEntry
	var actors []string
	f.SetOnApplied(func(e AppliedEntry) {
		c, err := e.Command()
		if err != nil {
			t.Errorf("entry %d: %v", e.Index, err)
		}
		seen = append(seen, AppliedEntry{Index: e.Index, Err: e.Err})
		actors = append(actors, c.Actor)
	})
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	stamp := func(c Command, actor string) Command { c.Now, c.Actor = now, actor; return c }
	user := []byte(`{"userName":"ana"}`)
	create1 := stamp(RecordsCommand([]store.Update{touch("d1")}, nil,
		[]store.RecordOp{{Space: "scim.users", Key: "u1", Value: user}, {Space: "scim.usernames", Key: "ana", Value: []byte("u1")}},
		[]store.RecordCond{{Space: "scim.usernames", Key: "ana"}}), "tok-a")
	// The same userName again: the uniqueness condition refuses it, and
	// its relationship is not written either.
	dup := stamp(RecordsCommand([]store.Update{touch("d2")}, nil,
		[]store.RecordOp{{Space: "scim.users", Key: "u2", Value: user}, {Space: "scim.usernames", Key: "ana", Value: []byte("u2")}},
		[]store.RecordCond{{Space: "scim.usernames", Key: "ana"}}), "tok-b")
	write := stamp(WriteCommand([]store.Update{touch("d3")}, nil), "tok-c")
	noActor := stamp(WriteCommand([]store.Update{touch("d4")}, nil), "")
	resps := f.ApplyBatch([]*hraft.Log{
		cmdLog(t, 1, create1), cmdLog(t, 2, dup), cmdLog(t, 3, write), cmdLog(t, 4, noActor),
		{Index: 5, Term: 1, Type: hraft.LogNoop},
	})
	if r := resps[0].(*Result); r.Err != nil {
		t.Fatalf("create: %v", r.Err)
	}
	if r := resps[1].(*Result); !errors.Is(r.Err, store.ErrPreconditionFailed) {
		t.Fatalf("duplicate userName: %v, want ErrPreconditionFailed", r.Err)
	}
	if got, want := realContents(st), []string{"doc:d1#viewer@user:ana", "doc:d3#viewer@user:ana", "doc:d4#viewer@user:ana"}; !equalStrings(got, want) {
		t.Fatalf("relationships %v, want %v", got, want)
	}
	sn, err := st.Snapshot(st.AppliedRevision())
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := sn.Record("scim.usernames", "ana"); !ok || string(v) != "u1" {
		t.Fatalf("username index = %q, %v; want u1", v, ok)
	}
	if _, ok, _ := sn.Record("scim.users", "u2"); ok {
		t.Fatal("the refused command stored its record")
	}
	if len(seen) != 4 {
		t.Fatalf("hook saw %d entries, want the 4 commands: %+v", len(seen), seen)
	}
	for i, e := range seen {
		if e.Index != uint64(i+1) {
			t.Fatalf("hook entry %d has index %d", i, e.Index)
		}
	}
	if !errors.Is(seen[1].Err, store.ErrPreconditionFailed) || seen[0].Err != nil || seen[2].Err != nil {
		t.Fatalf("hook errors: %+v", seen)
	}
	if want := []string{"tok-a", "tok-b", "tok-c", ""}; !equalStrings(actors, want) {
		t.Fatalf("actors %q, want %q", actors, want)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
