package cputime

import (
	"testing"
	"time"
)

func TestProcessAdvancesWithWork(t *testing.T) {
	if !Supported() {
		t.Skip("no process CPU time on this platform")
	}
	start := Process()
	x := 0
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); {
		x++
	}
	if d := Process() - start; d < 10*time.Millisecond {
		t.Errorf("50ms of busy work used %v of CPU (x=%d)", d, x)
	}
}
