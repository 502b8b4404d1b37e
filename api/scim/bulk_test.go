package scim_test

import (
	"strconv"
	"strings"
	"testing"
)

func bulkBody(failOnErrors int, ops string) string {
	return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"failOnErrors":` + strconv.Itoa(failOnErrors) + `,"Operations":` + ops + `}`
}

// bulkOps returns a bulk response's operations.
func bulkOps(t *testing.T, r reply) []map[string]any {
	t.Helper()
	if s, _ := r.body["schemas"].([]any); len(s) != 1 || s[0] != "urn:ietf:params:scim:api:messages:2.0:BulkResponse" {
		t.Fatalf("not a bulk response: %s", r.raw)
	}
	var out []map[string]any
	for _, o := range r.body["Operations"].([]any) {
		out = append(out, o.(map[string]any))
	}
	return out
}

// TestRFC7644Bulk: RFC 7644 §3.7 — creates with bulkId references (a group
// whose member is a user created in the same request, listed before it),
// per-operation statuses, locations and versions, an operation that fails
// without stopping the others, failOnErrors, unresolvable and circular
// references (409), and the limits ServiceProviderConfig announces.
func TestRFC7644Bulk(t *testing.T) {
	l := startLive(t)
	spc := l.want(200, "GET", "/ServiceProviderConfig", "").body["bulk"].(map[string]any)
	if spc["supported"] != true || spc["maxOperations"] != 1000.0 || spc["maxPayloadSize"] != float64(maxBody) {
		t.Fatalf("ServiceProviderConfig bulk = %v", spc)
	}
	// §3.7.2: the group refers to a user created later in the same request.
	r := l.want(200, "POST", "/Bulk", bulkBody(0, `[
		{"method":"POST","path":"/Groups","bulkId":"tour","data":{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Tour Guides",
			"members":[{"type":"User","value":"bulkId:alice"}]}},
		{"method":"POST","path":"/Users","bulkId":"alice","data":{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"Alice"}},
		{"method":"POST","path":"/Users","bulkId":"dup","data":{"userName":"alice"}},
		{"method":"PATCH","path":"/Users/bulkId:alice","data":{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Al"}]}}
	]`))
	ops := bulkOps(t, r)
	if len(ops) != 4 {
		t.Fatalf("%d results, want 4: %s", len(ops), r.raw)
	}
	group, user, dup, patched := ops[0], ops[1], ops[2], ops[3]
	if user["status"] != "201" || group["status"] != "201" || patched["status"] != "200" || dup["status"] != "409" {
		t.Fatalf("statuses = %s", r.raw)
	}
	if dup["response"].(map[string]any)["scimType"] != "uniqueness" {
		t.Errorf("the duplicate's response = %v", dup["response"])
	}
	uid := strings.TrimPrefix(user["location"].(string), "/scim/v2/Users/")
	gid := strings.TrimPrefix(group["location"].(string), "/scim/v2/Groups/")
	if user["bulkId"] != "alice" || user["version"] == nil || uid == "" || gid == "" {
		t.Fatalf("user result = %v", user)
	}
	if !l.has("group:" + gid + "#direct_member@user:" + uid) {
		t.Error("the bulkId reference did not become the member")
	}
	if got := l.want(200, "GET", "/Users/"+uid, ""); str(got.body, "displayName") != "Al" || got.header.Get("ETag") != patched["version"] {
		t.Errorf("after the bulk PATCH: %s (version %v)", got.raw, patched["version"])
	}

	// failOnErrors 1: the first failure stops the request; what ran stays.
	r = l.want(200, "POST", "/Bulk", bulkBody(1, `[
		{"method":"POST","path":"/Users","bulkId":"b","data":{"userName":"bob"}},
		{"method":"DELETE","path":"/Groups/no-such-group"},
		{"method":"POST","path":"/Users","bulkId":"c","data":{"userName":"carol"}}
	]`))
	if ops := bulkOps(t, r); len(ops) != 2 || ops[0]["status"] != "201" || ops[1]["status"] != "404" {
		t.Fatalf("failOnErrors 1 = %s", r.raw)
	}
	if got := l.want(200, "GET", "/Users?filter="+q(`userName eq "carol"`), ""); got.body["totalResults"] != 0.0 {
		t.Error("an operation after failOnErrors was reached ran")
	}

	// References that cannot resolve: unknown, to a failed operation, or
	// circular: 409 each, nothing written for them.
	before := l.revision()
	r = l.want(200, "POST", "/Bulk", bulkBody(0, `[
		{"method":"POST","path":"/Groups","bulkId":"g1","data":{"displayName":"one","members":[{"value":"bulkId:g2","type":"Group"}]}},
		{"method":"POST","path":"/Groups","bulkId":"g2","data":{"displayName":"two","members":[{"value":"bulkId:g1","type":"Group"}]}},
		{"method":"POST","path":"/Groups","bulkId":"g3","data":{"displayName":"three","members":[{"value":"bulkId:nowhere"}]}},
		{"method":"POST","path":"/Users","bulkId":"bad","data":{"userName":""}},
		{"method":"POST","path":"/Groups","bulkId":"g4","data":{"displayName":"four","members":[{"value":"bulkId:bad"}]}},
		{"method":"GET","path":"/Users"},
		{"method":"POST","path":"/Users","data":{"userName":"no-bulk-id"}}
	]`))
	for i, o := range bulkOps(t, r) {
		want := map[int]string{0: "409", 1: "409", 2: "409", 3: "400", 4: "409", 5: "400", 6: "400"}[i]
		if o["status"] != want {
			t.Errorf("operation %d = %v, want %s", i, o, want)
		}
	}
	if l.revision() != before {
		t.Error("operations that failed wrote something")
	}

	// The request as a whole: its schema, its operations' count, its size.
	l.wantError(400, "invalidSyntax", "POST", "/Bulk", `{"Operations":[]}`)
	l.wantError(400, "invalidValue", "POST", "/Bulk", bulkBody(0, `[{"method":"POST","path":"/Users","bulkId":"x","data":{"userName":"x1"}},{"method":"POST","path":"/Users","bulkId":"x","data":{"userName":"x2"}}]`))
	many := strings.Repeat(`{"method":"DELETE","path":"/Users/x"},`, 1001)
	l.wantError(413, "", "POST", "/Bulk", bulkBody(0, "["+strings.TrimSuffix(many, ",")+"]"))
	l.wantError(413, "", "POST", "/Bulk", bulkBody(0, `[{"method":"POST","path":"/Users","bulkId":"big","data":{"userName":"`+strings.Repeat("x", maxBody)+`"}}]`))
}
