package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
)

// TestRequestLimitFlagsFromEnv: every request-limit flag has its AMBIT_*
// twin and reaches the API's limits.
func TestRequestLimitFlagsFromEnv(t *testing.T) {
	for k, v := range map[string]string{
		"AMBIT_REQUEST_TIMEOUT":           "7s",
		"AMBIT_MAX_READ_LIMIT":            "123",
		"AMBIT_MAX_RESPONSE_BYTES":        "4096",
		"AMBIT_MAX_CONCURRENT_HEAVY":      "3",
		"AMBIT_HEAVY_BULK_CHECKS":         "9",
		"AMBIT_MEMORY_LIMIT":              "512MiB",
		"AMBIT_MEMORY_HIGH_WATER_PERCENT": "50",
		"AMBIT_MAX_WATCHES":               "17",
	} {
		t.Setenv(k, v)
	}
	cmd := newServeCmd()
	if err := cmd.Flags().Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := flagsFromEnv(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"request-timeout": "7s", "max-read-limit": "123", "max-response-bytes": "4096", "max-concurrent-heavy": "3",
		"heavy-bulk-checks": "9", "memory-limit": "512MiB", "memory-high-water-percent": "50", "max-watches": "17",
	} {
		if v := cmd.Flags().Lookup(name).Value.String(); v != want {
			t.Errorf("--%s = %q from the environment, want %q", name, v, want)
		}
	}
}

// TestApplyMemoryLimit: --memory-limit sets the Go memory limit and the
// high-water mark; bad values are refused naming the flag.
func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	c := serveConfig{memoryLimit: "1GiB", memoryHighPct: 50}
	if err := applyMemoryLimit(&c, log); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("Go memory limit %d, want %d", got, 1<<30)
	}
	if c.limits.MemoryHighWater != 1<<29 {
		t.Errorf("high-water mark %d, want %d", c.limits.MemoryHighWater, 1<<29)
	}
	for _, tc := range []struct {
		limit string
		pct   int
		flag  string
	}{
		{"lots", 90, "--memory-limit"},
		{"150%", 90, "--memory-limit"},
		{"1GiB", 101, "--memory-high-water-percent"},
		{"1GiB", -1, "--memory-high-water-percent"},
	} {
		c := serveConfig{memoryLimit: tc.limit, memoryHighPct: tc.pct}
		if err := applyMemoryLimit(&c, log); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("memory limit %q, %d%%: %v, want a refusal naming %s", tc.limit, tc.pct, err, tc.flag)
		}
	}
}
