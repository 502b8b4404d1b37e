package main

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// closeSteps closes in reverse order, reports failures, and abandons a step
// that does not finish by the deadline without starting the ones after it.
func TestCloseStepsBounded(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var order []string
	step := func(name string, err error) closeStep {
		return closeStep{name, func() error { order = append(order, name); return err }}
	}
	hang := make(chan struct{})
	defer close(hang)
	for _, tc := range []struct {
		name      string
		steps     []closeStep
		wantOrder []string
		wantErr   []string // substrings; none: nil error
	}{
		{"all close", []closeStep{step("a", nil), step("b", nil)}, []string{"b", "a"}, nil},
		{"one fails, the rest still close", []closeStep{step("a", nil), step("b", errors.New("boom")), step("c", nil)},
			[]string{"c", "b", "a"}, []string{"closing b: boom"}},
		{"one hangs", []closeStep{step("a", nil), {"the store", func() error { <-hang; return nil }}, step("c", errors.New("late"))},
			[]string{"c"}, []string{"closing c: late", "the store did not close in time", "not attempted after it: a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			order = nil
			start := time.Now()
			err := closeSteps(tc.steps, time.Now().Add(200*time.Millisecond), log)
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("took %v", d)
			}
			if strings.Join(order, ",") != strings.Join(tc.wantOrder, ",") {
				t.Errorf("closed %v, want %v", order, tc.wantOrder)
			}
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Errorf("err = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("err = nil, want %v", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q lacks %q", err, w)
				}
			}
			if strings.Contains(tc.name, "hangs") && !errors.Is(err, errNotClosed) {
				t.Errorf("err %v does not wrap errNotClosed", err)
			}
		})
	}
}
