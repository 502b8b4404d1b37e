package caveats

import (
	"errors"
	"strings"
	"testing"
)

func BenchmarkEvaluate(b *testing.B) {
	benches := []struct {
		name   string
		params []Param
		expr   string
		ctx    map[string]any
		want   Result
	}{
		{"int", p("somecondition", "int"), "somecondition == 42",
			map[string]any{"somecondition": 42.0}, Result{Value: true}},
		{"ipaddress", p("user_ip", "ipaddress"), "user_ip.in_cidr('10.0.0.0/8')",
			map[string]any{"user_ip": "10.1.2.3"}, Result{Value: true}},
		{"map", p("somemap", "map<any>"), "somemap.foo == 42 && somemap.bar < 56",
			map[string]any{"somemap": map[string]any{"foo": 42.0, "bar": 10.0}}, Result{Value: true}},
		{"timestamp", p("now", "timestamp", "expires_at", "timestamp"), "now < expires_at",
			map[string]any{"now": "2023-01-01T00:00:00Z", "expires_at": "2024-10-03T14:16:30.776734Z"}, Result{Value: true}},
		{"list", p("admin_teams", "list<string>", "me", "string"), "me in admin_teams",
			map[string]any{"admin_teams": []any{"x", "y", "A"}, "me": "A"}, Result{Value: true}},
		{"partial", p("a", "int", "b", "int"), "a == 1 && b == 2",
			map[string]any{"a": 1.0}, Result{Missing: []string{"b"}}},
	}
	for _, bc := range benches {
		c, err := Compile("bench", bc.params, bc.expr)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, err := c.Evaluate(bc.ctx)
				if err != nil || r.Value != bc.want.Value || len(r.Missing) != len(bc.want.Missing) {
					b.Fatalf("Evaluate = %+v, %v; want %+v", r, err, bc.want)
				}
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	benches := []struct {
		name   string
		params []Param
		expr   string
	}{
		{"simple", p("somemap", "map<any>", "ip", "ipaddress"), "somemap.foo == 42 && ip.in_cidr('10.0.0.0/8')"},
		// The worst cases the limits allow: MaxExpressionCalls generic
		// comparisons, and an expression of MaxExpressionBytes.
		{"max_calls", p("x", "int"), strings.Repeat("x == 1 && ", MaxExpressionCalls/2-1) + "x == 1"},
		{"max_bytes", p("s", "string"), "s in [" + strings.Repeat("'abcdefgh', ", (MaxExpressionBytes-16)/12) + "'z']"},
	}
	for _, bc := range benches {
		if len(bc.expr) > MaxExpressionBytes {
			b.Fatalf("%s: expression of %d bytes", bc.name, len(bc.expr))
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile("bench", bc.params, bc.expr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEvaluateAtCostLimit: three nested .all() over 1000-element list
// literals (10^9 steps; issue 16: ran ~9 minutes) stop at MaxEvalCost.
func BenchmarkEvaluateAtCostLimit(b *testing.B) {
	l := list(1000)
	c, err := Compile("heavy", p("n", "int"), l+".all(x, "+l+".all(y, "+l+".all(z, x + y + z >= n)))")
	if err != nil {
		b.Fatal(err)
	}
	ctx := map[string]any{"n": 0.0}
	for b.Loop() {
		if _, err := c.Evaluate(ctx); !errors.Is(err, ErrCostLimit) {
			b.Fatal(err)
		}
	}
}
