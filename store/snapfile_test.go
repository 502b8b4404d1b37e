package store

import (
	"bytes"
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
