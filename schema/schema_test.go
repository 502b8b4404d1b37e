package schema

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/valid/*.golden from the current output")

// expectation is one `/* ERROR "regexp" */` (or `// ERROR "regexp"`) comment:
// an error matching rx must be reported at the start of the token just before
// the comment, as in go/parser's tests.
type expectation struct {
	line, col int
	rx        *regexp.Regexp
}

var errorComment = regexp.MustCompile(`(/\*|//) ?ERROR "((?:[^"\\]|\\.)*)"`)

func expectations(t *testing.T, src string) []expectation {
	t.Helper()
	var out []expectation
	for _, m := range errorComment.FindAllStringSubmatchIndex(src, -1) {
		rx, err := regexp.Compile(strings.ReplaceAll(src[m[4]:m[5]], `\"`, `"`))
		if err != nil {
			t.Fatalf("bad ERROR regexp at offset %d: %v", m[0], err)
		}
		off := tokenStartBefore(src, m[0])
		line := strings.Count(src[:off], "\n") + 1
		col := off - (strings.LastIndexByte(src[:off], '\n') + 1) + 1
		out = append(out, expectation{line: line, col: col, rx: rx})
	}
	return out
}

// tokenStartBefore returns the offset of the start of the token that ends
// before end, skipping white space.
func tokenStartBefore(src string, end int) int {
	i := end
	for i > 0 && strings.ContainsRune(" \t\r\n", rune(src[i-1])) {
		i--
	}
	switch {
	case i == 0:
		return 0
	case isIdentByte(src[i-1]):
		for i > 0 && isIdentByte(src[i-1]) {
			i--
			// A tenant-prefixed name (org/user) is one token here.
			if i > 1 && src[i-1] == '/' && isIdentByte(src[i-2]) {
				i--
			}
		}
		return i
	case src[i-1] == '"' || src[i-1] == '\'':
		q := src[i-1]
		i--
		for i > 0 && src[i-1] != q {
			i--
		}
		return i - 1
	case i >= 2 && src[i-2:i] == "->":
		return i - 2
	case i >= 3 && src[i-3:i] == "...":
		return i - 3
	}
	return i - 1
}

func TestInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.zed")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Errorf("only %d invalid schemas in testdata/invalid; want at least 40", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			src := string(data)
			want := expectations(t, src)
			if len(want) == 0 {
				t.Fatal("no ERROR comment in file")
			}
			s, err := Compile(file, src)
			if err == nil {
				t.Fatalf("compiled without error; canonical form:\n%s", s.Source)
			}
			if s != nil {
				t.Errorf("Compile returned a schema along with an error")
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, not ErrorList: %v", err, err)
			}
			got := map[[2]int]*Error{}
			for _, e := range list {
				if e.Pos.Filename != file {
					t.Errorf("error names file %q, want %q", e.Pos.Filename, file)
				}
				got[[2]int{e.Pos.Line, e.Pos.Col}] = e
			}
			for _, w := range want {
				key := [2]int{w.line, w.col}
				e, ok := got[key]
				if !ok {
					t.Errorf("%d:%d: no error, want one matching %q; got:\n%v", w.line, w.col, w.rx, err)
					continue
				}
				if !w.rx.MatchString(e.Msg) {
					t.Errorf("%d:%d: error %q does not match %q", w.line, w.col, e.Msg, w.rx)
				}
				delete(got, key)
			}
			for _, e := range got {
				t.Errorf("unexpected error %d:%d: %s", e.Pos.Line, e.Pos.Col, e.Msg)
			}
		})
	}
}

func TestValidGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.zed")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/valid/*.zed")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Compile(file, string(data))
			if err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(file, ".zed") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(s.Source), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./schema -update)", err)
			}
			if s.Source != string(want) {
				t.Errorf("canonical form differs from %s:\n--- got\n%s\n--- want\n%s", golden, s.Source, want)
			}
			checkRoundTrip(t, file, string(data))
			// The golden file is itself canonical: formatting it changes nothing.
			again, err := Format(golden, string(want))
			if err != nil {
				t.Fatal(err)
			}
			if again != string(want) {
				t.Errorf("Format is not idempotent on %s:\n%s", golden, again)
			}
		})
	}
}

// checkRoundTrip asserts Parse(Print(ast)) == ast, positions aside.
func checkRoundTrip(t *testing.T, name, src string) {
	t.Helper()
	f1, err := Parse(name, src)
	if err != nil {
		return
	}
	out := Print(f1)
	f2, err := Parse(name, out)
	if err != nil {
		t.Fatalf("printed form does not parse: %v\n%s", err, out)
	}
	clearPositions(reflect.ValueOf(f1))
	clearPositions(reflect.ValueOf(f2))
	if !reflect.DeepEqual(f1, f2) {
		t.Fatalf("round trip changed the tree; printed:\n%s", out)
	}
	if again := Print(f2); again != out {
		t.Fatalf("printing is not idempotent:\n%s\n---\n%s", out, again)
	}
}

var posType = reflect.TypeOf(Pos{})

// clearPositions zeroes every Pos reachable from v.
func clearPositions(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			clearPositions(v.Elem())
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			clearPositions(v.Index(i))
		}
	case reflect.Struct:
		if v.Type() == posType {
			if v.CanSet() {
				v.Set(reflect.Zero(posType))
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			clearPositions(v.Field(i))
		}
	}
}

// sexpr renders a syntax tree with every binary operation parenthesised.
func sexpr(e ExprNode) string {
	switch e := e.(type) {
	case *BinaryExpr:
		op := map[Token]string{PLUS: "+", AMP: "&", MINUS: "-"}[e.Op]
		return "(" + sexpr(e.X) + " " + op + " " + sexpr(e.Y) + ")"
	case *ArrowExpr:
		if e.Func != "" {
			return sexpr(e.Left) + "." + e.Func + "(" + e.Right.Name + ")"
		}
		return sexpr(e.Left) + "->" + e.Right.Name
	case *IdentExpr:
		return e.Name
	case *NilExpr:
		return "nil"
	}
	return fmt.Sprintf("%T", e)
}

func TestPrecedence(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"a + b", "(a + b)"},
		{"a + b + c", "((a + b) + c)"},
		{"a - b - c", "((a - b) - c)"},
		{"a & b & c", "((a & b) & c)"},
		// SpiceDB: + binds tighter than &, which binds tighter than -.
		{"a - b + c", "(a - (b + c))"},
		{"a + b - c", "((a + b) - c)"},
		{"a & b + c", "(a & (b + c))"},
		{"a + b & c", "((a + b) & c)"},
		{"a - b & c", "(a - (b & c))"},
		{"a & b - c", "((a & b) - c)"},
		{"a - b & c + d", "(a - (b & (c + d)))"},
		{"(a - b) + c", "((a - b) + c)"},
		{"a - (b - c)", "(a - (b - c))"},
		{"p->v + a", "(p->v + a)"},
		{"p.any(v) & p.all(w)", "(p.any(v) & p.all(w))"},
		{"p->v->w", "p->v->w"},
		{"nil", "nil"},
		{"a - nil", "(a - nil)"},
		{"((a))", "a"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			src := "definition d {\n\tpermission x = " + tt.expr + "\n}\n"
			f, err := Parse("p.zed", src)
			if err != nil {
				t.Fatal(err)
			}
			e := f.Decls[0].(*DefinitionDecl).Members[0].(*PermissionDecl).Expr
			if got := sexpr(e); got != tt.want {
				t.Errorf("parsed as %s, want %s", got, tt.want)
			}
			checkRoundTrip(t, "p.zed", src)
		})
	}
}
