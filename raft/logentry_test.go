package raft

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/store"
)

// LogEntry reads back what a node applied at a revision (the audit log's
// source past its queue bound), and names an index the log does not hold.
func TestLogEntryReadsAppliedCommands(t *testing.T) {
	c := newTestCluster(t, 1, realStores(t), nil)
	n := c.nodes[0].n
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want := map[uint64]string{}
	for _, id := range []string{"a", "b", "c"} {
		rev, err := n.Propose(ctx, WriteCommand([]store.Update{touch(id)}, nil))
		if err != nil {
			t.Fatal(err)
		}
		want[uint64(rev)] = touch(id).Rel.String()
	}
	for idx, rel := range want {
		data, err := n.LogEntry(idx)
		if err != nil {
			t.Fatalf("LogEntry(%d): %v", idx, err)
		}
		cmd, err := Decode(data)
		if err != nil {
			t.Fatalf("LogEntry(%d) does not decode: %v", idx, err)
		}
		if cmd.Kind != KindWrite || len(cmd.Updates) != 1 || cmd.Updates[0].Rel.String() != rel {
			t.Errorf("LogEntry(%d) = %v, want the write of %s", idx, cmd, rel)
		}
	}
	if _, err := n.LogEntry(1 << 40); !errors.Is(err, ErrLogEntryGone) {
		t.Errorf("LogEntry past the log's end: %v, want ErrLogEntryGone", err)
	}
}
