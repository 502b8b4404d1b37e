package oracle

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

func TestEachStopsAtFirstError(t *testing.T) {
	boom := errors.New("boom")
	var calls [100]bool
	err := each(context.Background(), 4, 100, func(ctx context.Context, i int) error {
		calls[i] = true
		switch {
		case i == 10:
			return boom
		case i > 10:
			<-ctx.Done() // held until the error cancels the rest
			return ctx.Err()
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("each = %v, want boom", err)
	}
	for i := 14; i < len(calls); i++ {
		if calls[i] {
			t.Fatalf("call %d was made after the error (4 at a time, the error at 10)", i)
		}
	}
	var n atomic.Int64
	if err := each(context.Background(), 3, 50, func(context.Context, int) error { n.Add(1); return nil }); err != nil || n.Load() != 50 {
		t.Fatalf("each = %v after %d calls, want nil after 50", err, n.Load())
	}
}
