package caveats

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// FuzzCompile checks that Compile and ParseType never panic, that every
// Compile error is an *Error with a position inside the expression, and that
// a successful Compile yields a caveat that evaluates without panicking.
func FuzzCompile(f *testing.F) {
	seeds := []struct{ expr, typ string }{
		{"x == 42", "int"},
		{"x.in_cidr('10.0.0.0/8')", "ipaddress"},
		{"x.foo == 42 && x.bar < 56", "map<any>"},
		{"'a' in x", "list<string>"},
		{"x[0].a == 1", "list<map<int>>"},
		{"x < timestamp('2024-01-01T00:00:00Z')", "timestamp"},
		{"x > duration('1h')", "duration"},
		{"x == b'ab'", "bytes"},
		{"x", "bool"},
		{"x +", "int"},
		{"x == 'é' &&\n y", "map< string >"},
		{"((((((((x))))))))", "list<"},
		{"x.exists(e, e.all(f, f > 1))", "list<list<uint>>"},
		{"", "foo"},
	}
	for _, s := range seeds {
		f.Add(s.expr, s.typ)
	}
	f.Fuzz(func(t *testing.T, expr, typ string) {
		canon, perr := ParseType(typ)
		if perr == nil {
			if again, err := ParseType(canon); err != nil || again != canon {
				t.Fatalf("ParseType(%q) = %q, which reparses as %q, %v", typ, canon, again, err)
			}
		}
		c, err := Compile("fuzz", []Param{{Name: "x", Type: typ}, {Name: "y", Type: "bool"}}, expr)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Compile error %v is %T, want *Error", err, err)
			}
			if ce.Line < 0 || ce.Column < 0 || (ce.Line == 0) != (ce.Column == 0) {
				t.Fatalf("bad position %d:%d in %v", ce.Line, ce.Column, ce)
			}
			if ce.Line > 0 && ce.Line > 1+countByte(expr, '\n') {
				t.Fatalf("line %d past the end of %q", ce.Line, expr)
			}
			return
		}
		if perr != nil {
			t.Fatalf("Compile accepted type %q that ParseType rejects: %v", typ, perr)
		}
		_, _ = c.Evaluate(nil)
		_, _ = c.Evaluate(map[string]any{"y": true})
	})
}

func countByte(s string, b byte) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			n++
		}
	}
	return n
}

// fuzzCaveats covers every parameter type and the runtime paths: map keys,
// list indexes, arithmetic, comprehensions, in_cidr with a CIDR from context.
var fuzzCaveats = []struct {
	params []Param
	expr   string
}{
	{p("i", "int", "u", "uint", "d", "double"), "i + int(u) > 3 && d / 2.0 < 10.0 && 100 / i != 7"},
	{p("s", "string", "b", "bool", "by", "bytes"), "(b || s.startsWith('a')) && size(by) < 5"},
	{p("du", "duration", "t", "timestamp", "n", "timestamp"), "t + du > n && t.getHours() < 20"},
	{p("ip", "ipaddress", "cidr", "string"), "ip.in_cidr(cidr) || ip.in_cidr('10.0.0.0/8')"},
	{p("l", "list<int>", "x", "int"), "x in l && l[x] > 0 && l.all(e, e < 100)"},
	{p("m", "map<any>"), "m.foo == 42 && m.bar < 56"},
	{p("lm", "list<map<list<string>>>", "a", "any"), "lm.exists(m, 'k' in m && m.k.exists(s, s == a))"},
}

// FuzzEvaluate decodes arbitrary JSON as a context and evaluates every fuzz
// caveat against it: no panic, errors are ParamTypeError or EvalError, a
// conditional result lists sorted, distinct, declared parameters, and
// EvaluateLayered agrees with Evaluate however the context is layered.
func FuzzEvaluate(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"i": 5, "u": 2, "d": 1.5}`,
		`{"i": 0, "u": -1}`,
		`{"s": "abc", "b": false, "by": "AAEC"}`,
		`{"du": "1h", "t": "2024-01-01T10:00:00Z", "n": "2024-01-01T00:00:00Z"}`,
		`{"ip": "10.1.2.3", "cidr": "10.0.0.0/8"}`,
		`{"ip": "::1", "cidr": "bogus"}`,
		`{"l": [1, 2, 3], "x": 1}`,
		`{"l": [1, 2, 3], "x": 7}`,
		`{"m": {"foo": 42, "bar": 1}}`,
		`{"m": {"foo": 42}}`,
		`{"lm": [{"k": ["q"]}], "a": "q"}`,
		`{"a": null, "m": null, "i": 1e300}`,
	} {
		f.Add(s)
	}
	var compiled []*Caveat
	for _, fc := range fuzzCaveats {
		c, err := Compile("fuzz", fc.params, fc.expr)
		if err != nil {
			f.Fatalf("Compile(%q): %v", fc.expr, err)
		}
		compiled = append(compiled, c)
	}
	f.Fuzz(func(t *testing.T, data string) {
		var ctx map[string]any
		if json.Unmarshal([]byte(data), &ctx) != nil {
			return
		}
		for _, c := range compiled {
			r, err := c.Evaluate(ctx)
			// Splitting the context between the layers changes nothing.
			for _, layers := range [][2]map[string]any{{ctx, nil}, {nil, ctx}, {ctx, ctx}} {
				lr, lerr := c.EvaluateLayered(layers[0], layers[1])
				if fmt.Sprint(lerr) != fmt.Sprint(err) || lr.Value != r.Value || !slices.Equal(lr.Missing, r.Missing) {
					t.Fatalf("%s: EvaluateLayered = %+v, %v; Evaluate = %+v, %v", c.Expr, lr, lerr, r, err)
				}
			}
			if cerr := c.CheckContext(ctx); cerr != nil {
				var pe *ParamTypeError
				if !errors.Is(cerr, ErrUnknownParam) && !errors.As(cerr, &pe) {
					t.Fatalf("%s: CheckContext error %v is %T", c.Expr, cerr, cerr)
				}
			}
			if err != nil {
				var pe *ParamTypeError
				var ee *EvalError
				if !errors.As(err, &pe) && !errors.As(err, &ee) {
					t.Fatalf("%s: error %v is %T", c.Expr, err, err)
				}
				continue
			}
			if len(r.Missing) == 0 {
				continue
			}
			if r.Value {
				t.Fatalf("%s: Value true with Missing %v", c.Expr, r.Missing)
			}
			if !slices.IsSorted(r.Missing) || len(slices.Compact(slices.Clone(r.Missing))) != len(r.Missing) {
				t.Fatalf("%s: Missing %v not sorted and distinct", c.Expr, r.Missing)
			}
			for _, name := range r.Missing {
				if _, present := ctx[name]; present || !slices.Contains(c.ParamNames(), name) {
					t.Fatalf("%s: Missing %v names %q, which is present or undeclared", c.Expr, r.Missing, name)
				}
			}
		}
	})
}
