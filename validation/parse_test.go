package validation

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/tuple"
)

// doc joins lines with newlines, so that tests can count lines.
func doc(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

func sub(s string) tuple.SubjectRef {
	r, err := tuple.ParseSubject(s)
	if err != nil {
		panic(err)
	}
	return r
}

func rels(t *testing.T, f *File) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range f.Relationships {
		out[r.String()] = r.Line
	}
	return out
}

func TestParseRelationshipsBlock(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want map[string]int // relationship text → line
	}{
		{
			name: "literal",
			src: doc(
				"schema: definition user {}",
				"relationships: |",
				"  document:a#viewer@user:ana",
				"",
				"  // a comment line",
				"  document:a#viewer@group:g#member",
				"  document:a#viewer@user:*",
			),
			want: map[string]int{
				"document:a#viewer@user:ana":       3,
				"document:a#viewer@group:g#member": 6,
				"document:a#viewer@user:*":         7,
			},
		},
		{
			name: "folded with blank separators",
			src: doc(
				"schema: definition user {}",
				"relationships: >-",
				"  document:a#viewer@user:ana",
				"",
				"  document:a#viewer@user:bob[only_ip:{\"cidr\":\"1.0.0.0/8\"}]",
				"",
				"",
				"  document:a#editor@user:ana[expiration:2300-01-01T00:00:00Z]",
			),
			want: map[string]int{
				"document:a#viewer@user:ana":                                  3,
				`document:a#viewer@user:bob[only_ip:{"cidr":"1.0.0.0/8"}]`:    5,
				"document:a#editor@user:ana[expiration:2300-01-01T00:00:00Z]": 8,
			},
		},
		{
			name: "literal keep and strip chomping, subject ellipsis",
			src: doc(
				"relationships: |-",
				"  document:a#viewer@user:ana#...",
				"  document:a#viewer@user:bob",
				"schema: |+",
				"  definition user {}",
			),
			want: map[string]int{
				"document:a#viewer@user:ana": 2,
				"document:a#viewer@user:bob": 3,
			},
		},
		{
			name: "plain one line",
			src:  doc("relationships: document:a#viewer@user:ana"),
			want: map[string]int{"document:a#viewer@user:ana": 1},
		},
		{
			name: "null and empty",
			src:  doc("relationships:", "schema: ''"),
			want: map[string]int{},
		},
		{
			name: "identical lines in two keys map to their own key",
			src: doc(
				"relationships: |",
				"  document:a#viewer@user:ana",
				"assertions:",
				"  assertTrue:",
				"    - document:a#viewer@user:ana",
			),
			want: map[string]int{"document:a#viewer@user:ana": 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := Parse("t.yaml", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 1 {
				t.Fatalf("got %d documents, want 1", len(files))
			}
			if got := rels(t, files[0]); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("relationships:\n got %v\nwant %v", got, tt.want)
			}
			checkInvariants(t, files[0], len(splitLines([]byte(tt.src))))
			checkLinesHoldText(t, files[0], splitLines([]byte(tt.src)))
		})
	}
}

func TestParseLineEndingsAndAliases(t *testing.T) {
	lines := []string{
		"schema: &s |",
		"  definition user {}",
		"relationships: |",
		"  document:a#viewer@user:ana",
		"",
		"  document:a#viewer@user:bob",
		"assertions:",
		"  assertTrue:",
		"    - &a document:a#viewer@user:ana",
		"  assertFalse:",
		"    - *a",
	}
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		src := strings.Join(lines, eol) + eol
		files, err := Parse("t.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%q: %v", eol, err)
		}
		f := files[0]
		if got := rels(t, f); !reflect.DeepEqual(got, map[string]int{"document:a#viewer@user:ana": 4, "document:a#viewer@user:bob": 6}) {
			t.Errorf("%q: relationships %v", eol, got)
		}
		if f.Schema != "definition user {}\n" || f.SchemaLine != 2 {
			t.Errorf("%q: schema %q at line %d", eol, f.Schema, f.SchemaLine)
		}
		// The alias resolves to the anchored entry, which keeps its line.
		if len(f.Assertions.False) != 1 || f.Assertions.False[0].Rel.String() != "document:a#viewer@user:ana" || f.Assertions.False[0].Line != 9 {
			t.Errorf("%q: aliased assertion %+v", eol, f.Assertions.False)
		}
	}
}

func TestParseRelationshipAttributes(t *testing.T) {
	src := doc(
		"relationships: |",
		`  document:a#viewer@user:bob[only_ip:{"cidr":"1.0.0.0/8"}][expiration:2023-01-01T00:00:00Z]`,
	)
	files, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r := files[0].Relationships[0]
	if r.Caveat == nil || r.Caveat.Name != "only_ip" || r.Caveat.Context["cidr"] != "1.0.0.0/8" {
		t.Errorf("caveat = %+v", r.Caveat)
	}
	if r.Expiration.Year() != 2023 {
		t.Errorf("expiration = %v", r.Expiration)
	}
}

func TestParseAssertions(t *testing.T) {
	src := doc(
		"schema: definition user {}",
		"assertions:",
		"  assertTrue:",
		`    - document:a#view@user:ana`,
		`    - 'document:a#view@user:bob with {"ip": "10.1.2.3", "n": 2}'`,
		`    - "document:a#can_do_things@group:g#member"`,
		"  assertFalse:",
		"    - document:a#view@user:*",
		"  assertCaveated:",
		`    - 'document:a#view@user:eve with   {"x": {"y": [1, true]}}  '`,
	)
	files, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a := files[0].Assertions
	type want struct {
		rel  string
		ctx  map[string]any
		line int
	}
	check := func(name string, got []Assertion, wants []want) {
		t.Helper()
		if len(got) != len(wants) {
			t.Fatalf("%s: %d assertions, want %d", name, len(got), len(wants))
		}
		for i, w := range wants {
			if got[i].Rel.String() != w.rel || !reflect.DeepEqual(got[i].Context, w.ctx) || got[i].Line != w.line {
				t.Errorf("%s[%d] = %s %v line %d; want %s %v line %d", name, i, got[i].Rel, got[i].Context, got[i].Line, w.rel, w.ctx, w.line)
			}
			if !strings.Contains(src, got[i].Text) {
				t.Errorf("%s[%d]: Text %q is not in the source", name, i, got[i].Text)
			}
		}
	}
	check("True", a.True, []want{
		{"document:a#view@user:ana", nil, 4},
		{"document:a#view@user:bob", map[string]any{"ip": "10.1.2.3", "n": 2.0}, 5},
		{"document:a#can_do_things@group:g#member", nil, 6},
	})
	check("False", a.False, []want{{"document:a#view@user:*", nil, 8}})
	check("Caveated", a.Caveated, []want{
		{"document:a#view@user:eve", map[string]any{"x": map[string]any{"y": []any{1.0, true}}}, 10},
	})
}

func TestParseEmptyAssertionsAndValidation(t *testing.T) {
	for _, src := range []string{
		doc("schema: x", "assertions: null", "validation: null"),
		doc("schema: x", "assertions:", "validation:"),
		doc("schema: x", "assertions: {}", "validation: {}"),
		doc("schema: x", "assertions:", "  assertTrue: []", "  assertFalse:", "  assertCaveated: []"),
		doc("schema: x", `assertions: ""`),
		doc("schema: x"),
	} {
		files, err := Parse("t.yaml", []byte(src))
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		f := files[0]
		if n := len(f.Assertions.True) + len(f.Assertions.False) + len(f.Assertions.Caveated) + len(f.Validation); n != 0 {
			t.Errorf("%q: %d assertions and expectations, want 0", src, n)
		}
		if f.Schema != "x" {
			t.Errorf("%q: schema %q", src, f.Schema)
		}
	}
}

func TestParseValidation(t *testing.T) {
	src := doc(
		"schema: definition user {}",
		"validation:",
		"  document:a#view:",
		`    - "[user:ana] is <document:a#viewer>/<group:g#member>"`,
		`    - "[user:bob[...]] is <document:a#viewer>"`,
		`    - "[user:* - {user:tom, user:sam[...]}] is <document:a#viewer>"`,
		`    - "[user:*[...] - {user:tom}] is <document:a#viewer>"`,
		`    - "[group:g#member]"`,
		"  test/doc:b#edit: []",
		"  document:c#view:",
	)
	files, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	v := files[0].Validation
	if len(v) != 3 {
		t.Fatalf("%d expected relations, want 3", len(v))
	}
	want0 := Expected{
		Resource: tuple.ObjectRef{Type: "document", ID: "a"}, Permission: "view", Line: 3,
		Subjects: []ExpectedSubject{
			{Subject: sub("user:ana"), Via: []tuple.SubjectRef{sub("document:a#viewer"), sub("group:g#member")}, Line: 4},
			{Subject: sub("user:bob"), Caveated: true, Via: []tuple.SubjectRef{sub("document:a#viewer")}, Line: 5},
			{Subject: sub("user:*"), Excluded: []tuple.SubjectRef{sub("user:tom"), sub("user:sam")},
				ExcludedCaveated: []bool{false, true}, Via: []tuple.SubjectRef{sub("document:a#viewer")}, Line: 6},
			{Subject: sub("user:*"), Caveated: true, Excluded: []tuple.SubjectRef{sub("user:tom")},
				ExcludedCaveated: []bool{false}, Via: []tuple.SubjectRef{sub("document:a#viewer")}, Line: 7},
			{Subject: sub("group:g#member"), Line: 8},
		},
	}
	for i := range v[0].Subjects {
		if !strings.Contains(src, v[0].Subjects[i].Text) || v[0].Subjects[i].Text == "" {
			t.Errorf("subject %d: Text %q is not in the source", i, v[0].Subjects[i].Text)
		}
		v[0].Subjects[i].Text = ""
	}
	if !reflect.DeepEqual(v[0], want0) {
		t.Errorf("got  %+v\nwant %+v", v[0], want0)
	}
	if v[1].Resource.Type != "test/doc" || v[1].Permission != "edit" || v[1].Line != 9 || len(v[1].Subjects) != 0 {
		t.Errorf("second entry = %+v", v[1])
	}
	if v[2].Resource.ID != "c" || v[2].Line != 10 || len(v[2].Subjects) != 0 {
		t.Errorf("third entry = %+v", v[2])
	}
}

func TestParseMultipleDocuments(t *testing.T) {
	src := doc(
		"---",
		"schema: |",
		"  definition one {}",
		"relationships: |",
		"  document:a#viewer@user:ana",
		"---",
		"---",
		"# only a comment",
		"---",
		"schema: >-",
		"  definition two {}",
		"",
		"  definition three {",
		"    relation viewer: user",
		"  }",
		"relationships: |",
		"  document:a#viewer@user:ana",
	)
	files, err := Parse("multi.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("%d documents, want 2 (empty ones skipped)", len(files))
	}
	type got struct {
		doc, schemaLine, relLine int
		schema                   string
	}
	g := []got{}
	for _, f := range files {
		g = append(g, got{f.Doc, f.SchemaLine, f.Relationships[0].Line, f.Schema})
	}
	want := []got{
		{1, 3, 5, "definition one {}\n"},
		{4, 11, 17, "definition two {}\ndefinition three {\n  relation viewer: user\n}"},
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("got  %+v\nwant %+v", g, want)
	}
	for _, f := range files {
		checkLinesHoldText(t, f, splitLines([]byte(src)))
	}
	// Line 3 col 3 of the second schema ("  relation viewer: user", folded
	// from a line indented by four) is line 14 col 5; past its last line, a
	// position falls back to where the schema starts.
	for _, c := range []struct{ line, col, wantLine, wantCol int }{
		{3, 3, 14, 5},
		{1, 1, 11, 3},
		{2, 0, 13, 0},
		{9, 1, 11, 0},
	} {
		file, l, col := files[1].SchemaPos(c.line, c.col)
		if file != "multi.yaml" || l != c.wantLine || col != c.wantCol {
			t.Errorf("SchemaPos(%d, %d) = %s:%d:%d, want multi.yaml:%d:%d", c.line, c.col, file, l, col, c.wantLine, c.wantCol)
		}
	}
}

func TestParseSchemaFile(t *testing.T) {
	dir := t.TempDir()
	const schemaText = "definition user {}\n"
	if err := os.WriteFile(filepath.Join(dir, "model.zed"), []byte(schemaText), 0o600); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "file.yaml")

	files, err := Parse(name, []byte(doc("schemaFile: model.zed", "relationships: document:a#viewer@user:ana")))
	if err != nil {
		t.Fatal(err)
	}
	f := files[0]
	if f.Schema != schemaText || f.SchemaFile != filepath.Join(dir, "model.zed") || f.SchemaLine != 1 {
		t.Errorf("schema %q from %q line %d", f.Schema, f.SchemaFile, f.SchemaLine)
	}
	if file, line, col := f.SchemaPos(7, 2); file != f.SchemaFile || line != 7 || col != 2 {
		t.Errorf("SchemaPos(7, 2) = %s:%d:%d", file, line, col)
	}
	got, err := ExtractSchema(name, []byte(doc("schemaFile: model.zed")))
	if err != nil || got != schemaText {
		t.Errorf("ExtractSchema = %q, %v", got, err)
	}

	bad := []struct{ src, re string }{
		{doc("schema: x", "schemaFile: model.zed"), `file.yaml:2:13: invalid schemaFile: give either`},
		{doc("schemaFile: ../model.zed"), `file.yaml:1:13: invalid schemaFile: "../model.zed" must be a relative path`},
		{doc("schemaFile: /etc/passwd"), `must be a relative path`},
		{doc("schemaFile: missing.zed"), `file.yaml:1:13: invalid schemaFile: cannot read "missing.zed"`},
		{doc("schemaFile: [a]"), `file.yaml:1:13: invalid validation file: .schemaFile. must be text`},
	}
	for _, b := range bad {
		_, err := Parse(name, []byte(b.src))
		if err == nil || !regexp.MustCompile(b.re).MatchString(err.Error()) {
			t.Errorf("%q: error %v, want match %q", b.src, err, b.re)
		}
	}
}

func TestExtractSchema(t *testing.T) {
	tests := []struct {
		name, src, want, errRe string
	}{
		{"first document wins", doc("schema: one", "---", "schema: two"), "one", ""},
		{"broken relationships do not matter", doc("schema: |", "  definition user {}", "relationships: nonsense"), "definition user {}\n", ""},
		{"leading empty documents skipped", doc("---", "---", "schema: one"), "one", ""},
		{"no schema", doc("relationships: document:a#viewer@user:ana"), "", `t.yaml:1: invalid validation file: the first document has no schema`},
		{"empty file", "", "", `t.yaml: invalid validation file: the file holds no YAML document`},
		{"bad yaml", "schema: [x\n", "", `t.yaml:1: malformed YAML`},
		{"not a mapping", doc("- a"), "", `t.yaml:1:1: invalid validation file: document 1 must be a mapping`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExtractSchema("t.yaml", []byte(tt.src))
			if tt.errRe != "" {
				if err == nil || !regexp.MustCompile(tt.errRe).MatchString(err.Error()) {
					t.Fatalf("error %v, want match %q", err, tt.errRe)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		kind error
		// re must match the error text; it names file:line[:col].
		re string
	}{
		{"malformed yaml", "schema: [x\nrelationships: y\n", ErrYAML, `^t\.yaml:\d+: malformed YAML: `},
		{"tab indentation", "schema:\n\t- x\n", ErrYAML, `^t\.yaml:2: malformed YAML: `},
		{"document not a mapping", doc("schema: x", "---", "- a", "- b"), ErrFormat, `^t\.yaml:3:1: .*document 2 must be a mapping.*found a list`},
		{"unknown key", doc("schema: x", "assertion:", "  assertTrue: []"), ErrFormat, `^t\.yaml:2:1: .*unknown key "assertion"`},
		{"repeated key", doc("schema: x", "schema: y"), ErrFormat, `^t\.yaml:2:1: .*key "schema" repeated \(first at line 1\)`},
		{"schema is a list", doc("schema:", "  - x"), ErrFormat, "^t\\.yaml:2:3: .*`schema` must be text, found a list"},
		{"relationships is a list", doc("relationships:", "  - document:a#viewer@user:ana"), ErrFormat, "^t\\.yaml:2:3: .*`relationships` must be text"},
		{"bad relationship in literal", doc("schema: x", "relationships: |", "  document:a#viewer@user:ana", "", "  document:a#viewer"), ErrRelationship,
			`^t\.yaml:5:3: invalid relationship: "document:a#viewer": .*expected resource#relation@subject`},
		{"bad relationship in folded", doc("relationships: >-", "  document:a#viewer@user:ana", "", "  document:a#viewer@user:ana!"), ErrRelationship,
			`^t\.yaml:4:3: invalid relationship: .*invalid object id`},
		{"folded lines without a blank line between are joined", doc("relationships: >-", "  document:a#viewer@user:ana", "  document:a#viewer@user:bob"), ErrRelationship,
			`^t\.yaml:2:3: invalid relationship: "document:a#viewer@user:ana document:a#viewer@user:bob"`},
		{"bad relationship in a quoted string", doc(`relationships: "document:a#viewer@user:ana\nbroken"`), ErrRelationship, `^t\.yaml:1:16: invalid relationship: "broken"`},
		{"bad caveat json", doc("relationships: |", `  document:a#viewer@user:ana[c1x:{"a":}]`), ErrRelationship, `^t\.yaml:2:3: invalid relationship: .*not valid JSON`},
		{"repeated relationship", doc("relationships: |", "  document:a#viewer@user:ana", "  document:a#viewer@user:ana[expiration:2300-01-01T00:00:00Z]"), ErrRelationship,
			`^t\.yaml:3:3: .*document:a#viewer@user:ana is repeated \(first at line 2\)`},
		{"assertions not a mapping", doc("assertions:", "  - document:a#view@user:ana"), ErrFormat, "^t\\.yaml:2:3: .*`assertions` must be a mapping"},
		{"assertions unknown key", doc("assertions:", "  assertMaybe: []"), ErrFormat, `^t\.yaml:2:3: .*unknown key "assertMaybe" in assertions`},
		{"assertion list is text", doc("assertions:", "  assertTrue: document:a#view@user:ana"), ErrFormat, `^t\.yaml:2:15: .*"assertTrue" must be a list`},
		{"assertion entry is a mapping", doc("assertions:", "  assertTrue:", "    - a: b"), ErrFormat, `^t\.yaml:3:7: .*an entry of "assertTrue" must be a string`},
		{"assertion entry is null", doc("assertions:", "  assertTrue:", "    -"), ErrFormat, `^t\.yaml:3:\d+: .*must be a string`},
		{"assertion bad relation", doc("assertions:", "  assertFalse:", "    - document:a#v@user:ana"), ErrAssertion, `^t\.yaml:3:7: invalid assertion: .*invalid relation name "v"`},
		{"assertion with caveat", doc("assertions:", "  assertTrue:", "    - document:a#view@user:ana[somecaveat]"), ErrAssertion, `^t\.yaml:3:7: .*cannot name a caveat`},
		{"assertion with expiration", doc("assertions:", "  assertTrue:", "    - document:a#view@user:ana[expiration:2300-01-01T00:00:00Z]"), ErrAssertion, `^t\.yaml:3:7: .*expiration`},
		{"assertion context not json", doc("assertions:", "  assertCaveated:", "    - 'document:a#view@user:ana with {x: 1}'"), ErrAssertion, `^t\.yaml:3:7: .*caveat context: .*not valid JSON`},
		{"assertion context not object", doc("assertions:", "  assertTrue:", "    - 'document:a#view@user:ana with [1]'"), ErrAssertion, `^t\.yaml:3:7: .*must be a JSON object`},
		{"assertion with nothing after", doc("assertions:", "  assertTrue:", "    - 'document:a#view@user:ana with '"), ErrAssertion, "^t\\.yaml:3:7: .*expected a JSON object after `with`"},
		{"validation not a mapping", doc("validation:", "  - x"), ErrFormat, "^t\\.yaml:2:3: .*`validation` must be a mapping"},
		{"validation key without relation", doc("validation:", "  document:a: []"), ErrExpected, `^t\.yaml:2:3: invalid expected relation: key "document:a": .*missing '#relation'`},
		{"validation key bad id", doc("validation:", "  document:a b#view: []"), ErrExpected, `^t\.yaml:2:3: .*invalid object id`},
		{"expected without brackets", doc("validation:", "  document:a#view:", "    - user:ana is <document:a#viewer>"), ErrExpected, `^t\.yaml:3:7: .*missing '\[' before the subject`},
		{"expected unclosed", doc("validation:", "  document:a#view:", `    - "[user:ana is <document:a#viewer>"`), ErrExpected, `^t\.yaml:3:7: .*missing '\]'`},
		{"expected bad subject", doc("validation:", "  document:a#view:", `    - "[user] is <document:a#viewer>"`), ErrExpected, `^t\.yaml:3:7: .*subject "user"`},
		{"expected exclusions on a user", doc("validation:", "  document:a#view:", `    - "[user:ana - {user:bob}] is <document:a#viewer>"`), ErrExpected, `only a wildcard subject`},
		{"expected exclusions without dash", doc("validation:", "  document:a#view:", `    - "[user:* {user:bob}] is <document:a#viewer>"`), ErrExpected, "exclusions are written"},
		{"expected empty exclusion", doc("validation:", "  document:a#view:", `    - "[user:* - {user:bob,}] is <document:a#viewer>"`), ErrExpected, "exclusion: empty subject"},
		{"expected other caveat mark", doc("validation:", "  document:a#view:", `    - "[user:ana[c1]] is <document:a#viewer>"`), ErrExpected, `a caveated subject is written`},
		{"expected missing is", doc("validation:", "  document:a#view:", `    - "[user:ana] <document:a#viewer>"`), ErrExpected, "expected `is <type:id#relation>`"},
		{"expected missing angle", doc("validation:", "  document:a#view:", `    - "[user:ana] is <document:a#viewer"`), ErrExpected, "missing '>'"},
		{"expected bad separator", doc("validation:", "  document:a#view:", `    - "[user:ana] is <document:a#viewer>, <document:a#owner>"`), ErrExpected, "expected '/' between relations"},
		{"expected bad via", doc("validation:", "  document:a#view:", `    - "[user:ana] is <document:a>"`), ErrExpected, `<document:a>: missing '#relation'`},
		{"expected list is text", doc("validation:", "  document:a#view: x"), ErrFormat, `"document:a#view" must be a list`},
		{"validation repeated key", doc("validation:", "  document:a#view: []", "  document:a#view: []"), ErrFormat, `^t\.yaml:3:3: .*repeated \(first at line 2\)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := Parse("t.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("no error; parsed %d documents", len(files))
			}
			if files != nil {
				t.Errorf("files = %v, want nil on error", files)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %q is not %v", err, tt.kind)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) != 1 {
				t.Errorf("want an ErrorList of one error, got %#v", err)
			}
			if !regexp.MustCompile(tt.re).MatchString(err.Error()) {
				t.Errorf("error\n  %s\ndoes not match\n  %s", err, tt.re)
			}
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	src := doc(
		"relationships: |",
		"  document:a#viewer@user:ana",
		"  broken one",
		"  document:a#viewer@user:bob",
		"  broken two",
		"assertions:",
		"  assertTrue:",
		"    - broken three",
		"bogus: 1",
	)
	_, err := Parse("t.yaml", []byte(src))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("want an ErrorList, got %v", err)
	}
	var lines []int
	for _, e := range list {
		lines = append(lines, e.Line)
	}
	if want := []int{3, 5, 8, 9}; !reflect.DeepEqual(lines, want) {
		t.Errorf("error lines %v, want %v:\n%v", lines, want, err)
	}
	if !errors.Is(err, ErrRelationship) || !errors.Is(err, ErrAssertion) || !errors.Is(err, ErrFormat) {
		t.Errorf("errors.Is misses a kind: %v", err)
	}
	var tupleErr = tuple.ErrSyntax
	if !errors.Is(err, tupleErr) {
		t.Errorf("the tuple cause is not reachable with errors.Is: %v", err)
	}
}

func TestErrorListPrintsAtMostTen(t *testing.T) {
	var b strings.Builder
	b.WriteString("relationships: |\n")
	for range 15 {
		b.WriteString("  broken\n")
	}
	_, err := Parse("t.yaml", []byte(b.String()))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 15 {
		t.Fatalf("want 15 errors, got %v", err)
	}
	msg := err.Error()
	if n := strings.Count(msg, "invalid relationship"); n != maxPrinted {
		t.Errorf("printed %d errors, want %d", n, maxPrinted)
	}
	if !strings.HasSuffix(msg, "(and 5 more errors)") {
		t.Errorf("message does not count the rest: %q", msg[len(msg)-40:])
	}
}

// BenchmarkParse measures a large relationships block, in the block style
// validation files use and as one quoted line (whose lines cannot be traced
// to the source and must not make parsing quadratic).
func BenchmarkParse(b *testing.B) {
	const n = 20000
	var block, quoted strings.Builder
	block.WriteString("schema: definition user {}\nrelationships: |\n")
	quoted.WriteString("relationships: \"")
	for i := range n {
		fmt.Fprintf(&block, "  document:d%d#viewer@user:u%d\n", i, i)
		fmt.Fprintf(&quoted, "document:d%d#viewer@user:u%d\\n", i, i)
	}
	quoted.WriteString("\"\n")
	for _, c := range []struct{ name, src string }{{"block", block.String()}, {"quoted", quoted.String()}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.src)))
			for b.Loop() {
				files, err := Parse("b.yaml", []byte(c.src))
				if err != nil || len(files[0].Relationships) != n {
					b.Fatal(err)
				}
			}
		})
	}
}
