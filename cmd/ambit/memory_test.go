package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ambit-authz/ambit/raft"
)

// TestMemoryReturner drives the returner one period at a time: each step
// is the bytes applied during the period, and the test records what the
// returner did to the runtime (G=n: GOGC set to n, F: free).
func TestMemoryReturner(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name     string
		after    int64 // --memory-return-after-mib, in bytes
		bulkGC   int   // --bulk-gc-percent
		gogc     int   // GOGC before
		periods  []int64
		want     string // actions, one per period, "." for none
		wantGOGC int
	}{
		{"a bulk load: GOGC lowered, memory returned at the pause and once more, GOGC restored",
			16 * mib, 50, 100, []int64{4 * mib, 8 * mib, 8 * mib, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "G50 . . . F . . . . G100,F . .", 100},
		{"applying again before the second return: the second waits for the next pause",
			16 * mib, 50, 100, []int64{16 * mib, 0, 0, 8 * mib, 0, 0, 0, 0, 0, 0}, "G50 . F . . . . G100,F . .", 100},
		{"below the bulk rate: GOGC untouched, returned after the pause",
			mib, 50, 100, []int64{mib / 2, mib / 2, mib / 2, 0, 0, 0, 0, 0, 0, 0}, ". . . . F . . . . F", 100},
		{"too little applied: nothing returned",
			16 * mib, 50, 100, []int64{mib / 4, mib / 4, 0, 0, 0}, ". . . . .", 100},
		{"a pause mid-load does not lose the first half",
			16 * mib, 0, 100, []int64{10 * mib, 0, 0, 10 * mib, 0, 0}, ". . . . . F", 100},
		{"a burst too soon after a return waits for minInterval",
			mib, 0, 100, []int64{2 * mib, 0, 0, 0, 0, 2 * mib, 0, 0, 0, 0, 0, 0}, ". . F . . . . F . . . .", 100},
		{"GOGC already lower than the bulk setting stays",
			16 * mib, 50, 20, []int64{4 * mib, 0, 0}, ". . .", 20},
		{"GOGC off stays off",
			16 * mib, 50, -1, []int64{4 * mib, 0, 0}, ". . .", -1},
		{"disabled",
			0, 0, 100, []int64{64 * mib, 64 * mib, 0, 0, 0}, ". . . . .", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gogc := tc.gogc
			var acts []string
			r := newMemoryReturner(tc.after, tc.bulkGC)
			r.free = func() { acts = append(acts, "F") }
			r.setGCPercent = func(n int) int {
				prev := gogc
				gogc = n
				return prev
			}
			var st returnerState
			now := time.Unix(1000, 0)
			var got []string
			for _, n := range tc.periods {
				acts = nil
				before := gogc
				if n > 0 {
					r.Applied(raft.AppliedEntry{Data: make([]byte, n)})
				}
				st.tick(r, now)
				now = now.Add(r.period)
				if gogc != before { // the net change in the period
					acts = append([]string{fmt.Sprintf("G%d", gogc)}, acts...)
				}
				if len(acts) == 0 {
					got = append(got, ".")
				} else {
					got = append(got, strings.Join(acts, ","))
				}
			}
			if g := strings.Join(got, " "); g != tc.want || gogc != tc.wantGOGC {
				t.Errorf("actions %q, GOGC %d; want %q, GOGC %d", g, gogc, tc.want, tc.wantGOGC)
			}
		})
	}
}

// TestMemoryReturnerInterval: two bulk loads closer than minInterval get
// one return each, the second once the interval has passed.
func TestMemoryReturnerInterval(t *testing.T) {
	r := newMemoryReturner(1<<20, 0)
	frees := 0
	r.free = func() { frees++ }
	var st returnerState
	now := time.Unix(1000, 0)
	step := func(n int64) {
		if n > 0 {
			r.applied.Add(n)
		}
		st.tick(r, now)
		now = now.Add(r.period)
	}
	step(2 << 20)
	step(0)
	step(0)
	if frees != 1 {
		t.Fatalf("after the first load: %d returns, want 1", frees)
	}
	step(2 << 20)
	step(0)
	step(0)
	if frees != 1 {
		t.Fatalf("a second load %v after the first: %d returns, want still 1 (minInterval %v)", 3*r.period, frees, r.minInterval)
	}
	for i := 0; frees == 1 && i < 100; i++ {
		step(0)
	}
	if frees != 2 {
		t.Fatalf("the second load was never returned")
	}
	if d := now.Sub(time.Unix(1000, 0)); d < r.minInterval {
		t.Fatalf("second return after %v, less than minInterval %v", d, r.minInterval)
	}
}
