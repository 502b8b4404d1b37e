package caveats

import (
	"strings"
	"testing"
)

func TestParseType(t *testing.T) {
	good := []struct{ in, want string }{
		{"any", "any"},
		{"bool", "bool"},
		{"int", "int"},
		{"uint", "uint"},
		{"double", "double"},
		{"string", "string"},
		{"bytes", "bytes"},
		{"duration", "duration"},
		{"timestamp", "timestamp"},
		{"ipaddress", "ipaddress"},
		{"list<string>", "list<string>"},
		{"list< string >", "list<string>"},
		{"  map<any>\t", "map<any>"},
		{"list<map<int>>", "list<map<int>>"},
		{"map < list < ipaddress > >", "map<list<ipaddress>>"},
		{"list<\n  timestamp\n>", "list<timestamp>"},
		{strings.Repeat("list<", MaxTypeDepth-1) + "int" + strings.Repeat(">", MaxTypeDepth-1), strings.Repeat("list<", MaxTypeDepth-1) + "int" + strings.Repeat(">", MaxTypeDepth-1)},
	}
	for _, tc := range good {
		got, err := ParseType(tc.in)
		if err != nil {
			t.Errorf("ParseType(%q): unexpected error %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseType(%q) = %q, want %q", tc.in, got, tc.want)
		}
		// The canonical form is a fixed point.
		if again, err := ParseType(got); err != nil || again != got {
			t.Errorf("ParseType(%q) = %q, %v; want it unchanged", got, again, err)
		}
	}

	bad := []struct{ in, wantErr string }{
		{"", "missing type name"},
		{"   ", "missing type name"},
		{"foo", `unknown type "foo"`},
		{"Int", `unknown type "Int"`},
		{"list<foo>", `unknown type "foo"`},
		{"list", `type "list" requires 1 type argument, found 0`},
		{"map", `type "map" requires 1 type argument, found 0`},
		{"map<string, int>", `type "map" requires 1 type argument, found 2`},
		{"list<int, int, int>", `type "list" requires 1 type argument, found 3`},
		{"int<int>", `type "int" takes no type arguments, found 1`},
		{"list<>", `expected a type name, found ">"`},
		{"list<int", `missing '>' to close type arguments of "list"`},
		{"list<int]", `expected ',' or '>' in type arguments of "list", found "]"`},
		{"int>", `unexpected ">" after type int`},
		{"int int", `unexpected "int" after type int`},
		{"<int>", `expected a type name, found "<int>"`},
		{"1nt", `expected a type name, found "1nt"`},
		{strings.Repeat("list<", MaxTypeDepth) + "int" + strings.Repeat(">", MaxTypeDepth), "type nesting is deeper than 16 levels"},
		{strings.Repeat(" ", MaxTypeBytes+1), "the limit is 1024"},
	}
	for _, tc := range bad {
		got, err := ParseType(tc.in)
		if err == nil {
			t.Errorf("ParseType(%q) = %q, want error containing %q", tc.in, got, tc.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("ParseType(%q) error %q, want it to contain %q", tc.in, err, tc.wantErr)
		}
	}
}

func TestKindNames(t *testing.T) {
	for k := kindAny; k <= kindMap; k++ {
		got, ok := lookupKind(k.String())
		if !ok || got != k {
			t.Errorf("lookupKind(%q) = %v, %v; want %v", k.String(), got, ok, k)
		}
	}
	if _, ok := lookupKind("kind(99)"); ok {
		t.Errorf("lookupKind accepted an invalid keyword")
	}
}

// FuzzParseType checks that ParseType never panics and that its canonical
// output is a fixed point holding no spaces.
func FuzzParseType(f *testing.F) {
	for _, s := range []string{"int", "list< string >", "map<list<map<any>>>", "map<string, int>", "list<", "<>", " ipaddress "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		canon, err := ParseType(s)
		if err != nil {
			return
		}
		if strings.ContainsAny(canon, " \t\r\n") {
			t.Fatalf("ParseType(%q) = %q contains spaces", s, canon)
		}
		if again, err := ParseType(canon); err != nil || again != canon {
			t.Fatalf("ParseType(%q) = %q, which reparses as %q, %v", s, canon, again, err)
		}
	})
}
