package main

import "testing"

func TestCacheBytes(t *testing.T) {
	for _, tc := range []struct{ mib, planned, want int64 }{
		{-1, 8 << 20, -1},     // disabled
		{0, 8 << 20, 8 << 20}, // the share of --memory-limit
		{1, 8 << 20, 1 << 20}, // explicit wins
		{512, 8 << 20, 512 << 20},
	} {
		if got := cacheBytes(tc.mib, tc.planned); got != tc.want {
			t.Errorf("cacheBytes(%d, %d) = %d, want %d", tc.mib, tc.planned, got, tc.want)
		}
	}
}

// TestPlanMemory: the caches grow with --memory-limit between their floors
// and caps, together stay a small part of any limit of 1 GiB or more, and a
// limit of none takes every cap.
func TestPlanMemory(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		limit     int64
		memTable  int64
		block     int64
		result    int64
		maxShareP int64 // caches at most this percentage of the limit
	}{
		{0, 8 * mib, 128 * mib, 64 * mib, 0},
		{256 * mib, 8 * mib, 16 * mib, 8 * mib, 0}, // floors
		{1 << 30, 8 * mib, 32 * mib, 16 * mib, 20},
		{4 << 30, 8 * mib, 128 * mib, 64 * mib, 15},
		{18 << 30, 8 * mib, 128 * mib, 64 * mib, 3}, // caps (this machine's default, 75% of 24 GiB)
	} {
		p := planMemory(tc.limit)
		if p.memTable != tc.memTable || p.blockCache != tc.block || p.resultCache != tc.result || p.readCache != tc.result {
			t.Errorf("planMemory(%d MiB) = %+v; want memtable %d, block cache %d, engine caches %d", tc.limit/mib, p, tc.memTable, tc.block, tc.result)
		}
		if p.memTables < 2 || p.raftLogCache <= 0 {
			t.Errorf("planMemory(%d MiB) = %+v: want at least 2 memtables and a raft log cache", tc.limit/mib, p)
		}
		if tc.maxShareP > 0 && p.total()*100 > tc.limit*tc.maxShareP {
			t.Errorf("planMemory(%d MiB): caches total %d MiB, more than %d%% of the limit", tc.limit/mib, p.total()/mib, tc.maxShareP)
		}
	}
}
