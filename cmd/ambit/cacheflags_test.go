package main

import "testing"

func TestCacheBytes(t *testing.T) {
	for _, tc := range []struct{ mib, want int64 }{
		{-1, -1}, // disabled
		{0, 0},   // the engine's default
		{1, 1 << 20},
		{512, 512 << 20},
	} {
		if got := cacheBytes(tc.mib); got != tc.want {
			t.Errorf("cacheBytes(%d) = %d, want %d", tc.mib, got, tc.want)
		}
	}
}
