package schema_test

import (
	"errors"
	"iter"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

// stored is a store of relationships for CheckChange.
func stored(rels ...string) func(tuple.Filter) iter.Seq2[tuple.Relationship, error] {
	return func(f tuple.Filter) iter.Seq2[tuple.Relationship, error] {
		return func(yield func(tuple.Relationship, error) bool) {
			for _, s := range rels {
				if r := tuple.MustParse(s); f.Matches(r) && !yield(r, nil) {
					return
				}
			}
		}
	}
}

func TestCheckChange(t *testing.T) {
	const prev = `
caveat cav(x int) { x == 1 }
definition user {}
definition group {
	relation member: user
}
definition doc {
	relation viewer: user | user:* | group#member | user with cav
	relation banned: user
}`
	tests := []struct {
		name string
		next string // prev with these replacements, "old=>new;..."
		rels []string
		kind error // nil = allowed
		msg  string
	}{
		{"nothing stored", "relation banned: user=>", nil, nil, ""},
		{"removed relation in use", "relation banned: user=>", []string{"doc:a#banned@user:eve"}, schema.ErrRemovedInUse, "removes relation doc#banned, but relationships still use it (e.g. doc:a#banned@user:eve)"},
		{"relation made a permission", "relation banned: user=>permission banned = viewer", []string{"doc:a#banned@user:eve"}, schema.ErrRemovedInUse, "turns relation doc#banned into a permission"},
		{"wildcard in use", " | user:*=>", []string{"doc:a#viewer@user:*"}, schema.ErrOrphaned, "no longer allows user:* on relation doc#viewer, but relationship doc:a#viewer@user:* uses it"},
		{"caveat in use", " | user with cav=>", []string{"doc:a#viewer@user:x[cav]"}, schema.ErrOrphaned, "no longer allows user with cav"},
		{"subject set not in use", " | group#member=>", []string{"doc:a#viewer@user:x"}, nil, ""},
		{"removed definition in use", "definition group {\n\trelation member: user\n}=>; | group#member=>", []string{"group:g#member@user:x"}, schema.ErrRemovedInUse, "removes definition group"},
	}
	p, err := schema.Declarations("prev", prev)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := prev
			for _, r := range strings.Split(tt.next, ";") {
				old, repl, _ := strings.Cut(r, "=>")
				if !strings.Contains(text, old) {
					t.Fatalf("%q not in the schema", old)
				}
				text = strings.Replace(text, old, repl, 1)
			}
			n, err := schema.Declarations("next", text)
			if err != nil {
				t.Fatal(err)
			}
			err = schema.CheckChange(p, n, stored(tt.rels...))
			var ce *schema.ChangeError
			switch {
			case tt.kind == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.kind != nil && (!errors.Is(err, tt.kind) || !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.msg)):
				t.Fatalf("err = %v, want %v containing %q", err, tt.kind, tt.msg)
			}
		})
	}
	// An error reading the store is returned as it is.
	boom := errors.New("boom")
	n, _ := schema.Declarations("next", strings.Replace(prev, "relation banned: user", "", 1))
	err = schema.CheckChange(p, n, func(tuple.Filter) iter.Seq2[tuple.Relationship, error] {
		return func(yield func(tuple.Relationship, error) bool) { yield(tuple.Relationship{}, boom) }
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}
