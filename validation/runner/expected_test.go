package runner

import (
	"context"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/engine"
	"github.com/ambit-authz/ambit/validation"
)

// TestExpectedRelationsAreComplete: a subject listed under `validation:`
// that lacks the permission fails, and so does a subject holding it that the
// list leaves out; a complete, correct list passes.
func TestExpectedRelationsAreComplete(t *testing.T) {
	const base = `
schema: |-
  definition user {}
  definition doc {
    relation viewer: user | user:*
    relation banned: user
    permission view = viewer - banned
  }
relationships: |-
  doc:1#viewer@user:ana
  doc:1#viewer@user:bob
  doc:2#viewer@user:*
  doc:2#banned@user:mal
validation:
`
	for _, tt := range []struct {
		name, list string
		fails      []string
	}{
		{"complete", `  doc:1#view:
    - "[user:ana] is <doc:1#viewer>"
    - "[user:bob] is <doc:1#viewer>"
  doc:2#view:
    - "[user:* - {user:mal}] is <doc:2#viewer>"
`, nil},
		{"missing subject", `  doc:1#view:
    - "[user:ana] is <doc:1#viewer>"
`, []string{"validation doc:1#view: user:bob is not listed"}},
		{"missing wildcard", `  doc:2#view: []
`, []string{"validation doc:2#view: user:* is not listed"}},
		{"listed without permission", `  doc:1#view:
    - "[user:ana] is <doc:1#viewer>"
    - "[user:bob] is <doc:1#viewer>"
    - "[user:cat] is <doc:1#viewer>"
`, []string{"validation doc:1#view: [user:cat] is <doc:1#viewer>"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := validation.Parse("expected.yaml", []byte(base+tt.list))
			if err != nil {
				t.Fatal(err)
			}
			eng, err := engine.New(engine.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			rep, err := Run(context.Background(), eng, Memory{}, docs[0], Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range rep.Failures {
				got = append(got, f.What)
			}
			if strings.Join(got, "\n") != strings.Join(tt.fails, "\n") {
				t.Fatalf("failures:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.fails, "\n"))
			}
		})
	}
}
