package harness

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations in log-spaced buckets: values below 128 ns are
// exact; above, each power of two is split into 64 buckets, so a reported
// quantile is within 1/64 (1.6%) of the true value. It covers the whole
// int64 range in a fixed 30 KiB; the zero value is ready to use. Not safe
// for concurrent use: give each worker its own and Merge them.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

const (
	histExact   = 128 // values below are their own bucket
	histSubBits = 6   // 64 buckets per power of two above
	histBuckets = histExact + (64-7)*(1<<histSubBits)
)

func bucketOf(v int64) int {
	if v < histExact {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - histSubBits - 1 // v>>e is in [64, 128)
	return histExact + (e-1)<<histSubBits + int(uint64(v)>>e) - 1<<histSubBits
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < histExact {
		return int64(i), int64(i)
	}
	j := i - histExact
	e := j>>histSubBits + 1
	m := int64(j&(1<<histSubBits-1) + 1<<histSubBits)
	return m << e, (m+1)<<e - 1
}

// Record adds one observation.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
}

// Merge adds o's observations to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest observation (exact).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min is the smallest observation (exact).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Mean is the mean observation (exact).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the q-quantile (0 ≤ q ≤ 1): the midpoint of the bucket
// holding the ⌈q·n⌉-th smallest observation, clamped to [Min, Max].
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			lo, hi := bucketBounds(i)
			v := lo + (hi-lo)/2
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
