package caveats

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// list returns a CEL list literal of n integers.
func list(n int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(i))
	}
	b.WriteByte(']')
	return b.String()
}

// Expressions whose work is exponential in their length stop at the cost
// limit with an error naming the caveat and the limit (issue 16: nested
// map over 1000-element literals took 3.5 GiB; three nested .all ran for
// minutes after the client's deadline).
func TestEvaluationStopsAtCostLimit(t *testing.T) {
	l := list(1000)
	for _, tc := range []struct {
		name, expr string
		params     []Param
	}{
		{"nested all", l + ".all(x, " + l + ".all(y, " + l + ".all(z, x + y + z >= n)))", []Param{{Name: "n", Type: "int"}}},
		{"nested map", l + ".map(x, " + l + ".map(y, " + l + ".map(z, z + n))).size() > 0", []Param{{Name: "n", Type: "int"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile("heavy", tc.params, tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.EvaluateContext(context.Background(), map[string]any{"n": 0.0}, nil)
			var ce *CostError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCostLimit) {
				t.Fatalf("err = %v, want a *CostError", err)
			}
			if msg := err.Error(); !strings.Contains(msg, `"heavy"`) || !strings.Contains(msg, strconv.Itoa(MaxEvalCost)) {
				t.Fatalf("error %q does not name the caveat and the limit", msg)
			}
			// Partial evaluation (a parameter missing) is bounded too.
			if tc.name == "nested all" {
				if _, err := c.EvaluateContext(context.Background(), nil, nil); !errors.Is(err, ErrCostLimit) {
					t.Fatalf("partial: err = %v, want ErrCostLimit", err)
				}
			}
		})
	}
}

// An evaluation stops when its context ends, with an error wrapping the
// context's.
func TestEvaluationStopsWithContext(t *testing.T) {
	c, err := Compile("slow", []Param{{Name: "xs", Type: "list<int>"}}, "xs.all(x, xs.all(y, x + y >= 0))")
	if err != nil {
		t.Fatal(err)
	}
	xs := make([]any, 100)
	for i := range xs {
		xs[i] = float64(i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.EvaluateContext(ctx, map[string]any{"xs": xs}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The same evaluation within the limit succeeds.
	if r, err := c.EvaluateContext(context.Background(), map[string]any{"xs": xs}, nil); err != nil || !r.Value {
		t.Fatalf("= %+v, %v; want true", r, err)
	}
}

func TestCompileRefusesHugeExpressions(t *testing.T) {
	expr := "n in " + list(MaxExpressionNodes)
	if len(expr) > MaxExpressionBytes {
		t.Fatalf("test expression is %d bytes, over the byte limit", len(expr))
	}
	_, err := Compile("big", []Param{{Name: "n", Type: "int"}}, expr)
	if err == nil || !strings.Contains(err.Error(), "nodes") || !strings.Contains(err.Error(), strconv.Itoa(MaxExpressionNodes)) {
		t.Fatalf("err = %v, want the node limit", err)
	}
}
