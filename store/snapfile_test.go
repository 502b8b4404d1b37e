package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/tuple"
)

// FuzzReadSnapshot: the snapshot-stream decoder never panics and accepts
// only streams whose checksum matches.
func FuzzReadSnapshot(f *testing.F) {
	s, err := Open(Options{InMemory: true, GCInterval: -1, Logger: quiet, MemTableSize: 4 << 20, BlockCacheSize: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	r := tuple.MustParse(`doc:a#viewer@user:ana[cav:{"x":1}]`)
	r.Expiration = now.Add(time.Hour)
	if err := s.Write(1, now, []Update{{Op: OpCreate, Rel: r}, {Op: OpCreate, Rel: tuple.MustParse("doc:b#viewer@group:g#member")}}, nil); err != nil {
		f.Fatal(err)
	}
	if err := s.WriteSchema(2, now, "definition doc {}"); err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.WriteSnapshot(&buf); err != nil {
		f.Fatal(err)
	}
	s.Close()
	f.Add(buf.Bytes())
	f.Add([]byte(snapMagic + "\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := readSnapshot(bytes.NewReader(b))
		if err != nil {
			return
		}
		if c.applied == 0 {
			t.Fatal("accepted a stream without an applied revision")
		}
	})
}

// TestRestoreFailureAfterDrop: a restore that fails after the old contents
// are gone leaves a store that refuses writes and reads until a restore
// succeeds, instead of one that silently carries on empty.
func TestRestoreFailureAfterDrop(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), GCInterval: -1, Logger: quiet, MemTableSize: 4 << 20, BlockCacheSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.Write(1, now, []Update{{Op: OpCreate, Rel: tuple.MustParse("doc:a#viewer@user:ana")}}, nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	s.restoreHook = func() error { return errors.New("injected failure") }
	if err := s.RestoreSnapshot(bytes.NewReader(buf.Bytes())); err == nil {
		t.Fatal("restore with an injected failure succeeded")
	}
	if err := s.Write(2, now, []Update{{Op: OpCreate, Rel: tuple.MustParse("doc:b#viewer@user:ana")}}, nil); err == nil || !strings.Contains(err.Error(), "restore") {
		t.Fatalf("write after a failed restore: %v, want a restore error", err)
	}
	if err := s.RunGC(); err == nil {
		t.Fatal("GC after a failed restore succeeded")
	}
	if _, err := s.Snapshot(1); !errors.Is(err, ErrRevisionCompacted) {
		t.Fatalf("snapshot after a failed restore: %v, want ErrRevisionCompacted", err)
	}
	s.restoreHook = nil
	if err := s.RestoreSnapshot(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(2, now, []Update{{Op: OpCreate, Rel: tuple.MustParse("doc:b#viewer@user:ana")}}, nil); err != nil {
		t.Fatalf("write after a successful restore: %v", err)
	}
}

// TestMemberTableInSnapshots: the member table is written with its
// revision's applied index, travels in the snapshot stream (on disk and in
// memory), and a version 1 stream, which has none, still restores.
func TestMemberTableInSnapshots(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, inMemory := range []bool{true, false} {
		open := func() *Store {
			s, err := Open(Options{Dir: t.TempDir(), InMemory: inMemory, GCInterval: -1, Logger: quiet, MemTableSize: 4 << 20, BlockCacheSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		s := open()
		if err := s.Write(1, now, []Update{{Op: OpCreate, Rel: tuple.MustParse("doc:a#viewer@user:ana")}}, nil); err != nil {
			t.Fatal(err)
		}
		var v1 bytes.Buffer // before any table: the stream a version 1 writer made, but for the version byte
		if _, err := s.WriteSnapshot(&v1); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteMembers(2, now, []byte("table-2")); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Members(); err != nil || string(got) != "table-2" || s.AppliedRevision() != 2 {
			t.Fatalf("after WriteMembers: %q %v at revision %d", got, err, s.AppliedRevision())
		}
		var buf bytes.Buffer
		if _, err := s.WriteSnapshot(&buf); err != nil {
			t.Fatal(err)
		}
		r := open()
		if err := r.RestoreSnapshot(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatal(err)
		}
		if got, err := r.Members(); err != nil || string(got) != "table-2" || r.AppliedRevision() != 2 {
			t.Fatalf("inMemory=%v: restored table %q (%v) at revision %d", inMemory, got, err, r.AppliedRevision())
		}
		// Version 1: same records, no member table, version byte 1 and
		// its checksum.
		old := v1.Bytes()
		old[len(snapMagic)] = 1
		body := old[:len(old)-4]
		old = append(body[:len(body):len(body)], 0, 0, 0, 0)
		sum := crc32.Checksum(body, castagnoli)
		binary.BigEndian.PutUint32(old[len(body):], sum)
		r1 := open()
		if err := r1.RestoreSnapshot(bytes.NewReader(old)); err != nil {
			t.Fatalf("inMemory=%v: version 1 stream: %v", inMemory, err)
		}
		if got, err := r1.Members(); err != nil || got != nil || r1.AppliedRevision() != 1 {
			t.Fatalf("inMemory=%v: version 1 restore: table %q (%v) at revision %d", inMemory, got, err, r1.AppliedRevision())
		}
		if err := r1.ImportMembers([]byte("moved")); err != nil {
			t.Fatal(err)
		}
		if got, _ := r1.Members(); string(got) != "moved" || r1.AppliedRevision() != 1 {
			t.Fatalf("ImportMembers: table %q at revision %d", got, r1.AppliedRevision())
		}
	}
}
