package schema_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/schema"
	"github.com/ambit-authz/ambit/tuple"
)

func TestValidateRelationship(t *testing.T) {
	const src = `
use expiration
caveat on_network(ip string) { ip == "10.0.0.1" }
definition user {}
definition group {
	relation member: user | group#member | user with on_network
	permission view = member
}
definition doc {
	relation reader: user:* | user with expiration
}
`
	full, err := schema.Compile("test.zed", src)
	if err != nil {
		t.Fatal(err)
	}
	decl, err := schema.Declarations("test.zed", src)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rel  string
		kind error  // nil = valid
		msg  string // part of the message
	}{
		{"group:lab#member@user:ana", nil, ""},
		{"group:lab#member@group:sub#member", nil, ""},
		{"group:lab#member@user:x[on_network]", nil, ""},
		{"doc:d#reader@user:*", nil, ""},
		{"doc:d#reader@user:x[expiration:2300-01-01T00:00:00Z]", nil, ""},
		{"nope:x#member@user:ana", schema.ErrUnknownType, `resource type "nope"`},
		{"group:lab#member@team:a", schema.ErrUnknownType, `subject type "team"`},
		{"group:lab#owner@user:ana", schema.ErrUnknownRelation, `no relation "owner"`},
		{"group:lab#view@user:ana", schema.ErrNotAllowed, "is a permission"},
		{"group:lab#member@doc:d", schema.ErrNotAllowed, "does not allow subjects of type doc"},
		{"group:lab#member@user:*", schema.ErrNotAllowed, "does not allow subjects of type user:*"},
		{"doc:d#reader@user:x", schema.ErrNotAllowed, "without a caveat and without expiration"},
		{"group:lab#member@user:ana[nosuch]", schema.ErrNotAllowed, `caveat "nosuch" is not defined`},
	}
	for _, s := range []*schema.Schema{full, decl} {
		for _, tt := range tests {
			err := s.ValidateRelationship(tuple.MustParse(tt.rel))
			var re *schema.RelationshipError
			switch {
			case tt.kind == nil && err != nil:
				t.Errorf("%s: unexpected error %v", tt.rel, err)
			case tt.kind != nil && (!errors.Is(err, tt.kind) || !errors.As(err, &re) || !strings.Contains(err.Error(), tt.msg)):
				t.Errorf("%s: err = %v, want %v containing %q", tt.rel, err, tt.kind, tt.msg)
			case tt.kind != nil && strings.Contains(err.Error(), tt.kind.Error()):
				t.Errorf("%s: %q repeats its kind's text", tt.rel, err)
			}
		}
	}
}
