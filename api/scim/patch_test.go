package scim

import (
	"encoding/json"
	"reflect"
	"testing"
)

const group = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
  "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
  "displayName": "Tour Guides",
  "members": [
    {"value": "2819c223-7f76-453a-919d-413861904646", "display": "Babs Jensen"},
    {"value": "902c246b-6245-4190-8e05-00816be7344a", "display": "Mandy Pepperidge"}
  ]
}`

const user = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
  "id": "2819c223-7f76-453a-919d-413861904646",
  "userName": "bjensen",
  "active": true,
  "name": {"givenName": "Barbara", "familyName": "Jensen"},
  "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
  "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood"},
                {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood"}]
}`

func ops(t *testing.T, s string) []PatchOp {
	t.Helper()
	var req PatchRequest
	if err := json.Unmarshal([]byte(s), &req); err != nil {
		t.Fatal(err)
	}
	return req.Operations
}

func TestApplyPatch(t *testing.T) {
	exts := []string{EnterpriseUserSchema}
	for _, tc := range []struct {
		name, core, start, patch string
		check                    func(t *testing.T, r Resource)
	}{
		{"RFC: add a member", GroupSchema, group,
			`{"Operations":[{"op":"add","path":"members","value":[{"display":"James Smith","value":"08e1d05d-121c-4561-8b96-473d93df9210"}]}]}`,
			func(t *testing.T, r Resource) {
				wantMembers(t, r, "2819c223-7f76-453a-919d-413861904646", "902c246b-6245-4190-8e05-00816be7344a", "08e1d05d-121c-4561-8b96-473d93df9210")
			}},
		{"RFC: add an existing member again changes nothing", GroupSchema, group,
			`{"Operations":[{"op":"add","path":"members","value":[{"value":"2819c223-7f76-453a-919d-413861904646","display":"Babs Jensen"}]}]}`,
			func(t *testing.T, r Resource) {
				wantMembers(t, r, "2819c223-7f76-453a-919d-413861904646", "902c246b-6245-4190-8e05-00816be7344a")
			}},
		{"RFC: remove all members", GroupSchema, group,
			`{"Operations":[{"op":"remove","path":"members"}]}`,
			func(t *testing.T, r Resource) { wantMembers(t, r) }},
		{"RFC: remove one member by filter", GroupSchema, group,
			`{"Operations":[{"op":"remove","path":"members[value eq \"2819c223-7f76-453a-919d-413861904646\"]"}]}`,
			func(t *testing.T, r Resource) { wantMembers(t, r, "902c246b-6245-4190-8e05-00816be7344a") }},
		{"RFC: remove then add", GroupSchema, group,
			`{"Operations":[{"op":"remove","path":"members[value eq \"2819c223-7f76-453a-919d-413861904646\"]"},
			               {"op":"add","path":"members","value":[{"value":"9d3a8b4f"}]}]}`,
			func(t *testing.T, r Resource) { wantMembers(t, r, "902c246b-6245-4190-8e05-00816be7344a", "9d3a8b4f") }},
		{"RFC: replace all members", GroupSchema, group,
			`{"Operations":[{"op":"replace","path":"members","value":[{"value":"a"},{"value":"b"}]}]}`,
			func(t *testing.T, r Resource) { wantMembers(t, r, "a", "b") }},
		{"RFC: add without a path", UserSchema, user,
			`{"Operations":[{"op":"add","value":{"emails":[{"value":"babs@jensen.org","type":"home"}],"nickname":"Babs"}}]}`,
			func(t *testing.T, r Resource) {
				want(t, r, "nickName", "Babs")
				if n := len(r["emails"].([]any)); n != 2 {
					t.Errorf("%d emails, want 2", n)
				}
			}},
		{"RFC: replace a value selected by a filter", UserSchema, user,
			`{"Operations":[{"op":"replace","path":"addresses[type eq \"work\"]","value":{"type":"work","streetAddress":"911 Universal City Plaza","locality":"Hollywood"}}]}`,
			func(t *testing.T, r Resource) {
				a := r["addresses"].([]any)
				if a[0].(map[string]any)["streetAddress"] != "911 Universal City Plaza" || a[1].(map[string]any)["streetAddress"] != "456 Hollywood Blvd" {
					t.Errorf("addresses = %v", a)
				}
			}},
		{"RFC: replace a sub-attribute of selected values", UserSchema, user,
			`{"Operations":[{"op":"replace","path":"addresses[type eq \"work\"].streetAddress","value":"1010 Broadway Ave"}]}`,
			func(t *testing.T, r Resource) {
				if got := r["addresses"].([]any)[0].(map[string]any)["streetAddress"]; got != "1010 Broadway Ave" {
					t.Errorf("work streetAddress = %v", got)
				}
			}},
		{"RFC: replace without a path", UserSchema, user,
			`{"Operations":[{"op":"replace","value":{"emails":[{"value":"bjensen@example.com","type":"work","primary":true},{"value":"babs@jensen.org","type":"home"}],"nickName":"Babs"}}]}`,
			func(t *testing.T, r Resource) { want(t, r, "nickName", "Babs") }},
		{"sub-attribute of a single complex attribute", UserSchema, user,
			`{"Operations":[{"op":"replace","path":"name.familyName","value":"Jensen-Smith"}]}`,
			func(t *testing.T, r Resource) { want(t, r["name"].(map[string]any), "familyName", "Jensen-Smith") }},
		{"Entra: Replace with a string boolean", UserSchema, user,
			`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
			func(t *testing.T, r Resource) { want(t, r, "active", false) }},
		{"Entra: active replaced without a path", UserSchema, user,
			`{"Operations":[{"op":"Replace","value":{"active":false}}]}`,
			func(t *testing.T, r Resource) { want(t, r, "active", false) }},
		{"Entra: attribute paths as keys of a path-less add", UserSchema, user,
			`{"Operations":[{"op":"Add","value":{"name.givenName":"Babs","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"Tours"}}]}`,
			func(t *testing.T, r Resource) {
				want(t, r["name"].(map[string]any), "givenName", "Babs")
				want(t, r[EnterpriseUserSchema].(map[string]any), "department", "Tours")
			}},
		{"Entra: a work email's value by filter", UserSchema, user,
			`{"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"babs@example.com"}]}`,
			func(t *testing.T, r Resource) {
				want(t, r["emails"].([]any)[0].(map[string]any), "value", "babs@example.com")
			}},
		{"Entra: members removed by a value list", GroupSchema, group,
			`{"Operations":[{"op":"Remove","path":"members","value":[{"value":"2819c223-7f76-453a-919d-413861904646"}]}]}`,
			func(t *testing.T, r Resource) { wantMembers(t, r, "902c246b-6245-4190-8e05-00816be7344a") }},
		{"enterprise extension object", UserSchema, user,
			`{"Operations":[{"op":"add","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Tours","manager":{"value":"26118915"}}}}]}`,
			func(t *testing.T, r Resource) {
				ext := r[EnterpriseUserSchema].(map[string]any)
				want(t, ext, "department", "Tours")
				want(t, ext["manager"].(map[string]any), "value", "26118915")
				if s := r["schemas"].([]any); len(s) != 2 {
					t.Errorf("schemas = %v, want the extension added", s)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := decode(t, tc.start)
			before := decode(t, tc.start)
			got, err := ApplyPatch(start, tc.core, exts, ops(t, tc.patch))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, got)
			if !reflect.DeepEqual(start, before) {
				t.Error("ApplyPatch changed its input")
			}
		})
	}
}

func TestApplyPatchErrors(t *testing.T) {
	exts := []string{EnterpriseUserSchema}
	for _, tc := range []struct {
		name, core, start, patch, scimType string
	}{
		{"remove without a path", GroupSchema, group, `{"Operations":[{"op":"remove"}]}`, "noTarget"},
		{"remove a member that is not there", GroupSchema, group, `{"Operations":[{"op":"remove","path":"members[value eq \"nobody\"]"}]}`, "noTarget"},
		{"Entra: remove a listed member that is not there", GroupSchema, group, `{"Operations":[{"op":"Remove","path":"members","value":[{"value":"nobody"}]}]}`, "noTarget"},
		{"replace a value no filter selects", UserSchema, user, `{"Operations":[{"op":"replace","path":"emails[type eq \"other\"].value","value":"x"}]}`, "noTarget"},
		{"unknown attribute", UserSchema, user, `{"Operations":[{"op":"replace","path":"shoeSize","value":"9"}]}`, "invalidPath"},
		{"unknown attribute in a path-less value", UserSchema, user, `{"Operations":[{"op":"add","value":{"shoeSize":"9"}}]}`, "invalidPath"},
		{"unknown sub-attribute", UserSchema, user, `{"Operations":[{"op":"add","path":"name","value":{"shoe":"9"}}]}`, "invalidValue"},
		{"bad path", UserSchema, user, `{"Operations":[{"op":"replace","path":"emails[type eq","value":"x"}]}`, "invalidPath"},
		{"read-only id", UserSchema, user, `{"Operations":[{"op":"replace","path":"id","value":"x"}]}`, "mutability"},
		{"read-only meta", UserSchema, user, `{"Operations":[{"op":"replace","path":"meta.version","value":"x"}]}`, "mutability"},
		{"not a boolean", UserSchema, user, `{"Operations":[{"op":"replace","path":"active","value":"maybe"}]}`, "invalidValue"},
		{"not a string", UserSchema, user, `{"Operations":[{"op":"replace","path":"userName","value":7}]}`, "invalidValue"},
		{"unknown op", UserSchema, user, `{"Operations":[{"op":"merge","path":"userName","value":"x"}]}`, "invalidSyntax"},
		{"no operations", UserSchema, user, `{"Operations":[]}`, "invalidValue"},
		{"value filter on a single attribute", UserSchema, user, `{"Operations":[{"op":"replace","path":"name[givenName eq \"x\"]","value":{}}]}`, "invalidPath"},
		{"sub-attribute of a multi-valued attribute without a filter", UserSchema, user, `{"Operations":[{"op":"replace","path":"emails.value","value":"x"}]}`, "invalidPath"},
		{"a failing second operation changes nothing", UserSchema, user,
			`{"Operations":[{"op":"replace","path":"userName","value":"changed"},{"op":"replace","path":"shoeSize","value":"9"}]}`, "invalidPath"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := decode(t, tc.start)
			before := decode(t, tc.start)
			got, err := ApplyPatch(start, tc.core, exts, ops(t, tc.patch))
			e := AsError(err)
			if err == nil || e.Status != 400 || e.ScimType != tc.scimType {
				t.Fatalf("err = %v, want 400 %s", err, tc.scimType)
			}
			if !reflect.DeepEqual(got, before) || !reflect.DeepEqual(start, before) {
				t.Error("a failed PATCH changed the resource")
			}
		})
	}
}

func want(t *testing.T, m map[string]any, key string, v any) {
	t.Helper()
	if got := m[key]; !reflect.DeepEqual(got, v) {
		t.Errorf("%s = %#v, want %#v", key, got, v)
	}
}

func wantMembers(t *testing.T, r Resource, ids ...string) {
	t.Helper()
	list, _ := r["members"].([]any)
	var got []string
	for _, m := range list {
		got = append(got, m.(map[string]any)["value"].(string))
	}
	if !reflect.DeepEqual(got, ids) && !(len(got) == 0 && len(ids) == 0) {
		t.Errorf("members = %v, want %v", got, ids)
	}
}

// FuzzApplyPatch: any PATCH body either applies or fails with a SCIM error
// and leaves the resource unchanged; it never panics.
func FuzzApplyPatch(f *testing.F) {
	for _, s := range []string{
		`{"Operations":[{"op":"add","path":"members","value":[{"value":"x"}]}]}`,
		`{"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
		`{"Operations":[{"op":"remove","path":"emails[type eq \"work\"].value"}]}`,
		`{"Operations":[{"op":"add","value":{"name.givenName":"B","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"T"}}}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req PatchRequest
		if json.Unmarshal([]byte(body), &req) != nil {
			return
		}
		var start, before Resource
		_ = json.Unmarshal([]byte(user), &start)
		_ = json.Unmarshal([]byte(user), &before)
		got, err := ApplyPatch(start, UserSchema, []string{EnterpriseUserSchema}, req.Operations)
		if !reflect.DeepEqual(start, before) {
			t.Fatal("ApplyPatch changed its input")
		}
		if err != nil {
			if e := AsError(err); e.Status != 400 && e.Status != 413 {
				t.Fatalf("error %v is not a client error", err)
			}
			if !reflect.DeepEqual(got, before) {
				t.Fatal("a failed PATCH returned a changed resource")
			}
		}
	})
}
