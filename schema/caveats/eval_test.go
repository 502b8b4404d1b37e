package caveats

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
)

// evalCase is one evaluation of one caveat.
type evalCase struct {
	name    string
	params  []Param
	expr    string
	ctx     map[string]any
	want    bool
	missing []string
	err     error  // ErrParamType or ErrEvaluation
	errMsg  string // substring of the error message
}

// ctxJSON decodes a JSON object the way the API does, so tests see the same
// float64/[]any/map[string]any values the engine passes.
func ctxJSON(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return m
}

func runEvalCases(t *testing.T, cases []evalCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile("cav", tc.params, tc.expr)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, err := c.Evaluate(tc.ctx)
			checkResult(t, got, err, tc)
		})
	}
}

func checkResult(t *testing.T, got Result, err error, tc evalCase) {
	t.Helper()
	if tc.err != nil {
		if !errors.Is(err, tc.err) {
			t.Fatalf("Evaluate = %+v, %v; want error %v", got, err, tc.err)
		}
		if !strings.Contains(err.Error(), tc.errMsg) {
			t.Errorf("error %q does not contain %q", err, tc.errMsg)
		}
		if !strings.HasPrefix(err.Error(), `caveat "cav": `) {
			t.Errorf("error %q does not name the caveat", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Evaluate: unexpected error %v", err)
	}
	if len(tc.missing) > 0 {
		if !slices.Equal(got.Missing, tc.missing) {
			t.Errorf("Missing = %v, want %v", got.Missing, tc.missing)
		}
		if got.Value {
			t.Errorf("Value = true with Missing %v; want false", got.Missing)
		}
		return
	}
	if len(got.Missing) != 0 {
		t.Errorf("Missing = %v, want a decided result %v", got.Missing, tc.want)
	}
	if got.Value != tc.want {
		t.Errorf("Value = %v, want %v", got.Value, tc.want)
	}
}

func TestEvaluateTypes(t *testing.T) {
	m := func(kv ...any) map[string]any {
		out := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	cases := []evalCase{
		// int
		{name: "int equal", params: p("x", "int"), expr: "x == 42", ctx: m("x", 42.0), want: true},
		{name: "int not equal", params: p("x", "int"), expr: "x == 42", ctx: m("x", 41.0), want: false},
		{name: "int negative", params: p("x", "int"), expr: "x < 0", ctx: m("x", -3.0), want: true},
		{name: "int from numeric string", params: p("x", "int"), expr: "x == 42", ctx: m("x", "42"), want: true},
		{name: "int from exponent string", params: p("x", "int"), expr: "x == 42", ctx: m("x", "4.2e1"), want: true},
		{name: "int from json.Number", params: p("x", "int"), expr: "x == 9007199254740993", ctx: m("x", json.Number("9007199254740993")), want: true},
		{name: "int from Go int", params: p("x", "int"), expr: "x == 7", ctx: m("x", 7), want: true},
		{name: "int min", params: p("x", "int"), expr: "x < -9223372036854775807", ctx: m("x", float64(math.MinInt64)), want: true},
		{name: "int arithmetic", params: p("x", "int", "y", "int"), expr: "x + y == 10 && x * y == 21 && x / y == 2 && x % y == 1", ctx: m("x", 7.0, "y", 3.0), want: true},
		{name: "int fraction", params: p("x", "int"), expr: "x == 1", ctx: m("x", 1.5), err: ErrParamType, errMsg: `parameter "x" (int): expected an integer in the int64 range, got number 1.5`},
		{name: "int too large", params: p("x", "int"), expr: "x == 1", ctx: m("x", 1e19), err: ErrParamType, errMsg: "got number 1e+19"},
		{name: "int 2^63", params: p("x", "int"), expr: "x == 1", ctx: m("x", 9223372036854775808.0), err: ErrParamType, errMsg: "int64 range"},
		{name: "int NaN", params: p("x", "int"), expr: "x == 1", ctx: m("x", math.NaN()), err: ErrParamType, errMsg: "got number NaN"},
		{name: "int from word", params: p("x", "int"), expr: "x == 1", ctx: m("x", "forty-two"), err: ErrParamType, errMsg: `got string "forty-two"`},
		{name: "int from fraction string", params: p("x", "int"), expr: "x == 1", ctx: m("x", "1.5"), err: ErrParamType, errMsg: `got string "1.5"`},
		{name: "int from bool", params: p("x", "int"), expr: "x == 1", ctx: m("x", true), err: ErrParamType, errMsg: "got bool true"},
		{name: "int from null", params: p("x", "int"), expr: "x == 1", ctx: m("x", nil), err: ErrParamType, errMsg: "got null"},
		{name: "int from list", params: p("x", "int"), expr: "x == 1", ctx: m("x", []any{1.0}), err: ErrParamType, errMsg: "got list of 1 elements"},
		{name: "int overflow at run time", params: p("x", "int"), expr: "x + 1 > 0", ctx: m("x", json.Number("9223372036854775807")), err: ErrEvaluation, errMsg: "overflow"},
		{name: "int division by zero", params: p("x", "int"), expr: "10 / x == 1", ctx: m("x", 0.0), err: ErrEvaluation, errMsg: "division by zero"},

		// uint
		{name: "uint equal", params: p("u", "uint"), expr: "u == 15", ctx: m("u", 15.0), want: true},
		{name: "uint arithmetic", params: p("u", "uint"), expr: "u + 1 == 16", ctx: m("u", 15.0), want: true},
		{name: "uint zero", params: p("u", "uint"), expr: "u == 0", ctx: m("u", 0.0), want: true},
		{name: "uint negative", params: p("u", "uint"), expr: "u == 1", ctx: m("u", -1.0), err: ErrParamType, errMsg: `parameter "u" (uint): expected a non-negative integer in the int64 range, got number -1`},
		{name: "uint fraction", params: p("u", "uint"), expr: "u == 1", ctx: m("u", 0.5), err: ErrParamType, errMsg: "got number 0.5"},
		{name: "uint beyond int64", params: p("u", "uint"), expr: "u == 1", ctx: m("u", uint64(math.MaxUint64)), err: ErrParamType, errMsg: "non-negative integer"},

		// double
		{name: "double compare", params: p("d", "double"), expr: "d > 1.5 && d < 2.0", ctx: m("d", 1.75), want: true},
		{name: "double from integral number", params: p("d", "double"), expr: "d == 2.0", ctx: m("d", 2.0), want: true},
		{name: "double from string", params: p("d", "double"), expr: "d == 0.25", ctx: m("d", "0.25"), want: true},
		{name: "double from Go int", params: p("d", "double"), expr: "d == 3.0", ctx: m("d", 3), want: true},
		{name: "double from bool", params: p("d", "double"), expr: "d == 1.0", ctx: m("d", false), err: ErrParamType, errMsg: `(double): expected a number, got bool false`},
		{name: "double from word", params: p("d", "double"), expr: "d == 1.0", ctx: m("d", "abc"), err: ErrParamType, errMsg: `got string "abc"`},

		// bool
		{name: "bool true", params: p("b", "bool"), expr: "b", ctx: m("b", true), want: true},
		{name: "bool false", params: p("b", "bool"), expr: "b", ctx: m("b", false), want: false},
		{name: "bool negated", params: p("b", "bool"), expr: "!b", ctx: m("b", false), want: true},
		{name: "bool from string", params: p("b", "bool"), expr: "b", ctx: m("b", "true"), err: ErrParamType, errMsg: `(bool): expected bool, got string "true"`},
		{name: "bool from number", params: p("b", "bool"), expr: "b", ctx: m("b", 1.0), err: ErrParamType, errMsg: "got number 1"},

		// string
		{name: "string equal", params: p("s", "string"), expr: "s == 'hello world'", ctx: m("s", "hello world"), want: true},
		{name: "string functions", params: p("s", "string"), expr: "s.startsWith('he') && s.endsWith('lo') && s.contains('ll') && size(s) == 5 && s.matches('^h.*o$')", ctx: m("s", "hello"), want: true},
		{name: "string unicode size", params: p("s", "string"), expr: "size(s) == 5", ctx: m("s", "héllo"), want: true},
		{name: "string from number", params: p("s", "string"), expr: "s == '1'", ctx: m("s", 1.0), err: ErrParamType, errMsg: "(string): expected string, got number 1"},
		{name: "string error truncates", params: p("s", "bool"), expr: "s", ctx: m("s", strings.Repeat("a", 1000)), err: ErrParamType, errMsg: `got string "` + strings.Repeat("a", maxQuoted) + `..."`},

		// bytes
		{name: "bytes from base64", params: p("b", "bytes"), expr: "b == b'hello'", ctx: m("b", "aGVsbG8="), want: true},
		{name: "bytes size", params: p("b", "bytes"), expr: "size(b) == 3", ctx: m("b", "AAEC"), want: true},
		{name: "bytes empty", params: p("b", "bytes"), expr: "size(b) == 0", ctx: m("b", ""), want: true},
		{name: "bytes bad base64", params: p("b", "bytes"), expr: "size(b) == 0", ctx: m("b", "!!!"), err: ErrParamType, errMsg: `(bytes): expected a base64 string, got string "!!!": illegal base64 data`},
		{name: "bytes from number", params: p("b", "bytes"), expr: "size(b) == 0", ctx: m("b", 1.0), err: ErrParamType, errMsg: "expected a base64 string, got number 1"},

		// duration
		{name: "duration compare", params: p("d", "duration"), expr: "d > duration('1h') && d < duration('2h')", ctx: m("d", "1h30m"), want: true},
		{name: "duration accessors", params: p("d", "duration"), expr: "d.getMinutes() == 90 && d.getSeconds() == 5400", ctx: m("d", "1h30m"), want: true},
		{name: "duration fractional negative", params: p("d", "duration"), expr: "d == duration('-1500ms')", ctx: m("d", "-1.5s"), want: true},
		{name: "duration bad string", params: p("d", "duration"), expr: "d > duration('0s')", ctx: m("d", "1 hour"), err: ErrParamType, errMsg: `(duration): expected a duration string like "1h30m", got string "1 hour"`},
		{name: "duration from number", params: p("d", "duration"), expr: "d > duration('0s')", ctx: m("d", 60.0), err: ErrParamType, errMsg: "got number 60"},

		// timestamp
		{name: "timestamp before", params: p("now", "timestamp", "exp", "timestamp"), expr: "now < exp", ctx: m("now", "2023-01-01T00:00:00Z", "exp", "2024-10-03T14:16:30.776734Z"), want: true},
		{name: "timestamp after", params: p("now", "timestamp", "exp", "timestamp"), expr: "now < exp", ctx: m("now", "2025-01-01T00:00:00Z", "exp", "2024-10-03T14:16:30.776734Z"), want: false},
		{name: "timestamp offsets compare as instants", params: p("a", "timestamp", "b", "timestamp"), expr: "a == b", ctx: m("a", "2024-10-03T07:16:28-07:00", "b", "2024-10-03T14:16:28Z"), want: true},
		{name: "timestamp accessors are UTC", params: p("a", "timestamp"), expr: "a.getHours() == 14 && a.getFullYear() == 2024 && a.getMonth() == 9", ctx: m("a", "2024-10-03T07:16:28-07:00"), want: true},
		{name: "timestamp plus duration", params: p("t", "timestamp", "d", "duration", "dl", "timestamp"), expr: "t + d < dl", ctx: m("t", "2024-01-01T00:00:00Z", "d", "23h", "dl", "2024-01-02T00:00:00Z"), want: true},
		{name: "timestamp difference", params: p("a", "timestamp", "b", "timestamp"), expr: "b - a == duration('36h')", ctx: m("a", "2024-01-01T00:00:00Z", "b", "2024-01-02T12:00:00Z"), want: true},
		{name: "timestamp literal", params: p("t", "timestamp"), expr: "t > timestamp('2020-01-01T00:00:00Z')", ctx: m("t", "2021-06-01T00:00:00+02:00"), want: true},
		{name: "timestamp not RFC 3339", params: p("t", "timestamp"), expr: "t > timestamp('2020-01-01T00:00:00Z')", ctx: m("t", "2021-06-01"), err: ErrParamType, errMsg: `(timestamp): expected an RFC 3339 timestamp string, got string "2021-06-01"`},
		{name: "timestamp from number", params: p("t", "timestamp"), expr: "t > timestamp('2020-01-01T00:00:00Z')", ctx: m("t", 1700000000.0), err: ErrParamType, errMsg: "got number 1.7e+09"},

		// ipaddress
		{name: "ipv4 in cidr", params: p("ip", "ipaddress"), expr: "ip.in_cidr('10.0.0.0/8')", ctx: m("ip", "10.1.2.3"), want: true},
		{name: "ipv4 not in cidr", params: p("ip", "ipaddress"), expr: "ip.in_cidr('10.0.0.0/8')", ctx: m("ip", "11.1.2.3"), want: false},
		{name: "ipv4 /32", params: p("ip", "ipaddress"), expr: "ip.in_cidr('192.168.1.1/32')", ctx: m("ip", "192.168.1.1"), want: true},
		{name: "ipv4 /0", params: p("ip", "ipaddress"), expr: "ip.in_cidr('0.0.0.0/0')", ctx: m("ip", "8.8.8.8"), want: true},
		{name: "cidr with host bits", params: p("ip", "ipaddress"), expr: "ip.in_cidr('10.9.9.9/8')", ctx: m("ip", "10.1.2.3"), want: true},
		{name: "ipv6 in cidr", params: p("ip", "ipaddress"), expr: "ip.in_cidr('2001:db8::/32')", ctx: m("ip", "2001:db8:1::5"), want: true},
		{name: "ipv6 not in cidr", params: p("ip", "ipaddress"), expr: "ip.in_cidr('2001:db8::/32')", ctx: m("ip", "2001:db9::5"), want: false},
		{name: "ipv4 not in ipv6 cidr", params: p("ip", "ipaddress"), expr: "ip.in_cidr('::/0')", ctx: m("ip", "10.0.0.1"), want: false},
		{name: "ipv4-mapped ipv6 not in ipv4 cidr", params: p("ip", "ipaddress"), expr: "ip.in_cidr('10.0.0.0/8')", ctx: m("ip", "::ffff:10.0.0.1"), want: false},
		{name: "zoned address in no cidr", params: p("ip", "ipaddress"), expr: "ip.in_cidr('fe80::/10')", ctx: m("ip", "fe80::1%eth0"), want: false},
		{name: "ip equality", params: p("a", "ipaddress", "b", "ipaddress"), expr: "a == b", ctx: m("a", "10.0.0.1", "b", "10.0.0.1"), want: true},
		{name: "ip inequality", params: p("a", "ipaddress", "b", "ipaddress"), expr: "a != b", ctx: m("a", "10.0.0.1", "b", "10.0.0.2"), want: true},
		{name: "ipv6 forms equal", params: p("a", "ipaddress", "b", "ipaddress"), expr: "a == b", ctx: m("a", "2001:db8::1", "b", "2001:0db8:0:0:0:0:0:1"), want: true},
		{name: "ip list", params: p("ips", "list<ipaddress>"), expr: "ips.exists(i, i.in_cidr('192.168.0.0/16'))", ctx: m("ips", []any{"10.0.0.1", "192.168.4.4"}), want: true},
		{name: "ip invalid", params: p("ip", "ipaddress"), expr: "ip.in_cidr('10.0.0.0/8')", ctx: m("ip", "10.0.0.256"), err: ErrParamType, errMsg: `(ipaddress): expected an IP address string, got string "10.0.0.256"`},
		{name: "ip cidr string is not an address", params: p("ip", "ipaddress"), expr: "ip.in_cidr('10.0.0.0/8')", ctx: m("ip", "10.0.0.0/8"), err: ErrParamType, errMsg: "expected an IP address string"},
		{name: "ip from number", params: p("ip", "ipaddress"), expr: "ip.in_cidr('10.0.0.0/8')", ctx: m("ip", 10.0), err: ErrParamType, errMsg: "got number 10"},
		{name: "invalid cidr", params: p("ip", "ipaddress"), expr: "ip.in_cidr('10.0.0.0')", ctx: m("ip", "10.0.0.1"), err: ErrEvaluation, errMsg: `in_cidr: invalid CIDR string "10.0.0.0"`},
		{name: "cidr from parameter", params: p("ip", "ipaddress", "net", "string"), expr: "ip.in_cidr(net)", ctx: m("ip", "10.0.0.1", "net", "10.0.0.0/30"), want: true},

		// list
		{name: "list membership", params: p("l", "list<string>", "me", "string"), expr: "me in l", ctx: m("l", []any{"A", "B"}, "me", "A"), want: true},
		{name: "list non-membership", params: p("l", "list<string>", "me", "string"), expr: "me in l", ctx: m("l", []any{"B"}, "me", "A"), want: false},
		{name: "list empty", params: p("l", "list<int>"), expr: "size(l) == 0 && !(1 in l)", ctx: m("l", []any{}), want: true},
		{name: "list of ints", params: p("l", "list<int>"), expr: "l[1] == 2 && l.all(x, x > 0)", ctx: m("l", []any{1.0, 2.0, 3.0}), want: true},
		{name: "list index out of range", params: p("l", "list<int>"), expr: "l[5] == 2", ctx: m("l", []any{1.0}), err: ErrEvaluation, errMsg: "index out of bounds: 5"},
		{name: "list element wrong", params: p("l", "list<int>"), expr: "size(l) > 0", ctx: m("l", []any{1.0, "x"}), err: ErrParamType, errMsg: `parameter "l" (list<int>) at [1]: expected an integer in the int64 range, got string "x"`},
		{name: "list from object", params: p("l", "list<int>"), expr: "size(l) > 0", ctx: m("l", map[string]any{}), err: ErrParamType, errMsg: "expected a list, got object with 0 keys"},
		{name: "list from string", params: p("l", "list<string>"), expr: "size(l) > 0", ctx: m("l", "a,b"), err: ErrParamType, errMsg: `expected a list, got string "a,b"`},

		// map
		{name: "map of any", params: p("m", "map<any>"), expr: "m.foo == 42 && m.bar < 56", ctx: m("m", map[string]any{"foo": 42.0, "bar": 10.0}), want: true},
		{name: "map of int", params: p("m", "map<int>"), expr: "m.foo == 42 && m['bar'] < 56 && 'foo' in m && has(m.bar) && !has(m.baz)", ctx: m("m", map[string]any{"foo": 42.0, "bar": 10.0}), want: true},
		{name: "map missing key", params: p("m", "map<int>"), expr: "m.foo == 42 && m.bar < 56", ctx: m("m", map[string]any{"foo": 42.0}), err: ErrEvaluation, errMsg: "no such key: bar"},
		{name: "map missing key absorbed by &&", params: p("m", "map<int>"), expr: "m.foo == 42 && m.bar < 56", ctx: m("m", map[string]any{"foo": 41.0}), want: false},
		{name: "map missing key absorbed by ||", params: p("m", "map<int>"), expr: "m.nokey == 1 || m.foo == 1", ctx: m("m", map[string]any{"foo": 1.0}), want: true},
		{name: "map value wrong", params: p("m", "map<int>"), expr: "size(m) > 0", ctx: m("m", map[string]any{"foo": "x"}), err: ErrParamType, errMsg: `(map<int>) at ["foo"]: expected an integer`},
		{name: "map from list", params: p("m", "map<int>"), expr: "size(m) > 0", ctx: m("m", []any{}), err: ErrParamType, errMsg: "expected an object, got list of 0 elements"},
		{name: "nested list of maps", params: p("lm", "list<map<int>>"), expr: "lm[0].a == 1 && lm.exists(x, has(x.b) && x.b > 2)", ctx: m("lm", []any{map[string]any{"a": 1.0}, map[string]any{"b": 3.0}}), want: true},
		{name: "nested error path", params: p("lm", "list<map<list<int>>>"), expr: "size(lm) > 0", ctx: m("lm", []any{map[string]any{"k": []any{1.0, 2.5}}}), err: ErrParamType, errMsg: `at [0]["k"][1]: expected an integer in the int64 range, got number 2.5`},

		// any
		{name: "any number equals int literal", params: p("a", "any"), expr: "a == 42", ctx: m("a", 42.0), want: true},
		{name: "any number is a double", params: p("a", "any"), expr: "type(a) == double", ctx: m("a", 42.0), want: true},
		{name: "any Go int is a double too", params: p("a", "any"), expr: "type(a) == double", ctx: m("a", 42), want: true},
		{name: "any string", params: p("a", "any"), expr: "a == 'x'", ctx: m("a", "x"), want: true},
		{name: "any null", params: p("a", "any"), expr: "a == null", ctx: m("a", nil), want: true},
		{name: "any nested", params: p("a", "any"), expr: "a.k[1].z == true", ctx: m("a", map[string]any{"k": []any{1.0, map[string]any{"z": true}}}), want: true},
		{name: "any json.Number", params: p("a", "any"), expr: "a == 1.5", ctx: m("a", json.Number("1.5")), want: true},
		{name: "any unsupported Go type", params: p("a", "any"), expr: "a == 1", ctx: m("a", struct{}{}), err: ErrParamType, errMsg: "got unsupported Go value of type struct {}"},
		{name: "any too deep", params: p("a", "any"), expr: "a == 1", ctx: m("a", deepList(MaxValueDepth+1)), err: ErrParamType, errMsg: "nested deeper than 100 levels"},
		{name: "any deep but allowed", params: p("a", "any"), expr: "a != 1", ctx: m("a", deepList(MaxValueDepth-1)), want: true},

		// Context handling.
		{name: "unknown keys ignored", params: p("x", "int"), expr: "x == 1", ctx: m("x", 1.0, "y", "anything", "z", nil), want: true},
		{name: "unreferenced param still converted", params: p("x", "int", "unused", "int"), expr: "x == 1", ctx: m("x", 1.0, "unused", "oops"), err: ErrParamType, errMsg: `parameter "unused"`},
		{name: "params named like types and functions", params: p("int", "int", "size", "string", "timestamp", "bool"), expr: "int == 1 && size(size) == 2 && timestamp", ctx: m("int", 1.0, "size", "ab", "timestamp", true), want: true},
		{name: "no parameters", params: nil, expr: "1 + 2 == 3", ctx: nil, want: true},
		{name: "constant false", params: nil, expr: "2 - 2 == 1", ctx: m("x", 1.0), want: false},
		{name: "constant conversion error at run time", params: nil, expr: "int('x') == 1", err: ErrEvaluation, errMsg: "type conversion error from 'string' to 'int'"},
		{name: "constant conversion error absorbed", params: p("b", "bool"), expr: "b || int('x') == 1", ctx: m("b", true), want: true},
		{name: "constant division by zero", params: nil, expr: "1 / 0 == 1", err: ErrEvaluation, errMsg: "division by zero"},
		{name: "constant bad index", params: nil, expr: "[1, 2][5] == 1", err: ErrEvaluation, errMsg: "index out of bounds: 5"},
	}
	runEvalCases(t, cases)
}

func deepList(depth int) any {
	var v any = 1.0
	for range depth - 1 {
		v = []any{v}
	}
	return v
}

func TestEvaluatePartial(t *testing.T) {
	cases := []evalCase{
		{name: "only param missing", params: p("a", "int"), expr: "a + 2 == 4", ctx: nil, missing: []string{"a"}},
		{name: "or decided by present side", params: p("a", "int", "b", "int"), expr: "a == 2 || b == 6", ctx: ctxJSON(t, `{"a": 2}`), want: true},
		{name: "or decided by right side", params: p("a", "int", "b", "int"), expr: "a == 2 || b == 6", ctx: ctxJSON(t, `{"b": 6}`), want: true},
		{name: "or undecided", params: p("a", "int", "b", "int"), expr: "a == 2 || b == 6", ctx: ctxJSON(t, `{"a": 3}`), missing: []string{"b"}},
		{name: "or both missing", params: p("b", "int", "a", "int"), expr: "a == 2 || b == 6", ctx: nil, missing: []string{"a", "b"}},
		{name: "or with constant true", params: p("a", "bool"), expr: "a || true", ctx: nil, want: true},
		{name: "and with constant false", params: p("a", "bool"), expr: "a && false", ctx: nil, want: false},
		{name: "and decided false", params: p("x", "int", "missing", "bool"), expr: "x == 1 && missing", ctx: ctxJSON(t, `{"x": 2}`), want: false},
		{name: "and undecided", params: p("x", "int", "missing", "bool"), expr: "x == 1 && missing", ctx: ctxJSON(t, `{"x": 1}`), missing: []string{"missing"}},
		{name: "and left missing", params: p("a", "int", "b", "int"), expr: "a == 2 && b == 6", ctx: ctxJSON(t, `{"b": 6}`), missing: []string{"a"}},
		{name: "sum with one missing", params: p("a", "int", "b", "int"), expr: "a + b > 47", ctx: ctxJSON(t, `{"a": 42}`), missing: []string{"b"}},
		{name: "unreferenced missing param ignored", params: p("x", "int", "y", "int"), expr: "x == 1", ctx: ctxJSON(t, `{"x": 1}`), want: true},
		{name: "only the missing params the residual needs", params: p("a", "bool", "b", "bool", "c", "bool"), expr: "(a && b) || c", ctx: ctxJSON(t, `{"a": false}`), missing: []string{"c"}},
		{name: "missing map", params: p("m", "map<int>"), expr: "has(m.foo) && m.foo > 1", ctx: nil, missing: []string{"m"}},
		{name: "missing list in comprehension", params: p("l", "list<int>", "x", "int"), expr: "l.exists(e, e == x)", ctx: ctxJSON(t, `{"x": 1}`), missing: []string{"l"}},
		{name: "missing needle in comprehension", params: p("l", "list<int>", "x", "int"), expr: "l.exists(e, e == x)", ctx: ctxJSON(t, `{"l": [1, 2]}`), missing: []string{"x"}},
		{name: "empty list decides comprehension", params: p("l", "list<int>", "x", "int"), expr: "l.exists(e, e == x)", ctx: ctxJSON(t, `{"l": []}`), want: false},
		{name: "loop variable shadows absent param", params: p("e", "string"), expr: "[1, 2].exists(e, e == 2)", ctx: nil, want: true},
		{name: "missing ip", params: p("ip", "ipaddress"), expr: "ip.in_cidr('10.0.0.0/8')", ctx: nil, missing: []string{"ip"}},
		{name: "missing timestamp", params: p("now", "timestamp", "exp", "timestamp"), expr: "now < exp", ctx: ctxJSON(t, `{"exp": "2024-01-01T00:00:00Z"}`), missing: []string{"now"}},
		{name: "error beside unknown stays unknown", params: p("m", "map<int>", "y", "bool"), expr: "m.nokey == 1 || y", ctx: ctxJSON(t, `{"m": {}}`), missing: []string{"y"}},
		{name: "error beside unknown in && stays unknown", params: p("m", "map<int>", "y", "bool"), expr: "m.nokey == 1 && y", ctx: ctxJSON(t, `{"m": {}}`), missing: []string{"y"}},
		{name: "error once nothing is missing", params: p("m", "map<int>", "y", "bool"), expr: "m.nokey == 1 && y", ctx: ctxJSON(t, `{"m": {}, "y": true}`), err: ErrEvaluation, errMsg: "no such key: nokey"},
		{name: "type error reported even when params missing", params: p("x", "int", "y", "int"), expr: "x == y", ctx: ctxJSON(t, `{"x": "a"}`), err: ErrParamType, errMsg: `parameter "x"`},
		{name: "null is present, not missing", params: p("a", "any", "b", "bool"), expr: "a == null || b", ctx: ctxJSON(t, `{"a": null}`), want: true},
		{name: "many params use the index", params: p("p1", "int", "p2", "int", "p3", "int", "p4", "int", "p5", "int", "p6", "int", "p7", "int", "p8", "int", "p9", "int", "p10", "int"),
			expr: "p1 + p2 + p3 + p4 + p5 + p6 + p7 + p8 + p9 + p10 == 55", ctx: ctxJSON(t, `{"p1":1,"p2":2,"p3":3,"p4":4,"p5":5,"p6":6,"p7":7,"p8":8,"p9":9}`), missing: []string{"p10"}},
		{name: "many params all present", params: p("p1", "int", "p2", "int", "p3", "int", "p4", "int", "p5", "int", "p6", "int", "p7", "int", "p8", "int", "p9", "int", "p10", "int"),
			expr: "p1 + p2 + p3 + p4 + p5 + p6 + p7 + p8 + p9 + p10 == 55", ctx: ctxJSON(t, `{"p1":1,"p2":2,"p3":3,"p4":4,"p5":5,"p6":6,"p7":7,"p8":8,"p9":9,"p10":10}`), want: true},
	}
	runEvalCases(t, cases)
}

func TestEvaluateNotCompiled(t *testing.T) {
	c := &Caveat{Name: "cav", Params: p("x", "int"), Expr: "x == 1"}
	_, err := c.Evaluate(map[string]any{"x": 1.0})
	if !errors.Is(err, ErrEvaluation) || !strings.Contains(err.Error(), "not built by Compile") {
		t.Errorf("Evaluate on an uncompiled Caveat: %v", err)
	}
}

func TestParamTypeErrorFields(t *testing.T) {
	c, err := Compile("cav", p("l", "list<int>"), "size(l) > 0")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Evaluate(ctxJSON(t, `{"l": [1, 2, true]}`))
	var pe *ParamTypeError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is %T, want *ParamTypeError", err, err)
	}
	want := ParamTypeError{Caveat: "cav", Param: "l", Type: "list<int>", Path: "[2]", Msg: "expected an integer in the int64 range, got bool true"}
	if *pe != want {
		t.Errorf("ParamTypeError = %+v, want %+v", *pe, want)
	}
}

// TestEvaluateConcurrent shares one compiled caveat between goroutines; run
// with -race it checks that Evaluate does not mutate the Caveat.
func TestEvaluateConcurrent(t *testing.T) {
	c, err := Compile("cav", p("x", "int", "ip", "ipaddress", "m", "map<int>"), "x > 10 && ip.in_cidr('10.0.0.0/8') && m.k == x")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				x := float64(g*1000 + i)
				ctx := map[string]any{"x": x, "ip": fmt.Sprintf("10.0.%d.%d", g, i%256), "m": map[string]any{"k": x}}
				if i%3 == 0 {
					delete(ctx, "m")
				}
				r, err := c.Evaluate(ctx)
				var want Result
				switch {
				case x <= 10:
					want = Result{Value: false}
				case i%3 == 0:
					want = Result{Missing: []string{"m"}}
				default:
					want = Result{Value: true}
				}
				if err != nil || r.Value != want.Value || !slices.Equal(r.Missing, want.Missing) {
					errs <- fmt.Errorf("x=%v: got %+v, %v; want %+v", x, r, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestEvaluateRetriesWhenRefsIncomplete simulates a reference map that
// misses a parameter: Evaluate must still report it missing, not fail.
func TestEvaluateRetriesWhenRefsIncomplete(t *testing.T) {
	c, err := Compile("cav", p("a", "int", "b", "int"), "a == 1 && b == 2")
	if err != nil {
		t.Fatal(err)
	}
	c.refs = nil
	tests := []struct {
		ctx  map[string]any
		want Result
	}{
		{map[string]any{"a": 1.0}, Result{Missing: []string{"b"}}},
		{map[string]any{"a": 2.0}, Result{Value: false}},
		{map[string]any{}, Result{Missing: []string{"a", "b"}}},
		{map[string]any{"a": 1.0, "b": 2.0}, Result{Value: true}},
	}
	for _, tc := range tests {
		got, err := c.Evaluate(tc.ctx)
		if err != nil || got.Value != tc.want.Value || !slices.Equal(got.Missing, tc.want.Missing) {
			t.Errorf("Evaluate(%v) = %+v, %v; want %+v", tc.ctx, got, err, tc.want)
		}
	}
}

func TestEvaluateLayered(t *testing.T) {
	c, err := Compile("cav", p("a", "int", "b", "string"), "a == 42 && b == 'x'")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name            string
		stored, request string
		want            Result
		err             error
	}{
		{"both empty", `{}`, `{}`, Result{Missing: []string{"a", "b"}}, nil},
		{"split across layers", `{"a": 42}`, `{"b": "x"}`, Result{Value: true}, nil},
		{"stored wins", `{"a": 42}`, `{"a": 41, "b": "x"}`, Result{Value: true}, nil},
		{"stored wins when false", `{"a": 41}`, `{"a": 42, "b": "x"}`, Result{Value: false}, nil},
		{"request only", `{}`, `{"a": 42, "b": "y"}`, Result{Value: false}, nil},
		{"bad stored value is not masked", `{"a": "x"}`, `{"a": 42}`, Result{}, ErrParamType},
		{"bad request value is masked by stored", `{"a": 42, "b": "x"}`, `{"a": "x"}`, Result{Value: true}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.EvaluateLayered(ctxJSON(t, tc.stored), ctxJSON(t, tc.request))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("EvaluateLayered = %+v, %v; want %v", got, err, tc.err)
				}
				return
			}
			if err != nil || got.Value != tc.want.Value || !slices.Equal(got.Missing, tc.want.Missing) {
				t.Errorf("EvaluateLayered = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if got, err := c.EvaluateLayered(nil, nil); err != nil || !slices.Equal(got.Missing, []string{"a", "b"}) {
		t.Errorf("EvaluateLayered(nil, nil) = %+v, %v", got, err)
	}
}

func TestCheckContext(t *testing.T) {
	c, err := Compile("cav", p("a", "int", "l", "list<ipaddress>"), "a == 1 && size(l) > 0")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ctx    string
		err    error
		errMsg string
	}{
		{`{}`, nil, ""},
		{`{"a": 1}`, nil, ""},
		{`{"a": 1, "l": ["10.0.0.1", "::1"]}`, nil, ""},
		{`{"a": 1, "zz": 2, "b": 3}`, ErrUnknownParam, `caveat "cav" has no parameter "b"`},
		{`{"a": 1.5}`, ErrParamType, `parameter "a" (int): expected an integer`},
		{`{"l": ["10.0.0.1", "nope"]}`, ErrParamType, `parameter "l" (list<ipaddress>) at [1]: expected an IP address string, got string "nope"`},
		{`{"a": null}`, ErrParamType, "got null"},
	}
	for _, tc := range tests {
		err := c.CheckContext(ctxJSON(t, tc.ctx))
		if tc.err == nil {
			if err != nil {
				t.Errorf("CheckContext(%s): %v", tc.ctx, err)
			}
			continue
		}
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.errMsg) {
			t.Errorf("CheckContext(%s) = %v; want %v containing %q", tc.ctx, err, tc.err, tc.errMsg)
		}
	}
	if err := c.CheckContext(nil); err != nil {
		t.Errorf("CheckContext(nil) = %v", err)
	}
}
