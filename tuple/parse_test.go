package tuple

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseValid(t *testing.T) {
	exp := time.Date(2023, 12, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want Relationship
		out  string // canonical form; "" means same as in
	}{
		{
			in:   "group:lab#member@user:ana",
			want: Relationship{Resource: ObjectRef{"group", "lab"}, Relation: "member", Subject: SubjectRef{Type: "user", ID: "ana"}},
		},
		{
			in:   "workflow:w1#editor@group:lab#member",
			want: Relationship{Resource: ObjectRef{"workflow", "w1"}, Relation: "editor", Subject: SubjectRef{"group", "lab", "member"}},
		},
		{
			in:   "user:someuser#direct_token@token:sometoken#...",
			want: Relationship{Resource: ObjectRef{"user", "someuser"}, Relation: "direct_token", Subject: SubjectRef{Type: "token", ID: "sometoken"}},
			out:  "user:someuser#direct_token@token:sometoken",
		},
		{
			in:   "test/resource:first#viewer@test/user:*",
			want: Relationship{Resource: ObjectRef{"test/resource", "first"}, Relation: "viewer", Subject: SubjectRef{Type: "test/user", ID: "*"}},
		},
		{
			in:   "doc:a/b|c-d=e+f_g#viewer@user:X9",
			want: Relationship{Resource: ObjectRef{"doc", "a/b|c-d=e+f_g"}, Relation: "viewer", Subject: SubjectRef{Type: "user", ID: "X9"}},
		},
		{
			in:   "organization:someorg#viewer@user:sarah[some_caveat]",
			want: Relationship{Resource: ObjectRef{"organization", "someorg"}, Relation: "viewer", Subject: SubjectRef{Type: "user", ID: "sarah"}, Caveat: &Caveat{Name: "some_caveat"}},
		},
		{
			in: `document:firstdoc#viewer@user:tom[some_caveat:{"somemap": {"foo": 42, "bar": [1, "]"]}}]`,
			want: Relationship{Resource: ObjectRef{"document", "firstdoc"}, Relation: "viewer", Subject: SubjectRef{Type: "user", ID: "tom"},
				Caveat: &Caveat{Name: "some_caveat", Context: map[string]any{"somemap": map[string]any{"foo": 42.0, "bar": []any{1.0, "]"}}}}},
			out: `document:firstdoc#viewer@user:tom[some_caveat:{"somemap":{"bar":[1,"]"],"foo":42}}]`,
		},
		{
			in:   "folder:expired#viewer@user:tom[expiration:2023-12-01T00:00:00Z]",
			want: Relationship{Resource: ObjectRef{"folder", "expired"}, Relation: "viewer", Subject: SubjectRef{Type: "user", ID: "tom"}, Expiration: exp},
		},
		{
			in: `document:firstdoc#viewer@user:tom[somecaveat:{"somecondition":42}][expiration:2023-12-01T00:00:00Z]`,
			want: Relationship{Resource: ObjectRef{"document", "firstdoc"}, Relation: "viewer", Subject: SubjectRef{Type: "user", ID: "tom"},
				Caveat: &Caveat{Name: "somecaveat", Context: map[string]any{"somecondition": 42.0}}, Expiration: exp},
		},
		{
			in:   "  doc:x#viewer@user:y  ",
			want: Relationship{Resource: ObjectRef{"doc", "x"}, Relation: "viewer", Subject: SubjectRef{Type: "user", ID: "y"}},
			out:  "doc:x#viewer@user:y",
		},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("Parse = %#v, want %#v", got, tt.want)
			}
			out := tt.out
			if out == "" {
				out = strings.TrimSpace(tt.in)
			}
			if s := got.String(); s != out {
				t.Fatalf("String = %q, want %q", s, out)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	long := strings.Repeat("a", MaxIDLength+1)
	tests := []struct {
		in      string
		wantErr error
		msg     string
	}{
		{"", ErrSyntax, "expected resource#relation@subject"},
		{"doc:1#viewer", ErrSyntax, "expected resource#relation@subject"},
		{"doc:1@user:a", ErrSyntax, "'#relation'"},
		{"doc#viewer@user:a", ErrSyntax, "expected type:id"},
		{"doc:1#viewer@user", ErrSyntax, "expected type:id"},
		{"Doc:1#viewer@user:a", ErrInvalidTyp, "invalid type name"},
		{"do:1#viewer@user:a", ErrInvalidTyp, "invalid type name"},
		{"doc:#viewer@user:a", ErrInvalidID, "must be 1 to 1024"},
		{"doc:a b#viewer@user:a", ErrInvalidID, "character ' '"},
		{"doc:*#viewer@user:a", ErrInvalidID, "character '*'"},
		{"doc:" + long + "#viewer@user:a", ErrInvalidID, "must be 1 to 1024"},
		{"doc:1#Viewer@user:a", ErrInvalidRel, "invalid relation name"},
		{"doc:1#viewer_@user:a", ErrInvalidRel, "invalid relation name"},
		{"doc:1#viewer@user:*#member", ErrSyntax, "wildcard subject cannot have a relation"},
		{"doc:1#viewer@group:a#", ErrSyntax, "empty subject relation"},
		{"doc:1#viewer@user:a[cav:{bad}]", ErrCaveat, "not valid JSON"},
		{"doc:1#viewer@user:a[cav:[1]]", ErrCaveat, "must be a JSON object"},
		{"doc:1#viewer@user:a[cav", ErrSyntax, "unterminated"},
		{"doc:1#viewer@user:a]", ErrSyntax, "unexpected ']'"},
		{"doc:1#viewer@user:a[c1][c2]", ErrCaveat, "at most one caveat"},
		{"doc:1#viewer@user:a[expiration:tomorrow]", ErrExpiration, "RFC 3339"},
		{"doc:1#viewer@user:a[X:{}]", ErrCaveat, "caveat name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded, want error", tt.in)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Parse(%q) = %v, want errors.Is %v", tt.in, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Parse(%q) = %q, want message containing %q", tt.in, err, tt.msg)
			}
		})
	}
}

func TestFilterMatches(t *testing.T) {
	r := MustParse("doc:readme#viewer@group:eng#member")
	none, member := "", "member"
	tests := []struct {
		name string
		f    Filter
		want bool
	}{
		{"empty", Filter{}, true},
		{"type", Filter{ResourceType: "doc"}, true},
		{"other type", Filter{ResourceType: "folder"}, false},
		{"ids", Filter{ResourceType: "doc", ResourceIDs: []string{"x", "readme"}}, true},
		{"ids miss", Filter{ResourceIDs: []string{"readm"}}, false},
		{"prefix", Filter{ResourceIDPrefix: "read"}, true},
		{"prefix miss", Filter{ResourceIDPrefix: "readmex"}, false},
		{"relation", Filter{Relation: "viewer"}, true},
		{"relation miss", Filter{Relation: "editor"}, false},
		{"subject type", Filter{Subject: &SubjectFilter{Type: "group"}}, true},
		{"subject id", Filter{Subject: &SubjectFilter{Type: "group", IDs: []string{"eng"}}}, true},
		{"subject rel any", Filter{Subject: &SubjectFilter{Type: "group", Relation: nil}}, true},
		{"subject rel none", Filter{Subject: &SubjectFilter{Type: "group", Relation: &none}}, false},
		{"subject rel member", Filter{Subject: &SubjectFilter{Relation: &member}}, true},
	}
	for _, tt := range tests {
		if got := tt.f.Matches(r); got != tt.want {
			t.Errorf("%s: Matches = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestExpiredAt(t *testing.T) {
	r := MustParse("doc:1#viewer@user:a[expiration:2030-01-01T00:00:00Z]")
	if r.ExpiredAt(time.Date(2029, 12, 31, 23, 59, 59, 0, time.UTC)) {
		t.Error("expired one second before its expiration")
	}
	if !r.ExpiredAt(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("not expired at its expiration time")
	}
	if MustParse("doc:1#viewer@user:a").ExpiredAt(time.Now()) {
		t.Error("relationship without expiration reported expired")
	}
}

func TestParseSubjectAndObject(t *testing.T) {
	s, err := ParseSubject("group:lab#member")
	if err != nil || s != (SubjectRef{"group", "lab", "member"}) {
		t.Fatalf("ParseSubject = %v, %v", s, err)
	}
	if s, err = ParseSubject("user:ana#..."); err != nil || s != (SubjectRef{Type: "user", ID: "ana"}) {
		t.Fatalf("ParseSubject ellipsis = %v, %v", s, err)
	}
	if _, err = ParseSubject("user:*#member"); err == nil {
		t.Fatal("ParseSubject accepted a wildcard with a relation")
	}
	if _, err = ParseObject("user:*"); err == nil {
		t.Fatal("ParseObject accepted a wildcard")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"group:lab#member@user:ana",
		"workflow:w1#editor@group:lab#member",
		"t/res:x#viewer@t/user:*",
		`doc:1#viewer@user:a[cav:{"a":[1,{"b":"]"}]}][expiration:2023-12-01T00:00:00Z]`,
		"doc:1#viewer@user:a#...",
		"[[[",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		printed := r.String()
		r2, err := Parse(printed)
		if err != nil {
			t.Fatalf("reparse of %q (from %q) failed: %v", printed, s, err)
		}
		if !r.Equal(r2) {
			t.Fatalf("round trip changed %q: %#v != %#v", s, r, r2)
		}
		if r2.String() != printed {
			t.Fatalf("printing is not stable: %q then %q", printed, r2.String())
		}
	})
}

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		if _, err := Parse("workflow:w1#editor@group:lab#member"); err != nil {
			b.Fatal(err)
		}
	}
}
