package raft

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// A leader that meets a disk fault hands its leadership to another voter and
// refuses writes naming the cause; the cluster goes on taking writes; the
// faulted node is no longer caught up (not ready).
func TestDiskFaultLeaderStepsDown(t *testing.T) {
	c := newTestCluster(t, 3, fakeStores(), nil)
	leader := c.waitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := writeOne(ctx, c.nodes[leader].n, "before"); err != nil {
		t.Fatal(err)
	}
	bad := c.nodes[leader].n
	if err := bad.CaughtUp(ctx); err != nil {
		t.Fatalf("healthy leader not caught up: %v", err)
	}
	bad.Fail(errors.New("write /data/x: no space left on device"))
	select {
	case <-bad.Faulted():
	default:
		t.Fatal("Faulted not closed after Fail")
	}
	deadline := time.Now().Add(20 * time.Second)
	for bad.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("the faulted leader kept its leadership")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err := writeOne(ctx, bad, "refused")
	if !errors.Is(err, ErrDiskFault) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("write on the faulted node: %v, want ErrDiskFault naming the cause", err)
	}
	if err := bad.CaughtUp(ctx); !errors.Is(err, ErrDiskFault) {
		t.Fatalf("CaughtUp on the faulted node: %v, want ErrDiskFault", err)
	}
	next := c.waitLeader()
	if c.nodes[next].n == bad {
		t.Fatal("the faulted node leads again")
	}
	if _, err := writeOne(ctx, c.nodes[next].n, "after"); err != nil {
		t.Fatalf("write on the new leader: %v", err)
	}
	bad.Fail(errors.New("a second fault")) // only the first is kept
	if err := bad.Fault(); !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Fault = %v, want the first cause", err)
	}
}

// A failed write of the raft log store is a disk fault of the node.
func TestLogStoreWriteFailureIsDiskFault(t *testing.T) {
	var got error
	s := faultingLogStore{fail: func(err error) { got = err }}
	if err := s.check("storing raft log entries", nil); err != nil || got != nil {
		t.Fatalf("a successful write: %v, fault %v", err, got)
	}
	werr := errors.New("write wal/00001.wal: file too large")
	if err := s.check("storing raft log entries", werr); err != werr {
		t.Fatalf("the error goes back to raft unchanged, got %v", err)
	}
	if got == nil || !strings.Contains(got.Error(), "file too large") || !strings.Contains(got.Error(), "raft log store") {
		t.Fatalf("fault = %v", got)
	}
}
