package validation

import (
	"fmt"
	"testing"
)

func TestMentioned(t *testing.T) {
	docs, err := Parse("m.yaml", []byte(`
schema: |-
  definition user {}
  definition group {
    relation member: user | group#member
  }
  definition doc {
    relation viewer: user | user:* | group#member
  }
relationships: |-
  doc:d1#viewer@group:g#member
  doc:d2#viewer@user:*
assertions:
  assertTrue:
    - doc:d3#viewer@user:ana
`))
	if err != nil {
		t.Fatal(err)
	}
	res, subj := docs[0].Mentioned()
	if got, want := fmt.Sprint(res), "[doc:d1 doc:d2 doc:d3 group:g user:ana]"; got != want {
		t.Errorf("resources = %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(subj), "[group:g group:g#member user:ana]"; got != want {
		t.Errorf("subjects = %s, want %s", got, want)
	}
}
