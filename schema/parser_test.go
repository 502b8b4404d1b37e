package schema

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestScanner(t *testing.T) {
	tests := []struct {
		src  string
		want string // tokens as "tok:lit" separated by spaces
	}{
		{"definition org/user {}", `definition:definition identifier:org '/':/ identifier:user '{':{ '}':} ';' or newline:` + "\n"},
		{"a\nb", "identifier:a ';' or newline:\n identifier:b ';' or newline:\n"},
		{"a +\nb", "identifier:a '+':+ identifier:b ';' or newline:\n"},
		{"x->y.any(z)", "identifier:x '->':-> identifier:y '.':. identifier:any '(':( identifier:z ')':) ';' or newline:\n"},
		{"user:* | g#... ;", "identifier:user ':':: '*':* '|':| identifier:g '#':# '...':... ';' or newline:;"},
		{"a // c\nb", "identifier:a comment:// c ';' or newline:\n identifier:b ';' or newline:\n"},
		{"a /* x\ny */ b", "identifier:a comment:/* x\ny */ identifier:b ';' or newline:\n"},
		{"list<int>", "identifier:list '<':< identifier:int '>':> ';' or newline:\n"},
		{"a - b & c = nil", "identifier:a '-':- identifier:b '&':& identifier:c '=':= nil:nil ';' or newline:\n"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			var s Scanner
			s.Init("t", tt.src, func(pos Pos, msg string) { t.Errorf("%v: %s", pos, msg) })
			var got []string
			for {
				_, tok, lit := s.Scan()
				if tok == EOF {
					break
				}
				got = append(got, tok.String()+":"+lit)
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("got  %q\nwant %q", g, tt.want)
			}
		})
	}
}

func TestScannerPositions(t *testing.T) {
	var s Scanner
	s.Init("f.zed", "definition a {\n\trelation b: c\n}", nil)
	want := []Pos{{"f.zed", 1, 1, 0}, {"f.zed", 1, 12, 11}, {"f.zed", 1, 14, 13}, {"f.zed", 2, 2, 16}, {"f.zed", 2, 11, 25}}
	for i, w := range want {
		pos, tok, _ := s.Scan()
		if pos != w {
			t.Errorf("token %d (%v) at %+v, want %+v", i, tok, pos, w)
		}
	}
}

// Syntax errors whose position cannot carry an inline ERROR comment (at the
// end of the input, or inside a construct that cannot hold a comment).
func TestSyntaxErrors(t *testing.T) {
	tests := []struct {
		name, src string
		line, col int
		msg       string
	}{
		{"unterminated comment", "definition user {}\n/* never closed", 2, 1, "comment not terminated"},
		{"unclosed caveat", "caveat c(a int) {\n\ta > 1\n", 1, 18, "caveat expression not closed"},
		{"empty caveat", "caveat c(a int) {   }", 1, 17, `caveat "c" has an empty expression`},
		{"unterminated string in caveat", "caveat c(a string) {\n\ta == \"x }\n}", 2, 7, "string literal not terminated"},
		{"unclosed definition", "definition user {\n\trelation r: user\n", 3, 1, "expected '}', found end of file"},
		{"missing expression", "definition d {\n\tpermission p = \n}", 3, 1, "expected relation or permission name, `nil` or '\\(', found '}'"},
		{"invalid utf8", "definition d \xff {}", 1, 14, "invalid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile("x.zed", tt.src)
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("got %v, want an ErrorList", err)
			}
			e := list[0]
			if e.Pos.Line != tt.line || e.Pos.Col != tt.col || !strings.Contains(e.Msg, strings.ReplaceAll(tt.msg, `\(`, "(")) {
				t.Errorf("got %d:%d %q, want %d:%d containing %q", e.Pos.Line, e.Pos.Col, e.Msg, tt.line, tt.col, tt.msg)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	src := "definition user {}\n\ndefinition doc {\n\trelation viewer: usr\n\trelation editor: user with nope\n}\n"
	_, err := Compile("doc.zed", src)
	want := "doc.zed:4:19: relation \"viewer\" allows subject type \"usr\", which is not defined\n" +
		"\t\trelation viewer: usr\n" +
		"\t\t                 ^\n" +
		"doc.zed:5:29: caveat \"nope\" is not defined\n" +
		"\t\trelation editor: user with nope\n" +
		"\t\t                           ^"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Pos != (Pos{"doc.zed", 4, 19, 55}) {
		t.Errorf("errors.As(*Error) = %+v", e)
	}
}

func TestLimits(t *testing.T) {
	def := func(expr string) string {
		return "definition doc {\n\trelation rel: doc\n\tpermission perm = " + expr + "\n}\n"
	}
	var many strings.Builder
	for i := 0; i <= MaxDefinitions; i++ {
		fmt.Fprintf(&many, "definition d%04d {}\n", i)
	}
	tests := []struct {
		name, src string
		msg       string // "" means it must compile
	}{
		{"source size", strings.Repeat(" ", MaxSourceSize+1), "more than the limit"},
		{"depth at limit", def(strings.Repeat("(", MaxExprDepth) + "rel" + strings.Repeat(")", MaxExprDepth)), ""},
		{"depth over limit", def(strings.Repeat("(", MaxExprDepth+1) + "rel" + strings.Repeat(")", MaxExprDepth+1)), "more than 64 parentheses deep"},
		{"terms at limit", def("rel" + strings.Repeat(" + rel", MaxExprTerms-1)), ""},
		{"terms over limit", def("rel" + strings.Repeat(" + rel", MaxExprTerms)), "more than 1024 operands"},
		{"definitions over limit", many.String(), "too many definitions"},
		{"identifier over limit", "definition " + strings.Repeat("a", MaxIdentifierLength+1) + " {}", "more than the limit of 128"},
		{"type path over limit", "definition " + strings.Repeat("abc/", 40) + "abc {}", "more than the limit of 128"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile("l.zed", tt.src)
			switch {
			case tt.msg == "" && err != nil:
				t.Fatalf("unexpected error: %.300v", err)
			case tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)):
				t.Fatalf("got %.300v, want an error containing %q", err, tt.msg)
			}
		})
	}
}

const compiledSrc = `use expiration

caveat on_weekday(day int, tags list<string>) {
	day < 6 && tags.size() > 0
}

definition user {}

definition team {
	relation member: user | team#member
}

definition doc {
	relation owner: user with expiration
	relation viewer: user | user:* with on_weekday | team#member with on_weekday and expiration | team#...
	relation parent: doc
	relation team: team
	permission a_perm = owner + viewer + (owner + parent->view)
	permission b_perm = (owner & viewer) & owner - nil
	permission view = viewer + team.all(member) + team.any(member)
}
`

func TestCompiled(t *testing.T) {
	s, err := Compile("c.zed", compiledSrc)
	if err != nil {
		t.Fatal(err)
	}
	if !s.UsesExpiration {
		t.Error("UsesExpiration = false")
	}
	if got := s.Definitions["doc"].Order; !reflect.DeepEqual(got, []string{"owner", "viewer", "parent", "team", "a_perm", "b_perm", "view"}) {
		t.Errorf("Order = %v", got)
	}
	viewer := s.Relation("doc", "viewer")
	wantTypes := []AllowedType{
		{Type: "user"},
		{Type: "user", Wildcard: true, Caveat: "on_weekday"},
		{Type: "team", Relation: "member", Caveat: "on_weekday", Expiration: true},
		{Type: "team"},
	}
	if viewer.IsPermission || viewer.Expr != nil || viewer.Definition != "doc" || !reflect.DeepEqual(viewer.AllowedTypes, wantTypes) {
		t.Errorf("viewer = %+v", viewer)
	}
	if o := s.Relation("doc", "owner"); !reflect.DeepEqual(o.AllowedTypes, []AllowedType{{Type: "user", Expiration: true}}) {
		t.Errorf("owner = %+v", o.AllowedTypes)
	}
	exprs := []struct {
		name string
		want Expr
	}{
		{"a_perm", &Union{Children: []Expr{
			&RelationRef{Name: "owner"}, &RelationRef{Name: "viewer"}, &RelationRef{Name: "owner"},
			&Arrow{Tupleset: "parent", Computed: "view", Func: ArrowAny},
		}}},
		{"b_perm", &Exclusion{
			Base: &Intersection{Children: []Expr{
				&RelationRef{Name: "owner"}, &RelationRef{Name: "viewer"}, &RelationRef{Name: "owner"},
			}},
			Subtracted: &Nil{},
		}},
		{"view", &Union{Children: []Expr{
			&RelationRef{Name: "viewer"},
			&Arrow{Tupleset: "team", Computed: "member", Func: ArrowAll},
			&Arrow{Tupleset: "team", Computed: "member", Func: ArrowAny},
		}}},
	}
	for _, e := range exprs {
		r := s.Relation("doc", e.name)
		if r == nil || !r.IsPermission || r.AllowedTypes != nil {
			t.Errorf("%s = %+v", e.name, r)
			continue
		}
		if !reflect.DeepEqual(r.Expr, e.want) {
			t.Errorf("%s: got %s, want %s", e.name, dumpExpr(r.Expr), dumpExpr(e.want))
		}
	}
	c := s.Caveats["on_weekday"]
	if c == nil || c.Name != "on_weekday" || len(c.Params) != 2 || c.Params[1].Type != "list<string>" || c.Expr != "day < 6 && tags.size() > 0" {
		t.Errorf("caveat = %+v", c)
	}
	if s.Relation("doc", "nope") != nil || s.Relation("nope", "view") != nil {
		t.Error("Relation of an unknown name is not nil")
	}

	// Hash and Source: canonical, stable, and sensitive to meaning.
	if s.String() != s.Source || len(s.Hash) != 32 {
		t.Errorf("String/Hash: %q", s.Hash)
	}
	s2, err := Compile("other-name.zed", strings.ReplaceAll(compiledSrc, "\t", "  "))
	if err != nil {
		t.Fatal(err)
	}
	if s2.Hash != s.Hash {
		t.Error("hash depends on indentation or file name")
	}
	s3, err := Compile("c.zed", strings.Replace(compiledSrc, "day < 6", "day < 5", 1))
	if err != nil {
		t.Fatal(err)
	}
	if s3.Hash == s.Hash {
		t.Error("hash does not change with the caveat expression")
	}
}

func dumpExpr(e Expr) string {
	switch e := e.(type) {
	case *Union:
		return "union" + dumpList(e.Children)
	case *Intersection:
		return "intersect" + dumpList(e.Children)
	case *Exclusion:
		return "exclude(" + dumpExpr(e.Base) + ", " + dumpExpr(e.Subtracted) + ")"
	case *RelationRef:
		return e.Name
	case *Arrow:
		return fmt.Sprintf("%s->%s/%d", e.Tupleset, e.Computed, e.Func)
	case *Nil:
		return "nil"
	}
	return fmt.Sprintf("%T", e)
}

func dumpList(es []Expr) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = dumpExpr(e)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func TestFormat(t *testing.T) {
	tests := []struct{ in, want string }{
		{"definition user {}", "definition user {}\n"},
		{"definition  a{\n\n\n  relation   r :a|a#r\n\n}", "definition a {\n\trelation r: a | a#r\n}\n"},
		{"use expiration\ndefinition a {}", "use expiration\n\ndefinition a {}\n"},
		{"// doc\n/* more */\ndefinition a {}", "// doc\n/* more */\ndefinition a {}\n"},
		{"definition a {\n permission p = x - y - z\n}", "definition a {\n\tpermission p = x - y - z\n}\n"},
		{"definition a {\n permission p = x - (y - z)\n}", "definition a {\n\tpermission p = x - (y - z)\n}\n"},
		{"caveat c(a int){a>1}", "caveat c(a int) {\n\ta>1\n}\n"},
		{"caveat c(a map < list<int> >){\n\n  a.size() > 0\n\n}", "caveat c(a map<list<int>>) {\n\ta.size() > 0\n}\n"},
		// Format checks syntax only: unknown names are fine.
		{"definition a {\n relation r: nowhere\n}", "definition a {\n\trelation r: nowhere\n}\n"},
	}
	for _, tt := range tests {
		got, err := Format("f.zed", tt.in)
		if err != nil {
			t.Errorf("Format(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Format(%q) =\n%s\nwant\n%s", tt.in, got, tt.want)
		}
		again, err := Format("f.zed", got)
		if err != nil || again != got {
			t.Errorf("Format not idempotent on %q: %q, %v", got, again, err)
		}
	}
	if _, err := Format("f.zed", "definition {"); err == nil {
		t.Error("Format accepted a syntax error")
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // "line:col: message substring"
	}{
		{"arrow to a relation no subject type has", `definition user {}

definition folder {
	relation viewer: user
}

definition document {
	relation parent: folder | user
	permission view = parent->reader + parent.all(owner)
}
`, []string{
			`9:28: permission "view": arrow parent->reader: "reader" is not a relation or permission of any subject type of relation "parent"`,
		}},
		{"arrow that resolves on one subject type", `definition user {}

definition folder {
	relation viewer: user
}

definition document {
	relation parent: folder | user
	permission view = parent->viewer
}
`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile("w.zed", tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Warnings) != len(tt.want) {
				t.Fatalf("got %d warnings, want %d: %v", len(s.Warnings), len(tt.want), s.Warnings)
			}
			for i, w := range s.Warnings {
				got := fmt.Sprintf("%d:%d: %s", w.Pos.Line, w.Pos.Col, w.Msg)
				if !strings.Contains(got, tt.want[i]) {
					t.Errorf("warning %d = %q, want it to contain %q", i, got, tt.want[i])
				}
			}
		})
	}
}
