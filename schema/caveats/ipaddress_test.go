package caveats

import (
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/interpreter"
)

// TestConstantCIDRSpecialisation checks which in_cidr calls the planner
// decorator replaces: only those with a valid constant CIDR.
func TestConstantCIDRSpecialisation(t *testing.T) {
	env, err := cel.NewEnv(ipAddressLibrary(),
		cel.Variable("ip", ipAddressType), cel.Variable("s", cel.StringType))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		expr string
		want int
	}{
		{"ip.in_cidr('10.0.0.0/8')", 1},
		{"ip.in_cidr('10.0.0.0/8') || ip.in_cidr('::1/128')", 2},
		{"ip.in_cidr(s)", 0},
		{"ip.in_cidr('not a cidr')", 0},
		{"ip.in_cidr('10.0.0.' + '0/8')", 0},
	}
	for _, tc := range tests {
		ast, iss := env.Compile(tc.expr)
		if iss.Err() != nil {
			t.Fatalf("%s: %v", tc.expr, iss.Err())
		}
		n := 0
		count := func(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
			out, err := constantCIDR(i)
			if _, ok := out.(*cidrCall); ok {
				n++
			}
			return out, err
		}
		if _, err := env.Program(ast, cel.CustomDecoratorV2(count)); err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if n != tc.want {
			t.Errorf("%s: %d calls specialised, want %d", tc.expr, n, tc.want)
		}
	}
}

func TestInCIDRDynamicReceiver(t *testing.T) {
	runEvalCases(t, []evalCase{
		{name: "any holding an ipaddress-like string", params: p("a", "any"), expr: "a.in_cidr('10.0.0.0/8')", ctx: map[string]any{"a": "10.0.0.1"}, err: ErrEvaluation, errMsg: "in_cidr: receiver is string, not ipaddress"},
		{name: "any with computed cidr", params: p("a", "any", "c", "string"), expr: "a.in_cidr(c)", ctx: map[string]any{"a": "10.0.0.1", "c": "10.0.0.0/8"}, err: ErrEvaluation, errMsg: "no such overload: in_cidr(string, string)"},
		{name: "ip with computed cidr", params: p("ip", "ipaddress", "c", "string"), expr: "ip.in_cidr(c + '/8')", ctx: map[string]any{"ip": "10.0.0.1", "c": "10.0.0.0"}, want: true},
		{name: "ip with invalid computed cidr", params: p("ip", "ipaddress", "c", "string"), expr: "ip.in_cidr(c)", ctx: map[string]any{"ip": "10.0.0.1", "c": "10.0.0.0/33"}, err: ErrEvaluation, errMsg: `invalid CIDR string "10.0.0.0/33"`},
		{name: "missing ip with constant cidr", params: p("ip", "ipaddress", "b", "bool"), expr: "ip.in_cidr('10.0.0.0/8') || b", ctx: map[string]any{"b": false}, missing: []string{"ip"}},
		{name: "missing ip decided", params: p("ip", "ipaddress", "b", "bool"), expr: "ip.in_cidr('10.0.0.0/8') || b", ctx: map[string]any{"b": true}, want: true},
	})
}
