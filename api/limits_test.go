package api_test

import (
	"testing"

	"github.com/ambit-authz/ambit/api"
)

func TestParseMemoryLimit(t *testing.T) {
	avail := int64(api.AvailableMemory())
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"0", 0, false},
		{"off", 0, false},
		{"", 0, false},
		{"1048576", 1 << 20, false},
		{"512MiB", 512 << 20, false},
		{"2 GiB", 2 << 30, false},
		{"64KiB", 64 << 10, false},
		{"50%", avail / 2, avail == 0},
		{"100%", avail, avail == 0},
		{"0%", 0, true},
		{"101%", 0, true},
		{"-5", 0, true},
		{"1.5GiB", 0, true},
		{"lots", 0, true},
		{"99999999TiB", 0, true},
	} {
		got, err := api.ParseMemoryLimit(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseMemoryLimit(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMemoryLimit(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	if avail <= 0 {
		t.Log("no memory size known on this machine; percentages untested")
	}
}
