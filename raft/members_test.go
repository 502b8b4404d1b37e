package raft

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/ambit-authz/ambit/store"
)

// TestMemberTableLivesInTheStore: a member command writes the table in the
// store's transaction for its index (so no crash separates the table from
// the applied revision), nothing beside the store, and a reopened store
// gives a new FSM the same table.
func TestMemberTableLivesInTheStore(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "members.bin")
	st := openRealStore(t, filepath.Join(dir, "store"), false)
	f, err := NewFSM(st, legacy, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := f.ApplyBatch([]*hraft.Log{
		cmdLog(t, 1, Command{Kind: KindSetMember, Member: MemberInfo{ID: "n1", RaftAddr: "r1", GRPCAddr: "g1"}}),
		cmdLog(t, 2, Command{Kind: KindSetMember, Member: MemberInfo{ID: "n2", RaftAddr: "r2", GRPCAddr: "g2"}}),
		cmdLog(t, 3, Command{Kind: KindForgetMember, Member: MemberInfo{ID: "n1"}}),
	})
	for i, r := range out {
		if res := r.(*Result); res.Err != nil {
			t.Fatalf("entry %d: %v", i+1, res.Err)
		}
	}
	if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a member file was written beside the store (%v)", err)
	}
	// The table at each revision is the one written in that revision's
	// transaction.
	data, err := st.Members()
	if err != nil || data == nil {
		t.Fatalf("store member table: %q, %v", data, err)
	}
	idx, members, err := decodeMembers(data)
	if err != nil || idx != 3 || len(members) != 1 || members["n2"].GRPCAddr != "g2" {
		t.Fatalf("stored table: index %d members %v (%v); want index 3 with n2 only", idx, members, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openRealStore(t, filepath.Join(dir, "store"), false)
	defer st.Close()
	f2, err := NewFSM(st, legacy, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f2.Member("n1"); ok || st.AppliedRevision() != 3 {
		t.Fatalf("after reopening: n1 still a member, or store at %d", st.AppliedRevision())
	}
	if m, ok := f2.Member("n2"); !ok || m.RaftAddr != "r2" {
		t.Fatalf("after reopening: n2 = %v %v", m, ok)
	}
	// Replaying the entries changes nothing.
	f2.ApplyBatch([]*hraft.Log{cmdLog(t, 1, Command{Kind: KindSetMember, Member: MemberInfo{ID: "n1", RaftAddr: "r1", GRPCAddr: "g1"}})})
	if _, ok := f2.Member("n1"); ok {
		t.Fatal("a replayed member entry changed the table")
	}
}

// TestMemberTableMigration: a members.bin left by an earlier build is moved
// into a store that holds no table, once, and removed; a store that already
// holds one, or has applied nothing, keeps its own and the file goes.
func TestMemberTableMigration(t *testing.T) {
	old := encodeMembers(7, map[string]MemberInfo{"n1": {ID: "n1", RaftAddr: "r1", GRPCAddr: "g1"}})
	for _, tc := range []struct {
		name    string
		prepare func(*store.Store) error
		want    string // gRPC address of n1 after opening; "" for absent
	}{
		{"store without a table", func(st *store.Store) error { return st.Write(9, t0(), nil, nil) }, "g1"},
		{"store with a table", func(st *store.Store) error {
			return st.WriteMembers(9, t0(), encodeMembers(9, map[string]MemberInfo{"n1": {ID: "n1", RaftAddr: "r1", GRPCAddr: "newer"}}))
		}, "newer"},
		{"empty store", func(*store.Store) error { return nil }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			legacy := filepath.Join(dir, "members.bin")
			if err := os.WriteFile(legacy, old, 0o600); err != nil {
				t.Fatal(err)
			}
			st := openRealStore(t, "", true)
			defer st.Close()
			if err := tc.prepare(st); err != nil {
				t.Fatal(err)
			}
			f, err := NewFSM(st, legacy, nil)
			if err != nil {
				t.Fatal(err)
			}
			m, ok := f.Member("n1")
			if got := map[bool]string{true: m.GRPCAddr}[ok]; got != tc.want {
				t.Fatalf("n1's address %q, want %q", got, tc.want)
			}
			if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("members.bin still there (%v)", err)
			}
			if tc.want == "g1" {
				if data, _ := st.Members(); !bytes.Equal(data, old) {
					t.Fatalf("store holds %q, want the file's table", data)
				}
			}
		})
	}
	// A corrupt file is an error, not silently dropped.
	dir := t.TempDir()
	legacy := filepath.Join(dir, "members.bin")
	if err := os.WriteFile(legacy, []byte{9, 9, 9}, 0o600); err != nil {
		t.Fatal(err)
	}
	st := openRealStore(t, "", true)
	defer st.Close()
	if _, err := NewFSM(st, legacy, nil); err == nil {
		t.Fatal("NewFSM over a corrupt members.bin succeeded")
	}
}

func t0() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
