package caveats

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// p builds a parameter list from alternating names and types.
func p(nameTypes ...string) []Param {
	var ps []Param
	for i := 0; i+1 < len(nameTypes); i += 2 {
		ps = append(ps, Param{Name: nameTypes[i], Type: nameTypes[i+1]})
	}
	return ps
}

func TestCompileErrors(t *testing.T) {
	manyParams := make([]Param, MaxParams+1)
	for i := range manyParams {
		manyParams[i] = Param{Name: "p" + strings.Repeat("x", i), Type: "int"}
	}
	tests := []struct {
		name      string
		params    []Param
		expr      string
		line, col int    // expected position; 0 for none
		param     string // expected Error.Param
		msg       string // regexp the message must match
	}{
		// Parameter declarations.
		{"unknown type", p("x", "foo"), "true", 0, 0, "x", `parameter "x": unknown type "foo"`},
		{"unknown element type", p("x", "list<strin>"), "true", 0, 0, "x", `unknown type "strin"`},
		{"map with key type", p("m", "map<string, int>"), "true", 0, 0, "m", `type "map" requires 1 type argument, found 2`},
		{"list without element", p("l", "list"), "true", 0, 0, "l", `type "list" requires 1 type argument, found 0`},
		{"duplicate", p("a", "int", "b", "int", "a", "string"), "true", 0, 0, "a", `duplicate parameter "a"`},
		{"empty name", p("", "int"), "true", 0, 0, "", `empty parameter name`},
		{"name with dash", p("a-b", "int"), "true", 0, 0, "a-b", `"a-b" is not an identifier`},
		{"name with digit first", p("1a", "int"), "true", 0, 0, "1a", `"1a" is not an identifier`},
		{"name with dot", p("a.b", "int"), "true", 0, 0, "a.b", `"a.b" is not an identifier`},
		{"reserved name", p("in", "int"), "true", 0, 0, "in", `"in" is a reserved word`},
		{"reserved name null", p("null", "int"), "true", 0, 0, "null", `"null" is a reserved word`},
		{"too many params", manyParams, "true", 0, 0, "", `129 parameters; the limit is 128`},

		// Expression as a whole.
		{"empty", nil, "", 0, 0, "", `expression is empty`},
		{"blank", nil, " \n\t", 0, 0, "", `expression is empty`},
		{"too long", nil, "true" + strings.Repeat(" ", MaxExpressionBytes), 0, 0, "", `the limit is 100000`},
		{"too many calls", p("x", "int"), "  " + strings.Repeat("x == 1 && ", 251) + "true", 1, 3, "", `expression has 502 operators and function calls; the limit is 500`},
		{"invalid utf8", nil, "'\xff' == ''", 0, 0, "", `not valid UTF-8`},

		// Syntax and type errors, with positions.
		{"syntax", p("x", "int"), "x ==", 1, 5, "", `Syntax error`},
		{"undeclared", p("x", "int"), "x == 1 && nope", 1, 11, "", `undeclared reference to 'nope'$`},
		{"undeclared after unicode", p("s", "string"), "s == 'héllo' && nope", 1, 18, "", `undeclared reference to 'nope'`},
		{"undeclared on line 3", p("x", "int"), "x == 1 &&\n  x > 0 &&\n\tnope", 3, 2, "", `undeclared reference to 'nope'`},
		{"int compared to string", p("x", "int"), "x == 'a'", 1, 3, "", `found no matching overload for '_==_' applied to '\(int, string\)'`},
		{"no implicit int to double", p("d", "double"), "d < 2", 1, 3, "", `no matching overload for '_<_' applied to '\(double, int\)'`},
		{"uint is a CEL int", p("u", "uint"), "u == 1u", 1, 3, "", `no matching overload for '_==_' applied to '\(int, uint\)'`},
		{"in_cidr on a string", p("s", "string"), "s.in_cidr('10.0.0.0/8')", 1, 10, "", `found no matching overload for 'in_cidr'`},
		{"in_cidr with an int", p("ip", "ipaddress"), "ip.in_cidr(8)", 1, 11, "", `found no matching overload for 'in_cidr' applied to 'IPAddress.\(int\)'`},
		{"ipaddress ordering", p("ip", "ipaddress", "ip2", "ipaddress"), "ip < ip2", 1, 4, "", `no matching overload for '_<_'`},
		{"two errors", p("x", "int"), "a == b", 1, 1, "", `undeclared reference to 'a' \(and 1 more errors\)`},

		// The result must be bool.
		{"int result", p("x", "int"), "x + 1", 1, 1, "", `must evaluate to bool, not int`},
		{"string result", nil, "\n  'yes'", 2, 3, "", `must evaluate to bool, not string`},
		{"dyn result from any", p("a", "any"), "a", 1, 1, "", `must evaluate to bool, not dyn`},
		{"dyn result from map<any>", p("m", "map<any>"), "m.flag", 1, 1, "", `must evaluate to bool, not dyn`},
		{"list result", p("l", "list<bool>"), "l", 1, 1, "", `must evaluate to bool, not list\(bool\)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile("cav", tc.params, tc.expr)
			if err == nil {
				t.Fatalf("Compile succeeded (%v); want error matching %q", c.Params, tc.msg)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is %T, want *Error", err, err)
			}
			if !regexp.MustCompile(tc.msg).MatchString(ce.Msg) {
				t.Errorf("message %q does not match %q", ce.Msg, tc.msg)
			}
			if !strings.HasPrefix(ce.Msg, `caveat "cav": `) {
				t.Errorf("message %q does not name the caveat", ce.Msg)
			}
			if ce.Line != tc.line || ce.Column != tc.col {
				t.Errorf("position %d:%d, want %d:%d", ce.Line, ce.Column, tc.line, tc.col)
			}
			if ce.Param != tc.param {
				t.Errorf("Param %q, want %q", ce.Param, tc.param)
			}
		})
	}
}

func TestCompileNormalisesParams(t *testing.T) {
	in := p("b", "list< string >", "a", " map<list< int >>", "c", "ipaddress")
	c, err := Compile("cav", in, "b.size() > 0 || a.size() > 0 || c.in_cidr('::/0')")
	if err != nil {
		t.Fatal(err)
	}
	want := p("b", "list<string>", "a", "map<list<int>>", "c", "ipaddress")
	if !slices.Equal(c.Params, want) {
		t.Errorf("Params = %v, want %v", c.Params, want)
	}
	if in[0].Type != "list< string >" {
		t.Errorf("Compile modified its argument: %v", in)
	}
	if got := c.ParamNames(); !slices.Equal(got, []string{"b", "a", "c"}) {
		t.Errorf("ParamNames() = %v", got)
	}
	// ParamNames returns a fresh slice.
	c.ParamNames()[0] = "zzz"
	if c.ParamNames()[0] != "b" {
		t.Errorf("ParamNames shares its slice")
	}
	if c.Name != "cav" || c.Expr != "b.size() > 0 || a.size() > 0 || c.in_cidr('::/0')" {
		t.Errorf("Name/Expr = %q/%q", c.Name, c.Expr)
	}
}

func TestCompileAccepts(t *testing.T) {
	tests := []struct {
		params []Param
		expr   string
	}{
		{nil, "true"},
		{p("x", "int"), "x == 42"},
		{p("u", "uint"), "u == 15 && u + 1 > 0"},
		{p("d", "double"), "d > 1.5 && d < 2.0 && d != 0.0"},
		{p("s", "string"), "s.startsWith('a') && s.matches('^a.*$') && size(s) < 10"},
		{p("b", "bytes"), "b == b'abc' && size(b) == 3"},
		{p("d", "duration"), "d > duration('1h') && d.getMinutes() > 0"},
		{p("t", "timestamp", "n", "timestamp"), "n < t && t - n > duration('1s') && t.getFullYear() > 2000"},
		{p("ip", "ipaddress", "ip2", "ipaddress"), "ip.in_cidr('10.0.0.0/8') && ip == ip2"},
		{p("l", "list<string>", "me", "string"), "me in l && l.exists(x, x == 'a') && l.all(x, size(x) > 0)"},
		{p("m", "map<any>"), "m.foo == 42 && m.bar < 56"},
		{p("m", "map<int>"), "has(m.foo) && m['bar'] == 1 && 'baz' in m"},
		{p("lm", "list<map<int>>"), "lm[0].a == 1 && lm.exists(m, m.b > 2)"},
		{p("a", "any"), "a == 1 || a == 'x' || a.k == true || a == null"},
		{p("in_", "int", "_x2", "bool"), "in_ == 1 && _x2"},
		{p("x", "int"), strings.Repeat("x == 1 && ", 249) + "x == 1"},
		{p("s", "string"), "s in [" + strings.Repeat("'abc', ", 5000) + "'z']"},
	}
	for _, tc := range tests {
		if _, err := Compile("cav", tc.params, tc.expr); err != nil {
			t.Errorf("Compile(%v, %q): %v", tc.params, tc.expr, err)
		}
	}
}

func TestByteColumn(t *testing.T) {
	expr := "ab\nçé x\n\nlast"
	tests := []struct{ line, runeCol, wantCol int }{
		{1, 0, 1},
		{1, 2, 3},
		{2, 0, 1},
		{2, 1, 3},  // after ç (2 bytes)
		{2, 3, 6},  // x: ç é and space = 5 bytes
		{2, 99, 7}, // clamped to just after the line
		{3, 0, 1},
		{4, 4, 5},
		{9, 0, 1}, // past the last line: stays on the last
	}
	for _, tc := range tests {
		line, col := byteColumn(expr, tc.line, tc.runeCol)
		if line != tc.line || col != tc.wantCol {
			t.Errorf("byteColumn(%d, %d) = %d:%d, want %d:%d", tc.line, tc.runeCol, line, col, tc.line, tc.wantCol)
		}
	}
}

// TestReferencedParams checks that the parameters found in the checker's
// reference map, which decide whether Evaluate needs partial evaluation, are
// the ones the expression uses, wherever it uses them. A missed parameter
// would still evaluate correctly (see Evaluate's retry), only more slowly.
func TestReferencedParams(t *testing.T) {
	params := p("a", "int", "b", "map<int>", "c", "list<int>", "d", "ipaddress", "e", "string", "f", "bool")
	tests := []struct {
		expr string
		want []string
	}{
		{"true", nil},
		{"a == 1", []string{"a"}},
		{"has(b.x)", []string{"b"}},
		{"b[e] == 1", []string{"b", "e"}},
		{"c.exists(x, x == a)", []string{"a", "c"}},
		// The loop variable shadows parameter e, yet the checker records a
		// reference to e: a harmless over-approximation (an absent e only
		// sends Evaluate down the partial path, which decides the result).
		{"[1, 2].exists(e, e == 2)", []string{"e"}},
		{"d.in_cidr(e)", []string{"d", "e"}},
		{"{'k': a}.k == 1 && f", []string{"a", "f"}},
		{"size(c) > 0 ? f : a > 0", []string{"a", "c", "f"}},
	}
	for _, tc := range tests {
		c, err := Compile("cav", params, tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		got := c.ReferencedParams()
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: referenced %v, want %v", tc.expr, got, tc.want)
		}
	}
}
