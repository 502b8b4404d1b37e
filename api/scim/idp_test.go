package scim_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// A fixture step: one request an identity provider sends and what it must
// get back.
type step struct {
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	Body     json.RawMessage `json:"body"`
	Status   int             `json:"status"`
	ScimType string          `json:"scimType"`
	Save     string          `json:"save"`  // remember the new resource's id as {{Save}}
	Total    *int            `json:"total"` // a list's totalResults
}

type fixture map[string]json.RawMessage

func loadFixture(t *testing.T, name string) fixture {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

// replay sends a phase's requests in order, substituting saved ids, and
// asserts each answer.
func (l *live) replay(f fixture, phase string, ids map[string]string) {
	l.t.Helper()
	var steps []step
	if err := json.Unmarshal(f[phase], &steps); err != nil {
		l.t.Fatalf("phase %s: %v", phase, err)
	}
	fill := func(s string) string {
		for k, v := range ids {
			s = strings.ReplaceAll(s, "{{"+k+"}}", v)
		}
		if strings.Contains(s, "{{") {
			l.t.Fatalf("phase %s: unresolved placeholder in %s", phase, s)
		}
		return s
	}
	for i, s := range steps {
		body := ""
		if len(s.Body) > 0 {
			body = fill(string(s.Body))
		}
		path := fill(s.Path)
		var r reply
		if s.Status >= 400 {
			r = l.wantError(s.Status, s.ScimType, s.Method, path, body)
		} else {
			r = l.want(s.Status, s.Method, path, body)
		}
		if s.Total != nil && r.body["totalResults"] != float64(*s.Total) {
			l.t.Errorf("%s step %d %s %s: totalResults %v, want %d", phase, i, s.Method, path, r.body["totalResults"], *s.Total)
		}
		if s.Save != "" {
			ids[s.Save] = str(r.body, "id")
		}
	}
}

// allUsersComplete asserts that every provisioned user is in the
// organization's All users group (as a relationship, deactivated or not)
// and that exactly the active ones are its members.
func (l *live) allUsersComplete(active map[string]bool) {
	l.t.Helper()
	for id, a := range active {
		if !l.has("group:all_users#direct_member@user:" + id) {
			l.t.Errorf("user %s is missing from All users", id)
		}
		if got := l.check("group:all_users", "member", "user:"+id); got != a {
			l.t.Errorf("group:all_users#member@user:%s = %v, want %v", id, got, a)
		}
	}
}

// TestOktaReplay replays the Okta connector's requests and checks, with
// CheckPermission, what they mean for access.
func TestOktaReplay(t *testing.T) {
	l := startLive(t)
	f := loadFixture(t, "okta.json")
	ids := map[string]string{}
	l.replay(f, "provision", ids)
	alice, bob, carol, research := "user:"+ids["alice"], "user:"+ids["bob"], "user:"+ids["carol"], ids["research"]
	// The application shares data with the group and with alice alone.
	l.write(1, "dataset:shared#org@organization:lab", "dataset:shared#reader@group:"+research+"#member",
		"dataset:own#org@organization:lab", "dataset:own#owner@"+alice)
	everything := []string{"dataset:shared", "read", "dataset:everyone", "read", "dataset:own", "edit", "group:" + research, "member", "organization:lab", "active"}
	l.wantAccess(alice, true, everything...)
	l.wantAccess(bob, true, "dataset:shared", "read", "dataset:everyone", "read")
	l.wantAccess(carol, false, "dataset:shared", "read")
	l.wantAccess(carol, true, "dataset:everyone", "read")
	l.allUsersComplete(map[string]bool{ids["alice"]: true, ids["bob"]: true, ids["carol"]: true})

	// Deactivated: no access anywhere, every relationship kept.
	l.replay(f, "deactivate", ids)
	l.wantAccess(alice, false, everything...)
	for _, rel := range []string{"group:" + research + "#direct_member@" + alice, "dataset:own#owner@" + alice, "group:all_users#direct_member@" + alice} {
		if !l.has(rel) {
			t.Errorf("deactivation removed %s", rel)
		}
	}
	l.allUsersComplete(map[string]bool{ids["alice"]: false, ids["bob"]: true, ids["carol"]: true})
	// Reactivated: everything back.
	l.replay(f, "reactivate", ids)
	l.wantAccess(alice, true, everything...)
	l.allUsersComplete(map[string]bool{ids["alice"]: true, ids["bob"]: true, ids["carol"]: true})

	// Okta's PUT of the group (bob out, carol in), a rename, an add and a
	// remove of bob.
	l.replay(f, "regroup", ids)
	l.wantAccess(bob, false, "dataset:shared", "read", "group:"+research, "member")
	l.wantAccess(carol, true, "dataset:shared", "read", "group:"+research, "member")
	l.wantAccess(alice, true, "dataset:shared", "read")
	if g := l.want(200, "GET", "/Groups/"+research, "").body; str(g, "displayName") != "Research Team" || len(g["members"].([]any)) != 2 {
		t.Errorf("group after regroup = %v", g)
	}

	// Deleting the group revokes what was shared with it, and nothing else.
	l.replay(f, "delete", ids)
	l.wantAccess(alice, false, "dataset:shared", "read")
	l.wantAccess(carol, false, "dataset:shared", "read")
	l.wantAccess(alice, true, "dataset:own", "edit", "dataset:everyone", "read")
	l.allUsersComplete(map[string]bool{ids["alice"]: true, ids["bob"]: true, ids["carol"]: true})
}

// TestEntraReplay replays Microsoft Entra ID's requests, quirks included,
// and checks what they mean for access.
func TestEntraReplay(t *testing.T) {
	l := startLive(t)
	f := loadFixture(t, "entra.json")
	ids := map[string]string{}
	l.replay(f, "provision", ids)
	dana, eli, seq := "user:"+ids["dana"], "user:"+ids["eli"], ids["seq"]
	u := l.want(200, "GET", "/Users/"+ids["dana"], "").body
	ext, _ := u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].(map[string]any)
	if str(u, "name", "familyName") != "Diaz-Ng" || str(ext, "department") != "Genomics" || str(ext, "manager", "value") != ids["eli"] {
		t.Errorf("dana after Entra's PATCH = %v", u)
	}
	if es := u["emails"].([]any); len(es) != 1 || str(es[0].(map[string]any), "value") != "dana.diaz@contoso.com" {
		t.Errorf("dana's emails = %v", u["emails"])
	}
	l.write(1, "dataset:genome#org@organization:lab", "dataset:genome#reader@group:"+seq+"#member",
		"study:s1#org@organization:lab", "study:s1#owner@"+dana)
	everything := []string{"dataset:genome", "read", "dataset:everyone", "read", "study:s1", "browse", "group:" + seq, "member"}
	l.wantAccess(dana, true, everything...)
	l.wantAccess(eli, false, "dataset:genome", "read")
	l.wantAccess(eli, true, "dataset:everyone", "read")

	// "Replace" active "False" deactivates; "True" reactivates.
	l.replay(f, "deactivate", ids)
	if u := l.want(200, "GET", "/Users/"+ids["dana"], "").body; u["active"] != false {
		t.Errorf("active after Replace False = %v", u["active"])
	}
	l.wantAccess(dana, false, everything...)
	l.allUsersComplete(map[string]bool{ids["dana"]: false, ids["eli"]: true})
	l.replay(f, "reactivate", ids)
	l.wantAccess(dana, true, everything...)
	l.allUsersComplete(map[string]bool{ids["dana"]: true, ids["eli"]: true})

	// Remove dana and add eli in one PATCH: both or neither.
	l.replay(f, "regroup", ids)
	l.wantAccess(dana, false, "dataset:genome", "read")
	l.wantAccess(eli, true, "dataset:genome", "read")
	l.wantAccess(dana, true, "study:s1", "browse")

	// Entra disables (active replaced without a path, "False"), then
	// deletes: eli is deactivated for good, relationships kept.
	l.replay(f, "delete", ids)
	l.wantAccess(eli, false, "dataset:everyone", "read", "organization:lab", "active")
	if !l.has("organization:lab#deactivated@"+eli) || !l.has("group:all_users#direct_member@"+eli) {
		t.Error("a deleted user is not kept, deactivated")
	}
	l.allUsersComplete(map[string]bool{ids["dana"]: true, ids["eli"]: false})
	l.wantAccess(dana, false, "dataset:genome", "read") // the group is gone
}
