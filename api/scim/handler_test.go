package scim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// testStore is a Store whose relationships a test can see.
type testStore interface {
	Store
	has(rel string) bool
}

type client struct {
	t    *testing.T
	srv  *httptest.Server
	st   testStore
	base string
}

// stores are the Stores the handler's tests run over: the record store
// over in-memory records.
var stores = []struct {
	name string
	new  func() testStore
}{
	{"records", func() testStore { return newFakeRecordStore() }},
}

// forStores runs f over every Store.
func forStores(t *testing.T, f func(c *client)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) { f(newClientWith(t, s.new())) })
	}
}

func newClient(t *testing.T) *client { return newClientWith(t, newFakeRecordStore()) }

func newClientWith(t *testing.T, st testStore) *client {
	h := &Handler{Store: st, Mapping: DefaultMapping("lab"), Prefix: "/scim/v2"}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &client{t: t, srv: srv, st: st, base: srv.URL + "/scim/v2"}
}

// do sends a request and decodes the JSON answer.
func (c *client) do(method, path, body string, header ...string) (int, map[string]any, http.Header) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/scim+json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.srv.Client().Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			c.t.Fatalf("%s %s: not JSON: %s", method, path, data)
		}
	}
	return resp.StatusCode, out, resp.Header
}

func (c *client) want(status int, method, path, body string, header ...string) map[string]any {
	c.t.Helper()
	got, out, _ := c.do(method, path, body, header...)
	if got != status {
		c.t.Fatalf("%s %s = %d %v, want %d", method, path, got, out, status)
	}
	return out
}

func (c *client) wantError(status int, scimType, method, path, body string, header ...string) {
	c.t.Helper()
	got, out, _ := c.do(method, path, body, header...)
	if got != status || (scimType != "" && out["scimType"] != scimType) {
		c.t.Fatalf("%s %s = %d %v, want %d %s", method, path, got, out, status, scimType)
	}
	if s, _ := out["schemas"].([]any); len(s) != 1 || s[0] != ErrorSchema {
		c.t.Fatalf("%s %s: not a SCIM error body: %v", method, path, out)
	}
}

// RFC 7644 §3.3 (create), §3.4.1 (retrieve), §3.4.2 (filter), §3.5.1 (PUT),
// §3.5.2 (PATCH), §3.6 (DELETE), §3.14 (ETags), and what each writes.
func TestUserLifecycle(t *testing.T) {
	forStores(t, func(c *client) {
		t := c.t
		created := c.want(201, "POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bjensen","externalId":"bjensen",
		"name":{"formatted":"Ms. Barbara J Jensen III","familyName":"Jensen","givenName":"Barbara"},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Tour Operations","manager":{"value":"26118915"}}}`)
		id, _ := created["id"].(string)
		meta, _ := created["meta"].(map[string]any)
		if id == "" || meta["resourceType"] != "User" || meta["location"] != "/scim/v2/Users/"+id || meta["version"] == nil || created["active"] != true {
			t.Fatalf("created = %v", created)
		}
		if !c.st.has("organization:lab#account@user:"+id) || !c.st.has("group:all_users#direct_member@user:"+id) {
			t.Fatal("a created user is not an account and All users member")
		}
		c.wantError(409, "uniqueness", "POST", "/Users", `{"userName":"BJENSEN"}`) // Okta: 409 on a duplicate userName

		got := c.want(200, "GET", "/Users/"+id, "")
		if got["userName"] != "bjensen" || got["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].(map[string]any)["department"] != "Tour Operations" {
			t.Fatalf("GET = %v", got)
		}
		// Okta looks a user up by filter before creating one.
		list := c.want(200, "GET", `/Users?filter=userName%20eq%20%22bjensen%22`, "")
		if list["totalResults"] != 1.0 || len(list["Resources"].([]any)) != 1 {
			t.Fatalf("filter = %v", list)
		}
		list = c.want(200, "GET", `/Users?filter=userName%20eq%20%22nobody%22`, "")
		if list["totalResults"] != 0.0 {
			t.Fatalf("filter for nobody = %v", list)
		}
		list = c.want(200, "GET", `/Users?attributes=userName`, "")
		if r := list["Resources"].([]any)[0].(map[string]any); r["name"] != nil || r["userName"] != "bjensen" || r["id"] != id {
			t.Fatalf("attributes=userName = %v", r)
		}

		// PUT replaces; a stale If-Match is 412 and changes nothing.
		version := meta["version"].(string)
		c.want(200, "PUT", "/Users/"+id, `{"userName":"bjensen","displayName":"Babs","active":true}`, "If-Match", version)
		c.wantError(412, "", "PUT", "/Users/"+id, `{"userName":"bjensen","displayName":"Old"}`, "If-Match", version)
		if got := c.want(200, "GET", "/Users/"+id, ""); got["displayName"] != "Babs" || got["name"] != nil {
			t.Fatalf("after PUT = %v", got)
		}

		// Entra ID deactivates with PATCH "Replace" "False"; the relationship follows.
		c.want(200, "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`)
		if !c.st.has("organization:lab#deactivated@user:" + id) {
			t.Fatal("active false did not deactivate")
		}
		c.want(200, "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":true}}]}`)
		if c.st.has("organization:lab#deactivated@user:" + id) {
			t.Fatal("active true did not reactivate")
		}
		// A failing PATCH changes nothing.
		before := c.want(200, "GET", "/Users/"+id, "")
		c.wantError(400, "invalidPath", "PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"X"},{"op":"replace","path":"shoeSize","value":"9"}]}`)
		if after := c.want(200, "GET", "/Users/"+id, ""); after["displayName"] != before["displayName"] {
			t.Fatal("a failed PATCH changed the user")
		}

		// DELETE: gone from SCIM, deactivated in ambit (users are never deleted).
		c.want(204, "DELETE", "/Users/"+id, "")
		c.wantError(404, "", "GET", "/Users/"+id, "")
		if !c.st.has("organization:lab#deactivated@user:"+id) || !c.st.has("organization:lab#account@user:"+id) {
			t.Fatal("a deleted user is not kept deactivated")
		}
	})
}

func TestGroupMembers(t *testing.T) {
	forStores(t, func(c *client) {
		t := c.t
		var users []string
		for _, n := range []string{"ana", "bob", "cat"} {
			users = append(users, c.want(201, "POST", "/Users", `{"userName":"`+n+`"}`)["id"].(string))
		}
		team := c.want(201, "POST", "/Groups", `{"displayName":"Team","members":[{"value":"`+users[0]+`"}]}`)["id"].(string)
		g := c.want(201, "POST", "/Groups", `{"displayName":"Tour Guides","members":[{"value":"`+users[0]+`","type":"User"},{"value":"`+team+`"}]}`)
		id := g["id"].(string)
		if !c.st.has("group:"+id+"#direct_member@user:"+users[0]) || !c.st.has("group:"+id+"#direct_member@group:"+team+"#member") ||
			!c.st.has("group:"+id+"#org@organization:lab") {
			t.Fatal("group relationships missing")
		}
		// Add and remove by PATCH (RFC 7644 §3.5.2.1, §3.5.2.2).
		c.want(204, "PATCH", "/Groups/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"`+users[1]+`"}]}]}`)
		c.want(204, "PATCH", "/Groups/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"`+users[0]+`\"]"}]}`)
		if c.st.has("group:"+id+"#direct_member@user:"+users[0]) || !c.st.has("group:"+id+"#direct_member@user:"+users[1]) {
			t.Fatal("PATCH members did not follow")
		}
		// A PATCH on a missing member is noTarget and changes nothing.
		c.wantError(400, "noTarget", "PATCH", "/Groups/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"nobody\"]"}]}`)
		// Okta replaces the members with a PUT of the whole group.
		c.want(200, "PUT", "/Groups/"+id, `{"displayName":"Tour Guides","members":[{"value":"`+users[2]+`"}]}`)
		if c.st.has("group:"+id+"#direct_member@user:"+users[1]) || !c.st.has("group:"+id+"#direct_member@user:"+users[2]) || c.st.has("group:"+id+"#direct_member@group:"+team+"#member") {
			t.Fatal("PUT members did not follow")
		}
		c.wantError(400, "invalidValue", "PUT", "/Groups/"+id, `{"displayName":"Tour Guides","members":[{"value":"no-such-id"}]}`)
		// DELETE removes the group's relationships.
		c.want(204, "DELETE", "/Groups/"+id, "")
		if c.st.has("group:"+id+"#direct_member@user:"+users[2]) || c.st.has("group:"+id+"#org@organization:lab") {
			t.Fatal("a deleted group kept relationships")
		}
	})
}

func TestDiscoveryAndErrors(t *testing.T) {
	forStores(t, func(c *client) {
		t := c.t
		spc := c.want(200, "GET", "/ServiceProviderConfig", "")
		if spc["patch"].(map[string]any)["supported"] != true || spc["etag"].(map[string]any)["supported"] != true {
			t.Fatalf("ServiceProviderConfig = %v", spc)
		}
		if rt := c.want(200, "GET", "/ResourceTypes", ""); rt["totalResults"] != 2.0 {
			t.Fatalf("ResourceTypes = %v", rt)
		}
		c.want(200, "GET", "/ResourceTypes/User", "")
		s := c.want(200, "GET", "/Schemas/"+UserSchema, "")
		if s["id"] != UserSchema || len(s["attributes"].([]any)) < 10 {
			t.Fatalf("Schemas/User = %v", s)
		}
		c.wantError(404, "", "GET", "/Schemas/urn:nope", "")
		c.wantError(400, "invalidFilter", "GET", `/Users?filter=userName%20eq`, "")
		c.wantError(400, "invalidSyntax", "POST", "/Users", `not json`)
		c.wantError(400, "invalidValue", "POST", "/Users", `{"userName":"x","shoeSize":9}`)
		c.wantError(400, "invalidValue", "POST", "/Users", `{"displayName":"no userName"}`)
		c.wantError(400, "invalidValue", "POST", "/Users", `{"userName":"x","active":"perhaps"}`)
		c.wantError(413, "", "POST", "/Users", `{"userName":"`+strings.Repeat("x", DefaultMaxBody)+`"}`)
		c.wantError(404, "", "GET", "/Users/nope", "")
		c.wantError(404, "", "GET", "/Widgets", "")
		id := c.want(201, "POST", "/Users", `{"userName":"x"}`)["id"].(string)
		c.wantError(400, "invalidSyntax", "PATCH", "/Users/"+id, `{"Operations":[{"op":"replace","path":"active","value":false}]}`) // no PatchOp schema
	})
}
