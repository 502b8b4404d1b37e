package scim

import (
	"strings"
	"testing"

	"github.com/ambit-authz/ambit/tuple"
)

func texts(rs []tuple.Relationship) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return strings.Join(out, " ")
}

func TestDefaultMapping(t *testing.T) {
	m := DefaultMapping("lab")
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	active, err := m.User("u1", true)
	if err != nil {
		t.Fatal(err)
	}
	inactive, err := m.User("u1", false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := texts(active), "organization:lab#account@user:u1 group:all_users#direct_member@user:u1"; got != want {
		t.Errorf("active user: %s, want %s", got, want)
	}
	// Deactivating touches the deactivation and deletes nothing: every
	// other relationship stays (users are never deleted).
	touch, del := Diff(active, inactive)
	if texts(touch) != "organization:lab#deactivated@user:u1" || len(del) != 0 {
		t.Errorf("deactivate: touch %s, delete %s", texts(touch), texts(del))
	}
	touch, del = Diff(inactive, active)
	if len(touch) != 0 || texts(del) != "organization:lab#deactivated@user:u1" {
		t.Errorf("reactivate: touch %s, delete %s", texts(touch), texts(del))
	}

	g1, err := m.Group("g1", []Member{{ID: "u1"}, {ID: "u2"}})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := m.Group("g1", []Member{{ID: "u2"}, {ID: "eng", Group: true}})
	if err != nil {
		t.Fatal(err)
	}
	touch, del = Diff(g1, g2)
	if texts(touch) != "group:g1#direct_member@group:eng#member" || texts(del) != "group:g1#direct_member@user:u1" {
		t.Errorf("members changed: touch %s, delete %s", texts(touch), texts(del))
	}
	// Deleting a group removes all of its relationships.
	touch, del = Diff(g2, nil)
	if len(touch) != 0 || len(del) != len(g2) {
		t.Errorf("delete group: touch %s, delete %s", texts(touch), texts(del))
	}
	if _, err := m.User("bad id!", true); err == nil {
		t.Error("a user id ambit refuses was mapped")
	}
	if _, err := m.Group("g1", []Member{{ID: "a b"}}); err == nil {
		t.Error("a member id ambit refuses was mapped")
	}
}

func TestParseMapping(t *testing.T) {
	good := `
organization: acme
users:
  relationships: ["organization:{org}#member@user:{id}"]
  inactive: ["organization:{org}#suspended@user:{id}"]
groups:
  relationships: ["team:{id}#org@organization:{org}"]
  member: "team:{id}#member@{member}"
  user_member: "user:{id}"
  group_member: "team:{id}#member"
`
	m, err := ParseMapping([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := m.Group("t1", []Member{{ID: "t2", Group: true}})
	if err != nil || texts(rs) != "team:t1#org@organization:acme team:t1#member@team:t2#member" {
		t.Fatalf("group: %s %v", texts(rs), err)
	}
	for _, bad := range []string{
		strings.Replace(good, "organization: acme", "organization: acme\nextra: 1", 1),                   // unknown key
		strings.Replace(good, `"organization:{org}#member@user:{id}"`, `"organization:{org}#member"`, 1), // not a relationship
		strings.Replace(good, "organization: acme", "organization: 'a b'", 1),                            // bad organization id
		strings.Replace(good, `user_member: "user:{id}"`, `user_member: ""`, 1),                          // missing
		strings.Replace(good, `group_member: "team:{id}#member"`, `group_member: "team"`, 1),             // not a subject
	} {
		if _, err := ParseMapping([]byte(bad)); err == nil {
			t.Errorf("ParseMapping accepted:\n%s", bad)
		}
	}
}
