package engine

import (
	"fmt"
	"hash/maphash"
	"sync"
	"testing"
)

func newTestGenCache(maxCost int64) *genCache[string, int] {
	seed := maphash.MakeSeed()
	return newGenCache[string, int](maxCost, func(k string) uint64 { return maphash.String(seed, k) })
}

func TestGenCache(t *testing.T) {
	t.Run("set then get", func(t *testing.T) {
		c := newTestGenCache(1000)
		c.Set("a", 1, 10)
		c.Set("a", 2, 10) // replaced, not counted twice
		if v, ok := c.Get("a"); !ok || v != 2 {
			t.Fatalf("Get(a) = %d, %v; want 2, true", v, ok)
		}
		if _, ok := c.Get("b"); ok {
			t.Fatal("Get(b) found a key never set")
		}
		if got := c.Cost(); got != 10 {
			t.Fatalf("Cost = %d, want 10", got)
		}
	})
	t.Run("entries in use survive turns, others age out in two", func(t *testing.T) {
		c := newTestGenCache(100) // a generation turns at cost 50
		c.Set("used", 1, 10)
		c.Set("idle", 2, 10)
		for i := range 5 { // fills the first generation: it turns
			c.Set(fmt.Sprint("x", i), i, 10)
		}
		if _, ok := c.Get("idle"); !ok {
			t.Fatal("an entry of the previous generation is gone after one turn")
		}
		// idle was just copied forward; from here on only "used" is read,
		// after every write: at least once in every generation.
		for i := range 20 {
			c.Set(fmt.Sprint("r", i), i, 10)
			if _, ok := c.Get("used"); !ok {
				t.Fatalf("after %d more writes the entry in use was dropped", i+1)
			}
		}
		if _, ok := c.Get("idle"); ok {
			t.Fatal("an entry not read for two turns is still there")
		}
		if v, ok := c.Get("used"); !ok || v != 1 {
			t.Fatalf("Get(used) = %d, %v; want 1, true", v, ok)
		}
	})
	t.Run("cost stays within the budget", func(t *testing.T) {
		c := newTestGenCache(1000)
		for i := range 10_000 {
			c.Set(fmt.Sprint(i), i, 7)
			if got := c.Cost(); got > 1000+7 {
				t.Fatalf("after %d sets Cost = %d, budget 1000", i+1, got)
			}
		}
	})
}

func TestGenCacheConcurrent(t *testing.T) {
	c := newTestGenCache(4096)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				k := fmt.Sprint(i % 300)
				if v, ok := c.Get(k); ok && v != i%300 {
					t.Errorf("worker %d: Get(%s) = %d", w, k, v)
					return
				}
				c.Set(k, i%300, 16)
			}
		})
	}
	wg.Wait()
}
