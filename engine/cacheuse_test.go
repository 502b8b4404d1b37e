package engine

import "testing"

// A relation whose sub-problems the cache does not answer stops using it
// after a window, tries again after cacheUseOffFor, and one that hits
// often enough keeps it.
func TestCacheUse(t *testing.T) {
	var u cacheUse
	on := 0
	for range cacheUseWindow {
		if u.enabled() {
			on++
		}
	}
	if on != cacheUseWindow {
		t.Fatalf("%d of the first window's lookups enabled, want all %d", on, cacheUseWindow)
	}
	if u.enabled() {
		t.Fatal("still enabled after a window without a hit")
	}
	for i := 2; i < cacheUseOffFor; i++ {
		if u.enabled() {
			t.Fatalf("enabled again after %d skips, want %d", i, cacheUseOffFor)
		}
	}
	if u.enabled() {
		t.Fatal("the call that ends the off window is still skipped")
	}
	if !u.enabled() {
		t.Fatal("not enabled again after the off window")
	}

	// One hit in 32 lookups is above the 1 in 64 floor: it stays on.
	var busy cacheUse
	for i := range 10 * cacheUseWindow {
		if !busy.enabled() {
			t.Fatalf("turned off after %d lookups with a hit every 32", i)
		}
		if i%32 == 0 {
			busy.hit()
		}
	}
	var nilUse *cacheUse
	if !nilUse.enabled() {
		t.Fatal("a relation without a cacheUse must use the cache")
	}
}
