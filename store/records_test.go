package store_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/store"
	"github.com/ambit-authz/ambit/store/storetest"
	"github.com/ambit-authz/ambit/tuple"
)

func openRecordStore(t *testing.T, inMemory bool) *store.Store {
	t.Helper()
	o := testOptions(storetest.Config{Dir: t.TempDir(), Clock: time.Now, GCWindow: time.Hour}, inMemory)
	s, err := store.Open(o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func readRecord(t *testing.T, s *store.Store, rev tuple.Revision, space, key string) ([]byte, bool) {
	t.Helper()
	sn, err := s.Snapshot(rev)
	if err != nil {
		t.Fatalf("snapshot %d: %v", rev, err)
	}
	v, ok, err := sn.Record(space, key)
	if err != nil {
		t.Fatalf("record %s/%s: %v", space, key, err)
	}
	return v, ok
}

func listRecords(t *testing.T, s *store.Store, rev tuple.Revision, space, after string) []string {
	t.Helper()
	sn, err := s.Snapshot(rev)
	if err != nil {
		t.Fatalf("snapshot %d: %v", rev, err)
	}
	var out []string
	for e, err := range sn.Records(context.Background(), space, after) {
		if err != nil {
			t.Fatalf("records: %v", err)
		}
		out = append(out, e.Key+"="+string(e.Value))
	}
	return out
}

func TestRecords(t *testing.T) {
	for _, inMemory := range []bool{true, false} {
		t.Run(map[bool]string{true: "memory", false: "disk"}[inMemory], func(t *testing.T) {
			s := openRecordStore(t, inMemory)
			now := time.Unix(1_700_000_000, 0)
			rel := tuple.MustParse("doc:a#viewer@user:ana")
			put := func(space, key, val string) store.RecordOp {
				return store.RecordOp{Space: space, Key: key, Value: []byte(val)}
			}

			// Revision 1: a record and a relationship, together.
			if err := s.WriteRecords(1, now, []store.Update{{Op: store.OpTouch, Rel: rel}}, nil,
				[]store.RecordOp{put("scim.users", "u1", "v1"), put("scim.users", "u2", "x"), put("token", "t1", "tok")}, nil); err != nil {
				t.Fatal(err)
			}
			if v, ok := readRecord(t, s, 1, "scim.users", "u1"); !ok || string(v) != "v1" {
				t.Fatalf("u1 at 1 = %q, %v", v, ok)
			}
			if got := strings.Join(listRecords(t, s, 1, "scim.users", ""), " "); got != "u1=v1 u2=x" {
				t.Fatalf("scim.users at 1: %s", got)
			}
			if got := strings.Join(listRecords(t, s, 1, "scim.users", "u1"), " "); got != "u2=x" {
				t.Fatalf("scim.users after u1: %s", got)
			}

			// Revision 2: a condition that fails refuses the whole write:
			// neither the record nor the relationship changes.
			rel2 := tuple.MustParse("doc:b#viewer@user:ana")
			err := s.WriteRecords(2, now, []store.Update{{Op: store.OpTouch, Rel: rel2}}, nil,
				[]store.RecordOp{put("scim.users", "u1", "v2")},
				[]store.RecordCond{{Space: "scim.users", Key: "u1", Value: []byte("stale")}})
			if !errors.Is(err, store.ErrPreconditionFailed) {
				t.Fatalf("stale condition: %v, want ErrPreconditionFailed", err)
			}
			if s.AppliedRevision() != 2 {
				t.Fatalf("a refusal consumes its revision: applied %d", s.AppliedRevision())
			}
			if v, _ := readRecord(t, s, 2, "scim.users", "u1"); string(v) != "v1" {
				t.Fatalf("refused write changed u1 to %q", v)
			}
			if n := countRels(t, s, 2); n != 1 {
				t.Fatalf("refused write wrote relationships: %d stored", n)
			}
			// An absence condition on a present record fails too.
			if err := s.WriteRecords(3, now, nil, nil, []store.RecordOp{put("scim.usernames", "ana", "u9")},
				[]store.RecordCond{{Space: "scim.users", Key: "u2"}}); !errors.Is(err, store.ErrPreconditionFailed) {
				t.Fatalf("absence condition on a present record: %v", err)
			}

			// Revision 4: conditions that hold; a delete.
			if err := s.WriteRecords(4, now, nil, nil,
				[]store.RecordOp{put("scim.users", "u1", "v2"), {Space: "scim.users", Key: "u2"}},
				[]store.RecordCond{{Space: "scim.users", Key: "u1", Value: []byte("v1")}, {Space: "scim.users", Key: "u3"}}); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(listRecords(t, s, 4, "scim.users", ""), " "); got != "u1=v2" {
				t.Fatalf("scim.users at 4: %s", got)
			}
			// MVCC: revision 1 still reads as it was.
			if got := strings.Join(listRecords(t, s, 1, "scim.users", ""), " "); got != "u1=v1 u2=x" {
				t.Fatalf("scim.users at 1 after later writes: %s", got)
			}
			// Spaces do not leak into each other.
			if got := strings.Join(listRecords(t, s, 4, "token", ""), " "); got != "t1=tok" {
				t.Fatalf("token space: %s", got)
			}

			// A snapshot carries the records; a restore brings them back.
			var buf bytes.Buffer
			if _, err := s.WriteSnapshot(&buf); err != nil {
				t.Fatal(err)
			}
			r := openRecordStore(t, inMemory)
			if err := r.RestoreSnapshot(bytes.NewReader(buf.Bytes())); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(listRecords(t, r, r.AppliedRevision(), "scim.users", ""), " "); got != "u1=v2" {
				t.Fatalf("restored scim.users: %s", got)
			}
			if v, ok := readRecord(t, r, r.AppliedRevision(), "token", "t1"); !ok || string(v) != "tok" {
				t.Fatalf("restored token t1 = %q, %v", v, ok)
			}
		})
	}
}

func countRels(t *testing.T, s *store.Store, rev tuple.Revision) int {
	t.Helper()
	sn, err := s.Snapshot(rev)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range sn.Query(context.Background(), tuple.Filter{ResourceType: "doc"}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func TestRecordLimits(t *testing.T) {
	s := openRecordStore(t, true)
	now := time.Unix(1_700_000_000, 0)
	many := make([]store.RecordOp, store.MaxRecordOps+1)
	for i := range many {
		many[i] = store.RecordOp{Space: "s", Key: strings.Repeat("k", 1+i%50) + string(rune('a'+i%26)) + strings.Repeat("z", i/1300), Value: []byte("v")}
	}
	cases := []struct {
		name string
		ops  []store.RecordOp
		want error
	}{
		{"empty space", []store.RecordOp{{Space: "", Key: "k", Value: []byte("v")}}, store.ErrInvalid},
		{"upper-case space", []store.RecordOp{{Space: "Users", Key: "k", Value: []byte("v")}}, store.ErrInvalid},
		{"long space", []store.RecordOp{{Space: strings.Repeat("a", store.MaxRecordSpace+1), Key: "k", Value: []byte("v")}}, store.ErrInvalid},
		{"empty key", []store.RecordOp{{Space: "s", Key: "", Value: []byte("v")}}, store.ErrInvalid},
		{"long key", []store.RecordOp{{Space: "s", Key: strings.Repeat("k", store.MaxRecordKey+1), Value: []byte("v")}}, store.ErrInvalid},
		{"large value", []store.RecordOp{{Space: "s", Key: "k", Value: make([]byte, store.MaxRecordValue+1)}}, store.ErrTooLarge},
		{"same key twice", []store.RecordOp{{Space: "s", Key: "k", Value: []byte("1")}, {Space: "s", Key: "k"}}, store.ErrInvalid},
		{"too many ops", many, store.ErrTooLarge},
	}
	rev := tuple.Revision(0)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rev++
			err := s.WriteRecords(rev, now, nil, nil, c.ops, nil)
			if !errors.Is(err, c.want) || !store.IsRefusal(err) {
				t.Fatalf("got %v, want a refusal wrapping %v", err, c.want)
			}
			if got := listRecords(t, s, rev, "s", ""); len(got) != 0 {
				t.Fatalf("refused write stored %v", got)
			}
		})
	}
	// Keys with zero bytes and prefixes of each other list in order.
	rev++
	keys := []string{"a", "a\x00", "a\x00b", "ab", "b"}
	var ops []store.RecordOp
	for _, k := range keys {
		ops = append(ops, store.RecordOp{Space: "z", Key: k, Value: []byte("1")})
	}
	if err := s.WriteRecords(rev, now, nil, nil, ops, nil); err != nil {
		t.Fatal(err)
	}
	sn, _ := s.Snapshot(rev)
	var got []string
	for e, err := range sn.Records(context.Background(), "z", "a\x00") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Key)
	}
	if want := []string{"a\x00b", "ab", "b"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("records after %q: %q, want %q", "a\x00", got, want)
	}
}
