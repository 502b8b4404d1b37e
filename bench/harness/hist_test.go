package harness

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverAndOrder(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, 1<<62 + 1, 1<<63 - 1} {
		i := bucketOf(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d (previous %d, buckets %d)", v, i, prev, histBuckets)
		}
		prev = i
		if lo, hi := bucketBounds(i); v < lo || v > hi {
			t.Fatalf("%d is outside its bucket %d [%d, %d]", v, i, lo, hi)
		}
	}
	for i := 0; i+1 < histBuckets; i++ {
		_, hi := bucketBounds(i)
		lo, _ := bucketBounds(i + 1)
		if lo != hi+1 {
			t.Fatalf("buckets %d and %d leave a gap: %d..%d", i, i+1, hi, lo)
		}
	}
}

func TestQuantilesWithinError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	var h, a, b Histogram
	var vals []int64
	for i := range 100_000 {
		v := int64(r.ExpFloat64() * 200_000) // ~200µs mean, long tail
		vals = append(vals, v)
		h.Record(time.Duration(v))
		if i%2 == 0 {
			a.Record(time.Duration(v))
		} else {
			b.Record(time.Duration(v))
		}
	}
	a.Merge(&b)
	slices.Sort(vals)
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
		idx := max(int(q*float64(len(vals)))-1, 0)
		if q > 0 {
			idx = int(float64(len(vals))*q+0.999999) - 1
		}
		want := float64(vals[idx])
		got := float64(h.Quantile(q))
		if d := (got - want) / max(want, 1); d > 1.0/64 || d < -1.0/64 {
			t.Errorf("q%.3f = %v, exact %v (error %.2f%%)", q, got, want, 100*d)
		}
		if a.Quantile(q) != h.Quantile(q) {
			t.Errorf("merged q%.3f = %v, want %v", q, a.Quantile(q), h.Quantile(q))
		}
	}
	if h.Count() != 100_000 || h.Max() != time.Duration(vals[len(vals)-1]) || h.Min() != time.Duration(vals[0]) {
		t.Errorf("count %d max %v min %v", h.Count(), h.Max(), h.Min())
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Error("empty histogram reports a value")
	}
}
