package raft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/tuple"
)

func cmdLog(t testing.TB, idx uint64, c Command) *hraft.Log {
	t.Helper()
	data, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return &hraft.Log{Index: idx, Term: 1, Type: hraft.LogCommand, Data: data}
}

func touch(id string) store.Update {
	return store.Update{Op: store.OpTouch, Rel: rel("doc", id, "viewer", "user", "ana")}
}

func create(id string) store.Update {
	return store.Update{Op: store.OpCreate, Rel: rel("doc", id, "viewer", "user", "ana")}
}

func newTestFSM(t *testing.T) (*FSM, *fakeStore) {
	t.Helper()
	st := newFakeStore()
	f, err := NewFSM(st, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return f, st
}

func TestFSMAppliesAtLogIndex(t *testing.T) {
	f, st := newTestFSM(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := WriteCommand([]store.Update{create("a"), create("b")}, nil)
	c.Now = now
	del := DeleteCommand(tuple.Filter{ResourceType: "doc"}, 1, true, nil)
	resps := f.ApplyBatch([]*hraft.Log{
		cmdLog(t, 3, c),
		cmdLog(t, 4, WriteCommand([]store.Update{create("a")}, nil)),
		cmdLog(t, 5, WriteCommand([]store.Update{touch("z")}, []store.Precondition{{MustMatch: true, Filter: tuple.Filter{ResourceType: "nope"}}})),
		cmdLog(t, 6, del),
		{Index: 7, Type: hraft.LogConfiguration, AppendedAt: now},
		cmdLog(t, 8, NoopCommand()),
	})
	if len(resps) != 6 {
		t.Fatalf("got %d responses", len(resps))
	}
	r := func(i int) *Result { return resps[i].(*Result) }
	if r(0).Err != nil || r(0).Revision != 3 {
		t.Fatalf("write: %+v", r(0))
	}
	if !errors.Is(r(1).Err, store.ErrAlreadyExists) || r(1).Revision != 4 {
		t.Fatalf("duplicate create: %+v", r(1))
	}
	if !errors.Is(r(2).Err, store.ErrPreconditionFailed) {
		t.Fatalf("precondition: %+v", r(2))
	}
	if r(3).Err != nil || r(3).Deleted != 1 || !r(3).Partial {
		t.Fatalf("delete: %+v", r(3))
	}
	if resps[4] != nil {
		t.Fatalf("configuration entry response = %v, want nil", resps[4])
	}
	if got := st.AppliedRevision(); got != 8 {
		t.Fatalf("store revision = %d, want 8 (configuration and no-op entries advance it)", got)
	}
	if got := f.Applied(); got != 8 {
		t.Fatalf("Applied = %d, want 8", got)
	}
	if !st.nowSeen[0].Equal(now) {
		t.Fatalf("store saw time %v, want the command's %v", st.nowSeen[0], now)
	}
	if len(st.keys()) != 1 {
		t.Fatalf("keys = %v, want one left after the partial delete", st.keys())
	}
}

func TestFSMUnstampedConfigurationEntry(t *testing.T) {
	f, st := newTestFSM(t)
	// The bootstrap configuration entry carries no AppendedAt.
	f.ApplyBatch([]*hraft.Log{{Index: 1, Type: hraft.LogConfiguration}})
	if st.AppliedRevision() != 1 || f.haltedErr() != nil || len(st.nowSeen) != 1 || !st.nowSeen[0].Equal(unstampedTime) {
		t.Fatalf("store rev %d, halted %v, times %v", st.AppliedRevision(), f.haltedErr(), st.nowSeen)
	}
}

func TestFSMSkipsAppliedEntries(t *testing.T) {
	f, st := newTestFSM(t)
	f.ApplyBatch([]*hraft.Log{cmdLog(t, 1, WriteCommand([]store.Update{create("a")}, nil))})
	// Replay of the same entry (a restart) must not fail with ErrAlreadyExists
	// nor write again.
	res := f.Apply(cmdLog(t, 1, WriteCommand([]store.Update{create("a")}, nil))).(*Result)
	if res.Err != nil || st.AppliedRevision() != 1 || len(st.nowSeen) != 1 {
		t.Fatalf("replayed entry: %+v, store rev %d, writes %d", res, st.AppliedRevision(), len(st.nowSeen))
	}
}

func TestFSMSchemaGuard(t *testing.T) {
	f, st := newTestFSM(t)
	var seen tuple.Revision
	f.SetSchemaGuard(func(rev tuple.Revision, _ time.Time, text string) error {
		seen = rev
		if strings.Contains(text, "bad") {
			return errors.New("would orphan doc#viewer")
		}
		return nil
	})
	res := f.Apply(cmdLog(t, 2, SchemaCommand("bad schema"))).(*Result)
	if !errors.Is(res.Err, ErrSchemaRefused) || !strings.Contains(res.Err.Error(), "orphan") || seen != 2 {
		t.Fatalf("refused schema: %+v (guard saw rev %d)", res, seen)
	}
	if st.schema != "" || st.AppliedRevision() != 2 {
		t.Fatalf("refused schema wrote %q or did not advance (rev %d)", st.schema, st.AppliedRevision())
	}
	res = f.Apply(cmdLog(t, 3, SchemaCommand("good"))).(*Result)
	if res.Err != nil || st.schema != "good" {
		t.Fatalf("accepted schema: %+v, stored %q", res, st.schema)
	}
}

// TestFSMHaltsOnUndecodableEntry: an entry this binary cannot decode (a
// newer command version written by an upgraded leader, an unknown kind, or
// garbage) halts the state machine with an error naming the index and the
// recovery path; it never panics, applies nothing after it, and a restart
// over the same store halts again at the same entry instead of crashing.
func TestFSMHaltsOnUndecodableEntry(t *testing.T) {
	future, err := Encode(WriteCommand([]store.Update{touch("a")}, nil))
	if err != nil {
		t.Fatal(err)
	}
	future[1] = maxCommandVersion + 1
	for _, tc := range []struct {
		name string
		data []byte
		want []string // in the halt error
	}{
		{"future version", future, []string{"log index 2", fmt.Sprintf("version %d", maxCommandVersion+1), "upgrade this node", "followers first"}},
		{"unknown kind", []byte{99, 1, 0}, []string{"log index 2", "unknown command kind 99", "upgrade this node", "remove its data directory"}},
		{"garbage", []byte{0xde, 0xad, 0xbe, 0xef, 0x01}, []string{"log index 2", "remove its data directory and join it again"}},
		{"empty", nil, []string{"log index 2", "truncated"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openRealStore(t, "", true)
			defer st.Close()
			for restart := range 2 {
				f, err := NewFSM(st, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				logs := []*hraft.Log{
					cmdLog(t, 1, WriteCommand([]store.Update{touch("before")}, nil)),
					{Index: 2, Term: 1, Type: hraft.LogCommand, Data: tc.data},
					cmdLog(t, 3, WriteCommand([]store.Update{touch("after")}, nil)),
				}
				var out []any
				func() {
					defer func() {
						if r := recover(); r != nil {
							t.Fatalf("restart %d: ApplyBatch panicked: %v", restart, r)
						}
					}()
					out = f.ApplyBatch(logs)
				}()
				for i, idx := range []int{1, 2} {
					if res := out[idx].(*Result); !errors.Is(res.Err, ErrHalted) || !errors.Is(res.Err, ErrUndecodableEntry) {
						t.Fatalf("restart %d: entry %d result %+v, want ErrHalted and ErrUndecodableEntry", restart, i+2, res)
					}
				}
				if restart == 0 {
					if res := out[0].(*Result); res.Err != nil {
						t.Fatalf("entry 1: %v", res.Err)
					}
				}
				herr := f.Halted()
				if !errors.Is(herr, ErrHalted) {
					t.Fatalf("restart %d: Halted() = %v", restart, herr)
				}
				for _, w := range tc.want {
					if !strings.Contains(herr.Error(), w) {
						t.Errorf("restart %d: halt error %q does not mention %q", restart, herr, w)
					}
				}
				if st.AppliedRevision() != 1 || f.Applied() != 1 {
					t.Fatalf("restart %d: store at %d, FSM at %d; want both at 1 (nothing at or after the bad entry)", restart, st.AppliedRevision(), f.Applied())
				}
				if got := realContents(st); !slices.Equal(got, []string{keyOf("before").String()}) {
					t.Fatalf("restart %d: store holds %v", restart, got)
				}
				if err := f.WaitApplied(context.Background(), 3); !errors.Is(err, ErrHalted) {
					t.Fatalf("restart %d: WaitApplied(3) = %v, want ErrHalted", restart, err)
				}
				if _, err := f.Snapshot(); !errors.Is(err, ErrHalted) {
					t.Fatalf("restart %d: Snapshot() = %v, want ErrHalted", restart, err)
				}
			}
		})
	}
}

func TestFSMHaltsOnStoreFailure(t *testing.T) {
	f, st := newTestFSM(t)
	st.failIO = errors.New("disk on fire")
	res := f.Apply(cmdLog(t, 1, WriteCommand([]store.Update{touch("a")}, nil))).(*Result)
	if !errors.Is(res.Err, ErrHalted) {
		t.Fatalf("result = %+v, want ErrHalted", res)
	}
	st.failIO = nil
	res = f.Apply(cmdLog(t, 2, WriteCommand([]store.Update{touch("b")}, nil))).(*Result)
	if !errors.Is(res.Err, ErrHalted) || st.AppliedRevision() != 0 {
		t.Fatalf("after halt: %+v, store rev %d; want nothing applied", res, st.AppliedRevision())
	}
	err := f.WaitApplied(context.Background(), 2)
	if !errors.Is(err, ErrHalted) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("WaitApplied = %v, want ErrHalted naming the cause", err)
	}
}

func TestFSMWaitApplied(t *testing.T) {
	f, _ := newTestFSM(t)
	done := make(chan error, 1)
	go func() { done <- f.WaitApplied(context.Background(), 2) }()
	f.Apply(cmdLog(t, 1, NoopCommand()))
	select {
	case err := <-done:
		t.Fatalf("WaitApplied(2) returned %v at revision 1", err)
	case <-time.After(20 * time.Millisecond):
	}
	f.Apply(cmdLog(t, 2, NoopCommand()))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := f.WaitApplied(ctx, 5); !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied past deadline = %v", err)
	}
}

type bufSink struct {
	bytes.Buffer
	canceled bool
}

func (s *bufSink) ID() string    { return "test" }
func (s *bufSink) Cancel() error { s.canceled = true; return nil }
func (s *bufSink) Close() error  { return nil }

func TestFSMSnapshotRestore(t *testing.T) {
	f, _ := newTestFSM(t)
	f.ApplyBatch([]*hraft.Log{
		cmdLog(t, 1, Command{Kind: KindSetMember, Member: MemberInfo{ID: "n1", RaftAddr: "r1", GRPCAddr: "g1"}}),
		cmdLog(t, 2, WriteCommand([]store.Update{touch("a"), touch("b")}, nil)),
		cmdLog(t, 3, SchemaCommand("s")),
	})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink bufSink
	if err := snap.Persist(&sink); err != nil || sink.canceled {
		t.Fatalf("Persist: %v (canceled %v)", err, sink.canceled)
	}
	dir := t.TempDir()
	st2 := newFakeStore()
	f2, err := NewFSM(st2, dir+"/members.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f2.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if f2.Applied() != 3 || st2.schema != "s" || len(st2.keys()) != 2 {
		t.Fatalf("restored: applied %d schema %q keys %v", f2.Applied(), st2.schema, st2.keys())
	}
	if m, ok := f2.Member("n1"); !ok || m.GRPCAddr != "g1" {
		t.Fatalf("restored member table: %v %v", m, ok)
	}
	// The member table is in the store: a new FSM over it has it.
	f3, err := NewFSM(st2, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f3.Member("n1"); !ok {
		t.Fatal("member table not in the restored store")
	}
	if err := f2.Restore(io.NopCloser(strings.NewReader("XXXXjunk"))); err == nil || !strings.Contains(err.Error(), "AMBS") {
		t.Fatalf("Restore(junk) = %v, want an error naming the magic", err)
	}
}

func TestResultWireKeepsSentinels(t *testing.T) {
	for _, want := range []error{store.ErrPreconditionFailed, store.ErrAlreadyExists, ErrSchemaRefused, ErrNotLeader, ErrNodeExists} {
		in := Result{Revision: 9, Deleted: 3, Partial: true}
		data := encodeResult(in, errors.Join(errors.New("detail"), want))
		got, err, derr := decodeResult(data)
		if derr != nil {
			t.Fatal(derr)
		}
		if !errors.Is(err, want) || !strings.Contains(err.Error(), "detail") {
			t.Fatalf("decoded error %v does not match %v", err, want)
		}
		if got.Revision != 9 || got.Deleted != 3 || !got.Partial {
			t.Fatalf("decoded %+v", got)
		}
	}
	if _, err, _ := decodeResult(encodeResult(Result{Revision: 1}, nil)); err != nil {
		t.Fatalf("nil error came back as %v", err)
	}
}

func FuzzDecodeResult(f *testing.F) {
	f.Add(encodeResult(Result{Revision: 5, Deleted: 2}, store.ErrPreconditionFailed))
	f.Add(encodeResult(Result{}, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, rerr, err := decodeResult(data)
		if err != nil {
			return
		}
		res2, rerr2, err := decodeResult(encodeResult(res, rerr))
		if err != nil || res2.Revision != res.Revision || res2.Deleted != res.Deleted || (rerr == nil) != (rerr2 == nil) {
			t.Fatalf("round trip: %v %+v %+v", err, res, res2)
		}
	})
}

func FuzzDecodeMemberList(f *testing.F) {
	f.Add(encodeMemberList([]Member{{ID: "a", RaftAddr: "r", GRPCAddr: "g", Role: "leader", Voter: true}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := decodeMemberList(data)
		if err != nil {
			return
		}
		ms2, err := decodeMemberList(encodeMemberList(ms))
		if err != nil || len(ms2) != len(ms) {
			t.Fatalf("round trip: %v", err)
		}
		for i := range ms {
			if ms[i] != ms2[i] {
				t.Fatalf("member %d: %+v != %+v", i, ms[i], ms2[i])
			}
		}
	})
}

// TestFSMRefusalOrFailure: whether an error from the store halts the state
// machine is decided by one typed error (store.ErrRefused), not by a list of
// sentinels the FSM knows: a refusal the FSM has never heard of consumes the
// revision and the FSM goes on; any other error halts it.
func TestFSMRefusalOrFailure(t *testing.T) {
	errNewRefusal := store.NewRefusal("a refusal declared after this FSM was written")
	for _, tc := range []struct {
		name    string
		err     error
		refusal bool
	}{
		{"already exists", fmt.Errorf("%w: doc:a#viewer@user:ana", store.ErrAlreadyExists), true},
		{"precondition", fmt.Errorf("%w: precondition 0", store.ErrPreconditionFailed), true},
		{"too large", fmt.Errorf("%w: caveat context", store.ErrTooLarge), true},
		{"invalid", fmt.Errorf("%w: bad id", store.ErrInvalid), true},
		{"schema refused", fmt.Errorf("%w: orphans", ErrSchemaRefused), true},
		{"schema changed", fmt.Errorf("%w: validated against another", ErrSchemaChanged), true},
		{"new refusal", fmt.Errorf("update 3: %w", errNewRefusal), true},
		{"io", errors.New("disk on fire"), false},
		{"closed", store.ErrClosed, false},
		{"stale", fmt.Errorf("%w: 1 <= 1", store.ErrStaleWrite), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := store.IsRefusal(tc.err); got != tc.refusal {
				t.Fatalf("store.IsRefusal(%v) = %v, want %v", tc.err, got, tc.refusal)
			}
			for _, batched := range []bool{false, true} {
				f, st := newTestFSM(t)
				st.refuseNext = tc.err
				var res *Result
				if batched { // through WriteMany
					res = f.ApplyBatch([]*hraft.Log{cmdLog(t, 1, WriteCommand([]store.Update{touch("a")}, nil))})[0].(*Result)
				} else { // through Write (a delete is never batched)
					res = f.Apply(cmdLog(t, 1, DeleteCommand(tuple.Filter{ResourceType: "doc"}, 0, false, nil))).(*Result)
				}
				if !errors.Is(res.Err, tc.err) {
					t.Fatalf("batched=%v: result %+v, want it to carry %v", batched, res, tc.err)
				}
				halted := f.haltedErr() != nil
				if halted == tc.refusal || errors.Is(res.Err, ErrHalted) == tc.refusal {
					t.Fatalf("batched=%v: halted=%v (result %v); a refusal must not halt, a failure must", batched, halted, res.Err)
				}
				if tc.refusal && (f.Applied() != 1 || st.AppliedRevision() != 1) {
					t.Fatalf("batched=%v: refusal left FSM at %d, store at %d; want both at 1", batched, f.Applied(), st.AppliedRevision())
				}
			}
		})
	}
}
