package scim

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestIndexedFilters: the filters IdPs look resources up by (externalId,
// a group's displayName, userName, id, and `and` with one of them) are
// answered from indexes that follow every change of the attribute, without
// reading every resource; any other filter reads them all and goes through
// Admit, whose refusal is a 503 with Retry-After.
func TestIndexedFilters(t *testing.T) {
	st := newFakeRecordStore()
	admits := 0
	h := &Handler{Store: st, Mapping: DefaultMapping("lab"), Prefix: "/scim/v2",
		Admit: func(context.Context) (func(), error) {
			admits++
			return nil, &Error{Status: http.StatusServiceUnavailable, Detail: "busy", RetryAfter: 2}
		}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := &client{t: t, srv: srv, st: st, base: srv.URL + "/scim/v2"}
	patchOp := func(op, path, value string) string {
		return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"` + op + `","path":"` + path + `","value":` + value + `}]}`
	}
	u1 := c.want(201, "POST", "/Users", `{"userName":"ana","externalId":"E-1"}`)["id"].(string)
	u2 := c.want(201, "POST", "/Users", `{"userName":"bob","externalId":"E-2"}`)["id"].(string)
	g1 := c.want(201, "POST", "/Groups", `{"displayName":"Alpha","externalId":"G-1","members":[{"value":"`+u1+`"}]}`)["id"].(string)
	g2 := c.want(201, "POST", "/Groups", `{"displayName":"alpha","externalId":"G-2"}`)["id"].(string)

	find := func(name, kind, filter string, want ...string) {
		t.Helper()
		out := c.want(200, "GET", "/"+kind+"?filter="+url.QueryEscape(filter), "")
		var got []string
		res, _ := out["Resources"].([]any)
		for _, r := range res {
			got = append(got, r.(map[string]any)["id"].(string))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) || out["totalResults"] != float64(len(want)) {
			t.Errorf("%s: %s?filter=%s = %v (total %v), want %v", name, kind, filter, got, out["totalResults"], want)
		}
	}
	steps := []struct {
		name   string
		change func()
		kind   string
		filter string
		want   []string
	}{
		{"user externalId", nil, "Users", `externalId eq "E-1"`, []string{u1}},
		{"externalId is case-exact", nil, "Users", `externalId eq "e-1"`, nil},
		{"userName", nil, "Users", `userName eq "BOB"`, []string{u2}},
		{"id", nil, "Users", `id eq "` + u2 + `"`, []string{u2}},
		{"and with an indexed side", nil, "Users", `active eq true and externalId eq "E-2"`, []string{u2}},
		{"and whose other side fails", nil, "Users", `externalId eq "E-2" and active eq false`, nil},
		{"externalId replaced: the old value finds nothing", func() { c.want(200, "PATCH", "/Users/"+u1, patchOp("replace", "externalId", `"E-9"`)) },
			"Users", `externalId eq "E-1"`, nil},
		{"externalId replaced: the new value finds it", nil, "Users", `externalId eq "E-9"`, []string{u1}},
		{"externalId removed", func() { c.want(200, "PUT", "/Users/"+u2, `{"userName":"bob"}`) }, "Users", `externalId eq "E-2"`, nil},
		{"group displayName, without regard to case", nil, "Groups", `displayName eq "ALPHA"`, []string{g1, g2}},
		{"group externalId", nil, "Groups", `externalId eq "G-2"`, []string{g2}},
		{"group renamed: the old name finds only the other", func() { c.want(204, "PATCH", "/Groups/"+g1, patchOp("replace", "displayName", `"Beta"`)) },
			"Groups", `displayName eq "alpha"`, []string{g2}},
		{"group renamed: the new name finds it", nil, "Groups", `displayName eq "beta"`, []string{g1}},
		{"a group filter on members as well", nil, "Groups", `displayName eq "Beta" and members[value eq "` + u1 + `"]`, []string{g1}},
		{"a group filter on members the group lacks", nil, "Groups", `displayName eq "Beta" and members[value eq "` + u2 + `"]`, nil},
		{"group deleted", func() { c.want(204, "DELETE", "/Groups/"+g2, "") }, "Groups", `displayName eq "alpha"`, nil},
	}
	for _, s := range steps {
		if s.change != nil {
			s.change()
		}
		find(s.name, s.kind, s.filter, s.want...)
	}
	if n := st.f.scans[SpaceUsers] + st.f.scans[SpaceGroups]; n != 0 || admits != 0 {
		t.Errorf("indexed lookups read every resource %d times and were admitted %d times, want 0", n, admits)
	}
	// The index records follow: one per indexed value, none for g2.
	if got := len(st.f.recs[SpaceGroupNames]) + len(st.f.recs[SpaceGroupExternalIDs]); got != 2 {
		t.Errorf("%d group index records, want 2 (g1's name and externalId)", got)
	}
	// A filter no index answers is admitted first; refused, it is a 503
	// with Retry-After and reads nothing.
	for _, f := range []string{`displayName co "a"`, `externalId eq "G-1" or displayName eq "x"`, `members[value eq "` + u1 + `"]`} {
		status, out, header := c.do("GET", "/Groups?filter="+url.QueryEscape(f), "")
		if status != 503 || header.Get("Retry-After") != "2" || out["status"] != "503" {
			t.Errorf("unindexed %s = %d %v %v, want 503 with Retry-After", f, status, out, header)
		}
	}
	if admits != 3 || st.f.scans[SpaceGroups] != 0 {
		t.Errorf("%d admissions, %d scans; want 3, 0", admits, st.f.scans[SpaceGroups])
	}
}

// TestMemberReadsAndWrites: a PATCH of a few members of a large group reads
// and writes those members and the group's record only; a GET that leaves
// the members out reads none of them.
func TestMemberReadsAndWrites(t *testing.T) {
	st := newFakeRecordStore()
	c := newClientWith(t, st)
	var members []string
	for i := range 300 {
		members = append(members, `{"value":"m`+strconv.Itoa(i)+`","type":"User"}`)
	}
	id := c.want(201, "POST", "/Groups", `{"displayName":"big","members":[`+strings.Join(members, ",")+`]}`)["id"].(string)
	// Entra ID's membership question reads one member record of the
	// 300.
	for member, want := range map[string]float64{"m1": 1, "n9": 0} {
		st.f.read[SpaceMembers] = 0
		f := url.QueryEscape(`id eq "` + id + `" and members[value eq "` + member + `"]`)
		if g := c.want(200, "GET", "/Groups?excludedAttributes=members&filter="+f, ""); g["totalResults"] != want || st.f.read[SpaceMembers] != 1 {
			t.Errorf("is %s a member: %v, %d member records read", member, g, st.f.read[SpaceMembers])
		}
	}
	patch := func(ops string) {
		t.Helper()
		st.f.read[SpaceMembers] = 0
		c.want(204, "PATCH", "/Groups/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":`+ops+`}`)
	}
	for _, tc := range []struct {
		name          string
		ops           string
		reads, writes int // member records read; record ops written (the group's record included)
	}{
		{"add two", `[{"op":"add","path":"members","value":[{"value":"n1","type":"User"},{"value":"n2","type":"User"}]}]`, 2, 3},
		{"add one already there", `[{"op":"add","path":"members","value":[{"value":"m7"}]}]`, 1, 1},
		{"remove by filter", `[{"op":"remove","path":"members[value eq \"m8\"]"}]`, 1, 2},
		{"remove a listed pair", `[{"op":"Remove","path":"members","value":[{"value":"m9"},{"value":"n1"}]}]`, 2, 3},
		{"rename only", `[{"op":"replace","path":"displayName","value":"bigger"}]`, 0, 3},                            // the group, its old and new name index
		{"replace them all", `[{"op":"replace","path":"members","value":[{"value":"m1","type":"User"}]}]`, 299, 299}, // 298 removed, the group
	} {
		patch(tc.ops)
		if got := st.f.read[SpaceMembers]; got != tc.reads {
			t.Errorf("%s: %d member records read, want %d", tc.name, got, tc.reads)
		}
		if got := len(st.f.lastOps); got != tc.writes {
			t.Errorf("%s: %d record ops written, want %d", tc.name, got, tc.writes)
		}
	}
	st.f.read[SpaceMembers] = 0
	if g := c.want(200, "GET", "/Groups/"+id+"?excludedAttributes=members", ""); g["members"] != nil || st.f.read[SpaceMembers] != 0 {
		t.Errorf("excludedAttributes=members: %v, %d member records read", g, st.f.read[SpaceMembers])
	}
	if g := c.want(200, "GET", "/Groups/"+id, ""); len(g["members"].([]any)) != 1 {
		t.Errorf("GET = %v", g)
	}
}
