package scim_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/ambit-authz/ambit/api"
	"github.com/ambit-authz/ambit/api/scim"
)

// serveSCIM mounts another SCIM handler of l's server, with options, and
// points l at it.
func (l *live) serveSCIM(o api.SCIMOptions) {
	l.t.Helper()
	o.Mapping, o.Auth, o.Keys = scim.DefaultMapping(org), api.NewAuthenticator([]string{adminKey}), []string{scimKey}
	h, err := l.ts.API.SCIMHandler(o)
	if err != nil {
		l.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(api.SCIMPrefix+"/", h)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.t.Fatal(err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(lis) }()
	l.t.Cleanup(func() { hs.Close() })
	l.base = "http://" + lis.Addr().String() + api.SCIMPrefix
}

func memberID(i int) string { return fmt.Sprintf("u%05d", i) }

// membersJSON is a members list of the users ids[from:to] names.
func membersJSON(ids []int) string {
	parts := make([]string, len(ids))
	for i, n := range ids {
		parts[i] = `{"value":"` + memberID(n) + `","type":"User"}`
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func span(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// records returns the keys of a record space with a prefix, as stored.
func (l *live) records(space, prefix string) []string {
	l.t.Helper()
	snap, err := l.ts.Store.Snapshot(l.ts.Store.AppliedRevision())
	if err != nil {
		l.t.Fatal(err)
	}
	var keys []string
	for e, err := range snap.Records(context.Background(), space, "") {
		if err != nil {
			l.t.Fatal(err)
		}
		if strings.HasPrefix(e.Key, prefix) {
			keys = append(keys, e.Key)
		}
	}
	return keys
}

// memberRels returns the group's direct_member relationships' subject ids.
func (l *live) memberRels(group string) []string {
	l.t.Helper()
	stream, err := l.perms.ReadRelationships(l.ctx(), &v1.ReadRelationshipsRequest{
		Consistency:        &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
		RelationshipFilter: &v1.RelationshipFilter{ResourceType: "group", OptionalResourceId: group, OptionalRelation: "direct_member"},
	})
	if err != nil {
		l.t.Fatal(err)
	}
	var out []string
	for {
		m, err := stream.Recv()
		if err != nil {
			break
		}
		out = append(out, m.GetRelationship().GetSubject().GetObject().GetObjectId())
	}
	slices.Sort(out)
	return out
}

func memberIDs(ns []int) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = memberID(n)
	}
	slices.Sort(out)
	return out
}

// TestLargeGroup grows a group to 5,000 members by PATCHes of 500, checks
// membership through the engine, replaces members with a PUT, refuses
// changes beyond the limits and a failing PATCH without writing anything,
// and deletes the group with every member record and relationship. A group
// kept as one record refused it at about 1,300 members (413: the record's
// 64 KiB).
func TestLargeGroup(t *testing.T) {
	const n, step = 5000, 500
	l := startLive(t)
	l.serveSCIM(api.SCIMOptions{MaxBodyBytes: 1 << 20})
	// The users are accounts of the organization (written directly: SCIM
	// users would take 5,000 requests).
	var accounts []string
	for i := range n + step {
		accounts = append(accounts, "organization:lab#account@user:"+memberID(i))
		if len(accounts) == 1000 || i == n+step-1 {
			l.write(v1.RelationshipUpdate_OPERATION_TOUCH, accounts...)
			accounts = accounts[:0]
		}
	}
	gid := str(l.want(201, "POST", "/Groups", `{"displayName":"Everyone Big"}`).body, "id")
	l.write(v1.RelationshipUpdate_OPERATION_TOUCH, "dataset:big#org@organization:lab", "dataset:big#reader@group:"+gid+"#member")

	etags := map[string]bool{}
	for from := 0; from < n; from += step {
		r := l.do("PATCH", "/Groups/"+gid, patch(`[{"op":"add","path":"members","value":`+membersJSON(span(from, from+step))+`}]`))
		if r.status != 204 && r.status != 200 {
			t.Fatalf("PATCH adding members %d..%d = %d %s", from, from+step, r.status, r.raw)
		}
		if e := r.header.Get("ETag"); e == "" || etags[e] {
			t.Fatalf("PATCH %d: ETag %q repeats or is missing", from, e)
		} else {
			etags[e] = true
		}
	}
	if got := l.memberRels(gid); !slices.Equal(got, memberIDs(span(0, n))) {
		t.Fatalf("%d member relationships, want %d", len(got), n)
	}
	for _, i := range []int{0, 1, 499, 500, 2500, 4999} {
		l.wantAccess("user:"+memberID(i), true, "group:"+gid, "member", "dataset:big", "read")
	}
	l.wantAccess("user:"+memberID(n), false, "group:"+gid, "member", "dataset:big", "read")

	// GET: all of them, or none when excluded (and then none are read).
	g := l.want(200, "GET", "/Groups/"+gid, "")
	if m, _ := g.body["members"].([]any); len(m) != n {
		t.Fatalf("GET: %d members, want %d", len(m), n)
	}
	version := g.header.Get("ETag")
	if g := l.want(200, "GET", "/Groups/"+gid+"?excludedAttributes=members", ""); g.body["members"] != nil || g.body["displayName"] != "Everyone Big" {
		t.Fatalf("excludedAttributes=members: %s", g.raw)
	}
	if g := l.want(200, "GET", "/Groups/"+gid+"?attributes=displayName", ""); g.body["members"] != nil {
		t.Fatalf("attributes=displayName: %s", g.raw)
	}
	// A stale If-Match is refused after a member change.
	l.want(204, "PATCH", "/Groups/"+gid, patch(`[{"op":"remove","path":"members[value eq \"`+memberID(0)+`\"]"}]`), "If-Match", version)
	l.wantError(412, "", "PATCH", "/Groups/"+gid, patch(`[{"op":"remove","path":"members[value eq \"`+memberID(1)+`\"]"}]`), "If-Match", version)
	l.want(204, "PATCH", "/Groups/"+gid, patch(`[{"op":"add","path":"members","value":`+membersJSON([]int{0})+`}]`))

	// What a refused request must leave as it was.
	snapshot := func() (uint64, []string, []string) {
		return uint64(l.revision()), l.records(scim.SpaceMembers, gid+"\x00"), l.memberRels(gid)
	}
	rev, recs, rels := snapshot()
	unchanged := func(what string) {
		t.Helper()
		r2, recs2, rels2 := snapshot()
		if r2 != rev || !slices.Equal(recs, recs2) || !slices.Equal(rels, rels2) {
			t.Fatalf("%s changed something: revision %d -> %d, %d -> %d member records, %d -> %d relationships", what, rev, r2, len(recs), len(recs2), len(rels), len(rels2))
		}
	}
	// A failing PATCH changes nothing: a remove of a member the group does
	// not have, or an invalid operation, after 500 adds.
	adds := `{"op":"add","path":"members","value":` + membersJSON(span(n, n+step)) + `}`
	l.wantError(400, "noTarget", "PATCH", "/Groups/"+gid, patch(`[`+adds+`,{"op":"remove","path":"members[value eq \"nobody\"]"}]`))
	unchanged("a PATCH removing a missing member")
	l.wantError(400, "noTarget", "PATCH", "/Groups/"+gid, patch(`[`+adds+`,{"op":"remove","path":"members","value":[{"value":"nobody"}]}]`))
	unchanged("a PATCH removing a listed missing member")
	l.wantError(400, "invalidSyntax", "PATCH", "/Groups/"+gid, patch(`[`+adds+`,{"op":"frobnicate","path":"members","value":[]}]`))
	unchanged("a PATCH with an invalid operation")
	// More member changes than one write holds: 413 naming the limit.
	big := l.wantError(413, "", "PATCH", "/Groups/"+gid, patch(`[{"op":"add","path":"members","value":`+membersJSON(span(n, n+step))+`},
		{"op":"remove","path":"members","value":`+membersJSON(span(0, step))+`}]`))
	if d := str(big.body, "detail"); !strings.Contains(d, "limit") {
		t.Errorf("413 detail %q names no limit", d)
	}
	unchanged("a PATCH beyond the write's limit")

	// PUT with a different set: 400 members out, 400 in.
	next := append(span(400, n), span(n, n+400)...)
	l.want(200, "PUT", "/Groups/"+gid, `{"displayName":"Everyone Big","members":`+membersJSON(next)+`}`)
	if got := l.memberRels(gid); !slices.Equal(got, memberIDs(next)) {
		t.Fatalf("after PUT: %d member relationships, want %d", len(got), len(next))
	}
	if got := l.records(scim.SpaceMembers, gid+"\x00"); len(got) != len(next) {
		t.Fatalf("after PUT: %d member records, want %d", len(got), len(next))
	}
	l.wantAccess("user:"+memberID(0), false, "group:"+gid, "member", "dataset:big", "read")
	l.wantAccess("user:"+memberID(n), true, "group:"+gid, "member", "dataset:big", "read")
	// The filter IdPs use to ask whether a user is a member.
	if got := l.want(200, "GET", "/Groups?excludedAttributes=members&filter="+q(`members[value eq "`+memberID(n+1)+`"]`), ""); got.body["totalResults"] != 1.0 {
		t.Errorf("members[value eq] = %s", got.raw)
	}
	if got := l.want(200, "GET", "/Groups?excludedAttributes=members&filter="+q(`members[value eq "`+memberID(1)+`"]`), ""); got.body["totalResults"] != 0.0 {
		t.Errorf("members[value eq] of a removed member = %s", got.raw)
	}

	// DELETE removes every member record and relationship, in several
	// writes.
	l.want(204, "DELETE", "/Groups/"+gid, "")
	l.wantError(404, "", "GET", "/Groups/"+gid, "")
	if got := l.memberRels(gid); len(got) != 0 {
		t.Fatalf("after DELETE: %d member relationships", len(got))
	}
	if got := l.records(scim.SpaceMembers, gid+"\x00"); len(got) != 0 {
		t.Fatalf("after DELETE: %d member records", len(got))
	}
	l.wantAccess("user:"+memberID(n), false, "dataset:big", "read")
}

// TestScanGate: a SCIM list that reads every resource is a heavy call of
// the server's gate (--max-concurrent-heavy, the heap's high-water mark):
// refused, it is a 503 SCIM error with Retry-After; lookups an index
// answers and changes are not gated.
func TestScanGate(t *testing.T) {
	l := startLive(t, api.Limits{MemoryHighWater: 1}) // the heap is always above it
	id := str(l.want(201, "POST", "/Users", `{"userName":"ana","externalId":"E-1"}`).body, "id")
	l.want(201, "POST", "/Groups", `{"displayName":"Team","members":[{"value":"`+id+`"}]}`)
	for _, path := range []string{"/Users", "/Users?filter=" + q(`name.givenName sw "A"`), "/Groups?filter=" + q(`members[value eq "`+id+`"]`)} {
		r := l.wantError(503, "", "GET", path, "")
		if r.header.Get("Retry-After") == "" || !strings.Contains(str(r.body, "detail"), "high-water") {
			t.Errorf("GET %s = %v %s, want Retry-After and the limit named", path, r.header, r.raw)
		}
	}
	for _, path := range []string{"/Users?filter=" + q(`userName eq "ana"`), "/Users?filter=" + q(`externalId eq "E-1"`),
		"/Groups?filter=" + q(`displayName eq "team"`), "/Users/" + id} {
		l.want(200, "GET", path, "")
	}
}
