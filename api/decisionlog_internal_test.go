package api

import (
	"testing"
	"time"
)

// A full queue drops (and counts) instead of blocking the request.
func TestDecisionLogDropsWhenFull(t *testing.T) {
	d := &DecisionLog{sample: 1, q: make(chan decision, 2)} // no writer running
	done := make(chan struct{})
	go func() {
		for range 5 {
			d.add(decision{method: "CheckPermission"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("add blocked on a full queue")
	}
	if d.Dropped() != 3 {
		t.Fatalf("dropped %d, want 3", d.Dropped())
	}
	// After Close, a late request's decision is dropped, not a panic.
	d.done = make(chan struct{})
	close(d.done)
	d.mu.Lock()
	d.closed = true
	close(d.q)
	d.mu.Unlock()
	d.add(decision{})
	if d.Dropped() != 4 {
		t.Fatalf("dropped %d after close, want 4", d.Dropped())
	}
}

func TestDecisionSampling(t *testing.T) {
	if (*DecisionLog)(nil).sampled() {
		t.Fatal("a nil log samples")
	}
	d := &DecisionLog{sample: 0.01}
	n := 0
	for range 10000 {
		if d.sampled() {
			n++
		}
	}
	if n < 40 || n > 200 { // mean 100, sd 10
		t.Fatalf("%d of 10000 sampled at 1%%", n)
	}
}
