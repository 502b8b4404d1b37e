package scim_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The request/response examples of RFC 7644 §3.3–3.7, §3.12 and §3.14 and
// the schema examples of RFC 7643 (§8.2 full user with the enterprise
// extension, §8.4 group), run against a live server.

// bjensen is RFC 7643 §8.2's full user, with the enterprise extension
// (§8.3); userName and the ids of the example are what the tests vary.
func bjensen(userName string) string {
	return `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "externalId": "701984",
  "userName": "` + userName + `",
  "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara", "middleName": "Jane",
    "honorificPrefix": "Ms.", "honorificSuffix": "III"},
  "displayName": "Babs Jensen",
  "nickName": "Babs",
  "profileUrl": "https://login.example.com/bjensen",
  "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "babs@jensen.org", "type": "home"}],
  "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood", "region": "CA",
    "postalCode": "91608", "country": "USA", "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA", "primary": true},
    {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood", "region": "CA", "postalCode": "91608",
    "country": "USA", "formatted": "456 Hollywood Blvd\nHollywood, CA 91608 USA"}],
  "phoneNumbers": [{"value": "555-555-5555", "type": "work"}, {"value": "555-555-4444", "type": "mobile"}],
  "ims": [{"value": "someaimhandle", "type": "aim"}],
  "photos": [{"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"}],
  "userType": "Employee",
  "title": "Tour Guide",
  "preferredLanguage": "en-US",
  "locale": "en-US",
  "timezone": "America/Los_Angeles",
  "active": true,
  "password": "t1meMa$heen",
  "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"}],
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984", "costCenter": "4130",
    "organization": "Universal Studios", "division": "Theme Park", "department": "Tour Operations",
    "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}}
}`
}

func q(s string) string { return url.QueryEscape(s) }

func ids(t *testing.T, r reply) []string {
	t.Helper()
	var out []string
	list, _ := r.body["Resources"].([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		out = append(out, str(m, "id"))
	}
	if n, _ := r.body["totalResults"].(float64); int(n) < len(out) {
		t.Fatalf("totalResults %v < %d resources", r.body["totalResults"], len(out))
	}
	return out
}

func sameIDs(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func TestRFC7644Users(t *testing.T) {
	l := startLive(t)

	// §3.3: POST creates; 201 with the resource, Location and an ETag equal
	// to meta.version; server-owned attributes (id, meta) are the server's.
	r := l.want(201, "POST", "/Users", bjensen("bjensen"))
	u := r.body
	id := str(u, "id")
	if id == "" || r.header.Get("Location") != "/scim/v2/Users/"+id || str(u, "meta", "location") != "/scim/v2/Users/"+id ||
		str(u, "meta", "resourceType") != "User" || r.header.Get("ETag") == "" || r.header.Get("ETag") != str(u, "meta", "version") ||
		str(u, "meta", "created") == "" || str(u, "meta", "created") != str(u, "meta", "lastModified") {
		t.Fatalf("created user: %s headers %v", r.raw, r.header)
	}
	if u["password"] != nil || strings.Contains(r.raw, "t1meMa$heen") {
		t.Error("the password is returned (RFC 7643 §4.1.1: returned never)")
	}
	if str(u, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "department") != "Tour Operations" || str(u, "name", "givenName") != "Barbara" {
		t.Errorf("attributes not kept as given: %s", r.raw)
	}
	// The client's id and meta are ignored (§3.3).
	other := l.want(201, "POST", "/Users", `{"userName":"mine","id":"client-chosen","meta":{"version":"W/\"99\""}}`).body
	if str(other, "id") == "client-chosen" || str(other, "meta", "version") == `W/"99"` {
		t.Errorf("client-set id/meta kept: %v", other)
	}
	// §3.3: a duplicate userName is 409 uniqueness (userName is not case-exact).
	before := l.revision()
	l.wantError(409, "uniqueness", "POST", "/Users", bjensen("BJensen"))
	if l.revision() != before {
		t.Error("a refused duplicate proposed a write")
	}

	// §3.4.1: GET by id, with the ETag (§3.14).
	g := l.want(200, "GET", "/Users/"+id, "")
	if g.header.Get("ETag") != str(u, "meta", "version") || str(g.body, "userName") != "bjensen" || str(g.body, "meta", "version") != str(u, "meta", "version") {
		t.Fatalf("GET = %s %v", g.raw, g.header)
	}
	// attributes / excludedAttributes (§3.4.2.5): id and schemas always.
	g = l.want(200, "GET", "/Users/"+id+"?attributes=userName,name.familyName", "")
	if str(g.body, "userName") != "bjensen" || str(g.body, "name", "familyName") != "Jensen" || str(g.body, "name", "givenName") != "" ||
		g.body["emails"] != nil || str(g.body, "id") != id || g.body["schemas"] == nil {
		t.Errorf("attributes = %s", g.raw)
	}
	g = l.want(200, "GET", "/Users/"+id+"?excludedAttributes=emails,addresses", "")
	if g.body["emails"] != nil || g.body["addresses"] != nil || str(g.body, "userName") != "bjensen" {
		t.Errorf("excludedAttributes = %s", g.raw)
	}
	l.wantError(404, "", "GET", "/Users/2819c223-7f76-453a-919d-413861904646", "")

	// More users for the filter, sort and paging examples.
	jsmith := l.want(201, "POST", "/Users", `{"userName":"jsmith","name":{"familyName":"O'Malley","givenName":"John"},"userType":"Intern",
		"emails":[{"value":"jsmith@example.org","type":"work"}]}`).body
	jane := l.want(201, "POST", "/Users", `{"userName":"Jane","title":"Manager","userType":"Employee","emails":[{"value":"jane@other.net","type":"home"}]}`).body
	all := []string{id, str(other, "id"), str(jsmith, "id"), str(jane, "id")}

	// §3.4.2.2: the filter examples.
	filters := []struct {
		filter string
		want   []string
	}{
		{`userName eq "bjensen"`, []string{id}},
		{`userName Eq "BJENSEN"`, []string{id}}, // operators and non-case-exact values ignore case
		{`name.familyName co "O'Malley"`, []string{str(jsmith, "id")}},
		{`userName sw "J"`, []string{str(jsmith, "id"), str(jane, "id")}},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"`, []string{str(jsmith, "id"), str(jane, "id")}},
		{`title pr`, []string{id, str(jane, "id")}},
		{`meta.lastModified gt "2011-05-13T04:42:34Z"`, all},
		{`meta.lastModified lt "2011-05-13T04:42:34Z"`, nil},
		{`title pr and userType eq "Employee"`, []string{id, str(jane, "id")}},
		{`title pr or userType eq "Intern"`, []string{id, str(jsmith, "id"), str(jane, "id")}},
		{`schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`, []string{id}},
		{`userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")`, []string{id}},
		{`userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")`, []string{str(other, "id")}},
		{`userType eq "Employee" and (emails.type eq "work")`, []string{id}},
		{`userType eq "Employee" and emails[type eq "work" and value co "@example.com"]`, []string{id}},
		{`emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`, []string{id}},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Tour Operations"`, []string{id}},
		{`externalId eq "701984"`, []string{id}},
		{`id eq "` + id + `"`, []string{id}},
	}
	for _, f := range filters {
		r := l.want(200, "GET", "/Users?sortBy=id&filter="+q(f.filter), "")
		got := ids(t, r)
		want := sortedCopy(f.want)
		if !sameIDs(got, want...) || r.body["totalResults"] != float64(len(want)) {
			t.Errorf("filter %s = %v (total %v), want %v", f.filter, got, r.body["totalResults"], want)
		}
		if s, _ := r.body["schemas"].([]any); len(s) != 1 || s[0] != "urn:ietf:params:scim:api:messages:2.0:ListResponse" {
			t.Errorf("filter %s: not a ListResponse: %s", f.filter, r.raw)
		}
	}

	// §3.4.2.3 sorting, §3.4.2.4 paging.
	r = l.want(200, "GET", "/Users?sortBy=userName&sortOrder=descending", "")
	if got := ids(t, r); !sameIDs(got, str(other, "id"), str(jsmith, "id"), str(jane, "id"), id) {
		t.Errorf("sortBy=userName descending = %v", got)
	}
	r = l.want(200, "GET", "/Users?sortBy=userName&startIndex=2&count=2", "")
	if got := ids(t, r); !sameIDs(got, str(jane, "id"), str(jsmith, "id")) || r.body["totalResults"] != 4.0 || r.body["startIndex"] != 2.0 || r.body["itemsPerPage"] != 2.0 {
		t.Errorf("page 2 = %v %s", got, r.raw)
	}
	r = l.want(200, "GET", "/Users?count=0", "")
	if r.body["totalResults"] != 4.0 || r.body["itemsPerPage"] != 0.0 {
		t.Errorf("count=0 = %s", r.raw)
	}
	r = l.want(200, "GET", "/Users?startIndex=10", "")
	if r.body["totalResults"] != 4.0 || len(ids(t, r)) != 0 {
		t.Errorf("startIndex past the end = %s", r.raw)
	}

	// §3.4.3: POST .search.
	r = l.want(200, "POST", "/Users/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
		"attributes":["displayName","userName"],"filter":"displayName sw \"Babs\"","startIndex":1,"count":10}`)
	if got := ids(t, r); !sameIDs(got, id) {
		t.Errorf(".search = %s", r.raw)
	}
	if res := r.body["Resources"].([]any)[0].(map[string]any); res["emails"] != nil || res["displayName"] != "Babs Jensen" {
		t.Errorf(".search attributes = %v", res)
	}

	// §3.5.1: PUT replaces; what is left out is cleared; If-Match with the
	// current version succeeds and bumps it; a stale one is 412 (§3.14).
	v1 := str(u, "meta", "version")
	r = l.want(200, "PUT", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bjensen","externalId":"bjensen",
		"name":{"formatted":"Ms. Barbara J Jensen III","familyName":"Jensen","givenName":"Barbara","middleName":"Jane"},
		"emails":[{"value":"bjensen@example.com"},{"value":"babs@jensen.org"}]}`, "If-Match", v1)
	v2 := str(r.body, "meta", "version")
	if v2 == v1 || r.header.Get("ETag") != v2 || r.body["title"] != nil || str(r.body, "meta", "created") != str(u, "meta", "created") || r.body["active"] != true {
		t.Errorf("PUT = %s", r.raw)
	}
	before = l.revision()
	l.wantError(412, "", "PUT", "/Users/"+id, `{"userName":"bjensen","title":"stale"}`, "If-Match", v1)
	l.wantError(412, "", "PATCH", "/Users/"+id, patch(`[{"op":"replace","path":"title","value":"stale"}]`), "If-Match", v1)
	l.wantError(412, "", "DELETE", "/Users/"+id, "", "If-Match", v1)
	if l.revision() != before {
		t.Error("a stale If-Match proposed a write")
	}
	if got := l.want(200, "GET", "/Users/"+id, "").body; got["title"] != nil {
		t.Errorf("a stale write changed the user: %v", got)
	}
	// PUT renaming to a taken userName is 409 and leaves both users.
	l.wantError(409, "uniqueness", "PUT", "/Users/"+id, `{"userName":"JSMITH"}`)
	if got := l.want(200, "GET", "/Users/"+id, "").body; str(got, "userName") != "bjensen" {
		t.Errorf("a refused rename changed the user: %v", got)
	}
	// Renaming frees the old userName.
	l.want(200, "PUT", "/Users/"+str(jane, "id"), `{"userName":"jane.doe","title":"Manager","userType":"Employee"}`)
	l.want(201, "POST", "/Users", `{"userName":"Jane"}`)

	// §3.5.2.1 add without a path, §3.5.2.3 replace with a value filter and
	// a sub-attribute, §3.5.2.2 remove with a filter.
	r = l.want(200, "PATCH", "/Users/"+id, patch(`[{"op":"add","value":{"emails":[{"value":"babs@jensen.org","type":"home"}],"nickName":"Babs"}}]`))
	if r.body["nickName"] != "Babs" || len(r.body["emails"].([]any)) != 3 {
		t.Errorf("add without path = %s", r.raw)
	}
	l.want(200, "PATCH", "/Users/"+id, patch(`[{"op":"add","path":"addresses","value":[{"type":"work","streetAddress":"911 Universal City Plaza","locality":"Hollywood"}]}]`))
	r = l.want(200, "PATCH", "/Users/"+id, patch(`[{"op":"replace","path":"addresses[type eq \"work\"].streetAddress","value":"1010 Broadway Ave"}]`))
	if a := r.body["addresses"].([]any)[0].(map[string]any); a["streetAddress"] != "1010 Broadway Ave" || a["locality"] != "Hollywood" {
		t.Errorf("replace a filtered sub-attribute = %v", a)
	}
	r = l.want(200, "PATCH", "/Users/"+id, patch(`[{"op":"remove","path":"emails[type eq \"home\"]"}]`))
	if es := r.body["emails"].([]any); len(es) != 2 {
		t.Errorf("remove emails[type eq home] = %v", es) // the two of the PUT have no type
	}
	r = l.want(200, "PATCH", "/Users/"+id, patch(`[{"op":"replace","value":{"nickName":"B","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"Sales"}}]`))
	if r.body["nickName"] != "B" || str(r.body, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "department") != "Sales" {
		t.Errorf("replace without path, extension attribute = %s", r.raw)
	}

	// §3.6: DELETE is 204, then 404; users are deactivated, never deleted.
	l.want(204, "DELETE", "/Users/"+id, "")
	l.wantError(404, "", "GET", "/Users/"+id, "")
	l.wantError(404, "", "DELETE", "/Users/"+id, "")
	if !l.has("organization:lab#deactivated@user:"+id) || !l.has("organization:lab#account@user:"+id) {
		t.Error("a deleted user is not kept deactivated")
	}
	// The userName is free again (a new user, a new id).
	if nid := str(l.want(201, "POST", "/Users", `{"userName":"bjensen"}`).body, "id"); nid == id {
		t.Error("a new user got the deleted user's id")
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestRFC7644Groups(t *testing.T) {
	l := startLive(t)
	var users []string
	for _, n := range []string{"bjensen", "jsmith", "jdoe"} {
		users = append(users, str(l.want(201, "POST", "/Users", `{"userName":"`+n+`","displayName":"`+n+`"}`).body, "id"))
	}
	// RFC 7643 §8.4's group, its members by our ids.
	r := l.want(201, "POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Tour Guides",
		"members":[{"value":"`+users[0]+`","$ref":"https://example.com/v2/Users/`+users[0]+`","display":"Babs Jensen"},
		{"value":"`+users[1]+`","$ref":"https://example.com/v2/Users/`+users[1]+`","display":"Mandy Pepperidge"}]}`)
	gid := str(r.body, "id")
	if str(r.body, "meta", "resourceType") != "Group" || r.header.Get("Location") != "/scim/v2/Groups/"+gid || len(r.body["members"].([]any)) != 2 {
		t.Fatalf("created group = %s", r.raw)
	}
	for _, u := range users[:2] {
		if !l.has("group:" + gid + "#direct_member@user:" + u) {
			t.Errorf("member %s not written", u)
		}
	}
	l.want(201, "POST", "/Groups", `{"displayName":"Employees"}`)
	r = l.want(200, "GET", "/Groups?filter="+q(`displayName eq "Tour Guides"`)+"&excludedAttributes=members", "")
	if got := ids(t, r); !sameIDs(got, gid) || r.body["Resources"].([]any)[0].(map[string]any)["members"] != nil {
		t.Errorf("group filter = %s", r.raw)
	}
	r = l.want(200, "GET", "/Groups?filter="+q(`members[value eq "`+users[1]+`"]`), "")
	if got := ids(t, r); !sameIDs(got, gid) {
		t.Errorf("members[value eq] = %v", got)
	}

	// §3.5.2.1: add a member.
	// A group's PATCH answers 204 (§3.5.2 allows it): its members are read
	// only with a GET.
	r = l.want(204, "PATCH", "/Groups/"+gid, patch(`[{"op":"add","path":"members","value":[{"display":"jdoe","$ref":"https://example.com/v2/Users/`+users[2]+`","value":"`+users[2]+`"}]}]`))
	if r.header.Get("ETag") == "" || r.raw != "" {
		t.Errorf("a group's PATCH answers %v %q, want an ETag and no body", r.header, r.raw)
	}
	r = l.want(200, "GET", "/Groups/"+gid, "")
	if len(r.body["members"].([]any)) != 3 || !l.has("group:"+gid+"#direct_member@user:"+users[2]) {
		t.Errorf("add member = %s", r.raw)
	}
	// Adding a member twice keeps one (values are compared, §3.5.2.1).
	l.want(204, "PATCH", "/Groups/"+gid, patch(`[{"op":"add","path":"members","value":[{"value":"`+users[2]+`"}]}]`))
	if r = l.want(200, "GET", "/Groups/"+gid, ""); len(r.body["members"].([]any)) != 3 {
		t.Errorf("a member added twice = %s", r.raw)
	}
	// §3.5.2.2: remove one member by a value filter.
	l.want(204, "PATCH", "/Groups/"+gid, patch(`[{"op":"remove","path":"members[value eq \"`+users[0]+`\"]"}]`))
	if l.has("group:" + gid + "#direct_member@user:" + users[0]) {
		t.Error("removed member still written")
	}
	// §3.5.2.2: remove and add in one request, both or neither.
	before := l.revision()
	l.wantError(400, "noTarget", "PATCH", "/Groups/"+gid, patch(`[{"op":"add","path":"members","value":[{"value":"`+users[0]+`"}]},
		{"op":"remove","path":"members[value eq \"no-such-member\"]"}]`))
	if l.revision() != before || l.has("group:"+gid+"#direct_member@user:"+users[0]) {
		t.Error("a failing PATCH changed something")
	}
	l.want(204, "PATCH", "/Groups/"+gid, patch(`[{"op":"remove","path":"members[value eq \"`+users[1]+`\"]"},{"op":"add","path":"members","value":[{"value":"`+users[0]+`"}]}]`))
	if l.has("group:"+gid+"#direct_member@user:"+users[1]) || !l.has("group:"+gid+"#direct_member@user:"+users[0]) {
		t.Error("remove+add did not both apply")
	}
	// §3.5.2.3: replace all members.
	l.want(204, "PATCH", "/Groups/"+gid, patch(`[{"op":"replace","path":"members","value":[{"value":"`+users[1]+`"}]}]`))
	if r = l.want(200, "GET", "/Groups/"+gid, ""); len(r.body["members"].([]any)) != 1 || !l.has("group:"+gid+"#direct_member@user:"+users[1]) || l.has("group:"+gid+"#direct_member@user:"+users[0]) {
		t.Errorf("replace members = %s", r.raw)
	}
	// §3.5.2.2: remove all members.
	l.want(204, "PATCH", "/Groups/"+gid, patch(`[{"op":"remove","path":"members"}]`))
	if r = l.want(200, "GET", "/Groups/"+gid, ""); r.body["members"] != nil && len(r.body["members"].([]any)) != 0 || l.has("group:"+gid+"#direct_member@user:"+users[1]) {
		t.Errorf("remove all members = %s", r.raw)
	}
	// A nested group: a member that is a group.
	sub := str(l.want(201, "POST", "/Groups", `{"displayName":"Sub","members":[{"value":"`+users[2]+`"}]}`).body, "id")
	l.want(204, "PATCH", "/Groups/"+gid, patch(`[{"op":"add","path":"members","value":[{"value":"`+sub+`","type":"Group"}]}]`))
	if !l.has("group:" + gid + "#direct_member@group:" + sub + "#member") {
		t.Error("group member not written as group#member")
	}
	// §3.6: DELETE removes the group and every relationship it implied.
	l.want(204, "DELETE", "/Groups/"+gid, "")
	l.wantError(404, "", "GET", "/Groups/"+gid, "")
	for _, rel := range []string{"group:" + gid + "#org@organization:lab", "group:" + gid + "#direct_member@group:" + sub + "#member"} {
		if l.has(rel) {
			t.Errorf("%s kept after DELETE", rel)
		}
	}
}

// TestRFC7644Discovery: §4 ServiceProviderConfig, ResourceTypes, Schemas,
// and RFC 7643 §8.5–8.7's shape of them.
func TestRFC7644Discovery(t *testing.T) {
	l := startLive(t)
	r := l.want(200, "GET", "/ServiceProviderConfig", "")
	for _, k := range []string{"patch", "bulk", "filter", "changePassword", "sort", "etag"} {
		if _, ok := r.body[k].(map[string]any)["supported"].(bool); !ok {
			t.Errorf("ServiceProviderConfig.%s.supported missing: %s", k, r.raw)
		}
	}
	if len(r.body["authenticationSchemes"].([]any)) == 0 {
		t.Error("no authenticationSchemes")
	}
	r = l.want(200, "GET", "/ResourceTypes", "")
	if r.body["totalResults"] != 2.0 {
		t.Errorf("ResourceTypes = %s", r.raw)
	}
	r = l.want(200, "GET", "/ResourceTypes/User", "")
	if r.body["endpoint"] != "/Users" || r.body["schema"] != "urn:ietf:params:scim:schemas:core:2.0:User" {
		t.Errorf("ResourceTypes/User = %s", r.raw)
	}
	r = l.want(200, "GET", "/Schemas", "")
	if r.body["totalResults"] != 3.0 {
		t.Errorf("Schemas = %s", r.raw)
	}
	for _, urn := range []string{"urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:core:2.0:Group", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"} {
		r = l.want(200, "GET", "/Schemas/"+urn, "")
		if r.body["id"] != urn || len(r.body["attributes"].([]any)) == 0 {
			t.Errorf("Schemas/%s = %s", urn, r.raw)
		}
	}
	r = l.want(200, "GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", "")
	for _, a := range r.body["attributes"].([]any) {
		m := a.(map[string]any)
		if m["name"] == "userName" && (m["uniqueness"] != "server" || m["required"] != true || m["caseExact"] != false) {
			t.Errorf("userName's schema = %v", m)
		}
	}
}

// TestRFC7644Errors: §3.12's errors with their scimType, each leaving the
// data as it was.
func TestRFC7644Errors(t *testing.T) {
	l := startLive(t)
	uid := str(l.want(201, "POST", "/Users", `{"userName":"ana"}`).body, "id")
	gid := str(l.want(201, "POST", "/Groups", `{"displayName":"team","members":[{"value":"`+uid+`"}]}`).body, "id")
	big := `{"userName":"` + strings.Repeat("x", maxBody) + `"}`
	tests := []struct {
		name, method, path, body string
		status                   int
		scimType                 string
	}{
		{"invalid filter", "GET", "/Users?filter=" + q(`userName eq`), "", 400, "invalidFilter"},
		{"unknown operator", "GET", "/Users?filter=" + q(`userName zz "x"`), "", 400, "invalidFilter"},
		{"unbalanced", "GET", "/Users?filter=" + q(`(userName eq "x"`), "", 400, "invalidFilter"},
		{"unknown attribute", "POST", "/Users", `{"userName":"b","shoeSize":9}`, 400, "invalidValue"},
		{"unknown attribute in a filter", "GET", "/Users?filter=" + q(`shoeSize eq "9"`), "", 400, "invalidFilter"},
		{"unknown sub-attribute in a value filter", "GET", "/Users?filter=" + q(`emails[colour eq "red"]`), "", 400, "invalidFilter"},
		{"unknown attribute in attributes", "GET", "/Users?attributes=userName,shoeSize", "", 400, "invalidValue"},
		{"unknown attribute in excludedAttributes", "GET", "/Users/" + uid + "?excludedAttributes=shoeSize", "", 400, "invalidValue"},
		{"unknown sortBy", "GET", "/Groups?sortBy=userName", "", 400, "invalidValue"},
		{"wrong type", "POST", "/Users", `{"userName":"b","active":"perhaps"}`, 400, "invalidValue"},
		{"missing userName", "POST", "/Users", `{"displayName":"b"}`, 400, "invalidValue"},
		{"missing displayName", "POST", "/Groups", `{"members":[]}`, 400, "invalidValue"},
		{"non-JSON", "POST", "/Users", `userName=b`, 400, "invalidSyntax"},
		{"JSON array", "POST", "/Users", `[{"userName":"b"}]`, 400, "invalidSyntax"},
		{"oversized body", "POST", "/Users", big, 413, ""},
		{"duplicate userName", "POST", "/Users", `{"userName":"ANA"}`, 409, "uniqueness"},
		{"PATCH without the PatchOp schema", "PATCH", "/Users/" + uid, `{"Operations":[{"op":"replace","path":"title","value":"x"}]}`, 400, "invalidSyntax"},
		{"PATCH unknown op", "PATCH", "/Users/" + uid, patch(`[{"op":"merge","path":"title","value":"x"}]`), 400, "invalidSyntax"},
		{"PATCH unknown path", "PATCH", "/Users/" + uid, patch(`[{"op":"replace","path":"title","value":"x"},{"op":"replace","path":"shoeSize","value":9}]`), 400, "invalidPath"},
		{"PATCH bad path", "PATCH", "/Users/" + uid, patch(`[{"op":"replace","path":"emails[type eq","value":"x"}]`), 400, "invalidPath"},
		{"PATCH remove without path", "PATCH", "/Users/" + uid, patch(`[{"op":"remove"}]`), 400, "noTarget"},
		{"PATCH missing member", "PATCH", "/Groups/" + gid, patch(`[{"op":"remove","path":"members[value eq \"nobody\"]"}]`), 400, "noTarget"},
		{"PATCH unknown member", "PATCH", "/Groups/" + gid, patch(`[{"op":"add","path":"members","value":[{"value":"nobody"}]}]`), 400, "invalidValue"},
		{"PATCH readOnly", "PATCH", "/Users/" + uid, patch(`[{"op":"replace","path":"id","value":"x"}]`), 400, "mutability"},
		{"PATCH active not a boolean", "PATCH", "/Users/" + uid, patch(`[{"op":"replace","path":"active","value":"maybe"}]`), 400, "invalidValue"},
		{"member id that is no relationship id", "PUT", "/Groups/" + gid, `{"displayName":"team","members":[{"value":"a b","type":"User"}]}`, 400, "invalidValue"},
		{"no such resource", "PUT", "/Users/nope", `{"userName":"x"}`, 404, ""},
		{"no such endpoint", "GET", "/Widgets", "", 404, ""},
		{"method", "PATCH", "/Users", patch(`[]`), 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l.t = t
			before := l.revision()
			l.wantError(tc.status, tc.scimType, tc.method, tc.path, tc.body)
			if l.revision() != before {
				t.Errorf("%s proposed a write", tc.name)
			}
		})
	}
	l.t = t
	if u := l.want(200, "GET", "/Users/"+uid, "").body; str(u, "userName") != "ana" || u["title"] != nil || u["meta"].(map[string]any)["version"] != `W/"1"` {
		t.Errorf("the user changed: %v", u)
	}
	if g := l.want(200, "GET", "/Groups/"+gid, "").body; len(g["members"].([]any)) != 1 || !l.has("group:"+gid+"#direct_member@user:"+uid) {
		t.Errorf("the group changed: %v", g)
	}
}

// TestAuth: SCIM needs a credential with the scim scope; the errors are
// SCIM error bodies (RFC 7644 §3.12 with 401 and 403).
func TestAuth(t *testing.T) {
	l := startLive(t)
	for _, tc := range []struct {
		auth   string
		status int
	}{
		{"", 401},
		{"Basic dXNlcjpwYXNz", 401},
		{"Bearer wrong", 403},
		{"Bearer " + scimKey, 200},
		{"Bearer " + adminKey, 200},
	} {
		l.auth = tc.auth
		if tc.status == 200 {
			l.want(200, "GET", "/Users", "")
			continue
		}
		r := l.wantError(tc.status, "", "GET", "/Users", "")
		if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%q: 401 without WWW-Authenticate: %v", tc.auth, r.header)
		}
	}
	// The SCIM key provisions and does nothing else: the gRPC API refuses it.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+scimKey)
	_, err := l.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{
		Resource: &v1.ObjectReference{ObjectType: "dataset", ObjectId: "everyone"}, Permission: "read",
		Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "x"}},
	})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("the gRPC API with the SCIM key = %v, want PermissionDenied", err)
	}
}
